"""The invoke path's cache of runnable targets: a miss is read from the store once however many
invokes ask at the same time, and a read that a change overtook is not kept.

Driven through ``resolve_target`` over a real SQLite store; the store's ``get_function`` is
wrapped to count (and, for the race, to hold) its reads.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from lamina.api.context import ApiContext
from lamina.api.naming import LATEST, Naming
from lamina.api.operations.invoke import resolve_target
from lamina.errors import ResourceNotFound
from lamina.settings import Settings
from lamina.store.api import FunctionRecord
from lamina.store.blobs import FileBlobStore
from lamina.store.registry import open_store

CONFIG = {"Runtime": "python3.11", "Handler": "app.handler", "MemorySize": 128, "Timeout": 3,
          "Role": "arn:aws:iam::000000000000:role/lamina-function", "State": "Active",
          "LastUpdateStatus": "Successful"}


class CountingReads:
    """The real store's ``get_function``, counted; ``gate`` (when set) holds each read until
    it is opened, so that a test can change the function while a read is under way."""

    def __init__(self, store: Any) -> None:
        self.read = store.get_function
        self.calls = 0
        self.gate: threading.Event | None = None
        self.reading = threading.Event()

    def __call__(self, *args: Any) -> Any:
        self.calls += 1
        self.reading.set()
        if self.gate is not None:
            assert self.gate.wait(10)
        return self.read(*args)


@pytest.fixture
def context(tmp_path: Path) -> Any:
    store = open_store(f"sqlite:///{tmp_path / 'lamina.db'}")
    store.create_function(FunctionRecord("fn", LATEST, dict(CONFIG), "0" * 64, 1, "rev-1",
                                         "2026-11-25T10:00:00.000+0000", 1.0))
    reads = CountingReads(store)
    store.get_function = reads  # type: ignore[method-assign]
    # The engine is not needed to resolve a target; everything that is, is real.
    context = ApiContext(Settings(), Naming("us-east-1", "000000000000"), store,
                         FileBlobStore(tmp_path / "blobs"), None, None,  # type: ignore[arg-type]
                         tmp_path / "code")
    context.reads = reads  # type: ignore[attr-defined]
    yield context
    store.close()


def test_a_burst_of_first_invokes_reads_the_function_once(context: Any) -> None:
    async def burst() -> list[Any]:
        return await asyncio.gather(*(resolve_target(context, "fn", None) for _ in range(50)))

    results = asyncio.run(burst())
    assert context.reads.calls == 1
    assert all(result is results[0] for result in results)
    assert results[0][1].name == "fn"
    asyncio.run(resolve_target(context, "fn", None))
    assert context.reads.calls == 1  # cached from then on
    assert context.cache.loads == {}


def test_every_waiter_hears_the_same_failure(context: Any) -> None:
    async def burst() -> list[Any]:
        return await asyncio.gather(*(resolve_target(context, "nope", None) for _ in range(5)),
                                    return_exceptions=True)

    results = asyncio.run(burst())
    assert context.reads.calls == 1
    assert all(isinstance(result, ResourceNotFound) for result in results)
    asyncio.run(burst())
    assert context.reads.calls == 2  # a failure is not cached


def test_a_read_overtaken_by_a_change_is_not_kept(context: Any) -> None:
    context.reads.gate = threading.Event()

    async def race() -> None:
        first = asyncio.ensure_future(resolve_target(context, "fn", None))
        await asyncio.to_thread(context.reads.reading.wait, 10)
        context.cache.invalidate("fn")  # what UpdateFunctionConfiguration does meanwhile
        context.reads.gate.set()
        await first

    asyncio.run(race())
    assert context.cache.get("fn", LATEST) is None
    asyncio.run(resolve_target(context, "fn", None))
    assert context.reads.calls == 2
    assert context.cache.get("fn", LATEST) is not None
