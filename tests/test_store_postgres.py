"""The PostgreSQL store (``--db postgresql://...``): the Store's promises, and what daemons sharing it need.

Every test runs on a throw-away PostgreSQL server (the ``postgres_server`` and ``postgres_dsn``
fixtures of conftest.py, ``scripts/pgserver.py``); two stores on one database stand for two
daemons in process, and the socket tests start real daemons on both engines.
"""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import ROOT, Daemon, stat, write_users_file
from lineproto.domain.accounts import User
from lineproto.domain.roulette import AMERICAN, InsufficientChips, Limits, OpenBet, parse_bet
from lineproto.store import open_store
from lineproto.store.labels import LabelPolicy, LabelRecord
from lineproto.store.tables import StoredTables
from lineproto.wire.shapes import PlacedBet, Spin

LIMITS = Limits()
RED = parse_bet("RED", "american")


@pytest.fixture
def key(tmp_path):
    """The audit key file the PostgreSQL store needs (created at the first open)."""
    return str(tmp_path / "audit-key")


@pytest.fixture
def stores(postgres_dsn, key):
    """``stores()``: a new PostgresStore on the test's database (one per "daemon"); all closed after."""
    opened = []

    def open_one(**options):
        store = open_store(postgres_dsn, audit_key=key, audit_required=True, **options)
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        store.close()


def login(connection, name, password):
    assert connection.command(f"USER {name}").code == 331
    reply = connection.command(f"PASS {password}")
    assert reply.code == 230, reply
    return connection


def test_users_tables_and_the_ledger_are_kept_and_read_back_after_a_reopen(stores):
    store = stores()
    store.put_user(User("ann", "Ann Smith", frozenset({"player"}), "hash-1"))
    store.put_user(User("ann", "Ann Jones", frozenset({"player", "reader"}), "hash-2"))  # replaced
    store.update_table("ann", 1000, LIMITS, lambda table: table.place(RED, 30))
    store.credit("ann", "root", 50, "welcome", 1000, LIMITS)
    store.close()
    again = stores()
    assert again.list_users() == [User("ann", "Ann Jones", frozenset({"player", "reader"}), "hash-2")]
    table = again.load_table("ann", LIMITS)
    assert (table.bankroll, table.staked, table.slips) == (1020, 30, 1)
    (audit,) = again.chip_audits()
    assert (audit.start, audit.credits, audit.bankroll, audit.open_bets) == (1000, 50, 1020, 30)
    assert [(c.amount, c.reason) for c in again.ledger("ann")] == [(50, "welcome")]
    assert again.found_version >= 1


def test_two_stores_on_one_database_never_overdraw_one_player(stores):
    """Two "daemons" (two stores, each its own writer and connections) bet for one player at once."""
    daemons = [stores(), stores()]
    accepted: list[int] = []
    barrier = threading.Barrier(4)

    def bettor(store):
        barrier.wait()
        for _ in range(40):
            try:
                store.update_table("dave", 1000, LIMITS, lambda table: table.place(RED, 10))
                accepted.append(10)
            except InsufficientChips:
                pass

    threads = [threading.Thread(target=bettor, args=(daemons[i % 2],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    table = daemons[0].load_table("dave", LIMITS)
    assert sum(accepted) == 1000 and table.bankroll == 0 and table.staked == 1000
    (audit,) = daemons[1].chip_audits()
    assert audit.bankroll + audit.open_bets == audit.start


def test_the_daemon_serves_a_player_from_postgres_and_keeps_the_table_across_a_restart(
    tmp_path, engine, postgres_dsn, key, connect
):
    users = write_users_file(tmp_path / "users.txt")
    options = ("--db", postgres_dsn, "--audit-key", key, "--users", str(users))
    daemon = Daemon(tmp_path, *options, engine=engine)
    try:
        player = login(connect(daemon.port), "dave", "hunter2")
        assert player.command("BET RED 100").lines == ("Bet RED for 100 (pays 1:1); bankroll 900; slip 1",)
    finally:
        daemon.stop()
    daemon = Daemon(tmp_path, *options, engine=engine)
    try:
        player = login(connect(daemon.port), "dave", "hunter2")
        keys = stat(player)
        assert (keys["bankroll"], keys["open-bet-chips"]) == ("900", "100")
    finally:
        daemon.stop()


def test_postgres_without_an_audit_key_is_one_line_and_status_2(postgres_dsn, tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "daemon.py"), "--db", postgres_dsn, "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert "--audit-key FILE" in line and "Traceback" not in done.stderr


def test_an_unreachable_server_is_one_line_and_status_2(tmp_path, key):
    done = subprocess.run(
        [sys.executable, str(ROOT / "daemon.py"), "--db", "postgresql://nobody@127.0.0.1:1/none", "--audit-key", key],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert "cannot open database postgresql://nobody@127.0.0.1:1/none" in line


def test_postgres_without_psycopg_names_the_extra(tmp_path, key):
    # The package as installed without the extra: psycopg cannot be imported.
    hide = "import runpy, sys; sys.modules['psycopg'] = None; sys.argv[0] = 'daemon.py'; "
    hide += f"runpy.run_path({str(ROOT / 'daemon.py')!r}, run_name='__main__')"
    done = subprocess.run(
        [sys.executable, "-c", hide, "--db", "postgresql://x@127.0.0.1:1/x", "--audit-key", key, "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 2
    expected = "daemon.py: --db postgresql://... needs the postgres extra: pip install 'lineproto[postgres]'"
    assert done.stderr.splitlines() == [expected]


def test_a_database_restart_costs_at_most_the_commands_in_flight_and_the_daemon_reconnects(
    tmp_path, engine, postgres_server, postgres_dsn, key, connect
):
    users = write_users_file(tmp_path / "users.txt")
    daemon = Daemon(tmp_path, "--db", postgres_dsn, "--audit-key", key, "--users", str(users), engine=engine)
    try:
        player = login(connect(daemon.port), "dave", "hunter2")
        assert player.command("BET RED 10").code == 200
        postgres_server.restart()  # pg_ctl restart -m fast: every connection of the daemon is cut
        codes = []
        while len(codes) < 4 and 200 not in codes:
            codes.append(player.command("BET RED 10").code)
        assert codes[-1] == 200 and set(codes[:-1]) <= {451}, codes  # the broken connections' commands: 451
        assert len(codes) <= 3, codes  # the writer's connection and its reader's, each replaced once
        assert [player.command(line).code for line in ("BET RED 10", "STAT", "BETS", "SPIN")] == [200, 211, 211, 250]
        fresh = login(connect(daemon.port), "dave", "hunter2")  # a new session reads through the pool
        assert stat(fresh)["rounds"] == "1"
        assert "Traceback" not in daemon.log()
    finally:
        daemon.stop()


def _waiting_for_a_lock(store) -> int:
    """Transactions of the database waiting for a lock (row or advisory) right now."""
    return store._readers.run(lambda c: c.execute("SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()[0])


def _until(condition, timeout=30.0):
    """Wait for ``condition()`` (a state of the database that a test needs before it goes on)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_one_label_used_on_two_daemons_at_once_runs_once_and_the_second_gets_the_first_record(stores):
    first, second = stores(), stores()
    policy = LabelPolicy()
    runs = []
    release = threading.Event()

    def run_first():
        runs.append("first")
        release.wait(30)
        return LabelRecord("BET RED 10", 200, ("Bet RED for 10",))

    def run_second():
        runs.append("second")
        return LabelRecord("BET RED 10", 200, ("second run",))

    outcomes = {}
    a = threading.Thread(target=lambda: outcomes.__setitem__("a", first.once("dave", "b-1", run_first, policy)))
    a.start()
    _until(lambda: runs == ["first"])
    b = threading.Thread(target=lambda: outcomes.__setitem__("b", second.once("dave", "b-1", run_second, policy)))
    b.start()
    _until(lambda: _waiting_for_a_lock(first) == 1)  # the second daemon waits for the first's label
    release.set()
    a.join(30)
    b.join(30)
    assert runs == ["first"]
    assert outcomes["a"] == (LabelRecord("BET RED 10", 200, ("Bet RED for 10",)), False)
    assert outcomes["b"] == (LabelRecord("BET RED 10", 200, ("Bet RED for 10",)), True)


def test_batches_of_two_daemons_that_deadlock_are_run_again_and_both_commit(stores):
    """Each daemon's batch locks one player, then the other's: PostgreSQL aborts one (40P01); it runs again."""
    daemons = [stores(), stores()]
    both_hold_one = threading.Barrier(2, timeout=30)

    def job(store, players):
        attempts = []

        def run():
            attempts.append(1)
            store.update_table(players[0], 1000, LIMITS, lambda table: table.place(RED, 10))
            if len(attempts) == 1:
                both_hold_one.wait()  # each batch holds its first player's row lock now
            store.update_table(players[1], 1000, LIMITS, lambda table: table.place(RED, 10))
            return len(attempts)

        return store.submit(run)

    futures = [job(daemons[0], ("ann", "bob")), job(daemons[1], ("bob", "ann"))]
    attempts = sorted(future.result(60) for future in futures)
    assert attempts == [1, 2]  # one batch was chosen as the deadlock's victim and ran again
    assert daemons[0]._writer.retried + daemons[1]._writer.retried == 1
    for player in ("ann", "bob"):
        table = daemons[0].load_table(player, LIMITS)
        assert (table.bankroll, table.staked) == (980, 20)


def test_group_commit_puts_the_operations_queued_behind_a_batch_into_one_transaction(stores):
    """Sessions' changes queued while a batch runs commit together: one COMMIT (one WAL flush) for all."""
    store = stores()
    writer = store._writer
    holding = threading.Event()
    release = threading.Event()

    def hold():
        store.put_user(User("held", "Held", frozenset(), "x"))
        holding.set()
        release.wait(30)

    held = store.submit(hold)
    holding.wait(30)
    commits, operations = writer.commits, writer.operations
    players = [f"p{i}" for i in range(20)]
    threads = [
        threading.Thread(target=store.update_table, args=(p, 1000, LIMITS, lambda t: t.place(RED, 5))) for p in players
    ]
    for thread in threads:
        thread.start()
    _until(lambda: writer._queue.qsize() == len(players))  # all 20 wait behind the held batch
    release.set()
    held.result(30)
    for thread in threads:
        thread.join(30)
    assert writer.commits - commits == 2  # the held batch, then the 20 changes in one transaction
    assert writer.operations - operations == len(players)
    assert [store.load_table(p, LIMITS).staked for p in players] == [5] * len(players)


# -- meters across daemons


def _roster(tmp_path, count):
    meters = [f"G{10001 + i}" for i in range(count)]
    path = tmp_path / "roster.csv"
    path.write_text("meter\n" + "".join(m + "\n" for m in meters), encoding="utf-8")
    return meters, path


def _cluster_daemon(tmp_path, engine, dsn, key, *extra):
    users = write_users_file(tmp_path / "users.txt")
    return Daemon(
        tmp_path,
        "--db",
        dsn,
        "--audit-key",
        key,
        "--users",
        str(users),
        "--max-jobs-per-reader",
        "1000",
        *extra,
        engine=engine,
    )


def test_readers_on_two_daemons_racing_job_never_get_one_meter_twice(tmp_path, engine, postgres_dsn, key, connect):
    meters, roster = _roster(tmp_path, 80)
    first = _cluster_daemon(tmp_path, engine, postgres_dsn, key, "--roster", str(roster))
    second = _cluster_daemon(tmp_path, engine, postgres_dsn, key)
    try:
        readers = [login(connect(d.port), "carol", "secret") for d in (first, second) for _ in range(4)]
        handed: list[list[str]] = [[] for _ in readers]
        barrier = threading.Barrier(len(readers))

        def read_all(index):
            reader = readers[index]
            barrier.wait()
            while True:
                job = reader.command("JOB")
                if job.code == 251:
                    return
                if job.code == 450:  # the last unread meters are others' jobs now
                    continue
                assert job.code == 250, job
                meter = job.lines[0].split()[0]
                handed[index].append(meter)
                assert reader.command(f"READ {meter} {index}").code == 250

        threads = [threading.Thread(target=read_all, args=(i,)) for i in range(len(readers))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        every = [meter for one in handed for meter in one]
        assert sorted(every) == meters  # each meter handed out exactly once, over both daemons
        assert all(handed[:4]) and all(handed[4:])  # and both daemons handed some out
        admin = login(connect(second.port), "root", "admin pass")
        assert len(admin.command("DUMP").lines) == len(meters) + 2
    finally:
        first.stop()
        second.stop()


def _job_expiry(postgres_server, dsn, meter):
    database = dsn.rsplit("/", 1)[1]
    return postgres_server.psql(database, f"SELECT extract(epoch FROM expires) FROM jobs WHERE meter = '{meter}'")


def test_a_live_daemons_jobs_are_renewed_and_a_killed_daemons_come_back_to_the_pool(
    tmp_path, engine, postgres_server, postgres_dsn, key, connect
):
    meters, roster = _roster(tmp_path, 2)
    lease = ("--job-lease", "1.5")
    doomed = _cluster_daemon(tmp_path, engine, postgres_dsn, key, "--roster", str(roster), *lease)
    survivor = None
    try:
        holders = [login(connect(doomed.port), "carol", "secret") for _ in meters]
        assert [h.command("JOB").lines[0].split()[0] for h in holders] == meters
        survivor = _cluster_daemon(tmp_path, engine, postgres_dsn, key, *lease)  # its start releases no live job
        reader = login(connect(survivor.port), "carol", "secret")
        first_expiry = float(_job_expiry(postgres_server, postgres_dsn, meters[0]))
        _until(lambda: float(_job_expiry(postgres_server, postgres_dsn, meters[0])) > first_expiry + 1)
        # The first lease has run out by now, but its daemon renewed it: the job is still its own.
        assert reader.command("JOB").lines == ("2 unread meters are held by other readers; try again later",)
        doomed.stop(signal.SIGKILL)
        deadline = time.monotonic() + 30
        while (job := reader.command("JOB")).code == 450:  # within a lease and a renewal interval
            assert time.monotonic() < deadline, "the killed daemon's jobs never came back"
            time.sleep(0.05)
        assert job.lines == (f"{meters[0]} is yours to read",)
        assert reader.command(f"READ {meters[0]} 7").code == 250
        assert reader.command("JOB").lines == (f"{meters[1]} is yours to read",)
        assert "back in the pool" in survivor.log()
    finally:
        doomed.stop()
        if survivor is not None:
            survivor.stop()


# -- the admin subcommands


def admin(*args, stdin=None):
    return subprocess.run(
        [sys.executable, str(ROOT / "daemon.py"), *args], capture_output=True, text=True, timeout=120, input=stdin
    )


def test_the_admin_subcommands_work_on_postgres(tmp_path, postgres_dsn, key):
    db = ("--db", postgres_dsn, "--audit-key", key)
    added = admin("useradd", "ada", "--name", "Ada Admin", "--role", "admin", "--password-stdin", *db, stdin="pw\n")
    assert (added.returncode, added.stdout) == (0, "user ada added\n"), added.stderr
    assert admin("useradd", "erin", "--name", "Erin", "--role", "reader", "--password-stdin", *db, stdin="x\n").stdout
    assert admin("usermod", "erin", "--add-role", "player", *db).returncode == 0
    assert admin("users", *db).stdout == "ada\tadmin\tAda Admin\nerin\tplayer,reader\tErin\n"
    assert admin("userdel", "erin", *db).stdout == "user erin deleted\n"
    assert admin("unlock", "ada", *db).returncode == 0
    meters, roster = _roster(tmp_path, 3)
    imported = admin("roster", "import", str(roster), *db)
    assert imported.stdout == f"roster {roster}: 3 meters, 3 new\n", imported.stderr
    listed = admin("roster", "list", *db)
    assert listed.returncode == 0 and all(meter in listed.stdout for meter in meters), listed.stderr
    assert admin("dump", *db).returncode == 0
    checked = admin("check", "--db", postgres_dsn)  # reading needs no key
    assert checked.returncode == 0 and checked.stdout.startswith("chips conserved for 0 players"), checked.stderr
    assert admin("ledger", "ada", "--db", postgres_dsn).returncode == 0
    refused = admin("useradd", "bob", "--name", "Bob", "--password-stdin", "--db", postgres_dsn, stdin="x\n")
    assert refused.returncode == 2 and "--audit-key FILE" in refused.stderr and len(refused.stderr.splitlines()) == 1


def test_backup_is_a_signed_export_that_restore_reads_back_into_another_database(
    tmp_path, postgres_server, postgres_dsn, key, stores
):
    store = stores()
    store.put_user(User("ann", "Ann", frozenset({"player"}), "hash"))
    store.update_table("ann", 1000, LIMITS, lambda table: table.place(RED, 30))
    store.credit("ann", "root", 25, "gift", 1000, LIMITS)
    store.meters.load_roster(["G10001", "G10002"])
    meter = store.meters.next_job("carol#1")
    store.meters.submit("carol#1", meter, 42)
    copy = tmp_path / "copy.export"
    done = admin("backup", str(copy), "--db", postgres_dsn, "--audit-key", key)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "copy.export.sig").exists()
    target = postgres_server.create_database(f"restored_{os.getpid()}")
    try:
        restored = admin("restore", str(copy), "--db", target, "--audit-key", key)
        assert restored.returncode == 0, restored.stderr
        again = open_store(target, audit_key=key, audit_required=True)
        try:
            assert again.list_users() == store.list_users()
            assert again.chip_audits() == store.chip_audits()
            assert again.ledger("ann") == store.ledger("ann")
            assert again.meters.dump() == store.meters.dump()
            assert again.meters.next_job("carol#2") == "G10002"
            again.credit("ann", "root", 5, "after the restore", 1000, LIMITS)  # ids go on past the copy's
            assert [c.number for c in again.ledger("ann")] == [1, 2]
        finally:
            again.close()
        twice = admin("restore", str(copy), "--db", target, "--audit-key", key)
        assert twice.returncode == 2 and "--force" in twice.stderr
        copy.write_text(copy.read_text().replace('"Ann"', '"Eve"'))  # changed after the backup
        changed = admin("restore", str(copy), "--db", target, "--audit-key", key, "--force")
        assert changed.returncode == 1 and "does not match its signature" in changed.stderr
    finally:
        postgres_server.drop_database(f"restored_{os.getpid()}")


def test_two_daemons_racing_one_players_bets_and_spins_never_overdraw_and_conserve_chips(
    tmp_path, engine, postgres_dsn, key, connect
):
    users = write_users_file(tmp_path / "users.txt")
    options = ("--db", postgres_dsn, "--audit-key", key, "--users", str(users))
    daemons = [Daemon(tmp_path, *options, engine=engine) for _ in range(2)]
    try:
        players = [login(connect(d.port), "dave", "hunter2") for d in daemons]  # one player, one per daemon
        barrier = threading.Barrier(2)
        placed, settled, returned, refused = [0, 0], [0, 0], [0, 0], [0, 0]

        def overdraw(index):
            """More bets than the bankroll covers, from both daemons at the same moment."""
            barrier.wait()
            players[index].send(b"BET RED 7\r\n" * 150)
            for reply in players[index].replies(150):
                if reply.code == 200:
                    placed[index] += PlacedBet.from_reply(reply).amount
                else:
                    assert reply.code == 535, reply
                    refused[index] += 1

        def play(index):
            for _ in range(40):
                players[index].send(b"BET RED 30\r\nBET 17 5\r\nSPIN\r\n")
                for reply in players[index].replies(3):
                    if reply.code == 200:
                        placed[index] += PlacedBet.from_reply(reply).amount
                    elif reply.code == 250:
                        result = Spin.from_reply(reply)
                        settled[index] += result.staked
                        returned[index] += result.returned
                    else:
                        assert reply.code == 535, reply

        for step in (overdraw, play):
            threads = [threading.Thread(target=step, args=(i,)) for i in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(120)
            if step is overdraw:
                assert sum(placed) == 7 * (1000 // 7) and sum(refused) == 300 - 1000 // 7  # not one chip overdrawn
        keys = stat(players[0])
        bankroll, open_bets = int(keys["bankroll"]), int(keys["open-bet-chips"])
        assert sum(placed) == sum(settled) + open_bets  # every bet settled exactly once, or still open
        assert bankroll == 1000 - sum(placed) + sum(returned)
        checked = admin("check", "--db", postgres_dsn)
        assert checked.returncode == 0 and checked.stdout.startswith("chips conserved for 1 player"), checked.stdout
    finally:
        for daemon in daemons:
            daemon.stop()


def test_a_deadlocked_batch_of_several_changes_is_run_again_one_change_a_transaction(stores):
    """The victim's batch holds a job and a plain change: both run again, each alone, and both commit."""
    daemons = [stores(), stores()]
    writer = daemons[0]._writer
    both_hold_one = threading.Barrier(2, timeout=30)
    holding, release = threading.Event(), threading.Event()
    runs = {0: 0, 1: 0}

    def crossing(index, first, second):
        def run():
            runs[index] += 1
            daemons[index].update_table(first, 1000, LIMITS, lambda table: table.place(RED, 10))
            if runs[index] == 1:
                both_hold_one.wait()
            daemons[index].update_table(second, 1000, LIMITS, lambda table: table.place(RED, 10))

        return run

    def hold():
        daemons[0].put_user(User("held", "Held", frozenset(), "x"))
        holding.set()
        release.wait(30)

    daemons[0].submit(hold)
    holding.wait(30)
    jobs = [daemons[0].submit(crossing(0, "ann", "bob"))]
    other = threading.Thread(target=daemons[0].update_table, args=("carl", 1000, LIMITS, lambda t: t.place(RED, 5)))
    other.start()
    _until(lambda: writer._queue.qsize() == 2)  # the job and carl's change: one batch once released
    jobs.append(daemons[1].submit(crossing(1, "bob", "ann")))
    release.set()
    for job in jobs:
        job.result(60)
    other.join(30)
    assert sorted(runs.values()) == [1, 2]  # the deadlock's victim ran its job again, once
    assert [daemons[1].load_table(p, LIMITS).staked for p in ("ann", "bob", "carl")] == [20, 20, 5]


def test_shared_tables_store_settles_a_round_from_its_committed_bets_on_postgres(stores):
    store = stores()
    tables = StoredTables(store)
    red, seventeen = parse_bet("RED", AMERICAN), parse_bet("17", AMERICAN)
    for player, bet, amount in (("ann", red, 10), ("bob", seventeen, 5), ("bob", red, 20)):
        tables.place(player, 100, "main", lambda bankroll, b=bet, a=amount: (OpenBet(b, a), bankroll - a, 7))
    assert tables.audit("bob") == {"open": 25, "staked": 0, "returned": 0}
    results = tables.settle("main", 7, "17", AMERICAN, Limits())
    assert {player: (r.staked, r.returned) for player, r in results.items()} == {"ann": (10, 0), "bob": (25, 180)}
    assert tables.bankroll("ann", 100) == 90 and tables.bankroll("bob", 100) == 255
    assert tables.audit("bob") == {"open": 0, "staked": 25, "returned": 180}
    tables.place("ann", 100, "main", lambda bankroll: (OpenBet(red, 30), bankroll - 30, 8))
    assert tables.take_back("ann", "main", 8) == (30, 90)
    tables.place("ann", 100, "main", lambda bankroll: (OpenBet(red, 40), bankroll - 40, 9))
    assert tables.refund_unsettled() == [("main", 9, "ann", 40)]
    assert tables.last_rounds() == {"main": 9}
    assert [audit.difference for audit in store.chip_audits()] == [0, 0]
    assert [entry.table for entry in store.history("bob", 5)] == ["main"]


def test_audit_verify_walks_the_log_of_a_postgres_database_and_names_an_edited_row(
    postgres_server, postgres_dsn, key, stores
):
    store = stores()
    store.put_user(User("ann", "Ann", frozenset({"player"}), "hash"))
    store.update_table("ann", 1000, LIMITS, lambda table: table.place(RED, 30))
    store.update_table("ann", 1000, LIMITS, lambda table: table.resolve("7"))  # a settled spin: logged
    store.credit("ann", "root", 25, "gift", 1000, LIMITS)
    store.meters.load_roster(["G10001"])
    store.meters.submit("carol#1", store.meters.next_job("carol#1"), 42)
    verified = admin("audit", "verify", "--db", postgres_dsn, "--audit-key", key)
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith(f"audit log of {postgres_dsn} intact: 5 entries")  # start user spin credit read
    postgres_server.psql(postgres_dsn.rsplit("/", 1)[1], "UPDATE ledger SET amount = 2500")  # outside the daemon
    tampered = admin("audit", "verify", "--db", postgres_dsn, "--audit-key", key)
    assert tampered.returncode == 1
    assert "the ledger row 1 differs from the log: amount is 2500, logged 25" in tampered.stderr


def test_every_acknowledged_bet_survives_a_daemon_killed_right_after_its_reply(
    tmp_path, engine, postgres_dsn, key, connect
):
    users = write_users_file(tmp_path / "users.txt")
    options = ("--db", postgres_dsn, "--audit-key", key, "--users", str(users))
    daemon = Daemon(tmp_path, *options, engine=engine)
    try:
        players = [login(connect(daemon.port), "dave", "hunter2") for _ in range(3)]
        for player in players:
            player.send(b"BET RED 3\r\n" * 40)
        accepted = sum(reply.code == 200 for player in players for reply in player.replies(40))
    finally:
        daemon.stop(signal.SIGKILL)  # right after the last reply: nothing is flushed on the way out
    assert accepted == 120
    daemon = Daemon(tmp_path, *options, engine=engine)
    try:
        keys = stat(login(connect(daemon.port), "dave", "hunter2"))
        assert (keys["bankroll"], keys["open-bet-chips"]) == (str(1000 - 3 * accepted), str(3 * accepted))
    finally:
        daemon.stop()
