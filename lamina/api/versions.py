"""Publishing a version: an immutable copy of ``$LATEST``'s code and configuration.

Publishing what the newest version already holds returns that version (Lambda's rule), so
retried deploy scripts do not pile up identical versions. The comparison covers the code and the
whole configuration except the state fields; a version's own ``Description`` (PublishVersion's
parameter) is not compared, the ``Description`` ``$LATEST`` had when it was published is (kept
in the version as ``SourceDescription``, a member Lambda's model does not have, so no answer
shows it). The store numbers the version and refuses (so this retries) when another publish got
in between.
"""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any

from lamina.api.configuration import lambda_timestamp
from lamina.api.lifecycle import new_revision
from lamina.api.naming import LATEST
from lamina.errors import PreconditionFailed, ResourceConflict
from lamina.store.api import FunctionRecord, NotFound, RevisionMismatch

if TYPE_CHECKING:
    from lamina.api.context import ApiContext

REVISION_MISMATCH = ("The Revision Id provided does not match the latest Revision Id. Call the "
                     "GetFunction/GetAlias API to retrieve the latest Revision Id")
_SOURCE = "SourceDescription"
_NOT_COMPARED = frozenset({"Description", _SOURCE, "State", "StateReason", "StateReasonCode",
                           "LastUpdateStatus", "LastUpdateStatusReason",
                           "LastUpdateStatusReasonCode"})
_ATTEMPTS = 5


def _fingerprint(record: FunctionRecord) -> tuple[str, str]:
    config = {k: v for k, v in record.config.items() if k not in _NOT_COMPARED}
    config[_SOURCE] = record.config.get(_SOURCE, record.config.get("Description", ""))
    return record.code_sha256, json.dumps(config, sort_keys=True, default=str)


async def publish(context: ApiContext, latest: FunctionRecord, description: str | None,
                  expected_revision: str | None = None) -> FunctionRecord:
    """Publish ``latest`` (or return the newest version when it is the same)."""
    for _ in range(_ATTEMPTS):
        versions = await context.db(context.store.list_versions, latest.name)
        newest = versions[-1] if len(versions) > 1 else None
        if newest is not None and _fingerprint(newest) == _fingerprint(latest):
            return newest
        config: dict[str, Any] = dict(latest.config)
        config[_SOURCE] = latest.config.get("Description", "")
        if description is not None:
            config["Description"] = description
        record = dataclasses.replace(latest, version="", config=config,
                                     revision_id=new_revision(),
                                     last_modified=lambda_timestamp())
        try:
            return await context.db(context.store.publish_version, record, latest.revision_id,
                                    newest.version if newest else None)
        except NotFound:
            raise context.naming.not_found(latest.name) from None
        except RevisionMismatch:
            current = await context.db(context.store.get_function, latest.name, LATEST)
            if current is None:
                raise context.naming.not_found(latest.name) from None
            if expected_revision is not None and current.revision_id != expected_revision:
                raise PreconditionFailed(REVISION_MISMATCH) from None
            latest = current
    raise ResourceConflict("The operation cannot be performed at this time. Another version "
                           f"of {latest.name} is being published; try again.")
