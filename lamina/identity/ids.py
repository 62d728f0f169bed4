"""Identifiers as IAM makes them: ``AIDA...`` (users), ``AROA...`` (roles), ``ANPA...``
(managed policies), ``AKIA...`` (access keys), and the ARNs of users, roles and policies."""

from __future__ import annotations

import secrets
import string

_ALPHABET = string.ascii_uppercase + string.digits


def unique_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(17))


def access_key_id() -> str:
    return "AKIA" + "".join(secrets.choice(_ALPHABET) for _ in range(16))


def secret_access_key() -> str:
    return secrets.token_urlsafe(30)[:40]


def entity_arn(account: str, kind: str, path: str, name: str) -> str:
    """``arn:aws:iam::<account>:user/<path><name>`` (the path without its leading slash)."""
    return f"arn:aws:iam::{account}:{kind}{path}{name}"


def session_arn(account: str, role: str, session: str) -> str:
    return f"arn:aws:sts::{account}:assumed-role/{role}/{session}"
