"""CreateAccessKey, DeleteAccessKey, UpdateAccessKey, ListAccessKeys.

The secret is generated here, sealed by the directory (envelope encryption) before it reaches
the store, and shown exactly once, in CreateAccessKey's answer.
"""

from __future__ import annotations

import time
from typing import Any

from lamina.api.iam import IamCall, iam_operation
from lamina.api.iam import render as show
from lamina.api.iam.common import caller_user, store_change, stored, user_resource
from lamina.identity import ids
from lamina.store.iam import USER, AccessKeyRecord


@iam_operation("iam", "CreateAccessKey", user_resource)
async def create_access_key(call: IamCall) -> dict[str, Any]:
    services = call.services
    user = caller_user(call.params, call.identity)
    record_user = services.directory.user(user)
    key_id, secret = ids.access_key_id(), ids.secret_access_key()
    record = AccessKeyRecord(key_id, record_user.name if record_user else user, "Active",
                             time.time(), services.directory.seal_secret(key_id, secret))
    await store_change(services, (USER, user), services.store.create_key, record)
    return {"AccessKey": {**show.access_key(record), "SecretAccessKey": secret}}


@iam_operation("iam", "DeleteAccessKey", user_resource)
async def delete_access_key(call: IamCall) -> dict[str, Any]:
    services = call.services
    user, key_id = caller_user(call.params, call.identity), call.params["AccessKeyId"]
    await store_change(services, (USER, user, key_id), services.store.delete_key, user, key_id)
    return {}


@iam_operation("iam", "UpdateAccessKey", user_resource)
async def update_access_key(call: IamCall) -> dict[str, Any]:
    services = call.services
    user, key_id = caller_user(call.params, call.identity), call.params["AccessKeyId"]
    await store_change(services, (USER, user, key_id), services.store.set_key_status, user,
                       key_id, call.params["Status"])
    return {}


@iam_operation("iam", "ListAccessKeys", user_resource)
async def list_access_keys(call: IamCall) -> dict[str, Any]:
    services = call.services
    user = caller_user(call.params, call.identity)
    records = await stored(services, (USER, user), services.store.list_keys, user)
    items = [show.access_key(r) for r in records]
    return show.page(items, call.params, lambda k: k["AccessKeyId"], "AccessKeyMetadata")
