"""The layer operations: PublishLayerVersion, GetLayerVersion(ByArn), ListLayers,
ListLayerVersions, DeleteLayerVersion and the layer version permission policy.

A layer zip is checked (the same rules as function code) before anything is stored, kept as a
content-addressed blob, and unpacked only when a function uses it (``lamina.api.layers``).
"""

from __future__ import annotations

import base64
import json
from typing import Any

from lamina.api import s3code
from lamina.api.catalog import catalog
from lamina.api.code import accept_zip
from lamina.api.configuration import lambda_timestamp
from lamina.api.context import ApiContext
from lamina.api.layers import layer_arn, layer_name, parse_version_arn, version_arn
from lamina.api.lifecycle import new_revision
from lamina.api.operations import Call, operation
from lamina.api.paging import listing, page
from lamina.api.resource_policies import add_statement
from lamina.api.versions import REVISION_MISMATCH
from lamina.errors import (
    InvalidParameterValue,
    PreconditionFailed,
    ResourceNotFound,
)
from lamina.store.api import NotFound, RevisionMismatch
from lamina.store.layers import LayerVersionRecord, StatementNotFound


def _item(context: ApiContext, record: LayerVersionRecord) -> dict[str, Any]:
    """``LayerVersionsListItem``: what lists show of a version."""
    item: dict[str, Any] = {
        "LayerVersionArn": version_arn(context.naming, record.name, record.version),
        "Version": record.version, "Description": record.description,
        "CreatedDate": record.created, "CompatibleRuntimes": list(record.runtimes),
        "CompatibleArchitectures": list(record.architectures)}
    if record.license is not None:
        item["LicenseInfo"] = record.license
    return item


def _describe(context: ApiContext, record: LayerVersionRecord, host: str) -> dict[str, Any]:
    content: dict[str, Any] = {
        "CodeSha256": base64.b64encode(bytes.fromhex(record.digest)).decode(),
        "CodeSize": record.code_size}
    if context.code_url is not None:
        content["Location"] = context.code_url(host, record.name, record.digest)
    return {**_item(context, record), "Content": content,
            "LayerArn": layer_arn(context.naming, record.name)}


def _host(call: Call) -> str:
    settings = call.context.settings
    return call.request.headers.get("host", f"{settings.host}:{settings.port}")


def _name(context: ApiContext, param: str) -> str:
    name = layer_name(context.naming, param)
    if name is None:
        raise ResourceNotFound("The resource you requested does not exist.")
    return name


async def _version(context: ApiContext, name: str, version: int) -> LayerVersionRecord:
    record = await context.db(catalog(context).layers.get, name, version)
    if record is None:
        raise ResourceNotFound("The resource you requested does not exist.")
    return record


@operation("PublishLayerVersion")
async def publish_layer_version(call: Call) -> dict[str, Any]:
    context, params = call.context, call.params
    name = _name(context, params["LayerName"])
    content = params.get("Content") or {}
    if content.get("ZipFile") is not None:
        data = content["ZipFile"]
    elif content.get("S3Bucket") or content.get("S3Key"):
        data = await s3code.fetch(context.settings, content.get("S3Bucket"),
                                  content.get("S3Key"), content.get("S3ObjectVersion"))
    else:
        raise InvalidParameterValue("Please provide a source for the layer content (ZipFile, "
                                    "or S3Bucket and S3Key).")
    digest, size, unzipped = await accept_zip(context.blobs, data)
    record = LayerVersionRecord(
        name=name, version=0, description=params.get("Description") or "", digest=digest,
        code_size=size, unzipped_size=unzipped,
        runtimes=tuple(params.get("CompatibleRuntimes") or ()),
        architectures=tuple(params.get("CompatibleArchitectures") or ()),
        license=params.get("LicenseInfo"), created=lambda_timestamp())
    stored = await context.db(catalog(context).layers.publish, record)
    return _describe(context, stored, _host(call))


@operation("GetLayerVersion")
async def get_layer_version(call: Call) -> dict[str, Any]:
    context, params = call.context, call.params
    record = await _version(context, _name(context, params["LayerName"]),
                            params["VersionNumber"])
    return _describe(context, record, _host(call))


@operation("GetLayerVersionByArn")
async def get_layer_version_by_arn(call: Call) -> dict[str, Any]:
    context = call.context
    parsed = parse_version_arn(context.naming, call.params["Arn"])
    if parsed is None:
        raise ResourceNotFound("The resource you requested does not exist.")
    return _describe(context, await _version(context, *parsed), _host(call))


def _matches(record: LayerVersionRecord, params: dict[str, Any]) -> bool:
    runtime = params.get("CompatibleRuntime")
    architecture = params.get("CompatibleArchitecture")
    return ((runtime is None or runtime in record.runtimes)
            and (architecture is None or architecture in record.architectures))


@operation("ListLayers")
async def list_layers(call: Call) -> dict[str, Any]:
    context, params = call.context, call.params
    latest: dict[str, LayerVersionRecord] = {}
    for record in await context.db(catalog(context).layers.versions):
        if record.name not in latest and _matches(record, params):
            latest[record.name] = record  # versions come newest first
    items, marker = page(sorted(latest.values(), key=lambda r: r.name), lambda r: r.name,
                         params)
    return listing("Layers", [
        {"LayerName": r.name, "LayerArn": layer_arn(context.naming, r.name),
         "LatestMatchingVersion": _item(context, r)} for r in items], marker)


@operation("ListLayerVersions")
async def list_layer_versions(call: Call) -> dict[str, Any]:
    context, params = call.context, call.params
    name = _name(context, params["LayerName"])
    versions = [r for r in await context.db(catalog(context).layers.versions, name)
                if _matches(r, params)]
    items, marker = page(versions, lambda r: r.version, params)
    return listing("LayerVersions", [_item(context, r) for r in items], marker)


@operation("DeleteLayerVersion")
async def delete_layer_version(call: Call) -> dict[str, Any]:
    """Idempotent, as on AWS; functions that use the version keep their copy of it."""
    context, params = call.context, call.params
    name = _name(context, params["LayerName"])
    await context.db(catalog(context).layers.delete, name, params["VersionNumber"])
    return {}


def _statement(context: ApiContext, name: str, version: int,
               params: dict[str, Any]) -> dict[str, Any]:
    principal = params["Principal"]
    statement: dict[str, Any] = {
        "Sid": params["StatementId"], "Effect": "Allow",
        "Principal": principal if principal == "*" or principal.startswith("arn:")
        else {"AWS": f"arn:aws:iam::{principal}:root"},
        "Action": params["Action"], "Resource": version_arn(context.naming, name, version)}
    if params.get("OrganizationId"):
        statement["Condition"] = {"StringEquals": {
            "aws:PrincipalOrgID": params["OrganizationId"]}}
    return statement


@operation("AddLayerVersionPermission")
async def add_layer_version_permission(call: Call) -> dict[str, Any]:
    context, params = call.context, call.params
    name, version = _name(context, params["LayerName"]), params["VersionNumber"]
    statement = _statement(context, name, version, params)
    revision = new_revision()
    try:
        await add_statement(context, catalog(context).layers.add_statement, name, version,
                            statement, params.get("RevisionId"), revision, statement=statement)
    except NotFound:
        raise ResourceNotFound("Layer version "
                               f"{version_arn(context.naming, name, version)} does not exist."
                               ) from None
    return {"Statement": json.dumps(statement, separators=(",", ":")), "RevisionId": revision}


@operation("RemoveLayerVersionPermission")
async def remove_layer_version_permission(call: Call) -> dict[str, Any]:
    context, params = call.context, call.params
    name, version = _name(context, params["LayerName"]), params["VersionNumber"]
    try:
        await context.db(catalog(context).layers.remove_statement, name, version,
                         params["StatementId"], params.get("RevisionId"), new_revision())
    except RevisionMismatch:
        raise PreconditionFailed(REVISION_MISMATCH) from None
    except StatementNotFound:
        raise ResourceNotFound(f"Statement {params['StatementId']} is not found in resource "
                               "policy.") from None
    except NotFound:
        raise ResourceNotFound("Layer version "
                               f"{version_arn(context.naming, name, version)} does not exist."
                               ) from None
    return {}


@operation("GetLayerVersionPolicy")
async def get_layer_version_policy(call: Call) -> dict[str, Any]:
    context, params = call.context, call.params
    record = await _version(context, _name(context, params["LayerName"]),
                            params["VersionNumber"])
    if not record.policy:
        raise ResourceNotFound("No policy is associated with the given resource.")
    policy = {"Version": "2012-10-17", "Id": "default", "Statement": list(record.policy)}
    return {"Policy": json.dumps(policy, separators=(",", ":")),
            "RevisionId": record.policy_revision}
