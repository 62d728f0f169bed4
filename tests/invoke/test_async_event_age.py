"""Events older than their maximum age are not run any more: they go to the failure
destination with ``EventAgeExceeded``, whether retries or throttles kept them waiting.

The API's minimum for MaximumEventAgeInSeconds is 60 s, so this server's default for functions
without one (``LAMINA_ASYNC_MAX_EVENT_AGE_SECONDS``) is made short instead."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from async_helpers import Collector, arn_of, recorder
from support import LaminaProcess, invoke

MAX_AGE_S = 2


@pytest.fixture(scope="module")
def aged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LaminaProcess]:
    data_dir: Path = tmp_path_factory.mktemp("lamina-age") / "data"
    process = LaminaProcess(data_dir, {"LAMINA_ASYNC_RETRY_BASE_SECONDS": "30",
                                       "LAMINA_ASYNC_MAX_EVENT_AGE_SECONDS": str(MAX_AGE_S)})
    yield process.start()
    process.stop()


def _on_failure(lam: Any, name: str, destination: str) -> None:
    lam.put_function_event_invoke_config(
        FunctionName=name,
        DestinationConfig={"OnFailure": {"Destination": arn_of(lam, destination)}})


def test_a_retry_later_than_the_age_becomes_event_age_exceeded(
        aged: LaminaProcess, collector: Collector) -> None:
    lam = aged.client()
    name, destination = recorder(lam, collector), recorder(lam, collector)
    _on_failure(lam, name, destination)
    started = time.monotonic()
    lam.invoke(FunctionName=name, InvocationType="Event", Payload=b'{"action": "fail"}')
    (delivered,) = collector.wait(destination)
    elapsed = time.monotonic() - started
    assert MAX_AGE_S * 0.9 <= elapsed < MAX_AGE_S + 3, elapsed  # not the 30 s retry delay
    record = delivered["event"]
    assert record["requestContext"]["condition"] == "EventAgeExceeded"
    assert record["requestContext"]["approximateInvokeCount"] == 1
    assert record["responseContext"]["functionError"] == "Unhandled"
    assert record["responsePayload"]["errorType"] == "ValueError"
    assert len(collector.of(name)) == 1


def test_a_throttled_event_ages_out(aged: LaminaProcess, collector: Collector) -> None:
    lam = aged.client()
    name, destination = recorder(lam, collector), recorder(lam, collector)
    _on_failure(lam, name, destination)
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    holder = threading.Thread(target=invoke, args=(lam, name, {"action": "sleep",
                                                               "seconds": MAX_AGE_S + 2}))
    holder.start()  # a synchronous caller holds the only slot
    try:
        collector.wait(name)
        lam.invoke(FunctionName=name, InvocationType="Event",
                   Payload=json.dumps({"id": "late"}).encode())
        (delivered,) = collector.wait(destination, timeout=MAX_AGE_S + 5)
    finally:
        holder.join()
    record = delivered["event"]
    assert record["requestContext"]["condition"] == "EventAgeExceeded"
    assert record["requestContext"]["approximateInvokeCount"] == 0
    assert record["responseContext"]["statusCode"] == 429
    assert record["requestPayload"] == {"id": "late"}
    assert [r["event"].get("id") for r in collector.of(name)] == [None]  # only the holder ran
