"""A small HTTP/1.1 server on asyncio protocols and httptools.

Why not an ASGI framework: on the Invoke path every layer costs, and HOST.md measured a general
ASGI stack at ~0.2 ms and ~40% of throughput over raw protocols. This server does only what
lamina needs: keep-alive, pipelining answered in order, ``Expect: 100-continue``, a body limit,
and handlers that may answer synchronously (a ``Response``) or later (an awaitable). A
synchronous answer costs no task at all, which matters for the Runtime API's ``/response`` posts;
a long poll is just a pending future with no timer attached.
"""

from __future__ import annotations

import asyncio
import email.utils
import inspect
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import httptools

from lamina.http.types import Pending, Request, Response

log = logging.getLogger(__name__)

AnyHandler = Callable[[Request], "Response | Pending | Awaitable[Response]"]

_REASONS = {
    100: "Continue", 200: "OK", 201: "Created", 202: "Accepted", 204: "No Content",
    301: "Moved Permanently", 302: "Found", 304: "Not Modified", 307: "Temporary Redirect",
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 409: "Conflict", 410: "Gone", 412: "Precondition Failed",
    413: "Payload Too Large", 415: "Unsupported Media Type", 429: "Too Many Requests",
    500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Gateway Timeout",
}
_STATUS_LINES: dict[int, bytes] = {}


def status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        line = f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\n".encode()
        _STATUS_LINES[status] = line
    return line


class _DateHeader:
    """The ``date`` header line, formatted once per second rather than per response."""

    def __init__(self) -> None:
        self._second = 0
        self._line = b""

    def line(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._line = b"date: " + email.utils.formatdate(now, usegmt=True).encode() + b"\r\n"
        return self._line


_date = _DateHeader()

# Decoded header names (as sent, lower-case) and methods: the same few arrive on every request.
_HEADER_NAMES: dict[bytes, tuple[str, str]] = {}
_HEADER_NAMES_MAX = 4096  # a client inventing names must not grow it without end
_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")}


def encode_response(response: Response, keep_alive: bool, head_only: bool = False) -> bytes:
    date = _date.line()
    if response.constant and keep_alive and not head_only:
        # The same answer again (the Runtime API's 202): encoded once per second, for the date.
        cached = response.encoded
        if cached is not None and cached[0] is date:
            return cached[1]
        wire = _encode(response, date, True, False)
        response.encoded = (date, wire)
        return wire
    return _encode(response, date, keep_alive, head_only)


def _encode(response: Response, date: bytes, keep_alive: bool, head_only: bool) -> bytes:
    parts = [status_line(response.status), date]
    for name, value in response.headers:
        parts.append(f"{name}: {value}\r\n".encode("latin-1"))
    if response.head:
        parts.append(response.head)
    body = response.body
    if response.status not in (204, 304) and not (100 <= response.status < 200):
        parts.append(b"content-length: %d\r\n" % len(body))
    if not keep_alive:
        parts.append(b"connection: close\r\n")
    parts.append(b"\r\n")
    if body and not head_only:
        parts.append(body)
    return b"".join(parts)


class _Slot:
    """One request's place in the connection's answer order (pipelining)."""

    __slots__ = ("data", "head_only", "keep_alive")

    def __init__(self, keep_alive: bool, head_only: bool = False) -> None:
        self.keep_alive = keep_alive
        self.head_only = head_only  # a HEAD request: the answer's head without its body
        self.data: bytes | None = None


class HttpProtocol(asyncio.Protocol):
    """One connection: parses requests with httptools and answers them strictly in order."""

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.client: tuple[str, int] | None = None
        self.slots: deque[_Slot] = deque()
        self.closed = False
        self._url = b""
        self._headers: dict[str, str] = {}
        self._raw_headers: list[tuple[str, str]] = []
        self._body: list[bytes] = []
        self._body_size = 0
        self._too_large = False
        self._feeding = False
        self._ending = False  # a request that closes the connection (or bad bytes) came in
        self._in_message = False  # the parser holds part of a request
        self.on_close: list[Callable[[], None]] = []

    # asyncio callbacks -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.client = (peer[0], peer[1]) if isinstance(peer, tuple) else None
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.connections.discard(self)
        callbacks, self.on_close = self.on_close, []
        for callback in callbacks:
            try:
                callback()
            except Exception:  # a close hook must never break the loop
                log.exception("connection close hook failed")

    def data_received(self, data: bytes) -> None:
        if self._ending:
            return  # a request that ends the connection is in: nothing after it is read
        fast_path = self.server.fast_path
        if fast_path is not None and not self._in_message and fast_path(self, data):
            return
        # Answers produced while this read is parsed go out together, in one write, after it.
        self._feeding = True
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserUpgrade, httptools.HttpParserError):
            if not self._ending:
                # Bad bytes: a 400 in its place in the answer order, and then the end. (After
                # a ``Connection: close`` request the parser refuses whatever follows; that
                # is not an error of the request, which is answered as it should be.)
                slot = _Slot(keep_alive=False)
                slot.data = encode_response(Response(400), keep_alive=False)
                self.slots.append(slot)
                self._ending = True
        finally:
            self._feeding = False
        self._flush(self.server.hold_before_pending)

    # httptools callbacks -----------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._in_message = True
        self._url = b""
        self._headers = {}
        self._raw_headers = []
        self._body = []
        self._body_size = 0
        self._too_large = False

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        names = _HEADER_NAMES.get(name)
        if names is None:
            key = name.decode("latin-1")
            names = (key, key.lower())
            if len(_HEADER_NAMES) < _HEADER_NAMES_MAX:
                _HEADER_NAMES[name] = names
        key, lower = names
        text = value.decode("latin-1")
        self._raw_headers.append((key, text))
        previous = self._headers.get(lower)
        self._headers[lower] = text if previous is None else previous + "," + text

    def on_headers_complete(self) -> None:
        length = self._headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.server.max_body:
            self._too_large = True
        else:
            expect = self._headers.get("expect")
            if expect is not None and expect.lower() == "100-continue" and self.transport:
                self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        if self._too_large:
            return
        self._body_size += len(body)
        if self._body_size > self.server.max_body:
            self._too_large = True
            self._body = []
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._in_message = False
        keep_alive = self.parser.should_keep_alive()
        raw_method = self.parser.get_method()
        method = _METHODS.get(raw_method) or raw_method.decode("latin-1")
        slot = _Slot(keep_alive, method == "HEAD")
        if not keep_alive:
            self._ending = True
        self.slots.append(slot)
        url = self._url.decode("latin-1")
        path, _, query = url.partition("?")
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        request = Request(method, path, query, self._headers, body, self.client, self._raw_headers)
        if self._too_large:
            # The body was read and dropped, so the connection stays usable.
            self._finish(slot, self.server.too_large_response(request))
            return
        try:
            answer = self.server.handler(request)
        except Exception:
            log.exception("handler failed for %s %s", method, path)
            self._finish(slot, Response(500))
            return
        if isinstance(answer, Response):
            self._finish(slot, answer)
            return
        if isinstance(answer, Pending):
            answer.bind(self._finish, slot)
            return
        if inspect.iscoroutine(answer):
            future = asyncio.get_running_loop().create_task(answer)
        else:
            future = asyncio.ensure_future(answer)
        self.server.pending.add(future)
        future.add_done_callback(lambda f: self._done(slot, f))

    # answering ---------------------------------------------------------------------------------

    def answer_recognised(self, *answers: Response | Pending) -> None:
        """Answer requests a ``fast_path`` recognised itself (keep-alive HTTP/1.1 requests
        that were all of the read), in their order, through the same queue as any other."""
        for answer in answers:
            slot = _Slot(True)
            self.slots.append(slot)
            if isinstance(answer, Pending):
                answer.bind(self._finish, slot)
            else:
                slot.data = encode_response(answer, True)
        self._flush(self.server.hold_before_pending)

    def _done(self, slot: _Slot, future: asyncio.Future[Any]) -> None:
        self.server.pending.discard(future)
        if future.cancelled():
            response = Response(503)
        elif future.exception() is not None:
            log.error("handler failed", exc_info=future.exception())
            response = Response(500)
        else:
            response = future.result()
        self._finish(slot, response)

    def _finish(self, slot: _Slot, response: Response) -> None:
        slot.data = encode_response(response, slot.keep_alive, slot.head_only)
        if not self._feeding:
            self._flush(False)

    def _flush(self, hold: bool) -> None:
        """Write every answer that is ready, in request order.

        With ``hold``, answers stay back while a request that came in the same read is still
        pending: a runtime that pipelines ``POST /response`` with its next ``GET /next`` then
        gets the 202 together with its next event, one write and one wake-up instead of two
        (HOST.md measured +12%). A client that waits for the 202 before asking again never has
        a pending request behind it, so it gets the 202 at once.
        """
        if self.closed or self.transport is None:
            return
        slots = self.slots
        if len(slots) == 1:  # the usual case: one answer, nothing behind it
            head = slots[0]
            if head.data is not None and head.keep_alive:
                slots.clear()
                self.transport.write(head.data)
            elif head.data is not None:
                self._write_ready()
            return
        if hold:
            for slot in slots:
                if slot.data is None:
                    return
        self._write_ready()

    def _write_ready(self) -> None:
        """Write the answers at the head of the queue that are ready, and close after one
        that ends the connection."""
        out: list[bytes] = []
        close = False
        while self.slots and self.slots[0].data is not None:
            head = self.slots.popleft()
            out.append(head.data)  # type: ignore[arg-type]
            if not head.keep_alive:
                close = True
                self.slots.clear()
                break
        if out:
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))
        if close:
            self.closed = True
            self.transport.close()


class HttpServer:
    """Serves ``handler`` on one or more listening sockets."""

    def __init__(self, handler: AnyHandler, max_body: int = 8 * 1024 * 1024,
                 too_large: Callable[[Request], Response] | None = None,
                 hold_before_pending: bool = False,
                 fast_path: Callable[[HttpProtocol, bytes], bool] | None = None) -> None:
        """``fast_path(protocol, data)`` sees each read that starts a new request first; when
        it returns ``True`` it has recognised the read's requests itself and answered them
        with ``protocol.answer_recognised``, and the parser never sees them."""
        self.handler = handler
        self.fast_path = fast_path
        self.max_body = max_body
        self.hold_before_pending = hold_before_pending
        self.connections: set[HttpProtocol] = set()
        self.pending: set[asyncio.Future[Any]] = set()
        self._servers: list[asyncio.AbstractServer] = []
        self._too_large = too_large

    def too_large_response(self, request: Request) -> Response:
        """Answer a request whose body passed ``max_body`` (``request.body`` is empty)."""
        if self._too_large is not None:
            return self._too_large(request)
        return Response(413)

    async def listen(self, host: str, port: int, **kwargs: Any) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: HttpProtocol(self), host, port,
                                          reuse_address=True, **kwargs)
        self._servers.append(server)
        address = server.sockets[0].getsockname()
        return address[0], address[1]

    async def serve_socket(self, sock: Any) -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: HttpProtocol(self), sock=sock)
        self._servers.append(server)

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.close()
        for future in list(self.pending):
            future.cancel()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()
