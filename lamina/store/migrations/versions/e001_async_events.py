"""The asynchronous invocation queue and the functions' event invoke configs.

Revision ID: e001
Revises: 0001
Create Date: 2026-11-26

The first revision of the ``async_events`` branch (see the package docstring). Frozen once
released: it spells out its own types instead of importing ``lamina.store.schema``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "e001"
down_revision = "0001"
branch_labels = ("async_events",)
depends_on = None


def _name_type() -> sa.types.TypeEngine[str]:
    return sa.String(170).with_variant(sa.String(170, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "async_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), nullable=False,
                  autoincrement=True),
        sa.Column("function_name", _name_type(), nullable=False),
        sa.Column("qualifier", sa.String(128), nullable=True),
        sa.Column("function_created", sa.Float, nullable=True),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("invoked_arn", sa.String(300), nullable=False),
        sa.Column("trace_id", sa.Text, nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("enqueued_at", sa.Float, nullable=False),
        sa.Column("visible_at", sa.Float, nullable=False),
        sa.Column("owner", sa.String(64), nullable=True),
        sa.Column("invoke_count", sa.Integer, nullable=False),
        sa.Column("requeues", sa.Integer, nullable=False),
        sa.Column("depth", sa.Integer, nullable=False),
        sa.Column("last_result", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_async_events"),
    )
    op.create_index("ix_async_events_due", "async_events",
                    ["function_name", "visible_at", "id"])
    op.create_index("ix_async_events_owner", "async_events", ["owner"])
    op.create_table(
        "event_invoke_configs",
        sa.Column("function_name", _name_type(), nullable=False),
        sa.Column("qualifier", sa.String(128), nullable=False),
        sa.Column("config", sa.Text, nullable=False),
        sa.Column("last_modified", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("function_name", "qualifier", name="pk_event_invoke_configs"),
        sa.ForeignKeyConstraint(
            ["function_name"],
            ["functions.name"],
            name="fk_event_invoke_configs_function_name_functions",
            ondelete="CASCADE",
        ),
    )


def downgrade() -> None:
    op.drop_table("event_invoke_configs")
    op.drop_index("ix_async_events_owner", table_name="async_events")
    op.drop_index("ix_async_events_due", table_name="async_events")
    op.drop_table("async_events")
