"""A throw-away PostgreSQL server: ``initdb`` in a temporary directory, ``pg_ctl`` on a free port, stopped after.

Used by the test suite (``tests/conftest.py``: the ``postgres`` fixtures), ``make cluster`` and
``make bench``. It runs Debian's ``postgresql-15`` binaries (``scripts/test-packages.sh`` installs
them when missing). PostgreSQL refuses to run as root: as root (CI) the data directory belongs to
the ``postgres`` user and every server program runs as that user (``runuser``).

The server listens on ``host:port`` (TCP, ``trust`` authentication for loopback only) and on a Unix
socket inside its own directory; ``fsync`` stays on, so a committed transaction is durable as in
production. ``dsn(database)`` gives a ``postgresql://`` address the daemon's ``--db`` takes.

    with PostgresServer() as server:
        server.create_database("lineproto")
        print(server.dsn("lineproto"))
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: Where Debian puts the server programs of each major version (newest first).
DEBIAN_BIN = Path("/usr/lib/postgresql")
#: Seconds ``pg_ctl start`` and ``stop`` may take.
PG_CTL_TIMEOUT = 60
RUN_AS = "postgres"


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server programs on this machine; the message says what to install."""


def server_bin() -> Path:
    """The directory holding initdb and pg_ctl: Debian's newest version, else the PATH's."""
    if DEBIAN_BIN.is_dir():
        versions = sorted((p for p in DEBIAN_BIN.iterdir() if (p / "bin" / "initdb").exists()), reverse=True)
        if versions:
            return versions[0] / "bin"
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    raise PostgresUnavailable("no PostgreSQL server: apt-get install postgresql-15 (scripts/test-packages.sh does)")


def free_port(host: str) -> int:
    """A port free on ``host`` now (PostgreSQL cannot be told to take any port and say which)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


class PostgresServer:
    """One PostgreSQL cluster in a temporary directory, on ``host`` and a free port."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, directory: str | None = None):
        self.host = host
        self.port = port or free_port(host)
        self._bin = server_bin()
        self._own_directory = directory is None
        self.directory = Path(directory or tempfile.mkdtemp(prefix="lineproto-pg-"))
        self.data = self.directory / "data"
        self.socket_dir = self.directory / "run"
        self.log = self.directory / "postgres.log"
        self._as_root = os.geteuid() == 0
        self.running = False

    # -- life cycle

    def start(self) -> PostgresServer:
        """initdb (first time only) and start; returns once the server accepts connections."""
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        if self._as_root:
            user = pwd.getpwnam(RUN_AS)
            for path in (self.directory, self.socket_dir):
                os.chown(path, user.pw_uid, user.pw_gid)
            if self.log.exists():
                os.chown(self.log, user.pw_uid, user.pw_gid)
        if not (self.data / "PG_VERSION").exists():
            self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
            with open(self.data / "postgresql.conf", "a") as conf:
                conf.write(
                    f"listen_addresses = '{self.host}'\n"
                    f"port = {self.port}\n"
                    f"unix_socket_directories = '{self.socket_dir}'\n"
                    "max_connections = 300\n"
                    "shared_buffers = 64MB\n"
                    "fsync = on\n"
                    "synchronous_commit = on\n"
                    "log_min_messages = warning\n"
                )
        self._pg_ctl("start", "-w", "-t", str(PG_CTL_TIMEOUT), "-l", str(self.log))
        self.running = True
        return self

    def restart(self) -> None:
        """``pg_ctl restart -m fast``: every open connection is cut, the server is back when this returns."""
        self._pg_ctl("restart", "-w", "-m", "fast", "-t", str(PG_CTL_TIMEOUT), "-l", str(self.log))

    def stop(self) -> None:
        """Stop the server (fast: open connections are cut) and remove its directory if it made it."""
        if self.running:
            try:
                self._pg_ctl("stop", "-w", "-m", "fast", "-t", str(PG_CTL_TIMEOUT))
            except subprocess.CalledProcessError:
                self._kill()
            self.running = False
        if self._own_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- databases

    def dsn(self, database: str = "postgres") -> str:
        """The ``postgresql://`` address of ``database`` on this server (TCP, user postgres)."""
        return f"postgresql://postgres@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create an empty database ``name`` (a plain identifier); returns its address."""
        if not name.replace("_", "").isalnum():
            raise ValueError(f"not a plain database name: {name!r}")
        self.psql("postgres", f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def drop_database(self, name: str) -> None:
        """Drop ``name``, cutting any connection still open to it."""
        self.psql("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def psql(self, database: str, sql: str) -> str:
        """Run ``sql`` with psql (no psycopg needed); its output, tab-separated, no headers."""
        psql = shutil.which("psql") or str(self._bin / "psql")
        done = subprocess.run(
            [psql, "-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-c", sql, self.dsn(database)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"psql failed: {done.stderr.strip()}")
        return done.stdout

    # -- helpers

    def _pg_ctl(self, *args: str) -> None:
        self._run("pg_ctl", "-D", str(self.data), *args)

    def _run(self, program: str, *args: str) -> None:
        command = [str(self._bin / program), *args]
        if self._as_root:
            command = ["runuser", "-u", RUN_AS, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=self.directory)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise subprocess.CalledProcessError(done.returncode, command, done.stdout, done.stderr + log)

    def _kill(self) -> None:
        pid_file = self.data / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().split()[0])
            os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError, IndexError):
            pass


def main(argv: list[str] | None = None) -> int:
    """Run a throw-away server until Ctrl+C (``python3 scripts/pgserver.py --port 5433``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--database", default="lineproto")
    options = parser.parse_args(argv)
    try:
        server = PostgresServer(options.host, options.port).start()
    except (PostgresUnavailable, subprocess.CalledProcessError) as exc:
        print(f"pgserver: {exc}", file=sys.stderr)
        return 2
    try:
        print(server.create_database(options.database), flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
