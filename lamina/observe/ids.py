"""Request ids and X-Ray trace ids in Lambda's formats, cheaply (they are made on every invoke).

A request id is also the only secret of a running invocation: environments of functions without
a VPC share the host's loopback, so one function could post to another environment's Runtime
API port, and only an id it cannot guess keeps it from answering that invocation. The ids
therefore come from the operating system's CSPRNG, never from ``random`` (whose Mersenne
Twister can be reconstructed from the trace ids every function sees in its environment). The
bytes are drawn a page at a time, so the cost stays one system call per 170 invokes.
"""

from __future__ import annotations

import os
import time

_PAGE = 4096
_HEX = "0123456789abcdef"
# The variant of a UUID is the top two bits of its 17th hex digit: 10xx, so 8, 9, a or b.
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in _HEX}


class _RandomBytes:
    """Bytes from ``os.urandom``, handed out in slices of a page read at once."""

    def __init__(self) -> None:
        self._page = b""
        self._offset = 0
        # A forked child must not hand out the bytes its parent hands out too.
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._page = b""
        self._offset = 0

    def take(self, count: int) -> bytes:
        offset = self._offset
        if offset + count > len(self._page):
            self._page = os.urandom(_PAGE)
            offset = 0
        self._offset = offset + count
        return self._page[offset:offset + count]


_random = _RandomBytes()


def new_request_id() -> str:
    """A version-4 UUID, as Lambda's request ids are, without building a ``uuid.UUID``."""
    x = _random.take(16).hex()
    return f"{x[:8]}-{x[8:12]}-4{x[13:16]}-{_VARIANT[x[16]]}{x[17:20]}-{x[20:]}"


def new_trace_id(header: str | None = None) -> str:
    """The caller's ``X-Amzn-Trace-Id`` when it carries a root, else a fresh unsampled one."""
    if header and "Root=" in header:
        return header
    return f"Root=1-{int(time.time()):08x}-{_random.take(12).hex()};Sampled=0"
