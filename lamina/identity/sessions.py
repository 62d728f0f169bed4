"""Temporary credentials, as STS hands them out: what each execution environment receives.

A function never sees the root keys. Each environment gets a key of its own (``ASIA...``, a
secret and a session token) bound to the function's execution role, expiring after a while;
the API's verifier looks such keys up here. What a session may do is decided by the role's
policies (the IAM issue); until then a session key authenticates but is granted nothing.
"""

from __future__ import annotations

import dataclasses
import secrets
import string
import time

_KEY_ALPHABET = string.ascii_uppercase + string.digits


@dataclasses.dataclass(frozen=True)
class SessionCredentials:
    access_key_id: str
    secret_access_key: str
    session_token: str
    principal_arn: str
    expires_at: float

    @property
    def expired(self) -> bool:
        return time.time() >= self.expires_at

    def as_tuple(self) -> tuple[str, str, str]:
        return (self.access_key_id, self.secret_access_key, self.session_token)


class SessionRegistry:
    """In-memory sessions; they die with the server, as the environments holding them do."""

    def __init__(self) -> None:
        self._by_key: dict[str, SessionCredentials] = {}

    def issue(self, principal_arn: str, ttl_seconds: float = 12 * 3600) -> SessionCredentials:
        self._drop_expired()
        key = "ASIA" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(16))
        credentials = SessionCredentials(
            access_key_id=key,
            secret_access_key=secrets.token_urlsafe(30)[:40],
            session_token=secrets.token_urlsafe(96),
            principal_arn=principal_arn,
            expires_at=time.time() + ttl_seconds,
        )
        self._by_key[key] = credentials
        return credentials

    def lookup(self, access_key_id: str) -> SessionCredentials | None:
        return self._by_key.get(access_key_id)

    def revoke(self, access_key_id: str) -> None:
        self._by_key.pop(access_key_id, None)

    def _drop_expired(self) -> None:
        if len(self._by_key) % 256 == 0:
            now = time.time()
            self._by_key = {k: v for k, v in self._by_key.items() if v.expires_at > now}
