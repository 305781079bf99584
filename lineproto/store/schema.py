"""The database schema, its version, and forward migrations run at start."""

import sqlite3

from .base import StoreOpenError

#: Version written by this code; a database with a higher one is refused.
SCHEMA_VERSION = 8

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
    # 4: bet receipts (slips: numbered per player), the table of each spin, and the cashier's ledger.
    # Bets open before this get slips 1, 2, ... in the order placed.
    """
    ALTER TABLE players ADD COLUMN slips INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE open_bets ADD COLUMN slip INTEGER NOT NULL DEFAULT 0;
    UPDATE open_bets SET slip = 1 + (
        SELECT count(*) FROM open_bets AS earlier
        WHERE earlier.player = open_bets.player AND earlier.position < open_bets.position
    );
    UPDATE players SET slips = (SELECT count(*) FROM open_bets WHERE open_bets.player = players.name);
    ALTER TABLE spins ADD COLUMN tbl TEXT NOT NULL DEFAULT 'private';
    ALTER TABLE spin_bets ADD COLUMN player TEXT;
    ALTER TABLE spin_bets ADD COLUMN slip INTEGER;
    CREATE INDEX spin_bets_slip ON spin_bets (player, slip);
    CREATE TABLE cleared_bets (
        player TEXT NOT NULL,
        slip INTEGER NOT NULL,
        tbl TEXT NOT NULL,
        round INTEGER NOT NULL,
        bet TEXT NOT NULL,
        amount INTEGER NOT NULL,
        at TEXT NOT NULL,
        PRIMARY KEY (player, slip)
    );
    CREATE TABLE ledger (
        id INTEGER PRIMARY KEY,
        player TEXT NOT NULL,
        at TEXT NOT NULL,
        admin TEXT NOT NULL,
        amount INTEGER NOT NULL,
        reason TEXT NOT NULL,
        bankroll_after INTEGER NOT NULL,
        after_spin INTEGER NOT NULL  -- the player's last spins.id when entered: orders HIST exactly
    );
    CREATE INDEX ledger_player ON ledger (player, id);
    """,
    # 5: request labels (docs/PROTOCOL.md 9a): what each user's labelled change ran and replied, so
    # the same label again, on any connection or daemon, gets that reply instead of a second run.
    """
    CREATE TABLE labels (
        user TEXT NOT NULL,
        label TEXT NOT NULL,
        seq INTEGER NOT NULL,  -- numbered per user, oldest first: the per-user bound drops the lowest
        line TEXT NOT NULL,
        code INTEGER NOT NULL,
        reply TEXT NOT NULL,  -- the reply's text lines, joined by LF
        at REAL NOT NULL,  -- Unix time recorded: expired after --label-ttl
        PRIMARY KEY (user, label)
    );
    CREATE INDEX labels_seq ON labels (user, seq);
    CREATE INDEX labels_age ON labels (user, at);
    """,
    # 6: the tamper-evident audit log (store/audit.py, docs/AUDIT.md); its head is meta's audit_head.
    """
    CREATE TABLE audit_log (
        seq INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        content TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL,
        mac TEXT NOT NULL
    );
    """,
    # 7: shared tables (store/tables.py): each table's last round id, the bets of its rounds, and
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
        state INTEGER NOT NULL DEFAULT 0,  -- 0 open, 1 settled, 2 refunded, 3 cleared (CLR)
        slip INTEGER NOT NULL DEFAULT 0,  -- the player's receipt number (players.slips, shared with private bets)
        returned INTEGER  -- once settled: stake plus winnings, or 0
    );
    CREATE INDEX shared_bets_open ON shared_bets (table_name, round, player) WHERE state = 0;
    CREATE INDEX shared_bets_player ON shared_bets (player, state);
    CREATE INDEX shared_bets_slip ON shared_bets (player, slip);
    CREATE TABLE shared_results (
        table_name TEXT NOT NULL,
        round INTEGER NOT NULL,
        player TEXT NOT NULL,
        pocket TEXT,  -- NULL: refunded, the round was never spun
        at TEXT NOT NULL,
        staked INTEGER NOT NULL,
        returned INTEGER NOT NULL,
        bankroll_after INTEGER NOT NULL,
        wheel TEXT,  -- the table's wheel (the bets' layout); NULL: refunded
        after_spin INTEGER NOT NULL DEFAULT 0,  -- the player's newest private spin then: HIST's order
        PRIMARY KEY (table_name, round, player)
    );
    CREATE INDEX shared_results_player ON shared_results (player);
    """,
    # 8: provably fair spins. A player's seeds (drawn at their first FAIR or SPIN: NULL until then) and,
    # on each spin, what its pocket was derived from; spins from before this have NULL there.
    """
    ALTER TABLE players ADD COLUMN server_seed TEXT;
    ALTER TABLE players ADD COLUMN client_seed TEXT;
    ALTER TABLE players ADD COLUMN nonce INTEGER;
    ALTER TABLE spins ADD COLUMN nonce INTEGER;
    ALTER TABLE spins ADD COLUMN client_seed TEXT;
    ALTER TABLE spins ADD COLUMN server_seed_hash TEXT;
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
        if schema_version(connection) > version:  # another process migrated while we waited for the lock
            connection.execute("COMMIT")
            continue
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
