"""How long a fresh ``python -m awslambdaric`` takes from process start to its first
``GET /next``: the cold start of a runtime that is not forked from a template.

    python -m bench.baselines.first_next RIC_DIR HANDLER_DIR SAMPLES
prints one JSON list of milliseconds.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time


def one(ric_dir: str, handler_dir: str) -> float:
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
        data = b""
        while b"/next" not in data:
            data += connection.recv(4096)
        elapsed = (time.perf_counter() - started) * 1000
        connection.close()
        child.kill()
        child.wait()
        return elapsed


if __name__ == "__main__":
    ric, handler, samples = sys.argv[1], sys.argv[2], int(sys.argv[3])
    print(json.dumps([one(ric, handler) for _ in range(samples)]))
