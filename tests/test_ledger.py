"""Bet receipts (SLIP), history (HIST), the cashier (CRED), ``daemon.py ledger`` and ``daemon.py check``.

Socket tests run on both engines; the command line through ``daemon.py``; the
conservation of chips as a hypothesis property over the real store.
"""

import os
import sqlite3
import subprocess
import sys
import tempfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import ROOT
from lineproto.client import Client, PermanentError
from lineproto.domain.roulette import BadCredit, BetError, Limits, TableError, parse_bet
from lineproto.store import SqliteStore
from lineproto.wire import ProtocolError, Reply
from lineproto.wire.shapes import (
    Credited,
    History,
    HistoryBet,
    HistoryCredit,
    HistoryRound,
    HistorySeeds,
    PlacedBet,
    Receipt,
    Spin,
)


def login(connection, name="guest", password=None):
    reply = connection.command(f"USER {name}")
    if password is not None:
        assert reply.code == 331, reply
        reply = connection.command(f"PASS {password}")
    assert reply.code == 230, reply
    return connection


def daemon_py(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "daemon.py"), *args], capture_output=True, text=True, timeout=60, cwd=ROOT
    )


def play_a_round(connection) -> tuple[list[PlacedBet], Spin]:
    """Two bets and a spin: what BET and SPIN said."""
    placed = [PlacedBet.from_reply(connection.command(line)) for line in ("BET RED 10", "BET 17 5")]
    return placed, Spin.from_reply(connection.command("SPIN"))


# --------------------------------------------------------------------------
# Receipts and history through the socket
# --------------------------------------------------------------------------


def test_receipts_and_history_of_a_registered_player_survive_a_restart(start_daemon, tmp_path, connect):
    db = str(tmp_path / "played.db")
    daemon = start_daemon("--db", db, users=True)
    connection = login(connect(daemon.port), "dave", "hunter2")
    placed, spin = play_a_round(connection)
    assert [p.slip for p in placed] == [1, 2]
    cleared = PlacedBet.from_reply(connection.command("BET BLACK 3"))
    connection.command("CLR")
    still_open = PlacedBet.from_reply(connection.command("BET 19 2"))
    before = {n: connection.command(f"SLIP {n}") for n in (1, 2, 3, 4)}
    history = connection.command("HIST")
    daemon.stop()

    again = start_daemon("--db", db, users=True)
    connection = login(connect(again.port), "dave", "hunter2")
    assert {n: connection.command(f"SLIP {n}") for n in (1, 2, 3, 4)} == before
    receipts = [Receipt.from_reply(before[n]) for n in (1, 2, 3, 4)]
    outcomes = {o.bet: o for o in spin.outcomes}
    for receipt, bet in zip(receipts[:2], ("RED", "17"), strict=True):
        outcome = outcomes[bet]
        state = "win" if outcome.won else "lose"
        assert receipt == Receipt(receipt.slip, bet, outcome.amount, "private", 1, state, outcome.returned)
    assert (cleared.slip, receipts[2]) == (3, Receipt(3, "BLACK", 3, "private", 2, "cleared", 3))
    assert (still_open.slip, receipts[3]) == (4, Receipt(4, "19", 2, "private", 2, "open", 0))
    assert connection.command("HIST") == history
    (entry,) = History.from_reply(history).entries
    assert isinstance(entry, HistoryRound)
    assert (entry.round, entry.table, entry.pocket, entry.properties) == (1, "private", spin.pocket, spin.properties)
    assert (entry.before, entry.after, entry.net) == (1000, spin.bankroll, spin.net)
    assert [(b.slip, b.bet, b.amount, b.won, b.returned) for b in entry.bets] == [
        (1, "RED", 10, outcomes["RED"].won, outcomes["RED"].returned),
        (2, "17", 5, outcomes["17"].won, outcomes["17"].returned),
    ]
    assert PlacedBet.from_reply(connection.command("BET RED 1")).slip == 5  # numbering goes on


def test_a_guests_receipts_and_history_last_the_login(shared, connect):
    connection = login(connect(shared.port))
    assert History.from_reply(connection.command("HIST")) == History("guest", ())
    for _ in range(3):
        play_a_round(connection)
    history = History.from_reply(connection.command("HIST 2"))
    assert [entry.round for entry in history.entries] == [3, 2]
    assert [bet.slip for entry in history.entries for bet in entry.bets] == [5, 6, 3, 4]
    assert Receipt.from_reply(connection.command("SLIP 6")).round == 3
    login(connection)  # a new login: a new guest
    assert connection.command("SLIP 1").code == 550
    assert History.from_reply(connection.command("HIST")).entries == ()


def test_nobody_sees_another_players_receipt(daemon, connect):
    root = login(connect(daemon.port), "root", "admin pass")
    assert [p.slip for p in play_a_round(root)[0]] == [1, 2]
    dave = login(connect(daemon.port), "dave", "hunter2")
    refused = dave.command("SLIP 1")
    assert (refused.code, refused.lines) == (550, ("You have no bet with slip 1",))
    assert dave.command("SLIP 99").lines == ("You have no bet with slip 99",)  # as for a number nobody has
    mine = PlacedBet.from_reply(dave.command("BET EVEN 4"))
    assert Receipt.from_reply(dave.command("SLIP 1")) == Receipt(mine.slip, "EVEN", 4, "private", 1, "open", 0)
    assert Receipt.from_reply(root.command("SLIP 1")).bet == "RED"  # each number is its player's own
    guest = login(connect(daemon.port))
    assert guest.command("SLIP 1").code == 550


def test_slip_and_hist_refuse_what_they_cannot_read(shared, connect):
    connection = connect(shared.port)
    assert connection.command("SLIP 1").code == 530
    assert connection.command("HIST").code == 530
    login(connection, "carol", "secret")
    assert connection.command("HIST").code == 532
    login(connection)
    for line in ("SLIP", "SLIP x", "SLIP -1", "SLIP 1 2", "SLIP " + "9" * 19, "HIST 0", "HIST 101", "HIST ten"):
        assert connection.command(line).code == 501, line
    assert connection.command("HIST 100").code == 211


# --------------------------------------------------------------------------
# The cashier
# --------------------------------------------------------------------------


def test_only_an_admin_may_give_chips(daemon, connect):
    connection = connect(daemon.port)
    assert connection.command("CRED dave 50 bonus").code == 530
    login(connection, "dave", "hunter2")
    assert connection.command("CRED dave 50 bonus").lines == ("Permission denied: CRED needs the admin role",)
    login(connection, "carol", "secret")
    assert connection.command("CRED dave 50 bonus").code == 532
    login(connection)
    assert connection.command("CRED dave 50 bonus").code == 532
    login(connection, "dave", "hunter2")
    assert connection.command("STAT").code == 211
    assert History.from_reply(connection.command("HIST")).entries == ()  # nothing was credited


def test_the_cashier_never_leaves_a_bankroll_below_zero_and_takes_whole_chips(daemon, connect):
    admin = login(connect(daemon.port), "root", "admin pass")
    dave = login(connect(daemon.port), "dave", "hunter2")
    dave.command("BET RED 400")
    refused = admin.command("CRED dave -601 one too many")
    assert (refused.code, refused.lines) == (
        535,
        ("the bankroll holds 600 chips: taking 601 would leave it below zero",),
    )
    for line in (
        "CRED dave 1.5 half",
        "CRED dave ten words",
        "CRED dave 0 nothing",
        "CRED dave +-5 odd",
        "CRED dave 1000000001 too much",
        "CRED dave 5",
        "CRED dave",
    ):
        assert admin.command(line).code == 501, line
    for line in ("CRED carol 5 a reader", "CRED guest 5 play money", "CRED nobody 5 no such user"):
        assert admin.command(line).code == 550, line
    assert Credited.from_reply(admin.command("CRED Dave -600 the whole bankroll")) == Credited(1, "dave", -600, 600, 0)
    assert dave.command("STAT").code == 211
    assert [line for line in dave.command("STAT").lines if line.startswith("bankroll")] == ["bankroll: 0"]


def test_the_ledger_shows_in_hist_and_in_daemon_py_ledger(start_daemon, tmp_path, connect):
    db = str(tmp_path / "cashier.db")
    daemon = start_daemon("--db", db, users=True)
    admin = login(connect(daemon.port), "root", "admin pass")
    dave = login(connect(daemon.port), "dave", "hunter2")
    _, spin = play_a_round(dave)
    given_ = Credited.from_reply(admin.command("CRED dave +50 welcome bonus"))
    taken = Credited.from_reply(admin.command("CRED dave -20 table fee"))
    assert (given_.before, given_.after, taken.after) == (spin.bankroll, spin.bankroll + 50, spin.bankroll + 30)
    newest, older, round_ = History.from_reply(dave.command("HIST")).entries
    assert isinstance(newest, HistoryCredit) and isinstance(older, HistoryCredit) and isinstance(round_, HistoryRound)
    assert (newest.number, newest.by, newest.amount, newest.after, newest.reason) == (
        taken.number,
        "root",
        -20,
        spin.bankroll + 30,
        "table fee",
    )
    assert (older.amount, older.reason, round_.round) == (50, "welcome bonus", 1)
    daemon.wait_log(f"root credited -20 chips to dave (ledger {taken.number})")
    daemon.stop()
    listed = daemon_py("ledger", "DAVE", "--db", db)
    assert (listed.returncode, listed.stderr) == (0, "")
    rows = [line.split("\t") for line in listed.stdout.splitlines()]
    assert [(row[0], row[2], row[3], row[5]) for row in rows] == [
        (str(given_.number), "root", "+50", "welcome bonus"),
        (str(taken.number), "root", "-20", "table fee"),
    ]
    assert rows[1][4] == f"bankroll {spin.bankroll + 50} -> {spin.bankroll + 30}"
    nobody = daemon_py("ledger", "carol", "--db", db)
    assert (nobody.returncode, nobody.stdout) == (0, "no cashier's entries for carol\n")
    missing = daemon_py("ledger", "dave", "--db", str(tmp_path / "typo.db"))
    assert missing.returncode == 2 and len(missing.stderr.splitlines()) == 1 and "Traceback" not in missing.stderr
    assert not os.path.exists(tmp_path / "typo.db")


# --------------------------------------------------------------------------
# daemon.py check
# --------------------------------------------------------------------------


def test_daemon_py_check_proves_a_played_database_and_catches_a_hand_edited_bankroll(start_daemon, tmp_path, connect):
    db = str(tmp_path / "casino.db")
    daemon = start_daemon("--db", db, users=True)
    admin = login(connect(daemon.port), "root", "admin pass")
    for _ in range(3):
        play_a_round(admin)
    dave = login(connect(daemon.port), "dave", "hunter2")
    play_a_round(dave)
    dave.command("BET ODD 7")  # an open bet is held chips too
    admin.command("CRED dave 25 bonus")
    daemon.stop()
    good = daemon_py("check", "--db", db)
    assert good.returncode == 0, good
    assert good.stdout.startswith("chips conserved for 2 players: held ")
    assert len(good.stdout.splitlines()) == 1

    with sqlite3.connect(db) as connection:
        connection.execute("UPDATE players SET bankroll = bankroll + 100 WHERE name = 'dave'")
    connection.close()
    bad = daemon_py("check", "--db", db)
    assert bad.returncode == 1, bad
    first, summary = bad.stdout.splitlines()
    assert first.startswith("dave: holds ") and first.endswith(": +100")
    assert summary.startswith("1 of 2 players differs: ")
    missing = daemon_py("check", "--db", str(tmp_path / "typo.db"))
    assert missing.returncode == 2 and len(missing.stderr.splitlines()) == 1


# --------------------------------------------------------------------------
# Conservation, as a property of the real store
# --------------------------------------------------------------------------

PLAYERS = ("ann", "bob")
BETS = ("RED", "17", "SPLIT 17-18")
POCKETS = ("0", "1", "17", "18", "00")
STEPS = st.one_of(
    st.tuples(st.just("bet"), st.sampled_from(PLAYERS), st.sampled_from(BETS), st.integers(1, 600)),
    st.tuples(st.just("clear"), st.sampled_from(PLAYERS)),
    st.tuples(st.just("spin"), st.sampled_from(PLAYERS), st.sampled_from(POCKETS)),
    st.tuples(st.just("credit"), st.sampled_from(PLAYERS), st.integers(-1500, 1500)),
)
LIMITS = Limits(1, 500)


def _apply(store, step) -> None:
    kind, player, *args = step
    if kind == "credit":
        store.credit(player, "root", args[0], "test", 300, LIMITS)
    elif kind == "bet":
        store.update_table(player, 300, LIMITS, lambda t: t.place(parse_bet(args[0], t.wheel_kind), args[1]))
    elif kind == "clear":
        store.update_table(player, 300, LIMITS, lambda t: t.clear())
    else:
        store.update_table(player, 300, LIMITS, lambda t: t.resolve(args[0]))


@settings(max_examples=30, deadline=None)
@given(st.lists(STEPS, max_size=25))
def test_any_bets_spins_and_credits_keep_chips_conserved(steps):
    with tempfile.TemporaryDirectory() as directory:
        store = SqliteStore(os.path.join(directory, "c.db"), sync="normal")
        try:
            for step in steps:
                try:
                    _apply(store, step)
                except (BetError, TableError, BadCredit):
                    pass  # a refusal changes nothing: the audit below still balances
                audits = store.chip_audits()
                assert [audit.difference for audit in audits] == [0] * len(audits), audits
                assert all(audit.bankroll >= 0 for audit in audits)
        finally:
            store.close()


# --------------------------------------------------------------------------
# The client library and the reply shapes
# --------------------------------------------------------------------------


def test_the_client_library_reads_slips_history_and_credits(daemon):
    with Client(daemon.host, daemon.port, timeout=10) as admin, Client(daemon.host, daemon.port, timeout=10) as dave:
        admin.login("root", "admin pass")
        dave.login("dave", "hunter2")
        placed = dave.bet("RED", 10)
        spin = dave.spin()
        receipt = dave.slip(placed.slip)
        assert (receipt.bet, receipt.round, receipt.returned) == ("RED", 1, spin.outcomes[0].returned)
        credited = admin.credit("dave", 5, "for the test")
        assert (credited.amount, credited.after) == (5, spin.bankroll + 5)
        history = dave.history(2)
        assert [type(entry) for entry in history.entries] == [HistoryCredit, HistoryRound]
        assert history.entries[0].reason == "for the test"
        with pytest.raises(PermanentError) as refused:
            dave.slip(2)
        assert refused.value.code == 550


_WORD = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=8)
_TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=20).filter(
    lambda t: t == t.strip() and "  " not in t
)
_COUNT = st.integers(0, 10**12)
_NET = st.integers(-(10**9), 10**9)
_BET_LINE = st.builds(HistoryBet, _COUNT, _WORD, _COUNT, st.booleans(), _COUNT)
_ROUND = st.builds(
    HistoryRound,
    _COUNT,
    _WORD,
    _WORD,
    _WORD,
    st.lists(_WORD, min_size=1, max_size=5).map(tuple),
    _COUNT,
    _COUNT,
    _NET,
    st.lists(_BET_LINE, max_size=3).map(tuple),
    st.none() | st.builds(HistorySeeds, _WORD, _COUNT, _WORD, st.text("0123456789abcdef", min_size=64, max_size=64)),
)
_CREDIT = st.builds(HistoryCredit, _COUNT, _WORD, _WORD, _NET, _COUNT, _COUNT, _TEXT)
LEDGER_SHAPES = st.one_of(
    st.builds(
        Receipt, _COUNT, _WORD, _COUNT, _WORD, _COUNT, st.sampled_from(["open", "cleared", "win", "lose"]), _COUNT
    ),
    st.builds(History, _WORD, st.lists(_ROUND | _CREDIT, max_size=4).map(tuple)),
    st.builds(Credited, _COUNT, _WORD, _NET, _COUNT, _COUNT),
    st.builds(PlacedBet, _WORD, _COUNT, _COUNT, _COUNT, _COUNT),
)


@given(LEDGER_SHAPES)
def test_the_new_shapes_parse_back_to_what_was_formatted(shape):
    assert type(shape).from_reply(shape.reply()) == shape


END = "End of history"


@pytest.mark.parametrize(
    "shape, reply",
    [
        (
            History,
            Reply(211, ("History of dave, newest first:", "Slip 1: RED for 10: win, 20 returned", "End of history")),
        ),
        (History, Reply(211, ("History of dave, newest first:", "Status:"))),  # no end line
        (History, Reply(211, ("Status:", "End of status"))),
        (Receipt, Reply(200, ("Slip 1: RED for 10 at private round 1: lost, 0 returned",))),
        (Credited, Reply(200, ("Credit 1 to dave: 50 chips; bankroll 0 -> 50",))),  # the sign is always written
        (PlacedBet, Reply(200, ("Bet RED for 10 (pays 1:1); bankroll 90",))),  # no slip
    ],
)
def test_a_reply_of_another_shape_is_a_protocol_error(shape, reply):
    with pytest.raises(ProtocolError):
        shape.from_reply(reply)
