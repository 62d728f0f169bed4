"""Which environment runs an invocation, and whether it may run at all.

Concurrency is counted as Lambda counts it: invocations in progress, warm or cold. A function
with reserved concurrency N may run N at once, and those N are set aside from the account's
pool; every other function shares what is left (the unreserved pool). At the cap an invoke waits
briefly (``queue_wait_ms``) for a slot to free, because a burst that will be served in a moment is
better queued than refused; after that, or at once with a reservation of 0, it is throttled
with Lambda's 429 and ``Reason``.

Warm environments are kept per function version in a LIFO stack, so the hottest ones stay hot
and the coldest ones age out under the idle reaper. New environments are started for a waiting
invocation directly (the event is handed over at the runtime's first ``/next``), and at most
``max_starting`` are initialising at once.

A SnapStart version's pool keeps its snapshot (``snapshots.SnapshotKeeper``): made at publish
(``prepare_snapshot``) or by the first cold start that finds none, closed when the pool is
retired (an update, a deleted version or function, a new generation). Its on-demand
environments are forks of it (``initialization_type="snap-start"``); provisioned ones run
their own Init, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict, deque

from lamina.engine.api import FunctionTarget, InvokeRequest, InvokeResult
from lamina.engine.context import EngineContext
from lamina.engine.environment import Environment, EnvState, Invocation, Outcome
from lamina.engine.snapshots import SnapshotKeeper, prepare
from lamina.errors import ServiceError, TooManyRequests

log = logging.getLogger(__name__)

PROVISIONED_FAILURES = 3
RESERVED_REASON = "ReservedFunctionConcurrentInvocationLimitExceeded"
ACCOUNT_REASON = "ConcurrentInvocationLimitExceeded"


class Pool:
    """The environments of one function version at one generation of its configuration."""

    def __init__(self, target: FunctionTarget, snapshot: SnapshotKeeper | None = None) -> None:
        self.target = target
        self.snapshot = snapshot  # SnapStart versions only
        self.idle: list[Environment] = []  # a stack: the most recently used on top
        self.environments: set[Environment] = set()
        self.retired = False
        self.provisioned_target = 0  # environments to keep initialised ahead of traffic
        self.provisioned: set[Environment] = set()
        self.provisioned_waiters: list[asyncio.Future[None]] = []
        self.provisioned_failures = 0  # Init failures in a row
        self.provisioned_failure = ""

    def provisioned_ready(self) -> int:
        return sum(1 for env in self.provisioned if env.state in (EnvState.IDLE, EnvState.BUSY))


class Scheduler:
    def __init__(self, context: EngineContext, *, account_limit: int = 1000,
                 max_starting: int = 64, queue_wait_ms: int = 200,
                 idle_timeout: float = 300.0) -> None:
        self.context = context
        self.account_limit = account_limit
        self.max_starting = max_starting
        self.queue_wait = queue_wait_ms / 1000
        self.idle_timeout = idle_timeout
        self.pools: dict[tuple[str, str], Pool] = {}
        self.reserved: dict[str, int] = {}
        self._reserved_total = 0
        self.in_use: defaultdict[str, int] = defaultdict(int)
        self._unreserved_in_use = 0
        self._slot_waiters: deque[tuple[str, asyncio.Future[None]]] = deque()
        self._starting = 0
        self._start_waiters: deque[asyncio.Future[None]] = deque()
        self._pool_of: dict[Environment, Pool] = {}
        self._reaper: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._closed = False
        self._provisioning = 0  # provisioned environments being spawned now (_top_up)
        self._provision_queue: dict[Pool, None] = {}  # pools waiting for their turn, in order

    # public API ----------------------------------------------------------------------------

    def start(self) -> None:
        self._reaper = asyncio.get_running_loop().create_task(self._reap_forever())

    async def invoke(self, target: FunctionTarget, request: InvokeRequest) -> InvokeResult:
        pool = self._pool_for(target)
        if not self._take_slot(target.name):
            await self._wait_for_slot(target.name)
        try:
            loop = asyncio.get_running_loop()
            invocation = Invocation(request, loop.create_future())
            env = await self._environment_for(pool, invocation)
            result = await invocation.future
            self._release(pool, env)
            return result
        finally:
            self._give_slot(target.name)

    def invoke_now(self, target: FunctionTarget, request: InvokeRequest,
                   on_outcome: Outcome) -> bool:
        """Dispatch at once to an idle environment when there is one and a slot is free, and
        report the outcome through ``on_outcome`` the moment the runtime answers; ``False``
        means the caller must take ``invoke``. The warm path: no task, no future, no await."""
        pool = self.pools.get(target.key)
        if pool is None or pool.target.generation != target.generation or not pool.idle:
            return False
        name = target.name
        if not self._take_slot(name):
            return False
        while pool.idle:
            env = pool.idle.pop()
            if env.state is EnvState.IDLE and not env.retired:

                def done(result: InvokeResult | None, error: ServiceError | None,
                         pool: Pool = pool, env: Environment = env) -> None:
                    self._release(pool, env)
                    self._give_slot(name)
                    on_outcome(result, error)

                env.dispatch(Invocation(request, None, done))
                return True
        self._give_slot(name)
        return False

    def retire(self, name: str, version: str | None = None) -> None:
        for key in [k for k in self.pools if k[0] == name and (version is None or k[1] == version)]:
            self._retire_pool(self.pools.pop(key))

    async def prepare_snapshot(self, target: FunctionTarget) -> None:
        """Run a SnapStart version's Init once in its snapshot, now (at publish, at start-up)
        rather than at its first cold start; ``SnapshotInitFailed`` if the Init fails."""
        pool = self._pool_for(target)
        if pool.snapshot is not None:
            await prepare(pool.snapshot)

    def provision(self, target: FunctionTarget, count: int) -> asyncio.Future[None]:
        """Keep ``count`` environments of ``target`` initialised ahead of traffic
        (``AWS_LAMBDA_INITIALIZATION_TYPE=provisioned-concurrency``), re-created when they die.
        The future resolves once ``count`` of them are ready. ``count`` 0 lets them go."""
        pool = self._pool_for(target)
        pool.provisioned_target = count
        for env in list(pool.provisioned)[count:]:
            pool.provisioned.discard(env)
            if env.state is EnvState.IDLE:
                with contextlib.suppress(ValueError):
                    pool.idle.remove(env)
                env.kill("provisioned concurrency lowered")
        ready = asyncio.get_running_loop().create_future()
        pool.provisioned_waiters.append(ready)
        self._top_up(pool)
        self._check_provisioned(pool)
        return ready

    def provisioned_status(self, name: str, version: str) -> tuple[int, int]:
        """(ready, requested) provisioned environments of one version."""
        pool = self.pools.get((name, version))
        if pool is None:
            return 0, 0
        return pool.provisioned_ready(), pool.provisioned_target

    def provisioned_failure(self, name: str, version: str) -> str | None:
        """Why a version's provisioned environments keep failing their Init (three in a row,
        none ready since), or ``None``. They are still retried; the API reports FAILED."""
        pool = self.pools.get((name, version))
        if pool is None or pool.provisioned_failures < PROVISIONED_FAILURES:
            return None
        return pool.provisioned_failure

    def _top_up(self, pool: Pool) -> None:
        """Start provisioned environments until ``pool`` has its target, at most
        ``max_starting`` being spawned at once over all pools. Thousands of spawn requests
        at once would wait in the template's queue past the spawn timeout (1,000 took 29 s
        to get ready that way); in batches they flow. A pool that has to wait is queued and
        resumed as spawns finish (``_provision_spawned``)."""
        if pool.retired or self._closed:
            return
        loop = asyncio.get_running_loop()
        while len(pool.provisioned) < pool.provisioned_target:
            if self._provisioning >= self.max_starting:
                self._provision_queue[pool] = None
                return
            env = Environment(pool.target, self.context, self._on_ready, self._on_dead,
                              initialization_type="provisioned-concurrency")
            pool.provisioned.add(env)
            pool.environments.add(env)
            self._pool_of[env] = pool
            self._provisioning += 1
            task = loop.create_task(env.start())
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            task.add_done_callback(self._provision_spawned)
        self._provision_queue.pop(pool, None)

    def _provision_spawned(self, _task: asyncio.Task[None]) -> None:
        """One provisioned spawn is over (its runtime now initialises on its own): the next."""
        self._provisioning -= 1
        while self._provision_queue and self._provisioning < self.max_starting:
            pool = next(iter(self._provision_queue))
            del self._provision_queue[pool]
            self._top_up(pool)

    def _check_provisioned(self, pool: Pool) -> None:
        # Counting the ready ones is O(n) per call, and this runs on every provisioned
        # environment's first /next: O(n^2) over a 5,000-environment ramp (30% of the
        # server's time, measured). Nothing to resolve without a waiter, and nothing can be
        # complete while fewer than the target exist (``_top_up`` starts them in batches).
        if not pool.provisioned_waiters or len(pool.provisioned) < pool.provisioned_target:
            return
        if pool.provisioned_ready() >= pool.provisioned_target:
            waiters, pool.provisioned_waiters = pool.provisioned_waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def set_reserved_concurrency(self, name: str, value: int | None) -> None:
        if value is None:
            self.reserved.pop(name, None)
        else:
            self.reserved[name] = value
        self._reserved_total = sum(self.reserved.values())
        self._wake_slot_waiters()

    def stats(self) -> dict[str, object]:
        envs = [env for pool in self.pools.values() for env in pool.environments]
        return {
            "environments": len(envs),
            "idle": sum(1 for env in envs if env.state is EnvState.IDLE),
            "busy": sum(1 for env in envs if env.state is EnvState.BUSY),
            "starting": self._starting,
            "concurrent_executions": sum(self.in_use.values()),
            **self.context.launcher.stats(),
        }

    async def close(self) -> None:
        self._closed = True
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        for pool in list(self.pools.values()):
            self._retire_pool(pool)
            for env in list(pool.environments):
                env.kill("shutdown")
        self.pools.clear()
        for _, waiter in self._slot_waiters:
            if not waiter.done():
                waiter.cancel()
        self.context.deadlines.close()

    # concurrency ----------------------------------------------------------------------------

    def _unreserved_capacity(self) -> int:
        return self.account_limit - self._reserved_total

    def _take_slot(self, name: str) -> bool:
        reserved = self.reserved.get(name)
        if reserved is not None:
            if self.in_use[name] >= reserved:
                return False
        elif self._unreserved_in_use >= self._unreserved_capacity():
            return False
        elif self._slot_waiters:
            return False  # first come, first served
        self.in_use[name] += 1
        if reserved is None:
            self._unreserved_in_use += 1
        return True

    def _give_slot(self, name: str) -> None:
        self.in_use[name] -= 1
        if self.in_use[name] <= 0:
            del self.in_use[name]
        if name not in self.reserved:
            self._unreserved_in_use -= 1
        if self._slot_waiters:
            self._wake_slot_waiters()

    def _throttle(self, name: str) -> TooManyRequests:
        reason = RESERVED_REASON if name in self.reserved else ACCOUNT_REASON
        return TooManyRequests("Rate Exceeded.", Reason=reason)

    async def _wait_for_slot(self, name: str) -> None:
        if self.reserved.get(name) == 0 or self.queue_wait <= 0:
            raise self._throttle(name)
        waiter = asyncio.get_running_loop().create_future()
        entry = (name, waiter)
        self._slot_waiters.append(entry)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), self.queue_wait)
        except TimeoutError:
            if waiter.done() and not waiter.cancelled():
                return  # granted in the same instant the wait ran out: keep the slot
            waiter.cancel()
            raise self._throttle(name) from None
        finally:
            with contextlib.suppress(ValueError):
                self._slot_waiters.remove(entry)

    def _wake_slot_waiters(self) -> None:
        for entry in list(self._slot_waiters):
            name, waiter = entry
            if waiter.done():
                self._slot_waiters.remove(entry)
                continue
            reserved = self.reserved.get(name)
            if reserved is not None:
                if self.in_use[name] >= reserved:
                    continue
            elif self._unreserved_in_use >= self._unreserved_capacity():
                continue
            self._slot_waiters.remove(entry)
            self.in_use[name] += 1
            if reserved is None:
                self._unreserved_in_use += 1
            waiter.set_result(None)

    # environments ---------------------------------------------------------------------------

    def _pool_for(self, target: FunctionTarget) -> Pool:
        pool = self.pools.get(target.key)
        if pool is not None and pool.target.generation == target.generation:
            return pool
        if pool is not None:
            self._retire_pool(pool)
        pool = Pool(target, SnapshotKeeper(target, self.context) if target.snap_start else None)
        self.pools[target.key] = pool
        return pool

    def _retire_pool(self, pool: Pool) -> None:
        pool.retired = True
        pool.provisioned_target = 0
        if pool.snapshot is not None:
            pool.snapshot.close()
        idle, pool.idle = pool.idle, []
        for env in idle:
            env.kill("retired")

    async def _environment_for(self, pool: Pool, invocation: Invocation) -> Environment:
        while True:
            while pool.idle:
                env = pool.idle.pop()
                if env.state is EnvState.IDLE and not env.retired:
                    env.dispatch(invocation)
                    return env
            if self._starting < self.max_starting:
                return await self._start(pool, invocation)
            waiter = asyncio.get_running_loop().create_future()
            self._start_waiters.append(waiter)
            try:
                await waiter
            finally:
                with contextlib.suppress(ValueError):
                    self._start_waiters.remove(waiter)

    async def _start(self, pool: Pool, invocation: Invocation | None) -> Environment:
        if pool.snapshot is not None:
            env = Environment(pool.target, self.context, self._on_ready, self._on_dead,
                              initialization_type="snap-start", spawner=pool.snapshot)
        else:
            env = Environment(pool.target, self.context, self._on_ready, self._on_dead)
        self._starting += 1
        env.counted_as_starting = True
        pool.environments.add(env)
        self._pool_of[env] = pool
        if invocation is not None:
            env.dispatch(invocation)
        await env.start()
        return env

    def _starting_done(self, env: Environment) -> None:
        if env.counted_as_starting:
            env.counted_as_starting = False
            self._starting -= 1
            self._wake_one_starter()

    def _wake_one_starter(self) -> None:
        while self._start_waiters:
            waiter = self._start_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _on_ready(self, env: Environment) -> None:
        self._starting_done(env)
        pool = self._pool_of.get(env)
        if env.state is EnvState.IDLE and pool is not None:  # started ahead of traffic
            self._park(pool, env)
        if pool is not None and env in pool.provisioned:
            pool.provisioned_failures = 0
            self._check_provisioned(pool)

    def _on_dead(self, env: Environment) -> None:
        self._starting_done(env)
        pool = self._pool_of.pop(env, None)
        if pool is not None:
            pool.environments.discard(env)
            with contextlib.suppress(ValueError):
                pool.idle.remove(env)
            if env in pool.provisioned:
                pool.provisioned.discard(env)
                if env.init_duration_ms is None:  # it never finished Init
                    pool.provisioned_failures += 1
                    pool.provisioned_failure = env.init_error or "Init failed"
                # Re-create it, a little later: an environment that dies at once must not
                # turn into a busy loop of spawns.
                asyncio.get_running_loop().call_later(0.5, self._top_up, pool)
        self._wake_one_starter()

    def _release(self, pool: Pool, env: Environment) -> None:
        if env.state is EnvState.BUSY and env.awaiting_extensions:
            env.when_idle(lambda: self._release(pool, env))
            return
        if env.state is not EnvState.IDLE:
            return  # it died, or its timeout killed it
        if pool.retired or env.retired or self._closed:
            env.kill("retired")
            return
        self._park(pool, env)

    def _park(self, pool: Pool, env: Environment) -> None:
        pool.idle.append(env)
        self._wake_one_starter()

    # idle reaping ---------------------------------------------------------------------------

    async def _reap_forever(self) -> None:
        interval = max(0.05, min(1.0, self.idle_timeout / 4))
        while True:
            await asyncio.sleep(interval)
            self.reap_idle()

    def reap_idle(self) -> None:
        cutoff = time.monotonic() - self.idle_timeout
        for pool in list(self.pools.values()):
            for env in [e for e in pool.idle if e.last_used < cutoff
                        and e not in pool.provisioned]:
                pool.idle.remove(env)
                env.kill("idle")
