"""The metadata store over SQLAlchemy Core: one implementation, two engines.

``SqlMetadataStore`` holds every query and is written once, with generic SQL only. The backends
(``SQLiteStore``, ``PostgresStore``) only build and tune an engine; pick one by URL with
``lamina.store.registry.open_store``.

How concurrency is made safe, on both backends at once:

* Every write runs in a transaction that takes the write lock *before* it reads: on SQLite a
  ``BEGIN IMMEDIATE`` (one writer at a time, readers never blocked thanks to WAL); on PostgreSQL
  the rows the decision depends on are read ``FOR UPDATE`` (which SQLite's compiler omits, since
  its immediate transaction already excludes other writers).
* ``replace_function`` is a single ``UPDATE ... WHERE revision_id = :expected``: the row's own
  lock makes it a compare-and-swap on every backend; 0 rows updated means stale or gone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import QueuePool

from lamina.store.api import (
    LATEST,
    AlreadyExists,
    FunctionRecord,
    InUse,
    LimitExceeded,
    NotFound,
    RevisionMismatch,
    StoreError,
)
from lamina.store.migrations import upgrade_to_head
from lamina.store.schema import function_version_counters as counters
from lamina.store.schema import function_versions as fv
from lamina.store.schema import functions

# The execution option that tells SQLite's "begin" hook which kind of transaction to open.
_SQLITE_BEGIN = "lamina_sqlite_begin"


class SqlMetadataStore:
    """``MetadataStore`` on any SQLAlchemy engine whose transactions are real transactions.

    ``write_engine`` is the same pool as ``engine`` with options that make its transactions take
    the write lock up front; it defaults to ``engine`` where row locks suffice. The schema is
    upgraded to the head revision before the constructor returns.
    """

    def __init__(self, engine: sa.Engine, write_engine: sa.Engine | None = None) -> None:
        self._engine = engine
        self._write_engine = write_engine or engine
        self._closed = False
        try:
            with self._write() as conn:
                upgrade_to_head(conn)
        except BaseException:
            engine.dispose()
            raise

    # -- transactions -------------------------------------------------------------------------

    @property
    def engine(self) -> sa.Engine:
        """The engine, for the stores of other features that share this database."""
        return self._engine

    def transaction(self, write: bool = False) -> contextlib.AbstractContextManager[sa.Connection]:
        """One transaction; with ``write`` it takes the write lock up front (SQLite) so that a
        read-check-write inside it cannot interleave with another writer."""
        return self._write() if write else self._read()

    @contextlib.contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        self._check_open()
        with self._engine.begin() as conn:
            yield conn

    @contextlib.contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        self._check_open()
        with self._write_engine.begin() as conn:
            yield conn

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the metadata store is closed")

    # -- functions ----------------------------------------------------------------------------

    def create_function(self, record: FunctionRecord) -> None:
        if record.version != LATEST:
            raise ValueError(f"a new function starts at {LATEST}, not version {record.version!r}")
        created = record.created or time.time()
        try:
            with self._write() as conn:
                conn.execute(sa.insert(functions).values(name=record.name, created=created))
                conn.execute(sa.insert(fv).values(**_version_row(record)))
        except sa.exc.IntegrityError as exc:
            # The only constraint a well-formed record can break is the primary key.
            raise AlreadyExists(record.name) from exc

    def get_function(self, name: str, version: str = LATEST) -> FunctionRecord | None:
        stmt = _select_records().where(fv.c.name == name, fv.c.version == version)
        with self._read() as conn:
            row = conn.execute(stmt).one_or_none()
        return None if row is None else _record(row)

    def list_functions(self, after: str | None, limit: int) -> list[FunctionRecord]:
        if limit <= 0:
            return []
        stmt = _select_records().where(fv.c.version == LATEST)
        if after is not None:
            stmt = stmt.where(fv.c.name > after)
        stmt = stmt.order_by(fv.c.name).limit(limit)
        with self._read() as conn:
            return [_record(row) for row in conn.execute(stmt)]

    def replace_function(self, record: FunctionRecord, expected_revision_id: str) -> None:
        if record.revision_id == expected_revision_id:
            # Callers detect staleness by comparing revision ids: a write must change it.
            raise ValueError("a replacement needs a new revision_id")
        row = _version_row(record)
        del row["name"], row["version"]
        stmt = (
            sa.update(fv)
            .where(
                fv.c.name == record.name,
                fv.c.version == record.version,
                fv.c.revision_id == expected_revision_id,
            )
            .values(**row)
        )
        with self._write() as conn:
            if conn.execute(stmt).rowcount == 1:
                return
            current = conn.execute(
                sa.select(fv.c.revision_id).where(
                    fv.c.name == record.name, fv.c.version == record.version
                )
            ).scalar_one_or_none()
        if current is None:
            raise NotFound(f"{record.name}:{record.version}")
        raise RevisionMismatch(f"{record.name}:{record.version} is at revision {current}")

    def delete_function(self, name: str) -> list[FunctionRecord]:
        with self._write() as conn:
            # Locking the parent row first keeps a concurrent writer from adding a version
            # between the read below and the delete (PostgreSQL; SQLite is already exclusive).
            found = conn.execute(
                sa.select(functions.c.name).where(functions.c.name == name).with_for_update()
            ).scalar_one_or_none()
            if found is None:
                raise NotFound(name)
            rows = conn.execute(_select_records().where(fv.c.name == name)).all()
            # Versions (and, later, aliases, policies ...) go with it by ON DELETE CASCADE.
            conn.execute(sa.delete(functions).where(functions.c.name == name))
        return sorted((_record(row) for row in rows), key=lambda r: _version_key(r.version))

    # -- published versions -------------------------------------------------------------------

    def publish_version(self, record: FunctionRecord, expected_revision_id: str,
                        expected_last: str | None) -> FunctionRecord:
        with self._write() as conn:
            created = lock_function(conn, record.name)
            latest = conn.execute(
                sa.select(fv.c.revision_id).where(fv.c.name == record.name,
                                                  fv.c.version == LATEST)
            ).scalar_one_or_none()
            if latest is None:
                raise NotFound(record.name)
            if latest != expected_revision_id:
                raise RevisionMismatch(f"{record.name}:{LATEST} is at revision {latest}")
            newest = _newest_published(conn, record.name)
            if newest != expected_last:
                raise RevisionMismatch(f"{record.name} was published meanwhile ({newest})")
            number = next_number(conn, counters, record.name)
            stored = dataclasses.replace(record, version=str(number), created=created)
            conn.execute(sa.insert(fv).values(**_version_row(stored)))
        return stored

    def list_versions(self, name: str) -> list[FunctionRecord]:
        with self._read() as conn:
            rows = conn.execute(_select_records().where(fv.c.name == name)).all()
        return sorted((_record(row) for row in rows), key=lambda r: _version_key(r.version))

    def delete_version(self, name: str, version: str) -> FunctionRecord:
        if version == LATEST:
            raise ValueError(f"{LATEST} goes only with the whole function")
        stmt = _select_records().where(fv.c.name == name, fv.c.version == version)
        try:
            with self._write() as conn:
                row = conn.execute(stmt).one_or_none()
                if row is None:
                    raise NotFound(f"{name}:{version}")
                # Aliases refer to the versions they route to by foreign key: a version still
                # routed to cannot go, and the database decides it inside this transaction.
                conn.execute(sa.delete(fv).where(fv.c.name == name, fv.c.version == version))
        except sa.exc.IntegrityError as exc:
            raise InUse(f"{name}:{version}") from exc
        return _record(row)

    # -- concurrency reservations -------------------------------------------------------------

    def get_reserved_concurrency(self, name: str) -> int | None:
        stmt = sa.select(functions.c.reserved_concurrency).where(functions.c.name == name)
        with self._read() as conn:
            return conn.execute(stmt).scalar_one_or_none()

    def set_reserved_concurrency(self, name: str, value: int | None, max_total: int) -> None:
        if value is not None and value < 0:
            raise ValueError("reserved concurrency cannot be negative")
        with self._write() as conn:
            # Lock every function row, in name order: two reservations for *different*
            # functions must still see each other's total. The order avoids deadlocks.
            rows = conn.execute(
                sa.select(functions.c.name, functions.c.reserved_concurrency)
                .order_by(functions.c.name)
                .with_for_update()
            ).all()
            if all(row.name != name for row in rows):
                raise NotFound(name)
            if value is not None:
                others = sum(r.reserved_concurrency or 0 for r in rows if r.name != name)
                if others + value > max_total:
                    raise LimitExceeded(
                        f"reserving {value} for {name} would bring the total to "
                        f"{others + value}, over {max_total}"
                    )
            conn.execute(
                sa.update(functions)
                .where(functions.c.name == name)
                .values(reserved_concurrency=value)
            )

    def reserved_concurrency(self) -> dict[str, int]:
        stmt = sa.select(functions.c.name, functions.c.reserved_concurrency).where(
            functions.c.reserved_concurrency.is_not(None)
        )
        with self._read() as conn:
            return {row.name: row.reserved_concurrency for row in conn.execute(stmt)}

    def close(self) -> None:
        self._closed = True
        self._engine.dispose()


class SQLiteStore(SqlMetadataStore):
    """The embedded backend: one SQLite file, for one lamina process.

    =====================  ====================================================================
    durability             WAL journal, ``synchronous=NORMAL``: a commit survives ``kill -9``
                           of the process (not necessarily a power cut in the last instants)
    concurrency            many readers and one writer at a time; writes open with
                           ``BEGIN IMMEDIATE`` and wait up to ``BUSY_TIMEOUT_MS`` for the lock
    threads                a pool of connections, one per thread at a time
    integrity              foreign keys enforced (``PRAGMA foreign_keys=ON`` per connection)
    ``sqlite://``          (no path) an in-memory database on one shared connection: for tests
    files                  the database is created mode 0600 in a directory created 0700
    =====================  ====================================================================
    """

    BUSY_TIMEOUT_MS = 30_000

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        database = parsed.database or ""
        in_memory = database in ("", ":memory:")
        if in_memory:
            # Every connection to ":memory:" is a new, empty database: keep exactly one and let
            # threads take turns on it through the pool.
            engine = sa.create_engine(
                parsed,
                poolclass=QueuePool,
                pool_size=1,
                max_overflow=0,
                pool_timeout=self.BUSY_TIMEOUT_MS / 1000,
                connect_args={"check_same_thread": False},
            )
        else:
            _create_private_file(Path(database))
            engine = sa.create_engine(parsed, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", self._on_connect)
        event.listen(engine, "begin", _sqlite_begin)
        super().__init__(engine, engine.execution_options(**{_SQLITE_BEGIN: "IMMEDIATE"}))

    @classmethod
    def _on_connect(cls, dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" hook, not the sqlite3 module, decide when transactions start
        # (the module would otherwise open them lazily and never for DDL).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {cls.BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()


def _sqlite_begin(conn: sa.Connection) -> None:
    mode = conn.get_execution_options().get(_SQLITE_BEGIN, "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


class PostgresStore(SqlMetadataStore):
    """The cluster backend: PostgreSQL shared by every API node.

    =====================  ====================================================================
    durability             PostgreSQL's commit (``synchronous_commit`` as the server has it)
    concurrency            READ COMMITTED; writes lock the rows they decide on (``FOR UPDATE``)
                           and the CAS is a conditional ``UPDATE``
    migrations             serialised across nodes by a transaction-scoped advisory lock
    driver                 ``postgresql://`` uses psycopg (3) when installed, else psycopg2;
                           ``postgresql+DRIVER://`` chooses explicitly
    =====================  ====================================================================
    """

    def __init__(self, url: str) -> None:
        super().__init__(sa.create_engine(postgres_url(url), pool_pre_ping=True))


def postgres_url(url: str) -> sa.URL:
    """``url`` with an explicit driver: a bare ``postgresql://`` means psycopg (3) when it is
    installed, else psycopg2 (SQLAlchemy alone would always pick psycopg2)."""
    parsed = make_url(url)
    if parsed.drivername not in ("postgresql", "postgres"):
        return parsed
    for module in ("psycopg", "psycopg2"):
        try:
            importlib.import_module(module)
        except ImportError:
            continue
        return parsed.set(drivername=f"postgresql+{module}")
    raise StoreError("PostgreSQL needs a driver: pip install 'psycopg[binary]'")


# -- rows <-> records ---------------------------------------------------------------------------


def _select_records() -> sa.Select[Any]:
    return sa.select(fv, functions.c.created).join(functions, functions.c.name == fv.c.name)


def _version_row(record: FunctionRecord) -> dict[str, Any]:
    return {
        "name": record.name,
        "version": record.version,
        "config": json.dumps(record.config, separators=(",", ":")),
        "code_sha256": record.code_sha256,
        "code_size": record.code_size,
        "revision_id": record.revision_id,
        "last_modified": record.last_modified,
    }


def _record(row: sa.Row[Any]) -> FunctionRecord:
    return FunctionRecord(
        name=row.name,
        version=row.version,
        config=json.loads(row.config),
        code_sha256=row.code_sha256,
        code_size=row.code_size,
        revision_id=row.revision_id,
        last_modified=row.last_modified,
        created=row.created,
    )


def lock_function(conn: sa.Connection, name: str) -> float:
    """Lock a function's row for the rest of the transaction (PostgreSQL; SQLite's write
    transaction is exclusive already) and return its creation time; ``NotFound`` if none.
    Feature stores take it first when what they write hangs on the function."""
    created = conn.execute(
        sa.select(functions.c.created).where(functions.c.name == name).with_for_update()
    ).scalar_one_or_none()
    if created is None:
        raise NotFound(name)
    return float(created)


def next_number(conn: sa.Connection, counters_table: sa.Table, name: str) -> int:
    """One more than the last number a ``(name, last_version)`` counter gave out, recorded:
    numbers are never reused, even after what carried them was deleted."""
    last = conn.execute(
        sa.select(counters_table.c.last_version).where(counters_table.c.name == name)
        .with_for_update()
    ).scalar_one_or_none()
    number = (last or 0) + 1
    if last is None:
        conn.execute(sa.insert(counters_table).values(name=name, last_version=number))
    else:
        conn.execute(sa.update(counters_table).where(counters_table.c.name == name)
                     .values(last_version=number))
    return number


def _newest_published(conn: sa.Connection, name: str) -> str | None:
    versions = conn.execute(
        sa.select(fv.c.version).where(fv.c.name == name, fv.c.version != LATEST)
    ).scalars()
    return max(versions, key=_version_key, default=None)


def _version_key(version: str) -> tuple[int, int, str]:
    """``$LATEST`` first, then published versions in numeric order."""
    if version == LATEST:
        return (0, 0, "")
    return (1, int(version), "") if version.isdigit() else (2, 0, version)


def _create_private_file(path: Path) -> None:
    """Create the database file (and its directory) private to lamina's uid before SQLite does:
    SQLite gives its ``-wal`` and ``-shm`` files the permissions of the main file."""
    parent = path.parent
    if not parent.exists():
        parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


__all__ = ["PostgresStore", "SQLiteStore", "SqlMetadataStore", "lock_function",
           "next_number", "postgres_url"]
