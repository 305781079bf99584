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
from typing import TYPE_CHECKING

from .. import PRODUCT, __version__
from ..domain.accounts import User, UserDirectory
from ..wire import CommandSyntaxError, InvalidUtf8, LineTooLong, Reply, parse_command
from .errors import reply_for_error
from .table import STORE_POOL, CommandTable

if TYPE_CHECKING:
    from ..domain.meters import Meters
    from .roulette import Seat, TableRegistry

log = logging.getLogger("lineproto.commands")

#: Failed PASS attempts allowed on one connection before it is closed.
MAX_LOGIN_FAILURES = 5

NOT_LOGGED_IN = "Not logged in: send USER <name> then PASS <password> (USER guest to play)"


class ServerStats:
    """Counters shown by STAT: open connections, and commands answered (sessions add theirs in batches)."""

    def __init__(self):
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self.connections = 0
        self.commands = 0

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
        self.product = PRODUCT
        self.version = __version__
        self.error_codes: list[tuple[type[BaseException], int]] = []
        self.stat_providers: list[Callable[[Session], list[tuple[str, object]]]] = []
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

    __slots__ = ("pool", "run", "verb")

    def __init__(self, pool: str, run: Callable[[], Reply], verb: str):
        self.pool = pool
        self.run = run
        self.verb = verb

    def __repr__(self) -> str:
        return f"Blocking({self.pool!r}, {self.verb})"


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
    )

    def __init__(self, services: Services, peer: str = "-"):
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

    def handle(self, event) -> Reply | Blocking | None:
        """The reply to one framed input event; None for a blank line.

        A command that may block comes back as :class:`Blocking`. Every
        command counts in ``commands-served``; :meth:`report_commands` adds
        the count to the shared counters.
        """
        if event.__class__ is str:
            try:
                command_line = parse_command(event)
            except CommandSyntaxError as exc:
                self.unreported_commands += 1
                return Reply(500, (f"Syntax error: {exc}",))
            if command_line is None:
                return None
            self.unreported_commands += 1
            return self.dispatch(command_line)
        self.unreported_commands += 1
        if isinstance(event, LineTooLong):
            return Reply(500, (f"Line too long: the limit is {event.limit} bytes; line discarded",))
        if isinstance(event, InvalidUtf8):
            return Reply(500, ("Line is not valid UTF-8; line discarded",))
        raise TypeError(f"unknown input event {event!r}")

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
        if command is None:
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
                if pool == STORE_POOL and (command.login or command.roles):
                    return Blocking(pool, lambda: self._run_for_account(command, args), command.verb)
                return Blocking(pool, lambda: self._run(command, args), command.verb)
        return self._run(command, args)

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

    def close(self) -> None:
        """The connection ended."""
        self.logout()
