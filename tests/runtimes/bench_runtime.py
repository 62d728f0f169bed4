"""Warm-invoke throughput and cold start of one runtime process, against the test server.

Not a test: ``.venv/bin/python tests/runtimes/bench_runtime.py [python|node|awslambdaric] [N]``.
Runs N sequential invokes of a hello-world handler from inside the server's
event loop (no thread hops) and prints invokes/s plus the runtime process's
own CPU time per invoke (user + system, from /proc), the figure that matters
when the box is CPU-bound; then the median time from spawning a runtime to
its first ``GET .../next`` (Init of a trivial function). For awslambdaric, put
it on ``PYTHONPATH``.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from runtime_harness import (
    NODE,
    NODE_BOOTSTRAP,
    PYTHON_BOOTSTRAP,
    RuntimeProcess,
    base_env,
    write_tree,
)

HEADERS = {
    "Lambda-Runtime-Deadline-Ms": "9999999999999",
    "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:000000000000:function:fn",
    "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000",
}


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _run(process: RuntimeProcess, n: int) -> float:
    server = process.server
    body = b'{"hello": "world"}'
    start = time.perf_counter()
    for i in range(n):
        rid = f"00000000-0000-0000-0000-{i:012d}"
        await server.invoke_async(
            body, {"Lambda-Runtime-Aws-Request-Id": rid, **HEADERS}, rid, None
        )
    return time.perf_counter() - start


def _cold_start(argv: list[str], task: Path, env: dict[str, str], runs: int = 15) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        process = RuntimeProcess(argv, task, env)
        try:
            while not process.server.state.requests:
                time.sleep(0.0005)
            times.append(time.perf_counter() - start)
        finally:
            process.stop()
    return statistics.median(times)


def main() -> None:
    kind = sys.argv[1] if len(sys.argv) > 1 else "python"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
    task = Path(tempfile.mkdtemp())
    if kind == "node":
        write_tree(task, {"index.mjs": "export const handler = async (e) => ({ ok: e });\n"})
        argv, handler = [NODE, str(NODE_BOOTSTRAP)], "index.handler"
    else:
        write_tree(task, {"app.py": "def handler(event, context):\n    return {'ok': event}\n"})
        handler = "app.handler"
        if kind == "awslambdaric":  # needs it importable: PYTHONPATH=<dir with awslambdaric>
            argv = [sys.executable, "-m", "awslambdaric", handler]
        else:
            argv = [sys.executable, "-S", str(PYTHON_BOOTSTRAP)]
    pythonpath = os.pathsep.join(filter(None, [str(task), os.environ.get("PYTHONPATH")]))
    env = base_env(handler, task, PYTHONPATH=pythonpath)
    process = RuntimeProcess(argv, task, env)
    process.server.record = False
    try:
        process.server.call(_run(process, 200), 60)  # warm up
        cpu0 = _cpu_seconds(process.proc.pid)
        elapsed = process.server.call(_run(process, n), 600)
        cpu = _cpu_seconds(process.proc.pid) - cpu0
    finally:
        process.stop()
    print(
        f"{kind}: {n} invokes in {elapsed:.2f} s = {n / elapsed:,.0f}/s, "
        f"{elapsed / n * 1e6:.0f} us/invoke wall, runtime CPU {cpu / n * 1e6:.0f} us/invoke"
    )
    cold = _cold_start(argv, task, env)
    print(f"{kind}: spawn to first /next, median of 15: {cold * 1000:.1f} ms")


if __name__ == "__main__":
    asyncio.set_event_loop_policy(None)
    main()
