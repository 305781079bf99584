"""Shared tables across daemons on one PostgreSQL database: one croupier per table, players on any daemon.

The socket tests start two daemons on one fresh database (the ``postgres_dsn``
fixture), on each engine; the domain's side of following a round kept
elsewhere (``FollowedTable``) is tested in process.
"""

import re
import signal
import subprocess
import sys
import time

import psycopg
import pytest
from test_tables import Player, bankroll, result_of

from conftest import ROOT, Daemon, write_users_file
from lineproto.domain import fair
from lineproto.domain.roulette import AMERICAN, Limits, parse_bet
from lineproto.domain.tables import (
    BETTING,
    CLOSED,
    IDLE,
    SETTLED,
    BettingClosed,
    FollowedTable,
    NoMoreBets,
    RoundOpened,
    SpinDue,
    TableSpec,
)
from lineproto.store.pgrounds import DAEMON_PREFIX, RoundRecords

ROUND = "2"  # --round-seconds: every wait below is for an event or a log line, never a fixed time
HASH = "ab" * 32


# -------------------------------------------------------------------- following a round in process


def followed() -> FollowedTable:
    return FollowedTable(TableSpec("main", AMERICAN), Limits(1, 500), 20.0, last_round=4)


def test_a_followed_table_moves_only_as_it_is_told_and_never_opens_a_round_itself():
    table = followed()
    assert table.join("dave", "dave", 0.0) is None  # a join opens no round here: the cluster does
    assert table.advance(1000.0) == []  # nor does time: the croupier is elsewhere
    assert table.state is IDLE
    assert table.follow(5, BETTING, 20.0, HASH, 12.5, 100.0) == [RoundOpened("main", 5, 20.0, HASH)]
    assert (table.state, table.round_id, table.seed_hash, table.seconds_left(100.0)) == (BETTING, 5, HASH, 12.5)
    assert table.follow(5, BETTING, 20.0, HASH, 12.0, 100.5) == []  # the same round again: no news
    assert table.follow(5, CLOSED, 20.0, HASH, 2.0, 113.0) == [BettingClosed("main", 5)]
    assert table.reopens_in(113.0) == 2.0
    assert table.follow(5, SETTLED, 20.0, HASH, 0.0, 115.0) == [SETTLED]
    assert table.follow(5, SETTLED, 20.0, HASH, 0.0, 115.0) == []
    table.take_round()
    assert table.state is IDLE
    assert table.follow(4, BETTING, 20.0, HASH, 10.0, 116.0) == []  # an older round is no news
    assert table.follow(5, SETTLED, 20.0, HASH, 0.0, 116.0) == []


def test_a_followed_table_takes_bets_while_betting_and_hands_them_over_when_the_round_is_settled():
    table = followed()
    table.follow(5, BETTING, 20.0, HASH, 10.0, 0.0)
    red = parse_bet("RED", AMERICAN)
    open_bet, after = table.place("guest-1", red, 10, 100, 1.0)
    assert after == 90
    # Everything missed at once (a late listener): closed and settled arrive together.
    assert table.follow(5, SETTLED, 20.0, HASH, 0.0, 30.0) == [BettingClosed("main", 5), SETTLED]
    with pytest.raises(NoMoreBets):
        table.place("guest-1", red, 10, 90, 30.0)
    bets = table.take_round()
    assert bets == {"guest-1": (open_bet,)}
    due = SpinDue("main", 5, AMERICAN, Limits(1, 500), bets, "cd" * 32)
    settled = due.settle()
    assert settled.results["guest-1"].staked == 10
    # The next round is news, with none of the last round's bets.
    assert table.follow(6, BETTING, 20.0, HASH, 20.0, 31.0) == [RoundOpened("main", 6, 20.0, HASH)]
    assert table.bets_of("guest-1") == ()


# -------------------------------------------------------------------- the round's record, in process


def test_the_database_takes_bets_only_while_the_round_is_betting_and_reveals_the_seed_once_settled(
    tmp_path, postgres_dsn
):
    from lineproto.store import open_store

    store = open_store(postgres_dsn, audit_key=str(tmp_path / "audit.key"), audit_required=True)
    try:
        records = RoundRecords(store, f"{DAEMON_PREFIX}in-process")
        seed = "cd" * 32
        # No round yet: the join opens one, its deadline already passed (0 s of betting).
        row = records.join("main", "1", "dave", "dave", (6, 0.0, seed, fair.seed_hash(seed)))
        assert (row.round_id, row.phase, row.seed_hash, row.server_seed) == (7, BETTING, fair.seed_hash(seed), None)
        store.run(lambda connection: records.require_betting(connection, "main", 7))  # the deadline is the croupier's
        closed = records.close_due("main", 0.0)
        assert (closed.round_id, closed.phase) == (7, CLOSED)
        with pytest.raises(NoMoreBets, match="no more bets in round 7 at main: the next round opens in 0 s"):
            store.run(lambda connection: records.require_betting(connection, "main", 7))
        assert records.close_due("main", 0.0) is None  # closed once
        row_id, round_id, server_seed = records.spin_due("main")
        assert (round_id, server_seed) == (7, seed)
        records.finish(row_id, "17", (7, 0.0, "ef" * 32, fair.seed_hash("ef" * 32)))
        settled = records.current()["main"]
        assert (settled.round_id, settled.phase, settled.server_seed, settled.pocket) == (7, SETTLED, seed, "17")
        # That daemon is not connected (no listening connection of its name): its seat does not count,
        # so no round opened after the settlement, and tidying forgets the seat.
        assert records.seated() == {}
        assert records.tidy() == 1
    finally:
        store.close()


# -------------------------------------------------------------------- two daemons, one database


def start_pair(tmp_path, dsn: str, engine: str, *extra: str) -> tuple[Daemon, Daemon]:
    """Daemon A, the tables' croupier once its log says so, then daemon B on the same database."""
    users = str(write_users_file(tmp_path / "users.txt"))
    key = str(tmp_path / "audit.key")
    args = (
        "--db",
        dsn,
        "--audit-key",
        key,
        "--users",
        users,
        "--tables",
        "main:american",
        "--round-seconds",
        ROUND,
        *extra,
    )
    first = Daemon(tmp_path, *args, engine=engine)
    first.wait_log("this daemon is the croupier of main")
    return first, Daemon(tmp_path, *args, engine=engine)


def chips_check(dsn: str) -> subprocess.CompletedProcess:
    """``daemon.py check`` on the cluster's database (exit 0: every player's chips conserved)."""
    return subprocess.run(
        [sys.executable, str(ROOT / "daemon.py"), "check", "--db", dsn], capture_output=True, text=True, timeout=60
    )


def opened(player: Player) -> tuple[int, str]:
    """The next round opened for the player: (round id, its server-seed-hash)."""
    match = re.fullmatch(r"round (\d+) open: bets for \S+ s; server-seed-hash ([0-9a-f]{64})", player.event(610).text)
    assert match
    return int(match.group(1)), match.group(2)


def next_round_of_both(one: Player, other: Player) -> tuple[int, str]:
    """A round that opened after both sat down, as both were told: one round, one seed hash, on both daemons.

    (A 610 may trail a JOIN that named its round: the earlier one is passed over.)
    """
    first, second = opened(one), opened(other)
    while first[0] != second[0]:
        if first[0] < second[0]:
            first = opened(one)
        else:
            second = opened(other)
    assert first == second
    return first


def stored_result(dsn: str, player: str, round_id: int) -> tuple[int, int] | None:
    """(staked, returned) of the player's committed result of the round at main, or None."""
    with psycopg.connect(dsn) as connection:
        return connection.execute(
            "SELECT staked, returned FROM shared_results WHERE table_name = 'main' AND round = %s AND player = %s",
            (round_id, player),
        ).fetchone()


def settle_in(player: Player, round_id: int) -> tuple[int, str, int | None]:
    """The player's 630 of ``round_id`` (earlier rounds' are passed over)."""
    while True:
        result = result_of(player.event(630, timeout=20.0))
        if result[0] >= round_id:
            assert result[0] == round_id, result
            return result


def test_a_player_on_one_daemon_sees_the_result_and_the_chat_of_a_player_on_another(tmp_path, postgres_dsn, engine):
    a, b = start_pair(tmp_path, postgres_dsn, engine)
    try:
        with Player(a.port, "dave", "hunter2") as dave, Player(b.port, "root", "admin pass") as root:
            assert dave.command("JOIN main").code == 200
            assert root.command("JOIN main").code == 200
            assert dave.event(640).text == "root joined main (2 seated)"
            round_id, _ = next_round_of_both(dave, root)  # a round both can bet in from its start
            dave_before, root_before = bankroll(dave), bankroll(root)
            assert dave.command("BET RED 10").code == 200
            assert root.command("BET 17 5").code == 200
            said = root.command("CHAT good luck, dave")
            assert said.lines == ("Said to 1 at main",)
            assert dave.event(650).text == "root: good luck, dave"
            _, pocket, dave_net = settle_in(dave, round_id)
            # Settled in the database before the 630 was sent (the croupier is on the other daemon).
            assert stored_result(postgres_dsn, "dave", round_id) == (10, 10 + dave_net)
            _, root_pocket, root_net = settle_in(root, round_id)
            assert root_pocket == pocket  # one wheel for the table, whichever daemon a player is on
            red = parse_bet("RED", AMERICAN)
            assert dave_net == (10 if pocket in red.pockets else -10)
            assert root_net == (5 * 35 if pocket == "17" else -5)
            assert bankroll(dave) == dave_before + dave_net
            assert bankroll(root) == root_before + root_net
            # A guest on B plays with B's play money in the same rounds; A's players hear of the guest.
            with Player(b.port) as guest:
                assert guest.command("JOIN main").code == 200
                assert dave.event(640).text == "guest-1 joined main (3 seated)"
                listed = guest.command("LIST").lines
                assert re.match(r"main: american wheel, bets 1-500 chips, 3 seated, round \d+, ", listed[1])
                later, _ = next_round_of_both(dave, guest)
                assert guest.command("BET RED 10").code == 200
                _, pocket, guest_net = settle_in(guest, later)
                assert settle_in(dave, later)[1] == pocket
                assert guest_net == (10 if pocket in red.pockets else -10)
                assert bankroll(guest) == 100 + guest_net
                assert root.command("LEAV").code == 200
                assert dave.event(641).text == "root left main (2 seated)"
        check = chips_check(postgres_dsn)
        assert check.returncode == 0, check.stdout + check.stderr
    finally:
        b.stop()
        a.stop()


def test_killing_the_croupiers_daemon_hands_the_table_to_the_other_and_its_round_goes_on(
    tmp_path, postgres_dsn, engine
):
    a, b = start_pair(tmp_path, postgres_dsn, engine)
    try:
        with Player(b.port, "root", "admin pass") as root:
            with Player(a.port, "dave", "hunter2") as dave:
                dave.command("JOIN main")
                root.command("JOIN main")
                round_id, seed_hash = next_round_of_both(dave, root)
                dave_before = bankroll(dave)
                assert dave.command("BET RED 10").code == 200
                root_before = bankroll(root)
                assert root.command("BET BLACK 10").code == 200
                a.stop(signal.SIGKILL)  # the croupier dies with dave's and root's bets in its round
            started = time.monotonic()
            # B takes the table over and settles the round that was open: both bets are settled.
            b.wait_log("this daemon is the croupier of main", timeout=15.0)
            settled = root.event(630, timeout=15.0)
            assert time.monotonic() - started < 15.0
            _, pocket, root_net = result_of(settled)
            assert result_of(settled)[0] == round_id
            assert fair.seed_hash(settled.text.rsplit(" ", 1)[1]) == seed_hash  # the round A opened, settled by B
            red, black = parse_bet("RED", AMERICAN), parse_bet("BLACK", AMERICAN)
            assert root_net == (10 if pocket in black.pockets else -10)
            assert bankroll(root) == root_before + root_net
            # ... and the rounds go on.
            later = root.next_round()
            assert later > round_id
            assert root.command("BET RED 1").code == 200
            assert settle_in(root, later)[2] is not None
        with Player(b.port, "dave", "hunter2") as dave:
            assert bankroll(dave) == dave_before + (10 if pocket in red.pockets else -10)
        check = chips_check(postgres_dsn)
        assert check.returncode == 0, check.stdout + check.stderr
    finally:
        b.stop()
        a.stop()


def test_a_bet_on_one_daemon_is_in_its_round_before_the_croupier_on_the_other_closes_it_or_refused(
    tmp_path, postgres_dsn, engine
):
    """Bets from daemon B race the close by the croupier on A: each accepted one is settled, the rest get 450."""
    a, b = start_pair(tmp_path, postgres_dsn, engine, "--round-seconds", "0.5")
    try:
        with Player(b.port, "root", "admin pass") as root:
            root.command("JOIN main")
            raced = 0
            for _ in range(5):  # a round in which the bets ran into the close (200 open bets is the most)
                round_id = root.next_round()
                accepted = 0
                while accepted < 200:
                    reply = root.command("BET RED 1")
                    if reply.code != 200:
                        assert reply.code == 450, reply
                        assert reply.lines[0].startswith(f"no more bets in round {round_id} at main"), reply
                        break
                    accepted += 1
                result = settle_in(root, round_id)
                assert stored_result(postgres_dsn, "root", round_id)[0] == accepted
                assert result[2] == (accepted if result[1] in parse_bet("RED", AMERICAN).pockets else -accepted)
                if accepted < 200:
                    raced += 1
                    break
            assert raced == 1
        check = chips_check(postgres_dsn)
        assert check.returncode == 0, check.stdout + check.stderr
    finally:
        b.stop()
        a.stop()


def first_try_after_restart(player: Player, command: str):
    """The reply to ``command``, sent again once if the store's first transaction since the restart failed (451).

    The store finds its connection cut by the restart only when it next uses it (docs/DEPLOYING.md).
    """
    reply = player.command(command)
    if reply.code == 451:
        reply = player.command(command)
    return reply


def test_the_tables_go_on_after_the_database_restarts(tmp_path, postgres_dsn, postgres_server, engine):
    """``pg_ctl restart`` cuts every connection: the listening ones and the croupier's lock come back by themselves."""
    a, b = start_pair(tmp_path, postgres_dsn, engine)
    try:
        with (
            Player(a.port, "dave", "hunter2") as dave,
            Player(b.port, "root", "admin pass") as root,
            Player(b.port) as guest,
        ):
            for player in (dave, root, guest):
                player.command("JOIN main")
            before, _ = next_round_of_both(dave, guest)
            assert guest.command("BET RED 10").code == 200  # play money, kept by daemon B only
            postgres_server.restart()
            b.wait_log("listening again", timeout=15.0)
            a.wait_log("listening again", timeout=15.0)
            # The guest hears how the round the restart cut into ended, settled from its pocket.
            _, pocket, guest_net = settle_in(guest, before)
            assert guest_net == (10 if pocket in parse_bet("RED", AMERICAN).pockets else -10)
            assert bankroll(guest) == 100 + guest_net
            round_id, _ = next_round_of_both(dave, root)  # one croupier again, both daemons told
            assert first_try_after_restart(dave, "BET RED 5").code == 200
            assert first_try_after_restart(root, "BET BLACK 5").code == 200
            assert settle_in(dave, round_id)[1] == settle_in(root, round_id)[1]
            said = root.command("CHAT still here")
            assert said.lines == ("Said to 2 at main",)
            assert dave.event(650).text == "root: still here"
        check = chips_check(postgres_dsn)
        assert check.returncode == 0, check.stdout + check.stderr
    finally:
        b.stop()
        a.stop()


def test_a_daemon_that_missed_the_end_of_a_round_tells_its_players_how_it_ended(tmp_path, postgres_dsn, engine):
    """B is stopped and its listening connection cut while A settles the round a guest on B bet in."""
    a, b = start_pair(tmp_path, postgres_dsn, engine)
    b_id = re.search(r"shared with the daemons on the database as '([^']+)'", b.log()).group(1)
    try:
        with Player(a.port, "dave", "hunter2") as dave, Player(b.port) as guest:
            dave.command("JOIN main")
            guest.command("JOIN main")
            missed, _ = next_round_of_both(dave, guest)
            assert guest.command("BET RED 10").code == 200
            b.process.send_signal(signal.SIGSTOP)
            try:
                with psycopg.connect(postgres_dsn, autocommit=True) as connection:
                    connection.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s", (b_id,)
                    )
                settle_in(dave, missed)  # the round ends while B hears nothing
                later = dave.next_round()
            finally:
                b.process.send_signal(signal.SIGCONT)
            _, pocket, guest_net = settle_in(guest, missed)
            assert guest_net == (10 if pocket in parse_bet("RED", AMERICAN).pockets else -10)
            assert bankroll(guest) == 100 + guest_net
            assert opened(guest)[0] >= later
    finally:
        b.stop()
        a.stop()
