"""SnapStart's work on the API side: a version's snapshot made when it is published (the
version marked ``Failed`` when its Init fails) and made again for every active SnapStart version
when the server starts. The rules are in ``snapstart``.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from lamina.api.context import target_from_record
from lamina.api.layers import ensure_opt
from lamina.api.lifecycle import new_revision
from lamina.api.snapstart import applies, configured
from lamina.engine.api import SnapshotInitFailed
from lamina.errors import SnapStartError, SnapStartTimeout
from lamina.store.api import FunctionRecord, NotFound, RevisionMismatch

if TYPE_CHECKING:
    from lamina.api.context import ApiContext

log = logging.getLogger(__name__)


async def prepare(context: ApiContext, record: FunctionRecord) -> FunctionRecord:
    """Make the snapshot of a just-published version; on failure mark it Failed and raise
    Lambda's error. A version that failed before is tried again (and made Active if it works):
    publishing the same code and configuration returns that version. Returns the version as
    it now is."""
    if not applies(record.version, record.config):
        return record
    if record.config.get("State") == "Failed":  # before: the change retires the old pool
        record = await _mark(context, record, {"State": "Active"}) or record
    await ensure_opt(context.blobs, context.layers_root, record.config)
    target = target_from_record(record, context.naming, context.code_root, context.layers_root)
    arn = context.naming.function_arn(record.name, record.version)
    try:
        await context.engine.prepare_snapshot(target)
    except SnapshotInitFailed as exc:
        await _mark(context, record, {
            "State": "Failed", "StateReason": exc.reason[:1024],
            "StateReasonCode": "FunctionError.InitTimeout" if exc.timed_out
            else "FunctionError"})
        if exc.timed_out:
            raise SnapStartTimeout(f"Lambda couldn't create a snapshot of {arn} within the "
                                   f"timeout limit: {exc.reason}") from None
        raise SnapStartError(f"Lambda couldn't create a snapshot of {arn}: the function's Init "
                             f"failed ({exc.reason}). For more information, check the function's "
                             "logs.") from None
    return record


async def restore_all(context: ApiContext) -> None:
    """At start-up, in the background: make again the snapshot of every active SnapStart
    version (each runs its Init once more), so that their cold starts stay fast."""
    after = None
    while True:
        page = await context.db(context.store.list_functions, after, 500)
        if not page:
            return
        for latest in page:
            if not configured(latest.config):
                continue
            try:
                versions = await context.db(context.store.list_versions, latest.name)
            except Exception:
                log.exception("cannot list the versions of %s", latest.name)
                continue
            for record in versions:
                if not applies(record.version, record.config) \
                        or record.config.get("State") != "Active":
                    continue
                try:
                    await _prepare_quietly(context, record)
                except Exception:
                    log.exception("cannot restore the snapshot of %s:%s", record.name,
                                  record.version)
        after = page[-1].name


async def _prepare_quietly(context: ApiContext, record: FunctionRecord) -> None:
    await ensure_opt(context.blobs, context.layers_root, record.config)
    target = target_from_record(record, context.naming, context.code_root, context.layers_root)
    try:
        await context.engine.prepare_snapshot(target)
    except SnapshotInitFailed as exc:  # tried again at its next cold start
        log.warning("the snapshot of %s:%s failed at start-up: %s", record.name,
                    record.version, exc.reason)


async def _mark(context: ApiContext, record: FunctionRecord,
                state: dict[str, Any]) -> FunctionRecord | None:
    """Record a version's state; its cached view (and environments) go with the old one."""
    current = await context.db(context.store.get_function, record.name, record.version)
    if current is None:
        return None
    config = {k: v for k, v in current.config.items()
              if k not in ("StateReason", "StateReasonCode")}
    config.update(state)
    updated = dataclasses.replace(current, config=config, revision_id=new_revision())
    try:
        await context.db(context.store.replace_function, updated, current.revision_id)
    except (NotFound, RevisionMismatch):
        return None
    context.forget(record.name, record.version)
    return updated
