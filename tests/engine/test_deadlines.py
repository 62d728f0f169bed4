"""Invocation timeouts as FIFO queues per duration, on a real uvloop loop."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import uvloop

from lamina.engine.deadlines import _COMPACT_MIN, Deadlines


def run(coroutine: Any) -> Any:
    return uvloop.run(coroutine)


def test_a_deadline_fires_once_when_its_time_has_passed() -> None:
    async def main() -> tuple[list[Any], float]:
        loop = asyncio.get_running_loop()
        deadlines = Deadlines()
        fired: list[Any] = []
        started = loop.time()
        deadlines.after(0.05, lambda arg: fired.append((arg, loop.time() - started)), "a")
        await asyncio.sleep(0.03)
        early = list(fired)
        await asyncio.sleep(0.1)
        return early, fired

    early, fired = run(main())
    assert early == []
    assert [arg for arg, _ in fired] == ["a"]
    assert 0.045 <= fired[0][1] < 0.5  # never early; late only by the loop's own delays


def test_cancelled_deadlines_never_fire_and_the_others_fire_in_order() -> None:
    async def main() -> tuple[list[int], list[int], int]:
        deadlines = Deadlines()
        fired: list[int] = []
        handles = []
        for i in range(200):
            handles.append(deadlines.after(0.05, fired.append, i))
            if i % 20 == 0:
                await asyncio.sleep(0.001)  # deadlines spread over time, as invokes come
        cancelled = random.Random(7).sample(range(200), 150)
        for i in cancelled:
            handles[i].cancel()
        await asyncio.sleep(0.4)
        return fired, sorted(set(range(200)) - set(cancelled)), deadlines.pending()

    fired, expected, pending = run(main())
    assert fired == expected
    assert pending == 0


def test_durations_are_independent() -> None:
    async def main() -> list[str]:
        deadlines = Deadlines()
        fired: list[str] = []
        deadlines.after(1.0, fired.append, "long")
        deadlines.after(0.02, fired.append, "short")
        await asyncio.sleep(0.3)
        fired.append("|")
        await asyncio.sleep(0.9)
        return fired

    assert run(main()) == ["short", "|", "long"]


def test_finished_entries_leave_from_the_head_as_new_ones_come() -> None:
    """The warm path: each invocation answered long before its timeout."""
    async def main() -> int:
        deadlines = Deadlines()
        for _ in range(10_000):
            deadlines.after(30.0, print, None).cancel()
        return deadlines.pending()

    assert run(main()) <= 1


def test_a_long_invocation_at_the_head_does_not_let_the_queue_grow_without_end() -> None:
    async def main() -> tuple[int, list[str]]:
        deadlines = Deadlines()
        fired: list[str] = []
        deadlines.after(0.2, fired.append, "long-running")
        for _ in range(50_000):
            deadlines.after(0.2, fired.append, "answered").cancel()
        held = deadlines.pending()
        await asyncio.sleep(0.6)
        return held, fired

    held, fired = run(main())
    assert held <= 2 * _COMPACT_MIN
    assert fired == ["long-running"]


def test_a_callback_may_arm_new_deadlines() -> None:
    async def main() -> list[int]:
        deadlines = Deadlines()
        fired: list[int] = []

        def again(count: int) -> None:
            fired.append(count)
            if count < 3:
                deadlines.after(0.01, again, count + 1)

        deadlines.after(0.01, again, 0)
        await asyncio.sleep(0.5)
        return fired

    assert run(main()) == [0, 1, 2, 3]


def test_close_disarms_everything() -> None:
    async def main() -> list[str]:
        deadlines = Deadlines()
        fired: list[str] = []
        deadlines.after(0.02, fired.append, "x")
        deadlines.close()
        await asyncio.sleep(0.05)
        return fired

    assert run(main()) == []
