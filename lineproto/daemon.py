"""Command line of the daemon: run the server, or an administration subcommand.

Every subcommand works on the same database (``--db``), offline or while the
daemon runs (SQLite allows other connections; ``backup`` is consistent online).
"""

import argparse
import gc
import getpass
import logging
import os
import signal
import sys

from . import DEFAULT_HOST, DEFAULT_PORT, PRODUCT, __version__
from .argtypes import positive_int, positive_seconds
from .commands import add_arguments as add_service_arguments, build_services
from .domain.accounts import (
    GUEST, AccountError, User, UserDirectory, check_username, format_user, hash_password, parse_roles,
    parse_users,
)
from .commands.meters import read_roster_file
from .domain.meters import RosterError
from .errors import StartError
from .connection import DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONNECTIONS, ConnectionLimits
from .engines import (
    DEFAULT_AUTH_WORKERS, ENGINE_NAMES, LOOP_NAMES, RunningServer, ServerSettings,
    make_server,
)
from .store import SYNC_MODES, SqliteStore, StorageError, StoreOpenError, backup_database

log = logging.getLogger("lineproto.daemon")

DEFAULT_DB = os.path.join("data", "lineproto.db")

__all__ = ["StartError", "main"]


def add_db_argument(parser, default=DEFAULT_DB) -> None:
    parser.add_argument("--db", default=default, metavar="PATH",
                        help="SQLite database (default ./data/lineproto.db, created on first run; "
                             "':memory:' for a throwaway run)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="daemon.py", description=f"{PRODUCT} {__version__} daemon")
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to listen on (default %(default)s)")
    parser.add_argument("-p", "--port", type=int, default=DEFAULT_PORT,
                        help="port to listen on, 0 for any free port (default %(default)s)")
    parser.add_argument("--notify", metavar="FILE",
                        help="write HOST:PORT to FILE once the socket listens")
    parser.add_argument("--log-level", default="info",
                        choices=["debug", "info", "warning", "error"], help="default %(default)s")
    parser.add_argument("--max-connections", type=int, default=DEFAULT_MAX_CONNECTIONS,
                        help="simultaneous connections (default %(default)s)")
    parser.add_argument("--idle-timeout", type=positive_seconds, default=DEFAULT_IDLE_TIMEOUT,
                        help="seconds a connection may go without sending a complete line before it is "
                             "closed (default %(default)s)")
    parser.add_argument("--engine", choices=ENGINE_NAMES, default=ENGINE_NAMES[0],
                        help="events: one asyncio event loop (default); threads: socketserver's "
                             "ThreadingTCPServer, a thread per connection")
    parser.add_argument("--loop", choices=LOOP_NAMES, default="auto",
                        help="event loop of the events engine: uvloop when installed (extra 'fast') "
                             "or asyncio (default %(default)s)")
    parser.add_argument("--auth-workers", type=positive_int, default=DEFAULT_AUTH_WORKERS, metavar="N",
                        help="password hashes computed at once, ~16 MB each (default %(default)s)")
    parser.add_argument("--cpu", type=int, metavar="N",
                        help="run the daemon on CPU N only (the threads engine then hands the GIL over "
                             "on one core; store commits and logins share that core)")
    add_db_argument(parser)
    parser.add_argument("--db-sync", choices=SYNC_MODES, default="full",
                        help="full: every acknowledged change survives power loss (default); "
                             "normal: faster, the last changes may be lost on power loss")
    parser.add_argument("--users", metavar="FILE",
                        help="import users from FILE (name:roles:hash:real name) into the database at start")
    add_service_arguments(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def admin(name, help_text):
        sub = commands.add_parser(name, help=help_text)
        add_db_argument(sub, default=argparse.SUPPRESS)
        return sub

    useradd = admin("useradd", "add or replace a user")
    useradd.add_argument("name")
    useradd.add_argument("--name", dest="real_name", required=True, help="the user's real name")
    useradd.add_argument("--role", action="append", default=[], help="reader, player or admin (repeatable)")
    useradd.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    useradd.add_argument("--users", dest="users_file", metavar="FILE",
                         help="write to this users file instead of the database")
    userdel = admin("userdel", "delete a user")
    userdel.add_argument("name")
    passwd = admin("passwd", "set a user's password")
    passwd.add_argument("name")
    passwd.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    admin("users", "list the users")
    roster = admin("roster", "meter roster administration")
    roster.add_argument("action", choices=["import"])
    roster.add_argument("file", help="CSV file whose first column is the meter id")
    admin("dump", "print the readings dump")
    backup = admin("backup", "write a consistent copy of the database, also while the daemon runs")
    backup.add_argument("file")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    command = args.command or "serve"
    try:
        return COMMANDS[command](args)
    except (StartError, StoreOpenError, AccountError, RosterError) as exc:
        print(f"daemon.py: {exc}", file=sys.stderr)
        return 2
    except StorageError as exc:
        print(f"daemon.py: {exc}", file=sys.stderr)
        return 1


def open_store(args) -> SqliteStore:
    if args.db == DEFAULT_DB:
        os.makedirs(os.path.dirname(DEFAULT_DB), exist_ok=True)
    return SqliteStore(args.db, sync=getattr(args, "db_sync", "full"), rng=None)


def import_users_file(store: SqliteStore, path: str) -> int:
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


def serve(args) -> int:
    # Blocked in every thread (each inherits this mask from the thread that starts it) and taken
    # by the main thread with sigtimedwait: a Python signal handler runs only when the main thread
    # runs bytecode, and a signal the kernel hands to another thread would leave a main thread
    # that waits in join() asleep for good.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    if args.cpu is not None:
        pin_to_cpu(args.cpu)
    store = open_store(args)
    try:
        return _serve(args, store)
    finally:
        store.close()


def _serve(args, store: SqliteStore) -> int:
    if args.users:
        log.info("imported %d users from %s", import_users_file(store, args.users), args.users)
    if not store.list_users():
        log.warning("no users yet: add the first admin with  python3 daemon.py useradd NAME "
                    "--name 'Real Name' --role admin --db %s  (USER guest works meanwhile)", args.db)
    if store.get_user(GUEST) is not None:
        log.warning("the database holds a user named %s, from an older version: it is ignored, since USER %s "
                    "is the play-money login (daemon.py userdel %s removes it)", GUEST, GUEST, GUEST)
    users = UserDirectory(lookup=store.get_user)
    services = build_services(users, args, store)
    settings = ServerSettings(
        host=args.host, port=args.port,
        limits=ConnectionLimits(max_connections=args.max_connections, idle_timeout=args.idle_timeout),
        auth_workers=args.auth_workers, loop=args.loop)
    try:
        server = make_server(services, settings, args.engine)
    except OSError as exc:
        raise StartError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    # What start-up built lives as long as the daemon: keep it out of the collector's full passes.
    gc.freeze()
    running = RunningServer(server).start(timeout=60)
    host, port = server.address
    log.info("running the %s", server.description)
    print(f"{PRODUCT} {__version__} listening on {host}:{port}", flush=True)
    if args.notify:
        write_atomically(args.notify, f"{host}:{port}\n")
    while running.alive:
        caught = signal.sigtimedwait(STOP_SIGNALS, 0.5)
        if caught is not None:
            log.info("%s: stopping", signal.Signals(caught.si_signo).name)
            server.stop()
            break
    running.wait()
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
    user = User(name, args.real_name, roles, hash_password(read_password(args.password_stdin)))
    if "\n" in user.real_name:
        raise AccountError("a real name cannot hold a line break")
    if args.users_file:
        users = {}
        if os.path.exists(args.users_file):
            with open(args.users_file, encoding="utf-8") as file:
                users = parse_users(file)
        users[name] = user
        write_atomically(args.users_file, "".join(format_user(u) + "\n" for u in users.values()))
        print(f"user {name} saved in {args.users_file}")
        return 0
    with _store(args) as store:
        store.put_user(user)
    print(f"user {name} saved")
    return 0


def userdel(args) -> int:
    with _store(args) as store:
        if not store.delete_user(args.name):
            raise StartError(f"no user {args.name}")
    print(f"user {args.name} deleted")
    return 0


def passwd(args) -> int:
    with _store(args) as store:
        user = store.get_user(args.name)
        if user is None:
            raise StartError(f"no user {args.name}")
        store.put_user(User(user.name, user.real_name, user.roles,
                            hash_password(read_password(args.password_stdin))))
    print(f"password of {args.name} changed")
    return 0


def users(args) -> int:
    with _store(args) as store:
        for user in store.list_users():
            print(f"{user.name}\t{','.join(sorted(user.roles)) or '-'}\t{user.real_name}")
    return 0


def roster(args) -> int:
    ids = read_roster_file(args.file)
    with _store(args) as store:
        added = store.meters.load_roster(ids)
    print(f"roster {args.file}: {len(ids)} meters, {added} new")
    return 0


def dump(args) -> int:
    with _store(args) as store:
        for line in store.meters.dump():
            print(line)
    return 0


def backup(args) -> int:
    if not os.path.exists(args.db):
        raise StartError(f"no database at {args.db}")
    backup_database(args.db, args.file)
    print(f"backup of {args.db} written to {args.file}")
    return 0


class _store:
    """``with _store(args) as store``: open the database, always close it."""

    def __init__(self, args):
        self.args = args

    def __enter__(self) -> SqliteStore:
        self.store = open_store(self.args)
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
    "serve": serve, "useradd": useradd, "userdel": userdel, "passwd": passwd, "users": users,
    "roster": roster, "dump": dump, "backup": backup,
}
