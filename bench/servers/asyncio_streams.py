#!/usr/bin/env python3
"""asyncio streams NOOP server (asyncio.start_server), written the idiomatic way: readline, write, drain."""

import asyncio

from common import BACKLOG, GREETING, answer, parse_args, serve_async


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
    await serve_async(server, args.notify)


if __name__ == "__main__":
    asyncio.run(main())
