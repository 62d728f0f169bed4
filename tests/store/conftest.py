"""Fixtures shared by the store tests.

The metadata store contract runs on every backend in ``BACKENDS``: SQLite always, PostgreSQL
when ``LAMINA_TEST_POSTGRES_URL`` names a database the tests may wipe (every table in it is
dropped before each test), e.g. ``postgresql://postgres@127.0.0.1:5432/lamina_test``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from lamina.store.api import MetadataStore
from lamina.store.registry import open_store
from lamina.store.sql import postgres_url

POSTGRES_URL = os.environ.get("LAMINA_TEST_POSTGRES_URL", "")
BACKENDS = ["sqlite"] + (["postgresql"] if POSTGRES_URL else [])


def _wipe_postgres(url: str) -> None:
    engine = sa.create_engine(postgres_url(url))
    try:
        existing = sa.MetaData()
        existing.reflect(engine)
        existing.drop_all(engine)
    finally:
        engine.dispose()


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL where an empty store can be opened, once per backend."""
    if request.param == "postgresql":
        _wipe_postgres(POSTGRES_URL)
        return POSTGRES_URL
    return f"sqlite:///{tmp_path / 'data' / 'lamina.db'}"


@pytest.fixture
def open_stores(store_url: str) -> Iterator[Callable[[], MetadataStore]]:
    """Opens stores on ``store_url`` (several may share it) and closes them all at the end."""
    opened: list[MetadataStore] = []

    def _open() -> MetadataStore:
        opened.append(open_store(store_url))
        return opened[-1]

    yield _open
    for store in opened:
        store.close()


@pytest.fixture
def store(open_stores: Callable[[], MetadataStore]) -> MetadataStore:
    return open_stores()
