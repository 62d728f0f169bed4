"""Envelope encryption below the API: sealing, tampering, missing keys, rotation."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from lamina.secrets.datakeys import SqlDataKeyStore
from lamina.secrets.envelope import DecryptionFailed, Envelope
from lamina.secrets.keyring import MasterKeyRing
from lamina.secrets.rotate import rotate
from lamina.secrets.sealed_store import SealedMetadataStore
from lamina.store.api import LATEST, FunctionRecord
from lamina.store.registry import open_store
from lamina.store.sql import SqlMetadataStore

SECRET = "s3cr3t-value-0f-the-test"


@pytest.fixture
def raw(tmp_path: Path) -> Iterator[SqlMetadataStore]:
    store = open_store(f"sqlite:///{tmp_path / 'lamina.db'}")
    yield store  # type: ignore[misc]
    store.close()


def _sealed(raw: SqlMetadataStore, key_file: Path) -> SealedMetadataStore:
    keys = SqlDataKeyStore(raw)
    return SealedMetadataStore(raw, Envelope(MasterKeyRing.open(key_file), keys))


def _record(name: str = "f", **variables: str) -> FunctionRecord:
    config = {"Runtime": "python3.11", "Environment": {"Variables": variables}}
    return FunctionRecord(name, LATEST, config, "0" * 64, 1, "rev-1", "t", 1.0)


def _stored_config(raw: SqlMetadataStore, name: str = "f") -> str:
    with raw.engine.connect() as conn:
        return conn.execute(sa.text("SELECT config FROM function_versions WHERE name = :n"),
                            {"n": name}).scalar_one()


def test_values_are_sealed_in_the_database_and_open_on_read(raw: SqlMetadataStore,
                                                             tmp_path: Path) -> None:
    store = _sealed(raw, tmp_path / "master.key")
    store.create_function(_record(TOKEN=SECRET))
    assert SECRET not in _stored_config(raw)
    assert "Sealed" in json.loads(_stored_config(raw))["Environment"]
    assert store.get_function("f").config["Environment"] == {"Variables": {"TOKEN": SECRET}}
    assert stat.S_IMODE((tmp_path / "master.key").stat().st_mode) == 0o600


def test_tampered_ciphertext_fails_loudly(raw: SqlMetadataStore, tmp_path: Path) -> None:
    store = _sealed(raw, tmp_path / "master.key")
    store.create_function(_record(TOKEN=SECRET))
    config = json.loads(_stored_config(raw))
    sealed = config["Environment"]["Sealed"]
    text = sealed["Ciphertext"]
    sealed["Ciphertext"] = ("B" if text[0] == "A" else "A") + text[1:]
    with raw.engine.begin() as conn:
        conn.execute(sa.text("UPDATE function_versions SET config = :c"),
                     {"c": json.dumps(config)})
    environment = store.get_function("f").config["Environment"]
    assert "Variables" not in environment
    assert environment["Error"]["ErrorCode"] == "KMSAccessDeniedException"
    with pytest.raises(DecryptionFailed):
        store.envelope.open("f", sealed)
    # The ciphertext is not moved to another function either: the name is associated data.
    good = store.envelope.seal("f", {"TOKEN": SECRET})
    with pytest.raises(DecryptionFailed):
        store.envelope.open("g", good)


def test_another_master_key_cannot_open(raw: SqlMetadataStore, tmp_path: Path) -> None:
    _sealed(raw, tmp_path / "master.key").create_function(_record(TOKEN=SECRET))
    stranger = _sealed(raw, tmp_path / "other.key")
    environment = stranger.get_function("f").config["Environment"]
    assert environment["Error"]["ErrorCode"] == "KMSNotFoundException"


def test_rotation_rewraps_every_data_key_and_a_running_reader_keeps_working(
        raw: SqlMetadataStore, tmp_path: Path) -> None:
    key_file = tmp_path / "master.key"
    running = _sealed(raw, key_file)
    for name in ("a", "b", "c"):
        running.create_function(_record(name, TOKEN=f"{SECRET}-{name}"))
    before = json.loads(key_file.read_text())
    ring = MasterKeyRing.open(key_file, create=False)
    new_id, count = rotate(ring, SqlDataKeyStore(raw))
    after = json.loads(key_file.read_text())
    assert count == 3 and after["active"] == new_id and list(after["keys"]) == [new_id]
    assert before["active"] not in after["keys"]
    assert SqlDataKeyStore(raw).masters_in_use() == {new_id}
    # The running server keeps its unwrapped data keys; a fresh one reloads the file.
    assert running.get_function("b").config["Environment"]["Variables"]["TOKEN"].endswith("-b")
    fresh = _sealed(raw, key_file)
    assert fresh.get_function("c").config["Environment"]["Variables"]["TOKEN"].endswith("-c")
    # New data keys, made by the server that loaded the file before the rotation, use the
    # new master key (the database says which one is active).
    running.create_function(_record("d", TOKEN=SECRET))
    assert SqlDataKeyStore(raw).masters_in_use() == {new_id}
    assert fresh.get_function("d").config["Environment"]["Variables"] == {"TOKEN": SECRET}


def test_unopenable_environment_is_written_back_unchanged(raw: SqlMetadataStore,
                                                          tmp_path: Path) -> None:
    import dataclasses

    _sealed(raw, tmp_path / "master.key").create_function(_record(TOKEN=SECRET))
    stored = json.loads(_stored_config(raw))["Environment"]
    stranger = _sealed(raw, tmp_path / "other.key")
    record = stranger.get_function("f")
    stranger.replace_function(dataclasses.replace(record, revision_id="rev-2"), "rev-1")
    assert json.loads(_stored_config(raw))["Environment"] == stored
