"""Engines: the drivers that move bytes between sockets and :class:`~lineproto.connection.Connection`.

Two engines serve the same protocol, because every protocol rule lives in the
connection object and below; an engine only reads, writes, runs timers and
hands blocking work to worker threads:

- ``events`` (the default): one ``asyncio`` event loop with ``asyncio.Protocol``
  transports (uvloop when installed and asked for); commands that may block run
  in worker pools off the loop (:mod:`lineproto.engines.events`).
- ``threads``: ``socketserver.ThreadingTCPServer``, a thread per connection,
  for programs built on socketserver (:mod:`lineproto.engines.threads`).

Both have the same interface (:class:`Server`): construct one (it binds the
socket at once, so ``address`` is known and a busy port fails early; or it
takes listening sockets bound by someone else, ``ServerSettings(sockets=...)``
as systemd passes them, or serves the one connected socket inetd passes,
``ServerSettings(inetd=...)``, and stops when its session ends), call
``serve_forever()`` in the thread that should run it, and ``stop()`` from any
thread or a signal handler. :func:`start_server` runs one in a background
thread as a context manager: see docs/EMBEDDING.md.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field
from typing import Protocol

from .. import DEFAULT_HOST, DEFAULT_PORT
from ..commands import Services
from ..commands.session import TlsPolicy
from ..connection import ConnectionLimits, ServerState
from ..errors import StartError
from ..proxying import MODES as PROXY_MODES
from .tls import TlsConfig

#: Engine names, the default first.
ENGINE_NAMES = ("events", "threads")
#: Event loops the events engine can run on.
LOOP_NAMES = ("auto", "asyncio", "uvloop")
#: Password hashes (scrypt, ~16 MB each) computed at once; more logins wait their turn.
DEFAULT_AUTH_WORKERS = 2
#: Threads for blocking commands when the services have no store (an embedder's own commands);
#: with a store, store-bound commands run in the store's writer (``Store.submit``).
DEFAULT_STORE_WORKERS = 8
#: Seconds shutdown waits for running commands before it closes the rest.
SHUTDOWN_GRACE = 5.0


@dataclass(frozen=True)
class ServerSettings:
    """Where a server listens and how it runs; every field has the daemon's default."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    limits: ConnectionLimits = field(default_factory=ConnectionLimits)
    auth_workers: int = DEFAULT_AUTH_WORKERS
    store_workers: int = DEFAULT_STORE_WORKERS
    grace: float = SHUTDOWN_GRACE
    loop: str = "auto"  # events engine only
    tls: TlsConfig | None = None  # a certificate: AUTH TLS is offered (and the TLS port may listen)
    tls_port: int | None = None  # a second listener whose connections start with the TLS handshake
    require_tls: bool = False  # plaintext connections from other machines must AUTH TLS before logging in
    proxy_protocol: str = "off"  # the plain port's PROXY header: off, v1, v2, any (lineproto.proxying)
    tls_proxy_protocol: str = "off"  # the same for the TLS port (the header comes before the handshake)
    # Listening sockets bound by someone else (systemd's socket activation): when given, the server
    # binds nothing itself (host, port and tls_port are not used) and serves on these.
    sockets: tuple[socket.socket, ...] = ()
    tls_sockets: tuple[socket.socket, ...] = ()  # the same for implicit-TLS listeners
    inetd: socket.socket | None = None  # one connected socket (inetd): serve its session, then stop; no listener

    def __post_init__(self) -> None:
        if self.tls is None and (self.tls_port is not None or self.require_tls):
            raise StartError("a TLS port and --require-tls need a certificate (--cert, --key)")
        for mode in (self.proxy_protocol, self.tls_proxy_protocol):
            if mode not in PROXY_MODES:
                raise StartError(f"unknown PROXY protocol mode {mode!r}: one of {', '.join(PROXY_MODES)}")
        if self.tls_port is None and not self.tls_sockets and self.tls_proxy_protocol != "off":
            raise StartError("--tls-proxy-protocol needs a TLS port (--tls-port)")
        if self.tls is None and self.tls_sockets:
            raise StartError("a TLS listener (lineproto-tls from systemd) needs a certificate (--cert, --key)")
        if self.tls_sockets and not self.sockets:
            raise StartError("pre-bound TLS sockets need a plain one beside them")

    def proxy_for(self, tls_port: bool) -> str:
        """The PROXY protocol mode of the plain listener, or of the TLS port's."""
        return self.tls_proxy_protocol if tls_port else self.proxy_protocol

    @property
    def prebound(self) -> bool:
        """True when the server takes its sockets from :attr:`sockets` or :attr:`inetd` and binds none."""
        return bool(self.sockets) or self.inetd is not None

    @property
    def tls_policy(self) -> TlsPolicy:
        return TlsPolicy(available=self.tls is not None, required=self.require_tls)


def local_address(sock: socket.socket) -> tuple[str, int]:
    """``(host, port)`` of a socket's own end; ``("-", 0)`` for one that is not TCP (an inetd socketpair)."""
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        host, port = sock.getsockname()[:2]
        return str(host), int(port)
    return ("-", 0)


def peer_text(address) -> str:
    """``host:port`` of a peer address as accept() returns it; ``-`` for one that has none (AF_UNIX)."""
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return "-"


class Server(Protocol):
    """What both engines offer."""

    state: ServerState
    address: tuple[str, int]
    tls_address: tuple[str, int] | None  # the TLS port's address, when one listens
    ready: threading.Event
    description: str  # e.g. "events engine on the asyncio loop", for the log

    def serve_forever(self) -> None:
        """Serve until :meth:`stop`; then 421 every session and return within the grace."""

    def stop(self) -> None:
        """Ask :meth:`serve_forever` to stop; safe from any thread and from a signal handler."""

    def responsive(self, timeout: float) -> bool:
        """True while serving and able to take connections, checked within ``timeout`` (the systemd watchdog)."""


def make_server(services: Services, settings: ServerSettings = ServerSettings(), engine: str = "events") -> Server:
    """A server of the named engine, its socket bound (OSError if the address is taken)."""
    if engine == "events":
        from .events import EventServer

        return EventServer(services, settings)
    if engine == "threads":
        from .threads import ThreadedServer

        return ThreadedServer(services, settings)
    raise ValueError(f"unknown engine {engine!r}: one of {', '.join(ENGINE_NAMES)}")


class RunningServer:
    """A server running in a background thread: ``with start_server(...) as running:``.

    ``address`` is where it listens once ``start_server`` returns (it waits for
    readiness); leaving the block, or :meth:`stop`, stops it and waits.
    """

    def __init__(self, server: Server):
        self.server = server
        self._thread = threading.Thread(target=self._serve, name="lineproto-server", daemon=True)
        self._error: BaseException | None = None

    @property
    def address(self) -> tuple[str, int]:
        return self.server.address

    @property
    def alive(self) -> bool:
        """True until the server has stopped."""
        return self._thread.is_alive()

    def _serve(self) -> None:
        try:
            self.server.serve_forever()
        except BaseException as exc:  # reported to the starting thread by start()
            self._error = exc
            self.server.ready.set()

    def start(self, timeout: float = 10.0) -> RunningServer:
        self._thread.start()
        if not self.server.ready.wait(timeout):
            raise TimeoutError(f"server not ready within {timeout} s")
        if self._error is not None:
            raise self._error
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop the server and wait until it has stopped (every session has had its 421)."""
        self.server.stop()
        self._thread.join(timeout)

    def wait(self) -> None:
        """Wait until the server stops (after someone calls :meth:`stop` or ``server.stop()``)."""
        self._thread.join()
        if self._error is not None:
            raise self._error

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_server(
    services: Services, settings: ServerSettings = ServerSettings(), engine: str = "events"
) -> RunningServer:
    """Start a server in a background thread and return once it accepts connections."""
    return RunningServer(make_server(services, settings, engine)).start()
