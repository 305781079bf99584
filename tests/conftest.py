"""Fixtures that start real daemons on free ports and always stop them."""

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from lineproto.domain.accounts import User, format_user, hash_password
from lineproto.wire import Reply, ReplyParser
from lineproto.wire.shapes import Status

# Time is not a property of the code under test on a shared 2-core machine: no example deadline, and
# no failing for slow input generation (the properties and the example counts stay as written).
settings.register_profile("shared-machine", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("shared-machine")

ROOT = Path(__file__).resolve().parent.parent
# Cheap scrypt for test users: the cost parameters travel inside the hash.
TEST_HASH_COST = {"n": 2**10, "r": 8, "p": 1}

#: Every socket-level test runs once on each engine (the ``engine`` fixture).
ENGINES = ("events", "threads")

#: Users every test daemon started with ``users=True`` knows (docs/PROTOCOL.md uses them).
TEST_USERS = {
    "carol": ("Carol Dent", "reader", "secret"),
    "dave": ("Dave Rolls", "player", "hunter2"),
    "root": ("Ada Admin", "admin,reader,player", "admin pass"),
}


def write_users_file(path: Path, users=TEST_USERS) -> Path:
    lines = []
    for name, (real_name, roles, password) in users.items():
        user = User(name, real_name, frozenset(roles.split(",")), hash_password(password, **TEST_HASH_COST))
        lines.append(format_user(user) + "\n")
    path.write_text("".join(lines), encoding="utf-8")
    return path


class Daemon:
    """A daemon.py subprocess on a free port, on the given engine."""

    def __init__(self, tmp_path: Path, *args: str, cwd: Path | None = None, engine: str = ENGINES[0]):
        self.engine = engine
        stamp = time.monotonic_ns()
        self.notify = tmp_path / f"notify-{stamp}"
        self.stderr_path = tmp_path / f"daemon-{stamp}.log"
        self._stderr = open(self.stderr_path, "wb")  # noqa: SIM115 - open while the daemon runs
        if "--db" not in args:  # every daemon gets its own database unless the test names one
            args = ("--db", str(tmp_path / f"daemon-{stamp}.db"), *args)
        if "--engine" not in args:
            args = ("--engine", engine, *args)
        if "--password-cost" not in args:  # the test users' cheap hashes (TEST_HASH_COST) are the daemon's cost
            args = ("--password-cost", str(TEST_HASH_COST["n"]), *args)
        # Every test connects from 127.0.0.1 and many try wrong passwords on purpose: their daemons do
        # not throttle logins unless the test sets the budgets itself (tests/test_limits.py does).
        for option in ("--address-lock-after", "--account-lock-after"):
            if option not in args:
                args = (option, "1000000", *args)
        command = [sys.executable, str(ROOT / "daemon.py"), "--port", "0", "--notify", str(self.notify), *args]
        self.process = subprocess.Popen(
            command, cwd=cwd or tmp_path, stdout=subprocess.PIPE, stderr=self._stderr, stdin=subprocess.DEVNULL
        )
        self.host, self.port = self._wait_ready()

    def _wait_ready(self, timeout: float = 20.0):
        deadline = time.monotonic() + timeout
        while not self.notify.exists():
            if self.process.poll() is not None:
                raise RuntimeError(f"daemon exited {self.process.returncode}: {self.log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"daemon not ready in {timeout}s: {self.log()}")
            time.sleep(0.01)
        lines = self.notify.read_text().splitlines()
        host, port = lines[0].rsplit(":", 1)
        #: The TLS port (``--tls-port``), from the notify file's ``tls HOST:PORT`` line.
        self.tls_port = next((int(line.rsplit(":", 1)[1]) for line in lines[1:] if line.startswith("tls ")), None)
        return host, int(port)

    def log(self) -> str:
        self._stderr.flush()
        return self.stderr_path.read_text(errors="replace")

    def wait_log(self, text: str, timeout: float = 10.0) -> str:
        """The log once it holds ``text`` (log lines may trail the replies a little)."""
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not in the daemon log:\n{self.log()}")
            time.sleep(0.02)
        return self.log()

    def stop(self, sig=signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process.stdout.close()
        self._stderr.close()
        return self.process.returncode


@pytest.fixture(scope="module", params=ENGINES)
def engine(request) -> str:
    """The engine the daemons of a test run on: every test that starts one runs on both."""
    return request.param


@pytest.fixture
def start_daemon(tmp_path, engine):
    """``start_daemon(*args, users=False)`` -> a running :class:`Daemon`; stopped after the test."""
    daemons = []

    def start(*args, users=False):
        if users:
            args = ("--users", str(write_users_file(tmp_path / "users.txt")), *args)
        daemon = Daemon(tmp_path, *args, engine=engine)
        daemons.append(daemon)
        return daemon

    yield start
    for daemon in daemons:
        daemon.stop()


@pytest.fixture(scope="module")
def shared(tmp_path_factory, engine):
    """One daemon with the test users per test module and engine, for tests whose state is per connection."""
    path = tmp_path_factory.mktemp("shared")
    daemon = Daemon(path, "--users", str(write_users_file(path / "users.txt")), engine=engine)
    yield daemon
    daemon.stop()


def stat(connection) -> dict:
    """STAT's ``key: value`` lines as a dict (``connection`` has ``command``)."""
    return dict(Status.from_reply(connection.command("STAT")).values)


@pytest.fixture
def daemon(start_daemon):
    """A daemon with the test users."""
    return start_daemon(users=True)


class RawConnection:
    """A plain socket plus the reply parser: what nc or telnet would see."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 10.0, source: str | None = None):
        # ``source``: the local address to connect from (another 127.0.0.x is another client address)
        self.sock = socket.create_connection(
            (host, port), timeout=timeout, source_address=(source, 0) if source else None
        )
        self.parser = ReplyParser()
        self.ready: list[Reply] = []

    @classmethod
    def over(cls, sock: socket.socket) -> "RawConnection":
        """The same line connection over a socket already connected (a TLS one, say)."""
        connection = cls.__new__(cls)
        connection.sock, connection.parser, connection.ready = sock, ReplyParser(), []
        return connection

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> Reply:
        while not self.ready:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed by server")
            self.ready.extend(self.parser.feed(data))
        return self.ready.pop(0)

    def replies(self, count: int) -> list[Reply]:
        return [self.reply() for _ in range(count)]

    def command(self, line: str) -> Reply:
        self.send(line.encode("utf-8") + b"\r\n")
        return self.reply()

    def read_all(self) -> bytes:
        """Everything until the server closes."""
        chunks = []
        while True:
            data = self.sock.recv(65536)
            if not data:
                return b"".join(chunks)
            chunks.append(data)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@pytest.fixture
def connect():
    """``connect(port)`` -> a :class:`RawConnection` with the greeting already read."""
    connections = []

    def open_connection(port: int) -> RawConnection:
        connection = RawConnection(port)
        connections.append(connection)
        greeting = connection.reply()
        assert greeting.code == 220, greeting
        return connection

    yield open_connection
    for connection in connections:
        connection.close()


@pytest.fixture(scope="session")
def postgres_server():
    """One throw-away PostgreSQL server per test process (``scripts/pgserver.py``), stopped at the end."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from pgserver import PostgresServer

    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture
def postgres_dsn(postgres_server, request):
    """A fresh, empty database on the test process's PostgreSQL server; its ``postgresql://`` address."""
    name = "t_" + "".join(ch if ch.isalnum() else "_" for ch in request.node.name.lower())[:40]
    name = f"{name}_{id(request) % 100000}"
    postgres_server.drop_database(name)
    yield postgres_server.create_database(name)
    postgres_server.drop_database(name)
