"""What a store method acknowledged survives ``kill -9`` of the process that wrote it.

A child process writes through the store (metadata and blobs) and prints ``acked NAME`` after
each call returns; the parent SIGKILLs it mid-stream and reopens the store: every name it saw
acknowledged must be there.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from lamina.store.api import LATEST, FunctionRecord
from lamina.store.blobs import FileBlobStore
from lamina.store.registry import open_store

_WRITER = textwrap.dedent(
    """
    import hashlib, sys
    from pathlib import Path
    from lamina.store.api import FunctionRecord
    from lamina.store.blobs import FileBlobStore
    from lamina.store.registry import open_store

    store, blobs = open_store(sys.argv[1]), FileBlobStore(Path(sys.argv[2]))
    i = 0
    while True:
        name = f"fn-{i:05d}"
        digest = blobs.put(name.encode() * 1000)
        store.create_function(FunctionRecord(name, "$LATEST", {"Handler": "a.b"}, digest,
                                             9000, "r1", "2026-11-25T10:00:00.000+0000", 1.0))
        if i:
            store.replace_function(FunctionRecord(f"fn-{i - 1:05d}", "$LATEST", {}, digest,
                                                  9000, "r2", "x", 1.0), "r1")
        print("acked", name, digest, flush=True)
        i += 1
    """
)

ACKS_BEFORE_KILL = 25


def test_acknowledged_writes_survive_sigkill(store_url: str, tmp_path: Path) -> None:
    blob_root = tmp_path / "blobs"
    child = subprocess.Popen(
        [sys.executable, "-c", _WRITER, store_url, str(blob_root)],
        stdout=subprocess.PIPE,
        text=True,
    )
    acked: list[tuple[str, str]] = []
    try:
        assert child.stdout is not None
        for line in child.stdout:
            _, name, digest = line.split()
            acked.append((name, digest))
            if len(acked) == ACKS_BEFORE_KILL:
                os.kill(child.pid, signal.SIGKILL)  # right after an ack, mid-way through the next
                break
    finally:
        child.kill()
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert len(acked) == ACKS_BEFORE_KILL

    store, blobs = open_store(store_url), FileBlobStore(blob_root)
    try:
        for index, (name, digest) in enumerate(acked):
            record = store.get_function(name)
            assert record is not None, f"{name} was acknowledged but is lost"
            assert blobs.read(digest) == name.encode() * 1000
            if index < len(acked) - 1:
                assert record.revision_id == "r2", f"the update of {name} was lost"
        # The store is whole and writable after the crash.
        names = [r.name for r in store.list_functions(None, 1000)]
        assert names[: len(acked)] == [name for name, _ in acked]
        after = FunctionRecord("after-crash", LATEST, {}, acked[0][1], 1, "r1", "x", 1.0)
        store.create_function(after)
        assert store.get_function("after-crash") == after
    finally:
        store.close()
