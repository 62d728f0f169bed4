"""The async event queue and event invoke configs on every store backend: ordering, leases that
exclude other dispatchers, settlements that need the lease, and configs that go with their
function."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from store_records import make_record

from lamina.invoke.api import Complete, EventInvokeConfigRecord, NewEvent, Reschedule
from lamina.store.api import MetadataStore, NotFound
from lamina.store.events import SqlEventInvokeConfigs, SqlEventQueue

T0 = 1_800_000_000.0


def _event(name: str = "f", at: float = T0, tag: str = "e", **fields: Any) -> NewEvent:
    return NewEvent(function_name=name, qualifier=None, request_id=tag,
                    invoked_arn=f"arn:aws:lambda:us-east-1:000000000000:function:{name}",
                    trace_id="Root=1-0-0", payload=f'{{"tag": "{tag}"}}'.encode(),
                    enqueued_at=at, **fields)


@pytest.fixture
def queue(store: MetadataStore) -> SqlEventQueue:
    return SqlEventQueue(store)  # type: ignore[arg-type]


def test_claims_are_oldest_due_first_and_leased(queue: SqlEventQueue) -> None:
    queue.enqueue([_event(tag="b", at=T0 + 1), _event(tag="a"), _event(tag="later", at=T0 + 50),
                   _event("g", tag="other")])
    claimed = queue.claim("f", "me", T0 + 10, 10, T0 + 70)
    assert [e.request_id for e in claimed] == ["a", "b"]
    assert claimed[0].payload == b'{"tag": "a"}' and claimed[0].invoke_count == 0
    assert queue.claim("f", "you", T0 + 10, 10, T0 + 70) == []  # leased
    assert [e.request_id for e in queue.claim("f", "you", T0 + 60, 10, T0 + 70)] == ["later"]
    # A lease that lapsed (its owner died) makes the event claimable again.
    assert {e.request_id for e in queue.claim("f", "you", T0 + 71, 10, T0 + 130)} == \
        {"a", "b", "later"}


def test_limit_and_due(queue: SqlEventQueue) -> None:
    queue.enqueue([_event(tag=str(i), at=T0 + i) for i in range(5)] +
                  [_event("g", at=T0 + 30)])
    assert len(queue.claim("f", "me", T0 + 100, 2, T0 + 200)) == 2
    assert sorted(queue.due()) == [("f", T0 + 2), ("g", T0 + 30)]
    assert queue.claim("f", "me", T0, 0, T0 + 1) == []


def test_complete_deletes_and_queues_followups_under_the_lease(queue: SqlEventQueue) -> None:
    queue.enqueue([_event(tag="x"), _event(tag="y")])
    x, y = queue.claim("f", "me", T0, 10, T0 + 60)
    followup = _event("dest", tag="record", depth=1)
    assert queue.settle("me", [Complete(x.id, (followup,))]) == [True]
    assert queue.settle("intruder", [Complete(y.id, (followup,))]) == [False]
    (record,) = queue.claim("dest", "me", T0 + 1, 10, T0 + 60)
    assert record.request_id == "record" and record.depth == 1
    assert [e.request_id for e in queue.claim("f", "me", T0 + 61, 10, T0 + 120)] == ["y"]


def test_reschedule_gives_the_lease_up_and_remembers_the_attempt(queue: SqlEventQueue) -> None:
    queue.enqueue([_event()])
    (event,) = queue.claim("f", "me", T0, 1, T0 + 60)
    result = {"statusCode": 200, "functionError": "Unhandled", "payload": "{}"}
    assert queue.settle("me", [Reschedule(event.id, T0 + 5, 1, 2, result)]) == [True]
    assert queue.claim("f", "me", T0 + 4, 1, T0 + 60) == []
    (again,) = queue.claim("f", "other", T0 + 5, 1, T0 + 60)
    assert (again.invoke_count, again.requeues, again.last_result) == (1, 2, result)
    assert queue.settle("me", [Reschedule(event.id, T0, 0, 0, None)]) == [False]


def test_heartbeat_extends_only_the_owners_listed_leases(queue: SqlEventQueue) -> None:
    queue.enqueue([_event(tag="a"), _event(tag="b")])
    a, b = queue.claim("f", "me", T0, 10, T0 + 60)
    assert queue.heartbeat("me", [a.id], T0 + 600) == 1
    assert queue.heartbeat("other", [b.id], T0 + 600) == 0
    assert [e.request_id for e in queue.claim("f", "x", T0 + 61, 10, T0 + 700)] == ["b"]


def test_release(queue: SqlEventQueue) -> None:
    queue.enqueue([_event(tag="a"), _event(tag="b")])
    queue.claim("f", "me", T0, 1, T0 + 60)
    queue.claim("f", "you", T0, 1, T0 + 60)
    assert queue.release("me", T0 + 1) == 1
    assert [e.request_id for e in queue.claim("f", "x", T0 + 1, 10, T0 + 60)] == ["a"]
    if queue.single_process:
        assert queue.release(None, T0 + 2) == 2
    else:
        with pytest.raises(ValueError):
            queue.release(None, T0 + 2)


def test_stats(queue: SqlEventQueue) -> None:
    queue.enqueue([_event(tag="a"), _event(tag="b", at=T0 + 1), _event(tag="c", at=T0 + 2),
                   _event("g", at=T0 + 3)])
    (a,) = queue.claim("f", "me", T0 + 5, 1, T0 + 60)
    queue.settle("me", [Reschedule(a.id, T0 + 100, 1, 0, None)])
    queue.claim("f", "me", T0 + 5, 1, T0 + 60)
    stats = {s.function_name: s for s in queue.stats(T0 + 6)}
    assert (stats["f"].depth, stats["f"].in_flight, stats["f"].delayed) == (3, 1, 1)
    assert stats["f"].oldest_enqueued_at == T0
    assert stats["g"].depth == 1


def test_two_dispatchers_never_claim_the_same_event(
        open_stores: Callable[[], MetadataStore]) -> None:
    queues = [SqlEventQueue(open_stores()) for _ in range(2)]  # type: ignore[arg-type]
    queues[0].enqueue([_event(tag=str(i)) for i in range(400)])
    claimed: list[list[int]] = [[], [], [], []]
    barrier = threading.Barrier(4)

    def work(index: int) -> None:
        queue = queues[index % 2]
        barrier.wait()
        while batch := queue.claim("f", f"owner-{index}", T0, 7, T0 + 60):
            claimed[index].extend(e.id for e in batch)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    every = [event_id for ids in claimed for event_id in ids]
    assert len(every) == len(set(every)) == 400


def test_event_invoke_configs(store: MetadataStore) -> None:
    configs = SqlEventInvokeConfigs(store)  # type: ignore[arg-type]
    record = EventInvokeConfigRecord("f", "$LATEST", {"MaximumRetryAttempts": 1}, T0)
    with pytest.raises(NotFound):
        configs.put_config(record)  # no such function
    store.create_function(make_record("f"))
    configs.put_config(record)
    configs.put_config(EventInvokeConfigRecord("f", "live", {"MaximumRetryAttempts": 0}, T0))
    assert configs.get_config("f", "$LATEST") == record
    updated = configs.update_config("f", "$LATEST",
                                    lambda c: {**c, "MaximumEventAgeInSeconds": 60}, T0 + 1)
    assert updated.config == {"MaximumRetryAttempts": 1, "MaximumEventAgeInSeconds": 60}
    assert configs.get_config("f", "$LATEST") == updated
    with pytest.raises(NotFound):
        configs.update_config("f", "7", lambda c: c, T0)
    assert [c.qualifier for c in configs.list_configs("f", None, 10)] == ["$LATEST", "live"]
    assert [c.qualifier for c in configs.list_configs("f", "$LATEST", 10)] == ["live"]
    assert configs.delete_config("f", "live") and not configs.delete_config("f", "live")
    store.delete_function("f")
    store.create_function(make_record("f"))
    assert configs.get_config("f", "$LATEST") is None  # they went with the function
