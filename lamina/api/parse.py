"""Raw HTTP request -> the operation's input parameters, by the rest-json protocol.

This is the inverse of botocore's rest-json serializer, driven by the same model: URI labels,
query-string and header members are converted from text to their shape's type, the body is
either the ``payload`` member (raw bytes, or a JSON structure) or a JSON object whose members
are the input's body members. Blobs inside JSON arrive base64-encoded and leave as bytes;
timestamps leave as aware UTC datetimes. The result has the shape boto3 users pass in, so a
handler reads ``params["Code"]["ZipFile"]`` as bytes.

Type mismatches are found here, because AWS finds them here: Lambda deserialises the body with
Jackson before validating it, so a string where an integer is due, broken JSON or broken base64
answer ``InvalidRequestContentException`` ("Could not parse request body into json: ..."), not a
validation error. Members the model does not know are dropped, as AWS ignores them. Constraints
(required, lengths, ranges, patterns, enums) are ``validate.py``'s job.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import email.utils
import json
from collections.abc import Callable
from typing import Any

from botocore.model import OperationModel, Shape, StructureShape

from lamina.api.model import timestamp_format
from lamina.errors import InvalidRequestContent, ValidationError
from lamina.http.types import Request

__all__ = ["check_json_payload", "parse_request"]

_INT_RANGE = {"integer": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
_JAVA_TYPE = {
    "string": "java.lang.String", "integer": "java.lang.Integer", "long": "java.lang.Long",
    "boolean": "java.lang.Boolean", "double": "java.lang.Double", "float": "java.lang.Float",
    "blob": "java.nio.ByteBuffer", "timestamp": "java.util.Date", "list": "java.util.List",
    "map": "java.util.Map",
}
_SOURCE = "\n at [Source: REDACTED (`StreamReadFeature.INCLUDE_SOURCE_IN_LOCATION` disabled)"
_PREFIX = "Could not parse request body into json: Could not parse payload into json: "
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


class _Plan:
    """Where each input member of one operation lives; built once per operation."""

    __slots__ = ("body_shape", "header_maps", "headers", "literal_keys", "payload", "query",
                 "query_map", "uri")

    def __init__(self, op: OperationModel) -> None:
        shape = op.input_shape
        self.uri: list[tuple[str, str, Shape]] = []
        self.query: list[tuple[str, str, Shape]] = []
        self.query_map: tuple[str, Shape] | None = None
        self.headers: list[tuple[str, str, Shape]] = []
        self.header_maps: list[tuple[str, str, Shape]] = []
        self.payload: tuple[str, Shape] | None = None
        self.body_shape: StructureShape | None = None
        # Query keys written into the request URI (``?tag``, ``?List=ALL``) are routing, not
        # parameters, so a query-map member must not collect them.
        literal = op.http.get("requestUri", "").partition("?")[2]
        self.literal_keys = frozenset(part.partition("=")[0] for part in literal.split("&")
                                      if part)
        if shape is None:
            return
        has_body_members = False
        payload_name = shape.serialization.get("payload")
        for name, member in shape.members.items():
            location = member.serialization.get("location")
            wire = member.serialization.get("name", name)
            if location == "uri":
                self.uri.append((name, wire, member))
            elif location == "querystring":
                if member.type_name == "map":
                    self.query_map = (name, member)
                else:
                    self.query.append((name, wire, member))
            elif location == "header":
                self.headers.append((name, wire.lower(), member))
            elif location == "headers":
                self.header_maps.append((name, wire.lower(), member))
            elif location is None and name != payload_name:
                has_body_members = True
        if payload_name is not None:
            self.payload = (payload_name, shape.members[payload_name])
        elif has_body_members:
            self.body_shape = shape


_PLANS: dict[OperationModel, _Plan] = {}


def parse_request(operation: OperationModel, labels: dict[str, str],
                  request: Request) -> dict[str, Any]:
    """The operation's input parameters from ``labels`` (decoded, from ``resolve``) and the
    request's query, headers and body.

    Raises ``InvalidRequestContent`` for a body that is not JSON (or not an object), a JSON
    value of the wrong type, or broken base64; ``ValidationError`` for a label, query or header
    value that cannot be read as its member's type (e.g. ``MaxItems=ten``).
    """
    plan = _PLANS.get(operation)
    if plan is None:
        plan = _PLANS[operation] = _Plan(operation)
    params: dict[str, Any] = {}
    for name, wire, shape in plan.uri:
        if wire in labels:
            params[name] = _from_text(labels[wire], shape, "uri", name)
    if request.query_string and (plan.query or plan.query_map):
        _parse_query(plan, request.query, params)
    if plan.headers or plan.header_maps:
        _parse_headers(plan, request.headers, params)
    try:
        if plan.payload is not None and request.body:
            # An empty body is an absent payload; so is "{}" for a structure, which is what
            # botocore sends when the structure is not given.
            name, shape = plan.payload
            body = request.body
            if shape.type_name == "structure":
                document = _load_json(body)
                if document is not None and document != {}:
                    params[name] = _from_json(shape, document, (name,))
            elif shape.type_name == "string":
                params[name] = body.decode("utf-8", "replace")
            else:
                params[name] = body
        elif plan.payload is None and plan.body_shape is not None and request.body:
            document = _load_json(request.body)
            if document is not None:
                params.update(_from_json(plan.body_shape, document, ()))
    except _Mismatch as exc:
        raise InvalidRequestContent(exc.message(operation.input_shape.name)) from None
    return params


def _parse_query(plan: _Plan, query: list[tuple[str, str]], params: dict[str, Any]) -> None:
    bound: set[str] = set(plan.literal_keys)
    for name, wire, shape in plan.query:
        values = [value for key, value in query if key == wire]
        if not values:
            continue
        bound.add(wire)
        if shape.type_name == "list":
            params[name] = [_from_text(v, shape.member, "querystring", name) for v in values]
        else:
            params[name] = _from_text(values[0], shape, "querystring", name)
    if plan.query_map is not None:
        name, shape = plan.query_map
        rest: dict[str, Any] = {}
        for key, value in query:
            if key in bound:
                continue
            if shape.value.type_name == "list":
                rest.setdefault(key, []).append(value)
            else:
                rest.setdefault(key, value)
        if rest:
            params[name] = rest


def _parse_headers(plan: _Plan, headers: dict[str, str], params: dict[str, Any]) -> None:
    for name, wire, shape in plan.headers:
        value = headers.get(wire)
        if value is None:
            continue
        if shape.type_name == "list":
            params[name] = [_from_text(item, shape.member, "header", name)
                            for item in _split_header_list(value)]
        elif shape.type_name == "string" and shape.serialization.get("jsonvalue"):
            try:
                params[name] = json.loads(base64.b64decode(value, validate=True))
            except (ValueError, binascii.Error):
                raise _type_error(name, "header", value, "JSON value (base64)") from None
        else:
            params[name] = _from_text(value, shape, "header", name)
    for name, prefix, _shape in plan.header_maps:
        found = {key[len(prefix):]: value for key, value in headers.items()
                 if key.startswith(prefix)}
        if found:
            params[name] = found


def _split_header_list(value: str) -> list[str]:
    """Split a list header on commas, honouring the double quotes botocore puts around items
    that contain a comma or a quote."""
    items: list[str] = []
    i, n = 0, len(value)
    while i < n:
        while i < n and value[i] in " \t":
            i += 1
        if i < n and value[i] == '"':
            i += 1
            chars: list[str] = []
            while i < n and value[i] != '"':
                if value[i] == "\\" and i + 1 < n:
                    i += 1
                chars.append(value[i])
                i += 1
            items.append("".join(chars))
            i = value.find(",", i)
            i = n if i < 0 else i + 1
        else:
            end = value.find(",", i)
            end = n if end < 0 else end
            items.append(value[i:end].strip())
            i = end + 1
    return items


def scalar_from_text(text: str, kind: str, timestamp: Callable[[str], Any]) -> Any:
    """``text`` as a value of the model's scalar type ``kind`` (``timestamp`` parses the
    protocol's timestamps); other types stay text. Raises ``ValueError`` (or ``TypeError``,
    ``OverflowError``) when the text is not of that type: each protocol words its own error."""
    if kind in ("integer", "long"):
        return int(text)
    if kind in ("double", "float"):
        return float(text)
    if kind == "boolean":
        lowered = text.lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        raise ValueError(text)
    if kind == "timestamp":
        return timestamp(text)
    if kind == "blob":
        return base64.b64decode(text, validate=True)
    return text


def _from_text(text: str, shape: Shape, location: str, name: str) -> Any:
    """A label, query or header value converted to ``shape``'s type."""
    kind = shape.type_name
    if kind == "string":
        return text
    try:
        return scalar_from_text(text, kind, lambda value: _parse_timestamp(
            value, timestamp_format(shape, location)))
    except (ValueError, TypeError, OverflowError, binascii.Error):
        raise _type_error(name, location, text, kind) from None


def _type_error(name: str, location: str, text: str, kind: str) -> ValidationError:
    path = name[:1].lower() + name[1:]
    return ValidationError(
        f"1 validation error detected: Value '{text}' at '{path}' failed to satisfy "
        f"constraint: Member must be a valid {kind} in the {location}")


def _parse_timestamp(value: Any, fmt: str) -> datetime.datetime:
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int | float):
        return _EPOCH + datetime.timedelta(seconds=value)
    if fmt == "rfc822":
        parsed = email.utils.parsedate_to_datetime(value)
    elif fmt == "unixtimestamp":
        return _EPOCH + datetime.timedelta(seconds=float(value))
    else:
        parsed = datetime.datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed.astimezone(datetime.UTC)


def _load_json(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8"))  # not json's UTF-16/32 guessing: AWS reads UTF-8
    except UnicodeDecodeError as exc:
        raise InvalidRequestContent(
            f"{_PREFIX}Invalid UTF-8 start byte 0x{body[exc.start]:02x}"
            f"{_SOURCE}; line: 1, column: {exc.start + 1}]") from None
    except json.JSONDecodeError as exc:
        raise InvalidRequestContent(_jackson_syntax_message(exc)) from None


def _jackson_syntax_message(exc: json.JSONDecodeError) -> str:
    """Python's JSON error in the shape of the Jackson message AWS returns."""
    if exc.pos < len(exc.doc):
        ch = exc.doc[exc.pos]
        shown = ch if ch.isprintable() else f"(CTRL-CHAR, code {ord(ch)})"
        what = f"Unexpected character ('{shown}' (code {ord(ch)})): {exc.msg.lower()}"
    else:
        what = f"Unexpected end-of-input: {exc.msg.lower()}"
    return f"{_PREFIX}{what}{_SOURCE}; line: {exc.lineno}, column: {exc.colno}]"


def check_json_payload(body: bytes) -> None:
    """Raise ``InvalidRequestContent`` unless ``body`` is one JSON value, as Lambda demands of
    an Invoke payload (any JSON value: an object, a string, a number...).

    ``parse_request`` leaves a blob payload as it came: Lambda checks the size (413) before
    the JSON, and the Invoke operation is the one that knows the size limit.

    It runs on every invoke, so it asks json's C scanner directly (``json.loads`` wraps it in
    Python code and two regular expressions); anything the scanner does not accept at once
    (leading whitespace, an error) takes ``json.loads``, which has the last word and the
    error's position.
    """
    try:
        text = body.decode("utf-8")
        end = _scan_json(text, 0)[1]
    except (UnicodeDecodeError, StopIteration, ValueError):
        _load_json(body)
        return
    if end != len(text) and text[end:].strip(" \t\n\r"):
        _load_json(body)


_scan_json = json.JSONDecoder().scan_once


class _Mismatch(Exception):
    """A JSON value of the wrong type; ``parse_request`` words it as Jackson would."""

    def __init__(self, shape: Shape, value: Any, path: tuple[Any, ...]) -> None:
        super().__init__(shape.name)
        self.shape, self.value, self.path = shape, value, path

    def message(self, root: str) -> str:
        kind = self.shape.type_name
        target = _JAVA_TYPE.get(kind, f"com.amazonaws.lambda.model.{self.shape.name}")
        value = self.value
        if kind == "blob" and isinstance(value, str):
            found = "broken Base64 encoding"
            what = "Cannot access contents of TextNode as binary due to "
        else:
            what = f"Cannot deserialize value of type `{target}` from "
            if isinstance(value, dict):
                found = "Object value (token `JsonToken.START_OBJECT`)"
            elif isinstance(value, list):
                found = "Array value (token `JsonToken.START_ARRAY`)"
            elif isinstance(value, str):
                found = f'String "{value}": not a valid `{target}` value'
            elif isinstance(value, bool):
                found = f"Boolean value ({str(value).lower()})"
            else:
                found = f"Number value ({value})"
        chain = "".join(f'["{p}"]' if isinstance(p, str) else f"[{p}]" for p in self.path)
        return (f"{_PREFIX}{what}{found}{_SOURCE}] (through reference chain: "
                f"com.amazonaws.lambda.model.{root}{chain})")


def _from_json(shape: Shape, value: Any, path: tuple[Any, ...]) -> Any:
    """Convert one decoded JSON value to ``shape``'s Python form, checking its type."""
    return _CONVERTERS.get(shape.type_name, _as_is)(shape, value, path)


def _structure(shape: Shape, value: Any, path: tuple[Any, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Mismatch(shape, value, path)
    out: dict[str, Any] = {}
    members = shape.members  # type: ignore[attr-defined]
    top = not path
    for key, item in value.items():
        member = members.get(key)
        if member is None or item is None:
            continue  # unknown members are ignored, as AWS does; null means absent
        if top and "location" in member.serialization:
            continue  # a located member is read from its location, never from the body
        out[key] = _from_json(member, item, (*path, key))
    return out


def _list(shape: Shape, value: Any, path: tuple[Any, ...]) -> list[Any]:
    if not isinstance(value, list):
        raise _Mismatch(shape, value, path)
    member = shape.member  # type: ignore[attr-defined]
    return [None if item is None else _from_json(member, item, (*path, i))
            for i, item in enumerate(value)]


def _map(shape: Shape, value: Any, path: tuple[Any, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Mismatch(shape, value, path)
    value_shape = shape.value  # type: ignore[attr-defined]
    return {key: None if item is None else _from_json(value_shape, item, (*path, key))
            for key, item in value.items()}


def _string(shape: Shape, value: Any, path: tuple[Any, ...]) -> str:
    if not isinstance(value, str):
        raise _Mismatch(shape, value, path)
    return value


def _integer(shape: Shape, value: Any, path: tuple[Any, ...]) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise _Mismatch(shape, value, path)
    low, high = _INT_RANGE[shape.type_name]
    if not low <= value <= high:
        kind = "int" if shape.type_name == "integer" else "long"
        raise InvalidRequestContent(
            f"{_PREFIX}Numeric value ({value}) out of range of {kind} ({low} - {high}){_SOURCE}]")
    return value


def _double(shape: Shape, value: Any, path: tuple[Any, ...]) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise _Mismatch(shape, value, path)
    return float(value)


def _boolean(shape: Shape, value: Any, path: tuple[Any, ...]) -> bool:
    if not isinstance(value, bool):
        raise _Mismatch(shape, value, path)
    return value


def _blob(shape: Shape, value: Any, path: tuple[Any, ...]) -> bytes:
    if not isinstance(value, str):
        raise _Mismatch(shape, value, path)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _Mismatch(shape, value, path) from None


def _timestamp(shape: Shape, value: Any, path: tuple[Any, ...]) -> datetime.datetime:
    try:
        return _parse_timestamp(value, timestamp_format(shape, None))
    except (ValueError, TypeError, OverflowError):
        raise _Mismatch(shape, value, path) from None


def _as_is(shape: Shape, value: Any, path: tuple[Any, ...]) -> Any:
    return value


_CONVERTERS: dict[str, Callable[[Shape, Any, tuple[Any, ...]], Any]] = {
    "structure": _structure, "list": _list, "map": _map, "string": _string,
    "integer": _integer, "long": _integer, "double": _double, "float": _double,
    "boolean": _boolean, "blob": _blob, "timestamp": _timestamp,
}
