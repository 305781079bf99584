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
import itertools
import logging
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from ..domain.meters import utc_now
from ..domain.roulette import OPEN, Bet, Limits, OpenBet, Slip, SpinResult, Table, parse_bet
from ..domain.tables import (
    BETTING,
    DEFAULT_ROUND_SECONDS,
    DEFAULT_TABLES,
    IDLE,
    BettingClosed,
    NoMoreBets,
    RoundOpened,
    RoundSettled,
    SharedTable,
    SpinDue,
    TableSpec,
    parse_table_specs,
)
from ..store.base import StorageError
from ..store.tables import StoredTables
from ..wire import Reply, shapes
from ..wire.reply import format_event
from .errors import CommandError
from .roulette import PLAYER_ROLES, WheelHouse, _player
from .table import Command

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
    """The shared tables of a daemon: seats, bets, chat and the croupier (see the module docstring)."""

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
        # The SQLite store's transactions (``run``); a store without them keeps no shared-table state.
        store = getattr(services, "store", None)
        self.stored = StoredTables(store) if callable(getattr(store, "run", None)) else None
        last: dict[str, int] = {}
        if self.stored is not None:
            try:
                self.stored.refund_unsettled()
                last = self.stored.last_rounds()
            except StorageError as exc:
                log.error("shared tables: cannot read or refund the last run's rounds: %s", exc)
        self.rooms = {
            spec.name: Room(
                SharedTable(
                    spec, spec.limits or limits, round_seconds, last.get(spec.name, 0), _round_seeds(wheels, spec.name)
                )
            )
            for spec in specs
        }
        self._seats: dict[int, Listener] = {}  # id(session) -> its seat
        self._lock = threading.Lock()  # guards _seats, _chats and the guest names
        self._chats: dict[str, collections.deque[float]] = {}
        self._guest_numbers = itertools.count(1)
        self._guest_names: dict[int, str] = {}
        self.croupier = Croupier(self)

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
            seated = len(room.table.seated)
        with self._lock:
            self._seats[id(session)] = listener
        room.send(format_event(JOINED, f"{shown} joined {room.table.name} ({seated} seated)"), skip=session)
        if opened is not None:
            self.croupier.wake()
        return Reply(200, (self._where(room, f"Joined {room.table.name}"),))

    def leave(self, session) -> Reply:
        with self._lock:
            listener = self._seats.pop(id(session), None)
        if listener is None:
            raise CommandError(503, "You are not at a shared table; JOIN one first (LIST shows them)")
        room = listener.room
        with room.lock:
            room.listeners.pop(id(session), None)
            if not any(other.player == listener.player for other in room.listeners.values()):
                room.table.leave(listener.player)
            seated = len(room.table.seated)
            staked = room.table.bets_of(listener.player)
            round_id = room.table.round_id
        room.send(format_event(LEFT, f"{listener.name} left {room.table.name} ({seated} seated)"))
        if not staked:
            stays = "; no bets were open"
        elif len(staked) == 1:
            stays = f"; your bet in round {round_id} stays and is settled"
        else:
            stays = f"; your {len(staked)} bets in round {round_id} stay and are settled"
        return Reply(200, (f"Left {room.table.name}{stays}; back at your own table",))

    def release(self, session) -> None:
        """Logout hook: leave the table (bets stay and are settled)."""
        if self.seat_of(session) is not None:
            self.leave(session)
        with self._lock:
            name = self._guest_names.pop(id(session), None)
            if name is not None:  # a guest's key is never seen again: forget its chat times
                self._chats.pop(_guest_key(name, session), None)

    def listing(self, session) -> Reply:
        now = self.clock()
        lines = ["Tables:"]
        for room in self.rooms.values():
            with room.lock:
                table = room.table
                lines.append(
                    f"{table.name}: {table.wheel} wheel, bets {table.limits.minimum}-{table.limits.maximum} chips, "
                    f"{len(table.seated)} seated, round {table.round_id}, {table.state}"
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
        purse = self._purse(session)
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
            chips, bankroll = self._purse(session).give_back(table.name, round_id, chips)
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
        room = seat.room
        count = room.send(format_event(CHAT, f"{seat.name}: {text}"), skip=session)
        return Reply(200, (f"Said to {count} at {room.table.name}",))

    # -- the croupier's side

    def advance(self, now: float) -> None:
        """Move every table on to ``now``: close betting, spin and settle what is due (croupier thread)."""
        for room in self.rooms.values():
            with room.lock:
                happened = room.table.advance(now)
                purses = {}
                for event in happened:
                    if isinstance(event, SpinDue):
                        purses, room.purses = room.purses, {}
            for event in happened:
                if isinstance(event, BettingClosed):
                    room.send(format_event(NO_MORE_BETS, f"round {event.round_id} no more bets"))
                elif isinstance(event, SpinDue):
                    self._spin(room, event, purses)

    def _spin(self, room: Room, due: SpinDue, purses: dict) -> None:
        """Spin, settle every bet at once (durable before anyone hears of it), then the next round."""
        settled = due.settle()  # the pocket the round's published seed hash committed to
        # The registered players' results come from their bets as committed in the store, below.
        results = {
            player: result
            for player, result in settled.results.items()
            if not isinstance(purses.get(player), StoredPurse)
        }
        void: set[str] = set()
        if self.stored is not None:
            started = time.perf_counter()
            try:
                stored = self.stored.settle(due.table, due.round_id, settled.pocket, due.wheel, due.limits)
                results.update(stored)
                log.debug(
                    "round %d at %s: %d stored players settled in %.1f ms",
                    due.round_id,
                    due.table,
                    len(stored),
                    (time.perf_counter() - started) * 1000,
                )
            except Exception:  # the bets stay open in the store: refunded at the next start
                log.exception("round %d at %s: not settled in the store; refunded at restart", due.round_id, due.table)
                void = {player for player, purse in purses.items() if isinstance(purse, StoredPurse)}
        for player, purse in purses.items():
            if isinstance(purse, MemoryPurse) and player in results:
                purse.settle(due.table, due.round_id, results[player])
        with room.lock:
            opened = room.table.finish(self.clock())
        self._tell_result(room, settled, results, void)
        if opened is not None:
            self._tell_open(room, opened)

    def _tell_result(self, room: Room, settled: RoundSettled, results: dict, void: set[str]) -> None:
        head = f"round {settled.round_id} {settled.info.describe()}"
        for listener in list(room.listeners.values()):
            result = results.get(listener.player)
            if listener.player in void:
                mine = "your bets are not settled yet: they are given back at the daemon's next start"
            elif result is None:
                mine = "no bets"
            else:
                mine = f"net {result.net:+d} (staked {result.staked}, returned {result.returned})"
            if listener.push is not None:
                listener.push(format_event(ROUND_RESULT, f"{head}; {mine}; seed {settled.server_seed}"))

    def _tell_open(self, room: Room, opened: RoundOpened) -> None:
        text = f"round {opened.round_id} open: bets for {opened.seconds:g} s; server-seed-hash {opened.seed_hash}"
        room.send(format_event(ROUND_OPEN, text))

    def next_deadline(self) -> float | None:
        deadlines = [d for room in self.rooms.values() if (d := room.table.deadline) is not None]
        return min(deadlines) if deadlines else None

    def close(self) -> None:
        """Shutdown hook: stop the croupier (an unsettled round's stored bets are refunded at the next start)."""
        self.croupier.stop()

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

    def _purse(self, session) -> Purse:
        """Where the session's chips are: a registered player's in the store, else a seat in memory."""
        user = _player(session)
        if self.stored is not None and not user.is_guest:
            return StoredPurse(self.stored, user.name, self.start_bankroll)
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


class Croupier:
    """One thread that runs every table's rounds: it sleeps until the next deadline, or a JOIN wakes it."""

    def __init__(self, service: TableService):
        self.service = service
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
        service = self.service
        while True:
            with self._wakeup:
                if self._stopping:
                    return
                deadline = service.next_deadline()
                timeout = None if deadline is None else deadline - service.clock()
                if timeout is None or timeout > 0:
                    self._wakeup.wait(timeout)
                if self._stopping:
                    return
            try:
                service.advance(service.clock())
            except Exception:  # one bad round must not stop every table
                log.exception("the croupier failed; going on")


# --------------------------------------------------------------------------
# Handlers, command table, options
# --------------------------------------------------------------------------


def _service(session) -> TableService:
    return session.services.tables


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
    ),
    Command(
        "LIST",
        "",
        "List the shared tables: wheel, seated, round, state, the round's seed hash (211)",
        list_tables,
        roles=PLAYER_ROLES,
    ),
    Command(
        "CHAT",
        "<text...>",
        "Say something to everyone at your table",
        chat,
        roles=PLAYER_ROLES,
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
