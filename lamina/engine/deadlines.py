"""Invocation timeouts without a timer per invocation.

Every invocation needs its timeout armed when it is delivered and disarmed when it is answered,
almost always long before the timeout. A loop timer per invocation (``call_later`` and its
``cancel``) cost ~5 µs of the server's ~70 µs of Python per warm invoke, measured: uvloop
allocates a libuv timer for each and closes it again. But all invocations of one function share
one timeout, so their deadlines come in the order they are set: a FIFO queue per duration keeps
them sorted for free, and one loop timer per queue, armed for its oldest live deadline, is
enough. Disarming only marks the entry; marked entries leave the queue from its head as new ones
come in, or when the timer fires, and a compaction keeps the queue small when a long invocation
at its head holds back many finished ones behind it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

_COMPACT_MIN = 1024  # a queue this long or longer is compacted once its length doubles


class Deadline:
    """One armed timeout; ``cancel`` disarms it (as ``asyncio.TimerHandle.cancel`` does)."""

    __slots__ = ("argument", "at", "callback", "cancelled")

    def __init__(self, at: float, callback: Callable[[Any], None], argument: Any) -> None:
        self.at = at
        self.callback = callback
        self.argument = argument
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class _Queue:
    """The deadlines of one duration, oldest first, and the one timer that serves them."""

    __slots__ = ("_compact_at", "_entries", "_loop", "_seconds", "_timer")

    def __init__(self, loop: asyncio.AbstractEventLoop, seconds: float) -> None:
        self._loop = loop
        self._seconds = seconds
        self._entries: deque[Deadline] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._compact_at = _COMPACT_MIN

    def add(self, callback: Callable[[Any], None], argument: Any) -> Deadline:
        entries = self._entries
        while entries and entries[0].cancelled:
            entries.popleft()
        deadline = Deadline(self._loop.time() + self._seconds, callback, argument)
        entries.append(deadline)
        if len(entries) >= self._compact_at:
            self._entries = entries = deque(e for e in entries if not e.cancelled)
            self._compact_at = max(_COMPACT_MIN, 2 * len(entries))
        if self._timer is None:
            self._timer = self._loop.call_at(entries[0].at, self._fire)
        return deadline

    def _fire(self) -> None:
        self._timer = None
        entries = self._entries
        now = self._loop.time()
        # A callback may arm new deadlines (of this duration too): they land at the tail, later
        # than now, so the loop below ends before reaching them.
        while entries and (entries[0].cancelled or entries[0].at <= now):
            deadline = entries.popleft()
            if not deadline.cancelled:
                deadline.cancelled = True
                deadline.callback(deadline.argument)
        if entries and self._timer is None:
            self._timer = self._loop.call_at(entries[0].at, self._fire)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class Deadlines:
    """``after(seconds, callback, argument)``: call ``callback(argument)`` once ``seconds``
    have passed, unless the returned ``Deadline`` is cancelled first."""

    def __init__(self) -> None:
        self._queues: dict[float, _Queue] = {}

    def after(self, seconds: float, callback: Callable[[Any], None], argument: Any) -> Deadline:
        queue = self._queues.get(seconds)
        if queue is None:
            queue = self._queues[seconds] = _Queue(asyncio.get_running_loop(), seconds)
        return queue.add(callback, argument)

    def pending(self) -> int:
        """Entries held (armed, or cancelled and not yet dropped): for tests and stats."""
        return sum(len(queue) for queue in self._queues.values())

    def close(self) -> None:
        for queue in self._queues.values():
            queue.close()
        self._queues.clear()
