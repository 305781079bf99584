"""Meter readings: who reads which meter, what they read, and the end-of-day dump.

Pure domain logic: no sockets, no reply codes.  The only I/O is :func:`load_roster`,
which reads a roster file whose path it is given.

Two modes:

* **roster mode** -- a list of meter ids (from a CSV roster) is handed out
  oldest first; when every meter has been read, :meth:`Meters.next_job`
  returns ``None`` ("all jobs done").
* **demo mode** -- there is no roster; every job is a freshly invented meter id
  (``G`` + 5 digits or ``E`` + 5-6 digits) that has never been handed out before.

:class:`Meters` is the interface the commands use. Its rules (validation, error
texts, hand-out order, holds and releases) are written once, in
:class:`MeterRules`, over a :class:`MeterState` that only keeps the facts. Two
implementations differ only in where those facts live: :class:`MeterManager`
keeps them in memory (this module), the store's ``meters`` in its database
(``lineproto.store.meters``).
"""

from __future__ import annotations

import csv
import os
import re
import secrets
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from heapq import heappop, heappush
from typing import NamedTuple, Protocol, TypeVar

__all__ = [
    "MAX_ROSTER_ID_LENGTH",
    "BadDumpLine",
    "BadMeterId",
    "BadReading",
    "MeterError",
    "MeterManager",
    "MeterRules",
    "MeterState",
    "Meters",
    "Rng",
    "RosterEntry",
    "RosterError",
    "Submission",
    "UnknownMeter",
    "as_utc",
    "canonical_meter_id",
    "check_reader",
    "check_reading",
    "check_when",
    "clean_roster_ids",
    "format_dump_line",
    "invent_meter_id",
    "load_roster",
    "parse_dump_line",
    "parse_roster",
    "parse_when",
    "utc_now",
    "validate_meter_id",
    "validate_roster_id",
]

MAX_ROSTER_ID_LENGTH = 32

# Strict meter-id format (what demo mode invents): G + 5 digits, or E + 5, 6 or 9 digits.
_STRICT_ID = re.compile(r"(?:[Gg][0-9]{5}|[Ee][0-9]{5,6}|[Ee][0-9]{9})")
# Loose roster-id format: any token of 1-32 characters from [A-Za-z0-9_-].
_ROSTER_ID_TEXT = rf"[A-Za-z0-9_-]{{1,{MAX_ROSTER_ID_LENGTH}}}"
_ROSTER_ID = re.compile(_ROSTER_ID_TEXT)
# Extended ISO-8601 date and time (at least hours and minutes), optional seconds,
# fraction and zone; checked before handing the text to datetime.fromisoformat.
_WHEN = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}"
    r"(?::[0-9]{2}(?:\.[0-9]{1,6})?)?"
    r"(?:Z|[+-][0-9]{2}:?[0-9]{2})?",
    re.IGNORECASE,
)
#: Characters a reason or reader name may not hold: C0 and C1 controls, DEL, and the line and
#: paragraph separators -- everything str.splitlines() breaks a line on. A dump line escapes them
#: (a reading stored by an older version may hold some).
_NOT_ONE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_GIVE_UP_AFTER = 10_000  # demo mode: random draws before admitting the id space is full
T = TypeVar("T")


# --------------------------------------------------------------------------- errors


class MeterError(Exception):
    """Base class of every error this module raises on purpose."""


class BadMeterId(MeterError, ValueError):
    """A meter id that is not ``G`` + 5 digits or ``E`` + 5-6 digits."""


class UnknownMeter(MeterError):
    """The meter does not exist (not in the roster / never handed out)."""


class BadReading(MeterError):
    """The reading, the reason or the time of a submission is not acceptable."""


class JobsHeld(MeterError):
    """No meter is free, but ``count`` unread ones are held by other readers' sessions (not all done)."""

    def __init__(self, count: int) -> None:
        super().__init__(
            f"{count} unread meter{'s are' if count != 1 else ' is'} held by other readers; try again later"
        )
        self.count = count


class TooManyJobs(MeterError):
    """The reader's account already holds its most jobs, on other connections."""

    def __init__(self, count: int) -> None:
        super().__init__(f"you hold {count} jobs on other connections, the most one reader may; read one first")
        self.count = count


class BadDumpLine(MeterError, ValueError):
    """Text that :func:`format_dump_line` never writes."""


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


class RosterEntry(NamedTuple):
    """One roster meter as :meth:`Meters.roster` lists it: read or not, and who holds it now."""

    meter: str
    read: bool
    holder: str | None  # the name its job is held under (the daemon's are ``user#session``)


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
        raise BadMeterId(f"bad meter id {text!r}: expected G and 5 digits, or E and 5, 6 or 9 digits")
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
        raise BadMeterId(f"meter id {stripped[:40]!r}... is longer than {MAX_ROSTER_ID_LENGTH} characters")
    if not _ROSTER_ID.fullmatch(stripped):
        raise BadMeterId(f"bad meter id {stripped!r}: only letters, digits, '_' and '-' are allowed")
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


def load_roster(path: str | os.PathLike[str]) -> list[str]:
    """Read the roster CSV file at ``path`` (UTF-8); see :func:`parse_roster`."""
    with open(path, encoding="utf-8-sig", newline="") as file:
        return parse_roster(file, source=str(path))


# --------------------------------------------------------------------------- times


def as_utc(when: datetime) -> datetime:
    """Aware datetimes are converted to UTC; naive ones are taken as UTC."""
    if when.tzinfo is None or when.tzinfo.utcoffset(when) is None:
        return when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


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
        raise BadReading(f"bad time {text[:40]!r}: expected ISO-8601 such as 2026-11-22T09:15 or 2026-11-22T09:15:30Z")
    try:
        return as_utc(datetime.fromisoformat(stripped.upper()))
    except (ValueError, OverflowError) as err:
        raise BadReading(f"bad time {stripped!r}: {err}") from None


# --------------------------------------------------------------------------- dump

# Escapes of a dump line's reason and reader: every one is at most 4 characters, so a dump line of
# a 200-character reason still fits one reply line. The table writes them, the pattern reads them.
_ESCAPES = {
    "\\": "\\\\",
    "]": "\\]",
    "\u2028": "\\L",
    "\u2029": "\\P",
    **{chr(code): f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))},
}
_ESCAPE_TABLE = str.maketrans(_ESCAPES)
_UNESCAPES = {escape: char for char, escape in _ESCAPES.items()}
_ESCAPE = r"\\(?:[\\\]LP]|x(?:[01][0-9a-f]|7f|[89][0-9a-f]))"
_ESCAPED_TEXT = r"(?:[^\\\]\x00-\x1f\x7f-\x9f\u2028\u2029]|" + _ESCAPE + ")"
_DUMP_LINE = re.compile(
    rf"(?P<meter>{_ROSTER_ID_TEXT})=(?P<reading>-1|0|[1-9][0-9]*)"
    r"@(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})T(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2})"
    rf"\[(?P<reason>{_ESCAPED_TEXT}*)\](?P<reader>{_ESCAPED_TEXT}+)"
)
_ESCAPE_SEQUENCE = re.compile(_ESCAPE)


def format_dump_line(submission: Submission) -> str:
    """``meter=reading@YYYY-MM-DDTHH:MM[reason]reader``, the time in UTC.

    A missing reading is written ``-1`` with the reason in the brackets; a reading
    has empty brackets. In the reason and the reader ``\\`` is written ``\\\\``,
    ``]`` ``\\]``, U+2028 ``\\L``, U+2029 ``\\P`` and every other control character
    ``\\xHH`` (two lower-case hex digits), so the line is one line for any reader of
    lines and :func:`parse_dump_line` gives the submission back.
    """
    reading = -1 if submission.reading is None else submission.reading
    when = as_utc(submission.when)
    return (
        f"{submission.meter}={reading}@{when.year:04d}-{when.month:02d}-{when.day:02d}"
        f"T{when.hour:02d}:{when.minute:02d}[{submission.reason.translate(_ESCAPE_TABLE)}]"
        f"{submission.reader.translate(_ESCAPE_TABLE)}"
    )


def parse_dump_line(line: str) -> Submission:
    """The :class:`Submission` a dump line shows: its time in UTC, to the minute.

    Exactly the lines :func:`format_dump_line` writes are accepted (the grammar
    is in docs/PROTOCOL.md, DUMP); anything else raises :class:`BadDumpLine`.
    """
    match = _DUMP_LINE.fullmatch(line) if isinstance(line, str) else None
    if match is None:
        raise BadDumpLine(f"not a dump line: {str(line)[:80]!r}")
    reading = int(match["reading"])
    reason = _unescape(match["reason"])
    if (reading < 0) != bool(reason):
        raise BadDumpLine(f"a dump line has either a reading or a reason: {line[:80]!r}")
    try:
        when = datetime(
            int(match["year"]),
            int(match["month"]),
            int(match["day"]),
            int(match["hour"]),
            int(match["minute"]),
            tzinfo=UTC,
        )
    except ValueError as err:
        raise BadDumpLine(f"bad time in dump line {line[:80]!r}: {err}") from None
    return Submission(match["meter"], None if reading < 0 else reading, reason, when, _unescape(match["reader"]))


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    return _ESCAPE_SEQUENCE.sub(lambda escape: _UNESCAPES[escape.group()], text)


# --------------------------------------------------------------------------- checks


def utc_now() -> datetime:
    return datetime.now(UTC)


def check_reader(reader: str) -> str:
    if not isinstance(reader, str) or not reader or _NOT_ONE_LINE.search(reader) or any(ch.isspace() for ch in reader):
        raise ValueError(f"bad reader name {reader!r}: a non-empty username without blanks")
    return reader


def check_reading(reading: int | None, reason: str) -> tuple[int | None, str]:
    """Validate a reading/reason pair; return it normalized (reason stripped)."""
    if not isinstance(reason, str):
        raise BadReading(f"the reason must be text, not {type(reason).__name__}")
    reason = reason.strip()
    if _NOT_ONE_LINE.search(reason):
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


def check_when(when: datetime) -> datetime:
    """A submission's time as an aware UTC datetime (a naive one is UTC); BadReading otherwise."""
    if not isinstance(when, datetime):
        raise BadReading(f"the time must be a datetime, not {type(when).__name__}")
    try:
        return as_utc(when)
    except OverflowError:
        raise BadReading(f"the time {when.isoformat()} is out of range in UTC") from None


class Rng(Protocol):
    """What demo mode draws ids from: ``random.Random``, ``secrets.SystemRandom``, a test's script."""

    def choice(self, seq: Sequence[T], /) -> T: ...

    def randrange(self, stop: int, /) -> int: ...


def invent_meter_id(rng: Rng, taken: Callable[[str], bool]) -> str:
    """A new demo meter id for which ``taken`` is false.

    The first tries are the short forms (``G`` + 5 digits, ``E`` + 5-6 digits, about 1.2
    million ids); once a try hits a taken one, ``E`` + 9 digits (a billion more), so demo mode
    does not run out: at 2,400 new jobs a second the long ids last about five days, and a JOB
    never spends long looking for a free id.
    """
    for attempt in range(_GIVE_UP_AFTER):
        if attempt:
            meter = f"E{rng.randrange(10**9):09d}"
        elif rng.choice("GE") == "G":
            meter = f"G{rng.randrange(10**5):05d}"
        else:
            digits = rng.choice((5, 6))
            meter = f"E{rng.randrange(10**digits):0{digits}d}"
        if not taken(meter):
            return meter
    raise MeterError("could not invent a new meter id: nearly every id is taken")


# --------------------------------------------------------------------------- the interface


class Meters(Protocol):
    """What the meters service needs, wherever the state is kept (memory, a store).

    Every call is one atomic unit: it happens completely or not at all, and two
    calls never interleave. Readers are names without blanks (the daemon uses
    one per session for jobs and the user name for readings).
    """

    #: Jobs one account may hold at once over all its sessions (hold keys ``account#token``); None: no bound.
    max_jobs_per_account: int | None

    def next_job(self, reader: str) -> str | None:
        """Give ``reader`` a meter to read, or ``None`` when all roster jobs are done.

        A reader who still holds an unsubmitted job gets that same meter again.
        Roster mode: the earliest roster meter nobody holds and nobody has read.
        Demo mode: an invented id never handed out or read before.
        """

    def held(self, reader: str) -> str | None:
        """The meter ``reader`` holds and has not submitted, if any."""

    def release(self, reader: str) -> str | None:
        """End ``reader``'s hold (their session ended); return the meter released.

        An unread roster meter goes back to the pool at its roster place.
        """

    def release_all(self) -> int:
        """End every hold (at start: no session of an earlier run is left); return how many."""

    def submit(
        self, reader: str, meter: str, reading: int | None, reason: str = "", when: datetime | None = None
    ) -> tuple[int, int]:
        """Record ``reader``'s reading (or reason) for ``meter``; return :meth:`status` after it.

        ``reading`` is an ``int >= 0`` (not a bool) with an empty reason, or
        ``None`` with a non-blank reason of one line. ``when`` defaults to the
        clock's now; naive times are taken as UTC. A later submission for a
        meter supersedes the earlier one in counts and dump (the history keeps
        both). Whoever holds the meter no longer holds it afterwards.

        Raises :class:`BadReading` or :class:`UnknownMeter` (a meter neither in the
        roster nor ever handed out), recording nothing.
        """

    def status(self, reader: str) -> tuple[int, int]:
        """``(mine, total)``: meters whose current submission is ``reader``'s, and
        the number of distinct meters with a submission."""

    def history(self) -> list[Submission]:
        """Every submission in the order made."""

    def dump(self) -> list[str]:
        """Every meter's current submission as a dump line, sorted by meter id."""

    def load_roster(self, ids: Iterable[str]) -> int:
        """Append new meter ids to the roster, in order, and use roster mode; return how many were new.

        Ids already in the roster are ignored; readings and holds stay. Raises
        :class:`RosterError` (with the 1-based position) on a bad id, adding nothing.
        """

    def roster_size(self) -> int | None:
        """Number of meters in the roster; ``None`` in demo mode."""

    def remaining(self) -> int | None:
        """Roster meters not read yet (held ones included); ``None`` in demo mode."""

    def roster(self) -> list[RosterEntry] | None:
        """Every roster meter in hand-out order, read or not, and who holds it; ``None`` in demo mode."""

    def clear_roster(self) -> int:
        """Take every meter without a reading off the roster; return how many.

        Meters with a reading stay (their readings, history and counts are
        never touched, and a later READ may still correct them). A cleared
        meter someone holds stays theirs until they read it or let it go; it
        is not handed out again. A new :meth:`load_roster` appends as usual.
        """

    def switch_to_demo(self) -> int:
        """:meth:`clear_roster`, then demo mode; return how many meters left the roster."""


# --------------------------------------------------------------------------- the rules


class MeterState(Protocol):
    """The facts a :class:`MeterRules` keeps, with no rules: where they live is the implementation's.

    Every method runs inside one unit of :meth:`MeterRules._change` or
    :meth:`MeterRules._read`, so it may assume nobody else changes anything
    meanwhile. The facts: the mode; the roster in order; the jobs (reader ->
    meter, a meter held by at most one reader); the meters ever handed out; the
    submissions, and each meter's latest one.
    """

    def roster_mode(self) -> bool: ...

    def set_roster_mode(self, on: bool) -> None: ...

    def add_to_roster(self, meter: str) -> bool:
        """Append ``meter`` to the roster unless it is there already; whether it was added."""

    def roster_counts(self) -> tuple[int, int]:
        """``(meters in the roster, those without a submission)``."""

    def roster_entries(self) -> list[RosterEntry]: ...

    def drop_unread_from_roster(self) -> int:
        """Remove the roster meters without a submission; return how many."""

    def first_free(self) -> str | None:
        """The earliest roster meter that nobody holds and that has no submission."""

    def is_known(self, meter: str) -> bool:
        """Whether ``meter`` is in the roster or was ever handed out."""

    def is_taken(self, meter: str) -> bool:
        """Whether ``meter`` was ever handed out or has a submission."""

    def job_of(self, reader: str) -> str | None: ...

    def jobs_held(self, prefix: str) -> int:
        """How many jobs are held by readers whose hold key starts with ``prefix``."""

    def held_roster_meters(self) -> int:
        """How many roster meters without a submission someone holds."""

    def hold(self, reader: str, meter: str) -> None:
        """Record ``reader``'s job ``meter`` (neither holds nor is held now); it counts as handed out."""

    def drop_job(self, reader: str) -> str | None:
        """Forget ``reader``'s job; the meter, if there was one."""

    def drop_holder(self, meter: str) -> None:
        """Forget the job of whoever holds ``meter``, if anyone does."""

    def drop_all_jobs(self) -> int: ...

    def record(self, submission: Submission) -> None:
        """Add ``submission`` to the history; it becomes its meter's latest."""

    def counts(self, reader: str) -> tuple[int, int]:
        """``(meters whose latest submission is reader's, meters with a submission)``."""

    def history(self) -> list[Submission]: ...

    def latest(self) -> list[Submission]:
        """Each meter's latest submission, sorted by meter id."""


class MeterRules:
    """The meter rules, once, over a :class:`MeterState`: a :class:`Meters` for any kind of state.

    Arguments are checked before a unit starts; inside one, every check comes
    before the first change, so a refusal leaves the state as it was. A
    subclass says where the state lives by running units: :meth:`_change` for
    a unit that may change it, :meth:`_read` for one that only reads.
    """

    #: Jobs one account may hold at once over all its sessions (``--max-jobs-per-reader``); the
    #: commands make hold keys ``account#token``, one per session. None: no bound.
    max_jobs_per_account: int | None = None

    def __init__(self, rng: Rng | None = None, clock: Callable[[], datetime] | None = None) -> None:
        self._rng: Rng = rng if rng is not None else secrets.SystemRandom()
        self._clock = clock if clock is not None else utc_now

    def _change(self, unit: Callable[[MeterState], T]) -> T:
        """Run ``unit(state)`` atomically, alone; its changes are kept once this returns."""
        raise NotImplementedError

    def _read(self, unit: Callable[[MeterState], T]) -> T:
        """Run ``unit(state)``, which only reads, on a consistent view of the state."""
        raise NotImplementedError

    # ---------------------------------------------------------------- jobs

    def next_job(self, reader: str) -> str | None:
        check_reader(reader)

        account, keyed, _ = reader.partition("#")
        limit = self.max_jobs_per_account

        def unit(state: MeterState) -> str | None:
            current = state.job_of(reader)
            if current is not None:
                return current
            if keyed and limit is not None:
                held = state.jobs_held(account + "#")
                if held >= limit:
                    raise TooManyJobs(held)
            if state.roster_mode():
                meter = state.first_free()
                if meter is None:
                    held_elsewhere = state.held_roster_meters()
                    if held_elsewhere:
                        raise JobsHeld(held_elsewhere)
                    return None
            else:
                meter = invent_meter_id(self._rng, state.is_taken)
            state.hold(reader, meter)
            return meter

        return self._change(unit)

    def held(self, reader: str) -> str | None:
        return self._read(lambda state: state.job_of(reader))

    def release(self, reader: str) -> str | None:
        return self._change(lambda state: state.drop_job(reader))

    def release_all(self) -> int:
        return self._change(lambda state: state.drop_all_jobs())

    # ---------------------------------------------------------------- readings

    def submit(
        self, reader: str, meter: str, reading: int | None, reason: str = "", when: datetime | None = None
    ) -> tuple[int, int]:
        check_reader(reader)
        reading, reason = check_reading(reading, reason)
        when = check_when(self._clock() if when is None else when)
        if not isinstance(meter, str):
            raise UnknownMeter(f"a meter id must be text, not {type(meter).__name__}")
        key = canonical_meter_id(meter)
        submission = Submission(key, reading, reason, when, reader)

        def unit(state: MeterState) -> tuple[int, int]:
            if not state.is_known(key):
                where = "is not in the roster" if state.roster_mode() else "was never handed out"
                raise UnknownMeter(f"meter {meter.strip()[:40]!r} {where}")
            state.record(submission)
            state.drop_holder(key)  # after record: a read meter does not go back to the pool
            return state.counts(reader)

        return self._change(unit)

    def status(self, reader: str) -> tuple[int, int]:
        return self._read(lambda state: state.counts(reader))

    def history(self) -> list[Submission]:
        return self._read(lambda state: state.history())

    def dump(self) -> list[str]:
        return [format_dump_line(submission) for submission in self._read(lambda state: state.latest())]

    # ---------------------------------------------------------------- the roster

    def load_roster(self, ids: Iterable[str]) -> int:
        cleaned = clean_roster_ids(ids)

        def unit(state: MeterState) -> int:
            state.set_roster_mode(True)
            return sum(state.add_to_roster(meter) for meter in cleaned)

        return self._change(unit)

    def roster_size(self) -> int | None:
        return self._read(lambda state: state.roster_counts()[0] if state.roster_mode() else None)

    def remaining(self) -> int | None:
        return self._read(lambda state: state.roster_counts()[1] if state.roster_mode() else None)

    def roster(self) -> list[RosterEntry] | None:
        return self._read(lambda state: state.roster_entries() if state.roster_mode() else None)

    def clear_roster(self) -> int:
        return self._change(lambda state: state.drop_unread_from_roster())

    def switch_to_demo(self) -> int:
        def unit(state: MeterState) -> int:
            state.set_roster_mode(False)
            return state.drop_unread_from_roster()

        return self._change(unit)


# --------------------------------------------------------------------------- in memory


class _MemoryState:
    """A :class:`MeterState` in dicts and lists (see :class:`MeterManager`)."""

    def __init__(self) -> None:
        self.roster_on = False
        self.roster: list[str] = []  # in hand-out order
        self.roster_index: dict[str, int] = {}  # meter -> its place in ``roster``
        self.free: list[int] = []  # heap of roster places that may be free (lazily cleaned)
        self.issued: set[str] = set()  # ever handed out
        self.jobs: dict[str, str] = {}  # reader -> meter
        self.holder: dict[str, str] = {}  # meter -> reader
        self.latest_of: dict[str, Submission] = {}
        self.submissions: list[Submission] = []
        self.mine: dict[str, int] = {}  # reader -> meters whose latest submission is theirs

    def roster_mode(self) -> bool:
        return self.roster_on

    def set_roster_mode(self, on: bool) -> None:
        self.roster_on = on

    def add_to_roster(self, meter: str) -> bool:
        if meter in self.roster_index:
            return False
        self.roster_index[meter] = len(self.roster)
        self.roster.append(meter)
        self._maybe_free(meter)
        return True

    def roster_counts(self) -> tuple[int, int]:
        return len(self.roster), sum(1 for meter in self.roster if meter not in self.latest_of)

    def roster_entries(self) -> list[RosterEntry]:
        return [RosterEntry(meter, meter in self.latest_of, self.holder.get(meter)) for meter in self.roster]

    def drop_unread_from_roster(self) -> int:
        kept = [meter for meter in self.roster if meter in self.latest_of]
        dropped = len(self.roster) - len(kept)
        self.roster = kept
        self.roster_index = {meter: index for index, meter in enumerate(kept)}
        self.free = []  # every meter left has a submission
        return dropped

    def first_free(self) -> str | None:
        while self.free:  # an entry may be stale: held or read since it was pushed
            meter = self.roster[heappop(self.free)]
            if meter not in self.latest_of and meter not in self.holder:
                return meter
        return None

    def is_known(self, meter: str) -> bool:
        return meter in self.roster_index or meter in self.issued

    def is_taken(self, meter: str) -> bool:
        return meter in self.issued or meter in self.latest_of

    def job_of(self, reader: str) -> str | None:
        return self.jobs.get(reader)

    def jobs_held(self, prefix: str) -> int:
        return sum(1 for reader in self.jobs if reader.startswith(prefix))

    def held_roster_meters(self) -> int:
        return sum(1 for meter in self.roster if meter in self.holder and meter not in self.latest_of)

    def hold(self, reader: str, meter: str) -> None:
        self.issued.add(meter)
        self.jobs[reader] = meter
        self.holder[meter] = reader

    def drop_job(self, reader: str) -> str | None:
        meter = self.jobs.pop(reader, None)
        if meter is not None:
            del self.holder[meter]
            self._maybe_free(meter)
        return meter

    def drop_holder(self, meter: str) -> None:
        reader = self.holder.pop(meter, None)
        if reader is not None:
            del self.jobs[reader]
            self._maybe_free(meter)

    def drop_all_jobs(self) -> int:
        count = len(self.jobs)
        for reader in list(self.jobs):
            self.drop_job(reader)
        return count

    def record(self, submission: Submission) -> None:
        previous = self.latest_of.get(submission.meter)
        if previous is not None:
            self.mine[previous.reader] -= 1
        self.mine[submission.reader] = self.mine.get(submission.reader, 0) + 1
        self.latest_of[submission.meter] = submission
        self.submissions.append(submission)

    def counts(self, reader: str) -> tuple[int, int]:
        return self.mine.get(reader, 0), len(self.latest_of)

    def history(self) -> list[Submission]:
        return list(self.submissions)

    def latest(self) -> list[Submission]:
        return [self.latest_of[meter] for meter in sorted(self.latest_of)]

    def _maybe_free(self, meter: str) -> None:
        """A roster meter nobody holds and nobody has read goes (back) into the free heap."""
        index = self.roster_index.get(meter)
        if index is not None and meter not in self.latest_of and meter not in self.holder:
            heappush(self.free, index)


class MeterManager(MeterRules):
    """:class:`Meters` in memory: the state lives on the instance, every unit under its one lock.

    So several connection threads may share one manager. ``roster`` (optional)
    is loaded at once (roster mode); without it the manager starts in demo mode.
    """

    def __init__(
        self, roster: Iterable[str] | None = None, rng: Rng | None = None, clock: Callable[[], datetime] | None = None
    ) -> None:
        super().__init__(rng, clock)
        self._lock = threading.Lock()
        self._state = _MemoryState()
        if roster is not None:
            self.load_roster(roster)

    def _change(self, unit: Callable[[MeterState], T]) -> T:
        with self._lock:
            return unit(self._state)

    _read = _change
