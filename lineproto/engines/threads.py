"""The threaded engine: ``socketserver.ThreadingTCPServer``, one thread per connection.

The design card's shape, kept for programs built on socketserver. Each handler
thread drives one :class:`~lineproto.connection.Connection`: it reads a chunk,
sends what the connection answers, and runs blocking commands in its own
thread (password hashes go to a small shared pool, so memory stays bounded).

Timeouts: each recv may wait until the connection's deadline. On a plain
socket the kernel enforces it (``SO_RCVTIMEO``: no extra poll() per recv, so
no extra GIL hand-off); an ``ssl.SSLSocket`` ignores that option, so there the
socket's own timeout (``settimeout``) does it. See :func:`set_timeout`.
Shutdown: :meth:`ThreadedServer.stop` sets the stop flag (read by
every connection between lines) and wakes the main thread through a pipe (safe
in a signal handler); idle handlers are woken by shutting down the read side of
their socket, answer 421 and close.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import socketserver
import ssl
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from ..commands import Services
from ..commands.table import AUTH_POOL
from ..connection import CLOSE, START_TLS, Connection, ServerState
from . import local_address, peer_text
from .tls import HANDSHAKE_TIMEOUT

log = logging.getLogger("lineproto.engines.threads")

_RECV_BYTES = 64 * 1024
#: Seconds a closing connection waits for the peer to close its side (as the events engine does).
CLOSE_LINGER = 5.0
#: Seconds between checks, while a login waits for a hash worker, whether its peer has gone.
PEER_CHECK_INTERVAL = 0.1
#: What run_blocking returns for a job dropped because its peer had gone.
PEER_GONE = object()


def set_timeout(sock: socket.socket, seconds: float, option: int = socket.SO_RCVTIMEO) -> None:
    """Make recv (or, with SO_SNDTIMEO, send) on ``sock`` give up after ``seconds`` (module docstring)."""
    if isinstance(sock, ssl.SSLSocket):
        sock.settimeout(seconds)
        return
    whole = int(seconds)
    sock.setsockopt(socket.SOL_SOCKET, option, struct.pack("@ll", whole, int((seconds - whole) * 1_000_000)))


def _peer_closed(sock: socket.socket) -> bool:
    """True if the peer has reset the connection: nobody can read a reply any more.

    A peer that only shut down its sending side (half-close) still reads: its lines are answered.
    """
    poller = select.poll()  # not select.select: descriptors above 1023 are common here
    poller.register(sock, select.POLLIN)
    try:
        if poller.poll(0):
            sock.recv(1, socket.MSG_PEEK)  # b"" (end of input) or data: the peer still reads
        return False
    except OSError:  # ECONNRESET and the like
        return True


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    block_on_close = False  # shutdown is ours: see ThreadedServer._shut_down
    allow_reuse_address = True
    # With the default backlog of 5 the kernel drops handshakes when many
    # clients connect at once, and a greeting-first protocol leaves them waiting.
    request_queue_size = 1024

    def __init__(self, address, engine: ThreadedServer, implicit_tls: bool = False, sock: socket.socket | None = None):
        self.engine = engine
        self.implicit_tls = implicit_tls  # the TLS port: the handshake comes before the greeting
        super().__init__(address, _Handler, bind_and_activate=sock is None)
        if sock is not None:  # a listening socket bound by someone else (systemd) replaces the one made here
            self.socket.close()
            sock.setblocking(True)
            self.socket = sock
            self.server_address = sock.getsockname()

    @classmethod
    def on(cls, sock: socket.socket, engine: ThreadedServer, implicit_tls: bool = False) -> _TCPServer:
        """A server accepting on a socket that already listens."""
        return cls(sock.getsockname(), engine, implicit_tls, sock)


class _Origin:
    """What a handler reads of its socketserver for the inetd connection, which no server accepted."""

    def __init__(self, engine: ThreadedServer):
        self.engine = engine
        self.implicit_tls = False


class ThreadedServer:
    """The ``--engine threads`` server. Construct, ``serve_forever()``, ``stop()``."""

    def __init__(self, services: Services, settings):
        self.settings = settings
        self.tls = settings.tls
        self.state = ServerState(services, settings.limits, settings.tls_policy)
        self._inetd = settings.inetd
        self._tcp, self._tls_tcp = self._listeners(settings)
        self._serving: list[threading.Thread] = []  # the accept threads (or the inetd session's)
        first = self._tcp[0].socket if self._tcp else settings.inetd
        assert first is not None  # a listener, or the inetd connection
        self.address: tuple[str, int] = local_address(first)
        self.tls_address: tuple[str, int] | None = local_address(self._tls_tcp[0].socket) if self._tls_tcp else None
        self.ready = threading.Event()
        self.description = "threads engine (ThreadingTCPServer)"
        self.auth_pool = ThreadPoolExecutor(settings.auth_workers, thread_name_prefix="auth")
        self._wake_read, self._wake_write = os.pipe()
        self._handlers: set[_Handler] = set()
        self._lock = threading.Lock()
        self._all_closed = threading.Condition(self._lock)

    def _listeners(self, settings) -> tuple[list[_TCPServer], list[_TCPServer]]:
        """The plain and TLS socketservers: on the settings' pre-bound sockets, or bound to host and port here."""
        if settings.prebound:
            return (
                [_TCPServer.on(sock, self) for sock in settings.sockets],
                [_TCPServer.on(sock, self, implicit_tls=True) for sock in settings.tls_sockets],
            )
        plain = _TCPServer((settings.host, settings.port), self)
        try:
            tls = [] if settings.tls_port is None else [_TCPServer((settings.host, settings.tls_port), self, True)]
        except BaseException:
            plain.server_close()
            raise
        return [plain], tls

    def _start_accepting(self) -> None:
        """A thread per listener (or one handler thread for the inetd connection)."""
        if self._inetd is not None:
            self._serving.append(threading.Thread(target=self._serve_inetd, args=(self._inetd,), name="inetd"))
            log.info("%s serving one inetd connection", self.description)
        for tcp in self._tcp:
            self._serving.append(threading.Thread(target=tcp.serve_forever, args=(0.5,), name="accept"))
            log.info("%s listening on %s:%d", self.description, *local_address(tcp.socket))
        for tcp in self._tls_tcp:
            self._serving.append(threading.Thread(target=tcp.serve_forever, args=(0.5,), name="accept-tls"))
            log.info("TLS listening on %s:%d", *local_address(tcp.socket))
        for thread in self._serving:
            thread.daemon = True
            thread.start()

    def responsive(self, timeout: float) -> bool:
        """True while every accept thread runs (a connection's trouble stays in its own thread)."""
        return (
            self.ready.is_set()
            and not self.state.stopping.is_set()
            and all(thread.is_alive() for thread in self._serving)
        )

    def _serve_inetd(self, sock: socket.socket) -> None:
        try:
            _Handler(sock, sock.getpeername(), _Origin(self))  # type: ignore[arg-type]  # serves the session in its constructor
        finally:
            sock.close()

    def serve_forever(self) -> None:
        self._start_accepting()
        self.ready.set()
        try:
            while not self.state.stopping.is_set():
                os.read(self._wake_read, 1)  # stop() writes a byte
            self._shut_down()
        finally:
            os.close(self._wake_read)
            os.close(self._wake_write)
            self.auth_pool.shutdown(wait=True)

    def stop(self) -> None:
        """Set the stop flag and wake serve_forever. Safe from a signal handler and from other threads."""
        if self.state.stopping.is_set():
            return  # once is enough (and the pipe may be closed: its number may be reused by now)
        self.state.stop()
        os.write(self._wake_write, b"x")

    def _shut_down(self) -> None:
        for tcp in (*self._tcp, *self._tls_tcp):
            tcp.shutdown()
            tcp.server_close()
        with self._lock:
            handlers = list(self._handlers)
        for handler in handlers:
            handler.wake()
        deadline = time.monotonic() + self.settings.grace
        with self._lock:
            while self._handlers and time.monotonic() < deadline:
                self._all_closed.wait(deadline - time.monotonic())
            left = len(self._handlers)
        if left:
            log.warning("%d sessions still busy after %.1f s", left, self.settings.grace)

    def _added(self, handler: _Handler) -> None:
        with self._lock:
            self._handlers.add(handler)

    def _removed(self, handler: _Handler) -> None:
        with self._lock:
            self._handlers.discard(handler)
            self._all_closed.notify_all()
        if self._inetd is not None:
            self.stop()  # inetd's one session is over: so is the server

    def run_blocking(self, action, sock: socket.socket):
        """Run a RunBlocking job in this thread, or in the auth pool for password hashes.

        A hash still queued when the peer has closed is dropped (:data:`PEER_GONE`): a flood of
        logins that hang up at once must not keep the CPU busy after they are gone.
        """
        if action.pool != AUTH_POOL:
            try:
                return action.job()
            except Exception as exc:  # Connection.complete turns it into the reply
                return exc
        future = self.auth_pool.submit(action.job)
        while True:
            try:
                return future.result(timeout=PEER_CHECK_INTERVAL)
            except TimeoutError:
                if _peer_closed(sock) and future.cancel():
                    return PEER_GONE
            except Exception as exc:
                return exc


class _Handler(socketserver.BaseRequestHandler):
    """One connection's thread: read, feed the connection, send what it answers."""

    #: The receive timeout set on the socket now (set_timeout is only called when it must change).
    recv_timeout: float | None

    def handle(self) -> None:
        engine: ThreadedServer = self.server.engine  # type: ignore[attr-defined]  # set by _TCPServer
        implicit_tls: bool = self.server.implicit_tls  # type: ignore[attr-defined]
        #: The connection's socket: an ``ssl.SSLSocket`` once TLS is up (AUTH TLS, the TLS port).
        self.sock: socket.socket = self.request
        connection = engine.state.connection(
            peer_text(self.client_address), implicit_tls, engine.settings.proxy_for(implicit_tls)
        )
        self.connection = connection
        self.job_dropped = False
        self.peer_eof = False
        self.woken = threading.Event()  # set by wake(): the server stops
        engine._added(self)
        try:
            handshake_first = implicit_tls and not connection.expects_proxy_header  # else the header comes first
            if handshake_first and not self._handshake(engine):
                connection.tls_failed(self.tls_error)
                return
            self._serve(engine, connection, handshake_first)
        finally:
            try:
                actions = connection.connection_lost()
                if self.job_dropped:  # the connection waits for the job's end to release the session
                    actions = connection.complete(None, time.monotonic())[1]
                self._run(engine, self.sock, actions)
            except Exception:  # a failing release must not kill the accept bookkeeping
                log.exception("%s: releasing the session failed", connection.peer)
            engine._removed(self)

    def _handshake(self, engine: ThreadedServer) -> bool:
        """The server side of a TLS handshake on this connection's socket; False (and ``tls_error``) if it failed."""
        assert engine.tls is not None  # no TLS port and no AUTH TLS without a certificate
        try:
            tls_sock = engine.tls.context.wrap_socket(self.sock, server_side=True, do_handshake_on_connect=False)
            tls_sock.settimeout(HANDSHAKE_TIMEOUT)
            tls_sock.do_handshake()
        except (OSError, ssl.SSLError, ValueError) as exc:
            self.tls_error = str(exc) or type(exc).__name__
            return False
        self.sock = tls_sock
        self.recv_timeout = None  # the new socket has none of the old one's timeouts
        return True

    def _serve(self, engine: ThreadedServer, connection: Connection, on_tls: bool) -> None:
        clock = time.monotonic
        self.recv_timeout = None
        tls_proxy = self.server.implicit_tls and connection.expects_proxy_header  # type: ignore[attr-defined]
        # A peer that reads nothing for a whole idle timeout while a reply waits is gone.
        set_timeout(self.sock, connection.server.limits.idle_timeout, socket.SO_SNDTIMEO)
        first = connection.tls_established(clock()) if on_tls else connection.start(clock())
        if not self._send(engine, connection, first):
            return
        while not connection.closed:
            sock = self.sock
            timeout: float | None = self.recv_timeout
            deadline = connection.deadline
            if deadline is not None:
                remaining = max(deadline - clock(), 0.001)
                # Only a shorter timeout matters (one that fires early just loops): fewer system calls.
                if timeout is None or remaining < timeout or remaining > timeout + 1.0:
                    self.recv_timeout = remaining
                    set_timeout(sock, remaining)
            if self.peer_eof:  # nothing more to read: only the clock can move the connection on
                self.woken.wait(max(deadline - clock(), 0) if deadline is not None else None)
                stopping = engine.state.stopping.is_set()
                output = connection.shutdown(clock()) if stopping else connection.tick(clock())
                if not self._send(engine, connection, output):
                    return
                continue
            try:
                # On the TLS port the PROXY header is read to its last byte and no further: the
                # bytes after it are the handshake's.
                exact = tls_proxy and connection.expects_proxy_header
                data = sock.recv(connection.proxy_wanted if exact else _RECV_BYTES)
            except (TimeoutError, BlockingIOError):  # the timeout ran out (settimeout, SO_RCVTIMEO)
                output = connection.tick(clock())
            except OSError:
                return  # reset by peer
            else:
                if data:
                    output = connection.receive_data(data, clock())
                elif engine.state.stopping.is_set():  # woken by stop(), or the peer closed meanwhile
                    output = connection.shutdown(clock())
                else:
                    # The peer half-closed: recv would return b"" at once from now on, so a reply
                    # held back (HELD) is waited for on the clock, not by spinning on recv.
                    self.peer_eof = True
                    output = connection.receive_eof(clock())
            if not self._send(engine, connection, output):
                return
            while connection.backlog:
                if not self._send(engine, connection, connection.process(clock())):
                    return

    def _send(self, engine, connection, output) -> bool:
        """Send the output and carry out its actions; False once the connection is done."""
        while output is not None:
            data, actions = output
            output = None
            if data:
                try:
                    self.sock.sendall(data)
                except OSError:
                    return False
            for action in actions:
                if action is CLOSE:
                    self._close_gently(self.sock)
                    return False
                if action is START_TLS:
                    if not self._handshake(engine):
                        connection.tls_failed(self.tls_error)
                        return False
                    output = connection.tls_established(time.monotonic())
                    continue
                result = engine.run_blocking(action, self.sock)
                if result is PEER_GONE:
                    self.job_dropped = True
                    return False
                output = connection.complete(result, time.monotonic())
        return True

    def _run(self, engine, sock, actions) -> None:
        for action in actions:
            if action is not CLOSE:
                engine.run_blocking(action, sock)

    def _close_gently(self, sock: socket.socket) -> None:
        """Send FIN, then drop input until the peer closes too, so close() sends no reset.

        Closing a socket with unread input makes the kernel send a reset, which
        can destroy the final reply before the client reads it (a client that
        pipelined lines after QUIT). A peer that never closes is given
        :data:`CLOSE_LINGER` seconds, as on the events engine.
        """
        try:
            sock.shutdown(socket.SHUT_WR)
            set_timeout(sock, CLOSE_LINGER)
            deadline = time.monotonic() + CLOSE_LINGER
            while sock.recv(_RECV_BYTES) and time.monotonic() < deadline:
                pass  # dropped: it came after the last reply
        except OSError:  # the linger ran out, or the peer reset
            pass

    def wake(self) -> None:
        """Interrupt a blocking recv so the handler sees the shutdown."""
        self.woken.set()
        try:
            self.sock.shutdown(socket.SHUT_RD)
        except (OSError, AttributeError):  # AttributeError: not started yet
            pass
