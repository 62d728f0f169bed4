"""The in-memory view of IAM that every request is checked against.

The store is the truth; this directory holds what the authorizer reads on each call: active
access keys (their secrets opened once, for SigV4), each user's and role's compiled policies
(inline and attached), roles' trust policies, and functions' resource policies. It is rebuilt
from one store snapshot after every change made through this server (``reload``, in a worker
thread) and swapped in whole, so a reader never sees half a change; ``generation`` grows with
every swap and invalidates the authorizer's cached decisions.

Access key secrets are sealed with the envelope (``lamina.secrets``) under the owner
``iam:access-keys`` (no function can be called that: deleting a function deletes its data
key); a sealed value names its key id, so one cannot be moved to another
key. Without an envelope (tests of the identity layer alone) secrets are kept in a plain
``{"AccessKeyId", "SecretAccessKey"}`` document.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections.abc import Mapping
from typing import Any

from lamina.identity import ids
from lamina.identity.errors import MalformedPolicy
from lamina.identity.managed import DEFAULT_ROLE, aws_managed_policies, default_role
from lamina.identity.policy import Kind, Policy, parse_policy
from lamina.secrets.envelope import DecryptionFailed, Envelope
from lamina.store.api import AlreadyExists
from lamina.store.iam import (
    ROLE,
    USER,
    IamSnapshot,
    RoleRecord,
    SqlIamStore,
    UserRecord,
    name_key,
)

log = logging.getLogger(__name__)
KEY_OWNER = "iam:access-keys"  # a colon: never a function's name, so never deleted with one


@dataclasses.dataclass(frozen=True)
class KeyEntry:
    access_key_id: str
    secret: str
    user_name: str
    active: bool


@dataclasses.dataclass(frozen=True)
class _State:
    users: Mapping[str, UserRecord]
    roles: Mapping[str, RoleRecord]
    keys: Mapping[str, KeyEntry]
    identity: Mapping[tuple[str, str], tuple[Policy, ...]]  # (kind, owner key) -> policies
    trust: Mapping[str, Policy]  # role key -> trust policy
    functions: Mapping[tuple[str, str], Policy]  # (function, qualifier) -> resource policy


_EMPTY = _State({}, {}, {}, {}, {}, {})


class Directory:
    def __init__(self, store: SqlIamStore, account_id: str,
                 envelope: Envelope | None = None) -> None:
        self.store = store
        self.account_id = account_id
        self.envelope = envelope
        self.generation = 0
        self._state = _EMPTY
        self._lock = threading.Lock()

    # -- start-up -----------------------------------------------------------------------------

    def bootstrap(self) -> None:
        """Predefine the AWS-managed policies and the default execution role, then load."""
        self.store.ensure_policies(aws_managed_policies())
        if self.store.get_role(DEFAULT_ROLE) is None:
            try:
                self.store.create_role(default_role(ids.unique_id("AROA")))
                self.store.attach(ROLE, DEFAULT_ROLE, aws_managed_policies()[0].arn)
            except AlreadyExists:
                pass
        self.reload()

    def reload(self) -> None:
        """Rebuild the view from the store and swap it in (blocking: run off the loop)."""
        with self._lock:
            state = self._build(self.store.snapshot())
            self._state = state
            self.generation += 1

    # -- secrets ------------------------------------------------------------------------------

    def seal_secret(self, access_key_id: str, secret: str) -> str:
        document = {"AccessKeyId": access_key_id, "SecretAccessKey": secret}
        if self.envelope is None:
            return json.dumps(document)
        return json.dumps(self.envelope.seal(KEY_OWNER, document))

    def _open_secret(self, access_key_id: str, sealed: str) -> str | None:
        try:
            document: dict[str, Any] = json.loads(sealed)
            if self.envelope is not None:
                document = dict(self.envelope.open(KEY_OWNER, document))
        except (DecryptionFailed, ValueError) as exc:
            log.error("access key %s cannot be opened: %s", access_key_id, exc)
            return None
        if document.get("AccessKeyId") != access_key_id:
            log.error("access key %s: sealed secret belongs to another key", access_key_id)
            return None
        return str(document["SecretAccessKey"])

    # -- reads (event loop, no I/O) -----------------------------------------------------------

    def key(self, access_key_id: str) -> KeyEntry | None:
        return self._state.keys.get(access_key_id)

    def secret(self, access_key_id: str) -> str | None:
        entry = self._state.keys.get(access_key_id)
        return entry.secret if entry is not None else None

    def user(self, name: str) -> UserRecord | None:
        return self._state.users.get(name_key(name))

    def role(self, name: str) -> RoleRecord | None:
        return self._state.roles.get(name_key(name))

    def policies(self, kind: str, owner: str) -> tuple[Policy, ...]:
        return self._state.identity.get((kind, name_key(owner)), ())

    def trust_policy(self, role: str) -> Policy | None:
        return self._state.trust.get(name_key(role))

    def function_policy(self, function: str, qualifier: str) -> Policy | None:
        return self._state.functions.get((function, qualifier))

    def user_arn(self, user: UserRecord) -> str:
        return ids.entity_arn(self.account_id, "user", user.path, user.name)

    def role_arn(self, role: RoleRecord) -> str:
        return ids.entity_arn(self.account_id, "role", role.path, role.name)

    # -- building -----------------------------------------------------------------------------

    def _build(self, snapshot: IamSnapshot) -> _State:
        managed: dict[str, Policy] = {}
        for record in snapshot.policies:
            policy = _parse(record.document, Kind.IDENTITY, record.arn)
            if policy is not None:
                managed[record.arn] = policy
        identity: dict[tuple[str, str], list[Policy]] = {}
        for kind, owner, policy_name, document in snapshot.inline:
            policy = _parse(document, Kind.IDENTITY, f"{kind} {owner} {policy_name}")
            if policy is not None:
                identity.setdefault((kind, owner), []).append(policy)
        for kind, owner, arn in snapshot.attachments:
            if arn in managed:
                identity.setdefault((kind, owner), []).append(managed[arn])
        trust = {}
        for role in snapshot.roles:
            policy = _parse(role.trust_policy, Kind.TRUST, f"trust of {role.name}")
            if policy is not None:
                trust[name_key(role.name)] = policy
        keys = {}
        for record in snapshot.keys:
            secret = self._open_secret(record.access_key_id, record.sealed_secret)
            if secret is not None:
                keys[record.access_key_id] = KeyEntry(record.access_key_id, secret,
                                                      record.user_name,
                                                      record.status == "Active")
        functions = {}
        for fp in snapshot.function_policies:
            text = json.dumps({"Version": "2012-10-17", "Statement": list(fp.statements)})
            policy = _parse(text, Kind.RESOURCE, f"policy of {fp.name}")
            if policy is not None:
                functions[(fp.name, fp.qualifier)] = policy
        return _State(
            users={name_key(u.name): u for u in snapshot.users},
            roles={name_key(r.name): r for r in snapshot.roles},
            keys=keys,
            identity={k: tuple(v) for k, v in identity.items()},
            trust=trust, functions=functions)


def _parse(text: str, kind: Kind, what: str) -> Policy | None:
    try:
        return parse_policy(text, kind)
    except MalformedPolicy as exc:  # stored documents were checked when written
        log.error("stored policy (%s) no longer parses: %s", what, exc)
        return None


__all__ = ["ROLE", "USER", "Directory", "KeyEntry"]
