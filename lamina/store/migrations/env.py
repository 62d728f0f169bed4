"""Alembic's entry point for lamina's store migrations.

At run time the store passes an open connection, already inside a transaction
(``config.attributes["connection"]``); the migrations join that transaction. The URL path is for
developers running Alembic's commands (``revision --autogenerate`` compares with
``lamina.store.schema``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from lamina.store.schema import metadata

# A constant key for PostgreSQL's advisory lock: API nodes starting together migrate one at a time.
_PG_MIGRATION_LOCK = 0x6C616D696E61  # "lamina"


def _run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds tables instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})")
        context.run_migrations()


def _main() -> None:
    config = context.config
    connection = config.attributes.get("connection")
    if context.is_offline_mode():
        context.configure(
            url=config.get_main_option("sqlalchemy.url"),
            literal_binds=True,
            target_metadata=metadata,
        )
        with context.begin_transaction():
            context.run_migrations()
    elif connection is not None:
        _run(connection)
    else:
        engine = sa.create_engine(config.get_main_option("sqlalchemy.url") or "")
        try:
            with engine.begin() as conn:
                _run(conn)
        finally:
            engine.dispose()


_main()
