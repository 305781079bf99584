"""The Connection's PROXY stage, driven in process (no sockets): header, trust, timeout, the client's address."""

import ipaddress
import logging

import pytest
from test_proxy_wire import v2, v4_addresses

from lineproto.commands import build_services
from lineproto.connection import CLOSE, CLOSING, NEW, PROXY, READY, START_TLS, ConnectionLimits, ServerState
from lineproto.domain.throttle import LoginThrottle, ThrottlePolicy
from lineproto.wire import ReplyParser
from lineproto.wire.proxy import V2_SIGNATURE
from test_connection import codes, user_directory

PROXY_PEER = "127.0.0.1:5000"  # HAProxy on this machine
CLIENT = ("192.0.2.7", 56324)  # the client behind it
V2_HEADER = v2(addresses=v4_addresses(CLIENT[0], "127.0.0.1", CLIENT[1], 36000))
V1_HEADER = f"PROXY TCP4 {CLIENT[0]} 127.0.0.1 {CLIENT[1]} 36000\r\n".encode()
TIMEOUT = 3.0


class ProxiedServer:
    """A ServerState whose listener expects PROXY headers; ``connect`` gives a driven connection."""

    def __init__(self, mode: str = "any", services=None, **limits):
        limits.setdefault("proxy_timeout", TIMEOUT)
        self.mode = mode
        self.state = ServerState(services or build_services(user_directory()), ConnectionLimits(**limits))

    def connect(self, peer: str = PROXY_PEER, secure: bool = False) -> "Client":
        return Client(self.state.connection(peer, secure, self.mode))


class Client:
    """One connection: what it sent (as replies), whether it asked to close."""

    def __init__(self, connection):
        self.connection = connection
        self.parser = ReplyParser()
        self.sent = b""
        self.actions: list = []
        self.now = 0.0

    def take(self, output) -> list:
        data, actions = output
        self.sent += data
        self.actions.extend(actions)
        replies = self.parser.feed(data)
        for action in actions:
            if action is not CLOSE and action is not START_TLS:  # a blocking job: run it now
                replies += self.take(self.connection.complete(action.job(), self.now))
        return replies

    def start(self) -> list:
        return self.take(self.connection.start(self.now))

    def send(self, data: bytes) -> list:
        return self.take(self.connection.receive_data(data, self.now))

    def held(self) -> list:
        """Wait for a reply held back (a failed login's delay): tick at the deadline."""
        replies = []
        while self.connection.deadline is not None and self.connection.state != READY:
            self.now = self.connection.deadline
            replies += self.parser.feed(self.take_raw(self.connection.tick(self.now)))
        return replies

    def take_raw(self, output) -> bytes:
        data, actions = output
        self.sent += data
        self.actions.extend(actions)
        return data

    @property
    def closed(self) -> bool:
        return CLOSE in self.actions


def status(replies) -> dict[str, str]:
    [reply] = [reply for reply in replies if reply.code == 211]
    return dict(line.split(": ", 1) for line in reply.lines[1:-1])


# ---------------------------------------------------------------- the header, then the greeting


@pytest.mark.parametrize("header", [V2_HEADER, V1_HEADER], ids=["v2", "v1"])
def test_nothing_is_sent_before_the_header_then_the_greeting_and_the_client_is_the_peer(header, caplog) -> None:
    caplog.set_level(logging.INFO, "lineproto")
    client = ProxiedServer().connect()
    assert client.start() == [] and client.sent == b""
    assert client.connection.state is PROXY
    for index in range(len(header) - 1):
        assert client.send(header[index : index + 1]) == [] and client.sent == b""
    assert codes(client.send(header[-1:])) == [220]
    assert client.connection.peer == "192.0.2.7:56324"
    assert status(client.send(b"STAT\r\n"))["peer"] == "192.0.2.7:56324"
    version = "v1" if header.startswith(b"PROXY") else "v2"
    assert f"open 192.0.2.7:56324 via {PROXY_PEER} (PROXY {version} PROXY)" in caplog.text


def test_bytes_after_the_header_in_the_same_chunk_are_framed_after_telnet_filtering() -> None:
    client = ProxiedServer("v2").connect()
    client.start()
    replies = client.send(V2_HEADER + b"\xff\xfb\x01NOOP\r\nUSER guest\r\n")  # IAC WILL ECHO, then two lines
    assert codes(replies) == [220, 200, 230]
    assert client.sent.count(b"\xff\xfe\x01") == 1  # the telnet refusal: DONT ECHO


def test_the_v2_signature_holds_quit_but_is_never_a_command() -> None:
    assert b"QUIT\n" in V2_SIGNATURE
    client = ProxiedServer("v2").connect()
    client.start()
    assert codes(client.send(V2_HEADER + b"NOOP\r\n")) == [220, 200]
    assert not client.closed


@pytest.mark.parametrize("header", [v2(command=0, family=0x00), b"PROXY UNKNOWN\r\n"], ids=["v2-LOCAL", "v1-UNKNOWN"])
def test_local_and_unknown_keep_the_real_peer(header, caplog) -> None:
    caplog.set_level(logging.INFO, "lineproto")
    client = ProxiedServer().connect()
    client.start()
    assert codes(client.send(header)) == [220]
    assert status(client.send(b"STAT\r\n"))["peer"] == PROXY_PEER


# ---------------------------------------------------------------- refusals: all closed, nothing said, logged


@pytest.mark.parametrize(
    "mode, data, why",
    [
        ("any", b"USER guest\r\n", "wrong signature"),
        ("v2", V1_HEADER, "not a PROXY v2 header"),
        ("v1", V2_HEADER, "not a PROXY v1 header"),
        ("any", b"PROXY TCP4 192.0.2.999 127.0.0.1 1 2\r\n", "not an IPv4 address"),
        ("any", b"PROXY UNKNOWN " + b"x" * 100, "longer than 107"),
    ],
)
def test_a_bad_header_closes_without_a_word_and_is_logged(mode, data, why, caplog) -> None:
    client = ProxiedServer(mode).connect()
    client.start()
    assert client.send(data) == [] and client.sent == b""
    assert client.closed and client.connection.state is CLOSING
    assert why in caplog.text and PROXY_PEER in caplog.text
    assert client.connection.connection_lost() == ()
    assert client.connection.server.open_connections == 0


def test_no_whole_header_within_the_timeout_closes_without_a_word(caplog) -> None:
    client = ProxiedServer().connect()
    client.start()
    client.send(V2_HEADER[:10])
    assert client.connection.deadline == TIMEOUT
    assert client.connection.tick(TIMEOUT - 0.01) == (b"", ())
    assert client.connection.tick(TIMEOUT) == (b"", (CLOSE,))
    assert f"no whole PROXY header within {TIMEOUT:g} s" in caplog.text


def test_an_untrusted_peer_is_closed_at_once(caplog) -> None:
    server = ProxiedServer()
    client = server.connect("192.0.2.50:4000")
    assert client.start() == [] and client.sent == b"" and client.closed
    assert "not in --proxy-from" in caplog.text
    assert server.state.open_connections == 0


def test_a_peer_of_unknown_address_is_closed_and_logged_as_such(caplog) -> None:
    caplog.set_level(logging.INFO, "lineproto")
    client = ProxiedServer().connect("-")  # the events engine's peer when the socket is gone at once
    assert client.start() == [] and client.closed
    assert "refused a connection of unknown address" in caplog.text and "--proxy-from" not in caplog.text


def test_proxy_from_names_the_trusted_proxies() -> None:
    server = ProxiedServer(proxy_from=(ipaddress.ip_network("192.0.2.0/28"),))
    trusted = server.connect("192.0.2.5:4000")
    trusted.start()
    assert codes(trusted.send(V1_HEADER)) == [220]
    loopback = server.connect("127.0.0.1:4000")  # not in the list given: no longer trusted
    loopback.start()
    assert loopback.closed and loopback.sent == b""


@pytest.mark.parametrize("peer", ["::1:4000", "::ffff:127.0.0.1:4000", "127.8.9.10:4000"])
def test_loopback_is_trusted_by_default(peer) -> None:
    client = ProxiedServer().connect(peer)
    client.start()
    assert codes(client.send(V2_HEADER)) == [220]


def test_eof_or_shutdown_before_the_header_closes_without_a_word() -> None:
    client = ProxiedServer().connect()
    client.start()
    client.send(b"PROXY TCP4 ")
    assert client.connection.receive_eof(0.0) == (b"", (CLOSE,))
    other = ProxiedServer().connect()
    other.start()
    other.connection.server.stop()
    assert other.connection.shutdown(0.0) == (b"", (CLOSE,))


# ---------------------------------------------------------------- the client's address counts everywhere


def test_per_address_admission_counts_the_client_not_the_proxy() -> None:
    server = ProxiedServer(max_per_address=1)
    waiting = server.connect()
    waiting.start()
    assert server.state.open_connections == 0  # not admitted before its header
    first = server.connect()
    first.start()
    assert codes(first.send(V2_HEADER)) == [220]
    other_client = server.connect()
    other_client.start()
    assert codes(other_client.send(v2(addresses=v4_addresses("192.0.2.8", "127.0.0.1", 1, 36000)))) == [220]
    same_client = server.connect()
    same_client.start()
    [refusal] = same_client.send(V2_HEADER)
    assert refusal.code == 421 and "from your address" in refusal.lines[0]
    assert server.state.open_connections == 2
    first.connection.connection_lost()
    again = server.connect()
    again.start()
    assert codes(again.send(V2_HEADER)) == [220]


def test_failed_logins_lock_the_client_address_not_the_proxy() -> None:
    services = build_services(user_directory())
    services.throttle = LoginThrottle(ThrottlePolicy.with_budget(2, 600), ThrottlePolicy.with_budget(100, 600))
    server = ProxiedServer(services=services)
    guesser = server.connect()
    guesser.start()
    guesser.send(V2_HEADER)
    for _ in range(2):
        guesser.send(b"USER dave\r\nPASS wrong\r\n")
        assert 530 in codes(guesser.held())
    replies = guesser.send(b"USER dave\r\nPASS hunter2\r\n") + guesser.held()
    assert codes(replies) == [331, 430]  # this client's address is locked
    neighbour = server.connect()  # another client through the same proxy
    neighbour.start()
    neighbour.send(v2(addresses=v4_addresses("192.0.2.8", "127.0.0.1", 1, 36000)))
    assert codes(neighbour.send(b"USER dave\r\nPASS hunter2\r\n")) == [331, 230]


# ---------------------------------------------------------------- the TLS port: header, then the handshake


def test_on_the_tls_port_the_header_asks_for_the_handshake_then_greets_as_the_client() -> None:
    client = ProxiedServer().connect(secure=True)
    assert client.connection.expects_proxy_header
    assert client.connection.proxy_wanted == 15  # no header is shorter: the bytes after it stay unread
    client.start()
    assert client.send(V2_HEADER) == [] and client.actions == [START_TLS]
    assert client.connection.state is NEW and not client.connection.expects_proxy_header
    assert codes(client.take(client.connection.tls_established(0.0))) == [220]
    assert status(client.send(b"STAT\r\n"))["peer"] == "192.0.2.7:56324"


def test_on_the_tls_port_bytes_read_past_the_header_close_the_connection() -> None:
    client = ProxiedServer().connect(secure=True)
    client.start()
    assert client.send(V2_HEADER + b"\x16\x03\x01") == [] and client.closed
