"""The SQLite store: WAL, synchronous=FULL, one group-committing writer thread.

``synchronous=FULL`` makes each commit survive power loss. ``NORMAL`` in WAL
mode is faster (no fsync per commit) and still never corrupts the database,
but the last transactions before a power cut may be lost after they were
acknowledged: that breaks the promise of a 2yz reply, so it is not the default
(``--db-sync normal`` chooses it knowingly).
"""

import logging
import os
import secrets
import sqlite3
from datetime import datetime

from ..domain.accounts import User
from ..domain.meters import (
    UnknownMeter, as_utc, canonical_meter_id, check_reader, check_reading, format_dump_line,
    clean_roster_ids, invent_meter_id, utc_now, Submission,
)
from ..domain.roulette import Limits, OpenBet, SpinResult, Table, parse_bet
from .base import Store, StoreOpenError, StorageError
from .schema import migrate
from .writer import Writer

log = logging.getLogger("lineproto.store")

SYNC_MODES = ("full", "normal")
_FREE, _HELD, _READ = 0, 1, 2


def open_connection(path: str, sync: str = "full", busy_timeout: float = 5.0) -> sqlite3.Connection:
    """Open (creating if needed) the database at ``path``; StoreOpenError on any problem."""
    if path != ":memory:":
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise StoreOpenError(f"database directory does not exist: {directory}")
    try:
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                     timeout=busy_timeout)
        connection.execute("PRAGMA journal_mode = WAL").fetchone()
        connection.execute(f"PRAGMA synchronous = {sync.upper()}")
        connection.execute("PRAGMA foreign_keys = ON")
        connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        raise StoreOpenError(f"cannot open database {path}: {exc}") from None
    return connection


class SqliteStore(Store):
    """Durable state in one SQLite file; see :class:`~lineproto.store.base.Store`."""

    def __init__(self, path: str, sync: str = "full", rng=None, busy_timeout: float = 5.0):
        if sync not in SYNC_MODES:
            raise ValueError(f"sync must be one of {SYNC_MODES}")
        self.path = path
        connection = open_connection(path, sync, busy_timeout)
        try:
            self.found_version = migrate(connection, path)
        except sqlite3.DatabaseError as exc:
            connection.close()
            raise StoreOpenError(f"cannot open database {path}: {exc}") from None
        except StoreOpenError:
            connection.close()
            raise
        self._writer = Writer(connection)
        self._meters = StoredMeters(self._writer, rng if rng is not None else secrets.SystemRandom())

    # -- users

    def get_user(self, name: str) -> User | None:
        row = self._writer.run(lambda c: c.execute(
            "SELECT name, real_name, roles, password_hash FROM users WHERE name = ?", (name,)).fetchone())
        return _user(row) if row else None

    def put_user(self, user: User) -> None:
        self._writer.run(lambda c: c.execute(
            "INSERT OR REPLACE INTO users (name, real_name, roles, password_hash) VALUES (?, ?, ?, ?)",
            (user.name, user.real_name, ",".join(sorted(user.roles)), user.password_hash)))

    def delete_user(self, name: str) -> bool:
        return self._writer.run(
            lambda c: c.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount > 0)

    def list_users(self) -> list[User]:
        rows = self._writer.run(lambda c: c.execute(
            "SELECT name, real_name, roles, password_hash FROM users ORDER BY name").fetchall())
        return [_user(row) for row in rows]

    # -- players

    def update_table(self, player, start_bankroll, limits, change):
        def operation(connection):
            table = _load_table(connection, player, limits)
            if table is None:
                table = Table(start_bankroll, limits=limits)
                connection.execute(
                    "INSERT INTO players (name, wheel, bankroll, rounds, start_bankroll) VALUES (?, ?, ?, 0, ?)",
                    (player, table.wheel_kind, start_bankroll, start_bankroll))
            result = change(table)
            _save_table(connection, player, table)
            if isinstance(result, SpinResult):
                _record_spin(connection, player, table.wheel_kind, result)
            return result
        return self._writer.run(operation)

    def load_table(self, player: str, limits: Limits) -> Table | None:
        """The player's table as stored, or None if they never played."""
        return self._writer.run(lambda c: _load_table(c, player, limits))

    def audit(self, player: str) -> dict:
        """Start bankroll and the spins' totals: bankroll + staked == start + returned - spun stakes."""
        def operation(connection):
            start = connection.execute(
                "SELECT start_bankroll FROM players WHERE name = ?", (player,)).fetchone()
            spins = connection.execute(
                "SELECT count(*), coalesce(sum(staked), 0), coalesce(sum(returned), 0) FROM spins "
                "WHERE player = ?", (player,)).fetchone()
            return {"start": start[0] if start else None, "spins": spins[0],
                    "staked": spins[1], "returned": spins[2]}
        return self._writer.run(operation)

    # -- meters

    @property
    def meters(self) -> "StoredMeters":
        return self._meters

    # -- life cycle

    def run(self, operation):
        """Run ``operation(connection)`` in the writer's transaction (for tests and admin)."""
        return self._writer.run(operation)

    def submit(self, job):
        """``job()`` on the writer thread, inside a group-committed transaction (see ``Writer.submit``)."""
        return self._writer.submit(job)

    def backup(self, path: str) -> None:
        backup_database(self.path, path)

    def close(self) -> None:
        self._writer.close()


def backup_database(source: str, target: str) -> None:
    """A consistent online copy: SQLite's backup API from a read connection."""
    if source == ":memory:":
        raise StorageError("an in-memory database has nothing to back up")
    reader = open_connection(source)
    try:
        copy = sqlite3.connect(target)
        try:
            reader.backup(copy)
        finally:
            copy.close()
    finally:
        reader.close()


def _user(row) -> User:
    name, real_name, roles, password_hash = row
    return User(name, real_name, frozenset(role for role in roles.split(",") if role), password_hash)


def _load_table(connection, player: str, limits: Limits) -> Table | None:
    row = connection.execute(
        "SELECT wheel, bankroll, rounds FROM players WHERE name = ?", (player,)).fetchone()
    if row is None:
        return None
    wheel, bankroll, rounds = row
    bets = connection.execute(
        "SELECT bet, amount FROM open_bets WHERE player = ? ORDER BY position", (player,)).fetchall()
    return Table(bankroll, wheel, limits, rounds,
                 [OpenBet(parse_bet(name, wheel), amount) for name, amount in bets])


def _save_table(connection, player: str, table: Table) -> None:
    connection.execute("UPDATE players SET wheel = ?, bankroll = ?, rounds = ? WHERE name = ?",
                       (table.wheel_kind, table.bankroll, table.rounds, player))
    connection.execute("DELETE FROM open_bets WHERE player = ?", (player,))
    connection.executemany(
        "INSERT INTO open_bets (player, position, bet, amount) VALUES (?, ?, ?, ?)",
        [(player, position, bet.bet.name, bet.amount) for position, bet in enumerate(table.bets)])


def _record_spin(connection, player: str, wheel: str, result: SpinResult) -> None:
    cursor = connection.execute(
        "INSERT INTO spins (player, wheel, pocket, at, staked, returned, bankroll_after, round) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (player, wheel, result.pocket, utc_now().isoformat(timespec="seconds"), result.staked,
         result.returned, result.bankroll, result.rounds))
    connection.executemany(
        "INSERT INTO spin_bets (spin, bet, amount, won, returned) VALUES (?, ?, ?, ?, ?)",
        [(cursor.lastrowid, outcome.bet.name, outcome.amount, int(outcome.won), outcome.returned)
         for outcome in result.outcomes])


class StoredMeters:
    """MeterManager's interface over the database; every call is one transaction.

    Roster mode is on once a roster has been loaded (kept in ``meta``), demo
    mode otherwise, with the same rules as :class:`lineproto.domain.meters.MeterManager`.
    """

    def __init__(self, writer: Writer, rng):
        self._writer = writer
        self._rng = rng

    def release_all(self) -> int:
        """At start: jobs held by sessions of a previous run return to the pool."""
        def operation(connection):
            connection.execute(f"UPDATE roster SET state = {_FREE} WHERE state = {_HELD}")
            return connection.execute("DELETE FROM jobs").rowcount
        return self._writer.run(operation)

    def load_roster(self, ids) -> int:
        cleaned = clean_roster_ids(ids)

        def operation(connection):
            connection.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('roster_mode', '1')")
            added = 0
            for meter in cleaned:
                read = connection.execute("SELECT 1 FROM latest WHERE meter = ?", (meter,)).fetchone()
                held = connection.execute("SELECT 1 FROM jobs WHERE meter = ?", (meter,)).fetchone()
                state = _READ if read else _HELD if held else _FREE
                added += connection.execute(
                    "INSERT OR IGNORE INTO roster (meter, state) VALUES (?, ?)", (meter, state)).rowcount
            return added
        return self._writer.run(operation)

    def roster_size(self) -> int | None:
        def operation(connection):
            if not _roster_mode(connection):
                return None
            return connection.execute("SELECT count(*) FROM roster").fetchone()[0]
        return self._writer.run(operation)

    def remaining(self) -> int | None:
        def operation(connection):
            if not _roster_mode(connection):
                return None
            return connection.execute(f"SELECT count(*) FROM roster WHERE state != {_READ}").fetchone()[0]
        return self._writer.run(operation)

    def next_job(self, reader: str) -> str | None:
        check_reader(reader)

        def operation(connection):
            row = connection.execute("SELECT meter FROM jobs WHERE reader = ?", (reader,)).fetchone()
            if row:
                return row[0]
            if _roster_mode(connection):
                row = connection.execute(
                    f"SELECT meter FROM roster WHERE state = {_FREE} ORDER BY position LIMIT 1").fetchone()
                if row is None:
                    return None
                meter = row[0]
                connection.execute(f"UPDATE roster SET state = {_HELD} WHERE meter = ?", (meter,))
            else:
                meter = invent_meter_id(self._rng, lambda m: _known(connection, m))
            connection.execute("INSERT OR IGNORE INTO issued (meter) VALUES (?)", (meter,))
            connection.execute("INSERT INTO jobs (reader, meter, since) VALUES (?, ?, ?)",
                               (reader, meter, utc_now().isoformat(timespec="seconds")))
            return meter
        return self._writer.run(operation)

    def held(self, reader: str) -> str | None:
        row = self._writer.run(lambda c: c.execute(
            "SELECT meter FROM jobs WHERE reader = ?", (reader,)).fetchone())
        return row[0] if row else None

    def release(self, reader: str) -> str | None:
        def operation(connection):
            row = connection.execute("SELECT meter FROM jobs WHERE reader = ?", (reader,)).fetchone()
            if row is None:
                return None
            connection.execute("DELETE FROM jobs WHERE reader = ?", (reader,))
            connection.execute(f"UPDATE roster SET state = {_FREE} WHERE meter = ? AND state = {_HELD}",
                               (row[0],))
            return row[0]
        return self._writer.run(operation)

    def submit(self, reader, meter, reading, reason="", when=None) -> tuple[int, int]:
        check_reader(reader)
        reading, reason = check_reading(reading, reason)
        when = as_utc(when if when is not None else utc_now())
        key = canonical_meter_id(meter)

        def operation(connection):
            roster = _roster_mode(connection)
            known = connection.execute(
                "SELECT 1 FROM roster WHERE meter = ? UNION ALL SELECT 1 FROM issued WHERE meter = ?",
                (key, key)).fetchone()
            if not known:
                where = "is not in the roster" if roster else "was never handed out"
                raise UnknownMeter(f"meter {key[:40]!r} {where}")
            previous = connection.execute("SELECT reader FROM latest WHERE meter = ?", (key,)).fetchone()
            if previous is None:
                connection.execute(
                    "UPDATE meta SET value = value + 1 WHERE key = 'readings_total'")
            else:
                connection.execute(
                    "UPDATE reading_counts SET mine = mine - 1 WHERE reader = ?", (previous[0],))
            connection.execute(
                "INSERT INTO reading_counts (reader, mine) VALUES (?, 1) "
                "ON CONFLICT (reader) DO UPDATE SET mine = mine + 1", (reader,))
            cursor = connection.execute(
                "INSERT INTO submissions (meter, reading, reason, at, reader) VALUES (?, ?, ?, ?, ?)",
                (key, reading, reason, when.isoformat(), reader))
            connection.execute("INSERT OR REPLACE INTO latest (meter, submission, reader) VALUES (?, ?, ?)",
                               (key, cursor.lastrowid, reader))
            connection.execute("DELETE FROM jobs WHERE meter = ?", (key,))
            connection.execute(f"UPDATE roster SET state = {_READ} WHERE meter = ?", (key,))
            return _status(connection, reader)
        return self._writer.run(operation)

    def status(self, reader: str) -> tuple[int, int]:
        return self._writer.run(lambda c: _status(c, reader))

    def history(self) -> list[Submission]:
        rows = self._writer.run(lambda c: c.execute(
            "SELECT meter, reading, reason, at, reader FROM submissions ORDER BY id").fetchall())
        return [_submission(row) for row in rows]

    def dump(self) -> list[str]:
        rows = self._writer.run(lambda c: c.execute(
            "SELECT s.meter, s.reading, s.reason, s.at, s.reader FROM latest l "
            "JOIN submissions s ON s.id = l.submission ORDER BY l.meter").fetchall())
        return [format_dump_line(_submission(row)) for row in rows]


def _roster_mode(connection) -> bool:
    return connection.execute("SELECT 1 FROM meta WHERE key = 'roster_mode'").fetchone() is not None


def _known(connection, meter: str) -> bool:
    return connection.execute(
        "SELECT 1 FROM issued WHERE meter = ? UNION ALL SELECT 1 FROM latest WHERE meter = ?",
        (meter, meter)).fetchone() is not None


def _status(connection, reader: str) -> tuple[int, int]:
    mine = connection.execute("SELECT mine FROM reading_counts WHERE reader = ?", (reader,)).fetchone()
    total = connection.execute("SELECT value FROM meta WHERE key = 'readings_total'").fetchone()
    return (mine[0] if mine else 0), int(total[0])


def _submission(row) -> Submission:
    meter, reading, reason, at, reader = row
    return Submission(meter, reading, reason, datetime.fromisoformat(at), reader)
