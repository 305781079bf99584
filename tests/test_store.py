"""The SQLite store: durability, atomicity, concurrency, migrations and faults."""

import os
import sqlite3
import tempfile
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lineproto.domain.accounts import User
from lineproto.domain.meters import BadReading, RosterEntry, UnknownMeter
from lineproto.domain.roulette import BelowZero, InsufficientChips, Limits, SpinResult, Table, parse_bet
from lineproto.store import SqliteStore, StorageError, StorageFull, StoreOpenError
from lineproto.store import audit as audit_log
from lineproto.store.schema import SCHEMA_VERSION

LIMITS = Limits(1, 500)
RED = parse_bet("RED", "american")


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "store.db")


def test_users_round_trip_and_survive_reopen(path):
    store = SqliteStore(path)
    user = User("carol", "Carol Dent", frozenset({"reader", "admin"}), "scrypt$1$2$3$4$5")
    store.put_user(user)
    store.close()
    store = SqliteStore(path)
    assert store.get_user("carol") == user
    assert store.list_users() == [user]
    assert store.delete_user("carol") and not store.delete_user("carol")
    assert store.get_user("carol") is None
    store.close()


def test_table_changes_are_atomic_and_durable(path):
    store = SqliteStore(path)
    store.update_table("dave", 100, LIMITS, lambda t: t.place(RED, 60))
    with pytest.raises(InsufficientChips):
        store.update_table("dave", 100, LIMITS, lambda t: t.place(RED, 50))
    result = store.update_table("dave", 100, LIMITS, lambda t: t.resolve("1"))  # 1 is red
    assert result.bankroll == 160
    store.close()
    store = SqliteStore(path)
    table = store.load_table("dave", LIMITS)
    assert (table.bankroll, table.rounds, table.bets) == (160, 1, [])
    assert store.audit("dave") == {"start": 100, "spins": 1, "staked": 60, "returned": 120}
    store.close()


def test_a_failing_change_stores_nothing(path):
    store = SqliteStore(path)
    store.update_table("dave", 100, LIMITS, lambda t: t.place(RED, 10))

    def place_then_fail(table):
        table.place(RED, 20)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        store.update_table("dave", 100, LIMITS, place_then_fail)
    table = store.load_table("dave", LIMITS)
    assert table.bankroll == 90 and len(table.bets) == 1
    store.close()


def test_concurrent_bets_of_one_player_never_overdraw(path):
    store = SqliteStore(path)
    accepted = []

    def bettor():
        for _ in range(60):
            try:
                store.update_table("dave", 1000, LIMITS, lambda t: t.place(RED, 10))
                accepted.append(10)
            except InsufficientChips:
                pass

    threads = [threading.Thread(target=bettor) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    table = store.load_table("dave", LIMITS)
    assert sum(accepted) == 1000 and table.bankroll == 0 and table.staked == 1000
    store.close()


def test_meters_50_threads_100_jobs_each(path):
    store = SqliteStore(path)
    meters = store.meters
    meters.load_roster([f"M{i:05d}" for i in range(5000)])
    taken = {}

    def reader(name):
        mine = []
        for _ in range(100):
            meter = meters.next_job(name)
            mine.append(meter)
            meters.submit(name, meter, 1)
        taken[name] = mine

    threads = [threading.Thread(target=reader, args=(f"r{i}",)) for i in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    handed = [meter for mine in taken.values() for meter in mine]
    assert len(handed) == len(set(handed)) == 5000
    assert all(meters.status(name) == (100, 5000) for name in taken)
    assert meters.next_job("late") is None
    dump = meters.dump()
    assert len(dump) == 5000
    owner = {meter: name for name, mine in taken.items() for meter in mine}
    assert all(line.endswith("]" + owner[line.split("=", 1)[0]]) for line in dump)
    store.close()


def test_meter_rules_match_the_domain(path):
    store = SqliteStore(path)
    meters = store.meters
    demo = meters.next_job("carol")
    assert meters.next_job("carol") == demo  # a held job is handed back, not a new one
    with pytest.raises(UnknownMeter):
        meters.submit("carol", "G00000" if demo != "G00000" else "G00001", 5)
    with pytest.raises(BadReading):
        meters.submit("carol", demo, None, "   ")
    assert meters.submit("carol", demo, None, "dog in the yard") == (1, 1)
    assert meters.submit("dave", demo, 42) == (1, 1)  # supersedes in counts
    assert meters.status("carol") == (0, 1)
    assert len(meters.history()) == 2
    assert meters.dump()[0].startswith(f"{demo}=42@")
    store.close()


def test_held_jobs_return_to_the_pool_on_restart(path):
    store = SqliteStore(path)
    store.meters.load_roster(["A", "B"])
    assert store.meters.next_job("carol") == "A"
    store.close()
    store = SqliteStore(path)
    assert store.meters.release_all() == 1
    assert store.meters.next_job("dave") == "A"
    store.close()


def test_newer_schema_is_refused(path):
    SqliteStore(path).close()
    connection = sqlite3.connect(path)
    connection.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    connection.commit()
    connection.close()
    with pytest.raises(StoreOpenError, match="newer"):
        SqliteStore(path)


def test_corrupt_file_and_missing_directory(tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreOpenError, match="cannot open"):
        SqliteStore(str(bad))
    with pytest.raises(StoreOpenError, match="does not exist"):
        SqliteStore(str(tmp_path / "nope" / "x.db"))


def test_full_database_gives_storage_full_and_recovers(path):
    store = SqliteStore(path)
    page_count = store.run(lambda c: c.execute("PRAGMA page_count").fetchone()[0])
    store.run(lambda c: c.execute(f"PRAGMA max_page_count = {page_count + 2}"))
    accepted = 0
    with pytest.raises(StorageFull):
        for i in range(10_000):
            meter = store.meters.next_job("carol")
            store.meters.submit("carol", meter, i, when=None)
            accepted += 1
    mine, total = store.meters.status("carol")
    assert mine == total == accepted  # nothing half-applied
    store.run(lambda c: c.execute("PRAGMA max_page_count = 1000000"))
    meter = store.meters.next_job("carol")
    assert store.meters.submit("carol", meter, 1) == (accepted + 1, accepted + 1)
    store.close()


class ReadOnlyAfter(sqlite3.Connection):
    """A connection that starts failing writes when ``broken`` is set: a disk gone read-only."""

    broken = False  # set per instance by the test

    def execute(self, sql, *args):
        if self.broken and sql.startswith(("INSERT", "UPDATE", "DELETE", "COMMIT")):
            raise sqlite3.OperationalError("attempt to write a readonly database")
        return super().execute(sql, *args)


def test_read_only_database_gives_storage_error_and_recovers(path, monkeypatch):
    real_connect = sqlite3.connect
    monkeypatch.setattr(sqlite3, "connect", lambda *a, **k: real_connect(*a, factory=ReadOnlyAfter, **k))
    store = SqliteStore(path)
    connection = store._writer._connection
    store.update_table("dave", 100, LIMITS, lambda t: t.place(RED, 10))
    connection.broken = True
    with pytest.raises(StorageError, match="readonly"):
        store.update_table("dave", 100, LIMITS, lambda t: t.place(RED, 10))
    connection.broken = False
    table = store.load_table("dave", LIMITS)
    assert table.bankroll == 90 and table.staked == 10
    store.update_table("dave", 100, LIMITS, lambda t: t.place(RED, 10))
    assert store.load_table("dave", LIMITS).staked == 20
    store.close()


def test_backup_is_a_consistent_copy(path, tmp_path):
    store = SqliteStore(path)
    store.meters.load_roster(["A"])
    store.meters.submit("carol", store.meters.next_job("carol"), 7)
    store.backup(str(tmp_path / "copy.db"))
    store.close()
    copy = SqliteStore(str(tmp_path / "copy.db"))
    assert copy.meters.dump()[0].startswith("A=7@")
    copy.close()


def test_durability_settings(path):
    store = SqliteStore(path)
    assert store.run(lambda c: c.execute("PRAGMA journal_mode").fetchone()[0]) == "wal"
    assert store.run(lambda c: c.execute("PRAGMA synchronous").fetchone()[0]) == 2  # FULL
    store.close()


def test_database_locked_too_long_gives_storage_error(path):
    store = SqliteStore(path, busy_timeout=0.2)
    store.update_table("dave", 100, LIMITS, lambda t: t.place(RED, 10))
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    with pytest.raises(StorageError, match="locked"):
        store.update_table("dave", 100, LIMITS, lambda t: t.place(RED, 10))
    other.execute("ROLLBACK")
    other.close()
    store.update_table("dave", 100, LIMITS, lambda t: t.place(RED, 10))
    assert store.load_table("dave", LIMITS).staked == 20
    store.close()


def test_version_1_database_is_migrated_with_its_readings(path):
    from lineproto.store import schema

    connection = sqlite3.connect(path, isolation_level=None)
    for statement in schema._statements(schema.MIGRATIONS[0]):
        connection.execute(statement)
    connection.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    connection.execute("INSERT INTO submissions VALUES (1, 'M1', 5, '', '2026-11-22T09:00:00+00:00', 'carol')")
    connection.execute("INSERT INTO submissions VALUES (2, 'M2', 6, '', '2026-11-22T09:01:00+00:00', 'dave')")
    connection.execute("INSERT INTO latest VALUES ('M1', 1, 'carol'), ('M2', 2, 'dave')")
    connection.execute("INSERT INTO issued VALUES ('M1'), ('M2')")
    connection.close()
    store = SqliteStore(path)
    assert store.found_version == 1
    assert store.meters.status("carol") == (1, 2)
    assert store.meters.submit("carol", "M2", 7) == (2, 2)  # carol's reading supersedes dave's
    assert store.meters.status("dave") == (0, 2)
    store.close()
    reopened = SqliteStore(path)
    assert reopened.found_version == SCHEMA_VERSION
    reopened.close()


def test_bets_open_before_receipts_existed_get_slips_in_the_order_placed(path):
    from lineproto.store import schema

    receipts = next(i for i, step in enumerate(schema.MIGRATIONS) if "cleared_bets" in step)
    connection = sqlite3.connect(path, isolation_level=None)
    for step in schema.MIGRATIONS[:receipts]:
        for statement in schema._statements(step):
            connection.execute(statement)
    connection.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(receipts),))
    connection.execute("INSERT INTO players VALUES ('dave', 'american', 85, 1, 100)")
    connection.execute("INSERT INTO open_bets VALUES ('dave', 0, 'RED', 10), ('dave', 1, '17', 5)")
    connection.execute(
        "INSERT INTO spins (player, wheel, pocket, at, staked, returned, bankroll_after, round) "
        "VALUES ('dave', 'american', '0', '2026-12-01T10:00:00+00:00', 0, 0, 100, 1)"
    )
    connection.close()
    store = SqliteStore(path)
    try:
        table = store.load_table("dave", LIMITS)
        assert [(b.bet.name, b.slip) for b in table.bets] == [("RED", 1), ("17", 2)]
        assert store.update_table("dave", 100, LIMITS, lambda t: t.place(RED, 1)).slip == 3
        assert store.slip("dave", 2).state == "open"
        (old_round,) = store.history("dave", 10)
        assert (old_round.table, old_round.round, old_round.outcomes) == ("private", 1, ())
        assert [audit.difference for audit in store.chip_audits()] == [0]
    finally:
        store.close()


def test_receipts_history_and_ledger_survive_a_reopen_in_their_exact_order(path):
    store = SqliteStore(path)
    store.update_table("dave", 100, LIMITS, lambda t: t.place(RED, 10))
    store.update_table("dave", 100, LIMITS, lambda t: t.resolve("1"))  # red: +10
    store.credit("dave", "root", 50, "bonus", 100, LIMITS)  # the same second as the spins, most likely
    store.update_table("dave", 100, LIMITS, lambda t: t.place(RED, 5))
    store.update_table("dave", 100, LIMITS, lambda t: t.clear())
    store.update_table("dave", 100, LIMITS, lambda t: t.place(RED, 7))
    store.update_table("dave", 100, LIMITS, lambda t: t.resolve("2"))  # black: -7
    store.credit("dave", "root", -3, "fee", 100, LIMITS)
    with pytest.raises(BelowZero):
        store.credit("dave", "root", -1000, "too much", 100, LIMITS)
    store.close()
    store = SqliteStore(path)
    try:
        slips = [store.slip("dave", n) for n in (1, 2, 3)]
        assert [(s.number, s.round, s.state, s.returned) for s in slips] == [
            (1, 1, "win", 20),
            (2, 2, "cleared", 5),
            (3, 2, "lose", 0),
        ]
        assert store.slip("dave", 4) is None and store.slip("carol", 1) is None
        kinds = [(type(e).__name__, getattr(e, "round", None) or e.amount) for e in store.history("dave", 10)]
        assert kinds == [("CreditRecord", -3), ("RoundRecord", 2), ("CreditRecord", 50), ("RoundRecord", 1)]
        assert [type(e).__name__ for e in store.history("dave", 2)] == ["CreditRecord", "RoundRecord"]
        assert [(e.amount, e.bankroll_after, e.reason) for e in store.ledger("dave")] == [
            (50, 160, "bonus"),
            (-3, 150, "fee"),
        ]
        (audit,) = store.chip_audits()
        assert (audit.player, audit.start, audit.credits, audit.net, audit.bankroll, audit.difference) == (
            "dave",
            100,
            47,
            3,
            150,
            0,
        )
    finally:
        store.close()


# -- jobs: whole commands run on the writer thread (Store.submit)


def _user(name):
    return User(name, name.title(), frozenset({"player"}), "scrypt$unused")


def test_a_job_runs_its_store_calls_in_the_batch_and_its_result_comes_after_commit(path):
    store = SqliteStore(path)
    try:

        def job():
            store.put_user(_user("ann"))  # on the writer thread: runs at once, inside the batch
            return store.get_user("ann").real_name

        assert store.submit(job).result(10) == "Ann"
    finally:
        store.close()
    reopened = SqliteStore(path)
    assert reopened.get_user("ann") is not None  # committed before the result was handed out
    reopened.close()


def test_a_job_whose_store_call_fails_fails_its_whole_batch(path):
    store = SqliteStore(path)
    try:
        entered, release = threading.Event(), threading.Event()

        def blocker():
            entered.set()
            release.wait(10)

        def good():
            store.put_user(_user("bob"))
            return "bob saved"

        def broken():
            try:
                store.run(lambda c: c.execute("INSERT INTO no_such_table VALUES (1)"))
            except StorageError:
                return "the handler mapped it to a reply"  # but the batch cannot commit

        first = store.submit(blocker)
        assert entered.wait(10)
        together = [store.submit(good), store.submit(broken)]  # queued behind the blocker: one batch
        release.set()
        assert first.result(10) is None
        for future in together:
            with pytest.raises(StorageError):
                future.result(10)
        assert store.get_user("bob") is None  # nothing of the failed batch was kept
        assert store.submit(good).result(10) == "bob saved"  # and the store carries on
    finally:
        store.close()


def test_a_domain_refusal_in_a_job_undoes_that_call_only(path):
    store = SqliteStore(path)
    try:
        limits = Limits()

        def overdraw():
            store.update_table("dave", 100, limits, lambda t: t.place(parse_bet("RED", t.wheel_kind), 50))
            store.update_table("dave", 100, limits, lambda t: t.place(parse_bet("RED", t.wheel_kind), 80))

        with pytest.raises(InsufficientChips):
            store.submit(overdraw).result(10)
        table = store.load_table("dave", limits)
        assert (table.bankroll, table.staked) == (50, 50)  # the first bet stands, the second never was
    finally:
        store.close()


# -- a table change writes only what it changed


def _changes(store) -> int:
    """Rows inserted, updated or deleted on the writer's connection so far (SQLite's own count)."""
    return store.run(lambda c: c.total_changes)


def test_a_stored_bet_writes_the_new_bet_and_the_bankroll_only(path):
    store = SqliteStore(path)
    try:
        for _ in range(50):
            store.update_table("dave", 1000, LIMITS, lambda t: t.place(RED, 1))
        before = _changes(store)
        store.update_table("dave", 1000, LIMITS, lambda t: t.place(RED, 2))
        assert _changes(store) - before == 2  # one open_bets row, the player's row
        before = _changes(store)
        store.update_table("dave", 1000, LIMITS, lambda t: t.set_wheel("american"))  # no change at all
        assert _changes(store) == before
        table = store.load_table("dave", LIMITS)
        assert (table.bankroll, table.staked, len(table.bets), table.bets[-1].amount) == (948, 52, 51, 2)
        before = _changes(store)
        assert store.update_table("dave", 1000, LIMITS, lambda t: t.clear()) == 52
        # every bet leaves, the bankroll comes back, each bet's receipt says cleared
        assert _changes(store) - before == 51 + 1 + 51
    finally:
        store.close()


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(
                st.just("bet"), st.sampled_from(["RED", "17", "SPLIT 17-18", "0", "00", "FOUR"]), st.integers(1, 600)
            ),
            st.tuples(st.just("clear")),
            st.tuples(st.just("spin"), st.sampled_from(["0", "1", "17", "00"])),
            st.tuples(st.just("wheel"), st.sampled_from(["american", "european"])),
        ),
        max_size=30,
    )
)
def test_table_changes_stored_as_differences_read_back_as_the_table_in_memory(steps):
    with tempfile.TemporaryDirectory() as directory:
        db = os.path.join(directory, "t.db")
        store = SqliteStore(db, sync="normal")
        model = Table(300, limits=LIMITS)
        for step in steps:
            change = _table_change(step)
            try:
                expected = change(model)
            except Exception as exc:  # the same refusal, and nothing stored
                with pytest.raises(type(exc)):
                    store.update_table("dave", 300, LIMITS, change)
            else:
                assert _outcome(store.update_table("dave", 300, LIMITS, change)) == _outcome(expected)
        store.close()
        reopened = SqliteStore(db)
        stored = reopened.load_table("dave", LIMITS)
        if stored is not None:
            assert stored.snapshot() == model.snapshot()
        reopened.close()


def _table_change(step):
    kind = step[0]
    if kind == "bet":
        return lambda table: table.place(parse_bet(step[1], table.wheel_kind), step[2])
    if kind == "clear":
        return lambda table: table.clear()
    if kind == "spin":
        return lambda table: table.resolve(step[1])
    return lambda table: table.set_wheel(step[1])


def _outcome(result):
    return (result.bankroll, result.rounds, result.net) if isinstance(result, SpinResult) else result


# -- reads: a read-only connection, not the writer's queue


def test_reads_do_not_wait_for_the_writer(path):
    store = SqliteStore(path)
    try:
        store.put_user(_user("ann"))
        store.update_table("ann", 100, LIMITS, lambda t: t.place(RED, 10))
        store.meters.load_roster(["A", "B"])
        store.meters.submit("ann", "A", 7)
        entered, release = threading.Event(), threading.Event()

        def blocker():
            entered.set()
            release.wait(30)

        busy = store.submit(blocker)  # the writer is stuck in this batch until release
        assert entered.wait(10)
        answers, done = {}, threading.Event()

        def read_everything():
            answers["user"] = store.get_user("ann").name
            answers["users"] = [user.name for user in store.list_users()]
            answers["table"] = store.load_table("ann", LIMITS).staked
            answers["audit"] = store.audit("ann")["start"]
            meters = store.meters
            answers["meters"] = (
                meters.status("ann"),
                meters.dump()[0][:4],
                len(meters.history()),
                meters.held("ann"),
                meters.roster_size(),
                meters.remaining(),
                len(meters.roster()),
            )
            done.set()

        threading.Thread(target=read_everything, daemon=True).start()
        finished = done.wait(10)
        release.set()
        busy.result(10)
        assert finished, "a read waited behind the writer's batch"
        assert answers == {
            "user": "ann",
            "users": ["ann"],
            "table": 10,
            "audit": 100,
            "meters": ((1, 1), "A=7@", 1, None, 2, 1, 2),
        }
    finally:
        store.close()


def test_a_job_that_only_reads_is_answered_before_its_batch_commits(path):
    store = SqliteStore(path)
    try:
        store.put_user(_user("ann"))
        started, go_on = threading.Event(), threading.Event()
        last_started, last_go_on = threading.Event(), threading.Event()

        def blocker():
            started.set()
            go_on.wait(30)

        def writes():
            store.put_user(_user("bob"))
            return "bob saved"

        def reads():
            user = store.get_user("bob")
            return store.get_user("ann").name, user

        def last():
            last_started.set()
            last_go_on.wait(30)

        first = store.submit(blocker)
        assert started.wait(10)
        batch = [store.submit(job) for job in (writes, reads, last)]  # queued together: one batch
        go_on.set()
        assert last_started.wait(10)  # the batch ran writes and reads, and cannot commit yet
        try:
            # bob's change is not acknowledged yet, so the read does not show it
            assert batch[1].result(10) == ("ann", None)
            assert not batch[0].done()
        finally:
            last_go_on.set()
        assert batch[0].result(10) == "bob saved" and first.result(10) is None
        assert store.get_user("bob") is not None
    finally:
        store.close()


def test_a_job_reads_what_it_changed_itself(path):
    store = SqliteStore(path)
    try:

        def job():
            before = store.meters.roster_size()
            store.meters.load_roster(["A"])
            return before, store.meters.roster_size(), store.meters.next_job("ann"), store.meters.held("ann")

        assert store.submit(job).result(10) == (None, 1, "A", "A")
    finally:
        store.close()


def test_a_database_only_in_memory_still_reads(tmp_path):
    store = SqliteStore(":memory:")
    try:
        store.put_user(_user("ann"))
        assert store.get_user("ann").name == "ann"
        assert store.submit(lambda: store.get_user("ann").name).result(10) == "ann"
    finally:
        store.close()


# -- the roster, administered from another process while the daemon runs


def test_roster_cleared_and_demo_mode_from_a_second_store_on_the_same_file(path):
    daemon, admin = SqliteStore(path), None
    try:
        daemon.meters.load_roster(["A", "B", "C"])
        assert daemon.meters.next_job("carol#1") == "A"
        daemon.meters.submit("carol", "B", 5)
        admin = SqliteStore(path)  # what daemon.py roster list|clear|demo opens
        assert admin.meters.roster() == [
            RosterEntry("A", False, "carol#1"),
            RosterEntry("B", True, None),
            RosterEntry("C", False, None),
        ]
        assert admin.meters.clear_roster() == 2
        assert daemon.meters.next_job("dave#2") is None  # seen at once by the running daemon
        assert daemon.meters.submit("carol", "A", 6) == (2, 2)  # carol was at A: it still counts
        assert admin.meters.switch_to_demo() == 0
        assert daemon.meters.roster() is None
        assert daemon.meters.next_job("dave#2") not in ("A", "B", "C")
        admin.close()
        daemon.close()
        admin = daemon = None
        reopened = SqliteStore(path)
        assert reopened.meters.roster_size() is None
        assert [line.split("@")[0] for line in reopened.meters.dump()] == ["A=6", "B=5"]
        reopened.close()
    finally:
        for store in (daemon, admin):
            if store is not None:
                store.close()


def test_daemons_creating_one_database_at_the_same_moment_all_open_it(tmp_path):
    """inetd starts a daemon per connection: several may create the database at once (each migration once)."""
    for attempt in range(8):
        path = str(tmp_path / f"new-{attempt}.db")
        barrier = threading.Barrier(4)
        errors: list[Exception] = []

        def open_it(path=path, barrier=barrier, errors=errors):
            barrier.wait()
            try:
                SqliteStore(path).close()
            except Exception as exc:
                errors.append(exc)

        threads = [threading.Thread(target=open_it) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        with sqlite3.connect(path) as check:  # one audit chain, begun once, under the one key on disk
            assert check.execute("SELECT count(*) FROM audit_log WHERE kind = 'start'").fetchone()[0] == 1
        audit_key = (tmp_path / f"new-{attempt}.db.audit-key").read_text().strip()
        report = audit_log.verify_database(sqlite3.connect(path), bytes.fromhex(audit_key))
        assert report.intact, report
