"""Meter readings: who reads which meter, what they read, and the end-of-day dump.

Pure domain logic: no sockets, no reply codes.  The only I/O is :func:`load_roster`,
which reads a roster file whose path it is given.

Two ways to run a :class:`MeterManager`:

* **roster mode** -- a fixed list of meter ids (from a CSV roster) is handed out
  oldest first; when every meter has been read, :meth:`MeterManager.next_job`
  returns ``None`` ("all jobs done").
* **demo mode** -- there is no roster; every job is a freshly invented meter id
  (``G`` + 5 digits or ``E`` + 5-6 digits) that has never been handed out before.

All state lives on the instance and every check-and-insert happens under the
instance's one lock, so several connection threads may share one manager.
"""

from __future__ import annotations

import csv
import re
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from heapq import heappop, heappush
from typing import Callable, Iterable, Iterator

__all__ = [
    "MAX_ROSTER_ID_LENGTH",
    "MeterError",
    "BadMeterId",
    "UnknownMeter",
    "BadReading",
    "RosterError",
    "Submission",
    "validate_meter_id",
    "validate_roster_id",
    "parse_roster",
    "clean_roster_ids",
    "load_roster",
    "parse_when",
    "format_dump_line",
    "MeterManager",
    "as_utc",
    "canonical_meter_id",
    "check_reader",
    "check_reading",
    "invent_meter_id",
    "utc_now",
]

MAX_ROSTER_ID_LENGTH = 32

# Strict meter-id format (what demo mode invents): G + 5 digits, or E + 5-6 digits.
_STRICT_ID = re.compile(r"(?:[Gg][0-9]{5}|[Ee][0-9]{5,6})")
# Loose roster-id format: any token of 1-32 characters from [A-Za-z0-9_-].
_ROSTER_ID = re.compile(r"[A-Za-z0-9_-]{1,%d}" % MAX_ROSTER_ID_LENGTH)
# Extended ISO-8601 date and time (at least hours and minutes), optional seconds,
# fraction and zone; checked before handing the text to datetime.fromisoformat.
_WHEN = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}"
    r"(?::[0-9]{2}(?:\.[0-9]{1,6})?)?"
    r"(?:Z|[+-][0-9]{2}:?[0-9]{2})?",
    re.IGNORECASE,
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_GIVE_UP_AFTER = 10_000  # demo mode: random draws before admitting the id space is full


# --------------------------------------------------------------------------- errors


class MeterError(Exception):
    """Base class of every error this module raises on purpose."""


class BadMeterId(MeterError, ValueError):
    """A meter id that is not ``G`` + 5 digits or ``E`` + 5-6 digits."""


class UnknownMeter(MeterError):
    """The meter does not exist (not in the roster / never handed out)."""


class BadReading(MeterError):
    """The reading, the reason or the time of a submission is not acceptable."""


class RosterError(MeterError, ValueError):
    """A roster holds a bad meter id.  ``line`` is the 1-based line (or position)."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


# --------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class Submission:
    """One submission: a reading (``reason == ""``) or a reason why there is none.

    ``when`` is a timezone-aware UTC datetime when made by :class:`MeterManager`
    (a naive time given to it is taken as UTC wall-clock time).
    """

    meter: str
    reading: int | None
    reason: str
    when: datetime
    reader: str


def canonical_meter_id(text: str) -> str:
    """Strip, and upper-case the letter of an id in the strict G/E format."""
    text = text.strip()
    if _STRICT_ID.fullmatch(text):
        return text[0].upper() + text[1:]
    return text


def validate_meter_id(text: str) -> str:
    """Return ``text`` as a canonical strict meter id (``G12345``, ``E123456``).

    Surrounding blanks are dropped and the letter is upper-cased.  Raises
    :class:`BadMeterId` on anything else.
    """
    if not isinstance(text, str):
        raise BadMeterId(f"a meter id must be text, not {type(text).__name__}")
    stripped = text.strip()
    if not _STRICT_ID.fullmatch(stripped):
        raise BadMeterId(
            f"bad meter id {text!r}: expected G and 5 digits, or E and 5 or 6 digits"
        )
    return canonical_meter_id(stripped)


def validate_roster_id(text: str) -> str:
    """Return ``text`` as a canonical roster id, or raise :class:`BadMeterId`.

    Roster ids are looser than strict ids: any token of 1-32 characters from
    ``[A-Za-z0-9_-]``.  Ids in the strict G/E format get their letter upper-cased.
    """
    if not isinstance(text, str):
        raise BadMeterId(f"a meter id must be text, not {type(text).__name__}")
    stripped = text.strip()
    if not stripped:
        raise BadMeterId("empty meter id")
    if len(stripped) > MAX_ROSTER_ID_LENGTH:
        raise BadMeterId(
            f"meter id {stripped[:40]!r}... is longer than {MAX_ROSTER_ID_LENGTH} characters"
        )
    if not _ROSTER_ID.fullmatch(stripped):
        raise BadMeterId(
            f"bad meter id {stripped!r}: only letters, digits, '_' and '-' are allowed"
        )
    return canonical_meter_id(stripped)


# --------------------------------------------------------------------------- rosters


def parse_roster(lines: Iterable[str], source: str = "roster") -> list[str]:
    """Parse roster CSV text (an iterable of lines) into meter ids in file order.

    The first column is the meter id; other columns are ignored.  A first row whose
    first cell is ``meter`` (any case) is a header and skipped.  Blank lines are
    skipped; a repeated id is ignored (the first occurrence keeps its place).
    Raises :class:`RosterError` naming ``source`` and the line of a bad id.
    """
    ids: list[str] = []
    seen: set[str] = set()
    first_row = True
    reader = csv.reader(_strip_bom(lines))
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        cell = row[0].strip()
        if first_row and cell.lower() == "meter":
            first_row = False
            continue
        first_row = False
        try:
            meter = validate_roster_id(cell)
        except BadMeterId as err:
            raise RosterError(f"{source} line {line}: {err}", line=line) from None
        if meter not in seen:
            seen.add(meter)
            ids.append(meter)
    return ids


def _strip_bom(lines: Iterable[str]) -> Iterator[str]:
    first = True
    for text in lines:
        if first:
            text = text.removeprefix("\ufeff")
            first = False
        yield text


def clean_roster_ids(ids: Iterable[str]) -> list[str]:
    """Every id validated (canonical form), in order; RosterError with the 1-based position on a bad one."""
    cleaned = []
    for position, text in enumerate(ids, start=1):
        try:
            cleaned.append(validate_roster_id(text))
        except BadMeterId as err:
            raise RosterError(f"roster entry {position}: {err}", line=position) from None
    return cleaned


def load_roster(path) -> list[str]:
    """Read the roster CSV file at ``path`` (UTF-8); see :func:`parse_roster`."""
    with open(path, encoding="utf-8-sig", newline="") as file:
        return parse_roster(file, source=str(path))


# --------------------------------------------------------------------------- times


def as_utc(when: datetime) -> datetime:
    """Aware datetimes are converted to UTC; naive ones are taken as UTC."""
    if when.tzinfo is None or when.tzinfo.utcoffset(when) is None:
        return when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc)


def parse_when(text: str) -> datetime:
    """Parse an ISO-8601 date and time into an aware UTC datetime.

    Accepts ``2026-11-22T09:15``, ``2026-11-22T09:15:30Z``,
    ``2026-11-22T09:15+01:00`` and the like; a time without a zone is taken as UTC.
    Raises :class:`BadReading` on anything else.
    """
    if not isinstance(text, str):
        raise BadReading(f"a time must be text, not {type(text).__name__}")
    stripped = text.strip()
    if not _WHEN.fullmatch(stripped):
        raise BadReading(
            f"bad time {text[:40]!r}: expected ISO-8601 such as 2026-11-22T09:15 "
            "or 2026-11-22T09:15:30Z"
        )
    try:
        return as_utc(datetime.fromisoformat(stripped.upper()))
    except (ValueError, OverflowError) as err:
        raise BadReading(f"bad time {stripped!r}: {err}") from None


# --------------------------------------------------------------------------- dump


def format_dump_line(submission: Submission) -> str:
    """``meter=reading@YYYY-MM-DDTHH:MM[reason]reader``, the time in UTC.

    A missing reading is written ``-1`` with the reason in the brackets; a reading
    has empty brackets.
    """
    reading = -1 if submission.reading is None else submission.reading
    when = as_utc(submission.when).strftime("%Y-%m-%dT%H:%M")
    return f"{submission.meter}={reading}@{when}[{submission.reason}]{submission.reader}"


# --------------------------------------------------------------------------- manager


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def check_reader(reader: str) -> str:
    if not isinstance(reader, str) or not reader or reader != reader.strip() \
            or _CONTROL.search(reader) or any(ch.isspace() for ch in reader):
        raise ValueError(f"bad reader name {reader!r}: a non-empty username without blanks")
    return reader


def check_reading(reading: int | None, reason: str) -> tuple[int | None, str]:
    """Validate a reading/reason pair; return it normalized (reason stripped)."""
    if not isinstance(reason, str):
        raise BadReading(f"the reason must be text, not {type(reason).__name__}")
    reason = reason.strip()
    if _CONTROL.search(reason):
        raise BadReading("the reason must be one line of text without control characters")
    if reading is None:
        if not reason:
            raise BadReading("no reading given: a reason why is required")
        return None, reason
    if isinstance(reading, bool) or not isinstance(reading, int):
        raise BadReading(f"a reading must be a whole number, not {reading!r}")
    if reading < 0:
        raise BadReading(f"a reading cannot be negative (got {reading})")
    if reason:
        raise BadReading("give either a reading or a reason, not both")
    return int(reading), ""


def invent_meter_id(rng, taken: Callable[[str], bool]) -> str:
    """A new demo meter id (``G`` + 5 digits or ``E`` + 5-6 digits) for which ``taken`` is false."""
    for _ in range(_GIVE_UP_AFTER):
        if rng.choice("GE") == "G":
            meter = f"G{rng.randrange(10**5):05d}"
        else:
            digits = rng.choice((5, 6))
            meter = f"E{rng.randrange(10**digits):0{digits}d}"
        if not taken(meter):
            return meter
    raise MeterError("could not invent a new meter id: nearly every id is taken")


class MeterManager:
    """Hands out meter-reading jobs and records the readings.

    The storage interface -- the public methods a later persistent (e.g. SQLite)
    store implements with the same signatures and meaning -- is:
    :meth:`next_job`, :meth:`release`, :meth:`submit`, :meth:`status`,
    :meth:`dump` and :meth:`held`.  The other public methods (:meth:`history`,
    :meth:`roster_size`, :meth:`remaining`, :meth:`load_roster`) are conveniences.

    State, all on the instance and guarded by ``self._lock``:

    * ``_roster`` -- list of roster meter ids in order (``None`` in demo mode);
    * ``_held`` -- reader -> the meter they hold;
    * ``_holder`` -- meter -> the reader holding it;
    * ``_latest`` -- meter -> its current (latest) :class:`Submission`;
    * ``_history`` -- every :class:`Submission`, in order;
    * derived indexes: ``_roster_index`` (meter -> roster position), ``_free``
      (heap of roster positions that may be free), ``_issued`` (ids ever handed
      out) and ``_mine`` (reader -> number of current submissions).
    """

    def __init__(
        self,
        roster: Iterable[str] | None = None,
        rng=None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._rng = rng if rng is not None else secrets.SystemRandom()
        self._clock = clock if clock is not None else utc_now
        self._roster: list[str] | None = None
        self._roster_index: dict[str, int] = {}
        self._free: list[int] = []
        self._issued: set[str] = set()
        self._held: dict[str, str] = {}
        self._holder: dict[str, str] = {}
        self._latest: dict[str, Submission] = {}
        self._history: list[Submission] = []
        self._mine: dict[str, int] = {}
        if roster is not None:
            self.load_roster(roster)

    # ---------------------------------------------------------------- roster

    def load_roster(self, ids: Iterable[str]) -> int:
        """Append new meter ids to the roster, in order; return how many were new.

        Ids already in the roster are ignored; existing readings and holds stay.
        On a demo-mode manager this switches it to roster mode (meters handed out
        before stay valid for submissions).  Raises :class:`RosterError` (with the
        1-based position) on a bad id, adding nothing.
        """
        cleaned = clean_roster_ids(ids)
        with self._lock:
            if self._roster is None:
                self._roster = []
            added = 0
            for meter in cleaned:
                if meter in self._roster_index:
                    continue
                index = len(self._roster)
                self._roster.append(meter)
                self._roster_index[meter] = index
                if meter not in self._latest and meter not in self._holder:
                    heappush(self._free, index)
                added += 1
            return added

    def roster_size(self) -> int | None:
        """Number of meters in the roster; ``None`` in demo mode."""
        with self._lock:
            return None if self._roster is None else len(self._roster)

    def remaining(self) -> int | None:
        """Roster meters not read yet (held ones included); ``None`` in demo mode."""
        with self._lock:
            if self._roster is None:
                return None
            return sum(1 for meter in self._roster if meter not in self._latest)

    # ---------------------------------------------------------------- jobs

    def next_job(self, reader: str) -> str | None:
        """Give ``reader`` a meter to read, or ``None`` when all jobs are done.

        A reader who still holds an unsubmitted job gets that same meter again.
        """
        check_reader(reader)
        with self._lock:
            current = self._held.get(reader)
            if current is not None:
                return current
            if self._roster is not None:
                meter = self._pop_free_roster_meter()
            else:
                meter = self._invent_meter()
            if meter is None:
                return None
            self._issued.add(meter)
            self._held[reader] = meter
            self._holder[meter] = reader
            return meter

    def _pop_free_roster_meter(self) -> str | None:
        # Lazy deletion: an index may be stale (read or held since it was pushed).
        assert self._roster is not None
        while self._free:
            meter = self._roster[heappop(self._free)]
            if meter not in self._latest and meter not in self._holder:
                return meter
        return None

    def _invent_meter(self) -> str:
        return invent_meter_id(self._rng, lambda meter: meter in self._issued or meter in self._latest)

    def held(self, reader: str) -> str | None:
        """The meter ``reader`` holds and has not submitted, if any."""
        with self._lock:
            return self._held.get(reader)

    def release(self, reader: str) -> str | None:
        """End ``reader``'s hold (their session ended); return the meter released.

        In roster mode an unread released meter goes back to the pool at its roster
        place; in demo mode it is simply no longer held.
        """
        with self._lock:
            meter = self._held.pop(reader, None)
            if meter is None:
                return None
            del self._holder[meter]
            index = self._roster_index.get(meter)
            if index is not None and meter not in self._latest:
                heappush(self._free, index)
            return meter

    # ---------------------------------------------------------------- readings

    def submit(
        self,
        reader: str,
        meter: str,
        reading: int | None,
        reason: str = "",
        when: datetime | None = None,
    ) -> tuple[int, int]:
        """Record ``reader``'s reading (or reason) for ``meter``; return :meth:`status`.

        ``reading`` is an ``int >= 0`` (not a bool) with an empty reason, or
        ``None`` with a non-blank reason.  ``when`` defaults to the clock's now;
        naive times are taken as UTC.  A later submission for a meter supersedes
        the earlier one in counts and dump (the history keeps both).  Whoever holds
        the meter -- this reader or another -- no longer holds it afterwards.

        Raises :class:`BadReading` or :class:`UnknownMeter`.
        """
        check_reader(reader)
        reading, reason = check_reading(reading, reason)
        if when is None:
            when = self._clock()
        if not isinstance(when, datetime):
            raise BadReading(f"the time must be a datetime, not {type(when).__name__}")
        try:
            when = as_utc(when)
        except OverflowError:
            raise BadReading(f"the time {when.isoformat()} is out of range in UTC") from None
        if not isinstance(meter, str):
            raise UnknownMeter(f"a meter id must be text, not {type(meter).__name__}")
        key = canonical_meter_id(meter)
        with self._lock:
            if key not in self._roster_index and key not in self._issued:
                if self._roster is None:
                    raise UnknownMeter(f"meter {meter.strip()[:40]!r} was never handed out")
                raise UnknownMeter(f"meter {meter.strip()[:40]!r} is not in the roster")
            submission = Submission(key, reading, reason, when, reader)
            previous = self._latest.get(key)
            if previous is not None:
                self._mine[previous.reader] -= 1
            self._mine[reader] = self._mine.get(reader, 0) + 1
            self._latest[key] = submission
            self._history.append(submission)
            holder = self._holder.pop(key, None)
            if holder is not None:
                del self._held[holder]
            return self._mine.get(reader, 0), len(self._latest)

    def status(self, reader: str) -> tuple[int, int]:
        """``(mine, total)``: meters whose current submission is ``reader``'s, and
        the number of distinct meters with a submission."""
        with self._lock:
            return self._mine.get(reader, 0), len(self._latest)

    def history(self) -> list[Submission]:
        """Every submission in the order made (a copy)."""
        with self._lock:
            return list(self._history)

    def dump(self) -> list[str]:
        """Every meter's current submission as a dump line, sorted by meter id."""
        with self._lock:
            current = [self._latest[meter] for meter in sorted(self._latest)]
        return [format_dump_line(submission) for submission in current]
