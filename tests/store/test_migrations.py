"""The schema comes from the Alembic revisions shipped in the package, applied on open."""

from __future__ import annotations

import subprocess
import sys
from importlib import resources
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from store_records import make_record

from lamina.store.migrations import alembic_config
from lamina.store.registry import open_store
from lamina.store.schema import metadata
from lamina.store.sql import postgres_url


def _url(store_url: str) -> str:
    """``store_url`` as plain SQLAlchemy takes it (with the driver the backend would choose)."""
    if store_url.startswith("postgres"):
        return postgres_url(store_url).render_as_string(hide_password=False)
    return store_url


def _engine(store_url: str) -> sa.Engine:
    return sa.create_engine(_url(store_url))


def _heads() -> set[str]:
    """Every head: each feature grows its own branch of revisions from 0001."""
    heads = set(ScriptDirectory.from_config(alembic_config()).get_heads())
    assert heads
    return heads


def test_revisions_ship_inside_the_package() -> None:
    versions = resources.files("lamina.store.migrations") / "versions"
    assert (resources.files("lamina.store.migrations") / "env.py").is_file()
    assert any(p.name.endswith(".py") and p.name[0].isdigit() for p in versions.iterdir())
    assert "v001" in _heads()  # the catalog branch: versions, aliases, layers, ...


def test_fresh_database_is_migrated_to_head(store_url: str) -> None:
    open_store(store_url).close()
    engine = _engine(store_url)
    try:
        with engine.connect() as conn:
            assert set(MigrationContext.configure(conn).get_current_heads()) == _heads()
            tables = set(sa.inspect(conn).get_table_names())
    finally:
        engine.dispose()
    assert {"functions", "function_versions", "alembic_version"} <= tables


def test_schema_module_matches_the_migrations(store_url: str) -> None:
    open_store(store_url).close()
    engine = _engine(store_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_reopening_keeps_data_and_does_not_migrate_again(store_url: str) -> None:
    store = open_store(store_url)
    store.create_function(make_record())
    store.close()
    store = open_store(store_url)
    try:
        assert store.get_function("f") == make_record()
    finally:
        store.close()


def test_downgrade_to_nothing_and_up_again(store_url: str) -> None:
    open_store(store_url).close()
    command.downgrade(alembic_config(url=_url(store_url)), "base")
    engine = _engine(store_url)
    try:
        assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}
    finally:
        engine.dispose()
    store = open_store(store_url)
    store.create_function(make_record())
    store.close()


def test_processes_opening_a_fresh_database_together_all_succeed(store_url: str) -> None:
    script = (
        "import sys; from lamina.store.registry import open_store;"
        "s = open_store(sys.argv[1]); s.list_functions(None, 1); s.close(); print('ok')"
    )
    children = [
        subprocess.Popen(
            [sys.executable, "-c", script, store_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outcomes = [child.communicate(timeout=60) for child in children]
    assert [out.strip() for out, _ in outcomes] == ["ok"] * 3, [err for _, err in outcomes]


def test_sqlite_store_creates_private_files(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "lamina.db"
    open_store(f"sqlite:///{path}").close()
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
