"""``lamina emulate``: the aws-lambda-rie drop-in, with a handler and with a runtime command."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from support import FUNCTIONS, ROOT

INVOKE = "/2015-03-31/functions/function/invocations"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(args: list[str], env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes],
                                                                        str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "lamina", "emulate", "--port", str(port),
                                *args], cwd=ROOT, env={**os.environ, **(env or {})},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}{INVOKE}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process, url
        except OSError:
            if process.poll() is not None:
                output = process.stdout.read().decode() if process.stdout else ""
                raise RuntimeError(output) from None
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("emulator did not start")


def post(url: str, payload: object) -> object:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture
def handler_emulator() -> Iterator[str]:
    process, url = start(["--handler", "app.handler", "--code", str(FUNCTIONS / "probe")])
    yield url
    process.terminate()
    process.wait(10)


def test_emulate_a_python_handler(handler_emulator: str) -> None:
    assert post(handler_emulator, {"action": "echo", "x": 1})["event"] == {"action": "echo", "x": 1}
    error = post(handler_emulator, {"action": "fail", "message": "bad"})
    assert error["errorType"] == "ValueError"


def test_emulate_serves_concurrent_requests(handler_emulator: str) -> None:
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: post(handler_emulator, {"action": "sleep",
                                                                  "seconds": 0.5}), range(4)))
    assert all(result["slept"] == 0.5 for result in results)


def test_emulate_a_runtime_command(awslambdaric_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("def handler(event, context):\n"
                                     "    return {'ric': event['n'] * 2}\n")
    process, url = start(["--code", str(tmp_path), "--", sys.executable, "-m", "awslambdaric",
                          "app.handler"], env={"PYTHONPATH": f"{awslambdaric_dir}:{tmp_path}"})
    try:
        assert post(url, {"n": 21}) == {"ric": 42}
        assert post(url, {"n": 1}) == {"ric": 2}
    finally:
        process.terminate()
        process.wait(10)
