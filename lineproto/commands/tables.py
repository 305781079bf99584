"""Shared tables: JOIN, LEAV, LIST and CHAT, the croupier that runs the rounds, and the events it sends.

The rounds are the domain's (``domain.tables.SharedTable``); this module seats
sessions, takes bets' chips from the players' bankrolls (a guest's play money
in memory, a registered player's in the store, one transaction per bet), runs
one croupier thread for every table (it calls ``SharedTable.advance`` at each
deadline, spins, settles the round durably, then tells the table), and sends
events to the seated sessions through ``Session.event_sink`` (the connection's
``push_event``; the engine writes them between replies).

Each accepted bet takes the player's next slip, the counter of their private
bets (``StoredTables.place`` in the bet's transaction; a guest's
``Table.take_slip``, its receipts and settled rounds kept in the seat's
``PlayRecord``), so SLIP and HIST see shared bets as they see private ones.

After JOIN, the roulette commands BET, BETS and CLR act on the player's bets in
the table's current round and SPIN is refused (``commands.roulette`` asks
:meth:`TableService.seat_of` first).

Reply codes of this service:

====  ===========================================================================
200   JOIN, LEAV, CHAT done
211   LIST: one line per table (multi-line)
450   a bet or CLR after no more bets (the text says when the next round opens);
      CHAT past the rate limit (:data:`CHAT_LIMIT` lines per :data:`CHAT_WINDOW` s)
501   CHAT text too long (:data:`MAX_CHAT_CHARS`) or with control characters
503   LEAV or CHAT while not at a table; SPIN at a shared table (the croupier spins)
550   JOIN a table that does not exist
====  ===========================================================================

Events (one line each, 600-699, only to seated sessions): 610 round open (with
the round's ``server-seed-hash``), 620 no more bets, 630 the result with the
player's own net and the revealed ``seed``, 640 joined, 641 left, 650 chat.

Provably fair: the croupier's pocket is the round's (``SpinDue.pocket``, derived
from the seed the round drew when it opened), never the wheel's RNG; with
``--seed N`` each table's round seeds come from ``random.Random(f"{N}:{table}")``,
so a replay gives the same pockets.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import functools
import itertools
import logging
import math
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

from ..domain import fair
from ..domain.meters import utc_now
from ..domain.roulette import OPEN, Bet, Limits, OpenBet, Slip, SpinResult, Table, parse_bet
from ..domain.tables import (
    BETTING,
    DEFAULT_ROUND_SECONDS,
    DEFAULT_TABLES,
    IDLE,
    SETTLED,
    BettingClosed,
    FollowedTable,
    NoMoreBets,
    RoundOpened,
    RoundSettled,
    SharedTable,
    SpinDue,
    TableSpec,
    parse_table_specs,
)
from ..store import is_postgres
from ..store.base import StorageError
from ..store.pgbus import Bus, TableLocks
from ..store.pgrounds import CHANNEL, DAEMON_PREFIX, RoundRecords, RoundRow
from ..store.tables import StoredTables
from ..wire import Reply, shapes
from ..wire.reply import format_event
from .errors import CommandError
from .roulette import PLAYER_ROLES, WheelHouse, _player
from .table import STORE_POOL, Command

log = logging.getLogger("lineproto.tables")

#: Characters a CHAT line may hold.
MAX_CHAT_CHARS = 200
#: CHAT lines one player may send per :data:`CHAT_WINDOW` seconds; the next gets 450.
CHAT_LIMIT = 5
CHAT_WINDOW = 10.0

#: Event codes (docs/PROTOCOL.md section 12).
ROUND_OPEN, NO_MORE_BETS, ROUND_RESULT, JOINED, LEFT, CHAT = 610, 620, 630, 640, 641, 650


# --------------------------------------------------------------------------
# Purses: where a bet's chips come from and its winnings go
# --------------------------------------------------------------------------


class MemoryPurse:
    """A bankroll kept in memory: a guest's table (``Session.guest_seat``), or any player's without a store."""

    def __init__(self, seat):
        self.seat = seat  # commands.roulette.Seat

    def bankroll(self) -> int:
        with self.seat.lock:
            return self.seat.table.bankroll

    def place(self, table: str, place: Callable[[int], tuple[OpenBet, int, int]]) -> tuple[OpenBet, int]:
        """``place(bankroll) -> (bet, bankroll after, round)``, the bankroll set to what it returns.

        The bet returned carries the player's next slip (``Table.take_slip``: the private bets' counter).
        """
        with self.seat.lock:
            open_bet, after, round_id = place(self.seat.table.bankroll)
            slip = self.seat.table.take_slip()
            self.seat.table = _with_bankroll(self.seat.table, after)
            self.seat.record.note_shared_bet(Slip(slip, table, round_id, open_bet.bet.name, open_bet.amount, OPEN))
            return replace(open_bet, slip=slip), after

    def give_back(self, table: str, round_id: int, chips: int) -> tuple[int, int]:
        """CLR: ``chips`` back, the round's receipts cleared; (chips given back, the bankroll after)."""
        with self.seat.lock:
            self.seat.record.note_shared_clear(table, round_id)
            return chips, self._credit(chips)

    def settle(self, table: str, round_id: int, result: SpinResult) -> None:
        """The croupier settled the round: the chips returned into the bankroll, the round in the history."""
        with self.seat.lock:
            bankroll = self._credit(result.returned)
            self.seat.record.note_shared_round(
                table, round_id, result, bankroll, utc_now().isoformat(timespec="seconds")
            )

    def _credit(self, chips: int) -> int:
        self.seat.table = _with_bankroll(self.seat.table, self.seat.table.bankroll + chips)
        return self.seat.table.bankroll


class StoredPurse:
    """A registered player's bankroll in the store: each change is one transaction (``StoredTables``).

    Its winnings are not credited here: the croupier settles the stored bets of a round in one
    transaction for the whole table (``StoredTables.settle``).
    """

    def __init__(self, stored: StoredTables, name: str, start_bankroll: int):
        self.stored = stored
        self.name = name
        self.start_bankroll = start_bankroll

    def bankroll(self) -> int:
        return self.stored.bankroll(self.name, self.start_bankroll)

    def place(self, table: str, place: Callable[[int], tuple[OpenBet, int, int]]) -> tuple[OpenBet, int]:
        return self.stored.place(self.name, self.start_bankroll, table, place)

    def give_back(self, table: str, round_id: int, chips: int) -> tuple[int, int]:
        return self.stored.take_back(self.name, table, round_id)


Purse = MemoryPurse | StoredPurse


def _with_bankroll(table: Table, bankroll: int) -> Table:
    """The same table with another bankroll (the shared table took or gave chips)."""
    return Table(bankroll, table.wheel_kind, table.limits, table.rounds, table.bets, slips=table.slips)


@dataclass
class Listener:
    """A session seated at a table: who (player key, shown name) and where its events go."""

    session: object
    player: str
    name: str
    room: Room
    push: Callable[[bytes], None] | None


@dataclass
class Room:
    """One table with its lock, its listeners and the purses of the current round's bettors."""

    table: SharedTable
    lock: threading.Lock = field(default_factory=threading.Lock)
    listeners: dict[int, Listener] = field(default_factory=dict)  # id(session) -> Listener
    purses: dict[str, Purse] = field(default_factory=dict)  # player -> where their chips are

    def send(self, line: bytes, skip: object = None) -> int:
        """Push ``line`` to every listener but ``skip``'s session; how many got it."""
        sent = 0
        for listener in list(self.listeners.values()):
            if listener.session is skip:
                continue
            sent += 1
            if listener.push is not None:
                listener.push(line)
        return sent


class TableService:
    """The shared tables of a daemon: seats, bets, chat; its :class:`Rounds` runs the rounds and carries the events."""

    def __init__(
        self,
        services,
        specs: tuple[TableSpec, ...],
        limits: Limits,
        round_seconds: float,
        wheels: WheelHouse,
        start_bankroll: int,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.services = services
        self.wheels = wheels
        self.start_bankroll = start_bankroll
        self.clock = clock
        # The store's transactions (``run``); a store without them keeps no shared-table state.
        store = getattr(services, "store", None)
        self.stored = StoredTables(store) if callable(getattr(store, "run", None)) else None
        dsn = _cluster_dsn(store)
        self.rounds: Rounds = LocalRounds(self) if dsn is None else ClusterRounds(self, store, dsn)
        last: dict[str, int] = {}
        if self.stored is not None:
            try:
                self.rounds.recover()
                last = self.stored.last_rounds()
            except StorageError as exc:
                log.error("shared tables: cannot read or refund the last run's rounds: %s", exc)
        self.rooms = {
            spec.name: Room(self.rounds.new_table(spec, spec.limits or limits, round_seconds, last.get(spec.name, 0)))
            for spec in specs
        }
        self._seats: dict[int, Listener] = {}  # id(session) -> its seat
        self._lock = threading.Lock()  # guards _seats, _chats and the guest names
        self._chats: dict[str, collections.deque[float]] = {}
        self._guest_numbers = itertools.count(1)
        self._guest_names: dict[int, str] = {}
        self.rounds.start()

    # -- seats

    def seat_of(self, session) -> Listener | None:
        """The session's seat, or None when it plays at its own table."""
        return self._seats.get(id(session))

    def join(self, session, name: str) -> Reply:
        room = self.rooms.get(name.lower())
        if room is None:
            raise CommandError(550, f"No table named {name[:20]}; LIST shows the tables")
        current = self.seat_of(session)
        if current is not None and current.room is room:
            return Reply(200, (self._where(room, f"Already at {room.table.name}"),))
        if current is not None:
            self.leave(session)
        player, shown = self._identity(session)
        listener = Listener(session, player, shown, room, session.event_sink)
        with room.lock:
            opened = room.table.join(player, shown, self.clock())
            room.listeners[id(session)] = listener
        with self._lock:
            self._seats[id(session)] = listener
        try:
            self.rounds.joined(room, listener, opened)
        except BaseException:
            self._unseat(session, listener)
            raise
        return Reply(200, (self._where(room, f"Joined {room.table.name}"),))

    def leave(self, session) -> Reply:
        with self._lock:
            listener = self._seats.get(id(session))
        if listener is None:
            raise CommandError(503, "You are not at a shared table; JOIN one first (LIST shows them)")
        room = listener.room
        with room.lock:
            staked = room.table.bets_of(listener.player)
            round_id = room.table.round_id
        self._unseat(session, listener)
        self.rounds.left(room, listener, wait=True)
        if not staked:
            stays = "; no bets were open"
        elif len(staked) == 1:
            stays = f"; your bet in round {round_id} stays and is settled"
        else:
            stays = f"; your {len(staked)} bets in round {round_id} stay and are settled"
        return Reply(200, (f"Left {room.table.name}{stays}; back at your own table",))

    def _unseat(self, session, listener: Listener) -> None:
        with self._lock:
            self._seats.pop(id(session), None)
        room = listener.room
        with room.lock:
            room.listeners.pop(id(session), None)
            if not any(other.player == listener.player for other in room.listeners.values()):
                room.table.leave(listener.player)

    def release(self, session) -> None:
        """Logout hook: leave the table (bets stay and are settled); the others are told without waiting.

        A guest logs out on an event loop's thread, which must not wait for a database.
        """
        with self._lock:
            listener = self._seats.get(id(session))
        if listener is not None:
            self._unseat(session, listener)
            self.rounds.left(listener.room, listener, wait=False)
        with self._lock:
            name = self._guest_names.pop(id(session), None)
            if name is not None:  # a guest's key is never seen again: forget its chat times
                self._chats.pop(_guest_key(name, session), None)

    def listing(self, session) -> Reply:
        now = self.clock()
        seated = self.rounds.seated()
        lines = ["Tables:"]
        for room in self.rooms.values():
            with room.lock:
                table = room.table
                lines.append(
                    f"{table.name}: {table.wheel} wheel, bets {table.limits.minimum}-{table.limits.maximum} chips, "
                    f"{seated.get(table.name, 0)} seated, round {table.round_id}, {table.state}"
                    + (f", {math.ceil(table.seconds_left(now))} s left" if table.state is BETTING else "")
                    + (f", server-seed-hash {table.seed_hash}" if table.state is not IDLE else "")
                )
        seat = self.seat_of(session)
        lines.append(f"{len(self.rooms)} tables" + (f"; you are at {seat.room.table.name}" if seat else ""))
        return Reply(211, tuple(lines))

    # -- bets at the table

    def bet(self, session, seat: Listener, words: str, amount: int) -> Reply:
        room = seat.room
        bet = parse_bet(words, room.table.wheel)  # a table's wheel never changes
        open_bet, bankroll = self._place(session, seat, room, bet, amount)
        placed = open_bet.bet
        return shapes.PlacedBet(placed.name, open_bet.amount, placed.payout, bankroll, open_bet.slip).reply()

    def _place(self, session, seat: Listener, room: Room, bet: Bet, amount: int) -> tuple[OpenBet, int]:
        """The domain's checks under the room's lock, inside the purse's unit of work that takes the chips.

        The room's lock is held only while the domain places the bet, not while the store commits it:
        the store's settlement of the round comes after it in the store's order and settles what was
        committed, so a player waiting for the disk holds up no one else at the table.
        """
        table, player = room.table, seat.player
        purse = self._purse(session, room)
        placed: list[OpenBet] = []

        def place(bankroll: int) -> tuple[OpenBet, int, int]:
            with room.lock:
                open_bet, after = table.place(player, bet, amount, bankroll, self.clock())
                room.purses[player] = purse
                placed.append(open_bet)
                return open_bet, after, table.round_id

        try:
            return purse.place(table.name, place)
        except BaseException:
            if placed:  # the domain took the bet, the chips were not taken (the store failed): undo it
                with room.lock:
                    table.unplace(player, placed[0])
            raise

    def bets(self, session, seat: Listener) -> Reply:
        room = seat.room
        with room.lock:
            open_bets = room.table.bets_of(seat.player)
            wheel = room.table.wheel
        listed = tuple(shapes.OpenBet(b.bet.name, b.amount, b.bet.payout) for b in open_bets)
        staked = sum(b.amount for b in open_bets)
        return shapes.OpenBets(wheel, listed, staked, self._bankroll(session)).reply()

    def clear(self, session, seat: Listener) -> Reply:
        room, table = seat.room, seat.room.table
        with room.lock:
            kept = list(table.bets_of(seat.player))
            count, chips = table.take_back(seat.player, self.clock())
            round_id = table.round_id
        try:
            # Outside the room's lock: the store gives back what it still holds open (all of it,
            # unless the round was settled meanwhile, which settled the committed bets instead).
            chips, bankroll = self._purse(session, room).give_back(table.name, round_id, chips)
        except BaseException:
            with room.lock:
                if table.round_id == round_id:
                    table.restore(seat.player, kept)
            raise
        return shapes.Cleared(count, chips, bankroll).reply()

    def refuse_spin(self, seat: Listener) -> Reply:
        room = seat.room
        with room.lock:
            when = self._timing(room)
        return Reply(503, (f"The croupier spins at {room.table.name} ({when}); LEAV to spin at your own table",))

    # -- chat

    def chat(self, session, text: str) -> Reply:
        seat = self.seat_of(session)
        if seat is None:
            raise CommandError(503, "You are not at a shared table; JOIN one first")
        if len(text) > MAX_CHAT_CHARS:
            raise CommandError(501, f"A chat line is at most {MAX_CHAT_CHARS} characters")
        if not text.isprintable():
            raise CommandError(501, "A chat line cannot hold control characters")
        now = self.clock()
        with self._lock:
            sent = self._chats.setdefault(seat.player, collections.deque())
            while sent and sent[0] <= now - CHAT_WINDOW:
                sent.popleft()
            if len(sent) >= CHAT_LIMIT:
                wait = math.ceil(sent[0] + CHAT_WINDOW - now)
                raise CommandError(450, f"At most {CHAT_LIMIT} chat lines per {CHAT_WINDOW:g} s; try again in {wait} s")
            sent.append(now)
        count = self.rounds.say(seat, f"{seat.name}: {text}")
        return Reply(200, (f"Said to {count} at {seat.room.table.name}",))

    # -- what every seated session hears

    def settle_guests(self, due: SpinDue, settled: RoundSettled, purses: dict) -> dict:
        """The results of the round's bets kept in memory (a guest's, or any without a store), credited."""
        results = {
            player: result
            for player, result in settled.results.items()
            if not isinstance(purses.get(player), StoredPurse)
        }
        for player, purse in purses.items():
            if isinstance(purse, MemoryPurse) and player in results:
                purse.settle(due.table, due.round_id, results[player])
        return results

    def tell_result(
        self, room: Room, settled: RoundSettled, results: dict, void: set[str], skip: object = None
    ) -> None:
        """630 to every seated session but ``skip``'s: the pocket, its own net (``results``: net, staked, returned)."""
        head = f"round {settled.round_id} {settled.info.describe()}"
        for listener in list(room.listeners.values()):
            if listener.session is skip:
                continue
            result = results.get(listener.player)
            if listener.player in void:
                mine = "your bets are not settled yet: they are given back at the daemon's next start"
            elif result is None:
                mine = "no bets"
            else:
                mine = f"net {result.net:+d} (staked {result.staked}, returned {result.returned})"
            if listener.push is not None:
                listener.push(format_event(ROUND_RESULT, f"{head}; {mine}; seed {settled.server_seed}"))

    def tell_open(self, room: Room, opened: RoundOpened, skip: object = None) -> None:
        text = f"round {opened.round_id} open: bets for {opened.seconds:g} s; server-seed-hash {opened.seed_hash}"
        room.send(format_event(ROUND_OPEN, text), skip=skip)

    def tell_closed(self, room: Room, closed: BettingClosed, skip: object = None) -> None:
        room.send(format_event(NO_MORE_BETS, f"round {closed.round_id} no more bets"), skip=skip)

    def close(self) -> None:
        """Shutdown hook: stop running rounds (an unsettled round's stored bets are refunded or settled later)."""
        self.rounds.close()

    # -- inside

    def _identity(self, session) -> tuple[str, str]:
        """The player key (one per registered name; one per guest login) and the name others see."""
        user = _player(session)
        if not user.is_guest:
            return user.name, user.name
        with self._lock:
            name = self._guest_names.get(id(session))
            if name is None:
                name = self._guest_names[id(session)] = f"guest-{next(self._guest_numbers)}"
        return _guest_key(name, session), name

    def _purse(self, session, room: Room | None = None) -> Purse:
        """Where the session's chips are: a registered player's in the store, else a seat in memory.

        At a table (``room``) the store's side is the rounds' (:meth:`Rounds.stored_for`): in a
        cluster each of its transactions first checks that the table's round still takes bets.
        """
        user = _player(session)
        if self.stored is not None and not user.is_guest:
            stored = self.stored if room is None else self.rounds.stored_for(room)
            return StoredPurse(stored, user.name, self.start_bankroll)
        return MemoryPurse(self.services.roulette._seat(session))

    def _bankroll(self, session) -> int:
        return self._purse(session).bankroll()

    def _timing(self, room: Room) -> str:
        table, now = room.table, self.clock()
        if table.state is BETTING:
            return f"round {table.round_id}, {math.ceil(table.seconds_left(now))} s of betting left"
        if table.state is IDLE:
            return "no round open"
        return f"round {table.round_id}, no more bets; the next round opens in {math.ceil(table.reopens_in(now))} s"

    def _where(self, room: Room, what: str) -> str:
        """JOIN's reply; it names the current round's seed hash (the first round's 610 comes before the JOIN)."""
        table = room.table
        with room.lock:
            when = self._timing(room)
            committed = f"; server-seed-hash {table.seed_hash}" if table.state is not IDLE else ""
        limits = f"bets {table.limits.minimum}-{table.limits.maximum} chips"
        return f"{what}: {table.wheel} wheel, {limits}; {when}{committed}"


def _round_seeds(wheels: WheelHouse, table: str) -> random.Random | None:
    """Where a table's round seeds come from: :mod:`secrets`, or with ``--seed N`` a Random of its own.

    One generator per table (seeded ``f"{N}:{table}"``) so that a table's seeds do not depend on
    how the other tables' rounds and the private tables' draws interleave.
    """
    return None if wheels.seed is None else random.Random(f"{wheels.seed}:{table}")


def _guest_key(name: str, session) -> str:
    """A guest's player key: one per login (guests share the user name ``guest``)."""
    return f"{name}@{id(session)}"


# --------------------------------------------------------------------------
# Rounds: who runs a table's rounds, and how its events reach the seated sessions
# --------------------------------------------------------------------------


class Rounds(Protocol):
    """The seam between the tables' commands and where their rounds run (:class:`LocalRounds`, :class:`ClusterRounds`).

    The store chooses: one daemon on SQLite runs every round itself and tells its own sessions;
    daemons sharing a PostgreSQL database share the rounds and tell each other.
    """

    #: True when the tables' commands wait for the store (then they run off an event loop).
    uses_store: bool

    def recover(self) -> None:
        """At start: what a round the last run died in becomes (refunded, or settled later)."""

    def new_table(self, spec: TableSpec, limits: Limits, round_seconds: float, last_round: int) -> SharedTable:
        """The table's round state as this daemon keeps it."""

    def start(self) -> None:
        """The rooms exist: start running or following the rounds."""

    def joined(self, room: Room, listener: Listener, opened: RoundOpened | None) -> None:
        """``listener`` sat down (seated here already; ``opened``: the round its join opened): tell the others."""

    def left(self, room: Room, listener: Listener, wait: bool) -> None:
        """``listener`` left (unseated here already): tell the others (``wait``: before returning)."""

    def say(self, seat: Listener, text: str) -> int:
        """A chat line from ``seat`` to everyone else at its table: how many it reaches."""

    def seated(self) -> dict[str, int]:
        """Players seated at each table."""

    def stored_for(self, room: Room) -> StoredTables:
        """Where a registered player's bets at ``room`` are taken and given back."""

    def close(self) -> None:
        """Stop (shutdown)."""


class LocalRounds:
    """One daemon runs its tables: a :class:`Croupier` thread times the rounds; events go to its own sessions."""

    uses_store = False

    def __init__(self, service: TableService):
        self.service = service
        self.croupier = Croupier(self)

    def recover(self) -> None:
        """Give back the bets of a round the last run died in (only this daemon ever ran it)."""
        assert self.service.stored is not None
        self.service.stored.refund_unsettled()

    def new_table(self, spec: TableSpec, limits: Limits, round_seconds: float, last_round: int) -> SharedTable:
        return SharedTable(spec, limits, round_seconds, last_round, _round_seeds(self.service.wheels, spec.name))

    def start(self) -> None:
        """The croupier's thread starts with the first round."""

    def joined(self, room: Room, listener: Listener, opened: RoundOpened | None) -> None:
        with room.lock:
            seated = len(room.table.seated)
        text = f"{listener.name} joined {room.table.name} ({seated} seated)"
        room.send(format_event(JOINED, text), skip=listener.session)
        if opened is not None:
            self.croupier.wake()

    def left(self, room: Room, listener: Listener, wait: bool) -> None:
        with room.lock:
            seated = len(room.table.seated)
        room.send(format_event(LEFT, f"{listener.name} left {room.table.name} ({seated} seated)"))

    def say(self, seat: Listener, text: str) -> int:
        return seat.room.send(format_event(CHAT, text), skip=seat.session)

    def seated(self) -> dict[str, int]:
        return {name: len(room.table.seated) for name, room in self.service.rooms.items()}

    def stored_for(self, room: Room) -> StoredTables:
        assert self.service.stored is not None
        return self.service.stored

    def close(self) -> None:
        self.croupier.stop()

    # -- the croupier's side

    def advance(self, now: float) -> None:
        """Move every table on to ``now``: close betting, spin and settle what is due (croupier thread)."""
        for room in self.service.rooms.values():
            with room.lock:
                happened = room.table.advance(now)
                purses = {}
                for event in happened:
                    if isinstance(event, SpinDue):
                        purses, room.purses = room.purses, {}
            for event in happened:
                if isinstance(event, BettingClosed):
                    self.service.tell_closed(room, event)
                elif isinstance(event, SpinDue):
                    self._spin(room, event, purses)

    def _spin(self, room: Room, due: SpinDue, purses: dict) -> None:
        """Spin, settle every bet at once (durable before anyone hears of it), then the next round."""
        service = self.service
        settled = due.settle()  # the pocket the round's published seed hash committed to
        # The registered players' results come from their bets as committed in the store, below.
        results = {}
        void: set[str] = set()
        if service.stored is not None:
            started = time.perf_counter()
            try:
                results = service.stored.settle(due.table, due.round_id, settled.pocket, due.wheel, due.limits)
                log.debug(
                    "round %d at %s: %d stored players settled in %.1f ms",
                    due.round_id,
                    due.table,
                    len(results),
                    (time.perf_counter() - started) * 1000,
                )
            except Exception:  # the bets stay open in the store: refunded at the next start
                log.exception("round %d at %s: not settled in the store; refunded at restart", due.round_id, due.table)
                void = {player for player, purse in purses.items() if isinstance(purse, StoredPurse)}
        results.update(service.settle_guests(due, settled, purses))
        with room.lock:
            opened = room.table.finish(service.clock())
        service.tell_result(room, settled, results, void)
        if opened is not None:
            service.tell_open(room, opened)

    def next_deadline(self) -> float | None:
        deadlines = [d for room in self.service.rooms.values() if (d := room.table.deadline) is not None]
        return min(deadlines) if deadlines else None


class Croupier:
    """One thread that runs every local table's rounds: it sleeps until the next deadline, or a JOIN wakes it."""

    def __init__(self, rounds: LocalRounds):
        self.rounds = rounds
        self._wakeup = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def wake(self) -> None:
        """A round opened: start the thread if it is not running, and let it see the new deadline."""
        with self._wakeup:
            if self._stopping:
                return
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="croupier", daemon=True)
                self._thread.start()
            self._wakeup.notify()

    def stop(self) -> None:
        with self._wakeup:
            self._stopping = True
            self._wakeup.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=10)

    def _run(self) -> None:
        rounds, clock = self.rounds, self.rounds.service.clock
        while True:
            with self._wakeup:
                if self._stopping:
                    return
                deadline = rounds.next_deadline()
                timeout = None if deadline is None else deadline - clock()
                if timeout is None or timeout > 0:
                    self._wakeup.wait(timeout)
                if self._stopping:
                    return
            try:
                rounds.advance(clock())
            except Exception:  # one bad round must not stop every table
                log.exception("the croupier failed; going on")


class ClusterRounds:
    """Daemons sharing a PostgreSQL database share the tables (docs/PROTOCOL.md 12, "Across daemons").

    - One croupier per table in the cluster: the daemon holding the table's advisory lock
      (``store.pgbus.TableLocks``) closes and settles its rounds; every daemon tries the locks
      it does not hold every :data:`LOCK_RETRY` seconds, so when the holder dies another takes
      the table over, and goes on with the round where the database has it.
    - The round is a row (``store.pgrounds``): any daemon opens a table's round when someone
      joins it idle; every daemon follows the rows in a :class:`FollowedTable` per table,
      which checks its sessions' bets by the domain's rules and keeps its guests' bets.
    - Events: each change is notified with its row's id only; every daemon's :class:`Bus`
      reads the row and tells its own seated sessions (610, 620, 630 with each one's net,
      640, 641, 650).
    """

    uses_store = True

    def __init__(self, service: TableService, store, dsn: str):
        self.service = service
        self.store = store
        self.daemon = f"{DAEMON_PREFIX}{uuid.uuid4().hex[:16]}"
        self.records = RoundRecords(store, self.daemon)
        self.bus = Bus(dsn, self.daemon, CHANNEL, self._deliver, self._catch_up)
        self.locks = TableLocks(dsn, self.daemon)
        self._seeds: dict[str, random.Random | None] = {}
        self._wakeup = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="croupier", daemon=True)
        self._later = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="tables-later")

    def recover(self) -> None:
        """Nothing: a round another daemon runs goes on, and one whose croupier died is settled by the next."""

    def new_table(self, spec: TableSpec, limits: Limits, round_seconds: float, last_round: int) -> SharedTable:
        self._seeds[spec.name] = _round_seeds(self.service.wheels, spec.name)
        return FollowedTable(spec, limits, round_seconds, last_round)

    def start(self) -> None:
        log.info("shared tables: shared with the daemons on the database as %r", self.daemon)
        self.bus.start()
        self._catch_up(tell=False)
        self._thread.start()

    def joined(self, room: Room, listener: Listener, opened: RoundOpened | None) -> None:
        table = room.table
        row = self.records.join(
            table.name, str(id(listener.session)), listener.player, listener.name, self._opening(room)
        )
        if row is not None:  # the joiner hears of the round in JOIN's reply; the others here may not have yet
            self._follow(room, row, tell=True, skip=listener.session)
            self._wakeup.set()

    def left(self, room: Room, listener: Listener, wait: bool) -> None:
        leave = functools.partial(self.records.leave, room.table.name, str(id(listener.session)), listener.name)
        if wait:
            leave()
        elif not self._stopping.is_set():  # a logout: on a thread of its own; if it fails, tidy() forgets the seat
            self._later.submit(self._quietly, leave)

    def say(self, seat: Listener, text: str) -> int:
        return self.records.say(seat.room.table.name, str(id(seat.session)), text)

    def seated(self) -> dict[str, int]:
        return self.records.seated()

    def stored_for(self, room: Room) -> StoredTables:
        return StoredTables(_WhileBetting(self.store, self.records, room))

    def close(self) -> None:
        self._stopping.set()
        self._wakeup.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._later.shutdown(wait=True)
        self.locks.close()
        self.bus.stop()

    # -- following the rounds (the bus's thread)

    def _deliver(self, payload: str) -> None:
        kind, _, number = payload.partition(" ")
        if kind == "round":
            row = self.records.round(int(number))
            room = None if row is None else self.service.rooms.get(row.table)
            if row is not None and room is not None:
                self._follow(room, row, tell=True)
            self._wakeup.set()  # the croupier sees the new deadline
        elif kind == "event":
            event = self.records.event(int(number))
            room = None if event is None else self.service.rooms.get(event.table)
            if event is not None and room is not None:
                skip = None
                if event.daemon == self.daemon and event.session.isdigit():
                    sender = room.listeners.get(int(event.session))
                    skip = None if sender is None else sender.session
                room.send(format_event(event.code, event.text), skip=skip)

    def _catch_up(self, tell: bool = True) -> None:
        """Follow every table's newest round (at start, and after the listening connection was lost).

        After a loss this daemon's seats are recorded again: while it was away another daemon may
        have forgotten them, and settled a round with nobody seated (the table went idle).
        """
        if tell:
            seats = [
                (room.table.name, str(key), listener.player, listener.name, self._opening(room))
                for room in self.service.rooms.values()
                for key, listener in list(room.listeners.items())
            ]
            if seats:
                self.records.reseat(seats)
        for name, row in self.records.current().items():
            room = self.service.rooms.get(name)
            if room is None:
                continue
            with room.lock:
                missed = room.table.round_id if room.table.state is not IDLE else None
            if tell and missed is not None and missed < row.round_id:  # its end first: the bets placed here
                ended = self.records.round_at(name, missed)
                if ended is not None:
                    self._follow(room, ended, tell)
            self._follow(room, row, tell)

    def _follow(self, room: Room, row: RoundRow, tell: bool, skip: object = None) -> None:
        """Move the room's table to the row's round; tell what is news (610, 620, 630) if ``tell``, not to ``skip``."""
        service = self.service
        with room.lock:
            table = room.table
            assert isinstance(table, FollowedTable)
            news = table.follow(row.round_id, row.phase, row.seconds, row.seed_hash, row.left, service.clock())
            bets, purses = {}, {}
            if SETTLED in news:
                bets, purses, room.purses = table.take_round(), room.purses, {}
        for item in news:
            if isinstance(item, RoundOpened):
                if tell:
                    service.tell_open(room, item, skip)
            elif isinstance(item, BettingClosed):
                if tell:
                    service.tell_closed(room, item, skip)
            elif row.server_seed is not None:
                due = SpinDue(table.name, row.round_id, table.wheel, table.limits, bets, row.server_seed)
                settled = due.settle()
                guests = service.settle_guests(due, settled, purses)
                if tell:
                    results: dict = {**self.records.results(table.name, row.round_id), **guests}
                    service.tell_result(room, settled, results, set(), skip)

    # -- the croupier's side (its own thread)

    def _run(self) -> None:
        next_try = 0.0
        held: set[str] = set()
        while not self._stopping.is_set():
            wait = LOCK_RETRY
            if time.monotonic() >= next_try:
                held = self.locks.try_take(list(self.service.rooms))
                next_try = time.monotonic() + LOCK_RETRY
                if held:
                    self._quietly(self.records.tidy)
            for name in sorted(held):
                left = self._quietly(self._run_table, self.service.rooms[name])
                if left is not None:
                    wait = min(wait, left)
            self._wakeup.wait(max(wait, 0.01))
            self._wakeup.clear()

    def _run_table(self, room: Room) -> float:
        """Close, spin and settle what is due at a table this daemon is the croupier of; seconds to its next step."""
        table = room.table
        self.records.close_due(table.name, table.spin_seconds)
        due = self.records.spin_due(table.name)
        if due is not None:
            row_id, round_id, seed = due
            pocket = SpinDue(table.name, round_id, table.wheel, table.limits, {}, seed).pocket()
            started = time.perf_counter()
            # Every registered player's bet of the round, in one transaction, before anyone hears of it.
            assert self.service.stored is not None
            stored = self.service.stored.settle(table.name, round_id, pocket, table.wheel, table.limits)
            self.records.finish(row_id, pocket, self._opening(room))
            log.debug(
                "round %d at %s: %d stored players settled in %.1f ms",
                round_id,
                table.name,
                len(stored),
                (time.perf_counter() - started) * 1000,
            )
        row = self.records.current().get(table.name)
        if row is None or row.phase == SETTLED:
            row = self.records.open_if_seated(table.name, self._opening(room))
        return LOCK_RETRY if row is None or row.phase == SETTLED else row.left

    def _opening(self, room: Room) -> tuple[int, float, str, str]:
        """What a round opened now at the room's table starts with: last round, seconds, server seed, its hash."""
        table = room.table
        seed = fair.new_server_seed(self._seeds.get(table.name))
        return table.round_id, table.round_seconds, seed, fair.seed_hash(seed)

    def _quietly(self, step: Callable, *args):
        """``step(*args)``; a failure (the database away) is logged and tried again at the next turn."""
        try:
            return step(*args)
        except Exception as exc:
            log.warning("shared tables: the croupier's step failed (%s); trying again", exc)
            return None


class _WhileBetting:
    """The store, each of whose transactions first checks that the room's round still takes bets.

    ``StoredTables`` over it takes a bet's chips (or gives them back) only while the round's row,
    locked FOR SHARE in the same transaction, is betting (``RoundRecords.require_betting``).
    """

    def __init__(self, store, records: RoundRecords, room: Room):
        self.store = store
        self.records = records
        self.room = room

    def run(self, operation):
        table = self.room.table

        def guarded(connection):
            self.records.require_betting(connection, table.name, table.round_id)
            return operation(connection)

        return self.store.run(guarded)


def _cluster_dsn(store) -> str | None:
    """The address of a store several daemons may share (PostgreSQL's ``postgresql://...``), or None."""
    address = getattr(store, "path", None)
    return address if isinstance(address, str) and is_postgres(address) else None


#: Seconds between a daemon's tries at the croupier's locks of the tables it does not run.
LOCK_RETRY = 1.0


# --------------------------------------------------------------------------
# Handlers, command table, options
# --------------------------------------------------------------------------


def _service(session) -> TableService:
    return session.services.tables


def _when_shared(session) -> str | None:
    """``blocks`` of the tables' commands: the store's pool when the rounds are shared in the store."""
    tables = getattr(session.services, "tables", None)
    return STORE_POOL if tables is not None and tables.rounds.uses_store else None


def join(session, name: str) -> Reply:
    return _service(session).join(session, name)


def leav(session) -> Reply:
    return _service(session).leave(session)


def list_tables(session) -> Reply:
    return _service(session).listing(session)


def chat(session, text: str) -> Reply:
    return _service(session).chat(session, text)


COMMANDS = (
    Command(
        "JOIN",
        "<table>",
        "Sit at a shared table: its croupier runs the rounds (LIST shows the tables)",
        join,
        roles=PLAYER_ROLES,
        blocks=_when_shared,
        detail="The reply says the wheel, the limits, the round and the seconds of betting left.\n"
        "From then on BET, BETS and CLR act on your bets in the table's round, SPIN is the\n"
        "croupier's, and events (6yz lines) tell the rounds, who comes and goes and the chat.",
    ),
    Command(
        "LEAV",
        "",
        "Leave the shared table (bets placed stay and are settled)",
        leav,
        roles=PLAYER_ROLES,
        blocks=_when_shared,
    ),
    Command(
        "LIST",
        "",
        "List the shared tables: wheel, seated, round, state, the round's seed hash (211)",
        list_tables,
        roles=PLAYER_ROLES,
        blocks=_when_shared,
    ),
    Command(
        "CHAT",
        "<text...>",
        "Say something to everyone at your table",
        chat,
        roles=PLAYER_ROLES,
        blocks=_when_shared,
        detail=f"At most {MAX_CHAT_CHARS} characters, no control characters (501); at most {CHAT_LIMIT} lines\n"
        f"per {CHAT_WINDOW:g} s (450).",
    ),
)

ERROR_CODES = ((NoMoreBets, 450),)


def _round_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be more than 0: {text!r}")
    return value


def _table_specs(text: str) -> tuple[TableSpec, ...]:
    try:
        return parse_table_specs(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser) -> None:
    group = parser.add_argument_group("shared tables")
    group.add_argument(
        "--tables",
        type=_table_specs,
        default=parse_table_specs(DEFAULT_TABLES),
        metavar="NAME:WHEEL[:MIN-MAX],...",
        help=f"the shared tables (default {DEFAULT_TABLES}; limits default to --table-min/--table-max)",
    )
    group.add_argument(
        "--round-seconds",
        type=_round_seconds,
        default=DEFAULT_ROUND_SECONDS,
        metavar="SECONDS",
        help="seconds of betting per round (default %(default)g)",
    )


def install(services, options) -> None:
    """Register the commands and ``services.tables``; refund the bets of a round the last run left unsettled."""
    casino = services.roulette
    service = TableService(
        services,
        getattr(options, "tables", parse_table_specs(DEFAULT_TABLES)),
        casino.limits,
        getattr(options, "round_seconds", DEFAULT_ROUND_SECONDS),
        casino.wheels,
        getattr(casino, "start_bankroll", 1000),
    )
    services.tables = service
    for command in COMMANDS:
        services.table.add(command)
    services.error_codes.extend(ERROR_CODES)
    services.logout_hooks.append(service.release)
    services.shutdown_hooks.append(service.close)
