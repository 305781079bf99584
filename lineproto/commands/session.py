"""Per-connection session state and the shared services it reaches.

A :class:`Session` turns each framed input event into exactly one reply (or
none for a blank line). It knows nothing of sockets: the server feeds it lines
and writes out what it returns.
"""

import logging
import threading
import time

from .. import PRODUCT, __version__
from ..domain.accounts import User, UserDirectory
from ..wire import CommandSyntaxError, InvalidUtf8, LineTooLong, Reply, parse_command
from .errors import reply_for_error
from .table import CommandTable

log = logging.getLogger("lineproto.commands")

#: Failed PASS attempts allowed on one connection before it is closed.
MAX_LOGIN_FAILURES = 5

NOT_LOGGED_IN = "Not logged in: send USER <name> then PASS <password> (USER guest to play)"


class ServerStats:
    """Counters shown by STAT; the server updates them (commands once per batch of lines)."""

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

    def __init__(self, table: CommandTable | None = None, users: UserDirectory | None = None):
        self.table = table if table is not None else CommandTable()
        self.users = users if users is not None else UserDirectory()
        self.store = None  # a lineproto.store.Store when state is durable
        self.stats = ServerStats()
        self.product = PRODUCT
        self.version = __version__
        self.error_codes: list[tuple[type[BaseException], int]] = []
        self.stat_providers = []
        self.logout_hooks = []
        self.shutdown_hooks = []

    def close(self) -> None:
        """Run the shutdown hooks (the daemon is stopping)."""
        for hook in self.shutdown_hooks:
            hook()


class Session:
    """One connection's state: who is logged in and what they are doing."""

    def __init__(self, services: Services, peer: str = "-"):
        self.services = services
        self.peer = peer
        self.user: User | None = None
        self.pending_name: str | None = None  # after USER, before PASS
        self.login_failures = 0
        self.closing = False  # set by QUIT and fatal refusals: close after the reply
        self.extras: dict[str, object] = {}  # per-session state of services, by service name

    def handle(self, event) -> Reply | None:
        """The reply to one framed input event; None for a blank line."""
        if isinstance(event, str):
            try:
                command_line = parse_command(event)
            except CommandSyntaxError as exc:
                return Reply(500, (f"Syntax error: {exc}",))
            if command_line is None:
                return None
            return self.dispatch(command_line)
        if isinstance(event, LineTooLong):
            return Reply(500, (f"Line too long: the limit is {event.limit} bytes; line discarded",))
        if isinstance(event, InvalidUtf8):
            return Reply(500, ("Line is not valid UTF-8; line discarded",))
        raise TypeError(f"unknown input event {event!r}")

    def dispatch(self, command_line) -> Reply:
        command = self.services.table.get(command_line.verb)
        if command is None:
            return Reply(500, (f"Unknown command {command_line.verb}; HELP lists the commands",))
        if command.login or command.roles:
            if self.user is None:
                return Reply(530, (NOT_LOGGED_IN,))
            if command.roles and not self.user.has_role(*command.roles):
                needed = " or ".join(sorted(command.roles))
                return Reply(532, (f"Permission denied: {command.verb} needs the {needed} role",))
        args = command.args.split(command_line)
        if args is None:
            return Reply(501, (f"Syntax: {command.usage}",))
        try:
            return command.handler(self, *args)
        except Exception as exc:  # mapped to a reply; anything unmapped is a bug, logged in full
            reply = reply_for_error(exc, self.services.error_codes)
            if reply is None:
                log.exception("%s: %s failed", self.peer, command_line.verb)
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
        self.extras.clear()

    def close(self) -> None:
        """The connection ended."""
        self.logout()
