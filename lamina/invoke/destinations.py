"""Where an event's outcome goes: OnSuccess / OnFailure destinations and the dead-letter target.

lamina's destinations are lamina functions, named by ARN. A destination is invoked
asynchronously, as Lambda does it: its record becomes a new event in the same durable queue,
committed together with the deletion of the event it reports on, and from there it has the
destination's own retries and destinations. A destination that no longer exists costs only its
own record (a logged drop with the reason); a chain of destinations that loops back on itself
is cut after ``MAX_DEPTH`` hops, as Lambda's recursive loop detection cuts such chains.
"""

from __future__ import annotations

import dataclasses
import re
import uuid

from lamina.errors import ResourceNotFound, ServiceError
from lamina.invoke.api import NewEvent, QueuedEvent, Resolver
from lamina.invoke.policy import EventPolicy

MAX_DEPTH = 16

FUNCTION_ARN = re.compile(
    r"^arn:aws[a-zA-Z-]*:lambda:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):function:"
    r"(?P<name>[a-zA-Z0-9_-]{1,64})(?::(?P<qualifier>\$LATEST|[a-zA-Z0-9_-]{1,128}))?$")


@dataclasses.dataclass(frozen=True)
class Route:
    """One delivery an outcome calls for."""

    kind: str  # "OnSuccess", "OnFailure" or "DeadLetterConfig", for messages
    arn: str
    payload: bytes


@dataclasses.dataclass(frozen=True)
class Drop:
    """A route that could not be followed, and why (for the log)."""

    route: Route
    reason: str


def parse_function_arn(arn: str) -> tuple[str, str | None] | None:
    """``(name, qualifier)`` of a Lambda function ARN, or ``None`` for anything else."""
    match = FUNCTION_ARN.match(arn)
    if match is None:
        return None
    return match["name"], match["qualifier"]


def routes_for(success: bool, policy: EventPolicy, dead_letter_arn: str | None,
               record: bytes, original_payload: bytes) -> list[Route]:
    """A success goes to OnSuccess; a final failure to OnFailure (the record) and to the
    dead-letter target (the original event, as Lambda sends it to a dead-letter queue)."""
    if success:
        return [Route("OnSuccess", policy.on_success, record)] if policy.on_success else []
    routes = []
    if policy.on_failure:
        routes.append(Route("OnFailure", policy.on_failure, record))
    if dead_letter_arn:
        routes.append(Route("DeadLetterConfig", dead_letter_arn, original_payload))
    return routes


async def follow(routes: list[Route], event: QueuedEvent, resolve: Resolver,
                 now: float) -> tuple[list[NewEvent], list[Drop]]:
    """The events to queue for ``routes``, and the routes that lead nowhere."""
    followups: list[NewEvent] = []
    drops: list[Drop] = []
    for route in routes:
        parsed = parse_function_arn(route.arn)
        if parsed is None:
            drops.append(Drop(route, f"{route.arn} is not a lamina function"))
            continue
        if event.depth + 1 > MAX_DEPTH:
            drops.append(Drop(route, f"destinations looped {MAX_DEPTH} times; the chain stops"))
            continue
        name, qualifier = parsed
        try:
            # By the full ARN: one of another region or account is no function of ours.
            resolved = await resolve(route.arn, None)
            created: float | None = resolved.created
        except ResourceNotFound:
            drops.append(Drop(route, f"destination {route.arn} does not exist"))
            continue
        except ServiceError:
            created = None  # it exists but cannot run now: its own queue will retry it
        followups.append(NewEvent(
            function_name=name, qualifier=qualifier, request_id=str(uuid.uuid4()),
            invoked_arn=route.arn, trace_id=event.trace_id, payload=route.payload,
            enqueued_at=now, function_created=created, depth=event.depth + 1))
    return followups, drops
