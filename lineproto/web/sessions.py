"""Browser sessions: each owns one logged-in line-protocol connection (:class:`~.upstream.Upstream`).

Two ways in, both checked by the daemon's own USER/PASS (the gateway stores no password and
no game state):

- ``POST /login`` makes a :class:`BrowserSession` named by a random cookie (``lp_session``)
  with a random CSRF token; it lasts until ``POST /logout`` or ``idle`` seconds without a
  request (an open ``/events`` stream keeps it), then its connection is closed.
- HTTP Basic: each request names the credentials; the logged-in connection is kept for
  ``basic_idle`` seconds without a request (default 30), keyed by an HMAC of the credentials
  under a key drawn at start (so the table holds nothing a memory dump could replay), so a
  script's requests do not pay the daemon's password hash each. Wrong credentials are never
  kept: each try is a login the daemon counts and throttles.

A connection the daemon closed (idle, shutdown, account deleted) ends its session. Every
``keepalive`` seconds a quiet connection gets a ``NOOP`` so the daemon's idle timeout does not
end a session the browser still uses; the gateway's own ``idle`` timeout takes its place.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field

from ..wire.shapes import Status
from .statuses import ApiError, http_status
from .upstream import DaemonAddress, Upstream, UpstreamClosed, UpstreamTimeout

#: Seconds a cookie session lasts without a request (``--session-idle``).
DEFAULT_IDLE = 600.0
#: Seconds a Basic login's connection is kept without a request.
DEFAULT_BASIC_IDLE = 30.0
#: Seconds of quiet after which a session's connection gets a NOOP (below the daemon's 300 s idle timeout).
DEFAULT_KEEPALIVE = 60.0
#: Sessions (cookie and Basic together) at once: a flood of logins cannot open connections without bound.
DEFAULT_MAX_SESSIONS = 1000


@dataclass
class BrowserSession:
    """A logged-in connection and who it is: ``user``, ``roles`` (from STAT), ``csrf`` (cookie sessions)."""

    id: str
    user: str
    roles: tuple[str, ...]
    upstream: Upstream
    #: True for a Basic login's connection (kept by credentials, no cookie, no CSRF token).
    basic: bool = False
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    last_used: float = field(default_factory=time.monotonic)

    def touch(self) -> None:
        self.last_used = time.monotonic()

    def public(self) -> dict[str, object]:
        """What ``/login`` and ``/session`` answer."""
        return {"user": self.user, "roles": list(self.roles), "csrf": self.csrf}


def roles_from_status(values: dict[str, str]) -> tuple[str, ...]:
    """The roles a session shows by its STAT keys: ``player`` (the table's keys), ``reader`` (the readings'
    keys, which an admin gets too). The daemon does not list roles; the page only needs these two."""
    roles = []
    if "bankroll" in values:
        roles.append("player")
    if "my-readings" in values:
        roles.append("reader")
    return tuple(roles)


async def login(
    address: DaemonAddress,
    user: str,
    password: str | None,
    client: tuple[str, int] | None,
    server: tuple[str, int] | None,
) -> tuple[Upstream, str, tuple[str, ...]]:
    """A new connection logged in as ``user``: (the connection, the name the daemon says, the roles).

    ApiError with the daemon's refusal (401 for 530, 429 for a lock...) or 503 when it cannot be reached.
    The 401 carries no Basic challenge: a page's login form gets it (:meth:`Sessions.basic` adds it)."""
    if not user or any(char.isspace() for char in user):
        raise ApiError(401, 0, "a user name is one word")
    try:
        upstream = await Upstream.open(address, client, server)
    except (OSError, UpstreamTimeout) as exc:
        raise ApiError(503, 0, f"the daemon cannot be reached: {exc}") from None
    try:
        greeting = upstream.greeting
        assert greeting is not None
        if greeting.code != 220:
            raise ApiError.from_reply(greeting)
        reply = await upstream.command(f"USER {user}")
        if reply.code == 331:
            reply = await upstream.command(f"PASS {password or ''}")
        if reply.code != 230:
            raise ApiError(http_status(reply.code) if reply.code >= 400 else 401, reply.code, reply.text)
        status_reply = await upstream.command("STAT")
        values = Status.from_reply(status_reply).texts()
    except ValueError as exc:  # a password with CR/LF/NUL, or over the line limit
        await upstream.close()
        raise ApiError(400, 0, str(exc)) from None
    except (UpstreamClosed, UpstreamTimeout) as exc:
        await upstream.close(polite=False)
        raise ApiError(503, 0, f"the daemon went away: {exc}") from None
    except BaseException:
        await upstream.close()
        raise
    return upstream, values.get("user", user), roles_from_status(values)


#: The header of a 401 to a request that may try Basic credentials.
CHALLENGE = {"WWW-Authenticate": 'Basic realm="lineproto", charset="UTF-8"'}


class Sessions:
    """Every live session, by cookie id and by Basic credentials, and the sweep that ends idle ones."""

    def __init__(
        self,
        address: DaemonAddress,
        idle: float = DEFAULT_IDLE,
        basic_idle: float = DEFAULT_BASIC_IDLE,
        keepalive: float = DEFAULT_KEEPALIVE,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
    ):
        self.address = address
        self.idle, self.basic_idle, self.keepalive = idle, basic_idle, keepalive
        self.max_sessions = max_sessions
        self._by_id: dict[str, BrowserSession] = {}
        self._basic: dict[bytes, BrowserSession] = {}
        self._basic_locks: dict[bytes, asyncio.Lock] = {}
        self._key = secrets.token_bytes(32)

    def __len__(self) -> int:
        return len(self._by_id) + len(self._basic)

    def _room(self) -> None:
        if len(self) >= self.max_sessions:
            raise ApiError(503, 0, f"the gateway holds {self.max_sessions} sessions, its most: try again later")

    async def login(
        self, user: str, password: str | None, client: tuple[str, int] | None, server: tuple[str, int] | None
    ) -> BrowserSession:
        """A new cookie session (``POST /login``)."""
        self._room()
        upstream, name, roles = await login(self.address, user, password, client, server)
        session = BrowserSession(secrets.token_urlsafe(32), name, roles, upstream)
        self._by_id[session.id] = session
        return session

    def get(self, session_id: str | None) -> BrowserSession | None:
        """The live cookie session of that id (its use noted), or None."""
        session = self._by_id.get(session_id or "")
        if session is None:
            return None
        if session.upstream.closed:
            self._by_id.pop(session.id, None)
            return None
        session.touch()
        return session

    async def basic(
        self, user: str, password: str, client: tuple[str, int] | None, server: tuple[str, int] | None
    ) -> BrowserSession:
        """The connection logged in with these Basic credentials: kept from a request before, or a new login."""
        key = hmac.new(self._key, f"{user}\0{password}".encode(), hashlib.sha256).digest()
        lock = self._basic_locks.setdefault(key, asyncio.Lock())
        async with lock:  # two requests with new credentials at once: one login
            session = self._basic.get(key)
            if session is not None and not session.upstream.closed:
                session.touch()
                return session
            self._room()
            try:
                upstream, name, roles = await login(self.address, user, password, client, server)
            except ApiError as exc:
                if exc.status == 401:
                    exc.headers.update(CHALLENGE)
                raise
            finally:
                if key not in self._basic:
                    self._basic_locks.pop(key, None)
            session = BrowserSession(key.hex(), name, roles, upstream, basic=True)
            self._basic[key] = session
            self._basic_locks[key] = lock
            return session

    async def drop(self, session: BrowserSession) -> None:
        """End a session: forget it, QUIT its connection."""
        self._by_id.pop(session.id, None)
        if session.basic:
            key = bytes.fromhex(session.id)
            self._basic.pop(key, None)
            self._basic_locks.pop(key, None)
        await session.upstream.close()

    async def sweep(self) -> None:
        """End the sessions idle too long (or whose connection the daemon closed); NOOP the quiet ones."""
        now = time.monotonic()
        ending: list[BrowserSession] = []
        for session in list(self._by_id.values()):
            watched = session.upstream.subscribers > 0
            if session.upstream.closed or (now - session.last_used > self.idle and not watched):
                ending.append(session)
        for session in list(self._basic.values()):
            if session.upstream.closed or now - session.last_used > self.basic_idle:
                ending.append(session)
        for session in ending:
            await self.drop(session)
        for session in [*self._by_id.values(), *self._basic.values()]:
            if now - session.upstream.last_sent > self.keepalive:
                try:
                    await session.upstream.command("NOOP")
                except (UpstreamClosed, UpstreamTimeout):
                    await self.drop(session)

    async def run_sweeps(self, every: float) -> None:
        """:meth:`sweep` every ``every`` seconds, until cancelled."""
        while True:
            await asyncio.sleep(every)
            await self.sweep()

    async def close(self) -> None:
        """End every session (the gateway stops)."""
        for session in [*self._by_id.values(), *self._basic.values()]:
            await self.drop(session)
