"""How much of the concurrency pools asynchronous work may hold, so synchronous callers never
starve.

Async invocations take the same slots as synchronous ones (the scheduler counts them alike),
but nobody waits on an async event: it can always wait a little longer. So the dispatcher keeps
its own, lower limits and backs off when it is throttled:

* a function with reserved concurrency R runs at most ``share * R`` async invocations at once
  (at least one), leaving the rest of its reservation to synchronous callers;
* the functions without a reservation together run at most ``share *`` the unreserved pool,
  and each at most ``max_per_function`` (one machine runs lamina; a burst of 10,000 events must
  not start a thousand environments);
* each function's window halves when an async invocation is throttled (synchronous traffic has
  the slots) and grows back by one per success: additive increase, multiplicative decrease.

Reserved concurrency 0 is no room at all: such events go straight to their failure routes.
"""

from __future__ import annotations

import math


class AsyncConcurrency:
    def __init__(self, *, share: float, max_per_function: int, account_limit: int) -> None:
        self.share = share
        self.max_per_function = max(1, max_per_function)
        self.account_limit = account_limit
        self.reserved: dict[str, int] = {}
        self.in_flight: dict[str, int] = {}
        self._windows: dict[str, int] = {}
        self._unreserved_in_flight = 0

    def set_reserved(self, reserved: dict[str, int]) -> None:
        """The functions' reservations, as the store has them."""
        self.reserved = dict(reserved)

    def blocked(self, name: str) -> bool:
        """Reserved concurrency 0: the function may not run at all."""
        return self.reserved.get(name) == 0

    def limit(self, name: str) -> int:
        """The most async invocations of ``name`` that may run at once (before throttles)."""
        reserved = self.reserved.get(name)
        if reserved is not None:
            return 0 if reserved == 0 else max(1, math.floor(reserved * self.share))
        return max(1, min(self.max_per_function, self._unreserved_budget()))

    def room(self, name: str) -> int:
        """How many more async invocations of ``name`` may start now."""
        window = min(self._windows.get(name, self.limit(name)), self.limit(name))
        free = window - self.in_flight.get(name, 0)
        if name not in self.reserved:
            free = min(free, self._unreserved_budget() - self._unreserved_in_flight)
        return max(0, free)

    def started(self, name: str) -> bool:
        """Count one more in flight; returns whether it counts against the unreserved pool
        (hand that back to ``finished``: the reservation may change meanwhile)."""
        self.in_flight[name] = self.in_flight.get(name, 0) + 1
        unreserved = name not in self.reserved
        if unreserved:
            self._unreserved_in_flight += 1
        return unreserved

    def finished(self, name: str, unreserved: bool, *, throttled: bool = False) -> None:
        left = self.in_flight.get(name, 0) - 1
        if left > 0:
            self.in_flight[name] = left
        else:
            self.in_flight.pop(name, None)
        if unreserved:
            self._unreserved_in_flight -= 1
        limit = self.limit(name)
        window = min(self._windows.get(name, limit), limit)
        if throttled:
            self._windows[name] = max(1, window // 2)
        elif window + 1 >= limit:
            self._windows.pop(name, None)  # back at the limit: nothing to remember
        else:
            self._windows[name] = window + 1

    def _unreserved_budget(self) -> int:
        pool = self.account_limit - sum(self.reserved.values())
        return max(1, math.floor(pool * self.share))
