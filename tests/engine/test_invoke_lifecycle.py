"""Invoke through boto3 against a real server: results, errors, logs, lifecycle and limits."""

from __future__ import annotations

import base64
import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from support import create, function_zip, invoke, wait_ready, zip_directory

PROBE = function_zip("probe")


@pytest.fixture(scope="module")
def probe(lam: Any) -> str:
    return create(lam, PROBE, Timeout=5, Environment={"Variables": {"MARKER": "m-1"}})


def test_hello_world_result_and_headers(lam: Any) -> None:
    name = create(lam, function_zip("hello"))
    response, body = invoke(lam, name, {"name": "lamina"})
    assert response["StatusCode"] == 200
    assert body == {"hello": "lamina"}
    assert response["ExecutedVersion"] == "$LATEST"
    assert "FunctionError" not in response


def test_context_and_environment_are_lambdas(lam: Any, probe: str) -> None:
    _, body = invoke(lam, probe, {"action": "describe"})
    assert body["function_name"] == probe
    assert body["function_version"] == "$LATEST"
    assert body["invoked_function_arn"] == \
        f"arn:aws:lambda:us-east-1:000000000000:function:{probe}"
    assert int(body["memory_limit_in_mb"]) == 128
    assert body["log_group_name"] == f"/aws/lambda/{probe}"
    assert "[$LATEST]" in body["log_stream_name"]
    assert 0 < body["remaining_ms"] <= 5000
    environ = body["environ"]
    assert environ["MARKER"] == "m-1"
    assert environ["AWS_LAMBDA_FUNCTION_NAME"] == probe
    assert environ["AWS_REGION"] == environ["AWS_DEFAULT_REGION"] == "us-east-1"
    assert environ["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.11"
    assert environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "128"
    assert environ["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert environ["AWS_LAMBDA_INITIALIZATION_TYPE"] == "on-demand"
    assert environ["LAMBDA_TASK_ROOT"] == "/var/task"
    assert environ["LAMBDA_RUNTIME_DIR"] == "/var/runtime"
    assert environ["_HANDLER"] == "app.handler"
    assert environ["TZ"] == ":UTC"
    assert environ["_X_AMZN_TRACE_ID"].startswith("Root=1-")
    assert environ["AWS_ACCESS_KEY_ID"].startswith("ASIA")
    assert environ["AWS_SESSION_TOKEN"]
    assert body["cwd"] == "/var/task"


def test_execution_credentials_are_not_the_root_keys(server: Any, lam: Any, probe: str) -> None:
    _, body = invoke(lam, probe, {"action": "describe"})
    root_key, root_secret = server.credentials()
    assert body["environ"]["AWS_ACCESS_KEY_ID"] != root_key
    assert root_secret not in json.dumps(body)


def test_client_context_reaches_the_function(lam: Any, probe: str) -> None:
    context = base64.b64encode(json.dumps({"custom": {"tenant": "t1"}}).encode()).decode()
    _, body = invoke(lam, probe, {"action": "describe"}, ClientContext=context)
    assert body["client_context"] == {"tenant": "t1"}


def test_client_context_with_line_breaks_and_non_ascii_reaches_the_function_whole(
        lam: Any, probe: str) -> None:
    """JSON may break lines between tokens; the context still travels as one header line."""
    document = '{"custom":\r\n {"tenant": "t\u00e9",\n "x": "X-Injected: 1"}}'
    context = base64.b64encode(document.encode()).decode()
    response, body = invoke(lam, probe, {"action": "describe"}, ClientContext=context)
    assert "FunctionError" not in response
    assert body["client_context"] == {"tenant": "t\u00e9", "x": "X-Injected: 1"}


def test_handler_exception_is_an_unhandled_function_error(lam: Any, probe: str) -> None:
    response, body = invoke(lam, probe, {"action": "fail", "message": "nope"})
    assert response["StatusCode"] == 200
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "ValueError"
    assert body["errorMessage"] == "nope"
    assert isinstance(body["stackTrace"], list) and body["stackTrace"]
    assert "requestId" in body


def test_import_error_reports_init_failure_and_is_retried(lam: Any, server: Any) -> None:
    name = create(lam, function_zip("broken_import"))
    for _ in range(2):  # the failed Init is tried again at the next invoke
        response, body = invoke(lam, name)
        assert response["FunctionError"] == "Unhandled"
        assert body["errorType"] == "Runtime.ImportModuleError"
        assert "Unable to import module 'app'" in body["errorMessage"]
    lines = read_logs(server, name)
    assert sum("INIT_REPORT" in line and "Status: error" in line for line in lines) >= 2


def test_missing_handler_is_handler_not_found(lam: Any) -> None:
    name = create(lam, function_zip("hello"), handler="app.nope")
    response, body = invoke(lam, name)
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.HandlerNotFound"


def test_handler_in_a_sub_package(lam: Any) -> None:
    name = create(lam, function_zip("pkg_handler"), handler="pkg.sub.mod.entry")
    _, body = invoke(lam, name)
    assert body == {"module": "pkg.sub.mod"}


def test_warm_environment_keeps_globals_and_tmp(lam: Any) -> None:
    name = create(lam, PROBE)
    first = invoke(lam, name, {"action": "state"})[1]
    second = invoke(lam, name, {"action": "state"})[1]
    assert second["stream"] == first["stream"]
    assert second["invocations"] == first["invocations"] + 1
    assert len(second["tmp"]) == len(first["tmp"]) + 1


def test_concurrent_invokes_get_separate_environments(lam: Any) -> None:
    name = create(lam, PROBE, Timeout=10)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: invoke(lam, name, {"action": "sleep",
                                                              "seconds": 1})[0], range(4)))
    assert all(r["StatusCode"] == 200 and "FunctionError" not in r for r in results)
    with ThreadPoolExecutor(3) as pool:
        bodies = list(pool.map(lambda _: invoke(lam, name, {"action": "sleep",
                                                             "seconds": 0.5})[1], range(3)))
    assert len({body["stream"] for body in bodies}) == 3


def test_update_retires_old_environments(lam: Any) -> None:
    name = create(lam, PROBE)
    before = invoke(lam, name, {"action": "echo"})[1]["stream"]
    lam.update_function_configuration(FunctionName=name,
                                      Environment={"Variables": {"VERSION": "2"}})
    wait_ready(lam, name)
    _, body = invoke(lam, name, {"action": "describe"})
    assert body["environ"]["VERSION"] == "2"
    assert body["log_stream_name"] != before


def test_timeout_kills_the_environment(lam: Any) -> None:
    name = create(lam, PROBE, Timeout=1)
    started = time.monotonic()
    response, body = invoke(lam, name, {"action": "sleep", "seconds": 5})
    elapsed = time.monotonic() - started
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in body["errorMessage"]
    assert elapsed < 3
    response, body = invoke(lam, name, {"action": "echo"})
    assert "FunctionError" not in response


def test_crash_is_runtime_exit_error_and_environment_is_replaced(lam: Any) -> None:
    name = create(lam, PROBE)
    response, body = invoke(lam, name, {"action": "crash", "code": 3})
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.ExitError"
    assert "Runtime exited with error: exit status 3" in body["errorMessage"]
    response, body = invoke(lam, name, {"action": "echo"})
    assert "FunctionError" not in response and body["invocations"] == 1


def test_memory_limit_kills_an_allocation_beyond_memory_size(lam: Any) -> None:
    name = create(lam, PROBE, MemorySize=128, Timeout=20)
    response, body = invoke(lam, name, {"action": "allocate", "mb": 300})
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] in ("Runtime.OutOfMemory", "Runtime.ExitError")
    assert "signal: killed" in body["errorMessage"]
    response, body = invoke(lam, name, {"action": "allocate", "mb": 20})
    assert body == {"allocated_mb": 20}


def test_response_over_6_mb_is_function_response_size_too_large(lam: Any, probe: str) -> None:
    response, body = invoke(lam, probe, {"action": "big_response", "bytes": 7 * 1024 * 1024})
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Function.ResponseSizeTooLarge"
    response, _ = invoke(lam, probe, {"action": "echo"})
    assert "FunctionError" not in response


def test_payload_limits_and_invalid_payload(lam: Any, probe: str) -> None:
    with pytest.raises(lam.exceptions.RequestTooLargeException):
        lam.invoke(FunctionName=probe, Payload=b'"' + b"x" * (6 * 1024 * 1024 + 10) + b'"')
    with pytest.raises(lam.exceptions.InvalidRequestContentException):
        lam.invoke(FunctionName=probe, Payload=b"{not json")


def test_log_type_tail_returns_the_last_4kb(lam: Any, probe: str) -> None:
    response, _ = invoke(lam, probe, {"action": "log_lines"}, LogType="Tail")
    tail = base64.b64decode(response["LogResult"]).decode()
    assert len(tail.encode()) <= 4096
    assert "START RequestId:" in tail and "END RequestId:" in tail and "REPORT RequestId:" in tail
    assert "line from print" in tail and "line to stderr" in tail
    assert "[INFO]" in tail and "line from logging" in tail
    assert tail.index("START") < tail.index("line from print") < tail.index("END")
    report = next(line for line in tail.splitlines() if line.startswith("REPORT"))
    for field in ("Duration:", "Billed Duration:", "Memory Size: 128 MB", "Max Memory Used:"):
        assert field in report


def test_dry_run_and_event_invocation_types(lam: Any, server: Any) -> None:
    name = create(lam, PROBE)
    assert lam.invoke(FunctionName=name, InvocationType="DryRun")["StatusCode"] == 204
    started = time.monotonic()
    response = lam.invoke(FunctionName=name, InvocationType="Event",
                          Payload=json.dumps({"action": "sleep", "seconds": 1}).encode())
    assert response["StatusCode"] == 202
    assert time.monotonic() - started < 0.9
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if any(line.startswith("REPORT") for line in read_logs(server, name)):
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the Event invocation never ran")


def test_logs_hold_init_start_end_report(lam: Any, server: Any) -> None:
    name = create(lam, function_zip("hello"))
    response, _ = invoke(lam, name)
    lines = read_logs(server, name)
    request_id = response["ResponseMetadata"]["RequestId"]
    assert any(line.startswith("INIT_START Runtime Version: python:3.11") for line in lines)
    assert any(line.startswith("START RequestId:") and "Version: $LATEST" in line
               for line in lines)
    assert any("hello from" in line for line in lines)
    report = [line for line in lines if line.startswith("REPORT RequestId:")]
    assert report and "Init Duration:" in report[0]
    assert request_id


def test_reserved_concurrency_zero_throttles(lam: Any) -> None:
    name = create(lam, PROBE)
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    with pytest.raises(lam.exceptions.TooManyRequestsException) as failure:
        lam.invoke(FunctionName=name, Payload=b"{}")
    assert failure.value.response["Reason"] == \
        "ReservedFunctionConcurrentInvocationLimitExceeded"
    assert failure.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    lam.delete_function_concurrency(FunctionName=name)
    assert invoke(lam, name)[0]["StatusCode"] == 200


def test_reserved_concurrency_caps_concurrent_invokes(lam: Any) -> None:
    name = create(lam, PROBE, Timeout=10)
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)

    def call(_: int) -> str:
        try:
            invoke(lam, name, {"action": "sleep", "seconds": 1.5})
            return "ok"
        except lam.exceptions.TooManyRequestsException:
            return "throttled"

    with ThreadPoolExecutor(3) as pool:
        outcomes = sorted(pool.map(call, range(3)))
    assert outcomes.count("ok") == 1 and outcomes.count("throttled") == 2


def test_a_short_burst_is_queued_rather_than_refused(lam: Any) -> None:
    name = create(lam, PROBE, Timeout=10)
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda _: invoke(lam, name, {"action": "sleep",
                                                              "seconds": 0.02})[0], range(3)))
    assert all(r["StatusCode"] == 200 for r in results)


def test_stdout_flood_does_not_hurt_the_server(lam: Any, probe: str) -> None:
    _, body = invoke(lam, probe, {"action": "flood", "lines": 50000})
    assert body == {"flooded": True}
    assert invoke(lam, probe, {"action": "echo"})[0]["StatusCode"] == 200


def test_runtime_missing_for_a_bad_provided_bootstrap(lam: Any) -> None:
    package = zip_directory(None, extra={"bootstrap": "not executable"})
    name = create(lam, package, runtime="provided.al2023", handler="x")
    response, body = invoke(lam, name)
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] in ("Runtime.InvalidEntrypoint", "Runtime.ExitError")


def read_logs(server: Any, name: str) -> list[str]:
    from lamina.cli import client
    from lamina.settings import load

    settings = load({"data_dir": str(server.data_dir)})
    deadline = time.monotonic() + 5
    while True:
        document = client.signed_get(settings, f"/_lamina/logs/{name}?start=0")
        lines = [event["message"] for event in document["events"]]
        if any(line.startswith("REPORT") or line.startswith("INIT_REPORT") for line in lines) \
                or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)


def test_execution_credentials_authenticate_but_are_granted_nothing_yet(
        server: Any, lam: Any, probe: str) -> None:
    import boto3
    import botocore.exceptions

    environ = invoke(lam, probe, {"action": "describe"})[1]["environ"]
    as_function = boto3.client(
        "lambda", endpoint_url=server.endpoint, region_name="us-east-1",
        aws_access_key_id=environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=environ["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=environ["AWS_SESSION_TOKEN"])
    with pytest.raises(botocore.exceptions.ClientError) as failure:
        as_function.list_functions()
    assert failure.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "is not authorized to perform: lambda:ListFunctions" in str(failure.value)
    forged = boto3.client(
        "lambda", endpoint_url=server.endpoint, region_name="us-east-1",
        aws_access_key_id=environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=environ["AWS_SECRET_ACCESS_KEY"], aws_session_token="forged")
    with pytest.raises(botocore.exceptions.ClientError) as failure:
        forged.list_functions()
    assert failure.value.response["Error"]["Code"] == "UnrecognizedClientException"
