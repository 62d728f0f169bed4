"""The tables of the metadata store as the store's queries see them (SQLAlchemy Core).

This module describes the schema *at the head revision*; the migrations in
``lamina/store/migrations/versions/`` are what actually create and change it, and a test checks
that the two agree. When a table changes, change both: first write the new revision, then mirror
it here.

Only generic column types are used so that the same queries run on SQLite and PostgreSQL.
Lambda's ``FunctionConfiguration`` is kept as JSON text in ``function_versions.config`` so that a
new Lambda field needs no migration; only what the store itself queries or guards (names, versions,
revision ids, code digests, reservations) gets a column of its own.
"""

from __future__ import annotations

import sqlalchemy as sa

# Constraint names are derived from this convention, so a later migration can refer to (and drop)
# a constraint by a name it can predict on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


def function_name_type() -> sa.types.TypeEngine[str]:
    """A function name column. On PostgreSQL it compares bytewise (collation "C"), as SQLite's
    default BINARY collation does, so ``ListFunctions`` pages in the same order on both."""
    return sa.String(170).with_variant(sa.String(170, collation="C"), "postgresql")


functions = sa.Table(
    "functions",
    metadata,
    sa.Column("name", function_name_type(), primary_key=True),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("reserved_concurrency", sa.Integer, nullable=True),
)

function_versions = sa.Table(
    "function_versions",
    metadata,
    sa.Column(
        "name",
        function_name_type(),
        sa.ForeignKey("functions.name", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("version", sa.String(32), primary_key=True),
    sa.Column("config", sa.Text, nullable=False),
    sa.Column("code_sha256", sa.String(64), nullable=False),
    sa.Column("code_size", sa.BigInteger, nullable=False),
    sa.Column("revision_id", sa.String(64), nullable=False),
    sa.Column("last_modified", sa.String(32), nullable=False),
)
