"""The cluster on one machine (issue 13): PostgreSQL, three daemons on it, HAProxy in front; real processes.

Every test starts its own :class:`cluster.Cluster` (``scripts/cluster.py``: a throw-away
PostgreSQL, daemons with ``--proxy-protocol v2``, ``haproxy -db`` with ``send-proxy-v2`` and
health checks) and always stops it. The clients are the client library's, with
``Retry``: each command labelled, resent under the same label after a dropped connection,
through HAProxy again, so the daemon that gets it (any of them, on the shared database)
runs it at most once. What is checked afterwards is what the clients were told (their 2yz
replies) against what the database holds, and ``daemon.py --db postgresql://... check``.
"""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import ROOT, write_users_file
from lineproto.client import Client, Event, PermanentError, TableStatus, TransientError

sys.path.insert(0, str(ROOT / "scripts"))
from cluster import Cluster, ClusterLoad, write_load_files

PLAYERS = [f"p{i:02}" for i in range(20)]
READERS = [f"r{i:02}" for i in range(10)]
#: Players of their own for the race and the shared table (the users file has more than the load plays).
RACER, SEATED_A, SEATED_B = "p20", "p21", "p22"
START_BANKROLL = 1000
#: Seconds a held job stays a daemon's without renewal (--job-lease): short, so a dead daemon's come back soon.
JOB_LEASE = 2.0
#: Commands each client completes before the kill, and again after it (a few seconds of load).
OPS_BEFORE, OPS_AFTER = 3, 6
#: Seconds the load may take at most to reach each of those marks (a bound, not a pause).
LOAD_TIMEOUT = 90.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, engine):
    """Three daemons (on ``engine``) on a throw-away PostgreSQL behind HAProxy, with the load's users
    (players p00-p22, readers r00-r09, admin root), a roster of 5000 meters and a shared table
    ``main`` with 1 s rounds; always stopped after.

    One per module and engine (a cluster takes seconds to start): the tests use users of their own."""
    tmp_path = tmp_path_factory.mktemp("cluster")
    users, roster = write_load_files(tmp_path, len(PLAYERS) + 3, len(READERS), 5000)
    started = Cluster(
        daemons=3,
        users_file=users,
        roster=roster,
        daemon_args=(
            *("--engine", engine, "--start-bankroll", str(START_BANKROLL)),
            *("--tables", "main:american", "--round-seconds", "1"),
        ),
        directory=tmp_path / "cluster",
    )
    started.start()
    yield started
    started.stop()


def test_two_daemons_racing_one_players_bets_never_overdraw(cluster):
    """The same player on daemon 0 and daemon 2 at once: 2 x 80 bets of 10 on 1000 chips."""
    accepted, bankrolls, refused = [0, 0], [[], []], [0, 0]
    ready = threading.Barrier(2)

    def bet(side: int, client: Client) -> None:
        ready.wait()
        for _ in range(80):
            try:
                bankrolls[side].append(client.bet("RED", 10).bankroll)
                accepted[side] += 1
            except PermanentError as refusal:
                assert refusal.code == 535, refusal
                refused[side] += 1

    load = ClusterLoad(cluster, [], [])
    clients = [load.connect(RACER, cluster.direct_port(i)) for i in (0, 2)]
    try:
        racers = [threading.Thread(target=bet, args=(side, client)) for side, client in enumerate(clients)]
        for racer in racers:
            racer.start()
        for racer in racers:
            racer.join(LOAD_TIMEOUT)
        assert sum(accepted) == START_BANKROLL // 10 and sum(refused) == 160 - START_BANKROLL // 10
        assert min(bankrolls[0] + bankrolls[1]) == 0
        assert accepted[0] and accepted[1], "both daemons took bets"
        bets = clients[0].bets()
        assert (len(bets.bets), bets.staked, bets.bankroll) == (START_BANKROLL // 10, START_BANKROLL, 0)
        settled = clients[1].spin().bankroll
        assert TableStatus.from_status(clients[0].status()).bankroll == settled  # daemon 0 sees daemon 2's spin
    finally:
        for client in clients:
            client.close()
    stored = cluster.postgres.psql("lineproto", f"SELECT bankroll FROM players WHERE name = '{RACER}'")
    assert stored.strip() == str(settled)  # the table is PostgreSQL's (not a file the daemons share)
    done = cluster.admin("check")
    assert done.returncode == 0, done.stdout + done.stderr


def events_until(client: Client, wanted, timeout: float = 30.0) -> Event:
    """The first event ``wanted(event)`` accepts, reading the client's events until then (or failing)."""
    deadline = time.monotonic() + timeout
    seen = []
    while True:
        for event in client.events(timeout=max(deadline - time.monotonic(), 0.01)):
            if wanted(event):
                return event
            seen.append(str(event))
        assert time.monotonic() < deadline, f"the event did not come; these did: {seen[-8:]}"


def test_players_of_one_shared_table_on_two_daemons_see_one_round_and_each_others_chat(cluster):
    load = ClusterLoad(cluster, [], [])
    seated_a, seated_b = load.connect(SEATED_A, cluster.direct_port(0)), load.connect(SEATED_B, cluster.direct_port(2))
    try:
        seated_a.join("main")
        seated_b.join("main")
        seated_b.chat("hello from daemon 2")
        assert events_until(seated_a, lambda e: e.code == 650).text == f"{SEATED_B}: hello from daemon 2"
        deadline = time.monotonic() + 30
        while True:  # a bet in whatever round is open (one may close between the 610 and the BET: 450)
            try:
                seated_b.bet("RED", 1)
                break
            except TransientError as closed:
                assert closed.code == 450 and time.monotonic() < deadline, closed
                events_until(seated_b, lambda e: e.code == 610)
        result_b = events_until(seated_b, lambda e: e.code == 630 and "staked 1," in e.text).text.split()
        round_id, pocket = result_b[1], result_b[2]
        result_a = events_until(seated_a, lambda e: e.code == 630 and e.text.split()[1] == round_id).text
        assert result_a.split()[2] == pocket and "no bets" in result_a  # one round, one pocket, own nets
    finally:
        seated_a.close()
        seated_b.close()


def test_thirty_clients_lose_nothing_when_a_daemon_is_killed_mid_load(cluster):
    load = ClusterLoad(cluster, PLAYERS, READERS).start()
    try:
        load.wait_ops(dict.fromkeys(load.tallies, OPS_BEFORE), LOAD_TIMEOUT)
        cluster.kill(1)  # SIGKILL: its sessions and open transactions just end
        load.wait_ops({name: ops + OPS_AFTER for name, ops in load.ops().items()}, LOAD_TIMEOUT)
    finally:
        load.stop()
    cluster.wait_status("DOWN", 1)  # HAProxy's health checks saw it go
    # The clients of the killed daemon lost a reply each and got it by resending through HAProxy.
    assert load.resent() >= 1
    assert sum(len(load.tallies[name].readings) for name in READERS) >= len(READERS) * OPS_AFTER // 2
    problems = load.problems()
    assert problems == [], problems  # readings, meters handed out, bankrolls, daemon.py check
    # ... and the proof would see a change no client was told of: chips credited, a reading by another
    meter = next(iter(load.tallies["r00"].readings))
    with load.connect("root") as admin:
        admin.credit("p00", 1, "not told to the load")
        admin.read(meter, 1)
    problems = load.problems()
    assert len(problems) == 2, problems
    assert problems[0].startswith(f"reading of {meter}: told (") and problems[1].startswith("p00: told bankroll")


def test_a_job_held_on_a_killed_daemon_goes_to_another_reader_once_its_lease_runs_out(tmp_path):
    """Two daemons with a short --job-lease; a reader's job on daemon 1, which is SIGKILLed: the
    survivor's renewal hands the job back once the lease has run out, and another reader gets it."""
    users, roster = write_load_files(tmp_path, 0, 2, 2)  # two meters: M00000 and M00001
    with Cluster(2, users_file=users, roster=roster, daemon_args=("--job-lease", str(JOB_LEASE))) as cluster:
        load = ClusterLoad(cluster, [], [])
        with load.connect("r00", cluster.direct_port(1)) as holder:
            assert holder.job() == "M00000"
            cluster.kill(1)  # the session and the daemon renewing its lease are gone
        with load.connect("r01") as reader:  # through HAProxy: daemon 0
            assert reader.job() == "M00001"
            reader.read("M00001", 1)
            deadline = time.monotonic() + 2 * JOB_LEASE + 10
            while True:  # 450 while the dead daemon's lease runs; then the meter is back in the pool
                try:
                    meter = reader.job()
                    break
                except TransientError as busy:
                    assert busy.code == 450 and "1 unread meter is held by other readers" in str(busy), busy
                    assert time.monotonic() < deadline, "the dead daemon's job did not come back"
                    time.sleep(0.1)
            assert meter == "M00000"
            reader.read(meter, 1)
            assert reader.job() is None  # 251: all read, each once
        cluster.daemons[0].process.send_signal(signal.SIGTERM)
        assert cluster.daemons[0].process.wait(30) == 0
        assert "held jobs whose daemon stopped renewing them are back in the pool" in cluster.daemons[0].log_tail()


# ---------------------------------------------------------------- the command line: make cluster


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, exited but not yet reaped by its new parent, does not count)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as file:
            return file.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def start_script(tmp_path, *args: str) -> tuple[subprocess.Popen, dict]:
    """``scripts/cluster.py`` running; what it printed once it says it is ready (its readiness signal)."""
    users = write_users_file(tmp_path / "users.txt")
    script = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "cluster.py"), "--users", str(users), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    printed = []
    for line in script.stdout:
        printed.append(line)
        if line.startswith("Ctrl+C"):
            break
    else:
        raise AssertionError(f"cluster.py exited {script.wait()}: {''.join(printed)} {script.stderr.read()}")
    text = "".join(printed)
    words = text.split()
    pids = [int(words[i + 1].rstrip(",")) for i, word in enumerate(words) if word in ("(pid", "pid")]
    port = int(text.split("connect:")[1].split()[2])
    postgres_dir = text.split("postgres:")[1].split()[0]
    return script, {"pids": pids, "port": port, "postgres": postgres_dir}


def wait_gone(pids: list[int], path: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while any(pid_alive(pid) for pid in pids) or os.path.exists(path):
        assert time.monotonic() < deadline, f"left behind: {[p for p in pids if pid_alive(p)]} {path}"
        time.sleep(0.05)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_the_script_serves_through_haproxy_and_stops_everything_on_a_signal(tmp_path, sig):
    script, printed = start_script(tmp_path, "--daemons", "2")
    try:
        assert len(printed["pids"]) == 3  # two daemons and HAProxy
        with Client("127.0.0.1", printed["port"]) as client:
            assert client.login("dave", "hunter2").code == 230
            assert client.bet("RED", 10).bankroll == 990
        script.send_signal(sig)
        assert script.wait(60) == 0
        assert script.stderr.read().strip().endswith("cluster: stopped")
    finally:
        if script.poll() is None:
            script.kill()
            script.wait()
    wait_gone(printed["pids"], printed["postgres"], timeout=5)  # stopped before the script exited


def test_a_killed_script_leaves_no_process_behind(tmp_path):
    script, printed = start_script(tmp_path, "--daemons", "1")
    postmaster = int((Path(printed["postgres"]) / "data" / "postmaster.pid").read_text().split()[0])
    script.kill()  # SIGKILL: no cleanup of its own
    script.wait()
    wait_gone([*printed["pids"], postmaster], printed["postgres"])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--daemons", "0"], "--daemons: must be 1 or more: '0'"),
        (["--port", "70000"], "--port: a port is 0-65535: '70000'"),
        (["--db", "/tmp/x.db"], "--db: not a postgresql:// address: '/tmp/x.db'"),
        (["--db", "postgresql://db/x"], "--db needs --audit-key FILE"),
        (["--roster", "missing.csv"], "--roster: no such file: missing.csv"),
    ],
)
def test_script_mistakes_are_one_line_and_exit_2(tmp_path, args, message):
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "cluster.py"), *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=30,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    assert message in line
