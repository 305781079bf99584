"""Tests for lineproto.domain.meters: rosters, jobs, submissions, dump, threads.

Every test of the meter rules runs against both implementations of the
:class:`~lineproto.domain.meters.Meters` interface (the ``make`` fixture): the
in-memory :class:`MeterManager` and the store's SQLite-backed ``meters`` on a
fresh database file.
"""

from __future__ import annotations

import itertools
import random
import re
import sys
import tempfile
import threading
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from lineproto.domain.meters import (
    BadDumpLine,
    BadMeterId,
    BadReading,
    JobsHeld,
    MeterError,
    MeterManager,
    Meters,
    RosterEntry,
    RosterError,
    Submission,
    UnknownMeter,
    format_dump_line,
    load_roster,
    parse_dump_line,
    parse_roster,
    parse_when,
    validate_meter_id,
    validate_roster_id,
)
from lineproto.store import SqliteStore
from lineproto.wire import ReplyParser, format_reply

UTC = UTC
T0 = datetime(2026, 11, 22, 9, 15, tzinfo=UTC)
STRICT = re.compile(r"G[0-9]{5}|E[0-9]{5,6}|E[0-9]{9}")


class FixedClock:
    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


IMPLEMENTATIONS = ("memory", "sqlite", "postgres")


class Implementations:
    """Builds :class:`Meters` of one kind, like ``MeterManager(roster, rng, clock)``; closes what it opened.

    ``postgres``: each store on a new database of ``server`` (conftest's ``postgres_server``).
    """

    def __init__(self, kind: str, directory: Path, server=None) -> None:
        self.kind = kind
        self.directory = directory
        self.server = server
        self.stores: list = []
        self.databases: list[str] = []
        self.numbers = itertools.count()

    def __call__(self, roster=None, rng=None, clock=None) -> Meters:
        if self.kind == "memory":
            return MeterManager(roster, rng=rng, clock=clock)
        # synchronous=NORMAL (synchronous_commit off): these tests are about the rules, test_store*.py about durability
        if self.kind == "postgres":
            from lineproto.store.postgres import PostgresStore

            name = f"meters_{uuid.uuid4().hex[:12]}"
            self.databases.append(name)
            url = self.server.create_database(name)
            key = str(self.directory / "audit-key")
            store = PostgresStore(url, sync="normal", rng=rng, clock=clock, audit_key=key, audit_required=True)
        else:
            path = self.directory / f"meters-{next(self.numbers)}.db"
            store = SqliteStore(str(path), sync="normal", rng=rng, clock=clock)
        self.stores.append(store)
        if roster is not None:
            store.meters.load_roster(roster)
        return store.meters

    def close(self) -> None:
        for store in self.stores:
            store.close()
        for name in self.databases:
            self.server.drop_database(name)


def _server(request, kind: str):
    return request.getfixturevalue("postgres_server") if kind == "postgres" else None


@pytest.fixture(params=IMPLEMENTATIONS)
def make(request, tmp_path):
    """``make(roster=None, rng=None, clock=None)``: a new :class:`Meters`, in memory, in SQLite or in PostgreSQL."""
    implementations = Implementations(request.param, tmp_path, _server(request, request.param))
    yield implementations
    implementations.close()


@pytest.fixture
def roster_manager(make):
    """``roster_manager(ids=...)``: a roster-mode :class:`Meters` on a fixed clock."""
    return lambda ids=("G10001", "G10002", "E200003", "E20004"): make(list(ids), clock=FixedClock())


# --------------------------------------------------------------------------- ids


@pytest.mark.parametrize(
    "text, expected",
    [("G12345", "G12345"), ("g12345", "G12345"), ("E12345", "E12345"), ("e123456", "E123456"), ("  G00000 ", "G00000")],
)
def test_validate_meter_id_accepts_and_canonicalises(text, expected):
    assert validate_meter_id(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "G1234", "G123456", "E1234", "E1234567", "X12345", "G12 45", "G1234a", "12345", None],
)
def test_validate_meter_id_rejects(text):
    with pytest.raises(BadMeterId):
        validate_meter_id(text)


def test_bad_meter_id_is_a_meter_error_and_value_error():
    assert issubclass(BadMeterId, MeterError) and issubclass(BadMeterId, ValueError)


def test_validate_roster_id_is_loose():
    assert validate_roster_id("pump-7_b") == "pump-7_b"
    assert validate_roster_id("x" * 32) == "x" * 32
    assert validate_roster_id("g12345") == "G12345"
    for bad in ["", "   ", "a b", "x" * 33, "a,b", "é1"]:
        with pytest.raises(BadMeterId):
            validate_roster_id(bad)


# --------------------------------------------------------------------------- rosters


def test_parse_roster_one_id_per_line():
    assert parse_roster(["G10001\n", "E200002\n", "pump-3\n"]) == ["G10001", "E200002", "pump-3"]


def test_parse_roster_lines_without_newlines():
    assert parse_roster(["G10001", "G10002"]) == ["G10001", "G10002"]


def test_parse_roster_header_optional_and_extra_columns_ignored():
    text = "Meter,address,notes\nG10001,1 High St,dog\nE200002,2 Low Rd,\n"
    assert parse_roster(text.splitlines(keepends=True)) == ["G10001", "E200002"]
    assert parse_roster(["METER\n", "G10001\n"]) == ["G10001"]


def test_parse_roster_header_only_first_row():
    with pytest.raises(RosterError) as info:
        parse_roster(["G10001\n", "meter x\n"])
    assert info.value.line == 2


def test_parse_roster_blank_lines_skipped_and_line_numbers_count_them():
    lines = ["\n", "meter\n", "\n", "G10001\n", "   \n", ",\n", "G10002\n", "\n", "bad id\n"]
    with pytest.raises(RosterError) as info:
        parse_roster(lines)
    assert info.value.line == 9
    assert "line 9" in str(info.value) and "bad id" in str(info.value)
    assert parse_roster(lines[:-1]) == ["G10001", "G10002"]


def test_parse_roster_duplicates_keep_first_order():
    assert parse_roster(["G2\n", "G1\n", "G2\n", "g12345\n", "G12345\n", "G1\n"]) == ["G2", "G1", "G12345"]


@pytest.mark.parametrize(
    "bad_line, line_no",
    [("x" * 33, 3), ("a b", 3), (",G10003", 3), ("G1;2", 3)],
)
def test_parse_roster_bad_ids_name_the_line(bad_line, line_no):
    with pytest.raises(RosterError) as info:
        parse_roster(["G10001\n", "G10002\n", bad_line + "\n", "G10004\n"])
    assert info.value.line == line_no
    assert f"line {line_no}" in str(info.value)
    assert isinstance(info.value, ValueError) and isinstance(info.value, MeterError)


def test_parse_roster_empty_is_empty():
    assert parse_roster([]) == []
    assert parse_roster(["meter\n", "\n"]) == []


def test_load_roster_file(tmp_path):
    path = tmp_path / "roster.csv"
    path.write_text("\ufeffmeter,street\r\nG10001,a\r\n\r\nE200002,b\r\nG10001,c\r\n", encoding="utf-8")
    assert load_roster(path) == ["G10001", "E200002"]
    assert load_roster(str(path)) == ["G10001", "E200002"]


def test_load_roster_file_error_names_file_and_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("G10001\nno good\n", encoding="utf-8")
    with pytest.raises(RosterError) as info:
        load_roster(path)
    assert info.value.line == 2
    assert "bad.csv" in str(info.value) and "line 2" in str(info.value)


# --------------------------------------------------------------------------- roster mode


def test_roster_mode_hands_out_oldest_first_never_twice(roster_manager):
    m = roster_manager()
    assert m.roster_size() == 4 and m.remaining() == 4
    got = [m.next_job(r) for r in ("ann", "bob", "cat", "dan")]
    assert got == ["G10001", "G10002", "E200003", "E20004"]
    with pytest.raises(JobsHeld) as held:  # not "all jobs done": four unread meters are held
        m.next_job("eve")
    assert held.value.count == 4
    assert m.held("eve") is None
    assert {m.held(r) for r in ("ann", "bob", "cat", "dan")} == set(got)


def test_held_job_returned_again_to_same_reader(roster_manager):
    m = roster_manager()
    first = m.next_job("ann")
    assert m.next_job("ann") == first
    assert m.next_job("ann") == first
    assert m.held("ann") == first
    assert m.next_job("bob") == "G10002"


def test_release_returns_job_to_pool_in_roster_order(roster_manager):
    m = roster_manager()
    assert m.next_job("ann") == "G10001"
    assert m.next_job("bob") == "G10002"
    assert m.release("ann") == "G10001"
    assert m.held("ann") is None
    assert m.release("ann") is None
    assert m.next_job("cat") == "G10001"
    assert m.next_job("ann") == "E200003"


def test_all_jobs_done_after_everything_read(roster_manager):
    m = roster_manager(["G10001", "G10002"])
    for reader in ("ann", "ann"):
        meter = m.next_job(reader)
        m.submit(reader, meter, 7)
    assert m.next_job("ann") is None
    assert m.next_job("bob") is None
    assert m.remaining() == 0


def test_empty_roster_is_roster_mode_with_nothing_to_do(make):
    m = make([])
    assert m.roster_size() == 0 and m.remaining() == 0
    assert m.next_job("ann") is None
    with pytest.raises(UnknownMeter):
        m.submit("ann", "G12345", 1)


def test_submit_clears_hold_and_next_job_moves_on(roster_manager):
    m = roster_manager()
    meter = m.next_job("ann")
    assert m.submit("ann", meter, 5983) == (1, 1)
    assert m.held("ann") is None
    assert m.next_job("ann") == "G10002"
    assert m.remaining() == 3


def test_submit_for_other_meter_keeps_own_hold(roster_manager):
    m = roster_manager()
    assert m.next_job("ann") == "G10001"
    m.submit("ann", "E20004", 3)
    assert m.held("ann") == "G10001"


def test_submit_releases_whoever_holds_the_meter(roster_manager):
    m = roster_manager()
    assert m.next_job("ann") == "G10001"
    assert m.submit("bob", "G10001", 12) == (1, 1)
    assert m.held("ann") is None
    assert m.next_job("ann") == "G10002"


def test_read_meter_is_not_handed_out_even_if_never_held(roster_manager):
    m = roster_manager()
    m.submit("bob", "G10001", 1)
    assert m.next_job("ann") == "G10002"


def test_released_meter_that_was_read_meanwhile_is_not_handed_out_again(roster_manager):
    m = roster_manager(["G10001", "G10002"])
    assert m.next_job("ann") == "G10001"
    m.submit("bob", "G10001", 4)  # releases ann's hold
    assert m.release("ann") is None
    assert m.next_job("cat") == "G10002"
    with pytest.raises(JobsHeld):  # cat holds the last unread one
        m.next_job("dan")
    m.submit("cat", "G10002", 1)
    assert m.next_job("dan") is None  # now every meter has a reading


def test_resubmission_supersedes_in_counts_and_dump_history_keeps_both(make):
    clock = FixedClock()
    m = make(["G10001", "G10002"], clock=clock)
    assert m.submit("ann", "G10001", 100) == (1, 1)
    assert m.submit("ann", "G10002", 200) == (2, 2)
    clock.now = T0 + timedelta(minutes=1)
    assert m.submit("bob", "G10001", 101) == (1, 2)
    assert m.status("ann") == (1, 2)
    assert m.status("bob") == (1, 2)
    assert m.dump() == [
        "G10001=101@2026-11-22T09:16[]bob",
        "G10002=200@2026-11-22T09:15[]ann",
    ]
    history = m.history()
    assert [(s.meter, s.reading, s.reader) for s in history] == [
        ("G10001", 100, "ann"),
        ("G10002", 200, "ann"),
        ("G10001", 101, "bob"),
    ]
    history.clear()
    assert len(m.history()) == 3
    # same reader again: still one meter
    assert m.submit("bob", "G10001", None, "meter gone") == (1, 2)
    assert m.dump()[0] == "G10001=-1@2026-11-22T09:16[meter gone]bob"


def test_unknown_meter_in_roster_mode(roster_manager):
    m = roster_manager()
    for meter in ("G99999", "", "nope", "G10001x"):
        with pytest.raises(UnknownMeter):
            m.submit("ann", meter, 1)
    with pytest.raises(UnknownMeter):
        m.submit("ann", None, 1)
    with pytest.raises(UnknownMeter, match=r"^meter 'g99999' is not in the roster$"):
        m.submit("ann", " g99999 ", 1)  # named as the reader spelled it
    assert m.status("ann") == (0, 0) and m.history() == []


def test_meter_case_is_normalised_for_strict_ids(make):
    m = make(["g10001"])
    assert m.next_job("ann") == "G10001"
    assert m.submit("ann", "g10001", 1) == (1, 1)
    assert m.dump() == ["G10001=1@" + m.history()[0].when.strftime("%Y-%m-%dT%H:%M") + "[]ann"]


@pytest.mark.parametrize(
    "reading, reason",
    [
        (-1, ""),
        (-5, ""),
        (True, ""),
        (False, ""),
        (None, ""),
        (None, "   "),
        (None, "\t\n"),
        (5, "also a reason"),
        (1.5, ""),
        ("12", ""),
        (None, "two\nlines"),
        (None, 7),
    ],
)
def test_bad_readings(reading, reason, roster_manager):
    m = roster_manager()
    m.next_job("ann")
    with pytest.raises(BadReading):
        m.submit("ann", "G10001", reading, reason)
    assert m.held("ann") == "G10001"
    assert m.status("ann") == (0, 0)
    assert m.history() == []


def test_good_readings_and_reason_stripped(roster_manager):
    m = roster_manager()
    assert m.submit("ann", "G10001", 0) == (1, 1)
    assert m.submit("ann", "G10002", 5, "  ") == (2, 2)
    assert m.submit("ann", "E200003", None, "  dog in garden ") == (3, 3)
    subs = m.history()
    assert subs[1].reason == "" and subs[1].reading == 5
    assert subs[2] == Submission("E200003", None, "dog in garden", T0, "ann")


def test_bad_reading_checked_even_for_unknown_meter_is_a_meter_error(roster_manager):
    m = roster_manager()
    with pytest.raises(MeterError):
        m.submit("ann", "nope", -1)


def test_when_defaults_to_clock_and_is_normalised_to_utc(roster_manager):
    m = roster_manager()
    m.submit("ann", "G10001", 1)
    m.submit("ann", "G10002", 2, when=datetime(2026, 11, 22, 10, 0))  # naive: taken as UTC
    m.submit("ann", "E200003", 3, when=datetime(2026, 11, 22, 12, 30, tzinfo=timezone(timedelta(hours=2))))
    whens = [s.when for s in m.history()]
    assert whens == [T0, datetime(2026, 11, 22, 10, 0, tzinfo=UTC), datetime(2026, 11, 22, 10, 30, tzinfo=UTC)]
    assert all(w.tzinfo is not None and w.utcoffset() == timedelta(0) for w in whens)
    with pytest.raises(BadReading):
        m.submit("ann", "E20004", 4, when="2026-11-22T09:15")


def test_default_clock_is_aware_utc_now(make):
    m = make(["G10001"])
    before = datetime.now(UTC)
    m.submit("ann", "G10001", 1)
    after = datetime.now(UTC)
    when = m.history()[0].when
    assert when.tzinfo is not None and before <= when <= after


def test_bad_reader_names_rejected(roster_manager):
    m = roster_manager()
    for reader in ("", " ann", "a b", None, "ann\n"):
        with pytest.raises(ValueError):
            m.next_job(reader)
        with pytest.raises(ValueError):
            m.submit(reader, "G10001", 1)


def test_runtime_load_roster_appends_and_keeps_readings(roster_manager):
    m = roster_manager(["G10001", "G10002"])
    m.next_job("ann")
    m.submit("bob", "G10002", 9)
    assert m.load_roster(["G10002", "E300001", "g10003", "E300001"]) == 2
    assert m.roster_size() == 4
    assert m.remaining() == 3
    assert m.status("bob") == (1, 1)
    assert m.held("ann") == "G10001"
    assert m.next_job("cat") == "E300001"
    assert m.next_job("dan") == "G10003"
    with pytest.raises(RosterError) as info:
        m.load_roster(["E400001", "bad one"])
    assert info.value.line == 2
    assert m.roster_size() == 4  # nothing added on error


def test_instances_share_no_state(roster_manager, make):
    a = roster_manager(["G10001"])
    b = roster_manager(["G10001"])
    assert a.next_job("ann") == "G10001"
    assert b.next_job("bob") == "G10001"
    a.submit("ann", "G10001", 1)
    assert b.status("bob") == (0, 0) and b.dump() == [] and b.history() == []
    c = make()
    assert c.roster_size() is None and c.remaining() is None and c.history() == []


# --------------------------------------------------------------------------- demo mode


def test_demo_ids_match_format_and_are_unique(make):
    m = make(rng=random.Random(7))
    seen = set()
    for i in range(3000):
        reader = f"r{i}"
        meter = m.next_job(reader)
        assert STRICT.fullmatch(meter), meter
        assert meter not in seen
        seen.add(meter)
    assert any(x.startswith("G") for x in seen) and any(x.startswith("E") for x in seen)
    lengths = {len(x) for x in seen if x.startswith("E")}
    assert {6, 7} <= lengths <= {6, 7, 10}  # 10: E and 9 digits, after a short one was taken


def test_demo_default_rng_is_secrets_and_ids_valid(make):
    m = make()
    meters = {m.next_job(f"r{i}") for i in range(200)}
    assert len(meters) == 200
    assert all(validate_meter_id(x) == x for x in meters)


class ScriptedRng:
    """Plays back ``choice`` and ``randrange`` answers in order."""

    def __init__(self, answers):
        self.answers = list(answers)

    def choice(self, seq):
        value = self.answers.pop(0)
        assert value in seq
        return value

    def randrange(self, stop):
        value = self.answers.pop(0)
        assert 0 <= value < stop
        return value


def test_demo_never_repeats_handed_out_released_or_read_ids(make):
    rng = ScriptedRng(
        [
            "G",
            42,  # ann: G00042
            "G",
            42,
            7,  # bob: repeat of G00042 skipped, then the long form E000000007
            "G",
            42,
            7,
            123456,  # cat: both repeats skipped
        ]
    )
    m = make(rng=rng, clock=FixedClock())
    assert m.next_job("ann") == "G00042"
    assert m.release("ann") == "G00042"  # forgotten as a job, but still known
    assert m.next_job("bob") == "E000000007"
    m.submit("bob", "E000000007", 1)
    assert m.next_job("cat") == "E000123456"
    assert rng.answers == []
    # a released (never read) demo meter can still be submitted: it was handed out
    assert m.submit("ann", "G00042", 3) == (1, 2)


def test_demo_held_job_repeated_and_unknown_meter(make):
    m = make(rng=random.Random(1))
    meter = m.next_job("ann")
    assert m.next_job("ann") == meter
    with pytest.raises(UnknownMeter) as info:
        m.submit("ann", "G99999" if meter != "G99999" else "G99998", 1)
    assert "never handed out" in str(info.value)
    assert m.submit("ann", meter.lower(), 1) == (1, 1)
    assert m.held("ann") is None
    assert m.next_job("ann") != meter


def test_demo_gives_up_when_id_space_exhausted(make):
    class Stuck:
        def choice(self, seq):
            return seq[0]

        def randrange(self, stop):
            return 0

    m = make(rng=Stuck())
    assert m.next_job("ann") == "G00000"
    assert m.next_job("bob") == "E000000000"  # a short id taken: the long form
    with pytest.raises(MeterError):
        m.next_job("cat")
    assert m.held("cat") is None


# --------------------------------------------------------------------------- roster administration


def test_roster_lists_every_meter_in_order_read_or_not_held_by_whom(roster_manager, make):
    assert make().roster() is None  # demo mode has no roster
    assert make([]).roster() == []
    m = roster_manager()
    assert m.next_job("ann") == "G10001"
    m.submit("bob", "E200003", 7)
    assert m.roster() == [
        RosterEntry("G10001", read=False, holder="ann"),
        RosterEntry("G10002", read=False, holder=None),
        RosterEntry("E200003", read=True, holder=None),
        RosterEntry("E20004", read=False, holder=None),
    ]


def test_clear_roster_drops_the_unread_part_and_never_a_reading(roster_manager):
    m = roster_manager()
    assert m.next_job("ann") == "G10001"
    m.submit("bob", "E200003", 7)
    m.submit("bob", "G10002", None, "dog")
    before = (m.dump(), m.history(), m.status("bob"))
    assert m.clear_roster() == 2  # G10001 (held) and E20004
    assert m.roster() == [RosterEntry("G10002", True, None), RosterEntry("E200003", True, None)]
    assert (m.roster_size(), m.remaining()) == (2, 0)
    assert (m.dump(), m.history(), m.status("bob")) == before
    assert m.next_job("cat") is None  # roster mode, nothing left to hand out
    assert m.held("ann") == "G10001"  # ann is at the meter: her job stays hers ...
    assert m.submit("ann", "G10001", 3) == (1, 3)  # ... and what she reads counts (it was handed out)
    assert m.roster() == [RosterEntry("G10002", True, None), RosterEntry("E200003", True, None)]
    with pytest.raises(UnknownMeter, match="not in the roster"):
        m.submit("ann", "E20004", 1)  # cleared before anyone took it
    assert m.submit("cat", "G10002", 8) == (1, 3)  # a read meter can still be corrected
    assert m.clear_roster() == 0


def test_a_cleared_job_released_is_gone_and_a_new_roster_appends(roster_manager):
    m = roster_manager()
    m.next_job("ann")
    m.submit("bob", "G10002", 1)
    m.clear_roster()
    assert m.release("ann") == "G10001"
    assert m.next_job("ann") is None
    assert m.load_roster(["E300001", "G10002", "G10001"]) == 2
    assert [(e.meter, e.read) for e in m.roster()] == [("G10002", True), ("E300001", False), ("G10001", False)]
    assert m.next_job("ann") == "E300001"
    assert m.next_job("bob") == "G10001"


def test_switch_to_demo_keeps_the_readings_and_invents_jobs_again(make):
    rng = ScriptedRng(["G", 2, 7])  # G00002 has a reading: demo mode must not hand it out (E + 9 digits next)
    m = make(["G00001", "G00002", "G00003"], rng=rng, clock=FixedClock())
    assert m.next_job("ann") == "G00001"
    m.submit("bob", "G00002", 5)
    assert m.switch_to_demo() == 2
    assert (m.roster(), m.roster_size(), m.remaining()) == (None, None, None)
    assert m.dump() == ["G00002=5@2026-11-22T09:15[]bob"]
    assert m.next_job("bob") == "E000000007" and rng.answers == []
    assert m.submit("ann", "G00001", 4) == (1, 2)  # her job was handed out before the switch
    assert m.submit("bob", "G00002", 6) == (1, 2)  # corrections of read meters still count
    with pytest.raises(UnknownMeter, match="never handed out"):
        m.submit("bob", "G00003", 1)
    assert m.switch_to_demo() == 0
    assert m.load_roster(["G00003"]) == 1 and m.next_job("cat") == "G00003"


def test_release_all_ends_every_hold(roster_manager):
    m = roster_manager()
    m.next_job("ann")
    m.next_job("bob")
    assert m.release_all() == 2
    assert m.held("ann") is None and m.held("bob") is None
    assert m.next_job("cat") == "G10001"


# --------------------------------------------------------------------------- dump


def test_dump_format_and_sorting(make):
    m = make(rng=random.Random(3))
    m.load_roster(["G12345", "E445691", "E432365", "G72168"])
    m.submit("carol", "G72168", 29801, when=datetime(2026, 11, 22, 9, 20, 59, tzinfo=UTC))
    m.submit("carol", "G12345", 5983, when=datetime(2026, 11, 22, 9, 15, 30, tzinfo=UTC))
    m.submit("carol", "E445691", None, "Couldn't find the meter", when=datetime(2026, 11, 22, 9, 16, tzinfo=UTC))
    m.submit("dave", "E432365", 87712, when=datetime(2026, 11, 22, 11, 17, tzinfo=timezone(timedelta(hours=2))))
    assert m.dump() == [
        "E432365=87712@2026-11-22T09:17[]dave",
        "E445691=-1@2026-11-22T09:16[Couldn't find the meter]carol",
        "G12345=5983@2026-11-22T09:15[]carol",
        "G72168=29801@2026-11-22T09:20[]carol",
    ]


def test_dump_sorted_by_meter_id_not_by_line(make):
    m = make(["E143424", "E14342", "G1", "A-2"], clock=FixedClock())
    for meter in ("E143424", "E14342", "G1", "A-2"):
        m.submit("ann", meter, 1)
    assert [line.split("=")[0] for line in m.dump()] == ["A-2", "E14342", "E143424", "G1"]


def test_dump_empty_and_format_dump_line_direct(make):
    assert make([]).dump() == []
    sub = Submission("G12345", 5983, "", datetime(2026, 11, 22, 9, 15), "carol")
    assert format_dump_line(sub) == "G12345=5983@2026-11-22T09:15[]carol"
    sub = Submission(
        "E445691",
        None,
        "Couldn't find the meter",
        datetime(2026, 11, 22, 4, 16, tzinfo=timezone(timedelta(hours=-5))),
        "carol",
    )
    assert format_dump_line(sub) == "E445691=-1@2026-11-22T09:16[Couldn't find the meter]carol"


def test_submission_is_frozen():
    sub = Submission("G12345", 1, "", T0, "ann")
    with pytest.raises(AttributeError):
        sub.reading = 2  # type: ignore[misc]


#: Every character str.splitlines() splits on, and the other C0/C1 controls a dump line must not carry raw.
LINE_BREAKERS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


def dump_sub(reason="", reading=None, reader="bob", meter="M0002", when=T0) -> Submission:
    return Submission(meter, reading, reason, when, reader)


@pytest.mark.parametrize(
    "reason, shown",
    [
        ("]root", r"\]root"),  # the case: it used to read as reader 'root]bob'
        ("a [b] c", r"a [b\] c"),  # '[' stands for itself, ']' is escaped
        ("back\\slash", r"back\\slash"),
        ("\\]", r"\\\]"),
        ("tab\there", r"tab\x09here"),
        ("nel\x85and\u2028ls\u2029ps", r"nel\x85and\Lls\Pps"),
        ("del\x7f c1\x9f nul\x00", r"del\x7f c1\x9f nul\x00"),
        ("Couldn't find the meter", "Couldn't find the meter"),  # plain text is shown as it is
        ("ünïcødé ☃ 𝄞 \ufeff\u200b", "ünïcødé ☃ 𝄞 \ufeff\u200b"),
    ],
)
def test_dump_line_escapes_what_would_be_ambiguous_or_split_the_line(reason, shown):
    line = format_dump_line(dump_sub(reason))
    assert line == f"M0002=-1@2026-11-22T09:15[{shown}]bob"
    assert line.splitlines() == [line]
    assert parse_dump_line(line) == dump_sub(reason)


def test_dump_line_of_a_reading_and_of_odd_readers_and_years():
    assert parse_dump_line("G12345=5983@2026-11-22T09:15[]carol") == dump_sub("", 5983, "carol", "G12345")
    odd = dump_sub("x", None, "a]b\\c\u2028", when=datetime(999, 1, 2, 3, 4, tzinfo=UTC))
    line = format_dump_line(odd)
    assert line == r"M0002=-1@0999-01-02T03:04[x]a\]b\\c\L"
    assert parse_dump_line(line) == odd


def test_parse_dump_line_keeps_the_minute_in_utc():
    when = datetime(2026, 11, 22, 11, 17, 59, 999, tzinfo=timezone(timedelta(hours=2)))
    parsed = parse_dump_line(format_dump_line(dump_sub("", 7, when=when)))
    assert parsed.when == datetime(2026, 11, 22, 9, 17, tzinfo=UTC) and parsed.when.tzinfo is UTC


@pytest.mark.parametrize(
    "line",
    [
        "",
        "M0002",
        "M0002=5@2026-11-22T09:15[]",
        "M0002=5@2026-11-22T09:15]bob",
        "M0002=-1@2026-11-22T09:15[]bob",  # no reading needs a reason
        "M0002=5@2026-11-22T09:15[why]bob",  # a reading has none
        "M0002=05@2026-11-22T09:15[]bob",
        "M0002=-2@2026-11-22T09:15[x]bob",
        "M0002=+5@2026-11-22T09:15[]bob",
        "M0002=5@2026-11-22 09:15[]bob",
        "M0002=5@2026-13-22T09:15[]bob",
        "M0002=5@2026-11-22T24:00[]bob",
        "M0002=5@2026-11-22T09:15:00[]bob",
        "M0002=5@0000-01-01T00:00[]bob",
        "M 2=5@2026-11-22T09:15[]bob",
        "=5@2026-11-22T09:15[]bob",
        "M" * 33 + "=5@2026-11-22T09:15[]bob",
        "M0002=-1@2026-11-22T09:15[a]b]bob",  # a raw ']' in the reason
        "M0002=-1@2026-11-22T09:15[a\\]bob",  # the escaped ']' leaves the reason unclosed
        r"M0002=-1@2026-11-22T09:15[\q]bob",
        r"M0002=-1@2026-11-22T09:15[\x41]bob",  # not an escape
        r"M0002=-1@2026-11-22T09:15[\x0A]bob",
        r"M0002=-1@2026-11-22T09:15[\x0]bob",  # lower-case, two digits
        "M0002=-1@2026-11-22T09:15[a\tb]bob",
        "M0002=-1@2026-11-22T09:15[a\u2028b]bob",  # raw, not escaped
        "M0002=-1@2026-11-22T09:15[x]bo]b",
        "M0002=-1@2026-11-22T09:15[x]bob\n",
        None,
        b"M0002=5@2026-11-22T09:15[]bob",
    ],
)
def test_parse_dump_line_refuses_what_format_never_writes(line):
    with pytest.raises(BadDumpLine) as info:
        parse_dump_line(line)
    assert isinstance(info.value, ValueError) and isinstance(info.value, MeterError)


meter_ids = st.from_regex(r"[A-Za-z0-9_-]{1,32}", fullmatch=True)
#: Any text (no lone surrogates: stored text came in as UTF-8), leaning on the characters that matter.
texts = st.text(
    st.one_of(
        st.sampled_from(list("[]\\=@ -" + LINE_BREAKERS + "\t\x00\x7f\x9f")), st.characters(exclude_categories=("Cs",))
    )
)
times = st.datetimes(
    min_value=datetime(1000, 1, 2),
    max_value=datetime(9998, 12, 30),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-12))]),
)


names = texts.filter(bool)


@st.composite
def submissions(draw, reasons=texts, readers=names):
    reading = draw(st.one_of(st.none(), st.integers(0, 10**18)))
    reason = draw(reasons.filter(bool)) if reading is None else ""
    return Submission(draw(meter_ids), reading, reason, draw(times), draw(readers))


def as_dumped(submission: Submission) -> Submission:
    """What a dump line keeps of a submission: the time in UTC, to the minute."""
    when = submission.when.astimezone(UTC).replace(second=0, microsecond=0)
    return replace(submission, when=when)


@given(submissions())
def test_every_dump_line_parses_back_to_what_was_stored(submission):
    line = format_dump_line(submission)
    assert line.splitlines() == [line]
    assert not re.search("[\x00-\x1f\x7f-\x9f\u2028\u2029]", line)
    assert parse_dump_line(line) == as_dumped(submission)
    assert format_dump_line(parse_dump_line(line)) == line  # one spelling per value


@given(
    st.lists(
        submissions(
            reasons=texts.map(lambda t: t[:200]), readers=st.from_regex(r"[A-Za-z0-9._-]{1,32}", fullmatch=True)
        ),
        max_size=3,
    )
)
def test_a_dump_reply_carries_every_line_whole(subs):
    """Any reason of up to 200 characters (READ's limit) with a user name fits one reply line."""
    lines = [format_dump_line(s) for s in subs]
    reply = format_reply(250, ("Dump:", *lines, "End of dump"))
    assert max(len(wire) for wire in reply.split(b"\r\n")) <= 1000 - 2
    (parsed,) = ReplyParser().feed(reply)
    assert [parse_dump_line(line) for line in parsed.lines[1:-1]] == [as_dumped(s) for s in subs]


@pytest.fixture
def one_of_each(tmp_path, request):
    """Every implementation at once, reused across hypothesis examples (each example reads a new meter)."""
    implementations = [Implementations(kind, tmp_path, _server(request, kind)) for kind in IMPLEMENTATIONS]
    yield [make(rng=random.Random(5)) for make in implementations]
    for make in implementations:
        make.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(reason=texts)
def test_a_reason_is_refused_or_dumped_as_given(one_of_each, reason):
    for meters in one_of_each:
        meter = meters.next_job("ann")
        try:
            meters.submit("ann", meter, None, reason, when=T0)
        except BadReading:
            assert not reason.strip() or re.search("[\x00-\x1f\x7f-\x9f\u2028\u2029]", reason.strip())
            meters.release("ann")
            continue
        (line,) = [line for line in meters.dump() if line.startswith(meter + "=")]
        assert parse_dump_line(line) == Submission(meter, None, reason.strip(), T0, "ann")


@pytest.mark.parametrize("reason", ["a\x85b", "a\u2028b", "a\u2029b", "a\x9fb", "a\x1cb", "a\tb"])
def test_a_reason_with_a_control_or_line_separator_inside_is_refused(make, reason):
    m = make(["G10001"], clock=FixedClock())
    with pytest.raises(BadReading, match="one line of text without control characters"):
        m.submit("ann", "G10001", None, reason)
    assert m.submit("ann", "G10001", None, reason[0] + " " + reason[2]) == (1, 1)
    if reason[1].isspace():  # blank ends are stripped, as spaces are
        assert m.submit("ann", "G10001", None, reason[1] + "dog" + reason[1]) == (1, 1)
        assert m.history()[-1].reason == "dog"
    else:
        with pytest.raises(BadReading):
            m.submit("ann", "G10001", None, "dog" + reason[1])


# --------------------------------------------------------------------------- parse_when


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2026-11-22T09:15", datetime(2026, 11, 22, 9, 15, tzinfo=UTC)),
        ("2026-11-22T09:15:30Z", datetime(2026, 11, 22, 9, 15, 30, tzinfo=UTC)),
        ("2026-11-22T09:15+01:00", datetime(2026, 11, 22, 8, 15, tzinfo=UTC)),
        ("2026-11-22T23:30:00-02:00", datetime(2026, 11, 23, 1, 30, tzinfo=UTC)),
        (" 2026-11-22 09:15:30.250Z ", datetime(2026, 11, 22, 9, 15, 30, 250000, tzinfo=UTC)),
        ("2026-11-22t09:15z", datetime(2026, 11, 22, 9, 15, tzinfo=UTC)),
    ],
)
def test_parse_when(text, expected):
    parsed = parse_when(text)
    assert parsed == expected
    assert parsed.tzinfo is not None and parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "garbage",
        "2026-11-22",
        "2026-13-01T00:00",
        "2026-11-22T24:00",
        "2026-11-22T09:15+25:00",
        "2026-11-22T09:15 junk",
        "9999-12-31T23:59-01:00",
        None,
        20261122,
    ],
)
def test_parse_when_rejects_garbage(text):
    with pytest.raises(BadReading) as info:
        parse_when(text)
    assert str(info.value)


@given(
    st.datetimes(
        min_value=datetime(1900, 1, 1),
        max_value=datetime(9000, 1, 1),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]),
    )
)
def test_parse_when_round_trips_isoformat(dt):
    assert parse_when(dt.isoformat()) == dt


# --------------------------------------------------------------------------- threads

N_THREADS = 50
#: Jobs each reader takes: fewer on PostgreSQL, where each is a few network round trips (the 50 readers'
#: contention is the same; 1000 jobs instead of 5000 keep the three tests under 10 s each there).
JOBS_EACH = {"memory": 100, "sqlite": 100, "postgres": 20}


def _run_readers(manager: MeterManager, jobs: int) -> dict[str, list[str]]:
    barrier = threading.Barrier(N_THREADS)
    taken: dict[str, list[str]] = {}
    errors: list[BaseException] = []

    def work(name: str) -> None:
        mine: list[str] = []
        try:
            barrier.wait()
            for i in range(jobs):
                meter = manager.next_job(name)
                assert meter is not None
                assert manager.next_job(name) == meter  # a retried JOB leaks nothing
                mine.append(meter)
                manager.submit(name, meter, i)
        except BaseException as err:  # reported in the main thread
            errors.append(err)
        taken[name] = mine

    threads = [threading.Thread(target=work, args=(f"reader{t}",)) for t in range(N_THREADS)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often, so races show up if there are any
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert errors == []
    return taken


def _check_thread_results(manager: MeterManager, taken: dict[str, list[str]], jobs: int) -> None:
    every = [meter for meters in taken.values() for meter in meters]
    assert len(every) == N_THREADS * jobs
    assert len(set(every)) == len(every), "a meter was handed out twice"
    for name, meters in taken.items():
        assert len(meters) == jobs
        assert manager.status(name) == (jobs, N_THREADS * jobs)
        assert manager.held(name) is None
    owner = {meter: name for name, meters in taken.items() for meter in meters}
    reading_of = {meter: i for meters in taken.values() for i, meter in enumerate(meters)}
    dump = manager.dump()
    assert len(dump) == N_THREADS * jobs
    ids = [line.split("=", 1)[0] for line in dump]
    assert ids == sorted(ids)
    pattern = re.compile(r"([^=]+)=(\d+)@\d{4}-\d\d-\d\dT\d\d:\d\d\[\](\S+)")
    for line in dump:
        match = pattern.fullmatch(line)
        assert match, line
        meter, reading, reader = match.groups()
        assert owner[meter] == reader
        assert int(reading) == reading_of[meter]
    assert len(manager.history()) == N_THREADS * jobs


def test_threads_roster_mode(make):
    roster = [f"M{i:05d}" for i in range(N_THREADS * JOBS_EACH[make.kind])]
    manager = make(roster)
    taken = _run_readers(manager, JOBS_EACH[make.kind])
    _check_thread_results(manager, taken, JOBS_EACH[make.kind])
    assert set(m for ms in taken.values() for m in ms) == set(roster)
    assert manager.remaining() == 0
    assert manager.next_job("late") is None


def test_threads_demo_mode(make):
    manager = make()
    taken = _run_readers(manager, JOBS_EACH[make.kind])
    _check_thread_results(manager, taken, JOBS_EACH[make.kind])
    assert all(STRICT.fullmatch(m) for ms in taken.values() for m in ms)


class CrowdedRng:
    """Draws from a small id space (about 3 ids per job), so concurrent readers
    collide often and the manager must skip ids already handed out or read."""

    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)
        self._guard = threading.Lock()

    def choice(self, seq):
        with self._guard:
            return self._random.choice(seq)

    def randrange(self, stop):
        with self._guard:
            return self._random.randrange(min(stop, 5000))


def test_threads_demo_mode_crowded_id_space(make):
    manager = make(rng=CrowdedRng(11))
    taken = _run_readers(manager, JOBS_EACH[make.kind])
    _check_thread_results(manager, taken, JOBS_EACH[make.kind])


# --------------------------------------------------------------------------- properties

READERS = ["ann", "bob", "cat"]


class _MeterMachine(RuleBasedStateMachine):
    """Random interleavings of every call against a small model, on one implementation."""

    roster: list[str] | None = None  # set by subclasses
    kind = "memory"

    def __init__(self) -> None:
        super().__init__()
        self.directory = tempfile.TemporaryDirectory()
        self.implementations = Implementations(self.kind, Path(self.directory.name))
        self.manager = self.implementations(self.roster, rng=random.Random(0), clock=FixedClock())
        self.roster_mode = self.roster is not None
        self.model_roster: list[str] = list(self.roster or [])  # in hand-out order
        self.issued: set[str] = set()  # ever handed out
        self.model_held: dict[str, str] = {}
        self.model_latest: dict[str, str] = {}  # meter -> reader
        self.submissions = 0

    def teardown(self) -> None:
        self.implementations.close()
        self.directory.cleanup()

    @property
    def known(self) -> list[str]:
        """Meters a submission may name: in the roster, or handed out once."""
        return sorted(set(self.model_roster) | self.issued)

    @rule(reader=st.sampled_from(READERS))
    def next_job(self, reader):
        if reader not in self.model_held and self.roster_mode:
            busy = set(self.model_held.values()) | set(self.model_latest)
            held = [m for m in self.model_roster if m in self.model_held.values() and m not in self.model_latest]
            if not [m for m in self.model_roster if m not in busy] and held:
                with pytest.raises(JobsHeld) as refused:  # unread meters left, all held: not "all done"
                    self.manager.next_job(reader)
                assert refused.value.count == len(held)
                return
        meter = self.manager.next_job(reader)
        if reader in self.model_held:
            assert meter == self.model_held[reader]
            return
        if self.roster_mode:
            busy = set(self.model_held.values()) | set(self.model_latest)
            free = [m for m in self.model_roster if m not in busy]
            assert meter == (free[0] if free else None)
        else:
            assert meter is not None and STRICT.fullmatch(meter)
            assert meter not in self.known and meter not in self.model_latest
        if meter is not None:
            self.model_held[reader] = meter
            self.issued.add(meter)

    @rule(
        reader=st.sampled_from(READERS),
        pick=st.integers(0, 20),
        reading=st.one_of(st.none(), st.integers(-2, 10**6)),
        reason=st.sampled_from(["", " ", "dog"]),
    )
    def submit(self, reader, pick, reading, reason):
        candidates = self.known + ["NOPE", "G9999x"]
        meter = candidates[pick % len(candidates)]
        valid = (reading is None and reason.strip() != "") or (
            reading is not None and reading >= 0 and reason.strip() == ""
        )
        if not valid:
            with pytest.raises(BadReading):
                self.manager.submit(reader, meter, reading, reason)
            return
        if meter not in self.known:
            with pytest.raises(UnknownMeter):
                self.manager.submit(reader, meter, reading, reason)
            return
        result = self.manager.submit(reader, meter, reading, reason)
        self.submissions += 1
        self.model_latest[meter] = reader
        for holder, held in list(self.model_held.items()):
            if held == meter:
                del self.model_held[holder]
        mine = sum(1 for r in self.model_latest.values() if r == reader)
        assert result == (mine, len(self.model_latest))

    @rule(reader=st.sampled_from(READERS))
    def release(self, reader):
        assert self.manager.release(reader) == self.model_held.pop(reader, None)

    @rule()
    def load_the_roster_again(self):
        ids = self.roster or ["G10001", "pump-3", "E200005"]
        new = [m for m in ids if m not in self.model_roster]
        assert self.manager.load_roster(ids) == len(new)
        self.model_roster += new
        self.roster_mode = True

    @rule()
    def clear_roster(self):
        unread = [m for m in self.model_roster if m not in self.model_latest]
        assert self.manager.clear_roster() == len(unread)
        self.model_roster = [m for m in self.model_roster if m in self.model_latest]

    @rule()
    def switch_to_demo(self):
        unread = [m for m in self.model_roster if m not in self.model_latest]
        assert self.manager.switch_to_demo() == len(unread)
        self.model_roster = [m for m in self.model_roster if m in self.model_latest]
        self.roster_mode = False

    @invariant()
    def a_meter_is_held_by_at_most_one_reader(self):
        held = [self.manager.held(r) for r in READERS]
        held = [m for m in held if m is not None]
        assert len(held) == len(set(held))
        assert {r: self.manager.held(r) for r in READERS if self.manager.held(r)} == self.model_held
        assert not set(held) & set(self.model_latest)

    @invariant()
    def counts_add_up(self):
        statuses = [self.manager.status(r) for r in READERS]
        totals = {total for _, total in statuses}
        assert totals == {len(self.model_latest)}
        assert sum(mine for mine, _ in statuses) == len(self.model_latest)
        dump = self.manager.dump()
        assert [line.split("=", 1)[0] for line in dump] == sorted(self.model_latest)
        assert [parse_dump_line(line).reader for line in dump] == [
            self.model_latest[m] for m in sorted(self.model_latest)
        ]
        assert len(self.manager.history()) == self.submissions

    @invariant()
    def the_roster_as_listed(self):
        if not self.roster_mode:
            assert self.manager.roster() is None
            assert self.manager.roster_size() is None and self.manager.remaining() is None
            return
        holder = {meter: reader for reader, meter in self.model_held.items()}
        assert self.manager.roster() == [
            RosterEntry(m, m in self.model_latest, holder.get(m)) for m in self.model_roster
        ]
        assert self.manager.roster_size() == len(self.model_roster)
        assert self.manager.remaining() == sum(1 for m in self.model_roster if m not in self.model_latest)


_machine_settings = settings(
    max_examples=60, stateful_step_count=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def _machine_test(kind: str, roster: list[str] | None):
    machine = type(
        f"{kind.title()}{'Roster' if roster is not None else 'Demo'}Machine",
        (_MeterMachine,),
        {"kind": kind, "roster": roster},
    )
    case = machine.TestCase
    case.settings = _machine_settings
    return case


_ROSTER = ["G10001", "E20002", "pump-3", "G10004", "E200005", "x6"]
TestRosterPropertyMemory = _machine_test("memory", _ROSTER)
TestDemoPropertyMemory = _machine_test("memory", None)
TestRosterPropertySqlite = _machine_test("sqlite", _ROSTER)
TestDemoPropertySqlite = _machine_test("sqlite", None)


def test_demo_ids_do_not_run_out_when_the_short_ones_are_taken():
    import random

    from lineproto.domain.meters import invent_meter_id

    rng = random.Random(5)
    short = re.compile(r"G[0-9]{5}|E[0-9]{5,6}")
    meter = invent_meter_id(rng, taken=lambda m: bool(short.fullmatch(m)))  # every short id taken
    assert re.fullmatch(r"E[0-9]{9}", meter) and STRICT.fullmatch(meter)
