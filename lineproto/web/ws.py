"""``GET /ws``: the raw line protocol over a WebSocket (what websockify does for VNC, for lines).

One daemon connection per WebSocket. Each text frame from the browser is one command line
(without its line ending); each line the daemon sends (replies, events, the greeting) is one
text frame, without its CR LF. The frames are aiohttp's (RFC 6455 is not written here).

Refused with a close code, and the daemon connection closed:

- a binary frame: 1003 (unsupported data);
- a frame holding CR, LF or NUL (it would smuggle a second command): 1007 (invalid payload);
- a frame over the daemon's line limit (1024 bytes as UTF-8): 1009 (message too big).

The upgrade is refused with 403 when the request's ``Origin`` is not in the allow-list (a web
page elsewhere cannot drive the daemon through a visitor's browser). With ``--daemon-proxy``
the connection opens with a PROXY v2 header that names the browser's address, so ``STAT``'s
``peer``, the per-address limits and the login throttling are the browser's. Flow control is
the daemon's own: a frame is read only once the line before it was handed to the socket, and
the daemon's lines are read only as fast as the browser takes their frames.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aiohttp import WSCloseCode, WSMsgType, web

from ..wire.limits import MAX_CLIENT_REPLY_LINE_BYTES, MAX_LINE_BYTES
from .bodies import local, peer
from .statuses import ApiError
from .upstream import UpstreamTimeout, open_stream

if TYPE_CHECKING:
    from .app import Gateway

#: Close codes (RFC 6455 section 7.4.1).
UNSUPPORTED = WSCloseCode.UNSUPPORTED_DATA  # 1003
INVALID = WSCloseCode.INVALID_TEXT  # 1007
TOO_BIG = WSCloseCode.MESSAGE_TOO_BIG  # 1009
#: Largest frame aiohttp reads at all (bigger ones close with 1009 before they are read whole).
MAX_FRAME = 4 * MAX_LINE_BYTES


async def websocket(gateway: Gateway, request: web.Request) -> web.StreamResponse:
    if not gateway.origin_allowed(request):
        raise ApiError(403, 0, f"origin {request.headers['Origin'][:100]} is not allowed (--allow-origin)")
    try:
        reader, writer = await open_stream(gateway.config.daemon, peer(request), local(request))
    except (OSError, UpstreamTimeout) as exc:
        raise ApiError(503, 0, f"the daemon cannot be reached: {exc}") from None
    socket = web.WebSocketResponse(max_msg_size=MAX_FRAME, heartbeat=30.0)
    try:
        await socket.prepare(request)
        browser = asyncio.ensure_future(_browser_to_daemon(socket, writer))
        daemon = asyncio.ensure_future(_daemon_to_browser(reader, socket))
        done, pending = await asyncio.wait({browser, daemon}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        first = done.pop()
        code, why = first.result() if first.exception() is None else (WSCloseCode.INTERNAL_ERROR, "gateway error")
        if not socket.closed:
            await socket.close(code=code, message=why.encode())
    finally:
        writer.close()
        if not socket.closed:
            await socket.close()
    return socket


async def _browser_to_daemon(socket: web.WebSocketResponse, writer: asyncio.StreamWriter) -> tuple[int, str]:
    """Each text frame as a line to the daemon, until the browser closes or sends what is not one line:
    the close code and reason to end the WebSocket with."""
    async for message in socket:
        if message.type is WSMsgType.TEXT:
            line: str = message.data
            if any(char in line for char in "\r\n\0"):
                return INVALID, "one line per frame: no CR, LF or NUL"
            data = line.encode("utf-8")
            if len(data) > MAX_LINE_BYTES:
                return TOO_BIG, f"a line is at most {MAX_LINE_BYTES} bytes"
            writer.write(data + b"\r\n")
            await writer.drain()
        elif message.type is WSMsgType.BINARY:
            return UNSUPPORTED, "text frames only, one line each"
    return WSCloseCode.OK, "closed by the browser"


async def _daemon_to_browser(reader: asyncio.StreamReader, socket: web.WebSocketResponse) -> tuple[int, str]:
    """Each line the daemon sends as a text frame, until the daemon closes: then the WebSocket closes (1000)."""
    buffer = b""
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            lines = (buffer + data).split(b"\n")
            buffer = lines.pop()
            if len(buffer) > MAX_CLIENT_REPLY_LINE_BYTES:
                break
            for raw in lines:
                await socket.send_str(raw.removesuffix(b"\r").decode("utf-8", "replace"))
    except (ConnectionError, OSError):
        pass
    return WSCloseCode.OK, "the daemon closed the connection"
