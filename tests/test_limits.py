"""The per-connection and per-address limits of the Security issue, through the socket."""

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
