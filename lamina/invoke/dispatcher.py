"""The dispatcher: takes events from the durable queue and delivers them, function by function.

Each function with due events gets a *lane*, a task that claims a page of its events (at most
its async limit, see ``fairness.py``), starts deliveries as room frees up and exits when the
function has nothing due. A 10,000-event burst is therefore never in memory: a lane holds at
most one page beside the deliveries in flight. Lanes are started by ``submit`` (an event just
committed), by a delivery that queued a destination record, and by the *sweeper*, which asks
the store which functions have events due (retries and backoffs coming due, leases that lapsed,
events another node queued) at the earliest due time it knows of, and at least every
``poll_s``.

Leases: every claimed event is leased for ``LEASE_S`` and the *heartbeat* extends the leases of
the events this dispatcher still holds, however long a function runs. A dispatcher that dies
stops heartbeating, so its events reappear for another one; on a single-process store (SQLite)
``start`` releases every lease at once, since their owner can only be a previous, dead process.
A clean ``stop`` lets deliveries finish for a short grace period, then releases what it holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Sequence
from typing import Any

from lamina.invoke.api import (
    EventInvokeConfigs,
    EventQueue,
    Invoker,
    NewEvent,
    QueuedEvent,
    Reschedule,
    Resolver,
    Settlement,
)
from lamina.invoke.batching import GroupCommit
from lamina.invoke.delivery import Delivery, Outcome
from lamina.invoke.fairness import AsyncConcurrency
from lamina.invoke.policy import EventPolicy, RetryPolicy

log = logging.getLogger(__name__)

LATEST = "$LATEST"
LEASE_S = 60.0
CONFIG_TTL_S = 1.0  # how long a function's event invoke config is cached (changes here clear it)
ROUTE_PARALLEL = 8  # deliveries at once for a function that may not run (reserved 0)
PAGE_MAX = 32  # events claimed ahead of room: fewer claims, and never more than this in memory
STOP_GRACE_S = 5.0


@dataclasses.dataclass
class DispatcherSettings:
    retry_base_s: float = 60.0
    default_max_age_s: float = 21600.0
    poll_s: float = 1.0
    share: float = 0.8
    max_per_function: int = 100
    account_limit: int = 1000


class _Lane:
    """The state of one function's lane."""

    def __init__(self) -> None:
        self.signal = asyncio.Event()
        self.poked = False
        self.in_flight = 0
        self.task: asyncio.Task[None] | None = None

    def poke(self) -> None:
        self.poked = True
        self.signal.set()

    async def wait(self) -> None:
        await self.signal.wait()
        self.signal.clear()


class Dispatcher:
    """``AsyncInvocations`` for the API, and the loop that delivers what it queued."""

    def __init__(self, queue: EventQueue, configs: EventInvokeConfigs, resolve: Resolver,
                 invoke: Invoker, reserved: Callable[[], dict[str, int]],
                 settings: DispatcherSettings) -> None:
        self.queue = queue
        self.configs = configs
        self.settings = settings
        self._reserved_source = reserved
        self.concurrency = AsyncConcurrency(share=settings.share,
                                            max_per_function=settings.max_per_function,
                                            account_limit=settings.account_limit)
        self.delivery = Delivery(resolve, invoke, self._policy,
                                 RetryPolicy(settings.retry_base_s), self.concurrency)
        self.owner = uuid.uuid4().hex
        self.counters: Counter[str] = Counter()
        self._intake: GroupCommit[NewEvent, None] = GroupCommit(self._enqueue)
        self._settle: GroupCommit[Settlement, bool] = GroupCommit(self._apply_settlements)
        self._lanes: dict[str, _Lane] = {}
        self._held: set[int] = set()  # events leased to this dispatcher and not settled yet
        self._deliveries: set[asyncio.Task[None]] = set()
        self._policies: dict[tuple[str, str], tuple[EventPolicy, float]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._next_sweep = 0.0
        self._retime = asyncio.Event()
        self._started = False
        self._stopping = False

    # the API's side -------------------------------------------------------------------------

    async def submit(self, event: NewEvent) -> None:
        """Commit one event (with whatever else is arriving) and get it delivered."""
        await self._intake.submit(event)
        self.counters["accepted"] += 1
        self.wake(event.function_name)

    def config_changed(self, function_name: str) -> None:
        for key in [k for k in self._policies if k[0] == function_name]:
            del self._policies[key]

    async def stats(self) -> dict[str, Any]:
        now = time.time()
        queues = await asyncio.to_thread(self.queue.stats, now)
        return {
            "functions": {
                q.function_name: {"depth": q.depth, "inFlight": q.in_flight,
                                  "delayed": q.delayed,
                                  "oldestEventAgeSeconds": round(now - q.oldest_enqueued_at, 3),
                                  "running": self.concurrency.in_flight.get(q.function_name, 0),
                                  "asyncLimit": self.concurrency.limit(q.function_name)}
                for q in queues
            },
            "dispatcher": {"owner": self.owner, "lanes": len(self._lanes),
                           "deliveriesInFlight": len(self._deliveries), **self.counters},
        }

    # life cycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        if self.queue.single_process:
            released = await asyncio.to_thread(self.queue.release, None, time.time())
            if released:
                log.info("async queue: %d event(s) in flight when lamina last stopped will run "
                         "again", released)
        await self._refresh_reserved()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._sweep_forever()),
                       loop.create_task(self._heartbeat_forever())]
        self._started = True

    async def stop(self) -> None:
        """Stop claiming; let deliveries finish for a grace period; give back the rest."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for lane in list(self._lanes.values()):
            lane.poke()
        if self._deliveries:
            await asyncio.wait(set(self._deliveries), timeout=STOP_GRACE_S)
        for task in list(self._deliveries):
            task.cancel()
        lanes = [lane.task for lane in self._lanes.values() if lane.task is not None]
        await asyncio.gather(*self._tasks, *self._deliveries, *lanes, return_exceptions=True)
        await self._intake.drain()
        await self._settle.drain()
        if self._started:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.queue.release, self.owner, time.time())

    # lanes ----------------------------------------------------------------------------------

    def wake(self, name: str) -> None:
        """Make sure ``name`` has a lane looking for its due events."""
        if self._stopping or not self._started:
            return
        lane = self._lanes.get(name)
        if lane is not None:
            lane.poke()
            return
        lane = self._lanes[name] = _Lane()
        lane.task = asyncio.get_running_loop().create_task(self._run_lane(name, lane))

    async def _run_lane(self, name: str, lane: _Lane) -> None:
        page: deque[QueuedEvent] = deque()
        try:
            # A reservation set a moment ago (before a burst, typically) must bound the lane
            # from its first claim; later changes are picked up by the sweeper.
            await self._refresh_reserved()
            while not self._stopping:
                lane.poked = False
                blocked = self.concurrency.blocked(name)
                room = (ROUTE_PARALLEL - lane.in_flight if blocked
                        else self.concurrency.room(name))
                if room <= 0:
                    await lane.wait()
                    continue
                if not page:
                    size = ROUTE_PARALLEL if blocked else PAGE_MAX
                    now = time.time()
                    claimed = await asyncio.to_thread(self.queue.claim, name, self.owner, now,
                                                      max(room, size), now + LEASE_S)
                    self._held.update(event.id for event in claimed)
                    page.extend(claimed)
                if not page:
                    if lane.poked:
                        continue
                    if lane.in_flight == 0:
                        return
                    await lane.wait()
                    continue
                while page and room > 0 and not self._stopping:
                    self._start_delivery(name, lane, page.popleft(), blocked)
                    room -= 1
        except Exception:
            log.exception("async lane of %s failed; the sweeper will restart it", name)
        finally:
            if self._lanes.get(name) is lane:
                del self._lanes[name]
            # Claimed but not started (only when stopping or failing): back to the queue.
            if page:
                self._held.difference_update(event.id for event in page)
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(
                        self.queue.settle, self.owner,
                        [_back(event) for event in page])

    def _start_delivery(self, name: str, lane: _Lane, event: QueuedEvent, blocked: bool) -> None:
        lane.in_flight += 1
        unreserved = False if blocked else self.concurrency.started(name)
        task = asyncio.get_running_loop().create_task(
            self._deliver(name, lane, event, blocked, unreserved))
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    async def _deliver(self, name: str, lane: _Lane, event: QueuedEvent, blocked: bool,
                       unreserved: bool) -> None:
        outcome: Outcome | None = None
        try:
            try:
                outcome = await self.delivery.attempt(event)
            finally:
                # The run is over: its room is free now. Committing the outcome (the event stays
                # leased until then) need not hold the function's concurrency.
                if not blocked:
                    throttled = outcome is not None and outcome.throttled
                    self.concurrency.finished(name, unreserved, throttled=throttled)
                lane.in_flight -= 1
                lane.poke()
            await self._record(event, outcome)
        except asyncio.CancelledError:
            raise
        except Exception:
            # A bug, or the database failing: the event stays. Try it again after a backoff;
            # if even that cannot be written, its lease lapses and it runs again anyway.
            log.exception("async event %s for %s: delivery failed; it will be tried again",
                          event.request_id, name)
            with contextlib.suppress(Exception):
                await self._settle.submit(self._backoff(event))
        finally:
            self._held.discard(event.id)

    async def _record(self, event: QueuedEvent, outcome: Outcome) -> None:
        applied = await self._settle.submit(outcome.settlement)
        if not applied:
            log.warning("async event %s: lease lost while it ran; another dispatcher owns it",
                        event.request_id)
            return
        self.counters[outcome.kind] += 1
        for followup in getattr(outcome.settlement, "followups", ()):
            self.wake(followup.function_name)
        if outcome.due_at is not None and outcome.due_at < self._next_sweep:
            self._next_sweep = outcome.due_at
            self._retime.set()

    # sweeping and heartbeats ----------------------------------------------------------------

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await self._sweep()
            except Exception:
                log.exception("async queue sweep failed")
                self._next_sweep = time.time() + self.settings.poll_s
            while True:
                self._retime.clear()
                delay = self._next_sweep - time.time()
                if delay <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._retime.wait(), delay)

    async def _sweep(self) -> None:
        await self._refresh_reserved()
        due = await asyncio.to_thread(self.queue.due)
        now = time.time()
        next_sweep = now + self.settings.poll_s
        for name, visible_at in due:
            if visible_at <= now:
                self.wake(name)
            else:
                next_sweep = min(next_sweep, visible_at)
        self._next_sweep = next_sweep

    async def _refresh_reserved(self) -> None:
        self.concurrency.set_reserved(await asyncio.to_thread(self._reserved_source))

    async def _heartbeat_forever(self) -> None:
        while True:
            await asyncio.sleep(LEASE_S / 3)
            held = list(self._held)
            if not held:
                continue
            try:
                await asyncio.to_thread(self.queue.heartbeat, self.owner, held,
                                        time.time() + LEASE_S)
            except Exception:
                log.exception("async queue heartbeat failed")

    # store calls ----------------------------------------------------------------------------

    def _enqueue(self, events: Sequence[NewEvent]) -> list[None]:
        self.queue.enqueue(events)
        return [None] * len(events)

    def _apply_settlements(self, settlements: Sequence[Settlement]) -> list[bool]:
        return self.queue.settle(self.owner, settlements)

    def _backoff(self, event: QueuedEvent) -> Reschedule:
        requeues = event.requeues + 1
        return Reschedule(event.id, time.time() + RetryPolicy.requeue_delay(requeues),
                          event.invoke_count, requeues, event.last_result)

    async def _policy(self, name: str, qualifier: str | None) -> EventPolicy:
        key = (name, qualifier or LATEST)
        cached = self._policies.get(key)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        record = await asyncio.to_thread(self.configs.get_config, *key)
        policy = EventPolicy.of(record.config if record else None,
                                self.settings.default_max_age_s)
        self._policies[key] = (policy, time.monotonic() + CONFIG_TTL_S)
        return policy


def _back(event: QueuedEvent) -> Settlement:
    """Give a claimed event back untouched, visible now."""
    return Reschedule(event.id, time.time(), event.invoke_count, event.requeues,
                      event.last_result)
