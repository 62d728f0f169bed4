"""The request and response values that lamina's own HTTP server hands to handlers.

They are plain slotted classes rather than a framework's objects: the Invoke path builds one of
each per call, so they hold exactly what a handler needs and nothing is computed twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl


class Request:
    """One parsed HTTP/1.1 request. Header names are lower-case; ``path`` is still %-encoded."""

    __slots__ = (
        "_query", "body", "client", "headers", "method", "path", "query_string", "raw_headers",
    )

    def __init__(
        self,
        method: str,
        path: str,
        query_string: str,
        headers: dict[str, str],
        body: bytes,
        client: tuple[str, int] | None = None,
        raw_headers: list[tuple[str, str]] | None = None,
    ) -> None:
        self.method = method
        self.path = path
        self.query_string = query_string
        self.headers = headers
        self.body = body
        self.client = client
        # Original-case header pairs in arrival order, needed to recompute a SigV4 signature.
        self.raw_headers = raw_headers if raw_headers is not None else list(headers.items())
        self._query: list[tuple[str, str]] | None = None

    @property
    def query(self) -> list[tuple[str, str]]:
        """Decoded query parameters, in order, repeated keys kept."""
        if self._query is None:
            self._query = parse_qsl(self.query_string, keep_blank_values=True)
        return self._query

    def query_value(self, name: str) -> str | None:
        for key, value in self.query:
            if key == name:
                return value
        return None


class Response:
    """What a handler returns; the server adds ``content-length`` and ``date``.

    ``head`` is header lines already encoded (each ending in CRLF), written after ``headers``:
    the Invoke path builds its few headers in one formatted string, where a list of pairs
    would cost an encode per header on every call. Whoever builds ``head`` vouches that its
    values hold no CR or LF.
    """

    __slots__ = ("body", "constant", "encoded", "head", "headers", "status")

    def __init__(self, status: int = 200, headers: list[tuple[str, str]] | None = None,
                 body: bytes = b"", head: bytes = b"", constant: bool = False) -> None:
        self.status = status
        self.headers = headers if headers is not None else []
        self.body = body
        self.head = head
        # A ``constant`` response is answered again and again unchanged: the server keeps its
        # encoding (``encoded``: the date line it was made with, and the bytes).
        self.constant = constant
        self.encoded: tuple[bytes, bytes] | None = None


class Pending:
    """An answer that comes later and is written the moment it is given.

    A handler may return one instead of a future: resolving it writes the response (in request
    order) right away, in the caller's turn of the event loop, where a future would schedule
    its callbacks for a later turn. On the invoke path that saves a loop iteration, and its
    ``epoll_wait``, on each side (HOST.md: the wins left are fewer wake-ups and system calls).
    """

    __slots__ = ("_deliver", "_place", "_response", "cancelled")

    def __init__(self) -> None:
        self._deliver: Callable[[Any, Response], None] | None = None
        self._place: Any = None
        self._response: Response | None = None
        self.cancelled = False

    def done(self) -> bool:
        return self._response is not None or self.cancelled

    def resolve(self, response: Response) -> None:
        if self._response is not None or self.cancelled:
            return
        self._response = response
        if self._deliver is not None:
            self._deliver(self._place, response)

    def cancel(self) -> None:
        """Nobody will answer (the connection goes away with the environment)."""
        self.cancelled = True

    def bind(self, deliver: Callable[[Any, Response], None], place: Any) -> None:
        """Called by the server once: the response goes to ``deliver(place, response)`` (a
        method and its argument rather than a closure: one fewer object per request)."""
        self._deliver = deliver
        self._place = place
        if self._response is not None:
            deliver(place, self._response)


Handler = Callable[[Request], Awaitable[Response]]
