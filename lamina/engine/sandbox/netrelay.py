"""The only way out of a VPC environment: lamina's Runtime API and public API, relayed.

A function with ``VpcConfig`` runs in a network namespace of its own that has nothing but
``lo``. Its environment variables still say ``AWS_LAMBDA_RUNTIME_API=127.0.0.1:<port>`` and
``AWS_ENDPOINT_URL=http://127.0.0.1:<port>``, and those addresses answer, because two halves of
a relay carry exactly those two ports across, through one Unix socket per environment:

* inside (``serve_inside``): a small process forked by the environment's first process before
  it drops privileges listens on those ports of the namespace's loopback; each connection
  becomes a connection to the environment's socket (bound at ``rootfs.NET_SOCKET``), preceded
  by one byte naming the target (``R``: Runtime API, ``A``: the public API). It runs with the
  environment's uid and seccomp filter, and is not dumpable.
* outside (``HostRelay``): in the server, an asyncio Unix server on that socket connects each
  stream to ``127.0.0.1:<port>`` of the host, for the two ports of that environment only.

Any other address has no route (a connect fails with ``ENETUNREACH``), as for a Lambda function
attached to a VPC without a NAT gateway. This module must stay stdlib-only: the template
imports it before pivoting into the sandbox root.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import selectors
import socket
import threading
from collections.abc import Mapping
from typing import NoReturn

RUNTIME, API = b"R", b"A"
_CHUNK = 65536


# -- inside the environment's network namespace -----------------------------------------------

def listen_inside(ports: Mapping[bytes, int]) -> list[tuple[socket.socket, bytes]]:
    """Listening sockets on the namespace's loopback, one per relayed port (made before the
    entry starts, so its first connection never meets a closed port)."""
    listeners = []
    for tag, port in ports.items():
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(128)
        listeners.append((sock, tag))
    return listeners


def serve_inside(listeners: list[tuple[socket.socket, bytes]], path: str) -> NoReturn:
    """Accept forever; each connection is bridged to ``path`` in two threads."""
    selector = selectors.DefaultSelector()
    for sock, tag in listeners:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, tag)
    while True:
        for key, _ in selector.select():
            try:
                conn, _ = key.fileobj.accept()  # type: ignore[union-attr]
            except OSError:
                continue
            conn.setblocking(True)
            threading.Thread(target=_bridge, args=(conn, key.data, path), daemon=True).start()


def _bridge(conn: socket.socket, tag: bytes, path: str) -> None:
    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        upstream.connect(path)
        upstream.sendall(tag)
    except OSError:
        conn.close()
        upstream.close()
        return
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    back = threading.Thread(target=_pump, args=(upstream, conn), daemon=True)
    back.start()
    _pump(conn, upstream)
    back.join()
    conn.close()
    upstream.close()


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while True:
            data = source.recv(_CHUNK)
            if not data:
                break
            target.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)


# -- on the host, in the server -----------------------------------------------------------------

class HostRelay:
    """The outer half for one environment: ``path`` (a Unix socket) -> the allowed ports."""

    def __init__(self, path: str, ports: Mapping[bytes, int]) -> None:
        self.path = path
        self.ports = dict(ports)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(path)
        os.chmod(path, 0o666)  # the environment's uid; nothing else can reach its directory
        sock.listen(128)
        sock.setblocking(False)
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.AbstractServer | None = None
        self._closed = False
        self._sock = sock
        self._starting = asyncio.get_running_loop().create_task(self._start(sock))

    async def _start(self, sock: socket.socket) -> None:
        self._server = await asyncio.start_unix_server(self._client, sock=sock)
        if self._closed:
            self._server.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            tag = await reader.readexactly(1)
            port = self.ports.get(tag)
            if port is None:
                return
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                await asyncio.gather(_copy(reader, up_writer), _copy(up_reader, writer))
            finally:
                up_writer.close()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            if task is not None:
                self._tasks.discard(task)

    def close(self) -> None:
        self._closed = True
        if self._server is not None:
            self._server.close()
        else:
            self._starting.cancel()
            self._sock.close()
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            data = await reader.read(_CHUNK)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            if writer.can_write_eof():
                writer.write_eof()
