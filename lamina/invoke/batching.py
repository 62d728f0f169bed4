"""Group commit: many concurrent writers, one transaction for all that queued up meanwhile.

A burst of Event invokes (or of finished deliveries) would otherwise be one transaction each,
and the database's single writer would be the bottleneck. Here the first caller starts a
writer; whoever arrives while it writes waits for the next batch, which takes them all at once.
A lone caller waits for exactly one transaction, so latency does not suffer when the queue is
quiet. Each caller still learns its own result (or the batch's exception).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    def __init__(self, apply: Callable[[Sequence[T]], Sequence[R]], max_batch: int = 500) -> None:
        self._apply = apply  # blocking: runs in a worker thread, one batch at a time
        self._max_batch = max_batch
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        """Commit ``item`` with whatever else is waiting; return its result. Once submitted,
        the item is written even if the caller is cancelled meanwhile."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieve)  # a cancelled caller leaves no "never retrieved"
        self._pending.append((item, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write())
        return await asyncio.shield(future)

    async def _write(self) -> None:
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            try:
                results = await asyncio.to_thread(self._apply, [item for item, _ in batch])
            except Exception as exc:  # every caller of the batch gets the failure
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)

    async def drain(self) -> None:
        """Wait until everything submitted so far is written."""
        while self._writer is not None and not self._writer.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(self._writer)


def _retrieve(future: asyncio.Future[R]) -> None:
    if not future.cancelled():
        future.exception()
