"""One writer thread that runs store operations in group-committed transactions.

Sessions hand an operation (a function of the connection) to the writer and
wait. The writer takes every operation queued so far, runs each inside its own
SAVEPOINT of one transaction, commits once (one fsync for the whole batch), and
only then wakes the waiters. So every acknowledged change is durable before its
reply, many sessions share each disk flush, and SQLite never sees two writers.

An operation that raises a domain error is rolled back to its savepoint alone;
a database error fails the whole batch (SQLite may already have rolled it back),
so no caller is told "done" for something that was not committed.

The writer is the same for every database: a :class:`Dialect` says how to begin a
write transaction, which exceptions are the database's, which of them mean "run
the batch again" (PostgreSQL's deadlock and serialization failures, between
daemons that lock the same rows) and when the connection is broken and must be
opened again (a database restart). SQLite's dialect retries nothing and never
reconnects.

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
from typing import Any

from .base import StorageError, StorageFull

log = logging.getLogger("lineproto.store")

#: Most operations committed together; bounds the latency one batch adds.
MAX_BATCH = 512

_STOP = object()

#: What a batch hands out after COMMIT: (future, result, exception).
_Outcome = tuple[Future, object, "Exception | None"]


class Dialect:
    """What the writer needs to know of its database; these are SQLite's answers."""

    #: The exceptions the database raises (anything else from an operation is a domain refusal).
    errors: tuple[type[Exception], ...] = (sqlite3.Error,)
    #: The statement that opens a write transaction.
    begin = "BEGIN IMMEDIATE"
    #: Times a failed batch is run again when :meth:`retryable` says so.
    retries = 0

    def storage_error(self, exc: Exception) -> StorageError:
        return storage_error(exc)  # type: ignore[arg-type]  # sqlite3.Error: the only errors listed

    def retryable(self, exc: Exception) -> bool:
        """True if running the whole batch again may succeed (its operations re-read their state)."""
        return False

    def broken(self, connection) -> bool:
        """True if ``connection`` cannot be used again (the writer then opens a new one)."""
        return False


SQLITE = Dialect()


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
    """Owns one database connection; ``run(operation)`` blocks until committed."""

    def __init__(self, connection, name: str = "store-writer", readers=None, dialect: Dialect = SQLITE, reconnect=None):
        """``readers``: a :class:`~.readers.ReadPool` for :meth:`read`; without one reads queue as changes.

        ``reconnect()`` opens a new connection when the dialect finds the old one broken
        (None: never, SQLite's file connection does not break that way).
        """
        self._connection = connection
        self._dialect = dialect
        self._reconnect = reconnect
        #: Batches committed and operations (store calls) in them, since start: group commit's measure.
        self.commits = 0
        self.operations = 0
        self.retried = 0
        self._readers = readers
        self._own_reader: Any = None  # the writer thread's read connection, opened on first use
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._closed = False
        self._broken: Exception | None = None  # set when a job's store call failed the batch
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
        errors = self._dialect.errors
        if self._broken is not None:  # an earlier call of this batch failed: it cannot commit
            raise self._dialect.storage_error(self._broken)
        try:
            connection.execute("SAVEPOINT job_operation")
            try:
                result = operation(connection)
            except errors:
                raise
            except Exception:  # a domain refusal: undo this operation only
                connection.execute("ROLLBACK TO job_operation")
                connection.execute("RELEASE job_operation")
                raise
            connection.execute("RELEASE job_operation")
            self.operations += 1
            return result
        except errors as exc:
            self._broken = exc  # the batch cannot commit: _commit fails all of it
            raise self._dialect.storage_error(exc) from None

    def close(self) -> None:
        """Finish queued operations, then stop the thread and close the connection."""
        if not self._closed:
            self._closed = True
            self._queue.put(_STOP)
            self._thread.join()
            if self._connection is not None:
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

    def _commit(self, batch, started: set[int] | None = None) -> None:
        """Run the batch in one transaction and hand out its outcomes after COMMIT.

        A failure the dialect calls retryable (a deadlock with another daemon's
        batch) runs the batch again, nothing of the failed attempt kept and every
        operation and job reading its state again: a batch of several items as
        one transaction per item (alone, an item holds no other item's locks
        while it waits, so batches of two daemons stop meeting in a cycle), a
        single item up to ``dialect.retries`` times. Jobs whose outcome was
        already handed out (they only read) are not run again.
        """
        if not batch:
            return
        dialect = self._dialect
        started = set() if started is None else started  # the jobs told they are running (told once)
        attempt = 0
        while True:
            try:
                outcomes = self._attempt(batch, started)
            except dialect.errors as exc:
                self._roll_back()
                if dialect.retryable(exc) and attempt < dialect.retries:
                    attempt += 1
                    self.retried += 1
                    pending = [item for item in batch if not item[1].done()]
                    log.info("transaction of %d operations failed (%s): running it again", len(pending), exc)
                    if len(pending) > 1:
                        for item in pending:
                            self._commit([item], started)
                        return
                    continue
                error = dialect.storage_error(exc)
                log.error("transaction of %d operations failed: %s", len(batch), exc)
                self._drop_if_broken()
                for _, future in batch:
                    _settle(future, None, error)
                return
            except BaseException as exc:  # a bug in the writer itself: fail loudly, never hang callers
                log.exception("store writer failed")
                self._roll_back()
                for _, future in batch:
                    _settle(future, None, StorageError(f"storage error: {exc!r}"))
                return
            self.commits += 1
            for future, result, refusal in outcomes:
                _settle(future, result, refusal)
            return

    def _attempt(self, batch, started: set[int]) -> list[_Outcome]:
        """One run of the batch, committed; the outcomes to hand out. Raises the database's error."""
        errors = self._dialect.errors
        if self._connection is None:
            self._connection = self._reconnect()  # raises the database's error while it is down
        connection = self._connection
        outcomes: list[_Outcome] = []
        self._broken = None
        connection.execute(self._dialect.begin)
        for operation, future in batch:
            if future.done():
                continue  # a job that only read, handed out in an earlier attempt
            if operation.__class__ is _Job:
                if id(future) not in started:
                    if not future.set_running_or_notify_cancel():
                        continue  # cancelled while queued (its client left): nothing to run
                    started.add(id(future))
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
            except errors:
                raise  # fails the batch
            except Exception as exc:  # a domain refusal: undo this operation only
                connection.execute("ROLLBACK TO operation")
                connection.execute("RELEASE operation")
                outcomes.append((future, None, exc))
                continue
            connection.execute("RELEASE operation")
            self.operations += 1
            outcomes.append((future, result, None))
        connection.execute("COMMIT")
        return outcomes

    def _roll_back(self) -> None:
        """End a failed transaction, if the connection is still in one (and still usable)."""
        connection = self._connection
        if connection is None:
            return
        try:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
        except self._dialect.errors:
            pass

    def _drop_if_broken(self) -> None:
        """After a failure: a broken connection is closed, and the next batch opens a new one."""
        connection = self._connection
        if connection is not None and self._reconnect is not None and self._dialect.broken(connection):
            log.warning("store connection lost: the next transaction opens a new one")
            self._connection = None
            try:
                connection.close()
            except self._dialect.errors:
                pass


def _settle(future: Future, result, exc: BaseException | None) -> None:
    """Hand out an outcome, unless the future is already done (a cancelled job's)."""
    if future.done():
        return
    if exc is None:
        future.set_result(result)
    else:
        future.set_exception(exc)
