"""One attempt at one queued event, ending in the settlement that records its outcome.

The order of the checks is the order of Lambda's: the function must still exist (and be the
function the event was sent to, not a namesake created since); an event past its maximum age
is not run; a function with reserved concurrency 0 is not run; otherwise it runs, and

* success → its OnSuccess record is queued as the event is deleted;
* a function error → retried after the policy's delay while retries are left, else
  ``RetriesExhausted`` to OnFailure and the dead-letter target;
* a throttle or a platform error → requeued with backoff, retries untouched, until the age runs
  out (then ``EventAgeExceeded``).

Nothing here writes: the caller commits the returned settlement, so an attempt interrupted by a
crash leaves its event in the queue to be tried again.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable

from lamina.engine.api import InvokeRequest
from lamina.errors import ResourceNotFound, ServiceError, TooManyRequests
from lamina.invoke.api import Complete, Invoker, QueuedEvent, Reschedule, Resolved, Resolver
from lamina.invoke.destinations import follow, routes_for
from lamina.invoke.fairness import AsyncConcurrency
from lamina.invoke.policy import EventPolicy, RetryPolicy
from lamina.invoke.records import (
    EVENT_AGE_EXCEEDED,
    RETRIES_EXHAUSTED,
    SUCCESS,
    attempt_result,
    invocation_record,
    platform_result,
)

log = logging.getLogger(__name__)

LATEST = "$LATEST"

PolicySource = Callable[[str, str | None], Awaitable[EventPolicy]]


@dataclasses.dataclass(frozen=True)
class Outcome:
    settlement: Complete | Reschedule
    kind: str  # "succeeded", "failed", "retried", "requeued", "dropped": for the counters
    throttled: bool = False
    due_at: float | None = None  # for a reschedule: when the event is due again


class Delivery:
    def __init__(self, resolve: Resolver, invoke: Invoker, policies: PolicySource,
                 retry: RetryPolicy, concurrency: AsyncConcurrency) -> None:
        self.resolve = resolve
        self.invoke = invoke
        self.policies = policies
        self.retry = retry
        self.concurrency = concurrency

    async def attempt(self, event: QueuedEvent) -> Outcome:
        policy = await self.policies(event.function_name, event.qualifier)
        now = time.time()
        expires = self.retry.expires_at(event.enqueued_at, policy)
        try:
            resolved = await self.resolve(event.function_name, event.qualifier)
        except ResourceNotFound as exc:
            return self._drop(event, f"the function no longer exists ({exc.message})")
        except ServiceError as exc:  # it exists but cannot run now (still Pending, Failed...)
            if now >= expires:
                return await self._fail(event, None, EVENT_AGE_EXCEEDED, policy,
                                        event.invoke_count, event.last_result)
            return self._requeue(event, now, expires,
                                 platform_result(exc.status, exc.code, exc.message))
        if event.function_created is not None and resolved.created != event.function_created:
            return self._drop(event, "the function was deleted (and created again) since")
        if now >= expires:
            return await self._fail(event, resolved, EVENT_AGE_EXCEEDED, policy,
                                    event.invoke_count, event.last_result)
        if self.concurrency.blocked(event.function_name):
            refused = platform_result(429, "TooManyRequestsException", "Rate Exceeded.",
                                      resolved.target.version)
            return await self._fail(event, resolved, RETRIES_EXHAUSTED, policy,
                                    event.invoke_count, refused)
        request = InvokeRequest(payload=event.payload, request_id=event.request_id,
                                invoked_arn=event.invoked_arn, trace_id=event.trace_id)
        try:
            result = await self.invoke(resolved.target, request)
        except TooManyRequests as exc:
            refused = platform_result(429, exc.code, exc.message, resolved.target.version)
            return self._requeue(event, time.time(), expires, refused, throttled=True)
        except ServiceError as exc:
            failed = platform_result(exc.status, exc.code, exc.message, resolved.target.version)
            return self._requeue(event, time.time(), expires, failed)
        count = event.invoke_count + 1
        outcome = attempt_result(result)
        if not result.function_error:
            return await self._succeed(event, resolved, policy, count, outcome)
        if self.retry.retries_left(count, policy):
            due = self.retry.next_try(time.time(), self.retry.function_error_delay(count),
                                      expires)
            return Outcome(Reschedule(event.id, due, count, event.requeues, outcome),
                           "retried", due_at=due)
        return await self._fail(event, resolved, RETRIES_EXHAUSTED, policy, count, outcome)

    # outcomes -------------------------------------------------------------------------------

    def _requeue(self, event: QueuedEvent, now: float, expires: float, result: dict[str, object],
                 *, throttled: bool = False) -> Outcome:
        requeues = event.requeues + 1
        due = self.retry.next_try(now, self.retry.requeue_delay(requeues), expires)
        return Outcome(Reschedule(event.id, due, event.invoke_count, requeues, dict(result)),
                       "requeued", throttled=throttled, due_at=due)

    def _drop(self, event: QueuedEvent, reason: str) -> Outcome:
        log.warning("async event %s for %s dropped: %s", event.request_id, event.invoked_arn,
                    reason)
        return Outcome(Complete(event.id), "dropped")

    async def _succeed(self, event: QueuedEvent, resolved: Resolved, policy: EventPolicy,
                       count: int, result: dict[str, object]) -> Outcome:
        settlement = await self._route(event, resolved, SUCCESS, policy, count, result, True)
        return Outcome(settlement, "succeeded")

    async def _fail(self, event: QueuedEvent, resolved: Resolved | None, condition: str,
                    policy: EventPolicy, count: int,
                    result: dict[str, object] | None) -> Outcome:
        settlement = await self._route(event, resolved, condition, policy, count, result, False)
        return Outcome(settlement, "failed")

    async def _route(self, event: QueuedEvent, resolved: Resolved | None, condition: str,
                     policy: EventPolicy, count: int, result: dict[str, object] | None,
                     success: bool) -> Complete:
        now = time.time()
        function_arn = _unqualified(event.invoked_arn) + ":" + (event.qualifier or LATEST)
        record = invocation_record(
            request_id=event.request_id, function_arn=function_arn, condition=condition,
            invoke_count=count, request_payload=event.payload,
            result=None if result is None else dict(result), now=now)
        dead_letter = resolved.dead_letter_arn if resolved is not None else None
        routes = routes_for(success, policy, dead_letter, record, event.payload)
        if not success and not routes:
            log.warning("async event %s for %s discarded: %s after %d attempt(s), and it has "
                        "no failure destination or dead-letter target", event.request_id,
                        function_arn, condition, count)
        followups, drops = await follow(routes, event, self.resolve, now)
        for drop in drops:
            log.warning("async event %s for %s: %s record dropped: %s", event.request_id,
                        function_arn, drop.route.kind, drop.reason)
        return Complete(event.id, tuple(followups))


def _unqualified(arn: str) -> str:
    """``arn:aws:lambda:r:a:function:f`` from an ARN that may carry a qualifier."""
    parts = arn.split(":")
    return ":".join(parts[:7])
