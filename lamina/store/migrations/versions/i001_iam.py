"""IAM users, roles, managed and inline policies, attachments, access keys; functions'
resource policies.

Revision ID: i001
Revises: 0001
Create Date: 2026-11-27

The first revision of the ``iam`` branch (see the package docstring). Frozen once released: it
spells out its own types instead of importing ``lamina.store.schema``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "i001"
down_revision = "0001"
branch_labels = ("iam",)
depends_on = None


def _name_type() -> sa.types.TypeEngine[str]:
    return sa.String(170).with_variant(sa.String(170, collation="C"), "postgresql")


def _entity(table: str, *extra: sa.Column[object]) -> None:
    op.create_table(
        table,
        sa.Column("name_key", sa.String(128), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("path", sa.String(512), nullable=False),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("tags", sa.Text, nullable=False),
        *extra,
        sa.PrimaryKeyConstraint("name_key", name=f"pk_{table}"),
    )


def upgrade() -> None:
    _entity("iam_users")
    _entity("iam_roles",
            sa.Column("trust_policy", sa.Text, nullable=False),
            sa.Column("description", sa.Text, nullable=False),
            sa.Column("max_session_duration", sa.Integer, nullable=False))
    op.create_table(
        "iam_policies",
        sa.Column("arn", sa.String(512), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("path", sa.String(512), nullable=False),
        sa.Column("document", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("updated", sa.Float, nullable=False),
        sa.Column("aws_managed", sa.Boolean, nullable=False),
        sa.Column("tags", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("arn", name="pk_iam_policies"),
    )
    op.create_table(
        "iam_inline_policies",
        sa.Column("owner_kind", sa.String(8), nullable=False),
        sa.Column("owner_key", sa.String(128), nullable=False),
        sa.Column("policy_name", sa.String(128), nullable=False),
        sa.Column("document", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("owner_kind", "owner_key", "policy_name",
                                name="pk_iam_inline_policies"),
    )
    op.create_table(
        "iam_attachments",
        sa.Column("owner_kind", sa.String(8), nullable=False),
        sa.Column("owner_key", sa.String(128), nullable=False),
        sa.Column("policy_arn", sa.String(512), nullable=False),
        sa.PrimaryKeyConstraint("owner_kind", "owner_key", "policy_arn",
                                name="pk_iam_attachments"),
        sa.ForeignKeyConstraint(["policy_arn"], ["iam_policies.arn"],
                                name="fk_iam_attachments_policy_arn_iam_policies"),
    )
    op.create_table(
        "iam_access_keys",
        sa.Column("access_key_id", sa.String(32), nullable=False),
        sa.Column("user_key", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("sealed_secret", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("access_key_id", name="pk_iam_access_keys"),
        sa.ForeignKeyConstraint(["user_key"], ["iam_users.name_key"],
                                name="fk_iam_access_keys_user_key_iam_users"),
    )
    op.create_index("ix_iam_access_keys_user_key", "iam_access_keys", ["user_key"])
    op.create_table(
        "function_policies",
        sa.Column("name", _name_type(), nullable=False),
        sa.Column("qualifier", sa.String(128), nullable=False),
        sa.Column("statements", sa.Text, nullable=False),
        sa.Column("revision_id", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("name", "qualifier", name="pk_function_policies"),
        sa.ForeignKeyConstraint(["name"], ["functions.name"],
                                name="fk_function_policies_name_functions", ondelete="CASCADE"),
    )


def downgrade() -> None:
    op.drop_table("function_policies")
    op.drop_index("ix_iam_access_keys_user_key", table_name="iam_access_keys")
    op.drop_table("iam_access_keys")
    op.drop_table("iam_attachments")
    op.drop_table("iam_inline_policies")
    op.drop_table("iam_policies")
    op.drop_table("iam_roles")
    op.drop_table("iam_users")
