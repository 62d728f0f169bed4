"""lamina's HTTP/1.1 server on a real loopback socket, on uvloop as ``lamina serve`` runs it:
keep-alive, answers in request order under pipelining, the Runtime API's held 202, closing,
100-continue, the body limit, and the encoding kept for a constant response."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import uvloop

from lamina.http.server import HttpServer, encode_response
from lamina.http.types import Pending, Request, Response

Handler = Callable[[Request], Any]


def run_with(handler: Handler, talk: Callable[[int], Awaitable[Any]], **options: Any) -> Any:
    async def main() -> Any:
        server = HttpServer(handler, **options)
        _, port = await server.listen("127.0.0.1", 0)
        try:
            return await talk(port)
        finally:
            await server.close()

    return uvloop.run(main())


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return reader, writer


async def read_answers(reader: asyncio.StreamReader, count: int) -> list[tuple[int, bytes]]:
    """``count`` whole answers: (status, body)."""
    answers = []
    for _ in range(count):
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines[1:] if line)
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        answers.append((int(lines[0].split()[1]), body))
    return answers


def get(path: str, extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: t\r\n{extra}\r\n".encode()


def post(path: str, body: bytes, extra: str = "") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: t\r\n{extra}Content-Length: {len(body)}\r\n\r\n"
            .encode() + body)


def echo_path(request: Request) -> Response:
    return Response(200, [("Content-Type", "text/plain")], request.path.encode())


def test_keep_alive_answers_one_request_after_another() -> None:
    async def talk(port: int) -> list[tuple[int, bytes]]:
        reader, writer = await connect(port)
        answers = []
        for path in ("/a", "/b", "/c"):
            writer.write(get(path))
            answers += await read_answers(reader, 1)
        writer.close()
        return answers

    assert run_with(echo_path, talk) == [(200, b"/a"), (200, b"/b"), (200, b"/c")]


def test_pipelined_answers_keep_request_order_when_the_first_is_slow() -> None:
    async def handler(request: Request) -> Response:
        if request.path == "/slow":
            await asyncio.sleep(0.05)
        return echo_path(request)

    def route(request: Request) -> Any:
        return handler(request) if request.path == "/slow" else echo_path(request)

    async def talk(port: int) -> list[tuple[int, bytes]]:
        reader, writer = await connect(port)
        writer.write(get("/slow") + get("/fast") + post("/p", b"xyz"))
        answers = await read_answers(reader, 3)
        writer.close()
        return answers

    assert run_with(route, talk) == [(200, b"/slow"), (200, b"/fast"), (200, b"/p")]


def test_a_pending_answer_is_written_when_resolved() -> None:
    parked: list[Pending] = []

    def handler(request: Request) -> Any:
        if request.path == "/wait":
            parked.append(Pending())
            return parked[-1]
        return echo_path(request)

    async def talk(port: int) -> list[tuple[int, bytes]]:
        reader, writer = await connect(port)
        writer.write(get("/wait"))
        await asyncio.sleep(0.05)
        assert not reader.at_eof() and len(reader._buffer) == 0  # type: ignore[attr-defined]
        parked[0].resolve(Response(200, body=b"later"))
        answers = await read_answers(reader, 1)
        writer.close()
        return answers

    assert run_with(handler, talk) == [(200, b"later")]


def test_held_answer_goes_out_with_the_pending_one_behind_it() -> None:
    """The Runtime API's shape: ``POST /response`` answered at once and ``GET /next`` pending
    in the same read. With ``hold_before_pending`` the 202 waits for the next event."""
    parked: list[Pending] = []

    def handler(request: Request) -> Any:
        if request.method == "POST":
            return Response(202, body=b"accepted", constant=True)
        parked.append(Pending())
        return parked[-1]

    async def talk(port: int) -> list[Any]:
        reader, writer = await connect(port)
        seen = []
        writer.write(post("/response", b"{}") + get("/next"))
        await asyncio.sleep(0.05)
        seen.append(len(reader._buffer))  # type: ignore[attr-defined]
        parked[0].resolve(Response(200, body=b"event"))
        seen.append(await read_answers(reader, 2))
        writer.write(post("/response", b"{}"))  # alone: answered at once
        seen.append(await read_answers(reader, 1))
        writer.close()
        return seen

    held, both, alone = run_with(handler, talk, hold_before_pending=True)
    assert held == 0
    assert both == [(202, b"accepted"), (200, b"event")]
    assert alone == [(202, b"accepted")]


def test_connection_close_answers_then_closes_and_ignores_what_follows() -> None:
    async def talk(port: int) -> tuple[list[tuple[int, bytes]], bytes]:
        reader, writer = await connect(port)
        writer.write(get("/a", "Connection: close\r\n") + get("/b"))
        answers = await read_answers(reader, 1)
        rest = await asyncio.wait_for(reader.read(), 5)  # EOF: the server closed
        writer.close()
        return answers, rest

    answers, rest = run_with(echo_path, talk)
    assert answers == [(200, b"/a")] and rest == b""


def test_expect_100_continue_gets_the_interim_answer() -> None:
    async def talk(port: int) -> tuple[bytes, list[tuple[int, bytes]]]:
        reader, writer = await connect(port)
        writer.write(b"POST /x HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                     b"Content-Length: 3\r\n\r\n")
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        writer.write(b"abc")
        answers = await read_answers(reader, 1)
        writer.close()
        return interim, answers

    interim, answers = run_with(lambda r: Response(200, body=r.body), talk)
    assert interim.startswith(b"HTTP/1.1 100 Continue")
    assert answers == [(200, b"abc")]


def test_a_body_over_the_limit_is_refused_and_the_connection_stays_usable() -> None:
    async def talk(port: int) -> list[tuple[int, bytes]]:
        reader, writer = await connect(port)
        writer.write(post("/big", b"x" * 100) + get("/after"))
        answers = await read_answers(reader, 2)
        writer.close()
        return answers

    answers = run_with(echo_path, talk, max_body=10)
    assert [status for status, _ in answers] == [413, 200]
    assert answers[1][1] == b"/after"


def test_a_malformed_request_gets_400_and_a_closed_connection() -> None:
    async def talk(port: int) -> bytes:
        reader, writer = await connect(port)
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        data = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        return data

    assert run_with(echo_path, talk).startswith(b"HTTP/1.1 400 ")


def test_a_constant_response_is_encoded_once_and_identical_to_a_fresh_encoding() -> None:
    constant = Response(202, [("Content-Type", "application/json")], b'{"status":"OK"}',
                        constant=True)
    first = encode_response(constant, keep_alive=True)
    assert encode_response(constant, keep_alive=True) is first
    fresh = Response(202, [("Content-Type", "application/json")], b'{"status":"OK"}')
    assert encode_response(fresh, keep_alive=True) == first
    # Closing or HEAD answers are not the kept encoding.
    assert b"connection: close" in encode_response(constant, keep_alive=False)
    assert encode_response(constant, keep_alive=True, head_only=True).endswith(b"\r\n\r\n")


def test_pre_encoded_head_lines_follow_the_header_pairs() -> None:
    response = Response(200, [("A", "1")], b"body", head=b"B: 2\r\nC: 3\r\n")
    wire = encode_response(response, keep_alive=True)
    head, _, body = wire.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 200 OK"
    assert lines.index(b"A: 1") < lines.index(b"B: 2") < lines.index(b"C: 3")
    assert b"content-length: 4" in lines and body == b"body"


def test_a_fast_path_answers_whole_reads_in_order_and_never_sees_half_a_request() -> None:
    parked: list[Pending] = []
    bodies: list[bytes] = []

    def fast(protocol: Any, data: bytes) -> bool:
        if not data.startswith(b"FAST"):
            return False
        parked.append(Pending())
        protocol.answer_recognised(Response(202, body=b"accepted"), parked[-1])
        return True

    def handler(request: Request) -> Response:
        bodies.append(request.body)
        return Response(200, body=b"general")

    async def talk(port: int) -> list[Any]:
        reader, writer = await connect(port)
        seen: list[Any] = []
        writer.write(b"FAST")  # recognised: a 202 held behind a pending answer
        await asyncio.sleep(0.05)
        seen.append(len(reader._buffer))  # type: ignore[attr-defined]
        parked[0].resolve(Response(200, body=b"event"))
        seen.append(await read_answers(reader, 2))
        # Half a request, then the rest, which starts like a fast read: it is the body.
        writer.write(b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 8\r\n\r\n1234")
        await asyncio.sleep(0.05)
        writer.write(b"FAST")
        seen.append(await read_answers(reader, 1))
        writer.close()
        return seen

    held, both, general = run_with(handler, talk, hold_before_pending=True, fast_path=fast)
    assert held == 0
    assert both == [(202, b"accepted"), (200, b"event")]
    assert general == [(200, b"general")] and bodies == [b"1234FAST"]
    assert len(parked) == 1
