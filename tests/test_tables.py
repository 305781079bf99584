"""Shared tables through the real socket, on both engines: rounds, settlement, events, chat, crashes."""

import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

import pytest

from conftest import ROOT, Daemon, RawConnection, write_users_file
from lineproto.commands import build_services
from lineproto.connection import CLOSE, MAX_QUEUED_EVENTS, ServerState
from lineproto.domain.accounts import UserDirectory
from lineproto.domain.roulette import AMERICAN, Limits, OpenBet, parse_bet
from lineproto.store import SqliteStore
from lineproto.store.tables import StoredTables
from lineproto.wire.reply import Event
from lineproto.wire.shapes import History, PlacedBet, Receipt

ROUND = "0.8"  # --round-seconds of the module's daemon: short, and every wait below is for an event
TABLES = ",".join(f"t{n}:american" for n in range(1, 14))
RESULT = re.compile(
    r"round (\d+) (\S+) .*; (?:net ([+-]?\d+) \(staked (\d+), returned (\d+)\)|no bets); seed [0-9a-f]{64}"
)


@pytest.fixture(scope="module")
def tables_daemon(tmp_path_factory, engine):
    """One daemon per engine; each test sits at a table of its own (t1..t13)."""
    path = tmp_path_factory.mktemp("tables")
    users = write_users_file(path / "users.txt")
    daemon = Daemon(path, "--users", str(users), "--round-seconds", ROUND, "--tables", TABLES, engine=engine)
    yield daemon
    daemon.stop()


class Player(RawConnection):
    """A raw connection that also waits for events (the parser keeps them apart from replies)."""

    def __init__(self, port: int, user: str = "guest", password: str | None = None, **kwargs):
        super().__init__(port, **kwargs)
        assert self.reply().code == 220
        reply = self.command(f"USER {user}")
        if password is not None:
            reply = self.command(f"PASS {password}")
        assert reply.code == 230, reply

    def event(self, code: int, timeout: float = 10.0) -> Event:
        """The next event with ``code`` (earlier ones of other codes are dropped)."""
        deadline = time.monotonic() + timeout
        while True:
            events = self.parser.events
            while events:
                event = events.pop(0)
                if event.code == code:
                    return event
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {code} event within {timeout} s")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            finally:
                self.sock.settimeout(10.0)
            if not data:
                raise ConnectionError("closed by server")
            self.ready.extend(self.parser.feed(data))

    def count_events(self, wanted: dict[int, int], timeout: float = 20.0) -> dict[int, int]:
        """Read until ``wanted`` events of each code have come (or ``timeout``); how many of each came."""
        counts = dict.fromkeys(wanted, 0)
        deadline = time.monotonic() + timeout
        while True:
            for event in self.parser.take_events():
                if event.code in counts:
                    counts[event.code] += 1
            remaining = deadline - time.monotonic()
            if all(counts[code] >= wanted[code] for code in wanted) or remaining <= 0:
                return counts
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            finally:
                self.sock.settimeout(10.0)
            if not data:
                raise ConnectionError("closed by server")
            self.ready.extend(self.parser.feed(data))

    def next_round(self) -> int:
        """Wait for a round to open; its id (bets placed now are in time: a round lasts ROUND s)."""
        return int(self.event(610).text.split()[1])


def result_of(event: Event) -> tuple[int, str, int | None]:
    """(round, pocket, net or None for no bets) of a 630 event."""
    match = RESULT.fullmatch(event.text)
    assert match, event
    return int(match.group(1)), match.group(2), None if match.group(3) is None else int(match.group(3))


def bankroll(player: Player) -> int:
    return int(player.command("BETS").lines[-1].rsplit(" ", 1)[1])


def test_one_pocket_for_everyone_and_each_player_settled_by_the_payout_rules(tables_daemon):
    port = tables_daemon.port
    bets = {
        "dave": [("RED", 10), ("17", 5), ("DOZEN2", 20)],
        "root": [("BLACK", 7), ("SPLIT 17-18", 3), ("EVEN", 4)],
        "guest": [("0", 1), ("COLUMN1", 9), ("HIGH", 12), ("STREET 13", 2)],
    }
    players = {
        "dave": Player(port, "dave", "hunter2"),
        "root": Player(port, "root", "admin pass"),
        "guest": Player(port),
    }
    try:
        for player in players.values():
            assert player.command("JOIN t1").code == 200
        before = {name: bankroll(player) for name, player in players.items()}
        round_id = players["dave"].next_round()
        for name, player in players.items():
            for bet, amount in bets[name]:
                reply = player.command(f"BET {bet} {amount}")
                assert reply.code == 200, reply
        results = {}
        for name, player in players.items():
            while True:
                result = result_of(player.event(630))
                if result[0] == round_id:
                    results[name] = result
                    break
        pockets = {pocket for _, pocket, _ in results.values()}
        assert len(pockets) == 1, results  # one spin for the whole table
        (pocket,) = pockets
        for name, player in players.items():
            staked = sum(amount for _, amount in bets[name])
            returned = sum(
                amount * (parse_bet(bet, AMERICAN).payout + 1)
                for bet, amount in bets[name]
                if pocket in parse_bet(bet, AMERICAN).pockets
            )
            assert results[name][2] == returned - staked
            assert bankroll(player) == before[name] - staked + returned
    finally:
        for player in players.values():
            player.close()


def test_spin_is_the_croupiers_and_leav_returns_to_the_own_table(tables_daemon):
    with Player(tables_daemon.port) as player:
        reply = player.command("JOIN t2")
        assert re.fullmatch(r"Joined t2: american wheel, bets 1-500 chips; round \d+, .*", reply.lines[0]), reply
        spin = player.command("SPIN")
        assert spin.code == 503 and "croupier" in spin.lines[0]
        player.next_round()
        assert player.command("BET RED 10").code == 200
        left = player.command("LEAV")
        assert left.code == 200 and "your bet in round" in left.lines[0] and "stays and is settled" in left.lines[0]
        assert player.command("SPIN").code == 250  # the private table again, with nothing on it
        assert player.command("LEAV").code == 503


def test_a_bet_after_no_more_bets_is_refused_with_when_the_next_round_opens(tables_daemon):
    with Player(tables_daemon.port) as player:
        player.command("JOIN t3")
        closed = player.event(620)
        reply = player.command("BET RED 10")
        assert reply.code == 450, reply
        assert (
            re.fullmatch(r"no more bets in round (\d+) at t3: the next round opens in \d+ s", reply.lines[0]).group(1)
            == closed.text.split()[1]
        )
        assert bankroll(player) == 100


def test_a_raw_connection_at_a_table_sees_the_rounds_without_typing(tables_daemon):
    with Player(tables_daemon.port) as player:
        player.command("JOIN t4")
        opened = player.next_round()
        assert player.event(620).text == f"round {opened} no more bets"
        assert result_of(player.event(630))[:3:2] == (opened, None)
        assert player.next_round() == opened + 1


def test_events_never_reach_a_connection_that_did_not_join(tables_daemon):
    with Player(tables_daemon.port) as seated, Player(tables_daemon.port) as outsider:
        seated.command("JOIN t5")
        seated.event(630)
        assert outsider.command("NOOP").code == 200
        assert outsider.command("LIST").code == 211
        assert outsider.parser.events == []


def test_list_shows_every_table(tables_daemon):
    with Player(tables_daemon.port) as player:
        player.command("JOIN t6")
        listing = player.command("LIST")
        assert listing.code == 211
        (line,) = [line for line in listing.lines if line.startswith("t6:")]
        assert re.fullmatch(r"t6: american wheel, bets 1-500 chips, 1 seated, round \d+, \w+.*", line), line
        assert listing.lines[-1] == f"{len(TABLES.split(','))} tables; you are at t6"


def test_chat_reaches_the_others_at_the_table_within_its_limits(tables_daemon):
    port = tables_daemon.port
    with Player(port) as alice, Player(port) as bob, Player(port) as elsewhere:
        assert alice.command("CHAT hello").code == 503  # not at a table
        alice.command("JOIN t7")
        bob.command("JOIN t7")
        elsewhere.command("JOIN t8")
        joined = alice.event(640)
        assert re.fullmatch(r"guest-\d+ joined t7 \(2 seated\)", joined.text), joined
        bob_name = joined.text.split()[0]
        said = bob.command("CHAT hello, table")
        assert said.code == 200 and said.lines[0] == "Said to 1 at t7"
        assert alice.event(650).text == f"{bob_name}: hello, table"
        assert bob.command("CHAT " + "x" * 201).code == 501
        assert bob.command("CHAT bell\x07").code == 501
        for n in range(4):  # 5 per 10 s: the first counted above
            assert bob.command(f"CHAT line {n}").code == 200
        limited = bob.command("CHAT one too many")
        assert limited.code == 450 and "At most 5 chat lines per 10 s" in limited.lines[0]
        assert [alice.event(650).text for _ in range(4)] == [f"{bob_name}: line {n}" for n in range(4)]
        bob.command("NOOP")
        assert not [e for e in bob.parser.events if e.code == 650]  # the sender gets its 200, not an event
        assert elsewhere.command("NOOP").code == 200
        assert not [e for e in elsewhere.parser.events if e.code == 650]


def test_a_stuck_reader_is_dropped_and_the_table_goes_on(tables_daemon):
    port = tables_daemon.port
    stuck = socket.socket()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window: the daemon's queue fills first
    stuck.connect(("127.0.0.1", port))
    stuck.sendall(b"USER guest\r\nJOIN t9\r\n")  # then it reads nothing
    with Player(port) as busy:
        busy.command("JOIN t9")
        started = time.monotonic()
        for _ in range(40):  # each JOIN/LEAV is two events for the stuck reader
            busy.send(b"LEAV\r\nJOIN t9\r\n" * 150)
            assert all(reply.code == 200 for reply in busy.replies(300))
            if "events not read: closing" in tables_daemon.log():
                break
        tables_daemon.wait_log("more than 1024 events not read: closing")
        assert time.monotonic() - started < 20  # the busy player was answered all along
        busy.parser.events.clear()
        opened = busy.next_round()  # the table goes on
        assert result_of(busy.event(630))[0] == opened
    stuck.settimeout(10)
    try:
        while stuck.recv(65536):  # what was sent before the close, then the end
            pass
    except ConnectionResetError:
        pass
    stuck.close()


# -------------------------------------------------------------------- a crash mid-round


def _chips(db) -> dict[str, int]:
    """dave's bankroll, shared open bets and the conservation balance (0: no chip lost or made), from the store."""
    store = SqliteStore(db)
    try:
        table = store.load_table("dave", Limits())
        private, shared = store.audit("dave"), StoredTables(store).audit("dave")
    finally:
        store.close()
    balance = (private["start"] + private["returned"] - private["staked"] + shared["returned"] - shared["staked"]) - (
        table.bankroll + table.staked + shared["open"]
    )
    return {"bankroll": table.bankroll, "open": shared["open"], "balance": balance}


def chips_check(db: str) -> int:
    """``daemon.py check`` on the database: its exit status (0: chips conserved)."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "daemon.py"), "check", "--db", db], capture_output=True, text=True, timeout=60
    )
    assert done.returncode in (0, 1), done.stderr
    return done.returncode


def test_a_daemon_killed_mid_round_refunds_exactly_the_unsettled_bets_at_start(tmp_path, engine):
    db = str(tmp_path / "crash.db")
    users = str(write_users_file(tmp_path / "users.txt"))
    start = ("--db", db, "--users", users, "--tables", "main:american")
    # A first run settles a round with a bet in it ...
    daemon = Daemon(tmp_path, *start, "--round-seconds", "0.3", engine=engine)
    with Player(daemon.port, "dave", "hunter2") as dave:
        dave.command("JOIN main")
        first = dave.next_round()
        assert dave.command("BET RED 10").code == 200
        while result_of(dave.event(630))[0] != first:
            pass
        settled_bankroll = bankroll(dave)
    daemon.stop()
    assert chips_check(db) == 0  # daemon.py check counts a settled shared round's result
    # ... a second is killed while its (long) round holds dave's bets ...
    daemon = Daemon(tmp_path, *start, "--round-seconds", "60", engine=engine)
    with Player(daemon.port, "dave", "hunter2") as dave:
        joined = dave.command("JOIN main").lines[0]
        killed_round = int(re.search(r"round (\d+)", joined).group(1))
        assert killed_round > first
        seventeen = PlacedBet.from_reply(dave.command("BET 17 5"))
        dozen = PlacedBet.from_reply(dave.command("BET DOZEN1 20"))
        assert bankroll(dave) == settled_bankroll - 25
        daemon.stop(signal.SIGKILL)
    assert _chips(db) == {"bankroll": settled_bankroll - 25, "open": 25, "balance": 0}
    assert chips_check(db) == 0  # ... and the chips on a shared round's open bets
    # ... and the next start gives back exactly those 25 chips, logged.
    daemon = Daemon(tmp_path, *start, engine=engine)
    try:
        log = daemon.wait_log(f"refunded 25 chips to dave: round {killed_round} at main was never settled")
        assert log.count("refunded") == 1  # the round settled in the first run is not refunded
        assert _chips(db) == {"bankroll": settled_bankroll, "open": 0, "balance": 0}
        assert chips_check(db) == 0  # ... and a refund
        with Player(daemon.port, "dave", "hunter2") as dave:
            assert bankroll(dave) == settled_bankroll
            assert [Receipt.from_reply(dave.command(f"SLIP {bet.slip}")) for bet in (seventeen, dozen)] == [
                Receipt(seventeen.slip, "17", 5, "main", killed_round, "refunded", 5),
                Receipt(dozen.slip, "DOZEN1", 20, "main", killed_round, "refunded", 20),
            ]
            reply = dave.command("JOIN main").lines[0]
            assert int(re.search(r"round (\d+)", reply).group(1)) == killed_round + 1  # ids never repeat
    finally:
        daemon.stop()


# -------------------------------------------------------------------- the store's side, in process


def test_the_store_settles_a_round_from_its_committed_bets_in_one_go(tmp_path):
    store = SqliteStore(str(tmp_path / "t.db"))
    tables = StoredTables(store)
    try:
        red, seventeen = parse_bet("RED", AMERICAN), parse_bet("17", AMERICAN)
        for player, bet, amount in (("ann", red, 10), ("bob", seventeen, 5), ("bob", red, 20)):
            tables.place(player, 100, "main", lambda bankroll, b=bet, a=amount: (OpenBet(b, a), bankroll - a, 7))
        assert tables.audit("bob") == {"open": 25, "staked": 0, "returned": 0}
        results = tables.settle("main", 7, "17", AMERICAN, Limits())
        assert {player: (r.staked, r.returned) for player, r in results.items()} == {"ann": (10, 0), "bob": (25, 180)}
        assert tables.bankroll("ann", 100) == 90 and tables.bankroll("bob", 100) == 255
        assert tables.audit("bob") == {"open": 0, "staked": 25, "returned": 180}
        assert tables.refund_unsettled() == []  # nothing left open
        assert tables.last_rounds() == {"main": 7}
    finally:
        store.close()


# -------------------------------------------------------------------- the connection's side, without a network


def test_a_connection_queues_events_and_closes_with_421_past_the_bound():
    services = build_services(UserDirectory())
    connection = ServerState(services).connection("127.0.0.1:5000")
    woken = []
    connection.waker = lambda: woken.append(True)
    connection.push_event(b"610 round 1 open: bets for 20 s\r\n")
    assert connection.take_events(0.0) == (b"", ())  # not started: nothing goes before the greeting
    connection.start(0.0)
    connection.push_event(b"620 round 1 no more bets\r\n")
    assert len(woken) == 1  # once for the queue, not per event
    assert connection.take_events(0.0) == (b"610 round 1 open: bets for 20 s\r\n620 round 1 no more bets\r\n", ())
    for n in range(MAX_QUEUED_EVENTS + 1):
        connection.push_event(b"650 x: %d\r\n" % n)
    assert connection.events_overflowed and len(woken) == 3
    data, actions = connection.take_events(0.0)
    assert data == b"421 Too many events not read; closing connection\r\n" and actions == (CLOSE,)
    connection.push_event(b"650 x: late\r\n")
    assert connection.take_events(0.0) == (b"", ())


def test_events_are_never_inside_a_multi_line_reply(tables_daemon):
    port = tables_daemon.port
    with Player(port) as watcher, Player(port) as busy:
        watcher.command("JOIN t10")
        busy.command("JOIN t10")

        def come_and_go():  # two events for the watcher each time
            busy.send(b"LEAV\r\nJOIN t10\r\n" * 150)
            answered.extend(busy.replies(300))

        answered: list = []
        thread = threading.Thread(target=come_and_go)
        thread.start()
        watcher.send(b"LIST\r\n" * 300)  # multi-line replies, while the events come
        listings = watcher.replies(300)
        thread.join(timeout=30)
        assert all(reply.code == 211 and len(reply.lines) == len(TABLES.split(",")) + 2 for reply in listings)
        assert not [line for reply in listings for line in reply.lines if re.match(r"6\d\d ", line)]
        assert len(answered) == 300 and all(reply.code == 200 for reply in answered)
        assert watcher.event(641) and watcher.event(640)  # they came, apart from the replies


@pytest.mark.parametrize(
    "args, message",
    [
        (["--tables", "main"], "argument --tables: 'main' is not NAME:WHEEL[:MIN-MAX]"),
        (["--tables", "main:french"], "the wheel is american or european"),
        (["--round-seconds", "0"], "argument --round-seconds: must be more than 0"),
        (["--round-seconds", "soon"], "not a number of seconds"),
    ],
)
def test_table_options_mistakes_are_one_line_and_exit_2(args, message):
    done = subprocess.run([sys.executable, str(ROOT / "daemon.py"), *args], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr


def test_every_event_arrives_when_several_threads_send_them_at_once(tables_daemon):
    port = tables_daemon.port
    with Player(port) as watcher, Player(port) as ann, Player(port) as bob:
        watcher.command("JOIN t11")
        for busy in (ann, bob):
            busy.command("JOIN t11")

        def come_and_go(busy):
            busy.send(b"LEAV\r\nJOIN t11\r\n" * 100)
            assert all(reply.code == 200 for reply in busy.replies(200))

        threads = [threading.Thread(target=come_and_go, args=(busy,)) for busy in (ann, bob)]
        for thread in threads:
            thread.start()
        # 400 events for the watcher, which only reads: none may wait in a queue for another event
        assert watcher.count_events({640: 202, 641: 200}) == {640: 202, 641: 200}  # 2: the first JOINs
        for thread in threads:
            thread.join(timeout=10)


def test_a_player_on_tls_sees_the_rounds_without_typing(start_daemon, tmp_path):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1")
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    issued.private_key_pem.write_to_path(str(key))
    cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    daemon = start_daemon("--cert", str(cert), "--key", str(key), "--round-seconds", ROUND)
    context = ssl.create_default_context()
    ca.configure_trust(context)
    plain = Player.over(socket.create_connection(("127.0.0.1", daemon.port), timeout=10))
    assert plain.reply().code == 220
    assert plain.command("AUTH TLS").code == 234  # the FTP way (the TLS port works the same once up)
    with context.wrap_socket(plain.sock, server_hostname="127.0.0.1") as sock:
        player = Player.over(sock)
        assert player.command("USER guest").code == 230
        player.command("JOIN main")
        opened = player.next_round()  # nothing typed since JOIN
        assert player.event(620).text == f"round {opened} no more bets"
        assert result_of(player.event(630))[0] == opened


def test_clr_at_a_table_gives_a_registered_players_bets_back(tables_daemon):
    with Player(tables_daemon.port, "root", "admin pass") as root:
        root.command("JOIN t12")
        before = bankroll(root)
        root.next_round()
        assert root.command("BET RED 10").code == 200
        assert root.command("BET 17 5").code == 200
        cleared = root.command("CLR")
        assert cleared.code == 200 and cleared.lines[0] == f"Cleared 2 bets, 15 chips back; bankroll {before}"
        assert root.command("BETS").lines[-1] == f"Total staked 0; bankroll {before}"


# -------------------------------------------------------------------- receipts and history of shared bets


def test_a_registered_players_shared_bets_get_slips_that_survive_a_restart_with_their_history(tmp_path, engine):
    db = str(tmp_path / "slips.db")
    users = str(write_users_file(tmp_path / "users.txt"))
    start = ("--db", db, "--users", users, "--tables", "main:american", "--round-seconds", "0.5")
    daemon = Daemon(tmp_path, *start, engine=engine)
    try:
        with Player(daemon.port, "dave", "hunter2") as dave:
            private = PlacedBet.from_reply(dave.command("BET RED 1"))
            assert dave.command("SPIN").code == 250
            dave.command("JOIN main")
            cleared_round = dave.next_round()
            red = PlacedBet.from_reply(dave.command("BET RED 10"))
            seventeen = PlacedBet.from_reply(dave.command("BET 17 5"))
            assert Receipt.from_reply(dave.command(f"SLIP {red.slip}")) == Receipt(
                red.slip, "RED", 10, "main", cleared_round, "open", 0
            )
            assert dave.command("CLR").code == 200
            played_round = dave.next_round()
            even = PlacedBet.from_reply(dave.command("BET EVEN 4"))
            assert [private.slip + 1, private.slip + 2, private.slip + 3] == [red.slip, seventeen.slip, even.slip]
            while True:
                round_id, pocket, net = result_of(dave.event(630))
                if round_id == played_round:
                    break
            after = bankroll(dave)
    finally:
        daemon.stop()
    daemon = Daemon(tmp_path, *start, engine=engine)
    try:
        with Player(daemon.port, "dave", "hunter2") as dave:
            assert Receipt.from_reply(dave.command(f"SLIP {seventeen.slip}")) == Receipt(
                seventeen.slip, "17", 5, "main", cleared_round, "cleared", 5
            )
            won = net is not None and net > 0
            assert Receipt.from_reply(dave.command(f"SLIP {even.slip}")) == Receipt(
                even.slip, "EVEN", 4, "main", played_round, "win" if won else "lose", 8 if won else 0
            )
            newest = History.from_reply(dave.command("HIST 2")).entries
            assert (newest[0].round, newest[0].table, newest[0].pocket) == (played_round, "main", pocket)
            assert (newest[0].before, newest[0].after, newest[0].net) == (after - net, after, net)
            assert [(b.slip, b.bet, b.amount, b.won) for b in newest[0].bets] == [(even.slip, "EVEN", 4, won)]
            assert newest[1].table == "private"  # the private spin, older
            assert PlacedBet.from_reply(dave.command("BET RED 1")).slip == even.slip + 1  # never repeats
            assert dave.command("SPIN").code == 250
            tables = [entry.table for entry in History.from_reply(dave.command("HIST 3")).entries]
            assert tables == ["private", "main", "private"]  # a later private spin comes before the shared round
    finally:
        daemon.stop()


def test_a_guests_shared_bets_get_slips_and_history_for_the_login(tables_daemon):
    with Player(tables_daemon.port) as guest:
        private = PlacedBet.from_reply(guest.command("BET RED 1"))
        assert guest.command("SPIN").code == 250
        guest.command("JOIN t13")
        cleared_round = guest.next_round()
        red = PlacedBet.from_reply(guest.command("BET RED 10"))
        assert Receipt.from_reply(guest.command(f"SLIP {red.slip}")) == Receipt(
            red.slip, "RED", 10, "t13", cleared_round, "open", 0
        )
        assert guest.command("CLR").code == 200
        assert Receipt.from_reply(guest.command(f"SLIP {red.slip}")).state == "cleared"
        played_round = guest.next_round()
        low = PlacedBet.from_reply(guest.command("BET LOW 3"))
        seventeen = PlacedBet.from_reply(guest.command("BET 17 2"))
        assert [red.slip, low.slip, seventeen.slip] == [private.slip + 1, private.slip + 2, private.slip + 3]
        while True:
            round_id, pocket, net = result_of(guest.event(630))
            if round_id == played_round:
                break
        after = bankroll(guest)
        receipts = [Receipt.from_reply(guest.command(f"SLIP {bet.slip}")) for bet in (low, seventeen)]
        assert [(r.table, r.round, r.bet, r.amount) for r in receipts] == [
            ("t13", played_round, "LOW", 3),
            ("t13", played_round, "17", 2),
        ]
        assert sum(r.returned for r in receipts) - 5 == net
        assert all(r.state == ("win" if r.returned else "lose") for r in receipts)
        newest = History.from_reply(guest.command("HIST 2")).entries
        assert (newest[0].round, newest[0].table, newest[0].pocket) == (played_round, "t13", pocket)
        assert (newest[0].before, newest[0].after, newest[0].net) == (after - net, after, net)
        assert [(b.slip, b.bet, b.amount) for b in newest[0].bets] == [(low.slip, "LOW", 3), (seventeen.slip, "17", 2)]
        assert newest[1].table == "private"
        guest.command("LEAV")
        assert PlacedBet.from_reply(guest.command("BET RED 1")).slip == seventeen.slip + 1  # never repeats
