"""Published versions' counters, aliases, layers, tags, provisioned concurrency, data keys.

Revision ID: v001
Revises: 0001
Create Date: 2026-11-25

The first revision of the ``catalog`` branch (see the package docstring). Frozen once released:
it spells out its own types instead of importing ``lamina.store.schema``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "v001"
down_revision = "0001"
branch_labels = ("catalog",)
depends_on = None


def _name_type() -> sa.types.TypeEngine[str]:
    return sa.String(170).with_variant(sa.String(170, collation="C"), "postgresql")


def _function_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["name"], ["functions.name"],
                                   name=f"fk_{table}_name_functions", ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "function_version_counters",
        sa.Column("name", _name_type(), nullable=False),
        sa.Column("last_version", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_function_version_counters"),
        _function_fk("function_version_counters"),
    )
    op.create_table(
        "aliases",
        sa.Column("name", _name_type(), nullable=False),
        sa.Column("alias", sa.String(128), nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("extra_version", sa.String(32), nullable=True),
        sa.Column("extra_weight", sa.Float, nullable=True),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("revision_id", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("name", "alias", name="pk_aliases"),
        _function_fk("aliases"),
        sa.ForeignKeyConstraint(["name", "version"],
                                ["function_versions.name", "function_versions.version"],
                                name="fk_aliases_version_function_versions"),
        sa.ForeignKeyConstraint(["name", "extra_version"],
                                ["function_versions.name", "function_versions.version"],
                                name="fk_aliases_extra_version_function_versions"),
    )
    op.create_table(
        "layers",
        sa.Column("name", sa.String(140), nullable=False),
        sa.Column("last_version", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_layers"),
    )
    op.create_table(
        "layer_versions",
        sa.Column("name", sa.String(140), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("code_size", sa.BigInteger, nullable=False),
        sa.Column("unzipped_size", sa.BigInteger, nullable=False),
        sa.Column("runtimes", sa.Text, nullable=False),
        sa.Column("architectures", sa.Text, nullable=False),
        sa.Column("license", sa.Text, nullable=True),
        sa.Column("created", sa.String(40), nullable=False),
        sa.Column("policy", sa.Text, nullable=True),
        sa.Column("policy_revision", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("name", "version", name="pk_layer_versions"),
        sa.ForeignKeyConstraint(["name"], ["layers.name"],
                                name="fk_layer_versions_name_layers", ondelete="CASCADE"),
    )
    op.create_table(
        "function_tags",
        sa.Column("name", _name_type(), nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("value", sa.String(256), nullable=False),
        sa.PrimaryKeyConstraint("name", "key", name="pk_function_tags"),
        _function_fk("function_tags"),
    )
    op.create_table(
        "provisioned_concurrency",
        sa.Column("name", _name_type(), nullable=False),
        sa.Column("qualifier", sa.String(128), nullable=False),
        sa.Column("requested", sa.Integer, nullable=False),
        sa.Column("last_modified", sa.String(40), nullable=False),
        sa.PrimaryKeyConstraint("name", "qualifier", name="pk_provisioned_concurrency"),
        _function_fk("provisioned_concurrency"),
    )
    op.create_table(
        "data_keys",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("owner", _name_type(), nullable=False),
        sa.Column("master_key_id", sa.String(64), nullable=False),
        sa.Column("wrapped", sa.Text, nullable=False),
        sa.Column("created", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_data_keys"),
        sa.UniqueConstraint("owner", name="uq_data_keys_owner"),
    )
    op.create_table(
        "key_ring_state",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("active_master_key_id", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_key_ring_state"),
    )


def downgrade() -> None:
    for table in ("key_ring_state", "data_keys", "provisioned_concurrency", "function_tags",
                  "layer_versions", "layers", "aliases", "function_version_counters"):
        op.drop_table(table)
