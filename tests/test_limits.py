"""The per-connection and per-address limits of the Security issue, through the socket."""

import os
import socket
import time

from conftest import RawConnection, stat


def test_bad_commands_in_a_row_close_the_connection(start_daemon):
    daemon = start_daemon("--max-bad-commands", "3")
    with RawConnection(daemon.port) as raw:
        raw.reply()
        assert raw.command("FROB").code == 500
        assert raw.command("NOOP").code == 200  # a good reply resets the run
        raw.send(b"FROB\r\n12345\r\nNOOP x\r\nNOOP\r\n")
        assert [raw.reply().code for _ in range(4)] == [500, 500, 501, 421]
        assert raw.read_all() == b""  # the NOOP after the third bad line was never answered
    with RawConnection(daemon.port) as raw:
        raw.reply()
        assert stat(raw)["bad-command-closes"] == "1"


def test_one_address_cannot_take_every_slot(start_daemon):
    daemon = start_daemon("--max-per-address", "3")
    held = [RawConnection(daemon.port) for _ in range(3)]
    with RawConnection(daemon.port, source="127.0.0.2") as other:  # another address still gets in
        assert other.reply().code == 220
        for raw in held:
            assert raw.reply().code == 220
        with RawConnection(daemon.port) as fourth:
            reply = fourth.reply()
            assert reply.code == 421 and "too many connections from your address" in reply.lines[0]
        for raw in held:
            raw.close()
        deadline = time.monotonic() + 10
        while stat(other)["connections"] != "1":  # the server has seen the three close
            assert time.monotonic() < deadline
            time.sleep(0.02)
        with RawConnection(daemon.port) as again:  # the slots came back
            assert again.reply().code == 220
        assert stat(other)["refused-per-address"] == "1"


def test_a_connection_that_does_not_log_in_in_time_is_closed(start_daemon):
    daemon = start_daemon("--login-timeout", "0.5")
    with RawConnection(daemon.port) as raw, RawConnection(daemon.port) as guest:
        raw.reply()
        guest.reply()
        assert guest.command("USER guest").code == 230
        started = time.monotonic()
        assert raw.command("NOOP").code == 200  # lines do not extend the login deadline
        reply = raw.reply()
        assert reply.code == 421 and "Not logged in within 0.5 s" in reply.lines[0]
        assert time.monotonic() - started < 5
        assert guest.command("NOOP").code == 200  # a login ends the deadline
        assert stat(guest)["login-timeouts"] == "1"


def test_a_locked_guesser_is_closed_and_logged_once(start_daemon):
    daemon = start_daemon("--account-lock-after", "2", users=True)
    with RawConnection(daemon.port) as raw:
        raw.reply()
        for _ in range(2):
            raw.command("USER carol")
            assert raw.command("PASS wrong").code == 530
        codes = []
        for _ in range(3):
            raw.command("USER carol")
            codes.append(raw.command("PASS wrong").code)
        assert codes == [430, 430, 421]  # five failures on one connection, refused ones included
    log = daemon.wait_log("login locked")
    assert log.count("login locked: the account of carol") == 1


def test_a_held_reply_reaches_a_client_that_half_closed(start_daemon):
    """The 4th failure's reply is held back a second; the client has already shut down writing."""
    daemon = start_daemon("--address-lock-after", "1000", users=True)
    with RawConnection(daemon.port) as raw:
        raw.reply()
        raw.send(b"USER carol\r\nPASS a\r\nUSER carol\r\nPASS b\r\nUSER carol\r\nPASS c\r\nUSER carol\r\nPASS d\r\n")
        raw.sock.shutdown(socket.SHUT_WR)
        codes = [raw.reply().code for _ in range(8)]
        assert codes == [331, 530] * 4
        assert raw.read_all() == b""
    with open(f"/proc/{daemon.process.pid}/stat") as file:
        fields = file.read().split()
    cpu_seconds = (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")
    assert cpu_seconds < 5, f"the daemon used {cpu_seconds:.1f} s of CPU"


def test_an_admin_ends_a_lock_from_another_process(tmp_path, start_daemon):
    import subprocess
    import sys

    from conftest import ROOT

    db = tmp_path / "locks.db"
    daemon = start_daemon("--db", str(db), "--account-lock-after", "2", users=True)
    with RawConnection(daemon.port) as raw:
        raw.reply()
        for password in ("wrong", "wrong again", "secret"):
            raw.command("USER carol")
            last = raw.command(f"PASS {password}")
        assert last.code == 430  # locked: even the right password is refused, without a check
    result = subprocess.run(
        [sys.executable, str(ROOT / "daemon.py"), "unlock", "Carol", "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and result.stdout.startswith("carol:"), result.stderr
    with RawConnection(daemon.port) as raw:
        raw.reply()
        raw.command("USER carol")
        assert raw.command("PASS secret").code == 230


def test_a_megabyte_of_junk_costs_the_log_a_few_escaped_lines(start_daemon):
    daemon = start_daemon()
    before = len(daemon.log())
    with RawConnection(daemon.port) as raw:
        raw.reply()
        try:
            raw.send(b"\x1b[2J\rEVIL\n" * 3 + b"X\n" * (1 << 19))
        except OSError:
            pass  # closed by the bad-command budget while we were still sending
        try:
            raw.read_all()
        except ConnectionResetError:
            pass
    log = daemon.wait_log("refused lines")[before:]
    assert len(log.splitlines()) < 20, log
    assert "\x1b" not in log and "\r" not in log  # no raw control character reaches the operator
    assert "\\x1b[2J" in log  # but the refused line is there, escaped
