"""Reply shapes (lineproto.wire.shapes): the texts of docs/PROTOCOL.md, and every shape read back as written."""

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lineproto.wire import ProtocolError, Reply, ReplyParser, format_reply
from lineproto.wire.shapes import (
    CHAT_LINE,
    COUNT,
    EVENT_LINES,
    JOINED_LINE,
    LEFT_LINE,
    NO_MORE_BETS_LINE,
    RESULT_NET_LINE,
    RESULT_NO_BETS_LINE,
    RESULT_VOID_LINE,
    ROUND_OPEN_LINE,
    TEXT,
    Accepted,
    BetOutcome,
    Cleared,
    Fairness,
    History,
    HistoryBet,
    HistoryRound,
    HistorySeeds,
    Job,
    LineShape,
    OpenBet,
    OpenBets,
    PlacedBet,
    Spin,
    Status,
    TableInfo,
    event_fields,
)

# --------------------------------------------------------------------------
# The texts are the documented ones (clients in other languages parse them)
# --------------------------------------------------------------------------

#: A server seed and its SHA-256 (fair.seed_hash), as FAIR and HIST write them.
SEED = "ab" * 32
HASH = "9c" * 32

DOCUMENTED = [
    (
        TableInfo("american", "0, 00, 1-36", 1, 500, "5.26% (BASKET 7.89%)"),
        "200 american wheel: pockets 0, 00, 1-36; bets 1-500 chips; house edge 5.26% (BASKET 7.89%)",
    ),
    (PlacedBet("SPLIT 17-18", 5, 17, 83, 7), "200 Bet SPLIT 17-18 for 5 (pays 17:1); bankroll 83; slip 7"),
    (
        OpenBets("american", (OpenBet("19", 2, 35), OpenBet("RED", 10, 1)), 12, 88),
        "211-Open bets (american wheel):\n211-19 for 2 (pays 35:1)\n211-RED for 10 (pays 1:1)\n"
        "211 Total staked 12; bankroll 88",
    ),
    (OpenBets("european", (), 0, 100), "211-Open bets (european wheel):\n211 Total staked 0; bankroll 100"),
    (Cleared(1, 10, 100), "200 Cleared 1 bet, 10 chips back; bankroll 100"),
    (Cleared(3, 18, 100), "200 Cleared 3 bets, 18 chips back; bankroll 100"),
    (
        Spin(
            "19",
            ("red", "odd", "high", "dozen2", "column1"),
            (BetOutcome("19", 2, True, 72), BetOutcome("SPLIT 17-18", 5, False, 0)),
            175,
            1,
            67,
            0,
        ),
        "250-19 red odd high dozen2 column1\n250-19 for 2: win, 72 returned\n250-SPLIT 17-18 for 5: lose, 0 returned\n"
        "250 Bankroll 175; rounds 1; net +67; nonce 0",
    ),
    (
        Spin("0", ("green",), (BetOutcome("RED", 15, False, 0),), 85, 2, -15, 1),
        "250-0 green\n250-RED for 15: lose, 0 returned\n250 Bankroll 85; rounds 2; net -15; nonce 1",
    ),
    (Spin("00", ("green",), (), 100, 1, 0, 12), "250-00 green\n250 Bankroll 100; rounds 1; net 0; nonce 12"),
    (
        Fairness(HASH, "lucky-7", 3),
        f"211-Fair play:\n211-server-seed-hash: {HASH}\n211-client-seed: lucky-7\n211-nonce: 3\n211 End of fair play",
    ),
    (
        Fairness(HASH, "lucky-7", 0, SEED),
        f"211-Fair play:\n211-server-seed: {SEED}\n211-server-seed-hash: {HASH}\n211-client-seed: lucky-7\n"
        "211-nonce: 0\n211 End of fair play",
    ),
    (
        History(
            "dave",
            (
                HistoryRound(
                    2,
                    "private",
                    "2026-12-02T01:52:03+00:00",
                    "0",
                    ("green",),
                    100,
                    90,
                    -10,
                    (HistoryBet(4, "RED", 10, False, 0),),
                    HistorySeeds("european", 7, "lucky-7", HASH),
                ),
                HistoryRound(1, "private", "2026-12-02T01:50:00+00:00", "00", ("green",), 100, 100, 0),
            ),
        ),
        "211-History of dave, newest first:\n"
        "211-Round 2 at private, 2026-12-02T01:52:03+00:00: 0 green; bankroll 100 -> 90; net -10\n"
        f"211-Fair: european wheel, nonce 7; client-seed lucky-7; server-seed-hash {HASH}\n"
        "211-Slip 4: RED for 10: lose, 0 returned\n"
        "211-Round 1 at private, 2026-12-02T01:50:00+00:00: 00 green; bankroll 100 -> 100; net 0\n"
        "211 End of history",
    ),
    (Job("G10001"), "250 G10001 is yours to read"),
    (Accepted(2, 3), "250 Accepted: you have read 2 out of 3 readings"),
    (
        Status({"user": "-", "uptime": "12s", "open-bet-chips": 0}),
        "211-Status:\n211-user: -\n211-uptime: 12s\n211-open-bet-chips: 0\n211 End of status",
    ),
]


@pytest.mark.parametrize("shape, wire", DOCUMENTED, ids=lambda value: type(value).__name__)
def test_each_shape_writes_the_documented_text_and_reads_it_back(shape, wire):
    reply = shape.reply()
    assert str(reply) == wire
    parsed = type(shape).from_reply(reply)
    if isinstance(shape, Status):  # values are read back as text
        assert parsed.values == {key: str(value) for key, value in shape.values.items()}
    else:
        assert parsed == shape


# --------------------------------------------------------------------------
# Round trips: whatever the values, the parser gives back what the formatter wrote,
# also after the wire codec (format_reply, then ReplyParser)
# --------------------------------------------------------------------------

# Reply text holds no control characters (the codec shows them as "?") and no surrogates (not UTF-8).
_CHAR = st.characters(blacklist_categories=("Cc", "Cs"))
text = st.text(_CHAR, min_size=1, max_size=30)
phrase = st.text(_CHAR.filter(lambda c: c != ";"), min_size=1, max_size=30)
word = st.text(_CHAR, min_size=1, max_size=12).filter(lambda w: re.fullmatch(r"\S+", w) is not None)
words = st.lists(word, min_size=1, max_size=6).map(tuple)
count = st.integers(0, 10**18)
net = st.integers(-(10**9), 10**9)

open_bet = st.builds(OpenBet, text, count, count)
outcome = st.builds(BetOutcome, text, count, st.booleans(), count)
hex64 = st.text("0123456789abcdef", min_size=64, max_size=64)
client_seed = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=64)
status_key = word.filter(lambda k: ":" not in k)
status_value = st.text(_CHAR, max_size=30)

SHAPES = st.one_of(
    st.builds(TableInfo, word, phrase, count, count, text),
    st.builds(PlacedBet, text, count, count, count, count),
    st.builds(OpenBets, word, st.lists(open_bet, max_size=5).map(tuple), count, count),
    st.builds(Cleared, count, count, count),
    st.builds(Spin, word, words, st.lists(outcome, max_size=5).map(tuple), count, count, net, count),
    st.builds(Fairness, hex64, client_seed, count, st.none() | hex64),
    st.builds(Job, word),
    st.builds(Accepted, count, count),
    st.builds(Status, st.dictionaries(status_key, status_value, max_size=6)),
)


@given(SHAPES)
def test_every_shape_parses_back_to_what_was_formatted(shape):
    assert type(shape).from_reply(shape.reply()) == shape


@given(SHAPES)
def test_every_shape_survives_the_wire_codec(shape):
    reply = shape.reply()
    [received] = ReplyParser().feed(format_reply(reply.code, reply.lines))
    assert received == reply
    assert type(shape).from_reply(received) == shape


# --------------------------------------------------------------------------
# What the parsers refuse
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape, reply",
    [
        (PlacedBet, Reply(200, ("Bet RED for ten (pays 1:1); bankroll 90",))),
        (PlacedBet, Reply(535, ("you have 100 chips, not enough for a bet of 101",))),  # a refusal is not a bet
        (PlacedBet, Reply(200, ("Bet RED for 10 (pays 1:1); bankroll 90", "more"))),
        (Cleared, Reply(200, ("Cleared 2 bets, 20 chips back",))),
        (Spin, Reply(250, ("Bankroll 100; rounds 1; net 0",))),  # the pocket line is missing
        (Spin, Reply(250, ("17 black", "RED for 10: draw, 10 returned", "Bankroll 100; rounds 1; net 0"))),
        (Spin, Reply(250, ("17 black", "Bankroll 100; rounds 1; net +0"))),  # zero is written 0
        (OpenBets, Reply(211, ("Status:", "End of status"))),
        (Status, Reply(211, ("Open bets (american wheel):", "Total staked 0; bankroll 100"))),
        (Status, Reply(211, ("Status:", "user -", "End of status"))),
        (Job, Reply(251, ("All jobs done",))),
        (Spin, Reply(250, ("17 black", "Bankroll 100; rounds 1; net 0"))),  # no nonce
        (Fairness, Reply(211, ("Fair play:", f"server-seed-hash: {HASH}", "nonce: 0", "End of fair play"))),
        (
            Fairness,
            Reply(211, ("Fair play:", "server-seed-hash: 9c", "client-seed: a", "nonce: 0", "End of fair play")),
        ),
        (Fairness, Reply(211, ("Status:", f"server-seed-hash: {HASH}", "client-seed: a", "nonce: 0", "End of status"))),
        (
            History,
            Reply(
                211,
                (
                    "History of dave, newest first:",
                    f"Fair: american wheel, nonce 1; client-seed a; server-seed-hash {HASH}",
                    "End of history",
                ),
            ),
        ),  # seeds without their round
        (Accepted, Reply(250, ("G10001 is yours to read",))),
    ],
)
def test_a_reply_of_another_shape_is_a_protocol_error(shape, reply):
    with pytest.raises(ProtocolError):
        shape.from_reply(reply)


def test_a_template_and_its_fields_must_agree():
    with pytest.raises(ValueError):
        LineShape("{bet} for {amount}", ("bet", "amount"), bet=TEXT)
    with pytest.raises(ValueError):
        LineShape("{bet} for {amount}", ("bet",), bet=TEXT, amount=COUNT)
    with pytest.raises(ValueError):  # "a for b for c": which " for " separates them?
        LineShape("{bet} for {name}", ("bet", "name"), bet=TEXT, name=TEXT)


# --------------------------------------------------------------------------
# A shape is a NamedTuple of its values (clients unpack and compare them)
# --------------------------------------------------------------------------


@pytest.mark.parametrize("shape, wire", DOCUMENTED, ids=lambda value: type(value).__name__)
def test_a_shape_is_a_named_tuple_of_its_fields(shape, wire):
    fields = type(shape)._fields
    assert tuple(shape) == tuple(getattr(shape, name) for name in fields)
    assert type(shape)(*shape) == shape
    assert type(shape._replace()) is type(shape)
    assert repr(shape).startswith(f"{type(shape).__name__}({fields[0]}=")
    assert not hasattr(shape, "__dict__")  # as light as a plain NamedTuple


def test_item_lines_are_written_and_read_as_lines_only():
    assert OpenBet("RED", 10, 1).line() == "RED for 10 (pays 1:1)"
    assert BetOutcome.from_line("17 for 5: win, 180 returned") == BetOutcome("17", 5, True, 180)
    assert not hasattr(OpenBet, "reply")  # an item line is no reply of its own


def test_status_texts_are_the_values_as_written():
    made = Status({"user": "-", "bankroll": 90})
    assert made.texts() == {"user": "-", "bankroll": "90"}
    assert Status.from_reply(made.reply()).texts() == made.texts()


# --------------------------------------------------------------------------
# Shared tables' events: the documented texts, and each form read back as written
# --------------------------------------------------------------------------

DOCUMENTED_EVENTS = [
    (610, f"round 18 open: bets for 20 s; server-seed-hash {HASH}", {"round": 18, "seconds": 20.0}),
    (620, "round 17 no more bets", {"round": 17}),
    (
        630,
        f"round 17 32 red even high dozen3 column2; net +5 (staked 10, returned 15); seed {SEED}",
        {"pocket": "32", "net": 5, "staked": 10, "returned": 15, "seed": SEED},
    ),
    (630, f"round 17 00 green; no bets; seed {SEED}", {"pocket": "00", "properties": ("green",)}),
    (640, "guest-2 joined main (2 seated)", {"player": "guest-2", "table": "main", "seated": 2}),
    (641, "guest-2 left main (1 seated)", {"player": "guest-2", "seated": 1}),
    (650, "dave: good luck: see you", {"player": "dave", "said": "good luck: see you"}),
]


@pytest.mark.parametrize(("code", "text", "expected"), DOCUMENTED_EVENTS)
def test_each_documented_event_reads_back_its_fields(code, text, expected):
    fields = event_fields(code, text)
    assert {key: fields[key] for key in expected} == expected


def test_an_event_of_no_known_form_has_no_fields():
    assert event_fields(630, "round 17 something else") == {}
    assert event_fields(699, "anything") == {}


_NAMES = st.from_regex(r"[a-z][a-z0-9-]{0,11}", fullmatch=True)
_SEEDS = st.from_regex(r"[0-9a-f]{64}", fullmatch=True)
_POCKETS = st.sampled_from(
    [("0", ("green",)), ("00", ("green",)), ("17", ("black", "odd", "low", "dozen2", "column2"))]
)


@given(
    round_id=st.integers(1, 10**9),
    seconds=st.sampled_from([20.0, 2.5, 0.5, 120.0]),
    pocket=_POCKETS,
    net=st.integers(-(10**6), 10**6),
    staked=st.integers(0, 10**6),
    returned=st.integers(0, 10**6),
    seed=_SEEDS,
    name=_NAMES,
    seated=st.integers(0, 1000),
    said=st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=80).filter(str.strip),
)
def test_every_event_form_parses_back_to_what_was_formatted(
    round_id, seconds, pocket, net, staked, returned, seed, name, seated, said
):
    number, properties = pocket
    result = {"round": round_id, "pocket": number, "properties": properties, "seed": seed}
    forms = [  # (shape, row, the fields it reads back)
        (ROUND_OPEN_LINE, (round_id, seconds, seed), {"round": round_id, "seconds": seconds, "server_seed_hash": seed}),
        (NO_MORE_BETS_LINE, (round_id,), {"round": round_id}),
        (
            RESULT_NET_LINE,
            (round_id, number, properties, net, staked, returned, seed),
            {**result, "net": net, "staked": staked, "returned": returned},
        ),
        (RESULT_NO_BETS_LINE, (round_id, number, properties, seed), result),
        (RESULT_VOID_LINE, (round_id, number, properties, seed), result),
        (JOINED_LINE, (name, "main", seated), {"player": name, "table": "main", "seated": seated}),
        (LEFT_LINE, (name, "main", seated), {"player": name, "table": "main", "seated": seated}),
        (CHAT_LINE, (name, said), {"player": name, "said": said}),
    ]
    assert {shape for shape, _, _ in forms} == {shape for shapes in EVENT_LINES.values() for shape in shapes}
    for shape, row, fields in forms:
        code = next(code for code, shapes in EVENT_LINES.items() if shape in shapes)
        assert event_fields(code, shape.format(row)) == fields
