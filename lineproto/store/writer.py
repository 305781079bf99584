"""One writer thread that runs store operations in group-committed transactions.

Sessions hand an operation (a function of the connection) to the writer and
wait. The writer takes every operation queued so far, runs each inside its own
SAVEPOINT of one transaction, commits once (one fsync for the whole batch), and
only then wakes the waiters. So every acknowledged change is durable before its
reply, many sessions share each disk flush, and SQLite never sees two writers.

An operation that raises a domain error is rolled back to its savepoint alone;
a database error fails the whole batch (SQLite may already have rolled it back),
so no caller is told "done" for something that was not committed.
"""

import logging
import queue
import sqlite3
import threading
from concurrent.futures import Future

from .base import StorageError, StorageFull

log = logging.getLogger("lineproto.store")

#: Most operations committed together; bounds the latency one batch adds.
MAX_BATCH = 512

_STOP = object()


def storage_error(exc: sqlite3.Error) -> StorageError:
    """A StorageError (or StorageFull) describing a database failure."""
    text = str(exc)
    if isinstance(exc, sqlite3.OperationalError) and "full" in text:
        return StorageFull(f"storage full: {text}")
    return StorageError(f"storage unavailable: {text}")


class Writer:
    """Owns one sqlite3 connection; ``run(operation)`` blocks until committed."""

    def __init__(self, connection: sqlite3.Connection, name: str = "store-writer"):
        self._connection = connection
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._closed = False
        self._thread.start()

    def run(self, operation):
        """Run ``operation(connection)`` in a transaction; return its result once durable."""
        if self._closed:
            raise StorageError("storage closed: the daemon is stopping")
        future: Future = Future()
        self._queue.put((operation, future))
        return future.result()

    def close(self) -> None:
        """Finish queued operations, then stop the thread and close the connection."""
        if not self._closed:
            self._closed = True
            self._queue.put(_STOP)
            self._thread.join()
            self._connection.close()

    def _loop(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = _STOP in batch
            self._commit([item for item in batch if item is not _STOP])
            if stop:
                return

    def _commit(self, batch) -> None:
        if not batch:
            return
        connection = self._connection
        outcomes = []  # (future, result, exception)
        try:
            connection.execute("BEGIN IMMEDIATE")
            for operation, future in batch:
                connection.execute("SAVEPOINT operation")
                try:
                    result = operation(connection)
                except sqlite3.Error:
                    raise  # fails the batch
                except Exception as exc:  # a domain refusal: undo this operation only
                    connection.execute("ROLLBACK TO operation")
                    connection.execute("RELEASE operation")
                    outcomes.append((future, None, exc))
                    continue
                connection.execute("RELEASE operation")
                outcomes.append((future, result, None))
            connection.execute("COMMIT")
        except sqlite3.Error as exc:
            error = storage_error(exc)
            log.error("transaction of %d operations failed: %s", len(batch), exc)
            if connection.in_transaction:
                try:
                    connection.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            for _, future in batch:
                future.set_exception(error)
            return
        except BaseException as exc:  # a bug in the writer itself: fail loudly, never hang callers
            log.exception("store writer failed")
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            for _, future in batch:
                if not future.done():
                    future.set_exception(StorageError(f"storage error: {exc!r}"))
            return
        for future, result, exc in outcomes:
            if exc is None:
                future.set_result(result)
            else:
                future.set_exception(exc)
