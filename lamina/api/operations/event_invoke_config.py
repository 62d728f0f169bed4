"""Put, Get, Update, Delete and ListFunctionEventInvokeConfig(s): a function's asynchronous
invocation settings per qualifier (retries, maximum event age, destinations).

What the model cannot check is checked here before anything is stored: the function (and
qualifier) must exist, at least one setting must be given, and each destination must be a
lamina function of this region and account that exists now. A destination deleted later is the
delivery's concern (a logged drop, nothing else lost).
"""

from __future__ import annotations

import time
from typing import Any

from lamina.api.context import ApiContext
from lamina.api.naming import LATEST
from lamina.api.operations import Call, operation
from lamina.api.operations.invoke import resolve_target
from lamina.api.paging import listing
from lamina.errors import InternalError, InvalidParameterValue, ResourceNotFound
from lamina.invoke.api import AsyncInvocations, EventInvokeConfigRecord
from lamina.invoke.destinations import parse_function_arn
from lamina.store.api import NotFound

_SETTINGS = ("MaximumRetryAttempts", "MaximumEventAgeInSeconds", "DestinationConfig")
_KINDS = ("OnSuccess", "OnFailure")


def _events(context: ApiContext) -> AsyncInvocations:
    if context.async_events is None:
        raise InternalError("Asynchronous invocation is not available on this server.")
    return context.async_events


async def _function(call: Call) -> tuple[str, str]:
    """(name, qualifier) of an existing function version or alias; ``$LATEST`` when none."""
    params = call.params
    ref = call.context.naming.parse(params["FunctionName"], params.get("Qualifier"))
    await resolve_target(call.context, ref.name, ref.qualifier)
    return ref.name, ref.qualifier or LATEST


def _not_configured(context: ApiContext, name: str, qualifier: str) -> ResourceNotFound:
    arn = context.naming.function_arn(name, qualifier)
    return ResourceNotFound(f"The function {arn} doesn't have an EventInvokeConfig")


async def _check_destination(context: ApiContext, kind: str, arn: str) -> None:
    parsed = parse_function_arn(arn)
    if parsed is None:
        raise InvalidParameterValue(
            f"The destination ARN {arn} is invalid: lamina delivers {kind} records to Lambda "
            "functions only.")
    name, qualifier = parsed
    expected = context.naming.function_arn(name, qualifier)
    if arn != expected:
        raise InvalidParameterValue(
            f"The destination ARN {arn} is invalid: it is not in this region and account.")
    try:
        await resolve_target(context, name, qualifier)
    except ResourceNotFound:
        raise InvalidParameterValue(
            f"The destination ARN {arn} is invalid: Function not found: {arn}") from None


async def _settings(call: Call) -> dict[str, Any]:
    """The settings the request gives, checked, in Lambda's shape."""
    given = {key: call.params[key] for key in _SETTINGS if key in call.params}
    if not given:
        raise InvalidParameterValue(
            "You must specify at least one of error handling or destination setting.")
    destinations = given.get("DestinationConfig")
    if destinations is not None:
        cleaned: dict[str, Any] = {}
        for kind in _KINDS:
            if kind not in destinations:
                continue
            arn = (destinations[kind] or {}).get("Destination") or ""
            if arn:
                await _check_destination(call.context, kind, arn)
            cleaned[kind] = {"Destination": arn} if arn else {}
        given["DestinationConfig"] = cleaned
    return given


def _merge(stored: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """UpdateFunctionEventInvokeConfig: what is given replaces, what is not stays (each of
    OnSuccess and OnFailure on its own)."""
    merged = {**stored, **{k: v for k, v in changes.items() if k != "DestinationConfig"}}
    if "DestinationConfig" in changes:
        merged["DestinationConfig"] = {**(stored.get("DestinationConfig") or {}),
                                       **changes["DestinationConfig"]}
    return merged


def _describe(context: ApiContext, record: EventInvokeConfigRecord) -> dict[str, Any]:
    config = record.config
    destinations = config.get("DestinationConfig") or {}
    output: dict[str, Any] = {
        "LastModified": record.last_modified,
        "FunctionArn": context.naming.function_arn(record.function_name, record.qualifier),
        "DestinationConfig": {kind: dict(destinations.get(kind) or {}) for kind in _KINDS},
    }
    for key in ("MaximumRetryAttempts", "MaximumEventAgeInSeconds"):
        if key in config:
            output[key] = config[key]
    return output


@operation("PutFunctionEventInvokeConfig")
async def put_function_event_invoke_config(call: Call) -> dict[str, Any]:
    context = call.context
    events = _events(context)
    name, qualifier = await _function(call)
    record = EventInvokeConfigRecord(name, qualifier, await _settings(call), time.time())
    try:
        await context.db(events.configs.put_config, record)
    except NotFound:
        raise context.naming.not_found(name) from None
    events.config_changed(name)
    return _describe(context, record)


@operation("UpdateFunctionEventInvokeConfig")
async def update_function_event_invoke_config(call: Call) -> dict[str, Any]:
    context = call.context
    events = _events(context)
    name, qualifier = await _function(call)
    changes = await _settings(call)
    try:
        record = await context.db(events.configs.update_config, name, qualifier,
                                  lambda stored: _merge(stored, changes), time.time())
    except NotFound:
        raise _not_configured(context, name, qualifier) from None
    events.config_changed(name)
    return _describe(context, record)


@operation("GetFunctionEventInvokeConfig")
async def get_function_event_invoke_config(call: Call) -> dict[str, Any]:
    context = call.context
    name, qualifier = await _function(call)
    record = await context.db(_events(context).configs.get_config, name, qualifier)
    if record is None:
        raise _not_configured(context, name, qualifier)
    return _describe(context, record)


@operation("DeleteFunctionEventInvokeConfig")
async def delete_function_event_invoke_config(call: Call) -> dict[str, Any]:
    context = call.context
    events = _events(context)
    name, qualifier = await _function(call)
    if not await context.db(events.configs.delete_config, name, qualifier):
        raise _not_configured(context, name, qualifier)
    events.config_changed(name)
    return {}


@operation("ListFunctionEventInvokeConfigs")
async def list_function_event_invoke_configs(call: Call) -> dict[str, Any]:
    context, params = call.context, call.params
    ref = context.naming.parse(params["FunctionName"])
    if await context.db(context.store.get_function, ref.name) is None:
        raise context.naming.not_found(ref.name)
    limit = params.get("MaxItems") or 50
    page = await context.db(_events(context).configs.list_configs, ref.name,
                            params.get("Marker"), limit + 1)
    return listing("FunctionEventInvokeConfigs",
                   [_describe(context, record) for record in page[:limit]],
                   page[limit - 1].qualifier if len(page) > limit else None)
