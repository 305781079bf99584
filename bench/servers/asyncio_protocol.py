#!/usr/bin/env python3
"""asyncio Protocol NOOP server: data_received answers every complete line with one write."""

import asyncio

from common import BACKLOG, GREETING, answer, parse_args, serve_async


class LineProtocol(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.buffer = b""
        transport.write(GREETING)

    def data_received(self, data):
        buffer = self.buffer + data
        if b"\n" not in data:
            self.buffer = buffer
            return
        *lines, self.buffer = buffer.split(b"\n")
        out, quit_ = answer(lines)
        if out:
            self.transport.write(out)
        if quit_:
            self.transport.close()


async def main():
    args = parse_args(__doc__)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(LineProtocol, args.host, args.port, backlog=BACKLOG)
    await serve_async(server, args.notify)


if __name__ == "__main__":
    asyncio.run(main())
