"""A function's tags (TagResource / UntagResource / ListTags). They go with the function."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import sqlalchemy as sa

from lamina.store.api import LimitExceeded
from lamina.store.schema import function_tags as ft
from lamina.store.sql import SqlMetadataStore, lock_function


class SqlTagStore:
    def __init__(self, store: SqlMetadataStore) -> None:
        self._store = store

    def get(self, name: str) -> dict[str, str]:
        stmt = sa.select(ft.c.key, ft.c.value).where(ft.c.name == name).order_by(ft.c.key)
        with self._store.transaction() as conn:
            return {row.key: row.value for row in conn.execute(stmt)}

    def tag(self, name: str, tags: Mapping[str, str], limit: int) -> None:
        """Add or overwrite ``tags``. Raises ``NotFound``, or ``LimitExceeded`` when the
        function would carry more than ``limit`` tags (nothing is written then)."""
        with self._store.transaction(write=True) as conn:
            lock_function(conn, name)
            current = {row.key for row in conn.execute(
                sa.select(ft.c.key).where(ft.c.name == name))}
            if len(current | set(tags)) > limit:
                raise LimitExceeded(name)
            for key, value in tags.items():
                if key in current:
                    conn.execute(sa.update(ft).where(ft.c.name == name, ft.c.key == key)
                                 .values(value=value))
                else:
                    conn.execute(sa.insert(ft).values(name=name, key=key, value=value))

    def untag(self, name: str, keys: Iterable[str]) -> None:
        """Remove ``keys`` (unknown keys are ignored). Raises ``NotFound``."""
        with self._store.transaction(write=True) as conn:
            lock_function(conn, name)
            conn.execute(sa.delete(ft).where(ft.c.name == name, ft.c.key.in_(list(keys))))
