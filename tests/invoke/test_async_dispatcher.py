"""The dispatcher on a real SQLite store with a stand-in engine: a 10,000-event burst drains at
the function's async limit without holding the queue in memory, throttles back off, and a
stop gives claimed events back. (The black-box tests cover the same paths through boto3; this
one is where the big burst stays fast.)"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from lamina.engine.api import FunctionTarget, InvokeRequest, InvokeResult
from lamina.errors import ResourceNotFound, TooManyRequests
from lamina.invoke import dispatcher as dispatcher_module
from lamina.invoke.api import NewEvent, Resolved
from lamina.invoke.dispatcher import Dispatcher, DispatcherSettings
from lamina.store.events import SqlEventInvokeConfigs, SqlEventQueue
from lamina.store.registry import open_store

ARN = "arn:aws:lambda:us-east-1:000000000000:function:"


class FakeEngine:
    """Counts what runs at once; throttles the first ``throttles`` calls."""

    def __init__(self, throttles: int = 0, seconds: float = 0.0) -> None:
        self.running = 0
        self.peak = 0
        self.done: list[str] = []
        self.throttles = throttles
        self.seconds = seconds

    async def invoke(self, target: FunctionTarget, request: InvokeRequest) -> InvokeResult:
        if self.throttles > 0:
            self.throttles -= 1
            raise TooManyRequests("Rate Exceeded.", Reason="ConcurrentInvocationLimitExceeded")
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await asyncio.sleep(self.seconds)
        finally:
            self.running -= 1
        self.done.append(request.request_id)
        return InvokeResult(payload=b"null", executed_version="$LATEST")


def _target(name: str) -> FunctionTarget:
    return FunctionTarget(name=name, version="$LATEST", function_arn=ARN + name, generation="g",
                          runtime="python3.11", handler="app.handler", memory_mb=128,
                          timeout_s=3, code_dir=Path("/nonexistent"))


async def _resolve(name: str, qualifier: str | None) -> Resolved:
    name = name.rsplit(":", 1)[-1] if name.startswith("arn:") else name
    if name.startswith("gone"):
        raise ResourceNotFound(f"Function not found: {ARN}{name}")
    return Resolved(_target(name), 1.0, None)


def _event(name: str, index: int) -> NewEvent:
    return NewEvent(function_name=name, qualifier=None, request_id=f"r{index}",
                    invoked_arn=ARN + name, trace_id="Root=1-0-0",
                    payload=b'{"n": %d}' % index, enqueued_at=time.time(), function_created=1.0)


def _dispatcher(tmp_path: Path, engine: FakeEngine, reserved: dict[str, int],
                **settings: Any) -> tuple[Dispatcher, Any]:
    store = open_store(f"sqlite:///{tmp_path / 'lamina.db'}")
    dispatcher = Dispatcher(SqlEventQueue(store), SqlEventInvokeConfigs(store),  # type: ignore[arg-type]
                            _resolve, engine.invoke, lambda: dict(reserved),
                            DispatcherSettings(poll_s=0.1, **settings))
    return dispatcher, store


async def _drained(dispatcher: Dispatcher, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (await dispatcher.stats())["functions"]:
        assert time.monotonic() < deadline, await dispatcher.stats()
        await asyncio.sleep(0.05)


def test_a_10000_event_burst_drains_at_the_async_limit(tmp_path: Path) -> None:
    engine = FakeEngine(seconds=0.001)
    dispatcher, store = _dispatcher(tmp_path, engine, {"f": 10})
    pages: list[int] = []
    claim = dispatcher.queue.claim

    def counting_claim(*args: Any) -> Any:
        claimed = claim(*args)
        pages.append(len(claimed))
        return claimed

    dispatcher.queue.claim = counting_claim  # type: ignore[method-assign]

    async def run() -> float:
        await dispatcher.start()
        started = time.monotonic()
        await asyncio.gather(*(dispatcher.submit(_event("f", i)) for i in range(10_000)))
        await _drained(dispatcher, timeout=90)
        elapsed = time.monotonic() - started
        await dispatcher.stop()
        return elapsed

    elapsed = asyncio.run(run())
    store.close()
    assert sorted(engine.done) == sorted(f"r{i}" for i in range(10_000))
    assert engine.peak == 8  # 0.8 of the reservation of 10
    assert max(pages) <= dispatcher_module.PAGE_MAX  # the queue is paged, never loaded whole
    print(f"10,000 events queued and drained in {elapsed:.1f} s")


def test_throttles_are_requeued_not_lost(tmp_path: Path) -> None:
    engine = FakeEngine(throttles=2)
    dispatcher, store = _dispatcher(tmp_path, engine, {})

    async def run() -> dict[str, Any]:
        await dispatcher.start()
        await dispatcher.submit(_event("f", 1))
        await _drained(dispatcher, timeout=20)  # after a backoff of 1 s, then 2 s
        stats = await dispatcher.stats()
        await dispatcher.stop()
        return stats

    stats = asyncio.run(run())
    store.close()
    assert engine.done == ["r1"]
    assert stats["dispatcher"]["requeued"] == 2 and stats["dispatcher"]["succeeded"] == 1


@pytest.mark.parametrize("name", ["gone"])
def test_events_of_a_missing_function_are_dropped_with_a_reason(
        tmp_path: Path, name: str, caplog: pytest.LogCaptureFixture) -> None:
    engine = FakeEngine()
    dispatcher, store = _dispatcher(tmp_path, engine, {})

    async def run() -> None:
        await dispatcher.start()
        await dispatcher.submit(_event(name, 7))
        await _drained(dispatcher, timeout=10)
        await dispatcher.stop()

    asyncio.run(run())
    store.close()
    assert engine.done == []
    assert "async event r7 for arn:aws:lambda:us-east-1:000000000000:function:gone dropped: " \
           "the function no longer exists" in caplog.text


def test_stop_gives_claimed_events_back(tmp_path: Path) -> None:
    engine = FakeEngine(seconds=30)
    dispatcher, store = _dispatcher(tmp_path, engine, {"f": 4})

    async def run() -> None:
        await dispatcher.start()
        await asyncio.gather(*(dispatcher.submit(_event("f", i)) for i in range(20)))
        while engine.running < 3:
            await asyncio.sleep(0.01)
        dispatcher_module.STOP_GRACE_S = 0.1
        await dispatcher.stop()

    original = dispatcher_module.STOP_GRACE_S
    try:
        asyncio.run(run())
    finally:
        dispatcher_module.STOP_GRACE_S = original
    queue = SqlEventQueue(store)  # type: ignore[arg-type]
    assert len(queue.claim("f", "next", time.time(), 100, time.time() + 60)) == 20
    store.close()
