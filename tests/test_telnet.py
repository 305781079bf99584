"""Telnet: the filter (unit and property tests), framing after it, the Connection, the socket, real telnet.

What a telnet user sees: Ctrl+C makes the client send ``IAC IP IAC DO TIMING-MARK`` and hide all
output until the mark comes back, so the server must answer it, in order, and only the options it
supports (none but the timing mark).
"""

import os
import select
import shutil
import socket
import subprocess
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import RawConnection
from lineproto.wire import InvalidUtf8, LineReader, LineTooLong, ReplyParser, TelnetFilter
from lineproto.wire.limits import MAX_TELNET_ANSWER_BYTES
from lineproto.wire.telnet import (
    AO,
    AYT,
    AYT_ANSWER,
    BRK,
    DO,
    DONT,
    EL,
    IAC,
    INTERRUPT,
    IP,
    NOP,
    SB,
    SE,
    TIMING_MARK,
    WILL,
    WONT,
    Answer,
)
from test_connection import IDLE, codes, started

CTRL_C = bytes([IAC, IP, IAC, DO, TIMING_MARK])  # what telnet sends for Ctrl+C (intr char, autoflush on)
WILL_TM = bytes([IAC, WILL, TIMING_MARK])


def data_of(pieces) -> bytes:
    return b"".join(piece for piece in pieces if piece.__class__ is bytes)


def answers_of(pieces) -> bytes:
    return b"".join(piece.data for piece in pieces if isinstance(piece, Answer))


# ------------------------------------------------------------------ the filter: stripping


def test_telnet_options_are_stripped_and_refused():
    data = bytes([IAC, WILL, 1, IAC, DO, 3]) + b"NO" + bytes([IAC, NOP]) + b"OP"
    pieces = TelnetFilter().feed(data)
    assert data_of(pieces) == b"NOOP"
    assert pieces[0] == Answer(bytes([IAC, DONT, 1, IAC, WONT, 3]))


def test_plain_data_passes_unchanged():
    assert TelnetFilter().feed(b"NOOP\r\n") == [b"NOOP\r\n"]


def test_escaped_iac_is_data():
    assert TelnetFilter().feed(bytes([IAC, IAC])) == [b"\xff"]


def test_subnegotiation_is_stripped_even_across_chunks():
    telnet = TelnetFilter()
    pieces = telnet.feed(b"A" + bytes([IAC, SB, 24, 0]) + b"xterm")
    pieces += telnet.feed(bytes([IAC, IAC, IAC, SE]) + b"B")
    assert pieces == [b"A", b"B"]


def test_overlong_subnegotiation_is_abandoned():
    telnet = TelnetFilter(max_subnegotiation=256)
    garbage = bytes([IAC, SB]) + b"x" * 300 + b"\nNOOP\n"
    out = data_of(telnet.feed(garbage))
    assert out.endswith(b"\nNOOP\n")
    assert out.count(b"x") == 300 - 257  # the 257th byte ends it


# ------------------------------------------------------------------ the filter: answers


def test_timing_mark_is_answered_every_time_in_stream_order():
    telnet = TelnetFilter()
    pieces = telnet.feed(b"A\n" + CTRL_C + b"B\n" + bytes([IAC, DO, TIMING_MARK]))
    assert pieces == [b"A\n", INTERRUPT, Answer(WILL_TM), b"B\n", Answer(WILL_TM)]
    assert telnet.feed(bytes([IAC, DO, TIMING_MARK])) == [Answer(WILL_TM)]


def test_a_request_split_across_chunks_is_answered():
    telnet = TelnetFilter()
    assert telnet.feed(bytes([IAC])) == []
    assert telnet.feed(bytes([DO])) == []
    assert telnet.feed(bytes([TIMING_MARK]) + b"NOOP") == [Answer(WILL_TM), b"NOOP"]


def test_wont_and_dont_are_never_answered():
    telnet = TelnetFilter()
    requests = b"".join(bytes([IAC, verb, option]) for verb in (WONT, DONT) for option in range(256))
    assert telnet.feed(requests) == []


def test_a_refusal_is_sent_once_until_the_peer_changes_its_mind():
    telnet = TelnetFilter()
    will_echo, do_sga = bytes([IAC, WILL, 1]), bytes([IAC, DO, 3])
    assert answers_of(telnet.feed(will_echo + do_sga)) == bytes([IAC, DONT, 1, IAC, WONT, 3])
    assert telnet.feed(will_echo * 50 + do_sga * 50) == []  # repeated requests: no loop
    assert telnet.feed(bytes([IAC, WONT, 1, IAC, DONT, 3])) == []  # the peer now says no itself
    assert answers_of(telnet.feed(will_echo + do_sga)) == bytes([IAC, DONT, 1, IAC, WONT, 3])


def test_the_peer_offering_timing_mark_is_refused_like_any_option():
    assert TelnetFilter().feed(bytes([IAC, WILL, TIMING_MARK])) == [Answer(bytes([IAC, DONT, TIMING_MARK]))]


@pytest.mark.parametrize("command", [IP, BRK, EL])
def test_interrupts_are_pieces_in_order(command):
    assert TelnetFilter().feed(b"BET RED" + bytes([IAC, command]) + b"NOOP\n") == [b"BET RED", INTERRUPT, b"NOOP\n"]


def test_are_you_there_gets_a_visible_line_and_abort_output_nothing():
    assert TelnetFilter().feed(bytes([IAC, AYT, IAC, AO]) + b"x") == [Answer(AYT_ANSWER), b"x"]


def test_a_flood_is_answered_up_to_the_budget_per_chunk():
    telnet = TelnetFilter()
    pieces = telnet.feed(bytes([IAC, DO, TIMING_MARK]) * 10_000 + bytes([IAC, AYT]) * 10_000 + b"NOOP\n")
    assert answers_of(pieces) == WILL_TM * (MAX_TELNET_ANSWER_BYTES // 3)
    assert data_of(pieces) == b"NOOP\n"
    assert answers_of(telnet.feed(bytes([IAC, DO, TIMING_MARK]))) == WILL_TM  # the next chunk has a new budget


def test_a_refusal_over_the_budget_is_answered_when_asked_again():
    telnet = TelnetFilter()
    every_will = b"".join(bytes([IAC, WILL, option]) for option in range(256))
    first = answers_of(telnet.feed(every_will))
    assert first == b"".join(bytes([IAC, DONT, option]) for option in range(MAX_TELNET_ANSWER_BYTES // 3))
    second = answers_of(telnet.feed(every_will))  # the rest, up to the budget again
    assert second[:3] == bytes([IAC, DONT, MAX_TELNET_ANSWER_BYTES // 3])


# ------------------------------------------------------------------ the filter: properties

telnet_commands = st.one_of(
    st.tuples(st.sampled_from([WILL, WONT, DO, DONT]), st.integers(0, 255)).map(lambda c: bytes([IAC, *c])),
    st.integers(241, 249).map(lambda c: bytes([IAC, c])),  # two-byte commands: NOP .. GA
    st.binary(max_size=40).map(lambda b: bytes([IAC, SB]) + b.replace(b"\xff", b"\xff\xff") + bytes([IAC, SE])),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.binary(max_size=30), st.lists(telnet_commands, max_size=4))), st.data())
def test_data_bytes_survive_any_negotiation_and_any_chunking(segments, draw):
    data = b"".join(text for text, _ in segments)
    stream = b"".join(text.replace(b"\xff", b"\xff\xff") + b"".join(commands) for text, commands in segments)
    cuts = sorted(draw.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    telnet = TelnetFilter()
    out = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        out += telnet.feed(stream[start:end])
    assert data_of(out) == data


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=600), max_size=8))
def test_any_input_never_crashes_and_answers_stay_bounded(chunks):
    telnet = TelnetFilter()
    for chunk in chunks:
        pieces = telnet.feed(chunk)
        assert all(piece.__class__ is bytes or isinstance(piece, Answer) or piece is INTERRUPT for piece in pieces)
        answers = answers_of(pieces)
        assert len(answers) <= MAX_TELNET_ANSWER_BYTES
        assert len(data_of(pieces)) <= len(chunk)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([WILL, WONT, DO, DONT]), st.integers(0, 255)), max_size=300))
def test_each_request_is_answered_once_per_change_of_mind(requests):
    """The rule as a model: refuse a request once; the peer's own WONT/DONT makes the next one new."""
    refused, expected = set(), b""
    for verb, option in requests:
        if (verb, option) == (DO, TIMING_MARK):
            expected += WILL_TM
        elif verb in (DO, WILL):
            if (verb, option) not in refused:
                refused.add((verb, option))
                expected += bytes([IAC, WONT if verb == DO else DONT, option])
        else:
            refused.discard((DO if verb == DONT else WILL, option))
    stream = b"".join(bytes([IAC, verb, option]) for verb, option in requests)
    assert answers_of(TelnetFilter(max_answer=10**9).feed(stream)) == expected


# ------------------------------------------------------------------ framing after the filter


def test_interrupt_discards_the_partial_line_only():
    reader = LineReader()
    assert reader.feed(b"NOOP\nBET RE") == ["NOOP"]
    assert reader.feed(bytes([IAC, IP])) == []
    assert reader.feed(b"STAT\r\n") == ["STAT"]


def test_interrupt_ends_an_overlong_line():
    reader = LineReader(max_line=64)
    assert reader.feed(b"x" * 500) == [LineTooLong(64)]
    assert reader.feed(bytes([IAC, IP]) + b"NOOP\n") == ["NOOP"]


def test_answers_are_events_between_the_lines():
    assert LineReader().feed(b"A\n" + CTRL_C + b"B\n") == ["A", Answer(WILL_TM), "B"]


def test_escaped_iac_in_the_last_unterminated_line_is_kept():
    reader = LineReader()
    assert reader.feed(b"NOOP" + bytes([IAC, IAC])) == []
    assert reader.finish() == [InvalidUtf8(b"NOOP\xff")]


def test_the_reply_parser_skips_telnet_answers_even_split():
    stream = (
        bytes([IAC, DONT, 31]) + b"200 NOOP ok\r\n" + WILL_TM + b"214-Help\r\n" + bytes([IAC, WONT, 1]) + b"214 End\r\n"
    )
    parser = ReplyParser()
    replies = [reply for byte in stream for reply in parser.feed(bytes([byte]))]
    assert [(reply.code, reply.lines) for reply in replies] == [(200, ("NOOP ok",)), (214, ("Help", "End"))]


# ------------------------------------------------------------------ the Connection, in process


def raw_send(driver, data: bytes) -> bytes:
    """What the connection sends for ``data`` (telnet answers included, so no reply parsing)."""
    return driver.handle(driver.connection.receive_data(data, driver.now))


def test_ctrl_c_is_answered_at_once_and_the_next_reply_follows():
    driver = started()
    assert raw_send(driver, CTRL_C) == WILL_TM  # no line complete: it still goes out now
    assert raw_send(driver, b"NOOP\r\n").startswith(b"200 ")


def test_the_mark_follows_the_replies_to_earlier_lines():
    driver = started()
    sent = raw_send(driver, b"NOOP\r\n" + CTRL_C + b"NOOP\r\n")
    first, rest = sent.split(WILL_TM)
    assert codes(ReplyParser().feed(first)) == [200] and codes(ReplyParser().feed(rest)) == [200]


def test_the_mark_waits_for_a_running_command():
    driver = started(hold_jobs=True)
    sent = raw_send(driver, b"USER carol\r\nPASS secret\r\n" + CTRL_C + b"NOOP\r\n")
    assert codes(ReplyParser().feed(sent)) == [331]  # PASS runs: nothing after it is answered yet
    action = driver.held.pop(0)
    sent = driver.handle(driver.connection.complete(action.job(), driver.now))
    login, rest = sent.split(WILL_TM)
    assert codes(ReplyParser().feed(login)) == [230] and codes(ReplyParser().feed(rest)) == [200]


def test_ctrl_c_discards_the_partial_line():
    driver = started()
    assert raw_send(driver, b"BET RED 10") == b""
    sent = raw_send(driver, CTRL_C + b"NOOP\r\n")
    assert sent.startswith(WILL_TM)
    assert codes(ReplyParser().feed(sent[len(WILL_TM) :])) == [200]  # not "BET RED 10NOOP"


def test_are_you_there_is_answered_between_replies():
    driver = started()
    sent = raw_send(driver, b"NOOP\r\n" + bytes([IAC, AYT]) + b"NOOP\r\n")
    first, rest = sent.split(AYT_ANSWER)
    assert codes(ReplyParser().feed(first)) == [200] and codes(ReplyParser().feed(rest)) == [200]


def test_an_answered_request_counts_as_a_line_for_the_idle_timeout():
    driver = started()
    driver.now = 6.0
    assert raw_send(driver, bytes([IAC, NOP, IAC, WONT, 1])) == b""  # nothing to answer: not a line
    assert driver.connection.deadline == IDLE
    assert raw_send(driver, bytes([IAC, DO, TIMING_MARK])) == WILL_TM
    assert driver.connection.deadline == 6.0 + IDLE


# ------------------------------------------------------------------ through the socket, both engines


def read_until(sock: socket.socket, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before {marker!r}; got {data!r}")
        data += chunk
    return data


def test_ctrl_c_then_a_command_over_the_socket(start_daemon):
    daemon = start_daemon()
    with RawConnection(daemon.port) as raw:
        assert raw.reply().code == 220
        raw.send(CTRL_C + b"NOOP\r\n")
        data = read_until(raw.sock, b"\r\n")
        assert data.startswith(WILL_TM)
        assert codes(ReplyParser().feed(data[len(WILL_TM) :])) == [200]


def test_telnet_negotiation_is_stripped_and_refused(start_daemon):
    daemon = start_daemon()
    with RawConnection(daemon.port) as raw:
        assert raw.reply().code == 220
        raw.send(b"\xff\xfb\x1f\xff\xfd\x01\xff\xfa\x18\x00xterm\xff\xf0NO\xff\xf1OP\r\n")  # NAWS, ECHO, TTYPE
        data = read_until(raw.sock, b"\r\n")
        refusals = bytes([IAC, DONT, 31, IAC, WONT, 1])
        assert data.startswith(refusals)
        assert codes(ReplyParser().feed(data[len(refusals) :])) == [200]


def test_a_negotiation_flood_gets_each_refusal_once(start_daemon):
    daemon = start_daemon()
    every_request = b"".join(
        bytes([IAC, verb, option])
        for verb in (WILL, DO)
        for option in range(256)
        if (verb, option) != (DO, TIMING_MARK)
    )
    with RawConnection(daemon.port) as raw:
        assert raw.reply().code == 220
        raw.send(every_request * 100 + b"NOOP\r\n")
        data = read_until(raw.sock, b"\r\n")
    answers, reply = data[: data.index(b"200 ")], data[data.index(b"200 ") :]
    assert answers.startswith(bytes([IAC, DONT, 0]))  # the first request is always answered
    refusals = [answers[i : i + 3] for i in range(0, len(answers), 3)]
    assert all(r[0] == IAC and r[1] in (DONT, WONT) for r in refusals) and len(answers) % 3 == 0
    assert len(refusals) == len(set(refusals))  # at most once each: at most 1533 bytes for 153 KB sent
    assert codes(ReplyParser().feed(reply)) == [200]


# ------------------------------------------------------------------ a real telnet client through a pty

TELNET = shutil.which("telnet")
SETSID = shutil.which("setsid")


class PtyTelnet:
    """``telnet 127.0.0.1 PORT`` on a pseudo-terminal that is its controlling tty (so ^C is its SIGINT)."""

    def __init__(self, port: int):
        master, slave = os.openpty()
        self.master = master
        # setsid --ctty: a new session whose controlling terminal is the pty, like a login shell's
        self.process = subprocess.Popen(
            [SETSID, "--ctty", TELNET, "127.0.0.1", str(port)], stdin=slave, stdout=slave, stderr=slave, close_fds=True
        )
        os.close(slave)
        self.seen = b""

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def read_until(self, marker: bytes, timeout: float = 20.0) -> bytes:
        """The terminal's output up to ``marker``, or up to the end (telnet exited) if it never comes."""
        deadline = time.monotonic() + timeout
        while marker not in self.seen:
            ready, _, _ = select.select([self.master], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise AssertionError(f"telnet did not show {marker!r} in {timeout}s; screen: {self.seen!r}")
            try:
                chunk = os.read(self.master, 4096)
            except OSError:  # EIO: telnet exited and closed the terminal
                chunk = b""
            if not chunk:
                break
            self.seen += chunk
        return self.seen

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        os.close(self.master)


def test_real_telnet_shows_replies_after_ctrl_c(start_daemon):
    # make test installs it (scripts/test-packages.sh); a missing client is a failure, not a skip
    assert TELNET is not None and SETSID is not None, "no telnet client: apt-get install inetutils-telnet"
    daemon = start_daemon()
    telnet = PtyTelnet(daemon.port)
    try:
        before = len(telnet.read_until(b"220 lineproto"))
        # ^C is the tty's intr char: telnet sends IAC IP IAC DO TIMING-MARK and hides all output
        # until the mark comes back (without the answer, the 200 never shows).
        telnet.type(b"\x03")
        telnet.type(b"NOOP\r")
        assert b"200 " in telnet.read_until(b"200 ", timeout=10.0)[before:]
        # A second ^C is a second mark (typed only now: ^C also flushes the tty's unread input).
        # QUIT ends it: telnet says the server closed, even while it hides output, and exits.
        telnet.type(b"\x03")
        telnet.type(b"HELP\r")
        telnet.type(b"QUIT\r")
        screen = telnet.read_until(b"Connection closed by foreign host")
        after = screen[screen.index(b"200 ") :]
        assert -1 < after.find(b"214 ") < after.find(b"221 Goodbye"), screen
    finally:
        telnet.close()
