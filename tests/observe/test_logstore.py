"""The log store: streams per environment, reading across streams, retention by age and size."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

from lamina.observe.logstore import LogStore


def test_lines_are_read_back_in_time_order_across_streams(tmp_path: Path) -> None:
    store = LogStore(tmp_path)
    store.append("/aws/lambda/f", "2026/11/25/[$LATEST]a", "first", timestamp=1000)
    store.append("/aws/lambda/f", "2026/11/25/[$LATEST]b", "second", timestamp=2000)
    store.append("/aws/lambda/f", "2026/11/25/[$LATEST]a", "third", timestamp=3000)
    store.flush()
    events = store.read("/aws/lambda/f")
    assert [e.message for e in events] == ["first", "second", "third"]
    assert [e.message for e in store.read("/aws/lambda/f", start_ms=1500)] == ["second", "third"]
    assert sorted(store.streams("/aws/lambda/f")) == ["2026/11/25/[$LATEST]a",
                                                      "2026/11/25/[$LATEST]b"]


def test_lines_of_one_moment_share_a_timestamp_and_skip_the_filtered(tmp_path: Path) -> None:
    store = LogStore(tmp_path)
    store.append_lines("/aws/lambda/f", "s", ("END RequestId: r", None, "REPORT RequestId: r"))
    store.flush()
    events = store.read("/aws/lambda/f")
    assert [e.message for e in events] == ["END RequestId: r", "REPORT RequestId: r"]
    assert events[0].timestamp == events[1].timestamp
    assert abs(events[0].timestamp - time.time() * 1000) < 5_000


def test_retention_removes_old_streams_and_keeps_the_size_budget(tmp_path: Path) -> None:
    store = LogStore(tmp_path, retention_days=1, max_bytes_per_function=4000)
    for stream in ("old", "s1", "s2", "s3"):
        for _ in range(20):
            store.append("/aws/lambda/f", stream, "x" * 80)
    store.flush()
    directory = next(tmp_path.iterdir())
    old = next(p for p in directory.iterdir() if p.name.startswith("old"))
    two_days_ago = time.time() - 2 * 86400
    os.utime(old, (two_days_ago, two_days_ago))
    for index, name in enumerate(("s1", "s2", "s3")):
        path = next(p for p in directory.iterdir() if p.name.startswith(name))
        os.utime(path, (time.time() - 100 + index, time.time() - 100 + index))
    store.apply_retention()
    left = sorted(p.name.split(".")[0] for p in directory.iterdir())
    assert "old" not in left
    assert sum(p.stat().st_size for p in directory.iterdir()) <= 4000
    assert left[-1] == "s3"  # the newest stream survives


def test_the_log_files_are_private(tmp_path: Path) -> None:
    store = LogStore(tmp_path / "logs")
    store.append("/aws/lambda/f", "s", "secret-ish line")
    store.flush()
    assert (tmp_path / "logs").stat().st_mode & 0o077 == 0


def _stream_lines(root: Path, function: str = "f") -> list[str]:
    return [line.split("\t", 1)[1] for path in sorted((root / function).glob("*.log"))
            for line in path.read_text().splitlines()]


def test_the_flusher_writes_on_its_own_thread_not_the_event_loop(tmp_path: Path) -> None:
    store = LogStore(tmp_path)
    writers: set[int] = set()
    write = store._write

    def recording_write(key: tuple[str, str], data: bytes) -> None:
        writers.add(threading.get_ident())
        write(key, data)

    store._write = recording_write  # type: ignore[method-assign]

    async def run() -> None:
        store.start()
        store.append("f", "s", "one")
        await store.flushed()
        assert _stream_lines(tmp_path) == ["one"]  # flushed() waited for the writer
        assert writers and threading.get_ident() not in writers
        store.append("f", "s", "two")
        await store.close()

    asyncio.run(run())
    assert _stream_lines(tmp_path) == ["one", "two"]  # close() wrote what was left


def test_a_synchronous_flush_waits_for_the_batch_in_flight(tmp_path: Path) -> None:
    """Lines reach a stream in the order they were appended, even when ``read`` (or ``close``)
    flushes on the loop while an older batch still waits for the writer."""
    store = LogStore(tmp_path)
    release = threading.Event()
    store._writer.submit(release.wait, 5)  # the writer is busy: the older batch queues

    async def run() -> None:
        store.append("f", "s", "older")
        flusher = asyncio.create_task(store._flush_in_background())
        await asyncio.sleep(0.05)
        store.append("f", "s", "newer")
        threading.Timer(0.2, release.set).start()
        store.flush()
        await flusher

    asyncio.run(run())
    assert _stream_lines(tmp_path) == ["older", "newer"]


def test_deleting_a_function_drops_its_lines_queued_with_the_writer(tmp_path: Path) -> None:
    store = LogStore(tmp_path)
    release = threading.Event()
    store._writer.submit(release.wait, 5)  # the writer is busy: the next batch queues

    async def run() -> None:
        store.append("f", "s", "gone with the function")
        store.append("g", "s", "kept")
        flusher = asyncio.create_task(store._flush_in_background())
        await asyncio.sleep(0.05)
        store.delete_function("f")
        release.set()
        await flusher

    asyncio.run(run())
    assert not (tmp_path / "f").exists()
    assert _stream_lines(tmp_path, "g") == ["kept"]
