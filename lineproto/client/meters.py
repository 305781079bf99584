"""Typed client methods for the meters service (a Connection subclass; Client combines the services).

A reader's round, every meter the server hands out read in turn:

    with Client("127.0.0.1", 36000) as client:
        client.login("carol", "secret")
        while (meter := client.job()) is not None:
            mine, total = client.read(meter, 5983)
"""

from __future__ import annotations

from datetime import datetime

from ..domain.meters import Submission, parse_dump_line
from ..wire import ProtocolError, Reply
from ..wire.shapes import ALL_JOBS_DONE, Accepted, Job
from .connection import Connection


def format_when(when: datetime | str) -> str:
    """The ISO-8601 text READ takes for ``when``.

    A ``str`` is sent as it is (the server checks it). A naive ``datetime`` is
    local time, as :meth:`datetime.astimezone` takes it; the text always carries
    its UTC offset, so the server never has to guess.
    """
    if isinstance(when, str):
        return when
    if not isinstance(when, datetime):
        raise TypeError(f"a time is a datetime or ISO-8601 text, not {type(when).__name__}")
    if when.tzinfo is None or when.tzinfo.utcoffset(when) is None:
        when = when.astimezone()
    return when.isoformat(timespec="seconds")


def parse_accepted(reply: Reply) -> tuple[int, int]:
    """``(mine, total)`` from ``250 Accepted: you have read N out of M readings``."""
    accepted = Accepted.from_reply(reply)
    return accepted.mine, accepted.total


class MeterCommands(Connection):
    """A connection with the meters commands (:class:`Client` has every service's).

    Refusals raise as ``command`` does: :class:`PermanentError` for 501 (bad
    reading, reason or time), 530 (not logged in), 532 (no reader/admin role)
    and 550 (unknown meter).
    """

    def job(self) -> str | None:
        """Take a meter to read: its id, or None when all jobs are done (251).

        Until it is read or the session ends the job stays this session's, and
        ``job()`` returns the same meter again.
        """
        reply: Reply = self.command("JOB")
        if reply.code == ALL_JOBS_DONE:
            return None
        return Job.from_reply(reply).meter

    def read(
        self,
        meter: str,
        reading: int | None = None,
        reason: str | None = None,
        when: datetime | str | None = None,
    ) -> tuple[int, int]:
        """Submit ``reading`` (an int >= 0) or, with no reading, a ``reason``.

        ``when`` (a reading's time; default: when the server receives it) goes
        only with a reading. Returns ``(mine, total)``: the readings credited to
        this user and to everyone. Raises ValueError for a call the protocol
        cannot express, before anything is sent.
        """
        if not isinstance(meter, str) or not meter or meter != meter.strip() or " " in meter:
            raise ValueError(f"a meter id is one non-empty word: {meter!r}")
        if reading is not None:
            if reason is not None:
                raise ValueError("give either a reading or a reason, not both")
            if isinstance(reading, bool) or not isinstance(reading, int) or reading < 0:
                raise ValueError(f"a reading is a whole number >= 0, not {reading!r}")
            if when is None:
                reply = self.command_args("READ", meter, reading)
            else:
                reply = self.command_args("READ", meter, reading, format_when(when))
        else:
            if reason is None or not reason.strip():
                raise ValueError("without a reading a non-blank reason is required")
            if when is not None:
                raise ValueError("a time goes only with a reading: READ <meter> - <reason> takes none")
            reply = self.command_args("READ", meter, "-", reason.strip())
        return parse_accepted(reply)

    def dump(self) -> list[str]:
        """Every current reading as ``meter=reading@YYYY-MM-DDTHH:MM[reason]reader`` (admin)."""
        reply: Reply = self.command("DUMP")
        return list(reply.lines[1:-1])

    def readings(self) -> list[Submission]:
        """:meth:`dump` parsed back (docs/PROTOCOL.md, DUMP): meter, reading or None, time, reason, reader."""
        return [parse_dump_line(line) for line in self.dump()]

    def meter_status(self) -> tuple[int, int]:
        """``(mine, total)`` from STAT's ``my-readings`` and ``all-readings``."""
        stat = self.stat()
        try:
            return int(stat["my-readings"]), int(stat["all-readings"])
        except (KeyError, ValueError):
            raise ProtocolError("STAT has no meter counts (is the user a reader?)") from None
