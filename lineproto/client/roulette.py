"""Typed client methods for the roulette service (a mixin over Connection).

    with Client("127.0.0.1", 36000) as client:
        client.login("guest")
        client.bet("RED", 10)             # -> PlacedBet(bet='RED', amount=10, payout=1, bankroll=90)
        result = client.spin()            # -> Spin(pocket='17', properties=('black', ...), ...)

Refusals raise :class:`PermanentError` as for every command (``.code`` 501,
534, 535, 536, 537, 530, 532); a reply of an unexpected shape raises
:class:`ProtocolError`. The ``parse_*`` functions turn one :class:`Reply`
into its typed result, for callers that pipeline commands.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..wire import ProtocolError, Reply

__all__ = [
    "BetOutcome", "Cleared", "OpenBet", "OpenBets", "PlacedBet", "RouletteCommands", "Spin", "TableInfo",
    "parse_bet", "parse_bets", "parse_clear", "parse_spin", "parse_table",
]


@dataclass(frozen=True)
class TableInfo:
    """TABL: the wheel (``american`` or ``european``), its pockets, limits and house edge."""

    wheel: str
    pockets: str
    minimum: int
    maximum: int
    house_edge: str


@dataclass(frozen=True)
class PlacedBet:
    """BET: the bet as the server understood it (canonical name) and the bankroll left."""

    bet: str
    amount: int
    payout: int
    bankroll: int


@dataclass(frozen=True)
class OpenBet:
    bet: str
    amount: int
    payout: int


@dataclass(frozen=True)
class OpenBets:
    """BETS: the open bets in the order placed, the total staked and the bankroll."""

    wheel: str
    bets: tuple[OpenBet, ...]
    staked: int
    bankroll: int


@dataclass(frozen=True)
class Cleared:
    """CLR: how many bets came back, the chips returned and the bankroll."""

    bets: int
    returned: int
    bankroll: int


@dataclass(frozen=True)
class BetOutcome:
    """One bet of a spin: ``returned`` is the stake plus winnings, 0 on a loss."""

    bet: str
    amount: int
    won: bool
    returned: int


@dataclass(frozen=True)
class Spin:
    """SPIN: the pocket, its properties (``('black', 'odd', 'low', 'dozen2', 'column2')``
    or ``('green',)``), each bet's outcome, and the bankroll, rounds and net afterwards."""

    pocket: str
    properties: tuple[str, ...]
    outcomes: tuple[BetOutcome, ...]
    bankroll: int
    rounds: int
    net: int

    @property
    def color(self) -> str:
        return self.properties[0]

    @property
    def staked(self) -> int:
        return sum(o.amount for o in self.outcomes)

    @property
    def returned(self) -> int:
        return sum(o.returned for o in self.outcomes)


_TABLE = re.compile(
    r"(?P<wheel>american|european) wheel: pockets (?P<pockets>.+?); "
    r"bets (?P<min>\d+)-(?P<max>\d+) chips; house edge (?P<edge>.+)")
_PLACED = re.compile(r"Bet (?P<bet>.+) for (?P<amount>\d+) \(pays (?P<payout>\d+):1\); bankroll (?P<bankroll>\d+)")
_OPEN = re.compile(r"(?P<bet>.+) for (?P<amount>\d+) \(pays (?P<payout>\d+):1\)")
_BETS_HEAD = re.compile(r"Open bets \((?P<wheel>\w+) wheel\):")
_BETS_TAIL = re.compile(r"Total staked (?P<staked>\d+); bankroll (?P<bankroll>\d+)")
_CLEARED = re.compile(r"Cleared (?P<bets>\d+) bets?, (?P<returned>\d+) chips back; bankroll (?P<bankroll>\d+)")
_POCKET = re.compile(r"(?P<pocket>00|[0-9]|[12][0-9]|3[0-6]) (?P<properties>[a-z0-9 ]+)")
_OUTCOME = re.compile(r"(?P<bet>.+) for (?P<amount>\d+): (?P<result>win|lose), (?P<returned>\d+) returned")
_SPIN_TAIL = re.compile(r"Bankroll (?P<bankroll>\d+); rounds (?P<rounds>\d+); net (?P<net>[+-]?\d+)")


def _match(pattern: re.Pattern, line: str, reply: Reply) -> re.Match:
    match = pattern.fullmatch(line)
    if match is None:
        raise ProtocolError(f"unexpected {reply.code} reply line: {line[:80]!r}")
    return match


def _expect(reply: Reply, code: int, least_lines: int = 1) -> None:
    if reply.code != code or len(reply.lines) < least_lines:
        raise ProtocolError(f"expected a {code} reply, got {str(reply)[:80]!r}")


def parse_table(reply: Reply) -> TableInfo:
    _expect(reply, 200)
    m = _match(_TABLE, reply.lines[0], reply)
    return TableInfo(m["wheel"], m["pockets"], int(m["min"]), int(m["max"]), m["edge"])


def parse_bet(reply: Reply) -> PlacedBet:
    _expect(reply, 200)
    m = _match(_PLACED, reply.lines[0], reply)
    return PlacedBet(m["bet"], int(m["amount"]), int(m["payout"]), int(m["bankroll"]))


def parse_bets(reply: Reply) -> OpenBets:
    _expect(reply, 211, 2)
    head = _match(_BETS_HEAD, reply.lines[0], reply)
    tail = _match(_BETS_TAIL, reply.lines[-1], reply)
    bets = []
    for line in reply.lines[1:-1]:
        m = _match(_OPEN, line, reply)
        bets.append(OpenBet(m["bet"], int(m["amount"]), int(m["payout"])))
    return OpenBets(head["wheel"], tuple(bets), int(tail["staked"]), int(tail["bankroll"]))


def parse_clear(reply: Reply) -> Cleared:
    _expect(reply, 200)
    m = _match(_CLEARED, reply.lines[0], reply)
    return Cleared(int(m["bets"]), int(m["returned"]), int(m["bankroll"]))


def parse_spin(reply: Reply) -> Spin:
    _expect(reply, 250, 2)
    first = _match(_POCKET, reply.lines[0], reply)
    tail = _match(_SPIN_TAIL, reply.lines[-1], reply)
    outcomes = []
    for line in reply.lines[1:-1]:
        m = _match(_OUTCOME, line, reply)
        outcomes.append(BetOutcome(m["bet"], int(m["amount"]), m["result"] == "win", int(m["returned"])))
    return Spin(first["pocket"], tuple(first["properties"].split()), tuple(outcomes),
                int(tail["bankroll"]), int(tail["rounds"]), int(tail["net"]))


class RouletteCommands:
    """Mixin: needs ``command``/``command_args`` from Connection."""

    def table(self, wheel: str | None = None) -> TableInfo:
        """TABL: the current wheel and limits, or switch to ``wheel`` (american/european) first."""
        return parse_table(self.command_args("TABL", wheel) if wheel else self.command("TABL"))

    def bet(self, bet: str, amount: int) -> PlacedBet:
        """BET: put ``amount`` chips on ``bet`` (``"RED"``, ``"17"``, ``"SPLIT 17-18"``...)."""
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise TypeError("the amount must be a whole number of chips (int)")
        if not str(bet).strip():
            raise ValueError("name a bet, e.g. RED or 17")
        return parse_bet(self.command(f"BET {bet} {amount}"))  # CR/LF/NUL in bet: ValueError

    def bets(self) -> OpenBets:
        """BETS: the open bets and the total staked."""
        return parse_bets(self.command("BETS"))

    def clear(self) -> Cleared:
        """CLR: take every open bet back."""
        return parse_clear(self.command("CLR"))

    def spin(self) -> Spin:
        """SPIN: spin the wheel and settle every open bet."""
        return parse_spin(self.command("SPIN"))
