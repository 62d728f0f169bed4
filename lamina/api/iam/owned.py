"""The policies a user or role holds: Put/Get/Delete/List{User,Role}Policies (inline) and
Attach/Detach/ListAttached{User,Role}Policies (managed), one implementation for both kinds."""

from __future__ import annotations

from typing import Any

from lamina.api.iam import IamCall, Resource, iam_operation
from lamina.api.iam import render as show
from lamina.api.iam.common import (
    checked_policy,
    role_resource,
    store_change,
    stored,
    user_resource,
)
from lamina.store.iam import ROLE, USER


def _owner(kind: str, params: dict[str, Any]) -> str:
    return str(params["UserName" if kind == USER else "RoleName"])


def _register(kind: str, word: str, resource: Resource) -> None:
    owner_member = "UserName" if kind == USER else "RoleName"

    @iam_operation("iam", f"Put{word}Policy", resource)
    async def put(call: IamCall) -> dict[str, Any]:
        services, params = call.services, call.params
        owner = _owner(kind, params)
        checked_policy(params["PolicyDocument"])
        await store_change(services, (kind, owner), services.store.put_inline, kind, owner,
                           params["PolicyName"], params["PolicyDocument"])
        return {}

    @iam_operation("iam", f"Get{word}Policy", resource)
    async def get(call: IamCall) -> dict[str, Any]:
        services, params = call.services, call.params
        owner, name = _owner(kind, params), params["PolicyName"]
        document = await stored(services, (kind, owner, name), services.store.get_inline, kind,
                                owner, name)
        return {owner_member: owner, "PolicyName": name,
                "PolicyDocument": show.encoded(document)}

    @iam_operation("iam", f"Delete{word}Policy", resource)
    async def delete(call: IamCall) -> dict[str, Any]:
        services, params = call.services, call.params
        owner, name = _owner(kind, params), params["PolicyName"]
        await store_change(services, (kind, owner, name), services.store.delete_inline, kind,
                           owner, name)
        return {}

    @iam_operation("iam", f"List{word}Policies", resource)
    async def list_inline(call: IamCall) -> dict[str, Any]:
        services, owner = call.services, _owner(kind, call.params)
        names = await stored(services, (kind, owner), services.store.list_inline, kind, owner)
        return show.page(names, call.params, lambda n: n, "PolicyNames")

    @iam_operation("iam", f"Attach{word}Policy", resource)
    async def attach(call: IamCall) -> dict[str, Any]:
        services, params = call.services, call.params
        owner, arn = _owner(kind, params), params["PolicyArn"]
        await store_change(services, (kind, owner, arn), services.store.attach, kind, owner, arn)
        return {}

    @iam_operation("iam", f"Detach{word}Policy", resource)
    async def detach(call: IamCall) -> dict[str, Any]:
        services, params = call.services, call.params
        owner, arn = _owner(kind, params), params["PolicyArn"]
        await store_change(services, (kind, owner, arn), services.store.detach, kind, owner, arn)
        return {}

    @iam_operation("iam", f"ListAttached{word}Policies", resource)
    async def list_attached(call: IamCall) -> dict[str, Any]:
        services, owner = call.services, _owner(kind, call.params)
        prefix = call.params.get("PathPrefix") or "/"
        attached = await stored(services, (kind, owner), services.store.list_attached, kind,
                                owner)
        items = [{"PolicyName": name, "PolicyArn": arn} for name, arn in attached
                 if _policy_path(arn).startswith(prefix)]
        return show.page(items, call.params, lambda p: p["PolicyArn"], "AttachedPolicies")


def _policy_path(arn: str) -> str:
    rest = arn.split(":policy", 1)[-1]
    return rest[: rest.rfind("/") + 1] or "/"


_register(USER, "User", user_resource)
_register(ROLE, "Role", role_resource)
