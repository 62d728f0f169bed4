"""AWS's query protocol, as IAM and STS speak it: form-encoded requests, XML answers.

A request is ``Action=CreateUser&Version=2010-05-08&UserName=bob&Tags.member.1.Key=k...``
(POSTed to ``/``, or in the query string of a GET); the operation's input shape in botocore's
model says how nested members are spelled (``.member.N`` for lists, ``.entry.N.key`` for maps,
dots for structures) and of which type each scalar is. The answer is
``<CreateUserResponse xmlns=...><CreateUserResult>...</CreateUserResult><ResponseMetadata>
<RequestId>...`` with the output shape's members as elements; a failure is
``<ErrorResponse><Error><Type>Sender</Type><Code>NoSuchEntity</Code><Message>...``, and the
code is what boto3 turns into ``client.exceptions.NoSuchEntityException``.

This module knows only the protocol; the operations live in ``lamina/api/iam/``. Lambda's own
``ServiceError``s (signature and authorization failures, validation) are renamed here to the
codes IAM and STS use for the same failure (``InvalidClientTokenId``,
``SignatureDoesNotMatch``, ``AccessDenied``, ``ValidationError``...).
"""

from __future__ import annotations

import base64
import datetime
import functools
from typing import Any, ClassVar
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from botocore.model import OperationModel, ServiceModel, Shape

from lamina.api.model import service_model
from lamina.api.parse import scalar_from_text
from lamina.errors import (
    AccessDenied,
    IncompleteSignature,
    InvalidSignature,
    MissingAuthenticationToken,
    ServiceError,
    UnrecognizedClient,
    ValidationError,
    _UserError,
)
from lamina.http.types import Request, Response
from lamina.identity.errors import ExpiredToken

_XML = [("Content-Type", "text/xml")]
_FORM = "application/x-www-form-urlencoded"


class QueryError(_UserError):
    """An IAM/STS failure under the code those services use. Subclasses name one each."""

    code: ClassVar[str] = "InvalidInput"
    status: ClassVar[int] = 400


class NoSuchEntity(QueryError):
    code, status = "NoSuchEntity", 404


class EntityAlreadyExists(QueryError):
    code, status = "EntityAlreadyExists", 409


class MalformedPolicyDocument(QueryError):
    code, status = "MalformedPolicyDocument", 400


class DeleteConflict(QueryError):
    code, status = "DeleteConflict", 409


class LimitExceeded(QueryError):
    code, status = "LimitExceeded", 409


class InvalidInput(QueryError):
    code, status = "InvalidInput", 400


class InvalidAction(QueryError):
    code, status = "InvalidAction", 400


class MissingAction(QueryError):
    code, status = "MissingAction", 400


class UnmodifiableEntity(QueryError):
    code, status = "UnmodifiableEntity", 400


# Lambda's names for a failure -> the query services' names for it.
_RENAMED: dict[type[ServiceError], tuple[str, int]] = {
    UnrecognizedClient: ("InvalidClientTokenId", 403),
    InvalidSignature: ("SignatureDoesNotMatch", 403),
    ExpiredToken: ("ExpiredToken", 403),
    AccessDenied: ("AccessDenied", 403),
    ValidationError: ("ValidationError", 400),
    IncompleteSignature: ("IncompleteSignature", 400),
    MissingAuthenticationToken: ("MissingAuthenticationToken", 403),
}


def form_params(request: Request) -> dict[str, str]:
    """The request's parameters: the query string's, then a form body's (the body wins)."""
    params = dict(parse_qsl(request.query_string, keep_blank_values=True))
    content_type = request.headers.get("content-type", _FORM)
    if request.body and content_type.split(";")[0].strip().lower() in (_FORM, ""):
        try:
            text = request.body.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput("The request body is not valid UTF-8.") from None
        params.update(parse_qsl(text, keep_blank_values=True))
    return params


def resolve_operation(service: str, params: dict[str, str]) -> OperationModel:
    action = params.get("Action")
    if not action:
        raise MissingAction("Missing Action")
    model = service_model(service)
    if action not in model.operation_names:
        raise InvalidAction(f"Could not find operation {action} for version "
                            f"{model.api_version}")
    return model.operation_model(action)


# -- parsing ------------------------------------------------------------------------------------

def parse_params(operation: OperationModel, form: dict[str, str]) -> dict[str, Any]:
    """The operation's input members out of the flat form, typed by the model."""
    shape = operation.input_shape
    if shape is None:
        return {}
    prefixes = _prefixes(tuple(form))
    return _structure(shape, form, "", prefixes)


def _prefixes(keys: tuple[str, ...]) -> frozenset[str]:
    """Every dotted prefix present (``A.member.1.Key`` gives ``A``, ``A.member``, ...)."""
    found = set()
    for key in keys:
        parts = key.split(".")
        for end in range(1, len(parts)):
            found.add(".".join(parts[:end]))
    return frozenset(found)


def _structure(shape: Shape, form: dict[str, str], prefix: str,
               prefixes: frozenset[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, member in shape.members.items():
        key = prefix + member.serialization.get("name", name)
        value = _value(member, form, key, prefixes)
        if value is not None:
            out[name] = value
    return out


def _value(shape: Shape, form: dict[str, str], key: str, prefixes: frozenset[str]) -> Any:
    kind = shape.type_name
    if kind == "structure":
        if key not in prefixes:
            return None
        return _structure(shape, form, key + ".", prefixes)
    if kind == "list":
        if form.get(key) == "":
            return []
        base = key if shape.serialization.get("flattened") else \
            f"{key}.{shape.member.serialization.get('name', 'member')}"
        items = []
        index = 1
        while f"{base}.{index}" in form or f"{base}.{index}" in prefixes:
            items.append(_value(shape.member, form, f"{base}.{index}", prefixes))
            index += 1
        return items if items or key in prefixes else None
    if kind == "map":
        if key not in prefixes:
            return None
        result = {}
        index = 1
        while f"{key}.entry.{index}" in prefixes:
            entry = f"{key}.entry.{index}"
            result[form.get(f"{entry}.key", "")] = _value(shape.value, form, f"{entry}.value",
                                                          prefixes)
            index += 1
        return result
    text = form.get(key)
    if text is None:
        return None
    return _scalar(shape, text, key)


def _scalar(shape: Shape, text: str, key: str) -> Any:
    kind = shape.type_name
    try:
        return scalar_from_text(text, kind, lambda value: datetime.datetime.fromisoformat(
            value.replace("Z", "+00:00")))
    except ValueError:
        raise ValidationError(f"1 validation error detected: Value '{text}' at '{key}' failed "
                              f"to satisfy constraint: Member must be of type {kind}") from None


# -- serialising --------------------------------------------------------------------------------

def serialize_result(operation: OperationModel, output: dict[str, Any] | None,
                     request_id: str) -> Response:
    name = operation.name
    namespace = _namespace(operation.service_model)
    parts = [f'<{name}Response xmlns="{namespace}">']
    shape = operation.output_shape
    if shape is not None:
        wrapper = shape.serialization.get("resultWrapper") or f"{name}Result"
        parts.append(f"<{wrapper}>")
        _write_members(shape, output or {}, parts)
        parts.append(f"</{wrapper}>")
    parts.append(f"<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata>"
                 f"</{name}Response>")
    return Response(200, [*_XML, ("x-amzn-RequestId", request_id)], "".join(parts).encode())


def _write_members(shape: Shape, value: dict[str, Any], parts: list[str]) -> None:
    for name, member in shape.members.items():
        if name in value and value[name] is not None:
            tag = member.serialization.get("name", name)
            parts.append(f"<{tag}>")
            _write(member, value[name], parts)
            parts.append(f"</{tag}>")


def _write(shape: Shape, value: Any, parts: list[str]) -> None:
    kind = shape.type_name
    if kind == "structure":
        _write_members(shape, value, parts)
    elif kind == "list":
        tag = shape.member.serialization.get("name", "member")
        for item in value:
            parts.append(f"<{tag}>")
            _write(shape.member, item, parts)
            parts.append(f"</{tag}>")
    elif kind == "map":
        for key, item in value.items():
            parts.append(f"<entry><key>{escape(str(key))}</key><value>")
            _write(shape.value, item, parts)
            parts.append("</value></entry>")
    elif kind == "boolean":
        parts.append("true" if value else "false")
    elif kind == "timestamp":
        parts.append(_iso(value))
    elif kind == "blob":
        parts.append(base64.b64encode(bytes(value)).decode())
    else:
        parts.append(escape(str(value)))


def _iso(value: Any) -> str:
    if isinstance(value, int | float):
        value = datetime.datetime.fromtimestamp(value, datetime.UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


@functools.cache
def _namespace(model: ServiceModel) -> str:
    return str(model.metadata.get("xmlNamespace", ""))


def serialize_query_error(service: str, exc: ServiceError, request_id: str) -> Response:
    code, status = exc.code, exc.status
    for kind, renamed in _RENAMED.items():
        if isinstance(exc, kind):
            code, status = renamed
            break
    else:
        if not isinstance(exc, QueryError):
            code = "ServiceFailure" if exc.status >= 500 else code
    fault = "Receiver" if status >= 500 else "Sender"
    namespace = _namespace(service_model(service))
    body = (f'<ErrorResponse xmlns="{namespace}"><Error><Type>{fault}</Type><Code>{code}</Code>'
            f"<Message>{escape(exc.message)}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>")
    return Response(status, [*_XML, ("x-amzn-RequestId", request_id)], body.encode())


def query_service(request: Request) -> str | None:
    """``iam`` or ``sts`` when a request to ``/`` is for one of them (by its credential scope,
    else, unsigned, by the API version it names), ``None`` otherwise."""
    authorization = request.headers.get("authorization")
    if authorization is not None:
        credential = authorization.partition("Credential=")[2].split(",", 1)[0]
        parts = credential.split("/")
        service = parts[3] if len(parts) == 5 else None
        return service if service in ("iam", "sts") else None
    text = request.query_string
    if "X-Amz-Credential=" in text:
        for service in ("iam", "sts"):
            if f"%2F{service}%2F" in text or f"/{service}/" in text:
                return service
        return None
    body = request.body[:4096]
    if b"Version=2011-06-15" in body or "Version=2011-06-15" in text:
        return "sts"
    if b"Action=" in body or "Action=" in text:
        return "iam"
    return None
