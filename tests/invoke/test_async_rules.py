"""The rules of async delivery as plain functions: Lambda's delays, the async share of
concurrency, the invocation record, destination ARNs, group commit."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

import pytest

from lamina.invoke.batching import GroupCommit
from lamina.invoke.destinations import parse_function_arn
from lamina.invoke.fairness import AsyncConcurrency
from lamina.invoke.policy import EventPolicy, RetryPolicy
from lamina.invoke.records import invocation_record, record_timestamp


def test_lambdas_delays() -> None:
    policy = RetryPolicy(60)
    assert [policy.function_error_delay(n) for n in (1, 2)] == [60, 120]
    assert [policy.requeue_delay(n) for n in range(1, 11)] == \
        [1, 2, 4, 8, 16, 32, 64, 128, 256, 300]
    assert policy.next_try(1000, 60, 1030) == 1030  # never past the event's expiry
    assert policy.next_try(1000, 10, 1030) == 1010


def test_event_policy_defaults() -> None:
    default = EventPolicy.of(None, 21600)
    assert (default.max_retries, default.max_age_s, default.on_success, default.on_failure) == \
        (2, 21600, None, None)
    configured = EventPolicy.of({"MaximumRetryAttempts": 0, "MaximumEventAgeInSeconds": 60,
                                 "DestinationConfig": {"OnSuccess": {}, "OnFailure": {
                                     "Destination": "arn:x"}}}, 21600)
    assert (configured.max_retries, configured.max_age_s, configured.on_success,
            configured.on_failure) == (0, 60, None, "arn:x")
    assert RetryPolicy.retries_left(2, default) and not RetryPolicy.retries_left(3, default)


def test_async_share_of_concurrency() -> None:
    shares = AsyncConcurrency(share=0.8, max_per_function=100, account_limit=1000)
    shares.set_reserved({"zero": 0, "one": 1, "five": 5, "ten": 10})
    assert [shares.limit(n) for n in ("zero", "one", "five", "ten")] == [0, 1, 4, 8]
    assert shares.blocked("zero") and not shares.blocked("one")
    assert shares.limit("free") == 100  # capped per function
    small = AsyncConcurrency(share=0.8, max_per_function=100, account_limit=20)
    assert small.limit("free") == 16  # 0.8 of the unreserved pool
    unreserved = [small.started("a") for _ in range(10)] + [small.started("b") for _ in range(6)]
    assert all(unreserved) and small.room("a") == 0 and small.room("c") == 0  # pool used up
    small.finished("b", True)
    assert small.room("c") == 1


def test_throttles_halve_the_window_and_successes_grow_it() -> None:
    shares = AsyncConcurrency(share=1.0, max_per_function=100, account_limit=1000)
    shares.set_reserved({"f": 8})
    tokens = [shares.started("f") for _ in range(8)]
    shares.finished("f", tokens.pop(), throttled=True)
    assert shares.room("f") == 0  # the window is 4 now, and 7 are still running
    for _ in range(7):
        shares.finished("f", tokens.pop())
    assert shares.room("f") == 8  # grew back to the limit, one success at a time


def test_invocation_record_shape() -> None:
    assert record_timestamp(1_800_000_000.1234) == "2027-01-15T08:00:00.123Z"
    record = json.loads(invocation_record(
        request_id="r", function_arn="arn:f:$LATEST", condition="EventAgeExceeded",
        invoke_count=0, request_payload=b'"text"', result=None, now=0))
    assert record["requestPayload"] == "text"
    assert record["responseContext"] == {"statusCode": 0, "executedVersion": ""}
    assert record["responsePayload"] is None


@pytest.mark.parametrize(("arn", "parsed"), [
    ("arn:aws:lambda:us-east-1:000000000000:function:f", ("f", None)),
    ("arn:aws:lambda:us-east-1:000000000000:function:f:$LATEST", ("f", "$LATEST")),
    ("arn:aws:lambda:eu-west-1:123456789012:function:my-fn_2:live", ("my-fn_2", "live")),
    ("arn:aws:sqs:us-east-1:000000000000:queue", None),
    ("arn:aws:lambda:us-east-1:000000000000:layer:l", None),
    ("f", None),
])
def test_function_arns(arn: str, parsed: tuple[str, str | None] | None) -> None:
    assert parse_function_arn(arn) == parsed


def test_group_commit_batches_concurrent_callers_and_shares_failures() -> None:
    batches: list[list[int]] = []

    def apply(items: Sequence[int]) -> list[int]:
        if -1 in items:
            raise RuntimeError("disk full")
        batches.append(list(items))
        return [item * 2 for item in items]

    async def run() -> list[int]:
        commit: GroupCommit[int, int] = GroupCommit(apply, max_batch=50)
        results = await asyncio.gather(*(commit.submit(i) for i in range(120)))
        with pytest.raises(RuntimeError):
            await commit.submit(-1)
        await commit.drain()
        return list(results)

    assert asyncio.run(run()) == [i * 2 for i in range(120)]
    assert len(batches) <= 4 and sum(len(b) for b in batches) == 120
