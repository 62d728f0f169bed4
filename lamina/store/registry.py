"""Pick a metadata store backend by URL scheme.

Backends are named by import path and imported only when chosen, so a database driver is needed
only by the deployments that use it (the kombu transport registry, with typed results and no
class-level state). ``postgresql+psycopg://`` selects the ``postgresql`` backend; the part after
``+`` is the SQLAlchemy driver.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import cast

from lamina.store.api import MetadataStore

BACKENDS: dict[str, str] = {
    "sqlite": "lamina.store.sql:SQLiteStore",
    "postgresql": "lamina.store.sql:PostgresStore",
    "postgres": "lamina.store.sql:PostgresStore",
}


def backend(url: str) -> Callable[[str], MetadataStore]:
    """The factory for ``url``'s scheme; ``ValueError`` names the supported ones otherwise."""
    scheme = url.partition("://")[0].partition("+")[0].lower() if "://" in url else ""
    try:
        target = BACKENDS[scheme]
    except KeyError:
        supported = ", ".join(f"{name}://" for name in sorted(BACKENDS))
        message = f"unsupported metadata store URL {url!r}; use one of {supported}"
        raise ValueError(message) from None
    module_name, _, attr = target.partition(":")
    return cast(Callable[[str], MetadataStore], getattr(importlib.import_module(module_name), attr))


def open_store(url: str) -> MetadataStore:
    """Open (creating and migrating as needed) the metadata store at ``url``."""
    return backend(url)(url)
