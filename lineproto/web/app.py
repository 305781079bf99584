"""The gateway's HTTP application (aiohttp): its routes, login and logout, who is asking, the checks.

:class:`Gateway` holds what the requests share (the sessions, the wheels' guest connections, the
configuration), turns every refusal into the JSON error of :mod:`.statuses`, checks the Origin of
every change and the CSRF token of the cookie's, and says which session a request is
(:meth:`Gateway.who`); the resources (:mod:`.resources`) and ``/ws`` (:mod:`.ws`) do the rest.
The gateway keeps no game state: bankrolls, bets and rounds are the daemon's. docs/WEB.md is the
contract with the page (lineproto/web/static/).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from ..wire import ProtocolError, Reply
from ..wire.shapes import Spin
from .bodies import MAX_BODY, body_of, local, peer
from .resources import Meters, Roulette, Tables, ok
from .sessions import CHALLENGE, BrowserSession, Sessions
from .statuses import ApiError, refused
from .upstream import DaemonAddress, Upstream, UpstreamClosed, UpstreamTimeout
from .ws import websocket

log = logging.getLogger("lineproto.web")

#: The cookie that names a browser session.
COOKIE = "lp_session"
#: The header a state-changing request authenticated by the cookie carries its CSRF token in.
CSRF_HEADER = "X-CSRF-Token"
#: Methods that change state: Origin-checked always, CSRF-checked under the cookie.
CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Where the page's files are (the other half of the gateway, branch webpage).
STATIC = Path(__file__).resolve().parent / "static"


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
        get, post = app.router.add_get, app.router.add_post
        get("/", self.index)
        if self.config.static.is_dir():
            app.router.add_static("/static/", self.config.static)
        post("/login", self.login)
        post("/logout", self.logout)
        get("/session", self.session)
        for resources in (Roulette(self), Tables(self), Meters(self)):
            app.router.add_routes(resources.routes())

        get("/ws", lambda request: websocket(self, request))
        app.on_response_prepare.append(_protect)
        app.on_startup.append(self._start)
        # Sessions end at shutdown, before the runner waits for the handlers: an open /events stream then
        # ends at once (its queue gets None) instead of holding the stop until its next heartbeat.
        app.on_shutdown.append(self._end_sessions)
        app.on_cleanup.append(self._stop)
        return app

    async def _start(self, app: web.Application) -> None:
        every = max(min(self.config.keepalive, self.config.basic_idle, self.config.session_idle) / 2, 0.05)
        self._sweeper = asyncio.get_running_loop().create_task(self.sessions.run_sweeps(every))

    async def _end_sessions(self, app: web.Application) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        await self.sessions.close()

    async def _stop(self, app: web.Application) -> None:
        await self._end_sessions(app)  # again: a session begun while the others ended
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
        body = await body_of(request, form=True)
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
