"""What becomes of a function's resource policies when part of the function goes away."""

from __future__ import annotations

from lamina.api.context import ApiContext


async def forget_qualifier_policy(context: ApiContext, name: str, qualifier: str) -> None:
    """A deleted alias or version takes its resource policy along, as on AWS: an alias or
    version created later under the same name must not inherit who could invoke the old one."""
    if context.identity is None:
        return
    if await context.db(context.identity.store.delete_function_policy, name, qualifier):
        await context.identity.changed()
