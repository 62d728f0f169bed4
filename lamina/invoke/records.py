"""The invocation record a destination receives, exactly in Lambda's shape (spec/async.md)::

    {"version": "1.0", "timestamp": "2026-11-25T10:00:00.000Z",
     "requestContext": {"requestId", "functionArn", "condition", "approximateInvokeCount"},
     "requestPayload": <the event>,
     "responseContext": {"statusCode", "executedVersion", "functionError"?},
     "responsePayload": <what the function returned, or its error>}

An attempt's outcome is kept on the queued event as a small JSON document (``attempt_result``)
so that a record written later, when the event's age runs out, still tells what happened last.
Every record has every member: an attempt the platform refused (a throttle) shows its status
(429) and error; an event that never got as far as an attempt (too old at its first try) shows
status 0 and a null ``responsePayload``.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

from lamina.engine.api import InvokeResult

SUCCESS = "Success"
RETRIES_EXHAUSTED = "RetriesExhausted"
EVENT_AGE_EXCEEDED = "EventAgeExceeded"


def record_timestamp(now: float) -> str:
    moment = datetime.datetime.fromtimestamp(now, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def attempt_result(result: InvokeResult) -> dict[str, Any]:
    """A run that reached the function (successful or not)."""
    outcome: dict[str, Any] = {"statusCode": 200, "executedVersion": result.executed_version,
                               "payload": result.payload.decode("utf-8", "replace")}
    if result.function_error:
        outcome["functionError"] = result.function_error
    return outcome


def platform_result(status: int, error_type: str, message: str,
                    executed_version: str | None = None) -> dict[str, Any]:
    """An attempt the platform refused or failed (throttle, platform error): no function ran."""
    body = {"errorType": error_type, "errorMessage": message}
    outcome: dict[str, Any] = {"statusCode": status, "payload": json.dumps(body)}
    if executed_version is not None:
        outcome["executedVersion"] = executed_version
    return outcome


def _json_or_text(text: str) -> Any:
    if text == "":
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def invocation_record(*, request_id: str, function_arn: str, condition: str,
                      invoke_count: int, request_payload: bytes,
                      result: dict[str, Any] | None, now: float) -> bytes:
    """The record for a destination; ``function_arn`` is qualified (``...:f:$LATEST``)."""
    record: dict[str, Any] = {
        "version": "1.0",
        "timestamp": record_timestamp(now),
        "requestContext": {
            "requestId": request_id,
            "functionArn": function_arn,
            "condition": condition,
            "approximateInvokeCount": invoke_count,
        },
        "requestPayload": _json_or_text(request_payload.decode("utf-8", "replace")),
    }
    result = result or {"statusCode": 0}
    context: dict[str, Any] = {"statusCode": result["statusCode"],
                               "executedVersion": result.get("executedVersion", "")}
    if result.get("functionError"):
        context["functionError"] = result["functionError"]
    record["responseContext"] = context
    record["responsePayload"] = _json_or_text(result.get("payload", ""))
    return json.dumps(record, separators=(",", ":")).encode()
