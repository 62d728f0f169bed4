"""Messages between the launcher (in the server) and the template, and from a child at birth.

One JSON object per ``SOCK_SEQPACKET`` datagram, so message boundaries come from the kernel and
a child can send on the template's socket without interleaving. File descriptors travel with
``SCM_RIGHTS``. The conversation:

launcher -> template
    ``{"op": "spawn", "id": N, "slot": "s3" | null}`` + fds ``[payload]`` or ``[payload, output]``
    ``{"op": "kill", "id": N}``
template -> launcher
    ``{"op": "ready"}`` once, when it serves; ``{"op": "fatal", "error": ...}`` before dying;
    ``{"op": "warning", "message": ...}`` for the server's log
    ``{"op": "failed", "id": N, "error": ...}`` when it could not fork
    ``{"op": "exit", "id": N, "status": raw wait status}``
child -> launcher (on the inherited template socket, just before user code runs)
    ``{"op": "child-ready", "id": N}`` or ``{"op": "child-failed", "id": N, "error": ...}``;
    the launcher's socket has ``SO_PASSCRED``, so the kernel adds the child's pid as the
    launcher sees it (the child itself only knows that it is pid 1).

The payload is a memfd holding the child's JSON configuration (``ChildConfig``). It goes to the
child, which reads it after the fork: the template never reads the function's environment, so
its heap, which every later child inherits, never holds another function's secrets.
"""

from __future__ import annotations

import array
import json
import os
import socket
import struct
from collections.abc import Sequence
from typing import Any

MAX_MESSAGE = 65536
MAX_FDS = 4


def send(sock: socket.socket, message: dict[str, Any], fds: Sequence[int] = ()) -> None:
    data = json.dumps(message, separators=(",", ":")).encode()
    if fds:
        sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
    else:
        sock.send(data)


_UCRED = struct.Struct("iII")  # pid, uid, gid
_ANCILLARY = socket.CMSG_SPACE(MAX_FDS * 4) + socket.CMSG_SPACE(_UCRED.size)
# Plain ints: the socket module's constants are enum flags, and ``|``/``==`` on those run
# enum code in Python (7% of the template's time in a 5,000-spawn ramp, measured).
_SOL_SOCKET = int(socket.SOL_SOCKET)
_SCM_RIGHTS = int(socket.SCM_RIGHTS)
_SCM_CREDENTIALS = int(socket.SCM_CREDENTIALS)
_TRUNCATED = int(socket.MSG_TRUNC) | int(socket.MSG_CTRUNC)


def receive(sock: socket.socket, *, credentials: bool = False,
            ) -> tuple[dict[str, Any] | None, list[int], int]:
    """One message, the fds that came with it and the sender's pid (0 unless ``credentials``).

    ``(None, [], 0)`` at end of stream; ``BlockingIOError`` when a non-blocking socket has
    nothing to read.
    """
    data, ancdata, flags, _ = sock.recvmsg(MAX_MESSAGE, _ANCILLARY)
    fds: list[int] = []
    sender = 0
    for level, kind, cdata in ancdata:
        if level == _SOL_SOCKET and kind == _SCM_RIGHTS:
            usable = len(cdata) - len(cdata) % 4
            fds.extend(array.array("i", cdata[:usable]))
        elif credentials and level == _SOL_SOCKET and kind == _SCM_CREDENTIALS:
            sender = _UCRED.unpack_from(cdata)[0]
    if not data or flags & _TRUNCATED:
        for fd in fds:
            os.close(fd)
        if data:
            raise ValueError("truncated control message")
        return None, [], 0
    return json.loads(data.decode()), fds, sender


def write_payload(config: dict[str, Any]) -> int:
    """Put the child's configuration in a memfd (no size limit, never blocks) and return it."""
    fd = os.memfd_create("lamina-spawn", os.MFD_CLOEXEC)
    try:
        data = json.dumps(config, separators=(",", ":")).encode()
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_payload(fd: int) -> dict[str, Any]:
    size = os.fstat(fd).st_size
    chunks = []
    offset = 0
    while offset < size:
        chunk = os.pread(fd, size - offset, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return json.loads(b"".join(chunks))
