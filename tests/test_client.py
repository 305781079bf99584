"""The client library, client.py batch/raw and daemon.py's own command line."""

import os
import re
import socket
import subprocess
import sys
import threading
import time

import pytest

from conftest import ROOT
from lineproto import __version__
from lineproto.client import (
    Client,
    ClientError,
    ConnectionClosed,
    ConnectionTimeout,
    PermanentError,
    ProtocolError,
    Reply,
    ReplyTimeout,
    TransientError,
)
from lineproto.domain.accounts import parse_users, verify_password


def test_client_basics(daemon):
    with Client("127.0.0.1", daemon.port, timeout=10) as client:
        assert client.greeting.code == 220
        assert client.noop() == Reply(200, ("OK",))
        assert client.login("carol", "secret").code == 230
        assert client.stat()["user"] == "carol"
        assert client.help("NOOP").lines[0] == "NOOP"


def test_client_raises_permanent_error_with_reply(daemon):
    with Client("127.0.0.1", daemon.port) as client:
        with pytest.raises(PermanentError) as caught:
            client.command("FROB")
        assert caught.value.reply.code == 500
        with pytest.raises(PermanentError) as caught:
            client.login("carol", "bad")
        assert caught.value.code == 530


def test_client_raises_transient_error_on_4yz(start_daemon):
    daemon = start_daemon("--max-connections", "1")
    with Client("127.0.0.1", daemon.port):
        with pytest.raises(TransientError) as caught:
            Client("127.0.0.1", daemon.port)
        assert caught.value.code == 421


def test_pipeline_returns_every_reply_in_order(daemon):
    with Client("127.0.0.1", daemon.port) as client:
        replies = client.pipeline(["NOOP", "", "FROB", "HELP QUIT", "USER guest"])
    assert [reply.code for reply in replies] == [200, 500, 214, 230]


@pytest.mark.parametrize("bad", ["NOOP\r\nQUIT", "NOOP\nX", "USER a\x00b"])
def test_client_refuses_line_injection(daemon, bad):
    with Client("127.0.0.1", daemon.port) as client:
        with pytest.raises(ValueError):
            client.command(bad)
        with pytest.raises(ValueError):
            client.pipeline([bad])
        with pytest.raises(ValueError):
            client.login("carol", bad)
        assert client.noop().code == 200  # nothing was sent


def test_quit_then_connection_closed(daemon):
    client = Client("127.0.0.1", daemon.port)
    assert client.quit().code == 221
    with pytest.raises(OSError):
        client.noop()


def fake_server(payload: bytes):
    """A one-shot TCP server that sends ``payload`` and closes; returns its port."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve():
        connection, _ = listener.accept()
        connection.sendall(payload)
        connection.close()
        listener.close()

    threading.Thread(target=serve, daemon=True).start()
    return listener.getsockname()[1]


def test_malformed_reply_raises_protocol_error():
    with pytest.raises(ProtocolError):
        Client("127.0.0.1", fake_server(b"hello there\r\n"), timeout=5)


def test_dropped_connection_raises_connection_closed():
    with pytest.raises(ConnectionClosed) as caught:
        Client("127.0.0.1", fake_server(b"220-half a greet"), timeout=5)
    assert isinstance(caught.value, ConnectionError)


class SilentServer:
    """A real listening socket that accepts connections and sends ``greeting`` (default: nothing), then nothing.

    ``trickle`` sends the greeting one byte per ``trickle`` seconds. Connections stay open until ``close``.
    """

    def __init__(self, greeting: bytes = b"", trickle: float | None = None):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.greeting, self.trickle = greeting, trickle
        self.done = threading.Event()
        self.accepted = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        try:
            connection, _ = self.listener.accept()
        except OSError:  # closed before anyone connected
            return
        self.accepted.append(connection)
        if self.trickle is None:
            connection.sendall(self.greeting)
        else:
            for byte in self.greeting:
                if self.done.wait(self.trickle):
                    break
                connection.sendall(bytes([byte]))
        self.done.wait(30)

    def close(self):
        self.done.set()
        self.listener.close()
        self.thread.join(10)
        for connection in self.accepted:
            connection.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def test_a_server_that_accepts_but_never_greets_raises_connection_timeout():
    with SilentServer() as server:
        started = time.monotonic()
        with pytest.raises(ConnectionTimeout) as caught:
            Client("127.0.0.1", server.port, timeout=None, connect_timeout=0.5)  # no reply timeout: still bounded
        elapsed = time.monotonic() - started
    assert 0.45 <= elapsed < 10
    assert str(caught.value) == f"127.0.0.1:{server.port} accepted the connection but sent no greeting within 0.5 s"
    assert caught.value.address == ("127.0.0.1", server.port)
    assert isinstance(caught.value, ClientError) and isinstance(caught.value, TimeoutError)


def test_a_greeting_trickled_byte_by_byte_cannot_stretch_the_connect_timeout():
    greeting = b"220 lineproto 0.1.0 ready, after a very long wait\r\n"
    with SilentServer(greeting, trickle=0.1) as server:  # ~5 s for the whole greeting
        started = time.monotonic()
        with pytest.raises(ConnectionTimeout):
            Client("127.0.0.1", server.port, connect_timeout=0.5)
        assert time.monotonic() - started < 3


def test_a_reply_that_never_comes_raises_reply_timeout_and_closes():
    with SilentServer(b"220 silent ready\r\n") as server:
        client = Client("127.0.0.1", server.port, timeout=0.5, connect_timeout=5)
        assert client.greeting == Reply(220, ("silent ready",))
        with pytest.raises(ReplyTimeout) as caught:
            client.noop()
        assert str(caught.value) == f"no reply from 127.0.0.1:{server.port} within 0.5 s; connection closed"
        assert isinstance(caught.value, TimeoutError)
        with pytest.raises(OSError):
            client.noop()  # closed: a late reply can never be taken for the next command's


def run_client(*args, stdin=""):
    return subprocess.run(
        [sys.executable, str(ROOT / "client.py"), *args], input=stdin, capture_output=True, text=True, timeout=30
    )


def test_batch_exit_codes(daemon, tmp_path):
    good = tmp_path / "good.txt"
    good.write_text("NOOP\nUSER guest\n\nQUIT\n")
    result = run_client("batch", str(good), "--port", str(daemon.port))
    assert result.returncode == 0
    assert result.stdout.splitlines()[-1] == "221 Goodbye"
    result = run_client("batch", "-", "--port", str(daemon.port), stdin="NOOP\nFROB\n")
    assert result.returncode == 1
    assert "500 Unknown command FROB" in result.stdout


def test_batch_without_daemon_fails_clearly():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run_client("batch", "-", "--port", str(port), stdin="NOOP\n")
    assert result.returncode == 1 and "cannot connect" in result.stderr


def test_raw_shell_prints_replies(daemon):
    result = run_client("raw", "--port", str(daemon.port), stdin="NOOP\nHELP NOOP\nQUIT\n")
    assert result.stdout.splitlines()[:4] == [
        "220 " + result.stdout.splitlines()[0][4:],
        "200 OK",
        "214-NOOP",
        "214 Do nothing; replies 200",
    ]
    assert "221 Goodbye" in result.stdout


def run_daemon(*args, stdin="", cwd=None):
    return subprocess.run(
        [sys.executable, str(ROOT / "daemon.py"), *args],
        input=stdin,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_useradd_writes_a_hash_never_the_password(tmp_path):
    users = tmp_path / "users.txt"
    result = run_daemon(
        "useradd",
        "erin",
        "--name",
        "Erin Reader",
        "--role",
        "reader",
        "--password-stdin",
        "--users",
        str(users),
        stdin="s3cret pass\n",
    )
    assert result.returncode == 0, result.stderr
    text = users.read_text()
    assert "s3cret" not in text
    user = parse_users(text.splitlines())["erin"]
    assert user.real_name == "Erin Reader" and user.roles == {"reader"}
    assert verify_password("s3cret pass", user.password_hash)
    result = run_daemon("useradd", "bad name", "--name", "X", "--password-stdin", "--users", str(users), stdin="x\n")
    assert result.returncode == 2 and "invalid user name" in result.stderr


def test_port_in_use_is_one_clear_line(daemon):
    result = run_daemon("--port", str(daemon.port), "--db", ":memory:")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("daemon.py: cannot listen")


def test_missing_users_file_is_one_clear_line(tmp_path):
    result = run_daemon("--port", "0", "--db", ":memory:", "--users", str(tmp_path / "nope.txt"))
    assert result.returncode == 2 and "users file not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_start_line_and_notify_file(daemon):
    line = daemon.process.stdout.readline().decode()
    assert line.strip() == f"lineproto {__version__} listening on 127.0.0.1:{daemon.port}"
    assert daemon.notify.read_text() == f"127.0.0.1:{daemon.port}\n"


def test_cpu_pinning_option(start_daemon):
    import os

    cpu = min(os.sched_getaffinity(0))
    daemon = start_daemon("--cpu", str(cpu))
    assert os.sched_getaffinity(daemon.process.pid) == {cpu}
    with Client("127.0.0.1", daemon.port) as client:
        assert client.noop().code == 200
    result = run_daemon("--port", "0", "--db", ":memory:", "--cpu", "4096")
    assert result.returncode == 2 and "--cpu 4096" in result.stderr


def test_the_client_docs_example_runs_as_documented(start_daemon, tmp_path):
    """docs/CLIENT.md's runnable example, against a live daemon, prints exactly the output shown under it."""
    text = (ROOT / "docs" / "CLIENT.md").read_text(encoding="utf-8")
    [(example, expected)] = re.findall(r"```python runnable\n(.*?)```.*?```text output\n(.*?)```", text, re.S)
    daemon = start_daemon("--seed", "7", "--roster", str(ROOT / "docs" / "examples" / "roster.csv"), users=True)
    script = tmp_path / "example.py"
    script.write_text(example, encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(ROOT), LINEPROTO_PORT=str(daemon.port))
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == expected
