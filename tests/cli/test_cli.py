"""The ``lamina`` conveniences, run as a user runs them, against a real server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from support import FUNCTIONS, LaminaProcess, unique


def lamina(server: LaminaProcess, *args: str,
           timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LAMINA_DATA_DIR": str(server.data_dir)}
    env.pop("LAMINA_PORT", None)
    return subprocess.run([sys.executable, "-m", "lamina", *args], env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def test_deploy_invoke_ls_logs_rm(server: LaminaProcess, lam: Any) -> None:
    name = unique("cli")
    deployed = lamina(server, "deploy", str(FUNCTIONS / "probe"), "--name", name, "--memory",
                      "256", "--timeout", "5", "--env", "MARKER=from-cli")
    assert deployed.returncode == 0, deployed.stderr
    assert f"function:{name}" in deployed.stdout
    config = lam.get_function_configuration(FunctionName=name)
    assert config["MemorySize"] == 256 and config["Timeout"] == 5
    assert config["Environment"]["Variables"] == {"MARKER": "from-cli"}

    done = lamina(server, "invoke", name, "--payload", '{"action": "describe"}')
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["environ"]["MARKER"] == "from-cli"

    failed = lamina(server, "invoke", name, "--payload", '{"action": "fail"}')
    assert failed.returncode == 1
    assert json.loads(failed.stdout)["errorType"] == "ValueError"

    redeployed = lamina(server, "deploy", str(FUNCTIONS / "probe"), "--name", name, "--timeout",
                        "7")
    assert redeployed.returncode == 0 and "updated" in redeployed.stdout
    assert lam.get_function_configuration(FunctionName=name)["Timeout"] == 7

    listed = lamina(server, "ls")
    assert listed.returncode == 0 and name in listed.stdout and "NAME" in listed.stdout

    deadline = time.monotonic() + 10
    while True:
        logs = lamina(server, "logs", name)
        if "REPORT RequestId" in logs.stdout or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert "START RequestId" in logs.stdout and "REPORT RequestId" in logs.stdout

    removed = lamina(server, "rm", name)
    assert removed.returncode == 0
    gone = lamina(server, "invoke", name)
    assert gone.returncode == 1 and "ResourceNotFoundException" in gone.stderr


def test_invoke_payload_from_a_file_and_log_tail(server: LaminaProcess, tmp_path: Path) -> None:
    name = unique("cli")
    assert lamina(server, "deploy", str(FUNCTIONS / "hello"), "--name", name).returncode == 0
    event = tmp_path / "event.json"
    event.write_text('{"name": "file"}')
    done = lamina(server, "invoke", name, "--payload", f"@{event}", "--log")
    assert json.loads(done.stdout) == {"hello": "file"}
    assert "REPORT RequestId" in done.stderr


def test_logs_follow_prints_new_lines(server: LaminaProcess, lam: Any) -> None:
    name = unique("cli")
    assert lamina(server, "deploy", str(FUNCTIONS / "hello"), "--name", name).returncode == 0
    env = {**os.environ, "LAMINA_DATA_DIR": str(server.data_dir)}
    follower = subprocess.Popen([sys.executable, "-m", "lamina", "logs", name, "--follow"],
                                env=env, stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        lam.invoke(FunctionName=name, Payload=b'{"name": "followed"}')
        deadline = time.monotonic() + 15
        seen = ""
        assert follower.stdout is not None
        while "REPORT RequestId" not in seen and time.monotonic() < deadline:
            seen += follower.stdout.readline()
        assert "hello from" in seen and "REPORT RequestId" in seen
    finally:
        follower.terminate()
        follower.wait(10)


def test_every_command_has_help() -> None:
    for command in ("serve", "deploy", "invoke", "ls", "rm", "logs", "emulate"):
        done = subprocess.run([sys.executable, "-m", "lamina", command, "--help"],
                              capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0 and "usage: lamina" in done.stdout, command
