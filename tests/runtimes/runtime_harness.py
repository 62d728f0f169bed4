"""A tiny Runtime API server and runtime processes for the bootstrap tests.

lamina's real Runtime API (``lamina/engine/runtime_api.py``) is written
elsewhere; these tests need only the part a runtime sees, so this file has
the smallest server that behaves as ``shared/spec/runtime-api.md`` says:
``GET .../next`` blocks until an event is queued and always carries a
``Content-Type``; posts are answered 202 (403 for an unknown request id);
one keep-alive connection may carry pipelined requests, answered in order;
answers produced while handling one read go out in one write (so a 202 and
the next event can share a segment, as the real server does).

The server runs on its own event loop in a thread; tests call its blocking,
thread-safe methods. Every runtime runs as a real subprocess whose stdout and
stderr share one pipe, as in an environment.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import subprocess
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
PYTHON_BOOTSTRAP = REPO / "lamina" / "runtimes" / "python" / "lamina_bootstrap.py"
NODE_BOOTSTRAP = REPO / "lamina" / "runtimes" / "node" / "index.mjs"
NODE = "/usr/bin/node"

FUNCTION_ARN = "arn:aws:lambda:us-east-1:000000000000:function:fn"


@dataclass
class Outcome:
    """What a runtime posted for one invocation."""

    kind: str  # "response" | "error"
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class _Event:
    request_id: str
    body: bytes
    headers: dict[str, str]
    future: asyncio.Future[Outcome]


@dataclass
class ServerState:
    """Everything the server saw, for assertions."""

    requests: list[Request] = field(default_factory=list)
    # For each read: the request lines completed by it (shows what shared a write).
    batches: list[list[str]] = field(default_factory=list)
    reads: list[bytes] = field(default_factory=list)  # each read's bytes, as they came
    init_errors: list[Request] = field(default_factory=list)
    restore_errors: list[Request] = field(default_factory=list)
    connections: int = 0


class _Protocol(asyncio.Protocol):
    def __init__(self, server: RuntimeAPIServer) -> None:
        self.server = server
        self.buf = bytearray()
        self.pending: deque[Request] = deque()
        self.out: list[bytes] = []
        self.transport: asyncio.Transport | None = None
        self.parked = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.server.state.connections += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self in self.server.waiters:
            self.server.waiters.remove(self)

    def data_received(self, data: bytes) -> None:
        if self.server.record:
            self.server.state.reads.append(data)
        self.buf += data
        completed: list[str] = []
        while (request := self._parse()) is not None:
            if self.server.record:
                self.server.state.requests.append(request)
            completed.append(f"{request.method} {request.path}")
            self.pending.append(request)
        if self.server.record:
            self.server.state.batches.append(completed)
        self.process()

    def _parse(self) -> Request | None:
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        lines = buf[:end].decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        start = end + 4
        if "chunked" in headers.get("transfer-encoding", ""):
            body = bytearray()
            pos = start
            while True:
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    return None
                size = int(bytes(buf[pos:eol]).split(b";")[0], 16)
                if size == 0:  # then optional trailers and an empty line
                    term = buf.find(b"\r\n\r\n", pos)
                    if term < 0:
                        return None
                    for line in buf[eol + 2 : term].decode("latin-1").split("\r\n"):
                        if line:  # trailers join the headers, as a server sees them
                            name, _, value = line.partition(":")
                            headers[name.strip().lower()] = value.strip()
                    stop = term + 4
                    break
                if len(buf) < eol + 2 + size + 2:
                    return None
                body += buf[eol + 2 : eol + 2 + size]
                pos = eol + 2 + size + 2
            del buf[:stop]
            return Request(method, path, headers, bytes(body))
        stop = start + int(headers.get("content-length", "0"))
        if len(buf) < stop:
            return None
        body = bytes(buf[start:stop])
        del buf[:stop]
        return Request(method, path, headers, body)

    def process(self) -> None:
        """Answer pending requests in order; a ``next`` with no event parks the rest."""
        server = self.server
        self.parked = False
        while self.pending:
            request = self.pending[0]
            if request.method == "GET" and request.path.endswith("/runtime/invocation/next"):
                if not server.events:
                    self.parked = True
                    server.waiters.append(self)
                    break
                self.out.append(server.deliver(server.events.popleft()))
            else:
                self.out.append(server.answer(request))
            self.pending.popleft()
        if self.out and self.transport is not None:
            self.transport.write(b"".join(self.out))
        self.out.clear()


def _response(status: int, reason: str, body: bytes = b"", headers: str = "") -> bytes:
    if "content-type:" not in headers.lower():  # always one: awslambdaric crashes without
        headers += "Content-Type: application/json\r\n"
    return (
        f"HTTP/1.1 {status} {reason}\r\n{headers}Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


_ACCEPTED = _response(202, "Accepted", b'{"status":"OK"}')


class RuntimeAPIServer:
    """The Runtime API of one environment, on a loopback port."""

    def __init__(self) -> None:
        self.state = ServerState()
        self.record = True
        self.events: deque[_Event] = deque()
        self.waiters: deque[_Protocol] = deque()
        self.inflight: dict[str, _Event] = {}
        self.post_status = 202  # tests may make posts fail
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self._server = self.call(self._start())
        self.port: int = self._server.sockets[0].getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self._init_error = threading.Event()

    async def _start(self) -> asyncio.Server:
        return await self.loop.create_server(lambda: _Protocol(self), "127.0.0.1", 0)

    def call(self, coro: Any, timeout: float = 15) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        async def stop() -> None:
            self._server.close()

        self.call(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    # -- the loop side

    def deliver(self, event: _Event) -> bytes:
        self.inflight[event.request_id] = event
        head = "".join(f"{k}: {v}\r\n" for k, v in event.headers.items())
        return _response(200, "OK", event.body, head)

    def answer(self, request: Request) -> bytes:
        path = request.path
        if path.endswith("/runtime/init/error"):
            self.state.init_errors.append(request)
            self.loop.call_soon(self._init_error.set)
            return _ACCEPTED
        if path.endswith("/runtime/restore/next"):
            return _response(200, "OK")
        if path.endswith("/runtime/restore/error"):
            self.state.restore_errors.append(request)
            return _ACCEPTED
        parts = path.split("/")
        # /2018-06-01/runtime/invocation/{id}/{response|error}
        if len(parts) == 6 and parts[3] == "invocation" and request.method == "POST":
            event = self.inflight.pop(parts[4], None)
            if event is None:
                return _response(403, "Forbidden", b'{"errorType":"InvalidRequestID"}')
            if self.post_status >= 500:
                event.future.set_result(Outcome(parts[5], request.body, request.headers))
                return _response(self.post_status, "Internal Server Error", b"{}")
            if not event.future.done():
                event.future.set_result(Outcome(parts[5], request.body, request.headers))
            return _ACCEPTED
        return _response(404, "Not Found", b"{}")

    def enqueue(self, event: _Event) -> None:
        self.events.append(event)
        while self.waiters and self.events:
            waiter = self.waiters.popleft()
            if waiter.transport is not None:
                waiter.process()

    async def invoke_async(
        self,
        body: bytes,
        headers: dict[str, str],
        request_id: str,
        timeout: float | None,
    ) -> Outcome:
        event = _Event(request_id, body, headers, self.loop.create_future())
        self.enqueue(event)
        if timeout is None:  # the benchmark: no timer task per invoke
            return await event.future
        return await asyncio.wait_for(event.future, timeout)

    # -- the test side

    def submit(
        self,
        event: Any = None,
        *,
        raw: bytes | None = None,
        request_id: str | None = None,
        deadline_ms: int | None = None,
        timeout: float = 10,
        headers: dict[str, str | None] | None = None,
    ) -> concurrent.futures.Future[Outcome]:
        """Queue one event; the future completes with the runtime's response or error."""
        request_id = request_id or str(uuid.uuid4())
        all_headers: dict[str, str | None] = {
            "Lambda-Runtime-Aws-Request-Id": request_id,
            "Lambda-Runtime-Deadline-Ms": str(deadline_ms or int(time.time() * 1000) + 30_000),
            "Lambda-Runtime-Invoked-Function-Arn": FUNCTION_ARN,
            "Lambda-Runtime-Trace-Id": f"Root=1-00000000-{request_id[:24].replace('-', '0')}",
        }
        all_headers.update(headers or {})
        sent = {k: v for k, v in all_headers.items() if v is not None}  # None: omit
        body = raw if raw is not None else json.dumps(event).encode()
        return asyncio.run_coroutine_threadsafe(
            self.invoke_async(body, sent, request_id, timeout), self.loop
        )

    def invoke(self, event: Any = None, *, timeout: float = 10, **kw: Any) -> Outcome:
        """Queue one event and wait for the runtime's response or error."""
        return self.submit(event, timeout=timeout, **kw).result(timeout + 5)

    def wait_init_error(self, timeout: float = 10) -> Request:
        assert self._init_error.wait(timeout), "no /runtime/init/error was posted"
        return self.state.init_errors[-1]


class RuntimeProcess:
    """A runtime subprocess bound to its own server; stdout+stderr on one pipe."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.server = RuntimeAPIServer()
        env = {**env, "AWS_LAMBDA_RUNTIME_API": self.server.address}
        self.proc = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        assert self.proc.stdout is not None
        self._fd = self.proc.stdout.fileno()
        os.set_blocking(self._fd, False)
        self._out = bytearray()

    def invoke(self, event: Any = None, **kw: Any) -> Outcome:
        return self.server.invoke(event, **kw)

    def output(self) -> str:
        """Everything the runtime wrote so far (what is in the pipe right now)."""
        while True:
            try:
                chunk = os.read(self._fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            self._out += chunk
        return self._out.decode("utf-8", "replace")

    def lines(self) -> list[str]:
        """Output split on LF only: CR stays inside a line, as the platform reads it."""
        text = self.output()
        return text[:-1].split("\n") if text.endswith("\n") else text.split("\n")

    def wait(self, timeout: float = 10) -> int:
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)
        self.proc.stdout.close()  # type: ignore[union-attr]
        self.server.close()


def base_env(handler: str, task: Path, **extra: str) -> dict[str, str]:
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "TZ": ":UTC",
        "_HANDLER": handler,
        "LAMBDA_TASK_ROOT": str(task),
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_LAMBDA_FUNCTION_NAME": "fn",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/fn",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2026/01/01/[$LATEST]0123456789abcdef0123456789abcdef",
    }
    env.update(extra)
    return env


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


StartRuntime = Callable[..., RuntimeProcess]
