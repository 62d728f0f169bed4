"""Wrapped data keys in the metadata store's database, and which master key is active.

The active master key id is kept in the database too (``key_ring_state``), and a data key is
created inside the same write transaction that reads it: once a rotation has committed "the new
key is active" and re-wrapped every row, no writer can still add a row under the old key, so the
old key can safely leave the file.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from lamina.store.schema import data_keys as dk
from lamina.store.schema import key_ring_state as state
from lamina.store.sql import SqlMetadataStore

Wrap = Callable[[str, str], str]  # (master key id, data key id) -> wrapped data key
Rewrap = Callable[["DataKeyRow", str], str]  # (row, new master key id) -> wrapped again


@dataclasses.dataclass(frozen=True)
class DataKeyRow:
    id: str
    owner: str  # the function whose variables it seals
    master_key_id: str
    wrapped: str


class SqlDataKeyStore:
    def __init__(self, store: SqlMetadataStore) -> None:
        self._store = store

    def get(self, key_id: str) -> DataKeyRow | None:
        with self._store.transaction() as conn:
            row = conn.execute(sa.select(dk).where(dk.c.id == key_id)).one_or_none()
        return None if row is None else _row(row)

    def for_owner(self, owner: str, wrap: Wrap, default_master: str) -> DataKeyRow:
        """The owner's data key, created (and wrapped by ``wrap`` under the active master
        key, ``default_master`` when none is recorded yet) if it has none."""
        stmt = sa.select(dk).where(dk.c.owner == owner)
        with self._store.transaction() as conn:  # the common case: no write lock needed
            row = conn.execute(stmt).one_or_none()
        if row is not None:
            return _row(row)
        with self._store.transaction(write=True) as conn:
            row = conn.execute(stmt).one_or_none()
            if row is not None:
                return _row(row)
            master = _active(conn)
            if master is None:
                master = default_master
                conn.execute(sa.insert(state).values(id=1, active_master_key_id=master))
            key_id = "dk-" + uuid.uuid4().hex
            created = DataKeyRow(key_id, owner, master, wrap(master, key_id))
            conn.execute(sa.insert(dk).values(id=key_id, owner=owner, master_key_id=master,
                                              wrapped=created.wrapped, created=time.time()))
            return created

    def delete_owner(self, owner: str) -> None:
        with self._store.transaction(write=True) as conn:
            conn.execute(sa.delete(dk).where(dk.c.owner == owner))

    def active_master(self) -> str | None:
        with self._store.transaction() as conn:
            return _active(conn)

    def masters_in_use(self) -> set[str]:
        with self._store.transaction() as conn:
            return set(conn.execute(sa.select(dk.c.master_key_id).distinct()).scalars())

    def rewrap_all(self, new_master: str, rewrap: Rewrap) -> int:
        """Make ``new_master`` the active key and re-wrap every data key under it, in one
        transaction; returns how many were re-wrapped."""
        with self._store.transaction(write=True) as conn:
            if _active(conn) is None:
                conn.execute(sa.insert(state).values(id=1, active_master_key_id=new_master))
            else:
                conn.execute(sa.update(state).where(state.c.id == 1)
                             .values(active_master_key_id=new_master))
            rows = [_row(r) for r in conn.execute(
                sa.select(dk).where(dk.c.master_key_id != new_master))]
            for row in rows:
                conn.execute(sa.update(dk).where(dk.c.id == row.id).values(
                    master_key_id=new_master, wrapped=rewrap(row, new_master)))
        return len(rows)


def _active(conn: sa.Connection) -> str | None:
    return conn.execute(sa.select(state.c.active_master_key_id).where(state.c.id == 1)
                        ).scalar_one_or_none()


def _row(row: Any) -> DataKeyRow:
    return DataKeyRow(row.id, row.owner, row.master_key_id, row.wrapped)
