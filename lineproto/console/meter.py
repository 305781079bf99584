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
when none answers and stops it on exit.

On a terminal the password is read without echo (:func:`getpass.getpass`).
When standard input is not a terminal (a pipe, a file) every answer, the
password included, is read from it line by line and echoed after its prompt,
except the password, so the output reads like the terminal session.
"""

from __future__ import annotations

import getpass
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..client import Client, ClientError, PermanentError, ReplyError
from ..wire import ProtocolError

#: daemon.py of this checkout, which --spawn runs.
DAEMON_SCRIPT = Path(__file__).resolve().parents[2] / "daemon.py"
#: Seconds --spawn waits for the daemon's notify file.
SPAWN_TIMEOUT = 20.0
#: Seconds a spawned daemon gets to stop after SIGTERM before it is killed.
STOP_TIMEOUT = 10.0

_DIGITS = re.compile(r"[0-9]+")
_WELCOME = re.compile(r"Welcome, (.*): logged in as ")


class MeterConsoleError(Exception):
    """Ends the program with this one-line message and exit status 1."""


def add_parsers(programs, add_address) -> None:
    """Add the ``meter`` subcommand."""
    meter = programs.add_parser(
        "meter", help="the console meter reader: take jobs, enter readings",
        description="Log in, then read meters one job at a time. An empty reading asks for the "
                    "reason; an empty reason ends the session.")
    add_address(meter)
    meter.add_argument("--user", metavar="NAME", help="log in as NAME (default: ask)")
    meter.add_argument("--spawn", action="store_true",
                       help="if no daemon answers, start daemon.py on --host/--port (0: any free "
                            "port) and stop it on exit")
    meter.add_argument("--users", metavar="FILE", help="with --spawn: the daemon's users file")
    meter.add_argument("--roster", metavar="FILE", help="with --spawn: the daemon's roster file")
    meter.add_argument("--daemon-log", metavar="FILE",
                       help="with --spawn: where the daemon logs (default: a temporary file, "
                            "named on exit)")
    meter.set_defaults(run=run_meter)


# --------------------------------------------------------------------------- prompts


def _interactive() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def ask(prompt: str) -> str | None:
    """One answer (without its line ending), or None at end of input.

    Off a terminal the answer is echoed after the prompt, as a terminal would.
    """
    if _interactive():
        try:
            return input(prompt)
        except EOFError:
            print(flush=True)
            return None
    sys.stdout.write(prompt)
    sys.stdout.flush()
    line = sys.stdin.readline()
    if not line:
        sys.stdout.write("\n")
        sys.stdout.flush()
        return None
    answer = line.rstrip("\r\n")
    sys.stdout.write(answer + "\n")
    sys.stdout.flush()
    return answer


def ask_password(prompt: str = "Password: ") -> str | None:
    """A password: hidden on a terminal, else the next line of input (never echoed)."""
    if _interactive():
        try:
            return getpass.getpass(prompt)
        except EOFError:
            return None
    sys.stdout.write(prompt)
    sys.stdout.flush()
    line = sys.stdin.readline()
    sys.stdout.write("\n")
    sys.stdout.flush()
    return line.rstrip("\r\n") if line else None


def _login_name() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no LOGNAME/USER and no passwd entry: no default to offer
        return ""


# --------------------------------------------------------------------------- the daemon


class SpawnedDaemon:
    """A daemon.py child started by ``--spawn``; :meth:`stop` ends it."""

    def __init__(self, host: str, port: int, extra_args: list[str], log_path: str | None):
        self._tmpdir = tempfile.mkdtemp(prefix="lineproto-meter-")
        notify = os.path.join(self._tmpdir, "notify")
        self.log_path = log_path or os.path.join(self._tmpdir, "daemon.log")
        self._keep_tmpdir = log_path is None  # the log is in it: keep it for the user
        command = [sys.executable, str(DAEMON_SCRIPT), "--host", host, "--port", str(port),
                   "--notify", notify, *extra_args]
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=self._log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        try:
            self.host, self.port = self._wait_for(notify)
        except BaseException:
            self._keep_tmpdir = False  # the error names the log's last line; nothing to keep
            self.stop()
            raise

    def _wait_for(self, notify: str) -> tuple[str, int]:
        """Poll for the notify file the daemon writes once it listens."""
        deadline = time.monotonic() + SPAWN_TIMEOUT
        while not os.path.exists(notify):
            if self.process.poll() is not None:
                raise MeterConsoleError(
                    f"the daemon exited with status {self.process.returncode}: {self._last_log_line()}")
            if time.monotonic() > deadline:
                raise MeterConsoleError(f"the daemon did not start within {SPAWN_TIMEOUT:.0f} s")
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

    def stop(self) -> int | None:
        """SIGTERM, wait (kill after STOP_TIMEOUT); the daemon logs its dump on the way out."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        if not self._keep_tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
        return self.process.returncode


def _connect(args) -> tuple[Client, SpawnedDaemon | None]:
    """A connection to the daemon; with --spawn, to one started here if none answers."""
    if not (args.spawn and args.port == 0):
        try:
            return Client(args.host, args.port), None
        except OSError as exc:
            if not args.spawn:
                raise MeterConsoleError(
                    f"cannot connect to {args.host}:{args.port}: {exc.strerror or exc} "
                    "(is the daemon running? --spawn starts one)") from None
    extra = []
    if args.users:
        extra += ["--users", args.users]
    if args.roster:
        extra += ["--roster", args.roster]
    daemon = SpawnedDaemon(args.host, args.port, extra, args.daemon_log)
    print(f"Started a daemon on {daemon.host}:{daemon.port}", file=sys.stderr, flush=True)
    try:
        return Client(daemon.host, daemon.port), daemon
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
        raise MeterConsoleError("no user name given")
    password = ask_password()
    if password is None:
        return False
    try:
        reply = client.login(user, password)
    except ReplyError as exc:
        raise MeterConsoleError(f"Login failed: {exc.reply.lines[0]}") from None
    except ValueError as exc:  # a CR/LF/NUL in what was typed
        raise MeterConsoleError(f"Login failed: {exc}") from None
    match = _WELCOME.match(reply.lines[0])
    real_name = match.group(1) if match else user
    print(f"Welcome, {real_name}, to the {client.greeting.lines[0].split()[0]} meter service",
          flush=True)
    return True


def read_meters(client: Client) -> None:
    """Take jobs and submit what the user enters until they stop or all jobs are done."""
    meter: str | None = None
    while True:
        if meter is None:
            meter = client.job()
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
                reason = ask(f"Reason for meter {meter}: ")
                if reason is None or not reason.strip():
                    return
                mine, total = client.read(meter, reason=reason)
        except PermanentError as exc:  # 501 too many digits, a control character, ...
            if exc.code in (530, 532):
                raise
            print(exc.reply.lines[0], flush=True)
            continue
        except ValueError as exc:  # not sendable as typed
            print(f"Not sent: {exc}", flush=True)
            continue
        print(f"Accepted: you have read {mine} out of {total} readings", flush=True)
        meter = None


def run_meter(args) -> int:
    """``client.py meter``: 0 when the session ends normally, 1 on any failure."""
    daemon: SpawnedDaemon | None = None
    client: Client | None = None
    status = 0
    try:
        client, daemon = _connect(args)
        if login(client, args.user):
            read_meters(client)
        try:
            client.quit()
        except (ClientError, ProtocolError, OSError):
            pass
    except MeterConsoleError as exc:
        print(exc, file=sys.stderr, flush=True)
        status = 1
    except ReplyError as exc:
        print(f"Refused: {exc.reply.lines[0]}", file=sys.stderr, flush=True)
        status = 1
    except (ClientError, ProtocolError, OSError) as exc:
        print(f"Connection lost: {exc}", file=sys.stderr, flush=True)
        status = 1
    except KeyboardInterrupt:
        print(file=sys.stderr, flush=True)
        status = 130
    finally:
        if client is not None:
            client.close()
        if daemon is not None:
            code = daemon.stop()
            where = f"; its log: {daemon.log_path}" if daemon.log_path else ""
            print(f"Stopped the daemon (status {code}){where}", file=sys.stderr, flush=True)
    return status
