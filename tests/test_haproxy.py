"""End to end behind a real HAProxy (Debian's haproxy, TCP mode): the daemon sees the client's address.

Each test writes its HAProxy configuration, starts ``haproxy -db`` in front of a daemon on both
engines and always stops it. HAProxy has no notify file: it is ready once its stats socket
answers (it binds every listener before it serves any), polled for at most
:data:`HAPROXY_READY_TIMEOUT` seconds. Polling a frontend port instead would itself be a
proxied connection. The test clients connect from their own loopback addresses (127.0.0.5,
127.0.0.6), so the address the daemon reports can only have come from the PROXY header.
"""

import shutil
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trustme

from conftest import ROOT, RawConnection, stat

sys.path.insert(0, str(ROOT / "scripts"))
from cluster import free_port, haproxy_ask, stop_process, wait_until_haproxy_serves  # HAProxy as make cluster runs it

HAPROXY = shutil.which("haproxy", path="/usr/sbin:/usr/bin:/sbin:/bin")
#: Seconds HAProxy gets to start serving.
HAPROXY_READY_TIMEOUT = 10.0
FRONTEND_HOST = "127.0.0.3"
CLIENT, OTHER_CLIENT = "127.0.0.5", "127.0.0.6"


class HAProxy:
    """``haproxy -db`` with one TCP frontend per backend server line; :attr:`ports` in the same order."""

    def __init__(self, tmp_path: Path, servers: list[str], backend_lines: tuple[str, ...] = ()):
        assert HAPROXY is not None, "no haproxy: apt-get install haproxy (scripts/test-packages.sh does)"
        self.stats = tmp_path / "haproxy.sock"
        self.ports = [free_port(FRONTEND_HOST) for _ in servers]
        sections = []
        backend = "".join(f"    {line}\n" for line in backend_lines)
        for index, (port, server) in enumerate(zip(self.ports, servers, strict=True)):
            sections.append(
                f"frontend front{index}\n"
                f"    bind {FRONTEND_HOST}:{port}\n"
                f"    unique-id-format %ci:%cp\n"
                f"    default_backend back{index}\n"
                f"backend back{index}\n{backend}"
                f"    server daemon {server}\n"
            )
        config = tmp_path / "haproxy.cfg"
        config.write_text(
            "global\n"
            f"    stats socket {self.stats} mode 600 level admin\n"
            "    maxconn 200\n"
            "defaults\n"
            "    mode tcp\n"
            "    timeout connect 5s\n"
            "    timeout client 30s\n"
            "    timeout server 30s\n" + "".join(sections)
        )
        self.log_path = tmp_path / "haproxy.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - open while haproxy runs
        self.process = subprocess.Popen(
            [HAPROXY, "-db", "-f", str(config)], stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        wait_until_haproxy_serves(self.process, self.stats, self.log_path, HAPROXY_READY_TIMEOUT)

    def ask(self, command: str) -> str:
        """One command on HAProxy's stats socket, and its whole answer."""
        return haproxy_ask(self.stats, command)

    def server_status(self) -> str:
        """The status (UP, DOWN, ...) HAProxy's health checks give the daemon, from ``show stat``."""
        header, *rows = self.ask("show stat").strip().splitlines()
        columns = header.lstrip("# ").split(",")
        for row in rows:
            values = dict(zip(columns, row.split(","), strict=False))
            if values["svname"] == "daemon":
                return values["status"]
        raise AssertionError("no daemon server in show stat")

    def stop(self) -> None:
        stop_process(self.process)
        self._log.close()


@pytest.fixture
def haproxy(tmp_path):
    """``haproxy(server_line, ...)`` -> a running :class:`HAProxy`; always stopped after the test."""
    started = []

    def start(*servers: str, backend_lines: tuple[str, ...] = ()) -> HAProxy:
        proxy = HAProxy(tmp_path, list(servers), backend_lines)
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


def through(proxy: HAProxy, source: str = CLIENT, index: int = 0) -> RawConnection:
    """A line connection to the frontend from ``source``, its greeting read."""
    connection = RawConnection(proxy.ports[index], host=FRONTEND_HOST, source=source)
    assert connection.reply().code == 220
    return connection


def local_port(connection: RawConnection) -> int:
    return connection.sock.getsockname()[1]


@pytest.mark.parametrize(
    "mode, server_options", [("v2", "send-proxy-v2 proxy-v2-options crc32c,unique-id"), ("v1", "send-proxy")]
)
def test_behind_haproxy_the_daemon_sees_the_clients_address(start_daemon, haproxy, mode, server_options):
    daemon = start_daemon("--proxy-protocol", mode, users=True)
    proxy = haproxy(f"127.0.0.1:{daemon.port} {server_options}")
    client = through(proxy)
    peer = f"{CLIENT}:{local_port(client)}"
    assert stat(client)["peer"] == peer
    client.command("USER dave")
    assert client.command("PASS hunter2").code == 230
    assert client.command("BET RED 10").code == 200
    assert client.command("QUIT").code == 221
    client.sock.close()  # HAProxy then closes its side to the daemon, which logs the close
    log = daemon.wait_log(f"close {peer}")
    assert f"open {peer} via 127.0.0.1:" in log and f"(PROXY {mode} PROXY)" in log
    assert f"login dave from {peer}" in log


def test_per_address_limits_count_the_client_behind_haproxy(start_daemon, haproxy):
    daemon = start_daemon("--proxy-protocol", "v2", "--max-per-address", "1")
    proxy = haproxy(f"127.0.0.1:{daemon.port} send-proxy-v2")
    first = through(proxy, CLIENT)
    second = RawConnection(proxy.ports[0], host=FRONTEND_HOST, source=CLIENT)
    refusal = second.reply()
    assert refusal.code == 421 and "from your address" in refusal.lines[0]
    other = through(proxy, OTHER_CLIENT)  # the same proxy, another client: its own count
    assert stat(other)["peer"].startswith(f"{OTHER_CLIENT}:")
    assert int(stat(first)["refused-per-address"]) == 1
    daemon.wait_log(f"refused {CLIENT}:{local_port(second)}: too many connections from your address")


def test_haproxys_v2_health_checks_are_local_read_the_greeting_and_keep_the_real_peer(start_daemon, haproxy):
    daemon = start_daemon("--proxy-protocol", "v2")
    proxy = haproxy(
        f"127.0.0.1:{daemon.port} send-proxy-v2 check check-send-proxy inter 100ms rise 1",
        backend_lines=("option tcp-check", "tcp-check expect string 220"),  # up once it reads the greeting
    )
    deadline = time.monotonic() + HAPROXY_READY_TIMEOUT
    while (status := proxy.server_status()) != "UP":
        assert time.monotonic() < deadline, f"the daemon is {status} to HAProxy's checks:\n{daemon.log()}"
        time.sleep(0.05)
    log = daemon.wait_log("(PROXY v2 LOCAL)")
    line = next(line for line in log.splitlines() if "(PROXY v2 LOCAL)" in line)
    assert " open 127.0.0.1:" in line and " via 127.0.0.1:" in line


def test_the_tls_port_behind_haproxy_gets_the_header_before_the_handshake(start_daemon, haproxy, tmp_path):
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    issued.private_key_pem.write_to_path(str(key))
    cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    daemon = start_daemon(
        "--cert", str(cert), "--key", str(key), "--tls-port", "0", "--tls-proxy-protocol", "v2", users=True
    )
    proxy = haproxy(f"127.0.0.1:{daemon.tls_port} send-proxy-v2")
    context = ssl.create_default_context()
    ca.configure_trust(context)
    raw = socket.create_connection((FRONTEND_HOST, proxy.ports[0]), timeout=30, source_address=(CLIENT, 0))
    with context.wrap_socket(raw, server_hostname="localhost") as sock:
        client = RawConnection.over(sock)
        assert client.reply().code == 220
        status = stat(client)
        assert status["peer"] == f"{CLIENT}:{sock.getsockname()[1]}"
        assert int(status["tls-handshakes"]) == 1
        client.command("USER dave")
        assert client.command("PASS hunter2").code == 230


# ---------------------------------------------------------------- the same daemon, reached without the proxy


class MemoryTls:
    """A TLS client driven through memory BIOs, so the test decides what goes in which send."""

    def __init__(self, sock: socket.socket, context: ssl.SSLContext):
        self.sock = sock
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_hostname="localhost")

    def client_hello(self) -> bytes:
        with pytest.raises(ssl.SSLWantReadError):
            self.tls.do_handshake()
        return self.outgoing.read()

    def finish_handshake(self) -> None:
        while True:
            try:
                self.tls.do_handshake()
            except ssl.SSLWantReadError:
                self._flush()
                self._fill()
                continue
            self._flush()
            return

    def read_until(self, end: bytes) -> bytes:
        data = b""
        while end not in data:
            try:
                data += self.tls.read()
            except ssl.SSLWantReadError:
                self._fill()
        return data

    def send(self, data: bytes) -> None:
        self.tls.write(data)
        self._flush()

    def _flush(self) -> None:
        pending = self.outgoing.read()
        if pending:
            self.sock.sendall(pending)

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("closed by the daemon")
        self.incoming.write(data)


def test_a_header_and_the_client_hello_in_one_segment_both_reach_their_layer(start_daemon, tmp_path, engine):
    """On each event loop the engine runs on (uvloop and asyncio read a transport differently)."""
    ca = trustme.CA()
    issued = ca.issue_cert("localhost")
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    issued.private_key_pem.write_to_path(str(key))
    cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    context = ssl.create_default_context()
    ca.configure_trust(context)
    for loop in ["auto", "asyncio"] if engine == "events" else ["auto"]:
        daemon = start_daemon(
            "--cert", str(cert), "--key", str(key), "--tls-port", "0", "--tls-proxy-protocol", "any", "--loop", loop
        )
        with socket.create_connection(("127.0.0.1", daemon.tls_port), timeout=30) as sock:
            client = MemoryTls(sock, context)
            sock.sendall(b"PROXY TCP4 192.0.2.7 127.0.0.1 4242 36000\r\n" + client.client_hello())  # one send
            client.finish_handshake()
            assert client.read_until(b"\r\n").startswith(b"220 "), loop
            client.send(b"STAT\r\n")
            assert b"211-peer: 192.0.2.7:4242\r\n" in client.read_until(b"211 End of status\r\n"), loop
        assert daemon.stop() == 0


def test_without_a_header_or_from_an_untrusted_address_the_daemon_says_nothing_and_closes(start_daemon):
    daemon = start_daemon("--proxy-protocol", "any", "--proxy-from", "127.0.0.1/32,::1")
    headless = RawConnection(daemon.port)  # trusted, but talks before sending a header
    headless.send(b"USER guest\r\n")
    assert headless.read_all() == b""
    daemon.wait_log("closed: not a PROXY header (wrong signature)")
    untrusted = RawConnection(daemon.port, source=CLIENT)  # loopback, but not in --proxy-from
    untrusted.send(b"PROXY TCP4 192.0.2.7 127.0.0.1 1 2\r\n")
    assert untrusted.read_all() == b""
    daemon.wait_log(f"refused {CLIENT}:{local_port(untrusted)}: a PROXY header is expected")
    trusted = RawConnection(daemon.port)
    trusted.send(b"PROXY TCP4 192.0.2.7 127.0.0.1 4242 36000\r\nSTAT\r\n")
    assert trusted.reply().code == 220
    assert "peer: 192.0.2.7:4242" in trusted.reply().lines


# ---------------------------------------------------------------- the command line


@pytest.mark.parametrize(
    "args, message",
    [
        (["--proxy-from", "10.0.0.0/33"], "--proxy-from: not an address or CIDR network: '10.0.0.0/33'"),
        (["--proxy-from", "127.0.0.1,"], "--proxy-from: not an address or CIDR network: ''"),
        (["--proxy-protocol", "v3"], "--proxy-protocol: invalid choice: 'v3'"),
        (["--tls-proxy-protocol", "v2"], "--tls-proxy-protocol needs a TLS port (--tls-port)"),
    ],
)
def test_proxy_option_mistakes_are_one_line_and_exit_2(tmp_path, args, message):
    done = subprocess.run(
        [sys.executable, str(ROOT / "daemon.py"), "--db", str(tmp_path / "db"), "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    assert message in line
    assert not (tmp_path / "db").exists()  # refused before the database is created


def test_behind_haproxy_a_seated_session_gets_the_tables_events(start_daemon, haproxy):
    """The session made for the client's address behind the PROXY header gets the connection's event sink:
    without it a table behind HAProxy sent no 610-650 to anyone (found by tests/test_cluster.py)."""
    from test_tables import Player

    daemon = start_daemon("--proxy-protocol", "v2")
    proxy = haproxy(f"127.0.0.1:{daemon.port} send-proxy-v2")
    with (
        Player(proxy.ports[0], host=FRONTEND_HOST, source=CLIENT) as first,
        Player(proxy.ports[0], host=FRONTEND_HOST, source=OTHER_CLIENT) as second,
    ):
        assert first.command("JOIN main").code == 200
        assert second.command("JOIN main").code == 200
        assert first.event(640).text.endswith(" joined main (2 seated)")
        assert second.command("CHAT hello from behind the proxy").code == 200
        assert first.event(650).text.endswith(": hello from behind the proxy")
