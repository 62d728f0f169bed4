"""The server's Python per warm invoke, without the kernel: a steady yardstick for the hot path.

    .venv/bin/python -m bench.hot_path [--invokes 20000] [--rounds 4]

The ``make bench`` rows measure the server at the end of a socket, where this VM's noise moves
a figure by ±5%; the changes worth making to the hot path are worth 1 to 5 µs of ~60. This runs a
real server in-process (a sandboxed hello world, its environment warm) and drives one invoke
after another through the server's own protocol objects with recording transports instead of
sockets: the client's ``POST .../invocations`` in, the event out to the runtime, the runtime's
response and next long poll in (the bytes lamina's bootstrap writes), the answer out to the
client, then one turn of the loop (END/REPORT lines, the log store). Every part of lamina on
that path runs; only the system calls are left out. It prints the minimum over rounds of the
µs per invoke, split into those three parts, beside its baseline: the same client bytes
answered by a bare ``HttpServer`` with a fixed response (the HTTP layer alone).
Run as root (the sandbox).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import tempfile
import time
from typing import Any

import uvloop

from bench.harness import (
    HELLO,
    client,
    create_function,
    read_credentials,
    signed_headers,
    zip_source,
)
from lamina import settings as lamina_settings
from lamina.api.app import LaminaApp
from lamina.http.server import HttpProtocol, HttpServer
from lamina.http.types import Response
from lamina.server import serve

PATH = "/2015-03-31/functions/hello/invocations"
NEXT = b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
RESULT = b'{"ok": true}'


class RecordingTransport:
    """A transport that keeps what is written: no socket, no system call."""

    def __init__(self) -> None:
        self.written: list[bytes] = []

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 50000) if name == "peername" else default

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def close(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False


def signed_request(endpoint: str, key: str, secret: str) -> bytes:
    """The bytes of a signed Invoke of ``hello``, as a client sends them."""
    host = endpoint.split("//", 1)[1]
    headers = "".join(f"{name}: {value}\r\n"
                      for name, value in signed_headers(endpoint, key, secret, PATH).items())
    head = f"POST {PATH} HTTP/1.1\r\nHost: {host}\r\n{headers}Content-Length: 2\r\n\r\n"
    return head.encode() + b"{}"


def deploy(endpoint: str, key: str, secret: str) -> None:
    lam = client(endpoint, key, secret)
    create_function(lam, "hello", zip_source(HELLO))
    lam.invoke(FunctionName="hello", Payload=b"{}")  # one warm environment


async def measure_lamina(app: LaminaApp, raw: bytes, invokes: int,
                         rounds: int) -> dict[str, float]:
    pool = next(p for p in app.context.engine.pools.values() if p.target.name == "hello")
    env = pool.idle[-1]
    (runtime,) = list(env._server.connections)  # the runtime's own connection
    runtime.transport = RecordingTransport()  # the runtime process keeps waiting, untouched
    client = HttpProtocol(HttpServer(app.handle))
    client_out = RecordingTransport()
    client.connection_made(client_out)  # type: ignore[arg-type]
    clock = time.perf_counter
    best: dict[str, float] = {}
    for round_number in range(rounds + 1):  # the first round warms up
        spent = {"client request": 0.0, "runtime turn": 0.0, "loop turn": 0.0}
        client_out.written.clear()
        for _ in range(invokes):
            start = clock()
            client.data_received(raw)
            handed = clock()
            request_id = env.current.request.request_id.encode()
            runtime.data_received(
                b"POST /2018-06-01/runtime/invocation/" + request_id + b"/response HTTP/1.1\r\n"
                b"Host: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: "
                + str(len(RESULT)).encode() + b"\r\n\r\n" + RESULT + NEXT)
            answered = clock()
            await asyncio.sleep(0)
            spent["client request"] += handed - start
            spent["runtime turn"] += answered - handed
            spent["loop turn"] += clock() - answered
        if len(client_out.written) != invokes or b" 200 OK" not in client_out.written[-1]:
            raise SystemExit(f"the invokes did not all answer 200: {client_out.written[-1:]}")
        if round_number:
            for part, seconds in spent.items():
                best[part] = min(best.get(part, 1e9), seconds * 1e6 / invokes)
    best["whole invoke"] = sum(best.values())
    return best


def measure_bare_http(raw: bytes, invokes: int, rounds: int) -> float:
    answer = Response(200, [("Content-Type", "application/json")], RESULT)
    protocol = HttpProtocol(HttpServer(lambda request: answer))
    out = RecordingTransport()
    protocol.connection_made(out)  # type: ignore[arg-type]
    best = 1e9
    for _ in range(rounds + 1):
        start = time.perf_counter()
        for _ in range(invokes):
            protocol.data_received(raw)
        best = min(best, (time.perf_counter() - start) * 1e6 / invokes)
        out.written.clear()
    return best


async def main(data: str, invokes: int, rounds: int) -> None:
    settings = lamina_settings.load(environ={
        "LAMINA_PORT": "0", "LAMINA_DATA_DIR": f"{data}/d", "LAMINA_SPARES": "2",
        "LAMINA_LOG_LEVEL": "WARNING"})
    ready: asyncio.Future[LaminaApp] = asyncio.get_running_loop().create_future()
    server = asyncio.get_running_loop().create_task(serve(settings, ready.set_result))
    app = await ready
    endpoint = json.loads((settings.data_dir / "server.json").read_text())["endpoint"]
    key, secret = read_credentials(settings.data_dir)
    await asyncio.get_running_loop().run_in_executor(None, deploy, endpoint, key, secret)
    raw = signed_request(endpoint, key, secret)
    lamina = await measure_lamina(app, raw, invokes, rounds)
    bare = measure_bare_http(raw, invokes, rounds)
    print(f"\nThe server's Python per warm invoke, min of {rounds} rounds of {invokes:,}:\n")
    print("| part | µs per invoke |")
    print("|---|---|")
    for part, micros in lamina.items():
        print(f"| {part} | {micros:.1f} |")
    print(f"| baseline: the same request answered by a bare HttpServer | {bare:.1f} |")
    server.cancel()


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invokes", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=4)
    options = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the server sandboxes the function")
    data_dir = tempfile.mkdtemp(prefix="lamina-hot-path-")
    try:
        uvloop.run(main(data_dir, options.invokes, options.rounds))
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    os._exit(0)  # the server's children and threads go with it; nothing here needs a tidy end


if __name__ == "__main__":
    run()
