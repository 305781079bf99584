"""Per-connection session state and the shared services it reaches.

A :class:`Session` turns each framed input event into exactly one reply (or
none for a blank line). It knows nothing of sockets: the connection layer feeds
it lines and writes out what it returns. A command that may block (a store
transaction, a password hash) comes back as :class:`Blocking` instead: the
caller runs it in the named worker pool and gets the reply from it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from .. import PRODUCT, __version__
from ..domain.accounts import User, UserDirectory
from ..domain.throttle import LoginThrottle
from ..store.labels import LabelBook, LabelPolicy, LabelRecord
from ..wire import CommandSyntaxError, InvalidUtf8, LineTooLong, Reply, parse_command
from ..wire.labels import LabelSyntaxError, is_labelled, split_label
from ..wire.logtext import for_log
from ..wire.reply import label_reply
from ..wire.sniff import HTTP_METHODS, looks_like_http
from .errors import reply_for_error
from .table import STORE_POOL, CommandTable, when_stored_user

if TYPE_CHECKING:
    from ..domain.meters import Meters
    from ..store.base import Store
    from .roulette import Seat, TableRegistry

log = logging.getLogger("lineproto.commands")

#: Failed PASS attempts allowed on one connection before it is closed.
MAX_LOGIN_FAILURES = 5

CROSS_PROTOCOL = "This is a line-protocol server, not a web server; closing connection"

NOT_LOGGED_IN = "Not logged in: send USER <name> then PASS <password> (USER guest to play)"


#: What STAT counts besides connections and commands: each limit's refusals and kicks, and the
#: defences' work. Every key is always shown, 0 until it happens (docs/PROTOCOL.md, STAT).
LIMIT_COUNTERS = (
    "refused-capacity",  # 421 at connect: --max-connections reached
    "refused-per-address",  # 421 at connect: --max-per-address reached
    "idle-timeouts",  # 421: no complete line for --idle-timeout
    "login-timeouts",  # 421: not logged in within --login-timeout
    "login-failures",  # wrong password or unknown name
    "login-throttled",  # 430: a login refused without checking the password (address or account locked)
    "bad-command-closes",  # 421: too many bad commands in a row
    "cross-protocol-closes",  # 500 and close: an HTTP line
    "tls-handshakes",  # AUTH TLS or the TLS port: handshakes that succeeded
    "tls-handshake-failures",
    "lines-too-long",
    "invalid-utf8",
    "label-replays",  # a labelled change answered from its record, not run again (docs/PROTOCOL.md 9a)
)


class ServerStats:
    """Counters shown by STAT: open connections, commands answered (sessions add theirs in
    batches), and :data:`LIMIT_COUNTERS`. Thread-safe."""

    def __init__(self):
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self.connections = 0
        self.commands = 0
        self.counters = dict.fromkeys(LIMIT_COUNTERS, 0)

    def count(self, counter: str) -> None:
        """One more of ``counter`` (a name in :data:`LIMIT_COUNTERS`)."""
        with self._lock:
            self.counters[counter] += 1

    def connection_opened(self) -> None:
        with self._lock:
            self.connections += 1

    def connection_closed(self) -> None:
        with self._lock:
            self.connections -= 1

    def commands_served(self, count: int = 1) -> None:
        with self._lock:
            self.commands += count

    @property
    def uptime(self) -> int:
        return int(time.monotonic() - self.started)


class Services:
    """What every session shares: the command table, users, counters, domain services.

    Service modules fill it in their ``install``: commands into ``table``,
    their ``(exception, code)`` pairs into ``error_codes``, their domain
    objects as attributes (``meters``, ``roulette``), and hooks:
    ``stat_providers`` are ``f(session) -> [(key, value)]`` adding STAT lines;
    ``logout_hooks`` are ``f(session)`` run when a user logs out or the
    connection ends (to release what the session holds); ``shutdown_hooks``
    are ``f()`` run once when the daemon stops.
    """

    # Set by the service modules' install(): the domain objects the commands use.
    roulette: TableRegistry
    meters: Meters

    def __init__(self, table: CommandTable | None = None, users: UserDirectory | None = None):
        self.table = table if table is not None else CommandTable()
        self.users = users if users is not None else UserDirectory()
        self.store = None  # a lineproto.store.Store when state is durable
        self.stats = ServerStats()
        self.throttle = LoginThrottle()  # failed logins per address and per account
        self.product = PRODUCT
        self.version = __version__
        self.error_codes: list[tuple[type[BaseException], int]] = []
        self.stat_providers: list[Callable[[Session], list[tuple[str, object]]]] = []
        self.label_policy = LabelPolicy()  # how long label records last, how many per user (--label-ttl)
        self.logout_hooks: list[Callable[[Session], None]] = []
        self.shutdown_hooks: list[Callable[[], None]] = []

    def close(self) -> None:
        """Run the shutdown hooks (the daemon is stopping)."""
        for hook in self.shutdown_hooks:
            hook()


class Blocking:
    """A command that may block: ``run()`` returns its reply; run it in worker pool ``pool``.

    Nothing of the command has happened yet when this is returned; the
    session must not be used by anyone else until ``run()`` has returned.
    """

    __slots__ = ("pool", "run", "verb", "label")

    def __init__(self, pool: str, run: Callable[[], Reply], verb: str, label: str | None = None):
        self.pool = pool
        self.run = run
        self.verb = verb
        self.label = label  # the command's label: a reply made without run() (a failed commit) carries it too

    def __repr__(self) -> str:
        return f"Blocking({self.pool!r}, {self.verb})"


@dataclass(frozen=True)
class TlsPolicy:
    """What a server offers its connections: ``AUTH TLS`` (it has a certificate), and whether
    a plaintext connection from another machine must upgrade before it may log in."""

    available: bool = False
    required: bool = False


NO_TLS = TlsPolicy()

#: What a connection that must upgrade to TLS (``--require-tls``) may still send in plaintext.
PLAINTEXT_VERBS = frozenset({"NOOP", "HELP", "QUIT", "AUTH", "STAT"})

TLS_REQUIRED = "TLS required: send AUTH TLS first, or connect to the TLS port"


def is_loopback(address: str) -> bool:
    """True for 127.0.0.0/8 and ::1 (IPv4-mapped too): traffic that never leaves the machine."""
    return address.startswith(("127.", "::ffff:127.")) or address == "::1"


class Session:
    """One connection's state: who is logged in and what they are doing."""

    __slots__ = (
        "services",
        "peer",
        "user",
        "pending_name",
        "login_failures",
        "closing",
        "guest_seat",
        "meter_hold",
        "unreported_commands",
        "reply_delay",
        "tls",
        "secure",
        "must_upgrade",
        "upgrade_tls",
        "labels",
        "event_sink",
    )

    def __init__(self, services: Services, peer: str = "-", tls: TlsPolicy = NO_TLS, secure: bool = False):
        self.services = services
        self.peer = peer
        self.user: User | None = None
        self.pending_name: str | None = None  # after USER, before PASS
        self.login_failures = 0
        self.closing = False  # set by QUIT and fatal refusals: close after the reply
        # What the services keep per session (set by commands.roulette and commands.meters):
        self.guest_seat: Seat | None = None  # a guest's play-money table, for this login only
        self.meter_hold: str | None = None  # the key this session's meter job is held under
        self.unreported_commands = 0  # answered but not yet added to ServerStats (one lock per batch)
        self.reply_delay = 0.0  # seconds the connection holds back the reply of this blocking command
        self.tls = tls
        self.secure = secure  # the connection runs over TLS
        # --require-tls: until the upgrade only PLAINTEXT_VERBS run (loopback never leaves the machine)
        self.must_upgrade = tls.required and not secure and not is_loopback(self.address)
        self.upgrade_tls = False  # set by AUTH TLS: the connection starts the handshake after the reply
        self.labels: LabelBook | None = None  # this login's label records when not in the store (a guest's)
        # The connection's Connection.push_event (thread-safe): how a shared table sends this session events.
        self.event_sink: Callable[[bytes], None] | None = None

    def handle(self, event) -> Reply | Blocking | None:
        """The reply to one framed input event; None for a blank line.

        A command that may block comes back as :class:`Blocking`. Every
        command counts in ``commands-served``; :meth:`report_commands` adds
        the count to the shared counters.
        """
        if event.__class__ is str:
            if is_labelled(event):
                return self._labelled(event)
            try:
                command_line = parse_command(event)
            except CommandSyntaxError as exc:
                self.unreported_commands += 1
                if looks_like_http(event):
                    return self._other_protocol(event)
                return Reply(500, (f"Syntax error: {exc}",))
            if command_line is None:
                return None
            self.unreported_commands += 1
            return self.dispatch(command_line)
        self.unreported_commands += 1
        if isinstance(event, LineTooLong):
            self.services.stats.count("lines-too-long")
            return Reply(500, (f"Line too long: the limit is {event.limit} bytes; line discarded",))
        if isinstance(event, InvalidUtf8):
            self.services.stats.count("invalid-utf8")
            return Reply(500, ("Line is not valid UTF-8; line discarded",))
        raise TypeError(f"unknown input event {event!r}")

    def _labelled(self, line: str) -> Reply | Blocking | None:
        """A line with a label (docs/PROTOCOL.md 9a): its command's reply, the label on its first line.

        A command that changes state runs once per label: a registered user's through the
        store (:meth:`Store.once`, in the transaction of the change), anyone else's through
        this login's :class:`LabelBook`. Any other command just has its label echoed.
        """
        try:
            label, rest = split_label(line)
            if is_labelled(rest):
                raise LabelSyntaxError("one label per line")
        except LabelSyntaxError as exc:
            self.unreported_commands += 1
            return Reply(501, (f"Bad label: {exc}",))
        command = self.services.table.get(rest.partition(" ")[0].upper())
        if command is None or not command.changes or self.user is None:
            return _echo(self.handle(rest), label)
        command_line = parse_command(rest)
        assert command_line is not None  # rest starts with the verb of a command
        text = f"{command_line.verb} {command_line.args}".rstrip()
        if when_stored_user(self) is not None:
            return self._once_in_store(label, text, self.handle(rest))
        return self._once_in_memory(label, text, rest)

    def _once_in_store(self, label: str, text: str, result: Reply | Blocking | None) -> Reply | Blocking | None:
        """A registered user's labelled change: looked up, run and recorded in one store transaction."""
        if not isinstance(result, Blocking) or result.pool != STORE_POOL:
            return _echo(result, label)  # refused before running (530, 532, 501): nothing to record
        store: Store = cast("Store", self.services.store)  # when_stored_user said there is one
        user, policy, run = self.account.name, self.services.label_policy, result.run

        def once() -> Reply:
            record, replayed = store.once(user, label, lambda: _record(text, run()), policy)
            return self._labelled_reply(label, text, record, replayed)

        return Blocking(STORE_POOL, once, result.verb, label)

    def _once_in_memory(self, label: str, text: str, rest: str) -> Reply | Blocking | None:
        """A guest's labelled change (or anyone's without a store): once per label for this login."""
        if self.labels is None:
            self.labels = LabelBook(self.services.label_policy)
        book = self.labels
        found = book.find(label, time.time())
        if found is not None:
            self.unreported_commands += 1
            return self._labelled_reply(label, text, found, True)
        result = self.handle(rest)
        if isinstance(result, Blocking):
            run = result.run

            def recorded() -> Reply:
                record = _record(text, run())
                book.record(label, record, time.time())
                return self._labelled_reply(label, text, record, False)

            return Blocking(result.pool, recorded, result.verb, label)
        if result is None:
            return None
        book.record(label, _record(text, result), time.time())
        return label_reply(result, label)

    def _labelled_reply(self, label: str, text: str, record: LabelRecord, replayed: bool) -> Reply:
        """The reply a label gets: what its command replied, or 554 when it was another command."""
        if replayed and record.line != text:
            return label_reply(Reply(554, (f"Label @{label} was used for another command: {record.line}",)), label)
        if replayed:
            self.services.stats.count("label-replays")
        return label_reply(Reply(record.code, record.lines), label)

    @property
    def address(self) -> str:
        """The peer's address without its port (what per-address limits count)."""
        return self.peer.rsplit(":", 1)[0]

    def upgraded(self) -> Session:
        """The fresh session of this connection once TLS is up: nothing of the plaintext one carries over."""
        return Session(self.services, self.peer, self.tls, secure=True)

    def take_reply_delay(self) -> float:
        """The delay a blocking command asked for its reply (a failed login's), reset to 0."""
        delay, self.reply_delay = self.reply_delay, 0.0
        return delay

    @property
    def account(self) -> User:
        """The logged-in user, for a handler of a command that needs a login (dispatch checked it)."""
        if self.user is None:
            raise RuntimeError("a command that needs a login ran without one")
        return self.user

    def report_commands(self) -> None:
        """Add the commands answered since the last report to ``ServerStats``."""
        if self.unreported_commands:
            self.services.stats.commands_served(self.unreported_commands)
            self.unreported_commands = 0

    def dispatch(self, command_line) -> Reply | Blocking:
        command = self.services.table.get(command_line.verb)
        if self.must_upgrade and command_line.verb not in PLAINTEXT_VERBS and command is not None:
            return Reply(522, (TLS_REQUIRED,))
        if command is not None and command.available is not None and not command.available(self):
            return Reply(502, (f"{command.verb} is not available on this server",))
        if command is None:
            if command_line.verb in HTTP_METHODS and looks_like_http(f"{command_line.verb} {command_line.args}"):
                return self._other_protocol(command_line.verb)
            return Reply(500, (f"Unknown command {command_line.verb}; HELP lists the commands",))
        if command.login or command.roles:
            denied = self._refusal(command)
            if denied is not None:
                return denied
        args = command.args.split(command_line)
        if args is None:
            return Reply(501, (f"Syntax: {command.usage}",))
        if command.blocks is not None:
            pool = command.blocks(self)
            if pool is not None:
                # A registered user's account is read again first; a guest has none (shared tables' JOIN).
                if pool == STORE_POOL and (command.login or command.roles) and not (self.user and self.user.is_guest):
                    return Blocking(pool, lambda: self._run_for_account(command, args), command.verb)
                return Blocking(pool, lambda: self._run(command, args), command.verb)
        return self._run(command, args)

    def _other_protocol(self, line: str) -> Reply:
        """An HTTP line (a browser's cross-protocol request): one reply, then close.

        Nothing after it on this connection runs: the header lines and the body
        (which a web page may fill with our commands) are never read as commands.
        """
        self.closing = True  # the connection closes after this reply and releases the session
        self.services.stats.count("cross-protocol-closes")
        log.warning("%s: closed: an HTTP line (%s), not a command", self.peer, for_log(line, 24))
        return Reply(500, (CROSS_PROTOCOL,))

    def _run_for_account(self, command, args) -> Reply:
        """A registered user's store command, run only if their account still exists.

        An admin may delete a user or change their roles (``daemon.py userdel``,
        ``usermod``) while they are logged in: the account is read again on the
        store's thread right before the command, so the change applies from the
        user's next command that uses the store. A deleted user gets 421 and is
        logged out; changed roles apply at once.
        """
        assert self.user is not None
        try:
            current = self.services.users.get(self.user.name)
        except Exception as exc:
            return self.error_reply(command.verb, exc)
        if current is None:
            name = self.user.name
            log.warning("%s: account %s no longer exists: session ended", self.peer, name)
            self.logout()
            self.closing = True
            return Reply(421, (f"Account {name} no longer exists; closing connection",))
        if current != self.user:
            self.user = current
            denied = self._refusal(command)
            if denied is not None:
                return denied
        return self._run(command, args)

    def _refusal(self, command) -> Reply | None:
        """530 or 532 when the session may not run ``command``, else None."""
        if command.login or command.roles:
            if self.user is None:
                return Reply(530, (NOT_LOGGED_IN,))
            if command.roles and not self.user.has_role(*command.roles):
                needed = " or ".join(sorted(command.roles))
                return Reply(532, (f"Permission denied: {command.verb} needs the {needed} role",))
        return None

    def _run(self, command, args) -> Reply:
        try:
            return command.handler(self, *args)
        except Exception as exc:  # mapped to a reply; anything unmapped is a bug, logged in full
            return self.error_reply(command.verb, exc)

    def error_reply(self, verb: str, exc: BaseException) -> Reply:
        """The reply to a command that raised ``exc``: its mapped code, or 451 (logged) for a bug."""
        reply = reply_for_error(exc, self.services.error_codes)
        if reply is None:
            log.error("%s: %s failed", self.peer, verb, exc_info=exc)
            return Reply(451, ("Internal error; the command was not carried out",))
        return reply

    def login(self, user: User) -> None:
        self.logout()
        self.user = user

    def logout(self) -> None:
        """Forget the user and release what the session holds (jobs, guest table)."""
        if self.user is not None:
            for hook in self.services.logout_hooks:
                try:
                    hook(self)
                except Exception:  # one failing release must not stop the others or leak the session
                    log.exception("%s: logout hook %s failed", self.peer, getattr(hook, "__name__", hook))
        self.user = None
        self.pending_name = None
        self.guest_seat = None
        self.meter_hold = None
        self.labels = None

    def close(self) -> None:
        """The connection ended."""
        self.logout()


def _echo(result: Reply | Blocking | None, label: str) -> Reply | Blocking | None:
    """``result`` with ``label`` on its reply (a Blocking's, once it has run)."""
    if isinstance(result, Reply):
        return label_reply(result, label)
    if isinstance(result, Blocking):
        run = result.run
        return Blocking(result.pool, lambda: label_reply(run(), label), result.verb, label)
    return result


def _record(text: str, reply: Reply) -> LabelRecord:
    return LabelRecord(text, reply.code, reply.lines)
