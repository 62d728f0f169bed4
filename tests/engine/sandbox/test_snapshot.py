"""SnapStart snapshots at the sandbox level: one Init, many forked environments, each sandboxed.

The snapshot imports ``app`` (below) once through the stand-in entry's ``preload``; each
environment forked from it runs the after-restore hooks and reports what it sees
(``TEST_ACTION=restored`` in ``sandbox_probe_entry``).
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import Layout, Runner

from lamina.engine.sandbox.api import SnapshotFailed, SpawnFailed
from lamina.engine.sandbox.launcher import NamespaceLauncher, UnsandboxedLauncher
from lamina.engine.sandbox.userns import FUNCTION_UID

HOOKS = Path(__file__).resolve().parents[3] / "lamina" / "runtimes" / "python" \
    / "snapshot_restore_py.py"
APP = """
import ctypes, os, random
import snapshot_restore_py

libc = ctypes.CDLL(None, use_errno=True)
STATE = {"init_pid": os.getpid(), "init_uid": os.getuid(), "init_random": random.random(),
         "before": 0, "after": [], "mark": os.environ.get("INIT_MARK"),
         # The snapshot's own seccomp filter: no nested user namespace for its user code.
         "userns": 0 if libc.unshare(0x10000000) == 0 else ctypes.get_errno()}
with open("/tmp/written-by-init", "w") as f:
    f.write("init")


@snapshot_restore_py.register_before_snapshot
def before():
    STATE["before"] += 1


@snapshot_restore_py.register_after_restore
def after():
    STATE["after"].append(random.random())
"""


def code(layout: Layout, name: str, source: str) -> Path:
    directory = layout.code_root / name
    if not directory.exists():
        directory.mkdir()
        (directory / "app.py").write_text(source)
    if not (layout.runtime_dir / HOOKS.name).exists():
        shutil.copy(HOOKS, layout.runtime_dir / HOOKS.name)
    return directory


@pytest.fixture(scope="module")
def snap_code(layout: Layout) -> Path:
    return code(layout, "fn-snap", APP)


def environ(**extra: str) -> dict[str, str]:
    return {"_HANDLER": "app.handler", "TEST_ACTION": "restored", "INIT_MARK": "m1", **extra}


@pytest.fixture(scope="module")
def snapshot(runner: Runner, ns: NamespaceLauncher, snap_code: Path) -> Any:
    snap = runner.run(ns.snapshot(runner.spec(code_dir=snap_code, environ=environ()), 10))
    yield snap
    runner.run(snap.close())


def restored(runner: Runner, snap: Any, **kwargs: Any) -> dict[str, Any]:
    status, output, _ = runner.run(runner.execute(snap, runner.spec(**kwargs)))
    assert status.code == 0, output
    return json.loads(output)


def test_init_runs_once_and_each_environment_is_its_own(runner: Runner, snapshot: Any,
                                                        snap_code: Path) -> None:
    first = restored(runner, snapshot, code_dir=snap_code, environ=environ(INIT_MARK="env1"))
    second = restored(runner, snapshot, code_dir=snap_code, environ=environ(INIT_MARK="env2"))
    assert first["init"]["init_pid"] == second["init"]["init_pid"]  # one Init for both
    assert first["init"]["init_random"] == second["init"]["init_random"]
    assert first["init"]["before"] == second["init"]["before"] == 1
    assert first["init"]["mark"] == "m1"  # the Init saw the snapshot's environment...
    assert first["environ"]["INIT_MARK"] == "env1"  # ...each environment its own
    assert second["environ"]["INIT_MARK"] == "env2"
    assert len(first["init"]["after"]) == len(second["init"]["after"]) == 1
    assert first["init"]["after"] != second["init"]["after"]  # re-seeded in each child
    assert first["random"] != second["random"]


def test_environments_are_sandboxed(runner: Runner, snapshot: Any, snap_code: Path,
                                    layout: Layout) -> None:
    info = restored(runner, snapshot, code_dir=snap_code, environ=environ())
    assert info["init"]["init_uid"] == 0  # namespace root while Init ran (host uid U)
    assert info["init"]["userns"] == errno.EPERM
    assert info["unshare"] == errno.EPERM  # the environments' full filter on top
    assert info["uid"] == FUNCTION_UID
    assert info["pid"] == 1 and info["proc"] == [1]
    assert info["tmp"] == []  # its own /tmp: not the snapshot's
    assert info["no_new_privs"] == "1" and int(info["cap_eff"], 16) == 0
    assert info["seccomp"] == "2"
    assert info["fds"] == [0, 1, 2, 3]
    assert info["cwd"] == "/var/task"
    assert info["hidden"] in ([], "Permission denied")
    assert not [m for m in info["mounts"] if m.startswith("/.lamina")]  # no code root left
    assert str(layout.data) not in json.dumps(info)
    assert "/lamina/" in info["cgroup"] and "/s" in info["cgroup"]


def test_host_sees_unprivileged_ids(runner: Runner, snapshot: Any, snap_code: Path) -> None:
    async def look() -> tuple[int, str]:
        read_fd, write_fd = os.pipe()
        spec = runner.spec(code_dir=snap_code, environ=environ(TEST_ACTION="sleep"),
                           output_fd=write_fd)
        try:
            process = await snapshot.spawn(spec)
        finally:
            os.close(write_fd)
        try:
            status = Path(f"/proc/{process.pid}/status").read_text()
            uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
            return int(uid_line.split()[1]), Path(f"/proc/{snapshot.pid}/status").read_text()
        finally:
            process.kill()
            await process.wait()
            os.close(read_fd)

    host_uid, snapshot_status = runner.run(look())
    assert host_uid >= 100_000_000  # the function's uid maps to U + 1 of the snapshot's block
    snapshot_uid = int(next(line for line in snapshot_status.splitlines()
                            if line.startswith("Uid:")).split()[1])
    assert snapshot_uid == host_uid - 1


def test_memory_limit_holds_in_a_forked_environment(runner: Runner, snapshot: Any,
                                                    snap_code: Path) -> None:
    spec = runner.spec(code_dir=snap_code, environ=environ(TEST_ACTION="alloc", TEST_MB="200"),
                       memory_mb=128)
    status, output, _ = runner.run(runner.execute(snapshot, spec))
    assert status.signal == 9 and status.oom_killed, (status, output)


def test_init_failure_is_reported(runner: Runner, ns: NamespaceLauncher,
                                  layout: Layout) -> None:
    broken = code(layout, "fn-snap-broken", "raise ValueError('init went wrong')\n")
    with pytest.raises(SnapshotFailed) as failure:
        runner.run(ns.snapshot(runner.spec(code_dir=broken, environ=environ()), 10))
    assert failure.value.error_type == "ValueError"
    assert "init went wrong" in failure.value.message
    assert json.loads(failure.value.payload or b"{}")["errorType"] == "ValueError"


def test_before_snapshot_hook_failure_fails_the_snapshot(runner: Runner, ns: NamespaceLauncher,
                                                        layout: Layout) -> None:
    source = ("import snapshot_restore_py\n"
              "snapshot_restore_py.register_before_snapshot(lambda: 1 / 0)\n")
    broken = code(layout, "fn-snap-hook", source)
    with pytest.raises(SnapshotFailed) as failure:
        runner.run(ns.snapshot(runner.spec(code_dir=broken, environ=environ()), 10))
    assert failure.value.error_type == "Runtime.BeforeSnapshotError"


def test_init_overrun_times_out(runner: Runner, ns: NamespaceLauncher, layout: Layout) -> None:
    slow = code(layout, "fn-snap-slow", "import time\ntime.sleep(30)\n")
    with pytest.raises(SnapshotFailed) as failure:
        runner.run(ns.snapshot(runner.spec(code_dir=slow, environ=environ()), 0.5))
    assert failure.value.timed_out


def test_dead_snapshot_says_so_and_takes_its_environments(runner: Runner,
                                                          ns: NamespaceLauncher,
                                                          snap_code: Path) -> None:
    async def scenario() -> None:
        snap = await ns.snapshot(runner.spec(code_dir=snap_code, environ=environ()), 10)
        read_fd, write_fd = os.pipe()
        try:
            env = await snap.spawn(runner.spec(code_dir=snap_code, output_fd=write_fd,
                                               environ=environ(TEST_ACTION="sleep")))
        finally:
            os.close(write_fd)
        os.kill(snap.pid, 9)
        status = await asyncio.wait_for(env.wait(), 10)
        assert status.signal == 9
        for _ in range(200):
            if not snap.alive:
                break
            await asyncio.sleep(0.01)
        assert not snap.alive
        with pytest.raises(SpawnFailed):
            await snap.spawn(runner.spec(code_dir=snap_code, environ=environ()))
        await snap.close()
        os.close(read_fd)

    runner.run(scenario())


def test_unsandboxed_snapshot_is_a_plain_fork_server(runner: Runner, layout: Layout,
                                                     snap_code: Path) -> None:
    launcher = runner.launcher(UnsandboxedLauncher)
    snap = runner.run(launcher.snapshot(runner.spec(code_dir=snap_code, environ=environ()), 10))
    try:
        first = restored(runner, snap, code_dir=snap_code, environ=environ())
        second = restored(runner, snap, code_dir=snap_code, environ=environ())
        assert first["init"]["init_pid"] == second["init"]["init_pid"]
        assert first["pid"] != second["pid"]
        assert first["random"] != second["random"]
    finally:
        runner.run(snap.close())
