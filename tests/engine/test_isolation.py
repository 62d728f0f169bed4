"""Each environment is isolated as a Lambda execution environment is: checked from inside a
function, through the real server."""

from __future__ import annotations

from typing import Any

import pytest
from support import create, function_zip, invoke

PROBE = function_zip("probe")


@pytest.fixture(scope="module")
def probe(lam: Any) -> str:
    return create(lam, PROBE, Timeout=20)


def test_code_is_read_only_at_var_task(lam: Any, probe: str) -> None:
    _, body = invoke(lam, probe, {"action": "write_file", "path": "/var/task/app.py"})
    assert body["ok"] is False
    assert "Read-only file system" in body["error"] or "Permission denied" in body["error"]
    _, body = invoke(lam, probe, {"action": "read_path", "path": "/var/task"})
    assert "app.py" in body["entries"]


def test_runs_as_an_unprivileged_user(lam: Any, probe: str) -> None:
    _, body = invoke(lam, probe, {"action": "describe"})
    assert body["uid"] != 0


def test_data_dir_and_root_credentials_are_invisible(lam: Any, server: Any, probe: str) -> None:
    for path in (str(server.data_dir), str(server.data_dir / "credentials.json"),
                 str(server.data_dir / "lamina.db")):
        _, body = invoke(lam, probe, {"action": "read_path", "path": path})
        assert body["ok"] is False, path


def test_other_functions_code_is_invisible(lam: Any, server: Any, probe: str) -> None:
    other = create(lam, function_zip("hello"))
    invoke(lam, other)
    code_root = server.data_dir / "code"
    _, body = invoke(lam, probe, {"action": "read_path", "path": str(code_root)})
    assert body["ok"] is False


def test_tmp_is_private_to_each_environment(lam: Any) -> None:
    first = create(lam, PROBE)
    second = create(lam, PROBE)
    invoke(lam, first, {"action": "write_file", "path": "/tmp/secret-of-first",
                        "content": "s3cr3t"})
    _, body = invoke(lam, second, {"action": "read_path", "path": "/tmp/secret-of-first"})
    assert body["ok"] is False
    _, body = invoke(lam, first, {"action": "read_path", "path": "/tmp/secret-of-first"})
    assert body["ok"] is True


def test_own_pid_namespace(lam: Any, probe: str) -> None:
    _, body = invoke(lam, probe, {"action": "processes"})
    assert body["pid"] == 1
    assert len(body["pids"]) < 10


def test_pids_limit_stops_a_fork_bomb(lam: Any) -> None:
    # Enough memory that the bomb meets the pids limit before the memory limit.
    probe = create(lam, PROBE, Timeout=20, MemorySize=2048)
    response, body = invoke(lam, probe, {"action": "fork_bomb", "count": 5000})
    assert "FunctionError" not in response, body
    assert body["failed"] == 1
    assert body["forked"] < 5000
    assert invoke(lam, probe, {"action": "echo"})[0]["StatusCode"] == 200


def test_tmp_is_limited_to_ephemeral_storage(lam: Any) -> None:
    name = create(lam, PROBE, MemorySize=1024, Timeout=30, EphemeralStorage={"Size": 512})
    response, body = invoke(lam, name, {"action": "fill_tmp", "mb": 600})
    assert "FunctionError" not in response, body
    assert body["ok"] is False
    assert body["written_mb"] <= 512
