"""Layer versions and their permission policies.

A layer's version numbers are never reused: ``layers.last_version`` counts every version ever
published, so a deleted ``:3`` never comes back with other contents (functions that use it keep
their merged copy). A version's policy is a list of statements kept with the version and guarded
by its own revision id, as ``AddLayerVersionPermission``'s ``RevisionId`` expects.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import sqlalchemy as sa

from lamina.store.api import AlreadyExists, NotFound, RevisionMismatch
from lamina.store.schema import layer_versions as lv
from lamina.store.schema import layers
from lamina.store.sql import SqlMetadataStore, next_number


class StatementNotFound(NotFound):
    """The layer version exists, the statement id does not."""


@dataclasses.dataclass(frozen=True)
class LayerVersionRecord:
    name: str
    version: int  # 0 until published
    description: str
    digest: str  # hex sha256 of the zip
    code_size: int
    unzipped_size: int
    runtimes: tuple[str, ...]
    architectures: tuple[str, ...]
    license: str | None
    created: str  # Lambda's timestamp format
    policy: tuple[dict[str, Any], ...] = ()
    policy_revision: str | None = None


class SqlLayerStore:
    """Layers in the metadata store's database; each method is one transaction."""

    def __init__(self, store: SqlMetadataStore) -> None:
        self._store = store

    def publish(self, record: LayerVersionRecord) -> LayerVersionRecord:
        """Store ``record`` as the layer's next version (creating the layer) and return it."""
        with self._store.transaction(write=True) as conn:
            number = next_number(conn, layers, record.name)
            stored = dataclasses.replace(record, version=number, policy=(),
                                         policy_revision=None)
            conn.execute(sa.insert(lv).values(**_values(stored)))
        return stored

    def get(self, name: str, version: int) -> LayerVersionRecord | None:
        with self._store.transaction() as conn:
            row = conn.execute(sa.select(lv).where(lv.c.name == name, lv.c.version == version)
                               ).one_or_none()
        return None if row is None else _record(row)

    def versions(self, name: str | None = None) -> list[LayerVersionRecord]:
        """Versions of one layer (or of all), by layer name then newest first."""
        stmt = sa.select(lv).order_by(lv.c.name, lv.c.version.desc())
        if name is not None:
            stmt = stmt.where(lv.c.name == name)
        with self._store.transaction() as conn:
            return [_record(row) for row in conn.execute(stmt)]

    def delete(self, name: str, version: int) -> bool:
        """Delete one version; ``False`` when there was none (deleting is idempotent)."""
        with self._store.transaction(write=True) as conn:
            return bool(conn.execute(sa.delete(lv).where(
                lv.c.name == name, lv.c.version == version)).rowcount)

    def add_statement(self, name: str, version: int, statement: dict[str, Any],
                      expected_revision: str | None, new_revision: str) -> None:
        """Raises ``NotFound``, ``AlreadyExists`` (the statement id is taken) or
        ``RevisionMismatch`` (``expected_revision`` given and stale)."""
        with self._store.transaction(write=True) as conn:
            row = _locked(conn, name, version, expected_revision)
            policy = json.loads(row.policy or "[]")
            if any(s["Sid"] == statement["Sid"] for s in policy):
                raise AlreadyExists(statement["Sid"])
            _set_policy(conn, name, version, [*policy, statement], new_revision)

    def remove_statement(self, name: str, version: int, sid: str,
                         expected_revision: str | None, new_revision: str) -> None:
        """Raises ``NotFound`` (``StatementNotFound`` for an unknown id) or
        ``RevisionMismatch``."""
        with self._store.transaction(write=True) as conn:
            row = _locked(conn, name, version, expected_revision)
            policy = json.loads(row.policy or "[]")
            kept = [s for s in policy if s["Sid"] != sid]
            if len(kept) == len(policy):
                raise StatementNotFound(sid)
            _set_policy(conn, name, version, kept, new_revision)


def _locked(conn: sa.Connection, name: str, version: int, expected: str | None) -> Any:
    row = conn.execute(sa.select(lv.c.policy, lv.c.policy_revision).where(
        lv.c.name == name, lv.c.version == version).with_for_update()).one_or_none()
    if row is None:
        raise NotFound(f"{name}:{version}")
    if expected is not None and expected != row.policy_revision:
        raise RevisionMismatch(f"{name}:{version}")
    return row


def _set_policy(conn: sa.Connection, name: str, version: int,
                policy: list[dict[str, Any]], revision: str) -> None:
    conn.execute(sa.update(lv).where(lv.c.name == name, lv.c.version == version).values(
        policy=json.dumps(policy) if policy else None,
        policy_revision=revision if policy else None))


def _values(record: LayerVersionRecord) -> dict[str, Any]:
    return {"name": record.name, "version": record.version, "description": record.description,
            "digest": record.digest, "code_size": record.code_size,
            "unzipped_size": record.unzipped_size, "runtimes": json.dumps(record.runtimes),
            "architectures": json.dumps(record.architectures), "license": record.license,
            "created": record.created, "policy": None, "policy_revision": None}


def _record(row: Any) -> LayerVersionRecord:
    return LayerVersionRecord(
        name=row.name, version=row.version, description=row.description, digest=row.digest,
        code_size=row.code_size, unzipped_size=row.unzipped_size,
        runtimes=tuple(json.loads(row.runtimes)),
        architectures=tuple(json.loads(row.architectures)), license=row.license,
        created=row.created, policy=tuple(json.loads(row.policy or "[]")),
        policy_revision=row.policy_revision)
