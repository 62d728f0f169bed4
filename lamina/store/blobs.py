"""Content-addressed blobs in a directory: the embedded ``BlobStore``.

A blob lives at ``root/ab/cdef...`` (the hex sha256 split after two characters, so no directory
grows past a few thousand entries). Blobs are written to a temporary file in their final
directory, fsynced, renamed into place and the directory fsynced: a reader sees a whole blob or
none, and a ``put`` that returned survives a crash. Files are 0600 and directories 0700, because
the data dir must stay unreadable to the unprivileged uids functions run as.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from lamina.store.api import NotFound

_DIGEST = re.compile(r"[0-9a-f]{64}")
_TMP_PREFIX = ".tmp-"
# A temporary file this old belongs to a put that died; younger ones may still be written.
_STALE_TMP_SECONDS = 3600.0


class FileBlobStore:
    """``BlobStore`` on a local directory (created 0700 if missing)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        _make_private_dir(self.root)

    def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        final = self.path(digest)
        if final.exists():
            return digest  # renamed into place only once complete, so it is the same bytes
        shard = final.parent
        if not shard.is_dir():
            _make_private_dir(shard)
            _fsync_dir(self.root)
        fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=shard)  # mode 0600
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        _fsync_dir(shard)
        return digest

    def path(self, digest: str) -> Path:
        if not _DIGEST.fullmatch(digest):
            # Also what keeps a caller-supplied digest from naming a path outside the root.
            raise ValueError(f"not a hex sha256 digest: {digest!r}")
        return self.root / digest[:2] / digest[2:]

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def read(self, digest: str) -> bytes:
        try:
            return self.path(digest).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"blob {digest}") from None

    def delete_unreferenced(self, referenced: Sequence[str], *, older_than: float = 0.0) -> int:
        """Remove blobs not in ``referenced``; returns how many were removed.

        A blob uploaded but not yet recorded in the metadata store looks unreferenced: callers
        either collect while no upload is in flight or pass ``older_than`` (seconds) to spare
        recent blobs. Temporary files of puts that died long ago are swept too (not counted).
        """
        keep = set(referenced)
        now = time.time()
        removed = 0
        for path, digest in self._entries():
            try:
                age = now - path.stat().st_mtime
            except FileNotFoundError:
                continue
            if digest is None:
                if age > max(older_than, _STALE_TMP_SECONDS):
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                continue
            if digest in keep or age < older_than:
                continue
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed += 1
        return removed

    def digests(self) -> Iterator[str]:
        """Every stored blob's digest (in no particular order)."""
        for _path, digest in self._entries():
            if digest is not None:
                yield digest

    def _entries(self) -> Iterator[tuple[Path, str | None]]:
        """Files under the root with their digest, or ``None`` for a temporary file."""
        for shard in self.root.iterdir():
            if len(shard.name) != 2 or not shard.is_dir():
                continue
            for path in shard.iterdir():
                if path.name.startswith(_TMP_PREFIX):
                    yield path, None
                elif _DIGEST.fullmatch(shard.name + path.name):
                    yield path, shard.name + path.name


def _make_private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask; an old dir may be wider


def _fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in ``path`` durable (POSIX needs the directory synced)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
