"""Nothing is lost: events queued before a SIGKILL (or a SIGTERM) of the server all run after
it restarts. Duplicates are allowed (at-least-once); losses are not."""

from __future__ import annotations

import json
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from async_helpers import Collector, queue_stats, recorder, wait_drained
from support import LaminaProcess

EVENTS = 60


def _queue(lam: Any, name: str, ids: range) -> None:
    def one(index: int) -> int:
        payload = {"id": index, "action": "sleep", "seconds": 0.05}
        return lam.invoke(FunctionName=name, InvocationType="Event",
                          Payload=json.dumps(payload).encode())["StatusCode"]

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(one, ids)) == {202}


def _delivered(collector: Collector, name: str) -> set[int]:
    return {record["event"]["id"] for record in collector.of(name)}


def _wait_all(collector: Collector, name: str, expected: set[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not expected <= _delivered(collector, name):
        missing = sorted(expected - _delivered(collector, name))
        assert time.monotonic() < deadline, f"never delivered: {missing}"
        time.sleep(0.05)


def test_queued_events_survive_sigkill_and_sigterm(tmp_path: Path,
                                                   collector: Collector) -> None:
    server = LaminaProcess(tmp_path / "data", {"LAMINA_ASYNC_RETRY_BASE_SECONDS": "0.3"})
    server.start()
    try:
        lam = server.client()
        name = recorder(lam, collector)
        # An async limit of one: most of the events are still queued when the server dies.
        lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
        _queue(lam, name, range(EVENTS))
        collector.wait(name, 5)
        assert server.stop(signal.SIGKILL) == -signal.SIGKILL
        before = _delivered(collector, name)
        assert len(before) < EVENTS

        server.start()
        collector.wait(name, len(collector.of(name)) + 5)
        stats = queue_stats(server, name)
        assert stats["depth"] > 0 and stats["oldestEventAgeSeconds"] > 0, stats
        assert server.stop(signal.SIGTERM) == 0  # a clean stop gives its leases back

        server.start()
        _wait_all(collector, name, set(range(EVENTS)), timeout=60)
        wait_drained(server, name)
        assert "Traceback" not in server.server_log()
    finally:
        server.stop()
