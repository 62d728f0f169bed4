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

# -- the asynchronous invocation queue (migration branch "async_events") ------------------------

async_events = sa.Table(
    "async_events",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("function_name", function_name_type(), nullable=False),
    sa.Column("qualifier", sa.String(128), nullable=True),
    sa.Column("function_created", sa.Float, nullable=True),  # tells a re-created function apart
    sa.Column("request_id", sa.String(64), nullable=False),
    sa.Column("invoked_arn", sa.String(300), nullable=False),
    sa.Column("trace_id", sa.Text, nullable=False),
    sa.Column("payload", sa.LargeBinary, nullable=False),
    sa.Column("enqueued_at", sa.Float, nullable=False),  # unix time, for the maximum event age
    sa.Column("visible_at", sa.Float, nullable=False),  # claimable from then (due or lease end)
    sa.Column("owner", sa.String(64), nullable=True),  # the dispatcher holding the lease
    sa.Column("invoke_count", sa.Integer, nullable=False),  # runs that reached the function
    sa.Column("requeues", sa.Integer, nullable=False),  # throttles and platform errors so far
    sa.Column("depth", sa.Integer, nullable=False),  # destination hops that led to this event
    sa.Column("last_result", sa.Text, nullable=True),  # JSON of the last attempt's outcome
    sa.Index("ix_async_events_due", "function_name", "visible_at", "id"),
    sa.Index("ix_async_events_owner", "owner"),
)

event_invoke_configs = sa.Table(
    "event_invoke_configs",
    metadata,
    sa.Column(
        "function_name",
        function_name_type(),
        sa.ForeignKey("functions.name", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("qualifier", sa.String(128), primary_key=True),
    sa.Column("config", sa.Text, nullable=False),  # Lambda's JSON members, as given
    sa.Column("last_modified", sa.Float, nullable=False),
)

# -- versions, aliases, layers, tags, provisioned concurrency, data keys (branch "catalog") --------

function_version_counters = sa.Table(
    "function_version_counters",
    metadata,
    sa.Column("name", function_name_type(), sa.ForeignKey("functions.name", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("last_version", sa.Integer, nullable=False),  # never reused, even after a delete
)

aliases = sa.Table(
    "aliases",
    metadata,
    sa.Column("name", function_name_type(), sa.ForeignKey("functions.name", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("alias", sa.String(128), primary_key=True),
    sa.Column("version", sa.String(32), nullable=False),
    sa.Column("extra_version", sa.String(32), nullable=True),  # RoutingConfig's one extra
    sa.Column("extra_weight", sa.Float, nullable=True),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("revision_id", sa.String(64), nullable=False),
    # A version an alias routes to cannot be deleted (checked at the end of the statement, so
    # deleting the whole function, which cascades to both, still works).
    sa.ForeignKeyConstraint(["name", "version"], ["function_versions.name",
                                                  "function_versions.version"],
                            name="fk_aliases_version_function_versions"),
    sa.ForeignKeyConstraint(["name", "extra_version"], ["function_versions.name",
                                                        "function_versions.version"],
                            name="fk_aliases_extra_version_function_versions"),
)

layers = sa.Table(
    "layers",
    metadata,
    sa.Column("name", sa.String(140), primary_key=True),
    sa.Column("last_version", sa.Integer, nullable=False),  # never reused, even after a delete
)

layer_versions = sa.Table(
    "layer_versions",
    metadata,
    sa.Column("name", sa.String(140), sa.ForeignKey("layers.name", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),  # hex sha256 of the zip (a blob)
    sa.Column("code_size", sa.BigInteger, nullable=False),
    sa.Column("unzipped_size", sa.BigInteger, nullable=False),
    sa.Column("runtimes", sa.Text, nullable=False),  # JSON list
    sa.Column("architectures", sa.Text, nullable=False),  # JSON list
    sa.Column("license", sa.Text, nullable=True),
    sa.Column("created", sa.String(40), nullable=False),
    sa.Column("policy", sa.Text, nullable=True),  # JSON list of statements
    sa.Column("policy_revision", sa.String(64), nullable=True),
)

function_tags = sa.Table(
    "function_tags",
    metadata,
    sa.Column("name", function_name_type(), sa.ForeignKey("functions.name", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("key", sa.String(128), primary_key=True),
    sa.Column("value", sa.String(256), nullable=False),
)

provisioned_concurrency = sa.Table(
    "provisioned_concurrency",
    metadata,
    sa.Column("name", function_name_type(), sa.ForeignKey("functions.name", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("qualifier", sa.String(128), primary_key=True),  # a version or an alias
    sa.Column("requested", sa.Integer, nullable=False),
    sa.Column("last_modified", sa.String(40), nullable=False),
)

data_keys = sa.Table(
    "data_keys",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("owner", function_name_type(), nullable=False, unique=True),
    sa.Column("master_key_id", sa.String(64), nullable=False),
    sa.Column("wrapped", sa.Text, nullable=False),  # base64 of nonce + AES-GCM(master, key)
    sa.Column("created", sa.Float, nullable=False),
)

key_ring_state = sa.Table(
    "key_ring_state",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),  # one row, id 1
    sa.Column("active_master_key_id", sa.String(64), nullable=False),
)

# -- IAM entities and functions' resource policies (branch "iam") --------------------------------


def _iam_entity(table: str, *extra: sa.Column[object]) -> sa.Table:
    """A user or role: IAM names are unique ignoring case, so the key is the lower-cased name."""
    return sa.Table(
        table,
        metadata,
        sa.Column("name_key", sa.String(128), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("id", sa.String(32), nullable=False),  # AIDA... / AROA...
        sa.Column("path", sa.String(512), nullable=False),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("tags", sa.Text, nullable=False),  # JSON list of {Key, Value}
        *extra,
    )


iam_users = _iam_entity("iam_users")

iam_roles = _iam_entity(
    "iam_roles",
    sa.Column("trust_policy", sa.Text, nullable=False),  # the assume-role policy, as given
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("max_session_duration", sa.Integer, nullable=False),
)

iam_policies = sa.Table(
    "iam_policies",
    metadata,
    sa.Column("arn", sa.String(512), primary_key=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("id", sa.String(32), nullable=False),  # ANPA...
    sa.Column("path", sa.String(512), nullable=False),
    sa.Column("document", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("updated", sa.Float, nullable=False),
    sa.Column("aws_managed", sa.Boolean, nullable=False),
    sa.Column("tags", sa.Text, nullable=False),
)

iam_inline_policies = sa.Table(
    "iam_inline_policies",
    metadata,
    sa.Column("owner_kind", sa.String(8), primary_key=True),  # "user" or "role"
    sa.Column("owner_key", sa.String(128), primary_key=True),
    sa.Column("policy_name", sa.String(128), primary_key=True),
    sa.Column("document", sa.Text, nullable=False),
)

iam_attachments = sa.Table(
    "iam_attachments",
    metadata,
    sa.Column("owner_kind", sa.String(8), primary_key=True),
    sa.Column("owner_key", sa.String(128), primary_key=True),
    sa.Column("policy_arn", sa.String(512), sa.ForeignKey("iam_policies.arn"), primary_key=True),
)

iam_access_keys = sa.Table(
    "iam_access_keys",
    metadata,
    sa.Column("access_key_id", sa.String(32), primary_key=True),
    sa.Column("user_key", sa.String(128), sa.ForeignKey("iam_users.name_key"), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("sealed_secret", sa.Text, nullable=False),  # envelope-encrypted, never plaintext
    sa.Index("ix_iam_access_keys_user_key", "user_key"),
)

function_policies = sa.Table(
    "function_policies",
    metadata,
    sa.Column("name", function_name_type(), sa.ForeignKey("functions.name", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("qualifier", sa.String(128), primary_key=True),  # "" for the unqualified ARN
    sa.Column("statements", sa.Text, nullable=False),  # JSON list
    sa.Column("revision_id", sa.String(64), nullable=False),
)
