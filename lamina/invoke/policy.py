"""When an asynchronous event is tried again, and when it has been tried enough.

Lambda's rules (spec/async.md): a *function error* is retried ``MaximumRetryAttempts`` times
(default 2), about one minute and then two minutes later; a *throttle or platform error* is not
the function's fault, so it does not use up retries but is requeued with a backoff from 1 s
doubling up to 5 min; and an event older than ``MaximumEventAgeInSeconds`` (default six hours)
is not run at all any more. The one-minute base is a setting so that tests can shorten it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

DEFAULT_RETRY_ATTEMPTS = 2
REQUEUE_MIN_S = 1.0
REQUEUE_MAX_S = 300.0


@dataclasses.dataclass(frozen=True)
class EventPolicy:
    """A function's FunctionEventInvokeConfig with Lambda's defaults filled in."""

    max_retries: int
    max_age_s: float
    on_success: str | None
    on_failure: str | None

    @classmethod
    def of(cls, stored: dict[str, Any] | None, default_max_age_s: float) -> EventPolicy:
        stored = stored or {}
        destinations = stored.get("DestinationConfig") or {}
        retries = stored.get("MaximumRetryAttempts")
        age = stored.get("MaximumEventAgeInSeconds")
        return cls(
            max_retries=DEFAULT_RETRY_ATTEMPTS if retries is None else int(retries),
            max_age_s=default_max_age_s if age is None else float(age),
            on_success=(destinations.get("OnSuccess") or {}).get("Destination") or None,
            on_failure=(destinations.get("OnFailure") or {}).get("Destination") or None,
        )


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    retry_base_s: float  # the wait before the first retry of a function error

    def function_error_delay(self, invoke_count: int) -> float:
        """The wait after the ``invoke_count``-th failed run: base, then twice the base."""
        return self.retry_base_s * 2 ** max(0, invoke_count - 1)

    @staticmethod
    def requeue_delay(requeues: int) -> float:
        """The wait after the ``requeues``-th throttle or platform error."""
        return min(REQUEUE_MAX_S, REQUEUE_MIN_S * 2 ** max(0, requeues - 1))

    @staticmethod
    def retries_left(invoke_count: int, policy: EventPolicy) -> bool:
        return invoke_count <= policy.max_retries

    @staticmethod
    def expires_at(enqueued_at: float, policy: EventPolicy) -> float:
        return enqueued_at + policy.max_age_s

    @staticmethod
    def next_try(now: float, delay: float, expires_at: float) -> float:
        """When to try again: after ``delay``, but no later than the event's expiry, so that an
        event that cannot be tried in time reaches its failure destination on time."""
        return min(now + delay, expires_at)
