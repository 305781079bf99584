"""``client.py meter``: the console meter reader.

    $ python3 client.py meter
    Username [carol]:
    Password:
    Welcome, Carol Dent, to the lineproto meter service
    Reading for meter G10001: 5983
    Accepted: you have read 1 out of 1 readings
    Reading for meter G10002: 2980q
    Invalid reading
    Reading for meter G10002:
    Reason for meter G10002: Dog in the yard
    Accepted: you have read 2 out of 2 readings
    Reading for meter E200003:
    Reason for meter E200003:
    $

An empty reading asks for a reason; an empty reason (or end of input) ends the
session, and the job in hand goes back to the pool. ``--spawn`` starts a daemon
when none answers, on a temporary database unless ``--db`` names one, and stops
it on exit.

Answers and the password are read as every console program reads them
(:mod:`.prompts`): on a terminal the password without echo; from a pipe or a
file line by line, each answer echoed after its prompt (the password never), so
the output reads like the terminal session.
"""

from __future__ import annotations

import getpass
import re
import sys

from ..argtypes import port_number
from ..client import Client, ClientError, PermanentError, ReplyError, TransientError
from ..wire import ProtocolError, Reply
from .connect import CONSOLE_RETRY, add_address
from .errors import OK, USAGE, ConsoleError, reason
from .prompts import ask, ask_password
from .spawn import check_options, connect_or_spawn

#: What a reading typed by a person must be; anything else is "Invalid reading" and is not sent.
READING = re.compile(r"[0-9]+")
_WELCOME = re.compile(r"Welcome, (.*): logged in as ")


def add_parsers(programs) -> None:
    """Add the ``meter`` subcommand."""
    meter = programs.add_parser(
        "meter",
        help="the console meter reader: take jobs, enter readings",
        description="Log in, then read meters one job at a time. An empty reading asks for the "
        "reason; an empty reason ends the session. --spawn starts a daemon of its own when "
        "none answers, on a throw-away database unless --db says otherwise. --gui opens a window "
        "instead of reading the console, and starts a daemon the same way.",
    )
    add_address(meter, port_type=port_number, port_range="1-65535, or 0 with --spawn or --gui")
    meter.add_argument("--user", metavar="NAME", help="log in as NAME (default: ask)")
    meter.add_argument(
        "--gui",
        action="store_true",
        help="the meter reader's window (Tk) instead of the console; starts a daemon when none "
        "answers, as --spawn does, and --user fills the login dialog's name",
    )
    meter.add_argument(
        "--spawn",
        action="store_true",
        help="if no daemon answers, start daemon.py on --host/--port (0: any free port) and stop it on exit",
    )
    meter.add_argument(
        "--db",
        metavar="PATH",
        help="with --spawn: the daemon's database (default: a temporary one, deleted on "
        "exit, so nothing of this run stays behind)",
    )
    meter.add_argument("--users", metavar="FILE", help="with --spawn: the daemon's users file")
    meter.add_argument("--roster", metavar="FILE", help="with --spawn: the daemon's roster file")
    meter.add_argument(
        "--daemon-log",
        metavar="FILE",
        help="with --spawn: where the daemon logs (default: a temporary file, named on exit)",
    )
    meter.set_defaults(run=run_meter)


def login_name() -> str:
    """The user name the login prompt offers: who runs the program."""
    try:
        return getpass.getuser()
    except Exception:  # no LOGNAME/USER and no passwd entry: no default to offer
        return ""


# --------------------------------------------------------------------------- the session


def login(client: Client, user: str | None) -> bool:
    """Ask for the user name and password and log in; False when the user gives none."""
    if user is None:
        default = login_name()
        answer = ask(f"Username [{default}]: ")
        if answer is None:
            return False
        user = answer.strip() or default
    if not user:
        raise ConsoleError("no user name given")
    password = ask_password()
    if password is None:
        return False
    try:
        reply = client.login(user, password)
    except ReplyError as exc:
        raise ConsoleError(f"Login failed: {exc.reply.lines[0]}") from None
    except ValueError as exc:  # a CR/LF/NUL, or bytes that are not UTF-8, in what was typed
        raise ConsoleError(f"Login failed: {reason(exc)}") from None
    print(welcome(client, reply, user), flush=True)
    return True


def welcome(client: Client, reply: Reply, user: str) -> str:
    """``Welcome, Carol Dent, to the lineproto meter service``, from the 230 reply to the login."""
    match = _WELCOME.match(reply.lines[0])
    real_name = match.group(1) if match else user
    return f"Welcome, {real_name}, to the {client.greeting.lines[0].split()[0]} meter service"


def read_meters(client: Client) -> None:
    """Take jobs and submit what the user enters until they stop or all jobs are done."""
    meter: str | None = None
    while True:
        if meter is None:
            try:
                meter = client.job()
            except TransientError as exc:  # 450: the unread meters left are held by other readers
                print(exc.reply.lines[0], flush=True)
                return
            if meter is None:
                print("All jobs done", flush=True)
                return
        answer = ask(f"Reading for meter {meter}: ")
        if answer is None:
            return
        answer = answer.strip()
        try:
            if answer:
                if not READING.fullmatch(answer):
                    print("Invalid reading", flush=True)
                    continue
                mine, total = client.read(meter, int(answer))
            else:
                why = ask(f"Reason for meter {meter}: ")
                if why is None or not why.strip():
                    return
                mine, total = client.read(meter, reason=why)
        except PermanentError as exc:  # 501 too many digits, a control character, ...
            if exc.code in (530, 532):
                raise
            print(exc.reply.lines[0], flush=True)
            continue
        except ValueError as exc:  # not sendable as typed
            print(f"Not sent: {reason(exc)}", flush=True)
            continue
        print(f"Accepted: you have read {mine} out of {total} readings", flush=True)
        meter = None


def run_meter(args) -> int:
    """``client.py meter``: 0 when the session ends normally; failures end in main (1, or 130 for Ctrl+C)."""
    if args.gui:
        try:
            from .gui import run_gui  # tkinter is loaded only for the window
        except ImportError as exc:
            raise ConsoleError(
                f"--gui needs tkinter, which this Python lacks ({exc}; Debian: apt-get install python3-tk)", USAGE
            ) from None
        return run_gui(args)
    check_options(args)
    client, daemon = connect_or_spawn(args, progress=_say, retry=CONSOLE_RETRY)
    try:
        if login(client, args.user):
            read_meters(client)
        try:
            client.quit()
        except (ClientError, ProtocolError, OSError):
            pass
    finally:
        client.close()
        if daemon is not None:
            daemon.stop_and_say()
    return OK


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
