"""inetd: ``--inetd`` serves the one session on the connected socket passed as standard input, then exits.

As inetd (``nowait``) starts it: the test hands the daemon one end of a
socketpair as stdin and stdout and talks on the other end; Debian's
``systemd-socket-activate --accept --inetd`` does the same for real TCP connections.
"""

import socket
import subprocess
import sys

import test_systemd
from test_systemd import needs_activate

from conftest import ROOT, RawConnection, write_users_file

activate = test_systemd.activate  # the fixture: systemd-socket-activate in front of the daemon


def inetd_args(tmp_path, engine):
    users = write_users_file(tmp_path / "users.txt")
    db = tmp_path / "inetd.db"
    return ["--inetd", "--engine", engine, "--db", str(db), "--users", str(users), "--password-cost", "1024"]


def test_one_session_on_stdin_then_exit_0_and_the_log_on_stderr_only(tmp_path, engine):
    ours, theirs = socket.socketpair()
    log = tmp_path / "daemon.log"
    with open(log, "wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "daemon.py"), *inetd_args(tmp_path, engine)],
            stdin=theirs,
            stdout=theirs,
            stderr=stderr,
        )
    theirs.close()
    try:
        ours.settimeout(20)
        line = RawConnection.over(ours)
        assert line.reply().code == 220
        line.command("USER dave")
        assert line.command("PASS hunter2").code == 230
        assert line.command("BET RED 10").code == 200
        assert line.command("SPIN").code == 250
        assert line.command("QUIT").code == 221
        rest = line.read_all()  # the daemon closes its end after the goodbye: nothing else came on stdout
        assert rest == b"" and not line.ready
        assert process.wait(20) == 0
    finally:
        ours.close()
        if process.poll() is None:
            process.kill()
            process.wait()
    text = log.read_text()
    assert "serving one inetd connection" in text
    assert "open -" in text and "close -" in text
    assert "Traceback" not in text


def test_stdin_that_is_not_a_socket_is_one_line_and_status_2(tmp_path, engine):
    result = subprocess.run(
        [sys.executable, str(ROOT / "daemon.py"), *inetd_args(tmp_path, engine)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1:] == [
        "daemon.py: --inetd: standard input is not a socket (inetd passes the connection there)"
    ]
    assert "Traceback" not in result.stderr and result.stdout == ""


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
