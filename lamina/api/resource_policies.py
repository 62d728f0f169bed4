"""Resource policies (a function's, a layer version's): adding a statement in Lambda's words,
and what becomes of a function's policies when part of the function goes away."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lamina.api.context import ApiContext
from lamina.api.versions import REVISION_MISMATCH
from lamina.errors import PreconditionFailed, ResourceConflict
from lamina.store.api import AlreadyExists, RevisionMismatch


async def add_statement(context: ApiContext, add: Callable[..., None], *args: Any,
                        statement: dict[str, Any]) -> None:
    """Store ``statement`` with ``add(*args)``; a stale RevisionId or a Sid already taken is
    refused as Lambda refuses it (other store errors go to the caller)."""
    try:
        await context.db(add, *args)
    except RevisionMismatch:
        raise PreconditionFailed(REVISION_MISMATCH) from None
    except AlreadyExists:
        raise ResourceConflict(
            f"The statement id ({statement['Sid']}) provided already exists. Please provide a "
            "new statement id, or remove the existing statement.") from None


async def forget_qualifier_policy(context: ApiContext, name: str, qualifier: str) -> None:
    """A deleted alias or version takes its resource policy along, as on AWS: an alias or
    version created later under the same name must not inherit who could invoke the old one."""
    if context.identity is None:
        return
    if await context.db(context.identity.store.delete_function_policy, name, qualifier):
        await context.identity.changed()
