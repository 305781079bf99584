"""Command line of the daemon: run the server, or an admin subcommand."""

import argparse
import getpass
import logging
import os
import signal
import sys
import threading

from . import PRODUCT, __version__
from .commands import add_arguments as add_service_arguments, build_services
from .domain.accounts import (
    AccountError, User, UserDirectory, check_username, format_user, hash_password, parse_roles,
    parse_users,
)
from .server import (
    DEFAULT_HOST, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONNECTIONS, DEFAULT_PORT, LineServer,
)

log = logging.getLogger("lineproto.daemon")


class StartError(Exception):
    """The daemon cannot start; the message is the one line the operator sees."""


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
    parser.add_argument("--idle-timeout", type=float, default=DEFAULT_IDLE_TIMEOUT,
                        help="seconds of silence before a connection is closed (default %(default)s)")
    parser.add_argument("--users", metavar="FILE", help="users file (name:roles:hash:real name)")
    add_service_arguments(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    useradd = commands.add_parser("useradd", help="add or replace a user in the users file")
    useradd.add_argument("name")
    useradd.add_argument("--name", dest="real_name", required=True, help="the user's real name")
    useradd.add_argument("--role", action="append", default=[], help="reader, player or admin (repeatable)")
    useradd.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    useradd.add_argument("--users", dest="users_file", metavar="FILE", help="users file to write")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "useradd":
            return useradd(args)
        return serve(args)
    except (StartError, AccountError, OSError) as exc:
        print(f"daemon.py: {exc}", file=sys.stderr)
        return 2


def load_users(path: str | None) -> UserDirectory:
    if path is None:
        return UserDirectory()
    try:
        with open(path, encoding="utf-8") as file:
            return UserDirectory(parse_users(file))
    except FileNotFoundError:
        raise StartError(f"users file not found: {path}") from None
    except AccountError as exc:
        raise StartError(f"users file {path}: {exc}") from None


def serve(args) -> int:
    services = build_services(load_users(args.users), args)
    try:
        server = LineServer((args.host, args.port), services,
                            max_connections=args.max_connections, idle_timeout=args.idle_timeout)
    except OSError as exc:
        raise StartError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    host, port = server.server_address[:2]
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, name="accept", daemon=True)
    thread.start()
    print(f"{PRODUCT} {__version__} listening on {host}:{port}", flush=True)
    if args.notify:
        write_atomically(args.notify, f"{host}:{port}\n")
    stop.wait()
    log.info("shutting down")
    server.stop()
    services.close()
    log.info("stopped")
    return 0


def write_atomically(path: str, text: str) -> None:
    """Write atomically, so a reader never sees a half-written file."""
    temporary = f"{path}.tmp{os.getpid()}"
    with open(temporary, "w", encoding="utf-8") as file:
        file.write(text)
    os.replace(temporary, path)


def useradd(args) -> int:
    path = args.users_file or args.users
    if not path:
        raise StartError("useradd needs --users FILE")
    name = check_username(args.name)
    roles = parse_roles(",".join(args.role))
    password = read_password(args.password_stdin)
    user = User(name, args.real_name, roles, hash_password(password))
    users = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as file:
            users = parse_users(file)
    users[name] = user
    write_atomically(path, "".join(format_user(u) + "\n" for u in users.values()))
    print(f"user {name} saved in {path}")
    return 0


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
