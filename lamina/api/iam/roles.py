"""CreateRole, GetRole, DeleteRole, ListRoles, UpdateAssumeRolePolicy."""

from __future__ import annotations

import time
from typing import Any

from lamina.api.iam import IamCall, IamServices, iam_operation
from lamina.api.iam import render as show
from lamina.api.iam.common import checked_policy, list_resource, role_resource, store_change
from lamina.api.query import MalformedPolicyDocument, NoSuchEntity
from lamina.identity import ids
from lamina.identity.policy import Kind, Policy
from lamina.store.iam import ROLE, RoleRecord


def check_principals(services: IamServices, policy: Policy) -> None:
    """Users and roles of this account named in a trust policy must exist, as IAM checks."""
    prefix = f"arn:aws:iam::{services.account_id}:"
    for statement in policy.statements:
        for arn in statement.principals.aws if statement.principals else ():
            if not arn.startswith(prefix) or "*" in arn:
                continue
            kind, _, rest = arn[len(prefix):].partition("/")
            name = rest.rsplit("/", 1)[-1]
            directory = services.directory
            found = directory.user(name) if kind == "user" else \
                directory.role(name) if kind == "role" else True
            if not found:
                raise MalformedPolicyDocument(f'Invalid principal in policy: "AWS":"{arn}"')


@iam_operation("iam", "CreateRole", role_resource)
async def create_role(call: IamCall) -> dict[str, Any]:
    services, params = call.services, call.params
    name = params["RoleName"]
    document = params["AssumeRolePolicyDocument"]
    check_principals(services, checked_policy(document, Kind.TRUST))
    record = RoleRecord(name, ids.unique_id("AROA"), params.get("Path") or "/", time.time(),
                        document, params.get("Description") or "",
                        params.get("MaxSessionDuration") or 3600,
                        tuple((t["Key"], t["Value"]) for t in params.get("Tags") or ()))
    await store_change(services, (ROLE, name), services.store.create_role, record)
    return {"Role": show.role(record, services.arn("role", name, record.path))}


@iam_operation("iam", "GetRole", role_resource)
async def get_role(call: IamCall) -> dict[str, Any]:
    services, name = call.services, call.params["RoleName"]
    record = await services.db(services.store.get_role, name)
    if record is None:
        raise NoSuchEntity(f"The role with name {name} cannot be found.")
    return {"Role": show.role(record, services.arn("role", record.name, record.path))}


@iam_operation("iam", "DeleteRole", role_resource)
async def delete_role(call: IamCall) -> dict[str, Any]:
    services, name = call.services, call.params["RoleName"]
    await store_change(services, (ROLE, name), services.store.delete_role, name)
    return {}


@iam_operation("iam", "UpdateAssumeRolePolicy", role_resource)
async def update_assume_role_policy(call: IamCall) -> dict[str, Any]:
    services, name = call.services, call.params["RoleName"]
    document = call.params["PolicyDocument"]
    check_principals(services, checked_policy(document, Kind.TRUST))
    await store_change(services, (ROLE, name), services.store.update_trust_policy, name, document)
    return {}


@iam_operation("iam", "ListRoles", list_resource("role/"))
async def list_roles(call: IamCall) -> dict[str, Any]:
    services = call.services
    prefix = call.params.get("PathPrefix") or "/"
    roles = [show.role(r, services.arn("role", r.name, r.path), listed=True)
             for r in await services.db(services.store.list_roles) if r.path.startswith(prefix)]
    return show.page(roles, call.params, lambda r: r["RoleName"], "Roles")
