"""What the SQLite backend promises beyond the contract: its durability and locking settings,
foreign keys that cascade, and an in-memory mode usable from many threads."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import sqlalchemy as sa
from store_records import make_record

from lamina.store.schema import function_versions
from lamina.store.sql import SQLiteStore


def test_connections_use_wal_normal_sync_foreign_keys_and_busy_timeout(tmp_path: Path) -> None:
    store = SQLiteStore(f"sqlite:///{tmp_path / 'lamina.db'}")
    try:
        with store._engine.connect() as conn:  # the pool's own connections, as the store uses them
            pragma = lambda name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()  # noqa: E731
            assert pragma("journal_mode") == "wal"
            assert pragma("synchronous") == 1  # NORMAL
            assert pragma("foreign_keys") == 1
            assert pragma("busy_timeout") == SQLiteStore.BUSY_TIMEOUT_MS
    finally:
        store.close()
    # WAL is a property of the file: any later client sees it.
    with sqlite3.connect(tmp_path / "lamina.db") as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_deleting_a_function_cascades_to_every_version(tmp_path: Path) -> None:
    store = SQLiteStore(f"sqlite:///{tmp_path / 'lamina.db'}")
    try:
        store.create_function(make_record())
        # Published versions have no store method yet; write them as a later one will.
        with store._engine.begin() as conn:
            for version in ("2", "10"):
                row = {
                    "name": "f",
                    "version": version,
                    "config": "{}",
                    "code_sha256": "1" * 64,
                    "code_size": 1,
                    "revision_id": f"v{version}",
                    "last_modified": "x",
                }
                conn.execute(sa.insert(function_versions).values(**row))
        deleted = store.delete_function("f")
        assert [r.version for r in deleted] == ["$LATEST", "2", "10"]
        with store._engine.connect() as conn:
            left = conn.execute(sa.select(sa.func.count()).select_from(function_versions))
            assert left.scalar() == 0
    finally:
        store.close()


def test_in_memory_store_is_one_database_shared_by_threads() -> None:
    store = SQLiteStore("sqlite://")
    try:
        store.create_function(make_record())
        found: list[object] = []
        threads = [
            threading.Thread(target=lambda: found.append(store.get_function("f"))) for _ in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert found == [make_record()] * 4
    finally:
        store.close()
