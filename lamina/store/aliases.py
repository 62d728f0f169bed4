"""Aliases: a name that points at one published version (or ``$LATEST``), optionally routing a
share of the traffic to one more version (``RoutingConfig.AdditionalVersionWeights``).

The versions an alias routes to are foreign keys into ``function_versions``: deleting a version
that an alias still uses fails inside the database's own transaction (``InUse`` from
``delete_version``), so no check-then-act race can strand an alias. Aliases go with their
function (``ON DELETE CASCADE``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import sqlalchemy as sa

from lamina.store.api import AlreadyExists, NotFound, RevisionMismatch
from lamina.store.schema import aliases as al
from lamina.store.schema import function_versions as fv
from lamina.store.sql import SqlMetadataStore, lock_function


@dataclasses.dataclass(frozen=True)
class AliasRecord:
    function: str
    name: str
    version: str
    description: str
    revision_id: str
    extra_version: str | None = None  # the one additional version of RoutingConfig
    extra_weight: float | None = None  # its share of the traffic, 0.0-1.0

    @property
    def routing(self) -> dict[str, float]:
        if self.extra_version is None or self.extra_weight is None:
            return {}
        return {self.extra_version: self.extra_weight}

    def versions(self) -> list[str]:
        return [self.version] + ([self.extra_version] if self.extra_version else [])


class SqlAliasStore:
    """Aliases in the metadata store's database; each method is one transaction."""

    def __init__(self, store: SqlMetadataStore) -> None:
        self._store = store

    def create(self, record: AliasRecord) -> None:
        """Raises ``AlreadyExists``, or ``NotFound`` when the function or a version is gone."""
        with self._store.transaction(write=True) as conn:
            lock_function(conn, record.function)
            if _row(conn, record.function, record.name) is not None:
                raise AlreadyExists(f"{record.function}:{record.name}")
            _check_versions(conn, record)
            conn.execute(sa.insert(al).values(**_row_values(record)))

    def get(self, function: str, name: str) -> AliasRecord | None:
        with self._store.transaction() as conn:
            row = _row(conn, function, name)
        return None if row is None else _record(row)

    def list(self, function: str) -> list[AliasRecord]:
        stmt = sa.select(al).where(al.c.name == function).order_by(al.c.alias)
        with self._store.transaction() as conn:
            return [_record(row) for row in conn.execute(stmt)]

    def replace(self, record: AliasRecord, expected_revision_id: str) -> None:
        """Compare-and-swap on ``revision_id``. Raises ``NotFound`` (alias or a version gone)
        or ``RevisionMismatch``."""
        with self._store.transaction(write=True) as conn:
            lock_function(conn, record.function)
            current = _row(conn, record.function, record.name)
            if current is None:
                raise NotFound(f"{record.function}:{record.name}")
            if current.revision_id != expected_revision_id:
                raise RevisionMismatch(f"{record.function}:{record.name}")
            _check_versions(conn, record)
            values = _row_values(record)
            del values["name"], values["alias"]
            conn.execute(sa.update(al).where(al.c.name == record.function,
                                             al.c.alias == record.name).values(**values))

    def delete(self, function: str, name: str) -> AliasRecord:
        with self._store.transaction(write=True) as conn:
            row = _row(conn, function, name)
            if row is None:
                raise NotFound(f"{function}:{name}")
            conn.execute(sa.delete(al).where(al.c.name == function, al.c.alias == name))
        return _record(row)


def _check_versions(conn: sa.Connection, record: AliasRecord) -> None:
    for version in record.versions():
        exists = conn.execute(sa.select(fv.c.version).where(
            fv.c.name == record.function, fv.c.version == version)).scalar_one_or_none()
        if exists is None:
            raise NotFound(f"{record.function}:{version}")


def _row(conn: sa.Connection, function: str, name: str) -> Any:
    return conn.execute(sa.select(al).where(al.c.name == function, al.c.alias == name)
                        ).one_or_none()


def _row_values(record: AliasRecord) -> dict[str, Any]:
    return {"name": record.function, "alias": record.name, "version": record.version,
            "extra_version": record.extra_version, "extra_weight": record.extra_weight,
            "description": record.description, "revision_id": record.revision_id}


def _record(row: Any) -> AliasRecord:
    return AliasRecord(function=row.name, name=row.alias, version=row.version,
                       description=row.description, revision_id=row.revision_id,
                       extra_version=row.extra_version, extra_weight=row.extra_weight)
