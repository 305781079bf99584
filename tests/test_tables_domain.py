"""The shared table's round state machine and settlement, with the clock passed in (no waiting)."""

import hashlib
import hmac
import random
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lineproto.domain.roulette import (
    AMERICAN,
    EUROPEAN,
    POCKETS,
    InsufficientChips,
    Limits,
    all_bets,
    parse_bet,
)
from lineproto.domain.tables import (
    BETTING,
    CLOSED,
    IDLE,
    SPINNING,
    BettingClosed,
    NoMoreBets,
    RoundOpened,
    RoundSettled,
    SharedTable,
    SpinDue,
    TableSpec,
    parse_table_specs,
)

LIMITS = Limits(1, 500)


def table(seconds=10.0, last_round=0, wheel=AMERICAN) -> SharedTable:
    return SharedTable(TableSpec("main", wheel), LIMITS, seconds, last_round)


def test_the_default_tables_and_their_own_limits():
    assert parse_table_specs("main:american,euro:european") == (
        TableSpec("main", AMERICAN),
        TableSpec("euro", EUROPEAN),
    )
    assert parse_table_specs("High:European:50-1000") == (TableSpec("high", EUROPEAN, Limits(50, 1000)),)


@pytest.mark.parametrize(
    "text", ["main", "main:", "main:french", ":american", "a:american,a:european", "x:american:9-1", "x:american:0-5"]
)
def test_a_bad_table_list_is_refused_with_a_sentence(text):
    with pytest.raises(ValueError, match=r"\w"):
        parse_table_specs(text)


def test_a_round_runs_from_betting_to_the_spin_and_the_next_round_opens():
    shared = table(seconds=10.0, last_round=16)
    assert shared.state is IDLE
    assert shared.join("alice", "alice", now=100.0) == RoundOpened("main", 17, 10.0, shared.seed_hash)
    assert shared.join("bob", "bob", now=101.0) is None  # the round is already open
    assert (shared.state, shared.seconds_left(104.0)) == (BETTING, 6.0)
    assert shared.advance(109.9) == []
    assert shared.advance(110.0) == [BettingClosed("main", 17)]
    assert shared.state is CLOSED
    assert shared.reopens_in(110.5) == pytest.approx(shared.spin_seconds - 0.5)
    (due,) = shared.advance(110.0 + shared.spin_seconds)
    assert isinstance(due, SpinDue) and due.round_id == 17 and shared.state is SPINNING
    assert shared.advance(1000.0) == []  # nothing more until the round is settled
    assert shared.finish(now=113.0) == RoundOpened("main", 18, 10.0, shared.seed_hash)
    assert shared.closes_at == 123.0


def test_the_table_goes_idle_when_the_last_player_left_and_the_round_is_settled():
    shared = table()
    shared.join("alice", "alice", 0.0)
    shared.leave("alice")
    shared.advance(10.0)
    shared.advance(20.0)
    assert shared.finish(20.0) is None
    assert shared.state is IDLE and shared.deadline is None


def test_no_bets_after_no_more_bets_and_the_refusal_says_when_the_next_round_opens():
    shared = table(seconds=10.0)
    shared.join("alice", "alice", 0.0)
    shared.advance(10.0)
    with pytest.raises(NoMoreBets, match=r"no more bets in round 1 at main: the next round opens in 2 s") as caught:
        shared.place("alice", parse_bet("RED", AMERICAN), 10, 100, now=10.5)
    assert caught.value.reopens_in == pytest.approx(1.5)
    with pytest.raises(NoMoreBets):
        shared.take_back("alice", now=10.5)


def test_a_bet_at_the_deadline_is_refused_before_the_croupier_has_moved_on():
    shared = table(seconds=10.0)
    shared.join("alice", "alice", 0.0)
    with pytest.raises(NoMoreBets):
        shared.place("alice", parse_bet("RED", AMERICAN), 10, 100, now=10.0)


def test_a_bet_is_checked_as_a_private_table_checks_it():
    shared = table()
    shared.join("alice", "alice", 0.0)
    open_bet, bankroll = shared.place("alice", parse_bet("RED", AMERICAN), 60, 100, now=1.0)
    assert bankroll == 40
    with pytest.raises(InsufficientChips):
        shared.place("alice", parse_bet("BLACK", AMERICAN), 60, bankroll, now=1.0)
    assert shared.bets_of("alice") == (open_bet,)


def test_a_player_who_left_keeps_the_bets_placed_and_they_are_settled():
    shared = table()
    shared.join("alice", "alice", 0.0)
    shared.place("alice", parse_bet("RED", AMERICAN), 10, 100, now=1.0)
    shared.leave("alice")
    (_, due) = shared.advance(20.0)
    assert due.settle("1").results["alice"].returned == 20


bets_strategy = st.lists(st.tuples(st.sampled_from(all_bets(EUROPEAN)), st.integers(1, 500)), min_size=1, max_size=6)


@given(
    players=st.dictionaries(st.sampled_from(["alice", "bob", "carol", "guest-1"]), bets_strategy, min_size=1),
    pocket=st.sampled_from(POCKETS[EUROPEAN]),
)
def test_every_player_is_settled_against_the_one_pocket_by_the_payout_rules(players, pocket):
    shared = table(wheel=EUROPEAN)
    for player in players:
        shared.join(player, player, 0.0)
    for player, bets in players.items():
        bankroll = 10_000
        for bet, amount in bets:
            _, bankroll = shared.place(player, bet, amount, bankroll, now=1.0)
    shared.advance(10.0)
    (due,) = shared.advance(20.0)
    settled = due.settle(pocket)
    assert settled.pocket == pocket and set(settled.results) == set(players)
    for player, bets in players.items():
        expected = sum(amount * (bet.payout + 1) for bet, amount in bets if pocket in bet.pockets)
        result = settled.results[player]
        assert result.returned == expected
        assert result.net == expected - sum(amount for _, amount in bets)


# -------------------------------------------------------------------- provably fair rounds


def recompute(server_seed: str, table: str, round_id: int, pockets: int) -> str:
    """The pocket by the rule of docs/PROTOCOL.md section 12, with hashlib and hmac only (not lineproto.fair)."""
    limit = 2**32 - 2**32 % pockets
    counter = 0
    while True:
        message = f"{table}:{round_id}:{counter}".encode()
        digest = hmac.new(server_seed.encode("ascii"), message, hashlib.sha256).digest()
        for (word,) in struct.iter_unpack(">I", digest):
            if word < limit:
                index = word % pockets
                return "00" if index == 37 else str(index)
        counter += 1


def play_rounds(shared: SharedTable, count: int) -> list[tuple[RoundOpened, RoundSettled]]:
    """``count`` rounds at ``shared`` with alice seated: each round's opening and its settlement."""
    rounds = []
    now = 0.0
    opened = shared.join("alice", "alice", now)
    for _ in range(count):
        assert opened is not None
        shared.place("alice", parse_bet("RED", shared.wheel), 10, 1000, now)
        now = shared.closes_at
        shared.advance(now)
        (due,) = shared.advance(shared.spin_at)
        rounds.append((opened, due.settle()))
        opened = shared.finish(shared.spin_at)
    return rounds


@pytest.mark.parametrize("wheel", [AMERICAN, EUROPEAN])
def test_each_round_commits_to_its_pocket_when_it_opens_and_reveals_the_seed_at_the_result(wheel):
    shared = table(wheel=wheel, last_round=4)
    rounds = play_rounds(shared, 20)
    seeds = [settled.server_seed for _, settled in rounds]
    assert len(set(seeds)) == 20  # a new seed every round
    for opened, settled in rounds:
        assert opened.round_id == settled.round_id
        assert hashlib.sha256(settled.server_seed.encode("ascii")).hexdigest() == opened.seed_hash
        expected = recompute(settled.server_seed, "main", settled.round_id, len(POCKETS[wheel]))
        assert settled.pocket == expected
        assert settled.results["alice"].staked == 10


def test_the_round_seed_is_drawn_when_the_round_opens_so_bets_cannot_change_it():
    shared = table()
    opened = shared.join("alice", "alice", 0.0)
    assert opened is not None and shared.seed_hash == opened.seed_hash
    shared.place("alice", parse_bet("RED", AMERICAN), 10, 100, now=1.0)
    assert shared.seed_hash == opened.seed_hash
    shared.advance(10.0)
    (due,) = shared.advance(20.0)
    assert hashlib.sha256(due.server_seed.encode("ascii")).hexdigest() == opened.seed_hash


def test_seeded_rounds_give_the_same_seeds_and_pockets_on_every_run():
    def run(seed):
        shared = SharedTable(TableSpec("main", AMERICAN), LIMITS, 10.0, 0, random.Random(seed))
        return [(settled.server_seed, settled.pocket) for _, settled in play_rounds(shared, 10)]

    assert run("7:main") == run("7:main")
    assert run("7:main") != run("8:main")


def test_no_repr_shows_a_rounds_server_seed_before_its_result():
    shared = table()
    shared.join("alice", "alice", 0.0)
    shared.advance(10.0)
    (due,) = shared.advance(20.0)
    assert due.server_seed and due.server_seed not in repr(due)  # a log line of the round cannot reveal it
