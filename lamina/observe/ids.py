"""Request ids and X-Ray trace ids in Lambda's formats, cheaply (they are made on every invoke)."""

from __future__ import annotations

import random
import time

# Ids must be unique, not secret: a generator seeded once from the OS (random.Random() draws
# its seed from os.urandom) makes them without a getrandom() system call per invoke.
_ids = random.Random()
_VERSION_4 = (0x4 << 76) | (0x8 << 60)  # the version and variant bits of a UUID4
_CLEAR = ~((0xF << 76) | (0xC << 60)) & ((1 << 128) - 1)


def new_request_id() -> str:
    """A version-4 UUID, as Lambda's request ids are, without building a ``uuid.UUID``."""
    x = f"{(_ids.getrandbits(128) & _CLEAR) | _VERSION_4:032x}"
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


def new_trace_id(header: str | None = None) -> str:
    """The caller's ``X-Amzn-Trace-Id`` when it carries a root, else a fresh unsampled one."""
    if header and "Root=" in header:
        return header
    return f"Root=1-{int(time.time()):08x}-{_ids.getrandbits(96):024x};Sampled=0"
