"""The meters of a store: :class:`~lineproto.domain.meters.MeterRules` over the database.

The rules are the domain's; this module only keeps their facts in tables
(``schema.py``). Roster mode is on while ``meta`` holds ``roster_mode``. Each
roster row carries a state (free, held, read) so the next free meter is one
indexed query; ``reading_counts`` and ``meta.readings_total`` keep the counts,
so a READ's reply needs no count over all readings.

Held jobs across daemons (PostgreSQL, a :class:`Lease`): each job carries the
holding daemon's id and an expiry (the database's clock, so daemons on other
machines agree), which that daemon renews while it runs (:meth:`StoredMeters.renew`,
``postgres.LeaseKeeper``); the jobs of a daemon that died stop being renewed, and
the next renewal by any daemon, or the restarted one's start (``release_all``),
hands them back to the pool. SQLite serves one daemon: its start releases every job.
"""

from dataclasses import dataclass
from datetime import datetime

from ..domain.meters import MeterRules, RosterEntry, Submission, utc_now
from .audit import reading_content
from .locks import lock_key, skip_locked

_FREE, _HELD, _READ = 0, 1, 2


@dataclass(frozen=True)
class Lease:
    """Jobs held by one of several daemons: its id, and how long a job stays its own without renewal."""

    daemon: str
    seconds: float


class StoredMeters(MeterRules):
    """:class:`~lineproto.domain.meters.Meters` in the database: a change is one writer
    transaction, durable when it returns; a read runs on a read connection (``Writer.read``)."""

    def __init__(self, writer, rng=None, clock=None, audit=None, lease: Lease | None = None):
        """``audit``: the store's :class:`~.audit.AuditLog`, which each reading is appended to;
        ``lease``: this daemon's, when several share the database (the module docstring)."""
        super().__init__(rng, clock)
        self._writer = writer
        self._audit = audit
        self._lease = lease

    def _change(self, unit):
        return self._writer.run(lambda connection: unit(_SqlState(connection, self._audit, self._lease)))

    def _read(self, unit):
        return self._writer.read(lambda connection: unit(_SqlState(connection, self._audit, self._lease)))

    def renew(self) -> tuple[int, int]:
        """Renew this daemon's jobs and hand back those whose lease ran out: ``(renewed, released)``."""
        return self._change(lambda state: state.renew())


class _SqlState:
    """A :class:`~lineproto.domain.meters.MeterState` on one connection, inside one transaction."""

    __slots__ = ("_db", "_audit", "_lease")

    def __init__(self, connection, audit, lease: Lease | None = None):
        self._db = connection
        self._audit = audit
        self._lease = lease

    def _one(self, sql: str, *args):
        return self._db.execute(sql, args).fetchone()

    def roster_mode(self) -> bool:
        return self._one("SELECT 1 FROM meta WHERE key = 'roster_mode'") is not None

    def set_roster_mode(self, on: bool) -> None:
        if on:
            self._db.execute(
                "INSERT INTO meta (key, value) VALUES ('roster_mode', '1') "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
            )
        else:
            self._db.execute("DELETE FROM meta WHERE key = 'roster_mode'")

    def add_to_roster(self, meter: str) -> bool:
        if self._one("SELECT 1 FROM latest WHERE meter = ?", meter):
            state = _READ
        elif self._one("SELECT 1 FROM jobs WHERE meter = ?", meter):
            state = _HELD
        else:
            state = _FREE
        return (
            self._db.execute(
                "INSERT INTO roster (meter, state) VALUES (?, ?) ON CONFLICT (meter) DO NOTHING", (meter, state)
            ).rowcount
            > 0
        )

    def roster_counts(self) -> tuple[int, int]:
        size, unread = self._one(
            f"SELECT count(*), coalesce(sum(CASE WHEN state != {_READ} THEN 1 ELSE 0 END), 0) FROM roster"
        )
        return size, unread

    def roster_entries(self) -> list[RosterEntry]:
        rows = self._db.execute(
            f"SELECT r.meter, r.state = {_READ}, j.reader FROM roster r LEFT JOIN jobs j ON j.meter = r.meter "
            "ORDER BY r.position"
        ).fetchall()
        return [RosterEntry(meter, bool(read), holder) for meter, read, holder in rows]

    def drop_unread_from_roster(self) -> int:
        return self._db.execute(f"DELETE FROM roster WHERE state != {_READ}").rowcount

    def first_free(self) -> str | None:
        """The oldest free meter; on PostgreSQL locked, and one another daemon is handing out is skipped."""
        row = self._one(
            f"SELECT meter FROM roster WHERE state = {_FREE} ORDER BY position LIMIT 1{skip_locked(self._db)}"
        )
        return row[0] if row else None

    def is_known(self, meter: str) -> bool:
        return (
            self._one(
                "SELECT 1 FROM roster WHERE meter = ? UNION ALL SELECT 1 FROM issued WHERE meter = ?", meter, meter
            )
            is not None
        )

    def is_taken(self, meter: str) -> bool:
        return (
            self._one(
                "SELECT 1 FROM issued WHERE meter = ? UNION ALL SELECT 1 FROM latest WHERE meter = ?", meter, meter
            )
            is not None
        )

    def job_of(self, reader: str) -> str | None:
        row = self._one("SELECT meter FROM jobs WHERE reader = ?", reader)
        return row[0] if row else None

    def held_roster_meters(self) -> int:
        return int(self._one(f"SELECT count(*) FROM roster WHERE state = {_HELD}")[0])

    def jobs_held(self, prefix: str) -> int:
        return int(self._one("SELECT count(*) FROM jobs WHERE substr(reader, 1, ?) = ?", len(prefix), prefix)[0])

    def hold(self, reader: str, meter: str) -> None:
        self._db.execute("INSERT INTO issued (meter) VALUES (?) ON CONFLICT (meter) DO NOTHING", (meter,))
        self._db.execute(
            "INSERT INTO jobs (reader, meter, since) VALUES (?, ?, ?)",
            (reader, meter, utc_now().isoformat(timespec="seconds")),
        )
        self._db.execute(f"UPDATE roster SET state = {_HELD} WHERE meter = ? AND state = {_FREE}", (meter,))
        if self._lease is not None:
            self._db.execute(
                "UPDATE jobs SET daemon = ?, expires = now() + make_interval(secs => ?) WHERE reader = ?",
                (self._lease.daemon, self._lease.seconds, reader),
            )

    def drop_job(self, reader: str) -> str | None:
        meter = self.job_of(reader)
        if meter is not None:
            self._db.execute("DELETE FROM jobs WHERE reader = ?", (reader,))
            self._free(meter)
        return meter

    def drop_holder(self, meter: str) -> None:
        if self._db.execute("DELETE FROM jobs WHERE meter = ?", (meter,)).rowcount:
            self._free(meter)

    def drop_all_jobs(self) -> int:
        """Every job this daemon's sessions hold, and (several daemons) every one whose lease ran out.

        At start no session of this daemon is left: with one daemon that is every job; with a
        lease, the other daemons' live jobs stay theirs.
        """
        if self._lease is not None:
            return self._drop_expired(self._lease.daemon)
        self._db.execute(f"UPDATE roster SET state = {_FREE} WHERE state = {_HELD}")
        return self._db.execute("DELETE FROM jobs").rowcount

    def renew(self) -> tuple[int, int]:
        """This daemon's jobs renewed for another lease; the expired ones (a dead daemon's) released."""
        assert self._lease is not None
        renewed = self._db.execute(
            "UPDATE jobs SET expires = now() + make_interval(secs => ?) WHERE daemon = ?",
            (self._lease.seconds, self._lease.daemon),
        ).rowcount
        return renewed, self._drop_expired()

    def _drop_expired(self, daemon: str | None = None) -> int:
        """Release the jobs whose lease ran out, and those of ``daemon`` (this one) if given."""
        meters = self._db.execute(
            "DELETE FROM jobs WHERE expires < now() OR daemon = ? RETURNING meter", (daemon,)
        ).fetchall()
        for (meter,) in meters:
            self._free(meter)
        return len(meters)

    def record(self, submission: Submission) -> None:
        meter, reader = submission.meter, submission.reader
        lock_key(self._db, f"meter {meter}")  # two daemons recording one meter: one after the other
        previous = self._one("SELECT reader FROM latest WHERE meter = ?", meter)
        if previous is None:
            self._db.execute(
                "UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE key = 'readings_total'"
            )
        else:
            self._db.execute("UPDATE reading_counts SET mine = mine - 1 WHERE reader = ?", previous)
        self._db.execute(
            "INSERT INTO reading_counts (reader, mine) VALUES (?, 1) "
            "ON CONFLICT (reader) DO UPDATE SET mine = reading_counts.mine + 1",
            (reader,),
        )
        row = (meter, submission.reading, submission.reason, submission.when.isoformat(), reader)
        (submission_id,) = self._one(
            "INSERT INTO submissions (meter, reading, reason, at, reader) VALUES (?, ?, ?, ?, ?) RETURNING id", *row
        )
        self._audit.append(self._db, "reading", reading_content((submission_id, *row)))
        self._db.execute(
            "INSERT INTO latest (meter, submission, reader) VALUES (?, ?, ?) "
            "ON CONFLICT (meter) DO UPDATE SET submission = excluded.submission, reader = excluded.reader",
            (meter, submission_id, reader),
        )
        self._db.execute(f"UPDATE roster SET state = {_READ} WHERE meter = ?", (meter,))

    def counts(self, reader: str) -> tuple[int, int]:
        mine = self._one("SELECT mine FROM reading_counts WHERE reader = ?", reader)
        total = self._one("SELECT value FROM meta WHERE key = 'readings_total'")
        return (mine[0] if mine else 0), int(total[0])

    def history(self) -> list[Submission]:
        rows = self._db.execute("SELECT meter, reading, reason, at, reader FROM submissions ORDER BY id")
        return [_submission(row) for row in rows]

    def latest(self) -> list[Submission]:
        rows = self._db.execute(
            "SELECT s.meter, s.reading, s.reason, s.at, s.reader FROM latest l "
            "JOIN submissions s ON s.id = l.submission ORDER BY l.meter"
        )
        return [_submission(row) for row in rows]

    def _free(self, meter: str) -> None:
        """A held roster meter nobody holds now is free again (a read one stays read)."""
        self._db.execute(f"UPDATE roster SET state = {_FREE} WHERE meter = ? AND state = {_HELD}", (meter,))


def _submission(row) -> Submission:
    meter, reading, reason, at, reader = row
    return Submission(meter, reading, reason, datetime.fromisoformat(at), reader)
