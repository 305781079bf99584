"""The structured replies, each shape defined once: the server formats with it, clients and tests parse with it.

A reply such as ``200 Bet RED for 10 (pays 1:1); bankroll 90`` carries values
(the bet, the amount, the payout, the bankroll) inside text that people read
and that clients in other languages parse. Each such reply is a NamedTuple
here whose fields are its values, with a template per line that says where
each value stands (:func:`one_line`, :func:`block`). The formatter
(``shape.reply()``) and the parser (``Shape.from_reply(reply)``) are both
derived from that one template, so the server's text and every parser of it
cannot drift apart. The wire texts are the ones docs/PROTOCOL.md shows.

Plain values only (``str``, ``int``, ``bool``, tuples of them): this module is
part of the sans-I/O wire layer and knows nothing of the domain; a command
handler turns its domain objects into these values.

A parser raises :class:`ProtocolError` for a reply of another code or shape.
"""

from __future__ import annotations

import re
import string
from typing import Any, Callable, Mapping, NamedTuple

from .reply import ProtocolError, Reply

__all__ = [
    "Field", "LineShape", "one_line", "block",
    "TEXT", "PHRASE", "WORD", "WORDS", "COUNT", "NET", "OUTCOME", "counted",
    "TableInfo", "PlacedBet", "OpenBet", "OpenBets", "Cleared", "BetOutcome", "Spin",
    "Job", "Accepted", "ALL_JOBS_DONE", "Status",
]


# --------------------------------------------------------------------------
# Fields and line templates
# --------------------------------------------------------------------------


class Field(NamedTuple):
    """How one value stands in a line: the regex that finds it, how it is written and read back."""

    pattern: str
    write: Callable[[Any], str]
    read: Callable[[str], Any]


#: Any text (at least one character). A line holds at most one TEXT field: it
#: is the one part of the line that may contain the line's other words.
TEXT = Field(r".+?", str, str)
#: Text without a ``;``, for a text field that ``;``-separated parts follow.
PHRASE = Field(r"[^;]+", str, str)
#: One word: no spaces.
WORD = Field(r"\S+", str, str)
#: One or more words separated by single spaces; a tuple of str.
WORDS = Field(r"\S+(?: \S+)*", " ".join, lambda text: tuple(text.split(" ")))
#: A whole number, 0 or more.
COUNT = Field(r"[0-9]+", str, int)
#: A signed number of chips: ``+75``, ``-15``, ``0``.
NET = Field(r"0|[+-][1-9][0-9]*", lambda n: f"{n:+d}" if n else "0", int)
#: A bet's result: True is ``win``, False ``lose``.
OUTCOME = Field(r"win|lose", lambda won: "win" if won else "lose", lambda text: text == "win")


def counted(noun: str) -> Field:
    """A count with its noun, singular for 1: ``1 bet``, ``3 bets``."""
    return Field(rf"[0-9]+ {re.escape(noun)}s?",
                 lambda n: f"{n} {noun}" if n == 1 else f"{n} {noun}s",
                 lambda text: int(text.split(" ", 1)[0]))


class LineShape:
    """One line's template, ``"Bet {bet} for {amount} ..."``, and the kind of each ``{name}`` in it.

    ``order`` names the positions of a row (a shape's fields): ``format(row)``
    writes the template's fields from that row, ``parse(line)`` gives them back
    as a dict by name. A template may use some of the row's fields (a head line).
    """

    def __init__(self, template: str, order: tuple[str, ...], **kinds: Field):
        parts = list(string.Formatter().parse(template))
        names = [name for _, name, _, _ in parts if name is not None]
        if sorted(names) != sorted(kinds) or not set(names) <= set(order):
            raise ValueError(f"template {template!r} names {names}; kinds given {sorted(kinds)}, row {order}")
        if sum(kinds[name] is TEXT for name in names) > 1:
            raise ValueError(f"template {template!r} has two TEXT fields: it could not be parsed back")
        self.template = template
        self.kinds = kinds
        # Formatting is on the server's path for every BET and SPIN, so it is made once per template:
        # %-formatting of a tuple picked from the row by generated code (as namedtuple and dataclasses
        # generate theirs). The code holds only row indexes, never template text.
        self._percent = "".join(literal.replace("%", "%%") + ("%s" if name is not None else "")
                                for literal, name, _, _ in parts)
        writers = tuple(kinds[name].write for name in names)
        picks = [f"row[{order.index(name)}]" if writers[i] is str else f"writers[{i}](row[{order.index(name)}])"
                 for i, name in enumerate(names)]
        self._values = eval(f"lambda row: ({''.join(pick + ',' for pick in picks)})", {"writers": writers})
        self._regex = re.compile("".join(
            re.escape(literal) + (f"(?P<{name}>{kinds[name].pattern})" if name is not None else "")
            for literal, name, _, _ in parts))

    def format(self, row: tuple) -> str:
        return self._percent % self._values(row)

    def parse(self, line: str) -> dict[str, Any]:
        match = self._regex.fullmatch(line)
        if match is None:
            raise ProtocolError(f"reply line {line[:80]!r} is not of the form {self.template!r}")
        return {name: kind.read(match[name]) for name, kind in self.kinds.items()}


def _expect(reply: Reply, code: int, least_lines: int = 1) -> tuple[str, ...]:
    if reply.code != code or len(reply.lines) < least_lines:
        raise ProtocolError(f"expected a {code} reply, got {str(reply)[:80]!r}")
    return reply.lines


# --------------------------------------------------------------------------
# The two kinds of structured reply: one line, or a head, items and a tail.
# A shape is a NamedTuple (cheap to build: the server makes one per reply)
# that one of these decorators gives its template, formatter and parser.
# --------------------------------------------------------------------------


def one_line(code: int | None, template: str, **kinds: Field):
    """Make a NamedTuple a one-line reply of ``code`` (None: only an item line of a :func:`block`).

    It gains ``LINE`` (its :class:`LineShape`), ``line()`` and ``reply()`` to
    write it, and the class methods ``from_line(line)`` and ``from_reply(reply)`` to read it.
    """
    def decorate(cls):
        cls.CODE, cls.LINE = code, LineShape(template, cls._fields, **kinds)
        cls.line = _one_line_text
        cls.reply = _one_line_reply
        cls.from_line = classmethod(_one_line_from_line)
        cls.from_reply = classmethod(_one_line_from_reply)
        return cls
    return decorate


def _one_line_text(self) -> str:
    return self.LINE.format(self)


def _one_line_reply(self) -> Reply:
    return Reply(self.CODE, (self.LINE.format(self),))


def _one_line_from_line(cls, line: str):
    return cls(**cls.LINE.parse(line))


def _one_line_from_reply(cls, reply: Reply):
    lines = _expect(reply, cls.CODE)
    if len(lines) != 1:
        raise ProtocolError(f"expected a one-line {cls.CODE} reply, got {len(lines)} lines")
    return cls.from_line(lines[0])


def block(code: int, head: str, items: tuple[str, type], tail: str, **kinds: Field):
    """Make a NamedTuple a multi-line reply: a ``head`` line, one line per item, a ``tail`` line.

    ``items`` is ``(field name, item class)``: that field holds a tuple of
    :func:`one_line` shapes. The head's and the tail's fields are the
    NamedTuple's other fields. The class gains ``HEAD``, ``TAIL``,
    ``lines()``, ``reply()``, ``from_lines(lines)`` and ``from_reply(reply)``.
    """
    def decorate(cls):
        fields = cls._fields

        def pick(template):
            return {name: kinds[name] for _, name, _, _ in string.Formatter().parse(template) if name}

        cls.CODE, (cls.ITEMS, cls.ITEM) = code, items
        cls.HEAD, cls.TAIL = LineShape(head, fields, **pick(head)), LineShape(tail, fields, **pick(tail))
        cls.lines = _block_lines
        cls.reply = _block_reply
        cls.from_lines = classmethod(_block_from_lines)
        cls.from_reply = classmethod(_block_from_reply)
        return cls
    return decorate


def _block_lines(self) -> tuple[str, ...]:
    return (self.HEAD.format(self), *[item.LINE.format(item) for item in getattr(self, self.ITEMS)],
            self.TAIL.format(self))


def _block_reply(self) -> Reply:
    return Reply(self.CODE, self.lines())


def _block_from_lines(cls, lines: tuple[str, ...]):
    if len(lines) < 2:
        raise ProtocolError(f"a {cls.__name__} reply has at least 2 lines, not {len(lines)}")
    items = tuple(cls.ITEM.from_line(line) for line in lines[1:-1])
    return cls(**cls.HEAD.parse(lines[0]), **{cls.ITEMS: items}, **cls.TAIL.parse(lines[-1]))


def _block_from_reply(cls, reply: Reply):
    return cls.from_lines(_expect(reply, cls.CODE, 2))


# --------------------------------------------------------------------------
# Roulette
# --------------------------------------------------------------------------

#: An open bet as BET and BETS write it.
_OPEN_BET = "{bet} for {amount} (pays {payout}:1)"
_OPEN_BET_KINDS = dict(bet=TEXT, amount=COUNT, payout=COUNT)


@one_line(200, "{wheel} wheel: pockets {pockets}; bets {minimum}-{maximum} chips; house edge {house_edge}",
          wheel=WORD, pockets=PHRASE, minimum=COUNT, maximum=COUNT, house_edge=TEXT)
class TableInfo(NamedTuple):
    """TABL: ``american wheel: pockets 0, 00, 1-36; bets 1-500 chips; house edge 5.26% (BASKET 7.89%)``."""

    wheel: str
    pockets: str
    minimum: int
    maximum: int
    house_edge: str


@one_line(200, f"Bet {_OPEN_BET}; bankroll {{bankroll}}", **_OPEN_BET_KINDS, bankroll=COUNT)
class PlacedBet(NamedTuple):
    """BET: ``Bet RED for 10 (pays 1:1); bankroll 90``: the bet's canonical name and the bankroll left."""

    bet: str
    amount: int
    payout: int
    bankroll: int


@one_line(None, _OPEN_BET, **_OPEN_BET_KINDS)
class OpenBet(NamedTuple):
    """One line of BETS: ``RED for 10 (pays 1:1)``."""

    bet: str
    amount: int
    payout: int


@block(211, "Open bets ({wheel} wheel):", ("bets", OpenBet), "Total staked {staked}; bankroll {bankroll}",
       wheel=WORD, staked=COUNT, bankroll=COUNT)
class OpenBets(NamedTuple):
    """BETS: the open bets in the order placed, the total staked and the bankroll.

    ``Open bets (american wheel):``, one :class:`OpenBet` line each, ``Total staked 18; bankroll 82``.
    """

    wheel: str
    bets: tuple[OpenBet, ...]
    staked: int
    bankroll: int


@one_line(200, "Cleared {bets}, {returned} chips back; bankroll {bankroll}",
          bets=counted("bet"), returned=COUNT, bankroll=COUNT)
class Cleared(NamedTuple):
    """CLR: ``Cleared 3 bets, 18 chips back; bankroll 100``."""

    bets: int
    returned: int
    bankroll: int


@one_line(None, "{bet} for {amount}: {won}, {returned} returned", bet=TEXT, amount=COUNT, won=OUTCOME, returned=COUNT)
class BetOutcome(NamedTuple):
    """One bet of a spin: ``RED for 10: win, 20 returned``; ``returned`` is stake plus winnings, 0 on a loss."""

    bet: str
    amount: int
    won: bool
    returned: int


@block(250, "{pocket} {properties}", ("outcomes", BetOutcome), "Bankroll {bankroll}; rounds {rounds}; net {net}",
       pocket=WORD, properties=WORDS, bankroll=COUNT, rounds=COUNT, net=NET)
class Spin(NamedTuple):
    """SPIN: the pocket and its properties, each bet's outcome, then bankroll, rounds and net.

    ``17 black odd low dozen2 column2`` (``0 green`` for a zero), one
    :class:`BetOutcome` line per bet in the order placed,
    ``Bankroll 175; rounds 1; net +75`` (net: returned minus staked on this spin).
    """

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


# --------------------------------------------------------------------------
# Meters
# --------------------------------------------------------------------------

#: JOB's reply code when every roster meter has been read (text ``All jobs done``).
ALL_JOBS_DONE = 251


@one_line(250, "{meter} is yours to read", meter=WORD)
class Job(NamedTuple):
    """JOB: ``G10001 is yours to read``: the meter id is the first word."""

    meter: str


@one_line(250, "Accepted: you have read {mine} out of {total} readings", mine=COUNT, total=COUNT)
class Accepted(NamedTuple):
    """READ: ``Accepted: you have read 2 out of 3 readings``: this user's count and everyone's."""

    mine: int
    total: int


# --------------------------------------------------------------------------
# STAT
# --------------------------------------------------------------------------

_STATUS_HEAD, _STATUS_TAIL = "Status:", "End of status"
_STATUS_ITEM = LineShape("{key}: {value}", ("key", "value"), key=Field(r"[^\s:]+", str, str),
                         value=Field(r".*", str, str))


class Status(NamedTuple):
    """STAT's 211 reply: ``Status:``, one ``key: value`` line per entry of ``values``, ``End of status``.

    A key is one word without ``:``; a value is any text, read back as ``str``.
    """

    values: Mapping[str, object]

    CODE = 211

    def lines(self) -> tuple[str, ...]:
        return (_STATUS_HEAD, *[_STATUS_ITEM.format(item) for item in self.values.items()], _STATUS_TAIL)

    def reply(self) -> Reply:
        return Reply(self.CODE, self.lines())

    @classmethod
    def from_lines(cls, lines: tuple[str, ...]) -> "Status":
        if len(lines) < 2 or lines[0] != _STATUS_HEAD or lines[-1] != _STATUS_TAIL:
            raise ProtocolError(f"a status is framed by {_STATUS_HEAD!r} and {_STATUS_TAIL!r}: {lines[:1]!r}")
        items = (_STATUS_ITEM.parse(line) for line in lines[1:-1])
        return cls({item["key"]: item["value"] for item in items})

    @classmethod
    def from_reply(cls, reply: Reply) -> "Status":
        return cls.from_lines(_expect(reply, cls.CODE, 2))
