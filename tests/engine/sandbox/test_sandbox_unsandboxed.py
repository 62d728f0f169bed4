"""``UnsandboxedLauncher``: the same template and fork path, without isolation."""

from __future__ import annotations

import asyncio
import json
import signal
from typing import Any

from conftest import BASE_ENV, Layout, Runner
from test_sandbox_lifecycle import alive, children_of, wait_until

from lamina.engine.sandbox.api import ExecEntry


def test_python_entry_runs_in_the_code_dir(runner: Runner, unsandboxed: Any,
                                           layout: Layout) -> None:
    environ = {"LAMBDA_TASK_ROOT": "/var/task", "X": "1"}
    status, output, _ = runner.run(runner.execute(unsandboxed, runner.spec(environ=environ)))
    assert status.code == 0, output
    info = json.loads(output)
    assert info["cwd"] == str(layout.fn_a)
    assert info["environ"] == dict(BASE_ENV, **environ)
    assert info["path"][0] == str(layout.fn_a)
    assert str(layout.runtime_dir) in info["path"]
    assert info["fds"] == [0, 1, 2, 3]
    assert info["lamina_modules"] == []


def test_exec_entry_maps_var_task_to_the_code_dir(runner: Runner, unsandboxed: Any,
                                                  layout: Layout) -> None:
    spec = runner.spec(entry=ExecEntry(("/bin/sh", "-c", "cat hello.txt; pwd")))
    status, output, _ = runner.run(runner.execute(unsandboxed, spec))
    assert status.code == 0
    assert output.splitlines() == ["hello from a", str(layout.fn_a)]
    status, _, _ = runner.run(runner.execute(unsandboxed, runner.spec(
        entry=ExecEntry(("/nonexistent",)))))
    assert status.code == 127


def test_kill_takes_the_process_group(runner: Runner, unsandboxed: Any) -> None:
    async def scenario() -> tuple[Any, list[int]]:
        process = await unsandboxed.spawn(runner.spec(
            entry=ExecEntry(("/bin/sh", "-c", "sleep 60 & sleep 60 & echo; sleep 60"))))
        await asyncio.sleep(0.2)
        group = children_of(process.pid)
        process.kill()
        return await process.wait(), group

    status, group = runner.run(scenario())
    assert status.signal == signal.SIGKILL
    assert len(group) == 3  # two background sleeps and the foreground one
    assert wait_until(lambda: not any(alive(pid) for pid in group))
