"""Event invokes through boto3: 202 once queued, the payload limit, delivery and logs."""

from __future__ import annotations

import json
import time
from typing import Any

import botocore.exceptions
import pytest
from async_helpers import Collector, log_lines, recorder, wait_drained
from support import LaminaProcess


def test_202_comes_back_before_a_slow_function_finishes(qlam: Any, collector: Collector) -> None:
    name = recorder(qlam, collector)
    latencies = []
    for index in range(5):
        started = time.monotonic()
        response = qlam.invoke(FunctionName=name, InvocationType="Event",
                               Payload=json.dumps({"action": "sleep", "seconds": 2,
                                                   "id": index}).encode())
        latencies.append(time.monotonic() - started)
        assert response["StatusCode"] == 202
        assert response["Payload"].read() == b""
    assert max(latencies) < 0.5, latencies  # the function sleeps 2 s
    records = collector.wait(name, 5)
    assert sorted(r["event"]["id"] for r in records) == list(range(5))


def test_the_event_reaches_the_function_with_its_request_id(
        qlam: Any, collector: Collector, quick_server: LaminaProcess) -> None:
    name = recorder(qlam, collector)
    response = qlam.invoke(FunctionName=name, InvocationType="Event",
                           Payload=b'{"id": "first", "nested": {"list": [1, 2]}}')
    request_id = response["ResponseMetadata"]["RequestId"]
    (record,) = collector.wait(name)
    assert record["event"] == {"id": "first", "nested": {"list": [1, 2]}}
    assert record["requestId"] == request_id
    assert record["invokedArn"].endswith(f":function:{name}")
    wait_drained(quick_server, name)
    deadline = time.monotonic() + 5
    while not any(line.startswith(f"REPORT RequestId: {request_id}")
                  for line in log_lines(quick_server, name)):
        assert time.monotonic() < deadline, log_lines(quick_server, name)
        time.sleep(0.1)
    lines = log_lines(quick_server, name)
    assert f"START RequestId: {request_id} Version: $LATEST" in lines
    assert f"END RequestId: {request_id}" in lines


def test_qualified_event_invoke_keeps_the_qualifier(qlam: Any, collector: Collector) -> None:
    name = recorder(qlam, collector)
    qlam.invoke(FunctionName=name, Qualifier="$LATEST", InvocationType="Event",
                Payload=b'{"id": 1}')
    (record,) = collector.wait(name)
    assert record["invokedArn"].endswith(f":function:{name}:$LATEST")


def test_invoke_async_is_queued_too(qlam: Any, collector: Collector) -> None:
    name = recorder(qlam, collector)
    response = qlam.invoke_async(FunctionName=name, InvokeArgs=b'{"id": "legacy"}')
    assert response["Status"] == 202
    (record,) = collector.wait(name)
    assert record["event"] == {"id": "legacy"}


def test_payload_limit_is_one_megabyte(qlam: Any, collector: Collector) -> None:
    name = recorder(qlam, collector)
    limit = 1024 * 1024
    exactly = json.dumps("x" * (limit - 2)).encode()
    assert len(exactly) == limit
    assert qlam.invoke(FunctionName=name, InvocationType="Event",
                       Payload=exactly)["StatusCode"] == 202
    with pytest.raises(qlam.exceptions.RequestTooLargeException) as failure:
        qlam.invoke(FunctionName=name, InvocationType="Event",
                    Payload=json.dumps("x" * (limit - 1)).encode())
    assert failure.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    with pytest.raises(qlam.exceptions.RequestTooLargeException):
        qlam.invoke_async(FunctionName=name, InvokeArgs=json.dumps("x" * limit).encode())
    (record,) = collector.wait(name)
    assert len(record["event"]) == limit - 2


def test_bad_events_are_refused_at_invoke_time(qlam: Any) -> None:
    with pytest.raises(qlam.exceptions.ResourceNotFoundException):
        qlam.invoke(FunctionName="no-such-function", InvocationType="Event", Payload=b"{}")
    with pytest.raises(qlam.exceptions.ResourceNotFoundException):
        qlam.invoke_async(FunctionName="no-such-function", InvokeArgs=b"{}")
    with pytest.raises(botocore.exceptions.ClientError) as failure:
        qlam.invoke(FunctionName="no-such-function", InvocationType="Event", Payload=b"{nope")
    assert failure.value.response["Error"]["Code"] in ("InvalidRequestContentException",
                                                        "ResourceNotFoundException")
