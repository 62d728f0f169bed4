"""Provisioned concurrency, from the stored configs to the engine's warm environments.

A config names a version or an alias; the engine keeps environments per version. An alias's
config is split over the versions it routes to in the proportion of their weights (as Lambda
does), so each published version gets the sum of what its configs ask for. ``sync`` tells the
engine the new counts of one function after any change (a config, an alias, a deleted
version); ``sync_all`` does it for every function at start-up.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import TYPE_CHECKING

from lamina.api.catalog import catalog
from lamina.api.naming import LATEST
from lamina.api.operations.invoke import resolve_target
from lamina.errors import ServiceError
from lamina.store.aliases import AliasRecord
from lamina.store.provisioned import ProvisionedRecord

if TYPE_CHECKING:
    from lamina.api.context import ApiContext

log = logging.getLogger(__name__)


def shares(alias: AliasRecord, count: int) -> dict[str, int]:
    """How ``count`` environments of an alias's config split over its versions."""
    extra = round(count * alias.extra_weight) if alias.extra_version and alias.extra_weight \
        else 0
    split = {alias.version: count - extra}
    if extra and alias.extra_version is not None:
        split[alias.extra_version] = extra
    return split


async def wanted(context: ApiContext, name: str) -> dict[str, int]:
    """Environments each published version of ``name`` should keep initialised."""
    stores = catalog(context)
    counts: dict[str, int] = defaultdict(int)
    for config in await context.db(stores.provisioned.list, name):
        for version, count in (await versions_of(context, config)).items():
            counts[version] += count
    return dict(counts)


async def versions_of(context: ApiContext, config: ProvisionedRecord) -> dict[str, int]:
    if config.qualifier.isdigit():
        return {config.qualifier: config.requested}
    alias = await context.db(catalog(context).aliases.get, config.function, config.qualifier)
    if alias is None or alias.version == LATEST:
        return {}
    return shares(alias, config.requested)


def ready(context: ApiContext, name: str, split: dict[str, int]) -> int:
    """How many of a config's environments are initialised now."""
    return sum(min(context.engine.provisioned_status(name, version)[0], count)
               for version, count in split.items())


async def sync(context: ApiContext, name: str) -> None:
    counts = await wanted(context, name)
    versions = await context.db(context.store.list_versions, name)
    known = {v.version for v in versions if v.version != LATEST}
    provisioned = {v for v in known if context.engine.provisioned_status(name, v)[1] > 0}
    for version in sorted((set(counts) & known) | provisioned):
        try:
            _, target = await resolve_target(context, name, version)
        except ServiceError as exc:
            log.warning("cannot provision %s:%s: %s", name, version, exc.message)
            continue
        context.engine.provision(target, counts.get(version, 0))


async def sync_all(context: ApiContext) -> None:
    names = {config.function for config in await context.db(catalog(context).provisioned.list)}
    for name in sorted(names):
        await sync(context, name)
