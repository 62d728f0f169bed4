"""The runtime's turn (a response post and the next long poll in one read), recognised without
the parser: it must take exactly the bootstrap's own bytes, and whatever it takes, httptools
must read the same way."""

from __future__ import annotations

from typing import Any

import httptools
from hypothesis import given, settings
from hypothesis import strategies as st

from lamina.engine.runtime_turn import parse_turn
from lamina.observe.ids import new_request_id

MAX = 6 * 1024 * 1024


def turn(request_id: str, body: bytes, host: str = "127.0.0.1:9001",
         content_type: str | None = "application/json") -> bytes:
    """The bytes lamina's bootstrap writes after an invocation (lamina_bootstrap.py)."""
    typed = f"Content-Type: {content_type}\r\n" if content_type is not None else ""
    return (f"POST /2018-06-01/runtime/invocation/{request_id}/response HTTP/1.1\r\n"
            f"Host: {host}\r\n{typed}Content-Length: {len(body)}\r\n\r\n").encode() + body + (
        f"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: {host}\r\n\r\n").encode()


class _Messages:
    """What httptools reads from the same bytes: [(method, url, headers, body, keep-alive)]."""

    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.done: list[tuple[bytes, bytes, list[tuple[bytes, bytes]], bytes, bool]] = []

    def on_message_begin(self) -> None:
        self.url, self.headers, self.body = b"", [], b""

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.done.append((self.parser.get_method(), self.url, self.headers, self.body,
                          self.parser.should_keep_alive()))


def httptools_reads(data: bytes) -> Any:
    messages = _Messages()
    try:
        messages.parser.feed_data(data)
    except httptools.HttpParserError:
        return None
    return messages.done


def test_the_bootstraps_own_turn_is_recognised() -> None:
    request_id = new_request_id()
    for body in (b'{"ok": true}', b"", b"\x00\xff binary \r\n\r\n GET / HTTP/1.1\r\n\r\n"):
        for content_type in ("application/json", "application/unknown", None):
            assert parse_turn(turn(request_id, body, content_type=content_type), MAX) == \
                (request_id, body)


def test_anything_else_is_left_to_the_general_path() -> None:
    request_id = new_request_id()
    good = turn(request_id, b"{}")
    refused = [
        good[:-1],  # not whole yet
        good[:40],
        good + b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n",
        good.replace(b"/response", b"/error"),
        good.replace(b"HTTP/1.1\r\nHost", b"HTTP/1.0\r\nHost", 1),
        good.replace(b"Content-Length: 2", b"Content-Length: 3"),
        good.replace(b"Content-Length: 2", b"Transfer-Encoding: chunked"),
        good.replace(b"Host: 127.0.0.1:9001\r\nContent-Type",
                     b"Host: 127.0.0.1:9001\r\nConnection: close\r\nContent-Type"),
        good.replace(b"Host: 127.0.0.1:9001\r\n\r\n", b"Host: elsewhere\r\n\r\n"),
        good.replace(b"Content-Type: application/json", b"Content-Type: a\nb"),
        good.replace(b"GET", b"PUT"),
        turn("../../../x", b"{}"),
    ]
    for data in refused:
        assert parse_turn(data, MAX) is None, data
    assert parse_turn(turn(request_id, b"x" * 101), 100) is None  # over the size limit


CANONICAL = st.builds(
    turn,
    st.uuids().map(str),
    st.binary(max_size=64),
    st.from_regex(r"\A[!-~]{1,20}\Z"),
    st.none() | st.from_regex(r"\A[ -~]{0,20}\Z"),
)


@st.composite
def mutated(draw: Any) -> bytes:
    data = bytearray(draw(CANONICAL))
    for _ in range(draw(st.integers(0, 3))):
        position = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["insert", "delete", "replace"]))
        byte = draw(st.sampled_from([b"\r", b"\n", b" ", b":", b"0", b"a", b"A", b"\x00",
                                     b"\r\n", b"\r\n\r\n", b"X-A: b\r\n"]))
        if action == "insert":
            data[position:position] = byte
        elif action == "delete":
            del data[position:position + 1]
        else:
            data[position:position + len(byte)] = byte
    return bytes(data)


@settings(max_examples=1500, deadline=None)
@given(st.one_of(CANONICAL, mutated()))
def test_what_is_recognised_is_what_httptools_reads(data: bytes) -> None:
    recognised = parse_turn(data, MAX)
    if recognised is None:
        return
    request_id, body = recognised
    messages = httptools_reads(data)
    assert messages is not None and len(messages) == 2, data
    (post_method, post_url, _, post_body, post_alive), (get_method, get_url, _, get_body,
                                                        get_alive) = messages
    assert post_method == b"POST" and post_alive and get_alive
    assert post_url == f"/2018-06-01/runtime/invocation/{request_id}/response".encode()
    assert post_body == body
    assert get_method == b"GET" and get_body == b""
    assert get_url == b"/2018-06-01/runtime/invocation/next"
