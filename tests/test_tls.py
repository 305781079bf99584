"""TLS: AUTH TLS the FTP way (RFC 4217), the TLS port, --require-tls, reload on SIGHUP.

Certificates come from trustme (a test extra); none are committed.
"""

import ftplib
import signal
import socket
import ssl
import time

import pytest
import trustme

from conftest import RawConnection, stat


@pytest.fixture
def certificate(tmp_path):
    """A CA and a server certificate for 127.0.0.1 and localhost, as PEM files."""
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    server.private_key_pem.write_to_path(str(key))
    cert.write_bytes(b"".join(blob.bytes() for blob in server.cert_chain_pems))
    return ca, str(cert), str(key)


def client_context(ca) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def test_ftplib_logs_in_over_auth_tls_and_plays_a_round(start_daemon, certificate):
    ca, cert, key = certificate
    daemon = start_daemon("--cert", cert, "--key", key, users=True)
    ftp = ftplib.FTP_TLS(context=client_context(ca), timeout=30)
    ftp.connect("127.0.0.1", daemon.port)
    assert ftp.auth().startswith("234")
    assert isinstance(ftp.sock, ssl.SSLSocket) and ftp.sock.version() in ("TLSv1.2", "TLSv1.3")
    assert ftp.login("dave", "hunter2").startswith("230")
    assert ftp.sendcmd("BET RED 10").startswith("200 Bet RED for 10")
    assert ftp.sendcmd("SPIN").startswith("250")
    assert ftp.quit().startswith("221")


def test_the_tls_port_starts_with_the_handshake(start_daemon, certificate):
    ca, cert, key = certificate
    daemon = start_daemon("--cert", cert, "--key", key, "--tls-port", "0", users=True)
    raw = socket.create_connection(("127.0.0.1", daemon.tls_port), timeout=30)
    with client_context(ca).wrap_socket(raw, server_hostname="127.0.0.1") as sock:
        line = RawConnection.over(sock)
        assert line.reply().code == 220
        line.command("USER dave")
        assert line.command("PASS hunter2").code == 230
        assert line.command("BET RED 10").code == 200
        assert line.command("SPIN").code == 250
        assert int(stat(line)["tls-handshakes"]) >= 1


def test_lines_pipelined_after_auth_tls_are_never_run(start_daemon, certificate):
    ca, cert, key = certificate
    daemon = start_daemon("--cert", cert, "--key", key, users=True)
    raw = socket.create_connection(("127.0.0.1", daemon.port), timeout=30)
    plain = RawConnection.over(raw)  # a line reader over the plain socket until the upgrade
    assert plain.reply().code == 220
    raw.sendall(b"AUTH TLS\r\nUSER dave\r\nPASS hunter2\r\nBET RED 10\r\n")
    assert plain.reply().code == 234
    assert plain.ready == []  # nothing answered after the 234
    with client_context(ca).wrap_socket(raw, server_hostname="127.0.0.1") as sock:
        line = RawConnection.over(sock)
        assert stat(line)["user"] == "-"  # the injected login did not happen
        line.command("USER dave")
        assert line.command("PASS hunter2").code == 230
        state = stat(line)
        assert state["open-bets"] == "0" and state["bankroll"] == "1000"


def test_a_failed_handshake_closes_and_is_counted(start_daemon, certificate):
    _, cert, key = certificate
    daemon = start_daemon("--cert", cert, "--key", key)
    with RawConnection(daemon.port) as raw:
        raw.reply()
        assert raw.command("AUTH TLS").code == 234
        raw.send(b"USER guest\r\nthis is not a TLS client hello\r\n" * 20)
        try:
            assert raw.read_all() == b""  # closed, nothing said in plaintext
        except ConnectionResetError:
            pass  # or reset: the garbage was never read

    with RawConnection(daemon.port) as raw:
        raw.reply()
        # The failed TLS socket closes as the handshake fails, just before the count: poll for it.
        deadline = time.monotonic() + 10
        while (failures := stat(raw)["tls-handshake-failures"]) == "0" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert failures == "1"


def test_without_a_certificate_auth_is_not_offered(shared):
    with RawConnection(shared.port) as raw:
        raw.reply()
        assert "AUTH" not in raw.command("HELP").text
        assert raw.command("AUTH TLS").code == 502


def test_auth_refuses_other_mechanisms_and_a_logged_in_session(start_daemon, certificate):
    _, cert, key = certificate
    daemon = start_daemon("--cert", cert, "--key", key)
    with RawConnection(daemon.port) as raw:
        raw.reply()
        assert "AUTH <mechanism>" in raw.command("HELP").text
        assert raw.command("AUTH GSSAPI").code == 504
        raw.command("USER guest")
        assert raw.command("AUTH TLS").code == 503
        assert raw.command("NOOP").code == 200


def non_loopback_address() -> str:
    """This machine's address on its default route (a peer from it is not loopback)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the route
        return probe.getsockname()[0]
    finally:
        probe.close()


def test_require_tls_refuses_plaintext_logins_from_other_machines(start_daemon, certificate):
    ca, cert, key = certificate
    address = non_loopback_address()
    assert not address.startswith("127."), "this test needs a non-loopback address on the machine"
    daemon = start_daemon("--host", "0.0.0.0", "--cert", cert, "--key", key, "--require-tls", users=True)
    with RawConnection(daemon.port, host=address) as raw:
        raw.reply()
        assert raw.command("NOOP").code == 200
        assert raw.command("USER dave").code == 522
        assert "AUTH TLS" in raw.command("PASS hunter2").lines[0]
        assert raw.command("AUTH TLS").code == 234
        context = client_context(ca)
        context.check_hostname = False  # the certificate names 127.0.0.1, we came by another address
        with context.wrap_socket(raw.sock, server_hostname=address) as sock:
            line = RawConnection.over(sock)
            line.command("USER dave")
            assert line.command("PASS hunter2").code == 230
    with RawConnection(daemon.port) as loopback:  # on loopback, nothing leaves the machine
        loopback.reply()
        loopback.command("USER dave")
        assert loopback.command("PASS hunter2").code == 230


def test_sighup_reloads_the_certificate_and_keeps_sessions(start_daemon, certificate, tmp_path):
    ca, cert, key = certificate
    daemon = start_daemon("--cert", cert, "--key", key, "--tls-port", "0")
    raw = socket.create_connection(("127.0.0.1", daemon.tls_port), timeout=30)
    with client_context(ca).wrap_socket(raw, server_hostname="127.0.0.1") as old_session:
        old = RawConnection.over(old_session)
        assert old.reply().code == 220
        new_ca = trustme.CA()
        issued = new_ca.issue_cert("127.0.0.1")
        issued.private_key_pem.write_to_path(key)
        with open(cert, "wb") as file:
            file.write(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
        daemon.process.send_signal(signal.SIGHUP)
        daemon.wait_log("TLS certificate")
        assert "reloaded" in daemon.log()
        fresh = socket.create_connection(("127.0.0.1", daemon.tls_port), timeout=30)
        with client_context(new_ca).wrap_socket(fresh, server_hostname="127.0.0.1") as sock:
            assert RawConnection.over(sock).reply().code == 220
        assert old.command("NOOP").code == 200  # the session from before the reload goes on


def test_the_client_library_speaks_both_tls_ways_and_verifies_the_host(start_daemon, certificate, tmp_path):
    from lineproto.client import Client

    ca, cert, key = certificate
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    daemon = start_daemon("--cert", cert, "--key", key, "--tls-port", "0", users=True)
    with Client("127.0.0.1", daemon.port, tls="auth", cafile=str(ca_file)) as client:
        assert client.secure
        client.login("dave", "hunter2")
        assert client.bet("RED", 10).amount == 10
    with Client("127.0.0.1", daemon.tls_port, tls="implicit", cafile=str(ca_file)) as client:
        assert client.secure and client.greeting.code == 220
        client.login("dave", "hunter2")
        client.spin()
    with pytest.raises(ssl.SSLCertVerificationError):  # not signed by a CA the client trusts
        Client("127.0.0.1", daemon.tls_port, tls="implicit")
    other = ca.issue_cert("other.example")  # a good certificate, for another host
    other.private_key_pem.write_to_path(str(tmp_path / "other.key"))
    (tmp_path / "other.pem").write_bytes(b"".join(blob.bytes() for blob in other.cert_chain_pems))
    elsewhere = start_daemon("--cert", str(tmp_path / "other.pem"), "--key", str(tmp_path / "other.key"))
    with pytest.raises(ssl.SSLCertVerificationError, match=r"IP address mismatch|doesn't match"):
        Client("127.0.0.1", elsewhere.port, tls="auth", cafile=str(ca_file))


def test_many_tls_port_handshakes_in_a_row_all_complete(start_daemon, certificate):
    """uvloop's start_tls on a just-accepted transport lost the ClientHello now and then (under load
    1 handshake in 10 hung); the events engine's TLS port now lets the loop do the handshake."""
    ca, cert, key = certificate
    daemon = start_daemon("--cert", cert, "--key", key, "--tls-port", "0")
    context = client_context(ca)
    for _ in range(40):
        raw = socket.create_connection(("127.0.0.1", daemon.tls_port), timeout=30)
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
            assert RawConnection.over(sock).reply().code == 220
