"""Invoke (RequestResponse, Event, DryRun) and the older InvokeAsync.

The warm path reads no database: the function's target comes from the in-memory cache, which
every write invalidates. Event invocations (and InvokeAsync) answer 202 only once the event is
committed to the durable queue of ``lamina/invoke``, which retries it and routes its outcome.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import time
from typing import Any

from lamina.api.context import ApiContext, target_from_record
from lamina.api.layers import ensure_opt
from lamina.api.naming import LATEST
from lamina.api.operations import Call, operation
from lamina.api.parse import check_json_payload
from lamina.api.qualifiers import alias_of, is_version, pick
from lamina.engine.api import FunctionTarget, InvokeRequest
from lamina.errors import (
    InternalError,
    InvalidRequestContent,
    RequestTooLarge,
    ResourceConflict,
)
from lamina.invoke.api import NewEvent
from lamina.observe.ids import new_trace_id
from lamina.store.api import FunctionRecord

log = logging.getLogger(__name__)

MAX_SYNC_PAYLOAD = 6 * 1024 * 1024
MAX_ASYNC_PAYLOAD = 1024 * 1024
MAX_CLIENT_CONTEXT = 3583
PENDING_WAIT_S = 10.0


async def resolve_target(context: ApiContext, name_param: str,
                         qualifier: str | None) -> tuple[FunctionRecord, FunctionTarget]:
    """The runnable target of a FunctionName + Qualifier, from the cache when possible. An
    alias picks its version here, per call (weighted routing)."""
    ref = context.naming.parse(name_param, qualifier)
    version = ref.qualifier or LATEST
    if not is_version(version):
        alias = await alias_of(context, ref.name, version)
        if alias is None:
            raise context.naming.not_found(ref.name, version)
        version = pick(alias)
    cached = context.cache.get(ref.name, version)
    if cached is not None:
        return cached
    return await context.cache.load_once(
        (ref.name, version, ref.qualifier or ""),
        lambda: _load_target(context, ref.name, version, ref.qualifier))


async def _load_target(context: ApiContext, name: str, version: str,
                       qualifier: str | None) -> tuple[FunctionRecord, FunctionTarget]:
    """Read, wait out Pending, unpack the layers of and cache one function version."""
    generation = context.cache.generation(name)
    deadline = time.monotonic() + PENDING_WAIT_S
    while True:
        record = await context.db(context.store.get_function, name, version)
        if record is None:
            raise context.naming.not_found(name, qualifier)
        state = record.config.get("State")
        if state == "Active":
            break
        if state != "Pending" or time.monotonic() > deadline:
            raise ResourceConflict(
                "The operation cannot be performed at this time. The function is currently in "
                f"the following state: {state}")
        # Lambda refuses invokes while Pending; a brief wait instead spares scripts that do
        # create-then-invoke a failure the real service would give them.
        await asyncio.sleep(0.01)
    await ensure_opt(context.blobs, context.layers_root, record.config)
    target = target_from_record(record, context.naming, context.code_root, context.layers_root)
    context.cache.put(record, target, generation)
    return record, target


def _client_context(encoded: str | None) -> str | None:
    if not encoded:
        return None
    if len(encoded) > MAX_CLIENT_CONTEXT:
        raise InvalidRequestContent(
            f"Client context must be at most {MAX_CLIENT_CONTEXT} bytes long.")
    try:
        decoded = base64.b64decode(encoded, validate=True).decode()
        document = json.loads(decoded)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidRequestContent(
            "Client context must be a valid Base64-encoded JSON object.") from None
    if not decoded.isascii() or "\r" in decoded or "\n" in decoded:
        # It travels to the runtime as one header line: the same document, re-encoded
        # without line breaks (JSON allows them between tokens) and with non-ASCII escaped.
        decoded = json.dumps(document, separators=(",", ":"))
    return decoded


def _payload(raw: bytes | None, limit: int, operation_name: str) -> bytes:
    payload = raw or b"{}"
    if len(payload) > limit:
        raise RequestTooLarge(
            f"Request must be smaller than {limit} bytes for the {operation_name} operation")
    check_json_payload(payload)
    return payload


@operation("Invoke")
async def invoke(call: Call) -> dict[str, Any]:
    context, params = call.context, call.params
    invocation_type = params.get("InvocationType") or "RequestResponse"
    record, target = await resolve_target(context, params["FunctionName"],
                                          params.get("Qualifier"))
    if invocation_type == "DryRun":
        return {"StatusCode": 204}
    limit = MAX_ASYNC_PAYLOAD if invocation_type == "Event" else MAX_SYNC_PAYLOAD
    payload = _payload(params.get("Payload"), limit, "InvokeFunction")
    qualifier = context.naming.parse(params["FunctionName"], params.get("Qualifier")).qualifier
    request = InvokeRequest(
        payload=payload,
        request_id=call.request_id,
        invoked_arn=context.naming.function_arn(target.name, qualifier),
        trace_id=new_trace_id(call.request.headers.get("x-amzn-trace-id")),
        client_context=_client_context(params.get("ClientContext")),
        tail_log=params.get("LogType") == "Tail" and invocation_type == "RequestResponse",
    )
    if invocation_type == "Event":
        # Lambda passes the client context to synchronous invocations only.
        await _enqueue(context, record, qualifier, request)
        return {"StatusCode": 202}
    result = await context.engine.invoke(target, request)
    output: dict[str, Any] = {"StatusCode": 200, "Payload": result.payload,
                              "ExecutedVersion": result.executed_version}
    if result.function_error:
        output["FunctionError"] = result.function_error
    if result.log_tail is not None:
        output["LogResult"] = result.log_tail
    return output


@operation("InvokeAsync")
async def invoke_async(call: Call) -> dict[str, Any]:
    context, params = call.context, call.params
    record, target = await resolve_target(context, params["FunctionName"], None)
    body = params.get("InvokeArgs")
    raw = body.read() if hasattr(body, "read") else body
    payload = _payload(raw, MAX_ASYNC_PAYLOAD, "InvokeAsync")
    request = InvokeRequest(payload=payload, request_id=call.request_id,
                            invoked_arn=target.function_arn, trace_id=new_trace_id(None))
    await _enqueue(context, record, None, request)
    return {"Status": 202}


async def _enqueue(context: ApiContext, record: FunctionRecord, qualifier: str | None,
                   request: InvokeRequest) -> None:
    """Commit an Event invocation to the durable queue; the 202 may go out once this returns."""
    if context.async_events is None:
        raise InternalError("Asynchronous invocation is not available on this server.")
    await context.async_events.submit(NewEvent(
        function_name=record.name, qualifier=qualifier, request_id=request.request_id,
        invoked_arn=request.invoked_arn, trace_id=request.trace_id, payload=request.payload,
        enqueued_at=time.time(), function_created=record.created))

