"""One connection's protocol with no I/O: bytes and clock ticks in, bytes and actions out.

Everything between the socket and the :class:`~lineproto.commands.Session`
lives here, so both engines (``lineproto.engines``) are thin drivers and every
rule is tested without a network: framing and telnet stripping (``wire``), the
greeting, dispatch, QUIT and close-after-reply, pipelining in order, the idle
timeout, the 421s for idle, shutdown and a full server, the STAT counters.

States
======

=========  =================================================================  ================
state      meaning                                                            next
=========  =================================================================  ================
NEW        created; :meth:`Connection.start` sends the greeting or a 421      READY, PROXY,
                                                                              CLOSING
PROXY      waiting for the PROXY header (below); nothing is sent             READY, NEW (TLS),
                                                                              CLOSING
READY      complete lines are answered, in order, as they arrive              BUSY, CLOSING
BUSY       a command runs in a worker (:class:`RunBlocking`); later input     READY, HELD,
           is kept unanswered until its reply is out, so replies stay in      CLOSING
           order and the session reads its own writes; no idle timeout
UPGRADING  ``AUTH TLS`` was answered 234: every byte received after it is    READY, CLOSING
           discarded (never run), and :data:`START_TLS` asks the engine for
           the handshake; :meth:`Connection.tls_established` starts a fresh
           session on TLS, :meth:`Connection.tls_failed` closes
HELD       the reply of the last command is held back until :attr:`deadline`  READY, CLOSING
           (a failed login's delay, see ``domain.throttle``); :meth:`tick`
           sends it; later input waits as in BUSY
CLOSING    the last reply is out and :data:`CLOSE` was asked for; input is    CLOSED
           ignored
CLOSED     the transport is gone and the session is released                 (end)
=========  =================================================================  ================

PROXY (between NEW and READY) is entered only on a listener configured for
the PROXY protocol (``--proxy-protocol``): :meth:`Connection.start` closes a
peer outside ``--proxy-from`` at once, else waits, without a greeting, for the
whole header (:mod:`lineproto.wire.proxy`), at most
:attr:`ConnectionLimits.proxy_timeout` seconds. A bad header, a timeout or an
end of input closes, logged and unanswered. With a header the connection takes
the client's address it carries as its peer (logs, per-address admission,
login throttling, STAT's ``peer``; v2 LOCAL and v1 UNKNOWN keep the real
peer), is admitted under it and greets; the bytes after the header go on to
telnet filtering and framing. On the TLS port the header comes before the
handshake: the connection goes back to NEW and asks for :data:`START_TLS`
(an engine there reads no more than :attr:`Connection.proxy_wanted` bytes at a
time, so the bytes after the header stay for TLS).

How an engine drives a connection
=================================

Every input method returns ``(data, actions)``: bytes to send now, then the
actions to carry out after sending them, in order::

    data, actions = connection.receive_data(chunk, now)
    transport.write(data)
    for action in actions:
        if action is CLOSE: close once the data is sent (shut down writing, drop input)
        else: run action.job() in worker pool action.pool, then feed its result
              to connection.complete(result, now) and handle that output the same way

Besides: call :meth:`Connection.tick` at :attr:`Connection.deadline` (when not
None); while :attr:`Connection.backlog` is true, call :meth:`Connection.process`
again once the peer has read what was sent (one call answers at most
:data:`MAX_LINES_PER_STEP` lines, so one client cannot hold the loop, and a
shutdown is seen between lines); stop reading while
:attr:`Connection.wants_input` is false; call :meth:`Connection.shutdown` on
every connection when the server stops and :meth:`Connection.connection_lost`
when the transport is gone.

Events (a shared table's 6yz lines, docs/PROTOCOL.md section 12) come from
other threads through :meth:`Connection.push_event`, which queues the line and
calls :attr:`Connection.waker` (set by the engine) when the queue was empty;
the engine then calls :meth:`Connection.take_events` from its own thread, in
between the replies it writes, so an event never lands inside a reply. An
engine that cannot send (the peer reads nothing) leaves events queued: past
:data:`MAX_QUEUED_EVENTS` the connection gets 421 and is closed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from .commands import Blocking, Services, Session
from .commands.session import NO_TLS, TlsPolicy
from .commands.table import when_stored_user
from .proxying import DEFAULT_PROXY_FROM, PROXY_HEADER_TIMEOUT, Network, is_trusted
from .wire import LineReader, Reply, format_reply
from .wire.lines import LineEvent
from .wire.logtext import for_log
from .wire.proxy import ProxyError, ProxyHeader, ProxyParser
from .wire.reply import label_reply
from .wire.telnet import Answer

log = logging.getLogger("lineproto.connection")

#: Simultaneous connections served; the next one gets 421 and is closed.
DEFAULT_MAX_CONNECTIONS = 1000
#: Seconds a connection may go without sending a complete line before it gets 421 and is closed.
DEFAULT_IDLE_TIMEOUT = 300.0
#: Connections one source address may hold at once; the next gets its own 421.
DEFAULT_MAX_PER_ADDRESS = 50
#: Seconds a connection may stay logged out (from its start, or its last logout) before 421.
DEFAULT_LOGIN_TIMEOUT = 60.0
#: Bad command lines in a row (unknown verb, syntax, wrong arguments) before 421 and close.
DEFAULT_MAX_BAD_COMMANDS = 10
#: Refused lines logged per connection; the rest are counted in one line when it closes.
LOGGED_REFUSALS = 5
#: Reply codes that make a line a bad command (a good reply resets the run).
BAD_COMMAND_CODES = frozenset({500, 501})
#: Most lines answered by one call; the rest wait for :meth:`Connection.process`.
MAX_LINES_PER_STEP = 64
#: Reply bytes after which one call stops answering (the rest wait as above).
MAX_OUTPUT_PER_STEP = 64 * 1024

NEW, READY, BUSY, HELD, UPGRADING, CLOSING, CLOSED = "NEW", "READY", "BUSY", "HELD", "UPGRADING", "CLOSING", "CLOSED"
PROXY = "PROXY"
#: The peer an engine gives a connection whose address it cannot learn (the socket is gone already).
UNKNOWN_PEER = "-"

#: Events queued and not yet sent (the peer is not reading) before the connection is closed with 421.
MAX_QUEUED_EVENTS = 1024

IDLE_TIMEOUT_REPLY = format_reply(421, "Idle timeout; closing connection")
BAD_COMMANDS_REPLY = format_reply(421, "Too many bad commands in a row; closing connection")
SHUTDOWN_REPLY = format_reply(421, "Server shutting down; closing connection")
EVENTS_OVERFLOW_REPLY = format_reply(421, "Too many events not read; closing connection")


class Close:
    """Action: close the connection once the data before it is sent."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "CLOSE"


CLOSE = Close()


class StartTls:
    """Action: once the data before it is sent, stop reading, run the server side of a TLS
    handshake on the connection, and call :meth:`Connection.tls_established` or
    :meth:`Connection.tls_failed`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "START_TLS"


START_TLS = StartTls()


class RunBlocking:
    """Action: run ``job()`` in worker pool ``pool`` (``STORE_POOL``, ``AUTH_POOL``), off any event loop.

    Give what it returns to :meth:`Connection.complete`.
    """

    __slots__ = ("pool", "job")

    def __init__(self, pool: str, job: Callable[[], object]):
        self.pool = pool
        self.job = job

    def __repr__(self) -> str:
        return f"RunBlocking({self.pool!r}, {self.job!r})"


NOTHING: tuple[bytes, tuple] = (b"", ())
#: ``_events`` when no line waits: shared and immutable, so an idle connection holds no list of
#: its own (a fresh list per command would survive into the older GC generations and make the
#: collector walk every connection again and again).
NO_EVENTS: tuple[()] = ()


@dataclass(frozen=True)
class ConnectionLimits:
    """The limits every connection of one server shares."""

    max_connections: int = DEFAULT_MAX_CONNECTIONS
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    max_per_address: int = DEFAULT_MAX_PER_ADDRESS
    login_timeout: float = DEFAULT_LOGIN_TIMEOUT
    max_bad_commands: int = DEFAULT_MAX_BAD_COMMANDS
    #: Whose PROXY headers are believed (``--proxy-from``), on a listener that expects them.
    proxy_from: tuple[Network, ...] = DEFAULT_PROXY_FROM
    #: Seconds a PROXY header may take to arrive whole.
    proxy_timeout: float = PROXY_HEADER_TIMEOUT


class ServerState:
    """What the connections of one server share: services, limits, the count, the stop flag.

    Engines call :meth:`connection` for each accepted socket and :meth:`stop`
    when the server stops (safe from a signal handler: it only sets a flag
    that every connection reads between lines). Thread-safe.
    """

    def __init__(self, services: Services, limits: ConnectionLimits = ConnectionLimits(), tls: TlsPolicy = NO_TLS):
        self.services = services
        self.limits = limits
        self.tls = tls
        self.stopping = threading.Event()
        self.greeting = format_reply(220, f"{services.product} {services.version} ready")
        self._open = 0
        self._per_address: dict[str, int] = {}
        self._lock = threading.Lock()

    def connection(self, peer: str, secure: bool = False, proxy: str = "off") -> Connection:
        """A new :class:`Connection` for a client at ``peer`` (``host:port``); ``secure``: on TLS already
        (the TLS port); ``proxy``: the listener's PROXY protocol mode (``off``, ``v1``, ``v2``, ``any``)."""
        return Connection(self, peer, secure, proxy)

    def stop(self) -> None:
        self.stopping.set()

    @property
    def open_connections(self) -> int:
        return self._open

    def _admit(self, address: str) -> str | None:
        """None if one more connection from ``address`` may open (and count it), else why not."""
        stats = self.services.stats
        with self._lock:
            if self.stopping.is_set():
                return "shutting down"
            if self._open >= self.limits.max_connections:
                stats.count("refused-capacity")
                return "too many connections"
            held = self._per_address.get(address, 0)
            if held >= self.limits.max_per_address:
                stats.count("refused-per-address")
                return "too many connections from your address"
            self._per_address[address] = held + 1
            self._open += 1
        stats.connection_opened()
        return None

    def _release(self, address: str) -> None:
        with self._lock:
            self._open -= 1
            held = self._per_address[address] - 1
            if held:
                self._per_address[address] = held
            else:
                del self._per_address[address]
        self.services.stats.connection_closed()


class Connection:
    """One client connection's protocol state; see the module docstring for the states and the driving."""

    __slots__ = (
        "server",
        "peer",
        "session",
        "state",
        "deadline",
        "pending",
        "_idle_timeout",
        "_reader",
        "_events",
        "_next",
        "_eof",
        "_admitted",
        "_release_after_job",
        "_busy_verb",
        "_busy_label",
        "_held",
        "_login_deadline",
        "_idle_deadline",
        "_bad_commands",
        "_refusals",
        "_proxy",
        "_via",
        "waker",
        "_outbox",
        "_outbox_lock",
        "_overflow",
    )

    def __init__(self, server: ServerState, peer: str, secure: bool = False, proxy: str = "off"):
        self.server = server
        self.peer = peer
        self.session = Session(server.services, peer, server.tls, secure)
        self.state = NEW
        #: When (engine clock, seconds) :meth:`tick` must be called; None: no timeout runs.
        self.deadline: float | None = None
        #: Complete lines wait unanswered (a step's limit was reached, or a command is running).
        self.pending = False
        self._idle_timeout = server.limits.idle_timeout
        self._reader = LineReader()
        self._events: list[LineEvent] | tuple[()] = NO_EVENTS  # framed lines not answered yet, from index _next on
        self._next = 0
        self._eof = False  # the peer closed its side: close once everything is answered
        self._admitted = False
        self._release_after_job = False  # lost while BUSY: release the session when the job is done
        self._busy_verb = ""  # the verb of the command running while BUSY (for the log)
        self._busy_label: str | None = None  # its label, for a reply made here (a failed commit)
        self._held = b""  # HELD: the reply that goes out at the deadline
        self._login_deadline: float | None = None  # while logged out: 421 at this time
        self._idle_deadline = 0.0  # 421 at this time unless a complete line comes
        self._bad_commands = 0  # bad command lines in a row
        self._refusals = 0  # 4yz/5yz replies so far (the first LOGGED_REFUSALS are logged)
        self._proxy = ProxyParser(proxy) if proxy != "off" else None  # until the PROXY header is in
        self._via = ""  # for the log: how the peer's address came (the proxy's own address)
        #: Called (from any thread) when an event is queued on an empty queue, or the queue overflowed.
        self.waker: Callable[[], None] | None = None
        self._outbox: list[bytes] = []  # event lines not sent yet
        self._outbox_lock = threading.Lock()
        self._overflow = False  # more than MAX_QUEUED_EVENTS were queued: 421 and close
        self.session.event_sink = self.push_event

    # ------------------------------------------------------------------ inputs

    def start(self, now: float) -> tuple[bytes, tuple]:
        """The connection is open: the greeting, or a 421 when the server is full or stopping.

        On a PROXY listener: nothing yet (the PROXY stage), or a close for an untrusted peer.
        """
        if self._proxy is not None:
            return self._await_proxy(now)
        why = self.server._admit(self.session.address)
        if why is not None:
            log.warning("refused %s: %s", self.peer, why)
            self.state = CLOSING
            return format_reply(421, f"Service not available: {why}; try again later"), (CLOSE,)
        self._admitted = True
        log.info("open %s%s", self.peer, self._via)
        self.state = READY
        self._login_deadline = now + self.server.limits.login_timeout
        self.deadline = self._next_deadline(now)
        return self.server.greeting, ()

    def receive_data(self, data: bytes, now: float) -> tuple[bytes, tuple]:
        """Bytes from the peer: the replies to the lines they complete."""
        if self.state is CLOSING or self.state is CLOSED or self.state is UPGRADING:
            return NOTHING  # UPGRADING: plaintext after AUTH TLS is never run
        if self.state is PROXY:
            return self._receive_proxy(data, now)
        events = self._reader.feed(data)
        if events:
            self._queue(events, now)
            if self.state is READY:
                return self._process(now)
        return NOTHING

    def receive_eof(self, now: float) -> tuple[bytes, tuple]:
        """The peer will send nothing more: answer its last (even unterminated) line, then close."""
        if self.state is CLOSING or self.state is CLOSED:
            return NOTHING
        if self.state is PROXY:
            log.info("%s: closed before its PROXY header was whole", self.peer)
            return b"", self._close_unheard()
        self._eof = True
        events = self._reader.finish()
        if events:
            self._queue(events, now)
        if self.state is READY:
            return self._process(now)
        return NOTHING

    def process(self, now: float) -> tuple[bytes, tuple]:
        """Answer lines still waiting (see :attr:`backlog`)."""
        if self.state is not READY:
            return NOTHING
        return self._process(now)

    def complete(self, result: object, now: float) -> tuple[bytes, tuple]:
        """The result of a :class:`RunBlocking` job: its reply, then the lines that waited for it.

        ``result`` is what the job returned, or the exception it (or the store committing its
        work) raised: a StorageError becomes its 451/452 reply, anything else 451.
        """
        if self.state is CLOSED:
            if isinstance(result, BaseException) and not self._release_after_job:
                log.warning("%s: releasing the session failed: %s", self.peer, result)
            if self._release_after_job:
                self._release_after_job = False
                self.session.report_commands()
                return b"", self._release_session()
            return NOTHING
        if self.state is not BUSY:
            raise RuntimeError(f"complete() in state {self.state}")
        self.state = READY
        session = self.session
        session.report_commands()
        if isinstance(result, BaseException):
            result = session.error_reply(self._busy_verb, result)
            if self._busy_label is not None:
                result = label_reply(result, self._busy_label)
        elif not isinstance(result, Reply):
            log.error("%s: a blocking command returned %r, not a reply", self.peer, result)
            result = Reply(451, ("Internal error; the command was not carried out",))
        reply = format_reply(result.code, result.lines)
        if result.code >= 400:
            self._log_refusal(self._busy_verb, result)
        elif self._bad_commands:
            self._bad_commands = 0
        delay = session.take_reply_delay()
        if delay > 0:
            self.state = HELD
            self._held = reply
            self.deadline = now + delay
            return NOTHING
        return self._after_reply(reply, now)

    def _after_reply(self, reply: bytes, now: float) -> tuple[bytes, tuple]:
        """Send a finished command's reply, then close or answer the lines that waited."""
        if self.session.closing:
            return reply, self._close()
        if self.server.stopping.is_set():
            return reply + SHUTDOWN_REPLY, self._close()
        if self._bad_commands >= self.server.limits.max_bad_commands:
            return reply + self._too_many_bad_commands(), self._close()
        self.deadline = self._next_deadline(now)
        data, actions = self._process(now)
        return reply + data, actions

    def tls_established(self, now: float) -> tuple[bytes, tuple]:
        """The TLS handshake succeeded: on the TLS port, the greeting (as :meth:`start`); after
        ``AUTH TLS``, a fresh session, ready for USER."""
        if self.state is NEW:
            self.server.services.stats.count("tls-handshakes")
            return self.start(now)
        if self.state is not UPGRADING:
            return NOTHING
        self.server.services.stats.count("tls-handshakes")
        self.session = self.session.upgraded()
        self.session.event_sink = self.push_event
        self._reader = LineReader()
        self.state = READY
        if self.server.stopping.is_set():
            return SHUTDOWN_REPLY, self._close()
        self.deadline = self._next_deadline(now)
        return NOTHING

    def tls_failed(self, reason: str) -> tuple[bytes, tuple]:
        """The handshake failed: nothing can be said in plaintext any more; close."""
        self.server.services.stats.count("tls-handshake-failures")
        log.info("%s: TLS handshake failed: %s", self.peer, for_log(str(reason), 120))
        return b"", self._close()

    def tick(self, now: float) -> tuple[bytes, tuple]:
        """The clock reached :attr:`deadline` (or passed it): 421 if no complete line came in time."""
        deadline = self.deadline
        if self.state is PROXY and deadline is not None and now >= deadline:
            log.warning("%s: no whole PROXY header within %g s: closing", self.peer, self.server.limits.proxy_timeout)
            return b"", self._close_unheard()
        if self.state is HELD and deadline is not None and now >= deadline:
            reply, self._held = self._held, b""
            self.state = READY
            return self._after_reply(reply, now)
        if self.state is READY and deadline is not None and now >= deadline:
            login_deadline = self._login_deadline
            if login_deadline is not None and now >= login_deadline:
                if self.session.user is None:
                    self.server.services.stats.count("login-timeouts")
                    log.info("%s: login timeout", self.peer)
                    timeout = self.server.limits.login_timeout
                    return format_reply(421, f"Not logged in within {timeout:g} s; closing connection"), self._close()
                self._login_deadline = None  # logged in meanwhile: the deadline is met for good
            if now < self._idle_deadline:  # it was the login deadline that came first
                self.deadline = self._idle_deadline
                return NOTHING
            if self.pending:  # lines wait for the peer to read earlier replies: it is not idle
                self.deadline = self._idle_deadline = now + self._idle_timeout
                return NOTHING
            self.server.services.stats.count("idle-timeouts")
            log.info("%s: idle timeout", self.peer)
            return IDLE_TIMEOUT_REPLY, self._close()
        return NOTHING

    def _next_deadline(self, now: float) -> float:
        """The idle deadline, or the login deadline while logged out if that comes first."""
        deadline = self._idle_deadline = now + self._idle_timeout
        if self._login_deadline is not None:
            if self.session.user is not None:
                self._login_deadline = None  # logged in: the login deadline is met for good
            elif self._login_deadline < deadline:
                return self._login_deadline
        return deadline

    def _too_many_bad_commands(self) -> bytes:
        self.server.services.stats.count("bad-command-closes")
        log.info("%s: %d bad commands in a row: closing", self.peer, self._bad_commands)
        return BAD_COMMANDS_REPLY

    def shutdown(self, now: float) -> tuple[bytes, tuple]:
        """The server is stopping: 421 now, or, while a command runs, right after its reply.

        Lines not answered yet are not answered. Call it after ``ServerState.stop()``.
        """
        if self.state is PROXY:  # nothing was said yet, and on the TLS port nothing can be in plaintext
            return b"", self._close_unheard()
        if self.state is READY or self.state is NEW:
            return SHUTDOWN_REPLY, self._close()
        if self.state is HELD:  # no reason to hold a reply back any longer
            reply, self._held = self._held, b""
            return reply + SHUTDOWN_REPLY, self._close()
        return NOTHING  # BUSY: complete() sends the 421; CLOSING/CLOSED: nothing to say

    def connection_lost(self) -> tuple:
        """The transport is gone. Returns actions that release the session (a store write may be needed)."""
        if self.state is CLOSED:
            return ()
        was_busy = self.state is BUSY
        self.state = CLOSED
        self.deadline = None
        self._events, self._next, self.pending = NO_EVENTS, 0, False
        if not self._admitted:
            return ()
        self._admitted = False
        self.server._release(self.session.address)
        if self._refusals > LOGGED_REFUSALS:
            log.info(
                "close %s (%d refused lines, %d of them not logged)",
                self.peer,
                self._refusals,
                self._refusals - LOGGED_REFUSALS,
            )
        else:
            log.info("close %s", self.peer)
        if was_busy:  # the job still uses the session: release it once complete() says it is done
            self._release_after_job = True
            return ()
        self.session.report_commands()
        return self._release_session()

    def push_event(self, line: bytes) -> None:
        """Queue one event line (thread-safe); the engine sends it between replies (module docstring)."""
        with self._outbox_lock:
            if self._overflow or self.state is CLOSING or self.state is CLOSED:
                return
            if len(self._outbox) >= MAX_QUEUED_EVENTS:
                self._overflow = True
                self._outbox = []
            else:
                self._outbox.append(line)
                if len(self._outbox) > 1:
                    return  # the engine was woken for the first one and has not taken them yet
        waker = self.waker
        if waker is not None:
            waker()

    def take_event_bytes(self) -> bytes:
        """The queued events' bytes, taken off the queue (thread-safe; b"" once the queue overflowed)."""
        with self._outbox_lock:
            lines, self._outbox = self._outbox, []
        return b"".join(lines)

    def take_events(self, now: float) -> tuple[bytes, tuple]:
        """The engine's thread, between replies: the queued events, or 421 and close after an overflow."""
        if self.state is CLOSING or self.state is CLOSED or self.state is NEW or self.state is UPGRADING:
            return NOTHING
        if self._overflow:
            log.warning("%s: more than %d events not read: closing", self.peer, MAX_QUEUED_EVENTS)
            return EVENTS_OVERFLOW_REPLY, self._close()
        return self.take_event_bytes(), ()

    @property
    def events_waiting(self) -> bool:
        """Events are queued (or the queue overflowed): call :meth:`take_events`."""
        return bool(self._outbox) or self._overflow

    @property
    def events_overflowed(self) -> bool:
        return self._overflow

    # ------------------------------------------------------------------ what the engine reads

    @property
    def backlog(self) -> bool:
        """Complete lines are waiting to be answered: call :meth:`process`."""
        return self.pending and self.state is READY

    @property
    def wants_input(self) -> bool:
        """False while enough unanswered input is held: stop reading until it is answered."""
        return not self.pending or len(self._events) - self._next <= MAX_LINES_PER_STEP

    @property
    def closed(self) -> bool:
        return self.state is CLOSING or self.state is CLOSED

    @property
    def expects_proxy_header(self) -> bool:
        """The PROXY header has still to come: on the TLS port, call :meth:`start` (not the handshake)."""
        return self._proxy is not None

    @property
    def proxy_wanted(self) -> int:
        """In the PROXY stage: most bytes to read next so that none of them is from after the header."""
        return self._proxy.wanted if self._proxy is not None else 0

    # ------------------------------------------------------------------ the PROXY stage

    def _await_proxy(self, now: float) -> tuple[bytes, tuple]:
        """Enter the PROXY stage, or close a peer whose header would not be believed."""
        if not is_trusted(self.session.address, self.server.limits.proxy_from):
            if self.peer == UNKNOWN_PEER:  # gone before the engine could ask (a proxy's quick health check)
                log.info("refused a connection of unknown address: a PROXY header is expected")
            else:
                log.warning("refused %s: a PROXY header is expected, and the address is not in --proxy-from", self.peer)
            return b"", self._close_unheard()
        self.state = PROXY
        self.deadline = now + self.server.limits.proxy_timeout
        return NOTHING

    def _receive_proxy(self, data: bytes, now: float) -> tuple[bytes, tuple]:
        """Bytes of the PROXY stage: once the header is whole, the client's address, then on as usual."""
        parser = self._proxy
        assert parser is not None  # PROXY state only with a parser
        try:
            header = parser.feed(data)
        except ProxyError as exc:
            log.warning("%s: closed: %s", self.peer, exc)
            return b"", self._close_unheard()
        if not isinstance(header, ProxyHeader):  # NEED_MORE
            return NOTHING
        self._proxy = None
        self._via = f" via {self.peer} (PROXY v{header.version} {header.command})"
        client = header.client
        if client is not None:
            session = self.session
            self.peer = f"{client[0]}:{client[1]}"
            self.session = Session(session.services, self.peer, session.tls, session.secure)
            self.session.event_sink = self.push_event  # the new session's shared-table events reach this connection
        self.state = NEW
        self.deadline = None
        if self.session.secure:  # the TLS port: the handshake comes next, then the greeting
            if parser.rest:
                log.warning("%s: closed: bytes after the PROXY header were taken from TLS", self.peer)
                return b"", self._close()
            return b"", (START_TLS,)
        greeting, actions = self.start(now)
        if actions or not parser.rest:
            return greeting, actions
        data, actions = self.receive_data(parser.rest, now)
        return greeting + data, actions

    # ------------------------------------------------------------------ inside

    def _queue(self, events: list[LineEvent], now: float) -> None:
        if self.pending:
            self._events = [*self._events[self._next :], *events]
        else:
            self._events = events
            self.pending = True
        self._next = 0
        if self.state is READY:
            self.deadline = self._next_deadline(now)  # idle time counts from the last complete line

    def _process(self, now: float) -> tuple[bytes, tuple]:
        session = self.session
        handle = session.handle
        stopping = self.server.stopping.is_set
        events = self._events
        index = self._next
        end = min(len(events), index + MAX_LINES_PER_STEP)
        out = []
        size = 0
        actions: tuple = ()
        while index < end:
            if stopping():  # a shutdown began: this line and the rest go unanswered
                out.append(SHUTDOWN_REPLY)
                actions = self._close()
                break
            event = events[index]
            index += 1
            if event.__class__ is Answer:  # telnet's, sent in order: the replies before it are out
                out.append(event.data)
                size += len(event.data)
                continue
            result = handle(event)
            if result is None:
                continue
            if isinstance(result, Blocking):
                self.state = BUSY
                self.deadline = None
                self._busy_verb = result.verb
                self._busy_label = result.label
                actions = (RunBlocking(result.pool, result.run),)
                break
            data = format_reply(result.code, result.lines)
            out.append(data)
            if result.code >= 400:
                self._log_refusal(event, result)
                if result.code in BAD_COMMAND_CODES:
                    self._bad_commands += 1
                    if self._bad_commands >= self.server.limits.max_bad_commands and not session.closing:
                        out.append(self._too_many_bad_commands())
                        actions = self._close()
                        break
            elif self._bad_commands:
                self._bad_commands = 0
            if session.closing:  # QUIT, or a refusal that ends the session: lines after it are dropped
                actions = self._close()
                break
            if session.upgrade_tls:  # AUTH TLS: what was pipelined after it is dropped, never run
                actions = self._upgrade()
                break
            size += len(data)
            if size >= MAX_OUTPUT_PER_STEP:
                break
        if self.state is not CLOSING and self.state is not UPGRADING:
            if index >= len(events):
                self._events, self._next, self.pending = NO_EVENTS, 0, False
                if self._eof and self.state is READY:
                    actions = self._close()
            else:
                self._next = index
        if session.unreported_commands:
            session.report_commands()
        if len(out) == 1:
            return out[0], actions
        return b"".join(out), actions

    def _upgrade(self) -> tuple:
        self.state = UPGRADING
        self.deadline = None
        self._events, self._next, self.pending = NO_EVENTS, 0, False
        self._reader = LineReader()  # a partial line after AUTH TLS goes too
        return (START_TLS,)

    def _close_unheard(self) -> tuple:
        """Close before any greeting (PROXY stage): the header will never be read, nothing is said."""
        self._proxy = None
        return self._close()

    def _close(self) -> tuple:
        self.state = CLOSING
        self.deadline = None
        self._events, self._next, self.pending = NO_EVENTS, 0, False
        return (CLOSE,)

    def _release_session(self) -> tuple:
        session = self.session
        pool = when_stored_user(session)
        if pool is not None:
            return (RunBlocking(pool, session.close),)
        session.close()
        return ()

    def _log_refusal(self, event, reply: Reply) -> None:
        """One log line for a 4yz/5yz reply: the first word of the line (escaped), the reply.

        Only the first :data:`LOGGED_REFUSALS` of a connection are logged; the close line counts
        the rest, so a flood of junk costs the log one line, not one per line of junk.
        """
        self._refusals += 1
        if self._refusals > LOGGED_REFUSALS:
            return
        what = for_log(event.split(" ", 1)[0], 8) if isinstance(event, str) else type(event).__name__
        log.info("%s %s -> %d %s", self.peer, what, reply.code, for_log(reply.lines[0], 120))
