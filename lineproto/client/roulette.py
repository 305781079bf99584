"""Typed client methods for the roulette service (a Connection subclass; Client combines the services).

    with Client("127.0.0.1", 36000) as client:
        client.login("guest")
        client.bet("RED", 10)             # -> PlacedBet(bet='RED', amount=10, payout=1, bankroll=90, slip=1)
        result = client.spin()            # -> Spin(pocket='17', properties=('black', ...), ...)
        client.slip(1)                    # -> Receipt(slip=1, bet='RED', ..., state='lose', returned=0)
        client.history(5)                 # -> History(player='guest', entries=(HistoryRound(...), ...))
        client.fair()                     # -> Fairness(server_seed_hash='9c1f...', client_seed='...', nonce=1)
        client.fair_seed("lucky-7")       # -> Fairness(..., client_seed='lucky-7', ...)
        client.fair_new()                 # -> Fairness(..., nonce=0, server_seed='<the seed revealed>')

Refusals raise :class:`PermanentError` as for every command (``.code`` 501,
534, 535, 536, 537, 538, 530, 532; 550 for a slip you do not have or a CRED to
no registered player); a reply of an unexpected shape raises
:class:`ProtocolError`. The results are the reply shapes of
:mod:`lineproto.wire.shapes`, the same definitions the server formats its
replies with; ``Shape.from_reply(reply)`` (or the ``parse_*`` names below)
turns one :class:`Reply` into its typed result, for callers that pipeline.
"""

from __future__ import annotations

from typing import NamedTuple

from ..wire import ProtocolError, Reply
from ..wire.shapes import (
    BetOutcome,
    Cleared,
    Credited,
    Fairness,
    History,
    HistoryBet,
    HistoryCredit,
    HistoryRound,
    HistorySeeds,
    OpenBet,
    OpenBets,
    PlacedBet,
    Receipt,
    Spin,
    Status,
    TableInfo,
)
from .connection import Connection

__all__ = [
    "BetOutcome",
    "Cleared",
    "Credited",
    "Fairness",
    "History",
    "HistoryBet",
    "HistoryCredit",
    "HistoryRound",
    "HistorySeeds",
    "OpenBet",
    "OpenBets",
    "PlacedBet",
    "Receipt",
    "RouletteCommands",
    "Spin",
    "TableInfo",
    "TableStatus",
    "parse_bet",
    "parse_bets",
    "parse_clear",
    "parse_credit",
    "parse_fair",
    "parse_history",
    "parse_slip",
    "parse_spin",
    "parse_table",
]

parse_table = TableInfo.from_reply
parse_bet = PlacedBet.from_reply
parse_bets = OpenBets.from_reply
parse_clear = Cleared.from_reply
parse_spin = Spin.from_reply
parse_slip = Receipt.from_reply
parse_history = History.from_reply
parse_credit = Credited.from_reply
parse_fair = Fairness.from_reply


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
        """BET: put ``amount`` chips on ``bet`` (``"RED"``, ``"17"``, ``"SPLIT 17-18"``...), at the private
        table or, after JOIN, in the shared table's round: either way with its slip (``SLIP``)."""
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

    def fair(self) -> Fairness:
        """FAIR: the hash of the server seed the next spins come from, the client seed and the next nonce."""
        return Fairness.from_reply(self.command("FAIR"))

    def fair_seed(self, client_seed: str) -> Fairness:
        """FAIR SEED: choose the client seed (1-64 printable ASCII characters, no spaces; not while bets are open)."""
        if not client_seed or any(ch.isspace() for ch in client_seed):
            raise ValueError("a client seed is one word: 1-64 printable ASCII characters, no spaces")
        return Fairness.from_reply(self.command(f"FAIR SEED {client_seed}"))

    def fair_new(self) -> Fairness:
        """FAIR NEW: reveal the server seed (``server_seed``) and start a new one at nonce 0."""
        return Fairness.from_reply(self.command("FAIR NEW"))

    def slip(self, number: int) -> Receipt:
        """SLIP: what became of your bet ``number`` (the ``slip`` of its :class:`PlacedBet`)."""
        return Receipt.from_reply(self.command(f"SLIP {_whole(number)}"))

    def history(self, count: int | None = None) -> History:
        """HIST: your newest ``count`` rounds and cashier's entries (the daemon's default: 10), newest first."""
        return History.from_reply(self.command("HIST" if count is None else f"HIST {_whole(count)}"))

    def credit(self, user: str, amount: int, reason: str) -> Credited:
        """CRED (admin): add ``amount`` chips to ``user``'s bankroll, or take them when negative."""
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise TypeError("the amount must be a whole number of chips (int)")
        return Credited.from_reply(self.command(f"CRED {user} {amount:+d} {reason}"))

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


def _whole(number: int) -> int:
    if isinstance(number, bool) or not isinstance(number, int):
        raise TypeError("expected a whole number (int)")
    return number
