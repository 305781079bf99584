"""Read-only connections, so queries that only read never wait behind the writer's batch.

In WAL mode a reader sees the last committed state and neither blocks the
writer nor is blocked by it. Acknowledged changes are committed before their
reply, so a read that starts after a reply sees that change.

sqlite3 connections must not be used by two threads at once: a
:class:`ReadPool` lends each connection to one caller at a time and opens at
most ``size`` of them (a threads-engine daemon has a thread per client; they
share the few connections instead of holding one each).
"""

import sqlite3
import threading
from collections.abc import Callable
from typing import TypeVar

from .base import StorageError
from .writer import storage_error

T = TypeVar("T")

#: Read connections open at most at once (each keeps its own page cache).
DEFAULT_READERS = 4


def open_reader(path: str, busy_timeout: float = 5.0) -> sqlite3.Connection:
    """A connection to the database at ``path`` that refuses to write (``query_only``)."""
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=busy_timeout)
    connection.execute("PRAGMA query_only = ON")
    return connection


class ReadPool:
    """At most ``size`` read-only connections to one database file, lent out one caller at a time."""

    def __init__(self, path: str, busy_timeout: float = 5.0, size: int = DEFAULT_READERS):
        self.path = path
        self.busy_timeout = busy_timeout
        self._slots = threading.BoundedSemaphore(size)
        self._idle: list[sqlite3.Connection] = []
        self._lock = threading.Lock()  # guards _idle and _closed
        self._closed = False

    def open(self) -> sqlite3.Connection:
        """A new read-only connection of the caller's own (the writer thread keeps one)."""
        try:
            return open_reader(self.path, self.busy_timeout)
        except sqlite3.Error as exc:
            raise storage_error(exc) from None

    @staticmethod
    def run_on(connection: sqlite3.Connection, query: Callable[[sqlite3.Connection], T]) -> T:
        """``query(connection)`` in one read transaction: every statement sees the same committed state.

        A database error becomes a StorageError; any other exception passes through.
        """
        try:
            connection.execute("BEGIN")
            try:
                return query(connection)
            finally:
                if connection.in_transaction:
                    connection.execute("COMMIT")  # read-only: nothing to keep or undo
        except sqlite3.Error as exc:
            raise storage_error(exc) from None

    def run(self, query: Callable[[sqlite3.Connection], T]) -> T:
        """``query(connection)`` in a read transaction on a pooled connection; its result."""
        with self._slots:
            connection = self._take()
            try:
                result = self.run_on(connection, query)
            except StorageError:
                connection.close()  # it may be broken: the next caller opens a fresh one
                raise
            except BaseException:
                self._give_back(connection)
                raise
            self._give_back(connection)
            return result

    def close(self) -> None:
        """Close the idle connections; one still lent out is closed when it comes back."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def _take(self) -> sqlite3.Connection:
        with self._lock:
            if self._closed:
                raise StorageError("storage closed: the daemon is stopping")
            if self._idle:
                return self._idle.pop()
        return self.open()

    def _give_back(self, connection: sqlite3.Connection) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(connection)
                return
        connection.close()
