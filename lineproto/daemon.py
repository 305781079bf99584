"""Command line of the daemon: run the server, or an administration subcommand.

Every subcommand works on the same database (``--db``), offline or while the
daemon runs (SQLite allows other connections; ``backup`` is consistent online).
"""

import argparse
import gc
import getpass
import ipaddress
import logging
import os
import signal
import sys

from . import DEFAULT_HOST, DEFAULT_PORT, PRODUCT, __version__, config, logsetup, metrics
from .argtypes import ArgumentParser, lock_budget, password_cost, port_number, positive_int, positive_seconds
from .commands import add_admin_commands as add_service_admin_commands
from .commands import add_arguments as add_service_arguments
from .commands import build_services
from .connection import (
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_LOGIN_TIMEOUT,
    DEFAULT_MAX_BAD_COMMANDS,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_PER_ADDRESS,
    ConnectionLimits,
)
from .domain.accounts import (
    GUEST,
    SCRYPT_N,
    AccountError,
    HashCost,
    User,
    UserDirectory,
    canonical_username,
    check_username,
    format_user,
    hash_password,
    parse_roles,
    parse_users,
)
from .domain.meters import RosterError
from .domain.throttle import ACCOUNT_POLICY, ADDRESS_POLICY, LoginThrottle, ThrottlePolicy
from .engines import (
    DEFAULT_AUTH_WORKERS,
    ENGINE_NAMES,
    LOOP_NAMES,
    RunningServer,
    ServerSettings,
    make_server,
)
from .engines.tls import TlsConfig
from .errors import StartError
from .extras import program_name
from .proxying import add_arguments as add_proxy_arguments
from .store import SYNC_MODES, SqlStore, StorageError, StoreOpenError, backup_database, is_postgres
from .store import audit as audit_log
from .store import open_store as open_database
from .systemd import Deployment
from .systemd import add_arguments as add_deployment_arguments

log = logging.getLogger("lineproto.daemon")

DEFAULT_DB = os.path.join("data", "lineproto.db")

__all__ = ["StartError", "main"]


def add_db_argument(parser, default=DEFAULT_DB) -> None:
    parser.add_argument(
        "--db",
        default=default,
        metavar="PATH|URL",
        help="SQLite database (default ./data/lineproto.db). The daemon, useradd and "
        "roster import create it, and its directory (mode 0700), when missing; "
        "the other subcommands need it to exist. ':memory:' for a throwaway run; "
        "postgresql://USER@HOST:PORT/DB for PostgreSQL, shared by several daemons "
        "(extra 'postgres'; needs --audit-key; docs/DEPLOYING.md)",
    )


def add_serving_arguments(parser: argparse.ArgumentParser) -> None:
    """Every option of the running daemon (and so every key of its config file, lineproto.config).

    Each feature module adds its own through one ``add_arguments(parser)`` call here.
    """
    config.add_arguments(parser)
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to listen on (default %(default)s)")
    parser.add_argument(
        "-p",
        "--port",
        type=port_number,
        default=DEFAULT_PORT,
        help="port to listen on, 0 for any free port (default %(default)s)",
    )
    parser.add_argument("--notify", metavar="FILE", help="write HOST:PORT to FILE once the socket listens")
    parser.add_argument(
        "--max-connections",
        type=positive_int,
        default=DEFAULT_MAX_CONNECTIONS,
        metavar="N",
        help="simultaneous connections, 1 or more (default %(default)s)",
    )
    parser.add_argument(
        "--idle-timeout",
        type=positive_seconds,
        default=DEFAULT_IDLE_TIMEOUT,
        metavar="SECONDS",
        help="seconds a connection may go without sending a complete line before it is "
        "closed; more than 0, there is no 'never' (default %(default)s)",
    )
    limits = parser.add_argument_group("limits (docs/PROTOCOL.md, section 5)")
    limits.add_argument(
        "--max-per-address",
        type=positive_int,
        default=DEFAULT_MAX_PER_ADDRESS,
        metavar="N",
        help="connections one source address may hold at once (default %(default)s)",
    )
    limits.add_argument(
        "--login-timeout",
        type=positive_seconds,
        default=DEFAULT_LOGIN_TIMEOUT,
        metavar="SECONDS",
        help="seconds a new connection may stay logged out (default %(default)s)",
    )
    limits.add_argument(
        "--max-bad-commands",
        type=positive_int,
        default=DEFAULT_MAX_BAD_COMMANDS,
        metavar="N",
        help="bad command lines in a row before the connection is closed (default %(default)s)",
    )
    limits.add_argument(
        "--lock-window",
        type=positive_seconds,
        default=ACCOUNT_POLICY.window,
        metavar="SECONDS",
        help="failed logins count for this long (default %(default)s)",
    )
    limits.add_argument(
        "--account-lock-after",
        type=lock_budget,
        default=ACCOUNT_POLICY.budget,
        metavar="N",
        help="failed logins of one account within the window that lock it (default %(default)s)",
    )
    limits.add_argument(
        "--address-lock-after",
        type=lock_budget,
        default=ADDRESS_POLICY.budget,
        metavar="N",
        help="failed logins from one address within the window that lock it (default %(default)s)",
    )
    parser.add_argument(
        "--engine",
        choices=ENGINE_NAMES,
        default=ENGINE_NAMES[0],
        help="events: one asyncio event loop (default); threads: socketserver's "
        "ThreadingTCPServer, a thread per connection",
    )
    parser.add_argument(
        "--loop",
        choices=LOOP_NAMES,
        default="auto",
        help="event loop of the events engine: uvloop when installed (extra 'fast') or asyncio (default %(default)s)",
    )
    parser.add_argument(
        "--auth-workers",
        type=positive_int,
        default=DEFAULT_AUTH_WORKERS,
        metavar="N",
        help="password hashes computed at once, ~16 MB each (default %(default)s)",
    )
    parser.add_argument(
        "--cpu",
        type=int,
        metavar="N",
        help="run the daemon on CPU N only (the threads engine then hands the GIL over "
        "on one core; store commits and logins share that core)",
    )
    add_db_argument(parser)
    audit_log.add_arguments(parser)
    parser.add_argument(
        "--db-sync",
        choices=SYNC_MODES,
        default="full",
        help="full: every acknowledged change survives power loss (default); "
        "normal: faster, the last changes may be lost on power loss",
    )
    parser.add_argument(
        "--job-lease",
        type=positive_seconds,
        default=30.0,
        metavar="SECONDS",
        help="PostgreSQL: a held meter job stays this daemon's for this long without renewal; the "
        "daemon renews its jobs every third of it, so a dead daemon's jobs return within it (default %(default)s)",
    )
    parser.add_argument(
        "--users", metavar="FILE", help="import users from FILE (name:roles:hash:real name) into the database at start"
    )
    parser.add_argument(
        "--password-cost",
        type=password_cost,
        default=SCRYPT_N,
        metavar="N",
        help="scrypt N of password checks: a power of two, 1024 or more (default %(default)s); "
        "older hashes are brought to it at their next good login",
    )
    tls = parser.add_argument_group("TLS (docs/PROTOCOL.md, AUTH)")
    tls.add_argument("--cert", metavar="PEM", help="certificate chain (PEM): offers AUTH TLS; reloaded on SIGHUP")
    tls.add_argument("--key", metavar="PEM", help="its private key (PEM), if not in --cert")
    tls.add_argument(
        "--tls-port",
        type=port_number,
        metavar="PORT",
        help="also listen here for connections that start with the TLS handshake (0: any free port)",
    )
    tls.add_argument(
        "--require-tls",
        action="store_true",
        help="plaintext connections from other machines must AUTH TLS before logging in",
    )
    add_proxy_arguments(parser)
    add_service_arguments(parser)
    # the deployment features: one add_arguments(parser) each
    add_deployment_arguments(parser)
    logsetup.add_arguments(parser)
    metrics.add_arguments(parser)


def build_parser() -> argparse.ArgumentParser:
    """The daemon's command line: the serving options, then the subcommands (each with --db).

    ``config`` takes the serving options too, so ``lineproto-daemon config --port 4000`` shows
    what that command line would run with.
    """
    prog = program_name("lineproto-daemon")
    parser = ArgumentParser(
        prog=prog,
        description=f"{PRODUCT} {__version__} daemon",
        epilog="Every option may be given in a --config file instead; docs/DEPLOYING.md.",
    )
    parser.add_argument("--version", action="version", version=f"{PRODUCT} {__version__}")
    add_serving_arguments(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def admin(name, help_text):
        sub = commands.add_parser(name, help=help_text)
        add_db_argument(sub, default=argparse.SUPPRESS)
        audit_log.add_arguments(sub, default=argparse.SUPPRESS)
        return sub

    useradd = admin("useradd", "add a user (refused if the name exists: see usermod and passwd)")
    useradd.add_argument("name", help="login name: 1-32 letters, digits, '.', '_', '-'; case-insensitive")
    useradd.add_argument("--name", dest="real_name", required=True, help="the user's real name")
    useradd.add_argument("--role", action="append", default=[], help="reader, player or admin (repeatable)")
    useradd.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    useradd.add_argument(
        "--users", dest="users_file", metavar="FILE", help="write to this users file instead of the database"
    )
    usermod = admin("usermod", "change a user's real name or roles")
    usermod.add_argument("name")
    usermod.add_argument("--name", dest="real_name", help="the new real name")
    usermod.add_argument(
        "--role", action="append", dest="roles", help="set the roles to exactly these (repeatable; --role '' for none)"
    )
    usermod.add_argument("--add-role", action="append", default=[], metavar="ROLE", help="add a role (repeatable)")
    usermod.add_argument(
        "--remove-role", action="append", default=[], metavar="ROLE", help="remove a role (repeatable)"
    )
    usermod.add_argument("--force", action="store_true", help="allow taking the admin role from the last admin")
    userdel = admin("userdel", "delete a user (their sessions end at their next command)")
    userdel.add_argument("name")
    userdel.add_argument("--force", action="store_true", help="allow deleting the last admin")
    passwd = admin("passwd", "set a user's password")
    passwd.add_argument("name")
    passwd.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    admin("users", "list the users")
    unlock = admin("unlock", "end the failed-login lock of an account or an address (docs/PROTOCOL.md, section 5)")
    unlock.add_argument("key", metavar="NAME|ADDRESS")

    def add_service_command(name, help_text, run):
        sub = admin(name, help_text)
        sub.set_defaults(service_run=run)
        return sub

    add_service_admin_commands(add_service_command)
    audit_log.add_admin_commands(add_service_command)
    admin("dump", "print the readings dump")
    shown = commands.add_parser(
        "config", help="print the effective configuration as TOML (what --config reads; takes the serving options)"
    )
    add_serving_arguments(shown)
    for action in shown._actions:  # only what is given after 'config' overrides the options before it
        action.default = argparse.SUPPRESS
    backup = admin("backup", "write a consistent copy of the database, also while the daemon runs")
    backup.add_argument("file")
    return parser


#: The daemon's umask: every file it creates (database, WAL, SHM, backups, users files, notify
#: files) is 0600 and every directory 0700, whatever the umask it was started with: the database
#: and users files hold password hashes.
PRIVATE_UMASK = 0o077


def main(argv: list[str] | None = None) -> int:
    os.umask(PRIVATE_UMASK)
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = parse_arguments(parser, argv)
        logsetup.configure(args, serving=args.command is None)
        if hasattr(args, "service_run"):  # a service's own subcommand (commands.add_admin_commands)
            return args.service_run(args, lambda create: _store(args, create))
        return COMMANDS[args.command or "serve"](args)
    except (StartError, StoreOpenError, AccountError, RosterError) as exc:
        print(f"{parser.prog}: {exc}", file=sys.stderr)
        return 2
    except StorageError as exc:
        print(f"{parser.prog}: {exc}", file=sys.stderr)
        return 1


def parse_arguments(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """The command line, with ``--config FILE``'s settings in front of it (so the command line wins)."""
    args = parser.parse_args(argv)
    if args.config is None:
        return args
    return parser.parse_args(config.file_arguments(parser, args.config) + argv)


def show_config(args) -> int:
    """``config``: the effective settings, as a file that ``--config`` reads back."""
    print(f"# {PRODUCT} {__version__}: the effective configuration (lineproto-daemon --config FILE reads it)")
    print(config.effective(build_parser(), args), end="")
    return 0


#: Mode of a database directory the daemon creates: only its owner may enter it.
DB_DIRECTORY_MODE = 0o700


def open_store(args, create: bool = True) -> SqlStore:
    """The database of ``--db``.

    One rule for every path, the default ``./data/lineproto.db`` included:
    with ``create`` (the daemon, useradd, roster import) a missing database
    is created, and so is its directory (mode 0700); without it (commands that
    only read or change what exists) a missing database is an error, so a
    typo never leaves an empty database behind. Those that create also need
    the audit key (``--audit-key``) at once; the others only when they change something.
    A ``postgresql://`` database must exist (the server creates databases); its schema is
    created by the first daemon or subcommand that opens it.
    """
    if is_postgres(args.db):
        return open_database(
            args.db,
            sync=getattr(args, "db_sync", "full"),
            audit_key=args.audit_key,
            audit_required=create,
            job_lease=getattr(args, "job_lease", None),
        )
    existed = args.db == ":memory:" or os.path.exists(args.db)
    if not existed:
        if not create:
            raise StartError(f"no database at {args.db} (the daemon, useradd and roster import create one)")
        make_private_directory(os.path.dirname(os.path.abspath(args.db)))
    store = open_database(
        args.db, sync=getattr(args, "db_sync", "full"), audit_key=args.audit_key, audit_required=create
    )
    if existed and args.db != ":memory:":
        warn_if_readable_by_others(args.db)
    return store


def warn_if_readable_by_others(path: str) -> None:
    """A database (and its WAL and SHM) holds password hashes: say so if other users may read it."""
    for name in (path, f"{path}-wal", f"{path}-shm"):
        try:
            mode = os.stat(name).st_mode & 0o777
        except FileNotFoundError:
            continue
        if mode & 0o077:
            log.warning(
                "%s is readable by other users (mode %04o): it holds password hashes; chmod 600 %s", name, mode, name
            )


def make_private_directory(path: str) -> None:
    """Create ``path`` (and its parents) if missing; the directory created gets mode 0700."""
    if os.path.isdir(path):
        return
    try:
        os.makedirs(path, mode=DB_DIRECTORY_MODE)
        os.chmod(path, DB_DIRECTORY_MODE)  # makedirs' mode is filtered by the umask
    except OSError as exc:
        raise StartError(f"cannot create directory {path}: {exc.strerror or exc}") from None


def check_file_target(option: str, path: str) -> None:
    """A file we are about to write must go in an existing directory: one line if not."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise StartError(f"{option} {path}: directory {directory} does not exist")


def import_users_file(store: SqlStore, path: str) -> int:
    try:
        with open(path, encoding="utf-8") as file:
            users = parse_users(file)
    except FileNotFoundError:
        raise StartError(f"users file not found: {path}") from None
    except AccountError as exc:
        raise StartError(f"users file {path}: {exc}") from None
    for user in users.values():
        store.put_user(user)
    return len(users)


def pin_to_cpu(cpu: int) -> None:
    """Keep every thread on one CPU: GIL hand-offs then need no cross-core wake-ups."""
    allowed = os.sched_getaffinity(0)
    if cpu not in allowed:
        raise StartError(f"--cpu {cpu}: this process may run on CPUs {sorted(allowed)}")
    os.sched_setaffinity(0, {cpu})
    log.info("pinned to CPU %d", cpu)


#: The signals that stop the daemon gracefully.
STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})
#: What the main thread waits for: the stop signals, and SIGHUP (reopen the log file, reload the TLS certificate).
WAITED_SIGNALS = STOP_SIGNALS | {signal.SIGHUP}


def load_tls(args) -> TlsConfig | None:
    if args.cert is None:
        if args.key is not None:
            raise StartError("--key needs --cert")
        return None
    return TlsConfig(args.cert, args.key)


def reload_tls(tls: TlsConfig | None) -> None:
    """SIGHUP: read the certificate and key again; new handshakes use them, sessions stay."""
    if tls is None:
        log.info("SIGHUP: no TLS certificate to reload")
        return
    try:
        tls.reload()
    except StartError as exc:
        log.error("SIGHUP: %s; the old certificate stays", exc)
        return
    log.info("SIGHUP: TLS certificate %s reloaded", tls.cert)


def serve(args) -> int:
    # Blocked in every thread (each inherits this mask from the thread that starts it) and taken
    # by the main thread with sigtimedwait: a Python signal handler runs only when the main thread
    # runs bytecode, and a signal the kernel hands to another thread would leave a main thread
    # that waits in join() asleep for good.
    signal.pthread_sigmask(signal.SIG_BLOCK, WAITED_SIGNALS)
    if args.cpu is not None:
        pin_to_cpu(args.cpu)
    if args.notify:
        check_file_target("--notify", args.notify)
    exporter = metrics.from_arguments(args)
    deployment = Deployment(args)  # systemd's sockets and notify, inetd's connection, mDNS
    settings = server_settings(args, deployment)  # option mistakes before the database is created
    store = open_store(args)
    try:
        return _serve(args, store, exporter, deployment, settings)
    finally:
        store.close()


def server_settings(args, deployment: Deployment) -> ServerSettings:
    """Where and how to serve, from the options: checked before the database is opened."""
    return ServerSettings(
        **deployment.listeners(),
        host=args.host,
        port=args.port,
        limits=ConnectionLimits(
            max_connections=args.max_connections,
            idle_timeout=args.idle_timeout,
            max_per_address=args.max_per_address,
            login_timeout=args.login_timeout,
            max_bad_commands=args.max_bad_commands,
            proxy_from=args.proxy_from,
        ),
        auth_workers=args.auth_workers,
        loop=args.loop,
        tls=load_tls(args),
        tls_port=args.tls_port,
        require_tls=args.require_tls,
        proxy_protocol=args.proxy_protocol,
        tls_proxy_protocol=args.tls_proxy_protocol,
    )


def _serve(
    args, store: SqlStore, exporter: metrics.MetricsServer | None, deployment: Deployment, settings: ServerSettings
) -> int:
    if args.users:
        log.info("imported %d users from %s", import_users_file(store, args.users), args.users)
    if not store.list_users():
        if args.db == ":memory:":
            log.warning(
                "no users: an in-memory database starts empty; give it users with --users FILE "
                "(python3 daemon.py useradd NAME --name 'Real Name' --role admin --users FILE "
                "writes one)  (USER guest works meanwhile)"
            )
        else:
            log.warning(
                "no users yet: add the first admin with  python3 daemon.py useradd NAME "
                "--name 'Real Name' --role admin --db %s  (USER guest works meanwhile)",
                args.db,
            )
    for user in store.list_users():
        if user.name != canonical_username(user.name):
            log.warning(
                "user %s has upper-case letters, from an older version: names are case-insensitive "
                "now and it cannot log in; add it again in lower case",
                user.name,
            )
    if store.get_user(GUEST) is not None:
        log.warning(
            "the database holds a user named %s, from an older version: it is ignored, since USER %s "
            "is the play-money login (daemon.py userdel %s removes it)",
            GUEST,
            GUEST,
            GUEST,
        )
    users = UserDirectory(lookup=store.get_user, save=store.put_user, cost=HashCost(args.password_cost))
    services = build_services(users, args, store)
    services.throttle = LoginThrottle(
        ThrottlePolicy.with_budget(args.address_lock_after, args.lock_window),
        ThrottlePolicy.with_budget(args.account_lock_after, args.lock_window),
        unlock_requested=store.take_unlock_request,  # daemon.py unlock, from another process
    )
    try:
        server = make_server(services, settings, args.engine)
    except OSError as exc:
        raise StartError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    # What start-up built lives as long as the daemon: keep it out of the collector's full passes.
    gc.freeze()
    running = RunningServer(server).start(timeout=60)
    try:
        if exporter is not None:
            exporter.start(services.stats)
    except StartError:
        server.stop()
        running.wait()
        raise
    host, port = server.address
    log.info("running the %s", server.description)
    print(f"{PRODUCT} {__version__} listening on {host}:{port}", flush=True)
    ready = f"{host}:{port}\n"
    if server.tls_address is not None:
        print(
            f"{PRODUCT} {__version__} listening for TLS on {server.tls_address[0]}:{server.tls_address[1]}", flush=True
        )
        ready += f"tls {server.tls_address[0]}:{server.tls_address[1]}\n"
    if exporter is not None:
        metrics_host, metrics_port = exporter.address
        print(f"{PRODUCT} {__version__} metrics on http://{metrics_host}:{metrics_port}/metrics", flush=True)
        ready += f"metrics {metrics_host}:{metrics_port}\n"
    if args.notify:
        write_atomically(args.notify, ready)
    deployment.started(server, running)
    while running.alive:
        caught = signal.sigtimedwait(WAITED_SIGNALS, 0.5)
        # After SIGSTOP and a SIGCONT past the timeout, sigtimedwait returns a siginfo naming no
        # signal we wait for (seen here: si_signo -1094853856); such a wake-up is not a signal.
        if caught is None or caught.si_signo not in WAITED_SIGNALS:
            continue
        if caught.si_signo == signal.SIGHUP:
            if logsetup.reopen_files():
                log.info("SIGHUP: log file reopened")
            reload_tls(settings.tls)
            continue
        log.info("%s: stopping", signal.Signals(caught.si_signo).name)
        server.stop()
        break
    deployment.stopping()
    running.wait()
    if exporter is not None:
        exporter.stop()
    log.info("shutting down")
    services.close()
    log.info("stopped")
    return 0


def write_atomically(path: str, text: str) -> None:
    """Write via a temporary file and rename, so a reader never sees half a file."""
    temporary = f"{path}.tmp{os.getpid()}"
    with open(temporary, "w", encoding="utf-8") as file:
        file.write(text)
    os.replace(temporary, path)


def useradd(args) -> int:
    name = check_username(args.name)
    roles = parse_roles(",".join(args.role))
    check_real_name(args.real_name)
    if args.users_file:
        users = {}
        if os.path.exists(args.users_file):
            with open(args.users_file, encoding="utf-8") as file:
                users = parse_users(file)
        if name in users:
            raise StartError(f"user {name} exists in {args.users_file}")
        users[name] = User(name, args.real_name, roles, hash_password(read_password(args.password_stdin)))
        write_atomically(args.users_file, "".join(format_user(u) + "\n" for u in users.values()))
        print(f"user {name} saved in {args.users_file}")
        return 0
    with _store(args) as store:
        if store.get_user(name) is not None:
            raise StartError(f"user {name} exists: usermod changes the name or roles, passwd the password")
        store.put_user(User(name, args.real_name, roles, hash_password(read_password(args.password_stdin))))
    print(f"user {name} added")
    return 0


def check_real_name(real_name: str) -> None:
    if "\n" in real_name or "\r" in real_name:
        raise AccountError("a real name cannot hold a line break")


def usermod(args) -> int:
    if args.real_name is None and args.roles is None and not args.add_role and not args.remove_role:
        raise StartError("usermod: nothing to change (--name, --role, --add-role, --remove-role)")
    with _store(args, create=False) as store:
        user = _existing_user(store, args.name)
        roles = parse_roles(",".join(args.roles)) if args.roles is not None else user.roles
        roles = (roles | parse_roles(",".join(args.add_role))) - parse_roles(",".join(args.remove_role))
        real_name = args.real_name if args.real_name is not None else user.real_name
        check_real_name(real_name)
        if "admin" in user.roles and "admin" not in roles and not args.force:
            _refuse_losing_last_admin(store, user, "taking the admin role from")
        store.put_user(User(user.name, real_name, roles, user.password_hash))
    print(f"user {user.name}: {','.join(sorted(roles)) or 'no roles'}; {real_name}")
    return 0


def _existing_user(store: SqlStore, name: str) -> User:
    user = store.get_user(canonical_username(name))
    if user is None:
        raise StartError(f"no user {name}")
    return user


def _refuse_losing_last_admin(store: SqlStore, user: User, action: str) -> None:
    if not any(other.name != user.name and "admin" in other.roles for other in store.list_users()):
        raise StartError(f"{user.name} is the only admin: {action} them leaves no admin (--force does it anyway)")


def userdel(args) -> int:
    with _store(args, create=False) as store:
        user = _existing_user(store, args.name)
        if "admin" in user.roles and not args.force:
            _refuse_losing_last_admin(store, user, "deleting")
        store.delete_user(user.name)
    print(f"user {user.name} deleted")
    return 0


def passwd(args) -> int:
    with _store(args, create=False) as store:
        user = _existing_user(store, args.name)
        store.put_user(User(user.name, user.real_name, user.roles, hash_password(read_password(args.password_stdin))))
    print(f"password of {user.name} changed")
    return 0


def unlock(args) -> int:
    """Ask the running daemon to end a lock: it reads the request at the next attempt on that key."""
    try:
        key = str(ipaddress.ip_address(args.key))  # an address, as the daemon counts it
    except ValueError:
        key = check_username(args.key)  # an account, in its canonical form
    with _store(args, create=False) as store:
        store.request_unlock(key)
    print(f"{key}: unlocked at its next login attempt (if it is locked)")
    return 0


def users(args) -> int:
    with _store(args, create=False) as store:
        for user in store.list_users():
            print(f"{user.name}\t{','.join(sorted(user.roles)) or '-'}\t{user.real_name}")
    return 0


def dump(args) -> int:
    with _store(args, create=False) as store:
        for line in store.meters.dump():
            print(line)
    return 0


def backup(args) -> int:
    if is_postgres(args.db):
        return backup_postgres(args)
    if not os.path.exists(args.db):
        raise StartError(f"no database at {args.db}")
    check_file_target("backup", args.file)
    key = audit_log.load_key(audit_log.key_path(args.db, args.audit_key))
    backup_database(args.db, args.file)
    signature = audit_log.sign_backup(args.file, key)
    print(f"backup of {args.db} written to {args.file}, signed in {signature}")
    return 0


def backup_postgres(args) -> int:
    """``backup`` of a PostgreSQL database: a logical export of one snapshot, signed as an SQLite copy is."""
    check_file_target("backup", args.file)
    key = audit_log.load_key(audit_log.key_path(args.db, args.audit_key))
    with _store(args, create=False) as store:
        store.backup(args.file)
        found = audit_log.parse_stored_head(store.audit_head())  # type: ignore[attr-defined]  # PostgresStore's
    signature = audit_log.write_signature(args.file, key, found[0] if found else audit_log.EMPTY)
    print(f"backup of {store.shown} written to {args.file}, signed in {signature}")  # type: ignore[attr-defined]
    return 0


class _store:
    """``with _store(args) as store``: open the database, always close it."""

    def __init__(self, args, create: bool = True):
        self.args = args
        self.create = create

    def __enter__(self) -> SqlStore:
        self.store = open_store(self.args, self.create)
        return self.store

    def __exit__(self, *exc):
        self.store.close()


def read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if password != getpass.getpass("Again: "):
            raise StartError("passwords do not match")
    if not password:
        raise StartError("empty password refused")
    return password


COMMANDS = {
    "serve": serve,
    "useradd": useradd,
    "usermod": usermod,
    "userdel": userdel,
    "passwd": passwd,
    "users": users,
    "unlock": unlock,
    "dump": dump,
    "backup": backup,
    "config": show_config,
}


if __name__ == "__main__":  # python -m lineproto.daemon
    sys.exit(main())
