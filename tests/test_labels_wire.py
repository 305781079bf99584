"""Request labels in the wire layer: ``@<id> `` parsed off a line, and put on (and read off) a reply."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lineproto.wire import Reply, ReplyParser, format_reply
from lineproto.wire.labels import MAX_LABEL, LabelSyntaxError, is_label, is_labelled, labelled_line, split_label
from lineproto.wire.reply import label_reply, reply_label

LABEL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-"
labels = st.text(LABEL_ALPHABET, min_size=1, max_size=MAX_LABEL)
commands = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40).filter(
    lambda text: not text.startswith("@")
)


def test_a_label_is_taken_off_the_front_of_the_line():
    assert split_label("@r-17 READ G10001 5983") == ("r-17", "READ G10001 5983")
    assert split_label("@A.b:c_9-  NOOP  ") == ("A.b:c_9-", "NOOP")
    assert is_labelled("@x NOOP") and not is_labelled("NOOP @x") and not is_labelled("")


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("@ NOOP", "1-64 characters"),
        ("@r/1 NOOP", "1-64 characters"),
        ("@" + "x" * (MAX_LABEL + 1) + " NOOP", "1-64 characters"),
        ("@r-17", "needs a command"),
        ("@r-17    ", "needs a command"),
        ("@r-17\tNOOP", "1-64 characters"),
    ],
)
def test_a_malformed_label_is_refused_with_what_a_label_is(line, says):
    with pytest.raises(LabelSyntaxError, match=says):
        split_label(line)


def test_the_longest_label_is_64_characters():
    assert split_label("@" + "x" * MAX_LABEL + " NOOP").label == "x" * MAX_LABEL


@given(labels, commands)
def test_a_labelled_line_splits_back_into_its_label_and_command(label, command):
    assert split_label(labelled_line(label, command)) == (label, command)


@given(st.text(max_size=80))
def test_only_the_label_alphabet_makes_a_label(text):
    assert is_label(text) == (1 <= len(text) <= MAX_LABEL and all(c in LABEL_ALPHABET for c in text))


def test_the_label_goes_right_after_the_code_on_the_first_line():
    assert format_reply(*label_reply(Reply(200, ("Accepted",)), "r-17")) == b"200 @r-17 Accepted\r\n"
    multi = label_reply(Reply(211, ("Status:", "user: -", "End of status")), "r-17")
    assert format_reply(*multi) == b"211-@r-17 Status:\r\n211-user: -\r\n211 End of status\r\n"
    assert format_reply(*label_reply(Reply(200, ("",)), "x")) == b"200 @x\r\n"


@given(labels, st.integers(100, 599), st.lists(st.text("abc XYZ:;=0123", max_size=20), min_size=1, max_size=4))
def test_a_labelled_reply_reads_back_as_its_label_and_the_reply(label, code, lines):
    reply = Reply(code, tuple(lines))
    (parsed,) = ReplyParser().feed(format_reply(*label_reply(reply, label)))
    assert reply_label(parsed) == (label, reply)


def test_a_reply_without_a_label_reads_as_unlabelled():
    reply = Reply(200, ("OK",))
    assert reply_label(reply) == (None, reply)
    assert reply_label(Reply(500, ("@bad/label x",))) == (None, Reply(500, ("@bad/label x",)))
