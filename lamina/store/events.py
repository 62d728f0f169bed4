"""The asynchronous invocation queue and event invoke configs over SQLAlchemy Core.

Both classes share the metadata store's database (its tables come from the ``async_events``
migration branch) and its transactions, so the same code serves SQLite and PostgreSQL:

* A claim selects the due rows and leases them in one write transaction. On PostgreSQL the rows
  are read ``FOR UPDATE SKIP LOCKED``, so dispatchers on several nodes never wait for nor take
  each other's rows; on SQLite the transaction's write lock does the same for one process.
* A lease is a ``visible_at`` in the future plus an ``owner``: the row is invisible to claims
  until then. Heartbeats push it on; a crashed owner's rows reappear when it lapses (or at
  start, on SQLite, where only one process can own the database).
* A settlement checks the owner in its ``WHERE`` clause: whoever lost a lease cannot delete or
  move an event another dispatcher now holds.
* ``due`` walks the ``(function_name, visible_at)`` index one function at a time (a recursive
  CTE that acts as a loose index scan), so its cost grows with the number of functions that
  have events, not with the number of events.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import sqlalchemy as sa

from lamina.invoke.api import (
    Complete,
    EventInvokeConfigRecord,
    NewEvent,
    QueuedEvent,
    QueueStats,
    Settlement,
)
from lamina.store.api import NotFound
from lamina.store.schema import async_events as ev
from lamina.store.schema import event_invoke_configs as eic
from lamina.store.sql import lock_function

_CHUNK = 500  # ids per IN list, well under every backend's limit of bound parameters

_DUE = sa.text("""
WITH RECURSIVE names(name) AS (
    SELECT MIN(function_name) FROM async_events
    UNION ALL
    SELECT (SELECT MIN(e.function_name) FROM async_events e WHERE e.function_name > names.name)
    FROM names WHERE names.name IS NOT NULL
)
SELECT name, (SELECT MIN(e.visible_at) FROM async_events e WHERE e.function_name = names.name)
FROM names WHERE name IS NOT NULL
""")


class SharedDatabase(Protocol):
    """What a feature store needs of the metadata store (``SqlMetadataStore`` has it, and so
    do the stores that wrap one)."""

    @property
    def engine(self) -> sa.Engine: ...

    def transaction(self, write: bool = False) -> contextlib.AbstractContextManager[
            sa.Connection]: ...


class SqlEventQueue:
    """``EventQueue`` on the metadata store's database."""

    def __init__(self, store: SharedDatabase) -> None:
        self._store = store
        self.single_process = store.engine.dialect.name == "sqlite"
        # SQLite has one writer at a time, and a writer that finds the lock taken sleeps in
        # steps of milliseconds (its busy handler). Taking turns here first instead keeps the
        # dispatcher's many small writes back to back. PostgreSQL locks rows: no need.
        self._writing = threading.Lock() if self.single_process else contextlib.nullcontext()

    def _write(self) -> contextlib.AbstractContextManager[sa.Connection]:
        return _serialised(self._writing, self._store)

    def enqueue(self, events: Sequence[NewEvent]) -> None:
        if not events:
            return
        with self._write() as conn:
            conn.execute(sa.insert(ev), [_row(event) for event in events])

    def claim(self, function_name: str, owner: str, now: float, limit: int,
              lease_until: float) -> list[QueuedEvent]:
        if limit <= 0:
            return []
        stmt = (
            sa.select(ev)
            .where(ev.c.function_name == function_name, ev.c.visible_at <= now)
            .order_by(ev.c.visible_at, ev.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        with self._write() as conn:
            rows = conn.execute(stmt).all()
            if rows:
                conn.execute(sa.update(ev).where(ev.c.id.in_([row.id for row in rows]))
                             .values(owner=owner, visible_at=lease_until))
        return [_event(row) for row in rows]

    def settle(self, owner: str, settlements: Sequence[Settlement]) -> list[bool]:
        applied: list[bool] = []
        with self._write() as conn:
            for settlement in settlements:
                mine = sa.and_(ev.c.id == settlement.event_id, ev.c.owner == owner)
                if isinstance(settlement, Complete):
                    done = conn.execute(sa.delete(ev).where(mine)).rowcount == 1
                    if done and settlement.followups:
                        conn.execute(sa.insert(ev), [_row(e) for e in settlement.followups])
                else:
                    last = settlement.last_result
                    done = conn.execute(sa.update(ev).where(mine).values(
                        owner=None, visible_at=settlement.visible_at,
                        invoke_count=settlement.invoke_count, requeues=settlement.requeues,
                        last_result=None if last is None else json.dumps(last),
                    )).rowcount == 1
                applied.append(done)
        return applied

    def heartbeat(self, owner: str, event_ids: Sequence[int], lease_until: float) -> int:
        held = 0
        with self._write() as conn:
            for start in range(0, len(event_ids), _CHUNK):
                chunk = list(event_ids[start:start + _CHUNK])
                held += conn.execute(sa.update(ev).where(ev.c.owner == owner, ev.c.id.in_(chunk))
                                     .values(visible_at=lease_until)).rowcount
        return held

    def release(self, owner: str | None, now: float) -> int:
        if owner is None and not self.single_process:
            raise ValueError("releasing every lease is only safe on a single-process store")
        held = ev.c.owner.is_not(None) if owner is None else ev.c.owner == owner
        with self._write() as conn:
            return conn.execute(sa.update(ev).where(held)
                                .values(owner=None, visible_at=now)).rowcount

    def due(self) -> list[tuple[str, float]]:
        with self._store.transaction() as conn:
            return [(row[0], float(row[1])) for row in conn.execute(_DUE)]

    def stats(self, now: float) -> list[QueueStats]:
        leased = sa.case((ev.c.owner.is_not(None), 1), else_=0)
        delayed = sa.case((sa.and_(ev.c.owner.is_(None), ev.c.visible_at > now), 1), else_=0)
        stmt = (
            sa.select(ev.c.function_name, sa.func.count(), sa.func.sum(leased),
                      sa.func.sum(delayed), sa.func.min(ev.c.enqueued_at))
            .group_by(ev.c.function_name)
            .order_by(ev.c.function_name)
        )
        with self._store.transaction() as conn:
            return [QueueStats(row[0], int(row[1]), int(row[2] or 0), int(row[3] or 0),
                               float(row[4])) for row in conn.execute(stmt)]


class SqlEventInvokeConfigs:
    """``EventInvokeConfigs`` on the metadata store's database."""

    def __init__(self, store: SharedDatabase) -> None:
        self._store = store

    def put_config(self, record: EventInvokeConfigRecord) -> None:
        with self._store.transaction(write=True) as conn:
            lock_function(conn, record.function_name)
            conn.execute(sa.delete(eic).where(eic.c.function_name == record.function_name,
                                              eic.c.qualifier == record.qualifier))
            conn.execute(sa.insert(eic).values(
                function_name=record.function_name, qualifier=record.qualifier,
                config=json.dumps(record.config), last_modified=record.last_modified))

    def update_config(self, function_name: str, qualifier: str,
                      apply: Callable[[dict[str, Any]], dict[str, Any]],
                      now: float) -> EventInvokeConfigRecord:
        """Replace the stored config by ``apply(stored)`` in one transaction."""
        with self._store.transaction(write=True) as conn:
            lock_function(conn, function_name)
            row = conn.execute(sa.select(eic.c.config).where(
                eic.c.function_name == function_name, eic.c.qualifier == qualifier)
                .with_for_update()).one_or_none()
            if row is None:
                raise NotFound(f"{function_name}:{qualifier}")
            config = apply(json.loads(row.config))
            conn.execute(sa.update(eic).where(eic.c.function_name == function_name,
                                              eic.c.qualifier == qualifier)
                         .values(config=json.dumps(config), last_modified=now))
        return EventInvokeConfigRecord(function_name, qualifier, config, now)

    def get_config(self, function_name: str, qualifier: str) -> EventInvokeConfigRecord | None:
        stmt = sa.select(eic).where(eic.c.function_name == function_name,
                                    eic.c.qualifier == qualifier)
        with self._store.transaction() as conn:
            row = conn.execute(stmt).one_or_none()
        return None if row is None else _config(row)

    def delete_config(self, function_name: str, qualifier: str) -> bool:
        with self._store.transaction(write=True) as conn:
            return conn.execute(sa.delete(eic).where(
                eic.c.function_name == function_name, eic.c.qualifier == qualifier)).rowcount == 1

    def list_configs(self, function_name: str, after: str | None,
                     limit: int) -> list[EventInvokeConfigRecord]:
        if limit <= 0:
            return []
        stmt = sa.select(eic).where(eic.c.function_name == function_name)
        if after is not None:
            stmt = stmt.where(eic.c.qualifier > after)
        stmt = stmt.order_by(eic.c.qualifier).limit(limit)
        with self._store.transaction() as conn:
            return [_config(row) for row in conn.execute(stmt)]


@contextlib.contextmanager
def _serialised(lock: contextlib.AbstractContextManager[Any],
                store: SharedDatabase) -> Any:
    with lock, store.transaction(write=True) as conn:
        yield conn


def _row(event: NewEvent) -> dict[str, Any]:
    return {
        "function_name": event.function_name,
        "qualifier": event.qualifier,
        "function_created": event.function_created,
        "request_id": event.request_id,
        "invoked_arn": event.invoked_arn,
        "trace_id": event.trace_id,
        "payload": event.payload,
        "enqueued_at": event.enqueued_at,
        "visible_at": event.enqueued_at,
        "owner": None,
        "invoke_count": 0,
        "requeues": 0,
        "depth": event.depth,
        "last_result": None,
    }


def _event(row: sa.Row[Any]) -> QueuedEvent:
    return QueuedEvent(
        id=row.id,
        function_name=row.function_name,
        qualifier=row.qualifier,
        request_id=row.request_id,
        invoked_arn=row.invoked_arn,
        trace_id=row.trace_id,
        payload=bytes(row.payload),
        enqueued_at=row.enqueued_at,
        function_created=row.function_created,
        invoke_count=row.invoke_count,
        requeues=row.requeues,
        depth=row.depth,
        last_result=None if row.last_result is None else json.loads(row.last_result),
    )


def _config(row: sa.Row[Any]) -> EventInvokeConfigRecord:
    return EventInvokeConfigRecord(row.function_name, row.qualifier, json.loads(row.config),
                                   row.last_modified)


__all__ = ["SqlEventInvokeConfigs", "SqlEventQueue"]
