"""Function states as Lambda reports them: ``State`` Pending → Active after a create, and
``LastUpdateStatus`` InProgress → Successful after an update.

The transition does real work (unpacking the package), runs in the background after the API has
answered, and is finished again at start-up for any function a crash left half-way, so no
function stays Pending forever.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid

from lamina.api.code import ensure_unpacked
from lamina.api.context import ApiContext
from lamina.errors import ResourceConflict
from lamina.store.api import FunctionRecord, NotFound, RevisionMismatch

log = logging.getLogger(__name__)

CREATING = {"State": "Pending", "StateReason": "The function is being created.",
            "StateReasonCode": "Creating"}
UPDATING = {"LastUpdateStatus": "InProgress",
            "LastUpdateStatusReason": "The function is being updated.",
            "LastUpdateStatusReasonCode": "Creating"}
_TRANSIENT_KEYS = ("StateReason", "StateReasonCode", "LastUpdateStatusReason",
                   "LastUpdateStatusReasonCode")


def new_revision() -> str:
    return str(uuid.uuid4())


def is_settling(record: FunctionRecord) -> bool:
    return (record.config.get("State") == "Pending"
            or record.config.get("LastUpdateStatus") == "InProgress")


def refuse_if_settling(record: FunctionRecord, arn: str) -> None:
    """Lambda refuses a change while the previous one is still being applied."""
    state = record.config.get("State")
    if state == "Pending":
        raise ResourceConflict("The operation cannot be performed at this time. The function is "
                               "currently in the following state: Pending")
    if record.config.get("LastUpdateStatus") == "InProgress":
        raise ResourceConflict("The operation cannot be performed at this time. An update is in "
                               f"progress for resource: {arn}")


async def settle(context: ApiContext, name: str) -> None:
    """Finish a create or update: unpack the code, then mark the function Active/Successful."""
    try:
        record = await context.db(context.store.get_function, name)
        if record is None or not is_settling(record):
            return
        config = {k: v for k, v in record.config.items() if k not in _TRANSIENT_KEYS}
        try:
            await ensure_unpacked(context.blobs, context.code_root, record.code_sha256)
        except Exception as exc:  # the zip was checked on upload; this is the disk failing
            log.exception("unpacking %s failed", name)
            config.update({"State": "Failed", "StateReason": f"Unpacking failed: {exc}",
                           "StateReasonCode": "InternalError", "LastUpdateStatus": "Failed"})
        else:
            config.update({"State": "Active", "LastUpdateStatus": "Successful"})
        settled = dataclasses.replace(record, config=config, revision_id=new_revision())
        await context.db(context.store.replace_function, settled, record.revision_id)
        context.forget(name)
    except (NotFound, RevisionMismatch):
        return  # deleted or changed meanwhile: whoever changed it settles it
    except Exception:
        log.exception("settling function %s failed", name)


async def settle_all(context: ApiContext) -> None:
    """At start-up: finish what a crash interrupted."""
    after = None
    while True:
        page = await context.db(context.store.list_functions, after, 500)
        if not page:
            return
        for record in page:
            if is_settling(record):
                await settle(context, record.name)
        after = page[-1].name
