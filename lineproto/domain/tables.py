"""Shared roulette tables: many players, one wheel, rounds timed by a croupier.

Pure domain logic: no sockets, no threads, no reply codes. The clock is passed
in (``now``, seconds on any monotonic clock), so the round state machine is
tested without waiting, and the engines stay free of game rules.

A table's rounds::

    idle --join--> betting --closes_at--> closed --spin_at--> spinning --finish()--> betting (next round)
                                                                              \\--> idle (nobody seated)

- ``idle``: nobody is seated and no round is open. The first JOIN opens a round.
- ``betting``: bets are accepted for ``round_seconds``.
- ``closed``: no more bets; the ball rolls for :data:`SPIN_SECONDS` (at most a
  quarter of the round).
- ``spinning``: :meth:`SharedTable.advance` has handed the round's bets out
  (:class:`SpinDue`); the caller spins the wheel, settles them
  (:meth:`SpinDue.settle`), makes that durable, and calls
  :meth:`SharedTable.finish`, which opens the next round if anyone is still seated.

Chips: the players' bankrolls live elsewhere (their own tables, the store).
:meth:`SharedTable.place` takes the bankroll as it is and returns it after the
bet, checked by the same rules as a private :class:`~.roulette.Table` (limits,
chips, the most open bets); settlement uses :meth:`~.roulette.Table.resolve`,
so the payouts are the private table's to the chip.

Provably fair: each round draws its server seed (:func:`.fair.new_server_seed`)
when it opens, and :class:`RoundOpened` carries the seed's hash, published
before any bet. The pocket is not the wheel's RNG but
``fair.derive_pocket(seed, fair.shared_message(table, round_id), 37 or 38)``
(:meth:`SpinDue.pocket`), and :class:`RoundSettled` reveals the seed, so every
seated player can recompute the spin with :mod:`hashlib` and :mod:`hmac` only.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from . import fair
from .roulette import (
    AMERICAN,
    EUROPEAN,
    POCKETS,
    Bet,
    Limits,
    OpenBet,
    PocketInfo,
    SpinResult,
    Table,
    TableError,
    pocket_properties,
)

__all__ = [
    "BETTING",
    "CLOSED",
    "DEFAULT_ROUND_SECONDS",
    "DEFAULT_TABLES",
    "IDLE",
    "SETTLED",
    "SPINNING",
    "SPIN_SECONDS",
    "BettingClosed",
    "FollowedTable",
    "NoMoreBets",
    "RoundOpened",
    "RoundSettled",
    "SharedTable",
    "SpinDue",
    "TableSpec",
    "parse_table_specs",
    "settle_bets",
]

IDLE, BETTING, CLOSED, SPINNING = "idle", "betting", "closed", "spinning"
#: A round whose bets are settled (the phase a cluster's round record ends in; ``FollowedTable``).
SETTLED = "settled"

#: Seconds of betting per round unless the daemon says otherwise (``--round-seconds``).
DEFAULT_ROUND_SECONDS = 20.0
#: Seconds between "no more bets" and the spin (shortened to a quarter of short rounds).
SPIN_SECONDS = 2.0
#: The tables a daemon opens unless told otherwise (``--tables``).
DEFAULT_TABLES = "main:american,euro:european"

_TABLE_NAME = re.compile(r"[a-z][a-z0-9_-]{0,15}")


class NoMoreBets(TableError):
    """The round at the table takes no more bets; ``reopens_in`` seconds until the next one opens."""

    def __init__(self, message: str, reopens_in: float):
        super().__init__(message)
        self.reopens_in = reopens_in


@dataclass(frozen=True)
class TableSpec:
    """A table the daemon opens: its name (lower case), its wheel kind, its own limits (None: the daemon's)."""

    name: str
    wheel: str
    limits: Limits | None = None


_LIMITS = re.compile(r"([0-9]{1,9})-([0-9]{1,9})")


class TableSpecs(tuple[TableSpec, ...]):
    """The value of ``--tables``: specs that print back as the option's text (``config`` shows it)."""

    def __str__(self) -> str:
        return ",".join(
            f"{spec.name}:{spec.wheel}"
            + (f":{spec.limits.minimum}-{spec.limits.maximum}" if spec.limits is not None else "")
            for spec in self
        )


def parse_table_specs(text: str) -> tuple[TableSpec, ...]:
    """``main:american,euro:european:5-100`` (NAME:WHEEL[:MIN-MAX], comma-separated) as specs.

    ValueError with a sentence for anything else.
    """
    specs: list[TableSpec] = []
    for item in text.split(","):
        shown = item.strip()
        name, _, rest = shown.lower().partition(":")
        wheel, _, limits_text = rest.partition(":")
        if not _TABLE_NAME.fullmatch(name) or not wheel:
            raise ValueError(f"{shown!r} is not NAME:WHEEL[:MIN-MAX] (a name of 1-16 letters, digits, '-' or '_')")
        if wheel not in (AMERICAN, EUROPEAN):
            raise ValueError(f"{shown!r}: the wheel is american or european")
        limits = None
        if limits_text:
            bounds = _LIMITS.fullmatch(limits_text)
            if bounds is None or not 1 <= int(bounds.group(1)) <= int(bounds.group(2)):
                raise ValueError(f"{shown!r}: the limits are MIN-MAX chips, 1 <= MIN <= MAX, e.g. 5-100")
            limits = Limits(int(bounds.group(1)), int(bounds.group(2)))
        if any(spec.name == name for spec in specs):
            raise ValueError(f"table {name} is named twice")
        specs.append(TableSpec(name, wheel, limits))
    return TableSpecs(specs)


# -------------------------------------------------------------------- what happens at a table


@dataclass(frozen=True)
class RoundOpened:
    """A round opened: bets are taken for ``seconds``; ``seed_hash`` commits to the round's pocket."""

    table: str
    round_id: int
    seconds: float
    seed_hash: str


@dataclass(frozen=True)
class BettingClosed:
    """No more bets in the round."""

    table: str
    round_id: int


@dataclass(frozen=True)
class RoundSettled:
    """The spin's pocket, the server seed it came from (revealed now) and each betting player's result."""

    table: str
    round_id: int
    pocket: str
    info: PocketInfo
    results: Mapping[str, SpinResult]
    server_seed: str


def settle_bets(wheel: str, limits: Limits, bets: Iterable[OpenBet], pocket: str) -> SpinResult:
    """One player's bets of a round settled against ``pocket`` by the private table's rules (``Table.resolve``)."""
    return Table(0, wheel, limits, bets=bets).resolve(pocket)


@dataclass(frozen=True)
class SpinDue:
    """Time to spin: every player's bets of the round, to settle at once with :meth:`settle`."""

    table: str
    round_id: int
    wheel: str
    limits: Limits
    bets: Mapping[str, tuple[OpenBet, ...]]
    server_seed: str = field(repr=False)  # secret until the round's result: no log line may show it

    def pocket(self) -> str:
        """The round's pocket: derived from its server seed and ``f"{table}:{round_id}"`` (:mod:`.fair`)."""
        message = fair.shared_message(self.table, self.round_id)
        return fair.derive_pocket(self.server_seed, message, len(POCKETS[self.wheel]))

    def settle(self, pocket: str | None = None) -> RoundSettled:
        """Every player's bets settled against the round's pocket (or ``pocket``) by ``Table.resolve``."""
        if pocket is None:
            pocket = self.pocket()
        results = {player: settle_bets(self.wheel, self.limits, bets, pocket) for player, bets in self.bets.items()}
        info = pocket_properties(pocket)
        return RoundSettled(self.table, self.round_id, pocket, info, MappingProxyType(results), self.server_seed)


# -------------------------------------------------------------------- the table


class SharedTable:
    """One shared table's round state machine (see the module docstring). Not thread-safe: callers lock."""

    def __init__(
        self,
        spec: TableSpec,
        limits: Limits,
        round_seconds: float,
        last_round: int = 0,
        seeds: random.Random | None = None,
    ):
        """``seeds``: where the rounds' server seeds come from (None: :mod:`secrets`; a Random: tests, replays)."""
        if not round_seconds > 0:
            raise ValueError("a round lasts more than 0 seconds")
        self.name = spec.name
        self.wheel = spec.wheel
        self.limits = limits
        self.round_seconds = round_seconds
        self.spin_seconds = min(SPIN_SECONDS, round_seconds / 4)
        self.round_id = last_round  # the current round's id; the next one is this plus one
        self.state = IDLE
        self.closes_at = 0.0  # betting: no more bets from then on
        self.spin_at = 0.0  # closed: the spin is due then
        self.seated: dict[str, str] = {}  # player key -> the name others see, in the order they sat down
        self._bets: dict[str, list[OpenBet]] = {}
        self._seeds = seeds
        self.server_seed = ""  # the current round's, secret until its result; "" before the first round

    @property
    def seed_hash(self) -> str:
        """The current round's published commitment (SHA-256 of its server seed); "" before the first round."""
        return fair.seed_hash(self.server_seed) if self.server_seed else ""

    # -- seats

    def join(self, player: str, name: str, now: float) -> RoundOpened | None:
        """Seat ``player``; at an idle table this opens a round (returned)."""
        self.seated[player] = name
        if self.state is IDLE:
            return self._open(now)
        return None

    def leave(self, player: str) -> None:
        """Unseat ``player``; their bets in the round stay and are settled."""
        self.seated.pop(player, None)

    # -- bets

    def place(self, player: str, bet: Bet, amount: int, bankroll: int, now: float) -> tuple[OpenBet, int]:
        """Put ``amount`` on ``bet`` for ``player`` whose bankroll is ``bankroll``: the bet and the bankroll after.

        Refused (NoMoreBets) outside betting; otherwise checked as a private table checks a bet.
        """
        self._require_betting(now)
        mine = self._bets.get(player, [])
        check = Table(bankroll, self.wheel, self.limits, bets=mine)
        open_bet = check.place(bet, amount)
        self._bets[player] = [*mine, open_bet]
        return open_bet, check.bankroll

    def unplace(self, player: str, open_bet: OpenBet) -> None:
        """Take back a bet just placed whose chips could not be taken after all (the store failed)."""
        mine = self._bets.get(player, [])
        if mine and mine[-1] is open_bet:
            mine.pop()

    def take_back(self, player: str, now: float) -> tuple[int, int]:
        """CLR: remove the player's bets in the round; (how many, chips to give back)."""
        self._require_betting(now)
        mine = self._bets.pop(player, [])
        return len(mine), sum(b.amount for b in mine)

    def restore(self, player: str, bets: list[OpenBet]) -> None:
        """Put back bets taken back when giving the chips back failed."""
        self._bets[player] = [*bets, *self._bets.get(player, [])]

    def bets_of(self, player: str) -> tuple[OpenBet, ...]:
        return tuple(self._bets.get(player, ()))

    # -- time

    def seconds_left(self, now: float) -> float:
        """Seconds of betting left in the round (0 unless betting)."""
        return max(self.closes_at - now, 0.0) if self.state is BETTING else 0.0

    def reopens_in(self, now: float) -> float:
        """Seconds until the next round opens (its spin and settlement take no time in this reckoning)."""
        if self.state is CLOSED:
            return max(self.spin_at - now, 0.0)
        return 0.0

    @property
    def deadline(self) -> float | None:
        """When :meth:`advance` has something to do next; None: nothing until settle() or a join."""
        if self.state is BETTING:
            return self.closes_at
        if self.state is CLOSED:
            return self.spin_at
        return None

    def advance(self, now: float) -> list[BettingClosed | SpinDue]:
        """Move the round on to ``now``: what happened, in order."""
        happened: list[BettingClosed | SpinDue] = []
        if self.state is BETTING and now >= self.closes_at:
            self.state = CLOSED
            self.spin_at = self.closes_at + self.spin_seconds
            happened.append(BettingClosed(self.name, self.round_id))
        if self.state is CLOSED and now >= self.spin_at:
            self.state = SPINNING
            bets = {player: tuple(bets) for player, bets in self._bets.items() if bets}
            frozen = MappingProxyType(bets)
            happened.append(SpinDue(self.name, self.round_id, self.wheel, self.limits, frozen, self.server_seed))
        return happened

    def finish(self, now: float) -> RoundOpened | None:
        """The round handed out by :class:`SpinDue` is settled: the next round opens if anyone sits here."""
        if self.state is not SPINNING:
            raise RuntimeError(f"finish() while {self.state}")
        self._bets = {}
        if self.seated:
            return self._open(now)
        self.state = IDLE
        return None

    # -- inside

    def _open(self, now: float) -> RoundOpened:
        self.round_id += 1
        self.state = BETTING
        self.closes_at = now + self.round_seconds
        self.server_seed = fair.new_server_seed(self._seeds)
        return RoundOpened(self.name, self.round_id, self.round_seconds, fair.seed_hash(self.server_seed))

    def _require_betting(self, now: float) -> None:
        if self.state is BETTING and now < self.closes_at:
            return
        if self.state is IDLE:
            raise NoMoreBets(f"no round is open at {self.name}", 0.0)
        # BETTING here: the deadline passed and advance() has not run yet
        wait = self.spin_seconds if self.state is BETTING else self.reopens_in(now)
        raise NoMoreBets(
            f"no more bets in round {self.round_id} at {self.name}: the next round opens in {math.ceil(wait)} s", wait
        )


class FollowedTable(SharedTable):
    """A shared table whose rounds another process runs (a cluster's croupier): its state is told, not timed.

    Each daemon of a cluster keeps one per table. ``join`` never opens a round and ``advance``
    does nothing here: :meth:`follow` moves the table as the round kept in the database moves
    (open, closed, settled), so bets placed through this daemon are checked by the same rules
    (:meth:`SharedTable.place`) and kept here until the round's pocket is known. The server seed
    stays with the round's record until it is revealed; only its hash is known here.
    """

    def __init__(self, spec: TableSpec, limits: Limits, round_seconds: float, last_round: int = 0):
        super().__init__(spec, limits, round_seconds, last_round)
        self._seed_hash = ""

    @property
    def seed_hash(self) -> str:
        return self._seed_hash

    def join(self, player: str, name: str, now: float) -> RoundOpened | None:
        self.seated[player] = name
        return None

    def advance(self, now: float) -> list[BettingClosed | SpinDue]:
        return []

    def follow(
        self, round_id: int, phase: str, seconds: float, seed_hash: str, left: float, now: float
    ) -> list[RoundOpened | BettingClosed | str]:
        """The round ``round_id`` is in ``phase`` (betting, closed or settled), ``left`` seconds to its next step.

        Returns what is news here, in order: :class:`RoundOpened`, :class:`BettingClosed`, and
        ``SETTLED`` when the round is over (the caller then settles :meth:`take_round`'s bets).
        A round older than the one followed is no news.
        """
        news: list[RoundOpened | BettingClosed | str] = []
        if round_id < self.round_id or (round_id == self.round_id and self.state is IDLE and self._seed_hash):
            return news
        if round_id > self.round_id:
            self.round_id, self.state, self._seed_hash, self._bets = round_id, BETTING, seed_hash, {}
            self.round_seconds = seconds
            self.closes_at = now + (left if phase == BETTING else 0.0)
            news.append(RoundOpened(self.name, round_id, seconds, seed_hash))
        if phase == BETTING:
            self.closes_at = now + left
        if phase in (CLOSED, SETTLED) and self.state is BETTING:
            self.state, self.spin_at = CLOSED, now + (left if phase == CLOSED else 0.0)
            news.append(BettingClosed(self.name, round_id))
        if phase == CLOSED:
            self.spin_at = now + left
        if phase == SETTLED and self.state is CLOSED:
            self.state = SPINNING
            news.append(SETTLED)
        return news

    def take_round(self) -> dict[str, tuple[OpenBet, ...]]:
        """The settled round's bets placed here, by player; the table is idle until the next round opens."""
        bets = {player: tuple(bets) for player, bets in self._bets.items() if bets}
        self._bets, self.state = {}, IDLE
        return bets
