"""Typed client methods for the roulette service (a Connection subclass; Client combines the services).

    with Client("127.0.0.1", 36000) as client:
        client.login("guest")
        client.bet("RED", 10)             # -> PlacedBet(bet='RED', amount=10, payout=1, bankroll=90)
        result = client.spin()            # -> Spin(pocket='17', properties=('black', ...), ...)

Refusals raise :class:`PermanentError` as for every command (``.code`` 501,
534, 535, 536, 537, 538, 530, 532); a reply of an unexpected shape raises
:class:`ProtocolError`. The results are the reply shapes of
:mod:`lineproto.wire.shapes`, the same definitions the server formats its
replies with; ``Shape.from_reply(reply)`` (or the ``parse_*`` names below)
turns one :class:`Reply` into its typed result, for callers that pipeline.
"""

from __future__ import annotations

from typing import NamedTuple

from ..wire import ProtocolError, Reply
from ..wire.shapes import BetOutcome, Cleared, OpenBet, OpenBets, PlacedBet, Spin, Status, TableInfo
from .connection import Connection

__all__ = [
    "BetOutcome",
    "Cleared",
    "OpenBet",
    "OpenBets",
    "PlacedBet",
    "RouletteCommands",
    "Spin",
    "TableInfo",
    "TableStatus",
    "parse_bet",
    "parse_bets",
    "parse_clear",
    "parse_spin",
    "parse_table",
]

parse_table = TableInfo.from_reply
parse_bet = PlacedBet.from_reply
parse_bets = OpenBets.from_reply
parse_clear = Cleared.from_reply
parse_spin = Spin.from_reply


class TableStatus(NamedTuple):
    """A player's STAT keys, typed: ``wheel``, ``bankroll``, ``rounds``, ``open-bet-count`` and ``open-bet-chips``."""

    wheel: str
    bankroll: int
    rounds: int
    open_bet_count: int
    open_bet_chips: int

    @classmethod
    def from_status(cls, status: Status) -> TableStatus:
        values = status.texts()
        try:
            return cls(
                values["wheel"],
                int(values["bankroll"]),
                int(values["rounds"]),
                int(values["open-bet-count"]),
                int(values["open-bet-chips"]),
            )
        except KeyError as missing:
            raise ProtocolError(f"STAT has no {missing} key (is the user a player?)") from None
        except ValueError as bad:
            raise ProtocolError(f"STAT's roulette counts are not whole numbers: {bad}") from None


class RouletteCommands(Connection):
    """A connection with the roulette commands (:class:`Client` has every service's)."""

    def table(self, wheel: str | None = None) -> TableInfo:
        """TABL: the current wheel and limits, or switch to ``wheel`` (american/european) first."""
        return TableInfo.from_reply(self.command_args("TABL", wheel) if wheel else self.command("TABL"))

    def bet(self, bet: str, amount: int) -> PlacedBet:
        """BET: put ``amount`` chips on ``bet`` (``"RED"``, ``"17"``, ``"SPLIT 17-18"``...)."""
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise TypeError("the amount must be a whole number of chips (int)")
        if not str(bet).strip():
            raise ValueError("name a bet, e.g. RED or 17")
        return PlacedBet.from_reply(self.command(f"BET {bet} {amount}"))  # CR/LF/NUL in bet: ValueError

    def bets(self) -> OpenBets:
        """BETS: the open bets and the total staked."""
        return OpenBets.from_reply(self.command("BETS"))

    def clear(self) -> Cleared:
        """CLR: take every open bet back."""
        return Cleared.from_reply(self.command("CLR"))

    def spin(self) -> Spin:
        """SPIN: spin the wheel and settle every open bet."""
        return Spin.from_reply(self.command("SPIN"))

    def join(self, table: str) -> Reply:
        """JOIN a shared table: its croupier runs the rounds; BET, BETS and CLR act there until :meth:`leave`.

        The round's events come with :meth:`events` (or :meth:`listen`'s callback).
        """
        return self.command_args("JOIN", table)

    def leave(self) -> Reply:
        """LEAV the shared table (bets placed stay and are settled)."""
        return self.command("LEAV")

    def tables(self) -> Reply:
        """LIST the shared tables (211, one line each)."""
        return self.command("LIST")

    def chat(self, text: str) -> Reply:
        """CHAT to everyone at the shared table."""
        return self.command_args("CHAT", text)

    def table_status(self) -> TableStatus:
        """STAT's roulette keys, typed (a user with the player role)."""
        return TableStatus.from_status(self.status())
