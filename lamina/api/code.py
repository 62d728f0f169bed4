"""Deployment packages: accepting a zip, and making its unpacked tree ready to run.

A package is checked before anything is stored (so a bad zip leaves the store exactly as it
was), stored as a content-addressed blob, and unpacked once per distinct sha256 into
``<data>/code/<sha256>``, which environments mount read-only at ``/var/task``.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import NamedTuple

from lamina.errors import InvalidParameterValue, RequestTooLarge
from lamina.store.api import BlobStore
from lamina.store.archives import ArchiveError, inspect_archive, unpack

MAX_ZIPPED_BYTES = 50 * 1024 * 1024
MAX_UNZIPPED_BYTES = 262_144_000


class StoredPackage(NamedTuple):
    digest: str  # hex sha256
    size: int
    unzipped_size: int


async def accept_zip(blobs: BlobStore, data: bytes) -> StoredPackage:
    """Check and store a package (function code or layer content)."""
    if len(data) > MAX_ZIPPED_BYTES:
        raise RequestTooLarge(
            f"Zipped size must be smaller than {MAX_ZIPPED_BYTES} bytes; got {len(data)}.")
    try:
        info = await asyncio.to_thread(inspect_archive, data, max_unzipped=MAX_UNZIPPED_BYTES)
    except ArchiveError as exc:
        raise InvalidParameterValue(str(exc)) from exc
    digest = await asyncio.to_thread(blobs.put, data)
    if digest != hashlib.sha256(data).hexdigest():  # pragma: no cover - a broken blob store
        raise RuntimeError("blob store returned a wrong digest")
    return StoredPackage(digest, len(data), info.unzipped_size)


async def ensure_unpacked(blobs: BlobStore, code_root: Path, digest: str) -> Path:
    """The unpacked tree of a stored package (unpacking it the first time)."""
    destination = code_root / digest
    if not destination.exists():
        await asyncio.to_thread(unpack, blobs.path(digest), destination,
                                max_unzipped=MAX_UNZIPPED_BYTES)
    return destination
