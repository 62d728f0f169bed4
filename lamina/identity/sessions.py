"""Temporary credentials, as STS hands them out: what each execution environment receives, and
what ``sts:AssumeRole`` returns.

A function never sees the root keys. Each environment gets a key of its own (``ASIA...``, a
secret and a session token) for the function's execution role; the API's verifier looks such
keys up here and the authorizer grants them exactly the role's permissions (and, for an
``AssumeRole`` session with a session policy, no more than that policy allows either).

Environment sessions are *bound*: they live as long as their environment and no longer (the
engine revokes them when it ends), and ``renew_bound`` moves the expiry of the live ones
forward, so a long-lived environment never holds credentials that lapse under it. Sessions are
kept in memory: they die with the server, as the environments holding them do.
"""

from __future__ import annotations

import base64
import dataclasses
import secrets
import time
from typing import Any

DEFAULT_TTL = 12 * 3600


@dataclasses.dataclass(frozen=True)
class SessionCredentials:
    access_key_id: str
    secret_access_key: str
    session_token: str
    principal_arn: str  # arn:aws:sts::<account>:assumed-role/<role>/<session>
    expires_at: float
    role_name: str = ""  # the role whose permissions the session has ("" = none)
    role_id: str = ""
    session_name: str = ""
    session_policy: Any = None  # a compiled lamina.identity.policy.Policy, or None
    bound: bool = False  # an environment's: renewed while it lives, revoked when it ends

    @property
    def expired(self) -> bool:
        return time.time() >= self.expires_at

    def as_tuple(self) -> tuple[str, str, str]:
        return (self.access_key_id, self.secret_access_key, self.session_token)


def new_key_id(prefix: str, random: bytes | None = None) -> str:
    """``prefix`` and 16 characters of base32 (A-Z, 2-7), as AWS's key ids are spelled.

    One read of 10 random bytes (``random``, or a fresh one): choosing 16 characters one at a
    time costs 16 reads of the system's random source, ~30 µs of every cold start.
    """
    return prefix + base64.b32encode(random or secrets.token_bytes(10)).decode()


class SessionRegistry:
    def __init__(self) -> None:
        self._by_key: dict[str, SessionCredentials] = {}

    def issue(self, principal_arn: str, ttl_seconds: float = DEFAULT_TTL, *,
              role_name: str = "", role_id: str = "", session_name: str = "",
              session_policy: Any = None, bound: bool = False) -> SessionCredentials:
        self._drop_expired()
        # Key id, secret and token from one read of the random source (one system call per
        # environment instead of eighteen): 10 bytes, 30 (40 characters), 96 (128).
        random = secrets.token_bytes(136)
        key = new_key_id("ASIA", random[:10])
        credentials = SessionCredentials(
            access_key_id=key,
            secret_access_key=base64.urlsafe_b64encode(random[10:40]).decode(),
            session_token=base64.urlsafe_b64encode(random[40:]).decode(),
            principal_arn=principal_arn,
            expires_at=time.time() + ttl_seconds,
            role_name=role_name, role_id=role_id, session_name=session_name,
            session_policy=session_policy, bound=bound,
        )
        self._by_key[key] = credentials
        return credentials

    def lookup(self, access_key_id: str) -> SessionCredentials | None:
        return self._by_key.get(access_key_id)

    def revoke(self, access_key_id: str) -> None:
        self._by_key.pop(access_key_id, None)

    def renew_bound(self, ttl_seconds: float = DEFAULT_TTL) -> int:
        """Push the expiry of live environments' sessions to ``ttl_seconds`` from now when
        less than half of it is left; returns how many were renewed."""
        now = time.time()
        renewed = 0
        for key, session in list(self._by_key.items()):
            if session.bound and session.expires_at - now < ttl_seconds / 2:
                self._by_key[key] = dataclasses.replace(session, expires_at=now + ttl_seconds)
                renewed += 1
        return renewed

    def _drop_expired(self) -> None:
        if len(self._by_key) % 256 == 0:
            now = time.time()
            self._by_key = {k: v for k, v in self._by_key.items() if v.expires_at > now}
