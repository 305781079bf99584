"""``/ws``: the line protocol over WebSocket, with aiohttp's real WebSocket client against a real gateway.

The gateway and the daemon are subprocesses (``Gateway`` of test_web, the conftest ``Daemon`` on
both engines); each test drives a WebSocket over a socket and reads the frames the daemon's
lines become.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from lineproto.wire.shapes import Spin
from test_web import gateway  # noqa: F401 - the fixture

TIMEOUT = 20.0


async def frames_until(socket: aiohttp.ClientWebSocketResponse, last: str) -> list[str]:
    """The text frames up to and with the first that starts with ``last``."""
    got = []
    while True:
        message = await asyncio.wait_for(socket.receive(), TIMEOUT)
        assert message.type is aiohttp.WSMsgType.TEXT, message
        got.append(message.data)
        if message.data.startswith(last):
            return got


async def closing(socket: aiohttp.ClientWebSocketResponse) -> int | None:
    """Read until the close frame; its close code."""
    while True:
        message = await asyncio.wait_for(socket.receive(), TIMEOUT)
        if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
            return socket.close_code


def test_a_game_over_the_websocket_one_line_per_frame(gateway):  # noqa: F811
    gw = gateway()

    async def play() -> None:
        async with aiohttp.ClientSession() as client, client.ws_connect(f"{gw.origin}/ws", origin=gw.origin) as ws:
            assert (await frames_until(ws, "220 "))[0].startswith("220 lineproto")
            await ws.send_str("USER guest")
            assert await frames_until(ws, "230 ") == ["230 Welcome, Guest: logged in as guest with play money"]
            await ws.send_str("BET RED 10")
            await ws.send_str("BET 17 5")  # pipelined: two frames, two replies in order
            assert await frames_until(ws, "200 Bet 17") == [
                "200 Bet RED for 10 (pays 1:1); bankroll 90; slip 1",
                "200 Bet 17 for 5 (pays 35:1); bankroll 85; slip 2",
            ]
            await ws.send_str("SPIN")
            spin = await frames_until(ws, "250 ")
            assert len(spin) == 4 and all(line.startswith("250-") for line in spin[:3])
            result = Spin.from_lines(tuple(line[4:] for line in spin))
            assert [(o.bet, o.amount) for o in result.outcomes] == [("RED", 10), ("17", 5)]
            assert result.bankroll == 85 + result.returned and result.net == result.returned - 15
            await ws.send_str("QUIT")
            assert await frames_until(ws, "221 ") == ["221 Goodbye"]
            assert await closing(ws) == 1000  # the daemon closed: so does the WebSocket

    asyncio.run(play())


def test_an_origin_not_allowed_is_refused_at_the_upgrade(gateway):  # noqa: F811
    gw = gateway()

    async def attempt() -> None:
        async with aiohttp.ClientSession() as client:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await client.ws_connect(f"{gw.origin}/ws", origin="http://evil.example")
            assert refused.value.status == 403
            async with client.ws_connect(f"{gw.origin}/ws") as ws:  # no Origin (not a browser): allowed
                assert (await frames_until(ws, "220 "))[0].startswith("220 ")

    asyncio.run(attempt())


@pytest.mark.parametrize(
    "frame, code",
    [
        ("NOOP\r\nQUIT", 1007),
        ("NOOP\nNOOP", 1007),
        ("NOOP\x00", 1007),
        ("NOOP " + "x" * 1020, 1009),
        (b"NOOP", 1003),
    ],
    ids=["crlf", "lf", "nul", "too-long", "binary"],
)
def test_a_frame_that_is_not_one_line_closes_the_websocket(gateway, frame, code):  # noqa: F811
    gw = gateway()

    async def attempt() -> None:
        async with aiohttp.ClientSession() as client, client.ws_connect(f"{gw.origin}/ws") as ws:
            await frames_until(ws, "220 ")
            await ws.send_str("NOOP " + "x" * 1019)  # 1024 bytes: the daemon's limit, still a line
            assert await frames_until(ws, "501 ") == ["501 Syntax: NOOP"]
            if isinstance(frame, bytes):
                await ws.send_bytes(frame)
            else:
                await ws.send_str(frame)
            assert await closing(ws) == code

    asyncio.run(attempt())


def test_the_daemons_own_defences_hold_over_the_websocket(gateway):  # noqa: F811
    gw = gateway()

    async def attempt() -> None:
        async with aiohttp.ClientSession() as client, client.ws_connect(f"{gw.origin}/ws") as ws:
            await frames_until(ws, "220 ")
            await ws.send_str("POST / HTTP/1.1")  # a line that looks like HTTP: the daemon closes on it
            assert await frames_until(ws, "500 ") == [
                "500 This is a line-protocol server, not a web server; closing connection"
            ]
            assert await closing(ws) == 1000

    asyncio.run(attempt())


def test_the_daemon_sees_the_browsers_address_through_proxy_v2(gateway, start_daemon):  # noqa: F811
    daemon = start_daemon("--proxy-protocol", "v2", users=True)
    gw = gateway("--daemon-proxy", daemon=daemon)

    async def stat_peer() -> str:
        connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
        async with (
            aiohttp.ClientSession(connector=connector) as client,
            client.ws_connect(f"{gw.origin}/ws", origin=gw.origin) as ws,
        ):
            await frames_until(ws, "220 ")
            await ws.send_str("STAT")
            status = await frames_until(ws, "211 ")
            return next(line for line in status if line.startswith("211-peer: "))

    assert asyncio.run(stat_peer()).startswith("211-peer: 127.0.0.2:")
    assert asyncio.run(_wheel(gw)) == 200  # the gateway's own guest connection: a LOCAL header
    # a REST session's connection carries the browser's address too
    sessions_peer = daemon.wait_log("login dave from 127.0.0.2:") if _rest_login(gw, "127.0.0.2") else ""
    assert "login dave from 127.0.0.2:" in sessions_peer


async def _wheel(gw) -> int:
    async with aiohttp.ClientSession() as client, client.get(f"{gw.origin}/wheel/american") as response:
        return response.status


def _rest_login(gw, source: str) -> bool:
    """POST /login as dave from ``source``: True when it succeeded."""

    async def login() -> int:
        connector = aiohttp.TCPConnector(local_addr=(source, 0))
        async with (
            aiohttp.ClientSession(connector=connector) as client,
            client.post(f"{gw.origin}/login", json={"user": "dave", "password": "hunter2"}) as response,
        ):
            return response.status

    return asyncio.run(login()) == 200
