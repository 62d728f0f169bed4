"""Spares: children forked ahead of demand that set up what does not depend on the function
and then become the environment of the next spawn. They must not weaken anything."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from typing import Any

from conftest import BASE_ENV, Runner
from test_sandbox_lifecycle import alive, in_instance, wait_until

from lamina.engine.sandbox import cgroups
from lamina.engine.sandbox.api import ExecEntry
from lamina.engine.sandbox.launcher import NamespaceLauncher


def parked(launcher: Any) -> int:
    """How many spares wait with their socket here (the launcher's pool)."""
    return int(launcher._spares.parked())


def spares_of(launcher: Any) -> list[int]:
    instance = launcher._cgroups.instance_id
    return sorted(set(in_instance(instance, spares=True)) - set(in_instance(instance)))


def wait_parked(runner: Runner, launcher: Any, count: int = 1) -> None:
    async def until() -> None:
        for _ in range(500):
            if parked(launcher) >= count:
                return
            await asyncio.sleep(0.01)
        raise AssertionError("no spare was parked")

    runner.run(until())


def test_a_spare_becomes_an_environment_as_isolated_as_any(runner: Runner) -> None:
    launcher = runner.launcher(NamespaceLauncher, spares=1)
    wait_parked(runner, launcher)
    [spare_pid] = spares_of(launcher)
    environ = {"SECRET": "s3cr=t", "AWS_LAMBDA_FUNCTION_NAME": "f"}
    status, output, process = runner.run(runner.execute(
        launcher, runner.spec(environ=environ, memory_mb=192)))
    assert status.code == 0, output
    assert process.pid == spare_pid  # the spare itself became the environment
    info = json.loads(output)
    assert info["pid"] == 1 and info["proc"] == [1]
    assert info["uid"] >= 20000 and info["uid"] == info["euid"] == info["gid"]
    assert info["groups"] == [] and info["no_new_privs"] == "1" and int(info["cap_eff"], 16) == 0
    assert info["environ"] == dict(BASE_ENV, **environ)
    assert info["fds"] == [0, 1, 2, 3]
    assert info["hostname"] == "localhost" and info["cwd"] == "/var/task"
    assert info["lamina_modules"] == []


def test_a_spare_gets_the_functions_limits_and_tmp_size(runner: Runner) -> None:
    launcher = runner.launcher(NamespaceLauncher, spares=1)
    script = "grep -E ' /(tmp|dev/shm) ' /proc/self/mounts; cut -d' ' -f5 /proc/self/mountinfo"
    for ephemeral in (512, 1024):
        wait_parked(runner, launcher)
        [spare_pid] = spares_of(launcher)
        status, output, process = runner.run(runner.execute(launcher, runner.spec(
            entry=ExecEntry(("/bin/sh", "-c", script)), memory_mb=256, ephemeral_mb=ephemeral)))
        assert status.code == 0, output
        assert process.pid == spare_pid
        sizes = [line for line in output.splitlines() if "tmpfs" in line]
        assert len(sizes) == 2 and all(f"size={ephemeral * 1024}k" in s for s in sizes), output
        assert "/var/task" in output and ".lamina" not in output  # other code is out of reach
        slot = process._slot
        limit = (slot._dirs[slot._memory] / "memory.limit_in_bytes").read_text()
        assert int(limit) == 256 << 20


def test_a_dead_spare_is_never_handed_out_and_is_replaced(runner: Runner) -> None:
    launcher = runner.launcher(NamespaceLauncher, spares=1)
    wait_parked(runner, launcher)
    [spare_pid] = spares_of(launcher)
    os.kill(spare_pid, signal.SIGKILL)
    assert wait_until(lambda: not alive(spare_pid), 2)
    status, output, process = runner.run(runner.execute(launcher, runner.spec()))
    assert status.code == 0, output
    assert process.pid != spare_pid
    wait_parked(runner, launcher)  # a new one comes, after a pause
    assert spares_of(launcher) and spare_pid not in spares_of(launcher)


def test_spares_wait_while_spawns_keep_coming(runner: Runner) -> None:
    """A burst is served by forks of the template; spares are made again only after it."""
    launcher = runner.launcher(NamespaceLauncher, spares=2)
    wait_parked(runner, launcher, 2)

    async def burst() -> list[Any]:
        return await asyncio.gather(*(runner.execute(launcher, runner.spec())
                                      for _ in range(6)))

    results = runner.run(burst())
    assert all(status.code == 0 for status, _, _ in results)
    wait_parked(runner, launcher, 2)


def test_spares_work_ahead_at_the_lowest_cpu_weight_and_park_in_their_slot(runner: Runner) -> None:
    """A refill of many spares must not take CPU shares from environments: they prepare in the
    instance's ``spares`` group (lowest weight) and join their own slot only once done."""
    launcher = runner.launcher(NamespaceLauncher, spares=3)
    wait_parked(runner, launcher, 3)
    assert launcher.stats() == {"spares_parked": 3, "spares_target": 3}
    dirs = launcher._cgroups.instance_dirs()
    for hierarchy, directory in dirs.items():
        if "cpu" in hierarchy.controllers:
            weight = "cpu.shares" if hierarchy.version == 1 else "cpu.weight"
            assert (directory / cgroups.SPARES / weight).read_text().strip() in ("2", "1")
    for pid in spares_of(launcher):
        with open(f"/proc/{pid}/cgroup") as f:
            paths = [line.rsplit(":", 1)[1].strip() for line in f
                     if launcher._cgroups.instance_id in line]
        assert paths and all(not path.endswith("/" + cgroups.SPARES) for path in paths), paths
    for directory in dirs.values():  # nobody is left in the spares' group once parked
        procs = directory / cgroups.SPARES / "cgroup.procs"
        assert procs.read_text().split() == []


def test_the_templates_import_rehearsal_leaves_nothing_behind() -> None:
    """``rehearse_imports`` runs in every template before it forks: no module, path entry,
    finder or directory of it may reach a function."""
    import sys
    import tempfile

    from lamina.engine.sandbox.template import rehearse_imports

    before = (set(sys.modules), list(sys.path), set(sys.path_importer_cache),
              set(os.listdir(tempfile.gettempdir())))
    rehearse_imports(3)
    after = (set(sys.modules), list(sys.path), set(sys.path_importer_cache),
             set(os.listdir(tempfile.gettempdir())))
    assert not {m for m in after[0] - before[0] if "rehearsal" in m}
    assert after[1] == before[1]
    assert not {p for p in after[2] - before[2] if "rehearsal" in p}
    assert not {d for d in after[3] - before[3] if "rehearsal" in d}
