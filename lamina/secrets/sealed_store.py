"""A ``MetadataStore`` that keeps environment variables sealed in the store behind it.

Every record written has its ``Environment.Variables`` replaced by ``Environment.Sealed``
(see ``envelope.py``) before it reaches the inner store, and every record read is opened again,
so the API and the engine only ever see plaintext and the database never does. A record that
cannot be opened is still returned, with Lambda's ``Environment.Error`` (what
GetFunctionConfiguration shows when KMS fails) and its sealed value kept, so an unrelated update
writes the same ciphertext back instead of losing it; invoking it fails loudly
(``lamina.api.context.target_from_record``).

Everything else (reservations, and the ``engine`` / ``transaction`` that feature stores use) is
the inner store's.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from lamina.secrets.envelope import DecryptionFailed, Envelope
from lamina.store.api import FunctionRecord, MetadataStore

ACCESS_DENIED = "KMSAccessDeniedException"
NOT_FOUND = "KMSNotFoundException"


class SealedMetadataStore:
    def __init__(self, inner: MetadataStore, envelope: Envelope) -> None:
        self._inner = inner
        self.envelope = envelope

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    # -- writes seal ----------------------------------------------------------------------------

    def create_function(self, record: FunctionRecord) -> None:
        self._inner.create_function(self._seal(record))

    def replace_function(self, record: FunctionRecord, expected_revision_id: str) -> None:
        self._inner.replace_function(self._seal(record), expected_revision_id)

    def publish_version(self, record: FunctionRecord, expected_revision_id: str,
                        expected_last: str | None) -> FunctionRecord:
        stored = self._inner.publish_version(self._seal(record), expected_revision_id,
                                             expected_last)
        return dataclasses.replace(record, version=stored.version, created=stored.created)

    # -- reads open -----------------------------------------------------------------------------

    def get_function(self, name: str, version: str = "$LATEST") -> FunctionRecord | None:
        record = self._inner.get_function(name, version)
        return None if record is None else self._open(record)

    def list_functions(self, after: str | None, limit: int) -> list[FunctionRecord]:
        return [self._open(r) for r in self._inner.list_functions(after, limit)]

    def list_versions(self, name: str) -> list[FunctionRecord]:
        return [self._open(r) for r in self._inner.list_versions(name)]

    def delete_version(self, name: str, version: str) -> FunctionRecord:
        return self._open(self._inner.delete_version(name, version))

    def delete_function(self, name: str) -> list[FunctionRecord]:
        deleted = [self._open(r) for r in self._inner.delete_function(name)]
        self.envelope.keys.delete_owner(name)
        return deleted

    # -- reservations pass through ----------------------------------------------------------------

    def get_reserved_concurrency(self, name: str) -> int | None:
        return self._inner.get_reserved_concurrency(name)

    def set_reserved_concurrency(self, name: str, value: int | None, max_total: int) -> None:
        self._inner.set_reserved_concurrency(name, value, max_total)

    def reserved_concurrency(self) -> dict[str, int]:
        return self._inner.reserved_concurrency()

    def close(self) -> None:
        self._inner.close()

    # -- the two directions ---------------------------------------------------------------------

    def _seal(self, record: FunctionRecord) -> FunctionRecord:
        environment = record.config.get("Environment")
        if not environment:
            return record
        if "Sealed" in environment:  # could not be opened: keep the ciphertext as it was
            sealed = {"Sealed": environment["Sealed"]}
        elif environment.get("Variables"):
            sealed = {"Sealed": self.envelope.seal(record.name, environment["Variables"])}
        else:
            return record
        return dataclasses.replace(record, config={**record.config, "Environment": sealed})

    def _open(self, record: FunctionRecord) -> FunctionRecord:
        environment = record.config.get("Environment") or {}
        if "Sealed" not in environment:
            return record
        try:
            variables = self.envelope.open(record.name, environment["Sealed"])
            opened: dict[str, Any] = {"Variables": variables}
        except DecryptionFailed as exc:
            code = NOT_FOUND if exc.missing_key else ACCESS_DENIED
            opened = {"Sealed": environment["Sealed"], "Error": {
                "ErrorCode": code,
                "Message": "Lambda was unable to decrypt the environment variables because "
                           f"KMS access was denied. KMS Exception: {code} KMS Message: {exc}"}}
        return dataclasses.replace(record, config={**record.config, "Environment": opened})
