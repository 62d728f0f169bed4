"""A burst of events drains at the function's async share of its concurrency, shows in
``/_lamina/async`` meanwhile, and leaves room for synchronous invokes all along."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from async_helpers import Collector, queue_stats, recorder, signed_get, wait_drained
from support import LaminaProcess, invoke

BURST = 300
RESERVED = 5
ASYNC_LIMIT = 4  # the default share (0.8) of the reservation


def test_a_burst_drains_within_its_share_and_sync_invokes_still_run(
        qlam: Any, collector: Collector, quick_server: LaminaProcess) -> None:
    name = recorder(qlam, collector)
    qlam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=RESERVED)
    client = quick_server.client("lambda", max_pool_connections=16)

    def one(index: int) -> int:
        payload = {"id": index, "action": "sleep", "seconds": 0.02}
        return client.invoke(FunctionName=name, InvocationType="Event",
                             Payload=json.dumps(payload).encode())["StatusCode"]

    with ThreadPoolExecutor(16) as pool:
        assert set(pool.map(one, range(BURST))) == {202}

    running: list[int] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            stats = queue_stats(quick_server, name)
            if stats:
                running.append(stats["running"])
                assert stats["asyncLimit"] == ASYNC_LIMIT
                assert stats["oldestEventAgeSeconds"] >= 0
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        synchronous = []
        while len(collector.of(name)) < BURST * 0.8:
            started = time.monotonic()
            response, body = invoke(qlam, name, {"id": "sync"})
            synchronous.append(time.monotonic() - started)
            assert response["StatusCode"] == 200 and body == {"handled": "sync"}
        wait_drained(quick_server, name, timeout=60)
    finally:
        done.set()
        watcher.join()
    assert len(synchronous) >= 3
    assert max(synchronous) < 1.0, synchronous  # never throttled, never queued behind the burst
    assert running and max(running) <= ASYNC_LIMIT, running
    assert {r["event"]["id"] for r in collector.of(name)} >= set(range(BURST))
    counters = signed_get(quick_server, "/_lamina/async")["dispatcher"]
    assert counters["accepted"] >= BURST
