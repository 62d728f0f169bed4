"""The policies a user or role holds: Put/Get/Delete/List{User,Role}Policies (inline) and
Attach/Detach/ListAttached{User,Role}Policies (managed), one implementation for both kinds."""

from __future__ import annotations

from typing import Any

from lamina.api.iam import IamCall, Resource, iam_operation
from lamina.api.iam import render as show
from lamina.api.iam.common import checked_policy, refuse, role_resource, user_resource
from lamina.store.api import StoreError
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
        try:
            await services.db(services.store.put_inline, kind, owner, params["PolicyName"],
                              params["PolicyDocument"])
        except StoreError as exc:
            refuse(exc, kind, owner)
        await services.changed()
        return {}

    @iam_operation("iam", f"Get{word}Policy", resource)
    async def get(call: IamCall) -> dict[str, Any]:
        services, params = call.services, call.params
        owner, name = _owner(kind, params), params["PolicyName"]
        try:
            document = await services.db(services.store.get_inline, kind, owner, name)
        except StoreError as exc:
            refuse(exc, kind, owner, name)
        return {owner_member: owner, "PolicyName": name,
                "PolicyDocument": show.encoded(document)}

    @iam_operation("iam", f"Delete{word}Policy", resource)
    async def delete(call: IamCall) -> dict[str, Any]:
        services, params = call.services, call.params
        owner, name = _owner(kind, params), params["PolicyName"]
        try:
            await services.db(services.store.delete_inline, kind, owner, name)
        except StoreError as exc:
            refuse(exc, kind, owner, name)
        await services.changed()
        return {}

    @iam_operation("iam", f"List{word}Policies", resource)
    async def list_inline(call: IamCall) -> dict[str, Any]:
        services, owner = call.services, _owner(kind, call.params)
        try:
            names = await services.db(services.store.list_inline, kind, owner)
        except StoreError as exc:
            refuse(exc, kind, owner)
        return show.page(names, call.params, lambda n: n, "PolicyNames")

    @iam_operation("iam", f"Attach{word}Policy", resource)
    async def attach(call: IamCall) -> dict[str, Any]:
        services, params = call.services, call.params
        owner, arn = _owner(kind, params), params["PolicyArn"]
        try:
            await services.db(services.store.attach, kind, owner, arn)
        except StoreError as exc:
            refuse(exc, kind, owner, arn)
        await services.changed()
        return {}

    @iam_operation("iam", f"Detach{word}Policy", resource)
    async def detach(call: IamCall) -> dict[str, Any]:
        services, params = call.services, call.params
        owner, arn = _owner(kind, params), params["PolicyArn"]
        try:
            await services.db(services.store.detach, kind, owner, arn)
        except StoreError as exc:
            refuse(exc, kind, owner, arn)
        await services.changed()
        return {}

    @iam_operation("iam", f"ListAttached{word}Policies", resource)
    async def list_attached(call: IamCall) -> dict[str, Any]:
        services, owner = call.services, _owner(kind, call.params)
        prefix = call.params.get("PathPrefix") or "/"
        try:
            attached = await services.db(services.store.list_attached, kind, owner)
        except StoreError as exc:
            refuse(exc, kind, owner)
        items = [{"PolicyName": name, "PolicyArn": arn} for name, arn in attached
                 if _policy_path(arn).startswith(prefix)]
        return show.page(items, call.params, lambda p: p["PolicyArn"], "AttachedPolicies")


def _policy_path(arn: str) -> str:
    rest = arn.split(":policy", 1)[-1]
    return rest[: rest.rfind("/") + 1] or "/"


_register(USER, "User", user_resource)
_register(ROLE, "Role", role_resource)
