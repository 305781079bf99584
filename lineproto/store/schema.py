"""The database schema, its version, and forward migrations run at start."""

import sqlite3

from .base import StoreOpenError

#: Version written by this code; a database with a higher one is refused.
SCHEMA_VERSION = 4

# Each entry moves the schema from version i to i + 1. Never edit a released
# step: append a new one.
MIGRATIONS = (
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
        bankroll INTEGER NOT NULL CHECK (bankroll >= 0),
        rounds INTEGER NOT NULL CHECK (rounds >= 0),
        start_bankroll INTEGER NOT NULL
    );
    CREATE TABLE open_bets (
        player TEXT NOT NULL REFERENCES players (name) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        bet TEXT NOT NULL,
        amount INTEGER NOT NULL CHECK (amount > 0),
        PRIMARY KEY (player, position)
    );
    CREATE TABLE spins (
        id INTEGER PRIMARY KEY,
        player TEXT NOT NULL,
        wheel TEXT NOT NULL,
        pocket TEXT NOT NULL,
        at TEXT NOT NULL,
        staked INTEGER NOT NULL,
        returned INTEGER NOT NULL,
        bankroll_after INTEGER NOT NULL,
        round INTEGER NOT NULL
    );
    CREATE INDEX spins_player ON spins (player, id);
    CREATE TABLE spin_bets (
        spin INTEGER NOT NULL REFERENCES spins (id),
        bet TEXT NOT NULL,
        amount INTEGER NOT NULL,
        won INTEGER NOT NULL,
        returned INTEGER NOT NULL
    );
    CREATE INDEX spin_bets_spin ON spin_bets (spin);
    CREATE TABLE roster (
        position INTEGER PRIMARY KEY AUTOINCREMENT,
        meter TEXT NOT NULL UNIQUE,
        state INTEGER NOT NULL DEFAULT 0  -- 0 free, 1 held, 2 read
    );
    CREATE INDEX roster_free ON roster (state, position);
    CREATE TABLE issued (meter TEXT PRIMARY KEY);  -- demo-mode ids ever handed out
    CREATE TABLE jobs (
        reader TEXT PRIMARY KEY,
        meter TEXT NOT NULL UNIQUE,
        since TEXT NOT NULL
    );
    CREATE TABLE submissions (
        id INTEGER PRIMARY KEY,
        meter TEXT NOT NULL,
        reading INTEGER,
        reason TEXT NOT NULL,
        at TEXT NOT NULL,
        reader TEXT NOT NULL
    );
    CREATE TABLE latest (
        meter TEXT PRIMARY KEY,
        submission INTEGER NOT NULL REFERENCES submissions (id),
        reader TEXT NOT NULL
    );
    CREATE INDEX latest_reader ON latest (reader);
    """,
    # 2: readings counted as they are submitted, so a READ's reply needs no count(*) scan.
    """
    CREATE TABLE reading_counts (reader TEXT PRIMARY KEY, mine INTEGER NOT NULL);
    INSERT INTO reading_counts (reader, mine) SELECT reader, count(*) FROM latest GROUP BY reader;
    INSERT OR REPLACE INTO meta (key, value) SELECT 'readings_total', count(*) FROM latest;
    """,
    # 3: an admin's request to end a failed-login lock (daemon.py unlock), read by the running daemon.
    """
    CREATE TABLE unlock_requests (key TEXT PRIMARY KEY, at REAL NOT NULL);
    """,
    # 4: shared tables (store/tables.py): each table's last round id, the bets of its rounds, and
    # each player's result of a settled (or, after a crash, refunded) round.
    """
    CREATE TABLE shared_tables (name TEXT PRIMARY KEY, last_round INTEGER NOT NULL);
    CREATE TABLE shared_bets (
        id INTEGER PRIMARY KEY,
        table_name TEXT NOT NULL,
        round INTEGER NOT NULL,
        player TEXT NOT NULL REFERENCES players (name) ON DELETE CASCADE,
        bet TEXT NOT NULL,
        amount INTEGER NOT NULL CHECK (amount > 0),
        state INTEGER NOT NULL DEFAULT 0  -- 0 open, 1 settled, 2 refunded
    );
    CREATE INDEX shared_bets_open ON shared_bets (table_name, round, player) WHERE state = 0;
    CREATE INDEX shared_bets_player ON shared_bets (player, state);
    CREATE TABLE shared_results (
        table_name TEXT NOT NULL,
        round INTEGER NOT NULL,
        player TEXT NOT NULL,
        pocket TEXT,  -- NULL: refunded, the round was never spun
        at TEXT NOT NULL,
        staked INTEGER NOT NULL,
        returned INTEGER NOT NULL,
        bankroll_after INTEGER NOT NULL,
        PRIMARY KEY (table_name, round, player)
    );
    CREATE INDEX shared_results_player ON shared_results (player);
    """,
)
assert len(MIGRATIONS) == SCHEMA_VERSION


def schema_version(connection: sqlite3.Connection) -> int:
    exists = connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone()
    if not exists:
        return 0
    row = connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else 0


def migrate(connection: sqlite3.Connection, path: str) -> int:
    """Bring the schema up to :data:`SCHEMA_VERSION`; return the version found."""
    found = schema_version(connection)
    if found > SCHEMA_VERSION:
        raise StoreOpenError(
            f"database {path} has schema version {found}, newer than this daemon's {SCHEMA_VERSION}: "
            "run a newer lineproto"
        )
    for version in range(found, SCHEMA_VERSION):
        connection.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(MIGRATIONS[version]):
                connection.execute(statement)
            connection.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)", (str(version + 1),)
            )
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
    return found


def _statements(script: str):
    """Split a migration script into statements (executescript would commit on its own)."""
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line.split("--", 1)[0] if "--" in line else line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                yield buffer.strip()
            buffer = ""
