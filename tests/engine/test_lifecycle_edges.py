"""The edges of an environment's life: Init overruns, runtimes that misbehave, idle shutdown,
the account-wide concurrency limit."""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from support import LaminaProcess, create, function_zip, invoke

from lamina.cli import client
from lamina.settings import load

BAD_RUNTIME = function_zip("bad_runtime")


def stats(server: LaminaProcess) -> dict[str, Any]:
    return client.signed_get(load({"data_dir": str(server.data_dir)}), "/_lamina/stats")


def test_init_longer_than_10_seconds_fails_the_invoke(lam: Any) -> None:
    name = create(lam, function_zip("slow_init"), Timeout=30)
    started = time.monotonic()
    response, body = invoke(lam, name)
    elapsed = time.monotonic() - started
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Sandbox.Timedout"
    assert 9 < elapsed < 14


def test_runtime_that_exits_at_once_is_an_init_exit_error(lam: Any) -> None:
    name = create(lam, BAD_RUNTIME, runtime="provided.al2023", handler="x",
                  Environment={"Variables": {"MODE": "exit"}})
    response, body = invoke(lam, name)
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.ExitError"
    assert "exit status 7" in body["errorMessage"]


def test_response_for_a_wrong_request_id_is_refused(lam: Any) -> None:
    name = create(lam, BAD_RUNTIME, runtime="provided.al2023", handler="x",
                  Environment={"Variables": {"MODE": "wrong-id"}})
    response, body = invoke(lam, name)
    assert "FunctionError" not in response
    assert body == {"wrong_id_status": 400}


def test_garbage_error_body_becomes_a_clear_error(lam: Any) -> None:
    name = create(lam, BAD_RUNTIME, runtime="provided.al2023", handler="x",
                  Environment={"Variables": {"MODE": "garbage"}})
    response, body = invoke(lam, name)
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.Unknown"
    assert body["errorMessage"] == "this is not json"
    assert invoke(lam, name)[0]["FunctionError"] == "Unhandled"  # the environment goes on


def test_idle_environments_are_shut_down_after_the_idle_timeout(tmp_path: Path) -> None:
    server = LaminaProcess(tmp_path / "data", extra_env={"LAMINA_IDLE_TIMEOUT": "1"}).start()
    try:
        lam = server.client()
        name = create(lam, function_zip("probe"))
        first = invoke(lam, name, {"action": "echo"})[1]
        assert stats(server)["environments"] == 1
        deadline = time.monotonic() + 10
        while stats(server)["environments"] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert stats(server)["environments"] == 0
        second = invoke(lam, name, {"action": "echo"})[1]
        assert second["stream"] != first["stream"] and second["invocations"] == 1
    finally:
        server.stop()


def test_account_concurrency_limit_throttles_with_its_reason(tmp_path: Path) -> None:
    server = LaminaProcess(tmp_path / "data", extra_env={
        "LAMINA_ACCOUNT_CONCURRENCY": "2", "LAMINA_MIN_UNRESERVED_CONCURRENCY": "1",
        "LAMINA_QUEUE_WAIT_MS": "0"}).start()
    try:
        lam = server.client()
        name = create(lam, function_zip("probe"), Timeout=10)
        assert lam.get_account_settings()["AccountLimit"]["ConcurrentExecutions"] == 2

        def call(_: int) -> str:
            try:
                invoke(lam, name, {"action": "sleep", "seconds": 1.5})
                return "ok"
            except lam.exceptions.TooManyRequestsException as exc:
                return exc.response["Reason"]

        with ThreadPoolExecutor(3) as pool:
            outcomes = sorted(pool.map(call, range(3)))
        assert outcomes == ["ConcurrentInvocationLimitExceeded", "ok", "ok"]
    finally:
        server.stop()


def test_refuses_to_start_where_it_cannot_sandbox() -> None:
    """Run as an unprivileged user, the server must refuse to start and say why."""
    import os
    import shutil
    import subprocess
    import sysconfig
    import tempfile

    # The venv's interpreter lies under root's private home; Debian's is world-readable and
    # runs the same cp311 wheels (HOST.md).
    if shutil.which("setpriv") is None or not os.path.exists("/usr/bin/python3.11"):
        pytest.skip("needs setpriv and Debian's python3.11")
    # pytest's own tmp dirs are private to root: the unprivileged server needs one it can reach.
    scratch = Path(tempfile.mkdtemp(prefix="lamina-unprivileged-"))
    os.chmod(scratch, 0o755)
    data = scratch / "data"
    data.mkdir()
    os.chown(data, 65534, 65534)
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3.11",
         "-m", "lamina", "serve", "--port", "0", "--data-dir", str(data)],
        env={"PYTHONPATH": f"{repo}:{sysconfig.get_paths()['purelib']}", "PATH": "/usr/bin"},
        capture_output=True, text=True, timeout=60, check=False, cwd=scratch)
    shutil.rmtree(scratch, ignore_errors=True)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "cannot sandbox functions on this host" in done.stderr
    assert "--insecure-no-sandbox" in done.stderr


def test_stats_count_environments(server: LaminaProcess, lam: Any) -> None:
    name = create(lam, function_zip("hello"))
    invoke(lam, name)
    document = stats(server)
    assert document["environments"] >= 1
    assert json.dumps(document)


def test_stats_report_the_spares_made_ahead(server: LaminaProcess) -> None:
    """The default pool: 40 per core, at most what a fortieth of memory holds, 2 to 256; all
    parked in time."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    cores = len(os.sched_getaffinity(0))
    expected = max(2, min(256, 40 * cores, int(memory * 0.025 / (2.5 * 2**20))))
    deadline = time.monotonic() + 60
    while (current := stats(server))["spares_parked"] < expected:
        assert time.monotonic() < deadline, current
        time.sleep(0.2)
    assert current["spares_target"] == expected
