"""IAM entities in the metadata store's database: users, roles, managed and inline policies,
attachments, access keys, and functions' resource policies (the ``iam`` migration branch).

Every method is one transaction and checks what it depends on inside it, so a refused call
changes nothing: ``NotFound``, ``AlreadyExists``, ``InUse`` and ``LimitExceeded`` carry the
name of what was missing or in the way (``"user"``, ``"policy"``, ``"access keys"``...) for the
API layer to word as IAM does. IAM names are unique ignoring case; rows are keyed by the
lower-cased name and keep the spelling they were created with.

Access key secrets arrive here already sealed (``sealed_secret``): the store never sees one in
the clear. ``snapshot`` reads everything the authorizer keeps in memory in one transaction.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from lamina.store.api import AlreadyExists, InUse, LimitExceeded, NotFound, RevisionMismatch
from lamina.store.schema import function_policies as fp
from lamina.store.schema import iam_access_keys as keys
from lamina.store.schema import iam_attachments as attachments
from lamina.store.schema import iam_inline_policies as inline
from lamina.store.schema import iam_policies as policies
from lamina.store.schema import iam_roles as roles
from lamina.store.schema import iam_users as users
from lamina.store.sql import SqlMetadataStore

USER, ROLE = "user", "role"
MAX_KEYS_PER_USER = 2  # IAM's quota


def name_key(name: str) -> str:
    return name.lower()


@dataclasses.dataclass(frozen=True)
class UserRecord:
    name: str
    id: str
    path: str
    created: float
    tags: tuple[tuple[str, str], ...] = ()


@dataclasses.dataclass(frozen=True)
class RoleRecord:
    name: str
    id: str
    path: str
    created: float
    trust_policy: str
    description: str = ""
    max_session_duration: int = 3600
    tags: tuple[tuple[str, str], ...] = ()


@dataclasses.dataclass(frozen=True)
class PolicyRecord:
    arn: str
    name: str
    id: str
    path: str
    document: str
    description: str
    created: float
    updated: float
    aws_managed: bool = False
    tags: tuple[tuple[str, str], ...] = ()
    attachments: int = 0


@dataclasses.dataclass(frozen=True)
class AccessKeyRecord:
    access_key_id: str
    user_name: str
    status: str
    created: float
    sealed_secret: str


@dataclasses.dataclass(frozen=True)
class FunctionPolicy:
    name: str
    qualifier: str  # "" for the unqualified function
    statements: tuple[dict[str, Any], ...]
    revision_id: str


@dataclasses.dataclass(frozen=True)
class IamSnapshot:
    """Everything the authorizer needs, read in one transaction."""

    users: tuple[UserRecord, ...]
    roles: tuple[RoleRecord, ...]
    policies: tuple[PolicyRecord, ...]
    inline: tuple[tuple[str, str, str, str], ...]  # (kind, owner key, policy name, document)
    attachments: tuple[tuple[str, str, str], ...]  # (kind, owner key, policy arn)
    keys: tuple[AccessKeyRecord, ...]
    function_policies: tuple[FunctionPolicy, ...]


class SqlIamStore:
    def __init__(self, store: SqlMetadataStore) -> None:
        self._store = store

    # -- users and roles ------------------------------------------------------------------------

    def create_user(self, record: UserRecord) -> None:
        with self._store.transaction(write=True) as conn:
            if _owner_exists(conn, USER, record.name):
                raise AlreadyExists("user")
            conn.execute(sa.insert(users).values(
                name_key=name_key(record.name), name=record.name, id=record.id,
                path=record.path, created=record.created, tags=_tags(record.tags)))

    def get_user(self, name: str) -> UserRecord | None:
        with self._store.transaction() as conn:
            row = conn.execute(sa.select(users).where(users.c.name_key == name_key(name))
                               ).one_or_none()
        return None if row is None else _user(row)

    def list_users(self) -> list[UserRecord]:
        with self._store.transaction() as conn:
            return [_user(r) for r in conn.execute(sa.select(users).order_by(users.c.name_key))]

    def delete_user(self, name: str) -> None:
        """IAM refuses to delete a user that still has keys or policies."""
        key = name_key(name)
        with self._store.transaction(write=True) as conn:
            if not _owner_exists(conn, USER, name):
                raise NotFound("user")
            if conn.execute(sa.select(keys.c.access_key_id).where(keys.c.user_key == key)
                            .limit(1)).first():
                raise InUse("access keys")
            _refuse_if_policies(conn, USER, key)
            conn.execute(sa.delete(users).where(users.c.name_key == key))

    def create_role(self, record: RoleRecord) -> None:
        with self._store.transaction(write=True) as conn:
            if _owner_exists(conn, ROLE, record.name):
                raise AlreadyExists("role")
            conn.execute(sa.insert(roles).values(
                name_key=name_key(record.name), name=record.name, id=record.id,
                path=record.path, created=record.created, tags=_tags(record.tags),
                trust_policy=record.trust_policy, description=record.description,
                max_session_duration=record.max_session_duration))

    def get_role(self, name: str) -> RoleRecord | None:
        with self._store.transaction() as conn:
            row = conn.execute(sa.select(roles).where(roles.c.name_key == name_key(name))
                               ).one_or_none()
        return None if row is None else _role(row)

    def list_roles(self) -> list[RoleRecord]:
        with self._store.transaction() as conn:
            return [_role(r) for r in conn.execute(sa.select(roles).order_by(roles.c.name_key))]

    def update_trust_policy(self, name: str, document: str) -> None:
        with self._store.transaction(write=True) as conn:
            done = conn.execute(sa.update(roles).where(roles.c.name_key == name_key(name))
                                .values(trust_policy=document)).rowcount
        if not done:
            raise NotFound("role")

    def delete_role(self, name: str) -> None:
        key = name_key(name)
        with self._store.transaction(write=True) as conn:
            if not _owner_exists(conn, ROLE, name):
                raise NotFound("role")
            _refuse_if_policies(conn, ROLE, key)
            conn.execute(sa.delete(roles).where(roles.c.name_key == key))

    # -- inline policies ------------------------------------------------------------------------

    def put_inline(self, kind: str, owner: str, policy_name: str, document: str) -> None:
        key = name_key(owner)
        with self._store.transaction(write=True) as conn:
            if not _owner_exists(conn, kind, owner):
                raise NotFound(kind)
            where = _inline_where(kind, key, policy_name)
            if conn.execute(sa.update(inline).where(*where).values(document=document)).rowcount:
                return
            conn.execute(sa.insert(inline).values(owner_kind=kind, owner_key=key,
                                                  policy_name=policy_name, document=document))

    def get_inline(self, kind: str, owner: str, policy_name: str) -> str:
        with self._store.transaction() as conn:
            if not _owner_exists(conn, kind, owner):
                raise NotFound(kind)
            document = conn.execute(sa.select(inline.c.document).where(
                *_inline_where(kind, name_key(owner), policy_name))).scalar_one_or_none()
        if document is None:
            raise NotFound("policy")
        return str(document)

    def delete_inline(self, kind: str, owner: str, policy_name: str) -> None:
        with self._store.transaction(write=True) as conn:
            if not _owner_exists(conn, kind, owner):
                raise NotFound(kind)
            if not conn.execute(sa.delete(inline).where(
                    *_inline_where(kind, name_key(owner), policy_name))).rowcount:
                raise NotFound("policy")

    def list_inline(self, kind: str, owner: str) -> list[str]:
        with self._store.transaction() as conn:
            if not _owner_exists(conn, kind, owner):
                raise NotFound(kind)
            return [r[0] for r in conn.execute(
                sa.select(inline.c.policy_name).where(
                    inline.c.owner_kind == kind, inline.c.owner_key == name_key(owner))
                .order_by(inline.c.policy_name))]

    # -- managed policies and attachments -------------------------------------------------------

    def create_policy(self, record: PolicyRecord) -> None:
        with self._store.transaction(write=True) as conn:
            self._insert_policy(conn, record)

    def ensure_policies(self, records: Sequence[PolicyRecord]) -> None:
        """Insert the predefined (AWS-managed) policies that are missing; keep the rest."""
        with self._store.transaction(write=True) as conn:
            for record in records:
                if conn.execute(sa.select(policies.c.arn).where(policies.c.arn == record.arn)
                                ).first() is None:
                    self._insert_policy(conn, record)

    @staticmethod
    def _insert_policy(conn: sa.Connection, record: PolicyRecord) -> None:
        if conn.execute(sa.select(policies.c.arn).where(policies.c.arn == record.arn)).first():
            raise AlreadyExists("policy")
        conn.execute(sa.insert(policies).values(
            arn=record.arn, name=record.name, id=record.id, path=record.path,
            document=record.document, description=record.description, created=record.created,
            updated=record.updated, aws_managed=record.aws_managed, tags=_tags(record.tags)))

    def get_policy(self, arn: str) -> PolicyRecord | None:
        with self._store.transaction() as conn:
            row = conn.execute(sa.select(policies).where(policies.c.arn == arn)).one_or_none()
            if row is None:
                return None
            return _policy(row, _attachment_count(conn, arn))

    def list_policies(self) -> list[PolicyRecord]:
        with self._store.transaction() as conn:
            counts = dict(conn.execute(
                sa.select(attachments.c.policy_arn, sa.func.count())
                .group_by(attachments.c.policy_arn)).all())
            return [_policy(r, counts.get(r.arn, 0)) for r in conn.execute(
                sa.select(policies).order_by(policies.c.name, policies.c.arn))]

    def delete_policy(self, arn: str) -> None:
        with self._store.transaction(write=True) as conn:
            if conn.execute(sa.select(policies.c.arn).where(policies.c.arn == arn)).first() \
                    is None:
                raise NotFound("policy")
            if _attachment_count(conn, arn):
                raise InUse("attachments")
            conn.execute(sa.delete(policies).where(policies.c.arn == arn))

    def attach(self, kind: str, owner: str, arn: str) -> None:
        key = name_key(owner)
        with self._store.transaction(write=True) as conn:
            if not _owner_exists(conn, kind, owner):
                raise NotFound(kind)
            if conn.execute(sa.select(policies.c.arn).where(policies.c.arn == arn)).first() \
                    is None:
                raise NotFound("policy")
            if conn.execute(sa.select(attachments.c.policy_arn).where(
                    *_attachment_where(kind, key, arn))).first() is None:
                conn.execute(sa.insert(attachments).values(owner_kind=kind, owner_key=key,
                                                           policy_arn=arn))

    def detach(self, kind: str, owner: str, arn: str) -> None:
        with self._store.transaction(write=True) as conn:
            if not _owner_exists(conn, kind, owner):
                raise NotFound(kind)
            if not conn.execute(sa.delete(attachments).where(
                    *_attachment_where(kind, name_key(owner), arn))).rowcount:
                raise NotFound("attachment")

    def list_attached(self, kind: str, owner: str) -> list[tuple[str, str]]:
        """(policy name, policy arn) of the managed policies attached to a user or role."""
        with self._store.transaction() as conn:
            if not _owner_exists(conn, kind, owner):
                raise NotFound(kind)
            return [(r.name, r.arn) for r in conn.execute(
                sa.select(policies.c.name, policies.c.arn)
                .join(attachments, attachments.c.policy_arn == policies.c.arn)
                .where(attachments.c.owner_kind == kind,
                       attachments.c.owner_key == name_key(owner))
                .order_by(policies.c.name))]

    # -- access keys ----------------------------------------------------------------------------

    def create_key(self, record: AccessKeyRecord) -> None:
        key = name_key(record.user_name)
        with self._store.transaction(write=True) as conn:
            if not _owner_exists(conn, USER, record.user_name):
                raise NotFound("user")
            count = conn.execute(sa.select(sa.func.count()).select_from(keys)
                                 .where(keys.c.user_key == key)).scalar_one()
            if count >= MAX_KEYS_PER_USER:
                raise LimitExceeded("access keys")
            conn.execute(sa.insert(keys).values(
                access_key_id=record.access_key_id, user_key=key, status=record.status,
                created=record.created, sealed_secret=record.sealed_secret))

    def delete_key(self, user_name: str, access_key_id: str) -> None:
        with self._store.transaction(write=True) as conn:
            if not _owner_exists(conn, USER, user_name):
                raise NotFound("user")
            if not conn.execute(sa.delete(keys).where(
                    keys.c.access_key_id == access_key_id,
                    keys.c.user_key == name_key(user_name))).rowcount:
                raise NotFound("access key")

    def set_key_status(self, user_name: str, access_key_id: str, status: str) -> None:
        with self._store.transaction(write=True) as conn:
            if not _owner_exists(conn, USER, user_name):
                raise NotFound("user")
            if not conn.execute(sa.update(keys).where(
                    keys.c.access_key_id == access_key_id,
                    keys.c.user_key == name_key(user_name)).values(status=status)).rowcount:
                raise NotFound("access key")

    def list_keys(self, user_name: str) -> list[AccessKeyRecord]:
        with self._store.transaction() as conn:
            user = _owner_name(conn, USER, user_name)
            if user is None:
                raise NotFound("user")
            return [AccessKeyRecord(r.access_key_id, user, r.status, r.created, r.sealed_secret)
                    for r in conn.execute(sa.select(keys).where(
                        keys.c.user_key == name_key(user_name)).order_by(keys.c.created))]

    # -- functions' resource policies -----------------------------------------------------------

    def function_policy(self, name: str, qualifier: str) -> FunctionPolicy | None:
        with self._store.transaction() as conn:
            row = conn.execute(sa.select(fp).where(fp.c.name == name, fp.c.qualifier == qualifier)
                               ).one_or_none()
        return None if row is None else _function_policy(row)

    def add_statement(self, name: str, qualifier: str, statement: dict[str, Any],
                      expected_revision: str | None, new_revision: str) -> None:
        """Append ``statement`` (its ``Sid`` unique in the policy); ``expected_revision`` guards
        against a concurrent change, as Lambda's ``RevisionId`` does."""
        with self._store.transaction(write=True) as conn:
            row = conn.execute(sa.select(fp).where(fp.c.name == name, fp.c.qualifier == qualifier)
                               .with_for_update()).one_or_none()
            current = _function_policy(row) if row is not None else None
            if expected_revision is not None and (
                    current is None or current.revision_id != expected_revision):
                raise RevisionMismatch(name)
            statements = list(current.statements) if current else []
            if any(s.get("Sid") == statement.get("Sid") for s in statements):
                raise AlreadyExists("statement")
            statements.append(statement)
            document = json.dumps(statements, separators=(",", ":"))
            if current is None:
                conn.execute(sa.insert(fp).values(name=name, qualifier=qualifier,
                                                  statements=document, revision_id=new_revision))
            else:
                conn.execute(sa.update(fp).where(fp.c.name == name, fp.c.qualifier == qualifier)
                             .values(statements=document, revision_id=new_revision))

    def remove_statement(self, name: str, qualifier: str, sid: str,
                         expected_revision: str | None, new_revision: str) -> None:
        with self._store.transaction(write=True) as conn:
            row = conn.execute(sa.select(fp).where(fp.c.name == name, fp.c.qualifier == qualifier)
                               .with_for_update()).one_or_none()
            if row is None:
                raise NotFound("statement")
            current = _function_policy(row)
            if expected_revision is not None and current.revision_id != expected_revision:
                raise RevisionMismatch(name)
            kept = [s for s in current.statements if s.get("Sid") != sid]
            if len(kept) == len(current.statements):
                raise NotFound("statement")
            where = (fp.c.name == name, fp.c.qualifier == qualifier)
            if kept:
                conn.execute(sa.update(fp).where(*where).values(
                    statements=json.dumps(kept, separators=(",", ":")),
                    revision_id=new_revision))
            else:
                conn.execute(sa.delete(fp).where(*where))

    def delete_function_policy(self, name: str, qualifier: str) -> bool:
        """Drop the resource policy of one qualifier (its alias or version is gone), so that a
        later alias or version of the same name starts without it. True when one was there."""
        with self._store.transaction(write=True) as conn:
            deleted = conn.execute(sa.delete(fp).where(fp.c.name == name,
                                                       fp.c.qualifier == qualifier))
        return bool(deleted.rowcount)

    # -- everything, for the authorizer ---------------------------------------------------------

    def snapshot(self) -> IamSnapshot:
        with self._store.transaction() as conn:
            return IamSnapshot(
                users=tuple(_user(r) for r in conn.execute(sa.select(users))),
                roles=tuple(_role(r) for r in conn.execute(sa.select(roles))),
                policies=tuple(_policy(r, 0) for r in conn.execute(sa.select(policies))),
                inline=tuple((r.owner_kind, r.owner_key, r.policy_name, r.document)
                             for r in conn.execute(sa.select(inline))),
                attachments=tuple((r.owner_kind, r.owner_key, r.policy_arn)
                                  for r in conn.execute(sa.select(attachments))),
                keys=tuple(AccessKeyRecord(r.access_key_id, r.name, r.status, r.created,
                                           r.sealed_secret)
                           for r in conn.execute(sa.select(keys, users.c.name).join(
                               users, users.c.name_key == keys.c.user_key))),
                function_policies=tuple(_function_policy(r)
                                        for r in conn.execute(sa.select(fp))),
            )


# -- helpers ------------------------------------------------------------------------------------

def _owner_table(kind: str) -> sa.Table:
    return users if kind == USER else roles


def _owner_exists(conn: sa.Connection, kind: str, name: str) -> bool:
    return _owner_name(conn, kind, name) is not None


def _owner_name(conn: sa.Connection, kind: str, name: str) -> str | None:
    table = _owner_table(kind)
    return conn.execute(sa.select(table.c.name).where(table.c.name_key == name_key(name))
                        ).scalar_one_or_none()


def _refuse_if_policies(conn: sa.Connection, kind: str, key: str) -> None:
    if conn.execute(sa.select(inline.c.policy_name).where(
            inline.c.owner_kind == kind, inline.c.owner_key == key).limit(1)).first():
        raise InUse("policies")
    if conn.execute(sa.select(attachments.c.policy_arn).where(
            attachments.c.owner_kind == kind, attachments.c.owner_key == key).limit(1)).first():
        raise InUse("attached policies")


def _inline_where(kind: str, key: str, policy_name: str) -> tuple[Any, ...]:
    return (inline.c.owner_kind == kind, inline.c.owner_key == key,
            inline.c.policy_name == policy_name)


def _attachment_where(kind: str, key: str, arn: str) -> tuple[Any, ...]:
    return (attachments.c.owner_kind == kind, attachments.c.owner_key == key,
            attachments.c.policy_arn == arn)


def _attachment_count(conn: sa.Connection, arn: str) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(attachments)
                            .where(attachments.c.policy_arn == arn)).scalar_one())


def _tags(tags: Sequence[tuple[str, str]]) -> str:
    return json.dumps([{"Key": k, "Value": v} for k, v in tags])


def _parse_tags(text: str) -> tuple[tuple[str, str], ...]:
    return tuple((t["Key"], t["Value"]) for t in json.loads(text or "[]"))


def _user(row: Any) -> UserRecord:
    return UserRecord(row.name, row.id, row.path, row.created, _parse_tags(row.tags))


def _role(row: Any) -> RoleRecord:
    return RoleRecord(row.name, row.id, row.path, row.created, row.trust_policy,
                      row.description, row.max_session_duration, _parse_tags(row.tags))


def _policy(row: Any, count: int) -> PolicyRecord:
    return PolicyRecord(row.arn, row.name, row.id, row.path, row.document, row.description,
                        row.created, row.updated, bool(row.aws_managed), _parse_tags(row.tags),
                        count)


def _function_policy(row: Any) -> FunctionPolicy:
    return FunctionPolicy(row.name, row.qualifier, tuple(json.loads(row.statements)),
                          row.revision_id)
