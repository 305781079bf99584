"""Tests for lineproto.domain.roulette.

The expected layout is rebuilt here independently from the grid geometry
(3 columns x 12 rows) and explicit tables, not from the module's own tables,
so a wrong definition in the module shows up as a failure.
"""

import itertools
import json
import random
import re
import secrets
from fractions import Fraction
from statistics import NormalDist

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from lineproto.domain.roulette import (
    CLEARED,
    LOST,
    MAX_CREDIT,
    OPEN,
    PRIVATE_TABLE,
    WON,
    AboveMaximum,
    BadAmount,
    BadCredit,
    BelowMinimum,
    BelowZero,
    Bet,
    BetError,
    BetNotOnLayout,
    BetsOpen,
    BetSyntaxError,
    ChipAudit,
    CreditRecord,
    InsufficientChips,
    Limits,
    OpenBet,
    PlayRecord,
    PocketInfo,
    Slip,
    Table,
    TableError,
    UnknownPocket,
    UnknownWheel,
    Wheel,
    all_bets,
    house_edge,
    parse_bet,
    pocket_properties,
)

KINDS = ("american", "european")
NUMBERS = range(1, 37)
RED = {1, 3, 5, 7, 9, 12, 14, 16, 18, 19, 21, 23, 25, 27, 30, 32, 34, 36}
WHEEL = {
    "american": ["0", "00"] + [str(n) for n in NUMBERS],
    "european": ["0"] + [str(n) for n in NUMBERS],
}
PAYOUT = {
    "straight": 35,
    "split": 17,
    "street": 11,
    "trio": 11,
    "corner": 8,
    "four": 8,
    "basket": 6,
    "line": 5,
    "dozen": 2,
    "column": 2,
    "color": 1,
    "parity": 1,
    "half": 1,
}


def key(p):
    return {"0": -1, "00": 0}.get(p) if p in ("0", "00") else int(p)


def cell(n):
    """(row, column) of a number on the layout grid, both from 0."""
    return (n - 1) // 3, (n - 1) % 3


def at(row, col):
    return row * 3 + col + 1


def group(kind_word, pockets):
    return kind_word + " " + "-".join(sorted(pockets, key=key))


def expected_layout(wheel):
    """name -> (kind, winning pockets) for every bet on this wheel, from geometry."""
    bets = {}

    def add(name, kind, pockets):
        bets[name] = (kind, frozenset(str(p) for p in pockets))

    for p in WHEEL[wheel]:
        add(p, "straight", [p])
    for a, b in itertools.combinations(NUMBERS, 2):
        (ra, ca), (rb, cb) = cell(a), cell(b)
        if abs(ra - rb) + abs(ca - cb) == 1:
            add(group("SPLIT", [str(a), str(b)]), "split", [a, b])
    zero_splits = {
        "american": [("0", "1"), ("0", "2"), ("00", "2"), ("00", "3"), ("0", "00")],
        "european": [("0", "1"), ("0", "2"), ("0", "3")],
    }[wheel]
    for pair in zero_splits:
        add(group("SPLIT", pair), "split", pair)
    for row in range(12):
        add(f"STREET {at(row, 0)}", "street", [at(row, c) for c in range(3)])
    for row in range(11):
        add(f"LINE {at(row, 0)}", "line", [at(r, c) for r in (row, row + 1) for c in range(3)])
        for col in range(2):
            quad = [at(r, c) for r in (row, row + 1) for c in (col, col + 1)]
            add(group("CORNER", [str(n) for n in quad]), "corner", quad)
    trios = {
        "american": [("0", "1", "2"), ("0", "00", "2"), ("00", "2", "3")],
        "european": [("0", "1", "2"), ("0", "2", "3")],
    }[wheel]
    for trio in trios:
        add(group("TRIO", trio), "trio", trio)
    if wheel == "european":
        add("FOUR", "four", ["0", "1", "2", "3"])
    else:
        add("BASKET", "basket", ["0", "00", "1", "2", "3"])
    for d in (1, 2, 3):
        add(f"DOZEN{d}", "dozen", range(12 * d - 11, 12 * d + 1))
    add("COLUMN1", "column", range(1, 35, 3))
    add("COLUMN2", "column", range(2, 36, 3))
    add("COLUMN3", "column", range(3, 37, 3))
    add("RED", "color", RED)
    add("BLACK", "color", set(NUMBERS) - RED)
    add("EVEN", "parity", range(2, 37, 2))
    add("ODD", "parity", range(1, 37, 2))
    add("LOW", "half", range(1, 19))
    add("HIGH", "half", range(19, 37))
    return bets


LAYOUT = {w: expected_layout(w) for w in KINDS}


# ---------------------------------------------------------------------------
# Layout and payouts
# ---------------------------------------------------------------------------


def test_layout_sizes():
    """Independent counts: 57 inside splits, 22 corners, 12 streets, 11 lines."""
    for wheel in KINDS:
        kinds = [k for k, _ in LAYOUT[wheel].values()]
        assert kinds.count("corner") == 22
        assert kinds.count("street") == 12
        assert kinds.count("line") == 11
    assert sum(k == "split" for k, _ in LAYOUT["american"].values()) == 57 + 5
    assert sum(k == "split" for k, _ in LAYOUT["european"].values()) == 57 + 3


@pytest.mark.parametrize("wheel", KINDS)
def test_all_bets_matches_independent_layout(wheel):
    got = {b.name: (b.kind, b.pockets, b.payout) for b in all_bets(wheel)}
    want = {n: (k, p, PAYOUT[k]) for n, (k, p) in LAYOUT[wheel].items()}
    assert got == want


@pytest.mark.parametrize("wheel", KINDS)
@pytest.mark.parametrize("bet_kind", sorted(PAYOUT))
def test_every_bet_on_every_pocket(wheel, bet_kind):
    """Each valid bet of this kind, placed and resolved on every pocket of the wheel."""
    names = [n for n, (k, _) in LAYOUT[wheel].items() if k == bet_kind]
    if bet_kind == "four":
        assert names == ([] if wheel == "american" else ["FOUR"])
    elif bet_kind == "basket":
        assert names == ([] if wheel == "european" else ["BASKET"])
    else:
        assert names
    for name in names:
        bet = parse_bet(name, wheel)
        winners = LAYOUT[wheel][name][1]
        assert (bet.name, bet.kind, bet.pockets, bet.payout) == (name, bet_kind, winners, PAYOUT[bet_kind])
        for pocket in WHEEL[wheel]:
            table = Table(100, wheel_kind=wheel)
            table.place(bet, 7)
            assert table.bankroll == 93
            result = table.resolve(pocket)
            (outcome,) = result.outcomes
            won = pocket in winners
            returned = 7 + 7 * PAYOUT[bet_kind] if won else 0
            assert (outcome.won, outcome.returned, outcome.amount) == (won, returned, 7)
            assert table.bankroll == result.bankroll == 93 + returned
            assert result.net == returned - 7
            assert table.bets == [] and table.staked == 0 and table.rounds == 1


@pytest.mark.parametrize("wheel", KINDS)
def test_zeros_lose_every_outside_bet(wheel):
    outside = [n for n, (k, _) in LAYOUT[wheel].items() if k in ("dozen", "column", "color", "parity", "half")]
    assert len(outside) == 12
    for zero in ("0", "00") if wheel == "american" else ("0",):
        table = Table(1000, wheel_kind=wheel)
        for name in outside:
            table.place(parse_bet(name, wheel), 10)
        result = table.resolve(zero)
        assert not any(o.won for o in result.outcomes)
        assert result.net == -120 and table.bankroll == 880


@pytest.mark.parametrize("wheel", KINDS)
def test_house_edge_by_enumeration(wheel):
    for name, (kind, winners) in LAYOUT[wheel].items():
        bet = parse_bet(name, wheel)
        total = sum(PAYOUT[kind] if p in winners else -1 for p in WHEEL[wheel])
        assert house_edge(bet, wheel) == Fraction(-total, len(WHEEL[wheel]))
        if wheel == "european":
            assert house_edge(bet, wheel) == Fraction(1, 37)
        elif name == "BASKET":
            assert house_edge(bet, wheel) == Fraction(3, 38)
            assert round(float(house_edge(bet, wheel)) * 100, 2) == 7.89
        else:
            assert house_edge(bet, wheel) == Fraction(2, 38)


def test_house_edge_refuses_bet_from_other_wheel():
    with pytest.raises(BetNotOnLayout):
        house_edge(parse_bet("FOUR", "european"), "american")
    with pytest.raises(BetNotOnLayout):
        house_edge(parse_bet("00", "american"), "european")


# ---------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("wheel", KINDS)
def test_every_pair_split_valid_iff_adjacent(wheel):
    for a, b in itertools.combinations(WHEEL[wheel], 2):
        name = group("SPLIT", [a, b])
        for text in (f"SPLIT {a}-{b}", f"split {b}-{a}"):
            if name in LAYOUT[wheel]:
                assert parse_bet(text, wheel).name == name
            else:
                with pytest.raises(BetNotOnLayout):
                    parse_bet(text, wheel)


@pytest.mark.parametrize("wheel", KINDS)
def test_every_triple_trio_valid_iff_allowed(wheel):
    for triple in itertools.combinations(WHEEL[wheel], 3):
        name = group("TRIO", triple)
        text = "TRIO " + "-".join(reversed(triple))
        if name in LAYOUT[wheel]:
            assert parse_bet(text, wheel).name == name
        else:
            with pytest.raises(BetNotOnLayout):
                parse_bet(text, wheel)


@pytest.mark.parametrize("wheel", KINDS)
def test_streets_and_lines_named_by_first_number(wheel):
    for n in range(0, 40):
        for word in ("STREET", "LINE"):
            name = f"{word} {n}"
            if name in LAYOUT[wheel]:
                assert parse_bet(name, wheel).name == name
            else:
                with pytest.raises(BetNotOnLayout):
                    parse_bet(name, wheel)


@settings(max_examples=300, deadline=None)
@given(wheel=st.sampled_from(KINDS), data=st.data())
def test_any_four_pockets_corner_iff_they_meet(wheel, data):
    quad = data.draw(st.lists(st.sampled_from(WHEEL[wheel]), min_size=4, max_size=4, unique=True))
    name = group("CORNER", quad)
    if LAYOUT[wheel].get(name, ("",))[0] == "corner":
        assert parse_bet("corner " + "-".join(quad), wheel).name == name
    else:
        with pytest.raises(BetNotOnLayout):
            parse_bet("CORNER " + "-".join(quad), wheel)


@settings(max_examples=200, deadline=None)
@given(wheel=st.sampled_from(KINDS), data=st.data())
def test_group_numbers_in_any_order_and_any_case(wheel, data):
    names = [n for n, (k, _) in LAYOUT[wheel].items() if k in ("split", "trio", "corner")]
    name = data.draw(st.sampled_from(names))
    word, numbers = name.split()
    shuffled = data.draw(st.permutations(numbers.split("-")))
    text = data.draw(st.sampled_from([str.lower, str.upper, str.title]))(word)
    assert parse_bet(f"  {text}   {'-'.join(shuffled)} ", wheel) == parse_bet(name, wheel)


@pytest.mark.parametrize(
    "text, wheel, name",
    [
        ("red", "american", "RED"),
        ("  Black ", "european", "BLACK"),
        ("hi", "american", "HIGH"),
        ("LO", "european", "LOW"),
        ("dozen2", "american", "DOZEN2"),
        ("Column3", "european", "COLUMN3"),
        ("00", "american", "00"),
        ("0", "european", "0"),
        ("36", "european", "36"),
        ("basket", "american", "BASKET"),
        ("four", "european", "FOUR"),
        ("split 18-17", "american", "SPLIT 17-18"),
        ("SPLIT 00-0", "american", "SPLIT 0-00"),
        ("SPLIT 3-00", "american", "SPLIT 00-3"),
        ("trio 2-00-0", "american", "TRIO 0-00-2"),
        ("trio 3-2-0", "european", "TRIO 0-2-3"),
        ("CORNER 21-20-18-17", "american", "CORNER 17-18-20-21"),
        ("street 13", "american", "STREET 13"),
        ("line 31", "european", "LINE 31"),
    ],
)
def test_parse_canonical_names(text, wheel, name):
    assert parse_bet(text, wheel).name == name


SYNTAX_ERRORS = [
    "",
    "   ",
    "BANANA",
    "RED 5",
    "17 18",
    "SPLIT",
    "SPLIT 17",
    "SPLIT 17-",
    "SPLIT -17",
    "SPLIT a-b",
    "SPLIT 17--18",
    "SPLIT 17_18",
    "SPLIT 17-18-19",
    "SPLIT 17-18 19",
    "STREET",
    "STREET x",
    "STREET 13-14-15",
    "LINE",
    "LINE 1-6",
    "TRIO 0-1",
    "CORNER 1-2-3",
    "CORNER 1-2-4-5-6",
    "DOZEN",
    "COLUMNX",
    "-17",
    "17.5",
    "+5",
    "１７",
    "RED\x00",
    "FOUR 0-1-2-3",
    "BASKET 0-00-1-2-3",
    "HIGHER",
    "x" * 5000,
]

LAYOUT_ERRORS = [
    ("00", "european"),
    ("BASKET", "european"),
    ("FOUR", "american"),
    ("SPLIT 17-19", "american"),
    ("SPLIT 17-19", "european"),
    ("STREET 14", "american"),
    ("LINE 34", "european"),
    ("CORNER 1-2-3-4", "american"),
    ("CORNER 0-1-2-3", "european"),
    ("CORNER 3-4-6-7", "american"),
    ("37", "american"),
    ("07", "american"),
    ("000", "american"),
    ("99999999999999999999", "european"),
    ("SPLIT 0-3", "american"),
    ("SPLIT 00-1", "american"),
    ("SPLIT 0-00", "european"),
    ("SPLIT 3-4", "european"),
    ("SPLIT 17-17", "american"),
    ("SPLIT 36-37", "american"),
    ("TRIO 1-2-3", "european"),
    ("TRIO 0-00-2", "european"),
    ("TRIO 0-2-3", "american"),
    ("DOZEN4", "american"),
    ("DOZEN0", "european"),
    ("COLUMN4", "american"),
    ("STREET 0", "american"),
    ("STREET 37", "american"),
    ("LINE 0", "european"),
    ("LINE 32", "american"),
    ("STREET 013", "american"),
    ("SPLIT " + "1" * 5000 + "-2", "american"),
    ("STREET " + "9" * 5000, "european"),
]


@pytest.mark.parametrize("wheel", KINDS)
@pytest.mark.parametrize("text", SYNTAX_ERRORS, ids=lambda t: repr(t[:20]))
def test_syntax_errors(text, wheel):
    with pytest.raises(BetSyntaxError) as info:
        parse_bet(text, wheel)
    assert not isinstance(info.value, BetNotOnLayout)
    check_message(str(info.value))


@pytest.mark.parametrize("text, wheel", LAYOUT_ERRORS, ids=lambda t: repr(t[:20]))
def test_layout_errors(text, wheel):
    with pytest.raises(BetNotOnLayout) as info:
        parse_bet(text, wheel)
    assert not isinstance(info.value, BetSyntaxError)
    check_message(str(info.value))


def check_message(message):
    assert message and message.isprintable() and len(message) < 120


def test_specific_messages():
    with pytest.raises(BetNotOnLayout, match=r"^SPLIT 17-19: 17 and 19 are not adjacent$"):
        parse_bet("split 17-19", "american")
    with pytest.raises(BetNotOnLayout, match="European"):
        parse_bet("00", "european")
    with pytest.raises(BetNotOnLayout, match=re.escape("1, 4, 7, ..., 34")):
        parse_bet("STREET 14", "american")


def test_error_hierarchy():
    assert issubclass(BetSyntaxError, BetError) and issubclass(BetNotOnLayout, BetError)
    assert issubclass(BadAmount, BetError) and issubclass(BetError, ValueError)
    for cls in (BelowMinimum, AboveMaximum, InsufficientChips, BetsOpen):
        assert issubclass(cls, TableError)


def test_unknown_wheel_kind():
    with pytest.raises(UnknownWheel):
        parse_bet("RED", "french")
    with pytest.raises(UnknownWheel):
        Wheel("triple-zero")
    with pytest.raises(UnknownWheel):
        Table(10, wheel_kind="")


@settings(max_examples=500, deadline=None)
@given(
    text=st.text(max_size=30) | st.from_regex(r"(SPLIT|TRIO|CORNER|STREET|LINE) [0-9-]{0,12}", fullmatch=True),
    wheel=st.sampled_from(KINDS),
)
def test_parse_never_fails_other_than_bet_error(text, wheel):
    try:
        bet = parse_bet(text, wheel)
    except BetError as err:
        check_message(str(err))
    else:
        assert bet.name in LAYOUT[wheel]
        assert parse_bet(bet.name, wheel) == bet


# ---------------------------------------------------------------------------
# Pockets and wheels
# ---------------------------------------------------------------------------


def test_pocket_properties_every_pocket():
    for zero in ("0", "00"):
        info = pocket_properties(zero)
        assert info == PocketInfo(zero, "green", None, None, None, None)
        assert info.describe() == f"{zero} green"
    for n in NUMBERS:
        info = pocket_properties(str(n))
        assert info.color == ("red" if n in RED else "black")
        assert info.parity == ("even" if n % 2 == 0 else "odd")
        assert info.half == ("high" if 19 <= n <= 36 else "low")
        assert info.dozen == (1 if n <= 12 else 2 if n <= 24 else 3)
        assert info.column == {1: 1, 2: 2, 0: 3}[n % 3]
        assert info.describe() == (f"{n} {info.color} {info.parity} {info.half} dozen{info.dozen} column{info.column}")
    assert pocket_properties("17").describe() == "17 black odd low dozen2 column2"
    assert pocket_properties("18").half == "low" and pocket_properties("19").half == "high"
    assert [n for n in NUMBERS if pocket_properties(str(n)).column == 3] == list(range(3, 37, 3))
    assert pocket_properties("12").dozen == 1 and pocket_properties("13").dozen == 2
    assert pocket_properties("24").dozen == 2 and pocket_properties("25").dozen == 3
    for bad in ("37", "000", "-1", "", "07", 17, None):
        with pytest.raises(UnknownPocket):
            pocket_properties(bad)


def test_wheel_pockets():
    assert Wheel("american").pockets == tuple(WHEEL["american"])
    assert Wheel("european").pockets == tuple(WHEEL["european"])
    assert Wheel().kind == "american"


def test_unseeded_wheel_uses_system_random():
    wheel = Wheel("european")
    assert isinstance(wheel.rng, secrets.SystemRandom)
    assert type(Wheel("american", seed=1).rng) is random.Random
    assert all(wheel.spin() in WHEEL["european"] for _ in range(200))


def test_seeded_wheel_replays():
    a, b = Wheel("american", seed=99), Wheel("american", seed=99)
    assert [a.spin() for _ in range(100)] == [b.spin() for _ in range(100)]
    with pytest.raises(TypeError):
        Wheel(seed=True)


def chi_square(counts, expected):
    return sum((c - expected) ** 2 / expected for c in counts)


def chi_square_critical(df, p=0.001):
    """Upper critical value of chi-square (Wilson-Hilferty approximation)."""
    z = NormalDist().inv_cdf(1 - p)
    return df * (1 - 2 / (9 * df) + z * (2 / (9 * df)) ** 0.5) ** 3


def test_chi_square_critical_values_match_tables():
    assert chi_square_critical(36) == pytest.approx(67.985, abs=0.3)
    assert chi_square_critical(37) == pytest.approx(69.346, abs=0.3)


@pytest.mark.parametrize("kind, seed", [("american", 20240601), ("european", 7)])
def test_seeded_wheel_is_uniform(kind, seed):
    wheel = Wheel(kind, seed=seed)
    pockets = wheel.pockets
    per_pocket = 400
    spins = [wheel.spin() for _ in range(per_pocket * len(pockets))]
    counts = [spins.count(p) for p in pockets]
    critical = chi_square_critical(len(pockets) - 1)
    assert chi_square(counts, per_pocket) < critical
    # The same check does catch a wheel on which one pocket is 50% more likely.
    weights = [1.5] + [1.0] * (len(pockets) - 1)
    rigged = random.Random(seed).choices(pockets, weights, k=len(spins))
    assert chi_square([rigged.count(p) for p in pockets], per_pocket) > critical


# ---------------------------------------------------------------------------
# Table
# ---------------------------------------------------------------------------


def test_place_takes_chips_and_clear_returns_them():
    table = Table(100)
    red = parse_bet("RED", "american")
    assert table.place(red, 10) == OpenBet(red, 10, slip=1)
    assert table.place(parse_bet("17", "american"), 5).slip == 2
    assert (table.bankroll, table.staked) == (85, 15)
    assert [b.bet.name for b in table.bets] == ["RED", "17"]
    assert table.clear() == 15
    assert (table.bankroll, table.staked, table.bets, table.rounds) == (100, 0, [], 0)
    assert table.clear() == 0
    assert (table.place(red, 1).slip, table.slips) == (3, 3)  # slips go on counting after a clear


def test_resolve_several_bets_at_once():
    table = Table(100)
    for text, amount in (("RED", 10), ("17", 5), ("split 18-17", 5)):
        table.place(parse_bet(text, "american"), amount)
    result = table.resolve("17")
    assert [(o.bet.name, o.won, o.returned) for o in result.outcomes] == [
        ("RED", False, 0),
        ("17", True, 180),
        ("SPLIT 17-18", True, 90),
    ]
    assert (result.net, result.staked, result.returned) == (250, 20, 270)
    assert result.bankroll == table.bankroll == 350
    assert result.info == pocket_properties("17") and result.pocket == "17"


def test_spin_without_bets_counts_a_round():
    table = Table(50, rounds=3)
    result = table.resolve("0")
    assert (result.rounds, table.rounds, result.net, result.outcomes, table.bankroll) == (4, 4, 0, (), 50)


def refused(table, action, error):
    before = table.snapshot()
    with pytest.raises(error):
        action()
    assert table.snapshot() == before


def test_refusals_change_nothing():
    table = Table(100, limits=Limits(5, 50))
    table.place(parse_bet("RED", "american"), 20)
    red = parse_bet("RED", "american")
    refused(table, lambda: table.place(red, 4), BelowMinimum)
    refused(table, lambda: table.place(red, 51), AboveMaximum)
    table2 = Table(30, limits=Limits(5, 50))
    refused(table2, lambda: table2.place(red, 31), InsufficientChips)
    table2.place(red, 30)
    assert table2.bankroll == 0
    refused(table2, lambda: table2.place(red, 5), InsufficientChips)
    for amount in (0, -1, True, False, "10", 10.0, None):
        refused(table, lambda amount=amount: table.place(red, amount), BadAmount)
    refused(table, lambda: table.place(parse_bet("FOUR", "european"), 10), BetNotOnLayout)
    refused(table, lambda: table.place(Bet("17", "straight", frozenset({"17"}), 100), 10), BetNotOnLayout)
    refused(table, lambda: table.place(Bet("HOUSE", "straight", frozenset({"17"}), 35), 10), BetNotOnLayout)
    refused(table, lambda: table.set_wheel("european"), BetsOpen)
    refused(table, lambda: table.resolve("37"), UnknownPocket)
    eu = Table(100, wheel_kind="european")
    refused(eu, lambda: eu.place(parse_bet("00", "american"), 10), BetNotOnLayout)
    refused(eu, lambda: eu.place(parse_bet("SPLIT 0-00", "american"), 10), BetNotOnLayout)
    refused(eu, lambda: eu.resolve("00"), UnknownPocket)


def test_limits_apply_per_bet():
    table = Table(1000, limits=Limits(10, 100))
    for _ in range(5):
        table.place(parse_bet("RED", "american"), 100)
    table.place(parse_bet("BLACK", "american"), 10)
    assert table.staked == 510
    with pytest.raises(ValueError):
        Limits(0, 10)
    with pytest.raises(ValueError):
        Limits(10, 5)


def test_bets_identical_on_both_wheels_are_placeable():
    """A bet that exists identically on both layouts is accepted on either table."""
    eu = Table(100, wheel_kind="european")
    eu.place(parse_bet("TRIO 0-1-2", "american"), 10)
    eu.place(parse_bet("RED", "american"), 10)
    assert eu.staked == 20


def test_set_wheel():
    table = Table(100)
    table.set_wheel("european")
    assert table.wheel_kind == "european"
    table.place(parse_bet("FOUR", "european"), 10)
    table.set_wheel("european")  # not a change
    with pytest.raises(BetsOpen):
        table.set_wheel("american")
    table.clear()
    table.set_wheel("american")
    assert table.wheel_kind == "american"
    with pytest.raises(UnknownWheel):
        table.set_wheel("french")


def test_tables_share_no_state():
    a, b = Table(100), Table(100)
    a.place(parse_bet("RED", "american"), 10)
    a.bets.clear()  # a copy: the table is not affected
    assert (len(a.bets), b.bets, b.bankroll) == (1, [], 100)


def test_snapshot_round_trip():
    table = Table(500, wheel_kind="european", rounds=12)
    for text, amount in (("split 2-0", 5), ("FOUR", 10), ("RED", 20), ("corner 21-17-18-20", 1)):
        table.place(parse_bet(text, "european"), amount)
    snap = table.snapshot()
    assert snap == {
        "wheel_kind": "european",
        "bankroll": 464,
        "rounds": 12,
        "bets": [["SPLIT 0-2", 5, 1], ["FOUR", 10, 2], ["RED", 20, 3], ["CORNER 17-18-20-21", 1, 4]],
        "slips": 4,
    }
    copy = Table.from_snapshot(json.loads(json.dumps(snap)))
    assert copy.snapshot() == snap
    assert copy.bets == table.bets
    assert copy.resolve("2").net == table.resolve("2").net


@pytest.mark.parametrize(
    "change",
    [
        {"bankroll": -1},
        {"bankroll": True},
        {"bankroll": "5"},
        {"rounds": -2},
        {"wheel_kind": "french"},
        {"bets": [["RED", 0]]},
        {"bets": [["BANANA", 5]]},
        {"bets": [["00", 5]]},
        {"bets": "RED"},
        {"bets": [["RED"]]},
        {"bets": [["RED", True, 1]]},
        {"bets": [["RED", 5]]},
        {"bets": [["RED", 5, -1]]},
        {"bets": [["RED", 5, 2]]},  # a slip above the table's count
        {"bets": [["RED", 5, 1], ["BLACK", 5, 1]]},  # two bets, one slip
        {"slips": -1},
        {"extra": 1},
    ],
)
def test_from_snapshot_refuses_bad_data(change):
    snap = {"wheel_kind": "european", "bankroll": 10, "rounds": 0, "bets": [["RED", 5, 1]], "slips": 1}
    Table.from_snapshot(snap)  # the unchanged snapshot is good
    snap.update(change)
    with pytest.raises(ValueError):
        Table.from_snapshot(snap)


def test_from_snapshot_refuses_missing_key():
    with pytest.raises(ValueError):
        Table.from_snapshot({"wheel_kind": "american", "bankroll": 10, "rounds": 0})


# ---------------------------------------------------------------------------
# Conservation of chips under any sequence of operations
# ---------------------------------------------------------------------------

BOTH_WHEELS_BETS = sorted({b for w in KINDS for b in all_bets(w)}, key=lambda b: b.name)


class ChipConservation(RuleBasedStateMachine):
    """No sequence of place/clear/resolve/set_wheel/credit creates or loses a chip: the audit balances."""

    @initialize(start=st.integers(0, 2000), kind=st.sampled_from(KINDS))
    def start(self, start, kind):
        self.start = start
        self.table = Table(start, wheel_kind=kind, limits=Limits(2, 300))
        self.house_net = 0
        self.credits = 0
        self.record = PlayRecord()
        self.placed = 0

    @rule(bet=st.sampled_from(BOTH_WHEELS_BETS), amount=st.integers(-3, 400) | st.just(True))
    def place(self, bet, amount):
        before = self.table.snapshot()
        try:
            self.table.place(bet, amount)
        except (BetError, TableError):
            assert self.table.snapshot() == before
        else:
            assert self.table.bankroll == before["bankroll"] - amount
            self.placed += 1
            assert self.table.bets[-1].slip == self.table.slips == self.placed

    @rule(amount=st.integers(-3000, 3000))
    def credit(self, amount):
        before = self.table.snapshot()
        try:
            self.table.credit(amount)
        except (BadCredit, BelowZero):
            assert amount == 0 or before["bankroll"] + amount < 0
            assert self.table.snapshot() == before
        else:
            self.credits += amount

    @rule()
    def clear(self):
        before = self.table.bankroll
        bets = self.table.bets
        returned = self.table.clear()
        self.record.note(bets, self.table, returned, "t")
        assert [self.record.slip(b.slip, self.table).state for b in bets] == [CLEARED] * len(bets)
        assert self.table.bankroll == before + returned
        assert self.table.staked == 0

    @rule(pocket=st.sampled_from(WHEEL["american"]))
    def resolve(self, pocket):
        before = self.table.snapshot()
        try:
            result = self.table.resolve(pocket)
        except UnknownPocket:
            assert self.table.snapshot() == before
            return
        assert result.net == sum(o.returned for o in result.outcomes) - sum(o.amount for o in result.outcomes)
        assert result.rounds == before["rounds"] + 1 and self.table.staked == 0
        self.house_net -= result.net
        self.record.note([], self.table, result, "t")
        assert self.record.history(1)[0].net == result.net

    @rule(kind=st.sampled_from(KINDS))
    def set_wheel(self, kind):
        before = self.table.snapshot()
        try:
            self.table.set_wheel(kind)
        except BetsOpen:
            assert self.table.snapshot() == before

    @invariant()
    def chips_are_conserved(self):
        assert self.table.bankroll >= 0
        assert self.table.bankroll + self.table.staked + self.house_net == self.start + self.credits
        audit = ChipAudit("p", self.start, self.credits, -self.house_net, self.table.bankroll, self.table.staked)
        assert audit.difference == 0
        for open_bet in self.table.bets:
            assert self.record.slip(open_bet.slip, self.table).state == OPEN
        snap = self.table.snapshot()
        assert Table.from_snapshot(json.loads(json.dumps(snap))).snapshot() == snap


ChipConservation.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
TestChipConservation = ChipConservation.TestCase


def test_open_bets_are_capped_and_a_refusal_changes_nothing():
    from lineproto.domain.roulette import MAX_OPEN_BETS, TooManyBets

    table = Table(10_000)
    red = parse_bet("RED", "american")
    for _ in range(MAX_OPEN_BETS):
        table.place(red, 1)
    before = table.snapshot()
    with pytest.raises(TooManyBets):
        table.place(red, 1)
    assert table.snapshot() == before
    table.resolve("0")
    table.place(red, 1)  # a spin clears the felt


# ---------------------------------------------------------------------------
# Receipts, history and the cashier
# ---------------------------------------------------------------------------


def test_the_cashier_adds_and_takes_chips_in_hand_never_below_zero():
    table = Table(100)
    table.place(parse_bet("RED", "american"), 60)
    assert table.credit(+50) == 90
    assert table.credit(-90) == 0
    before = table.snapshot()
    with pytest.raises(BelowZero, match="holds 0 chips: taking 1 would leave it below zero"):
        table.credit(-1)  # the 60 on the open bet are not the cashier's
    for bad in (0, True, 2.5, "5", MAX_CREDIT + 1, -MAX_CREDIT - 1):
        with pytest.raises(BadCredit):
            table.credit(bad)
    assert table.snapshot() == before


def test_a_play_record_keeps_every_bets_receipt_and_the_rounds_newest_first():
    table, record = Table(100), PlayRecord()
    red, seventeen = parse_bet("RED", "american"), parse_bet("17", "american")

    def change(act):
        bets = table.bets
        record.note(bets, table, act(), "2026-12-02T01:00:00+00:00")

    change(lambda: table.place(red, 10))
    change(lambda: table.place(seventeen, 5))
    assert record.slip(2, table) == Slip(2, PRIVATE_TABLE, 1, "17", 5, OPEN)
    change(lambda: table.resolve("17"))
    change(lambda: table.place(red, 3))
    change(lambda: table.clear())
    assert [record.slip(n, table) for n in (1, 2, 3, 4)] == [
        Slip(1, PRIVATE_TABLE, 1, "RED", 10, LOST, 0),
        Slip(2, PRIVATE_TABLE, 1, "17", 5, WON, 180),
        Slip(3, PRIVATE_TABLE, 2, "RED", 3, CLEARED, 3),
        None,
    ]
    record.note_credit(CreditRecord(1, "guest", "t", "root", 20, "bonus", table.bankroll + 20))
    newest, oldest = record.history(10)
    assert (newest.amount, newest.bankroll_before) == (20, 265)
    assert (oldest.round, oldest.pocket, oldest.bankroll_before, oldest.bankroll_after, oldest.net) == (
        1,
        "17",
        100,
        265,
        165,
    )
    assert record.history(1) == [newest]


def test_a_play_record_is_bounded():
    table, record = Table(10_000), PlayRecord(max_entries=3, max_slips=4)
    red = parse_bet("RED", "american")
    for _ in range(5):
        table.place(red, 1)
        table.place(red, 1)
        record.note([], table, table.resolve("1"), "t")
    assert [entry.round for entry in record.history(100)] == [5, 4, 3]
    assert [n for n in range(1, 11) if record.slip(n, table)] == [7, 8, 9, 10]


def test_a_chip_audit_says_how_many_chips_the_ledger_does_not_explain():
    audit = ChipAudit("dave", start=1000, credits=50, net=-30, bankroll=990, open_bets=40)
    assert (audit.held, audit.expected, audit.difference) == (1030, 1020, 10)
