"""Official and foreign runtime clients, unchanged, against lamina's Runtime API: awslambdaric in a
provided.al2023 package, a plain shell + curl bootstrap, and node handlers."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from support import create, function_zip, invoke, zip_directory

AWSLAMBDARIC_BOOTSTRAP = """#!/bin/sh
# The official Python runtime interface client, run as a provided runtime.
export PYTHONPATH="$LAMBDA_TASK_ROOT"
cd "$LAMBDA_TASK_ROOT"
exec /usr/bin/python3 -m awslambdaric "$_HANDLER"
"""

HANDLER = """
import os

def handler(event, context):
    print("awslambdaric handler ran")
    if event.get("fail"):
        raise RuntimeError("ric failure")
    return {"ric": True, "request_id": context.aws_request_id,
            "function": context.function_name, "event": event,
            "remaining": context.get_remaining_time_in_millis()}
"""


@pytest.fixture(scope="session")
def awslambdaric_package(awslambdaric_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    target = tmp_path_factory.mktemp("ric-package")
    shutil.copytree(awslambdaric_dir, target, dirs_exist_ok=True)
    (target / "app.py").write_text(HANDLER)
    (target / "bootstrap").write_text(AWSLAMBDARIC_BOOTSTRAP)
    (target / "bootstrap").chmod(0o755)
    return zip_directory(target)


def test_awslambdaric_runs_unchanged(lam: Any, awslambdaric_package: bytes) -> None:
    name = create(lam, awslambdaric_package, runtime="provided.al2023", handler="app.handler",
                  Timeout=30)
    for attempt in range(3):  # a cold then warm invokes
        response, body = invoke(lam, name, {"n": attempt})
        assert "FunctionError" not in response, body
        assert body["ric"] is True and body["function"] == name
        assert body["event"] == {"n": attempt}
        assert body["request_id"] == response["ResponseMetadata"]["RequestId"]
        assert 0 < body["remaining"] <= 30_000
    response, body = invoke(lam, name, {"fail": True})
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "RuntimeError"
    assert body["errorMessage"] == "ric failure"


def test_awslambdaric_init_error(lam: Any, awslambdaric_package: bytes) -> None:
    name = create(lam, awslambdaric_package, runtime="provided.al2023",
                  handler="missing_module.handler", Timeout=30)
    response, body = invoke(lam, name)
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.ImportModuleError"


@pytest.mark.skipif(shutil.which("curl") is None, reason="make test installs curl")
def test_shell_bootstrap_with_curl(lam: Any) -> None:
    name = create(lam, function_zip("shell_bootstrap"), runtime="provided.al2023",
                  handler="function.handler")
    for value in (1, 2):
        response, body = invoke(lam, name, {"v": value})
        assert "FunctionError" not in response, body
        assert body == {"shell": True, "handler": "function.handler", "event": {"v": value}}


def test_node_commonjs_async_handler(lam: Any) -> None:
    name = create(lam, function_zip("node_cjs"), runtime="nodejs20.x", handler="index.handler")
    first = invoke(lam, name, {"x": 1})[1]
    second = invoke(lam, name, {"x": 2})[1]
    assert first["runtime"] == "cjs" and first["functionName"] == name
    assert first["memory"] == "128"
    assert second["count"] == first["count"] + 1
    response, body = invoke(lam, name, {"fail": True})
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "TypeError" and body["errorMessage"] == "node failure"
    assert "trace" in body


def test_node_callback_handler(lam: Any) -> None:
    name = create(lam, function_zip("node_cjs"), runtime="nodejs20.x", handler="index.callback")
    assert invoke(lam, name, {"value": 7})[1] == {"style": "callback", "value": 7}


def test_node_es_module_handler(lam: Any) -> None:
    name = create(lam, function_zip("node_esm"), runtime="nodejs20.x", handler="index.handler")
    assert invoke(lam, name, {"n": 21})[1] == {"runtime": "esm", "doubled": 42}


def test_provided_bootstrap_must_exist(lam: Any) -> None:
    package = zip_directory(None, extra={"readme.txt": "no bootstrap here"})
    name = create(lam, package, runtime="provided.al2", handler="x")
    response, body = invoke(lam, name)
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] in ("Runtime.InvalidEntrypoint", "Runtime.ExitError")
