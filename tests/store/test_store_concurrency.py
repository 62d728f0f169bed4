"""The store's guarantees under real concurrency: threads, each on its own connection (and, with
``two stores``, on separate connection pools, as two processes would be), released together."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

import pytest
from store_records import make_record

from lamina.store.api import LimitExceeded, MetadataStore, RevisionMismatch

T = TypeVar("T")
THREADS = 8


def _race(n: int, work: Callable[[int], T]) -> list[T | BaseException]:
    """Run ``work(i)`` for i < n in n threads that start at the same instant; return each result
    or the exception it raised."""
    barrier = threading.Barrier(n)
    results: list[T | BaseException] = [RuntimeError("did not run")] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except BaseException as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
        assert not t.is_alive(), "a store call hung"
    return results


@pytest.fixture(params=["one store", "two stores"])
def stores(request: pytest.FixtureRequest, open_stores: Callable[[], MetadataStore]):
    first = open_stores()
    second = first if request.param == "one store" else open_stores()
    return [first, second]


def test_only_one_of_racing_replacements_wins(stores: list[MetadataStore]) -> None:
    stores[0].create_function(make_record())

    def replace(i: int) -> str:
        stores[i % 2].replace_function(make_record(revision=f"rev-w{i}", Winner=i), "rev-1")
        return f"rev-w{i}"

    results = _race(THREADS, replace)
    winners = [r for r in results if isinstance(r, str)]
    assert len(winners) == 1
    assert all(isinstance(r, RevisionMismatch) for r in results if not isinstance(r, str))
    got = stores[1].get_function("f")
    assert got is not None and got.revision_id == winners[0]
    assert got.config["Winner"] == int(winners[0].removeprefix("rev-w"))


def test_read_modify_cas_loses_no_update(stores: list[MetadataStore]) -> None:
    """Each thread adds to a counter in the config with retries: the CAS must make the total
    exact, which a lost update would break."""
    stores[0].create_function(make_record(Counter=0))
    per_thread = 10

    def add(i: int) -> int:
        store, retries, done = stores[i % 2], 0, 0
        while done < per_thread:
            current = store.get_function("f")
            assert current is not None
            counter = current.config["Counter"] + 1
            new = make_record(revision=f"rev-{i}-{done}-{retries}", Counter=counter)
            try:
                store.replace_function(new, current.revision_id)
                done += 1
            except RevisionMismatch:
                retries += 1
        return retries

    results = _race(4, add)
    assert all(isinstance(r, int) for r in results), results
    got = stores[0].get_function("f")
    assert got is not None and got.config["Counter"] == 4 * per_thread


def test_racing_reservations_never_pass_the_total(stores: list[MetadataStore]) -> None:
    names = [f"fn-{i}" for i in range(THREADS)]
    for name in names:
        stores[0].create_function(make_record(name))

    def reserve(i: int) -> int:
        stores[i % 2].set_reserved_concurrency(names[i], 30, 100)
        return 30

    results = _race(THREADS, reserve)
    assert sum(1 for r in results if r == 30) == 3  # 3 x 30 fit under 100, a 4th would not
    assert all(isinstance(r, LimitExceeded) for r in results if r != 30)
    assert sum(stores[1].reserved_concurrency().values()) == 90


def test_racing_creates_of_one_name_make_one_function(stores: list[MetadataStore]) -> None:
    def create(i: int) -> int:
        stores[i % 2].create_function(make_record(revision=f"rev-{i}"))
        return i

    results = _race(THREADS, create)
    assert sum(1 for r in results if isinstance(r, int)) == 1
    assert len(stores[0].list_functions(None, 10)) == 1


def test_reads_proceed_while_writes_race(stores: list[MetadataStore]) -> None:
    for i in range(5):
        stores[0].create_function(make_record(f"fn-{i}"))

    def work(i: int) -> int:
        store = stores[i % 2]
        if i % 2:
            return len(store.list_functions(None, 100))
        name = f"new-{i}"
        store.create_function(make_record(name))
        store.set_reserved_concurrency(name, 1, 1000)
        store.delete_function(name)
        return 0

    results = _race(THREADS, work)
    assert all(isinstance(r, int) for r in results), results
    assert len(stores[0].list_functions(None, 100)) == 5
