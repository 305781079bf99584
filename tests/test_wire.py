"""Unit and property tests of the sans-I/O codec: no sockets here."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lineproto.commands.table import ArgSpec
from lineproto.wire import (
    MAX_LINE_BYTES,
    MAX_REPLY_LINE_BYTES,
    CommandSyntaxError,
    InvalidUtf8,
    LineReader,
    LineTooLong,
    ProtocolError,
    Reply,
    ReplyParser,
    format_reply,
    parse_command,
)
from lineproto.wire.telnet import Answer

# --- framing ----------------------------------------------------------------


def test_line_endings_crlf_lf_and_cr_nul():
    assert LineReader().feed(b"A\r\nB\nC\r\x00D") == ["A", "B", "C"]


def test_unterminated_line_is_kept_until_finish():
    reader = LineReader()
    assert reader.feed(b"NOOP") == []
    assert reader.finish() == ["NOOP"]


def test_overlong_line_reported_once_and_rest_discarded():
    reader = LineReader()
    events = reader.feed(b"x" * 5000)
    events += reader.feed(b"y" * 5000 + b"\r\nNOOP\r\n")
    assert events == [LineTooLong(MAX_LINE_BYTES), "NOOP"]


def test_line_at_limit_is_accepted():
    assert LineReader().feed(b"a" * MAX_LINE_BYTES + b"\r\n") == ["a" * MAX_LINE_BYTES]
    assert LineReader().feed(b"a" * (MAX_LINE_BYTES + 1) + b"\n") == [LineTooLong(MAX_LINE_BYTES)]


def test_invalid_utf8_is_an_event_not_an_exception():
    assert LineReader().feed(b"\xc3\x28\nNOOP\n") == [InvalidUtf8(b"\xc3\x28"), "NOOP"]


def test_utf8_split_across_chunks():
    reader = LineReader()
    data = "PASS grüße\n".encode()
    assert reader.feed(data[:8]) + reader.feed(data[8:]) == ["PASS grüße"]


streams = st.lists(
    st.one_of(
        st.binary(max_size=40),
        st.sampled_from(
            [b"\r\n", b"\n", b"\r", b"\x00", b"\xff", b"\xff\xfa", b"\xff\xf0", b"NOOP", b"\xc3", b"x" * 700]
        ),
    ),
    max_size=30,
).map(b"".join)


@settings(max_examples=300)
@given(streams, st.lists(st.integers(min_value=0, max_value=5000), max_size=8))
def test_splitting_a_stream_anywhere_gives_the_same_events(data, cuts):
    whole = LineReader(max_line=64)
    expected = whole.feed(data) + whole.finish()
    pieces, start = [], 0
    for cut in sorted(cut % (len(data) + 1) for cut in cuts):
        pieces.append(data[start:cut])
        start = cut
    pieces.append(data[start:])
    split = LineReader(max_line=64)
    events = [event for piece in pieces for event in split.feed(piece)] + split.finish()
    assert events == expected


@given(st.binary(max_size=3000))
def test_reader_never_raises_and_bounds_its_buffer(data):
    reader = LineReader(max_line=100)
    for event in reader.feed(data):
        assert isinstance(event, (str, LineTooLong, InvalidUtf8, Answer))
        if isinstance(event, str):
            assert len(event.encode()) <= 100
    assert reader.pending <= 101


# --- commands ---------------------------------------------------------------


def test_parse_command_verbs_and_arguments():
    command = parse_command("  bet   SPLIT 17-18   10 ")
    assert command.verb == "BET"
    assert command.arguments(3) == ["SPLIT", "17-18", "10"]
    assert parse_command("") is None
    assert parse_command("   ") is None


def test_rest_of_line_keeps_inner_spaces():
    command = parse_command("READ G12345 - could not  find it")
    assert command.arguments(3, rest_of_line=True) == ["G12345", "-", "could not  find it"]
    assert parse_command("PASS  two words").arguments(1, rest_of_line=True) == ["two words"]


@pytest.mark.parametrize("line", ["12", "NOOPS", "HÉLP", "N0OP", "-x", "\x00"])
def test_bad_verbs(line):
    with pytest.raises(CommandSyntaxError):
        parse_command(line)


def test_argspec_from_syntax():
    assert ArgSpec.from_syntax("") == ArgSpec(0, 0, False)
    assert ArgSpec.from_syntax("<name>") == ArgSpec(1, 0, False)
    assert ArgSpec.from_syntax("[<verb>]") == ArgSpec(0, 1, False)
    assert ArgSpec.from_syntax("<meter> <reading> [<time-or-reason...>]") == ArgSpec(2, 1, True)
    with pytest.raises(ValueError):
        ArgSpec.from_syntax("[<a>] <b>")
    with pytest.raises(ValueError):
        ArgSpec.from_syntax("<a...> <b>")


def test_argspec_split_counts():
    spec = ArgSpec.from_syntax("<bet> [<amount>]")
    assert spec.split(parse_command("BET RED")) == ["RED"]
    assert spec.split(parse_command("BET")) is None
    assert spec.split(parse_command("BET A B C")) is None


# --- replies ----------------------------------------------------------------


def test_single_and_multi_line_format():
    assert format_reply(200, "OK") == b"200 OK\r\n"
    assert format_reply(214, ["a", "b", "c"]) == b"214-a\r\n214-b\r\n214 c\r\n"


def test_reply_text_never_holds_bare_cr_or_lf():
    data = format_reply(250, "one\rtwo\nthree\r\nfour")
    assert data == b"250-one\r\n250-two\r\n250-three\r\n250 four\r\n"


def test_control_characters_are_neutralised():
    assert format_reply(500, "a\x00b\x1bc") == b"500 a?b?c\r\n"


def test_reply_lines_stay_under_1kb():
    data = format_reply(200, ["é" * 2000, "x"])
    for line in data.split(b"\r\n")[:-1]:
        assert len(line) + 2 <= MAX_REPLY_LINE_BYTES
        line.decode("utf-8")  # truncated on a character boundary


def test_bad_codes_refused():
    with pytest.raises(ValueError):
        format_reply(600, "x")


def test_parser_accepts_rfc959_unprefixed_continuation_lines():
    replies = ReplyParser().feed(b"214-Help\r\n  NOOP\r\n214 End\r\n")
    assert replies == [Reply(214, ("Help", "  NOOP", "End"))]


def test_parser_rejects_garbage():
    with pytest.raises(ProtocolError):
        ReplyParser().feed(b"hello\r\n")
    with pytest.raises(ProtocolError):
        ReplyParser().feed(b"200 \xc3\x28\r\n")
    with pytest.raises(ProtocolError):
        ReplyParser(max_line=10).feed(b"200 " + b"x" * 20)


reply_lines = st.lists(st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=200), min_size=1, max_size=6)


@given(st.integers(min_value=100, max_value=599), reply_lines)
def test_format_then_parse_round_trips(code, lines):
    data = format_reply(code, lines)
    assert ReplyParser().feed(data) == [Reply(code, tuple(lines))]


@given(
    st.lists(st.tuples(st.integers(100, 599), reply_lines), min_size=1, max_size=5),
    st.lists(st.integers(min_value=0), max_size=10),
)
def test_parsing_split_stream_gives_same_replies(replies, cuts):
    data = b"".join(format_reply(code, lines) for code, lines in replies)
    expected = [Reply(code, tuple(lines)) for code, lines in replies]
    parser, got, start = ReplyParser(), [], 0
    for cut in sorted(cut % (len(data) + 1) for cut in cuts):
        got += parser.feed(data[start:cut])
        start = cut
    got += parser.feed(data[start:])
    assert got == expected
    assert not parser.in_reply


@given(st.binary(max_size=2000))
def test_parser_raises_only_protocol_error(data):
    parser = ReplyParser(max_line=500)
    try:
        for reply in parser.feed(data):
            assert 100 <= reply.code <= 599
    except ProtocolError:
        pass
