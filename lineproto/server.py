"""The TCP server: accept connections, run one session per connection thread.

The only module on the server side that touches sockets. Each connection reads
whole ``recv()`` chunks and answers every complete line in a chunk with one
``sendall``, so pipelined clients cost one system call per batch, not per line.
"""

import logging
import socket
import socketserver
import struct
import threading
import time

from .commands import Services, Session
from .wire import LineReader, format_reply

log = logging.getLogger("lineproto.server")

#: Simultaneous connections served; the next one gets 421 and is closed.
DEFAULT_MAX_CONNECTIONS = 1000
#: Seconds a connection may stay silent before it gets 421 and is closed.
DEFAULT_IDLE_TIMEOUT = 300.0
#: Seconds shutdown waits for sessions to finish their running command.
SHUTDOWN_GRACE = 5.0
_RECV_BYTES = 64 * 1024


class LineServer(socketserver.ThreadingTCPServer):
    """A threaded line-protocol server over a :class:`Services` instance."""

    daemon_threads = True
    block_on_close = False  # shutdown is ours: see stop()
    allow_reuse_address = True
    # With the default backlog of 5 the kernel drops handshakes when many
    # clients connect at once, and a greeting-first protocol leaves them waiting.
    request_queue_size = 1024

    def __init__(self, address, services: Services,
                 max_connections: int = DEFAULT_MAX_CONNECTIONS,
                 idle_timeout: float = DEFAULT_IDLE_TIMEOUT):
        self.services = services
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.stopping = threading.Event()
        self._handlers: set = set()
        self._handlers_lock = threading.Lock()
        self._all_closed = threading.Condition(self._handlers_lock)
        super().__init__(address, SessionHandler)

    @property
    def port(self) -> int:
        return self.server_address[1]

    def register(self, handler) -> bool:
        """Admit a new connection; False when full or stopping."""
        with self._handlers_lock:
            if self.stopping.is_set() or len(self._handlers) >= self.max_connections:
                return False
            self._handlers.add(handler)
        self.services.stats.connection_opened()
        return True

    def unregister(self, handler) -> None:
        with self._handlers_lock:
            self._handlers.discard(handler)
            self._all_closed.notify_all()
        self.services.stats.connection_closed()

    def stop(self, grace: float = SHUTDOWN_GRACE) -> None:
        """Stop accepting, let sessions finish their command, 421 the idle ones.

        Call from a thread other than the one running ``serve_forever``.
        """
        with self._handlers_lock:
            self.stopping.set()
        self.shutdown()
        self.server_close()
        with self._handlers_lock:
            handlers = list(self._handlers)
        for handler in handlers:
            handler.wake()
        deadline = time.monotonic() + grace
        with self._handlers_lock:
            while self._handlers and time.monotonic() < deadline:
                self._all_closed.wait(deadline - time.monotonic())
            left = len(self._handlers)
        if left:
            log.warning("%d sessions still busy at shutdown", left)


def set_idle_timeout(sock: socket.socket, seconds: float) -> None:
    """Make blocking recv/send give up after ``seconds`` (EAGAIN), enforced by the kernel.

    A Python-level ``settimeout`` would poll() before every recv and send:
    twice the system calls and GIL hand-offs per command.
    """
    sock.settimeout(None)
    whole = int(seconds)
    timeval = struct.pack("@ll", whole, int((seconds - whole) * 1_000_000))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)


class SessionHandler(socketserver.BaseRequestHandler):
    """One connection: greeting, then read chunks, answer lines, until closed."""

    def setup(self):
        host, port = self.client_address[:2]
        self.peer = f"{host}:{port}"

    def handle(self):
        server: LineServer = self.server
        sock: socket.socket = self.request
        set_idle_timeout(sock, server.idle_timeout)
        if not server.register(self):
            why = "shutting down" if server.stopping.is_set() else "too many connections"
            self._send_quietly(format_reply(421, f"Service not available: {why}; try again later"))
            log.warning("refused %s: %s", self.peer, why)
            return
        session = Session(server.services, self.peer)
        log.info("open %s", self.peer)
        try:
            self._serve(sock, session)
        finally:
            session.close()
            server.unregister(self)
            log.info("close %s", self.peer)

    def _serve(self, sock: socket.socket, session: Session) -> None:
        server: LineServer = self.server
        services = server.services
        reader = LineReader()
        sock.sendall(format_reply(220, f"{services.product} {services.version} ready"))
        while not session.closing:
            try:
                data = sock.recv(_RECV_BYTES)
            except (BlockingIOError, TimeoutError):  # SO_RCVTIMEO ran out: the client is idle
                self._send_quietly(format_reply(421, "Idle timeout; closing connection"))
                return
            except OSError:
                return  # reset by peer
            if not data and server.stopping.is_set():
                self._send_quietly(format_reply(421, "Server shutting down; closing connection"))
                return
            events = reader.feed(data) if data else reader.finish()
            if events and not self._answer(sock, session, events):
                return
            if server.stopping.is_set():
                self._send_quietly(format_reply(421, "Server shutting down; closing connection"))
                return
            if not data:
                return  # the client closed its side; everything it sent is answered
        self._close_gently(sock)

    def _answer(self, sock, session: Session, events) -> bool:
        """Reply to every event, in order, with one send; False if the peer is gone."""
        out = []
        for event in events:
            reply = session.handle(event)
            if reply is None:
                continue
            out.append(format_reply(reply.code, reply.lines))
            if reply.code >= 400:
                verb = event.split(" ", 1)[0][:8] if isinstance(event, str) else type(event).__name__
                log.info("%s %s -> %d %s", self.peer, verb, reply.code, reply.lines[0])
            if session.closing:
                break  # QUIT: lines after it are not answered
        session.services.stats.commands_served(len(out))  # one lock per batch, not per line
        try:
            sock.sendall(b"".join(out))
        except OSError:
            return False
        return True

    def _send_quietly(self, data: bytes) -> None:
        try:
            self.request.sendall(data)
        except OSError:
            pass

    def _close_gently(self, sock: socket.socket) -> None:
        """Send FIN, then drop input the client already sent, so close() sends no reset.

        Closing a socket with unread input makes the kernel send a reset, which
        can destroy the final reply before the client reads it (a client that
        pipelined lines after QUIT). Only what has arrived is read: no waiting.
        """
        try:
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(_RECV_BYTES, socket.MSG_DONTWAIT):
                pass
        except OSError:
            pass

    def wake(self) -> None:
        """Interrupt a blocking recv so the session sees the shutdown."""
        try:
            self.request.shutdown(socket.SHUT_RD)
        except OSError:
            pass
