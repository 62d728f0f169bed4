"""The root credentials: from the settings, or generated once and kept in the data dir.

The generated pair is written with mode 0600 before it is printed, so a crash between the two
never leaves a server whose only key nobody saw; ``lamina`` CLI commands read it from there.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import string
from pathlib import Path

CREDENTIALS_FILE = "credentials.json"
_ALPHABET = string.ascii_uppercase + string.digits


@dataclasses.dataclass(frozen=True)
class RootCredentials:
    access_key_id: str
    secret_access_key: str
    generated: bool = False  # True only on the start that created them


def credentials_path(data_dir: Path) -> Path:
    return data_dir / CREDENTIALS_FILE


def read_stored(data_dir: Path) -> RootCredentials | None:
    path = credentials_path(data_dir)
    try:
        document = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return RootCredentials(document["aws_access_key_id"], document["aws_secret_access_key"])


def load_or_create(data_dir: Path, access_key_id: str = "",
                   secret_access_key: str = "") -> RootCredentials:
    if access_key_id and secret_access_key:
        return RootCredentials(access_key_id, secret_access_key)
    if access_key_id or secret_access_key:
        raise SystemExit("lamina: set both LAMINA_ROOT_ACCESS_KEY_ID and "
                         "LAMINA_ROOT_SECRET_ACCESS_KEY, or neither")
    stored = read_stored(data_dir)
    if stored is not None:
        return stored
    created = RootCredentials(
        "AKIA" + "".join(secrets.choice(_ALPHABET) for _ in range(16)),
        secrets.token_urlsafe(30)[:40],
        generated=True,
    )
    path = credentials_path(data_dir)
    temporary = path.with_suffix(".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump({"aws_access_key_id": created.access_key_id,
                   "aws_secret_access_key": created.secret_access_key}, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    return created
