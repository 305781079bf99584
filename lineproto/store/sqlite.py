"""The SQLite store: WAL, synchronous=FULL, one group-committing writer thread, pooled readers.

Changes go through the writer (``writer.py``); reads that change nothing run on
read-only connections (``readers.py``) and do not wait for the writer's batch.
A table change writes only what it changed: the new bets, the player's row if
it changed, and deletes the bets only when they all left the table.

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
import time
from typing import Any

from ..domain.accounts import User
from ..domain.meters import utc_now
from ..domain.roulette import (
    CLEARED,
    LOST,
    OPEN,
    PRIVATE_TABLE,
    REFUNDED,
    WON,
    BetOutcome,
    ChipAudit,
    CreditRecord,
    FairSeeds,
    FairSpin,
    HistoryEntry,
    Limits,
    OpenBet,
    RoundRecord,
    Slip,
    SpinResult,
    Table,
    cleared_slips,
    open_slip,
    parse_bet,
)
from .audit import CREDIT_SELECT, AuditLog, credit_content, spin_content
from .audit import key_path as audit_key_path
from .base import StorageError, Store, StoreOpenError
from .labels import find_label, record_label
from .locks import lock_players
from .meters import StoredMeters
from .readers import ReadPool
from .schema import migrate
from .tables import CLEARED as SHARED_CLEARED
from .tables import REFUNDED as SHARED_REFUNDED
from .tables import SETTLED as SHARED_SETTLED
from .writer import Writer

log = logging.getLogger("lineproto.store")

SYNC_MODES = ("full", "normal")


def _enter_wal(connection: sqlite3.Connection, busy_timeout: float) -> None:
    """PRAGMA journal_mode = WAL, tried again while another process creates the same new file:
    switching a new database to WAL can say "database is locked" at once, without waiting."""
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            connection.execute("PRAGMA journal_mode = WAL").fetchone()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


def open_connection(path: str, sync: str = "full", busy_timeout: float = 5.0) -> sqlite3.Connection:
    """Open (creating if needed) the database at ``path``; StoreOpenError on any problem."""
    if path != ":memory:":
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise StoreOpenError(f"database directory does not exist: {directory}")
    try:
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=busy_timeout)
        _enter_wal(connection, busy_timeout)
        connection.execute(f"PRAGMA synchronous = {sync.upper()}")
        connection.execute("PRAGMA foreign_keys = ON")
        connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        raise StoreOpenError(f"cannot open database {path}: {exc}") from None
    return connection


class SqlStore(Store):
    """The store's methods over a :class:`~.writer.Writer`: one implementation for every database.

    Each method is SQL that SQLite and PostgreSQL both run (``?`` placeholders; the
    PostgreSQL connection adapter, ``postgres.py``, turns them into its own). Where the
    two differ in how concurrent writers are kept apart, a function of ``locks.py``
    says it once: SQLite's single writer needs nothing, PostgreSQL locks rows.
    A subclass opens the database and sets ``_writer``, ``_readers``, ``_audit`` and ``_meters``.
    """

    _writer: Writer
    _readers: Any  # a read pool (readers.ReadPool, postgres.PgReadPool), or None
    _audit: AuditLog
    _meters: StoredMeters

    # -- users

    def get_user(self, name: str) -> User | None:
        row = self._writer.read(
            lambda c: c.execute(
                "SELECT name, real_name, roles, password_hash FROM users WHERE name = ?", (name,)
            ).fetchone()
        )
        return _user(row) if row else None

    def put_user(self, user: User) -> None:
        row = (user.name, user.real_name, ",".join(sorted(user.roles)), user.password_hash)

        def operation(connection):
            if connection.execute(f"{_USER_SELECT} WHERE name = ?", (user.name,)).fetchone() == row:
                return  # unchanged (a users file imported again at start): nothing to write or log
            connection.execute(
                "INSERT INTO users (name, real_name, roles, password_hash) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET real_name = excluded.real_name, roles = excluded.roles, "
                "password_hash = excluded.password_hash",
                row,
            )
            self._audit.user(connection, user)

        self._writer.run(operation)

    def delete_user(self, name: str) -> bool:
        def operation(connection):
            deleted = connection.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount > 0
            if deleted:
                self._audit.user_deleted(connection, name)
            return deleted

        return self._writer.run(operation)

    def request_unlock(self, key: str) -> None:
        self._writer.run(
            lambda c: c.execute(
                "INSERT INTO unlock_requests (key, at) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET at = excluded.at",
                (key, time.time()),
            )
        )

    def take_unlock_request(self, key: str, since: float) -> bool:
        at = self._writer.read(lambda c: c.execute("SELECT at FROM unlock_requests WHERE key = ?", (key,)).fetchone())
        if at is None:
            return False
        self._writer.run(lambda c: c.execute("DELETE FROM unlock_requests WHERE key = ?", (key,)))
        return bool(at[0] >= since)

    def list_users(self) -> list[User]:
        rows = self._writer.read(
            lambda c: c.execute("SELECT name, real_name, roles, password_hash FROM users ORDER BY name").fetchall()
        )
        return [_user(row) for row in rows]

    # -- players

    def update_table(self, player, start_bankroll, limits, change):
        def operation(connection):
            table = _table_in_play(connection, player, start_bankroll, limits)
            before = _TableRow(table)
            result = change(table)
            before.save_changes(connection, player, table)
            if isinstance(result, SpinResult):
                self._audit.append(connection, "spin", _record_spin(connection, player, table.wheel_kind, result))
            else:
                _record_cleared(connection, player, cleared_slips(before.bets, table, result))
            return result

        return self._writer.run(operation)

    def load_table(self, player: str, limits: Limits) -> Table | None:
        """The player's table as stored, or None if they never played."""
        return self._writer.read(lambda c: _load_table(c, player, limits))

    def audit(self, player: str) -> dict:
        """Start bankroll and the spins' totals: bankroll + staked == start + returned - spun stakes."""

        def operation(connection):
            start = connection.execute("SELECT start_bankroll FROM players WHERE name = ?", (player,)).fetchone()
            spins = connection.execute(
                "SELECT count(*), coalesce(sum(staked), 0), coalesce(sum(returned), 0) FROM spins WHERE player = ?",
                (player,),
            ).fetchone()
            return {"start": start[0] if start else None, "spins": spins[0], "staked": spins[1], "returned": spins[2]}

        return self._writer.read(operation)

    def chip_audits(self) -> list[ChipAudit]:
        """Every player's :class:`ChipAudit`, by name, read in one consistent snapshot."""

        def operation(connection):
            rows = connection.execute(_AUDIT_QUERY).fetchall()
            return [ChipAudit(*row) for row in rows]

        return self._writer.read(operation)

    def slip(self, player: str, number: int) -> Slip | None:
        """The player's receipt ``number``: open, cleared or settled; None if they have none of that number."""
        return self._writer.read(lambda c: _find_slip(c, player, number))

    def history(self, player: str, count: int) -> list[HistoryEntry]:
        """The player's newest ``count`` rounds and credits, newest first."""
        return self._writer.read(lambda c: _history(c, player, count))

    def ledger(self, player: str) -> list[CreditRecord]:
        """Every cashier's entry of the player, oldest first."""
        return self._writer.read(
            lambda c: [_credit(row) for row in c.execute(f"{_LEDGER_SELECT} WHERE player = ? ORDER BY id", (player,))]
        )

    def credit(self, player, by, amount, reason, start_bankroll, limits):
        def operation(connection):
            table = _table_in_play(connection, player, start_bankroll, limits)
            bankroll = table.credit(amount)
            connection.execute("UPDATE players SET bankroll = ? WHERE name = ?", (bankroll, player))
            last_spin = connection.execute(
                "SELECT coalesce(max(id), 0) FROM spins WHERE player = ?", (player,)
            ).fetchone()[0]
            at = utc_now().isoformat(timespec="seconds")
            (credit_id,) = connection.execute(
                "INSERT INTO ledger (player, at, admin, amount, reason, bankroll_after, after_spin) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (player, at, by, amount, reason, bankroll, last_spin),
            ).fetchone()
            row = (credit_id, player, at, by, amount, reason, bankroll, last_spin)
            self._audit.append(connection, "credit", credit_content(row))
            return CreditRecord(*row[:7])

        return self._writer.run(operation)

    # -- meters

    @property
    def meters(self) -> "StoredMeters":
        return self._meters

    # -- request labels

    def once(self, user, label, run, policy):
        writer = self._writer

        def job():
            now = time.time()
            found = writer.run(lambda c: find_label(c, user, label, now, policy.ttl))  # run: waits for COMMIT
            if found is not None:
                return found, True
            record = run()
            writer.run(lambda c: record_label(c, user, label, record, now, policy))
            return record, False

        return job() if writer.in_job() else writer.submit(job).result()

    # -- life cycle

    def run(self, operation):
        """Run ``operation(connection)`` in the writer's transaction (for tests and admin)."""
        return self._writer.run(operation)

    def submit(self, job):
        """``job()`` on the writer thread, inside a group-committed transaction (see ``Writer.submit``)."""
        return self._writer.submit(job)

    def close(self) -> None:
        self._writer.close()
        if self._readers is not None:
            self._readers.close()


class SqliteStore(SqlStore):
    """Durable state in one SQLite file; see :class:`~lineproto.store.base.Store`."""

    def __init__(
        self,
        path: str,
        sync: str = "full",
        rng=None,
        busy_timeout: float = 5.0,
        clock=None,
        audit_key: str | None = None,
        audit_required: bool = False,
    ):
        """``rng`` invents demo meter ids (default ``secrets.SystemRandom``); ``clock`` dates readings;
        ``audit_key``: the audit log's key file (default beside the database); ``audit_required``: a
        missing key refuses the open, not only the first change (``store/audit.py``)."""
        if sync not in SYNC_MODES:
            raise ValueError(f"sync must be one of {SYNC_MODES}")
        self.path = path
        connection = open_connection(path, sync, busy_timeout)
        try:
            self.found_version = migrate(connection, path)
            self._audit = AuditLog.open(connection, path, audit_key_path(path, audit_key), audit_required)
        except sqlite3.DatabaseError as exc:
            connection.close()
            raise StoreOpenError(f"cannot open database {path}: {exc}") from None
        except StoreOpenError:
            connection.close()
            raise
        # An in-memory database exists only on the writer's connection: its reads queue as changes.
        self._readers = ReadPool(path, busy_timeout) if path != ":memory:" else None
        self._writer = Writer(connection, readers=self._readers)
        self._meters = StoredMeters(
            self._writer, rng if rng is not None else secrets.SystemRandom(), clock, self._audit
        )

    def backup(self, path: str) -> None:
        backup_database(self.path, path)


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
        "SELECT wheel, bankroll, rounds, slips, server_seed, client_seed, nonce FROM players WHERE name = ?",
        (player,),
    ).fetchone()
    if row is None:
        return None
    wheel, bankroll, rounds, slips, server_seed, client_seed, nonce = row
    bets = connection.execute(
        "SELECT bet, amount, slip FROM open_bets WHERE player = ? ORDER BY position", (player,)
    ).fetchall()
    open_bets = [OpenBet(parse_bet(name, wheel), amount, slip) for name, amount, slip in bets]
    seeds = None if server_seed is None else FairSeeds(server_seed, client_seed, nonce)
    return Table(bankroll, wheel, limits, rounds, open_bets, slips, seeds)


def _table_in_play(connection, player: str, start_bankroll: int, limits: Limits) -> Table:
    """The player's table in this transaction, locked until it ends, created with ``start_bankroll`` on first use.

    The row is locked (``locks.lock_players``) before the table is read: what is read is
    what the change starts from, and no other writer changes it until this commits. A
    missing row is created (another daemon creating it at the same moment is no error),
    then locked and read.
    """
    lock_players(connection, player)
    table = _load_table(connection, player, limits)
    if table is not None:
        return table
    connection.execute(
        "INSERT INTO players (name, wheel, bankroll, rounds, start_bankroll) VALUES (?, ?, ?, 0, ?) "
        "ON CONFLICT (name) DO NOTHING",
        (player, Table(start_bankroll, limits=limits).wheel_kind, start_bankroll, start_bankroll),
    )
    lock_players(connection, player)
    table = _load_table(connection, player, limits)
    assert table is not None  # created above, and locked
    return table


class _TableRow:
    """A table as loaded, to write back only what a change did to it.

    ``Table`` keeps its open bets in order and only appends (BET), empties
    (CLR, SPIN) or leaves them: the new bets are inserted after the stored
    ones, all are deleted only when the table has none left, and any other
    change rewrites them (none does today). The player's row is updated only
    when the bankroll, rounds, wheel or seeds changed (a spin's new nonce is
    written in the spin's own transaction).
    """

    __slots__ = ("row", "bets")

    def __init__(self, table: Table):
        self.row = _player_row(table)
        self.bets = table.bets

    def save_changes(self, connection, player: str, table: Table) -> None:
        row = _player_row(table)
        if row != self.row:
            connection.execute(
                "UPDATE players SET wheel = ?, bankroll = ?, rounds = ?, slips = ?, "
                "server_seed = ?, client_seed = ?, nonce = ? WHERE name = ?",
                (*row, player),
            )
        bets, kept = table.bets, len(self.bets)
        if len(bets) >= kept and all(now is was for now, was in zip(bets[:kept], self.bets, strict=True)):
            new = enumerate(bets[kept:], start=kept)
        else:
            connection.execute("DELETE FROM open_bets WHERE player = ?", (player,))
            new = enumerate(bets)
        connection.executemany(
            "INSERT INTO open_bets (player, position, bet, amount, slip) VALUES (?, ?, ?, ?, ?)",
            [(player, position, bet.bet.name, bet.amount, bet.slip) for position, bet in new],
        )


def _player_row(table: Table) -> tuple:
    """The players row's values a table change may alter, in the order ``save_changes`` writes them."""
    seeds = table.seeds
    fair = (None, None, None) if seeds is None else (seeds.server_seed, seeds.client_seed, seeds.nonce)
    return (table.wheel_kind, table.bankroll, table.rounds, table.slips, *fair)


def _record_spin(connection, player: str, wheel: str, result: SpinResult) -> dict:
    """Store the settled spin (with the seeds it was derived from) and its bets; return its audit log content."""
    at = utc_now().isoformat(timespec="seconds")
    fair = result.fair
    (spin,) = connection.execute(
        "INSERT INTO spins (player, wheel, pocket, at, staked, returned, bankroll_after, round, tbl, "
        "nonce, client_seed, server_seed_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (
            player,
            wheel,
            result.pocket,
            at,
            result.staked,
            result.returned,
            result.bankroll,
            result.rounds,
            PRIVATE_TABLE,
            *((None, None, None) if fair is None else (fair.nonce, fair.client_seed, fair.server_seed_hash)),
        ),
    ).fetchone()
    bets = [(o.bet.name, o.amount, int(o.won), o.returned, o.slip) for o in result.outcomes]
    connection.executemany(
        "INSERT INTO spin_bets (spin, bet, amount, won, returned, slip, player) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(spin, *bet, player) for bet in bets],
    )
    row = (spin, player, PRIVATE_TABLE, result.rounds, wheel, result.pocket, at, result.staked, result.returned)
    return spin_content((*row, result.bankroll), bets)


def _record_cleared(connection, player: str, slips: list[Slip]) -> None:
    """The receipts of bets taken back (CLR): cleared, the stake returned."""
    at = utc_now().isoformat(timespec="seconds")
    connection.executemany(
        "INSERT INTO cleared_bets (player, slip, tbl, round, bet, amount, at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(player, s.number, s.table, s.round, s.bet, s.amount, at) for s in slips],
    )


def _find_slip(connection, player: str, number: int) -> Slip | None:
    """A receipt where the bet is now: on the table, settled in a spin, or taken back."""
    table = _load_table(connection, player, Limits())
    if table is None:
        return None
    slip = open_slip(table, number)
    if slip is not None:
        return slip
    row = connection.execute(
        "SELECT spins.tbl, spins.round, spin_bets.bet, spin_bets.amount, spin_bets.won, spin_bets.returned "
        "FROM spin_bets JOIN spins ON spins.id = spin_bets.spin WHERE spin_bets.player = ? AND spin_bets.slip = ?",
        (player, number),
    ).fetchone()
    if row is not None:
        table_name, round_id, bet, amount, won, returned = row
        return Slip(number, table_name, round_id, bet, amount, WON if won else LOST, returned)
    row = connection.execute(
        "SELECT tbl, round, bet, amount FROM cleared_bets WHERE player = ? AND slip = ?", (player, number)
    ).fetchone()
    if row is not None:
        return Slip(number, row[0], row[1], row[2], row[3], CLEARED, row[3])
    row = connection.execute(
        "SELECT table_name, round, bet, amount, state, returned FROM shared_bets WHERE player = ? AND slip = ?",
        (player, number),
    ).fetchone()
    if row is not None:
        table_name, round_id, bet, amount, state, returned = row
        return Slip(number, table_name, round_id, bet, amount, *_shared_state(state, amount, returned))
    return None


def _shared_state(state: int, amount: int, returned: int | None) -> tuple[str, int]:
    """A shared_bets row's state (store/tables.py's numbers) as a receipt's state word and chips returned."""
    if state == SHARED_SETTLED:
        return (WON, returned) if returned else (LOST, 0)
    if state == SHARED_REFUNDED:
        return REFUNDED, amount
    if state == SHARED_CLEARED:
        return CLEARED, amount
    return OPEN, 0


_LEDGER_SELECT = CREDIT_SELECT
_USER_SELECT = "SELECT name, real_name, roles, password_hash FROM users"


def _credit(row) -> CreditRecord:
    return CreditRecord(*row[:7])


def _history(connection, player: str, count: int) -> list[HistoryEntry]:
    """The newest ``count`` spins, shared-table rounds and ledger entries, merged newest first.

    A ledger entry or a shared round follows the private spin it came after
    (``after_spin``), so that order is exact whatever the clock did; between
    themselves, entries after the same spin go by time.
    """
    spins = connection.execute(
        "SELECT id, tbl, round, at, pocket, wheel, bankroll_after, nonce, client_seed, server_seed_hash "
        "FROM spins WHERE player = ? ORDER BY id DESC LIMIT ?",
        (player, count),
    ).fetchall()
    credits = connection.execute(
        f"{_LEDGER_SELECT} WHERE player = ? ORDER BY id DESC LIMIT ?", (player, count)
    ).fetchall()
    outcomes: dict[int, list[BetOutcome]] = {row[0]: [] for row in spins}
    if spins:
        marks = ",".join("?" * len(spins))
        for spin, bet, amount, won, returned, slip, wheel in connection.execute(
            "SELECT spin_bets.spin, spin_bets.bet, spin_bets.amount, spin_bets.won, spin_bets.returned, "
            f"coalesce(spin_bets.slip, 0), spins.wheel FROM spin_bets JOIN spins ON spins.id = spin_bets.spin "
            f"WHERE spin_bets.spin IN ({marks}) ORDER BY spin_bets.rowid",
            list(outcomes),
        ):
            outcomes[spin].append(BetOutcome(parse_bet(bet, wheel), amount, bool(won), returned, slip))
    keyed: list[tuple[tuple[int, int, str, int], HistoryEntry]] = [
        ((row[0], 0, "", 0), RoundRecord(row[1], row[2], row[3], row[4], tuple(outcomes[row[0]]), row[6], _spun(row)))
        for row in spins
    ]
    keyed += [((row[7], 1, row[2], row[0]), _credit(row)) for row in credits]
    keyed += _shared_rounds(connection, player, count)
    keyed.sort(key=lambda item: item[0], reverse=True)
    return [entry for _, entry in keyed[:count]]


def _shared_rounds(connection, player: str, count: int) -> list[tuple[tuple[int, int, str, int], HistoryEntry]]:
    """The player's newest ``count`` settled shared-table rounds, keyed for :func:`_history` (a refund is no round)."""
    rounds = connection.execute(
        "SELECT table_name, round, at, pocket, bankroll_after, wheel, after_spin, rowid FROM shared_results "
        "WHERE player = ? AND pocket IS NOT NULL ORDER BY rowid DESC LIMIT ?",
        (player, count),
    ).fetchall()
    keyed: list[tuple[tuple[int, int, str, int], HistoryEntry]] = []
    for table_name, round_id, at, pocket, after, wheel, after_spin, rowid in rounds:
        outcomes = tuple(
            BetOutcome(parse_bet(bet, wheel), amount, bool(returned), returned, slip)
            for bet, amount, returned, slip in connection.execute(
                "SELECT bet, amount, returned, slip FROM shared_bets "
                "WHERE table_name = ? AND round = ? AND player = ? AND state = ? ORDER BY id",
                (table_name, round_id, player, SHARED_SETTLED),
            )
        )
        keyed.append(((after_spin, 1, at, rowid), RoundRecord(table_name, round_id, at, pocket, outcomes, after, None)))
    return keyed


def _spun(row) -> FairSpin | None:
    """A spins row's seeds (its wheel, nonce, client seed and seed hash); None for a spin from before them."""
    wheel, nonce, client_seed, seed_hash = row[5], row[7], row[8], row[9]
    return None if nonce is None else FairSpin(wheel, nonce, client_seed, seed_hash)


#: Each player's ChipAudit: start, credits, the spins' net, bankroll, chips on open bets.
# Net results are the private spins' and the shared rounds' (store/tables.py; a refund nets 0);
# chips on open bets are the private table's and those on shared rounds not settled yet.
_AUDIT_QUERY = """
SELECT players.name, players.start_bankroll,
    (SELECT coalesce(sum(amount), 0) FROM ledger WHERE ledger.player = players.name),
    (SELECT coalesce(sum(returned - staked), 0) FROM spins WHERE spins.player = players.name)
      + (SELECT coalesce(sum(returned - staked), 0) FROM shared_results WHERE shared_results.player = players.name),
    players.bankroll,
    (SELECT coalesce(sum(amount), 0) FROM open_bets WHERE open_bets.player = players.name)
      + (SELECT coalesce(sum(amount), 0) FROM shared_bets WHERE shared_bets.player = players.name AND state = 0)
FROM players ORDER BY players.name
"""
