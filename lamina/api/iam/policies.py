"""Managed policies: CreatePolicy, GetPolicy, DeletePolicy, ListPolicies, and the one version
each has (GetPolicyVersion, ListPolicyVersions), as deployment tools read them."""

from __future__ import annotations

import time
from typing import Any

from lamina.api.iam import IamCall, IamServices, iam_operation
from lamina.api.iam import render as show
from lamina.api.iam.common import checked_policy, list_resource
from lamina.api.query import (
    DeleteConflict,
    EntityAlreadyExists,
    NoSuchEntity,
    UnmodifiableEntity,
)
from lamina.identity import ids
from lamina.identity.authorize import Identity
from lamina.store.api import AlreadyExists, InUse, NotFound
from lamina.store.iam import PolicyRecord


def _arn(services: IamServices, params: dict[str, Any], identity: Identity) -> str:
    if "PolicyArn" in params:
        return str(params["PolicyArn"])
    return services.arn("policy", params["PolicyName"], params.get("Path") or "/")


def _missing(arn: str) -> NoSuchEntity:
    return NoSuchEntity(f"Policy {arn} does not exist or is not attachable.")


@iam_operation("iam", "CreatePolicy", _arn)
async def create_policy(call: IamCall) -> dict[str, Any]:
    services, params = call.services, call.params
    checked_policy(params["PolicyDocument"])
    path = params.get("Path") or "/"
    now = time.time()
    record = PolicyRecord(services.arn("policy", params["PolicyName"], path),
                          params["PolicyName"], ids.unique_id("ANPA"), path,
                          params["PolicyDocument"], params.get("Description") or "", now, now,
                          tags=tuple((t["Key"], t["Value"]) for t in params.get("Tags") or ()))
    try:
        await services.db(services.store.create_policy, record)
    except AlreadyExists:
        raise EntityAlreadyExists(f"A policy called {record.name} already exists. Duplicate "
                                  "names are not allowed.") from None
    await services.changed()
    return {"Policy": show.policy(record)}


async def _load(call: IamCall) -> PolicyRecord:
    arn = call.params["PolicyArn"]
    record = await call.services.db(call.services.store.get_policy, arn)
    if record is None:
        raise _missing(arn)
    return record


@iam_operation("iam", "GetPolicy", _arn)
async def get_policy(call: IamCall) -> dict[str, Any]:
    return {"Policy": show.policy(await _load(call))}


def _version(record: PolicyRecord) -> dict[str, Any]:
    return {"Document": show.encoded(record.document), "VersionId": show.DEFAULT_VERSION,
            "IsDefaultVersion": True, "CreateDate": record.created}


@iam_operation("iam", "GetPolicyVersion", _arn)
async def get_policy_version(call: IamCall) -> dict[str, Any]:
    record = await _load(call)
    if call.params["VersionId"] != show.DEFAULT_VERSION:
        raise NoSuchEntity(f"Policy {record.arn} version {call.params['VersionId']} does not "
                           "exist or is not attachable.")
    return {"PolicyVersion": _version(record)}


@iam_operation("iam", "ListPolicyVersions", _arn)
async def list_policy_versions(call: IamCall) -> dict[str, Any]:
    record = await _load(call)
    return {"Versions": [_version(record)], "IsTruncated": False}


@iam_operation("iam", "DeletePolicy", _arn)
async def delete_policy(call: IamCall) -> dict[str, Any]:
    services, arn = call.services, call.params["PolicyArn"]
    if arn.startswith("arn:aws:iam::aws:"):
        raise UnmodifiableEntity(f"Cannot delete AWS managed policy {arn}.")
    try:
        await services.db(services.store.delete_policy, arn)
    except NotFound:
        raise _missing(arn) from None
    except InUse:
        raise DeleteConflict("Cannot delete a policy attached to entities.") from None
    await services.changed()
    return {}


@iam_operation("iam", "ListPolicies", list_resource("policy/"))
async def list_policies(call: IamCall) -> dict[str, Any]:
    services, params = call.services, call.params
    scope = params.get("Scope") or "All"
    prefix = params.get("PathPrefix") or "/"
    records = [r for r in await services.db(services.store.list_policies)
               if r.path.startswith(prefix)
               and (scope == "All" or (scope == "AWS") == r.aws_managed)
               and (not params.get("OnlyAttached") or r.attachments)]
    return show.page([show.policy(r) for r in records], params, lambda p: p["Arn"], "Policies")
