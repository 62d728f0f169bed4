"""The log store: streams per environment, reading across streams, retention by age and size."""

from __future__ import annotations

import os
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
