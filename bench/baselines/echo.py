"""The floor of every warm-invoke figure: a bare loopback HTTP server on uvloop that answers
every request at once, without parsing more than the end of its headers.

    python -m bench.baselines.echo PORT
"""

from __future__ import annotations

import asyncio
import sys

import uvloop

ANSWER = (b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\ncontent-type: application/json\r\n\r\n"
          b'{"ok":true}')


class Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(ANSWER * max(1, data.count(b"\r\n\r\n")))  # type: ignore[attr-defined]


async def main(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(Echo, "127.0.0.1", port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1])))
