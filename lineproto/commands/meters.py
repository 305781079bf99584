"""The meters service's commands: JOB, READ and DUMP.

Readers log in, take a job (a meter to read) with ``JOB`` and submit what they
read, or why they could not, with ``READ``; admins list every current reading
with ``DUMP``. The :class:`~lineproto.domain.meters.Meters` doing the work
sits on ``services.meters``: in memory, or the store's.

A job is held per *session*, not per user name: the same reader logged in on
two connections holds two different meters, and ending one session (QUIT, a
dropped connection, REIN, a new USER) releases only that session's job.
Readings are credited to the user name.
"""

import argparse
import logging
import re
import secrets
from collections.abc import Callable
from typing import Any

from ..argtypes import positive_int
from ..domain.meters import (
    BadMeterId,
    BadReading,
    JobsHeld,
    MeterError,
    MeterManager,
    Meters,
    RosterError,
    TooManyJobs,
    UnknownMeter,
    load_roster,
    parse_when,
)
from ..errors import StartError
from ..wire import Reply, shapes
from .errors import CommandError
from .session import Services, Session
from .table import Command, when_stored_user

log = logging.getLogger("lineproto.meters")

#: Roles that may take jobs and submit readings.
READER_ROLES = frozenset({"reader", "admin"})
#: Roles that may list every reading.
DUMP_ROLES = frozenset({"admin"})
#: Longest reading, in digits: every reading fits a signed 64-bit integer.
MAX_READING_DIGITS = 18
#: Longest reason, in characters: a dump line of it stays within one reply line.
MAX_REASON_CHARS = 200
#: What READ takes instead of a reading when it gives a reason.
NO_READING = "-"

_DIGITS = re.compile(r"[0-9]+")


#: Jobs one reader's account may hold at once, over all its connections (``--max-jobs-per-reader``).
DEFAULT_MAX_JOBS_PER_READER = 3


# --------------------------------------------------------------------------- helpers


def _hold_key(session: Session) -> str:
    """The name this session holds its job under: ``user#token``, unique per login.

    ``#`` cannot occur in a user name, so a hold key never collides with one.
    """
    key = session.meter_hold
    if key is None:
        key = session.meter_hold = f"{session.account.name}#{secrets.token_hex(8)}"
    return key


def parse_reading(text: str) -> int:
    """A reading as sent on the wire: 1-18 ASCII digits. Raises CommandError 501."""
    if not _DIGITS.fullmatch(text) or len(text) > MAX_READING_DIGITS:
        shown = text if len(text) <= 24 else text[:24] + "..."
        raise CommandError(
            501,
            f"Bad reading {shown!r}: a whole number of at most {MAX_READING_DIGITS} digits, "
            f"or {NO_READING} and a reason",
        )
    return int(text)


# --------------------------------------------------------------------------- handlers


def job(session: Session) -> Reply:
    """JOB: hand this session a meter to read (the same one until it is submitted)."""
    meter = session.services.meters.next_job(_hold_key(session))
    if meter is None:
        return Reply(shapes.ALL_JOBS_DONE, ("All jobs done",))
    return shapes.Job(meter).reply()


def read(session: Session, meter: str, reading: str, rest: str | None = None) -> Reply:
    """READ <meter> <reading> [<time>] or READ <meter> - <reason...>."""
    manager: Meters = session.services.meters
    name = session.account.name
    if reading == NO_READING:
        reason = (rest or "").strip()
        if not reason:
            raise CommandError(501, f"A reason is required: READ <meter> {NO_READING} <reason>")
        if len(reason) > MAX_REASON_CHARS:
            raise CommandError(501, f"Reason too long: at most {MAX_REASON_CHARS} characters")
        mine, total = manager.submit(name, meter, None, reason)
    else:
        value = parse_reading(reading)
        when = parse_when(rest) if rest is not None else None
        mine, total = manager.submit(name, meter, value, "", when)
    log.debug("%s: %s read %s", session.peer, name, meter)
    return shapes.Accepted(mine, total).reply()


def dump(session: Session) -> Reply:
    """DUMP: every meter's current reading, one line each, sorted by meter."""
    lines = session.services.meters.dump()
    first = f"Dump of {len(lines)} reading{'s' if len(lines) != 1 else ''}:" if lines else "No readings yet"
    return Reply(250, (first, *lines, "End of dump"))


COMMANDS = (
    Command(
        "JOB",
        "",
        "Take a meter to read (251 when all jobs are done)",
        job,
        roles=READER_ROLES,
        blocks=when_stored_user,
        changes=True,
        detail="The meter id is the first word of the reply. The job is yours until you READ\n"
        "it or your session ends (QUIT, REIN, USER, a dropped connection); JOB again\n"
        "before READ gives the same meter. With a roster, the reply is\n"
        "'251 All jobs done' once every meter in it has been read.",
    ),
    Command(
        "READ",
        "<meter> <reading|-> [<time|reason...>]",
        "Submit a reading, or - and the reason there is none",
        read,
        roles=READER_ROLES,
        blocks=when_stored_user,
        changes=True,
        detail="READ <meter> <reading> [<time>]: a whole number, 0 or more, at most 18 digits;\n"
        "the time is ISO-8601 (2026-11-22T09:15, ...:30Z, ...+01:00), UTC when it has\n"
        "no zone, now when left out.\n"
        "READ <meter> - <reason>: no reading; the reason (1-200 characters) is required.\n"
        "A later READ of the same meter replaces the earlier one in counts and dump.\n"
        "Replies: 'Accepted: you have read N out of M readings' (250), a bad reading,\n"
        "reason or time (501), an unknown meter (550).",
    ),
    Command(
        "DUMP",
        "",
        "List every current reading as meter=reading@time[reason]reader",
        dump,
        roles=DUMP_ROLES,
        blocks=when_stored_user,
        detail="One line per meter, sorted by meter id, between a first and a last line.\n"
        "The time is UTC to the minute; a missing reading shows as -1 with its reason.",
    ),
)

#: Domain errors to reply codes, most specific first.
ERROR_CODES = (
    (JobsHeld, 450),  # not 251: unread meters are left, held by others' sessions
    (TooManyJobs, 450),
    (UnknownMeter, 550),
    (BadMeterId, 501),
    (BadReading, 501),
    (RosterError, 501),
    (MeterError, 451),
)


# --------------------------------------------------------------------------- hooks


def _stat_lines(session: Session) -> list[tuple[str, object]]:
    user = session.user
    if user is None or not user.has_role(*READER_ROLES):
        return []
    mine, total = session.services.meters.status(user.name)
    return [("my-readings", mine), ("all-readings", total)]


def _release_job(session: Session) -> None:
    key = session.meter_hold
    if key is None:
        return
    meter = session.services.meters.release(key)
    if meter is not None:
        log.debug("%s: %s's job %s released", session.peer, session.account.name, meter)


def _log_dump(manager: Meters) -> None:
    lines = manager.dump()
    log.info("meter dump at shutdown: %d reading%s", len(lines), "" if len(lines) == 1 else "s")
    for line in lines:
        log.info("dump %s", line)


# --------------------------------------------------------------------------- plug-in


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Daemon options of this service."""
    parser.add_argument(
        "--max-jobs-per-reader",
        type=positive_int,
        default=DEFAULT_MAX_JOBS_PER_READER,
        metavar="N",
        help="jobs one reader may hold at once over all their connections (default %(default)s)",
    )
    parser.add_argument(
        "--roster",
        metavar="FILE",
        help="CSV file of meter ids to hand out (first column; a 'meter' header "
        "row is optional); without it, jobs are invented meter ids (demo mode)",
    )


def read_roster_file(path: str) -> list[str]:
    """The roster at ``path``, or a one-line StartError (``--roster`` and ``daemon.py roster import``)."""
    try:
        return load_roster(path)
    except FileNotFoundError:
        raise StartError(f"roster file not found: {path}") from None
    except RosterError as exc:
        raise StartError(f"bad roster: {exc}") from None
    except UnicodeDecodeError:
        raise StartError(f"roster file {path} is not UTF-8 text") from None
    except OSError as exc:
        raise StartError(f"cannot read roster file {path}: {exc.strerror or exc}") from None


def install(services: Services, options: argparse.Namespace) -> None:
    """Register this service's commands, errors, hooks and domain objects on ``services``."""
    store = getattr(services, "store", None)
    manager: Meters = store.meters if store is not None else MeterManager()
    manager.max_jobs_per_account = getattr(options, "max_jobs_per_reader", DEFAULT_MAX_JOBS_PER_READER)
    manager.release_all()  # jobs held by sessions of an earlier run: no such session is left
    roster_path = getattr(options, "roster", None)
    if roster_path:
        ids = read_roster_file(roster_path)
        added = manager.load_roster(ids)
        log.info("roster %s: %d meters, %d new", roster_path, len(ids), added)
    services.meters = manager
    for command in COMMANDS:
        services.table.add(command)
    services.error_codes.extend(ERROR_CODES)
    services.stat_providers.append(_stat_lines)
    services.logout_hooks.append(_release_job)
    services.shutdown_hooks.append(lambda: _log_dump(manager))


# --------------------------------------------------------------------------- daemon.py roster


def add_admin_commands(add: Callable[..., argparse.ArgumentParser]) -> None:
    """This service's ``daemon.py`` subcommands (see :func:`lineproto.commands.add_admin_commands`)."""
    roster = add(
        "roster",
        "the meter roster: import FILE, list, clear (takes the unread meters off), demo (back to invented ids)",
        run_roster,
    )
    roster.add_argument("action", choices=["import", "list", "clear", "demo"])
    roster.add_argument("file", nargs="?", help="with import: a CSV file whose first column is the meter id")


def run_roster(args: argparse.Namespace, open_store: Callable[[bool], Any]) -> int:
    """``daemon.py roster ...``: ``open_store(create)`` opens the database (created only by import)."""
    if args.action == "import":
        if args.file is None:
            raise StartError("roster import needs the roster FILE")
        ids = read_roster_file(args.file)
        with open_store(True) as store:
            added = store.meters.load_roster(ids)
        print(f"roster {args.file}: {len(ids)} meters, {added} new")
        return 0
    if args.file is not None:
        raise StartError(f"roster {args.action} takes no file")
    with open_store(False) as store:
        meters = store.meters
        if args.action == "list":
            entries = meters.roster()
            if entries is None:
                print("demo mode: no roster, JOB invents meter ids")
            for entry in entries or ():
                holder = entry.holder.split("#", 1)[0] if entry.holder else "-"
                print(f"{entry.meter}\t{'read' if entry.read else 'unread'}\t{holder}")
        elif args.action == "clear":
            print(f"{meters.clear_roster()} unread meters taken off the roster; every reading is kept")
        else:
            print(f"demo mode: {meters.switch_to_demo()} unread meters taken off the roster; every reading is kept")
    return 0
