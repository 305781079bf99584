"""Roulette: the wheel, the betting layout, bets and the table that settles them.

Pure domain logic. Nothing here touches sockets, files or reply codes; errors are
exceptions whose messages are short sentences meant to be shown to a player.

Money is always a whole number of chips (``int``). A bet that pays ``35`` gives
back the stake plus 35 chips per chip staked; a losing bet gives back nothing.

Pockets are strings everywhere: ``"0"``, ``"00"``, ``"1"`` .. ``"36"``.

The spin is kept apart from the table: a caller spins a :class:`Wheel`, then
hands the pocket to :meth:`Table.resolve`. That way a store can record the
pocket, and a replay of the same pockets gives the same outcome.
"""

from __future__ import annotations

import functools
import random
import re
import secrets
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from itertools import islice
from types import MappingProxyType
from typing import Any, NamedTuple, Protocol

from . import fair

__all__ = [
    "AMERICAN",
    "CLEARED",
    "EUROPEAN",
    "LOST",
    "MAX_CLIENT_SEED",
    "MAX_CREDIT",
    "MAX_GUEST_SLIPS",
    "MAX_HISTORY",
    "MAX_OPEN_BETS",
    "OPEN",
    "PAYOUTS",
    "POCKETS",
    "PRIVATE_TABLE",
    "RED_NUMBERS",
    "WHEEL_KINDS",
    "WON",
    "AboveMaximum",
    "BadAmount",
    "BadClientSeed",
    "BadCredit",
    "BelowMinimum",
    "BelowZero",
    "Bet",
    "BetError",
    "BetNotOnLayout",
    "BetOutcome",
    "BetSyntaxError",
    "BetsOpen",
    "ChipAudit",
    "CreditRecord",
    "FairSeeds",
    "FairSpin",
    "HistoryEntry",
    "InsufficientChips",
    "Limits",
    "OpenBet",
    "PlayRecord",
    "PocketInfo",
    "RoundRecord",
    "SeedDraw",
    "SeedSource",
    "Slip",
    "SpinResult",
    "Table",
    "TableError",
    "TooManyBets",
    "UnknownPocket",
    "UnknownWheel",
    "Wheel",
    "all_bets",
    "check_client_seed",
    "cleared_slips",
    "house_edge",
    "open_slip",
    "parse_bet",
    "pocket_properties",
    "round_record",
]

# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------


class BetError(ValueError):
    """A bet (its text or its amount) cannot be accepted."""


class BetSyntaxError(BetError):
    """The bet text cannot be parsed: unknown word, not numbers, missing parts."""


class BetNotOnLayout(BetError):
    """The bet text parses, but it is not a real bet on this wheel's layout."""


class BadAmount(BetError):
    """The amount is not a whole number of chips greater than zero."""


class UnknownPocket(ValueError):
    """A pocket that is not on the wheel in question."""


class UnknownWheel(ValueError):
    """A wheel kind other than ``american`` or ``european``."""


class TableError(Exception):
    """The table refuses an operation; nothing on the table has changed."""


class BelowMinimum(TableError):
    """The bet is smaller than the table minimum."""


class AboveMaximum(TableError):
    """The bet is larger than the table maximum (limits apply per bet)."""


class InsufficientChips(TableError):
    """The player's bankroll cannot cover the bet."""


class BetsOpen(TableError):
    """The wheel or the fair seeds cannot be changed while bets are on the table."""


class TooManyBets(TableError):
    """The table already holds the most open bets allowed (keeps BETS and SPIN replies bounded)."""


class BelowZero(TableError):
    """The cashier would leave the bankroll below zero chips."""


class PlacementError(Exception):
    """Bet ``position`` (1, 2, ...) of a list was refused with ``error``; none of the list was placed."""

    def __init__(self, position: int, error: BetError | TableError) -> None:
        super().__init__(f"bet {position}: {error}")
        self.position, self.error = position, error


class BadClientSeed(ValueError):
    """A client seed that is not 1-64 printable ASCII characters without spaces."""


class BadCredit(ValueError):
    """A cashier's amount that is not a whole number of chips, is 0, or is too large."""


#: The most chips one cashier entry may add or remove.
MAX_CREDIT = 10**9


#: Open bets one table may hold; every bet on the layout fits with room to spare.
MAX_OPEN_BETS = 200


# --------------------------------------------------------------------------
# Wheels and pockets
# --------------------------------------------------------------------------

AMERICAN = "american"
EUROPEAN = "european"
WHEEL_KINDS = (AMERICAN, EUROPEAN)

_NUMBER_POCKETS = tuple(str(n) for n in range(1, 37))

#: Pockets of each wheel kind, in layout order (zeros first, then 1..36).
POCKETS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        AMERICAN: ("0", "00") + _NUMBER_POCKETS,
        EUROPEAN: ("0",) + _NUMBER_POCKETS,
    }
)

RED_NUMBERS = frozenset({1, 3, 5, 7, 9, 12, 14, 16, 18, 19, 21, 23, 25, 27, 30, 32, 34, 36})


def _wheel_kind(kind: object) -> str:
    """Return ``kind`` normalised to lower case, or raise UnknownWheel."""
    if isinstance(kind, str) and kind.lower() in WHEEL_KINDS:
        return kind.lower()
    raise UnknownWheel(f"unknown wheel {_shown(str(kind))!r}: choose american or european")


def _pocket_key(pocket: str) -> int:
    """Sort key for pockets: 0 before 00 before 1..36."""
    if pocket == "0":
        return -1
    if pocket == "00":
        return 0
    return int(pocket)


def _sorted_pockets(pockets: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(pockets, key=_pocket_key))


class Wheel:
    """A roulette wheel that picks one of its pockets uniformly at random.

    Without a seed it draws from ``secrets.SystemRandom`` (the operating
    system's generator), so outcomes cannot be predicted from earlier spins. A
    seed selects ``random.Random(seed)``: that is only for tests and replays.
    """

    def __init__(self, kind: str = AMERICAN, seed: int | None = None) -> None:
        self._kind = _wheel_kind(kind)
        self._pockets = POCKETS[self._kind]
        if seed is None:
            self._rng: random.Random = secrets.SystemRandom()
        elif isinstance(seed, int) and not isinstance(seed, bool):
            self._rng = random.Random(seed)
        else:
            raise TypeError("a wheel seed must be an int or None")

    @property
    def kind(self) -> str:
        """``"american"`` or ``"european"``."""
        return self._kind

    @property
    def pockets(self) -> tuple[str, ...]:
        """Every pocket on this wheel, as strings."""
        return self._pockets

    @property
    def rng(self) -> random.Random:
        """The random generator in use (SystemRandom unless seeded)."""
        return self._rng

    def spin(self) -> str:
        """Return one pocket, each with equal probability."""
        return self._rng.choice(self._pockets)

    def __repr__(self) -> str:
        return f"Wheel(kind={self._kind!r})"


@dataclass(frozen=True)
class PocketInfo:
    """What a pocket is: colour, parity, half, dozen and column.

    The zeros are green and have none of the other properties, which is why
    every outside bet loses on them.
    """

    pocket: str
    color: str
    parity: str | None
    half: str | None
    dozen: int | None
    column: int | None

    def describe(self) -> str:
        """One line such as ``"17 black odd low dozen2 column2"`` or ``"0 green"``."""
        if self.dozen is None:
            return f"{self.pocket} {self.color}"
        return f"{self.pocket} {self.color} {self.parity} {self.half} dozen{self.dozen} column{self.column}"


def _compute_info(pocket: str) -> PocketInfo:
    if pocket in ("0", "00"):
        return PocketInfo(pocket, "green", None, None, None, None)
    n = int(pocket)
    return PocketInfo(
        pocket=pocket,
        color="red" if n in RED_NUMBERS else "black",
        parity="even" if n % 2 == 0 else "odd",
        half="low" if n <= 18 else "high",
        dozen=(n - 1) // 12 + 1,  # 1-12, 13-24, 25-36
        column=(n - 1) % 3 + 1,  # column 3 holds 3, 6, ..., 36
    )


_POCKET_INFO: Mapping[str, PocketInfo] = MappingProxyType({p: _compute_info(p) for p in POCKETS[AMERICAN]})


def pocket_properties(pocket: str) -> PocketInfo:
    """Return the :class:`PocketInfo` of a pocket (``"0"``, ``"00"`` or ``"1"``..``"36"``)."""
    try:
        return _POCKET_INFO[pocket]
    except (KeyError, TypeError):
        raise UnknownPocket(f"{_shown(str(pocket))} is not a roulette pocket") from None


# --------------------------------------------------------------------------
# The layout: every bet that exists, built once
# --------------------------------------------------------------------------

#: Winnings per chip for each kind of bet.
PAYOUTS: Mapping[str, int] = MappingProxyType(
    {
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
)


def _numbers(*nums: int) -> frozenset[str]:
    return frozenset(str(n) for n in nums)


def _inside_splits() -> frozenset[frozenset[str]]:
    """Pairs of numbers side by side in a row (17-18) or one above the other (17-20)."""
    across = {_numbers(n, n + 1) for n in range(1, 37) if n % 3 != 0}
    down = {_numbers(n, n + 3) for n in range(1, 34)}
    return frozenset(across | down)


_ZERO_SPLITS = {
    EUROPEAN: (("0", "1"), ("0", "2"), ("0", "3")),
    AMERICAN: (("0", "1"), ("0", "2"), ("00", "2"), ("00", "3"), ("0", "00")),
}

_SPLITS: Mapping[str, frozenset[frozenset[str]]] = MappingProxyType(
    {kind: _inside_splits() | {frozenset(p) for p in pairs} for kind, pairs in _ZERO_SPLITS.items()}
)

_TRIOS: Mapping[str, tuple[tuple[str, ...], ...]] = MappingProxyType(
    {
        EUROPEAN: (("0", "1", "2"), ("0", "2", "3")),
        AMERICAN: (("0", "1", "2"), ("0", "00", "2"), ("00", "2", "3")),
    }
)

#: Four numbers meeting at a corner: n, n+1, n+3, n+4 with n not in the right-hand column.
_CORNERS = frozenset(_numbers(n, n + 1, n + 3, n + 4) for n in range(1, 33) if n % 3 != 0)

#: Streets and six lines are named by their first number.
_STREET_STARTS = frozenset(str(n) for n in range(1, 35, 3))  # 1, 4, ..., 34
_LINE_STARTS = frozenset(str(n) for n in range(1, 32, 3))  # 1, 4, ..., 31

_FOUR_POCKETS = frozenset({"0", "1", "2", "3"})  # European only
_BASKET_POCKETS = frozenset({"0", "00", "1", "2", "3"})  # American only

_OUTSIDE_SPECS = {  # canonical name -> (kind, PocketInfo field, value)
    "RED": ("color", "color", "red"),
    "BLACK": ("color", "color", "black"),
    "EVEN": ("parity", "parity", "even"),
    "ODD": ("parity", "parity", "odd"),
    "LOW": ("half", "half", "low"),
    "HIGH": ("half", "half", "high"),
    "DOZEN1": ("dozen", "dozen", 1),
    "DOZEN2": ("dozen", "dozen", 2),
    "DOZEN3": ("dozen", "dozen", 3),
    "COLUMN1": ("column", "column", 1),
    "COLUMN2": ("column", "column", 2),
    "COLUMN3": ("column", "column", 3),
}

_ALIASES = MappingProxyType({"HI": "HIGH", "LO": "LOW"})

_GROUP_WORDS = ("SPLIT", "STREET", "TRIO", "CORNER", "LINE")


@dataclass(frozen=True)
class Bet:
    """A bet on the layout.

    ``name`` is the canonical text a player would type (``"SPLIT 17-18"``),
    ``pockets`` are the pockets on which it wins, ``payout`` is the winnings
    per chip staked.
    """

    name: str
    kind: str
    pockets: frozenset[str]
    payout: int

    def wins_on(self, pocket: str) -> bool:
        """True if this bet wins when the ball lands in ``pocket``."""
        return pocket in self.pockets


def _make_bet(name: str, kind: str, pockets: Iterable[str]) -> Bet:
    return Bet(name=name, kind=kind, pockets=frozenset(pockets), payout=PAYOUTS[kind])


_OUTSIDE_BETS: Mapping[str, Bet] = MappingProxyType(
    {
        name: _make_bet(
            name,
            kind,
            (p for p, info in _POCKET_INFO.items() if getattr(info, field) == value),
        )
        for name, (kind, field, value) in _OUTSIDE_SPECS.items()
    }
)


# --------------------------------------------------------------------------
# Parsing bet text
# --------------------------------------------------------------------------

_DIGITS = re.compile(r"[0-9]+")
_NUMBERED_WORD = re.compile(r"(DOZEN|COLUMN)([0-9]+)")


def _shown(text: str, limit: int = 32) -> str:
    """Player text made safe to echo in a message: printable, one line, short."""
    clean = " ".join("".join(c if c.isprintable() else "?" for c in text).split())
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."


def _pocket(token: str, wheel_kind: str, shown: str) -> str:
    """Check that ``token`` is a pocket on the wheel and return it."""
    if not _DIGITS.fullmatch(token):
        raise BetSyntaxError(f"{shown}: {_shown(token, 10) or 'an empty part'} is not a number")
    if token in POCKETS[wheel_kind]:
        return token
    if token == "00":
        raise BetNotOnLayout(f"{shown}: there is no 00 on a European wheel")
    zeros = "0, 00" if wheel_kind == AMERICAN else "0"
    raise BetNotOnLayout(f"{shown}: {_shown(token, 10)} is not on the wheel (pockets are {zeros} and 1-36)")


def _number_group(text: str, count: int, word: str, example: str, wheel_kind: str, shown: str) -> tuple[str, ...]:
    """Parse ``count`` distinct pockets separated by ``-``, returned in canonical order."""
    parts = text.split("-")
    if len(parts) != count:
        raise BetSyntaxError(f"{shown}: a {word} names {count} numbers joined by '-', e.g. {example}")
    pockets = [_pocket(part, wheel_kind, shown) for part in parts]
    for p in pockets:
        if pockets.count(p) > 1:
            raise BetNotOnLayout(f"{shown}: {p} is named twice")
    return _sorted_pockets(pockets)


def _row_start(text: str, word: str, starts: frozenset[str], last: int, shown: str) -> str:
    """Parse the number naming a street or six line (its lowest number)."""
    if not _DIGITS.fullmatch(text):
        raise BetSyntaxError(f"{shown}: a {word} is named by its first number, e.g. {word} 13")
    if text not in starts:
        raise BetNotOnLayout(f"{shown}: a {word} is named by its first number: 1, 4, 7, ..., {last}")
    return text


def _parse_split(arg: str, wheel_kind: str, shown: str) -> Bet:
    pockets = _number_group(arg, 2, "SPLIT", "SPLIT 17-18", wheel_kind, shown)
    if frozenset(pockets) not in _SPLITS[wheel_kind]:
        raise BetNotOnLayout(f"{shown}: {pockets[0]} and {pockets[1]} are not adjacent")
    return _make_bet("SPLIT " + "-".join(pockets), "split", pockets)


def _parse_street(arg: str, wheel_kind: str, shown: str) -> Bet:
    start = int(_row_start(arg, "STREET", _STREET_STARTS, 34, shown))
    return _make_bet(f"STREET {start}", "street", _numbers(start, start + 1, start + 2))


def _parse_line(arg: str, wheel_kind: str, shown: str) -> Bet:
    start = int(_row_start(arg, "LINE", _LINE_STARTS, 31, shown))
    return _make_bet(f"LINE {start}", "line", _numbers(*range(start, start + 6)))


def _parse_trio(arg: str, wheel_kind: str, shown: str) -> Bet:
    pockets = _number_group(arg, 3, "TRIO", "TRIO 0-1-2", wheel_kind, shown)
    allowed = _TRIOS[wheel_kind]
    if pockets not in allowed:
        listed = " or ".join("-".join(t) for t in allowed)
        raise BetNotOnLayout(f"{shown}: a trio on this wheel is {listed}")
    return _make_bet("TRIO " + "-".join(pockets), "trio", pockets)


def _parse_corner(arg: str, wheel_kind: str, shown: str) -> Bet:
    pockets = _number_group(arg, 4, "CORNER", "CORNER 17-18-20-21", wheel_kind, shown)
    if frozenset(pockets) not in _CORNERS:
        hint = " (bet FOUR for 0-1-2-3)" if frozenset(pockets) == _FOUR_POCKETS else ""
        raise BetNotOnLayout(f"{shown}: these four numbers do not meet at a corner{hint}")
    return _make_bet("CORNER " + "-".join(pockets), "corner", pockets)


_GROUP_PARSERS = MappingProxyType(
    {
        "SPLIT": _parse_split,
        "STREET": _parse_street,
        "LINE": _parse_line,
        "TRIO": _parse_trio,
        "CORNER": _parse_corner,
    }
)


def _parse_word(word: str, wheel_kind: str, shown: str) -> Bet:
    """Parse a one-word bet: a number, an outside bet, FOUR or BASKET."""
    name = _ALIASES.get(word, word)
    if name in _OUTSIDE_BETS:
        return _OUTSIDE_BETS[name]
    if _DIGITS.fullmatch(word):
        pocket = _pocket(word, wheel_kind, shown)
        return _make_bet(pocket, "straight", (pocket,))
    if word == "FOUR":
        if wheel_kind != EUROPEAN:
            raise BetNotOnLayout(f"{shown}: FOUR (0-1-2-3) is only on a European wheel; try BASKET")
        return _make_bet("FOUR", "four", _FOUR_POCKETS)
    if word == "BASKET":
        if wheel_kind != AMERICAN:
            raise BetNotOnLayout(f"{shown}: BASKET (0-00-1-2-3) is only on an American wheel; try FOUR")
        return _make_bet("BASKET", "basket", _BASKET_POCKETS)
    numbered = _NUMBERED_WORD.fullmatch(word)
    if numbered:
        raise BetNotOnLayout(
            f"{shown}: there are only {numbered.group(1)}1, {numbered.group(1)}2 and {numbered.group(1)}3"
        )
    if word in _GROUP_PARSERS:
        raise BetSyntaxError(f"{shown}: {word} needs its numbers, e.g. {word} 13")
    raise BetSyntaxError(f"{shown}: unknown bet, cannot be parsed")


def parse_bet(words: str, wheel_kind: str) -> Bet:
    """Parse a player's bet text (case-insensitive) for a wheel kind.

    Raises :class:`BetSyntaxError` for text that cannot be parsed and
    :class:`BetNotOnLayout` for text that parses but names no real bet on this
    wheel. Numbers in a group may come in any order; the returned bet's name
    is canonical (upper case, numbers sorted 0, 00, 1..36).
    """
    if not isinstance(words, str):
        raise BetSyntaxError("the bet must be text, e.g. RED or 17")
    return _parse_bet(words, wheel_kind)


@functools.lru_cache(maxsize=1024)  # players repeat their bets; Bet is immutable, so results are shared
def _parse_bet(words: str, wheel_kind: str) -> Bet:
    kind = _wheel_kind(wheel_kind)
    parts = words.upper().split()
    shown = _shown(" ".join(parts))
    if not parts:
        raise BetSyntaxError("no bet given: name a bet, e.g. RED or 17")
    if len(parts) == 1:
        return _parse_word(parts[0], kind, shown)
    if len(parts) == 2 and parts[0] in _GROUP_PARSERS:
        return _GROUP_PARSERS[parts[0]](parts[1], kind, shown)
    raise BetSyntaxError(f"{shown}: cannot be parsed, too many words")


def all_bets(wheel_kind: str) -> tuple[Bet, ...]:
    """Every distinct bet that exists on this wheel kind's layout."""
    kind = _wheel_kind(wheel_kind)
    names = [*POCKETS[kind], *_OUTSIDE_BETS, "FOUR" if kind == EUROPEAN else "BASKET"]
    names += ["SPLIT " + "-".join(_sorted_pockets(s)) for s in _SPLITS[kind]]
    names += ["TRIO " + "-".join(t) for t in _TRIOS[kind]]
    names += ["CORNER " + "-".join(_sorted_pockets(c)) for c in _CORNERS]
    names += [f"STREET {n}" for n in _STREET_STARTS]
    names += [f"LINE {n}" for n in _LINE_STARTS]
    return tuple(sorted((parse_bet(n, kind) for n in names), key=lambda b: b.name))


def _require_on_layout(bet: Bet, wheel_kind: str) -> None:
    """Refuse a bet that is not exactly the bet of that name on this wheel kind.

    Re-parsing the canonical name catches a bet parsed for the other wheel and
    a hand-built Bet with made-up pockets or payout.
    """
    if not isinstance(bet, Bet):
        raise TypeError("expected a Bet")
    try:
        expected = parse_bet(bet.name, wheel_kind)
    except BetSyntaxError:
        expected = None
    if expected != bet:
        raise BetNotOnLayout(f"{_shown(str(bet.name))}: not a bet on a {wheel_kind} table")


def house_edge(bet: Bet, wheel_kind: str) -> Fraction:
    """Expected loss per chip staked, exact, by enumerating every pocket."""
    kind = _wheel_kind(wheel_kind)
    _require_on_layout(bet, kind)
    pockets = POCKETS[kind]
    expected = sum(bet.payout if p in bet.pockets else -1 for p in pockets)
    return -Fraction(expected, len(pockets))


# --------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------


def _check_amount(amount: object) -> int:
    """An amount is an int (not a bool) greater than zero."""
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise BadAmount("the amount must be a whole number of chips greater than 0")
    return amount


def _check_count(value: object, what: str) -> int:
    """A count (bankroll, rounds) is an int (not a bool) of zero or more."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{what} must be a whole number of 0 or more")
    return value


@dataclass(frozen=True)
class Limits:
    """Table limits, applied to each bet on its own."""

    minimum: int = 1
    maximum: int = 500

    def __post_init__(self) -> None:
        for value in (self.minimum, self.maximum):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError("table limits must be whole numbers of chips")
        if not 1 <= self.minimum <= self.maximum:
            raise ValueError("table limits need 1 <= minimum <= maximum")


@dataclass(frozen=True)
class OpenBet:
    """A bet on the table, the chips staked on it and its slip: the player's receipt number for it.

    Slips count 1, 2, 3, ... per player over every bet they ever placed (:attr:`Table.slips`),
    so a number names one of the player's own bets and tells nothing about anybody else's.
    """

    bet: Bet
    amount: int
    slip: int = 0


@dataclass(frozen=True)
class BetOutcome:
    """How one bet fared: ``returned`` is stake plus winnings, or 0 on a loss."""

    bet: Bet
    amount: int
    won: bool
    returned: int
    slip: int = 0


# --------------------------------------------------------------------------
# Provably fair spins (the derivation is lineproto.domain.fair's)
# --------------------------------------------------------------------------

#: The longest client seed, in characters.
MAX_CLIENT_SEED = 64
#: A client seed: printable ASCII without spaces, so it stands as one word in replies.
_CLIENT_SEED = re.compile(rf"[!-~]{{1,{MAX_CLIENT_SEED}}}")


class SeedSource(Protocol):
    """Where a table's new seeds come from (the daemon's :class:`SeedDraw`, under its lock)."""

    def server_seed(self) -> str:
        """A fresh server seed: 64 lowercase hex characters."""

    def client_seed(self) -> str:
        """The client seed a table starts with until the player chooses one."""


class SeedDraw:
    """New seeds from :mod:`secrets`, or from ``random.Random(seed)`` for tests and replays only.

    Not thread-safe when seeded (a ``random.Random`` is shared state): the caller serialises.
    """

    def __init__(self, seed: int | None = None) -> None:
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError("a seed must be an int or None")
        self._rng = None if seed is None else random.Random(seed)

    def server_seed(self) -> str:
        return fair.new_server_seed(self._rng)

    def client_seed(self) -> str:
        """16 hex characters: ``fair.new_client_seed`` unseeded, the same shape from the seeded generator."""
        if self._rng is None:
            return fair.new_client_seed()
        return self._rng.getrandbits(64).to_bytes(8, "big").hex()


#: fair.seed_hash and fair.is_server_seed, remembered: a seed serves many spins, every spin names
#: its hash, and a registered player's table (its seeds checked) is loaded for every command.
_seed_hash = functools.lru_cache(maxsize=1024)(fair.seed_hash)
_is_server_seed = functools.lru_cache(maxsize=1024)(fair.is_server_seed)


def check_client_seed(text: object) -> str:
    """A player's client seed as given, or :class:`BadClientSeed`."""
    if not isinstance(text, str) or not _CLIENT_SEED.fullmatch(text):
        raise BadClientSeed(f"a client seed is 1-{MAX_CLIENT_SEED} printable ASCII characters without spaces")
    return text


class FairSeeds(NamedTuple):
    """A table's seeds: the secret server seed, the player's client seed and the next spin's nonce.

    A plain tuple, as cheap to make as the spin that moves the nonce on; :meth:`checked`
    validates seeds that come from outside (a store, a snapshot, a :class:`SeedSource`), and a
    :class:`Table` takes no others. The server seed is left out of ``repr`` so that no log
    line or traceback can show it before it is revealed (``FAIR NEW``).
    """

    server_seed: str
    client_seed: str
    nonce: int = 0

    def __repr__(self) -> str:
        shown = f"server_seed_hash={self.server_seed_hash!r}, client_seed={self.client_seed!r}, nonce={self.nonce}"
        return f"FairSeeds({shown})"

    def checked(self) -> FairSeeds:
        """These seeds, once checked: ValueError for a server seed that is not 64 lowercase hex
        characters, :class:`BadClientSeed`, a nonce that is not a whole number of 0 or more."""
        if not isinstance(self.server_seed, str) or not _is_server_seed(self.server_seed):
            raise ValueError("a server seed is 64 lowercase hex characters")
        check_client_seed(self.client_seed)
        _check_count(self.nonce, "the nonce")
        return self

    @property
    def server_seed_hash(self) -> str:
        """What the player may see before play: the SHA-256 of the server seed."""
        return _seed_hash(self.server_seed)

    def pocket(self, wheel_kind: str) -> str:
        """The pocket the next spin lands in on this wheel kind (37 or 38 pockets)."""
        message = fair.private_message(self.client_seed, self.nonce)
        return fair.derive_pocket(self.server_seed, message, len(POCKETS[wheel_kind]))


class FairSpin(NamedTuple):
    """What a verifier needs of one spin: the wheel, the nonce, the client seed and the server seed's hash."""

    wheel: str
    nonce: int
    client_seed: str
    server_seed_hash: str

    def recompute(self, server_seed: str) -> str | None:
        """The pocket this spin must have had, given its revealed ``server_seed``; None if that seed is not its."""
        if fair.seed_hash(server_seed) != self.server_seed_hash:
            return None
        message = fair.private_message(self.client_seed, self.nonce)
        return fair.derive_pocket(server_seed, message, len(POCKETS[self.wheel]))


@dataclass(frozen=True)
class SpinResult:
    """The result of resolving a spin: the bankroll and rounds are after the spin."""

    pocket: str
    info: PocketInfo
    outcomes: tuple[BetOutcome, ...]
    bankroll: int
    rounds: int
    net: int
    #: The seeds the pocket was derived from (:meth:`Table.spin`); None for a pocket given to :meth:`Table.resolve`.
    fair: FairSpin | None = None

    @property
    def staked(self) -> int:
        """Chips that were on the table for this spin."""
        return sum(o.amount for o in self.outcomes)

    @property
    def returned(self) -> int:
        """Chips given back to the player (stakes plus winnings)."""
        return sum(o.returned for o in self.outcomes)


_SNAPSHOT_KEYS = frozenset({"wheel_kind", "bankroll", "rounds", "bets", "slips"})
#: A snapshot's key for the table's seeds, there once they are drawn: ``[server_seed, client_seed, nonce]``.
_SEEDS_KEY = "seeds"


class Table:
    """One player's table: a bankroll, the bets on the felt, the wheel kind and the fair seeds.

    Chips staked on a bet leave the bankroll at once and come back only
    through :meth:`clear` or a win in :meth:`resolve`. Every method either
    succeeds completely or raises and changes nothing.

    :meth:`spin` draws the pocket from the table's :class:`FairSeeds` (drawn from a
    :class:`SeedSource` the first time they are needed) and moves the nonce on. The
    seeds change only while no bets are open, so every bet is placed after the hash
    of the seed that settles it could be seen.
    """

    def __init__(
        self,
        bankroll: int,
        wheel_kind: str = AMERICAN,
        limits: Limits = Limits(),
        rounds: int = 0,
        bets: Iterable[OpenBet] = (),
        slips: int | None = None,
        seeds: FairSeeds | None = None,
    ) -> None:
        """``slips``: bets ever placed here (the last slip number given); default the highest open one.

        ``seeds``: the table's fair seeds, None until first needed."""
        kind = _wheel_kind(wheel_kind)
        if not isinstance(limits, Limits):
            raise TypeError("limits must be a Limits")
        open_bets = list(bets)
        for open_bet in open_bets:
            if not isinstance(open_bet, OpenBet):
                raise TypeError("bets must be OpenBet values")
            _require_on_layout(open_bet.bet, kind)
            _check_amount(open_bet.amount)
        numbers = [open_bet.slip for open_bet in open_bets if open_bet.slip]  # 0: placed before slips existed
        last = max(numbers, default=0)
        self._slips = last if slips is None else _check_count(slips, "the number of slips")
        if last > self._slips or len(set(numbers)) != len(numbers):
            raise ValueError("open bets need distinct slips, none above the table's slip count")
        self._bankroll = _check_count(bankroll, "the bankroll")
        self._rounds = _check_count(rounds, "the number of rounds")
        self._wheel_kind = kind
        self._limits = limits
        self._bets = open_bets
        if seeds is not None and not isinstance(seeds, FairSeeds):
            raise TypeError("seeds must be FairSeeds or None")
        self._seeds = None if seeds is None else seeds.checked()

    # -- state, read-only from outside ------------------------------------

    @property
    def bankroll(self) -> int:
        """Chips the player holds that are not on the table."""
        return self._bankroll

    @property
    def bets(self) -> list[OpenBet]:
        """A copy of the open bets, in the order they were placed."""
        return list(self._bets)

    @property
    def rounds(self) -> int:
        """Spins resolved at this table."""
        return self._rounds

    @property
    def slips(self) -> int:
        """Bets ever placed at this table: the number of the last slip given (0 before the first)."""
        return self._slips

    @property
    def wheel_kind(self) -> str:
        return self._wheel_kind

    @property
    def limits(self) -> Limits:
        return self._limits

    @property
    def staked(self) -> int:
        """Total chips on open bets."""
        return sum(b.amount for b in self._bets)

    @property
    def seeds(self) -> FairSeeds | None:
        """The fair seeds, or None while none was drawn yet."""
        return self._seeds

    # -- operations ----------------------------------------------------------

    def place(self, bet: Bet, amount: int) -> OpenBet:
        """Put ``amount`` chips on ``bet``, taking them from the bankroll.

        Checked in this order: amount, bet on this wheel, limits, bankroll, number of open bets.
        """
        _check_amount(amount)
        _require_on_layout(bet, self._wheel_kind)
        if amount < self._limits.minimum:
            raise BelowMinimum(f"the table minimum is {self._limits.minimum} chips per bet")
        if amount > self._limits.maximum:
            raise AboveMaximum(f"the table maximum is {self._limits.maximum} chips per bet")
        if amount > self._bankroll:
            raise InsufficientChips(f"you have {self._bankroll} chips, not enough for a bet of {amount}")
        if len(self._bets) >= MAX_OPEN_BETS:
            raise TooManyBets(f"at most {MAX_OPEN_BETS} open bets: SPIN or CLR first")
        open_bet = OpenBet(bet, amount, self.take_slip())
        self._bets.append(open_bet)
        self._bankroll -= amount
        return open_bet

    def place_all(self, wanted: Sequence[tuple[Bet, int]]) -> list[OpenBet]:
        """Place every bet of ``wanted`` in order, as :meth:`place` would, or none of them.

        The first refusal is raised with the table as it was before the first bet (bankroll,
        open bets, slip count): a list is never half placed. :class:`PlacementError` says which.
        """
        bankroll, bets, slips = self._bankroll, list(self._bets), self._slips
        placed = []
        for position, (bet, amount) in enumerate(wanted, start=1):
            try:
                placed.append(self.place(bet, amount))
            except (BetError, TableError) as exc:
                self._bankroll, self._bets, self._slips = bankroll, bets, slips
                raise PlacementError(position, exc) from exc
        return placed

    def take_slip(self) -> int:
        """The next slip number, counted as given (a bet placed elsewhere for this player takes one too)."""
        self._slips += 1
        return self._slips

    def credit(self, amount: int) -> int:
        """Add (or, negative, remove) ``amount`` chips in hand: the cashier. Returns the new bankroll.

        Refused with :class:`BelowZero` if it would leave fewer than 0 chips in hand (the chips on
        open bets are not the cashier's to take), with :class:`BadCredit` for 0 or beyond
        :data:`MAX_CREDIT`.
        """
        if isinstance(amount, bool) or not isinstance(amount, int) or amount == 0 or abs(amount) > MAX_CREDIT:
            raise BadCredit(f"the amount must be a whole number of chips, not 0, at most {MAX_CREDIT} either way")
        if self._bankroll + amount < 0:
            raise BelowZero(f"the bankroll holds {self._bankroll} chips: taking {-amount} would leave it below zero")
        self._bankroll += amount
        return self._bankroll

    def clear(self) -> int:
        """Take every open bet back into the bankroll; return the chips returned."""
        returned = self.staked
        self._bets = []
        self._bankroll += returned
        return returned

    def set_wheel(self, kind: str) -> None:
        """Switch wheel kind; refused while bets are open (they may not exist on the other wheel)."""
        new_kind = _wheel_kind(kind)
        if new_kind == self._wheel_kind:
            return
        if self._bets:
            raise BetsOpen("bets are open: clear them or spin before changing the wheel")
        self._wheel_kind = new_kind

    # -- provably fair spins ---------------------------------------------------

    def fair_seeds(self, source: SeedSource) -> FairSeeds:
        """The table's seeds, drawn from ``source`` if it has none yet (FAIR)."""
        if self._seeds is None:
            self._seeds = FairSeeds(source.server_seed(), source.client_seed()).checked()
        return self._seeds

    def _refuse_if_bets_open(self, what: str) -> None:
        if self._bets:
            raise BetsOpen(f"bets are open: spin or clear them before {what}")

    def set_client_seed(self, text: str, source: SeedSource) -> FairSeeds:
        """Choose the client seed (FAIR SEED): the server seed and nonce stay; refused while bets are open."""
        check_client_seed(text)
        self._refuse_if_bets_open("choosing a client seed")
        self._seeds = self.fair_seeds(source)._replace(client_seed=text)
        return self._seeds

    def new_server_seed(self, source: SeedSource) -> tuple[str, FairSeeds]:
        """Reveal the server seed and start a new one at nonce 0 (FAIR NEW): the old seed and the new seeds.

        Refused while bets are open: their pocket is committed to the seed whose hash they were placed under.
        """
        self._refuse_if_bets_open("starting a new server seed")
        old = self.fair_seeds(source)
        self._seeds = FairSeeds(source.server_seed(), old.client_seed, 0).checked()
        return old.server_seed, self._seeds

    def spin(self, source: SeedSource) -> SpinResult:
        """Settle every open bet on the pocket the seeds give, then move the nonce on (SPIN)."""
        seeds = self.fair_seeds(source)
        spun = FairSpin(self._wheel_kind, seeds.nonce, seeds.client_seed, seeds.server_seed_hash)
        result = self._settle_round(seeds.pocket(self._wheel_kind), spun)
        self._seeds = FairSeeds(seeds.server_seed, seeds.client_seed, seeds.nonce + 1)  # checked: only the nonce moved
        return result

    def resolve(self, pocket: str) -> SpinResult:
        """Settle every open bet against ``pocket`` and count a round.

        Winning bets return stake + stake * payout to the bankroll; all bets
        leave the table. The pocket is checked before anything changes.
        """
        return self._settle_round(pocket, None)

    def _settle_round(self, pocket: str, spun: FairSpin | None) -> SpinResult:
        if not isinstance(pocket, str) or pocket not in POCKETS[self._wheel_kind]:
            raise UnknownPocket(f"{_shown(str(pocket))} is not a pocket on a {self._wheel_kind} wheel")
        outcomes = tuple(_settle(open_bet, pocket) for open_bet in self._bets)
        returned = sum(o.returned for o in outcomes)
        staked = sum(o.amount for o in outcomes)
        bankroll = self._bankroll + returned
        rounds = self._rounds + 1
        self._bankroll, self._rounds, self._bets = bankroll, rounds, []
        return SpinResult(
            pocket=pocket,
            info=pocket_properties(pocket),
            outcomes=outcomes,
            bankroll=bankroll,
            rounds=rounds,
            net=returned - staked,
            fair=spun,
        )

    # -- persistence ---------------------------------------------------------

    def snapshot(self) -> dict[str, object]:
        """The table's state as a plain JSON-able dict (limits are configuration, not state).

        The seeds, once drawn, are under ``"seeds"`` (the server seed included: a snapshot is
        the table's whole state, never something to show).
        """
        data: dict[str, object] = {
            "wheel_kind": self._wheel_kind,
            "bankroll": self._bankroll,
            "rounds": self._rounds,
            "bets": [[b.bet.name, b.amount, b.slip] for b in self._bets],
            "slips": self._slips,
        }
        if self._seeds is not None:
            data[_SEEDS_KEY] = [self._seeds.server_seed, self._seeds.client_seed, self._seeds.nonce]
        return data

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any], limits: Limits | None = None) -> Table:
        """Rebuild a table from :meth:`snapshot` output; ValueError if it is malformed."""
        if not isinstance(data, Mapping) or set(data) - {_SEEDS_KEY} != _SNAPSHOT_KEYS:
            raise ValueError(f"a table snapshot has exactly the keys {sorted(_SNAPSHOT_KEYS)} (and maybe seeds)")
        kind = _wheel_kind(data["wheel_kind"])
        raw_bets = data["bets"]
        if not isinstance(raw_bets, (list, tuple)):
            raise ValueError("snapshot bets must be a list of [name, amount, slip]")
        bets = []
        for item in raw_bets:
            if not isinstance(item, (list, tuple)) or len(item) != 3:
                raise ValueError("snapshot bets must be a list of [name, amount, slip]")
            name, amount, slip = item
            bets.append(OpenBet(parse_bet(name, kind), _check_amount(amount), _check_count(slip, "a slip")))
        return cls(
            bankroll=data["bankroll"],
            wheel_kind=kind,
            limits=Limits() if limits is None else limits,
            rounds=data["rounds"],
            bets=bets,
            slips=data["slips"],
            seeds=_seeds_from_snapshot(data.get(_SEEDS_KEY)),
        )

    def __repr__(self) -> str:
        return (
            f"Table(bankroll={self._bankroll}, wheel_kind={self._wheel_kind!r}, "
            f"rounds={self._rounds}, bets={len(self._bets)}, slips={self._slips})"
        )


def _seeds_from_snapshot(raw: object) -> FairSeeds | None:
    if raw is None:
        return None
    if not isinstance(raw, (list, tuple)) or len(raw) != 3:
        raise ValueError("snapshot seeds must be [server_seed, client_seed, nonce]")
    return FairSeeds(*raw)  # checked by the Table (BadClientSeed is a ValueError too)


def _settle(open_bet: OpenBet, pocket: str) -> BetOutcome:
    """Settle one bet: a win returns the stake plus stake * payout, a loss nothing."""
    won = pocket in open_bet.bet.pockets
    returned = open_bet.amount * (open_bet.bet.payout + 1) if won else 0
    return BetOutcome(open_bet.bet, open_bet.amount, won, returned, open_bet.slip)


# --------------------------------------------------------------------------
# Receipts, history and the cashier's ledger
# --------------------------------------------------------------------------

#: The table name of a player's own table in receipts and history (shared tables have their names).
PRIVATE_TABLE = "private"

#: What became of a bet, as a receipt says it.
OPEN, CLEARED, WON, LOST, REFUNDED = "open", "cleared", "win", "lose", "refunded"

#: Rounds and credits a player's history shows at most (HIST's largest n) and keeps for a guest.
MAX_HISTORY = 100
#: Closed receipts (cleared or settled) kept in memory for a guest: the newest ones.
MAX_GUEST_SLIPS = 5 * MAX_OPEN_BETS


@dataclass(frozen=True)
class Slip:
    """One bet's receipt: where and in which round it was (or is) in play, and what became of it.

    ``state`` is :data:`OPEN` (still on the table, ``round`` is the round it will be settled
    in), :data:`CLEARED` (taken back, ``returned`` is the stake), :data:`WON` or :data:`LOST`
    (``returned`` is stake plus winnings, or 0).
    """

    number: int
    table: str
    round: int
    bet: str
    amount: int
    state: str
    returned: int = 0


@dataclass(frozen=True)
class RoundRecord:
    """One settled round in a player's history: the pocket, each bet's outcome and the bankroll."""

    table: str
    round: int
    at: str
    pocket: str
    outcomes: tuple[BetOutcome, ...]
    bankroll_after: int
    #: The seeds the pocket came from; None for rounds spun before provably fair spins.
    fair: FairSpin | None = None

    @property
    def net(self) -> int:
        """Chips returned minus chips staked in this round."""
        return sum(o.returned - o.amount for o in self.outcomes)

    @property
    def bankroll_before(self) -> int:
        """The bankroll before the round's bets were staked: after, less the round's net."""
        return self.bankroll_after - self.net

    def slips(self) -> list[Slip]:
        """The receipts of the bets this round settled."""
        return [
            Slip(o.slip, self.table, self.round, o.bet.name, o.amount, WON if o.won else LOST, o.returned)
            for o in self.outcomes
        ]


@dataclass(frozen=True)
class CreditRecord:
    """One cashier's entry in the ledger: who gave or took how many chips, why, and the bankroll after."""

    number: int
    player: str
    at: str
    by: str
    amount: int
    reason: str
    bankroll_after: int

    @property
    def bankroll_before(self) -> int:
        return self.bankroll_after - self.amount


HistoryEntry = RoundRecord | CreditRecord


def open_slip(table: Table, number: int, table_name: str = PRIVATE_TABLE) -> Slip | None:
    """The receipt of bet ``number`` if it is still on ``table`` (settled in the table's next round), else None."""
    for open_bet in table.bets:
        if open_bet.slip == number:
            return Slip(number, table_name, table.rounds + 1, open_bet.bet.name, open_bet.amount, OPEN)
    return None


def cleared_slips(before: Iterable[OpenBet], table: Table, result: object) -> list[Slip]:
    """The receipts of the bets a change took back: on the table ``before``, gone after, no spin.

    A spin's bets are settled, not cleared (:meth:`RoundRecord.slips`): for a
    :class:`SpinResult` this is empty.
    """
    before = list(before)
    now = table.bets
    if isinstance(result, SpinResult) or len(now) >= len(before):  # bets only ever leave together: none left
        return []
    still = {id(open_bet) for open_bet in now}
    return [
        Slip(b.slip, PRIVATE_TABLE, table.rounds + 1, b.bet.name, b.amount, CLEARED, b.amount)
        for b in before
        if id(b) not in still
    ]


def round_record(result: SpinResult, at: str, table_name: str = PRIVATE_TABLE) -> RoundRecord:
    """A spin's result as its entry in the player's history."""
    return RoundRecord(table_name, result.rounds, at, result.pocket, result.outcomes, result.bankroll, result.fair)


class PlayRecord:
    """One player's receipts and history in memory, bounded: a guest's (for one login).

    Open bets' receipts come from the table itself; this keeps the closed ones
    (the newest :data:`MAX_GUEST_SLIPS`), the rounds and the credits (the newest
    :data:`MAX_HISTORY` entries), so a guest who plays for hours holds bounded memory.
    """

    def __init__(self, max_entries: int = MAX_HISTORY, max_slips: int = MAX_GUEST_SLIPS) -> None:
        self._entries: deque[HistoryEntry] = deque(maxlen=max_entries)
        self._slips: OrderedDict[int, Slip] = OrderedDict()
        self._max_slips = max_slips

    def note(self, before: Iterable[OpenBet], table: Table, result: object, at: str) -> None:
        """Record what a change did: a spin's round and its receipts, or the bets it took back."""
        if isinstance(result, SpinResult):
            entry = round_record(result, at)
            self._entries.append(entry)
            closed = entry.slips()
        else:
            closed = cleared_slips(before, table, result)
        self._keep(closed)

    def note_shared_bet(self, slip: Slip) -> None:
        """A bet just placed at a shared table: its receipt, open until :meth:`note_shared_clear` or
        :meth:`note_shared_round` (a private table's open bets need none: the table holds them)."""
        self._keep([slip])

    def note_shared_clear(self, table: str, round_id: int) -> None:
        """CLR at a shared table: the round's open receipts there become cleared, the stake returned."""
        self._keep([replace(s, state=CLEARED, returned=s.amount) for s in self._open_at(table, round_id)])

    def note_shared_round(self, table: str, round_id: int, result: SpinResult, bankroll: int, at: str) -> None:
        """The croupier settled the round: its entry in the history and its bets' receipts.

        ``result`` is the table's settlement of the player's bets, in the order they were placed,
        the order their open receipts were kept in; ``bankroll`` is the player's after it.
        """
        numbers = [s.number for s in self._open_at(table, round_id)]
        outcomes = tuple(replace(o, slip=n) for o, n in zip(result.outcomes, numbers, strict=False))
        entry = RoundRecord(table, round_id, at, result.pocket, outcomes, bankroll, None)
        self._entries.append(entry)
        self._keep(entry.slips())

    def _open_at(self, table: str, round_id: int) -> list[Slip]:
        return [s for s in self._slips.values() if s.state == OPEN and (s.table, s.round) == (table, round_id)]

    def _keep(self, slips: Iterable[Slip]) -> None:
        """Keep these receipts (replacing any of the same number), the newest :attr:`_max_slips`."""
        for slip in slips:
            self._slips[slip.number] = slip
        while len(self._slips) > self._max_slips:
            self._slips.popitem(last=False)

    def note_credit(self, entry: CreditRecord) -> None:
        self._entries.append(entry)

    def slip(self, number: int, table: Table) -> Slip | None:
        """Receipt ``number``: open on ``table``, or closed and still kept; None if neither."""
        slip = open_slip(table, number)
        return slip if slip is not None else self._slips.get(number)

    def history(self, count: int) -> list[HistoryEntry]:
        """The newest ``count`` entries, newest first."""
        return list(islice(reversed(self._entries), count))


@dataclass(frozen=True)
class ChipAudit:
    """One player's chips, checked: what they hold against what they were given and won.

    Chips are conserved when ``bankroll + open_bets == start + credits + net``:
    the start bankroll, plus the cashier's credits, plus every settled round's
    returns minus its stakes, is exactly what is in hand and on open bets.
    """

    player: str
    start: int
    credits: int
    net: int
    bankroll: int
    open_bets: int

    @property
    def held(self) -> int:
        return self.bankroll + self.open_bets

    @property
    def expected(self) -> int:
        return self.start + self.credits + self.net

    @property
    def difference(self) -> int:
        """Chips held beyond what the ledger explains (negative: missing)."""
        return self.held - self.expected
