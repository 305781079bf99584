"""A daemon of the meter reader's own: ``meter --spawn`` and ``meter --gui`` start one when none answers.

Both readers connect through :func:`connect_or_spawn`, so the rules are written once:
a daemon that answers is used (and ``--db``, ``--users``, ``--roster`` are refused,
since they would not reach it); otherwise ``daemon.py`` starts on ``--host``/``--port``
(0: any free port) with ``--notify FILE``, and the reader connects once the file says
where it listens. :class:`SpawnedDaemon` stops it again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ..client import Client, Retry
from .connect import ServiceName, Unreachable, connect, where
from .errors import ConsoleError, UsageError

#: daemon.py of this checkout, which --spawn runs.
DAEMON_SCRIPT = Path(__file__).resolve().parents[2] / "daemon.py"
#: Seconds --spawn waits for the daemon's notify file.
SPAWN_TIMEOUT = 20.0
#: Seconds a spawned daemon gets to stop after SIGTERM before it is killed.
STOP_TIMEOUT = 10.0
#: Options that only mean something for a daemon started by --spawn.
SPAWN_OPTIONS = ("db", "users", "roster", "daemon_log")


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

    def stop_and_say(self) -> None:
        """:meth:`stop`, then one line on stderr: the status, and where the log is kept."""
        code = self.stop()
        print(f"Stopped the daemon (status {code}); its log: {self.log_path}", file=sys.stderr, flush=True)


def check_options(args) -> None:
    """Options that only mean something with --spawn are a usage error without it."""
    if args.port == 0 and not args.spawn:
        raise UsageError("--port 0 (any free port) is for the daemon --spawn starts")
    if args.spawn and isinstance(args.host, ServiceName):
        raise UsageError("--spawn starts a daemon on this machine: it goes with --host, not --service")
    for name in SPAWN_OPTIONS:
        if getattr(args, name) is not None and not args.spawn:
            raise UsageError(f"--{name.replace('_', '-')} goes with --spawn (the daemon it starts)")


def _spawn_files(args) -> list[str]:
    """The options given for a daemon of our own, as they were typed."""
    return [f"--{name}" for name in ("db", "users", "roster") if getattr(args, name) is not None]


def _ignore(_message: str) -> None:
    """The default progress report: nothing."""


def connect_or_spawn(
    args, progress: Callable[[str], None] = _ignore, retry: Retry | None = None
) -> tuple[Client, SpawnedDaemon | None]:
    """A connection to the daemon; with ``args.spawn``, to one started here if none answers.

    ``progress(line)`` hears "Starting a daemon on ..." before the wait for its notify
    file and "Started a daemon on ..." once it listens (the console prints them on
    stderr, the window shows them). ``retry``: the client's :class:`~lineproto.client.Retry`
    (the console resends a reading whose reply was lost; the window offers Reconnect instead).
    """
    if not args.spawn:
        hint = " (is the daemon running? --spawn starts one)"
        return connect(args.host, args.port, args.timeout, hint=hint, retry=retry), None
    if args.port != 0:
        try:
            client = connect(args.host, args.port, args.timeout, retry=retry)
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
    port = "any free port" if args.port == 0 else where(args.host, args.port)
    progress(f"Starting a daemon on {port}...")
    daemon = SpawnedDaemon(args.host, args.port, extra, args.db, args.daemon_log)
    progress(f"Started a daemon on {where(daemon.host, daemon.port)}")
    try:
        return connect(daemon.host, daemon.port, args.timeout, retry=retry), daemon
    except BaseException:
        daemon.stop()
        raise
