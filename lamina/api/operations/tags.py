"""TagResource, UntagResource and ListTags, on functions (Lambda tags the function, not its
versions or aliases)."""

from __future__ import annotations

from typing import Any

from lamina.api.catalog import catalog
from lamina.api.context import ApiContext
from lamina.api.operations import Call, operation
from lamina.api.tagging import MAX_TAGS, check_tags
from lamina.errors import InvalidParameterValue
from lamina.store.api import LimitExceeded, NotFound


async def _function(context: ApiContext, arn: str) -> str:
    ref = context.naming.parse(arn)
    if ref.qualifier is not None:
        raise InvalidParameterValue("Tags on function aliases and versions are not supported. "
                                    "Please specify a function ARN.")
    if await context.db(context.store.get_function, ref.name) is None:
        raise context.naming.not_found(ref.name)
    return ref.name


@operation("TagResource")
async def tag_resource(call: Call) -> dict[str, Any]:
    context, tags = call.context, call.params["Tags"]
    name = await _function(context, call.params["Resource"])
    check_tags(tags)
    try:
        await context.db(catalog(context).tags.tag, name, tags, MAX_TAGS)
    except NotFound:
        raise context.naming.not_found(name) from None
    except LimitExceeded:
        raise InvalidParameterValue("Number of tags exceeds resource tag limit.") from None
    return {}


@operation("UntagResource")
async def untag_resource(call: Call) -> dict[str, Any]:
    context = call.context
    name = await _function(context, call.params["Resource"])
    try:
        await context.db(catalog(context).tags.untag, name, call.params["TagKeys"])
    except NotFound:
        raise context.naming.not_found(name) from None
    return {}


@operation("ListTags")
async def list_tags(call: Call) -> dict[str, Any]:
    context = call.context
    name = await _function(context, call.params["Resource"])
    return {"Tags": await context.db(catalog(context).tags.get, name)}
