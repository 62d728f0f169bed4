"""Spawning, ending, killing, closing; the template's death; exec failures; many at once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import BASE_ENV, Layout, Runner

from lamina.engine.sandbox import cgroups
from lamina.engine.sandbox.api import (
    ExecEntry,
    ExitStatus,
    PythonEntry,
    SandboxSpec,
    SpawnFailed,
)
from lamina.engine.sandbox.child import SPARE_NAME
from lamina.engine.sandbox.launcher import NamespaceLauncher


def alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting for the host's init)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except OSError:
                pass
    return found


def in_instance(instance_id: str, spares: bool = False) -> list[int]:
    """Host pids whose cgroup path names this launcher instance (parked spares, which wait in
    the slot they will use, only with ``spares``)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cgroup") as f:
                    if instance_id not in f.read():
                        continue
                with open(f"/proc/{entry}/comm") as f:
                    if spares or f.read().strip() != SPARE_NAME:
                        found.append(int(entry))
            except OSError:
                pass
    return found


def wait_until(predicate: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


SPAWN_TREE = ("sleep 60 & sleep 60 & (setsid sleep 60 &) ; echo started; sleep 60")


def test_kill_ends_the_whole_environment(runner: Runner, ns: Any) -> None:
    async def scenario() -> tuple[ExitStatus, list[int]]:
        process = await ns.spawn(runner.spec(entry=ExecEntry(("/bin/sh", "-c", SPAWN_TREE))))
        await asyncio.sleep(0.2)
        members = in_instance(ns._cgroups.instance_id)
        process.kill()
        process.kill()  # idempotent
        status = await process.wait()
        process.kill()  # harmless after the end
        assert await process.wait() == status  # resolves once, the same for every waiter
        return status, members

    status, members = runner.run(scenario())
    assert status.signal == signal.SIGKILL
    assert len(members) >= 4
    assert wait_until(lambda: not any(alive(pid) for pid in members))


def test_exec_failures_are_exit_statuses(runner: Runner, ns: Any, layout: Layout) -> None:
    cases = [(("/var/task/missing",), 127), (("/var/task/notexec.sh",), 126),
             (("/var/task/noformat",), 126), (("/var/task",), 126),
             (("no-such-program-anywhere",), 127)]
    for argv, code in cases:
        status, output, _ = runner.run(runner.execute(ns, runner.spec(entry=ExecEntry(argv))))
        assert status.code == code, (argv, status, output)
        assert "lamina: cannot execute" in output
    status, output, _ = runner.run(runner.execute(ns, runner.spec(
        entry=ExecEntry(("/bin/true",), cwd="/var/task/missing"))))
    assert status.code == 126 and "cannot enter" in output


def test_a_missing_bootstrap_is_an_exit_status(runner: Runner, layout: Layout) -> None:
    launcher = NamespaceLauncher(layout.code_root, layout.runtime_dir, "no_such_bootstrap")
    runner.run(launcher.start())
    runner.launchers.append(launcher)
    status, output, _ = runner.run(runner.execute(launcher, runner.spec()))
    assert status.code == 1 and "No module named 'no_such_bootstrap'" in output


def test_python_entry_errors_are_exit_statuses(runner: Runner, ns: Any) -> None:
    status, output, _ = runner.run(runner.execute(ns, runner.spec(
        environ={"TEST_ACTION": "raise"})))
    assert status.code == 1 and "RuntimeError: boom from the probe" in output
    status, _, _ = runner.run(runner.execute(ns, runner.spec(
        environ={"TEST_ACTION": "exit", "TEST_CODE": "7"})))
    assert status.code == 7


def test_platform_faults_raise_spawn_failed(runner: Runner, ns: Any, layout: Layout,
                                            tmp_path: Path) -> None:
    with pytest.raises(SpawnFailed, match="outside the code root"):
        runner.run(ns.spawn(runner.spec(code_dir=tmp_path)))
    with pytest.raises(SpawnFailed, match="mounts"):
        runner.run(ns.spawn(runner.spec(code_dir=layout.code_root / "not-unpacked")))
    status, _, _ = runner.run(runner.execute(ns, runner.spec()))  # and it carries on
    assert status.code == 0


def test_many_concurrent_spawns(runner: Runner, ns: Any) -> None:
    async def scenario() -> list[ExitStatus]:
        return list(await asyncio.gather(*(runner.execute(ns, runner.spec())
                                           for _ in range(24))))

    results = runner.run(scenario())
    assert all(status.code == 0 for status, _, _ in results)
    assert len({process.pid for _, _, process in results}) == 24
    assert all(json.loads(output)["pid"] == 1 for _, output, _ in results)


def test_two_hundred_environments_alive_at_once(runner: Runner, ns: Any) -> None:
    async def scenario() -> tuple[int, list[ExitStatus]]:
        processes = []
        for _ in range(200):
            processes.append(await ns.spawn(runner.spec(entry=ExecEntry(("/bin/sleep", "60")))))
        running = sum(alive(p.pid) for p in processes)
        for process in processes:
            process.kill()
        return running, list(await asyncio.gather(*(p.wait() for p in processes)))

    running, statuses = runner.run(scenario(), timeout=60)
    assert running == 200
    assert all(s.signal == signal.SIGKILL for s in statuses)


def test_close_leaves_no_process_behind(runner: Runner) -> None:
    launcher = runner.launcher(NamespaceLauncher)
    instance = launcher._cgroups.instance_id
    dirs = list(launcher._cgroups.instance_dirs().values())

    async def scenario() -> tuple[int, list[int]]:
        for _ in range(3):
            await launcher.spawn(runner.spec(entry=ExecEntry(("/bin/sh", "-c", SPAWN_TREE))))
        await asyncio.sleep(0.3)
        template = launcher.template_pid
        members = in_instance(instance, spares=True) + children_of(template)
        await launcher.close()
        return template, members

    template, members = runner.run(scenario())
    assert len(members) >= 12
    assert not alive(template)
    assert wait_until(lambda: not any(alive(pid) for pid in members), 2)
    assert in_instance(instance, spares=True) == []
    assert not any(d.exists() for d in dirs)


def test_template_death_fails_spawns_at_once_then_recovers(runner: Runner) -> None:
    launcher = runner.launcher(NamespaceLauncher, spares=0)  # every spawn asks the template

    async def scenario() -> tuple[float, ExitStatus, int]:
        survivor = await launcher.spawn(runner.spec(entry=ExecEntry(("/bin/sleep", "60"))))
        template = launcher.template_pid
        os.kill(template, signal.SIGSTOP)  # the next spawn stays in flight...
        in_flight = asyncio.ensure_future(launcher.spawn(runner.spec()))
        await asyncio.sleep(0.2)
        assert not in_flight.done()
        started = time.monotonic()
        os.kill(template, signal.SIGKILL)  # ...until the template dies
        with pytest.raises(SpawnFailed):
            await in_flight
        failed_after = time.monotonic() - started
        status = await survivor.wait()  # its environment went down with the template
        for _ in range(100):  # a new template comes up by itself
            try:
                _, output, _ = await runner.execute(launcher, runner.spec())
                break
            except SpawnFailed:
                await asyncio.sleep(0.05)
        else:
            raise AssertionError("no recovery")
        assert launcher.template_pid != template
        return failed_after, status, json.loads(output)["pid"]

    failed_after, status, pid = runner.run(scenario())
    assert failed_after < 1.0
    assert status.signal == signal.SIGKILL
    assert pid == 1


def test_stale_instances_are_removed_with_their_processes(runner: Runner, layout: Layout) -> None:
    hierarchies = cgroups.detect_hierarchies()
    stale = cgroups.CgroupPool(hierarchies, instance_id="2-0-dead00")  # kthreadd never started at 0
    stale.create()
    slot = stale.acquire()
    leftover = os.fork()
    if leftover == 0:
        try:
            for directory in stale.instance_dirs().values():
                with open(directory / slot.name / "cgroup.procs", "w") as f:
                    f.write("0")
            time.sleep(60)
        finally:
            os._exit(0)
    try:
        assert wait_until(lambda: leftover in slot.procs(), 2)
        launcher = runner.launcher(NamespaceLauncher)
        assert os.waitpid(leftover, 0)[1] == signal.SIGKILL
        assert not any(d.exists() for d in stale.instance_dirs().values())
        runner.run(launcher.close())
    finally:
        if alive(leftover):
            os.kill(leftover, signal.SIGKILL)
            os.waitpid(leftover, 0)


def test_spawn_on_uvloop(layout: Layout) -> None:
    uvloop = pytest.importorskip("uvloop")
    if os.geteuid() != 0:
        pytest.skip("the sandbox needs root")

    async def scenario() -> ExitStatus:
        launcher = NamespaceLauncher(layout.code_root, layout.runtime_dir, "sandbox_probe_entry")
        await launcher.start()
        try:
            read_fd, write_fd = os.pipe()
            process = await launcher.spawn(SandboxSpec(
                env_id="uv", code_dir=layout.fn_a, entry=PythonEntry(), environ=BASE_ENV,
                memory_mb=128, output_fd=write_fd))
            os.close(write_fd)
            status = await process.wait()
            assert json.loads(os.read(read_fd, 65536))["pid"] == 1
            os.close(read_fd)
            return status
        finally:
            await launcher.close()

    assert uvloop.run(scenario()).code == 0


def test_unavailable_reason_names_the_problem(layout: Layout, tmp_path: Path) -> None:
    launcher = NamespaceLauncher(layout.code_root, layout.runtime_dir, interpreter=tmp_path / "py")
    assert "interpreter" in (launcher.unavailable_reason() or "")
    launcher = NamespaceLauncher(layout.code_root, tmp_path / "none")
    assert "runtime directory" in (launcher.unavailable_reason() or "")
    if os.geteuid() == 0:
        assert NamespaceLauncher(layout.code_root, layout.runtime_dir).unavailable_reason() is None


def test_spawn_times_out_and_its_late_child_is_killed(runner: Runner) -> None:
    launcher = runner.launcher(NamespaceLauncher, spawn_timeout=0.5, spares=0)
    instance = launcher._cgroups.instance_id

    async def scenario() -> float:
        os.kill(launcher.template_pid, signal.SIGSTOP)
        started = time.monotonic()
        try:
            with pytest.raises(SpawnFailed, match="no answer"):
                await launcher.spawn(runner.spec(entry=ExecEntry(("/bin/sleep", "60"))))
            took = time.monotonic() - started
        finally:
            os.kill(launcher.template_pid, signal.SIGCONT)
        cancelled = asyncio.ensure_future(launcher.spawn(runner.spec(
            entry=ExecEntry(("/bin/sleep", "60")))))
        await asyncio.sleep(0)
        cancelled.cancel()  # a caller that gives up leaves nothing running either
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        await asyncio.sleep(0.5)
        status, _, _ = await runner.execute(launcher, runner.spec())
        assert status.code == 0
        return took

    took = runner.run(scenario())
    assert 0.4 < took < 2
    assert wait_until(lambda: in_instance(instance) == [], 3)


# Environments must die with a SIGKILLed server: the template through its PDEATHSIG, and each
# environment through its own (which a uid change clears: it has to be armed again after it).
SERVER = """
import asyncio, json, sys
from pathlib import Path
from lamina.engine.sandbox.api import ExecEntry, SandboxSpec
from lamina.engine.sandbox.launcher import NamespaceLauncher

async def main():
    code_root, runtime_dir, fn = map(Path, sys.argv[1:4])
    launcher = NamespaceLauncher(code_root, runtime_dir, "sandbox_probe_entry")
    await launcher.start()
    entry = ExecEntry(("/bin/sh", "-c", "sleep 60 & sleep 60"))
    env = await launcher.spawn(SandboxSpec(env_id="x", code_dir=fn, memory_mb=128, environ={},
                                           entry=entry))
    dirs = [str(d) for d in launcher._cgroups.instance_dirs().values()]
    print(json.dumps({"template": launcher.template_pid, "env": env.pid, "dirs": dirs}), flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


def test_sigkill_of_the_server_takes_everything_down(layout: Layout) -> None:
    import subprocess
    import sys

    if os.geteuid() != 0:
        pytest.skip("the sandbox needs root")
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(layout.code_root), str(layout.runtime_dir),
         str(layout.fn_a)], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        started = json.loads(server.stdout.readline())
        time.sleep(0.2)
        members = in_instance(Path(started["dirs"][0]).name, spares=True)
        assert started["env"] in members and len(members) >= 3
        processes = [started["template"], *members, *children_of(started["template"])]
        server.kill()
        server.wait()
        assert wait_until(lambda: not any(alive(pid) for pid in processes), 3)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        cgroups.remove_tree([Path(d) for d in started["dirs"]])
