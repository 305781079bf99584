"""Password hashing and the user directory."""

import pytest

from lineproto.domain import accounts
from lineproto.domain.accounts import (
    AccountError,
    User,
    UserDirectory,
    format_user,
    hash_password,
    parse_users,
    verify_password,
)

CHEAP = {"n": 2**8, "r": 8, "p": 1}


def test_hash_is_salted_and_verifies():
    first, second = hash_password("pw", **CHEAP), hash_password("pw", **CHEAP)
    assert first != second  # a fresh salt each time
    assert first.startswith("scrypt$256$8$1$")
    assert verify_password("pw", first) and not verify_password("pW", first)
    assert not verify_password("pw", "garbage") and not verify_password("pw", "md5$1$2$3$4$5")


def test_default_cost_is_slow_enough():
    assert accounts.SCRYPT_N >= 2**14


def test_unknown_user_costs_one_hash_check_like_a_known_one(monkeypatch):
    directory = UserDirectory({"carol": User("carol", "Carol", frozenset({"reader"}), hash_password("pw", **CHEAP))})
    calls = []
    real = accounts._scrypt
    monkeypatch.setattr(accounts, "_scrypt", lambda *a: calls.append(a[2:]) or real(*a))
    full = (accounts.SCRYPT_N, accounts.SCRYPT_R, accounts.SCRYPT_P)
    cheap = (CHEAP["n"], CHEAP["r"], CHEAP["p"])
    assert directory.authenticate("carol", "pw").name == "carol"
    assert calls == [cheap]
    calls.clear()
    assert directory.authenticate("nobody", "pw") is None
    assert calls == [full]  # an unknown name: the dummy hash, at the directory's full cost
    calls.clear()
    # A wrong password on an account with a cheap hash must not answer faster than an unknown
    # name (that would tell which names exist): its own check, then the full-cost dummy.
    assert directory.authenticate("carol", "no") is None
    assert calls == [cheap, full]


def test_an_old_cost_hash_is_replaced_at_the_next_good_login():
    saved = []
    carol = User("carol", "Carol", frozenset({"reader"}), hash_password("pw", **CHEAP))
    directory = UserDirectory(lookup={"carol": carol}.get, save=saved.append, cost=accounts.HashCost(2**10, 8, 1))
    assert directory.authenticate("carol", "no") is None and saved == []
    user = directory.authenticate("carol", "pw")
    assert saved == [user] and accounts.hash_cost(user.password_hash) == accounts.HashCost(2**10, 8, 1)
    assert verify_password("pw", user.password_hash)


def test_a_directory_at_the_hashes_cost_checks_once(monkeypatch):
    calls = []
    cost = accounts.HashCost(CHEAP["n"], CHEAP["r"], CHEAP["p"])
    directory = UserDirectory({"carol": User("carol", "Carol", frozenset(), hash_password("pw", **CHEAP))}, cost=cost)
    real = accounts._scrypt
    monkeypatch.setattr(accounts, "_scrypt", lambda *a: calls.append(a[2:]) or real(*a))
    assert directory.authenticate("carol", "no") is None
    assert directory.authenticate("nobody", "no") is None
    assert calls == [(CHEAP["n"], CHEAP["r"], CHEAP["p"])] * 2


def test_users_file_round_trip():
    user = User("carol", "Carol: the Reader", frozenset({"reader", "admin"}), hash_password("x", **CHEAP))
    text = "# comment\n\n" + format_user(user) + "\n"
    assert parse_users(text.splitlines()) == {"carol": user}


@pytest.mark.parametrize("line", ["carol:reader:hash", "ca rol:reader:h:Carol", "carol:wizard:h:Carol"])
def test_bad_users_lines(line):
    with pytest.raises(AccountError, match="line 1"):
        parse_users([line])
