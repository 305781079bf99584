"""The roulette service: TABL, BET, BETS, CLR, SPIN, FAIR, SLIP, HIST and CRED, its daemon options,
STAT keys and ``daemon.py ledger`` and ``check``.

Who plays: a user with the ``player`` role. ``USER guest`` gets a play-money
table of :data:`GUEST_BANKROLL` chips, in memory, that lives as long as the
login; a registered player gets ``--start-bankroll`` chips once and keeps that
one table (bankroll, open bets, rounds, wheel) across connections (two
connections of one player share it) and, with a store, across restarts.

Every command works on the table through a :class:`TableRegistry`: a change
runs as one unit of work (``update``), under the player's lock in memory
(:class:`Casino`) or as one transaction of the store (:class:`StoredCasino`,
which also records each spin in the store's audit trail); reads take a
consistent copy (``view``).

Every private SPIN is provably fair: its pocket is derived from the table's
server seed, client seed and nonce (``lineproto.domain.fair``); ``FAIR`` shows the
server seed's hash before play, ``FAIR SEED`` chooses the client seed and ``FAIR
NEW`` reveals the server seed so the player can recompute every spin it settled.

Every bet placed gets a slip, the player's own receipt number (``Table.slips``):
``SLIP`` reads one back, ``HIST`` the newest rounds and cashier's entries, from
the store for a registered player and from the seat's ``PlayRecord`` (bounded,
for the login) for a guest. ``CRED`` (admin) is the cashier: one transaction
on the player's bankroll and the ledger.

Reply codes of this service (``ERROR_CODES`` maps the domain's exceptions):

====  ===========================================================================
200   TABL, BET, MBET (one line per bet), CLR done; SLIP's receipt; CRED's ledger entry
211   BETS: the open bets and the total staked (multi-line status, like STAT); HIST;
      FAIR: the seeds' hash, the client seed and the next nonce (FAIR NEW: the revealed seed)
250   SPIN: the pocket, one line per bet, the bankroll (multi-line)
501   cannot be parsed: unknown bet, amount not a whole number > 0, missing
      amount, unknown wheel; a slip or HIST count that is not a whole number (or
      not 1-100); a CRED amount that is not a signed whole number, 0 or too large,
      or no reason; FAIR with another word, a client seed that is not 1-64
      printable ASCII characters without spaces
530   not logged in (dispatch); 532 logged in without the player role (dispatch)
534   the amount is below the table minimum or above the table maximum
535   not enough chips in the bankroll (BET); CRED would leave it below zero
536   the bet parses but does not exist on this wheel's layout (00 or BASKET on a
      European wheel, FOUR on an American one, 1-5 as a split, ...)
537   TABL cannot change the wheel, FAIR SEED the client seed, FAIR NEW the server
      seed while bets are open
538   too many open bets on the table (SPIN or CLR first)
550   SLIP: you have no bet of that number; CRED: no registered player of that name
451   the store failed (452: it is full); nothing changed, trying later may work
====  ===========================================================================
"""

from __future__ import annotations

import argparse
import functools
import logging
import re
import threading
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from ..domain.accounts import GUEST, canonical_username
from ..domain.meters import utc_now
from ..domain.roulette import (
    AMERICAN,
    MAX_HISTORY,
    PAYOUTS,
    POCKETS,
    AboveMaximum,
    BadAmount,
    BadClientSeed,
    BadCredit,
    BelowMinimum,
    BelowZero,
    BetError,
    BetNotOnLayout,
    BetsOpen,
    BetSyntaxError,
    CreditRecord,
    FairSeeds,
    HistoryEntry,
    InsufficientChips,
    Limits,
    OpenBet,
    PlacementError,
    PlayRecord,
    SeedDraw,
    Slip,
    SpinResult,
    Table,
    TooManyBets,
    UnknownWheel,
    all_bets,
    house_edge,
    parse_bet,
    pocket_properties,
)
from ..wire import Reply, shapes
from .errors import CommandError, reply_for_error
from .table import Command, when_stored_user

log = logging.getLogger("lineproto.roulette")

#: Play-money chips a guest gets for one login.
GUEST_BANKROLL = 100
#: Daemon option defaults.
DEFAULT_TABLE_MIN = 1
DEFAULT_TABLE_MAX = 500
DEFAULT_START_BANKROLL = 1000
#: The limits a casino applies when given none (the domain's, 1-500; frozen, so one value serves all).
DEFAULT_LIMITS = Limits()
#: Roles allowed to play.
PLAYER_ROLES = frozenset({"player"})
#: Roles allowed to give and take chips (CRED).
CASHIER_ROLES = frozenset({"admin"})
#: HIST's count when none is given.
DEFAULT_HISTORY = 10
#: Longest reason of a cashier's entry, in characters.
MAX_REASON_CHARS = 200

_AMOUNT = re.compile(r"[0-9]+")
_SIGNED = re.compile(r"[+-]?[0-9]+")
T = TypeVar("T")


# --------------------------------------------------------------------------
# The wheel and the registry of tables
# --------------------------------------------------------------------------


class WheelHouse:
    """The daemon's source of fair seeds, under one lock.

    Every table spins from its seeds (:meth:`Table.spin`, and the shared tables'
    rounds); this is the :class:`~lineproto.domain.roulette.SeedSource` private
    tables draw new seeds from. Unseeded, the seeds come from :mod:`secrets`; with
    a seed (tests and replays only) from ``random.Random(seed)``, so one
    connection's spins are the same on every run.
    """

    def __init__(self, seed: int | None = None):
        self.seed = seed
        self._seeds = SeedDraw(seed)
        self._lock = threading.Lock()

    def server_seed(self) -> str:
        with self._lock:
            return self._seeds.server_seed()

    def client_seed(self) -> str:
        with self._lock:
            return self._seeds.client_seed()


class Seat:
    """One player's table, its receipts and history in memory, and the lock that serialises work on
    them (a guest's is ``Session.guest_seat``)."""

    __slots__ = ("table", "record", "lock")

    def __init__(self, table: Table):
        self.table = table
        self.record = PlayRecord()
        self.lock = threading.Lock()


class TableRegistry(Protocol):
    """What the commands need from wherever the tables are kept (memory, or a store)."""

    wheels: WheelHouse
    limits: Limits

    def update(self, session, change: Callable[[Table], T]) -> T:
        """Run ``change(table)`` on the player's table as one unit of work: exclusive, all or nothing."""

    def view(self, session) -> Table:
        """A copy of the player's table, read consistently (changing it changes nothing)."""

    def release(self, session) -> None:
        """Logout hook: let go of what the session holds."""

    def slip(self, session, number: int) -> Slip | None:
        """The player's bet receipt ``number``, or None if they have none of that number."""

    def history(self, session, count: int) -> list[HistoryEntry]:
        """The player's newest ``count`` rounds and cashier's entries, newest first."""

    def credit(self, by: str, player: str, amount: int, reason: str) -> CreditRecord:
        """The cashier: add ``amount`` chips (negative: remove) to registered ``player``'s bankroll."""


def _moment() -> str:
    """When a round or a cashier's entry happened, as the store writes it (UTC, to the second)."""
    return utc_now().isoformat(timespec="seconds")


def spin_change(wheels: WheelHouse) -> Callable[[Table], SpinResult]:
    """The change that spins the table from its fair seeds and settles every open bet (one unit of work)."""
    return lambda table: table.spin(wheels)


class Casino:
    """Every player's table in memory: a :class:`TableRegistry`.

    - :meth:`update` is the unit of work: it holds the player's lock while
      ``change`` runs, so two connections of one player never interleave (no
      overdraw, no bet lost or paid twice); if ``change`` raises, the table is
      put back as it was.
    - :meth:`view` is a consistent copy for the commands that only read.
    - :meth:`release` is the logout hook: it drops a guest's table.

    Guests' tables live in ``session.guest_seat`` and die with the login;
    registered players' tables are kept by name for the daemon's lifetime.
    """

    def __init__(
        self,
        wheels: WheelHouse,
        limits: Limits = DEFAULT_LIMITS,
        start_bankroll: int = DEFAULT_START_BANKROLL,
        guest_bankroll: int = GUEST_BANKROLL,
    ):
        self.wheels = wheels
        self.limits = limits
        self.start_bankroll = start_bankroll
        self.guest_bankroll = guest_bankroll
        self._players: dict[str, Seat] = {}
        self._credits = 0  # cashier's entries numbered so far (registered players in memory)
        self._lock = threading.Lock()  # guards _players and _credits only

    def _seat(self, session) -> Seat:
        user = _player(session)
        if user.is_guest:
            seat = session.guest_seat
            if seat is None:
                seat = session.guest_seat = Seat(Table(self.guest_bankroll, limits=self.limits))
            return seat
        return self._registered_seat(user.name)

    def _registered_seat(self, name: str) -> Seat:
        with self._lock:
            seat = self._players.get(name)
            if seat is None:
                seat = self._players[name] = Seat(Table(self.start_bankroll, limits=self.limits))
            return seat

    def update(self, session, change: Callable[[Table], T]) -> T:
        seat = self._seat(session)
        with seat.lock:
            before = seat.table.snapshot()
            bets = seat.table.bets
            try:
                result = change(seat.table)
            except BaseException:
                seat.table = Table.from_snapshot(before, self.limits)
                raise
            seat.record.note(bets, seat.table, result, _moment())
            return result

    def view(self, session) -> Table:
        seat = self._seat(session)
        with seat.lock:
            return Table.from_snapshot(seat.table.snapshot(), self.limits)

    def release(self, session) -> None:
        session.guest_seat = None

    def slip(self, session, number: int) -> Slip | None:
        seat = self._seat(session)
        with seat.lock:
            return seat.record.slip(number, seat.table)

    def history(self, session, count: int) -> list[HistoryEntry]:
        seat = self._seat(session)
        with seat.lock:
            return seat.record.history(count)

    def credit(self, by: str, player: str, amount: int, reason: str) -> CreditRecord:
        seat = self._registered_seat(player)
        with seat.lock:
            bankroll = seat.table.credit(amount)
            with self._lock:
                self._credits += 1
                number = self._credits
            entry = CreditRecord(number, player, _moment(), by, amount, reason, bankroll)
            seat.record.note_credit(entry)
            return entry


class StoredCasino(Casino):
    """Registered players' tables in a :class:`lineproto.store.Store`; guests' in memory.

    Each :meth:`update` is one store transaction (``Store.update_table``), which
    also records a spin's outcome in the audit trail; the store serialises the
    transactions, so two connections of one player cannot overdraw.
    """

    def __init__(
        self,
        store,
        wheels: WheelHouse,
        limits: Limits = DEFAULT_LIMITS,
        start_bankroll: int = DEFAULT_START_BANKROLL,
        guest_bankroll: int = GUEST_BANKROLL,
    ):
        super().__init__(wheels, limits, start_bankroll, guest_bankroll)
        self.store = store

    def update(self, session, change: Callable[[Table], T]) -> T:
        user = _player(session)
        if user.is_guest:
            return super().update(session, change)
        return self.store.update_table(user.name, self.start_bankroll, self.limits, change)

    def view(self, session) -> Table:
        user = _player(session)
        if user.is_guest:
            return super().view(session)
        table = self.store.load_table(user.name, self.limits)
        return table if table is not None else Table(self.start_bankroll, limits=self.limits)

    def slip(self, session, number: int) -> Slip | None:
        user = _player(session)
        return super().slip(session, number) if user.is_guest else self.store.slip(user.name, number)

    def history(self, session, count: int) -> list[HistoryEntry]:
        user = _player(session)
        return super().history(session, count) if user.is_guest else self.store.history(user.name, count)

    def credit(self, by: str, player: str, amount: int, reason: str) -> CreditRecord:
        return self.store.credit(player, by, amount, reason, self.start_bankroll, self.limits)


def _player(session):
    if session.user is None:
        raise RuntimeError("roulette table asked for without a login")
    return session.user


# --------------------------------------------------------------------------
# Reply texts
# --------------------------------------------------------------------------


def _percent(fraction) -> str:
    return f"{float(fraction) * 100:.2f}%"


@functools.cache
def _wheel_facts(kind: str) -> tuple[str, str]:
    """The pockets and the house edge of a wheel kind, worked out from the layout once."""
    zeros = ", ".join(p for p in POCKETS[kind] if p in ("0", "00"))
    edges = {bet.name: house_edge(bet, kind) for bet in all_bets(kind)}
    usual = edges["RED"]
    unusual = "".join(f" ({name} {_percent(edge)})" for name, edge in sorted(edges.items()) if edge != usual)
    return f"{zeros}, 1-36", f"{_percent(usual)}{unusual}"


def describe_wheel(table: Table) -> shapes.TableInfo:
    """TABL's reply: the wheel, its pockets, the table's limits and the house edge."""
    pockets, edge = _wheel_facts(table.wheel_kind)
    return shapes.TableInfo(table.wheel_kind, pockets, table.limits.minimum, table.limits.maximum, edge)


def _open_bet(open_bet: OpenBet) -> shapes.OpenBet:
    return shapes.OpenBet(open_bet.bet.name, open_bet.amount, open_bet.bet.payout)


#: Each pocket's properties as SPIN's first line lists them (the domain's words, PocketInfo.describe).
_PROPERTIES = {pocket: tuple(pocket_properties(pocket).describe().split()[1:]) for pocket in POCKETS[AMERICAN]}


# --------------------------------------------------------------------------
# Handlers
# --------------------------------------------------------------------------


def _registry(session) -> TableRegistry:
    return session.services.roulette


def _shared_seat(session):
    """The session's seat at a shared table (``commands.tables``), or None: it plays at its own table."""
    tables = getattr(session.services, "tables", None)
    return None if tables is None else tables.seat_of(session)


def tabl(session, wheel: str | None = None) -> Reply:
    registry = _registry(session)
    if wheel is None:
        table = registry.view(session)
    else:

        def choose(table: Table) -> Table:
            table.set_wheel(wheel)
            return table

        table = registry.update(session, choose)
    return describe_wheel(table).reply()


def bet(session, words: str) -> Reply:
    parts = words.split()
    if len(parts) < 2:
        raise CommandError(501, "Syntax: BET <bet> <amount>, e.g. BET RED 10 or BET SPLIT 17-18 5")
    *bet_words, amount_text = parts
    if not _AMOUNT.fullmatch(amount_text):
        raise BadAmount("the amount (the last word) must be a whole number of chips greater than 0")
    amount = int(amount_text)
    seat = _shared_seat(session)
    if seat is not None:  # at a shared table: the bet goes into its round (commands.tables)
        return session.services.tables.bet(session, seat, " ".join(bet_words), amount)

    def place(table: Table) -> tuple[OpenBet, int]:
        return table.place(parse_bet(" ".join(bet_words), table.wheel_kind), amount), table.bankroll

    open_bet, bankroll = _registry(session).update(session, place)
    return shapes.PlacedBet(open_bet.bet.name, open_bet.amount, open_bet.bet.payout, bankroll, open_bet.slip).reply()


_MBET_SYNTAX = "Syntax: MBET <bet> <amount>[, <bet> <amount>...], e.g. MBET RED 10, SPLIT 17-18 5"


def mbet(session, words: str) -> Reply:
    """MBET: a list of bets placed all or none, in one unit of work (``Table.place_all``).

    The reply is one BET reply line per bet; the first refusal is the reply, naming the bet by its
    place in the list, and nothing was placed.
    """
    wanted = []
    for part in words.split(","):
        *bet_words, amount_text = part.split() or [""]
        if not bet_words:
            raise CommandError(501, _MBET_SYNTAX)
        wanted.append((" ".join(bet_words), amount_text))
    if _shared_seat(session) is not None:
        raise CommandError(503, "At a shared table bets are placed one at a time: BET <bet> <amount>")

    def place(table: Table) -> tuple[list[OpenBet], list[int]]:
        parsed = []
        for position, (bet_words, amount_text) in enumerate(wanted, start=1):
            try:
                if not _AMOUNT.fullmatch(amount_text):
                    raise BadAmount("the amount (the last word) must be a whole number of chips greater than 0")
                parsed.append((parse_bet(bet_words, table.wheel_kind), int(amount_text)))
            except BetError as exc:
                raise PlacementError(position, exc) from exc
        start = table.bankroll
        placed = table.place_all(parsed)
        return placed, [start - sum(b.amount for b in placed[: i + 1]) for i in range(len(placed))]

    try:
        placed, bankrolls = _registry(session).update(session, place)
    except PlacementError as exc:
        named, amount = wanted[exc.position - 1]
        refusal = reply_for_error(exc.error, ERROR_CODES)
        code = refusal.code if refusal is not None else 501
        raise CommandError(code, f"bet {exc.position} ({named} {amount}): {exc.error}") from None
    lines = [
        shapes.PlacedBet(b.bet.name, b.amount, b.bet.payout, bankroll, b.slip).line()
        for b, bankroll in zip(placed, bankrolls, strict=True)
    ]
    return Reply(shapes.PlacedBet.CODE, tuple(lines))


def bets(session) -> Reply:
    seat = _shared_seat(session)
    if seat is not None:
        return session.services.tables.bets(session, seat)
    table = _registry(session).view(session)
    listed = tuple(_open_bet(open_bet) for open_bet in table.bets)
    return shapes.OpenBets(table.wheel_kind, listed, table.staked, table.bankroll).reply()


def clr(session) -> Reply:
    seat = _shared_seat(session)
    if seat is not None:
        return session.services.tables.clear(session, seat)

    def clear(table: Table) -> tuple[int, int, int]:
        count = len(table.bets)
        return count, table.clear(), table.bankroll

    return shapes.Cleared(*_registry(session).update(session, clear)).reply()


def spin(session) -> Reply:
    seat = _shared_seat(session)
    if seat is not None:  # the croupier spins a shared table
        return session.services.tables.refuse_spin(seat)
    registry = _registry(session)
    result = registry.update(session, spin_change(registry.wheels))
    outcomes = tuple(shapes.BetOutcome(o.bet.name, o.amount, o.won, o.returned) for o in result.outcomes)
    pocket = result.info.pocket
    assert result.fair is not None  # Table.spin always names the seeds it spun with
    return shapes.Spin(
        pocket, _PROPERTIES[pocket], outcomes, result.bankroll, result.rounds, result.net, result.fair.nonce
    ).reply()


_FAIR_SYNTAX = "Syntax: FAIR, FAIR SEED <client seed> or FAIR NEW"


def fair(session, action: str | None = None, text: str | None = None) -> Reply:
    """FAIR: the seeds' state; FAIR SEED <text>: choose the client seed; FAIR NEW: reveal and renew.

    Each runs as a change (``update``) so that the seeds a first FAIR draws are kept
    (stored, for a registered player) before the hash is shown.
    """
    source = _registry(session).wheels
    word = None if action is None else action.upper()
    change: Callable[[Table], tuple[str | None, FairSeeds]]
    if word is None:
        change = lambda table: (None, table.fair_seeds(source))  # noqa: E731
    elif word == "SEED" and text is not None:
        change = lambda table: (None, table.set_client_seed(text, source))  # noqa: E731
    elif word == "NEW" and text is None:
        change = lambda table: table.new_server_seed(source)  # noqa: E731
    else:
        raise CommandError(501, _FAIR_SYNTAX)
    revealed, seeds = _registry(session).update(session, change)
    return shapes.Fairness(seeds.server_seed_hash, seeds.client_seed, seeds.nonce, revealed).reply()


def _whole_number(text: str, what: str, syntax: str) -> int:
    """A count typed by a player: 1-18 digits (so it fits the store's integers), else 501."""
    if not _AMOUNT.fullmatch(text) or len(text) > 18:
        raise CommandError(501, f"{what} must be a whole number: {syntax}")
    return int(text)


def slip(session, number: str) -> Reply:
    found = _registry(session).slip(session, _whole_number(number, "The slip", "SLIP <number>, e.g. SLIP 7"))
    if found is None:  # the same reply whether nobody or somebody else has that number: nothing to probe
        raise CommandError(550, f"You have no bet with slip {int(number)}")
    return shapes.Receipt(
        found.number, found.bet, found.amount, found.table, found.round, found.state, found.returned
    ).reply()


def _history_entry(entry: HistoryEntry) -> shapes.HistoryRound | shapes.HistoryCredit:
    if isinstance(entry, CreditRecord):
        return shapes.HistoryCredit(
            entry.number, entry.by, entry.at, entry.amount, entry.bankroll_before, entry.bankroll_after, entry.reason
        )
    bets = tuple(shapes.HistoryBet(o.slip, o.bet.name, o.amount, o.won, o.returned) for o in entry.outcomes)
    seeds = entry.fair
    return shapes.HistoryRound(
        entry.round,
        entry.table,
        entry.at,
        entry.pocket,
        _PROPERTIES[entry.pocket],
        entry.bankroll_before,
        entry.bankroll_after,
        entry.net,
        bets,
        None
        if seeds is None
        else shapes.HistorySeeds(seeds.wheel, seeds.nonce, seeds.client_seed, seeds.server_seed_hash),
    )


def hist(session, count: str | None = None) -> Reply:
    wanted = DEFAULT_HISTORY if count is None else _whole_number(count, "The count", f"HIST [1-{MAX_HISTORY}]")
    if not 1 <= wanted <= MAX_HISTORY:
        raise CommandError(501, f"HIST shows 1 to {MAX_HISTORY} entries, not {wanted}")
    entries = _registry(session).history(session, wanted)
    return shapes.History(session.user.name, tuple(_history_entry(entry) for entry in entries)).reply()


def cred(session, name: str, amount: str, reason: str) -> Reply:
    if not _SIGNED.fullmatch(amount) or len(amount.lstrip("+-")) > 18:
        raise CommandError(501, "The amount must be a whole number of chips, signed to take: CRED <user> -20 <reason>")
    reason = reason.strip()
    if not reason or len(reason) > MAX_REASON_CHARS or not reason.isprintable():
        raise CommandError(501, f"A reason is required: 1-{MAX_REASON_CHARS} printable characters")
    user = session.services.users.get(name) if name.lower() != GUEST else None
    if user is None or not user.has_role(*PLAYER_ROLES):
        raise CommandError(550, f"No registered player named {_shown_name(name)}")
    entry = _registry(session).credit(session.user.name, user.name, int(amount), reason)
    log.info(
        "%s: %s credited %+d chips to %s (ledger %d)", session.peer, entry.by, entry.amount, entry.player, entry.number
    )
    return shapes.Credited(
        entry.number, entry.player, entry.amount, entry.bankroll_before, entry.bankroll_after
    ).reply()


def _shown_name(name: str) -> str:
    return name if len(name) <= 32 else name[:29] + "..."


def stat_items(session) -> list[tuple[str, object]]:
    """STAT lines for a logged-in player: wheel, bankroll, rounds, the open bets' count and chips.

    ``open-bets`` is the chips staked, as before ``open-bet-chips`` existed:
    kept, deprecated, for clients that read it.
    """
    user = session.user
    if user is None or not user.has_role(*PLAYER_ROLES):
        return []
    table = _registry(session).view(session)
    return [
        ("wheel", table.wheel_kind),
        ("bankroll", table.bankroll),
        ("rounds", table.rounds),
        ("open-bet-count", len(table.bets)),
        ("open-bet-chips", table.staked),
        ("open-bets", table.staked),
    ]


#: HELP BET's list of bets: what a player types (in the syntax notation of HELP: <x> stands for a
#: value, | separates alternatives), what it covers, and its kind in the domain's PAYOUTS. Only the
#: first column is ever typed, so nothing in the second can be read as syntax.
_BET_KINDS = (
    ("<number>", "one number (00: American wheel only), e.g. 17", "straight"),
    ("SPLIT <a>-<b>", "two numbers next to each other, e.g. SPLIT 17-18", "split"),
    ("STREET <first>", "a row of three, e.g. STREET 13 (13 to 15)", "street"),
    ("TRIO <a>-<b>-<c>", "a zero and two next to it, e.g. TRIO 0-1-2", "trio"),
    ("CORNER <a>-<b>-<c>-<d>", "four at a corner, e.g. CORNER 17-18-20-21", "corner"),
    ("FOUR", "0, 1, 2 and 3, on the European wheel only", "four"),
    ("BASKET", "0, 00, 1, 2 and 3, on the American wheel only", "basket"),
    ("LINE <first>", "two rows, e.g. LINE 13 (13 to 18)", "line"),
    ("DOZEN1|DOZEN2|DOZEN3", "1 to 12, 13 to 24 or 25 to 36", "dozen"),
    ("COLUMN1|COLUMN2|COLUMN3", "a column: 1, 4, ... 34 up to 3, 6, ... 36", "column"),
    ("RED|BLACK", "the colour of the number", "color"),
    ("EVEN|ODD", "an even or an odd number", "parity"),
    ("LOW|HIGH", "1 to 18 or 19 to 36 (also LO, HI)", "half"),
)


def _bet_detail() -> str:
    """HELP BET's details: the bet list, one row per kind with its payout from the domain, and the refusals."""
    width = max(len(typed) for typed, _, _ in _BET_KINDS) + 2
    rows = [f"{typed:<{width}}{what}; pays {PAYOUTS[kind]}:1" for typed, what, kind in _BET_KINDS]
    return "\n".join(
        [
            "The last word is the amount in whole chips; the words before it are the bet, one of:",
            *rows,
            "Numbers in a group may come in any order; 0 and 00 lose every bet from DOZEN1 down.",
            "The chips leave the bankroll at once. 501 cannot be parsed; 534 below the minimum or over the",
            "maximum; 535 not enough chips; 536 not a bet on this wheel's layout; 538 too many open bets.",
        ]
    )


COMMANDS = (
    Command(
        "TABL",
        "[<american|european>]",
        "Say the wheel and limits, or choose AMERICAN or EUROPEAN",
        tabl,
        roles=PLAYER_ROLES,
        blocks=when_stored_user,
        changes=True,
        detail="Without argument: the wheel, its limits and house edge. With AMERICAN or EUROPEAN:\n"
        "switch to that wheel (537 while bets are open; 501 for another word).",
    ),
    Command(
        "BET",
        "<bet...>",
        "Put chips on a bet: BET <bet> <amount>, e.g. BET RED 10",
        bet,
        roles=PLAYER_ROLES,
        blocks=when_stored_user,
        changes=True,
        detail=_bet_detail(),
    ),
    Command(
        "MBET",
        "<bets...>",
        "Put chips on a list of bets, all or none: MBET RED 10, SPLIT 17-18 5",
        mbet,
        roles=PLAYER_ROLES,
        blocks=when_stored_user,
        changes=True,
        detail="The bets are separated by commas, each as BET takes it. All are placed in one\n"
        "unit of work, or none: the first refused is the reply (its place in the list first),\n"
        "and the bankroll and open bets stay as they were. One BET reply line per bet placed.\n"
        "Not at a shared table (503): there, BET one at a time.",
    ),
    Command(
        "BETS", "", "List the open bets and the total staked (211)", bets, roles=PLAYER_ROLES, blocks=when_stored_user
    ),
    Command("CLR", "", "Take back every open bet", clr, roles=PLAYER_ROLES, blocks=when_stored_user, changes=True),
    Command(
        "SPIN",
        "",
        "Spin the wheel and settle every open bet (250)",
        spin,
        roles=PLAYER_ROLES,
        blocks=when_stored_user,
        changes=True,
        detail="First line: the pocket and its properties; then one line per bet\n"
        "(win or lose, chips returned); last line: bankroll, rounds and net.",
    ),
    Command(
        "FAIR",
        "[<SEED|NEW>] [<client-seed>]",
        "Provably fair spins: the server seed's hash, your client seed and the next nonce (211)",
        fair,
        roles=PLAYER_ROLES,
        blocks=when_stored_user,
        detail="FAIR: the SHA-256 of the server seed your next spins come from, your client seed\n"
        "and the next spin's nonce. FAIR SEED <text>: choose the client seed (1-64 printable\n"
        "ASCII characters, no spaces). FAIR NEW: reveal the server seed (server-seed) and start\n"
        "a new one at nonce 0. Both are refused with 537 while bets are open. docs/PROTOCOL.md\n"
        "section 10 says how each pocket is derived; client.py verify recomputes them.",
    ),
    Command(
        "SLIP",
        "<number>",
        "Say what became of one of your bets, by the slip number BET gave it",
        slip,
        roles=PLAYER_ROLES,
        blocks=when_stored_user,
        detail="The table and round of the bet, the bet and amount, and its state: open,\n"
        "cleared, win or lose, with the chips returned. 550 if you have no bet of that number.",
    ),
    Command(
        "HIST",
        "[<count>]",
        f"Your last rounds and cashier's entries, newest first ({DEFAULT_HISTORY}; at most {MAX_HISTORY})",
        hist,
        roles=PLAYER_ROLES,
        blocks=when_stored_user,
        detail="A Round line per round (round, table, time, pocket, bankroll before and after, net)\n"
        "followed by a Slip line per bet with its outcome; a Credit line per cashier's entry.",
    ),
    Command(
        "CRED",
        "<user> <amount> <reason...>",
        "Cashier: add chips to a registered player's bankroll (-N takes them), with a reason",
        cred,
        roles=CASHIER_ROLES,
        blocks=when_stored_user,
        changes=True,
        detail="The amount is a whole number of chips, not 0 (+50, 50, -20), at most 1000000000;\n"
        "the bankroll in hand never goes below zero (535). Each entry is kept in the ledger:\n"
        "the player's HIST shows it, and daemon.py ledger NAME lists them.",
    ),
)

#: Domain errors to reply codes, most specific first (BetNotOnLayout is a BetError too).
ERROR_CODES = (
    (BetNotOnLayout, 536),
    (BetSyntaxError, 501),
    (BadAmount, 501),
    (UnknownWheel, 501),
    (BelowMinimum, 534),
    (AboveMaximum, 534),
    (InsufficientChips, 535),
    (BetsOpen, 537),
    (TooManyBets, 538),
    (BelowZero, 535),
    (BadCredit, 501),
    (BadClientSeed, 501),
)


# --------------------------------------------------------------------------
# Daemon options and installation
# --------------------------------------------------------------------------


def _chips(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of chips: {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"must be at least {least}: {text!r}")
    return value


class _LimitAction(argparse.Action):
    """Store a table limit; refuse a minimum above the maximum, whichever comes last."""

    def __call__(self, parser, namespace, value, option_string=None):
        setattr(namespace, self.dest, value)
        low, high = getattr(namespace, "table_min", None), getattr(namespace, "table_max", None)
        if low is not None and high is not None and low > high:
            raise argparse.ArgumentError(self, f"the table minimum ({low}) is above the maximum ({high})")


def add_arguments(parser) -> None:
    group = parser.add_argument_group("roulette")
    group.add_argument(
        "--seed",
        type=int,
        default=None,
        help="derive the fair server seeds (and the wheel) from this number: predictable spins, "
        "for tests and replays only",
    )
    group.add_argument(
        "--table-min",
        type=lambda t: _chips(t, 1),
        default=DEFAULT_TABLE_MIN,
        action=_LimitAction,
        metavar="CHIPS",
        help="smallest bet (default %(default)s)",
    )
    group.add_argument(
        "--table-max",
        type=lambda t: _chips(t, 1),
        default=DEFAULT_TABLE_MAX,
        action=_LimitAction,
        metavar="CHIPS",
        help="largest bet (default %(default)s)",
    )
    group.add_argument(
        "--start-bankroll",
        type=lambda t: _chips(t, 0),
        default=DEFAULT_START_BANKROLL,
        metavar="CHIPS",
        help="chips a registered player starts with (default %(default)s)",
    )


def install(services, options) -> None:
    """Register the commands, errors, STAT keys, logout hook and ``services.roulette``."""
    seed = getattr(options, "seed", None)
    if seed is not None:
        log.warning(
            "WHEEL SEEDED WITH %d: every spin is predictable. --seed is for tests and replays only, "
            "never for real play",
            seed,
        )
    limits = Limits(getattr(options, "table_min", DEFAULT_TABLE_MIN), getattr(options, "table_max", DEFAULT_TABLE_MAX))
    start_bankroll = getattr(options, "start_bankroll", DEFAULT_START_BANKROLL)
    store = getattr(services, "store", None)
    if store is None:
        casino = Casino(WheelHouse(seed), limits, start_bankroll)
    else:
        casino = StoredCasino(store, WheelHouse(seed), limits, start_bankroll)
    services.roulette = casino
    for command in COMMANDS:
        services.table.add(command)
    services.error_codes.extend(ERROR_CODES)
    services.stat_providers.append(stat_items)
    services.logout_hooks.append(casino.release)


# --------------------------------------------------------------------------
# daemon.py ledger and check
# --------------------------------------------------------------------------


def add_admin_commands(add: Callable[..., argparse.ArgumentParser]) -> None:
    """This service's ``daemon.py`` subcommands (see :func:`lineproto.commands.add_admin_commands`)."""
    ledger = add("ledger", "list a player's cashier's entries (CRED), oldest first", run_ledger)
    ledger.add_argument("name", help="the player")
    add(
        "check",
        "check that chips are conserved: bankrolls + open bets == start bankrolls + credits + net results",
        run_check,
    )


def _credit_line(entry: CreditRecord) -> str:
    return (
        f"{entry.number}\t{entry.at}\t{entry.by}\t{entry.amount:+d}\t"
        f"bankroll {entry.bankroll_before} -> {entry.bankroll_after}\t{entry.reason}"
    )


def run_ledger(args: argparse.Namespace, open_store: Callable[[bool], Any]) -> int:
    """``daemon.py ledger NAME``: one tab-separated line per entry: number, time, by, amount, bankroll, reason."""
    name = canonical_username(args.name)
    with open_store(False) as store:
        entries = store.ledger(name)
    if not entries:
        print(f"no cashier's entries for {name}")
    for entry in entries:
        print(_credit_line(entry))
    return 0


def run_check(args: argparse.Namespace, open_store: Callable[[bool], Any]) -> int:
    """``daemon.py check``: each player's chips against the ledger; exit 1 naming every player that differs."""
    with open_store(False) as store:
        audits = store.chip_audits()
    wrong = [audit for audit in audits if audit.difference]
    for audit in wrong:
        print(
            f"{audit.player}: holds {audit.held} chips (bankroll {audit.bankroll} + open bets {audit.open_bets}), "
            f"expected {audit.expected} (start {audit.start} + credits {audit.credits:+d} + net {audit.net:+d}): "
            f"{audit.difference:+d}"
        )
    held = sum(audit.held for audit in audits)
    start, credits, net = (sum(getattr(a, key) for a in audits) for key in ("start", "credits", "net"))
    players = f"{len(audits)} player{'' if len(audits) == 1 else 's'}"
    differ = "differs" if len(wrong) == 1 else "differ"
    verdict = f"{len(wrong)} of {players} {differ}" if wrong else f"chips conserved for {players}"
    print(
        f"{verdict}: held {held} chips, start {start} + credits {credits:+d} + net {net:+d} = {start + credits + net}"
    )
    return 1 if wrong else 0
