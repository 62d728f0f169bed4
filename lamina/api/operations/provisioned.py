"""Put/Get/Delete/ListProvisionedConcurrencyConfig(s).

A config is accepted only on a published version or an alias of published versions, never twice
for the same version (directly and through an alias), and within the function's reserved
concurrency (or, without one, what the account leaves unreserved). ``Status`` is the engine's
truth: ``READY`` once every requested environment has finished Init, ``IN_PROGRESS`` before.
"""

from __future__ import annotations

from typing import Any

from lamina.api import provisioning
from lamina.api.catalog import catalog
from lamina.api.configuration import lambda_timestamp
from lamina.api.context import ApiContext
from lamina.api.naming import LATEST
from lamina.api.operations import Call, operation
from lamina.api.operations.functions import load
from lamina.api.paging import listing, page
from lamina.errors import (
    InvalidParameterValue,
    ProvisionedConcurrencyConfigNotFound,
    ResourceConflict,
)
from lamina.store.api import NotFound
from lamina.store.provisioned import ProvisionedRecord

UNPUBLISHED = ("Provisioned Concurrency Configs cannot be applied to unpublished function "
               "versions.")


async def _target(context: ApiContext, params: dict[str, Any]) -> tuple[str, str]:
    """(function, qualifier) of a request; the qualifier must name a version or an alias."""
    ref = context.naming.parse(params["FunctionName"], params.get("Qualifier"))
    qualifier = ref.qualifier or LATEST
    if qualifier == LATEST:
        raise InvalidParameterValue(UNPUBLISHED)
    record = await load(context, ref.name, qualifier)
    if record.version == LATEST:  # an alias of $LATEST
        raise InvalidParameterValue(UNPUBLISHED)
    return ref.name, qualifier


def _describe(context: ApiContext, config: ProvisionedRecord,
              split: dict[str, int]) -> dict[str, Any]:
    ready = provisioning.ready(context, config.function, split)
    done = ready >= config.requested
    failures = [reason for version in split
                if (reason := context.engine.provisioned_failure(config.function, version))]
    described = {"RequestedProvisionedConcurrentExecutions": config.requested,
                 "AvailableProvisionedConcurrentExecutions": ready,
                 "AllocatedProvisionedConcurrentExecutions": ready,
                 "Status": "READY" if done else "IN_PROGRESS",
                 "LastModified": config.last_modified}
    if failures and not done:
        described["Status"] = "FAILED"
        described["StatusReason"] = ("FUNCTION_ERROR_INIT_FAILURE: the function's Init keeps "
                                     f"failing ({failures[0]})")
    return described


async def _check_overlap(context: ApiContext, new: ProvisionedRecord,
                         others: list[ProvisionedRecord]) -> None:
    """One version, one source of provisioned concurrency (itself or one alias)."""
    mine = set(await provisioning.versions_of(context, new))
    for other in others:
        if mine & set(await provisioning.versions_of(context, other)):
            kind = "Alias" if not new.qualifier.isdigit() else "Version"
            raise ResourceConflict(
                f"{kind} {new.qualifier} cannot be configured with Provisioned Concurrency: "
                f"{other.qualifier} already provisions its version.")


async def _check_capacity(context: ApiContext, new: ProvisionedRecord,
                          others: list[ProvisionedRecord]) -> None:
    total = new.requested + sum(o.requested for o in others)
    reserved = await context.db(context.store.get_reserved_concurrency, new.function)
    if reserved is not None:
        if total > reserved:
            raise InvalidParameterValue(
                "Requested Provisioned Concurrency should not be greater than the "
                f"reservedConcurrentExecution for function ({reserved}).")
        return
    settings = context.settings
    reservations = await context.db(context.store.reserved_concurrency)
    everything = await context.db(catalog(context).provisioned.list)
    unreserved_provisioned = sum(
        c.requested for c in everything
        if c.function not in reservations and c.function != new.function)
    room = (settings.account_concurrency - sum(reservations.values())
            - settings.min_unreserved_concurrency - unreserved_provisioned)
    if total > room:
        raise InvalidParameterValue(
            "Specified ConcurrentExecutions for function is greater than account's unreserved "
            f"concurrency ({room} may still be provisioned).")


@operation("PutProvisionedConcurrencyConfig")
async def put_provisioned_concurrency_config(call: Call) -> dict[str, Any]:
    context, params = call.context, call.params
    name, qualifier = await _target(context, params)
    config = ProvisionedRecord(name, qualifier, params["ProvisionedConcurrentExecutions"],
                               lambda_timestamp())
    stores = catalog(context)
    others = [c for c in await context.db(stores.provisioned.list, name)
              if c.qualifier != qualifier]
    await _check_overlap(context, config, others)
    await _check_capacity(context, config, others)
    try:
        await context.db(stores.provisioned.put, config)
    except NotFound:
        raise context.naming.not_found(name) from None
    await provisioning.sync(context, name)
    return _describe(context, config, await provisioning.versions_of(context, config))


async def _existing(context: ApiContext, params: dict[str, Any]) -> ProvisionedRecord:
    name, qualifier = await _target(context, params)
    config = await context.db(catalog(context).provisioned.get, name, qualifier)
    if config is None:
        raise ProvisionedConcurrencyConfigNotFound(
            "No Provisioned Concurrency Config found for this function")
    return config


@operation("GetProvisionedConcurrencyConfig")
async def get_provisioned_concurrency_config(call: Call) -> dict[str, Any]:
    config = await _existing(call.context, call.params)
    return _describe(call.context, config,
                     await provisioning.versions_of(call.context, config))


@operation("DeleteProvisionedConcurrencyConfig")
async def delete_provisioned_concurrency_config(call: Call) -> dict[str, Any]:
    context = call.context
    config = await _existing(context, call.params)
    await context.db(catalog(context).provisioned.delete, config.function, config.qualifier)
    await provisioning.sync(context, config.function)
    return {}


@operation("ListProvisionedConcurrencyConfigs")
async def list_provisioned_concurrency_configs(call: Call) -> dict[str, Any]:
    context, params = call.context, call.params
    function = await load(context, params["FunctionName"], allow_qualifier=False)
    configs = await context.db(catalog(context).provisioned.list, function.name)
    configs, marker = page(configs, lambda c: c.qualifier, params)
    items = []
    for config in configs:
        item = _describe(context, config, await provisioning.versions_of(context, config))
        item["FunctionArn"] = context.naming.function_arn(config.function, config.qualifier)
        items.append(item)
    return listing("ProvisionedConcurrencyConfigs", items, marker)
