"""The roulette service through the real socket: TABL, BET, BETS, CLR, SPIN, STAT and the client library."""

import subprocess
import sys
import threading

import pytest
from test_fair import seeded_pockets

from conftest import ROOT, stat
from lineproto.client import Client, PermanentError, TableStatus
from lineproto.commands import Blocking, Session, build_services
from lineproto.commands.table import STORE_POOL
from lineproto.domain.accounts import GUEST_USER, User, UserDirectory
from lineproto.domain.meters import MeterManager
from lineproto.domain.roulette import parse_bet, pocket_properties
from lineproto.store import StorageError, StorageFull
from lineproto.wire import format_reply
from lineproto.wire.shapes import PlacedBet, Spin, Status

VERBS = ("TABL", "BET RED 10", "BETS", "CLR", "SPIN")


def login(connection, name="guest", password=None):
    reply = connection.command(f"USER {name}")
    if password is not None:
        assert reply.code == 331, reply
        reply = connection.command(f"PASS {password}")
    assert reply.code == 230, reply
    return connection


def client(daemon, name="guest", password=None) -> Client:
    c = Client(daemon.host, daemon.port, timeout=10)
    c.login(name, password)
    return c


# --------------------------------------------------------------------------
# The README's example and who may play
# --------------------------------------------------------------------------


def test_readme_example_in_one_write(shared, connect):
    connection = connect(shared.port)
    connection.send(b"USER guest\r\nBET RED 10\r\nBET 17 5\r\nSPIN\r\nSTAT\r\nQUIT\r\n")
    replies = connection.replies(6)
    assert [r.code for r in replies] == [230, 200, 200, 250, 211, 221]
    assert replies[1].lines == ("Bet RED for 10 (pays 1:1); bankroll 90; slip 1",)
    assert replies[2].lines == ("Bet 17 for 5 (pays 35:1); bankroll 85; slip 2",)
    spin = replies[3].lines
    info = pocket_properties(Spin.from_reply(replies[3]).pocket)
    assert spin[0] == info.describe()
    red = 20 if info.color == "red" else 0
    straight = 180 if info.pocket == "17" else 0
    assert spin[1] == f"RED for 10: {'win' if red else 'lose'}, {red} returned"
    assert spin[2] == f"17 for 5: {'win' if straight else 'lose'}, {straight} returned"
    bankroll = 85 + red + straight
    assert (
        spin[3] == f"Bankroll {bankroll}; rounds 1; net {'+' if bankroll > 100 else ''}{bankroll - 100 or 0}; nonce 0"
    )
    keys = Status.from_reply(replies[4]).values
    assert keys["wheel"] == "american"
    assert keys["bankroll"] == str(bankroll)
    assert keys["rounds"] == "1"
    assert keys["open-bet-chips"] == "0"
    assert connection.read_all() == b""


def test_roulette_commands_need_login_with_a_hint(shared, connect):
    connection = connect(shared.port)
    for line in VERBS:
        reply = connection.command(line)
        assert reply.code == 530, (line, reply)
        assert "USER guest" in reply.text


def test_a_reader_may_not_play(shared, connect):
    connection = login(connect(shared.port), "carol", "secret")
    for line in VERBS:
        reply = connection.command(line)
        assert reply.code == 532, (line, reply)
        assert "player" in reply.text
    assert "bankroll" not in stat(connection)


PLAYER_KEYS = ("wheel", "bankroll", "rounds", "open-bet-count", "open-bet-chips", "open-bets")


def test_stat_keys_only_for_players(shared, connect):
    connection = connect(shared.port)
    assert not set(PLAYER_KEYS) & set(stat(connection))
    login(connection)
    assert connection.command("BET DOZEN3 7").code == 200
    assert connection.command("BET 17 2").code == 200
    keys = stat(connection)
    assert [keys[key] for key in PLAYER_KEYS] == ["american", "91", "0", "2", "9", "9"]  # open-bets: chips, as ever
    root = login(connect(shared.port), "root", "admin pass")
    assert stat(root)["bankroll"] == "1000"


def test_client_table_status_is_typed(shared):
    with client(shared) as c:
        c.bet("RED", 10)
        c.bet("SPLIT 17-18", 5)
        status = c.table_status()
    assert status == TableStatus(wheel="american", bankroll=85, rounds=0, open_bet_count=2, open_bet_chips=15)


# --------------------------------------------------------------------------
# Bets, refusals, BETS, CLR, SPIN
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line, canonical, payout",
    [
        ("BET 17 1", "17", 35),
        ("BET 0 1", "0", 35),
        ("BET 00 1", "00", 35),
        ("BET split 18-17 1", "SPLIT 17-18", 17),
        ("BET SPLIT 00-3 1", "SPLIT 00-3", 17),
        ("BET STREET 13 1", "STREET 13", 11),
        ("BET TRIO 2-00-0 1", "TRIO 0-00-2", 11),
        ("BET CORNER 21-17-20-18 1", "CORNER 17-18-20-21", 8),
        ("BET BASKET 1", "BASKET", 6),
        ("BET LINE 13 1", "LINE 13", 5),
        ("BET DOZEN2 1", "DOZEN2", 2),
        ("BET column3 1", "COLUMN3", 2),
        ("BET RED 1", "RED", 1),
        ("BET black 1", "BLACK", 1),
        ("BET EVEN 1", "EVEN", 1),
        ("BET ODD 1", "ODD", 1),
        ("BET LO 1", "LOW", 1),
        ("BET HI 1", "HIGH", 1),
        ("BET   SPLIT   0-00   0001", "SPLIT 0-00", 17),
    ],
)
def test_every_kind_of_bet_on_the_american_wheel(shared, connect, line, canonical, payout):
    connection = login(connect(shared.port))
    reply = connection.command(line)
    assert (reply.code, reply.lines) == (200, (f"Bet {canonical} for 1 (pays {payout}:1); bankroll 99; slip 1",))


def test_european_only_bets(shared, connect):
    connection = login(connect(shared.port))
    assert connection.command("TABL european").code == 200
    for line, text in [
        ("BET FOUR 2", "Bet FOUR for 2 (pays 8:1); bankroll 98; slip 1"),
        ("BET TRIO 0-2-3 2", "Bet TRIO 0-2-3 for 2 (pays 11:1); bankroll 96; slip 2"),
        ("BET SPLIT 0-3 2", "Bet SPLIT 0-3 for 2 (pays 17:1); bankroll 94; slip 3"),
    ]:
        assert connection.command(line).lines == (text,)


@pytest.mark.parametrize(
    "setup, line, code",
    [
        ((), "BET", 501),  # no argument: dispatch's syntax reply
        ((), "BET RED", 501),
        ((), "BET 17", 501),
        ((), "BET RED ten", 501),
        ((), "BET RED 0", 501),
        ((), "BET RED -5", 501),
        ((), "BET RED 2.5", 501),
        ((), "BET RED 1e3", 501),
        ((), "BET RED ５", 501),  # a fullwidth digit is not a whole number of chips here
        ((), "BET PURPLE 5", 501),
        ((), "BET SPLIT 5", 501),
        ((), "BET SPLIT 17-x 5", 501),
        ((), "BET RED BLACK 5", 501),
        ((), "TABL SPANISH", 501),
        ((), "BET 17 501", 534),
        ((), "BET RED 99999999999999999999999", 534),
        ((), "BET RED 101", 535),
        (("BET RED 60",), "BET BLACK 41", 535),
        ((), "BET FOUR 5", 536),
        ((), "BET 37 5", 536),
        ((), "BET SPLIT 1-5 5", 536),
        ((), "BET SPLIT 17-17 5", 536),
        ((), "BET STREET 14 5", 536),
        ((), "BET LINE 34 5", 536),
        ((), "BET CORNER 0-1-2-3 5", 536),
        ((), "BET TRIO 0-2-3 5", 536),
        ((), "BET DOZEN4 5", 536),
        (("TABL EUROPEAN",), "BET 00 5", 536),
        (("TABL EUROPEAN",), "BET BASKET 5", 536),
        (("TABL EUROPEAN",), "BET SPLIT 0-00 5", 536),
        (("TABL EUROPEAN",), "BET TRIO 0-00-2 5", 536),
        (("BET RED 5",), "TABL EUROPEAN", 537),
    ],
)
def test_refusals_say_why_and_change_nothing(shared, connect, setup, line, code):
    connection = login(connect(shared.port))
    for before in setup:
        assert connection.command(before).code == 200, before
    before_state = connection.command("BETS")
    reply = connection.command(line)
    assert reply.code == code, reply
    assert len(reply.text) > 10  # says why
    assert connection.command("BETS") == before_state


def test_table_limits_from_options(start_daemon, connect):
    daemon = start_daemon("--table-min", "5", "--table-max", "50", users=True)
    connection = login(connect(daemon.port))
    assert connection.command("TABL").lines == (
        "american wheel: pockets 0, 00, 1-36; bets 5-50 chips; house edge 5.26% (BASKET 7.89%)",
    )
    below = connection.command("BET RED 4")
    assert (below.code, below.text) == (534, "the table minimum is 5 chips per bet")
    above = connection.command("BET RED 51")
    assert (above.code, above.text) == (534, "the table maximum is 50 chips per bet")
    assert connection.command("BET RED 5").code == 200
    assert connection.command("BET RED 50").code == 200


def test_bets_lists_in_order_with_the_total_and_clr_returns_them(shared, connect):
    connection = login(connect(shared.port))
    empty = connection.command("BETS")
    assert (empty.code, empty.lines) == (211, ("Open bets (american wheel):", "Total staked 0; bankroll 100"))
    for line in ("BET RED 10", "BET 17 5", "BET RED 3"):
        assert connection.command(line).code == 200
    listing = connection.command("BETS")
    assert listing.lines == (
        "Open bets (american wheel):",
        "RED for 10 (pays 1:1)",
        "17 for 5 (pays 35:1)",
        "RED for 3 (pays 1:1)",
        "Total staked 18; bankroll 82",
    )
    assert format_reply(listing.code, listing.lines).startswith(b"211-Open bets")
    cleared = connection.command("CLR")
    assert (cleared.code, cleared.lines) == (200, ("Cleared 3 bets, 18 chips back; bankroll 100",))
    assert connection.command("CLR").lines == ("Cleared 0 bets, 0 chips back; bankroll 100",)


def test_spin_settles_every_bet_and_conserves_chips(shared, connect):
    connection = login(connect(shared.port))
    bankroll = 100
    for round_number in range(1, 31):
        bets = [("RED", 2), ("ODD", 1), ("DOZEN1", 1), ("COLUMN2", 1), ("SPLIT 0-00", 1)]
        for name, amount in bets:
            if amount <= bankroll:
                assert connection.command(f"BET {name} {amount}").code == 200
                bankroll -= amount
        reply = connection.command("SPIN")
        assert reply.code == 250
        assert reply.lines[0] == pocket_properties(Spin.from_reply(reply).pocket).describe()
        bankroll += Spin.from_reply(reply).returned
        assert reply.lines[-1].startswith(f"Bankroll {bankroll}; rounds {round_number}; net ")
    assert stat(connection)["bankroll"] == str(bankroll)


def test_spin_without_bets_still_spins(shared, connect):
    connection = login(connect(shared.port))
    reply = connection.command("SPIN")
    assert reply.code == 250 and len(reply.lines) == 2
    assert reply.lines[-1] == "Bankroll 100; rounds 1; net 0; nonce 0"


def test_tabl_chooses_the_wheel(shared, connect):
    connection = login(connect(shared.port))
    assert connection.command("TABL").text.startswith("american wheel: pockets 0, 00, 1-36")
    assert connection.command("TABL european").lines == (
        "european wheel: pockets 0, 1-36; bets 1-500 chips; house edge 2.70%",
    )
    assert connection.command("TABL").text.startswith("european wheel")
    assert stat(connection)["wheel"] == "european"
    assert connection.command("BET 0 5").code == 200
    assert connection.command("TABL EUROPEAN").code == 200  # the wheel in play: nothing changes
    refused = connection.command("TABL AMERICAN")
    assert (refused.code, refused.text) == (537, "bets are open: clear them or spin before changing the wheel")
    assert connection.command("SPIN").code == 250
    assert connection.command("TABL AMERICAN").code == 200
    assert connection.command("HELP TABL").code == 214


def test_help_describes_bet(shared, connect):
    reply = connect(shared.port).command("HELP BET")
    assert reply.code == 214
    assert "SPLIT 17-18" in reply.text and "Needs login with the player role" in reply.text


def help_bet_rows(text: str) -> list[tuple[list[str], int]]:
    """HELP BET's bet list: per row, what a player types (placeholders replaced by the row's example) and the payout."""
    rows = []
    for line in text.splitlines():
        if "; pays " not in line:
            continue
        typed, _, what = line.partition("  ")
        what, _, pays = what.rpartition("; pays ")
        example = what.partition("e.g. ")[2].split(";")[0].split(" (")[0]
        words = [example if "<" in alternative else alternative for alternative in typed.split("|")]
        rows.append((words, int(pays.removesuffix(":1"))))
    return rows


def test_help_bet_lists_each_bet_as_it_is_typed_and_each_is_accepted_with_its_payout(shared, connect):
    """Each row of HELP BET starts with exactly what a player types (FOUR, not 'FOUR, European'): BET takes it."""
    rows = help_bet_rows(connect(shared.port).command("HELP BET").text)
    assert len(rows) == 13  # one per kind of bet: straight to low/high
    connection = login(connect(shared.port))
    for words, payout in rows:
        for typed in words:
            placed = connection.command(f"BET {typed} 1")
            if placed.code == 536:  # on the other wheel only (00, BASKET / FOUR)
                assert connection.command("CLR").code == 200
                other = "european" if stat(connection)["wheel"] == "american" else "american"
                assert connection.command(f"TABL {other}").code == 200
                placed = connection.command(f"BET {typed} 1")
            assert PlacedBet.from_reply(placed).payout == payout, (typed, placed)


# --------------------------------------------------------------------------
# Guests and registered players
# --------------------------------------------------------------------------


def test_guest_chips_last_for_the_login_only(shared, connect):
    first, second = login(connect(shared.port)), login(connect(shared.port))
    assert first.command("BET RED 40").code == 200
    assert stat(first)["bankroll"] == "60"
    assert stat(second)["bankroll"] == "100"  # every guest login has its own table
    assert first.command("REIN").code == 220
    login(first)
    assert (stat(first)["bankroll"], stat(first)["open-bet-chips"]) == ("100", "0")


def test_player_bankroll_shared_by_connections_and_kept_across_reconnects(start_daemon, connect):
    daemon = start_daemon("--start-bankroll", "700", users=True)
    a = login(connect(daemon.port), "dave", "hunter2")
    b = login(connect(daemon.port), "dave", "hunter2")
    assert stat(a)["bankroll"] == "700"
    assert a.command("BET RED 100").lines == ("Bet RED for 100 (pays 1:1); bankroll 600; slip 1",)
    keys = stat(b)
    assert (keys["bankroll"], keys["open-bet-chips"]) == ("600", "100")
    assert b.command("BETS").lines[1] == "RED for 100 (pays 1:1)"
    assert b.command("TABL EUROPEAN").code == 537  # the bet is open on the shared table
    spin = b.command("SPIN")  # b settles a's bet
    won = Spin.from_reply(spin).returned == 200
    bankroll = 800 if won else 600
    assert spin.lines[-1].startswith(f"Bankroll {bankroll}; rounds 1")
    a.command("QUIT")
    b.command("QUIT")
    again = login(connect(daemon.port), "dave", "hunter2")
    keys = stat(again)
    assert (keys["bankroll"], keys["rounds"], keys["open-bet-chips"]) == (str(bankroll), "1", "0")
    root = login(connect(daemon.port), "root", "admin pass")
    assert stat(root)["bankroll"] == "700"  # each player has a table of their own


def test_open_bets_survive_a_reconnect(daemon, connect):
    a = login(connect(daemon.port), "dave", "hunter2")
    assert a.command("BET STREET 4 25").code == 200
    a.close()
    b = login(connect(daemon.port), "dave", "hunter2")
    assert b.command("BETS").lines[-1] == "Total staked 25; bankroll 975"


def test_two_connections_of_one_player_never_overdraw(daemon, connect):
    """Both connections pipeline more bets than the bankroll covers, at the same moment."""
    connections = [login(connect(daemon.port), "dave", "hunter2") for _ in range(2)]
    barrier = threading.Barrier(len(connections))
    codes: list[list[int]] = [[] for _ in connections]

    def hammer(index):
        connection = connections[index]
        barrier.wait()
        connection.send(b"BET RED 7\r\n" * 150)
        codes[index] = [reply.code for reply in connection.replies(150)]

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(len(connections))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    accepted = sum(c.count(200) for c in codes)
    assert accepted == 1000 // 7
    assert sum(c.count(535) for c in codes) == 300 - accepted
    keys = stat(connections[0])
    assert (keys["bankroll"], keys["open-bet-chips"]) == (str(1000 - 7 * accepted), str(7 * accepted))


def test_concurrent_bets_and_spins_of_one_player_conserve_chips(daemon, connect):
    """Two connections bet and spin in a tight loop: every chip is accounted for, no bet settled twice."""
    connections = [login(connect(daemon.port), "dave", "hunter2") for _ in range(2)]
    placed = [0, 0]
    settled = [0, 0]
    returned = [0, 0]

    def play(index):
        connection = connections[index]
        for _ in range(60):
            connection.send(b"BET RED 30\r\nBET 17 5\r\nSPIN\r\n")
            for reply in connection.replies(3):
                if reply.code == 200:
                    placed[index] += PlacedBet.from_reply(reply).amount
                elif reply.code == 250:
                    result = Spin.from_reply(reply)
                    settled[index] += result.staked
                    returned[index] += result.returned
                else:
                    assert reply.code == 535, reply

    threads = [threading.Thread(target=play, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    keys = stat(connections[0])
    bankroll, open_bets = int(keys["bankroll"]), int(keys["open-bet-chips"])
    assert sum(placed) == sum(settled) + open_bets  # every bet settled exactly once or still open
    assert bankroll == 1000 - sum(placed) + sum(returned)
    assert int(keys["rounds"]) == 120


# --------------------------------------------------------------------------
# The registry's unit of work, in process (the socket tests above cannot force an interleaving),
# and the store behind it
# --------------------------------------------------------------------------


def sessions_of(services, *users):
    result = []
    for user in users:
        session = Session(services)
        session.login(user)
        result.append(session)
    return result


PLAYERS = {name: User(name, name.title(), frozenset({"player"}), "scrypt$unused") for name in ("dave", "erin")}


def test_update_holds_the_players_lock_for_the_whole_unit_of_work():
    services = build_services(UserDirectory(PLAYERS))  # no store: tables in memory
    casino = services.roulette
    dave_a, dave_b, erin = sessions_of(services, PLAYERS["dave"], PLAYERS["dave"], PLAYERS["erin"])
    inside, release = threading.Event(), threading.Event()
    entered = []

    def hold(table):
        inside.set()
        release.wait(10)

    def enter(session):
        casino.update(session, lambda table: entered.append((session, table.bankroll)))

    holder = threading.Thread(target=casino.update, args=(dave_a, hold))
    holder.start()
    assert inside.wait(10)
    other_player = threading.Thread(target=enter, args=(erin,))
    other_player.start()
    other_player.join(10)
    assert entered == [(erin, 1000)]  # another player's table is not held up
    same_player = threading.Thread(target=enter, args=(dave_b,))
    same_player.start()
    same_player.join(0.2)
    assert same_player.is_alive() and len(entered) == 1  # waits for dave's other connection
    release.set()
    same_player.join(10)
    holder.join(10)
    assert entered[-1] == (dave_b, 1000)


def test_a_unit_of_work_that_fails_changes_nothing():
    services = build_services(UserDirectory(PLAYERS))
    casino = services.roulette
    (dave,) = sessions_of(services, PLAYERS["dave"])

    def two_bets_then_a_bug(table):
        table.place(parse_bet("RED", table.wheel_kind), 10)
        table.place(parse_bet("17", table.wheel_kind), 5)
        return 1 / 0

    with pytest.raises(ZeroDivisionError):
        casino.update(dave, two_bets_then_a_bug)
    table = casino.view(dave)
    assert (table.bankroll, table.bets, table.rounds) == (1000, [], 0)
    table.place(parse_bet("RED", table.wheel_kind), 10)  # a view is a copy
    assert casino.view(dave).bankroll == 1000


def test_guest_tables_belong_to_the_login():
    services = build_services(UserDirectory(PLAYERS))
    casino = services.roulette
    first, second = sessions_of(services, GUEST_USER, GUEST_USER)
    casino.update(first, lambda table: table.place(parse_bet("RED", table.wheel_kind), 30))
    assert casino.view(second).bankroll == 100
    first.logout()  # the logout hook drops the guest's table
    assert first.guest_seat is None
    first.login(GUEST_USER)
    assert (casino.view(first).bankroll, casino.view(first).staked) == (100, 0)


def test_receipts_history_and_the_cashier_without_a_store():
    root = User("root", "Ada Admin", frozenset({"admin"}), "scrypt$unused")
    services = build_services(UserDirectory({**PLAYERS, "root": root}))  # no store: in memory
    dave, admin = sessions_of(services, PLAYERS["dave"], root)
    assert PlacedBet.from_reply(dave.handle("BET RED 10")).slip == 1
    dave.handle("SPIN")
    assert dave.handle("SLIP 1").lines[0].startswith("Slip 1: RED for 10 at private round 1: ")
    assert admin.handle("CRED dave -2000 too much").code == 535
    credited = admin.handle("CRED dave +7 memory")
    assert credited.code == 200 and credited.lines[0].startswith("Credit 1 to dave: +7 chips; ")
    history = dave.handle("HIST").lines
    assert history[1].startswith("Credit 1 by root, ") and history[1].endswith("; memory")
    assert history[2].startswith("Round 1 at private, ") and history[3].startswith("Fair: american wheel, nonce 0; ")
    assert history[4].startswith("Slip 1: RED for 10: ")
    assert admin.handle("CRED erin 1 welcome").lines[0] == "Credit 2 to erin: +1 chips; bankroll 1000 -> 1001"


class FailingStore:
    """A store whose every transaction fails, as with a read-only or full database."""

    def __init__(self, error):
        self.error = error
        self.meters = MeterManager()  # the meters service wants one too

    def update_table(self, player, start_bankroll, limits, change):
        raise self.error

    def load_table(self, player, limits):
        raise self.error


@pytest.mark.parametrize(
    "error, code",
    [
        (StorageError("storage unavailable: readonly database"), 451),
        (StorageFull("storage full: database or disk is full"), 452),
    ],
)
def test_a_storage_failure_is_a_4yz_reply_and_guests_still_play(error, code):
    services = build_services(UserDirectory(PLAYERS), store=FailingStore(error))
    (dave,) = sessions_of(services, PLAYERS["dave"])
    for line in ("BET RED 10", "SPIN", "CLR", "BETS", "TABL"):
        blocking = dave.handle(line)  # a registered player's table is in the store: off the loop
        assert isinstance(blocking, Blocking) and blocking.pool == STORE_POOL, (line, blocking)
        reply = blocking.run()
        assert reply.code == code, (line, reply)
    (guest,) = sessions_of(services, GUEST_USER)  # guests are in memory: answered at once
    assert guest.handle("BET RED 10").code == 200


def test_player_tables_survive_a_daemon_restart(start_daemon, connect, tmp_path):
    database = str(tmp_path / "casino.db")
    first = start_daemon("--db", database, users=True)
    dave = login(connect(first.port), "dave", "hunter2")
    assert dave.command("BET DOZEN1 50").code == 200
    spin = dave.command("SPIN")
    assert dave.command("TABL EUROPEAN").code == 200
    assert dave.command("BET 0 25").code == 200
    before = stat(dave)
    first.stop()
    second = start_daemon("--db", database, users=True)
    dave = login(connect(second.port), "dave", "hunter2")
    after = stat(dave)
    assert [after[k] for k in ("wheel", "bankroll", "rounds", "open-bet-chips")] == [
        before[k] for k in ("wheel", "bankroll", "rounds", "open-bet-chips")
    ]
    assert (after["wheel"], after["rounds"], after["open-bet-chips"]) == ("european", "1", "25")
    assert int(after["bankroll"]) == 1000 - 50 - 25 + Spin.from_reply(spin).returned
    assert dave.command("BETS").lines[1] == "0 for 25 (pays 35:1)"


# --------------------------------------------------------------------------
# The wheel: seeded for tests, unpredictable otherwise
# --------------------------------------------------------------------------


def spins(daemon, count, wheel=None):
    with client(daemon) as c:
        if wheel:
            c.table(wheel)
        return [c.spin().pocket for _ in range(count)]


def test_seeded_spins_are_reproducible(start_daemon):
    first, second = start_daemon("--seed", "7", users=True), start_daemon("--seed", "7", users=True)
    sequence = spins(first, 25)
    assert spins(second, 25) == sequence
    assert sequence == seeded_pockets(7, 25)
    european = spins(first, 25, "european")  # the daemon's second table: the second seeds drawn
    assert european == seeded_pockets(7, 25, "european", table=1)
    assert "WARNING" in first.log() and "SEEDED WITH 7" in first.log()


def test_a_straight_bet_on_the_predicted_pocket_pays_35_to_1(start_daemon):
    daemon = start_daemon("--seed", "123", users=True)
    [pocket] = seeded_pockets(123, 1)
    with client(daemon) as c:
        c.bet(pocket, 2)
        c.bet("SPLIT 0-00" if pocket not in ("0", "00") else "RED", 3)
        result = c.spin()
    assert result.pocket == pocket
    assert [(o.won, o.returned) for o in result.outcomes] == [(True, 72), (False, 0)]
    assert (result.bankroll, result.net) == (100 - 5 + 72, 67)


def test_unseeded_wheel_gives_no_warning_and_varies(shared):
    assert "SEEDED" not in shared.log()
    assert len(set(spins(shared, 40))) > 10


def test_bad_table_options_stop_the_daemon_with_one_line():
    for args, message in [
        (["--table-min", "10", "--table-max", "5"], "minimum (10) is above the maximum (5)"),
        (["--table-max", "5", "--table-min", "10"], "minimum (10) is above the maximum (5)"),
        (["--table-min", "0"], "must be at least 1"),
        (["--start-bankroll", "lots"], "not a whole number"),
    ]:
        done = subprocess.run(
            [sys.executable, str(ROOT / "daemon.py"), "--port", "0", *args], capture_output=True, text=True, timeout=20
        )
        assert done.returncode == 2, done
        assert message in done.stderr and "Traceback" not in done.stderr


# --------------------------------------------------------------------------
# The client library
# --------------------------------------------------------------------------


def test_client_library_typed_results(shared):
    with client(shared) as c:
        info = c.table()
        assert (info.wheel, info.minimum, info.maximum, info.house_edge) == ("american", 1, 500, "5.26% (BASKET 7.89%)")
        placed = c.bet("split 18-17", 5)
        assert (placed.bet, placed.amount, placed.payout, placed.bankroll) == ("SPLIT 17-18", 5, 17, 95)
        c.bet("RED", 10)
        listing = c.bets()
        assert [(b.bet, b.amount, b.payout) for b in listing.bets] == [("SPLIT 17-18", 5, 17), ("RED", 10, 1)]
        assert (listing.wheel, listing.staked, listing.bankroll) == ("american", 15, 85)
        cleared = c.clear()
        assert (cleared.bets, cleared.returned, cleared.bankroll) == (2, 15, 100)
        with pytest.raises(PermanentError) as refused:
            c.bet("RED", 101)
        assert refused.value.code == 535
        with pytest.raises(ValueError):
            c.bet("RED\r\nQUIT", 1)  # never sent
        c.bet("BLACK", 10)
        c.bet("0", 1)
        result = c.spin()
        assert result.rounds == 1 and len(result.outcomes) == 2
        assert result.properties[0] == result.color == pocket_properties(result.pocket).color
        assert result.bankroll == 89 + result.returned and result.net == result.returned - result.staked
        assert c.table("european").wheel == "european"


def test_too_many_open_bets_gets_538(start_daemon):
    from conftest import RawConnection

    daemon = start_daemon(users=True)
    with RawConnection(daemon.port) as raw:
        raw.reply()
        raw.command("USER dave")
        assert raw.command("PASS hunter2").code == 230
        raw.send(b"BET RED 1\r\n" * 201)
        codes = [raw.reply().code for _ in range(201)]
        assert codes == [200] * 200 + [538]
        keys = stat(raw)
        assert (keys["open-bet-count"], keys["open-bet-chips"]) == ("200", "200")
        assert raw.command("CLR").code == 200
