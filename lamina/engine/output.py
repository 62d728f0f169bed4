"""A process's stdout and stderr (one pipe) cut into log lines.

Environments and SnapStart snapshots both log what their process prints, one log event per line
as Lambda does: a line is held until its newline comes, and one that grows past
``MAX_LINE_BYTES`` without a newline is logged as it stands, so a process that prints without
newlines cannot make the server hold its output without bound.
"""

from __future__ import annotations

import os
from collections.abc import Callable

MAX_LINE_BYTES = 256 * 1024
_CHUNK = 65536


class OutputLines:
    """Feeds each complete line, decoded (invalid UTF-8 replaced), to ``emit``."""

    __slots__ = ("_emit", "_partial")

    def __init__(self, emit: Callable[[str], None]) -> None:
        self._emit = emit
        self._partial = b""

    def read(self, fd: int, budget: int) -> bool:
        """Read what the non-blocking pipe ``fd`` holds, up to about ``budget`` bytes (so a
        flooding process cannot hold the loop); True once it reached end of file (what was
        left without a newline is then logged too)."""
        while budget > 0:
            try:
                data = os.read(fd, _CHUNK)
            except BlockingIOError:
                return False
            except OSError:
                data = b""
            if not data:
                self.flush()
                return True
            budget -= len(data)
            self.feed(data)
        return False

    def feed(self, data: bytes) -> None:
        buffer = self._partial + data if self._partial else data
        *lines, rest = buffer.split(b"\n")
        emit = self._emit
        for line in lines:
            emit(line.decode("utf-8", "replace"))
        if len(rest) > MAX_LINE_BYTES:
            emit(rest.decode("utf-8", "replace"))
            rest = b""
        self._partial = rest

    def flush(self) -> None:
        """Log what is left without its newline (the process ended or the pipe closed)."""
        if self._partial:
            partial, self._partial = self._partial, b""
            self._emit(partial.decode("utf-8", "replace"))
