#!/usr/bin/env python3
"""The cluster on one machine: a throw-away PostgreSQL, N daemons on it, Debian's HAProxy in front.

    python3 scripts/cluster.py                    # 3 daemons; prints where to connect; Ctrl+C stops it all
    python3 scripts/cluster.py --daemons 2 --port 36000 --users users.txt --roster meters.csv
    python3 scripts/cluster.py --db postgresql://user@db.example/lineproto   # an existing database instead

What runs (docs/SCALING.md):

- PostgreSQL (``scripts/pgserver.py``): ``initdb`` in a temporary directory, on a free port, with a
  database ``lineproto``; or the database ``--db`` names, left running after.
- N daemons (``daemon.py --db postgresql://...``), daemon ``i`` on ``127.0.0.(11+i)`` and a free
  port, each waited for through its ``--notify`` file. They take connections only from HAProxy
  (``--proxy-protocol v2 --proxy-from 127.0.0.1``), so each sees the real client's address.
- HAProxy (``haproxy -db``, TCP mode): the frontend on ``127.0.0.1:PORT`` (``--port``; default a
  free one) spreads connections over the daemons (``balance leastconn``) with ``send-proxy-v2``,
  checks each daemon's ``220`` greeting every 500 ms, and gives a connection refused by a dead
  daemon to another (``retries``, ``option redispatch``). One more frontend per daemon reaches
  that daemon only (for tests, and to watch one daemon); its stats socket is the readiness signal.

Every process is a child of this one and ends with it: Ctrl+C or SIGTERM stops HAProxy, the
daemons and PostgreSQL in that order. If this process dies anyway (SIGKILL), a daemon or HAProxy
gets SIGTERM from the kernel (``PR_SET_PDEATHSIG``), and a small reaper child, left with end of
input on its pipe, stops PostgreSQL (which ``pg_ctl`` runs detached) and removes its directory.
``Cluster`` is the same, importable (``tests/test_cluster.py``, ``bench/cluster.py``)::

    with Cluster(daemons=3, users_file="users.txt") as cluster:
        Client("127.0.0.1", cluster.port)
        cluster.kill(1)       # SIGKILL daemon 1
        cluster.restart(1)    # the same daemon again, on its port
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from pgserver import RUN_AS, PostgresServer, PostgresUnavailable, server_bin  # noqa: E402

sys.path.insert(0, str(ROOT))
from lineproto.argtypes import ArgumentParser, port_number, positive_int, positive_seconds  # noqa: E402
from lineproto.client import Client, Retry, TableStatus, TransientError  # noqa: E402
from lineproto.domain.accounts import User, format_user, hash_password  # noqa: E402

HAPROXY = shutil.which("haproxy", path="/usr/sbin:/usr/bin:/sbin:/bin")
#: Seconds a daemon, and HAProxy, get to be ready.
READY_TIMEOUT = 30.0
#: Where HAProxy listens and connects from (the daemons trust PROXY headers from this address only).
FRONT_HOST = "127.0.0.1"
#: Daemon ``i`` listens on ``127.0.0.(DAEMON_HOST_BASE + i)``: each is another host to HAProxy.
DAEMON_HOST_BASE = 11
PR_SET_PDEATHSIG = 1


class ClusterError(RuntimeError):
    """A part of the cluster could not start; the message says which and why."""


def free_port(host: str) -> int:
    """A port free on ``host`` now (HAProxy cannot be told to take any port and say which)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the process that started it dies, so none is orphaned."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def stop_process(process: subprocess.Popen, timeout: float = 10.0) -> int:
    """SIGTERM, then SIGKILL after ``timeout`` seconds; the exit status."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def haproxy_ask(stats: Path, command: str) -> str:
    """One command on HAProxy's stats socket ``stats``, and its whole answer."""
    with socket.socket(socket.AF_UNIX) as control:
        control.settimeout(5)
        control.connect(str(stats))
        control.sendall(command.encode() + b"\n")
        answer = b""
        while chunk := control.recv(65536):
            answer += chunk
    return answer.decode()


def wait_until_haproxy_serves(process: subprocess.Popen, stats: Path, log_path: Path, timeout: float) -> None:
    """Return once HAProxy's stats socket answers (it binds every listener before it serves any: polling a
    frontend would itself be a proxied connection); ClusterError if it exits or takes over ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise ClusterError(f"haproxy exited {process.returncode}: {log_path.read_text()[-3000:]}")
        try:
            if "Pid:" in haproxy_ask(stats, "show info"):
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise ClusterError(f"haproxy not ready in {timeout:g} s: {log_path.read_text()[-3000:]}")
        time.sleep(0.05)


#: The PostgreSQL reaper: waits for end of input (its parent, this process, closed the pipe or died),
#: then stops the server ``pg_ctl`` runs detached (so no parent-death signal reaches it) and removes
#: its directory. argv: the data directory, the directory to remove, then the pg_ctl command.
REAPER = """
import shutil, subprocess, sys
sys.stdin.buffer.read()
subprocess.run(sys.argv[3:] + ["-D", sys.argv[1], "stop", "-m", "immediate"], capture_output=True)
shutil.rmtree(sys.argv[2], ignore_errors=True)
"""


def start_reaper(server: PostgresServer) -> subprocess.Popen:
    """A child that stops ``server`` if this process dies without doing it (SIGKILL)."""
    pg_ctl = [str(server_bin() / "pg_ctl")]
    if os.geteuid() == 0:
        pg_ctl = ["runuser", "-u", RUN_AS, "--", *pg_ctl]
    return subprocess.Popen(
        [sys.executable, "-c", REAPER, str(server.data), str(server.directory), *pg_ctl],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # Ctrl+C at a terminal does not reach it: stop() decides
    )


class ClusterDaemon:
    """One ``daemon.py`` of the cluster: its address, its process, its log (kept across restarts)."""

    def __init__(self, index: int, directory: Path, db: str, args: tuple[str, ...]):
        self.index = index
        self.host = f"127.0.0.{DAEMON_HOST_BASE + index}"
        self.port = 0  # a free one at first start; the same one after
        self.notify = directory / f"daemon{index}.notify"
        self.log_path = directory / f"daemon{index}.log"
        self._db = db
        self._args = args
        self.process: subprocess.Popen | None = None

    def start(self, *once: str) -> None:
        """Start it and wait for its notify file; ``once``: options for this start only (--users)."""
        self.notify.unlink(missing_ok=True)
        command = [
            sys.executable,
            str(ROOT / "daemon.py"),
            "--db",
            self._db,
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--notify",
            str(self.notify),
            "--proxy-protocol",
            "v2",
            "--proxy-from",
            f"{FRONT_HOST}/32",
            *self._args,
            *once,
        ]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=ROOT, preexec_fn=_die_with_parent
            )
        deadline = time.monotonic() + READY_TIMEOUT
        while not self.notify.exists() or not self.notify.read_text().strip():
            if self.process.poll() is not None:
                raise ClusterError(f"daemon {self.index} exited {self.process.returncode}: {self.log_tail()}")
            if time.monotonic() > deadline:
                raise ClusterError(f"daemon {self.index} not ready in {READY_TIMEOUT:g} s: {self.log_tail()}")
            time.sleep(0.02)
        self.port = int(self.notify.read_text().splitlines()[0].rsplit(":", 1)[1])

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no goodbye, no cleanup (what a crash or the OOM killer does)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> int | None:
        return None if self.process is None else stop_process(self.process)

    def log_tail(self, size: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-size:] if self.log_path.exists() else ""


class HAProxy:
    """``haproxy -db`` in TCP mode: the balanced frontend and one frontend per daemon."""

    def __init__(self, directory: Path, port: int, daemons: list[ClusterDaemon]):
        if HAPROXY is None:
            raise ClusterError("no haproxy: apt-get install haproxy (scripts/test-packages.sh does)")
        self.port = port or free_port(FRONT_HOST)
        self.direct_ports = [free_port(FRONT_HOST) for _ in daemons]
        self.stats = directory / "haproxy.sock"
        self.config = directory / "haproxy.cfg"
        self.log_path = directory / "haproxy.log"
        self.config.write_text(self._config(daemons))
        self.process: subprocess.Popen | None = None

    def _config(self, daemons: list[ClusterDaemon]) -> str:
        check = "check check-send-proxy inter 500ms fall 2 rise 1"
        servers = "".join(f"    server d{d.index} {d.host}:{d.port} send-proxy-v2 {check}\n" for d in daemons)
        direct = "".join(
            f"frontend direct{d.index}\n    bind {FRONT_HOST}:{port}\n    default_backend direct{d.index}\n"
            f"backend direct{d.index}\n    server d{d.index} {d.host}:{d.port} send-proxy-v2\n"
            for d, port in zip(daemons, self.direct_ports, strict=True)
        )
        return (
            "global\n"
            f"    stats socket {self.stats} mode 600 level admin\n"
            "    maxconn 4000\n"
            "    log stdout format raw daemon\n"  # one line per connection in haproxy.log
            "defaults\n"
            "    mode tcp\n"
            "    log global\n"
            "    option tcplog\n"
            "    timeout connect 2s\n"
            "    timeout client 10m\n"
            "    timeout server 10m\n"
            "    retries 3\n"
            "    option redispatch 1\n"
            "frontend lineproto\n"
            f"    bind {FRONT_HOST}:{self.port}\n"
            "    default_backend daemons\n"
            "backend daemons\n"
            "    balance leastconn\n"
            f"    source {FRONT_HOST}\n"
            "    option tcp-check\n"
            "    tcp-check expect string 220\n" + servers + direct
        )

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [HAPROXY, "-db", "-f", str(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        wait_until_haproxy_serves(self.process, self.stats, self.log_path, READY_TIMEOUT)

    def ask(self, command: str) -> str:
        """One command on the stats socket, and its whole answer."""
        return haproxy_ask(self.stats, command)

    def statuses(self) -> dict[str, str]:
        """``{"d0": "UP", "d1": "DOWN", ...}``: what the health checks say of each daemon."""
        header, *rows = self.ask("show stat").strip().splitlines()
        columns = header.lstrip("# ").split(",")
        found = {}
        for row in rows:
            values = dict(zip(columns, row.split(","), strict=False))
            if values["pxname"] == "daemons" and values["svname"].startswith("d"):
                found[values["svname"]] = values["status"].split()[0]
        return found

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)


class Cluster:
    """PostgreSQL, ``daemons`` daemons on it and HAProxy in front; :meth:`stop` ends every process.

    ``db``: an existing database to use (nothing is started for it, nothing dropped); else a
    throw-away PostgreSQL with a database ``lineproto``. ``users_file`` and ``roster`` are imported
    once, by daemon 0's first start. ``daemon_args`` go to every daemon. ``port``: HAProxy's
    frontend port (0: a free one).
    """

    def __init__(
        self,
        daemons: int = 3,
        port: int = 0,
        db: str | None = None,
        users_file: str | os.PathLike | None = None,
        roster: str | os.PathLike | None = None,
        daemon_args: tuple[str, ...] = (),
        directory: str | os.PathLike | None = None,
        audit_key: str | os.PathLike | None = None,
    ):
        if daemons < 1:
            raise ValueError("a cluster needs at least one daemon")
        self._own_directory = directory is None
        self.directory = Path(directory or tempfile.mkdtemp(prefix="lineproto-cluster-"))
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._count = daemons
        self._port = port
        self._given_db = db
        self.set_imports(users_file, roster)
        #: The audit log's key file (PostgreSQL keeps none beside the database): given, or a new one here.
        self.audit_key = Path(audit_key) if audit_key is not None else self.directory / "audit.key"
        self._daemon_args = ("--audit-key", str(self.audit_key), *daemon_args)
        self.postgres: PostgresServer | None = None
        self._reaper: subprocess.Popen | None = None
        self.daemons: list[ClusterDaemon] = []
        self.haproxy: HAProxy | None = None
        self.dsn = db or ""

    def set_imports(self, users_file: str | os.PathLike | None, roster: str | os.PathLike | None) -> None:
        """The users file and roster daemon 0's first start imports (before :meth:`start`)."""
        self._once = tuple(
            option
            for flag, value in (("--users", users_file), ("--roster", roster))
            if value is not None
            for option in (flag, str(value))
        )

    # -- life cycle

    def start(self) -> Cluster:
        """Start PostgreSQL, the daemons (one after the other: daemon 0 imports), then HAProxy."""
        try:
            if self._given_db is None:
                self.postgres = PostgresServer().start()  # its own directory: the postgres user must reach it
                self._reaper = start_reaper(self.postgres)
                self.dsn = self.postgres.create_database("lineproto")
            self.daemons = [ClusterDaemon(i, self.directory, self.dsn, self._daemon_args) for i in range(self._count)]
            for daemon in self.daemons:
                daemon.start(*(self._once if daemon.index == 0 else ()))
                if daemon.index == 0 and self.postgres is not None:
                    self._check_schema()
            self.haproxy = HAProxy(self.directory, self._port, self.daemons)
            self.haproxy.start()
            self.wait_up()
        except BaseException:
            self.stop()
            raise
        return self

    def _check_schema(self) -> None:
        """The first daemon migrated the database: its tables are in PostgreSQL (a daemon.py without the
        PostgreSQL store would take the ``postgresql://`` address for a file name, and the cluster
        would share a SQLite file instead)."""
        assert self.postgres is not None
        if self.postgres.psql("lineproto", "SELECT to_regclass('public.players') IS NOT NULL").strip() != "t":
            raise ClusterError(f"daemon 0 did not create its tables in PostgreSQL: {self.daemons[0].log_tail(500)}")

    def stop(self) -> None:
        """Stop HAProxy, every daemon, then PostgreSQL (if it started it); remove its directory."""
        if self.haproxy is not None:
            self.haproxy.stop()
        for daemon in self.daemons:
            daemon.stop()
        if self.postgres is not None:
            self.postgres.stop()
            self.postgres = None
        if self._reaper is not None:  # nothing left for it to stop
            self._reaper.kill()
            self._reaper.wait()
            self._reaper.stdin.close()  # type: ignore[union-attr]
            self._reaper = None
        if self._own_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- while it runs

    @property
    def host(self) -> str:
        return FRONT_HOST

    @property
    def port(self) -> int:
        """HAProxy's frontend: connect here."""
        assert self.haproxy is not None, "the cluster is not started"
        return self.haproxy.port

    def direct_port(self, index: int) -> int:
        """A frontend of HAProxy that reaches daemon ``index`` only (PROXY v2 as the other)."""
        assert self.haproxy is not None, "the cluster is not started"
        return self.haproxy.direct_ports[index]

    def kill(self, index: int) -> None:
        """SIGKILL daemon ``index``; HAProxy's checks see it down within a second."""
        self.daemons[index].kill()

    def restart(self, index: int) -> None:
        """Start daemon ``index`` again on its port (after :meth:`kill`, or stop it first) and wait
        until HAProxy's checks see it up."""
        daemon = self.daemons[index]
        if daemon.running:
            daemon.stop()
        daemon.start()
        self.wait_up(index)

    def statuses(self) -> dict[str, str]:
        assert self.haproxy is not None, "the cluster is not started"
        return self.haproxy.statuses()

    def wait_up(self, *indexes: int, timeout: float = READY_TIMEOUT) -> None:
        """Until HAProxy's health checks find the daemons ``indexes`` (default: all) UP."""
        self.wait_status("UP", *indexes, timeout=timeout)

    def wait_status(self, status: str, *indexes: int, timeout: float = READY_TIMEOUT) -> None:
        """Until HAProxy's health checks give the daemons ``indexes`` (default: all) ``status`` (UP, DOWN)."""
        names = [f"d{i}" for i in (indexes or range(len(self.daemons)))]
        deadline = time.monotonic() + timeout
        while True:
            statuses = self.statuses()
            if all(statuses.get(name) == status for name in names):
                return
            if time.monotonic() > deadline:
                raise ClusterError(f"daemons {names} not {status} to HAProxy in {timeout:g} s: {statuses}")
            time.sleep(0.05)

    def admin(self, *args: str, check: bool = False, input: str | None = None) -> subprocess.CompletedProcess:
        """``daemon.py --db DSN ARGS...`` (``check``, ``useradd``, ``dump``...) on the cluster's database."""
        return subprocess.run(
            [sys.executable, str(ROOT / "daemon.py"), "--db", self.dsn, "--audit-key", str(self.audit_key), *args],
            capture_output=True,
            text=True,
            check=check,
            input=input,
            cwd=ROOT,
            timeout=120,
        )

    def describe(self) -> str:
        """What to connect to, for a person."""
        lines = [
            f"lineproto cluster: {len(self.daemons)} daemon(s) behind HAProxy",
            f"  connect:    nc {self.host} {self.port}    python3 client.py play --port {self.port}",
            f"  database:   {self.dsn}",
        ]
        for daemon in self.daemons:
            pid = daemon.process.pid if daemon.process else "-"
            lines.append(
                f"  daemon {daemon.index}:   {daemon.host}:{daemon.port} (pid {pid}, log {daemon.log_path});"
                f" alone through HAProxy: {self.host}:{self.direct_port(daemon.index)}"
            )
        if self.haproxy is not None and self.haproxy.process is not None:
            lines.append(f"  haproxy:    pid {self.haproxy.process.pid}, stats socket {self.haproxy.stats}")
        if self.postgres is not None:
            lines.append(f"  postgres:   {self.postgres.directory} (log {self.postgres.log})")
        lines.append(f"  audit key:  {self.audit_key}")
        lines.append(
            f"  add a user: python3 daemon.py --db {self.dsn} --audit-key {self.audit_key} useradd NAME"
            " --name 'Real Name' --role player"
        )
        lines.append("Ctrl+C stops everything.")
        return "\n".join(lines)


# ---------------------------------------------------------------- the load: players and readers, and the proof


#: The test users' password, and their hashes' cost (cheap: logins are not what a soak measures).
LOAD_PASSWORD = "pw"
LOAD_HASH_COST = 2**10
#: Resend after a dropped link: quickly, and often enough to outlast HAProxy marking a daemon down.
LOAD_RETRY = Retry(attempts=12, backoff=0.05, max_backoff=1.0)


def reading_of(meter: str) -> int:
    """The reading a load reader submits for ``meter``: fixed per meter, so the database can be checked."""
    return zlib.crc32(meter.encode()) % 100_000


def write_load_files(directory: Path, players: int, readers: int, meters: int) -> tuple[Path, Path]:
    """A users file (players ``p00``..., readers ``r00``..., admin ``root``) and a roster ``M00000``...."""

    def user(name: str, real_name: str, *roles: str) -> str:
        return format_user(User(name, real_name, frozenset(roles), hash_password(LOAD_PASSWORD, n=LOAD_HASH_COST)))

    lines = [user(f"p{i:02}", f"Player {i}", "player") for i in range(players)]
    lines += [user(f"r{i:02}", f"Reader {i}", "reader") for i in range(readers)]
    lines.append(user("root", "Cluster Admin", "admin", "reader", "player"))
    users_path, roster_path = directory / "load-users.txt", directory / "load-roster.csv"
    users_path.write_text("".join(line + "\n" for line in lines))
    roster_path.write_text("".join(f"M{i:05}\n" for i in range(meters)))
    return users_path, roster_path


@dataclass
class Tally:
    """What one load client was told: commands done, resends, the last bankroll (players), the meters
    handed to it and the readings acknowledged (readers), and the error that stopped it, if any."""

    name: str
    ops: int = 0
    resent: int = 0
    bankroll: int | None = None
    handed: list[str] = field(default_factory=list)
    readings: dict[str, int] = field(default_factory=dict)
    error: BaseException | None = None

    def count(self, client: Client) -> None:
        self.ops += 1
        if client.last_delivery is not None and client.last_delivery.resent:
            self.resent += 1


class ClusterLoad:
    """Players (``BET RED`` then ``SPIN``) and readers (``JOB`` then ``READ``) through HAProxy, one
    thread and one retrying client each; :meth:`problems` compares what they were told with the
    database."""

    def __init__(self, cluster: Cluster, players: list[str], readers: list[str]):
        self.cluster = cluster
        self.tallies = {name: Tally(name) for name in players + readers}
        self.players, self.readers = players, readers
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._play if name in players else self._read, args=(self.tallies[name],))
            for name in self.tallies
        ]

    def connect(self, user: str, port: int | None = None) -> Client:
        """A retrying client logged in as ``user``, through the balanced frontend (or ``port``).

        The connection and login are tried again as the client's commands are (``LOAD_RETRY``): a
        daemon may die while a client logs in, and the client library resends commands, not logins.
        """
        attempt = 0
        while True:
            attempt += 1
            client = None
            try:
                client = Client(self.cluster.host, port or self.cluster.port, timeout=30, retry=LOAD_RETRY)
                client.login(user, LOAD_PASSWORD)
                return client
            except (OSError, TransientError):  # a dropped connection, or a 421 greeting
                if client is not None:
                    client.close()
                if attempt >= LOAD_RETRY.attempts:
                    raise
                time.sleep(LOAD_RETRY.delay(attempt))

    def start(self) -> ClusterLoad:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout: float = 60.0) -> None:
        """Each client stops after its round or reading (no bet left open, no job left held)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)

    def _play(self, tally: Tally) -> None:
        try:
            with self.connect(tally.name) as client:
                amount = 0
                while not self._stop.is_set():
                    amount = amount % 5 + 1
                    tally.bankroll = client.bet("RED", amount).bankroll
                    tally.count(client)
                    tally.bankroll = client.spin().bankroll
                    tally.count(client)
        except BaseException as exc:
            tally.error = exc

    def _read(self, tally: Tally) -> None:
        try:
            with self.connect(tally.name) as client:
                while not self._stop.is_set():
                    meter = client.job()
                    tally.count(client)
                    if meter is None:
                        raise RuntimeError("the roster ran out: give the load more meters")
                    tally.handed.append(meter)
                    client.read(meter, reading_of(meter))
                    tally.readings[meter] = reading_of(meter)
                    tally.count(client)
        except BaseException as exc:
            tally.error = exc

    def ops(self) -> dict[str, int]:
        return {name: tally.ops for name, tally in self.tallies.items()}

    def wait_ops(self, least: dict[str, int], timeout: float) -> None:
        """Until every client has done at least ``least[name]`` commands; ClusterError if one fails or
        the load stalls for ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            failed = {t.name: t.error for t in self.tallies.values() if t.error is not None}
            if failed:
                raise ClusterError(f"load clients failed: {failed}")
            if all(self.tallies[name].ops >= count for name, count in least.items()):
                return
            if time.monotonic() > deadline:
                raise ClusterError(f"the load stalled: {self.ops()} of {least}")
            time.sleep(0.05)

    def resent(self) -> int:
        """Commands whose reply came to a resend (after a dropped connection)."""
        return sum(tally.resent for tally in self.tallies.values())

    def problems(self) -> list[str]:
        """What the database says against what the clients were told; [] when nothing is lost.

        Every acknowledged reading is there, by its reader, and no other by the load's readers (readers
        outside the load may read meanwhile); no meter was handed out
        twice; each player's bankroll is the last one its client saw, with no bet open; and
        ``daemon.py check`` finds the chips conserved.
        """
        found = [f"{t.name} failed: {t.error!r}" for t in self.tallies.values() if t.error is not None]
        with self.connect("root") as admin:
            stored = {entry.meter: (entry.reading, entry.reader) for entry in admin.readings()}
        told = {meter: (value, name) for name in self.readers for meter, value in self.tallies[name].readings.items()}
        stored = {meter: entry for meter, entry in stored.items() if meter in told or entry[1] in self.readers}
        found += [
            f"reading of {m}: told {told.get(m)}, stored {stored.get(m)}"
            for m in told.keys() | stored.keys()
            if told.get(m) != stored.get(m)
        ]
        handed = Counter(meter for name in self.readers for meter in self.tallies[name].handed)
        found += [f"meter {meter} handed out {count} times" for meter, count in handed.items() if count > 1]
        for name in self.players:
            with self.connect(name) as player:
                table = TableStatus.from_status(player.status())
            told_bankroll = self.tallies[name].bankroll
            if told_bankroll is not None and (table.bankroll, table.open_bet_count) != (told_bankroll, 0):
                found.append(
                    f"{name}: told bankroll {told_bankroll}, stored {table.bankroll} "
                    f"with {table.open_bet_count} open bets"
                )
        check = self.cluster.admin("check")
        if check.returncode != 0:
            found.append(f"daemon.py check exited {check.returncode}: {(check.stdout + check.stderr).strip()}")
        return found


def soak(cluster: Cluster, load: ClusterLoad, seconds: float, kill_every: float) -> int:
    """Run ``load`` for ``seconds``, SIGKILLing a daemon (in turn) every ``kill_every`` seconds and
    starting it again; then the proof. Exit status 0 if nothing was lost."""
    load.start()
    load.wait_ops(dict.fromkeys(load.tallies, 1), READY_TIMEOUT)  # every client logged in and at work
    started = time.monotonic()
    victim = 0
    try:
        while (left := seconds - (time.monotonic() - started)) > 0:
            time.sleep(min(kill_every, left))  # the soak's own clock: how often a daemon dies
            if time.monotonic() - started < seconds and len(cluster.daemons) > 1:
                before = load.ops()
                cluster.kill(victim)
                print(f"soak: {time.monotonic() - started:6.1f} s: killed daemon {victim}", flush=True)
                load.wait_ops({name: ops + 2 for name, ops in before.items()}, READY_TIMEOUT)
                cluster.restart(victim)
                victim = (victim + 1) % len(cluster.daemons)
    finally:
        load.stop()
    problems = load.problems()
    done = sum(load.ops().values())
    print(f"soak: {done} commands in {time.monotonic() - started:.0f} s, {load.resent()} resent after a kill")
    for problem in problems:
        print(f"soak: LOST: {problem}")
    print(
        "soak: nothing lost: readings, bankrolls and chips match what the clients were told"
        if not problems
        else f"soak: {len(problems)} problems"
    )
    return 0 if not problems else 1


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="cluster.py", description=__doc__.splitlines()[0])
    parser.add_argument("--daemons", type=positive_int, default=3, help="how many daemons (default 3)")
    parser.add_argument("--port", type=port_number, default=0, help="HAProxy's port on 127.0.0.1 (default: any free)")
    parser.add_argument("--db", metavar="URL", help="an existing postgresql:// database instead of a throw-away one")
    parser.add_argument("--audit-key", metavar="FILE", help="the audit log's key file (needed with --db)")
    parser.add_argument("--users", metavar="FILE", help="import these users at start (daemon.py --users)")
    parser.add_argument("--roster", metavar="FILE", help="import this meter roster at start (daemon.py --roster)")
    parser.add_argument("--engine", choices=("events", "threads"), default="events", help="the daemons' engine")
    soaking = parser.add_argument_group("soak: a load, daemons killed in turn, then the proof (exit 1 if lost)")
    soaking.add_argument("--soak", type=positive_seconds, metavar="SECONDS", help="run the load this long, then stop")
    soaking.add_argument("--kill-every", type=positive_seconds, default=10.0, metavar="SECONDS", help="(default 10)")
    soaking.add_argument("--players", type=positive_int, default=20, help="registered players (default 20)")
    soaking.add_argument("--readers", type=positive_int, default=10, help="meter readers (default 10)")
    soaking.add_argument("--meters", type=positive_int, help="roster size (default 5000 + 500 a second)")
    options = parser.parse_args(argv)
    if options.soak is not None and (options.users or options.roster):
        parser.error("--soak makes its own users and roster: no --users or --roster with it")
    if options.db is not None and not options.db.startswith(("postgresql://", "postgres://")):
        parser.error(f"--db: not a postgresql:// address: {options.db!r}")
    if options.db is not None and options.audit_key is None:
        parser.error("--db needs --audit-key FILE: the audit log's key of that database (docs/AUDIT.md)")
    for name in ("users", "roster"):
        path = getattr(options, name)
        if path is not None and not os.path.isfile(path):
            parser.error(f"--{name}: no such file: {path}")
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    cluster = Cluster(
        options.daemons,
        options.port,
        options.db,
        daemon_args=("--engine", options.engine),
        audit_key=options.audit_key,
    )
    if options.soak is None:
        cluster.set_imports(options.users, options.roster)
    else:
        meters = options.meters or 5000 + int(500 * options.soak)
        cluster.set_imports(*write_load_files(cluster.directory, options.players, options.readers, meters))
    try:
        cluster.start()
        print(cluster.describe(), flush=True)
        if options.soak is not None:
            players = [f"p{i:02}" for i in range(options.players)]
            readers = [f"r{i:02}" for i in range(options.readers)]
            return soak(cluster, ClusterLoad(cluster, players, readers), options.soak, options.kill_every)
        while all(daemon.process is None or daemon.running for daemon in cluster.daemons):
            time.sleep(0.5)
        gone = [d.index for d in cluster.daemons if not d.running]
        print(f"cluster: daemon {gone[0]} exited: {cluster.daemons[gone[0]].log_tail(500)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    except (ClusterError, PostgresUnavailable, subprocess.CalledProcessError) as exc:
        print(f"cluster: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the cleanup short
        cluster.stop()
        print("cluster: stopped", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
