"""The structured replies, each shape defined once: the server formats with it, clients and tests parse with it.

A reply such as ``200 Bet RED for 10 (pays 1:1); bankroll 90`` carries values
(the bet, the amount, the payout, the bankroll) inside text that people read
and that clients in other languages parse. Each such reply is a NamedTuple
here whose fields are its values, with a template per line that says where
each value stands (:class:`OneLine`, :class:`Block`). The formatter
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
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, NamedTuple, Self

from .reply import ProtocolError, Reply

__all__ = [
    "ALL_JOBS_DONE",
    "COUNT",
    "NET",
    "OUTCOME",
    "PHRASE",
    "TEXT",
    "WORD",
    "WORDS",
    "Accepted",
    "BetOutcome",
    "Block",
    "Cleared",
    "Credited",
    "Fairness",
    "Field",
    "History",
    "HistoryBet",
    "HistoryCredit",
    "HistoryRound",
    "HistorySeeds",
    "ItemLine",
    "Job",
    "LineShape",
    "MultiLine",
    "OneLine",
    "OpenBet",
    "OpenBets",
    "PlacedBet",
    "Receipt",
    "Spin",
    "Status",
    "TableInfo",
    "counted",
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
    return Field(
        rf"[0-9]+ {re.escape(noun)}s?",
        lambda n: f"{n} {noun}" if n == 1 else f"{n} {noun}s",
        lambda text: int(text.split(" ", 1)[0]),
    )


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
        self._percent = "".join(
            literal.replace("%", "%%") + ("%s" if name is not None else "") for literal, name, _, _ in parts
        )
        writers = tuple(kinds[name].write for name in names)
        picks = [
            f"row[{order.index(name)}]" if writers[i] is str else f"writers[{i}](row[{order.index(name)}])"
            for i, name in enumerate(names)
        ]
        self._values: Callable[[tuple[object, ...]], tuple[object, ...]] = eval(
            f"lambda row: ({''.join(pick + ',' for pick in picks)})", {"writers": writers}
        )
        self._regex = re.compile(
            "".join(
                re.escape(literal) + (f"(?P<{name}>{kinds[name].pattern})" if name is not None else "")
                for literal, name, _, _ in parts
            )
        )

    def format(self, row: tuple[object, ...]) -> str:
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
# The kinds of structured reply: one line, or a head, items and a tail.
# A shape is a NamedTuple of its values (cheap to build: the server makes one
# per reply) and a subclass of it that adds one of these bases and sets the
# base's class attributes (its code and templates). A NamedTuple cannot have
# other bases or class attributes, hence the two classes; the NamedTuple is
# private, the subclass is the shape.
# --------------------------------------------------------------------------


class _Row(tuple[Any, ...]):
    """The base of every shape's second base: a shape is a tuple (its NamedTuple's fields)."""

    __slots__ = ()


class ItemLine(_Row):
    """A shape written as one line, ``LINE``: an item line of a :class:`Block` (or, as :class:`OneLine`, a reply)."""

    __slots__ = ()
    LINE: ClassVar[LineShape]

    def line(self) -> str:
        return self.LINE.format(self)

    @classmethod
    def from_line(cls, line: str) -> Self:
        return cls(**cls.LINE.parse(line))


class OneLine(ItemLine):
    """A one-line reply of ``CODE``: ``reply()`` writes it, ``from_reply(reply)`` reads it."""

    __slots__ = ()
    CODE: ClassVar[int]

    def reply(self) -> Reply:
        return Reply(self.CODE, (self.LINE.format(self),))

    @classmethod
    def from_reply(cls, reply: Reply) -> Self:
        lines = _expect(reply, cls.CODE)
        if len(lines) != 1:
            raise ProtocolError(f"expected a one-line {cls.CODE} reply, got {len(lines)} lines")
        return cls.from_line(lines[0])


class MultiLine(_Row):
    """A reply of ``CODE`` and at least two lines: ``lines()`` and ``from_lines(lines)`` say how they read."""

    __slots__ = ()
    CODE: ClassVar[int]

    def lines(self) -> tuple[str, ...]:
        raise NotImplementedError

    @classmethod
    def from_lines(cls, lines: tuple[str, ...]) -> Self:
        raise NotImplementedError

    def reply(self) -> Reply:
        return Reply(self.CODE, self.lines())

    @classmethod
    def from_reply(cls, reply: Reply) -> Self:
        return cls.from_lines(_expect(reply, cls.CODE, 2))


class Block(MultiLine):
    """A multi-line reply: a ``HEAD`` line, one ``ITEM`` line per item, a ``TAIL`` line.

    ``ITEMS`` names the field that holds the tuple of :class:`ItemLine`
    shapes; the head's and the tail's fields are the shape's other fields.
    """

    __slots__ = ()
    HEAD: ClassVar[LineShape]
    ITEMS: ClassVar[str]
    ITEM: ClassVar[type[ItemLine]]
    TAIL: ClassVar[LineShape]

    def lines(self) -> tuple[str, ...]:
        items: tuple[ItemLine, ...] = getattr(self, self.ITEMS)
        return (self.HEAD.format(self), *[item.line() for item in items], self.TAIL.format(self))

    @classmethod
    def from_lines(cls, lines: tuple[str, ...]) -> Self:
        if len(lines) < 2:
            raise ProtocolError(f"a {cls.__name__} reply has at least 2 lines, not {len(lines)}")
        items = tuple(cls.ITEM.from_line(line) for line in lines[1:-1])
        return cls(**cls.HEAD.parse(lines[0]), **{cls.ITEMS: items}, **cls.TAIL.parse(lines[-1]))


# --------------------------------------------------------------------------
# Roulette
# --------------------------------------------------------------------------

#: An open bet as BET and BETS write it.
_OPEN_BET = "{bet} for {amount} (pays {payout}:1)"
_OPEN_BET_KINDS = dict(bet=TEXT, amount=COUNT, payout=COUNT)


class _TableInfo(NamedTuple):
    wheel: str
    pockets: str
    minimum: int
    maximum: int
    house_edge: str


class TableInfo(_TableInfo, OneLine):
    """TABL: ``american wheel: pockets 0, 00, 1-36; bets 1-500 chips; house edge 5.26% (BASKET 7.89%)``."""

    __slots__ = ()
    CODE = 200
    LINE = LineShape(
        "{wheel} wheel: pockets {pockets}; bets {minimum}-{maximum} chips; house edge {house_edge}",
        _TableInfo._fields,
        wheel=WORD,
        pockets=PHRASE,
        minimum=COUNT,
        maximum=COUNT,
        house_edge=TEXT,
    )


class _PlacedBet(NamedTuple):
    bet: str
    amount: int
    payout: int
    bankroll: int
    slip: int


class PlacedBet(_PlacedBet, OneLine):
    """BET: ``Bet RED for 10 (pays 1:1); bankroll 90; slip 7``: the bet's canonical name, the bankroll
    left and the bet's receipt number (``SLIP 7``), last so that readers of the older text still match."""

    __slots__ = ()
    CODE = 200
    LINE = LineShape(
        f"Bet {_OPEN_BET}; bankroll {{bankroll}}; slip {{slip}}",
        _PlacedBet._fields,
        **_OPEN_BET_KINDS,
        bankroll=COUNT,
        slip=COUNT,
    )


class _OpenBet(NamedTuple):
    bet: str
    amount: int
    payout: int


class OpenBet(_OpenBet, ItemLine):
    """One line of BETS: ``RED for 10 (pays 1:1)``."""

    __slots__ = ()
    LINE = LineShape(_OPEN_BET, _OpenBet._fields, **_OPEN_BET_KINDS)


class _OpenBets(NamedTuple):
    wheel: str
    bets: tuple[OpenBet, ...]
    staked: int
    bankroll: int


class OpenBets(_OpenBets, Block):
    """BETS: the open bets in the order placed, the total staked and the bankroll.

    ``Open bets (american wheel):``, one :class:`OpenBet` line each, ``Total staked 18; bankroll 82``.
    """

    __slots__ = ()
    CODE = 211
    HEAD = LineShape("Open bets ({wheel} wheel):", _OpenBets._fields, wheel=WORD)
    ITEMS, ITEM = "bets", OpenBet
    TAIL = LineShape("Total staked {staked}; bankroll {bankroll}", _OpenBets._fields, staked=COUNT, bankroll=COUNT)


class _Cleared(NamedTuple):
    bets: int
    returned: int
    bankroll: int


class Cleared(_Cleared, OneLine):
    """CLR: ``Cleared 3 bets, 18 chips back; bankroll 100``."""

    __slots__ = ()
    CODE = 200
    LINE = LineShape(
        "Cleared {bets}, {returned} chips back; bankroll {bankroll}",
        _Cleared._fields,
        bets=counted("bet"),
        returned=COUNT,
        bankroll=COUNT,
    )


class _BetOutcome(NamedTuple):
    bet: str
    amount: int
    won: bool
    returned: int


class BetOutcome(_BetOutcome, ItemLine):
    """One bet of a spin: ``RED for 10: win, 20 returned``; ``returned`` is stake plus winnings, 0 on a loss."""

    __slots__ = ()
    LINE = LineShape(
        "{bet} for {amount}: {won}, {returned} returned",
        _BetOutcome._fields,
        bet=TEXT,
        amount=COUNT,
        won=OUTCOME,
        returned=COUNT,
    )


class _Spin(NamedTuple):
    pocket: str
    properties: tuple[str, ...]
    outcomes: tuple[BetOutcome, ...]
    bankroll: int
    rounds: int
    net: int
    nonce: int


class Spin(_Spin, Block):
    """SPIN: the pocket and its properties, each bet's outcome, then bankroll, rounds, net and nonce.

    ``17 black odd low dozen2 column2`` (``0 green`` for a zero), one
    :class:`BetOutcome` line per bet in the order placed,
    ``Bankroll 175; rounds 1; net +75; nonce 0`` (net: returned minus staked on this spin;
    nonce: the one the pocket was derived with, see :class:`Fairness`).
    """

    __slots__ = ()
    CODE = 250
    HEAD = LineShape("{pocket} {properties}", _Spin._fields, pocket=WORD, properties=WORDS)
    ITEMS, ITEM = "outcomes", BetOutcome
    TAIL = LineShape(
        "Bankroll {bankroll}; rounds {rounds}; net {net}; nonce {nonce}",
        _Spin._fields,
        bankroll=COUNT,
        rounds=COUNT,
        net=NET,
        nonce=COUNT,
    )

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
# Receipts, history and the cashier
# --------------------------------------------------------------------------

#: What became of a bet: still ``open``, ``cleared`` (taken back), ``win``, ``lose``, or ``refunded``
#: (a shared table's round the daemon died in, given back at the next start).
SLIP_STATE = Field(r"open|cleared|win|lose|refunded", str, str)
#: A moment as the store writes it: ``2026-12-02T01:52:03+00:00``.
MOMENT = WORD


class _Receipt(NamedTuple):
    slip: int
    bet: str
    amount: int
    table: str
    round: int
    state: str
    returned: int


class Receipt(_Receipt, OneLine):
    """SLIP: ``Slip 7: RED for 10 at private round 3: win, 20 returned``.

    ``returned`` is what came back: stake plus winnings (``win``), 0 (``lose``, and
    ``open`` while the bet waits for its round), the stake (``cleared``, ``refunded``).
    """

    __slots__ = ()
    CODE = 200
    LINE = LineShape(
        "Slip {slip}: {bet} for {amount} at {table} round {round}: {state}, {returned} returned",
        _Receipt._fields,
        slip=COUNT,
        bet=TEXT,
        amount=COUNT,
        table=WORD,
        round=COUNT,
        state=SLIP_STATE,
        returned=COUNT,
    )


class _HistoryBet(NamedTuple):
    slip: int
    bet: str
    amount: int
    won: bool
    returned: int


class HistoryBet(_HistoryBet, ItemLine):
    """A bet of a round in HIST: ``Slip 7: RED for 10: win, 20 returned``."""

    __slots__ = ()
    LINE = LineShape(
        "Slip {slip}: {bet} for {amount}: {won}, {returned} returned",
        _HistoryBet._fields,
        slip=COUNT,
        bet=TEXT,
        amount=COUNT,
        won=OUTCOME,
        returned=COUNT,
    )


#: A server seed's SHA-256, or a revealed server seed: 64 lowercase hex characters.
HEX64 = Field(r"[0-9a-f]{64}", str, str)


class _HistorySeeds(NamedTuple):
    wheel: str
    nonce: int
    client_seed: str
    server_seed_hash: str


class HistorySeeds(_HistorySeeds, ItemLine):
    """What a round's pocket was derived from, in HIST after its round line: ``Fair: american wheel,
    nonce 3; client-seed 5f0c2a9e1b7d4c38; server-seed-hash <64 hex>`` (see :class:`Fairness`)."""

    __slots__ = ()
    LINE = LineShape(
        "Fair: {wheel} wheel, nonce {nonce}; client-seed {client_seed}; server-seed-hash {server_seed_hash}",
        _HistorySeeds._fields,
        wheel=WORD,
        nonce=COUNT,
        client_seed=WORD,
        server_seed_hash=HEX64,
    )


class _HistoryRound(NamedTuple):
    round: int
    table: str
    at: str
    pocket: str
    properties: tuple[str, ...]
    before: int
    after: int
    net: int
    bets: tuple[HistoryBet, ...] = ()
    fair: HistorySeeds | None = None


class HistoryRound(_HistoryRound, ItemLine):
    """A round in HIST, ``Round 3 at private, 2026-12-02T01:52:03+00:00: 19 red odd high dozen2 column1;
    bankroll 100 -> 110; net +10``, followed by its :class:`HistorySeeds` line (``fair``; none for a
    round spun before provably fair spins) and one :class:`HistoryBet` line per bet (``bets``)."""

    __slots__ = ()
    LINE = LineShape(
        "Round {round} at {table}, {at}: {pocket} {properties}; bankroll {before} -> {after}; net {net}",
        _HistoryRound._fields,
        round=COUNT,
        table=WORD,
        at=MOMENT,
        pocket=WORD,
        properties=WORDS,
        before=COUNT,
        after=COUNT,
        net=NET,
    )


class _HistoryCredit(NamedTuple):
    number: int
    by: str
    at: str
    amount: int
    before: int
    after: int
    reason: str


class HistoryCredit(_HistoryCredit, ItemLine):
    """A cashier's entry in HIST: ``Credit 4 by root, 2026-12-02T01:52:03+00:00: +50 chips; bankroll
    100 -> 150; welcome bonus`` (the reason last: any text)."""

    __slots__ = ()
    LINE = LineShape(
        "Credit {number} by {by}, {at}: {amount} chips; bankroll {before} -> {after}; {reason}",
        _HistoryCredit._fields,
        number=COUNT,
        by=WORD,
        at=MOMENT,
        amount=NET,
        before=COUNT,
        after=COUNT,
        reason=TEXT,
    )


class _History(NamedTuple):
    player: str
    entries: tuple[HistoryRound | HistoryCredit, ...]


class History(_History, MultiLine):
    """HIST's 211 reply: ``History of dave, newest first:``, each entry (a :class:`HistoryRound` line,
    its :class:`HistorySeeds` line and its :class:`HistoryBet` lines, or a :class:`HistoryCredit` line),
    ``End of history``."""

    __slots__ = ()
    CODE = 211
    HEAD = LineShape("History of {player}, newest first:", _History._fields, player=WORD)
    TAIL = "End of history"

    def lines(self) -> tuple[str, ...]:
        lines = [self.HEAD.format(self)]
        for entry in self.entries:
            lines.append(entry.line())
            if isinstance(entry, HistoryRound):
                if entry.fair is not None:
                    lines.append(entry.fair.line())
                lines.extend(bet.line() for bet in entry.bets)
        return (*lines, self.TAIL)

    @classmethod
    def from_lines(cls, lines: tuple[str, ...]) -> Self:
        if len(lines) < 2 or lines[-1] != cls.TAIL:
            raise ProtocolError(f"a history ends with {cls.TAIL!r}: {lines[-1:]!r}")
        entries: list[HistoryRound | HistoryCredit] = []
        for line in lines[1:-1]:
            if line.startswith(("Slip ", "Fair: ")):
                last = entries[-1] if entries else None
                if not isinstance(last, HistoryRound):
                    raise ProtocolError(f"a bet or seeds line outside a round: {line[:80]!r}")
                if line.startswith("Slip "):
                    entries[-1] = last._replace(bets=(*last.bets, HistoryBet.from_line(line)))
                elif last.fair is None and not last.bets:
                    entries[-1] = last._replace(fair=HistorySeeds.from_line(line))
                else:
                    raise ProtocolError(f"a seeds line out of place: {line[:80]!r}")
            elif line.startswith("Credit "):
                entries.append(HistoryCredit.from_line(line))
            else:
                entries.append(HistoryRound.from_line(line))
        return cls(**cls.HEAD.parse(lines[0]), entries=tuple(entries))


class _Credited(NamedTuple):
    number: int
    player: str
    amount: int
    before: int
    after: int


class Credited(_Credited, OneLine):
    """CRED: ``Credit 4 to dave: +50 chips; bankroll 100 -> 150``: the ledger entry's number."""

    __slots__ = ()
    CODE = 200
    LINE = LineShape(
        "Credit {number} to {player}: {amount} chips; bankroll {before} -> {after}",
        _Credited._fields,
        number=COUNT,
        player=WORD,
        amount=NET,
        before=COUNT,
        after=COUNT,
    )


class _Fairness(NamedTuple):
    server_seed_hash: str
    client_seed: str
    nonce: int
    server_seed: str | None = None


class Fairness(_Fairness, MultiLine):
    """FAIR's 211 reply: ``Fair play:``, ``key: value`` lines, ``End of fair play``.

    The keys: ``server-seed`` (FAIR NEW only: the seed just revealed, the one the spins
    before it came from), ``server-seed-hash`` (the SHA-256 of the seed the next spins
    come from), ``client-seed`` and ``nonce`` (the next spin's).
    """

    __slots__ = ()
    CODE = 211
    HEAD, TAIL = "Fair play:", "End of fair play"
    KEYS = (
        ("server-seed", "server_seed", HEX64),
        ("server-seed-hash", "server_seed_hash", HEX64),
        ("client-seed", "client_seed", WORD),
        ("nonce", "nonce", COUNT),
    )

    def lines(self) -> tuple[str, ...]:
        values = self._asdict()
        items = [f"{key}: {kind.write(values[name])}" for key, name, kind in self.KEYS if values[name] is not None]
        return (self.HEAD, *items, self.TAIL)

    @classmethod
    def from_lines(cls, lines: tuple[str, ...]) -> Self:
        if len(lines) < 2 or lines[0] != cls.HEAD or lines[-1] != cls.TAIL:
            raise ProtocolError(f"a FAIR reply is framed by {cls.HEAD!r} and {cls.TAIL!r}: {lines[:1]!r}")
        items = [_STATUS_ITEM.parse(line) for line in lines[1:-1]]
        given = {item["key"]: item["value"] for item in items}
        values = {}
        for key, name, kind in cls.KEYS:
            if key in given:
                if not re.fullmatch(kind.pattern, given[key]):
                    raise ProtocolError(f"FAIR's {key} is not of the form {kind.pattern}: {given[key][:80]!r}")
                values[name] = kind.read(given[key])
        missing = [key for key, name, _ in cls.KEYS[1:] if name not in values]
        if missing or set(given) - {key for key, _, _ in cls.KEYS}:
            raise ProtocolError(f"a FAIR reply has the keys server-seed-hash, client-seed and nonce: {sorted(given)}")
        return cls(**values)


# --------------------------------------------------------------------------
# Shared tables' events (6yz, docs/PROTOCOL.md section 12)
# --------------------------------------------------------------------------

#: Seconds as the events write them: ``20``, ``2.5``.
SECONDS = Field(r"[0-9]+(?:\.[0-9]+)?", lambda seconds: f"{seconds:g}", float)
#: A player's name in a chat line: the words after the first ``: `` are what they said.
SPEAKER = Field(r"[^:\s]+", str, str)

#: 610: a round opened.
ROUND_OPEN_LINE = LineShape(
    "round {round} open: bets for {seconds} s; server-seed-hash {server_seed_hash}",
    ("round", "seconds", "server_seed_hash"),
    round=COUNT,
    seconds=SECONDS,
    server_seed_hash=WORD,
)
#: 620: the round takes no more bets.
NO_MORE_BETS_LINE = LineShape("round {round} no more bets", ("round",), round=COUNT)
#: 630, to a player with bets in the round: the pocket, its properties, their own net.
RESULT_NET_LINE = LineShape(
    "round {round} {pocket} {properties}; net {net} (staked {staked}, returned {returned}); seed {seed}",
    ("round", "pocket", "properties", "net", "staked", "returned", "seed"),
    round=COUNT,
    pocket=WORD,
    properties=WORDS,
    net=NET,
    staked=COUNT,
    returned=COUNT,
    seed=WORD,
)
#: 630, to a player without bets in the round.
RESULT_NO_BETS_LINE = LineShape(
    "round {round} {pocket} {properties}; no bets; seed {seed}",
    ("round", "pocket", "properties", "seed"),
    round=COUNT,
    pocket=WORD,
    properties=WORDS,
    seed=WORD,
)
#: 630, to a player whose bets could not be settled now (given back at the daemon's next start).
RESULT_VOID_LINE = LineShape(
    "round {round} {pocket} {properties}; your bets are not settled yet: they are given back at the daemon's "
    "next start; seed {seed}",
    ("round", "pocket", "properties", "seed"),
    round=COUNT,
    pocket=WORD,
    properties=WORDS,
    seed=WORD,
)
#: 640 and 641: who joined or left, and how many are seated now.
JOINED_LINE = LineShape(
    "{player} joined {table} ({seated} seated)", ("player", "table", "seated"), player=WORD, table=WORD, seated=COUNT
)
LEFT_LINE = LineShape(
    "{player} left {table} ({seated} seated)", ("player", "table", "seated"), player=WORD, table=WORD, seated=COUNT
)
#: 650: a chat line.
CHAT_LINE = LineShape("{player}: {said}", ("player", "said"), player=SPEAKER, said=TEXT)

#: Every form of each event code, for a client reading an event's fields: the first that parses names them.
EVENT_LINES: dict[int, tuple[LineShape, ...]] = {
    610: (ROUND_OPEN_LINE,),
    620: (NO_MORE_BETS_LINE,),
    630: (RESULT_NET_LINE, RESULT_NO_BETS_LINE, RESULT_VOID_LINE),
    640: (JOINED_LINE,),
    641: (LEFT_LINE,),
    650: (CHAT_LINE,),
}


def event_fields(code: int, text: str) -> dict[str, Any]:
    """The fields of an event's text by its code's forms (:data:`EVENT_LINES`); empty when none fits."""
    for shape in EVENT_LINES.get(code, ()):
        try:
            return shape.parse(text)
        except ProtocolError:
            continue
    return {}


# --------------------------------------------------------------------------
# Meters
# --------------------------------------------------------------------------

#: JOB's reply code when every roster meter has been read (text ``All jobs done``).
ALL_JOBS_DONE = 251


class _Job(NamedTuple):
    meter: str


class Job(_Job, OneLine):
    """JOB: ``G10001 is yours to read``: the meter id is the first word."""

    __slots__ = ()
    CODE = 250
    LINE = LineShape("{meter} is yours to read", _Job._fields, meter=WORD)


class _Accepted(NamedTuple):
    mine: int
    total: int


class Accepted(_Accepted, OneLine):
    """READ: ``Accepted: you have read 2 out of 3 readings``: this user's count and everyone's."""

    __slots__ = ()
    CODE = 250
    LINE = LineShape(
        "Accepted: you have read {mine} out of {total} readings", _Accepted._fields, mine=COUNT, total=COUNT
    )


# --------------------------------------------------------------------------
# STAT
# --------------------------------------------------------------------------

_STATUS_HEAD, _STATUS_TAIL = "Status:", "End of status"
_STATUS_ITEM = LineShape(
    "{key}: {value}", ("key", "value"), key=Field(r"[^\s:]+", str, str), value=Field(r".*", str, str)
)


class _Status(NamedTuple):
    values: Mapping[str, object]


class Status(_Status, MultiLine):
    """STAT's 211 reply: ``Status:``, one ``key: value`` line per entry of ``values``, ``End of status``.

    A key is one word without ``:``; a value is any text, read back as ``str``
    (:meth:`texts` gives the values as text whichever way the status was made).
    """

    __slots__ = ()
    CODE = 211

    def lines(self) -> tuple[str, ...]:
        return (_STATUS_HEAD, *[_STATUS_ITEM.format(item) for item in self.values.items()], _STATUS_TAIL)

    @classmethod
    def from_lines(cls, lines: tuple[str, ...]) -> Self:
        if len(lines) < 2 or lines[0] != _STATUS_HEAD or lines[-1] != _STATUS_TAIL:
            raise ProtocolError(f"a status is framed by {_STATUS_HEAD!r} and {_STATUS_TAIL!r}: {lines[:1]!r}")
        items = (_STATUS_ITEM.parse(line) for line in lines[1:-1])
        return cls({item["key"]: item["value"] for item in items})

    def texts(self) -> dict[str, str]:
        """The values as the reply writes them: a parsed status's values as they are, a made one's as ``str``."""
        return {key: str(value) for key, value in self.values.items()}
