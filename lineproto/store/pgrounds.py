"""Shared tables across daemons in PostgreSQL: the rounds, who is seated where, and the events' rows.

Several daemons on one database run each shared table once: one croupier for
the whole cluster (``pgbus.TableLocks`` decides which daemon), players on any
daemon. What they share is here, each method one transaction of the store
(``PostgresStore.run``, durable when it returns):

- ``table_rounds``: one row per round (table, round id, phase ``betting`` ->
  ``closed`` -> ``settled``, its deadlines on the database's clock, the server
  seed and its published hash, the pocket once settled). Any daemon may open a
  table's round when none is open (:meth:`RoundRecords.join`); only the
  croupier closes and settles it (:meth:`RoundRecords.close_due`,
  :meth:`RoundRecords.finish`).
- The registered players' bets are the store's ``shared_bets``
  (``store.tables.StoredTables``); a bet's transaction first locks the round's row
  ``FOR SHARE`` and finds it betting (:meth:`RoundRecords.require_betting`),
  the croupier closes it ``FOR UPDATE``, so no bet slips in after the close and
  the settlement sees every accepted bet.
- ``table_seats``: the sessions seated, by daemon. A daemon is alive while its
  listening connection is (``application_name`` = its id in ``pg_stat_activity``),
  so the seats of a daemon that died stop counting at once.
- ``table_events``: joins, leaves and chat lines, stored so that the
  notification (``pg_notify``) carries only the row's id.

Notifications (channel :data:`CHANNEL`, sent in the transaction, so delivered
only once it is committed): ``round <id>`` (a round row changed), ``event <id>``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..domain.tables import BETTING, CLOSED, SETTLED, NoMoreBets

#: The LISTEN/NOTIFY channel of the shared tables.
CHANNEL = "lineproto_tables"
#: The prefix of every daemon's id (its listening connection's ``application_name``).
DAEMON_PREFIX = "lineproto-tables "

#: Seconds a join's, leave's or chat line's row is kept after it was notified.
EVENTS_KEPT = 600

#: The PostgreSQL migration that adds the cluster's tables (appended to the store's list).
MIGRATION = f"""
CREATE TABLE table_rounds (
    id BIGSERIAL PRIMARY KEY,
    table_name TEXT NOT NULL,
    round INTEGER NOT NULL,
    phase TEXT NOT NULL CHECK (phase IN ('{BETTING}', '{CLOSED}', '{SETTLED}')),
    seconds DOUBLE PRECISION NOT NULL,
    closes_at TIMESTAMPTZ NOT NULL,
    spin_at TIMESTAMPTZ,
    server_seed TEXT NOT NULL,
    seed_hash TEXT NOT NULL,
    pocket TEXT,
    UNIQUE (table_name, round)
);
CREATE TABLE table_seats (
    daemon TEXT NOT NULL,
    session TEXT NOT NULL,
    table_name TEXT NOT NULL,
    player TEXT NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (daemon, session)
);
CREATE INDEX table_seats_table ON table_seats (table_name);
CREATE TABLE table_events (
    id BIGSERIAL PRIMARY KEY,
    table_name TEXT NOT NULL,
    code INTEGER NOT NULL,
    text TEXT NOT NULL,
    daemon TEXT NOT NULL,
    session TEXT NOT NULL,
    at TIMESTAMPTZ NOT NULL DEFAULT now()
);
"""

_ALIVE = "daemon IN (SELECT application_name FROM pg_stat_activity)"
_ROUND = (
    "SELECT id, table_name, round, phase, seconds, seed_hash, "
    "greatest(extract(epoch FROM coalesce(CASE WHEN phase = 'closed' THEN spin_at END, closes_at) "
    "- clock_timestamp()), 0)::float8, CASE WHEN phase = 'settled' THEN server_seed END, pocket FROM table_rounds"
)


@dataclass(frozen=True)
class RoundRow:
    """A round as the database has it; ``left``: seconds to its next deadline (0 when due or settled)."""

    id: int
    table: str
    round_id: int
    phase: str
    seconds: float
    seed_hash: str
    left: float
    server_seed: str | None  # revealed once settled
    pocket: str | None


@dataclass(frozen=True)
class EventRow:
    """A join, leave or chat line to send to the table's seated sessions but the one that caused it."""

    table: str
    code: int
    text: str
    daemon: str
    session: str


@dataclass(frozen=True)
class PlayerNet:
    """A registered player's result of a settled round, as the store recorded it."""

    staked: int
    returned: int

    @property
    def net(self) -> int:
        return self.returned - self.staked


class RoundRecords:
    """The cluster's shared-table rows in a PostgreSQL store (see the module docstring)."""

    def __init__(self, store, daemon: str):
        self.store = store
        self.daemon = daemon

    # -- reading

    def current(self) -> dict[str, RoundRow]:
        """Every table's newest round."""

        def read(connection) -> dict[str, RoundRow]:
            rows = connection.execute(
                f"{_ROUND} WHERE id IN (SELECT max(id) FROM table_rounds GROUP BY table_name)"
            ).fetchall()
            return {row[1]: RoundRow(*row) for row in rows}

        return self.store.run(read)

    def round(self, round_row: int) -> RoundRow | None:
        row = self.store.run(lambda c: c.execute(f"{_ROUND} WHERE id = ?", (round_row,)).fetchone())
        return None if row is None else RoundRow(*row)

    def round_at(self, table: str, round_id: int) -> RoundRow | None:
        row = self.store.run(
            lambda c: c.execute(f"{_ROUND} WHERE table_name = ? AND round = ?", (table, round_id)).fetchone()
        )
        return None if row is None else RoundRow(*row)

    def event(self, event_id: int) -> EventRow | None:
        row = self.store.run(
            lambda c: c.execute(
                "SELECT table_name, code, text, daemon, session FROM table_events WHERE id = ?", (event_id,)
            ).fetchone()
        )
        return None if row is None else EventRow(*row)

    def results(self, table: str, round_id: int) -> dict[str, PlayerNet]:
        """The registered players' results of a settled round (``shared_results``)."""
        rows = self.store.run(
            lambda c: c.execute(
                "SELECT player, staked, returned FROM shared_results WHERE table_name = ? AND round = ?",
                (table, round_id),
            ).fetchall()
        )
        return {player: PlayerNet(staked, returned) for player, staked, returned in rows}

    def seated(self) -> dict[str, int]:
        """Players seated at each table on a living daemon."""
        rows = self.store.run(
            lambda c: c.execute(
                f"SELECT table_name, count(DISTINCT player) FROM table_seats WHERE {_ALIVE} GROUP BY table_name"
            ).fetchall()
        )
        return dict(rows)

    # -- a session's changes

    def join(
        self, table: str, session: str, player: str, name: str, opening: tuple[int, float, str, str]
    ) -> RoundRow | None:
        """Seat the session (leaving any other seat of it), tell the table, open a round if none is open.

        ``opening``: (the table's last round id known elsewhere, seconds of betting, server seed,
        its hash) for the round opened here. Returns the table's round now (None: there never was one).
        """

        def operation(connection) -> RoundRow | None:
            self._seat(connection, table, session, player, name, opening)
            text = f"{name} joined {table} ({_seated(connection, table)} seated)"
            _event(connection, table, 640, text, self.daemon, session)
            return _newest(connection, table)

        return self.store.run(operation)

    def reseat(self, seats: list[tuple[str, str, str, str, tuple[int, float, str, str]]]) -> None:
        """(table, session, player, name, opening) of every session seated here, again, without telling anyone.

        After this daemon lost the database its seats may have been forgotten (``tidy``) and its
        tables left idle: they count again, and a table with someone seated gets a round.
        """

        def operation(connection) -> None:
            for seat in seats:
                self._seat(connection, *seat)

        self.store.run(operation)

    def _seat(self, connection, table: str, session: str, player: str, name: str, opening) -> None:
        connection.execute(
            "INSERT INTO table_seats (daemon, session, table_name, player, name) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (daemon, session) DO UPDATE SET table_name = excluded.table_name",
            (self.daemon, session, table, player, name),
        )
        _open_round(connection, table, *opening)

    def leave(self, table: str, session: str, name: str) -> None:
        def operation(connection) -> None:
            connection.execute("DELETE FROM table_seats WHERE daemon = ? AND session = ?", (self.daemon, session))
            text = f"{name} left {table} ({_seated(connection, table)} seated)"
            _event(connection, table, 641, text, self.daemon, "")

        self.store.run(operation)

    def say(self, table: str, session: str, text: str) -> int:
        """Store the chat line and notify it: how many other sessions are seated at the table."""

        def operation(connection) -> int:
            _event(connection, table, 650, text, self.daemon, session)
            return connection.execute(
                f"SELECT count(*) FROM table_seats WHERE table_name = ? AND {_ALIVE} "
                "AND NOT (daemon = ? AND session = ?)",
                (table, self.daemon, session),
            ).fetchone()[0]

        return self.store.run(operation)

    def require_betting(self, connection, table: str, round_id: int) -> None:
        """In a bet's (or CLR's) transaction: lock the round's row FOR SHARE; NoMoreBets unless it is betting.

        The croupier's close takes the row FOR UPDATE, so it waits for this transaction: a bet it
        lets through is committed before the round closes, and settled with it.
        """
        row = connection.execute(
            "SELECT phase, greatest(extract(epoch FROM spin_at - clock_timestamp()), 0)::float8 "
            "FROM table_rounds WHERE table_name = ? AND round = ? FOR SHARE",
            (table, round_id),
        ).fetchone()
        if row is None or row[0] != BETTING:
            wait = row[1] if row is not None and row[0] == CLOSED and row[1] is not None else 0.0
            raise NoMoreBets(
                f"no more bets in round {round_id} at {table}: the next round opens in {math.ceil(wait)} s", wait
            )

    # -- the croupier's changes

    def close_due(self, table: str, spin_seconds: float) -> RoundRow | None:
        """Close the table's round if its betting time is over (FOR UPDATE: after every bet in flight)."""

        def operation(connection) -> RoundRow | None:
            row = connection.execute(
                "SELECT id FROM table_rounds WHERE table_name = ? AND phase = 'betting' "
                "AND closes_at <= clock_timestamp() FOR UPDATE",
                (table,),
            ).fetchone()
            if row is None:
                return None
            connection.execute(
                "UPDATE table_rounds SET phase = 'closed', spin_at = clock_timestamp() + ? * interval '1 second' "
                "WHERE id = ?",
                (spin_seconds, row[0]),
            )
            _notify(connection, f"round {row[0]}")
            return RoundRow(*connection.execute(f"{_ROUND} WHERE id = ?", (row[0],)).fetchone())

        return self.store.run(operation)

    def spin_due(self, table: str) -> tuple[int, int, str] | None:
        """The table's closed round whose spin is due: (row id, round id, server seed), or None."""
        return self.store.run(
            lambda c: c.execute(
                "SELECT id, round, server_seed FROM table_rounds WHERE table_name = ? AND phase = 'closed' "
                "AND spin_at <= clock_timestamp()",
                (table,),
            ).fetchone()
        )

    def finish(self, round_row: int, pocket: str, opening: tuple[int, float, str, str]) -> None:
        """The round's bets are settled (``StoredTables.settle``, committed): mark it, open the next if anyone sits."""

        def operation(connection) -> None:
            done = connection.execute(
                "UPDATE table_rounds SET phase = 'settled', pocket = ? WHERE id = ? AND phase = 'closed' "
                "RETURNING table_name",
                (pocket, round_row),
            ).fetchone()
            if done is None:
                return
            _notify(connection, f"round {round_row}")
            if _seated(connection, done[0]):
                _open_round(connection, done[0], *opening)

        self.store.run(operation)

    def open_if_seated(self, table: str, opening: tuple[int, float, str, str]) -> RoundRow | None:
        """Open a round at a table that has none open while someone is seated (a croupier taking over)."""

        def operation(connection) -> RoundRow | None:
            return _open_round(connection, table, *opening) if _seated(connection, table) else None

        return self.store.run(operation)

    def tidy(self) -> int:
        """Delete the seats of daemons that are gone (their listening connection closed) and events read long ago.

        An event is read the moment its notification arrives; :data:`EVENTS_KEPT` later it is only history.
        Returns how many seats were forgotten.
        """

        def operation(connection) -> int:
            connection.execute("DELETE FROM table_events WHERE at < now() - ? * interval '1 second'", (EVENTS_KEPT,))
            return connection.execute(f"DELETE FROM table_seats WHERE NOT {_ALIVE}").rowcount

        return self.store.run(operation)


def _newest(connection, table: str) -> RoundRow | None:
    row = connection.execute(f"{_ROUND} WHERE table_name = ? ORDER BY round DESC LIMIT 1", (table,)).fetchone()
    return None if row is None else RoundRow(*row)


def _seated(connection, table: str) -> int:
    return connection.execute(
        f"SELECT count(DISTINCT player) FROM table_seats WHERE table_name = ? AND {_ALIVE}", (table,)
    ).fetchone()[0]


def _open_round(
    connection, table: str, last_round: int, seconds: float, server_seed: str, seed_hash: str
) -> RoundRow | None:
    """A new round at ``table`` unless one is open (betting or closed); one daemon at a time decides."""
    connection.execute("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))", (f"lineproto open {table}",))
    newest = connection.execute(
        "SELECT round, phase FROM table_rounds WHERE table_name = ? ORDER BY round DESC LIMIT 1", (table,)
    ).fetchone()
    if newest is not None and newest[1] != SETTLED:
        return None
    round_id = max(newest[0] if newest else 0, last_round) + 1
    row = connection.execute(
        "INSERT INTO table_rounds (table_name, round, phase, seconds, closes_at, server_seed, seed_hash) "
        "VALUES (?, ?, 'betting', ?, clock_timestamp() + ? * interval '1 second', ?, ?) RETURNING id",
        (table, round_id, seconds, seconds, server_seed, seed_hash),
    ).fetchone()
    _notify(connection, f"round {row[0]}")
    return RoundRow(*connection.execute(f"{_ROUND} WHERE id = ?", (row[0],)).fetchone())


def _event(connection, table: str, code: int, text: str, daemon: str, session: str) -> None:
    (event_id,) = connection.execute(
        "INSERT INTO table_events (table_name, code, text, daemon, session) VALUES (?, ?, ?, ?, ?) RETURNING id",
        (table, code, text, daemon, session),
    ).fetchone()
    _notify(connection, f"event {event_id}")


def _notify(connection, payload: str) -> None:
    connection.execute("SELECT pg_notify(?, ?)", (CHANNEL, payload))
