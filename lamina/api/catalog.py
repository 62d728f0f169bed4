"""The stores of the function catalog beyond functions themselves: aliases, layers, tags,
provisioned concurrency configs. They share the metadata store's database (their tables come
from the ``catalog`` migration branch); the API reaches them through ``ApiContext.catalog``.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from lamina.errors import InternalError
from lamina.store.aliases import SqlAliasStore
from lamina.store.layers import SqlLayerStore
from lamina.store.provisioned import SqlProvisionedStore
from lamina.store.sql import SqlMetadataStore
from lamina.store.tags import SqlTagStore

if TYPE_CHECKING:
    from lamina.api.context import ApiContext


@dataclasses.dataclass(frozen=True)
class Catalog:
    aliases: SqlAliasStore
    layers: SqlLayerStore
    tags: SqlTagStore
    provisioned: SqlProvisionedStore

    @classmethod
    def on(cls, store: SqlMetadataStore) -> Catalog:
        return cls(SqlAliasStore(store), SqlLayerStore(store), SqlTagStore(store),
                   SqlProvisionedStore(store))


def catalog(context: ApiContext) -> Catalog:
    if context.catalog is None:  # a server always has one; a bare test context may not
        raise InternalError("This server has no catalog store.")
    return context.catalog
