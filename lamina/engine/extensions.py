"""The Extensions API (2020-01-01) of one execution environment.

External extensions are executables in ``/opt/extensions`` (they come with layers), started
before the runtime. Each registers for INVOKE and/or SHUTDOWN events, then long-polls
``/extension/event/next``. The rules that matter to the environment (spec/runtime-api.md):

* Init ends only when every started extension has registered and asked for its first event,
  and the runtime has asked for its first invocation.
* An invocation ends when the runtime has answered *and* every INVOKE-subscribed extension has
  asked for its next event; the caller gets the runtime's answer at once, the environment is
  busy until then, and the function's timeout covers both.
* Shutdown sends SHUTDOWN to the subscribers and gives them 2,000 ms before the kill.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable

from lamina.http.types import Request, Response

PREFIX = "/2020-01-01/extension/"
MAX_EXTENSIONS = 10
SHUTDOWN_GRACE_S = 2.0
_JSON = ("Content-Type", "application/json")


def _error(status: int, error_type: str, message: str) -> Response:
    body = json.dumps({"errorType": error_type, "errorMessage": message}).encode()
    return Response(status, [_JSON], body)


class Extension:
    __slots__ = ("events", "identifier", "name", "parked", "pending")

    def __init__(self, name: str, events: set[str]) -> None:
        self.name = name
        self.identifier = str(uuid.uuid4())
        self.events = events
        self.parked: asyncio.Future[Response] | None = None
        self.pending: list[dict[str, object]] = []  # events not yet taken by a next


class ExtensionsHost:
    """Registration, event delivery and readiness of one environment's extensions."""

    def __init__(self, expected: int, function_name: str, version: str, handler: str,
                 on_settled: Callable[[], None],
                 on_error: Callable[[str, str, bytes], None]) -> None:
        self.expected = expected
        self.function_name = function_name
        self.version = version
        self.handler = handler
        self._on_settled = on_settled  # every extension is waiting in event/next again
        self._on_error = on_error  # (phase, error type, body): init/error or exit/error
        self._by_id: dict[str, Extension] = {}
        self.accepting_registrations = True
        self._loop = asyncio.get_running_loop()

    # state ----------------------------------------------------------------------------------

    def settled(self) -> bool:
        """All expected extensions registered and each is waiting for its next event."""
        if len(self._by_id) < self.expected:
            return False
        return all(ext.parked is not None and not ext.parked.done() for ext in self._by_id.values())

    def wants(self, event: str) -> bool:
        return any(event in ext.events for ext in self._by_id.values())

    # events ---------------------------------------------------------------------------------

    def invoke(self, request_id: str, deadline_ms: int, invoked_arn: str, trace_id: str) -> None:
        self._broadcast("INVOKE", {
            "eventType": "INVOKE", "deadlineMs": deadline_ms, "requestId": request_id,
            "invokedFunctionArn": invoked_arn,
            "tracing": {"type": "X-Amzn-Trace-Id", "value": trace_id}})

    def shutdown(self, reason: str) -> None:
        deadline = int((time.time() + SHUTDOWN_GRACE_S) * 1000)
        self._broadcast("SHUTDOWN", {"eventType": "SHUTDOWN", "shutdownReason": reason,
                                     "deadlineMs": deadline})

    def _broadcast(self, kind: str, event: dict[str, object]) -> None:
        for ext in self._by_id.values():
            if kind not in ext.events:
                continue
            parked, ext.parked = ext.parked, None
            if parked is not None and not parked.done():
                parked.set_result(_event_response(event))
            else:
                ext.pending.append(event)

    # the API --------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response | asyncio.Future[Response]:
        action = request.path[len(PREFIX):]
        if action == "register" and request.method == "POST":
            return self._register(request)
        ext = self._by_id.get(request.headers.get("lambda-extension-identifier", ""))
        if ext is None:
            return _error(403, "Extension.UnknownExtensionIdentifier",
                          "Lambda-Extension-Identifier is missing or unknown")
        if action == "event/next" and request.method == "GET":
            return self._next(ext)
        if action in ("init/error", "exit/error") and request.method == "POST":
            error_type = request.headers.get("lambda-extension-function-error-type",
                                             "Extension.Unknown")
            self._on_error(action.split("/")[0], error_type, request.body)
            return Response(202, [_JSON], b'{"status":"OK"}')
        return _error(404, "InvalidRequest", f"Unknown path {request.path}")

    def _register(self, request: Request) -> Response:
        name = request.headers.get("lambda-extension-name", "")
        if not self.accepting_registrations:
            return _error(403, "Extension.InvalidState",
                          "Extensions can only register during Init")
        if not name:
            return _error(400, "InvalidRequest", "Lambda-Extension-Name is required")
        if len(self._by_id) >= MAX_EXTENSIONS:
            return _error(400, "Extension.TooManyExtensions",
                          f"At most {MAX_EXTENSIONS} extensions may register")
        try:
            events = set(json.loads(request.body or b"{}").get("events") or [])
        except (ValueError, AttributeError):
            return _error(400, "InvalidRequest", "The body must be {\"events\": [...]}")
        unknown = events - {"INVOKE", "SHUTDOWN"}
        if unknown:
            return _error(400, "InvalidRequest", f"Unknown events: {sorted(unknown)}")
        ext = Extension(name, events)
        self._by_id[ext.identifier] = ext
        body = json.dumps({"functionName": self.function_name,
                           "functionVersion": self.version, "handler": self.handler}).encode()
        return Response(200, [_JSON, ("Lambda-Extension-Identifier", ext.identifier)], body)

    def _next(self, ext: Extension) -> Response | asyncio.Future[Response]:
        if ext.pending:
            return _event_response(ext.pending.pop(0))
        if ext.parked is not None and not ext.parked.done():
            ext.parked.cancel()
        ext.parked = self._loop.create_future()
        if self.settled():
            self._loop.call_soon(self._on_settled)
        return ext.parked

    def close(self) -> None:
        for ext in self._by_id.values():
            if ext.parked is not None and not ext.parked.done():
                ext.parked.cancel()


def _event_response(event: dict[str, object]) -> Response:
    return Response(200, [_JSON], json.dumps(event).encode())
