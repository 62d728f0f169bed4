"""Request ids and X-Ray trace ids in Lambda's formats, cheaply (they are made on every invoke)."""

from __future__ import annotations

import os
import time


def new_request_id() -> str:
    """A version-4 UUID, as Lambda's request ids are, without building a ``uuid.UUID``."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    x = raw.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


def new_trace_id(header: str | None = None) -> str:
    """The caller's ``X-Amzn-Trace-Id`` when it carries a root, else a fresh unsampled one."""
    if header and "Root=" in header:
        return header
    return f"Root=1-{int(time.time()):08x}-{os.urandom(12).hex()};Sampled=0"
