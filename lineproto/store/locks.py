"""How a transaction keeps other writers off what it changes: written once for every database.

SQLite has one writer at a time (the writer's ``BEGIN IMMEDIATE`` takes the
database), so these functions do nothing there. On PostgreSQL several daemons
write at once: a connection that says ``locks_rows`` (``postgres.py``'s adapter)
gets a row lock (``SELECT ... FOR UPDATE``) or a transaction-scoped advisory lock,
held until its transaction ends. So two daemons serving one player change that
player's table one after the other, and each reads what the other committed.
"""


def locks_rows(connection) -> bool:
    """True on a database where other writers may run at once (PostgreSQL)."""
    return bool(getattr(connection, "locks_rows", False))


def lock_players(connection, *players: str) -> None:
    """Lock the players' rows until the transaction ends (in name order: two lockers never deadlock)."""
    if locks_rows(connection) and players:
        names = sorted(set(players))
        marks = ",".join("?" * len(names))
        connection.execute(f"SELECT name FROM players WHERE name IN ({marks}) ORDER BY name FOR UPDATE", names)


def lock_key(connection, key: str) -> None:
    """Wait for, then hold until the transaction ends, the lock named ``key`` (a label, the audit log's head)."""
    if locks_rows(connection):
        connection.execute("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))", (key,))


def skip_locked(connection) -> str:
    """The clause that locks the rows a query picks and skips those another transaction holds ('' on SQLite)."""
    return " FOR UPDATE SKIP LOCKED" if locks_rows(connection) else ""
