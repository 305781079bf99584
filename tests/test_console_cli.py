"""client.py's command line as a user meets it: --version, one-line mistakes, no tracebacks.

Every program ends with one line on stderr when it cannot do its job: exit 2 for a
mistake on the command line (or a batch file it cannot send), exit 1 when the daemon
cannot be reached or refuses, 141 when the reader of its output goes away.
"""

import os
import socket
import subprocess
import sys
import threading

import pytest

from conftest import ROOT
from lineproto import PRODUCT, __version__

#: Each console program with the arguments that make it connect at once (no prompt first).
PROGRAMS = {
    "raw": ["raw"],
    "batch": ["batch", "-"],
    "play": ["play"],
    "simulate": ["simulate"],
    "meter": ["meter", "--user", "carol"],
}


def client_py(*args, stdin="", timeout=60):
    env = dict(os.environ)
    env.pop("PYTHONWARNINGS", None)
    return subprocess.run(
        [sys.executable, str(ROOT / "client.py"), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        start_new_session=True,
        env=env,
    )


def one_line(result, status: int) -> str:
    """The single stderr line of a program that ended with ``status``."""
    assert result.returncode == status, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_version():
    result = client_py("--version")
    assert result.returncode == 0
    assert result.stdout == f"{PRODUCT} {__version__}\n"


@pytest.mark.parametrize("program", PROGRAMS)
@pytest.mark.parametrize("port", ["99999", "-1", "http"])
def test_a_bad_port_is_one_line(program, port):
    line = one_line(client_py(*PROGRAMS[program], "--port", port), 2)
    assert line.startswith(f"client.py {program}: error: argument -p/--port: ")


@pytest.mark.parametrize("program", ["raw", "batch", "play", "simulate"])
def test_port_0_is_refused_where_nothing_is_spawned(program):
    line = one_line(client_py(*PROGRAMS[program], "--port", "0"), 2)
    assert "1-65535" in line


def test_meter_port_0_needs_spawn():
    line = one_line(client_py("meter", "--port", "0"), 2)
    assert "--spawn" in line


@pytest.mark.parametrize(
    "args",
    [
        ["simulate", "--players", "0"],
        ["simulate", "--timeout", "0"],
        ["frobnicate"],
        [],
    ],
)
def test_usage_mistakes_are_one_line(args):
    one_line(client_py(*args), 2)


@pytest.mark.parametrize(
    "content, expected",
    [
        (None, "No such file or directory"),
        (b"NOOP\nNOOP \xd0\xff\n", "not UTF-8"),
        (b"NOOP\nNO\x00OP\n", "line 2"),
    ],
)
def test_batch_file_that_cannot_be_sent_is_one_line_before_connecting(tmp_path, content, expected):
    path = tmp_path / "commands.txt"
    if content is not None:
        path.write_bytes(content)
    # nothing listens on the port: a file error (2) proves the file was checked before connecting (1)
    line = one_line(client_py("batch", str(path), "--port", str(free_port())), 2)
    assert expected in line and str(path) in line


def test_batch_directory_is_one_line(tmp_path):
    line = one_line(client_py("batch", str(tmp_path), "--port", str(free_port())), 2)
    assert "directory" in line


def test_batch_line_from_stdin_that_is_not_utf8(daemon):
    result = subprocess.run(
        [sys.executable, str(ROOT / "client.py"), "batch", "-", "--port", str(daemon.port)],
        input=b"NOOP \xff\n",
        capture_output=True,
        timeout=60,
        start_new_session=True,
    )
    assert result.returncode == 2, result.stderr
    assert b"Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1
    assert b"line 1" in result.stderr


@pytest.mark.parametrize("program", PROGRAMS)
def test_nothing_listening_is_one_line(program):
    line = one_line(client_py(*PROGRAMS[program], "--port", str(free_port())), 1)
    assert "cannot connect" in line


@pytest.mark.parametrize("program", PROGRAMS)
def test_a_full_daemon_is_one_line(start_daemon, connect, program):
    daemon = start_daemon("--max-connections", "1", users=True)
    connect(daemon.port)  # the one connection it takes
    line = one_line(client_py(*PROGRAMS[program], "--port", str(daemon.port)), 1)
    assert "too many connections" in line


@pytest.fixture
def silent_port():
    """A port whose listener accepts connections (the kernel's backlog) and never says a word."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


@pytest.mark.parametrize("program", PROGRAMS)
def test_a_port_that_never_greets_times_out_in_one_line(silent_port, program):
    result = client_py(*PROGRAMS[program], "--port", str(silent_port), "--timeout", "0.5", timeout=30)
    line = one_line(result, 1)
    assert f"127.0.0.1:{silent_port}" in line and "no greeting within 0.5 s" in line


@pytest.mark.parametrize("program", ["batch", "raw"])
def test_output_reader_going_away_ends_quietly(daemon, program):
    """``client.py batch ... | head -1``: exit 141 (as a SIGPIPE death), nothing on stderr."""
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "client.py"), *PROGRAMS[program], "--port", str(daemon.port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    process.stdin.write(b"NOOP\n" * 20000)
    process.stdin.close()
    assert process.stdout.readline().startswith(b"220 ")
    process.stdout.close()
    assert process.wait(timeout=60) == 141
    assert process.stderr.read() == b""
    process.stderr.close()


@pytest.fixture
def closing_port():
    """A fake daemon: greets, logs the guest in, then answers the next command with 421 (shutting down)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)

        def serve():
            connection, _ = listener.accept()
            with connection, connection.makefile("rb") as lines:
                connection.sendall(b"220 lineproto test ready\r\n")
                lines.readline()
                connection.sendall(b"230 Welcome, Guest: logged in as guest with play money\r\n")
                lines.readline()
                connection.sendall(b"421 Server shutting down; closing connection\r\n")
                lines.read()  # until the client has gone

        server = threading.Thread(target=serve, daemon=True)
        server.start()
        yield listener.getsockname()[1]
        server.join(timeout=10)


def test_a_daemon_closing_mid_session_is_one_line(closing_port):
    line = one_line(client_py("play", "--port", str(closing_port)), 1)
    assert line == "client.py play: the daemon closed the connection: Server shutting down; closing connection"
