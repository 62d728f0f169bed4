"""The master keys: a small JSON file, mode 0600, never inside the database.

``{"active": "mk-…", "keys": {"mk-…": "<base64 of 32 bytes>", ...}}``. A server and a
``lamina keys rotate`` may both hold the file: writers replace it atomically (write a temporary
file, fsync, rename) and readers reload it when asked for a key id they do not know, which is how
a running server learns the key that a rotation introduced.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path

KEY_BYTES = 32  # AES-256


class KeyRingError(Exception):
    """The key file is missing a key, unreadable, or malformed."""


def new_key_id() -> str:
    return "mk-" + secrets.token_hex(8)


class MasterKeyRing:
    """The master keys of one file, reloaded on demand; safe to share between threads."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._keys: dict[str, bytes] = {}
        self._active = ""
        self.reload()

    @classmethod
    def open(cls, path: Path, *, create: bool = True) -> MasterKeyRing:
        """The ring in ``path``; with ``create`` a missing file gets one fresh active key."""
        path = Path(path)
        if create and not path.exists():
            key_id = new_key_id()
            with contextlib.suppress(FileExistsError):
                write_ring(path, {key_id: secrets.token_bytes(KEY_BYTES)}, key_id, exclusive=True)
        return cls(path)

    @property
    def active_id(self) -> str:
        return self._active

    def ids(self) -> set[str]:
        with self._lock:
            return set(self._keys)

    def key(self, key_id: str) -> bytes:
        """The master key ``key_id``; reloads the file once if it is not known yet."""
        with self._lock:
            key = self._keys.get(key_id)
        if key is None:
            self.reload()
            with self._lock:
                key = self._keys.get(key_id)
        if key is None:
            raise KeyRingError(f"master key {key_id} is not in {self.path}")
        return key

    def reload(self) -> None:
        try:
            document = json.loads(self.path.read_text())
            keys = {k: base64.b64decode(v) for k, v in document["keys"].items()}
            active = document["active"]
        except FileNotFoundError:
            raise KeyRingError(f"no master key file at {self.path}") from None
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise KeyRingError(f"the master key file {self.path} is malformed: {exc}") from None
        if active not in keys or any(len(k) != KEY_BYTES for k in keys.values()):
            raise KeyRingError(f"the master key file {self.path} is malformed")
        with self._lock:
            self._keys, self._active = keys, active


def write_ring(path: Path, keys: Mapping[str, bytes], active: str, *,
               exclusive: bool = False) -> None:
    """Replace (or, ``exclusive``, create) the key file atomically with mode 0600."""
    if active not in keys:
        raise ValueError("the active key must be in the ring")
    document = {"active": active,
                "keys": {k: base64.b64encode(v).decode() for k, v in keys.items()}}
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".master-key-", dir=path.parent)  # created 0600
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(document, handle)
            handle.flush()
            os.fsync(handle.fileno())
        if exclusive:
            os.link(tmp, path)  # fails with FileExistsError instead of replacing
            os.unlink(tmp)
        else:
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
