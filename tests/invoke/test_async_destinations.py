"""Where outcomes go: OnSuccess / OnFailure records, the dead-letter target, reserved
concurrency 0, and destinations or functions that are gone by the time they are needed."""

from __future__ import annotations

import itertools
import json
import re
import time
from typing import Any

from async_helpers import RECORDER, RETRY_BASE_S, Collector, arn_of, recorder, wait_drained
from support import LaminaProcess, create

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def _destinations(lam: Any, name: str, *, success: str | None = None,
                  failure: str | None = None, **settings: Any) -> None:
    config: dict[str, Any] = {}
    if success:
        config["OnSuccess"] = {"Destination": arn_of(lam, success)}
    if failure:
        config["OnFailure"] = {"Destination": arn_of(lam, failure)}
    lam.put_function_event_invoke_config(FunctionName=name, DestinationConfig=config, **settings)


def _event(lam: Any, name: str, payload: Any) -> str:
    response = lam.invoke(FunctionName=name, InvocationType="Event",
                          Payload=json.dumps(payload).encode())
    assert response["StatusCode"] == 202
    return response["ResponseMetadata"]["RequestId"]


def test_on_success_receives_lambdas_invocation_record(qlam: Any, collector: Collector) -> None:
    name, destination = recorder(qlam, collector), recorder(qlam, collector)
    _destinations(qlam, name, success=destination)
    request_id = _event(qlam, name, {"id": "ok", "values": [1, 2]})
    (delivered,) = collector.wait(destination)
    record = delivered["event"]
    assert set(record) == {"version", "timestamp", "requestContext", "requestPayload",
                           "responseContext", "responsePayload"}
    assert record["version"] == "1.0"
    assert TIMESTAMP.match(record["timestamp"]), record["timestamp"]
    assert record["requestContext"] == {
        "requestId": request_id,
        "functionArn": f"{arn_of(qlam, name)}:$LATEST",
        "condition": "Success",
        "approximateInvokeCount": 1,
    }
    assert record["requestPayload"] == {"id": "ok", "values": [1, 2]}
    assert record["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST"}
    assert record["responsePayload"] == {"handled": "ok"}
    assert delivered["requestId"] != request_id  # the destination's own invocation


def test_on_failure_after_the_retries_with_lambdas_backoff(qlam: Any,
                                                           collector: Collector) -> None:
    name, destination = recorder(qlam, collector), recorder(qlam, collector)
    _destinations(qlam, name, failure=destination, success=destination)
    request_id = _event(qlam, name, {"action": "fail", "message": "nope"})
    (delivered,) = collector.wait(destination)
    attempts = collector.of(name)
    assert len(attempts) == 3  # the first run and Lambda's default of 2 retries
    assert {a["requestId"] for a in attempts} == {request_id}
    gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(attempts)]
    assert RETRY_BASE_S * 0.9 <= gaps[0] < RETRY_BASE_S * 2 + 1, gaps
    assert RETRY_BASE_S * 1.8 <= gaps[1] < RETRY_BASE_S * 4 + 1, gaps
    record = delivered["event"]
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["requestContext"]["requestId"] == request_id
    assert record["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST",
                                         "functionError": "Unhandled"}
    assert record["responsePayload"]["errorType"] == "ValueError"
    assert record["responsePayload"]["errorMessage"] == "nope"
    assert record["requestPayload"] == {"action": "fail", "message": "nope"}


def test_maximum_retry_attempts_zero_fails_at_once(qlam: Any, collector: Collector) -> None:
    name, destination = recorder(qlam, collector), recorder(qlam, collector)
    _destinations(qlam, name, failure=destination, MaximumRetryAttempts=0)
    _event(qlam, name, {"action": "fail"})
    (delivered,) = collector.wait(destination)
    assert delivered["event"]["requestContext"]["approximateInvokeCount"] == 1
    assert len(collector.of(name)) == 1


def test_dead_letter_target_gets_the_original_event(qlam: Any, collector: Collector) -> None:
    dead_letters, destination = recorder(qlam, collector), recorder(qlam, collector)
    name = recorder(qlam, collector,
                    DeadLetterConfig={"TargetArn": arn_of(qlam, dead_letters)})
    _destinations(qlam, name, failure=destination, MaximumRetryAttempts=1)
    _event(qlam, name, {"action": "fail", "id": "dlq"})
    (letter,) = collector.wait(dead_letters)
    assert letter["event"] == {"action": "fail", "id": "dlq"}
    (record,) = collector.wait(destination)  # both: OnFailure and the dead-letter target
    assert record["event"]["requestContext"]["approximateInvokeCount"] == 2


def test_reserved_concurrency_zero_goes_straight_to_failure(qlam: Any,
                                                            collector: Collector) -> None:
    destination, dead_letters = recorder(qlam, collector), recorder(qlam, collector)
    name = recorder(qlam, collector,
                    DeadLetterConfig={"TargetArn": arn_of(qlam, dead_letters)})
    _destinations(qlam, name, failure=destination)
    qlam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    started = time.monotonic()
    request_id = _event(qlam, name, {"id": "blocked"})
    (delivered,) = collector.wait(destination)
    assert time.monotonic() - started < 5  # no retries, no backoff to age out
    record = delivered["event"]
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 0
    assert record["requestContext"]["requestId"] == request_id
    assert record["responseContext"]["statusCode"] == 429
    assert record["requestPayload"] == {"id": "blocked"}
    assert collector.wait(dead_letters)[0]["event"] == {"id": "blocked"}
    assert collector.of(name) == []  # it never ran


def test_a_failing_destination_has_its_own_retries_and_destinations(
        qlam: Any, collector: Collector) -> None:
    last = recorder(qlam, collector)
    failing = create(qlam, RECORDER, Timeout=30, Environment={"Variables": {
        "RECORD_URL": collector.url, "ALWAYS_FAIL": "1"}})
    _destinations(qlam, failing, failure=last, MaximumRetryAttempts=1)
    name = recorder(qlam, collector)
    _destinations(qlam, name, success=failing)
    request_id = _event(qlam, name, {"id": "chain"})
    (final,) = collector.wait(last)
    attempts = collector.of(failing)
    assert len(attempts) == 2  # the destination's own MaximumRetryAttempts
    first_record = attempts[0]["event"]
    assert first_record["requestContext"]["requestId"] == request_id
    assert first_record["requestContext"]["condition"] == "Success"
    record = final["event"]
    assert record["requestPayload"] == first_record
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["functionArn"] == f"{arn_of(qlam, failing)}:$LATEST"
    assert record["responsePayload"]["errorType"] == "RuntimeError"


def test_deleted_destination_costs_only_its_record(qlam: Any, collector: Collector,
                                                   quick_server: LaminaProcess) -> None:
    name, destination = recorder(qlam, collector), recorder(qlam, collector)
    _destinations(qlam, name, success=destination)
    qlam.delete_function(FunctionName=destination)
    request_id = _event(qlam, name, {"id": "orphan"})
    collector.wait(name)
    wait_drained(quick_server, name)
    log = quick_server.server_log()
    assert re.search(rf"async event {request_id} .*OnSuccess record dropped: destination "
                     rf".*{destination} does not exist", log), log[-2000:]


def test_function_deleted_while_its_event_waits(qlam: Any, collector: Collector,
                                                quick_server: LaminaProcess) -> None:
    name = recorder(qlam, collector)
    qlam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    _event(qlam, name, {"action": "sleep", "seconds": 1.5, "id": "running"})
    collector.wait(name)
    waiting = _event(qlam, name, {"id": "waiting"})
    qlam.delete_function(FunctionName=name)
    deadline = time.monotonic() + 10
    pattern = rf"async event {waiting} for \S+{name} dropped: the function no longer exists"
    while not re.search(pattern, quick_server.server_log()):
        assert time.monotonic() < deadline, quick_server.server_log()[-2000:]
        time.sleep(0.1)
    assert [r["event"]["id"] for r in collector.of(name)] == ["running"]
