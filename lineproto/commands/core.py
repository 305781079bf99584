"""Core commands: HELP, NOOP, QUIT, STAT, USER, PASS, REIN."""

import logging

from ..domain.accounts import GUEST, GUEST_USER, canonical_username
from ..store.base import StorageError, StorageFull
from ..wire import Reply
from ..wire.logtext import for_log
from ..wire.shapes import Status
from .errors import CommandError
from .session import MAX_LOGIN_FAILURES, Session
from .table import AUTH_POOL, Command, when_stored_user

log = logging.getLogger("lineproto.commands")

OK = Reply(200, ("OK",))


def help_(session: Session, verb: str | None = None) -> Reply:
    table = session.services.table
    if verb is None:
        shown = [command for command in table if command.available is None or command.available(session)]
        width = max(len(command.usage) for command in shown) + 2
        lines = ["Commands (HELP <verb> for details):"]
        lines += [f"{command.usage:<{width}}{command.summary}" for command in shown]
        lines.append("End of help")
        return Reply(214, tuple(lines))
    command = table.get(verb.upper())
    if command is None or (command.available is not None and not command.available(session)):
        raise CommandError(501, f"Unknown command {verb}; HELP lists the commands")
    lines = [command.usage, command.summary]
    lines += [line for line in command.detail.splitlines() if line.strip()]
    if command.roles:
        lines.append(f"Needs login with the {' or '.join(sorted(command.roles))} role")
    elif command.login:
        lines.append("Needs login")
    return Reply(214, tuple(lines))


def noop(session: Session) -> Reply:
    return OK


def quit_(session: Session) -> Reply:
    session.closing = True
    return Reply(221, ("Goodbye",))


def stat(session: Session) -> Reply:
    session.report_commands()  # this connection's commands so far count, this STAT included
    services = session.services
    stats = services.stats
    items = [
        ("product", services.product),
        ("version", services.version),
        ("uptime", f"{stats.uptime}s"),
        ("connections", stats.connections),
        ("commands-served", stats.commands),
        *stats.counters.items(),
        ("peer", session.peer),  # the client's address as the daemon sees it (behind a proxy: the header's)
        ("user", session.user.name if session.user else "-"),
    ]
    for provider in services.stat_providers:
        items.extend(provider(session))
    return Status(dict(items)).reply()


def user(session: Session, name: str) -> Reply:
    session.logout()
    name = canonical_username(name)  # names are case-insensitive: USER Ada is ada, USER GUEST is guest
    if name == GUEST and session.services.users.allow_guest:  # never a registered name (check_username)
        log.info("login %s from %s", GUEST, session.peer, extra=_fields(session, GUEST))
        session.login(GUEST_USER)
        return Reply(230, ("Welcome, Guest: logged in as guest with play money",))
    session.pending_name = name
    return Reply(331, (f"Password required for {name}",))


def pass_(session: Session, password: str) -> Reply:
    if session.user is not None:
        raise CommandError(503, "Already logged in; REIN to log out")
    name = session.pending_name
    if name is None:
        raise CommandError(503, "Send USER <name> first")
    session.pending_name = None
    services = session.services
    verdict = services.throttle.check(session.address, name)
    if not verdict.allowed:  # refused before any password hashing
        services.stats.count("login-throttled")
        if verdict.first:  # once per lock: a locked-out guesser must not flood the log instead
            log.warning(
                "login locked: the %s of %s from %s, for %d s",
                verdict.locked,
                for_log(name),
                session.peer,
                verdict.retry_seconds,
                extra=_fields(session, name),
            )
        session.login_failures += 1  # and refusals count for the connection's budget of failures
        if session.login_failures >= MAX_LOGIN_FAILURES:
            session.closing = True
            return Reply(421, ("Too many failed logins; closing connection",))
        raise CommandError(
            430, f"Too many failed logins for this {verdict.locked}; try again in {verdict.retry_seconds} s"
        )
    user = services.users.authenticate(name, password)
    if user is None:
        session.login_failures += 1
        services.stats.count("login-failures")
        session.reply_delay = services.throttle.failed(session.address, name)
        # One line per failure, account and peer in fixed places, so fail2ban and the like can match it.
        log.warning("login failed for %s from %s", for_log(name), session.peer, extra=_fields(session, name))
        if session.login_failures >= MAX_LOGIN_FAILURES:
            session.closing = True
            return Reply(421, ("Too many failed logins; closing connection",))
        raise CommandError(530, "Login incorrect")
    services.throttle.succeeded(session.address, name)
    log.info("login %s from %s", user.name, session.peer, extra=_fields(session, user.name))
    session.login(user)
    return Reply(230, (f"Welcome, {user.real_name}: logged in as {user.name}",))


def _fields(session: Session, account: str) -> dict[str, str]:
    """A login line's structured fields (``--log-format json``): the account (escaped) and the peer."""
    return {"account": for_log(account), "peer": session.peer}


#: Names RFC 4217 and its clients use for TLS in ``AUTH``.
TLS_MECHANISMS = frozenset({"TLS", "TLS-C", "SSL"})


def auth(session: Session, mechanism: str) -> Reply:
    """AUTH TLS (RFC 4217): 234, then the connection starts the TLS handshake."""
    if session.secure:
        raise CommandError(503, "Already on TLS")
    if session.user is not None:
        raise CommandError(503, "Log out (REIN) before AUTH TLS: the session starts afresh on TLS")
    if mechanism.upper() not in TLS_MECHANISMS:
        raise CommandError(504, f"Unknown security mechanism {mechanism}: AUTH TLS")
    session.upgrade_tls = True
    return Reply(234, ("AUTH TLS successful; start the TLS handshake",))


def tls_offered(session: Session) -> bool:
    return session.tls.available


def rein(session: Session) -> Reply:
    session.logout()
    return Reply(220, ("Logged out; send USER to log in again",))


COMMANDS = (
    Command("HELP", "[<verb>]", "List the commands, or describe one", help_),
    Command("NOOP", "", "Do nothing; replies 200", noop),
    Command("QUIT", "", "Close the connection", quit_),
    Command("STAT", "", "Server and session status as key: value lines", stat, blocks=when_stored_user),
    # USER and REIN log out a registered user, which releases what the store holds for them (jobs).
    Command("USER", "<name>", "Start logging in as <name> (guest needs no password)", user, blocks=when_stored_user),
    Command(
        "PASS",
        "<password...>",
        "Finish logging in; the rest of the line is the password",
        pass_,
        detail="The password may hold spaces: everything after PASS and its space is the password.",
        blocks=lambda session: AUTH_POOL,
    ),
    Command("REIN", "", "Log out and start a fresh session", rein, blocks=when_stored_user),
    Command(
        "AUTH",
        "<mechanism>",
        "Upgrade the connection to TLS: AUTH TLS (RFC 4217)",
        auth,
        detail="Replies 234, then the TLS handshake starts on this connection. Anything sent after\n"
        "AUTH TLS and before the handshake is discarded; the session starts afresh on TLS.",
        available=tls_offered,
    ),
)


# For every command: the store could not commit, nothing changed, trying later may work.
ERROR_CODES = (
    (StorageFull, 452),
    (StorageError, 451),
)


def add_arguments(parser) -> None:
    """The core has no daemon options of its own (the server's are in daemon.py)."""


def install(services, options) -> None:
    for command in COMMANDS:
        services.table.add(command)
    services.error_codes.extend(ERROR_CODES)
