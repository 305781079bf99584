"""The connection and the core commands; each service's commands are a subclass of it (Client combines them)."""

import secrets
import socket
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple, Self

from ..wire import ProtocolError, Reply, ReplyParser
from ..wire.labels import labelled_line
from ..wire.reply import reply_label
from ..wire.shapes import Status

#: Seconds to wait for each reply once connected (None: wait as long as it takes).
DEFAULT_TIMEOUT = 30.0
#: How a client may use TLS (``Connection(tls=...)``).
TLS_MODES = (None, "auth", "implicit")
#: Seconds for the TCP connection and the greeting together.
DEFAULT_CONNECT_TIMEOUT = 10.0
_FORBIDDEN = ("\r", "\n", "\0")


class ClientError(Exception):
    """Base of the errors this module raises (besides ProtocolError)."""


class ReplyError(ClientError):
    """The server refused a command; ``reply`` is its answer."""

    def __init__(self, reply: Reply):
        super().__init__(str(reply))
        self.reply = reply

    @property
    def code(self) -> int:
        return self.reply.code


class TransientError(ReplyError):
    """A 4yz reply: the command failed, trying again later may work."""


class PermanentError(ReplyError):
    """A 5yz reply: the command failed and will fail again as sent."""


class ConnectionClosed(ClientError, ConnectionError):
    """The server closed the connection before a complete reply."""


class ConnectionTimeout(ClientError, TimeoutError):
    """No TCP connection, or no greeting after it, within the connect timeout.

    ``address`` is ``(host, port)``; the message says which step did not
    happen, e.g. ``127.0.0.1:36000 accepted the connection but sent no greeting within 10 s``.
    """

    def __init__(self, message: str, address: tuple[str, int]):
        super().__init__(message)
        self.address = address


class ReplyTimeout(ClientError, TimeoutError):
    """A reply did not come (or a command could not be sent) within ``timeout``; the connection is closed.

    It is closed because a late reply would otherwise be read as the answer to
    the next command. Whether the command was carried out is unknown.
    """


@dataclass(frozen=True)
class Retry:
    """How ``Client(retry=Retry())`` resends a command whose reply a dropped connection lost.

    Each command is sent with a label of its own (docs/PROTOCOL.md 9a); when the connection
    drops (or the daemon says 421) before the reply, the client waits ``backoff`` seconds
    (doubling each time, at most ``max_backoff``), reconnects, logs in again and resends the
    same line with the same label, at most ``attempts`` sends in all. The daemon runs a
    labelled change once, so the resend gets the first one's reply.
    """

    attempts: int = 5
    backoff: float = 0.2
    max_backoff: float = 5.0

    def __post_init__(self):
        if self.attempts < 1 or self.backoff < 0 or self.max_backoff < self.backoff:
            raise ValueError(f"a retry needs attempts >= 1 and 0 <= backoff <= max_backoff: {self}")

    def delay(self, resend: int) -> float:
        """Seconds to wait before resend number ``resend`` (1, 2, ...)."""
        return min(self.backoff * 2 ** (resend - 1), self.max_backoff)


class Delivery(NamedTuple):
    """How the last command of a retrying client got its reply: its label and how many sends it took."""

    label: str
    attempts: int

    @property
    def resent(self) -> bool:
        """True when the reply came to a resend: the daemon ran the command once all the same (its
        first send, whose reply was lost, or this one)."""
        return self.attempts > 1


#: Lines that set up the connection: never labelled nor resent (a retry logs in again itself).
_SESSION_VERBS = frozenset({"USER", "PASS", "QUIT", "REIN", "AUTH"})


def _deadline(seconds: float | None) -> float | None:
    return None if seconds is None else time.monotonic() + seconds


def check_reply(reply: Reply) -> Reply:
    """Return a 1yz-3yz reply; raise TransientError or PermanentError for 4yz or 5yz."""
    if reply.code >= 500:
        raise PermanentError(reply)
    if reply.code >= 400:
        raise TransientError(reply)
    return reply


def check_line(line: str) -> str:
    """Refuse CR, LF and NUL, which would smuggle extra commands onto the wire."""
    if any(char in line for char in _FORBIDDEN):
        raise ValueError(f"a command line cannot hold CR, LF or NUL: {line!r}")
    return line


class Connection:
    """A connection to a lineproto daemon; reads the greeting on connect.

    ``connect_timeout`` bounds the TCP connection and the greeting together
    (:class:`ConnectionTimeout`); ``timeout`` bounds each reply after that
    (:class:`ReplyTimeout`; None waits as long as it takes). A refused or
    unreachable address raises the socket's ``OSError`` (``ConnectionRefusedError``...).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 36000,
        timeout: float | None = DEFAULT_TIMEOUT,
        connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT,
        tls: str | None = None,
        tls_context: ssl.SSLContext | None = None,
        cafile: str | None = None,
        retry: Retry | None = None,
    ):
        """``tls``: None (plaintext), ``"auth"`` (``AUTH TLS`` after the greeting, as ftplib's
        FTP_TLS does) or ``"implicit"`` (the daemon's TLS port: the handshake comes first).
        The server's certificate is verified and must name ``host``, against ``cafile`` or the
        system's CAs, or as ``tls_context`` says. ``retry``: label each command and resend it
        after a dropped connection (:class:`Retry`)."""
        if tls not in TLS_MODES:
            raise ValueError(f"tls must be one of {TLS_MODES}: {tls!r}")
        self.host, self.port = host, port
        self.timeout = timeout
        self.retry = retry
        #: The last labelled command's label and sends (with ``retry``), else None.
        self.last_delivery: Delivery | None = None
        self._tls = (tls, tls_context, cafile)
        self._connect_timeout = connect_timeout
        self._credentials: tuple[str, str | None] | None = None  # a registered login, for a retry's
        self._label_prefix = secrets.token_hex(4)
        self._labels_sent = 0
        self._open()

    def _open(self) -> None:
        """Connect, read the greeting, and (``tls="auth"``) upgrade: at start and for each retry."""
        host, port, connect_timeout = self.host, self.port, self._connect_timeout
        tls, tls_context, cafile = self._tls
        self._parser = ReplyParser()
        self._ready: list[Reply] = []
        deadline = _deadline(connect_timeout)
        try:
            self._sock = socket.create_connection((host, port), timeout=connect_timeout)
        except TimeoutError:
            raise ConnectionTimeout(
                f"{self._where} did not accept a connection within {connect_timeout:g} s", (host, port)
            ) from None
        try:
            context = None
            if tls is not None:
                context = tls_context if tls_context is not None else ssl.create_default_context(cafile=cafile)
            if tls == "implicit":
                self._start_tls(context, deadline, connect_timeout)
            try:
                greeting = self._receive_reply(deadline)
            except TimeoutError:
                raise ConnectionTimeout(
                    f"{self._where} accepted the connection but sent no greeting within {connect_timeout:g} s",
                    (host, port),
                ) from None
            self.greeting = check_reply(greeting)
            if tls == "auth":
                self.command("AUTH TLS")  # 234, or TransientError/PermanentError (no TLS there)
                self._start_tls(context, deadline, connect_timeout)
        except BaseException:
            self.close()
            raise

    def _start_tls(self, context: ssl.SSLContext | None, deadline: float | None, limit: float | None) -> None:
        """The TLS handshake on the connection, by ``deadline``; the certificate must name ``host``."""
        assert context is not None
        self._sock.settimeout(None if deadline is None else max(deadline - time.monotonic(), 0.001))
        try:
            self._sock = context.wrap_socket(self._sock, server_hostname=self.host)
        except TimeoutError:
            raise ConnectionTimeout(
                f"{self._where}: no TLS handshake within {limit:g} s", (self.host, self.port)
            ) from None
        self._parser = ReplyParser()  # nothing said before the handshake counts after it
        self._ready = []

    @property
    def secure(self) -> bool:
        """True once the connection runs over TLS."""
        return isinstance(self._sock, ssl.SSLSocket)

    @property
    def _where(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if exc_info[0] is None:
            try:
                self.quit()
            except (ClientError, OSError, ProtocolError):
                pass
        self.close()

    def close(self) -> None:
        self._sock.close()

    def shutdown_write(self) -> None:
        """Tell the server no more commands come; replies can still be read."""
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def send_line(self, line: str) -> None:
        self._send(check_line(line).encode("utf-8") + b"\r\n")

    def _send(self, data: bytes) -> None:
        if self._sock.gettimeout() != self.timeout:  # reading left the time to a deadline on the socket
            self._sock.settimeout(self.timeout)
        try:
            self._sock.sendall(data)
        except TimeoutError:
            self.close()
            raise ReplyTimeout(
                f"{self._where} took no more of the commands within {self.timeout:g} s; connection closed"
            ) from None

    def read_reply(self) -> Reply:
        """The next complete reply, whatever its code; :class:`ReplyTimeout` after ``timeout`` seconds."""
        try:
            return self._receive_reply(_deadline(self.timeout))
        except TimeoutError:
            self.close()
            raise ReplyTimeout(f"no reply from {self._where} within {self.timeout:g} s; connection closed") from None

    def _receive_reply(self, deadline: float | None) -> Reply:
        """The next reply, by ``deadline`` (``time.monotonic()``; None: no limit), else TimeoutError."""
        while not self._ready:
            self._sock.settimeout(None if deadline is None else max(deadline - time.monotonic(), 0.001))
            try:
                data = self._sock.recv(65536)
            except ConnectionResetError as exc:
                raise ConnectionClosed("connection reset by the server") from exc
            if not data:
                raise ConnectionClosed("the server closed the connection")
            self._ready.extend(self._parser.feed(data))
        return self._ready.pop(0)

    def command(self, line: str) -> Reply:
        """Send one command line and return its reply; 4yz/5yz raise.

        With ``retry`` the line goes out labelled and is resent after a dropped connection
        (:class:`Retry`); the reply comes back without its label, and :attr:`last_delivery`
        says how it was delivered.
        """
        if self.retry is not None and line.partition(" ")[0].upper() not in _SESSION_VERBS:
            return check_reply(self._deliver(line, self.retry))
        self.send_line(line)
        return check_reply(self.read_reply())

    def _deliver(self, line: str, retry: Retry) -> Reply:
        """Send ``line`` under a new label until a reply comes, reconnecting in between."""
        self._labels_sent += 1
        label = f"{self._label_prefix}-{self._labels_sent}"
        labelled = labelled_line(label, check_line(line))
        attempt = 0
        while True:
            attempt += 1
            try:
                if attempt > 1:
                    self._reconnect()
                self.send_line(labelled)
                got, reply = reply_label(self.read_reply())
                if reply.code == 421 and self._credentials is not None:  # the daemon closes: try again
                    raise ConnectionClosed(f"the server is closing the connection: {reply.text}")
            except (OSError, TransientError):
                # OSError: ConnectionClosed, ReplyTimeout, a refused reconnect; TransientError: a 421 greeting
                self.close()
                if attempt >= retry.attempts or self._credentials is None:
                    raise
                time.sleep(retry.delay(attempt))
                continue
            if got != label and (got is not None or reply.code < 400):  # unlabelled: a 500 for the framing
                raise ProtocolError(f"the reply to @{label} came with the label {got!r}: {reply}")
            self.last_delivery = Delivery(label, attempt)
            return reply

    def _reconnect(self) -> None:
        """A new connection, logged in as before (a registered user: a guest's table ended with the old one)."""
        self.close()
        self._open()
        if self._credentials is not None:
            self.login(*self._credentials)

    def command_args(self, verb: str, *args: object) -> Reply:
        """``command`` with arguments checked one by one (no spaces inside but the last)."""
        for arg in args[:-1]:
            if " " in str(arg) or not str(arg):
                raise ValueError(f"argument must be one non-empty word: {arg!r}")
        return self.command(" ".join([verb, *map(str, args)]))

    def pipeline(self, lines: Iterable[str]) -> list[Reply]:
        """Send every line at once, then read one reply per line; codes are not checked.

        Blank lines are not sent (they get no reply).
        """
        lines = [check_line(line) for line in lines if line.strip()]
        self._send(b"".join(line.encode("utf-8") + b"\r\n" for line in lines))
        return [self.read_reply() for _ in lines]

    def login(self, user: str, password: str | None = None) -> Reply:
        """USER then, unless the server logs the user in at once (guest), PASS."""
        reply = self.command_args("USER", user)
        if reply.code == 331:
            if password is None:
                raise ValueError(f"{user} needs a password")
            reply = self.command_args("PASS", password)
            self._credentials = (user, password)  # a retry logs in again as this user
        else:
            self._credentials = None  # a guest: a new connection would be a new table, nothing to resend to
        return reply

    def noop(self) -> Reply:
        return self.command("NOOP")

    def status(self) -> Status:
        """STAT, parsed: ``.values`` maps each key to its text."""
        return Status.from_reply(self.command("STAT"))

    def stat(self) -> dict[str, str]:
        """STAT as a dict of its ``key: value`` lines."""
        return self.status().texts()

    def help(self, verb: str | None = None) -> Reply:
        return self.command_args("HELP", verb) if verb else self.command("HELP")

    def quit(self) -> Reply:
        reply = self.command("QUIT")
        self.close()
        return reply
