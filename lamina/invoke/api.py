"""The contracts of the asynchronous invocation part: what it stores, what it asks of others.

``EventQueue`` is the durable queue. Guarantees every implementation keeps:

* ``enqueue`` returns only once its events are committed (they survive ``kill -9``).
* An event is claimable (``claim``) from its ``visible_at`` on; claiming leases it to one owner
  until the lease ends, and no other owner can claim it meanwhile, even with two dispatchers on
  one database (row locks with ``SKIP LOCKED`` on PostgreSQL, the write lock on SQLite).
* ``settle`` applies a settlement only while the caller still holds the lease, and a
  ``Complete`` deletes the event and inserts its follow-up events in one transaction: an event
  leaves the queue exactly when what it produced is in it.
* Nothing is ever deleted except by a ``Complete``.

``EventInvokeConfigs`` holds each function's FunctionEventInvokeConfig per qualifier; the
configs go with their function when it is deleted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from lamina.engine.api import FunctionTarget, InvokeRequest, InvokeResult


@dataclasses.dataclass(frozen=True)
class NewEvent:
    """An event about to be queued: from an Event invoke, or a record for a destination."""

    function_name: str
    qualifier: str | None  # None: unqualified, runs $LATEST with $LATEST's event invoke config
    request_id: str
    invoked_arn: str  # the ARN as the caller named it, handed to the function's context
    trace_id: str
    payload: bytes
    enqueued_at: float  # unix time the platform accepted it: the event's age counts from here
    function_created: float | None = None  # the function's creation time when it was accepted
    depth: int = 0  # destination hops behind this event (a loop stops at MAX_DEPTH)


@dataclasses.dataclass(frozen=True)
class QueuedEvent:
    """An event as claimed from the queue, with what its earlier attempts left behind."""

    id: int
    function_name: str
    qualifier: str | None
    request_id: str
    invoked_arn: str
    trace_id: str
    payload: bytes
    enqueued_at: float
    function_created: float | None
    invoke_count: int  # attempts that reached the function (approximateInvokeCount)
    requeues: int  # throttles and platform errors so far (the backoff's exponent)
    depth: int
    last_result: dict[str, Any] | None  # see ``records.attempt_result``


@dataclasses.dataclass(frozen=True)
class Complete:
    """The event's outcome is final: delete it and queue ``followups`` in the same commit."""

    event_id: int
    followups: tuple[NewEvent, ...] = ()


@dataclasses.dataclass(frozen=True)
class Reschedule:
    """Try again from ``visible_at``, remembering the attempt (the lease is given up)."""

    event_id: int
    visible_at: float
    invoke_count: int
    requeues: int
    last_result: dict[str, Any] | None


Settlement = Complete | Reschedule


@dataclasses.dataclass(frozen=True)
class QueueStats:
    """One function's queue, for ``/_lamina/async``."""

    function_name: str
    depth: int  # events in the queue, in flight included
    in_flight: int  # leased by a dispatcher right now
    delayed: int  # waiting for a retry or backoff time
    oldest_enqueued_at: float


@dataclasses.dataclass(frozen=True)
class EventInvokeConfigRecord:
    function_name: str
    qualifier: str  # "$LATEST", a version or an alias
    config: dict[str, Any]  # MaximumRetryAttempts, MaximumEventAgeInSeconds, DestinationConfig
    last_modified: float  # unix time


class EventQueue(Protocol):
    single_process: bool  # True where one process owns the database (SQLite): see ``release``

    def enqueue(self, events: Sequence[NewEvent]) -> None:
        """Commit ``events`` (all or none)."""

    def claim(self, function_name: str, owner: str, now: float, limit: int,
              lease_until: float) -> list[QueuedEvent]:
        """Lease up to ``limit`` of the function's events visible at ``now`` (oldest due
        first) to ``owner`` until ``lease_until``."""

    def settle(self, owner: str, settlements: Sequence[Settlement]) -> list[bool]:
        """Apply each settlement, in one transaction; ``False`` where ``owner`` had lost the
        lease (another dispatcher took the event over, and will settle it)."""

    def heartbeat(self, owner: str, event_ids: Sequence[int], lease_until: float) -> int:
        """Extend ``owner``'s leases of ``event_ids``; returns how many it still holds."""

    def release(self, owner: str | None, now: float) -> int:
        """Give up ``owner``'s leases (``None``: every lease; only safe where
        ``single_process``), making those events visible at ``now``."""

    def due(self) -> list[tuple[str, float]]:
        """Each function with queued events and the earliest time one becomes visible."""

    def stats(self, now: float) -> list[QueueStats]: ...


class EventInvokeConfigs(Protocol):
    def put_config(self, record: EventInvokeConfigRecord) -> None:
        """Create or replace. Raises ``lamina.store.api.NotFound`` if the function is gone."""

    def update_config(self, function_name: str, qualifier: str,
                      apply: Callable[[dict[str, Any]], dict[str, Any]],
                      now: float) -> EventInvokeConfigRecord:
        """Replace the stored config by ``apply(stored)`` in one transaction. Raises
        ``NotFound`` when there is none (or no such function)."""

    def get_config(self, function_name: str, qualifier: str) -> EventInvokeConfigRecord | None:
        ...

    def delete_config(self, function_name: str, qualifier: str) -> bool: ...

    def list_configs(self, function_name: str, after: str | None,
                     limit: int) -> list[EventInvokeConfigRecord]:
        """Up to ``limit`` configs of a function ordered by qualifier, strictly after
        ``after``."""


@dataclasses.dataclass(frozen=True)
class Resolved:
    """What a delivery needs to know of the function an event names."""

    target: FunctionTarget
    created: float  # when the function was created: a re-created function is another one
    dead_letter_arn: str | None  # DeadLetterConfig.TargetArn of that version


# Resolves (function name or ARN, qualifier) to its runnable target, as Invoke does; raises
# ResourceNotFound when the function (or qualifier) does not exist, another ServiceError when it
# cannot run now.
Resolver = Callable[[str, str | None], Awaitable[Resolved]]
Invoker = Callable[[FunctionTarget, InvokeRequest], Awaitable[InvokeResult]]


class AsyncInvocations(Protocol):
    """What the API layer uses: queue an event, the configs (and forget cached ones), read the
    queue."""

    configs: EventInvokeConfigs

    async def submit(self, event: NewEvent) -> None:
        """Return once the event is committed."""

    def config_changed(self, function_name: str) -> None: ...

    async def stats(self) -> dict[str, Any]: ...
