"""Login throttling rules, with a fake clock."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lineproto.domain.throttle import LoginThrottle, ThrottlePolicy


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


POLICY = ThrottlePolicy(window=60, free=2, first_delay=1, max_delay=8, budget=6)


def make():
    clock = Clock()
    return LoginThrottle(POLICY, POLICY, clock=clock), clock


def test_delays_grow_then_the_key_locks_and_unlocks_with_time():
    throttle, clock = make()
    delays = [throttle.failed("10.0.0.1", "ada") for _ in range(6)]
    assert delays == [0, 0, 1, 2, 4, 8]
    verdict = throttle.check("10.0.0.1", "ada")
    assert not verdict.allowed and verdict.locked == "address" and verdict.retry_seconds == 60
    clock.now += 59
    assert not throttle.check("10.0.0.1", "ada").allowed
    clock.now += 1
    assert throttle.check("10.0.0.1", "ada").allowed


def test_the_account_locks_whatever_the_address():
    throttle, _ = make()
    for index in range(6):
        throttle.failed(f"10.0.0.{index}", "ada")
    verdict = throttle.check("10.9.9.9", "ada")
    assert verdict.locked == "account" and not verdict.allowed
    assert throttle.check("10.9.9.9", "bob").allowed


def test_a_good_login_and_an_unlock_clear_the_count():
    throttle, _ = make()
    for _ in range(6):
        throttle.failed("10.0.0.1", "ada")
    assert throttle.unlock("ada") and throttle.unlock("10.0.0.1")
    assert throttle.check("10.0.0.1", "ada").allowed
    assert throttle.failed("10.0.0.1", "ada") == 0
    throttle.succeeded("10.0.0.1", "ada")
    assert len(throttle.accounts) == 0 and len(throttle.addresses) == 0


def test_policy_is_checked():
    with pytest.raises(ValueError):
        ThrottlePolicy(free=5, budget=5)


@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.floats(0, 100)), max_size=60))
def test_failures_in_a_window_never_exceed_the_budget_and_delays_stay_bounded(events):
    throttle, clock = make()
    for account, step in events:
        clock.now += step
        if throttle.check("addr", account).allowed:
            delay = throttle.failed("addr", account)
            assert 0 <= delay <= POLICY.max_delay
        assert throttle.accounts.count(account, clock.now) <= POLICY.budget
        assert throttle.addresses.count("addr", clock.now) <= POLICY.budget


def test_a_lock_is_reported_once_until_it_ends():
    throttle, clock = make()
    for _ in range(6):
        throttle.failed("10.0.0.1", "ada")
    firsts = [throttle.check("10.0.0.1", "ada").first for _ in range(3)]
    assert firsts == [True, False, False]
    clock.now += 61
    assert throttle.check("10.0.0.1", "ada").allowed
    for _ in range(6):
        throttle.failed("10.0.0.1", "ada")
    assert throttle.check("10.0.0.1", "ada").first  # a new lock is reported again
