"""The ``MetadataStore`` contract, once, run on every backend (see ``conftest.BACKENDS``)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import pytest
from store_records import make_record

from lamina.store.api import (
    LATEST,
    AlreadyExists,
    LimitExceeded,
    MetadataStore,
    NotFound,
    RevisionMismatch,
    StoreError,
)

# -- create / get ---------------------------------------------------------------------------------


def test_created_function_reads_back_equal(store: MetadataStore) -> None:
    record = make_record(Environment={"Variables": {"GREETING": "héllo ✓"}}, Layers=[])
    store.create_function(record)
    assert store.get_function("f") == record
    assert store.get_function("f", LATEST) == record


def test_config_keeps_lambda_json_shape(store: MetadataStore) -> None:
    config = {
        "Timeout": 3,
        "TracingConfig": {"Mode": "PassThrough"},
        "Architectures": ["x86_64"],
        "EphemeralStorage": {"Size": 512},
        "SnapStart": {"ApplyOn": "None", "OptimizationStatus": "Off"},
        "KMSKeyArn": None,
    }
    store.create_function(make_record(**config))
    got = store.get_function("f")
    assert got is not None
    assert {k: got.config[k] for k in config} == config


def test_create_fills_in_created_time_when_missing(store: MetadataStore) -> None:
    before = time.time()
    store.create_function(make_record(created=0.0))
    got = store.get_function("f")
    assert got is not None and before <= got.created <= time.time()


def test_create_twice_raises_already_exists_and_keeps_first(store: MetadataStore) -> None:
    store.create_function(make_record(Description="first"))
    with pytest.raises(AlreadyExists):
        store.create_function(make_record(revision="rev-2", Description="second"))
    got = store.get_function("f")
    assert got is not None and got.config["Description"] == "first"


def test_create_only_starts_at_latest(store: MetadataStore) -> None:
    with pytest.raises(ValueError):
        store.create_function(make_record(version="1"))
    assert store.get_function("f") is None


def test_get_unknown_function_or_version_is_none(store: MetadataStore) -> None:
    assert store.get_function("nope") is None
    store.create_function(make_record())
    assert store.get_function("f", "7") is None


# -- list -----------------------------------------------------------------------------------------


def test_list_is_ordered_by_name_and_pages_strictly_after(store: MetadataStore) -> None:
    names = ["b-fn", "a_fn", "C", "a-fn", "z9", "a"]
    for name in names:
        store.create_function(make_record(name))
    expected = sorted(names)  # bytewise, on every backend
    assert [r.name for r in store.list_functions(None, 100)] == expected
    assert [r.name for r in store.list_functions(None, 2)] == expected[:2]
    assert [r.name for r in store.list_functions(expected[1], 2)] == expected[2:4]
    assert store.list_functions(expected[-1], 10) == []
    assert [r.name for r in store.list_functions("a-", 100)] == [n for n in expected if n > "a-"]
    assert store.list_functions(None, 0) == []


def test_paging_visits_every_function_once(store: MetadataStore) -> None:
    names = [f"fn-{i:03d}" for i in range(23)]
    for name in reversed(names):
        store.create_function(make_record(name))
    seen: list[str] = []
    marker = None
    while page := store.list_functions(marker, 5):
        seen += [r.name for r in page]
        marker = page[-1].name
    assert seen == names


def test_list_returns_latest_records(store: MetadataStore) -> None:
    record = make_record()
    store.create_function(record)
    assert store.list_functions(None, 10) == [record]


# -- replace (compare-and-swap) -------------------------------------------------------------------


def test_replace_with_current_revision_stores_record(store: MetadataStore) -> None:
    store.create_function(make_record())
    new = make_record(revision="rev-2", MemorySize=1024)
    new = dataclasses.replace(new, code_sha256="a" * 64, code_size=99, last_modified="later")
    store.replace_function(new, "rev-1")
    assert store.get_function("f") == new


def test_replace_with_stale_revision_raises_and_changes_nothing(store: MetadataStore) -> None:
    store.create_function(make_record())
    store.replace_function(make_record(revision="rev-2"), "rev-1")
    with pytest.raises(RevisionMismatch):
        store.replace_function(make_record(revision="rev-3", MemorySize=2048), "rev-1")
    got = store.get_function("f")
    assert got is not None and got.revision_id == "rev-2" and got.config["MemorySize"] == 128


def test_replace_unknown_function_or_version_raises_not_found(store: MetadataStore) -> None:
    with pytest.raises(NotFound):
        store.replace_function(make_record(revision="rev-2"), "rev-1")
    store.create_function(make_record())
    with pytest.raises(NotFound):
        store.replace_function(make_record(version="3", revision="rev-2"), "rev-1")


def test_replace_must_change_the_revision(store: MetadataStore) -> None:
    store.create_function(make_record())
    with pytest.raises(ValueError):
        store.replace_function(make_record(revision="rev-1"), "rev-1")


def test_replace_keeps_creation_time(store: MetadataStore) -> None:
    store.create_function(make_record(created=123.0))
    store.replace_function(make_record(revision="rev-2", created=999.0), "rev-1")
    got = store.get_function("f")
    assert got is not None and got.created == 123.0


# -- delete ---------------------------------------------------------------------------------------


def test_delete_returns_what_it_deleted(store: MetadataStore) -> None:
    record = make_record()
    store.create_function(record)
    store.create_function(make_record("other"))
    assert store.delete_function("f") == [record]
    assert store.get_function("f") is None
    assert [r.name for r in store.list_functions(None, 10)] == ["other"]


def test_delete_unknown_raises_not_found(store: MetadataStore) -> None:
    with pytest.raises(NotFound):
        store.delete_function("nope")


def test_delete_takes_settings_along_and_frees_the_name(store: MetadataStore) -> None:
    store.create_function(make_record())
    store.set_reserved_concurrency("f", 10, 100)
    store.delete_function("f")
    assert store.get_reserved_concurrency("f") is None
    assert store.reserved_concurrency() == {}
    store.create_function(make_record(revision="rev-new"))
    assert store.get_reserved_concurrency("f") is None


# -- reserved concurrency -------------------------------------------------------------------------


def test_reservation_set_read_and_removed(store: MetadataStore) -> None:
    store.create_function(make_record("a"))
    store.create_function(make_record("b"))
    assert store.get_reserved_concurrency("a") is None
    store.set_reserved_concurrency("a", 10, 100)
    store.set_reserved_concurrency("b", 0, 100)  # zero is a reservation: the function is off
    assert store.get_reserved_concurrency("a") == 10
    assert store.reserved_concurrency() == {"a": 10, "b": 0}
    store.set_reserved_concurrency("a", None, 100)
    assert store.get_reserved_concurrency("a") is None
    assert store.reserved_concurrency() == {"b": 0}


def test_reservation_for_unknown_function_raises_not_found(store: MetadataStore) -> None:
    with pytest.raises(NotFound):
        store.set_reserved_concurrency("nope", 1, 100)
    with pytest.raises(NotFound):
        store.set_reserved_concurrency("nope", None, 100)
    assert store.get_reserved_concurrency("nope") is None


def test_reservations_cannot_pass_the_total(store: MetadataStore) -> None:
    for name in ("a", "b"):
        store.create_function(make_record(name))
    store.set_reserved_concurrency("a", 60, 100)
    store.set_reserved_concurrency("b", 40, 100)  # exactly the total is allowed
    with pytest.raises(LimitExceeded):
        store.set_reserved_concurrency("b", 41, 100)
    assert store.reserved_concurrency() == {"a": 60, "b": 40}
    # A function's own current value is replaced, not added to.
    store.set_reserved_concurrency("a", 55, 100)
    store.set_reserved_concurrency("a", None, 100)
    store.set_reserved_concurrency("b", 100, 100)
    assert store.reserved_concurrency() == {"b": 100}


def test_negative_reservation_is_refused(store: MetadataStore) -> None:
    store.create_function(make_record())
    with pytest.raises(ValueError):
        store.set_reserved_concurrency("f", -1, 100)


def test_reservation_does_not_touch_the_function_revision(store: MetadataStore) -> None:
    store.create_function(make_record())
    store.set_reserved_concurrency("f", 5, 100)
    got = store.get_function("f")
    assert got is not None and got.revision_id == "rev-1"


# -- lifecycle ------------------------------------------------------------------------------------


def test_calls_after_close_are_errors(store: MetadataStore) -> None:
    store.close()
    with pytest.raises(StoreError):
        store.get_function("f")
    with pytest.raises(StoreError):
        store.create_function(make_record())


def test_two_stores_on_one_database_see_each_other(
    open_stores: Callable[[], MetadataStore],
) -> None:
    first, second = open_stores(), open_stores()
    first.create_function(make_record())
    assert second.get_function("f") == first.get_function("f")
    second.replace_function(make_record(revision="rev-2"), "rev-1")
    with pytest.raises(RevisionMismatch):
        first.replace_function(make_record(revision="rev-3"), "rev-1")
