"""One writer thread that runs store operations in group-committed transactions.

Sessions hand an operation (a function of the connection) to the writer and
wait. The writer takes every operation queued so far, runs each inside its own
SAVEPOINT of one transaction, commits once (one fsync for the whole batch), and
only then wakes the waiters. So every acknowledged change is durable before its
reply, many sessions share each disk flush, and SQLite never sees two writers.

An operation that raises a domain error is rolled back to its savepoint alone;
a database error fails the whole batch (SQLite may already have rolled it back),
so no caller is told "done" for something that was not committed.

Besides operations, the writer runs *jobs* (:meth:`Writer.submit`): a whole
command that calls the store, run on the writer thread inside the batch's
transaction. Its store calls run at once, each in its own savepoint, and its
result is handed out only after COMMIT. An event loop hands store-bound
commands over this way: no thread is parked per waiting session, and each
command costs two thread hand-offs (loop to writer, writer to loop) instead of
four through a separate pool.

Reads (:meth:`Writer.read`) do not queue: given a :class:`~.readers.ReadPool`,
they run at once on a read-only connection and see the last committed state.
Inside a job they do so until the job's first change (the writer thread keeps
a read connection of its own); after it, on the writer's connection, so a job
sees its own changes. A job that changed nothing has its result handed out
as soon as it returns, without waiting for the batch's COMMIT: it saw only
committed state, and nothing of it needs to become durable.
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

#: What a batch hands out after COMMIT: (future, result, exception).
_Outcome = tuple[Future, object, "Exception | None"]


class _Job:
    """A queued :meth:`Writer.submit` job (told apart from operations in the queue)."""

    __slots__ = ("run",)

    def __init__(self, run):
        self.run = run


def storage_error(exc: sqlite3.Error) -> StorageError:
    """A StorageError (or StorageFull) describing a database failure."""
    text = str(exc)
    if isinstance(exc, sqlite3.OperationalError) and "full" in text:
        return StorageFull(f"storage full: {text}")
    return StorageError(f"storage unavailable: {text}")


class Writer:
    """Owns one sqlite3 connection; ``run(operation)`` blocks until committed."""

    def __init__(self, connection: sqlite3.Connection, name: str = "store-writer", readers=None):
        """``readers``: a :class:`~.readers.ReadPool` for :meth:`read`; without one reads queue as changes."""
        self._connection = connection
        self._readers = readers
        self._own_reader: sqlite3.Connection | None = None  # the writer thread's, opened on first use
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._closed = False
        self._broken: sqlite3.Error | None = None  # set when a job's store call failed the batch
        self._job_changed = False  # the running job has changed something: its result waits for COMMIT
        self._thread.start()

    def run(self, operation):
        """Run ``operation(connection)`` in a transaction; return its result once durable.

        Called by a job on the writer thread, it runs at once inside the job's
        batch (durable when the job's result is handed out).
        """
        if threading.get_ident() == self._thread.ident:
            return self._run_in_job(operation)
        if self._closed:
            raise StorageError("storage closed: the daemon is stopping")
        future: Future = Future()
        self._queue.put((operation, future))
        return future.result()

    def in_job(self) -> bool:
        """True on the writer thread: inside a job, whose store calls all commit together."""
        return threading.get_ident() == self._thread.ident

    def read(self, query):
        """Run ``query(connection)``, which only reads, on committed state, and return its result.

        It does not wait for the writer (see the module docstring); without a
        read pool (an in-memory database) it runs as :meth:`run` does.
        """
        if self._readers is None:
            return self.run(query)
        if threading.get_ident() != self._thread.ident:
            return self._readers.run(query)
        if self._job_changed:
            return self._run_in_job(query)  # the job must see what it changed
        if self._own_reader is None:
            self._own_reader = self._readers.open()
        try:
            return self._readers.run_on(self._own_reader, query)
        except StorageError:
            self._own_reader.close()
            self._own_reader = None
            raise

    def submit(self, job) -> Future:
        """Run ``job()`` on the writer thread in the next batch; a Future of its result, set after COMMIT.

        If the batch fails to commit, the future holds the StorageError
        instead, whatever the job returned: nothing it changed in the store is kept.
        If the job raises, its store calls that completed before are kept (as for a
        command that fails after a store call). A job that only read (no
        :meth:`run`) gets its outcome as soon as it returns. Cancelling the
        future before the writer reaches the job skips it; once running, it runs
        to the end.
        """
        if self._closed:
            raise StorageError("storage closed: the daemon is stopping")
        future: Future = Future()
        self._queue.put((_Job(job), future))
        return future

    def _run_in_job(self, operation):
        self._job_changed = True
        connection = self._connection
        try:
            connection.execute("SAVEPOINT job_operation")
            try:
                result = operation(connection)
            except sqlite3.Error:
                raise
            except Exception:  # a domain refusal: undo this operation only
                connection.execute("ROLLBACK TO job_operation")
                connection.execute("RELEASE job_operation")
                raise
            connection.execute("RELEASE job_operation")
            return result
        except sqlite3.Error as exc:
            self._broken = exc  # the batch cannot commit: _commit fails all of it
            raise storage_error(exc) from None

    def close(self) -> None:
        """Finish queued operations, then stop the thread and close the connection."""
        if not self._closed:
            self._closed = True
            self._queue.put(_STOP)
            self._thread.join()
            self._connection.close()
            if self._own_reader is not None:
                self._own_reader.close()

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
        outcomes: list[_Outcome] = []
        self._broken = None
        try:
            connection.execute("BEGIN IMMEDIATE")
            for operation, future in batch:
                if operation.__class__ is _Job:
                    if not future.set_running_or_notify_cancel():
                        continue  # cancelled while queued (its client left): nothing to run
                    self._job_changed = False
                    outcome: _Outcome
                    try:
                        outcome = (future, operation.run(), None)
                    except Exception as exc:
                        outcome = (future, None, exc)
                    if self._broken is not None:
                        raise self._broken
                    if self._job_changed:
                        outcomes.append(outcome)
                    else:
                        _settle(*outcome)  # it only read committed state: nothing to wait for
                    continue
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
                _settle(future, None, error)
            return
        except BaseException as exc:  # a bug in the writer itself: fail loudly, never hang callers
            log.exception("store writer failed")
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            for _, future in batch:
                _settle(future, None, StorageError(f"storage error: {exc!r}"))
            return
        for future, result, refusal in outcomes:
            _settle(future, result, refusal)


def _settle(future: Future, result, exc: BaseException | None) -> None:
    """Hand out an outcome, unless the future is already done (a cancelled job's)."""
    if future.done():
        return
    if exc is None:
        future.set_result(result)
    else:
        future.set_exception(exc)
