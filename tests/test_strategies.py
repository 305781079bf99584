"""Tests for lineproto.strategies: stake sequences, caps, resets and stopping."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lineproto.strategies import Flat, Martingale, OneThreeTwoSix, make_strategy


def play(strategy, outcomes, budget):
    """Bet through ``outcomes`` (True = win, even money) and return the stakes; None marks a stop."""
    stakes = []
    for won in outcomes:
        stake = strategy.next_stake(budget)
        stakes.append(stake)
        if stake is None:
            break
        budget += stake if won else -stake
        strategy.record(won)
    return stakes


W, L = True, False


def test_flat_always_base():
    assert play(Flat(5, 100), [L, W, L, L, W], 1000) == [5, 5, 5, 5, 5]


def test_flat_stops_when_budget_short():
    assert play(Flat(5, 100), [L, L, L], 12) == [5, 5, None]


def test_martingale_doubles_after_loss_and_resets_after_win():
    assert play(Martingale(10, 1000), [L, L, L, W, L, W, W], 10_000) == [10, 20, 40, 80, 10, 20, 10]


def test_martingale_capped_at_table_max():
    assert play(Martingale(10, 100), [L, L, L, L, L, L, W, W], 10_000) == [10, 20, 40, 80, 100, 100, 100, 10]


def test_martingale_stops_when_budget_cannot_cover_next_bet():
    # 100 - 10 - 20 - 40 = 30 left, and the next stake is 80.
    assert play(Martingale(10, 500), [L, L, L, L], 100) == [10, 20, 40, None]


def test_martingale_next_stake_is_a_query():
    m = Martingale(10, 500)
    m.record(L)
    assert m.next_stake(5) is None
    assert m.next_stake(20) == 20
    assert m.next_stake(1000) == 20


def test_1326_full_cycle_then_restart():
    assert play(OneThreeTwoSix(10, 1000), [W, W, W, W, W, W], 10_000) == [10, 30, 20, 60, 10, 30]


def test_1326_resets_on_any_loss():
    assert play(OneThreeTwoSix(10, 1000), [W, L, W, W, L, L, W], 10_000) == [10, 30, 10, 30, 20, 10, 10]
    assert play(OneThreeTwoSix(10, 1000), [W, W, W, L, W], 10_000) == [10, 30, 20, 60, 10]


def test_1326_capped_at_table_max():
    assert play(OneThreeTwoSix(10, 25), [W, W, W, W], 10_000) == [10, 25, 20, 25]


def test_1326_stops_when_budget_short():
    # 25 + 10 = 35, then 30 is lost: 5 left, less than the next stake of 10.
    assert play(OneThreeTwoSix(10, 1000), [W, L, W], 25) == [10, 30, None]
    # 15 + 10 = 25: the next stake of 30 cannot be covered.
    assert play(OneThreeTwoSix(10, 1000), [W, L], 15) == [10, None]
    # Exactly enough is enough.
    assert play(OneThreeTwoSix(10, 1000), [W, W, W], 20) == [10, 30, 20]


def test_make_strategy():
    assert type(make_strategy("flat", 1, 10)) is Flat
    assert type(make_strategy("Martingale", 1, 10)) is Martingale
    assert type(make_strategy("1326", 1, 10)) is OneThreeTwoSix
    assert type(make_strategy("1-3-2-6", 1, 10)) is OneThreeTwoSix
    made = make_strategy("martingale", 3, 50)
    assert (made.base, made.table_max) == (3, 50)
    with pytest.raises(ValueError):
        make_strategy("fibonacci", 1, 10)


@pytest.mark.parametrize("base, table_max", [(0, 10), (-1, 10), (11, 10)])
def test_bad_base_or_max(base, table_max):
    with pytest.raises(ValueError):
        Flat(base, table_max)


@pytest.mark.parametrize("base, table_max", [(True, 10), (1.5, 10), (1, "10")])
def test_non_integer_chips(base, table_max):
    with pytest.raises(TypeError):
        Martingale(base, table_max)


def test_instances_do_not_share_state():
    a, b = Martingale(1, 100), Martingale(1, 100)
    a.record(L)
    assert (a.next_stake(100), b.next_stake(100)) == (2, 1)


@given(
    name=st.sampled_from(["flat", "martingale", "1326"]),
    base=st.integers(1, 50),
    extra=st.integers(0, 500),
    budget=st.integers(0, 5000),
    outcomes=st.lists(st.booleans(), max_size=60),
)
def test_stakes_are_whole_chips_within_limits_and_budget(name, base, extra, budget, outcomes):
    strategy = make_strategy(name, base, base + extra)
    for won in outcomes:
        stake = strategy.next_stake(budget)
        if stake is None:
            assert strategy.stake > budget
            break
        assert type(stake) is int and base <= stake <= base + extra and stake <= budget
        budget += stake if won else -stake
        strategy.record(won)
