"""Functions and their versions.

Revision ID: 0001
Revises:
Create Date: 2026-11-25

A revision is frozen once released: it spells out its own types instead of importing
``lamina.store.schema``, which always describes the newest revision.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _name_type() -> sa.types.TypeEngine[str]:
    return sa.String(170).with_variant(sa.String(170, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "functions",
        sa.Column("name", _name_type(), nullable=False),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("reserved_concurrency", sa.Integer, nullable=True),
        sa.PrimaryKeyConstraint("name", name="pk_functions"),
    )
    op.create_table(
        "function_versions",
        sa.Column("name", _name_type(), nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("config", sa.Text, nullable=False),
        sa.Column("code_sha256", sa.String(64), nullable=False),
        sa.Column("code_size", sa.BigInteger, nullable=False),
        sa.Column("revision_id", sa.String(64), nullable=False),
        sa.Column("last_modified", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("name", "version", name="pk_function_versions"),
        sa.ForeignKeyConstraint(
            ["name"],
            ["functions.name"],
            name="fk_function_versions_name_functions",
            ondelete="CASCADE",
        ),
    )


def downgrade() -> None:
    op.drop_table("function_versions")
    op.drop_table("functions")
