"""Spawn latency and idle memory of execution environments forked from the template.

    .venv/bin/python bench/sandbox_spawn.py [--count 300] [--idle 200] [--unsandboxed]

Prints, per launcher, percentiles of:
* spawn -> first byte: from calling ``spawn`` to reading the first byte the Python entry's
  ``main()`` writes to the output pipe (the child's first instruction of the entry);
* spawn returned: ``spawn`` itself (the child is set up, in its cgroup and namespaces);
* exec /bin/true: ``spawn`` to ``wait`` of an ``ExecEntry`` that exits at once;
then the PSS of ``--idle`` environments kept alive at once (median and max). The baseline is a
fresh interpreter (``python -S -c``) writing one byte, what a spawn without a template costs.
Run as root for the sandboxed launcher.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lamina.engine.sandbox.api import ExecEntry, PythonEntry, SandboxSpec
from lamina.engine.sandbox.launcher import (
    NamespaceLauncher,
    UnsandboxedLauncher,
    default_interpreter,
)

ENTRY = '''
import os, time
def main():
    os.write(1, b"r")
    if os.environ.get("BENCH_IDLE"):
        while True:
            time.sleep(3600)
    return 0
'''


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return (f"p50 {statistics.median(ordered):6.2f}  p90 {pick(0.90):6.2f}  "
            f"p99 {pick(0.99):6.2f}  max {ordered[-1]:6.2f} ms")


def read_byte(fd: int) -> None:
    if not os.read(fd, 1):
        raise RuntimeError("the environment wrote nothing")


def pss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


async def bench_launcher(launcher, code_dir: Path, count: int, idle: int) -> None:
    first_byte, returned, exec_total = [], [], []
    base = dict(env_id="bench", code_dir=code_dir, memory_mb=128,
                environ={"PATH": "/usr/bin:/bin", "LAMBDA_TASK_ROOT": "/var/task"})
    for i in range(count + 10):
        r, w = os.pipe()
        t0 = time.perf_counter()
        env = await launcher.spawn(SandboxSpec(entry=PythonEntry(), output_fd=w, **base))
        t1 = time.perf_counter()
        read_byte(r)
        t2 = time.perf_counter()
        os.close(w)
        os.close(r)
        await env.wait()
        if i >= 10:  # warm-up: the first spawns fault in the template's pages
            returned.append((t1 - t0) * 1000)
            first_byte.append((t2 - t0) * 1000)
    for i in range(count // 2 + 5):
        t0 = time.perf_counter()
        env = await launcher.spawn(SandboxSpec(entry=ExecEntry(("/bin/true",)), **base))
        await env.wait()
        if i >= 5:
            exec_total.append((time.perf_counter() - t0) * 1000)
    print(f"  spawn -> first byte of entry  {percentiles(first_byte)}")
    print(f"  spawn returned               {percentiles(returned)}")
    print(f"  exec /bin/true spawn -> exit {percentiles(exec_total)}")

    envs, pipes = [], []
    environ = dict(base["environ"], BENCH_IDLE="1")
    t0 = time.perf_counter()
    for _ in range(idle):
        r, w = os.pipe()
        spec = SandboxSpec(entry=PythonEntry(), output_fd=w, **dict(base, environ=environ))
        envs.append(await launcher.spawn(spec))
        os.close(w)
        read_byte(r)
        pipes.append(r)
    took = time.perf_counter() - t0
    await asyncio.sleep(0.5)
    pss = sorted(pss_kb(e.pid) for e in envs)
    print(f"  {idle} idle environments alive (started in {took:.2f} s): PSS median "
          f"{statistics.median(pss) / 1024:.2f} MB, max {pss[-1] / 1024:.2f} MB")
    for env in envs:
        env.kill()
    statuses = await asyncio.gather(*(e.wait() for e in envs))
    for r in pipes:
        os.close(r)
    assert all(s.signal == 9 for s in statuses), statuses


def bench_fresh_interpreter(count: int) -> None:
    samples = []
    interpreter = str(default_interpreter())
    for _ in range(count):
        t0 = time.perf_counter()
        proc = subprocess.Popen([interpreter, "-S", "-c", "import os; os.write(1, b'r')"],
                                stdout=subprocess.PIPE)
        assert proc.stdout is not None
        proc.stdout.read(1)
        samples.append((time.perf_counter() - t0) * 1000)
        proc.wait()
    print(f"  fresh `python -S -c` -> byte   {percentiles(samples)}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--idle", type=int, default=200)
    parser.add_argument("--unsandboxed", action="store_true", help="also bench it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lamina-bench-") as tmp:
        root = Path(tmp)
        (root / "code" / "fn").mkdir(parents=True)
        runtime = root / "runtimes" / "python"
        runtime.mkdir(parents=True)
        (runtime / "bench_entry.py").write_text(ENTRY)
        kinds = [("NamespaceLauncher", NamespaceLauncher)]
        if args.unsandboxed:
            kinds.append(("UnsandboxedLauncher", UnsandboxedLauncher))
        for name, cls in kinds:
            launcher = cls(root / "code", runtime, "bench_entry")
            reason = launcher.unavailable_reason()
            if reason:
                print(f"{name}: unavailable: {reason}")
                continue
            await launcher.start()
            print(f"{name} ({os.cpu_count()} cores, {args.count} spawns)")
            try:
                await bench_launcher(launcher, root / "code" / "fn", args.count, args.idle)
            finally:
                await launcher.close()
        print("baseline")
        bench_fresh_interpreter(min(args.count, 50))


if __name__ == "__main__":
    if sys.platform != "linux":
        sys.exit("Linux only")
    asyncio.run(main())
