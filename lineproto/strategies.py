"""Betting strategies for the client-side simulator.

A strategy only decides stakes; it never touches a table or a socket. Each one
answers ``next_stake(budget_left)`` with a whole number of chips, or ``None``
when the budget cannot cover the next bet (the simulation stops), and is told
how each bet went with ``record(won)``. Stakes never exceed the table maximum.
"""

from __future__ import annotations

from types import MappingProxyType

__all__ = ["STRATEGIES", "Flat", "Martingale", "OneThreeTwoSix", "Strategy", "make_strategy"]


def _whole(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be a whole number of chips")
    return value


class Strategy:
    """Common part: a base stake, a table maximum and the stake for the next bet."""

    name = "strategy"

    def __init__(self, base: int, table_max: int) -> None:
        self.base = _whole(base, "the base stake")
        self.table_max = _whole(table_max, "the table maximum")
        if not 1 <= self.base <= self.table_max:
            raise ValueError("need 1 <= base stake <= table maximum")
        self.stake = self.base

    def next_stake(self, budget_left: int) -> int | None:
        """The next bet's stake, or None if ``budget_left`` cannot cover it."""
        budget = _whole(budget_left, "the budget")
        return self.stake if self.stake <= budget else None

    def record(self, won: bool) -> None:
        """Adjust the next stake after a bet was won or lost."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base={self.base}, table_max={self.table_max}, stake={self.stake})"


class Flat(Strategy):
    """Always bet the base stake."""

    name = "flat"

    def record(self, won: bool) -> None:
        self.stake = self.base


class Martingale(Strategy):
    """Double the stake after a loss, back to the base after a win.

    Doubling is capped at the table maximum: after that the stake stays at
    the maximum until a win.
    """

    name = "martingale"

    def record(self, won: bool) -> None:
        self.stake = self.base if won else min(self.stake * 2, self.table_max)


class OneThreeTwoSix(Strategy):
    """Bet 1, 3, 2, 6 units of the base: one step on per win.

    After the fourth win in a row, or after any loss, start again at 1 unit.
    Every stake is capped at the table maximum.
    """

    name = "1326"
    UNITS = (1, 3, 2, 6)

    def __init__(self, base: int, table_max: int) -> None:
        super().__init__(base, table_max)
        self.step = 0

    def record(self, won: bool) -> None:
        self.step = (self.step + 1) % len(self.UNITS) if won else 0
        self.stake = min(self.UNITS[self.step] * self.base, self.table_max)


#: Strategy names as used on the simulator's command line.
STRATEGIES = MappingProxyType({cls.name: cls for cls in (Flat, Martingale, OneThreeTwoSix)})


def make_strategy(name: str, base: int, table_max: int) -> Strategy:
    """Build a strategy by name: ``flat``, ``martingale`` or ``1326`` (``1-3-2-6`` too)."""
    key = name.strip().lower().replace("-", "") if isinstance(name, str) else name
    try:
        cls = STRATEGIES[key]
    except (KeyError, TypeError):
        raise ValueError(f"unknown strategy {name!r}: choose one of {', '.join(STRATEGIES)}") from None
    return cls(base, table_max)
