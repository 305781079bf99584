"""The event engine: one asyncio loop drives every connection; blocking work runs in worker pools.

Each accepted socket gets an ``asyncio.Protocol`` (:class:`_LineProtocol`)
that feeds its :class:`~lineproto.connection.Connection` and carries out what
it returns. Commands that are pure CPU run inline on the loop. A
:class:`~lineproto.connection.RunBlocking` action goes to its worker pool:
``store`` (the store's own writer thread, ``Store.submit``: the command runs
inside a group-committed transaction and its reply is handed out after COMMIT;
a thread pool when the services have no store) or ``auth`` (a few threads for
password hashes, so memory stays bounded however many logins arrive); the reply
is fed back on the loop when the job is done, and the connection answers
nothing else meanwhile. A job still queued when its client resets is dropped.

Flow control: a transport whose unsent replies pass :data:`WRITE_HIGH_WATER`
stops being read (``pause_reading``) until they drain below
:data:`WRITE_LOW_WATER`, and so does a connection holding more unanswered
lines than one step answers; so a client that pipelines without reading costs
bounded memory.

Shutdown: :meth:`EventServer.stop` sets the shared stop flag (every connection
checks it between lines, so a signal handler stops even a long pipelined batch
after the command that is running) and wakes the loop, which stops accepting,
sends 421 to every session (a running command finishes first) and closes what
is left after the grace.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import socket
import ssl
import threading

from ..commands import Services
from ..commands.table import AUTH_POOL, STORE_POOL
from ..connection import CLOSE, CLOSED, START_TLS, UNKNOWN_PEER, Connection, ServerState
from ..errors import StartError
from . import local_address
from .tls import HANDSHAKE_TIMEOUT

log = logging.getLogger("lineproto.engines.events")

#: Unsent reply bytes above which a connection stops being read ...
WRITE_HIGH_WATER = 256 * 1024
#: ... and below which it is read again.
WRITE_LOW_WATER = 64 * 1024
#: Seconds a closing connection waits for the peer to close its side before it is aborted.
CLOSE_LINGER = 5.0
#: Seconds between checks whether every session has had its last reply at shutdown.
SHUTDOWN_POLL = 0.01
#: Unsent bytes above which a connection's events wait in its queue (bounded: MAX_QUEUED_EVENTS) ...
EVENT_BUFFER_LIMIT = 64 * 1024
#: ... and seconds between tries to send them.
EVENT_RETRY = 0.05
#: The kernel send buffer of a connection that gets events (it would grow to megabytes), so a
#: peer that reads nothing is found out after a bounded amount of them.
EVENT_SOCKET_BUFFER = 64 * 1024
#: Pending connections the kernel queues before accept.
LISTEN_BACKLOG = 1024
#: Most bytes of a PROXY header read at once on the TLS port (a v2 header's fixed part and
#: addresses fit; its TLVs take a few reads more).
MAX_PROXY_READ = 256


def new_event_loop(name: str) -> tuple[asyncio.AbstractEventLoop, str]:
    """A new loop for ``--loop auto|asyncio|uvloop`` and the name of the one it is."""
    if name in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if name == "uvloop":
                raise StartError("--loop uvloop needs uvloop: pip install 'lineproto[fast]'") from None
        else:
            return uvloop.new_event_loop(), "uvloop"
    elif name != "asyncio":
        raise StartError(f"unknown event loop {name!r}: auto, asyncio or uvloop")
    return asyncio.new_event_loop(), "asyncio"


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound, listening TCP socket (SO_REUSEADDR, as socketserver sets it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)
    except BaseException:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def _listening_sockets(settings) -> tuple[tuple[socket.socket, ...], tuple[socket.socket, ...]]:
    """The plain and TLS listeners: the pre-bound ones of the settings, or new ones on host and port."""
    if settings.prebound:
        return settings.sockets, settings.tls_sockets
    plain = listening_socket(settings.host, settings.port)
    try:
        tls = () if settings.tls_port is None else (listening_socket(settings.host, settings.tls_port),)
    except BaseException:
        plain.close()
        raise
    return (plain,), tls


class _StoreWorker:
    """The ``store`` pool when there is a store: ``Store.submit`` runs each job in the store's writer."""

    def __init__(self, store):
        self.store = store

    def submit(self, job) -> concurrent.futures.Future:
        return self.store.submit(job)

    def shutdown(self, wait: bool = True) -> None:
        """Nothing to stop: the store finishes what it was given when the daemon closes it."""


class EventServer:
    """The default engine; see the module docstring. Construct, ``serve_forever()``, ``stop()``."""

    def __init__(self, services: Services, settings):
        self.settings = settings
        self.tls = settings.tls
        self.state = ServerState(services, settings.limits, settings.tls_policy)
        self._sockets, self._tls_sockets = _listening_sockets(settings)
        self._inetd = settings.inetd
        first = self._sockets[0] if self._sockets else settings.inetd
        assert first is not None  # a listener, or the inetd connection
        self.address: tuple[str, int] = local_address(first)
        self.tls_address: tuple[str, int] | None = local_address(self._tls_sockets[0]) if self._tls_sockets else None
        self.ready = threading.Event()
        self.description = "events engine"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_requested: asyncio.Event | None = None
        self._protocols: set[_LineProtocol] = set()
        store = services.store
        self.pools = {
            # Store-bound commands run on the store's own writer, inside its group commits; without
            # a store (an embedder's blocking commands) on a thread pool.
            STORE_POOL: _StoreWorker(store)
            if store is not None
            else concurrent.futures.ThreadPoolExecutor(settings.store_workers, thread_name_prefix="blocking"),
            AUTH_POOL: concurrent.futures.ThreadPoolExecutor(settings.auth_workers, thread_name_prefix="auth"),
        }

    # ---------------------------------------------------------------- running

    def serve_forever(self) -> None:
        loop, loop_name = new_event_loop(self.settings.loop)
        self.description = f"events engine on the {loop_name} loop"
        try:
            loop.run_until_complete(self._serve(loop))
        finally:
            for pool in self.pools.values():
                pool.shutdown(wait=True)  # the thread pools' jobs finish (the store's, when it closes)
            loop.close()
            for sock in (*self._sockets, *self._tls_sockets):
                sock.close()

    def stop(self) -> None:
        """Set the stop flag and wake the loop. Safe from a signal handler and from other threads."""
        self.state.stop()
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._request_stop)
            except RuntimeError:  # the loop closed meanwhile
                pass

    def responsive(self, timeout: float) -> bool:
        """True if the loop runs a callback within ``timeout``: a loop stuck in a callback gets no watchdog ping."""
        loop = self._loop
        if loop is None or self.state.stopping.is_set() or not self.ready.is_set():
            return False
        ran = threading.Event()
        try:
            loop.call_soon_threadsafe(ran.set)
        except RuntimeError:  # the loop closed meanwhile
            return False
        return ran.wait(timeout)

    def _request_stop(self) -> None:
        if self._stop_requested is not None:
            self._stop_requested.set()

    async def _serve(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._stop_requested = asyncio.Event()
        listeners = await self._listen(loop)
        self.ready.set()
        if not self.state.stopping.is_set():  # stop() may have come before the loop ran
            await self._stop_requested.wait()
        for each in listeners:
            each.close()
        for protocol in list(self._protocols):
            protocol.shutdown()
        # Wait for running commands to finish and every last reply (the 421s) to be sent, not for
        # the peers to close: the process exits next, which closes what is left.
        deadline = loop.time() + self.settings.grace
        while any(not protocol.finished for protocol in self._protocols):
            if loop.time() >= deadline:
                log.warning(
                    "%d sessions still busy after %.1f s: closing them",
                    sum(not protocol.finished for protocol in self._protocols),
                    self.settings.grace,
                )
                break
            await asyncio.sleep(SHUTDOWN_POLL)
        for protocol in list(self._protocols):
            protocol.abort()
        for _ in range(3):  # let connection_lost run for the aborted transports (session releases)
            await asyncio.sleep(0)

    def _tls_protocol(self) -> asyncio.BaseProtocol:
        """A TLS port connection's protocol: with PROXY headers there, one that reads the header first."""
        line = _LineProtocol(self, implicit_tls=True)
        return _ProxyHeaderReader(line) if self.settings.tls_proxy_protocol != "off" else line

    async def _listen(self, loop: asyncio.AbstractEventLoop) -> list[asyncio.Server]:
        """Serve on every listening socket (or the one inetd connection); the listeners, to close at shutdown."""
        if self._inetd is not None:
            await loop.connect_accepted_socket(lambda: _LineProtocol(self), sock=self._inetd)
            log.info("%s serving one inetd connection", self.description)
            return []
        listeners = []
        for sock in self._sockets:
            listeners.append(await loop.create_server(lambda: _LineProtocol(self), sock=sock, backlog=LISTEN_BACKLOG))
            log.info("%s listening on %s:%d", self.description, *local_address(sock))
        for sock in self._tls_sockets:
            if self.settings.tls_proxy_protocol != "off":  # plaintext first: the handshake comes after the header
                tls_listener = await loop.create_server(self._tls_protocol, sock=sock, backlog=LISTEN_BACKLOG)
            else:  # the loop's own TLS server: start_tls on a fresh transport can lose the ClientHello on uvloop
                assert self.tls is not None  # a TLS listener needs a certificate (ServerSettings checks)
                tls_listener = await loop.create_server(
                    lambda: _LineProtocol(self, implicit_tls=True, handshaken=True),
                    sock=sock,
                    backlog=LISTEN_BACKLOG,
                    ssl=self.tls.context,
                    ssl_handshake_timeout=HANDSHAKE_TIMEOUT,
                )
            listeners.append(tls_listener)
            log.info("TLS listening on %s:%d", *local_address(sock))
        return listeners

    # ---------------------------------------------------------------- bookkeeping for the protocols

    def _added(self, protocol: _LineProtocol) -> None:
        self._protocols.add(protocol)

    def _removed(self, protocol: _LineProtocol) -> None:
        self._protocols.discard(protocol)
        if self._inetd is not None and not self._protocols:
            self.stop()  # inetd's one session is over: so is the server


class _LineProtocol(asyncio.Protocol):
    """One connection's transport glue: bytes in, the connection's output and actions carried out."""

    __slots__ = (
        "server",
        "loop",
        "transport",
        "connection",
        "timer",
        "timer_at",
        "write_paused",
        "reading",
        "step_scheduled",
        "linger",
        "peer_eof",
        "job",
        "implicit_tls",
        "handshaken",
        "event_buffer_set",
    )

    # Set by connection_made, which asyncio calls before any other callback.
    transport: asyncio.Transport
    connection: Connection

    def __init__(self, server: EventServer, implicit_tls: bool = False, handshaken: bool = False):
        self.server = server
        self.implicit_tls = implicit_tls  # the TLS port: the handshake comes before the greeting
        self.handshaken = handshaken  # the loop did the TLS port's handshake before connection_made
        assert server._loop is not None  # protocols exist only while the loop runs
        self.loop: asyncio.AbstractEventLoop = server._loop
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = 0.0  # when the timer fires (TimerHandle.when() is not in every loop)
        self.write_paused = False
        self.reading = True
        self.step_scheduled = False
        self.linger: asyncio.TimerHandle | None = None
        self.peer_eof = False
        self.job: concurrent.futures.Future | None = None  # the blocking job running or queued
        self.event_buffer_set = False  # the socket's send buffer is EVENT_SOCKET_BUFFER

    # ---------------------------------------------------------------- asyncio callbacks

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.set_write_buffer_limits(WRITE_HIGH_WATER, WRITE_LOW_WATER)
        peer = transport.get_extra_info("peername")
        proxy = self.server.settings.proxy_for(self.implicit_tls)
        self.connection = self.server.state.connection(
            f"{peer[0]}:{peer[1]}" if peer else UNKNOWN_PEER, self.implicit_tls, proxy
        )
        self.connection.waker = self._wake_for_events
        self.server._added(self)
        if self.handshaken:
            self._emit(self.connection.tls_established(self.loop.time()))
        elif self.implicit_tls and not self.connection.expects_proxy_header:
            self._start_tls()
        else:
            self._emit(self.connection.start(self.loop.time()))

    def data_received(self, data: bytes) -> None:
        connection = self.connection
        data, actions = connection.receive_data(data, self.loop.time())
        if actions or connection.pending or not self.reading:
            self._emit((data, actions))
            return
        if data:  # the common case, kept short: one command answered, nothing else to do
            self.transport.write(data)
        if self.timer is None and connection.deadline is not None:
            self._arm_timer(connection.deadline)

    def eof_received(self) -> bool:
        self.peer_eof = True
        if self.connection.closed:
            return False  # our side is closing already: close the transport (after the buffer drains)
        self._emit(self.connection.receive_eof(self.loop.time()))
        return True  # keep the transport: the last replies may still be going out; CLOSE ends it

    def connection_lost(self, exc) -> None:
        for handle in (self.timer, self.linger):
            if handle is not None:
                handle.cancel()
        self.timer = self.linger = None
        self.server._removed(self)
        job = self.job
        actions = self.connection.connection_lost()
        if job is not None:
            # A job still queued (a password hash behind others) is of no use to anyone now: drop
            # it; _job_done then lets the connection release the session. A running one finishes.
            job.cancel()
        self._run_actions(actions)

    def pause_writing(self) -> None:
        self.write_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        self._update_reading()
        if self.connection.backlog:
            self._schedule_step()

    # ---------------------------------------------------------------- engine side

    def shutdown(self) -> None:
        self._emit(self.connection.shutdown(self.loop.time()))

    @property
    def finished(self) -> bool:
        """Closing (no command running) and every reply handed to the kernel."""
        return self.connection.closed and self.transport.get_write_buffer_size() == 0

    def abort(self) -> None:
        self.transport.abort()

    def _emit(self, output) -> None:
        data, actions = output
        connection = self.connection
        if connection.state is CLOSED:  # only session releases are left to run
            self._run_actions(actions)
            return
        if data:
            self.transport.write(data)
        if actions:
            self._run_actions(actions)
        if connection.pending:
            if connection.backlog and not self.write_paused:
                self._schedule_step()
            self._update_reading()
        elif not self.reading:
            self._update_reading()
        deadline = connection.deadline
        if deadline is not None and (self.timer is None or deadline < self.timer_at):
            if self.timer is not None:  # the deadline moved earlier (a held reply): re-arm
                self.timer.cancel()
            self._arm_timer(deadline)

    def _wake_for_events(self) -> None:
        """Any thread: events were queued for this connection; the loop sends them between replies."""
        try:
            self.loop.call_soon_threadsafe(self._send_events)
        except RuntimeError:  # the loop is closed: the daemon is exiting
            pass

    def _send_events(self) -> None:
        """Send the queued events, unless the peer is behind on reading: then they wait (the queue is bounded)."""
        connection = self.connection
        if connection.closed:
            return
        if not self.event_buffer_set:
            self.event_buffer_set = True
            sock = self.transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, EVENT_SOCKET_BUFFER)
        if connection.events_overflowed or self.transport.get_write_buffer_size() <= EVENT_BUFFER_LIMIT:
            self._emit(connection.take_events(self.loop.time()))
        elif connection.events_waiting:
            self.loop.call_later(EVENT_RETRY, self._send_events)

    def _arm_timer(self, deadline: float) -> None:
        self.timer_at = deadline
        self.timer = self.loop.call_at(deadline, self._on_timer)

    def _run_actions(self, actions) -> None:
        for action in actions:
            if action is CLOSE:
                self._close()
            elif action is START_TLS:
                self._start_tls()
            else:
                try:
                    job = self.server.pools[action.pool].submit(action.job)
                except Exception as exc:  # a pool shut down, a store closed: the daemon is exiting
                    log.warning("%s: %r not run: %s", self.connection.peer, action, exc)
                    self._emit(self.connection.complete(exc, self.loop.time()))
                    continue
                self.job = job
                asyncio.wrap_future(job, loop=self.loop).add_done_callback(self._job_done)

    def _start_tls(self) -> None:
        # Stop reading now, not when the handshake task runs: the client's first handshake bytes
        # must reach the TLS layer, not this protocol (which would drop them as plaintext).
        self.transport.pause_reading()
        self.loop.create_task(self._handshake())

    async def _handshake(self) -> None:
        plain = self.transport
        tls = self.server.tls
        assert tls is not None  # no START_TLS without a certificate
        try:
            transport = await self.loop.start_tls(
                plain, self, tls.context, server_side=True, ssl_handshake_timeout=HANDSHAKE_TIMEOUT
            )
        except (OSError, ssl.SSLError, TimeoutError, ConnectionError, RuntimeError) as exc:
            self._emit(self.connection.tls_failed(str(exc) or type(exc).__name__))
            plain.abort()
            self.connection_lost(exc)  # the TLS layer owns the transport now and may not tell us
            return
        if transport is None:  # the peer went away during the handshake
            self.connection_lost(None)
            return
        self.transport = transport  # an SSL transport: the same interface
        transport.set_write_buffer_limits(WRITE_HIGH_WATER, WRITE_LOW_WATER)
        self._emit(self.connection.tls_established(self.loop.time()))

    def _job_done(self, future: asyncio.Future) -> None:
        self.job = None
        # None: the peer left before the job started; an exception: the connection maps it to its reply
        result = None if future.cancelled() else future.exception() or future.result()
        self._emit(self.connection.complete(result, self.loop.time()))

    def _schedule_step(self) -> None:
        if not self.step_scheduled:
            self.step_scheduled = True
            self.loop.call_soon(self._step)

    def _step(self) -> None:
        self.step_scheduled = False
        if not self.write_paused:
            self._emit(self.connection.process(self.loop.time()))

    def _update_reading(self) -> None:
        connection = self.connection
        wanted = (connection.wants_input and not self.write_paused) or connection.closed
        if wanted != self.reading:
            self.reading = wanted
            if wanted:
                self.transport.resume_reading()
            else:
                self.transport.pause_reading()

    def _on_timer(self) -> None:
        self.timer = None
        self._emit(self.connection.tick(self.loop.time()))

    def _close(self) -> None:
        """Close once the replies are sent, without a reset destroying them.

        Closing a socket with unread input makes the kernel send a reset, which
        can destroy the final reply before the client reads it (a client that
        pipelined lines after QUIT). So: shut down writing (after the buffer
        drains), keep reading and discarding until the peer closes too, and
        abort after :data:`CLOSE_LINGER` seconds if it never does.
        """
        transport = self.transport
        if self.linger is not None or transport.is_closing():
            return
        if not self.peer_eof and transport.can_write_eof():
            transport.write_eof()
            self.linger = self.loop.call_later(CLOSE_LINGER, transport.abort)
        else:
            transport.close()


class _ProxyHeaderReader(asyncio.BufferedProtocol):
    """The TLS port's protocol until its PROXY header is in: reads it to its last byte, no further.

    A plain protocol would take whatever the kernel holds, the start of the TLS handshake
    included, and TLS must get those bytes from the socket (an event loop's ``start_tls``
    cannot be handed bytes already read). So this reads at most
    :attr:`~lineproto.connection.Connection.proxy_wanted` bytes at a time into its own
    buffer, hands them to the line protocol, and once the header is done gives the
    transport back to it (which then starts the handshake).
    """

    def __init__(self, line: _LineProtocol):
        self.line = line
        self.buffer = bytearray(MAX_PROXY_READ)

    def connection_made(self, transport) -> None:
        self.line.connection_made(transport)
        self._hand_back_when_done()

    def get_buffer(self, sizehint: int) -> memoryview:
        return memoryview(self.buffer)[: max(self.line.connection.proxy_wanted, 1)]

    def buffer_updated(self, nbytes: int) -> None:
        self.line.data_received(bytes(self.buffer[:nbytes]))
        self._hand_back_when_done()

    def _hand_back_when_done(self) -> None:
        if not self.line.connection.expects_proxy_header and self.line.transport.get_protocol() is self:
            self.line.transport.set_protocol(self.line)

    def eof_received(self) -> bool:
        return self.line.eof_received()

    def connection_lost(self, exc) -> None:
        self.line.connection_lost(exc)

    def pause_writing(self) -> None:
        self.line.pause_writing()

    def resume_writing(self) -> None:
        self.line.resume_writing()
