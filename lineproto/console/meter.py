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
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..argtypes import port_number
from ..client import Client, ClientError, PermanentError, ReplyError, TransientError
from ..wire import ProtocolError
from .connect import CONSOLE_RETRY, Unreachable, add_address, connect, where
from .errors import OK, ConsoleError, UsageError, reason
from .prompts import ask, ask_password

#: daemon.py of this checkout, which --spawn runs.
DAEMON_SCRIPT = Path(__file__).resolve().parents[2] / "daemon.py"
#: Seconds --spawn waits for the daemon's notify file.
SPAWN_TIMEOUT = 20.0
#: Seconds a spawned daemon gets to stop after SIGTERM before it is killed.
STOP_TIMEOUT = 10.0
#: Options that only mean something for a daemon started by --spawn.
SPAWN_OPTIONS = ("db", "users", "roster", "daemon_log")

_DIGITS = re.compile(r"[0-9]+")
_WELCOME = re.compile(r"Welcome, (.*): logged in as ")


def add_parsers(programs) -> None:
    """Add the ``meter`` subcommand."""
    meter = programs.add_parser(
        "meter",
        help="the console meter reader: take jobs, enter readings",
        description="Log in, then read meters one job at a time. An empty reading asks for the "
        "reason; an empty reason ends the session. --spawn starts a daemon of its own when "
        "none answers, on a throw-away database unless --db says otherwise.",
    )
    add_address(meter, port_type=port_number, port_range="1-65535, or 0 with --spawn")
    meter.add_argument("--user", metavar="NAME", help="log in as NAME (default: ask)")
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


def _login_name() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no LOGNAME/USER and no passwd entry: no default to offer
        return ""


# --------------------------------------------------------------------------- the daemon


class SpawnedDaemon:
    """A daemon.py child started by ``--spawn``; :meth:`stop` ends it.

    Its notify file, and its database unless ``db`` names one, live in a temporary
    directory that :meth:`stop` deletes: a spawned daemon never touches the default
    ``./data/lineproto.db`` of a daemon run by hand, and what one run imports
    (``--users``, ``--roster``) and reads is gone after it. Its log is kept.
    """

    def __init__(self, host: str, port: int, extra_args: list[str], db: str | None, log_path: str | None):
        self._workdir = tempfile.TemporaryDirectory(prefix="lineproto-meter-")
        notify = os.path.join(self._workdir.name, "notify")
        self._log_is_temporary = log_path is None
        if log_path is None:
            descriptor, log_path = tempfile.mkstemp(prefix="lineproto-meter-", suffix=".log")
            os.close(descriptor)
        self.log_path = log_path
        command = [
            sys.executable,
            str(DAEMON_SCRIPT),
            "--host",
            host,
            "--port",
            str(port),
            "--notify",
            notify,
            "--db",
            db or os.path.join(self._workdir.name, "lineproto.db"),
            *extra_args,
        ]
        try:
            self._log = open(self.log_path, "ab")  # noqa: SIM115 (open while the daemon runs; stop() closes it)
        except OSError as exc:
            self._workdir.cleanup()
            raise ConsoleError(f"cannot write the daemon log {self.log_path}: {exc.strerror or exc}") from None
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            self.host, self.port = self._wait_for(notify)
        except BaseException:
            self.stop(keep_log=False)  # the error names the log's last line
            raise

    def _wait_for(self, notify: str) -> tuple[str, int]:
        """Poll for the notify file the daemon writes once it listens."""
        deadline = time.monotonic() + SPAWN_TIMEOUT
        while not os.path.exists(notify):
            if self.process.poll() is not None:
                raise ConsoleError(f"the daemon exited with status {self.process.returncode}: {self._last_log_line()}")
            if time.monotonic() > deadline:
                raise ConsoleError(f"the daemon did not start within {SPAWN_TIMEOUT:.0f} s")
            time.sleep(0.02)
        with open(notify, encoding="utf-8") as file:
            host, _, port = file.read().strip().rpartition(":")
        return host, int(port)

    def _last_log_line(self) -> str:
        self._log.flush()
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as file:
                lines = [line.strip() for line in file if line.strip()]
        except OSError:
            return "(no log)"
        return lines[-1] if lines else "(no output)"

    def stop(self, keep_log: bool = True) -> int | None:
        """SIGTERM, wait (kill after STOP_TIMEOUT); the daemon logs its dump on the way out."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        self._workdir.cleanup()
        if self._log_is_temporary and not keep_log:
            try:
                os.unlink(self.log_path)
            except OSError:
                pass
        return self.process.returncode


def _check_options(args) -> None:
    """Options that only mean something with --spawn are a usage error without it."""
    if args.port == 0 and not args.spawn:
        raise UsageError("--port 0 (any free port) is for the daemon --spawn starts")
    for name in SPAWN_OPTIONS:
        if getattr(args, name) is not None and not args.spawn:
            raise UsageError(f"--{name.replace('_', '-')} goes with --spawn (the daemon it starts)")


def _spawn_files(args) -> list[str]:
    """The options given for a daemon of our own, as they were typed."""
    return [f"--{name}" for name in ("db", "users", "roster") if getattr(args, name) is not None]


def _connect(args) -> tuple[Client, SpawnedDaemon | None]:
    """A connection to the daemon; with --spawn, to one started here if none answers."""
    if not args.spawn:
        hint = " (is the daemon running? --spawn starts one)"
        return connect(args.host, args.port, args.timeout, hint=hint, retry=CONSOLE_RETRY), None
    if args.port != 0:
        try:
            client = connect(args.host, args.port, args.timeout, retry=CONSOLE_RETRY)
        except Unreachable:
            pass
        else:
            if _spawn_files(args):
                client.close()
                raise ConsoleError(
                    f"a daemon already answers on {where(args.host, args.port)}, so none was started for "
                    f"{' '.join(_spawn_files(args))}: stop it, or choose another --port (0: any free port)"
                )
            return client, None
    extra = []
    if args.users:
        extra += ["--users", args.users]
    if args.roster:
        extra += ["--roster", args.roster]
    daemon = SpawnedDaemon(args.host, args.port, extra, args.db, args.daemon_log)
    print(f"Started a daemon on {where(daemon.host, daemon.port)}", file=sys.stderr, flush=True)
    try:
        return connect(daemon.host, daemon.port, args.timeout, retry=CONSOLE_RETRY), daemon
    except BaseException:
        daemon.stop()
        raise


# --------------------------------------------------------------------------- the session


def login(client: Client, user: str | None) -> bool:
    """Ask for the user name and password and log in; False when the user gives none."""
    if user is None:
        default = _login_name()
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
    match = _WELCOME.match(reply.lines[0])
    real_name = match.group(1) if match else user
    print(f"Welcome, {real_name}, to the {client.greeting.lines[0].split()[0]} meter service", flush=True)
    return True


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
                if not _DIGITS.fullmatch(answer):
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
    _check_options(args)
    client, daemon = _connect(args)
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
            code = daemon.stop()
            print(f"Stopped the daemon (status {code}); its log: {daemon.log_path}", file=sys.stderr, flush=True)
    return OK
