"""The baseline runtime setup: official ``python -m awslambdaric`` processes behind a minimal
Runtime API server, as the AWS runtime interface emulator runs one (HOST.md measured the
emulator itself at ~1.0 ms per warm invoke, serving one at a time).

    python -m bench.baselines.ric_relay PUBLIC_PORT PROCESSES HANDLER_DIR RIC_DIR

Every request to the public port is one invocation: the body is the event, the answer the
result. Invocations go to whichever runtime waits in ``/next``; with none free they queue.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
from collections import deque

import httptools
import uvloop

JSON = b"content-type: application/json\r\n"


def answer(status: bytes, body: bytes, extra: bytes = b"") -> bytes:
    return (b"HTTP/1.1 " + status + b"\r\n" + JSON + extra +
            b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


class Relay:
    def __init__(self) -> None:
        self.idle: deque[asyncio.Transport] = deque()  # runtimes waiting in /next
        self.queue: deque[tuple[bytes, asyncio.Future[bytes]]] = deque()
        self.pending: dict[str, asyncio.Future[bytes]] = {}
        self.ids = itertools.count()

    def invoke(self, event: bytes) -> asyncio.Future[bytes]:
        future = asyncio.get_running_loop().create_future()
        if self.idle:
            self._send(self.idle.popleft(), event, future)
        else:
            self.queue.append((event, future))
        return future

    def next(self, transport: asyncio.Transport) -> None:
        if self.queue:
            event, future = self.queue.popleft()
            self._send(transport, event, future)
        else:
            self.idle.append(transport)

    def _send(self, transport: asyncio.Transport, event: bytes,
              future: asyncio.Future[bytes]) -> None:
        request_id = f"req-{next(self.ids)}"
        self.pending[request_id] = future
        headers = (b"lambda-runtime-aws-request-id: " + request_id.encode() + b"\r\n"
                   b"lambda-runtime-deadline-ms: 99999999999999\r\n"
                   b"lambda-runtime-invoked-function-arn: arn:aws:lambda:us-east-1:0:function:f\r\n"
                   b"lambda-runtime-trace-id: Root=1-0-0\r\n")
        transport.write(answer(b"200 OK", event, headers))

    def done(self, request_id: str, body: bytes) -> None:
        future = self.pending.pop(request_id, None)
        if future is not None and not future.done():
            future.set_result(body)


class Http(asyncio.Protocol):
    """Just enough HTTP/1.1 for both sides: keep-alive, bodies, requests in order."""

    def __init__(self, relay: Relay, runtime_side: bool) -> None:
        self.relay = relay
        self.runtime_side = runtime_side
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.body = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def _answer(self, future: asyncio.Future[bytes]) -> None:
        if not self.transport.is_closing():
            self.transport.write(answer(b"200 OK", future.result()))

    def on_message_begin(self) -> None:
        self.url, self.body = b"", b""

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        if not self.runtime_side:
            future = self.relay.invoke(self.body or b"{}")
            future.add_done_callback(self._answer)
            return
        path = self.url.decode()
        if path.endswith("/invocation/next"):
            self.relay.next(self.transport)
        elif "/invocation/" in path:
            request_id = path.split("/invocation/")[1].split("/")[0]
            self.relay.done(request_id, self.body)
            self.transport.write(answer(b"202 Accepted", b'{"status":"OK"}'))
        else:
            self.transport.write(answer(b"202 Accepted", b'{"status":"OK"}'))


async def main(port: int, processes: int, handler_dir: str, ric_dir: str) -> None:
    loop = asyncio.get_running_loop()
    relay = Relay()
    runtime_server = await loop.create_server(lambda: Http(relay, True), "127.0.0.1", 0)
    runtime_port = runtime_server.sockets[0].getsockname()[1]
    public = await loop.create_server(lambda: Http(relay, False), "127.0.0.1", port)
    env = {**os.environ, "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{runtime_port}",
           "PYTHONPATH": f"{ric_dir}:{handler_dir}", "_HANDLER": "app.handler"}
    children = [subprocess.Popen([sys.executable, "-m", "awslambdaric", "app.handler"],
                                 env=env, cwd=handler_dir) for _ in range(processes)]
    while len(relay.idle) < processes:
        await asyncio.sleep(0.01)
    print("ready", flush=True)
    try:
        async with public:
            await public.serve_forever()
    finally:
        for child in children:
            child.kill()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]))
