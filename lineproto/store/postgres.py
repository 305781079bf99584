"""The PostgreSQL store: the same store methods (``sqlite.SqlStore``) over psycopg 3, for several daemons.

``--db postgresql://user@host:port/database`` chooses it (extra ``postgres``). What
differs from SQLite is only here and in ``locks.py``:

- a connection adapter (:class:`PgConnection`) runs the store's SQL, written once with
  ``?`` placeholders, as psycopg's ``%s``; sums come back as ``int`` as in SQLite;
- the writer (``writer.py``, group commit with savepoints) runs on one connection of
  its own with PostgreSQL's :class:`PgDialect`: a batch that hits a deadlock (40P01)
  or a serialization failure (40001) against another daemon is run again, a bounded
  number of times; a broken connection (a database restart) is replaced at the next
  batch, the batch it broke failing with a StorageError (a 451 reply, the session lives);
- reads run on a ``psycopg_pool`` pool (:class:`PgReadPool`), each in one
  REPEATABLE READ snapshot, its connections checked before they are lent;
- the schema is PostgreSQL's own DDL (:data:`MIGRATIONS`), migrated once however many
  daemons start at once (``pg_advisory_xact_lock``).

Durability: ``synchronous_commit = on`` (a COMMIT returns once the WAL is flushed), so an
acknowledged change survives a crash of the server, as with SQLite's ``synchronous=FULL``.
``--db-sync normal`` sets it off: faster, the last commits may be lost.

The audit log's key cannot live beside a database that is not a file: with PostgreSQL,
``--audit-key FILE`` is required for everything that changes the database.
"""

from __future__ import annotations

import datetime
import functools
import json
import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

from ..extras import require
from . import pgrounds
from .audit import AuditLog
from .base import StorageError, StorageFull, StoreOpenError
from .meters import Lease, StoredMeters
from .sqlite import SYNC_MODES, SqlStore
from .writer import Dialect, Writer

psycopg = require("psycopg", "postgres", "--db postgresql://...")
psycopg_pool = require("psycopg_pool", "postgres", "--db postgresql://...")

log = logging.getLogger("lineproto.store")

T = TypeVar("T")

#: Seconds to wait for a new connection (libpq's connect_timeout) and for a pooled one.
CONNECT_TIMEOUT = 5
POOL_TIMEOUT = 5.0
#: A statement waiting this long for another daemon's lock fails (a StorageError, nothing kept).
LOCK_TIMEOUT = "10s"
#: Milliseconds a lock wait lasts before PostgreSQL looks for a deadlock (set where the role may).
DEADLOCK_TIMEOUT_MS = 50
#: Read connections kept at most.
READERS = 4
#: Times a batch that deadlocked with another daemon's (or failed to serialize) is run again.
RETRIES = 5
#: The SQLSTATEs after which running the batch again may succeed.
RETRYABLE = frozenset({"40P01", "40001"})
#: Seconds a held job stays its daemon's without renewal (``--job-lease``); renewed every third of it.
JOB_LEASE = 30.0


def shown(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}@{host}" if parts.username else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@functools.lru_cache(maxsize=1024)
def pg_sql(sql: str) -> str:
    """The store's SQL (sqlite3's ``?`` placeholders) as psycopg runs it (``%s``; a literal ``%`` doubled)."""
    if sql == "BEGIN IMMEDIATE":
        return "BEGIN"
    return sql.replace("%", "%%").replace("?", "%s")


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__


class _WholeNumberLoader(psycopg.adapt.Loader):  # type: ignore[name-defined]
    """``numeric`` as ``int``: PostgreSQL sums BIGINT columns into numeric; chips are whole numbers."""

    def load(self, data) -> int:
        return int(bytes(data))


class PgConnection:
    """A psycopg connection (autocommit: the writer says BEGIN and COMMIT) that runs the store's SQL."""

    #: Other writers run at once here: ``locks.py`` takes row and advisory locks.
    locks_rows = True

    __slots__ = ("raw",)

    def __init__(self, raw):
        self.raw = raw

    def execute(self, sql: str, params=()):
        """Run one statement; the cursor (``fetchone``, ``fetchall``, ``rowcount``, iteration)."""
        return self.raw.execute(pg_sql(sql), tuple(params))

    def executemany(self, sql: str, rows):
        rows = list(rows)
        cursor = self.raw.cursor()
        if rows:
            cursor.executemany(pg_sql(sql), rows)
        return cursor

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE

    @property
    def broken(self) -> bool:
        return bool(self.raw.closed or self.raw.broken)

    def close(self) -> None:
        self.raw.close()


class PgDialect(Dialect):
    """PostgreSQL's answers to the writer's questions (see ``writer.Dialect``)."""

    errors = (psycopg.Error,)
    begin = "BEGIN"
    retries = RETRIES

    def storage_error(self, exc: Exception) -> StorageError:
        return pg_storage_error(exc)

    def retryable(self, exc: Exception) -> bool:
        return getattr(exc, "sqlstate", None) in RETRYABLE

    def broken(self, connection) -> bool:
        return bool(connection.broken)


def pg_storage_error(exc: BaseException) -> StorageError:
    """A StorageError (StorageFull for a full disk) describing a psycopg failure in one line."""
    if isinstance(exc, psycopg.errors.DiskFull | psycopg.errors.OutOfMemory):
        return StorageFull(f"storage full: {first_line(exc)}")
    return StorageError(f"storage unavailable: {first_line(exc)}")


class Connector:
    """Opens connections to one database, each set up the same way (durability, lock wait, numbers)."""

    def __init__(self, url: str, sync: str = "full", connect_timeout: float = CONNECT_TIMEOUT):
        if sync not in SYNC_MODES:
            raise ValueError(f"sync must be one of {SYNC_MODES}")
        self.url = url
        self.kwargs = {
            "autocommit": True,
            "connect_timeout": max(1, round(connect_timeout)),
            # A dead server (or network) is noticed within seconds, not at the kernel's TCP timeout.
            "keepalives": 1,
            "keepalives_idle": 5,
            "keepalives_interval": 2,
            "keepalives_count": 3,
        }
        self.settings = {
            "synchronous_commit": "on" if sync == "full" else "off",
            "lock_timeout": LOCK_TIMEOUT,
        }

    def connect(self):
        """A new raw psycopg connection, set up (raises psycopg's errors)."""
        raw = psycopg.connect(self.url, **self.kwargs)
        try:
            self.configure(raw)
        except BaseException:
            raw.close()
            raise
        return raw

    def configure(self, raw) -> None:
        """What every connection gets: the settings, and sums as ``int`` (also run by the pool)."""
        raw.adapters.register_loader("numeric", _WholeNumberLoader)
        for name, value in self.settings.items():
            raw.execute("SELECT set_config(%s, %s, false)", (name, value))
        try:  # a superuser's connection finds deadlocks between daemons' batches sooner than the 1 s default
            raw.execute(f"SET deadlock_timeout = {DEADLOCK_TIMEOUT_MS}")
        except psycopg.errors.InsufficientPrivilege:
            pass


class PgReadPool:
    """Read connections from ``psycopg_pool``, checked before each loan; the interface of ``readers.ReadPool``."""

    def __init__(self, connector: Connector, size: int = READERS, timeout: float = POOL_TIMEOUT):
        self._connector = connector
        self._pool = psycopg_pool.ConnectionPool(
            connector.url,
            min_size=1,
            max_size=size,
            kwargs=connector.kwargs,
            configure=connector.configure,
            check=psycopg_pool.ConnectionPool.check_connection,
            timeout=timeout,
            reconnect_timeout=0,  # never give up on the database: keep trying while it is down
            open=False,
            name="lineproto-readers",
        )
        self._pool.open(wait=False)

    def open(self) -> PgConnection:
        """A read connection of the caller's own (the writer thread keeps one)."""
        try:
            return PgConnection(self._connector.connect())
        except psycopg.Error as exc:
            raise pg_storage_error(exc) from None

    @staticmethod
    def run_on(connection: PgConnection, query: Callable[[PgConnection], T]) -> T:
        """``query(connection)`` in one REPEATABLE READ, READ ONLY transaction: one snapshot throughout."""
        try:
            connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                return query(connection)
            finally:
                if not connection.broken and connection.in_transaction:
                    connection.execute("COMMIT")
        except psycopg.Error as exc:
            raise pg_storage_error(exc) from None

    def run(self, query: Callable[[PgConnection], T]) -> T:
        """``query(connection)`` on a pooled connection; a broken one is dropped by the pool."""
        try:
            with self._pool.connection() as raw:
                return self.run_on(PgConnection(raw), query)
        except psycopg.Error as exc:  # the pool's own: no connection within the timeout
            raise pg_storage_error(exc) from None

    def close(self) -> None:
        self._pool.close()


# -- the schema


#: Each entry moves the schema from version i to i + 1 (meta's ``schema_version``): the
#: PostgreSQL twin of ``schema.MIGRATIONS``, whose version 8 its first entry holds whole.
#: Never edit a released step: append a new one. Columns SQLite calls ``rowid`` are
#: spelled out here (``rowid BIGSERIAL``: the insertion order the store's queries sort by).
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE users (
        name TEXT PRIMARY KEY,
        real_name TEXT NOT NULL,
        roles TEXT NOT NULL,
        password_hash TEXT NOT NULL
    );
    CREATE TABLE players (
        name TEXT PRIMARY KEY,
        wheel TEXT NOT NULL,
        bankroll BIGINT NOT NULL CHECK (bankroll >= 0),
        rounds BIGINT NOT NULL CHECK (rounds >= 0),
        start_bankroll BIGINT NOT NULL,
        slips BIGINT NOT NULL DEFAULT 0,
        server_seed TEXT,
        client_seed TEXT,
        nonce BIGINT
    );
    CREATE TABLE open_bets (
        player TEXT NOT NULL REFERENCES players (name) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        bet TEXT NOT NULL,
        amount BIGINT NOT NULL CHECK (amount > 0),
        slip BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (player, position)
    );
    CREATE TABLE spins (
        id BIGSERIAL PRIMARY KEY,
        player TEXT NOT NULL,
        wheel TEXT NOT NULL,
        pocket TEXT NOT NULL,
        at TEXT NOT NULL,
        staked BIGINT NOT NULL,
        returned BIGINT NOT NULL,
        bankroll_after BIGINT NOT NULL,
        round BIGINT NOT NULL,
        tbl TEXT NOT NULL DEFAULT 'private',
        nonce BIGINT,
        client_seed TEXT,
        server_seed_hash TEXT
    );
    CREATE INDEX spins_player ON spins (player, id);
    CREATE TABLE spin_bets (
        rowid BIGSERIAL PRIMARY KEY,
        spin BIGINT NOT NULL REFERENCES spins (id),
        bet TEXT NOT NULL,
        amount BIGINT NOT NULL,
        won INTEGER NOT NULL,
        returned BIGINT NOT NULL,
        player TEXT,
        slip BIGINT
    );
    CREATE INDEX spin_bets_spin ON spin_bets (spin);
    CREATE INDEX spin_bets_slip ON spin_bets (player, slip);
    CREATE TABLE cleared_bets (
        player TEXT NOT NULL,
        slip BIGINT NOT NULL,
        tbl TEXT NOT NULL,
        round BIGINT NOT NULL,
        bet TEXT NOT NULL,
        amount BIGINT NOT NULL,
        at TEXT NOT NULL,
        PRIMARY KEY (player, slip)
    );
    CREATE TABLE ledger (
        id BIGSERIAL PRIMARY KEY,
        player TEXT NOT NULL,
        at TEXT NOT NULL,
        admin TEXT NOT NULL,
        amount BIGINT NOT NULL,
        reason TEXT NOT NULL,
        bankroll_after BIGINT NOT NULL,
        after_spin BIGINT NOT NULL
    );
    CREATE INDEX ledger_player ON ledger (player, id);
    CREATE TABLE roster (
        position BIGSERIAL PRIMARY KEY,
        meter TEXT NOT NULL UNIQUE,
        state INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX roster_free ON roster (state, position);
    CREATE TABLE issued (meter TEXT PRIMARY KEY);
    CREATE TABLE jobs (
        reader TEXT PRIMARY KEY,
        meter TEXT NOT NULL UNIQUE,
        since TEXT NOT NULL,
        daemon TEXT NOT NULL DEFAULT '',  -- the holding daemon (store.meters.Lease)
        expires TIMESTAMPTZ NOT NULL DEFAULT now()  -- renewed by that daemon while it runs
    );
    CREATE INDEX jobs_daemon ON jobs (daemon);
    CREATE TABLE submissions (
        id BIGSERIAL PRIMARY KEY,
        meter TEXT NOT NULL,
        reading BIGINT,
        reason TEXT NOT NULL,
        at TEXT NOT NULL,
        reader TEXT NOT NULL
    );
    CREATE TABLE latest (
        meter TEXT PRIMARY KEY,
        submission BIGINT NOT NULL REFERENCES submissions (id),
        reader TEXT NOT NULL
    );
    CREATE INDEX latest_reader ON latest (reader);
    CREATE TABLE reading_counts (reader TEXT PRIMARY KEY, mine BIGINT NOT NULL);
    INSERT INTO meta (key, value) VALUES ('readings_total', '0');
    CREATE TABLE unlock_requests (key TEXT PRIMARY KEY, at DOUBLE PRECISION NOT NULL);
    CREATE TABLE labels (
        "user" TEXT NOT NULL,
        label TEXT NOT NULL,
        seq BIGINT NOT NULL,
        line TEXT NOT NULL,
        code INTEGER NOT NULL,
        reply TEXT NOT NULL,
        at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY ("user", label)
    );
    CREATE INDEX labels_seq ON labels ("user", seq);
    CREATE INDEX labels_age ON labels ("user", at);
    CREATE TABLE audit_log (
        seq BIGINT PRIMARY KEY,
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        content TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL,
        mac TEXT NOT NULL
    );
    CREATE TABLE shared_tables (name TEXT PRIMARY KEY, last_round BIGINT NOT NULL);
    CREATE TABLE shared_bets (
        id BIGSERIAL PRIMARY KEY,
        table_name TEXT NOT NULL,
        round BIGINT NOT NULL,
        player TEXT NOT NULL REFERENCES players (name) ON DELETE CASCADE,
        bet TEXT NOT NULL,
        amount BIGINT NOT NULL CHECK (amount > 0),
        state INTEGER NOT NULL DEFAULT 0,
        slip BIGINT NOT NULL DEFAULT 0,
        returned BIGINT
    );
    CREATE INDEX shared_bets_open ON shared_bets (table_name, round, player) WHERE state = 0;
    CREATE INDEX shared_bets_player ON shared_bets (player, state);
    CREATE INDEX shared_bets_slip ON shared_bets (player, slip);
    CREATE TABLE shared_results (
        rowid BIGSERIAL UNIQUE,
        table_name TEXT NOT NULL,
        round BIGINT NOT NULL,
        player TEXT NOT NULL,
        pocket TEXT,
        at TEXT NOT NULL,
        staked BIGINT NOT NULL,
        returned BIGINT NOT NULL,
        bankroll_after BIGINT NOT NULL,
        wheel TEXT,
        after_spin BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (table_name, round, player)
    );
    CREATE INDEX shared_results_player ON shared_results (player);
    """,
    pgrounds.MIGRATION,  # shared tables across daemons (pgrounds.py)
)

#: Version written by this code; a database with a higher one is refused.
SCHEMA_VERSION = len(MIGRATIONS)
#: The advisory lock migrations run under (any number; this one spells "lineproto").
_MIGRATION_LOCK = 0x6C696E6570726F


def schema_version(raw) -> int:
    """The database's schema version (0: empty)."""
    if raw.execute("SELECT to_regclass('meta')").fetchone()[0] is None:
        return 0
    row = raw.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else 0


def migrate(raw, shown_url: str, migrations: tuple[str, ...] = MIGRATIONS) -> int:
    """Bring the schema up to date in one transaction, under an advisory lock; return the version found.

    Daemons started at once on a new database each wait for the lock; the first migrates,
    the others then find the schema current.
    """
    with raw.transaction():
        raw.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        found = schema_version(raw)
        if found > len(migrations):
            raise StoreOpenError(
                f"database {shown_url} has schema version {found}, newer than this daemon's {len(migrations)}: "
                "run a newer lineproto"
            )
        for version in range(found, len(migrations)):
            raw.execute(migrations[version].encode())  # no parameters: several statements at once
            raw.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', %s) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(version + 1),),
            )
    return found


# -- held jobs' leases


class LeaseKeeper:
    """A thread renewing this daemon's held jobs every third of the lease, and handing back expired ones.

    A daemon that dies stops renewing: within one lease its jobs are handed back by the
    next renewal of any daemon on the database (or by its own next start).
    """

    def __init__(self, meters: StoredMeters, lease: Lease):
        self._meters = meters
        self._interval = lease.seconds / 3
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="job-leases", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                _, released = self._meters.renew()
            except StorageError as exc:
                log.warning("renewing the held jobs' leases failed: %s", exc)
                continue
            if released:
                log.warning("%d held jobs whose daemon stopped renewing them are back in the pool", released)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


# -- the store


_NO_KEY = (
    "with --db postgresql://... the audit log's key file must be given: --audit-key FILE "
    "(it cannot live beside the database; docs/DEPLOYING.md, PostgreSQL)"
)


class PostgresStore(SqlStore):
    """Durable state in one PostgreSQL database, shared by every daemon on it; see ``base.Store``."""

    def __init__(
        self,
        url: str,
        sync: str = "full",
        rng=None,
        clock=None,
        audit_key: str | None = None,
        audit_required: bool = False,
        connect_timeout: float = CONNECT_TIMEOUT,
        pool_timeout: float = POOL_TIMEOUT,
        job_lease: float = JOB_LEASE,
    ):
        """As ``SqliteStore``; ``audit_key`` is required when ``audit_required`` (the daemon, creating
        subcommands), else a missing one refuses only the first change. ``job_lease``: seconds a
        held job stays this daemon's without renewal (``store/meters.py``)."""
        self.path = url
        self.shown = shown(url)
        if audit_required and audit_key is None:
            raise StoreOpenError(_NO_KEY)
        self._connector = Connector(url, sync, connect_timeout)
        try:
            raw = self._connector.connect()
        except psycopg.Error as exc:
            raise StoreOpenError(f"cannot open database {self.shown}: {first_line(exc)}") from None
        connection = PgConnection(raw)
        try:
            self.found_version = migrate(raw, self.shown)
            if audit_key is None:
                self._audit = AuditLog(None, missing=_NO_KEY)
            else:
                self._audit = AuditLog.open(connection, self.shown, audit_key, audit_required)  # type: ignore[arg-type]
        except psycopg.Error as exc:
            connection.close()
            raise StoreOpenError(f"cannot open database {self.shown}: {first_line(exc)}") from None
        except BaseException:
            connection.close()
            raise
        self._readers = PgReadPool(self._connector, timeout=pool_timeout)
        self._writer = Writer(
            connection,
            name="store-writer",
            readers=self._readers,
            dialect=PgDialect(),
            reconnect=lambda: PgConnection(self._connector.connect()),
        )
        #: This daemon among those on the database: its held jobs carry it.
        self.daemon_id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        lease = Lease(self.daemon_id, job_lease)
        self._meters = StoredMeters(
            self._writer, rng if rng is not None else secrets.SystemRandom(), clock, self._audit, lease
        )
        self._leases = LeaseKeeper(self._meters, lease)

    def close(self) -> None:
        self._leases.stop()
        super().close()

    def backup(self, path: str) -> None:
        """A logical export of every table to ``path``, from one snapshot, while daemons run (:func:`export`)."""
        self._readers.run(lambda connection: export(connection.raw, path))

    def audit_head(self) -> str | None:
        """The audit log's signed head as stored (meta ``audit_head``), for a backup's signature."""
        row = self._readers.run(lambda c: c.execute("SELECT value FROM meta WHERE key = 'audit_head'").fetchone())
        return row[0] if row else None


# -- backup and restore: a logical export
#
# The file: a header line, then per table a line {"table": name, "columns": [...], "rows": N}
# followed by its N rows, one JSON array a line; tables in an order where every table comes
# after those its foreign keys name. ``daemon.py backup`` signs it as it signs an SQLite copy
# (store/audit.py); ``daemon.py restore`` checks the signature, then loads it into an empty
# database (``--force``: one whose lineproto tables are dropped first).

EXPORT_MAGIC = "lineproto postgresql export 1"


def _tables(raw) -> list[str]:
    """The schema's tables, each after the tables its foreign keys reference."""
    names = [
        row[0]
        for row in raw.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name"
        )
    ]
    needs: dict[str, set[str]] = {name: set() for name in names}
    for child, parent in raw.execute(
        "SELECT conrelid::regclass::text, confrelid::regclass::text FROM pg_constraint WHERE contype = 'f'"
    ):
        if child in needs and parent in needs and parent != child:
            needs[child].add(parent)
    ordered: list[str] = []
    while needs:
        ready = sorted(name for name, parents in needs.items() if parents <= set(ordered))
        ordered += ready
        for name in ready:
            del needs[name]
    return ordered


def _plain(value):
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    raise TypeError(f"cannot export {type(value).__name__}")


def export(raw, path: str) -> None:
    """Write every table of the database (``raw``'s transaction: one snapshot) to ``path``."""
    version = schema_version(raw)
    with open(path, "w", encoding="utf-8") as file:
        file.write(f"{EXPORT_MAGIC} schema {version}\n")
        for table in _tables(raw):
            cursor = raw.execute(f'SELECT * FROM "{table}" ORDER BY 1')
            rows = cursor.fetchall()
            columns = [column.name for column in cursor.description]
            file.write(json.dumps({"table": table, "columns": columns, "rows": len(rows)}) + "\n")
            for row in rows:
                file.write(json.dumps(list(row), default=_plain, ensure_ascii=False) + "\n")
        file.flush()
        os.fsync(file.fileno())


def restore(url: str, path: str, force: bool) -> int:
    """Load an export into the database at ``url`` (empty, or emptied with ``force``); return the rows loaded.

    The schema is created at the export's version, the rows loaded, every id sequence set past
    the highest id, then the schema migrated to this code's version: all in one transaction.
    """
    connector = Connector(url)
    try:
        raw = connector.connect()
    except psycopg.Error as exc:
        raise StoreOpenError(f"restore: cannot open database {shown(url)}: {first_line(exc)}") from None
    try:
        with open(path, encoding="utf-8") as file, raw.transaction():
            header = file.readline().split()
            if " ".join(header[:-2]) != EXPORT_MAGIC or header[-2] != "schema" or not header[-1].isdigit():
                raise StoreOpenError(f"restore: {path} is not a lineproto PostgreSQL export")
            version = int(header[-1])
            if version > SCHEMA_VERSION:
                raise StoreOpenError(f"restore: {path} has schema version {version}, newer than this lineproto's")
            existing = _tables(raw)
            if existing and not force:
                raise StoreOpenError(f"restore: {shown(url)} has tables (stop the daemons; --force replaces them)")
            for table in reversed(existing):
                raw.execute(f'DROP TABLE "{table}" CASCADE')
            migrate(raw, shown(url), MIGRATIONS[:version])
            loaded = _load_rows(raw, file)
            migrate(raw, shown(url))
        return loaded
    except psycopg.Error as exc:
        raise StoreOpenError(f"restore: {first_line(exc)}") from None
    finally:
        raw.close()


def _load_rows(raw, file) -> int:
    loaded = 0
    raw.execute("DELETE FROM meta")  # the export's meta (schema version included) replaces the new one
    for line in file:
        heading = json.loads(line)
        table, columns, count = heading["table"], heading["columns"], heading["rows"]
        names = ", ".join(f'"{column}"' for column in columns)
        marks = ", ".join(["%s"] * len(columns))
        rows = [json.loads(next(file)) for _ in range(count)]
        with raw.cursor() as cursor:
            cursor.executemany(f'INSERT INTO "{table}" ({names}) VALUES ({marks})', rows)
        loaded += count
        for column in columns:
            sequence = raw.execute("SELECT pg_get_serial_sequence(%s, %s)", (f'"{table}"', column)).fetchone()[0]
            if sequence is not None:
                raw.execute(
                    f'SELECT setval(%s, coalesce((SELECT max("{column}") FROM "{table}"), 0) + 1, false)', (sequence,)
                )
    return loaded
