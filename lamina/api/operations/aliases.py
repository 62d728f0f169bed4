"""CreateAlias, GetAlias, UpdateAlias, DeleteAlias and ListAliases.

Every check runs before anything is written; the store re-checks that the versions exist
inside its transaction. A change drops the cached alias (Invoke reads it from the cache) and
re-spreads provisioned concurrency configured on the alias.
"""

from __future__ import annotations

from typing import Any

from lamina.api import provisioning
from lamina.api.catalog import catalog
from lamina.api.context import ApiContext
from lamina.api.lifecycle import new_revision
from lamina.api.naming import LATEST
from lamina.api.operations import Call, operation
from lamina.api.operations.functions import load
from lamina.api.paging import listing, page
from lamina.api.qualifiers import alias_not_found
from lamina.api.resource_policies import forget_qualifier_policy
from lamina.api.versions import REVISION_MISMATCH
from lamina.errors import InvalidParameterValue, PreconditionFailed, ResourceConflict
from lamina.store.aliases import AliasRecord
from lamina.store.api import AlreadyExists, NotFound, RevisionMismatch


def describe_alias(context: ApiContext, alias: AliasRecord) -> dict[str, Any]:
    output: dict[str, Any] = {
        "AliasArn": context.naming.function_arn(alias.function, alias.name),
        "Name": alias.name, "FunctionVersion": alias.version,
        "Description": alias.description, "RevisionId": alias.revision_id}
    if alias.routing:
        output["RoutingConfig"] = {"AdditionalVersionWeights": alias.routing}
    return output


def _routing(params: dict[str, Any]) -> tuple[str | None, float | None]:
    weights = (params.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
    if len(weights) > 1:
        raise InvalidParameterValue(
            "Number of items in AdditionalVersionWeights cannot be greater than 1")
    if not weights:
        return None, None
    ((version, weight),) = weights.items()
    if not 0.0 <= weight <= 1.0:  # the model's range, for clients that skip validation
        raise InvalidParameterValue(f"Weight {weight} for version {version} is outside 0.0-1.0.")
    return version, float(weight)


async def _check(context: ApiContext, alias: AliasRecord) -> None:
    """Lambda's rules for what an alias may point at; versions must exist."""
    if alias.extra_version is not None:
        if LATEST in (alias.version, alias.extra_version):
            raise InvalidParameterValue(
                "$LATEST is not supported for an alias pointing to more than 1 version")
        if not alias.extra_version.isdigit():
            raise InvalidParameterValue(
                f"Invalid function version {alias.extra_version} in the routing configuration.")
        if alias.extra_version == alias.version:
            raise InvalidParameterValue(
                f"Invalid function version {alias.version}. Function version {alias.version} "
                "is already included in routing configuration.")
    for version in alias.versions():
        if await context.db(context.store.get_function, alias.function, version) is None:
            raise context.naming.not_found(alias.function, version)


async def _changed(context: ApiContext, name: str) -> None:
    context.cache.invalidate(name)
    await provisioning.sync(context, name)


@operation("CreateAlias")
async def create_alias(call: Call) -> dict[str, Any]:
    context, params = call.context, call.params
    function = await load(context, params["FunctionName"], allow_qualifier=False)
    extra, weight = _routing(params)
    alias = AliasRecord(function.name, params["Name"], params["FunctionVersion"],
                        params.get("Description") or "", new_revision(), extra, weight)
    await _check(context, alias)
    try:
        await context.db(catalog(context).aliases.create, alias)
    except AlreadyExists:
        raise ResourceConflict(f"Alias already exists: "
                               f"{context.naming.function_arn(alias.function, alias.name)}"
                               ) from None
    except NotFound:
        raise context.naming.not_found(alias.function, alias.version) from None
    await _changed(context, alias.function)
    return describe_alias(context, alias)


async def _load_alias(context: ApiContext, params: dict[str, Any]) -> AliasRecord:
    function = await load(context, params["FunctionName"], allow_qualifier=False)
    alias = await context.db(catalog(context).aliases.get, function.name, params["Name"])
    if alias is None:
        raise alias_not_found(context, function.name, params["Name"])
    return alias


@operation("GetAlias")
async def get_alias(call: Call) -> dict[str, Any]:
    return describe_alias(call.context, await _load_alias(call.context, call.params))


@operation("UpdateAlias")
async def update_alias(call: Call) -> dict[str, Any]:
    context, params = call.context, call.params
    current = await _load_alias(context, params)
    if params.get("RevisionId") is not None and params["RevisionId"] != current.revision_id:
        raise PreconditionFailed(REVISION_MISMATCH)
    extra, weight = (_routing(params) if "RoutingConfig" in params
                     else (current.extra_version, current.extra_weight))
    updated = AliasRecord(
        current.function, current.name, params.get("FunctionVersion") or current.version,
        params["Description"] if params.get("Description") is not None
        else current.description, new_revision(), extra, weight)
    await _check(context, updated)
    try:
        await context.db(catalog(context).aliases.replace, updated, current.revision_id)
    except RevisionMismatch:
        raise PreconditionFailed(REVISION_MISMATCH) from None
    except NotFound:
        raise alias_not_found(context, current.function, current.name) from None
    await _changed(context, updated.function)
    return describe_alias(context, updated)


@operation("DeleteAlias")
async def delete_alias(call: Call) -> dict[str, Any]:
    context, params = call.context, call.params
    alias = await _load_alias(context, params)
    stores = catalog(context)
    try:
        await context.db(stores.aliases.delete, alias.function, alias.name)
    except NotFound:
        raise alias_not_found(context, alias.function, alias.name) from None
    await context.db(stores.provisioned.delete, alias.function, alias.name)
    await forget_qualifier_policy(context, alias.function, alias.name)
    await _changed(context, alias.function)
    return {}


@operation("ListAliases")
async def list_aliases(call: Call) -> dict[str, Any]:
    context, params = call.context, call.params
    function = await load(context, params["FunctionName"], allow_qualifier=False)
    aliases = await context.db(catalog(context).aliases.list, function.name)
    version = params.get("FunctionVersion")
    if version is not None:
        aliases = [a for a in aliases if version in a.versions()]
    items, marker = page(aliases, lambda a: a.name, params)
    return listing("Aliases", [describe_alias(context, a) for a in items], marker)
