"""How long a fresh ``python -m awslambdaric`` takes from process start to its first
``GET /next``: the cold start of a runtime that is not forked from a template.

    python -m bench.baselines.first_next RIC_DIR HANDLER_DIR SAMPLES
prints one JSON list of milliseconds.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator


@contextlib.contextmanager
def started_awslambdaric(ric_dir: str, handler_dir: str) -> Iterator[tuple[int, float]]:
    """A fresh ``python -m awslambdaric`` that has just sent its first ``/next``:
    yields (its pid, milliseconds from process start to that request)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        env = {**os.environ, "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}",
               "PYTHONPATH": f"{ric_dir}:{handler_dir}"}
        started = time.perf_counter()
        child = subprocess.Popen([sys.executable, "-m", "awslambdaric", "app.handler"], env=env,
                                 cwd=handler_dir, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        connection, _ = listener.accept()
        try:
            data = b""
            while b"/next" not in data:
                data += connection.recv(4096)
            yield child.pid, (time.perf_counter() - started) * 1000
        finally:
            connection.close()
            child.kill()
            child.wait()


def one(ric_dir: str, handler_dir: str) -> float:
    with started_awslambdaric(ric_dir, handler_dir) as (_, elapsed):
        return elapsed


if __name__ == "__main__":
    ric, handler, samples = sys.argv[1], sys.argv[2], int(sys.argv[3])
    print(json.dumps([one(ric, handler) for _ in range(samples)]))
