"""What a qualifier names: ``$LATEST``, a published version number, or an alias.

Invoke through an alias decides its version on every call (``pick``), from a cached alias, so
weighted routing costs a random number and a dictionary lookup on the warm path.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from lamina.api.catalog import catalog
from lamina.api.naming import LATEST
from lamina.errors import ResourceNotFound
from lamina.store.aliases import AliasRecord

if TYPE_CHECKING:
    from lamina.api.context import ApiContext


def is_version(qualifier: str) -> bool:
    return qualifier == LATEST or qualifier.isdigit()


async def alias_of(context: ApiContext, name: str, alias: str) -> AliasRecord | None:
    cached = context.cache.alias(name, alias)
    if cached is not None:
        return cached
    record = await context.db(catalog(context).aliases.get, name, alias)
    if record is not None:
        context.cache.put_alias(record)
    return record


async def version_of(context: ApiContext, name: str, qualifier: str | None) -> str:
    """The version a qualifier stands for (an alias's main version); raises Lambda's
    not-found for an unknown alias. Whether the version exists is the caller's to check."""
    if qualifier is None or is_version(qualifier):
        return qualifier or LATEST
    alias = await alias_of(context, name, qualifier)
    if alias is None:
        raise context.naming.not_found(name, qualifier)
    return alias.version


def pick(alias: AliasRecord, draw: float | None = None) -> str:
    """The version one invocation through ``alias`` runs: the additional version with its
    weight's probability, else the main one."""
    weight = alias.extra_weight
    if alias.extra_version is None or not weight:
        return alias.version
    return alias.extra_version if (random.random() if draw is None else draw) < weight \
        else alias.version


def alias_not_found(context: ApiContext, name: str, alias: str) -> ResourceNotFound:
    return ResourceNotFound(f"Cannot find alias arn: {context.naming.function_arn(name, alias)}")
