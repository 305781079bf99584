#!/usr/bin/env python3
"""asyncio streams NOOP server (asyncio.start_server), written the idiomatic way: readline, write, drain."""

import asyncio
import signal

from common import GREETING, BACKLOG, answer, notify, parse_args


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
    writer.write(GREETING)
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            out, quit_ = answer((line,))
            if out:
                writer.write(out)
                await writer.drain()
            if quit_:
                break
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def main():
    args = parse_args(__doc__)
    server = await asyncio.start_server(handle, args.host, args.port, backlog=BACKLOG)
    notify(args.notify, *server.sockets[0].getsockname()[:2])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
