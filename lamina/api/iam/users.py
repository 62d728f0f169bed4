"""CreateUser, GetUser, DeleteUser, ListUsers."""

from __future__ import annotations

import time
from typing import Any

from lamina.api.iam import IamCall, iam_operation
from lamina.api.iam import render as show
from lamina.api.iam.common import caller_user, list_resource, store_change, user_resource
from lamina.api.query import NoSuchEntity
from lamina.identity import ids
from lamina.store.iam import USER, UserRecord


@iam_operation("iam", "CreateUser", user_resource)
async def create_user(call: IamCall) -> dict[str, Any]:
    services, params = call.services, call.params
    name = params["UserName"]
    record = UserRecord(name, ids.unique_id("AIDA"), params.get("Path") or "/", time.time(),
                        tuple((t["Key"], t["Value"]) for t in params.get("Tags") or ()))
    await store_change(services, (USER, name), services.store.create_user, record)
    return {"User": show.user(record, services.arn("user", name, record.path))}


@iam_operation("iam", "GetUser", user_resource)
async def get_user(call: IamCall) -> dict[str, Any]:
    services = call.services
    name = caller_user(call.params, call.identity)
    record = await services.db(services.store.get_user, name)
    if record is None:
        raise NoSuchEntity(f"The user with name {name} cannot be found.")
    return {"User": show.user(record, services.arn("user", record.name, record.path))}


@iam_operation("iam", "DeleteUser", user_resource)
async def delete_user(call: IamCall) -> dict[str, Any]:
    services, name = call.services, call.params["UserName"]
    await store_change(services, (USER, name), services.store.delete_user, name)
    return {}


@iam_operation("iam", "ListUsers", list_resource("user/"))
async def list_users(call: IamCall) -> dict[str, Any]:
    services = call.services
    prefix = call.params.get("PathPrefix") or "/"
    records = [r for r in await services.db(services.store.list_users)
               if r.path.startswith(prefix)]
    users = [show.user(r, services.arn("user", r.name, r.path), tags=False) for r in records]
    return show.page(users, call.params, lambda u: u["UserName"], "Users")
