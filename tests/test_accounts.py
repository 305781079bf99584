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
    assert directory.authenticate("carol", "pw").name == "carol"
    assert directory.authenticate("carol", "no") is None
    assert directory.authenticate("nobody", "pw") is None
    assert len(calls) == 3
    assert calls[2] == (accounts.SCRYPT_N, accounts.SCRYPT_R, accounts.SCRYPT_P)  # the dummy hash's full cost


def test_users_file_round_trip():
    user = User("carol", "Carol: the Reader", frozenset({"reader", "admin"}), hash_password("x", **CHEAP))
    text = "# comment\n\n" + format_user(user) + "\n"
    assert parse_users(text.splitlines()) == {"carol": user}


@pytest.mark.parametrize("line", ["carol:reader:hash", "ca rol:reader:h:Carol", "carol:wizard:h:Carol"])
def test_bad_users_lines(line):
    with pytest.raises(AccountError, match="line 1"):
        parse_users([line])
