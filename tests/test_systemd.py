"""systemd: socket activation by Debian's real ``systemd-socket-activate``, the notify protocol by a test-owned socket.

``systemd-socket-activate`` binds the listeners, waits for the first connection
and then execs the daemon with them from descriptor 3, exactly as systemd does
for a ``.socket`` unit; the daemon's notify messages go to a datagram socket this
test binds. Nothing sleeps: the tests wait on the tool's "Listening on" line and
on the datagrams.
"""

import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

import pytest
import test_tls
from hypothesis import given
from hypothesis import strategies as st
from test_tls import client_context

from conftest import ROOT, RawConnection, write_users_file
from lineproto.commands import Command, build_services
from lineproto.engines import ServerSettings, start_server
from lineproto.errors import StartError
from lineproto.systemd import (
    TLS_NAME,
    ListenFds,
    Notifier,
    format_message,
    notify_address,
    parse_listen_fds,
    take_listen_sockets,
    watchdog_interval,
)
from lineproto.wire import Reply

tls_certificate = test_tls.certificate  # the fixture, under a name of its own here

ACTIVATE = shutil.which("systemd-socket-activate")
needs_activate = pytest.mark.skipif(
    ACTIVATE is None, reason="systemd-socket-activate missing: apt-get install systemd (scripts/test-packages.sh)"
)

# ---------------------------------------------------------------------------- the parts without sockets


def test_listen_fds_are_split_by_name_from_descriptor_3():
    env = {"LISTEN_PID": "42", "LISTEN_FDS": "3", "LISTEN_FDNAMES": f"lineproto:{TLS_NAME}:lineproto"}
    assert parse_listen_fds(env, 42) == ListenFds(plain=(3, 5), tls=(4,))


def test_listen_fds_without_names_are_all_plain():
    assert parse_listen_fds({"LISTEN_PID": "7", "LISTEN_FDS": "2"}, 7) == ListenFds(plain=(3, 4), tls=())


def test_listen_fds_meant_for_another_process_are_ignored():
    assert parse_listen_fds({"LISTEN_PID": "7", "LISTEN_FDS": "2"}, 8) is None
    assert parse_listen_fds({}, 8) is None


@pytest.mark.parametrize(
    "env",
    [
        {"LISTEN_PID": "7", "LISTEN_FDS": "two"},
        {"LISTEN_PID": "7", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "lineproto"},
    ],
)
def test_malformed_listen_variables_are_one_line(env):
    with pytest.raises(StartError):
        parse_listen_fds(env, 7)


def test_the_listen_variables_are_removed_even_when_not_ours():
    env = {"LISTEN_PID": "1", "LISTEN_FDS": "1", "LISTEN_FDNAMES": "lineproto", "PATH": "/bin"}
    assert take_listen_sockets(env, pid=2) is None
    assert env == {"PATH": "/bin"}


def test_notify_addresses_path_and_abstract():
    assert notify_address("/run/systemd/notify") == "/run/systemd/notify"
    assert notify_address("@lineproto/notify") == b"\0lineproto/notify"
    with pytest.raises(StartError):
        notify_address("relative/path")


def test_watchdog_beats_twice_per_timeout_and_only_for_us():
    assert watchdog_interval({"WATCHDOG_USEC": "3000000"}, 5) == 1.5
    assert watchdog_interval({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "5"}, 5) == 1.5
    assert watchdog_interval({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "6"}, 5) is None
    assert watchdog_interval({}, 5) is None


@given(st.dictionaries(st.from_regex(r"[A-Z_]{1,12}", fullmatch=True), st.text(), min_size=1))
def test_a_message_is_one_line_per_field(fields):
    lines = format_message(**fields).decode().split("\n")
    assert [line.split("=", 1)[0] for line in lines] == list(fields)
    for line, value in zip(lines, fields.values(), strict=True):
        assert line.split("=", 1)[1] == " ".join(value.splitlines())


def test_the_notifier_reaches_an_abstract_socket_and_unsets_the_variable():
    name = f"lineproto-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind(b"\0" + name.encode())
        receiver.settimeout(10)
        env = {"NOTIFY_SOCKET": f"@{name}"}
        notifier = Notifier(env)
        notifier.send(READY=1, STATUS="serving")
        notifier.close()
        assert receiver.recv(4096) == b"READY=1\nSTATUS=serving"
        assert env == {}


# ---------------------------------------------------------------------------- the real thing


class NotifySocket:
    """The test's NOTIFY_SOCKET: a datagram socket in tmp_path that collects what the daemon says."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.seen: list[dict[str, str]] = []
        self.cursor = 0

    def wait_for(self, name: str, value: str) -> dict[str, str]:
        """The first message, from the one the last wait matched on, that sets ``name`` to a value holding ``value``."""
        deadline = time.monotonic() + 20
        while True:
            for index in range(self.cursor, len(self.seen)):
                fields = self.seen[index]
                if value in fields.get(name, ""):
                    self.cursor = index
                    return fields
            self.cursor = len(self.seen)
            self.sock.settimeout(max(deadline - time.monotonic(), 0.001))
            message = self.sock.recv(4096).decode()  # TimeoutError once the deadline has passed
            self.seen.append(dict(line.split("=", 1) for line in message.split("\n")))

    def close(self):
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path):
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Activated:
    """``systemd-socket-activate -l ... daemon.py ...``: listeners bound by the tool, the daemon started on connection.

    The tool's stderr (and then the daemon's, which inherits it) is read by a thread into ``lines``.
    """

    def __init__(self, names: list[str], env: dict[str, str], daemon_args: list[str], tool_args: tuple[str, ...] = ()):
        for _ in range(20):  # a port taken between free_port() and the tool's bind: choose again
            self.ports = [free_port() for _ in names]
            listen = [f"--listen=127.0.0.1:{port}" for port in self.ports]
            setenv = [f"--setenv={key}={value}" for key, value in env.items()]
            command = [ACTIVATE, *tool_args, *listen, f"--fdname={':'.join(names)}", *setenv, sys.executable]
            command += [str(ROOT / "daemon.py"), *daemon_args]
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
            )
            self.lines: list[str] = []
            self.changed = threading.Condition()
            self.reader = threading.Thread(target=self._read, daemon=True)
            self.reader.start()
            if self._wait_listening():
                return
            self.process.wait()
        raise RuntimeError("systemd-socket-activate found no free port in 20 tries")

    def _read(self) -> None:
        for line in self.process.stderr:
            with self.changed:
                self.lines.append(line)
                self.changed.notify_all()
        with self.changed:
            self.lines.append("")  # end of output
            self.changed.notify_all()

    def _wait_listening(self) -> bool:
        """True once the tool says it listens on every port; False if it could not bind one."""
        with self.changed:
            done = self.changed.wait_for(
                lambda: "" in self.lines or sum("Listening on" in line for line in self.lines) == len(self.ports), 20
            )
            if not done:
                raise RuntimeError(f"systemd-socket-activate not listening in 20 s: {self.text()}")
            if "" not in self.lines:
                return True
        if "Address already in use" in self.text():
            return False
        raise RuntimeError(f"systemd-socket-activate failed: {self.text()}")

    def exit_status(self) -> int:
        status = self.process.wait(20)
        self.reader.join(20)  # every line read
        return status

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.reader.join(20)
        self.process.stderr.close()
        return self.process.returncode

    def text(self) -> str:
        return "".join(self.lines)


@pytest.fixture
def activate():
    started = []

    def start(names, env, *daemon_args, tool_args=()):
        activated = Activated(names, env, list(daemon_args), tool_args)
        started.append(activated)
        return activated

    yield start
    for each in started:
        each.stop()


def daemon_args(tmp_path, engine, *more):
    users = write_users_file(tmp_path / "users.txt")
    return ("--engine", engine, "--db", str(tmp_path / "d.db"), "--users", str(users), "--password-cost", "1024", *more)


@needs_activate
def test_socket_activation_serves_and_tells_systemd_ready_status_watchdog_stopping(
    activate, notify_socket, tmp_path, engine
):
    # --port 1 is not bound: the listener is the tool's (the notify file says where it serves).
    notify_file = tmp_path / "ready"
    activated = activate(
        ["lineproto"],
        {"NOTIFY_SOCKET": notify_socket.path, "WATCHDOG_USEC": "200000"},
        *daemon_args(tmp_path, engine, "--port", "1", "--notify", str(notify_file)),
    )
    (port,) = activated.ports
    with RawConnection(port) as line:  # the first connection starts the daemon, which accepts it
        assert line.reply().code == 220, activated.text()
        ready = notify_socket.wait_for("READY", "1")
        assert ready["STATUS"].startswith(f"serving on 127.0.0.1:{port}")
        assert notify_file.read_text() == f"127.0.0.1:{port}\n"
        assert notify_socket.wait_for("STATUS", "; 1 connection")
        assert notify_socket.wait_for("WATCHDOG", "1")
        assert line.command("USER dave").code == 331
        assert line.command("PASS hunter2").code == 230
        assert line.command("QUIT").code == 221
    notify_socket.wait_for("STATUS", "; 0 connections")
    activated.process.send_signal(signal.SIGTERM)
    assert notify_socket.wait_for("STOPPING", "1")
    assert activated.exit_status() == 0
    log = activated.text()
    assert "socket activation: 1 plain and 0 TLS listeners from systemd" in log
    assert "Traceback" not in log


@needs_activate
def test_the_socket_named_lineproto_tls_starts_with_the_handshake(
    activate, notify_socket, tmp_path, engine, tls_certificate
):
    ca, cert, key = tls_certificate
    activated = activate(
        ["lineproto", TLS_NAME],
        {"NOTIFY_SOCKET": notify_socket.path},
        *daemon_args(tmp_path, engine, "--cert", cert, "--key", key),
    )
    plain_port, tls_port = activated.ports
    with RawConnection(plain_port) as line:  # starts the daemon
        assert line.reply().code == 220, activated.text()
    notify_socket.wait_for("READY", "1")
    raw = socket.create_connection(("127.0.0.1", tls_port), timeout=20)
    with client_context(ca).wrap_socket(raw, server_hostname="127.0.0.1") as sock:
        line = RawConnection.over(sock)
        assert line.reply().code == 220
        line.command("USER dave")
        assert line.command("PASS hunter2").code == 230
        assert line.command("QUIT").code == 221
    assert activated.stop() == 0


@needs_activate
def test_a_tls_socket_without_a_certificate_is_one_line_and_status_2(activate, tmp_path, engine):
    activated = activate(["lineproto", TLS_NAME], {}, *daemon_args(tmp_path, engine))
    with socket.create_connection(("127.0.0.1", activated.ports[0]), timeout=20) as sock:
        try:
            assert sock.recv(100) == b""  # the daemon exits without a greeting ...
        except ConnectionResetError:  # ... and the kernel resets what its listener still held
            pass
    assert activated.exit_status() == 2
    lines = [line for line in activated.text().splitlines() if line.startswith("daemon.py:")]
    assert lines == [f"daemon.py: a TLS listener ({TLS_NAME} from systemd) needs a certificate (--cert, --key)"]


@needs_activate
def test_a_passed_socket_that_is_not_a_tcp_listener_is_one_line_and_status_2(activate, tmp_path, engine):
    activated = activate(["lineproto"], {}, *daemon_args(tmp_path, engine), tool_args=("--datagram",))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"x", ("127.0.0.1", activated.ports[0]))  # the datagram that starts the daemon
    assert activated.exit_status() == 2
    lines = [line for line in activated.text().splitlines() if line.startswith("daemon.py:")]
    assert lines == ["daemon.py: systemd passed descriptor 3, which is not a listening TCP socket (ListenStream=)"]


def test_listen_variables_of_another_process_are_ignored_and_the_port_is_bound(start_daemon, monkeypatch):
    # As a child of a socket-activated process would see them: LISTEN_PID names its parent.
    monkeypatch.setenv("LISTEN_PID", "1")
    monkeypatch.setenv("LISTEN_FDS", "1")
    daemon = start_daemon()
    with RawConnection(daemon.port) as line:
        assert line.reply().code == 220
    assert "socket activation" not in daemon.log()


ANALYZE = shutil.which("systemd-analyze")


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze missing: apt-get install systemd")
def test_the_shipped_unit_files_pass_systemd_analyze_verify(tmp_path):
    # The service names the installed command; here any executable stands in for it.
    for unit in (ROOT / "contrib" / "systemd").iterdir():
        text = unit.read_text().replace("/usr/local/bin/lineproto-daemon", sys.executable)
        (tmp_path / unit.name).write_text(text)
    units = sorted(str(path) for path in tmp_path.iterdir())
    result = subprocess.run([ANALYZE, "verify", *units], capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
    service = (tmp_path / "lineproto.service").read_text()
    for setting in (
        "Type=notify",
        "DynamicUser=yes",
        "StateDirectory=lineproto",
        "WatchdogSec=",
        "ProtectSystem=strict",
    ):
        assert setting in service


def test_the_watchdog_health_check_fails_while_the_event_loop_is_stuck(engine):
    # A handler without blocks= runs on the events engine's loop: while it hangs, nothing else is served,
    # and the watchdog must stop pinging; on the threads engine it holds only its own connection's thread.
    started, release = threading.Event(), threading.Event()

    def hang(session):
        started.set()
        release.wait(30)
        return Reply(200, ("released",))

    services = build_services()
    services.table.add(Command("HANG", "", "hold the caller", hang))
    with start_server(services, ServerSettings(port=0), engine=engine) as running:
        server = running.server
        assert server.responsive(5)
        with RawConnection(running.address[1]) as line:
            assert line.reply().code == 220
            line.send(b"HANG\r\n")
            assert started.wait(20)
            assert server.responsive(0.2) is (engine == "threads")
            release.set()
            assert line.reply().code == 200
        assert server.responsive(5)
        running.stop()
        assert not server.responsive(5)


def test_an_embedder_serves_on_sockets_it_bound_itself(engine):
    # What socket activation does, from Python: the server binds nothing of its own.
    plain = socket.create_server(("127.0.0.1", 0))
    services = build_services()
    with start_server(services, ServerSettings(port=1, sockets=(plain,)), engine=engine) as running:
        assert running.address == plain.getsockname()
        with RawConnection(running.address[1]) as line:
            assert line.reply().code == 220
            assert line.command("NOOP").code == 200


def test_an_embedder_serves_one_connected_socket_and_the_server_stops_when_it_ends(engine):
    ours, theirs = socket.socketpair()
    running = start_server(build_services(), ServerSettings(inetd=theirs), engine=engine)
    with RawConnection.over(ours) as line:
        ours.settimeout(20)
        assert line.reply().code == 220
        assert line.command("QUIT").code == 221
        assert line.read_all() == b""
    assert running.server.state.stopping.wait(20)  # the session was the server's only one: it stops itself
    running.wait()
    assert not running.alive
