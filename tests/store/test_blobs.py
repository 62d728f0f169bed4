"""The file blob store: content addressing, atomic durable writes, private permissions."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

import pytest

from lamina.store.api import NotFound
from lamina.store.blobs import FileBlobStore


def test_put_returns_sha256_and_lays_out_by_prefix(tmp_path: Path) -> None:
    blobs = FileBlobStore(tmp_path / "blobs")
    data = b"print('hello')\n"
    digest = blobs.put(data)
    assert digest == hashlib.sha256(data).hexdigest()
    assert blobs.path(digest) == tmp_path / "blobs" / digest[:2] / digest[2:]
    assert blobs.has(digest)
    assert blobs.read(digest) == data
    assert blobs.path(digest).read_bytes() == data


def test_put_is_idempotent_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    blobs = FileBlobStore(tmp_path)
    first = blobs.put(b"x" * 10_000)
    mtime = blobs.path(first).stat().st_mtime_ns
    assert blobs.put(b"x" * 10_000) == first
    assert blobs.path(first).stat().st_mtime_ns == mtime
    assert [p.name for p in blobs.path(first).parent.iterdir()] == [first[2:]]
    assert list(blobs.digests()) == [first]


def test_files_are_0600_and_directories_0700_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        blobs = FileBlobStore(tmp_path / "blobs")
        digest = blobs.put(b"secret code")
    finally:
        os.umask(old)
    assert (tmp_path / "blobs").stat().st_mode & 0o777 == 0o700
    assert blobs.path(digest).parent.stat().st_mode & 0o777 == 0o700
    assert blobs.path(digest).stat().st_mode & 0o777 == 0o600


def test_an_existing_root_is_made_private(tmp_path: Path) -> None:
    (tmp_path / "blobs").mkdir(mode=0o755)
    FileBlobStore(tmp_path / "blobs")
    assert (tmp_path / "blobs").stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize(
    "digest", ["../../etc/passwd", "ab", "A" * 64, "g" * 64, "0" * 63, "0" * 65, "/" + "0" * 63]
)
def test_only_hex_digests_name_blobs(tmp_path: Path, digest: str) -> None:
    blobs = FileBlobStore(tmp_path)
    with pytest.raises(ValueError):
        blobs.path(digest)
    with pytest.raises(ValueError):
        blobs.has(digest)


def test_reading_a_missing_blob_raises_not_found(tmp_path: Path) -> None:
    blobs = FileBlobStore(tmp_path)
    assert not blobs.has("0" * 64)
    with pytest.raises(NotFound):
        blobs.read("0" * 64)


def test_empty_blob_is_a_blob(tmp_path: Path) -> None:
    blobs = FileBlobStore(tmp_path)
    assert blobs.read(blobs.put(b"")) == b""


def test_concurrent_puts_of_the_same_bytes_all_succeed(tmp_path: Path) -> None:
    blobs = FileBlobStore(tmp_path)
    data = os.urandom(1 << 20)
    results: list[str] = []
    barrier = threading.Barrier(8)

    def put() -> None:
        barrier.wait()
        results.append(blobs.put(data))

    threads = [threading.Thread(target=put) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert results == [hashlib.sha256(data).hexdigest()] * 8
    assert blobs.read(results[0]) == data
    assert len(list(blobs.path(results[0]).parent.iterdir())) == 1


def test_delete_unreferenced_keeps_only_what_is_referenced(tmp_path: Path) -> None:
    blobs = FileBlobStore(tmp_path)
    keep, drop1, drop2 = (blobs.put(bytes([i]) * 100) for i in range(3))
    assert blobs.delete_unreferenced([keep]) == 2
    assert blobs.has(keep) and not blobs.has(drop1) and not blobs.has(drop2)
    assert blobs.delete_unreferenced([keep]) == 0


def test_delete_unreferenced_spares_recent_blobs_when_asked(tmp_path: Path) -> None:
    blobs = FileBlobStore(tmp_path)
    old, new = blobs.put(b"old"), blobs.put(b"new")
    an_hour_ago = time.time() - 3600
    os.utime(blobs.path(old), (an_hour_ago, an_hour_ago))
    assert blobs.delete_unreferenced([], older_than=600) == 1
    assert not blobs.has(old) and blobs.has(new)


def test_delete_unreferenced_sweeps_stale_temporary_files(tmp_path: Path) -> None:
    blobs = FileBlobStore(tmp_path)
    digest = blobs.put(b"kept")
    shard = blobs.path(digest).parent
    stale, fresh = shard / ".tmp-dead", shard / ".tmp-writing"
    stale.write_bytes(b"half")
    fresh.write_bytes(b"half")
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    assert blobs.delete_unreferenced([digest]) == 0
    assert not stale.exists() and fresh.exists() and blobs.has(digest)


def test_unrelated_files_under_the_root_are_left_alone(tmp_path: Path) -> None:
    blobs = FileBlobStore(tmp_path)
    (tmp_path / "README").write_text("not a blob")
    (tmp_path / "zz").mkdir()
    (tmp_path / "zz" / "short").write_text("not a blob either")
    assert blobs.delete_unreferenced([]) == 0
    assert (tmp_path / "README").exists() and (tmp_path / "zz" / "short").exists()
