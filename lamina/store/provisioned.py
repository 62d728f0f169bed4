"""Provisioned concurrency configs: how many environments a version or alias keeps initialised.

Only the request is stored; what is ready is the engine's to say. Configs go with their function;
the API removes an alias's or a version's config when it deletes them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import sqlalchemy as sa

from lamina.store.schema import provisioned_concurrency as pc
from lamina.store.sql import SqlMetadataStore, lock_function


@dataclasses.dataclass(frozen=True)
class ProvisionedRecord:
    function: str
    qualifier: str  # a published version or an alias
    requested: int
    last_modified: str


class SqlProvisionedStore:
    def __init__(self, store: SqlMetadataStore) -> None:
        self._store = store

    def put(self, record: ProvisionedRecord) -> None:
        """Create or replace. Raises ``NotFound`` when the function is gone."""
        with self._store.transaction(write=True) as conn:
            lock_function(conn, record.function)
            conn.execute(sa.delete(pc).where(pc.c.name == record.function,
                                             pc.c.qualifier == record.qualifier))
            conn.execute(sa.insert(pc).values(name=record.function, qualifier=record.qualifier,
                                              requested=record.requested,
                                              last_modified=record.last_modified))

    def get(self, function: str, qualifier: str) -> ProvisionedRecord | None:
        stmt = sa.select(pc).where(pc.c.name == function, pc.c.qualifier == qualifier)
        with self._store.transaction() as conn:
            row = conn.execute(stmt).one_or_none()
        return None if row is None else _record(row)

    def list(self, function: str | None = None) -> list[ProvisionedRecord]:
        """One function's configs (or every config), by function then qualifier."""
        stmt = sa.select(pc).order_by(pc.c.name, pc.c.qualifier)
        if function is not None:
            stmt = stmt.where(pc.c.name == function)
        with self._store.transaction() as conn:
            return [_record(row) for row in conn.execute(stmt)]

    def delete(self, function: str, qualifier: str) -> bool:
        with self._store.transaction(write=True) as conn:
            return bool(conn.execute(sa.delete(pc).where(
                pc.c.name == function, pc.c.qualifier == qualifier)).rowcount)


def _record(row: Any) -> ProvisionedRecord:
    return ProvisionedRecord(row.name, row.qualifier, row.requested, row.last_modified)
