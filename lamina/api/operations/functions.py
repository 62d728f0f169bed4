"""CreateFunction, GetFunction(Configuration), ListFunctions, UpdateFunctionCode,
UpdateFunctionConfiguration and DeleteFunction."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from lamina.api import provisioning, s3code
from lamina.api.catalog import catalog
from lamina.api.code import StoredPackage, accept_zip
from lamina.api.configuration import (
    apply_changes,
    check_architectures,
    describe,
    host_architecture,
    lambda_timestamp,
    new_config,
)
from lamina.api.context import ApiContext
from lamina.api.layers import check_total_size, function_layers, recheck_layers
from lamina.api.lifecycle import CREATING, UPDATING, new_revision, refuse_if_settling, settle
from lamina.api.naming import LATEST
from lamina.api.operations import Call, operation
from lamina.api.paging import listing
from lamina.api.qualifiers import alias_of, is_version
from lamina.api.resource_policies import forget_qualifier_policy
from lamina.api.tagging import check_tags
from lamina.api.versions import REVISION_MISMATCH, publish
from lamina.errors import (
    InvalidParameterValue,
    PreconditionFailed,
    ResourceConflict,
)
from lamina.identity.execution import check_execution_role
from lamina.store.api import AlreadyExists, FunctionRecord, InUse, NotFound, RevisionMismatch


async def load(context: ApiContext, name_param: str, qualifier: str | None = None,
               *, allow_qualifier: bool = True) -> FunctionRecord:
    """The stored version a FunctionName (+ Qualifier) names, or Lambda's not-found error."""
    ref = context.naming.parse(name_param, qualifier)
    if ref.qualifier is not None and not allow_qualifier:
        raise InvalidParameterValue("This operation does not accept a qualifier.")
    version = ref.qualifier or LATEST
    if not is_version(version):
        alias = await alias_of(context, ref.name, version)
        if alias is None:
            raise context.naming.not_found(ref.name, version)
        version = alias.version
    record = await context.db(context.store.get_function, ref.name, version)
    if record is None:
        raise context.naming.not_found(ref.name, ref.qualifier)
    return record


def check_role(context: ApiContext, role_arn: str) -> None:
    """The execution role must exist and trust Lambda (lamina.identity.execution)."""
    if context.identity is not None:
        check_execution_role(context.identity.authorizer, context.naming.account_id, role_arn)


async def _code_from(context: ApiContext, params: dict[str, Any]) -> StoredPackage:
    if params.get("ZipFile") is not None:
        return await accept_zip(context.blobs, params["ZipFile"])
    if params.get("S3Bucket") or params.get("S3Key"):
        data = await s3code.fetch(context.settings, params.get("S3Bucket"), params.get("S3Key"),
                                  params.get("S3ObjectVersion"))
        return await accept_zip(context.blobs, data)
    if params.get("ImageUri"):
        raise InvalidParameterValue("lamina runs .zip packages only; ImageUri is not supported.")
    raise InvalidParameterValue("Please provide a source for function code (ZipFile).")


async def _with_layers(context: ApiContext, params: dict[str, Any], runtime: str | None,
                       architectures: list[str]) -> dict[str, Any]:
    """``params`` with ``Layers`` (ARNs) turned into checked, stored entries."""
    if params.get("Layers") is None:
        return params
    entries = await function_layers(context, params["Layers"], runtime, architectures)
    return {**params, "Layers": entries}


@operation("CreateFunction")
async def create_function(call: Call) -> dict[str, Any]:
    context, params = call.context, call.params
    ref = context.naming.parse(params["FunctionName"])
    if ref.qualifier is not None:
        raise InvalidParameterValue("A function name may not carry a qualifier when created.")
    tags = params.get("Tags") or {}
    check_tags(tags)
    params = await _with_layers(context, params, params.get("Runtime"),
                                params.get("Architectures") or [host_architecture()])
    config = new_config(params)
    check_role(context, config["Role"])
    config.update(CREATING)
    digest, size, _ = await _code_from(context, params.get("Code") or {})
    await check_total_size(context.blobs, digest, config)
    record = FunctionRecord(ref.name, LATEST, config, digest, size, new_revision(),
                            lambda_timestamp(), time.time())
    try:
        await context.db(context.store.create_function, record)
    except AlreadyExists:
        raise ResourceConflict(f"Function already exist: {ref.name}") from None
    if tags:
        await context.db(catalog(context).tags.tag, ref.name, tags, len(tags))
    answer = record
    if params.get("Publish"):  # before settling starts, so that it settles the version too
        answer = await publish(context, record, None)
    context.forget(ref.name)
    context.spawn(settle(context, ref.name))
    return describe(answer, context.naming)


@operation("GetFunctionConfiguration")
async def get_function_configuration(call: Call) -> dict[str, Any]:
    record = await load(call.context, call.params["FunctionName"], call.params.get("Qualifier"))
    return describe(record, call.context.naming)


@operation("GetFunction")
async def get_function(call: Call) -> dict[str, Any]:
    context = call.context
    record = await load(context, call.params["FunctionName"], call.params.get("Qualifier"))
    output: dict[str, Any] = {"Configuration": describe(record, context.naming)}
    host = call.request.headers.get("host", f"{context.settings.host}:{context.settings.port}")
    if context.code_url is not None:
        output["Code"] = {"RepositoryType": "S3",
                          "Location": context.code_url(host, record.name, record.code_sha256)}
    reserved = await context.db(context.store.get_reserved_concurrency, record.name)
    if reserved is not None:
        output["Concurrency"] = {"ReservedConcurrentExecutions": reserved}
    tags = await context.db(catalog(context).tags.get, record.name)
    if tags:
        output["Tags"] = tags
    return output


@operation("ListFunctions")
async def list_functions(call: Call) -> dict[str, Any]:
    context = call.context
    limit = call.params.get("MaxItems") or 50
    page = await context.db(context.store.list_functions, call.params.get("Marker"), limit + 1)
    records = page[:limit]
    if call.params.get("FunctionVersion") == "ALL":  # every version of each function listed
        records = [version for record in records
                   for version in await context.db(context.store.list_versions, record.name)]
    return listing("Functions", [describe(record, context.naming) for record in records],
                   page[limit - 1].name if len(page) > limit else None)


async def _replace(context: ApiContext, old: FunctionRecord, new: FunctionRecord) -> None:
    """Store an update of ``$LATEST``; the caller then starts ``settle``."""
    try:
        await context.db(context.store.replace_function, new, old.revision_id)
    except NotFound:
        raise context.naming.not_found(old.name) from None
    except RevisionMismatch:
        raise ResourceConflict(
            "The operation cannot be performed at this time. An update is in progress for "
            f"resource: {context.naming.function_arn(old.name)}") from None
    context.forget(old.name, LATEST)


def _check_revision(record: FunctionRecord, params: dict[str, Any]) -> None:
    expected = params.get("RevisionId")
    if expected is not None and expected != record.revision_id:
        raise PreconditionFailed(REVISION_MISMATCH)


@operation("UpdateFunctionCode")
async def update_function_code(call: Call) -> dict[str, Any]:
    context, params = call.context, call.params
    record = await load(context, params["FunctionName"], allow_qualifier=False)
    _check_revision(record, params)
    refuse_if_settling(record, context.naming.function_arn(record.name))
    config = dict(record.config)
    if params.get("Architectures"):
        check_architectures(params["Architectures"])
        config["Architectures"] = list(params["Architectures"])
    digest, size, _ = await _code_from(context, params)
    await check_total_size(context.blobs, digest, config)
    config.update(UPDATING)
    updated = dataclasses.replace(record, config=config, code_sha256=digest, code_size=size,
                                  revision_id=new_revision(), last_modified=lambda_timestamp())
    if params.get("DryRun"):
        return describe(updated, context.naming)
    await _replace(context, record, updated)
    answer = updated
    if params.get("Publish"):  # before settling starts, so that it settles the version too
        answer = await publish(context, updated, None)
    context.spawn(settle(context, record.name))
    return describe(answer, context.naming)


@operation("UpdateFunctionConfiguration")
async def update_function_configuration(call: Call) -> dict[str, Any]:
    context, params = call.context, call.params
    record = await load(context, params["FunctionName"], allow_qualifier=False)
    _check_revision(record, params)
    refuse_if_settling(record, context.naming.function_arn(record.name))
    params = await _with_layers(context, params,
                                params.get("Runtime") or record.config.get("Runtime"),
                                record.config.get("Architectures") or [host_architecture()])
    if "Runtime" in params and "Layers" not in params and record.config.get("Layers"):
        await recheck_layers(context, record.config["Layers"], params["Runtime"])
    config = apply_changes(record.config, params)
    if "Role" in params:
        check_role(context, config["Role"])
    if params.get("Layers") is not None:
        await check_total_size(context.blobs, record.code_sha256, config)
    config.update(UPDATING)
    updated = dataclasses.replace(record, config=config, revision_id=new_revision(),
                                  last_modified=lambda_timestamp())
    await _replace(context, record, updated)
    context.spawn(settle(context, record.name))
    return describe(updated, context.naming)


@operation("DeleteFunction")
async def delete_function(call: Call) -> dict[str, Any]:
    context = call.context
    ref = context.naming.parse(call.params["FunctionName"], call.params.get("Qualifier"))
    if ref.qualifier is not None and ref.qualifier != LATEST:
        return await _delete_version(context, ref.name, ref.qualifier)
    if ref.qualifier == LATEST:
        raise InvalidParameterValue("$LATEST version cannot be deleted without deleting the "
                                    "function.")
    try:
        await context.db(context.store.delete_function, ref.name)
    except NotFound:
        raise context.naming.not_found(ref.name) from None
    context.forget(ref.name)
    context.engine.set_reserved_concurrency(ref.name, None)
    if context.identity is not None:  # its resource policies went with it
        await context.identity.changed()
    return {"StatusCode": 204}


async def _delete_version(context: ApiContext, name: str, version: str) -> dict[str, Any]:
    """DeleteFunction of one published version: refused while an alias routes to it."""
    if not version.isdigit():
        raise InvalidParameterValue("Deletion of aliases is not supported by DeleteFunction; "
                                    "use DeleteAlias.")
    try:
        await context.db(context.store.delete_version, name, version)
    except NotFound:
        raise context.naming.not_found(name, version) from None
    except InUse:
        aliases = await context.db(catalog(context).aliases.list, name)
        using = [a.name for a in aliases if version in a.versions()]
        raise ResourceConflict("Unable to delete version because the following aliases "
                               f"reference it: {using}") from None
    await context.db(catalog(context).provisioned.delete, name, version)
    await forget_qualifier_policy(context, name, version)
    context.forget(name, version)
    await provisioning.sync(context, name)
    return {"StatusCode": 204}
