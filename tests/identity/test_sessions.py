"""Temporary credentials: environments' sessions are renewed while they live and gone when
revoked; AssumeRole's expire; access key secrets are sealed under their own key id."""

from __future__ import annotations

import json
import time

import pytest

from lamina.identity.directory import Directory
from lamina.identity.sessions import SessionRegistry


def test_bound_sessions_are_renewed_before_they_lapse() -> None:
    sessions = SessionRegistry()
    bound = sessions.issue("arn:aws:sts::0:assumed-role/r/f", 10, role_name="r", bound=True)
    loose = sessions.issue("arn:aws:sts::0:assumed-role/r/s", 10, role_name="r")
    assert sessions.renew_bound(ttl_seconds=3600) == 1
    renewed = sessions.lookup(bound.access_key_id)
    assert renewed is not None and renewed.expires_at > time.time() + 3000
    assert renewed.session_token == bound.session_token  # same credentials, later expiry
    assert sessions.lookup(loose.access_key_id).expires_at < time.time() + 20  # type: ignore
    assert sessions.renew_bound(ttl_seconds=3600) == 0  # plenty left: nothing to do
    sessions.revoke(bound.access_key_id)
    assert sessions.lookup(bound.access_key_id) is None


def test_session_keys_look_like_sts_keys() -> None:
    session = SessionRegistry().issue("arn:aws:sts::0:assumed-role/r/f")
    assert session.access_key_id.startswith("ASIA") and len(session.access_key_id) == 20
    assert not session.expired


def test_a_sealed_secret_cannot_be_moved_to_another_key() -> None:
    directory = Directory(store=None, account_id="0")  # type: ignore[arg-type]
    sealed = directory.seal_secret("AKIAONE", "secret-one")
    assert directory._open_secret("AKIAONE", sealed) == "secret-one"
    assert directory._open_secret("AKIATWO", sealed) is None
    assert "secret-one" in json.loads(sealed)["SecretAccessKey"]  # plain only without envelope


@pytest.mark.parametrize("owner", ["iam:access-keys"])
def test_the_key_owner_is_never_a_function_name(owner: str) -> None:
    import re
    assert not re.fullmatch(r"[a-zA-Z0-9-_]+", owner)
