"""The catalog's stores (versions, aliases, layers, tags, provisioned configs) on every backend."""

from __future__ import annotations

import dataclasses

import pytest
from store_records import make_record

from lamina.store.aliases import AliasRecord, SqlAliasStore
from lamina.store.api import (
    LATEST,
    AlreadyExists,
    InUse,
    LimitExceeded,
    MetadataStore,
    NotFound,
    RevisionMismatch,
)
from lamina.store.layers import LayerVersionRecord, SqlLayerStore, StatementNotFound
from lamina.store.provisioned import ProvisionedRecord, SqlProvisionedStore
from lamina.store.tags import SqlTagStore


def _publish(store: MetadataStore, name: str = "f", last: str | None = None, **config: object):
    latest = store.get_function(name)
    assert latest is not None
    record = dataclasses.replace(latest, config={**latest.config, **config}, revision_id="v")
    return store.publish_version(record, latest.revision_id, last)


# -- versions -------------------------------------------------------------------------------------


def test_versions_are_numbered_from_one_and_listed_after_latest(store: MetadataStore) -> None:
    store.create_function(make_record())
    assert _publish(store).version == "1"
    assert _publish(store, last="1", Description="two").version == "2"
    assert [r.version for r in store.list_versions("f")] == [LATEST, "1", "2"]
    assert store.get_function("f", "2").config["Description"] == "two"


def test_publish_guards_latest_revision_and_a_concurrent_publish(store: MetadataStore) -> None:
    store.create_function(make_record())
    latest = store.get_function("f")
    with pytest.raises(RevisionMismatch):
        store.publish_version(latest, "stale", None)
    store.publish_version(latest, latest.revision_id, None)
    with pytest.raises(RevisionMismatch):  # someone published "1" since the caller looked
        store.publish_version(latest, latest.revision_id, None)
    assert [r.version for r in store.list_versions("f")] == [LATEST, "1"]
    with pytest.raises(NotFound):
        store.publish_version(make_record("ghost"), "rev-1", None)


def test_version_numbers_are_never_reused(store: MetadataStore) -> None:
    store.create_function(make_record())
    _publish(store)
    _publish(store, last="1")
    store.delete_version("f", "2")
    assert _publish(store, last="1").version == "3"
    with pytest.raises(NotFound):
        store.delete_version("f", "2")


# -- aliases --------------------------------------------------------------------------------------


def _alias(version: str = "1", **kwargs: object) -> AliasRecord:
    return AliasRecord("f", "live", version, "", "a-1", **kwargs)  # type: ignore[arg-type]


def test_alias_round_trip_and_revision_guard(store: MetadataStore) -> None:
    aliases = SqlAliasStore(store)  # type: ignore[arg-type]
    store.create_function(make_record())
    _publish(store)
    _publish(store, last="1")
    aliases.create(_alias(extra_version="2", extra_weight=0.25))
    got = aliases.get("f", "live")
    assert got is not None and got.routing == {"2": 0.25}
    with pytest.raises(AlreadyExists):
        aliases.create(_alias())
    with pytest.raises(RevisionMismatch):
        aliases.replace(dataclasses.replace(got, version="2", revision_id="a-2"), "stale")
    aliases.replace(dataclasses.replace(got, version="2", extra_version=None,
                                        extra_weight=None, revision_id="a-2"), "a-1")
    assert aliases.get("f", "live").versions() == ["2"]
    assert [a.name for a in aliases.list("f")] == ["live"]


def test_alias_needs_existing_versions(store: MetadataStore) -> None:
    aliases = SqlAliasStore(store)  # type: ignore[arg-type]
    store.create_function(make_record())
    with pytest.raises(NotFound):
        aliases.create(_alias("7"))
    with pytest.raises(NotFound):
        aliases.create(AliasRecord("ghost", "live", "1", "", "a"))
    assert aliases.list("f") == []


def test_a_version_an_alias_routes_to_cannot_be_deleted(store: MetadataStore) -> None:
    aliases = SqlAliasStore(store)  # type: ignore[arg-type]
    store.create_function(make_record())
    _publish(store)
    _publish(store, last="1")
    aliases.create(_alias(extra_version="2", extra_weight=0.5))
    for version in ("1", "2"):
        with pytest.raises(InUse):
            store.delete_version("f", version)
    assert [r.version for r in store.list_versions("f")] == [LATEST, "1", "2"]
    aliases.delete("f", "live")
    store.delete_version("f", "2")
    with pytest.raises(NotFound):
        aliases.delete("f", "live")


def test_deleting_the_function_takes_aliases_tags_and_configs(store: MetadataStore) -> None:
    aliases = SqlAliasStore(store)  # type: ignore[arg-type]
    tags = SqlTagStore(store)  # type: ignore[arg-type]
    provisioned = SqlProvisionedStore(store)  # type: ignore[arg-type]
    store.create_function(make_record())
    _publish(store)
    aliases.create(_alias())
    tags.tag("f", {"team": "a"}, 50)
    provisioned.put(ProvisionedRecord("f", "live", 2, "t"))
    store.delete_function("f")
    assert aliases.list("f") == [] and tags.get("f") == {} and provisioned.list("f") == []
    store.create_function(make_record())
    assert _publish(store).version == "1"  # a new function counts afresh


# -- tags and provisioned configs -----------------------------------------------------------------


def test_tags_add_overwrite_remove_and_limit(store: MetadataStore) -> None:
    tags = SqlTagStore(store)  # type: ignore[arg-type]
    store.create_function(make_record())
    tags.tag("f", {"a": "1", "b": "2"}, 3)
    tags.tag("f", {"a": "x"}, 3)
    with pytest.raises(LimitExceeded):
        tags.tag("f", {"c": "3", "d": "4"}, 3)
    tags.untag("f", ["b", "unknown"])
    assert tags.get("f") == {"a": "x"}
    with pytest.raises(NotFound):
        tags.tag("ghost", {"a": "1"}, 3)


def test_provisioned_configs_put_replace_list_delete(store: MetadataStore) -> None:
    provisioned = SqlProvisionedStore(store)  # type: ignore[arg-type]
    store.create_function(make_record())
    provisioned.put(ProvisionedRecord("f", "1", 2, "t1"))
    provisioned.put(ProvisionedRecord("f", "1", 5, "t2"))
    assert provisioned.get("f", "1") == ProvisionedRecord("f", "1", 5, "t2")
    assert [p.qualifier for p in provisioned.list()] == ["1"]
    assert provisioned.delete("f", "1") and not provisioned.delete("f", "1")
    with pytest.raises(NotFound):
        provisioned.put(ProvisionedRecord("ghost", "1", 1, "t"))


# -- layers ---------------------------------------------------------------------------------------


def _layer(name: str = "lib") -> LayerVersionRecord:
    return LayerVersionRecord(name, 0, "d", "a" * 64, 10, 20, ("python3.11",), ("x86_64",),
                              None, "2026-11-25T10:00:00.000+0000")


def test_layer_versions_count_up_and_never_reuse(store: MetadataStore) -> None:
    layers = SqlLayerStore(store)  # type: ignore[arg-type]
    assert layers.publish(_layer()).version == 1
    assert layers.publish(_layer()).version == 2
    assert layers.delete("lib", 2) and not layers.delete("lib", 2)
    assert layers.publish(_layer()).version == 3
    assert [v.version for v in layers.versions("lib")] == [3, 1]
    assert layers.get("lib", 1).runtimes == ("python3.11",)
    assert layers.get("lib", 2) is None


def test_layer_policy_statements(store: MetadataStore) -> None:
    layers = SqlLayerStore(store)  # type: ignore[arg-type]
    layers.publish(_layer())
    layers.add_statement("lib", 1, {"Sid": "a"}, None, "r1")
    with pytest.raises(AlreadyExists):
        layers.add_statement("lib", 1, {"Sid": "a"}, None, "r2")
    with pytest.raises(RevisionMismatch):
        layers.add_statement("lib", 1, {"Sid": "b"}, "stale", "r2")
    layers.add_statement("lib", 1, {"Sid": "b"}, "r1", "r2")
    assert layers.get("lib", 1).policy_revision == "r2"
    with pytest.raises(StatementNotFound):
        layers.remove_statement("lib", 1, "zzz", None, "r3")
    layers.remove_statement("lib", 1, "a", None, "r3")
    assert [s["Sid"] for s in layers.get("lib", 1).policy] == ["b"]
    layers.remove_statement("lib", 1, "b", None, "r4")
    assert layers.get("lib", 1).policy == () and layers.get("lib", 1).policy_revision is None
    with pytest.raises(NotFound):
        layers.add_statement("lib", 9, {"Sid": "a"}, None, "r")
