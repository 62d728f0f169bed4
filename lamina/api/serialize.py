"""An operation's output, or a failure, -> the HTTP answer boto3 expects (rest-json).

The output shape decides where each member goes: ``location: statusCode`` is the status
(else the operation's ``responseCode``), ``location: header`` members are headers, a
``payload`` member is the whole body (raw bytes for a blob, JSON for a structure, an event
stream for Lambda's response streaming), and otherwise the body is the JSON of the remaining
members. Only modelled members are written, so an operation cannot leak internal fields by
returning them; blobs are base64-encoded and timestamps written in the model's format.

Errors are mapped in this one place: ``x-amzn-ErrorType: <code>`` plus a JSON body with
``Type`` and ``message`` (and any modelled field such as ``Reason``), which botocore turns into
``client.exceptions.<code>``. Anything that is not a ``ServiceError`` becomes a 500
``ServiceException`` whose message says nothing about the cause.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime
import email.utils
import json
import struct
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from botocore.model import NoShapeFoundError, OperationModel, ServiceModel, Shape

from lamina.api.model import service_model, timestamp_format
from lamina.errors import InternalError, ServiceError
from lamina.http.types import Response

__all__ = ["encode_event", "serialize_error", "serialize_event", "serialize_events",
           "serialize_response"]

JSON = "application/json"
OCTET_STREAM = "application/octet-stream"
EVENT_STREAM = "application/vnd.amazon.eventstream"
INTERNAL_MESSAGE = "The AWS Lambda service encountered an internal error."

# Lambda labels an Invoke answer as JSON whatever the function returned.
_PAYLOAD_CONTENT_TYPE = {"Invoke": JSON}
_NO_BODY = frozenset({204, 304})


class _Plan:
    """Where each output member of one operation goes; built once per operation."""

    __slots__ = ("body_shape", "default_status", "header_maps", "headers", "payload",
                 "payload_type", "status_member")

    def __init__(self, op: OperationModel) -> None:
        self.default_status: int = op.http.get("responseCode", 200)
        self.status_member: str | None = None
        self.headers: list[tuple[str, str, Shape]] = []
        self.header_maps: list[tuple[str, str, Shape]] = []
        self.payload: tuple[str, Shape] | None = None
        self.payload_type = _PAYLOAD_CONTENT_TYPE.get(op.name)
        self.body_shape: Shape | None = None
        shape = op.output_shape
        if shape is None:
            return
        payload_name = shape.serialization.get("payload")
        has_body = False
        for name, member in shape.members.items():
            location = member.serialization.get("location")
            wire = member.serialization.get("name", name)
            if location == "statusCode":
                self.status_member = name
            elif location == "header":
                self.headers.append((name, wire, member))
            elif location == "headers":
                self.header_maps.append((name, wire, member))
            elif location is None and name != payload_name:
                has_body = True
        if payload_name is not None:
            self.payload = (payload_name, shape.members[payload_name])
        elif has_body:
            self.body_shape = shape


_PLANS: dict[OperationModel, _Plan] = {}


def serialize_response(operation: OperationModel, output: dict[str, Any] | None,
                       request_id: str | None = None) -> Response:
    """The HTTP answer for ``output`` (a dict shaped like boto3's return value, without
    ``ResponseMetadata``). ``Payload`` may be bytes or str; timestamps datetimes or epoch
    numbers. Never raises for a well-typed output."""
    plan = _PLANS.get(operation)
    if plan is None:
        plan = _PLANS[operation] = _Plan(operation)
    output = output or {}
    status = plan.default_status
    if plan.status_member is not None:
        status = int(output.get(plan.status_member) or status)
    headers: list[tuple[str, str]] = []
    for name, wire, shape in plan.headers:
        value = output.get(name)
        if value is not None:
            headers.append((wire, _header_text(shape, value)))
    for name, prefix, _shape in plan.header_maps:
        for key, value in (output.get(name) or {}).items():
            headers.append((prefix + key, str(value)))
    body = b""
    content_type: str | None = None
    if plan.payload is not None:
        name, shape = plan.payload
        value = output.get(name)
        if shape.serialization.get("eventstream"):
            content_type = EVENT_STREAM
            if value is not None:
                body = serialize_events(shape, value)
        elif shape.type_name == "structure":
            content_type = JSON
            if value is not None:
                body = _dumps(_to_json(shape, value))
        else:
            content_type = plan.payload_type or OCTET_STREAM
            if value is not None:
                body = value.encode() if isinstance(value, str) else bytes(value)
    elif status not in _NO_BODY:
        content_type = JSON
        document = _to_json(plan.body_shape, output) if plan.body_shape is not None else {}
        body = _dumps(document)
    if content_type is not None and not any(k.lower() == "content-type" for k, _ in headers):
        headers.append(("Content-Type", content_type))
    headers.append(("x-amzn-RequestId", request_id or str(uuid.uuid4())))
    if status in _NO_BODY:
        body = b""
    return Response(status, headers, body)


def serialize_error(exc: BaseException, request_id: str | None = None,
                    model: ServiceModel | None = None) -> Response:
    """The HTTP answer for a failure. A ``ServiceError`` keeps its code, status and fields
    (fields the model places in headers, such as ``Retry-After``, go there; ``message`` takes
    the casing the error's shape declares, ``Message`` for ResourceNotFoundException as on
    AWS); anything else is a 500 ``ServiceException`` with a fixed message, never the
    exception's own text."""
    if not isinstance(exc, ServiceError):
        exc = InternalError(INTERNAL_MESSAGE)
    document = exc.body()
    headers = [("x-amzn-ErrorType", exc.code), ("Content-Type", JSON),
               ("x-amzn-RequestId", request_id or str(uuid.uuid4()))]
    layout = _error_layout(model or service_model(), exc.code)
    for name, wire in layout.headers:
        value = document.pop(name, None)
        if value is not None:
            headers.append((wire, str(value)))
    if layout.capital_message and "message" in document:
        document["Message"] = document.pop("message")
    return Response(exc.status, headers, _dumps(document))


@dataclasses.dataclass(frozen=True, slots=True)
class _ErrorLayout:
    headers: list[tuple[str, str]]
    capital_message: bool


_ERROR_LAYOUTS: dict[tuple[int, str], _ErrorLayout] = {}


def _error_layout(model: ServiceModel, code: str) -> _ErrorLayout:
    key = (id(model), code)
    found = _ERROR_LAYOUTS.get(key)
    if found is None:
        try:
            members = model.shape_for(code).members  # type: ignore[attr-defined]
        except NoShapeFoundError:
            members = {}
        found = _ERROR_LAYOUTS[key] = _ErrorLayout(
            [(name, m.serialization.get("name", name)) for name, m in members.items()
             if m.serialization.get("location") == "header"],
            "Message" in members and "message" not in members)
    return found


def _dumps(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def _header_text(shape: Shape, value: Any) -> str:
    kind = shape.type_name
    if kind == "string" and shape.serialization.get("jsonvalue"):
        return base64.b64encode(_dumps(value)).decode()
    if kind == "boolean":
        return "true" if value else "false"
    if kind == "timestamp":
        return str(_timestamp(value, timestamp_format(shape, "header")))
    if kind == "blob":
        return base64.b64encode(value).decode()
    if kind == "list":
        return ",".join(_quote_list_item(_header_text(shape.member, v))  # type: ignore[attr-defined]
                        for v in value)
    return str(value)


def _quote_list_item(text: str) -> str:
    if '"' in text or "," in text:
        return '"' + text.replace('"', '\\"') + '"'
    return text


def _timestamp(value: Any, fmt: str) -> Any:
    if isinstance(value, datetime.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=datetime.UTC)
    elif isinstance(value, int | float):
        moment = datetime.datetime.fromtimestamp(value, datetime.UTC)
    else:
        return value  # already text: trust the operation
    if fmt == "iso8601":
        return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    if fmt == "rfc822":
        return email.utils.format_datetime(moment.astimezone(datetime.UTC), usegmt=True)
    seconds = moment.timestamp()
    return int(seconds) if seconds.is_integer() else round(seconds, 3)


def _to_json(shape: Shape, value: Any) -> Any:
    return _WRITERS.get(shape.type_name, _plain)(shape, value)


def _structure(shape: Shape, value: Any) -> dict[str, Any]:
    members = shape.members  # type: ignore[attr-defined]
    out: dict[str, Any] = {}
    for key, item in value.items():
        member = members.get(key)
        if member is None or item is None or "location" in member.serialization:
            continue
        out[key] = _to_json(member, item)
    return out


def _list(shape: Shape, value: Any) -> list[Any]:
    member = shape.member  # type: ignore[attr-defined]
    return [None if item is None else _to_json(member, item) for item in value]


def _map(shape: Shape, value: Any) -> dict[str, Any]:
    value_shape = shape.value  # type: ignore[attr-defined]
    return {str(k): None if v is None else _to_json(value_shape, v) for k, v in value.items()}


def _blob(shape: Shape, value: Any) -> str:
    data = value.encode() if isinstance(value, str) else bytes(value)
    return base64.b64encode(data).decode()


def _json_timestamp(shape: Shape, value: Any) -> Any:
    return _timestamp(value, timestamp_format(shape, None))


def _plain(shape: Shape, value: Any) -> Any:
    return value


_WRITERS: dict[str, Callable[[Shape, Any], Any]] = {
    "structure": _structure, "list": _list, "map": _map, "blob": _blob,
    "timestamp": _json_timestamp,
}


# Event streams (InvokeWithResponseStream) ---------------------------------------------------

def serialize_event(stream_shape: Shape, event: str, fields: dict[str, Any]) -> bytes:
    """One event of an event-stream member (e.g. ``PayloadChunk``) as a binary frame.

    A member marked ``eventpayload`` is the frame's raw payload; otherwise the event's
    members are its JSON payload. A streaming handler writes these frames one by one after a
    ``serialize_response`` head whose event-stream member is empty.
    """
    shape = stream_shape.members[event]  # type: ignore[attr-defined]
    payload_member = next((name for name, m in shape.members.items()
                           if m.serialization.get("eventpayload")), None)
    if payload_member is not None:
        member = shape.members[payload_member]
        value = fields.get(payload_member, b"")
        if member.type_name == "blob":
            payload = value.encode() if isinstance(value, str) else bytes(value)
            content_type = OCTET_STREAM
        elif member.type_name == "string":
            payload, content_type = value.encode(), "text/plain"
        else:
            payload, content_type = _dumps(_to_json(member, value)), JSON
    else:
        payload, content_type = _dumps(_to_json(shape, fields)), JSON
    return encode_event({":event-type": event, ":content-type": content_type,
                         ":message-type": "event"}, payload)


def encode_event(headers: dict[str, str], payload: bytes) -> bytes:
    """The AWS event-stream binary framing: prelude (lengths + CRC), string headers, payload,
    message CRC."""
    encoded = b"".join(_event_header(name, value) for name, value in headers.items())
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack(">II", total, len(encoded))
    prelude += struct.pack(">I", binascii.crc32(prelude))
    message = prelude + encoded + payload
    return message + struct.pack(">I", binascii.crc32(message))


def _event_header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    return (struct.pack(">B", len(raw_name)) + raw_name + b"\x07"
            + struct.pack(">H", len(raw_value)) + raw_value)


def serialize_events(stream_shape: Shape, events: Iterable[tuple[str, dict[str, Any]]]) -> bytes:
    """Several events, framed back to back."""
    return b"".join(serialize_event(stream_shape, event, fields) for event, fields in events)
