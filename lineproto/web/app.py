"""The gateway's HTTP application (aiohttp): the REST resources, login, CSRF and Origin checks, SSE.

Every resource is a thin translation: the request's JSON becomes one daemon command on the
session's own connection, the reply's shape (lineproto.wire.shapes) becomes JSON
(:mod:`.replies`), a refusal becomes the status of :mod:`.statuses`' table with the daemon's
code and text. The gateway keeps no game state: bankrolls, bets and rounds are the daemon's.
docs/WEB.md is the contract with the page (lineproto/web/static/).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from ..wire import ProtocolError, Reply
from ..wire.shapes import ALL_JOBS_DONE, Accepted, Cleared, History, Job, OpenBets, PlacedBet, Receipt, Spin, Status
from . import replies
from .sessions import CHALLENGE, BrowserSession, Sessions
from .statuses import ApiError, refused
from .upstream import DaemonAddress, Upstream, UpstreamClosed, UpstreamTimeout

log = logging.getLogger("lineproto.web")

#: The cookie that names a browser session.
COOKIE = "lp_session"
#: The header a state-changing request authenticated by the cookie carries its CSRF token in.
CSRF_HEADER = "X-CSRF-Token"
#: Methods that change state: Origin-checked always, CSRF-checked under the cookie.
CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Where the page's files are (the other half of the gateway, branch webpage).
STATIC = Path(__file__).resolve().parent / "static"
#: Largest request body read, in bytes: a list of 200 bets fits many times over.
MAX_BODY = 64 * 1024
#: The wheels of ``GET /wheel/<kind>``.
WHEELS = ("american", "european")
#: Bets one POST /bet may list: the daemon's most open bets per table.
MAX_BETS = 200
#: Seconds between comment lines on an idle /events stream (so a vanished browser is noticed).
SSE_HEARTBEAT = 15.0

_WORD = re.compile(r"\S+")
_DIGITS = re.compile(r"[0-9]{1,18}")

GATEWAY_KEY: web.AppKey[Gateway] = web.AppKey("gateway")


@dataclass
class GatewayConfig:
    """What ``client.py web`` was told: the daemon, the allowed origins, HTTPS or not, the timeouts."""

    daemon: DaemonAddress
    allow_origins: set[str] = field(default_factory=set)
    secure: bool = False
    session_idle: float = 600.0
    basic_idle: float = 30.0
    keepalive: float = 60.0
    max_sessions: int = 1000
    static: Path = STATIC


def peer(request: web.Request) -> tuple[str, int] | None:
    """The browser's address and port (for the daemon's PROXY header), or None."""
    transport = request.transport
    name = transport.get_extra_info("peername") if transport is not None else None
    return (name[0], name[1]) if isinstance(name, tuple) else None


def local(request: web.Request) -> tuple[str, int] | None:
    """The gateway's address and port the browser connected to."""
    transport = request.transport
    name = transport.get_extra_info("sockname") if transport is not None else None
    return (name[0], name[1]) if isinstance(name, tuple) else None


def ok(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status)


class WheelHouse:
    """``GET /wheel/<kind>`` without a login: one guest connection per wheel, opened when first asked,
    spinning with no bets (the guest's bankroll never moves); concurrent requests pipeline on it."""

    def __init__(self, address: DaemonAddress):
        self.address = address
        self._upstreams: dict[str, Upstream] = {}
        self._lock = asyncio.Lock()

    async def _upstream(self, kind: str) -> Upstream:
        async with self._lock:
            upstream = self._upstreams.get(kind)
            if upstream is None or upstream.closed:
                try:
                    upstream = await Upstream.open(self.address)  # with --daemon-proxy: a LOCAL header
                except (OSError, UpstreamTimeout) as exc:
                    raise ApiError(503, 0, f"the daemon cannot be reached: {exc}") from None
                try:
                    assert upstream.greeting is not None
                    refused(upstream.greeting)
                    refused(await upstream.command("USER guest"))
                    refused(await upstream.command(f"TABL {kind.upper()}"))
                except BaseException:
                    await upstream.close()
                    raise
                self._upstreams[kind] = upstream
            return upstream

    async def spin(self, kind: str) -> Spin:
        for attempt in (1, 2):  # a connection the daemon closed since (idle timeout): once more on a new one
            upstream = await self._upstream(kind)
            try:
                return Spin.from_reply(refused(await upstream.command("SPIN")))
            except UpstreamClosed:
                if attempt == 2:
                    raise
            except ApiError as exc:
                if exc.code != 421 or attempt == 2:
                    raise
        raise AssertionError("not reached")

    async def close(self) -> None:
        for upstream in self._upstreams.values():
            await upstream.close()


class Gateway:
    """The application's state: the sessions, the wheels, the configuration; :meth:`app` builds the routes."""

    def __init__(self, config: GatewayConfig):
        self.config = config
        self.sessions = Sessions(
            config.daemon, config.session_idle, config.basic_idle, config.keepalive, config.max_sessions
        )
        self.wheels = WheelHouse(config.daemon)
        self._sweeper: asyncio.Task[None] | None = None

    # -- the application -------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard], client_max_size=MAX_BODY)
        app[GATEWAY_KEY] = self
        get, post, delete = app.router.add_get, app.router.add_post, app.router.add_delete
        get("/", self.index)
        if self.config.static.is_dir():
            app.router.add_static("/static/", self.config.static)
        post("/login", self.login)
        post("/logout", self.logout)
        get("/session", self.session)
        get("/wheel/{kind}", self.wheel)
        post("/wheel", self.spin)
        get("/player", self.player)
        get("/bet", self.bets)
        post("/bet", self.place)
        delete("/bet", self.clear)
        get("/bet/{slip}", self.slip)
        get("/history", self.history)
        get("/tables", self.tables)
        post("/tables/leave", self.leave)
        post("/tables/chat", self.chat)
        post("/tables/{name}/join", self.join)
        get("/events", self.events)
        post("/meter/job", self.job)
        post("/meter/reading", self.reading)
        get("/meter/status", self.meter_status)
        from .ws import websocket  # the line protocol over WebSocket

        get("/ws", lambda request: websocket(self, request))
        app.on_response_prepare.append(_protect)
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)
        return app

    async def _start(self, app: web.Application) -> None:
        every = max(min(self.config.keepalive, self.config.basic_idle, self.config.session_idle) / 2, 0.05)
        self._sweeper = asyncio.get_running_loop().create_task(self.sessions.run_sweeps(every))

    async def _stop(self, app: web.Application) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        await self.sessions.close()
        await self.wheels.close()

    def origin_allowed(self, request: web.Request) -> bool:
        """True unless the request names an Origin that is not in the allow-list."""
        origin = request.headers.get("Origin")
        return origin is None or origin in self.config.allow_origins

    @web.middleware
    async def _guard(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """The Origin check of every state-changing request, and every refusal as a JSON error."""
        try:
            if request.method in CHANGING and not self.origin_allowed(request):
                raise ApiError(403, 0, f"origin {request.headers['Origin'][:100]} is not allowed (--allow-origin)")
            return await handler(request)
        except ApiError as exc:
            return web.json_response(
                {"error": {"code": exc.code, "text": exc.text}}, status=exc.status, headers=exc.headers
            )
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return web.json_response(
                {"error": {"code": 0, "text": exc.reason}}, status=exc.status, headers=_allow_header(exc)
            )
        except (UpstreamClosed, UpstreamTimeout) as exc:
            return web.json_response({"error": {"code": 0, "text": f"the daemon went away: {exc}"}}, status=503)
        except ProtocolError as exc:
            log.warning("a reply the gateway cannot read: %s", exc)
            return web.json_response({"error": {"code": 0, "text": f"unexpected reply: {exc}"}}, status=502)

    # -- who is asking -----------------------------------------------------------

    async def who(self, request: web.Request) -> BrowserSession:
        """The request's session: its cookie (a changing request must carry the CSRF token), else Basic
        credentials, else 401 (with the Basic challenge unless a cookie came: the page logs in again)."""
        cookie = request.cookies.get(COOKIE)
        session = self.sessions.get(cookie)
        if session is not None:
            if request.method in CHANGING:
                token = request.headers.get(CSRF_HEADER, "")
                if not _same(token, session.csrf):
                    raise ApiError(403, 0, f"a change needs the session's {CSRF_HEADER} header")
            return session
        credentials = _basic_credentials(request)
        if credentials is not None:
            return await self.sessions.basic(*credentials, peer(request), local(request))
        if cookie:
            raise ApiError(401, 0, "the session has ended: log in again")
        raise ApiError(401, 0, "log in: POST /login, or HTTP Basic authentication", CHALLENGE)

    async def command(self, session: BrowserSession, line: str) -> Reply:
        """One command on the session's connection; its refusal raised as ApiError. A connection the daemon
        closed ends the session."""
        try:
            reply = await session.upstream.command(line)
        except ValueError as exc:
            raise ApiError(400, 0, str(exc)) from None
        except (UpstreamClosed, UpstreamTimeout) as exc:
            await self.sessions.drop(session)
            raise ApiError(503, 0, f"the daemon closed the session's connection: {exc}") from None
        if reply.code == 421:
            await self.sessions.drop(session)
        return refused(reply)

    async def ask(self, request: web.Request, line: str) -> Reply:
        return await self.command(await self.who(request), line)

    # -- the resources -----------------------------------------------------------

    async def index(self, request: web.Request) -> web.StreamResponse:
        page = self.config.static / "index.html"
        if not page.is_file():
            raise ApiError(404, 0, "the page is not installed (lineproto/web/static/index.html)")
        return web.FileResponse(page)

    async def login(self, request: web.Request) -> web.Response:
        body = await _body(request, form=True)
        user, password = body.get("user"), body.get("password")
        if not isinstance(user, str) or not (password is None or isinstance(password, str)):
            raise ApiError(400, 0, 'login with {"user": "...", "password": "..."}')
        old = self.sessions.get(request.cookies.get(COOKIE))
        session = await self.sessions.login(user, password, peer(request), local(request))
        if old is not None:
            await self.sessions.drop(old)
        response = ok(session.public())
        response.set_cookie(
            COOKIE,
            session.id,
            httponly=True,
            samesite="Strict",
            secure=self.config.secure,
            path="/",
        )
        return response

    async def logout(self, request: web.Request) -> web.Response:
        session = await self.who(request)
        await self.sessions.drop(session)
        response = ok({"user": None})
        response.del_cookie(COOKIE, path="/")
        return response

    async def session(self, request: web.Request) -> web.Response:
        session = self.sessions.get(request.cookies.get(COOKIE))
        if session is None:
            raise ApiError(401, 0, "no session: POST /login")
        return ok(session.public())

    async def wheel(self, request: web.Request) -> web.Response:
        kind = request.match_info["kind"]
        if kind not in WHEELS:
            raise ApiError(404, 0, f"no wheel {kind[:20]}: /wheel/american or /wheel/european")
        result = await self.wheels.spin(kind)
        return ok(replies.pocket(result.pocket, result.properties))

    async def spin(self, request: web.Request) -> web.Response:
        return ok(replies.spin(Spin.from_reply(await self.ask(request, "SPIN"))))

    async def player(self, request: web.Request) -> web.Response:
        values = Status.from_reply(await self.ask(request, "STAT")).texts()
        if "bankroll" not in values:
            raise ApiError(403, 532, "Permission denied: the player resource needs the player role")
        return ok(
            {
                "user": values.get("user"),
                "wheel": values["wheel"],
                "bankroll": int(values["bankroll"]),
                "rounds": int(values["rounds"]),
                "open_bet_count": int(values["open-bet-count"]),
                "open_bet_chips": int(values["open-bet-chips"]),
            }
        )

    async def bets(self, request: web.Request) -> web.Response:
        return ok(replies.open_bets(OpenBets.from_reply(await self.ask(request, "BETS"))))

    async def place(self, request: web.Request) -> web.Response:
        """One bet or a list, all placed or none: one BET, or one MBET (the daemon's atomic list)."""
        session = await self.who(request)
        wanted = _bet_list(await _body(request))
        if len(wanted) == 1:
            bet, amount = wanted[0]
            reply = await self.command(session, f"BET {bet} {amount}")
        else:
            reply = await self.command(session, "MBET " + ", ".join(f"{bet} {amount}" for bet, amount in wanted))
        placed = [PlacedBet.from_line(line) for line in reply.lines]
        if reply.code != PlacedBet.CODE or len(placed) != len(wanted):
            raise ProtocolError(f"expected {len(wanted)} placed bets, got {str(reply)[:80]!r}")
        return ok(replies.placed(placed), status=201)

    async def clear(self, request: web.Request) -> web.Response:
        return ok(replies.cleared(Cleared.from_reply(await self.ask(request, "CLR"))))

    async def slip(self, request: web.Request) -> web.Response:
        number = request.match_info["slip"]
        if not _DIGITS.fullmatch(number):
            raise ApiError(400, 0, "a slip is a whole number: GET /bet/7")
        return ok(replies.receipt(Receipt.from_reply(await self.ask(request, f"SLIP {int(number)}"))))

    async def history(self, request: web.Request) -> web.Response:
        count = request.query.get("count")
        if count is not None and not _DIGITS.fullmatch(count):
            raise ApiError(400, 0, "count is a whole number, 1 to 100: GET /history?count=10")
        line = "HIST" if count is None else f"HIST {int(count)}"
        return ok(replies.history(History.from_reply(await self.ask(request, line))))

    async def tables(self, request: web.Request) -> web.Response:
        return ok(replies.tables(await self.ask(request, "LIST")))

    async def join(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if not _WORD.fullmatch(name):
            raise ApiError(400, 0, "a table's name is one word")
        reply = await self.ask(request, f"JOIN {name}")
        return ok({"table": name, "text": reply.text})

    async def leave(self, request: web.Request) -> web.Response:
        return ok({"text": (await self.ask(request, "LEAV")).text})

    async def chat(self, request: web.Request) -> web.Response:
        session = await self.who(request)
        text = (await _body(request)).get("text")
        if not isinstance(text, str) or not text.strip():
            raise ApiError(400, 0, 'chat with {"text": "..."}')
        return ok({"text": (await self.command(session, f"CHAT {text}")).text})

    async def events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: every 6yz line the session's connection gets, as ``event: <code>`` and JSON data."""
        session = await self.who(request)
        queue = session.upstream.subscribe()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        try:
            await response.prepare(request)
            await response.write(b": lineproto events\n\n")
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), SSE_HEARTBEAT)
                except TimeoutError:
                    await response.write(b": still here\n\n")
                    session.touch()
                    continue
                if item is None:
                    break
                data = json.dumps(replies.event(item))
                await response.write(f"event: {item.code}\ndata: {data}\n\n".encode())
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            session.upstream.unsubscribe(queue)
        return response

    async def job(self, request: web.Request) -> web.Response:
        reply = await self.ask(request, "JOB")
        if reply.code == ALL_JOBS_DONE:
            return ok({"meter": None, "done": True, "text": reply.text})
        return ok({"meter": Job.from_reply(reply).meter, "done": False})

    async def reading(self, request: web.Request) -> web.Response:
        session = await self.who(request)
        body = await _body(request)
        meter, reading, reason, when = body.get("meter"), body.get("reading"), body.get("reason"), body.get("time")
        if not isinstance(meter, str) or not _WORD.fullmatch(meter):
            raise ApiError(400, 0, 'a reading names its meter: {"meter": "G10001", "reading": 5983}')
        if reason is not None and reading is None:
            if not isinstance(reason, str) or not reason.strip():
                raise ApiError(400, 0, 'a reason is text: {"meter": "G10001", "reason": "Dog in the yard"}')
            line = f"READ {meter} - {reason}"
        elif reason is None and _is_reading(reading):
            line = f"READ {meter} {reading}"
            if when is not None:
                if not isinstance(when, str) or not when.strip():
                    raise ApiError(400, 0, 'a time is ISO-8601 text: "2026-11-22T09:15Z"')
                line += f" {when}"
        else:
            raise ApiError(400, 0, "send a reading (a whole number, 0 or more) or a reason, not both")
        return ok(replies.accepted(Accepted.from_reply(await self.command(session, line))))

    async def meter_status(self, request: web.Request) -> web.Response:
        values = Status.from_reply(await self.ask(request, "STAT")).texts()
        if "my-readings" not in values:
            raise ApiError(403, 532, "Permission denied: the meter status needs the admin or reader role")
        return ok(
            {
                "user": values.get("user"),
                "my_readings": int(values["my-readings"]),
                "all_readings": int(values["all-readings"]),
            }
        )


#: Headers on every response: no page elsewhere may frame this one (a framed table is a clickjacked
#: bet), no guessing of content types, no address of ours in another site's Referer.
PROTECTION = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


async def _protect(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in PROTECTION.items():
        response.headers.setdefault(name, value)
    if response.content_type == "application/json":
        response.headers.setdefault("Cache-Control", "no-store")  # a bankroll is never a cached answer


def _allow_header(exc: web.HTTPException) -> dict[str, str]:
    allow = exc.headers.get("Allow")
    return {"Allow": allow} if allow else {}


def _same(given: str, expected: str) -> bool:
    """The CSRF token check, in constant time."""
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


def _basic_credentials(request: web.Request) -> tuple[str, str] | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        text = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise ApiError(401, 0, "the Basic credentials are not base64 of UTF-8 user:password", CHALLENGE) from None
    user, colon, password = text.partition(":")
    if not colon or not user:
        raise ApiError(401, 0, "the Basic credentials are user:password", CHALLENGE)
    return user, password


async def _body(request: web.Request, form: bool = False) -> dict[str, Any]:
    """The request's JSON object (or, where ``form``, a form's fields); 400 for anything else."""
    kind = request.content_type
    try:
        if form and kind in ("application/x-www-form-urlencoded", "multipart/form-data"):
            return {key: value for key, value in (await request.post()).items() if isinstance(value, str)}
        if kind != "application/json":
            raise ApiError(415, 0, "send JSON (Content-Type: application/json)")
        body = await request.json()
    except json.JSONDecodeError as exc:
        raise ApiError(400, 0, f"the body is not JSON: {exc}") from None
    except UnicodeDecodeError:
        raise ApiError(400, 0, "the body is not UTF-8") from None
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(413, 0, f"the body is over {MAX_BODY} bytes") from None
    if isinstance(body, list) and not form:
        return {"list": body}
    if not isinstance(body, dict):
        raise ApiError(400, 0, "the body is a JSON object")
    return body


def _bet_list(body: dict[str, Any]) -> list[tuple[str, int]]:
    """``{"bet", "amount"}`` or a list of them, checked: each bet one or more words without a comma, each
    amount a whole number above 0 (the daemon checks the rest: the layout, the limits, the chips)."""
    items = body["list"] if "list" in body and len(body) == 1 else [body]
    if not items:
        raise ApiError(400, 0, "the list of bets is empty")
    if len(items) > MAX_BETS:
        raise ApiError(400, 0, f"at most {MAX_BETS} bets at once")
    wanted = []
    for item in items:
        if not isinstance(item, dict) or set(item) != {"bet", "amount"}:
            raise ApiError(400, 0, 'a bet is {"bet": "RED", "amount": 5}')
        bet, amount = item["bet"], item["amount"]
        if not isinstance(bet, str) or not bet.strip() or "," in bet or not bet.isprintable():
            raise ApiError(400, 0, 'a bet is named by text such as "RED" or "SPLIT 17-18"')
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 1:
            raise ApiError(400, 0, "an amount is a whole number of chips above 0")
        wanted.append((" ".join(bet.split()), amount))
    return wanted


def _is_reading(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value >= 0
    return isinstance(value, str) and bool(_DIGITS.fullmatch(value))
