"""Sealing and opening a function's environment variables (AES-256-GCM, envelope encryption).

A sealed value is ``{"KeyId", "Nonce", "Ciphertext"}`` (base64): the variables' JSON encrypted
under the function's data key with ``lamina-env:<function>`` as associated data. Data keys are
unwrapped once and kept in memory (by id; a rotation re-wraps them but never changes them, so a
running server keeps working through one). GCM authenticates everything: a flipped bit in the
ciphertext, the nonce, the wrapped key or the associated data raises ``DecryptionFailed``.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from lamina.secrets.datakeys import DataKeyRow, SqlDataKeyStore
from lamina.secrets.keyring import KEY_BYTES, KeyRingError, MasterKeyRing

NONCE_BYTES = 12


class DecryptionFailed(Exception):
    """A sealed value could not be opened; ``missing_key`` when a key is gone rather than the
    data being altered."""

    def __init__(self, message: str, *, missing_key: bool = False) -> None:
        super().__init__(message)
        self.missing_key = missing_key


def wrap_data_key(master: bytes, key_id: str, data_key: bytes) -> str:
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(master).encrypt(nonce, data_key, _key_aad(key_id))
    return base64.b64encode(nonce + sealed).decode()


def unwrap_data_key(master: bytes, key_id: str, wrapped: str) -> bytes:
    raw = base64.b64decode(wrapped)
    return AESGCM(master).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _key_aad(key_id))


def _key_aad(key_id: str) -> bytes:
    return f"lamina-data-key:{key_id}".encode()


def _env_aad(owner: str) -> bytes:
    return f"lamina-env:{owner}".encode()


class Envelope:
    def __init__(self, ring: MasterKeyRing, keys: SqlDataKeyStore) -> None:
        self.ring = ring
        self.keys = keys
        self._plain: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def seal(self, owner: str, variables: Mapping[str, str]) -> dict[str, str]:
        row = self.keys.for_owner(owner, self._wrap_new, self.ring.active_id)
        data_key = self._unwrap(row)
        nonce = os.urandom(NONCE_BYTES)
        plaintext = json.dumps(dict(variables), separators=(",", ":")).encode()
        ciphertext = AESGCM(data_key).encrypt(nonce, plaintext, _env_aad(owner))
        return {"KeyId": row.id, "Nonce": base64.b64encode(nonce).decode(),
                "Ciphertext": base64.b64encode(ciphertext).decode()}

    def open(self, owner: str, sealed: Mapping[str, Any]) -> dict[str, str]:
        try:
            key_id = str(sealed["KeyId"])
            nonce = base64.b64decode(sealed["Nonce"], validate=True)
            ciphertext = base64.b64decode(sealed["Ciphertext"], validate=True)
        except (KeyError, TypeError, ValueError) as exc:
            raise DecryptionFailed(f"malformed sealed value: {exc}") from None
        data_key = self._data_key(key_id)
        try:
            plaintext = AESGCM(data_key).decrypt(nonce, ciphertext, _env_aad(owner))
        except (InvalidTag, ValueError):
            raise DecryptionFailed("the ciphertext failed authentication") from None
        variables = json.loads(plaintext)
        return {str(k): str(v) for k, v in variables.items()}

    def _wrap_new(self, master_id: str, key_id: str) -> str:
        data_key = AESGCM.generate_key(bit_length=KEY_BYTES * 8)
        wrapped = wrap_data_key(self._master(master_id), key_id, data_key)
        with self._lock:
            self._plain[key_id] = data_key
        return wrapped

    def _data_key(self, key_id: str) -> bytes:
        with self._lock:
            cached = self._plain.get(key_id)
        if cached is not None:
            return cached
        row = self.keys.get(key_id)
        if row is None:
            raise DecryptionFailed(f"data key {key_id} does not exist", missing_key=True)
        return self._unwrap(row)

    def _unwrap(self, row: DataKeyRow) -> bytes:
        with self._lock:
            cached = self._plain.get(row.id)
        if cached is not None:
            return cached
        try:
            data_key = unwrap_data_key(self._master(row.master_key_id), row.id, row.wrapped)
        except (InvalidTag, ValueError):
            raise DecryptionFailed(f"data key {row.id} failed authentication") from None
        with self._lock:
            self._plain[row.id] = data_key
        return data_key

    def _master(self, master_id: str) -> bytes:
        try:
            return self.ring.key(master_id)
        except KeyRingError as exc:
            raise DecryptionFailed(str(exc), missing_key=True) from None
