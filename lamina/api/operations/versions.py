"""PublishVersion and ListVersionsByFunction. (Publishing from CreateFunction and
UpdateFunctionCode, and deleting one version, live with those operations.)"""

from __future__ import annotations

import base64
from typing import Any

from lamina.api.configuration import describe
from lamina.api.lifecycle import refuse_if_settling
from lamina.api.operations import Call, operation
from lamina.api.operations.functions import load
from lamina.api.paging import listing, page
from lamina.api.snapstart_publish import prepare as prepare_snapshot
from lamina.api.versions import REVISION_MISMATCH, publish
from lamina.errors import InvalidParameterValue, PreconditionFailed


@operation("PublishVersion")
async def publish_version(call: Call) -> dict[str, Any]:
    context, params = call.context, call.params
    latest = await load(context, params["FunctionName"], allow_qualifier=False)
    expected = params.get("RevisionId")
    if expected is not None and expected != latest.revision_id:
        raise PreconditionFailed(REVISION_MISMATCH)
    sha = params.get("CodeSha256")
    current = base64.b64encode(bytes.fromhex(latest.code_sha256)).decode()
    if sha is not None and sha != current:
        raise InvalidParameterValue(
            f"CodeSHA256 ({sha}) is different from current CodeSHA256 in $LATEST ({current}). "
            "Please try again with the current CodeSHA256.")
    refuse_if_settling(latest, context.naming.function_arn(latest.name))
    version = await publish(context, latest, params.get("Description"), expected)
    version = await prepare_snapshot(context, version)  # SnapStart: its Init runs now, once
    return describe(version, context.naming)


@operation("ListVersionsByFunction")
async def list_versions_by_function(call: Call) -> dict[str, Any]:
    context, params = call.context, call.params
    latest = await load(context, params["FunctionName"], allow_qualifier=False)
    versions = await context.db(context.store.list_versions, latest.name)
    items, marker = page(versions, lambda v: v.version, params)
    return listing("Versions", [describe(v, context.naming) for v in items], marker)
