"""Where the daemon logs and what: ``--log-file`` (reopened on SIGHUP), ``--log-format json``, ``--syslog``.

Through real daemons on both engines: one line per connection opened and closed, per login and
failed login (account and peer), per limit hit; client bytes escaped.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import ROOT, RawConnection


def wait_for(path, text: str, timeout: float = 10.0) -> str:
    """``path``'s text once it holds ``text`` (log lines may trail the replies a little)."""
    deadline = time.monotonic() + timeout
    while True:
        content = path.read_text(encoding="utf-8") if path.exists() else ""
        if text in content:
            return content
        assert time.monotonic() < deadline, f"{text!r} not in {path}:\n{content}"
        time.sleep(0.02)


def peer_of(connection: RawConnection) -> str:
    host, port = connection.sock.getsockname()[:2]
    return f"{host}:{port}"


def session(port: int, *lines: str) -> str:
    """Connect, send ``lines`` one reply at a time, QUIT; the client's address as the daemon logs it."""
    with RawConnection(port) as connection:
        connection.reply()
        for line in lines:
            connection.command(line)
        connection.command("QUIT")
        return peer_of(connection)


def test_one_line_per_connection_login_failure_and_limit(start_daemon):
    daemon = start_daemon("--max-per-address", "1", users=True)
    peer = session(daemon.port, "USER dave", "PASS hunter2")
    log = daemon.wait_log(f"close {peer}")
    assert f"open {peer}" in log and f"login dave from {peer}" in log
    guest = session(daemon.port, "USER guest")
    assert f"login guest from {guest}" in daemon.wait_log(f"close {guest}")
    failed = session(daemon.port, "USER dave", "PASS wrong")
    assert f"login failed for dave from {failed}" in daemon.wait_log(f"close {failed}")
    with RawConnection(daemon.port) as holder:
        holder.reply()
        with RawConnection(daemon.port) as refused:
            assert refused.reply().code == 421
            assert f"refused {peer_of(refused)}: too many connections from your address" in daemon.wait_log(
                f"refused {peer_of(refused)}"
            )


def test_client_bytes_reach_the_log_escaped(start_daemon):
    daemon = start_daemon(users=True)
    peer = session(daemon.port, "USER \x1b[2Jevil", "PASS x")
    log = daemon.wait_log(f"close {peer}")
    assert "\x1b" not in log
    assert f"login failed for \\x1b[2jevil from {peer}" in log  # names are case-insensitive: lower-cased


def test_log_file_is_written_and_reopened_on_sighup(start_daemon, tmp_path):
    path = tmp_path / "lineproto.log"
    daemon = start_daemon("--log-file", str(path), users=True)
    first = session(daemon.port, "NOOP")
    wait_for(path, f"close {first}")
    assert daemon.log() == ""  # the file, not standard error
    rotated = tmp_path / "lineproto.log.1"
    os.rename(path, rotated)  # what logrotate does, then it sends SIGHUP
    daemon.process.send_signal(signal.SIGHUP)
    wait_for(path, "SIGHUP: log file reopened")
    second = session(daemon.port, "NOOP")
    assert f"open {second}" in wait_for(path, f"close {second}")
    assert second not in rotated.read_text(encoding="utf-8")


def test_json_lines_have_time_level_logger_message_and_fields(start_daemon, tmp_path):
    path = tmp_path / "lineproto.log"
    daemon = start_daemon("--log-file", str(path), "--log-format", "json", users=True)
    peer = session(daemon.port, "USER dave", "PASS wrong", "USER dave", "PASS hunter2")
    wait_for(path, f"close {peer}")
    entries = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    for entry in entries:
        assert {"time", "level", "logger", "message"} <= set(entry), entry
        assert entry["time"].endswith("+00:00")
    by_message = {entry["message"]: entry for entry in entries}
    login = by_message[f"login dave from {peer}"]
    assert (login["level"], login["logger"], login["account"], login["peer"]) == (
        "info",
        "lineproto.commands",
        "dave",
        peer,
    )
    failure = by_message[f"login failed for dave from {peer}"]
    assert (failure["level"], failure["account"], failure["peer"]) == ("warning", "dave", peer)


@pytest.fixture(params=["unix", "udp"])
def syslog_server(request, tmp_path):
    """A socket where syslog would listen, and the --syslog-address that reaches it."""
    if request.param == "unix":
        server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        server.bind(str(tmp_path / "log"))
        address = str(tmp_path / "log")
    else:
        server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        server.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{server.getsockname()[1]}"
    server.settimeout(10)
    yield server, address
    server.close()


def test_syslog_gets_the_lines_with_facility_daemon(start_daemon, syslog_server):
    server, address = syslog_server
    daemon = start_daemon("--syslog", "--syslog-address", address)
    peer = session(daemon.port, "NOOP")
    wanted = f"<30>lineproto[{daemon.process.pid}]: INFO lineproto.connection: open {peer}"  # daemon.info: 3*8+6
    messages = []
    while wanted not in messages:
        messages.append(server.recv(65536).decode().rstrip("\x00"))
    assert daemon.log() == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--log-file", "/nonexistent/dir/lineproto.log"], "--log-file /nonexistent/dir/lineproto.log: "),
        (["--syslog", "--syslog-address", "/nonexistent/log"], "--syslog: no syslog socket at /nonexistent/log"),
        (["--syslog", "--syslog-address", "host:port"], "--syslog-address host:port: a socket path or HOST:PORT"),
        (["--log-format", "xml"], "error: argument --log-format: invalid choice: 'xml'"),
    ],
)
def test_a_log_destination_that_cannot_be_used_is_one_line(tmp_path, args, message):
    result = subprocess.run(
        [sys.executable, str(ROOT / "daemon.py"), "--db", ":memory:", "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"daemon.py: {message}"), line
