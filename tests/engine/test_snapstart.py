"""SnapStart through the real server: a published version's Init runs once, in a snapshot, and
each of its environments is a sandboxed fork of it (``tests/functions/snapstart``)."""

from __future__ import annotations

import base64
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from support import LaminaProcess, create, function_zip, invoke

from lamina.cli import client
from lamina.settings import load

SNAPSTART = {"ApplyOn": "PublishedVersions"}
CODE = function_zip("snapstart")


def snap_function(lam: Any, code: bytes = CODE, **variables: str) -> str:
    config: dict[str, Any] = {"SnapStart": SNAPSTART, "Timeout": 30, "MemorySize": 256}
    if variables:
        config["Environment"] = {"Variables": variables}
    return create(lam, code, **config)


def log_lines(server: Any, name: str, wait_for: str = "", count: int = 1,
              timeout: float = 10.0) -> list[str]:
    """Every line of the function's log group (all streams), once ``wait_for`` shows up
    ``count`` times (log lines reach the store a little after the invoke answers)."""
    settings = load({"data_dir": str(server.data_dir)})
    deadline = time.monotonic() + timeout
    while True:
        events = client.signed_get(settings, f"/_lamina/logs/{name}?start=0")["events"]
        lines = [event["message"] for event in events]
        if sum(wait_for in line for line in lines) >= count or time.monotonic() > deadline:
            return lines


def streams(server: Any, name: str, wait_for: str, count: int) -> dict[str, list[str]]:
    settings = load({"data_dir": str(server.data_dir)})
    deadline = time.monotonic() + 10
    while True:
        events = client.signed_get(settings, f"/_lamina/logs/{name}?start=0")["events"]
        grouped: dict[str, list[str]] = {}
        for event in sorted(events, key=lambda e: e["timestamp"]):
            grouped.setdefault(event["logStreamName"], []).append(event["message"])
        found = sum(wait_for in line for lines in grouped.values() for line in lines)
        if found >= count or time.monotonic() > deadline:
            return grouped


@pytest.fixture(scope="module")
def published(lam: Any) -> tuple[str, str]:
    name = snap_function(lam)
    return name, lam.publish_version(FunctionName=name)["Version"]


def test_environments_are_sandboxed_forks_of_one_init(lam: Any, server: Any,
                                                     published: tuple[str, str]) -> None:
    name, version = published
    events = [{"action": "sleep", "seconds": 0.5, "write": "marker-a"},
              {"action": "sleep", "seconds": 0.5}]
    with ThreadPoolExecutor(2) as pool:  # two at once: two environments
        answers = list(pool.map(lambda e: invoke(lam, name, e, Qualifier=version)[1], events))
    first, second = answers
    assert first["stream"] != second["stream"]
    # One Init for both: the same module state, hooks as AWS runs them.
    assert first["init"]["random"] == second["init"]["random"]
    assert first["init"]["init_type"] == "snap-start"
    assert first["init"]["before"] == second["init"]["before"] == 1
    assert len(first["init"]["after"]) == len(second["init"]["after"]) == 1
    # Each its own randomness, /tmp, pid namespace; an unprivileged uid.
    assert first["init"]["after"] != second["init"]["after"]
    assert first["random"] != second["random"]
    assert first["tmp"] == ["marker-a"] and second["tmp"] == []
    for answer in answers:
        assert answer["pid"] == 1 and answer["pids"] == [1]
        assert answer["uid"] != 0
        assert answer["init_type"] == "snap-start"
    lines = log_lines(server, name, "after-restore hook ran", 2)
    assert sum("snapstart init ran" in line for line in lines) == 1
    assert sum("before-snapshot hook ran" in line for line in lines) == 1
    assert sum("after-restore hook ran" in line for line in lines) == 2


def test_restore_duration_is_reported_instead_of_init_duration(lam: Any, server: Any) -> None:
    name = snap_function(lam)
    version = lam.publish_version(FunctionName=name)["Version"]
    invoke(lam, name, Qualifier=version)
    grouped = streams(server, name, "REPORT RequestId", 1)
    restored = [lines for stream, lines in grouped.items() if "snapshot-" not in stream]
    (lines,) = restored
    assert lines[0].startswith("RESTORE_START Runtime Version: python:3.11")
    assert any(line.startswith("RESTORE_REPORT Restore Duration: ") for line in lines)
    (report,) = [line for line in lines if line.startswith("REPORT")]
    assert "\tRestore Duration: " in report and "\tBilled Restore Duration: " in report
    assert "Init Duration" not in report
    (snapshot,) = [lines for stream, lines in grouped.items() if "snapshot-" in stream]
    assert snapshot[0].startswith("INIT_START")
    assert any(line.startswith("INIT_REPORT") and "Status: success" in line
               for line in snapshot)


def test_optimization_status(lam: Any, published: tuple[str, str]) -> None:
    name, version = published
    assert lam.get_function_configuration(FunctionName=name, Qualifier=version)["SnapStart"] \
        == {"ApplyOn": "PublishedVersions", "OptimizationStatus": "On"}
    assert lam.get_function_configuration(FunctionName=name)["SnapStart"] \
        == {"ApplyOn": "PublishedVersions", "OptimizationStatus": "Off"}


def test_latest_is_unaffected(lam: Any, server: Any, published: tuple[str, str]) -> None:
    name, _ = published
    _, body = invoke(lam, name)
    assert body["init_type"] == "on-demand"
    assert body["init"]["before"] == 0 and body["init"]["after"] == []
    grouped = streams(server, name, "Init Duration", 1)
    latest = [lines for stream, lines in grouped.items() if "[$LATEST]" in stream]
    assert any("Init Duration" in line for lines in latest for line in lines)


def test_data_dir_is_invisible(lam: Any, server: Any, published: tuple[str, str]) -> None:
    name, version = published
    for path in (str(server.data_dir), str(server.data_dir / "code")):
        _, body = invoke(lam, name, {"action": "read_path", "path": path}, Qualifier=version)
        assert body["ok"] is False, path


def test_memory_limit_holds(lam: Any) -> None:
    name = create(lam, CODE, SnapStart=SNAPSTART, MemorySize=128, Timeout=30)
    version = lam.publish_version(FunctionName=name)["Version"]
    response, body = invoke(lam, name, {"action": "alloc", "mb": 300}, Qualifier=version)
    assert response.get("FunctionError") == "Unhandled", body
    assert body["errorType"] in ("Runtime.OutOfMemory", "Runtime.ExitError"), body


def test_init_failure_fails_the_publish(lam: Any) -> None:
    name = snap_function(lam, FAIL_INIT="1")
    with pytest.raises(lam.exceptions.SnapStartException) as failure:
        lam.publish_version(FunctionName=name)
    assert "init failed on purpose" in str(failure.value)
    (version,) = [v for v in lam.list_versions_by_function(FunctionName=name)["Versions"]
                  if v["Version"] != "$LATEST"]
    assert version["State"] == "Failed"
    assert version["StateReasonCode"] == "FunctionError"
    assert "RuntimeError: init failed on purpose" in version["StateReason"]
    assert version["SnapStart"]["OptimizationStatus"] == "Off"
    with pytest.raises(lam.exceptions.ResourceConflictException):
        lam.invoke(FunctionName=name, Qualifier=version["Version"], Payload=b"{}")


def test_init_overrun_fails_the_publish(lam: Any) -> None:
    name = snap_function(lam, SLOW_INIT="12")
    started = time.monotonic()
    with pytest.raises(lam.exceptions.SnapStartTimeoutException):
        lam.publish_version(FunctionName=name)
    assert time.monotonic() - started < 12
    config = lam.get_function_configuration(FunctionName=name, Qualifier="1")
    assert config["State"] == "Failed"
    assert config["StateReasonCode"] == "FunctionError.InitTimeout"


def test_raising_after_restore_hook_fails_the_restore(lam: Any, server: Any) -> None:
    name = snap_function(lam, FAIL_RESTORE="1")
    version = lam.publish_version(FunctionName=name)["Version"]  # its Init is fine
    for _ in range(2):  # the failed environment is not used again
        with pytest.raises(lam.exceptions.SnapStartException) as failure:
            lam.invoke(FunctionName=name, Qualifier=version, Payload=b"{}")
        assert "afterRestore()" in str(failure.value)
    lines = log_lines(server, name, "RESTORE_REPORT", 2)
    assert any("RESTORE_REPORT" in line and "Status: error" in line for line in lines)
    assert any("restore failed on purpose" in line for line in lines)
    assert not any(line.startswith("START RequestId") for line in lines)


def test_dead_snapshot_is_made_again_at_the_next_cold_start(lam: Any, server: Any) -> None:
    # A package of its own (its own code digest), to find its snapshot process from the host.
    name = snap_function(lam, function_zip("snapstart", extra={"mark": os.urandom(8).hex()}))
    version = lam.publish_version(FunctionName=name)["Version"]
    _, before = invoke(lam, name, Qualifier=version)
    sha = lam.get_function_configuration(FunctionName=name)["CodeSha256"]
    assert kill_snapshots_of(base64.b64decode(sha).hex())
    deadline = time.monotonic() + 10
    while True:  # its environment dies with it; a later invoke is a cold start
        time.sleep(0.05)  # an invoke sent before the death is noticed may fail: not this one
        _, after = invoke(lam, name, Qualifier=version)
        if after.get("stream", before["stream"]) != before["stream"] \
                or time.monotonic() > deadline:
            break
    assert after["stream"] != before["stream"], after
    assert after["init"]["random"] != before["init"]["random"]  # a new Init
    lines = log_lines(server, name, "snapstart init ran", 2)
    assert sum("snapstart init ran" in line for line in lines) == 2


def test_other_runtimes_refuse_snapstart(lam: Any) -> None:
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as failure:
        create(lam, function_zip("shell_bootstrap"), runtime="provided.al2023",
               handler="x", SnapStart=SNAPSTART)
    assert "provided.al2023 is not supported for SnapStart enabled functions." \
        in str(failure.value)
    name = create(lam, function_zip("shell_bootstrap"), runtime="provided.al2023", handler="x")
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        lam.update_function_configuration(FunctionName=name, SnapStart=SNAPSTART)


def test_snapshots_are_made_again_after_a_restart(tmp_path: Path) -> None:
    server = LaminaProcess(tmp_path / "data").start()
    try:
        lam = server.client()
        name = snap_function(lam)
        version = lam.publish_version(FunctionName=name)["Version"]
        invoke(lam, name, Qualifier=version)
        server.stop()
        server.start()
        lam = server.client()
        # Made again in the background, before any invoke asks for it.
        lines = log_lines(server, name, "snapstart init ran", 2)
        assert sum("snapstart init ran" in line for line in lines) == 2
        _, body = invoke(lam, name, Qualifier=version)
        assert body["init_type"] == "snap-start"
        lines = log_lines(server, name, "snapstart init ran", 3, timeout=0.5)
        assert sum("snapstart init ran" in line for line in lines) == 2  # no third Init
    finally:
        server.stop()


# helpers ---------------------------------------------------------------------------------------

def kill_snapshots_of(code_hex: str) -> list[int]:
    """SIGKILL the snapshot process whose /var/task is this code (found from the host): the
    one that is pid 1 two pid namespaces down (its environments and spares are a level
    deeper, its reaper a level higher)."""
    killed = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "lamina-snapshot":
                continue
            status = (entry / "status").read_text()
            mounts = (entry / "mountinfo").read_text().splitlines()
        except OSError:
            continue
        nspid = next(line.split()[1:] for line in status.splitlines()
                     if line.startswith("NSpid:"))
        if len(nspid) != 3 or nspid[-1] != "1":
            continue
        if any(line.split()[4] == "/var/task" and code_hex in line.split()[3] for line in mounts):
            os.kill(int(entry.name), signal.SIGKILL)
            killed.append(int(entry.name))
    return killed

