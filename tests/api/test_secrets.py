"""Encrypted environment variables through a real server: nothing readable at rest, key
rotation while serving, tampering fails loudly."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import ROOT, LaminaProcess, create, function_zip, invoke, wait_ready

CODE = function_zip("versioned", extra={"mark.txt": "secrets"})


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LaminaProcess]:
    """A server whose master key file lies outside its data dir."""
    base = tmp_path_factory.mktemp("secrets")
    process = LaminaProcess(base / "data",
                            extra_env={"LAMINA_MASTER_KEY_FILE": str(base / "keys" / "mk.json")})
    yield process.start()
    process.stop()


def marker() -> str:
    return f"marker-{uuid.uuid4().hex}"


def files_containing(data_dir: Path, needle: str) -> list[str]:
    """Every file under the data dir whose bytes contain ``needle`` (WAL and logs included)."""
    found = []
    for path in sorted(data_dir.rglob("*")):
        if path.is_file() and not path.is_symlink() and needle.encode() in path.read_bytes():
            found.append(str(path.relative_to(data_dir)))
    return found


def rotate(server: LaminaProcess) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "lamina", "keys", "rotate"], cwd=ROOT, capture_output=True,
        text=True, timeout=60, check=False,
        env={**os.environ, "LAMINA_DATA_DIR": str(server.data_dir),
             **server.extra_env})
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_no_plaintext_value_anywhere_in_the_data_dir(keyed: LaminaProcess) -> None:
    lam = keyed.client()
    first, second = marker(), marker()
    name = create(lam, CODE, Environment={"Variables": {"APP_SECRET": first}},
                  KMSKeyArn="arn:aws:kms:us-east-1:000000000000:key/1234abcd")
    assert invoke(lam, name)[1]["variables"] == {"APP_SECRET": first}
    config = lam.get_function_configuration(FunctionName=name)
    assert config["Environment"]["Variables"] == {"APP_SECRET": first}
    assert config["KMSKeyArn"] == "arn:aws:kms:us-east-1:000000000000:key/1234abcd"
    assert files_containing(keyed.data_dir, first) == []
    lam.update_function_configuration(FunctionName=name,
                                      Environment={"Variables": {"APP_SECRET": second}})
    wait_ready(lam, name)
    lam.publish_version(FunctionName=name)
    assert invoke(lam, name, Qualifier="1")[1]["variables"] == {"APP_SECRET": second}
    assert files_containing(keyed.data_dir, first) == []
    assert files_containing(keyed.data_dir, second) == []
    keyed.stop()
    keyed.start()
    lam = keyed.client()
    assert invoke(lam, name)[1]["variables"] == {"APP_SECRET": second}
    assert files_containing(keyed.data_dir, second) == []
    assert not (keyed.data_dir / "master.key").exists()
    key_file = Path(keyed.extra_env["LAMINA_MASTER_KEY_FILE"])
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_rotation_while_serving_then_after_a_restart(keyed: LaminaProcess) -> None:
    lam = keyed.client()
    secret = marker()
    name = create(lam, CODE, Environment={"Variables": {"APP_SECRET": secret}})
    key_file = Path(keyed.extra_env["LAMINA_MASTER_KEY_FILE"])
    before = json.loads(key_file.read_text())["active"]
    out = rotate(keyed)
    after = json.loads(key_file.read_text())
    assert after["active"] != before and list(after["keys"]) == [after["active"]]
    assert "re-wrapped" in out
    # The running server: warm, cold (a new environment of an updated function) and new keys.
    assert invoke(lam, name)[1]["variables"] == {"APP_SECRET": secret}
    lam.update_function_configuration(FunctionName=name, Description="after rotation")
    wait_ready(lam, name)
    assert invoke(lam, name)[1]["variables"] == {"APP_SECRET": secret}
    other = create(lam, CODE, Environment={"Variables": {"APP_SECRET": secret}})
    keyed.stop()
    keyed.start()
    lam = keyed.client()
    for function in (name, other):
        assert invoke(lam, function)[1]["variables"] == {"APP_SECRET": secret}
    assert files_containing(keyed.data_dir, secret) == []


def test_tampered_ciphertext_fails_loudly(keyed: LaminaProcess) -> None:
    lam = keyed.client()
    name = create(lam, CODE, Environment={"Variables": {"APP_SECRET": marker()}})
    keyed.stop()
    database = sqlite3.connect(keyed.data_dir / "lamina.db")
    with database:
        (text,) = database.execute("SELECT config FROM function_versions WHERE name = ?",
                                   (name,)).fetchone()
        config = json.loads(text)
        sealed = config["Environment"]["Sealed"]
        raw = bytearray(base64.b64decode(sealed["Ciphertext"]))
        raw[len(raw) // 2] ^= 0x01  # one bit
        sealed["Ciphertext"] = base64.b64encode(bytes(raw)).decode()
        database.execute("UPDATE function_versions SET config = ? WHERE name = ?",
                         (json.dumps(config), name))
    database.close()
    keyed.start()
    lam = keyed.client()
    environment = lam.get_function_configuration(FunctionName=name)["Environment"]
    assert "Variables" not in environment
    assert environment["Error"]["ErrorCode"] == "KMSAccessDeniedException"
    with pytest.raises(lam.exceptions.KMSAccessDeniedException) as failure:
        invoke(lam, name)
    assert failure.value.response["ResponseMetadata"]["HTTPStatusCode"] == 502
    # Changing something else keeps the (broken) ciphertext rather than dropping it...
    lam.update_function_configuration(FunctionName=name, Description="still broken")
    wait_ready(lam, name)
    with pytest.raises(lam.exceptions.KMSAccessDeniedException):
        invoke(lam, name)
    # ...and new variables replace it.
    lam.update_function_configuration(FunctionName=name,
                                      Environment={"Variables": {"APP_SECRET": "fresh"}})
    wait_ready(lam, name)
    assert invoke(lam, name)[1]["variables"] == {"APP_SECRET": "fresh"}
