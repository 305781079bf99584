"""Request labels through the real socket, on both engines: echoed, and a labelled change run once.

A labelled change's record is written in the transaction of the change, so the same label
again gets the first reply on any connection, after a restart, and on another daemon on the
same database file (docs/PROTOCOL.md 9a).
"""

import select
import socket
import sqlite3
import struct
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import TEST_HASH_COST, Daemon, RawConnection, stat, write_users_file
from lineproto.domain.accounts import User, hash_password
from lineproto.wire import Reply

DAVE = User("dave", "Dave Rolls", frozenset({"player"}), hash_password("hunter2", **TEST_HASH_COST))

PASSWORDS = {"carol": "secret", "dave": "hunter2", "root": "admin pass"}


def login(port: int, name: str) -> RawConnection:
    raw = RawConnection(port)
    raw.reply()
    codes = [raw.command(f"USER {name}").code]
    if name != "guest":
        codes.append(raw.command(f"PASS {PASSWORDS[name]}").code)
    assert codes[-1] == 230, codes
    return raw


def reset(raw: RawConnection) -> None:
    """Close with a TCP reset (SO_LINGER 0): what a dropped mobile link looks like to the daemon."""
    raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    raw.sock.close()


def send_and_lose_reply(raw: RawConnection, line: str) -> None:
    """Send ``line``, wait until its reply has arrived, and reset without reading it (a lost reply)."""
    raw.send(line.encode() + b"\r\n")
    readable, _, _ = select.select([raw.sock], [], [], 10)
    assert readable, "no reply within 10 s"
    reset(raw)


def dump_lines(port: int) -> list[str]:
    with login(port, "root") as root:
        return list(root.command("DUMP").lines[1:-1])


def a_job(raw: RawConnection) -> str:
    job = raw.command("JOB")
    assert job.code == 250, job
    return job.lines[0].split()[0]


@pytest.fixture
def database(tmp_path):
    return tmp_path / "labels.db"


def test_labels_are_echoed_after_the_code_and_unlabelled_lines_are_unchanged(shared):
    with login(shared.port, "guest") as raw:
        raw.send(b"@n1 NOOP\r\nNOOP\r\n@s.2 STAT\r\n")
        noop, plain, status = raw.replies(3)
        assert noop == Reply(200, ("@n1 OK",)) and plain == Reply(200, ("OK",))
        assert status.code == 211 and status.lines[0] == "@s.2 Status:" and status.lines[-1] == "End of status"
        refused = raw.command("@no/slash NOOP")
        assert refused.code == 501 and "1-64 characters of A-Za-z0-9._:-" in refused.lines[0], refused
        assert raw.command("@lonely").code == 501
        assert raw.command("@u1 FROB").lines[0].startswith("@u1 Unknown command FROB")


def test_a_guest_bet_runs_once_per_label(shared):
    with login(shared.port, "guest") as raw:
        first = raw.command("@b1 BET RED 10")
        assert first.code == 200 and first.lines[0].startswith("@b1 Bet RED for 10"), first
        assert raw.command("@b1 BET RED 10") == first
        assert stat(raw)["bankroll"] == "90"
        other = raw.command("@b1 BET RED 20")
        assert other.code == 554 and "used for another command: BET RED 10" in other.lines[0], other
        spin = raw.command("@s1 SPIN")
        assert raw.command("@s1 SPIN") == spin and spin.code == 250
        assert stat(raw)["rounds"] == "1"


def test_a_lost_read_reply_is_replayed_on_a_new_connection(start_daemon):
    daemon = start_daemon(users=True)
    first = login(daemon.port, "carol")
    meter = a_job(first)
    send_and_lose_reply(first, f"@r-17 READ {meter} 5983")
    with login(daemon.port, "carol") as again:
        replayed = again.command(f"@r-17 READ {meter} 5983")
        assert replayed.code == 250 and replayed.lines[0].startswith("@r-17 Accepted"), replayed
        assert stat(again)["label-replays"] == "1"
        other = again.command(f"@r-17 READ {meter} 6000")
        assert other.code == 554, other
    (reading,) = dump_lines(daemon.port)  # one submission: the replay ran nothing
    assert reading.startswith(f"{meter}=5983@"), reading


def _submissions(database) -> int:
    with sqlite3.connect(database) as check:
        return check.execute("SELECT count(*) FROM submissions").fetchone()[0]


def _bankroll(database, player: str) -> int:
    with sqlite3.connect(database) as check:
        return check.execute("SELECT bankroll FROM players WHERE name = ?", (player,)).fetchone()[0]


def _cut_off_while_held(daemon, database, raw, user: str, line: bytes):
    """Send ``line`` on ``raw`` while a BEGIN IMMEDIATE holds the store, send it again on a second
    connection of ``user`` (the same label while its first use may still run), reset ``raw``, let
    the store go: the second connection's reply."""
    blocker = sqlite3.connect(database, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # the daemon's commit of the change waits for this lock
    try:
        raw.send(line)
        with login(daemon.port, user) as waiting:
            waiting.send(line)
            reset(raw)
            blocker.execute("COMMIT")
            return waiting.reply()
    finally:
        if blocker.in_transaction:
            blocker.execute("COMMIT")
        blocker.close()


def test_a_bet_cut_off_while_the_store_is_held_runs_once(start_daemon, database):
    """RST right after the send while a BEGIN IMMEDIATE holds the store; the retry gets the bet's reply."""
    daemon = start_daemon("--db", str(database), users=True)
    raw = login(daemon.port, "dave")
    answer = _cut_off_while_held(daemon, database, raw, "dave", b"@bet-1 BET RED 10\r\n")
    assert answer.code == 200 and answer.lines[0].startswith("@bet-1 Bet RED for 10 (pays 1:1); bankroll 990"), answer
    with login(daemon.port, "dave") as later:
        assert later.command("@bet-1 BET RED 10") == answer
        bets = later.command("BETS")
        assert bets.code == 211 and len(bets.lines) == 3, bets  # header, the one bet, the total
    assert _bankroll(database, "dave") == 990


def test_a_spin_is_replayed_after_a_restart_and_on_a_second_daemon(tmp_path, engine, database):
    users = write_users_file(tmp_path / "users.txt")
    first = Daemon(tmp_path, "--db", str(database), "--users", str(users), engine=engine)
    try:
        with login(first.port, "dave") as raw:
            assert raw.command("BET RED 10").code == 200
            spin = raw.command("@spin-1 SPIN")
            assert spin.code == 250 and spin.lines[0].startswith("@spin-1 "), spin
    finally:
        assert first.stop() == 0
    after_spin = _bankroll(database, "dave")
    restarted = Daemon(tmp_path, "--db", str(database), engine=engine)
    second = Daemon(tmp_path, "--db", str(database), engine=engine)
    try:
        for daemon in (restarted, second):
            with login(daemon.port, "dave") as raw:
                assert raw.command("@spin-1 SPIN") == spin
                assert stat(raw)["rounds"] == "1"
        # Both daemons on one file: a label used on one is replayed on the other.
        with login(restarted.port, "dave") as one, login(second.port, "dave") as two:
            placed = one.command("@bet-2 BET BLACK 5")
            assert two.command("@bet-2 BET BLACK 5") == placed and placed.code == 200
    finally:
        restarted.stop()
        second.stop()
    assert _bankroll(database, "dave") == after_spin - 5


def test_a_read_cut_off_while_the_store_is_held_is_submitted_once(start_daemon, database):
    daemon = start_daemon("--db", str(database), users=True)
    raw = login(daemon.port, "carol")
    meter = a_job(raw)
    answer = _cut_off_while_held(daemon, database, raw, "carol", f"@rd-1 READ {meter} 42\r\n".encode())
    assert answer.code == 250 and answer.lines[0].startswith("@rd-1 Accepted"), answer
    assert _submissions(database) == 1


# -- in process: random drops and retries equal each command applied once

BET_LINES = st.sampled_from(["BET RED 10", "BET BLACK 5", "BET 17 1", "CLR", "SPIN", "BET EVEN 20"])


def _services(path):
    from lineproto.commands import build_services
    from lineproto.commands import default_options as options_
    from lineproto.domain.accounts import UserDirectory
    from lineproto.store.sqlite import SqliteStore

    store = SqliteStore(str(path), sync="normal")
    store.put_user(DAVE)
    options = options_()
    options.seed = 7
    return build_services(UserDirectory(lookup=store.get_user), options, store), store


def _answer(session, line: str) -> Reply:
    from lineproto.commands import Blocking

    result = session.handle(line)
    return result.run() if isinstance(result, Blocking) else result


def _new_session(services):
    from lineproto.commands import Session

    session = Session(services)
    session.login(DAVE)
    return session


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(BET_LINES, st.integers(0, 3), st.booleans()), min_size=1, max_size=12))
def test_random_drops_and_retries_equal_each_command_applied_once(plan):
    """Each labelled command is sent 1-4 times (the replies before the last lost), sometimes on a new
    session (a reconnect): the replies and the table are those of each command run once."""
    from lineproto.domain.roulette import Limits
    from lineproto.wire.reply import reply_label

    with tempfile.TemporaryDirectory() as directory:
        flaky, flaky_store = _services(f"{directory}/flaky.db")
        once, once_store = _services(f"{directory}/once.db")
        try:
            session, reference = _new_session(flaky), _new_session(once)
            for number, (line, resends, reconnect) in enumerate(plan):
                for _ in range(resends):  # the replies of these were lost
                    _answer(session, f"@c{number} {line}")
                    if reconnect:
                        session = _new_session(flaky)
                got = reply_label(_answer(session, f"@c{number} {line}"))
                assert got == (f"c{number}", _answer(reference, line)), (number, line)
            mine, theirs = (s.load_table("dave", Limits()) for s in (flaky_store, once_store))
            assert (mine is None) == (theirs is None)
            if mine is not None and theirs is not None:
                assert (mine.bankroll, mine.rounds, [(b.bet.name, b.amount) for b in mine.bets]) == (
                    theirs.bankroll,
                    theirs.rounds,
                    [(b.bet.name, b.amount) for b in theirs.bets],
                )
        finally:
            flaky_store.close()
            once_store.close()


# -- expiry and the per-user bound, with the clock given


def _labels_database(path):
    from lineproto.store.schema import migrate

    connection = sqlite3.connect(path, isolation_level=None)
    migrate(connection, str(path))
    return connection


def test_records_expire_after_the_ttl_and_the_oldest_go_beyond_the_bound(tmp_path):
    from lineproto.store.labels import LabelBook, LabelPolicy, LabelRecord, find_label, record_label

    policy = LabelPolicy(ttl=100.0, per_user=3)
    record = LabelRecord("NOOP", 200, ("OK",))
    connection = _labels_database(tmp_path / "expiry.db")
    book = LabelBook(policy)
    for at, label in enumerate(["a", "b", "c", "d"]):
        record_label(connection, "dave", label, record, 1000.0 + at, policy)
        book.record(label, record, 1000.0 + at)
    record_label(connection, "carol", "a", record, 1000.0, policy)  # another user's records are their own
    assert [find_label(connection, "dave", label, 1004.0, policy.ttl) for label in "abcd"] == [None, *[record] * 3]
    assert [book.find(label, 1004.0) for label in "abcd"] == [None, *[record] * 3]
    assert find_label(connection, "carol", "a", 1004.0, policy.ttl) == record
    assert find_label(connection, "dave", "b", 1101.0, policy.ttl) is None and book.find("b", 1101.0) is None
    assert find_label(connection, "dave", "d", 1101.0, policy.ttl) == record == book.find("d", 1101.0)
    connection.close()


def test_a_label_ttl_that_is_not_positive_is_one_line_and_exit_2(tmp_path):
    import subprocess
    import sys

    from conftest import ROOT

    done = subprocess.run(
        [sys.executable, str(ROOT / "daemon.py"), "--label-ttl", "0"], capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1 and "--label-ttl" in done.stderr


# -- SIGKILL after the commit, before the reply: the fault injected in the store's writer

_KILL_AFTER_COMMIT = """
import os, signal, sys
import lineproto.store.writer as writer

settle = writer._settle

def settle_or_die(future, result, exc):
    if "RED for 13" in repr(result):  # the outcome of the doomed BET, committed, not yet handed out
        os.kill(os.getpid(), signal.SIGKILL)
    settle(future, result, exc)

writer._settle = settle_or_die
from lineproto.daemon import main
sys.argv[0] = "daemon.py"
sys.exit(main())
"""


def test_a_bet_committed_when_the_daemon_is_killed_before_its_reply_is_replayed(tmp_path, engine, database):
    import subprocess
    import sys
    import time

    users = write_users_file(tmp_path / "users.txt")
    notify = tmp_path / "killed.notify"
    args = ["--db", str(database), "--users", str(users), "--engine", engine, "--port", "0", "--notify", str(notify)]
    doomed = subprocess.Popen([sys.executable, "-c", _KILL_AFTER_COMMIT, *args], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not notify.exists():  # the daemon's readiness signal
            assert doomed.poll() is None and time.monotonic() < deadline, "the daemon did not start"
            time.sleep(0.01)
        port = int(notify.read_text().splitlines()[0].rsplit(":", 1)[1])
        with login(port, "dave") as raw:
            raw.send(b"@k-1 BET RED 13\r\n")
            assert raw.read_all() == b"", "a reply came from a daemon that was killed before it"
        assert doomed.wait(10) == -9
    finally:
        if doomed.poll() is None:
            doomed.kill()
            doomed.wait()
    assert _bankroll(database, "dave") == 987  # committed before the kill
    restarted = Daemon(tmp_path, "--db", str(database), engine=engine)
    try:
        with login(restarted.port, "dave") as raw:
            replayed = raw.command("@k-1 BET RED 13")
            assert replayed.code == 200 and replayed.lines[0].startswith("@k-1 Bet RED for 13 (pays 1:1); bankroll 987")
            assert stat(raw)["label-replays"] == "1"
    finally:
        restarted.stop()
    assert _bankroll(database, "dave") == 987


def test_a_change_that_could_not_commit_gets_a_labelled_451_and_its_label_stays_free(start_daemon, database):
    """The store held past the daemon's 5 s busy timeout: 451, nothing recorded; the same label then runs."""
    daemon = start_daemon("--db", str(database), users=True)
    with login(daemon.port, "dave") as raw:
        blocker = sqlite3.connect(database, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            failed = raw.command("@f-1 BET RED 10")  # waits out the busy timeout
        finally:
            blocker.execute("COMMIT")
            blocker.close()
        assert failed.code == 451 and failed.lines[0].startswith("@f-1 "), failed
        placed = raw.command("@f-1 BET RED 10")
        assert placed.code == 200 and placed.lines[0].startswith("@f-1 Bet RED for 10 (pays 1:1); bankroll 990")
        assert stat(raw)["label-replays"] == "0"


def test_a_label_that_arrives_while_its_first_use_waits_for_the_store_gets_that_reply(tmp_path):
    """Two sessions of dave, one label: the second is queued while the first waits for a held store
    (a BEGIN IMMEDIATE from outside); the first runs, the second gets its reply without running."""
    services, store = _services(tmp_path / "queued.db")
    first, second = _new_session(services), _new_session(services)
    blocker = sqlite3.connect(tmp_path / "queued.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        running = store.submit(first.handle("@w-1 BET RED 10").run)  # the writer waits for the lock
        waiting = store.submit(second.handle("@w-1 BET RED 10").run)
        assert not running.done() and not waiting.done()
    finally:
        blocker.execute("COMMIT")
        blocker.close()
    try:
        assert running.result(10) == waiting.result(10)
        assert running.result().lines[0].startswith("@w-1 Bet RED for 10 (pays 1:1); bankroll 990")
        assert services.stats.counters["label-replays"] == 1
        assert _answer(first, "BETS").lines[1:-1] == ("RED for 10 (pays 1:1)",)
    finally:
        store.close()
