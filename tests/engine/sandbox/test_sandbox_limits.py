"""Limits that hold from the first instruction: memory (OOM), pids, reported peak memory."""

from __future__ import annotations

import errno
import json
import signal
from pathlib import Path
from typing import Any

from conftest import Runner

from lamina.engine.sandbox.api import ExecEntry


def test_allocation_over_the_limit_is_oom_killed(runner: Runner, ns: Any) -> None:
    spec = runner.spec(memory_mb=128, environ={"TEST_ACTION": "alloc", "TEST_MB": "200"})
    status, output, _ = runner.run(runner.execute(ns, spec))
    assert status.signal == signal.SIGKILL and status.oom_killed, (status, output)
    assert "allocated" not in output
    assert status.describe() == "signal: killed"


def test_oom_flag_is_per_environment(runner: Runner, ns: Any) -> None:
    runner.run(runner.execute(ns, runner.spec(
        memory_mb=128, environ={"TEST_ACTION": "alloc", "TEST_MB": "200"})))
    for _ in range(3):  # whichever slot the next ones get, none inherits the OOM kill
        status, _, _ = runner.run(runner.execute(ns, runner.spec()))
        assert status.code == 0 and not status.oom_killed


def test_max_memory_used_after_an_allocation(runner: Runner, ns: Any) -> None:
    spec = runner.spec(memory_mb=256, environ={"TEST_ACTION": "alloc", "TEST_MB": "50"})
    status, output, process = runner.run(runner.execute(ns, spec))
    assert status.code == 0 and not status.oom_killed, output
    assert 50 <= process.max_memory_used_mb() < 256


def test_max_memory_used_while_running(runner: Runner, ns: Any) -> None:
    async def scenario() -> int:
        process = await ns.spawn(runner.spec(entry=ExecEntry(("/bin/sleep", "30"))))
        try:
            return process.max_memory_used_mb()
        finally:
            process.kill()
            await process.wait()

    assert runner.run(scenario()) > 0


def test_fork_bomb_stops_at_pids_max(runner: Runner, ns: Any) -> None:
    spec = runner.spec(pids_max=16, environ={"TEST_ACTION": "fork"})
    status, output, _ = runner.run(runner.execute(ns, spec))
    assert status.code == 0, output
    result = json.loads(output)
    assert result["errno"] == errno.EAGAIN
    assert result["children"] == 15 and result["procs"] == 16  # pid 1 counts too
    status, output = sh_status(runner, ns, "i=0; while [ $i -lt 100 ]; do sleep 30 & "
                               "i=$((i+1)); done", pids_max=16)
    assert "Cannot fork" in output


def sh_status(runner: Runner, launcher: Any, script: str, **kwargs: Any) -> tuple[Any, str]:
    spec = runner.spec(entry=ExecEntry(("/bin/sh", "-c", script)), **kwargs)
    status, output, _ = runner.run(runner.execute(launcher, spec))
    return status, output


def test_cgroup_limits_are_written(runner: Runner, ns: Any) -> None:
    async def scenario() -> dict[str, str]:
        process = await ns.spawn(runner.spec(memory_mb=512, pids_max=77,
                                             entry=ExecEntry(("/bin/sleep", "30"))))
        try:
            with open(f"/proc/{process.pid}/cgroup") as f:
                groups = dict(line.strip().split(":", 2)[1:] for line in f)
            values = {}
            for controller, name in (("memory", "memory.limit_in_bytes"),
                                     ("pids", "pids.max"), ("cpu", "cpu.shares")):
                if controller in groups:
                    path = Path("/sys/fs/cgroup", controller, groups[controller].lstrip("/"))
                    values[name] = (path / name).read_text().strip()
            return values
        finally:
            process.kill()
            await process.wait()

    values = runner.run(scenario())
    if "memory.limit_in_bytes" not in values:
        return  # cgroup v2 host: covered by the same code path, other file names
    assert values["memory.limit_in_bytes"] == str(512 * 1024 * 1024)
    assert values["pids.max"] == "77"
    assert values.get("cpu.shares", "296") == str(round(1024 * 512 / 1769))
