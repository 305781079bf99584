"""inetd: ``--inetd`` serves the one session on the connected socket passed as standard input, then exits.

As inetd (``nowait``) starts it: the test hands the daemon one end of a
socketpair as stdin and stdout and talks on the other end; Debian's
``systemd-socket-activate --accept --inetd`` does the same for real TCP connections.
"""

import signal
import socket
import subprocess
import sys

import pytest
import test_systemd
from test_systemd import needs_activate

from conftest import ROOT, RawConnection, write_users_file

activate = test_systemd.activate  # the fixture: systemd-socket-activate in front of the daemon


def inetd_args(tmp_path, engine):
    users = write_users_file(tmp_path / "users.txt")
    db = tmp_path / "inetd.db"
    return ["--inetd", "--engine", engine, "--db", str(db), "--users", str(users), "--password-cost", "1024"]


def test_one_session_on_stdin_then_exit_0_and_the_log_on_stderr_only(inetd_daemon):
    daemon = inetd_daemon()
    line = daemon.line
    assert line.reply().code == 220
    line.command("USER dave")
    assert line.command("PASS hunter2").code == 230
    assert line.command("BET RED 10").code == 200
    assert line.command("SPIN").code == 250
    assert line.command("QUIT").code == 221
    # The daemon closes its end after the goodbye: nothing else came on its stdout.
    assert line.read_all() == b"" and not line.ready
    assert daemon.process.wait(20) == 0
    text = daemon.log_path.read_text()
    assert "serving one inetd connection" in text
    assert "open -" in text and "close -" in text
    assert "Traceback" not in text


class InetdDaemon:
    """``daemon.py --inetd`` with one end of a socketpair as stdin and stdout; ``line`` talks on the other end."""

    def __init__(self, tmp_path, engine, *more):
        ours, theirs = socket.socketpair()
        self.log_path = tmp_path / "daemon.log"
        with open(self.log_path, "wb") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, str(ROOT / "daemon.py"), *inetd_args(tmp_path, engine), *more],
                stdin=theirs,
                stdout=theirs,
                stderr=stderr,
            )
        theirs.close()  # the daemon holds the only other end: it closes, we read the end
        ours.settimeout(20)
        self.line = RawConnection.over(ours)

    def close(self) -> None:
        self.line.close()
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def inetd_daemon(tmp_path, engine):
    started = []

    def start(*more):
        daemon = InetdDaemon(tmp_path, engine, *more)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.close()


def test_sigterm_ends_the_session_with_421_and_exit_0(inetd_daemon):
    daemon = inetd_daemon()
    assert daemon.line.reply().code == 220
    assert daemon.line.command("USER guest").code == 230
    daemon.process.send_signal(signal.SIGTERM)
    assert daemon.line.reply().code == 421
    assert daemon.line.read_all() == b""
    assert daemon.process.wait(20) == 0


def run_inetd(tmp_path, engine, *more, stdin=subprocess.DEVNULL):
    return subprocess.run(
        [sys.executable, str(ROOT / "daemon.py"), *inetd_args(tmp_path, engine), *more],
        stdin=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_stdin_that_is_not_a_socket_is_one_line_and_status_2(tmp_path, engine):
    result = run_inetd(tmp_path, engine)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1:] == [
        "daemon.py: --inetd: standard input is not a socket (inetd passes the connection there)"
    ]
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_advertise_with_inetd_is_one_line_and_status_2(tmp_path, engine):
    result = run_inetd(tmp_path, engine, "--advertise", "x")
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1:] == [
        "daemon.py: --advertise does not go with --inetd: inetd owns the port, and may advertise it"
    ]


@needs_activate
def test_each_tcp_connection_gets_a_daemon_of_its_own_as_from_inetd(activate, tmp_path, engine):
    activated = activate(["lineproto"], {}, *inetd_args(tmp_path, engine), tool_args=("--accept", "--inetd"))
    (port,) = activated.ports
    # One at a time into a new database (two first opens at once race on its schema); then both at once.
    with RawConnection(port) as first:
        assert first.reply().code == 220, activated.text()
        second = RawConnection(port)
        assert second.reply().code == 220, activated.text()
        first.command("USER dave")
        assert first.command("PASS hunter2").code == 230
        assert second.command("USER guest").code == 230
        # Each daemon sees its own client's TCP address, as inetd passes it.
        peer = f"127.0.0.1:{first.sock.getsockname()[1]}"
        for line in (first, second):
            assert line.command("QUIT").code == 221
            assert line.read_all() == b""
        second.close()
    assert f"open {peer}" in activated.text()
