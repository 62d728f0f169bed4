"""The contract of lamina's metadata store and code blob store.

Every backend (SQLite embedded, PostgreSQL in cluster mode, chosen by URL) satisfies
``MetadataStore``; the same contract tests run against each. Guarantees every implementation keeps:

* Each method is one transaction: it either fully happens or leaves the store exactly as it was.
* A method returns only after its change is durable against a crash of the process (``kill -9``).
* ``replace_function`` is a compare-and-swap on ``revision_id``: two concurrent updates of one
  function can never interleave; the loser gets ``RevisionMismatch``.
* Records are immutable values; a caller may cache them and compare ``revision_id`` to know
  whether its copy is stale.

Methods are synchronous (SQLAlchemy Core); the API layer calls them from a worker thread.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

LATEST = "$LATEST"


class StoreError(Exception):
    """Base of the store's own failures; the API layer maps each to Lambda's error."""


class AlreadyExists(StoreError):
    pass


class NotFound(StoreError):
    pass


class RevisionMismatch(StoreError):
    pass


class LimitExceeded(StoreError):
    pass


class InUse(StoreError):
    """The row is still referred to (a version an alias points to, say)."""


@dataclasses.dataclass(frozen=True)
class FunctionRecord:
    """One version of a function (``$LATEST`` or a published number) as stored.

    ``config`` holds the stored fields of Lambda's ``FunctionConfiguration`` (Runtime, Handler,
    Role, Description, Timeout, MemorySize, Environment, State, LastUpdateStatus, ...), exactly
    in Lambda's JSON shape. Fields derived from the record (FunctionName, FunctionArn, Version,
    CodeSha256, CodeSize, RevisionId, LastModified) are kept in their own attributes and are
    merged in by the API layer, never duplicated inside ``config``.
    """

    name: str
    version: str
    config: dict[str, Any]
    code_sha256: str  # hex digest of the deployment package (the API shows it base64-encoded)
    code_size: int
    revision_id: str
    last_modified: str  # Lambda's format: 2026-11-25T10:00:00.000+0000
    created: float = 0.0  # unix time the function was created, for stable ordering


class MetadataStore(Protocol):
    """Functions, their versions and their concurrency settings."""

    def create_function(self, record: FunctionRecord) -> None:
        """Insert ``$LATEST`` of a new function. Raises ``AlreadyExists`` if the name is taken."""

    def get_function(self, name: str, version: str = LATEST) -> FunctionRecord | None:
        """One version of a function, or ``None``."""

    def list_functions(self, after: str | None, limit: int) -> list[FunctionRecord]:
        """``$LATEST`` of up to ``limit`` functions ordered by name, names strictly after
        ``after``."""

    def replace_function(self, record: FunctionRecord, expected_revision_id: str) -> None:
        """Store ``record`` (same name and version) if the stored revision is still
        ``expected_revision_id``. Raises ``NotFound`` or ``RevisionMismatch``."""

    def delete_function(self, name: str) -> list[FunctionRecord]:
        """Delete a function with all its versions and settings; returns what was deleted.
        Raises ``NotFound``."""

    def publish_version(self, record: FunctionRecord, expected_revision_id: str,
                        expected_last: str | None) -> FunctionRecord:
        """Store ``record`` as the function's next published version and return it as stored
        (``version`` is assigned here: one more than any version ever published, so numbers
        are never reused). ``expected_revision_id`` guards ``$LATEST`` and ``expected_last``
        (the newest published version the caller compared with, ``None`` for none) guards
        against a concurrent publish; either mismatch raises ``RevisionMismatch``. Raises
        ``NotFound`` when the function is gone."""

    def list_versions(self, name: str) -> list[FunctionRecord]:
        """Every version of a function, ``$LATEST`` first then by number; ``[]`` if none."""

    def delete_version(self, name: str, version: str) -> FunctionRecord:
        """Delete one published version. Raises ``NotFound``, or ``InUse`` while an alias
        still routes to it (the check and the delete are one transaction)."""

    def get_reserved_concurrency(self, name: str) -> int | None:
        """The function's reserved concurrency, or ``None`` when it has none."""

    def set_reserved_concurrency(self, name: str, value: int | None, max_total: int) -> None:
        """Set (or with ``None`` remove) a reservation. Raises ``NotFound`` for an unknown
        function and ``LimitExceeded`` when the sum over all functions would pass ``max_total``;
        the check and the write are one transaction."""

    def reserved_concurrency(self) -> dict[str, int]:
        """Every reservation, by function name."""

    def close(self) -> None:
        """Release connections. Calls after ``close`` are errors."""


class BlobStore(Protocol):
    """Content-addressed archives (code and layers), keyed by the hex sha256 of their bytes."""

    def put(self, data: bytes) -> str:
        """Store ``data`` durably (idempotent) and return its hex sha256."""

    def path(self, digest: str) -> Path:
        """Where the blob lies on disk (it exists once ``put`` returned)."""

    def has(self, digest: str) -> bool: ...

    def read(self, digest: str) -> bytes: ...

    def delete_unreferenced(self, referenced: Sequence[str]) -> int:
        """Remove blobs not in ``referenced``; returns how many were removed."""
