"""The meters service through the real socket: JOB, READ, DUMP, STAT, hooks, roster, concurrency."""

import re
import threading
import time
from collections import Counter
from datetime import UTC

import pytest

from conftest import TEST_USERS, stat, write_users_file
from lineproto.client import Client, PermanentError, TransientError
from lineproto.wire.shapes import Accepted

STRICT_ID = re.compile(r"G[0-9]{5}|E[0-9]{5,6}|E[0-9]{9}")


def login(connection, name):
    password = TEST_USERS[name][2]
    assert connection.command(f"USER {name}").code == 331
    reply = connection.command(f"PASS {password}")
    assert reply.code == 230, reply
    return connection


def accepted(reply):
    assert reply.code == 250, reply
    return tuple(Accepted.from_reply(reply))


@pytest.fixture
def roster(tmp_path):
    path = tmp_path / "roster.csv"
    path.write_text("meter,street\nG10001,Elm 1\nG10002,Elm 2\nE200003,Elm 3\nM-4,Elm 4\n", encoding="utf-8")
    return path


@pytest.fixture
def roster_daemon(start_daemon, roster):
    return start_daemon("--roster", str(roster), users=True)


# --------------------------------------------------------------------------- access


def test_meter_commands_need_login(shared, connect):
    c = connect(shared.port)
    for line in ("JOB", "READ G10001 5", "DUMP"):
        reply = c.command(line)
        assert reply.code == 530, reply
        assert "USER" in reply.lines[0] and "PASS" in reply.lines[0]


def test_meter_commands_need_the_reader_or_admin_role(shared, connect):
    dave = login(connect(shared.port), "dave")
    for line in ("JOB", "READ G10001 5"):
        reply = dave.command(line)
        assert reply.code == 532, reply
        assert "admin or reader" in reply.lines[0]
    guest = connect(shared.port)
    assert guest.command("USER guest").code == 230
    assert guest.command("JOB").code == 532


def test_dump_needs_the_admin_role(shared, connect):
    carol = login(connect(shared.port), "carol")
    reply = carol.command("DUMP")
    assert reply.code == 532 and "admin" in reply.lines[0]


def test_help_describes_the_meter_commands(shared, connect):
    c = connect(shared.port)
    listing = c.command("HELP")
    usages = [line.split("  ")[0] for line in listing.lines]
    assert "JOB" in usages and "DUMP" in usages
    assert "READ <meter> <reading|-> [<time|reason...>]" in usages
    detail = c.command("HELP READ")
    assert detail.code == 214 and any("reason" in line for line in detail.lines)
    assert detail.lines[-1] == "Needs login with the admin or reader role"


def test_argument_counts(shared, connect):
    carol = login(connect(shared.port), "carol")
    assert carol.command("JOB now").code == 501
    assert login(connect(shared.port), "root").command("DUMP all").code == 501
    for line in ("READ", "READ G10001"):
        reply = carol.command(line)
        assert reply.code == 501 and reply.lines[0].startswith("Syntax: READ <meter>"), reply


# --------------------------------------------------------------------------- demo mode


def test_demo_job_read_and_the_same_job_until_read(daemon, connect):
    carol = login(connect(daemon.port), "carol")
    reply = carol.command("JOB")
    assert reply.code == 250
    meter = reply.lines[0].split()[0]
    assert STRICT_ID.fullmatch(meter), reply
    assert reply.lines[0] == f"{meter} is yours to read"
    assert carol.command("JOB").lines[0].split()[0] == meter  # still held: the same job
    assert accepted(carol.command(f"READ {meter} 5983")) == (1, 1)
    second = carol.command("JOB").lines[0].split()[0]
    assert second != meter
    assert accepted(carol.command(f"READ {second} - Dog in the yard")) == (2, 2)
    assert stat(carol)["my-readings"] == "2"


def test_demo_mode_refuses_meters_never_handed_out(shared, connect):
    carol = login(connect(shared.port), "carol")
    reply = carol.command("READ M-1 5")
    assert reply.code == 550 and "never handed out" in reply.lines[0]


def test_one_user_on_two_connections_holds_two_jobs(daemon, connect):
    first = login(connect(daemon.port), "carol")
    second = login(connect(daemon.port), "carol")
    a = first.command("JOB").lines[0].split()[0]
    b = second.command("JOB").lines[0].split()[0]
    assert a != b
    assert accepted(first.command(f"READ {a} 1")) == (1, 1)
    assert accepted(second.command(f"READ {b} 2")) == (2, 2)  # both credited to carol


# --------------------------------------------------------------------------- READ


def test_read_refusals(roster_daemon, connect):
    carol = login(connect(roster_daemon.port), "carol")
    cases = {
        "READ G10001 12a": (501, "Bad reading"),
        "READ G10001 -5": (501, "Bad reading"),
        "READ G10001 +5": (501, "Bad reading"),
        "READ G10001 1.5": (501, "Bad reading"),
        "READ G10001 " + "9" * 19: (501, "at most 18 digits"),
        "READ G10001 -": (501, "reason is required"),
        "READ G10001 -   ": (501, "reason is required"),
        "READ G10001 - " + "x" * 201: (501, "Reason too long"),
        "READ G10001 5 yesterday": (501, "bad time"),
        "READ G10001 5 2026-13-40T25:00": (501, "bad time"),
        "READ G10001 5 2026-11-22T09:15 extra": (501, "bad time"),
        "READ G10001 - tab\there": (501, "control characters"),
        "READ G99999 5": (550, "not in the roster"),
        "READ nosuch - locked": (550, "not in the roster"),
    }
    for line, (code, text) in cases.items():
        reply = carol.command(line)
        assert reply.code == code and text in reply.lines[0], (line, reply)
    assert stat(carol)["all-readings"] == "0"  # nothing was recorded


def test_read_forms_and_the_dump(roster_daemon, connect):
    carol = login(connect(roster_daemon.port), "carol")
    assert accepted(carol.command("READ G10001 5983 2026-11-22T09:15+01:00")) == (1, 1)
    assert accepted(carol.command("READ g10002 0 2026-11-22 10:30:59Z")) == (2, 2)  # id case, space in time
    assert accepted(carol.command("READ E200003 -   Dog in the yard  ")) == (3, 3)
    assert accepted(carol.command("READ M-4 77 2026-11-22T11:00")) == (4, 4)
    root = login(connect(roster_daemon.port), "root")
    assert accepted(root.command("READ M-4 78 2026-11-22T12:00")) == (1, 4)  # supersedes carol's
    dump = root.command("DUMP")
    assert dump.code == 250
    assert dump.lines == (
        "Dump of 4 readings:",
        "E200003=-1@" + dump.lines[1].split("@")[1],
        "G10001=5983@2026-11-22T08:15[]carol",
        "G10002=0@2026-11-22T10:30[]carol",
        "M-4=78@2026-11-22T12:00[]root",
        "End of dump",
    )
    assert dump.lines[1].endswith("[Dog in the yard]carol")
    assert stat(carol)["my-readings"] == "3"
    assert stat(root)["my-readings"] == "1"


def test_dump_lines_parse_back_to_the_reasons_given(roster_daemon, connect):
    from lineproto.domain.meters import parse_dump_line

    carol = login(connect(roster_daemon.port), "carol")
    reasons = {"G10001": "]root", "G10002": r"a\b [c] d\] \x41 \L", "E200003": "ünïcødé ☃ 𝄞", "M-4": "[]"}
    for meter, reason in reasons.items():
        accepted(carol.command(f"READ {meter} - {reason}"))
    for refused in ("dog\u2028cat", "dog\x85cat", "dog\u2029cat", "dog\x9bcat"):
        reply = carol.command(f"READ G10001 - {refused}")
        assert reply.code == 501 and "one line of text without control characters" in reply.lines[0], reply
    dump = login(connect(roster_daemon.port), "root").command("DUMP")
    assert dump.lines[1] == r"E200003=-1@" + dump.lines[1].split("@")[1]
    assert r"[\]root]carol" in dump.lines[2] and r"[a\\b [c\] d\\\] \\x41 \\L]carol" in dump.lines[3]
    parsed = {s.meter: (s.reading, s.reason, s.reader) for s in map(parse_dump_line, dump.lines[1:-1])}
    assert parsed == {meter: (None, reason, "carol") for meter, reason in reasons.items()}


def test_readings_stored_by_an_older_version_dump_as_one_line_each(start_daemon, tmp_path):
    """Older daemons took line separators and C1 controls in reasons: DUMP and daemon.py dump escape them."""
    import subprocess
    import sys
    from datetime import UTC, datetime

    from conftest import ROOT, RawConnection
    from lineproto.domain.meters import Submission, parse_dump_line
    from lineproto.store import SqliteStore

    db = str(tmp_path / "old.db")
    store = SqliteStore(db)
    store.meters.load_roster(["M1", "M2", "M3"])
    legacy = {"M1": "a\u2028b", "M2": "x\x85y]z\\", "M3": "p\u2029\x9cq"}

    def insert_as_an_older_version_did(connection):
        for number, (meter, reason) in enumerate(legacy.items(), start=1):
            connection.execute(
                "INSERT INTO submissions (id, meter, reading, reason, at, reader) "
                "VALUES (?, ?, NULL, ?, '2026-11-22T09:15:00+00:00', 'carol')",
                (number, meter, reason),
            )
            connection.execute("INSERT INTO latest (meter, submission, reader) VALUES (?, ?, 'carol')", (meter, number))
            connection.execute("UPDATE roster SET state = 2 WHERE meter = ?", (meter,))
        connection.execute("UPDATE meta SET value = 3 WHERE key = 'readings_total'")
        connection.execute("INSERT INTO reading_counts (reader, mine) VALUES ('carol', 3)")

    store.run(insert_as_an_older_version_did)
    store.close()
    expected = [
        Submission(meter, None, reason, datetime(2026, 11, 22, 9, 15, tzinfo=UTC), "carol")
        for meter, reason in legacy.items()
    ]
    daemon = start_daemon("--db", db, users=True)
    with RawConnection(daemon.port) as raw:
        raw.reply()
        login(raw, "root")
        raw.send(b"DUMP\r\n")
        text = b""
        while not text.endswith(b"250 End of dump\r\n"):
            text += raw.sock.recv(65536)
    lines = text.decode("utf-8").splitlines()  # what a Python client that splits lines sees
    assert lines[0] == "250-Dump of 3 readings:" and lines[-1] == "250 End of dump" and len(lines) == 5
    assert [parse_dump_line(line.removeprefix("250-")) for line in lines[1:-1]] == expected
    assert daemon.stop() == 0
    result = subprocess.run(
        [sys.executable, str(ROOT / "daemon.py"), "dump", "--db", db], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert [parse_dump_line(line) for line in result.stdout.splitlines()] == expected


def test_dump_with_no_readings(daemon, connect):
    root = login(connect(daemon.port), "root")
    reply = root.command("DUMP")
    assert reply.code == 250 and reply.lines == ("No readings yet", "End of dump")


def test_stat_keys_only_for_readers_and_admins(daemon, connect):
    anonymous = connect(daemon.port)
    assert "my-readings" not in stat(anonymous)
    dave = login(connect(daemon.port), "dave")
    assert "my-readings" not in stat(dave) and "all-readings" not in stat(dave)
    carol = login(connect(daemon.port), "carol")
    meter = carol.command("JOB").lines[0].split()[0]
    carol.command(f"READ {meter} 5")
    assert (stat(carol)["my-readings"], stat(carol)["all-readings"]) == ("1", "1")
    root = login(connect(daemon.port), "root")
    assert (stat(root)["my-readings"], stat(root)["all-readings"]) == ("0", "1")


# --------------------------------------------------------------------------- roster mode and releases


def test_roster_jobs_in_order_then_all_jobs_done(roster_daemon, connect):
    carol = login(connect(roster_daemon.port), "carol")
    seen = []
    while True:
        reply = carol.command("JOB")
        if reply.code == 251:
            assert reply.lines == ("All jobs done",)
            break
        meter = reply.lines[0].split()[0]
        seen.append(meter)
        accepted(carol.command(f"READ {meter} {len(seen)}"))
    assert seen == ["G10001", "G10002", "E200003", "M-4"]
    assert carol.command("JOB").code == 251


def test_rein_releases_the_job(roster_daemon, connect):
    carol = login(connect(roster_daemon.port), "carol")
    assert carol.command("JOB").lines[0].startswith("G10001 ")
    root = login(connect(roster_daemon.port), "root")
    assert root.command("JOB").lines[0].startswith("G10002 ")
    assert carol.command("REIN").code == 220
    other = login(connect(roster_daemon.port), "carol")
    assert other.command("JOB").lines[0].startswith("G10001 ")  # back at its place in the roster


def test_user_command_releases_the_job(roster_daemon, connect):
    carol = login(connect(roster_daemon.port), "carol")
    assert carol.command("JOB").lines[0].startswith("G10001 ")
    login(carol, "root")  # USER again: the old session's job goes back
    assert carol.command("JOB").lines[0].startswith("G10001 ")


def test_closed_connection_releases_the_job(roster_daemon, connect):
    watcher = login(connect(roster_daemon.port), "root")
    carol = login(connect(roster_daemon.port), "carol")
    assert carol.command("JOB").lines[0].startswith("G10001 ")
    carol.close()
    deadline = time.monotonic() + 10
    while stat(watcher)["connections"] != "1":  # the server has ended carol's session
        assert time.monotonic() < deadline, "the server did not notice the closed connection"
        time.sleep(0.01)
    assert watcher.command("JOB").lines[0].startswith("G10001 ")


def test_reading_another_readers_job_ends_their_hold(roster_daemon, connect):
    carol = login(connect(roster_daemon.port), "carol")
    root = login(connect(roster_daemon.port), "root")
    assert carol.command("JOB").lines[0].startswith("G10001 ")
    accepted(root.command("READ G10001 5"))
    assert carol.command("JOB").lines[0].startswith("G10002 ")


# --------------------------------------------------------------------------- daemon start and stop


def test_dump_is_logged_at_shutdown(roster_daemon, connect):
    carol = login(connect(roster_daemon.port), "carol")
    accepted(carol.command("READ G10001 5983 2026-11-22T09:15"))
    accepted(carol.command("READ G10002 - Dog in the yard"))
    carol.close()
    assert roster_daemon.stop() == 0
    log = roster_daemon.stderr_path.read_text(errors="replace")
    assert "meter dump at shutdown: 2 readings" in log
    assert "G10001=5983@2026-11-22T09:15[]carol" in log
    assert re.search(r"G10002=-1@\S+\[Dog in the yard\]carol", log)


@pytest.mark.parametrize(
    "content, message",
    [
        ("meter\nG10001\nnot valid!\n", "bad roster: "),
        (b"G1000\xff\n", "is not UTF-8"),
        (None, "roster file not found"),
    ],
)
def test_bad_roster_stops_the_daemon_with_one_line(tmp_path, content, message):
    import subprocess
    import sys

    from conftest import ROOT

    path = tmp_path / "roster.csv"
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    elif content is not None:
        path.write_bytes(content)
    users = write_users_file(tmp_path / "users.txt")
    result = subprocess.run(
        [sys.executable, str(ROOT / "daemon.py"), "--port", "0", "--users", str(users), "--roster", str(path)],
        capture_output=True,
        text=True,
        timeout=20,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("daemon.py: ")]
    assert len(errors) == 1 and message in errors[0], result.stderr
    if content and isinstance(content, str):
        assert "line 3" in errors[0]


# --------------------------------------------------------------------------- client library


def test_client_library(roster_daemon):
    with Client("127.0.0.1", roster_daemon.port) as carol:
        carol.login("carol", "secret")
        meter = carol.job()
        assert meter == "G10001"
        assert carol.read(meter, 5983) == (1, 1)
        assert carol.read("G10002", reason="Dog in the yard") == (2, 2)
        assert carol.read("E200003", 7, when="2026-11-22T09:15Z") == (3, 3)
        from datetime import datetime

        assert carol.read("E200003", 8, when=datetime(2026, 11, 22, 9, 16, tzinfo=UTC)) == (3, 3)
        assert carol.meter_status() == (3, 3)
        for bad in (
            {"reading": -1},
            {"reading": True},
            {},
            {"reason": "  "},
            {"reading": 1, "reason": "x"},
            {"reason": "x", "when": "2026-11-22T09:15"},
            {"reason": "two\r\nlines"},
        ):
            with pytest.raises(ValueError):
                carol.read("M-4", **bad)
        with pytest.raises(ValueError):
            carol.read("M 4", 5)
        with pytest.raises(PermanentError) as info:
            carol.read("G99999", 5)
        assert info.value.code == 550
        with pytest.raises(PermanentError) as info:
            carol.read("M-4", 5, when="noon")
        assert info.value.code == 501
        assert carol.job() == "M-4"
        carol.read("M-4", reason="Locked gate")
        assert carol.job() is None
        with pytest.raises(PermanentError) as info:
            carol.dump()
        assert info.value.code == 532
    with Client("127.0.0.1", roster_daemon.port) as root:
        root.login("root", "admin pass")
        lines = root.dump()
        assert lines[0] == "E200003=8@2026-11-22T09:16[]carol"
        assert [line.split("=")[0] for line in lines] == ["E200003", "G10001", "G10002", "M-4"]


# --------------------------------------------------------------------------- concurrency


def _run_threads(count, target):
    errors = []

    def guarded(index):
        try:
            target(index)
        except BaseException as exc:  # reported below, with the thread's index
            errors.append((index, exc))

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors[:3]


def test_50_connections_take_100_jobs_each(start_daemon, tmp_path):
    readers = {f"reader{i}": (f"Reader {i}", "reader", f"pw{i}") for i in range(5)}
    users = write_users_file(tmp_path / "readers.txt", {**readers, "root": TEST_USERS["root"]})
    daemon = start_daemon("--users", str(users), "--max-jobs-per-reader", "10")  # 10 connections per reader
    jobs = [[] for _ in range(50)]

    def work(index):
        name = f"reader{index % 5}"
        with Client("127.0.0.1", daemon.port) as client:
            client.login(name, readers[name][2])
            for n in range(100):
                meter = client.job()
                assert meter is not None
                jobs[index].append(meter)
                client.read(meter, n)

    _run_threads(50, work)
    handed_out = [meter for batch in jobs for meter in batch]
    assert len(handed_out) == 5000
    assert len(set(handed_out)) == 5000, Counter(handed_out).most_common(3)
    with Client("127.0.0.1", daemon.port) as root:
        root.login("root", "admin pass")
        assert root.meter_status() == (0, 5000)
        dump = root.dump()
    assert len(dump) == 5000
    credited = Counter(line.rsplit("]", 1)[1] for line in dump)
    assert credited == {name: 1000 for name in readers}
    for name, (_, _, password) in readers.items():
        with Client("127.0.0.1", daemon.port) as client:
            client.login(name, password)
            assert client.meter_status() == (1000, 5000)


def job_or_wait(client):
    """JOB; while the last unread meters are held by the others (450), ask again: None means all done."""
    while True:
        try:
            return client.job()
        except TransientError as exc:
            assert exc.code == 450 and "held by other readers" in exc.reply.lines[0], exc
            time.sleep(0.01)  # the holders are reading them: poll


def test_roster_of_1000_read_by_10_clients(start_daemon, tmp_path):
    roster = tmp_path / "roster.csv"
    meters = [f"G{n:05d}" for n in range(10000, 11000)]
    roster.write_text("meter\n" + "\n".join(meters) + "\n", encoding="utf-8")
    readers = {f"reader{i}": (f"Reader {i}", "reader", f"pw{i}") for i in range(10)}
    users = write_users_file(tmp_path / "readers.txt", {**readers, "root": TEST_USERS["root"]})
    daemon = start_daemon("--users", str(users), "--roster", str(roster))
    read_by = [dict() for _ in range(10)]

    def work(index):
        name = f"reader{index}"
        with Client("127.0.0.1", daemon.port) as client:
            client.login(name, readers[name][2])
            while (meter := job_or_wait(client)) is not None:
                value = int(meter[1:]) * 10 + index
                mine, _ = client.read(meter, value)
                read_by[index][meter] = value
                assert mine == len(read_by[index])

    _run_threads(10, work)
    with Client("127.0.0.1", daemon.port) as root:
        root.login("root", "admin pass")
        dump = root.dump()
    assert len(dump) == 1000
    expected = {meter: (value, f"reader{index}") for index, mine in enumerate(read_by) for meter, value in mine.items()}
    assert sorted(expected) == meters
    for line in dump:
        match = re.fullmatch(r"(G[0-9]{5})=([0-9]+)@[0-9T:-]{16}\[\](reader[0-9])", line)
        assert match, line
        assert expected[match.group(1)] == (int(match.group(2)), match.group(3))


def test_jobs_are_bounded_per_reader_and_held_ones_are_not_all_done(tmp_path, engine):
    """One reader on many connections cannot hoard the roster; while others hold the rest, JOB says so."""
    from conftest import Daemon, RawConnection

    roster = tmp_path / "roster.csv"
    roster.write_text("meter\nG10001\nG10002\nG10003\n")
    daemon = Daemon(
        tmp_path,
        "--users",
        str(write_users_file(tmp_path / "u.txt")),
        "--roster",
        str(roster),
        "--max-jobs-per-reader",
        "2",
        engine=engine,
    )
    connections = [RawConnection(daemon.port) for _ in range(5)]
    try:
        for raw, (name, password) in zip(
            connections, [("carol", "secret")] * 3 + [("root", "admin pass")] * 2, strict=True
        ):
            raw.reply()
            raw.command(f"USER {name}")
            assert raw.command(f"PASS {password}").code == 230
        assert connections[0].command("JOB").code == 250
        assert connections[1].command("JOB").code == 250
        refused = connections[2].command("JOB")  # carol's third connection: two jobs are her most
        assert refused.code == 450 and "you hold 2 jobs" in refused.lines[0]
        assert connections[3].command("JOB").lines[0].startswith("G10003")
        held = connections[4].command("JOB")  # every unread meter is held by someone: not 251
        assert held.code == 450 and held.lines[0].startswith("3 unread meters are held by other readers")
        for raw in connections[:4]:
            raw.close()
    finally:
        for raw in connections:
            raw.close()
        daemon.stop()
