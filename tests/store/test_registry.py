"""Backends are chosen by URL scheme and imported only when chosen."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lamina.store.registry import backend
from lamina.store.sql import PostgresStore, SQLiteStore


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:////var/lib/lamina/lamina.db", SQLiteStore),
        ("sqlite://", SQLiteStore),
        ("postgresql://u:p@db/lamina", PostgresStore),
        ("postgresql+psycopg://u:p@db/lamina", PostgresStore),
        ("POSTGRES://db/lamina", PostgresStore),
    ],
)
def test_scheme_picks_the_backend(url: str, expected: type) -> None:
    assert backend(url) is expected


@pytest.mark.parametrize("url", ["mysql://db/x", "lamina.db", "", "redis://x"])
def test_unknown_scheme_names_the_supported_ones(url: str) -> None:
    with pytest.raises(ValueError, match="sqlite://"):
        backend(url)


def test_importing_the_registry_loads_no_backend() -> None:
    script = (
        "import sys, lamina.store.registry;"
        "print(sorted(m for m in sys.modules if m == 'sqlalchemy' or m == 'lamina.store.sql'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
