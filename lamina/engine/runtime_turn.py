"""The lean runtime's turn, recognised without the general HTTP machinery.

After each invocation lamina's python bootstrap sends, in one write, ``POST
/2018-06-01/runtime/invocation/{id}/response`` with its result and the next ``GET
.../invocation/next``. That pair is every warm invoke's second half, and putting it through
httptools' callbacks, two ``Request`` objects and the Runtime API's routing cost more than the
one regular expression that recognises it. ``parse_turn`` takes the pair only whole and exactly
in the bootstrap's own form (HTTP/1.1; ``Host``, an optional ``Content-Type`` and
``Content-Length`` in that order, printable ASCII; nothing after the ``GET``); anything else, from
any runtime, returns ``None`` and takes the general path. What it accepts, httptools reads the
same way, so the two paths cannot disagree about what a runtime said.
"""

from __future__ import annotations

import re

# The post exactly as the bootstrap writes it: printable ASCII only, so no line can hide a break.
_RESPONSE = re.compile(
    rb"POST /2018-06-01/runtime/invocation/([0-9a-f-]{1,64})/response HTTP/1\.1\r\n"
    rb"Host: ([!-~]{1,255})\r\n"
    rb"(?:Content-Type: [ -~]{0,255}\r\n)?"
    rb"Content-Length: ([0-9]{1,10})\r\n\r\n")
_NEXT = b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: "


def parse_turn(data: bytes, max_body: int) -> tuple[str, bytes] | None:
    """``(request id, response body)`` when ``data`` is exactly a response post and the next
    long poll (to the same host), else ``None``."""
    match = _RESPONSE.match(data)
    if match is None:
        return None
    start = match.end()
    end = start + int(match[3])
    if end - start > max_body or data[end:] != _NEXT + match[2] + b"\r\n\r\n":
        return None
    return match[1].decode("ascii"), data[start:end]
