"""What every peer server shares: options, the notify file and the tiny command set.

Each peer answers, after a `220` greeting: `NOOP` -> `200 OK`, `USER x` -> `230 Logged in`,
`QUIT` -> `221 Goodbye` then close, anything else -> `500 Unknown command`. That is the work of
scenarios S1-S5 (S5 logs in with `USER guest`); only our daemon runs S6 and S7.
"""

import argparse
import asyncio
import os
import signal

GREETING = b"220 bench peer ready\r\n"
OK = b"200 OK\r\n"
REPLIES = {b"NOOP": OK, b"USER": b"230 Logged in\r\n"}
UNKNOWN = b"500 Unknown command\r\n"
GOODBYE = b"221 Goodbye\r\n"
BACKLOG = 1024


def parse_args(description: str, extra=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--notify", metavar="FILE", help="write HOST:PORT here once listening")
    if extra:
        extra(parser)
    return parser.parse_args()


def notify(path: str | None, host: str, port: int) -> None:
    print(f"listening on {host}:{port}", flush=True)
    if path:
        temporary = f"{path}.tmp{os.getpid()}"
        with open(temporary, "w", encoding="utf-8") as file:
            file.write(f"{host}:{port}\n")
        os.replace(temporary, path)


def answer(lines) -> tuple[bytes, bool]:
    """Replies to complete lines (bytes, line ending stripped or not), and whether QUIT came."""
    out = []
    for line in lines:
        verb = line.split(b" ", 1)[0].strip().upper()
        if not verb:
            continue
        if verb == b"QUIT":
            out.append(GOODBYE)
            return b"".join(out), True
        out.append(REPLIES.get(verb, UNKNOWN))
    return b"".join(out), False


def serve_sync(server, notify_path: str | None) -> None:
    """Announce a socketserver-style server, then serve until SIGINT."""
    with server:
        notify(notify_path, *server.server_address[:2])
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass


async def serve_async(server, notify_path: str | None) -> None:
    """Announce an asyncio server, then serve until SIGINT or SIGTERM."""
    notify(notify_path, *server.sockets[0].getsockname()[:2])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()
