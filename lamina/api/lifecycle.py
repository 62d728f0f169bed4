"""Function states as Lambda reports them: ``State`` Pending → Active after a create, and
``LastUpdateStatus`` InProgress → Successful after an update.

The transition does real work (unpacking the package), runs in the background after the API has
answered, and is finished again at start-up for any function a crash left half-way, so no
function stays Pending forever.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import uuid

from lamina.api.code import ensure_unpacked
from lamina.api.context import ApiContext, target_from_record
from lamina.api.layers import ensure_opt
from lamina.api.naming import LATEST
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
    """Finish a create or update: unpack the code and merge the layers, then mark the function
    (and any version published with it, ``Publish: true``) Active/Successful. Versions are
    settled first: a crash in between leaves ``$LATEST`` settling, so start-up comes back."""
    try:
        record = await context.db(context.store.get_function, name)
        if record is None or not is_settling(record):
            return
        failure = None
        try:
            await ensure_unpacked(context.blobs, context.code_root, record.code_sha256)
            await ensure_opt(context.blobs, context.layers_root, record.config)
        except Exception as exc:  # the zip was checked on upload; this is the disk failing
            log.exception("unpacking %s failed", name)
            failure = exc
        for version in await context.db(context.store.list_versions, name):
            if version.version != LATEST and is_settling(version):
                with contextlib.suppress(NotFound, RevisionMismatch):
                    await context.db(context.store.replace_function,
                                     _settled(version, failure), version.revision_id)
        settled = _settled(record, failure)
        await context.db(context.store.replace_function, settled, record.revision_id)
        context.forget(name, LATEST)
        if failure is None:  # the first invoke after a change need not read it back
            context.cache.put(settled, target_from_record(
                settled, context.naming, context.code_root, context.layers_root))
    except (NotFound, RevisionMismatch):
        return  # deleted or changed meanwhile: whoever changed it settles it
    except Exception:
        log.exception("settling function %s failed", name)


def _settled(record: FunctionRecord, failure: Exception | None) -> FunctionRecord:
    config = {k: v for k, v in record.config.items() if k not in _TRANSIENT_KEYS}
    if failure is not None:
        config.update({"State": "Failed", "StateReason": f"Unpacking failed: {failure}",
                       "StateReasonCode": "InternalError", "LastUpdateStatus": "Failed"})
    else:
        config.update({"State": "Active", "LastUpdateStatus": "Successful"})
    return dataclasses.replace(record, config=config, revision_id=new_revision())


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
