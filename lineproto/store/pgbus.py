"""A daemon's two dedicated PostgreSQL connections for the shared tables: LISTEN, and the croupiers' locks.

- :class:`Bus`: one connection that LISTENs on the tables' channel and hands every
  notification's payload (ids only, ``store.pgrounds``) to a callback, on a thread
  of its own. Its ``application_name`` is the daemon's id, so while it is connected
  the daemon counts as alive (its seats count); when it reconnects after losing the
  server it calls ``resync`` (notifications sent meanwhile are lost).
- :class:`TableLocks`: one connection holding a session-level
  ``pg_try_advisory_lock`` per table this daemon is the croupier of. PostgreSQL frees
  the locks when the connection closes (the daemon died, or lost the server), so another
  daemon's next try takes the table over.

Both use psycopg directly (autocommit: no transaction stays open) and bound every
wait with ``connect_timeout``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ..extras import require
from .base import StorageError

log = logging.getLogger("lineproto.tables.bus")

#: Seconds before giving up connecting (then the next try comes a second later).
CONNECT_TIMEOUT = 5


def _connect(dsn: str, application_name: str):
    psycopg = require("psycopg", "postgres", "--db postgresql://...")
    return psycopg.connect(
        dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT, application_name=application_name[:63]
    )


class Bus:
    """LISTEN on ``channel`` on a connection of its own; ``deliver(payload)`` for each notification."""

    def __init__(self, dsn: str, daemon: str, channel: str, deliver: Callable[[str], None], resync: Callable[[], None]):
        self.dsn = dsn
        self.daemon = daemon
        self.channel = channel
        self.deliver = deliver
        self.resync = resync
        self._stopping = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tables-bus", daemon=True)

    def start(self, timeout: float = 2 * CONNECT_TIMEOUT) -> None:
        """Start listening; returns once the first connection listens (or ``timeout`` passed)."""
        self._thread.start()
        self._ready.wait(timeout)

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        first = True
        while not self._stopping.is_set():
            try:
                connection = _connect(self.dsn, self.daemon)
            except Exception as exc:
                log.warning("shared tables: cannot connect to listen (%s); trying again in 1 s", exc)
                self._stopping.wait(1.0)
                continue
            try:
                with connection:
                    connection.execute(f"LISTEN {self.channel}")
                    self._ready.set()
                    if not first:
                        log.info("shared tables: listening again; catching up with the tables")
                        self.resync()
                    first = False
                    while not self._stopping.is_set():
                        for notification in connection.notifies(timeout=0.5):
                            self._deliver(notification.payload)
            except Exception as exc:
                if not self._stopping.is_set():
                    log.warning("shared tables: the listening connection failed (%s); reconnecting", exc)
                    self._stopping.wait(0.5)

    def _deliver(self, payload: str) -> None:
        try:
            self.deliver(payload)
        except StorageError as exc:  # the database went away: the catching up after reconnecting tells the rest
            log.warning("shared tables: cannot read what %r names: %s", payload, exc)
        except Exception:  # one bad event must not stop the others
            log.exception("shared tables: cannot deliver %r", payload)


class TableLocks:
    """Session-level advisory locks, one per table, on a dedicated connection: the croupiers' ballot."""

    def __init__(self, dsn: str, daemon: str):
        self.dsn = dsn
        self.daemon = daemon
        self._connection = None
        self.held: set[str] = set()

    def try_take(self, tables: list[str]) -> set[str]:
        """Try to take the lock of each table not held yet; the tables held now.

        A connection that fails loses every lock (PostgreSQL freed them): held becomes empty
        and the next call connects again.
        """
        try:
            connection = self._connection
            if connection is None:
                connection = self._connection = _connect(self.dsn, f"{self.daemon} locks")
            connection.execute("SELECT 1")  # the locks still held: the connection still lives
            for table in tables:
                if table not in self.held:
                    (taken,) = connection.execute(
                        "SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (f"lineproto croupier {table}",)
                    ).fetchone()
                    if taken:
                        log.info("shared tables: this daemon is the croupier of %s", table)
                        self.held.add(table)
        except Exception as exc:
            if self.held:
                log.warning("shared tables: lost the croupier's locks (%s) of %s", exc, ", ".join(sorted(self.held)))
            self.close()
        return set(self.held)

    def close(self) -> None:
        """Give up every lock (closing the connection frees them)."""
        self.held = set()
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except Exception:  # already broken: nothing more to free
                pass
