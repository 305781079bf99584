"""``Client(retry=...)`` and the console programs over a link that loses replies, on both engines.

A proxy between client and daemon forwards everything but, while it has losses left,
resets the client's connection instead of forwarding a labelled reply that holds a
marker: the daemon carried the command out and committed it, the client never heard.
The retry reconnects, logs in, resends the same label and gets the first reply.
"""

import re
import socket
import struct
import subprocess
import sys
import threading

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
from flaky_link import hang_up  # the proxy pumps hang up as the flaky-link script's do

from lineproto.client import Client, Retry

_LABELLED_REPLY = re.compile(rb"^[1-5][0-9][0-9][ -]@", re.M)


class LosingProxy:
    """127.0.0.1:``port`` -> the daemon; loses the first ``losses`` labelled replies holding ``marker``."""

    def __init__(self, upstream: int, losses: int, marker: bytes):
        self.upstream, self.marker = upstream, marker
        self.losses = losses  # replies still to lose
        self.lost = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            upstream = socket.create_connection(("127.0.0.1", self.upstream))
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _lose(self, data: bytes) -> bool:
        with self._lock:
            if self.losses and _LABELLED_REPLY.search(data) and self.marker in data:
                self.losses -= 1
                self.lost += 1
                return True
        return False

    def _pump(self, source: socket.socket, target: socket.socket, replies: bool) -> None:
        try:
            while data := source.recv(65536):
                if replies and self._lose(data):
                    target.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    target.shutdown(socket.SHUT_RD)  # wakes the other pump, in recv on it; nothing is sent
                    break  # closed with linger 0: the client gets a reset instead of the reply
                target.sendall(data)
        except OSError:
            pass
        for sock in (source, target):
            hang_up(sock)

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                sock.close()


@pytest.fixture
def proxy_to():
    proxies = []

    def start(daemon, losses: int, marker: bytes) -> LosingProxy:
        proxies.append(LosingProxy(daemon.port, losses, marker))
        return proxies[-1]

    yield start
    for proxy in proxies:
        proxy.close()


FAST = Retry(attempts=4, backoff=0.01, max_backoff=0.05)


def test_a_bet_whose_reply_is_lost_is_resent_and_placed_once(daemon, proxy_to):
    proxy = proxy_to(daemon, 1, b"Bet RED")
    with Client("127.0.0.1", proxy.port, retry=FAST) as client:
        client.login("dave", "hunter2")
        placed = client.bet("RED", 10)
        assert proxy.lost == 1 and client.last_delivery is not None and client.last_delivery.resent
        assert (placed.bankroll, placed.slip) == (990, 1)
        assert client.stat()["label-replays"] == "1"
        assert len(client.bets().bets) == 1
        assert not client.last_delivery.resent  # a reply that came at once


def test_a_spin_and_a_reading_whose_replies_are_lost_count_once(start_daemon, proxy_to, tmp_path):
    roster = tmp_path / "roster.csv"
    roster.write_text("G10001\n", encoding="utf-8")
    daemon = start_daemon("--roster", str(roster), users=True)
    proxy = proxy_to(daemon, 2, b"Bankroll")  # SPIN's last line; then a READ's
    with Client("127.0.0.1", proxy.port, retry=FAST) as client:
        client.login("root", "admin pass")
        client.bet("BLACK", 10)
        spin = client.spin()
        assert client.last_delivery is not None and client.last_delivery.resent
        assert client.table_status().rounds == 1 and spin.bankroll == client.table_status().bankroll
        proxy.marker, proxy.losses = b"Accepted", 1
        meter = client.job()
        assert meter == "G10001"
        assert client.read(meter, 5983) == (1, 1) and client.last_delivery.resent
        assert [line.split("@")[0] for line in client.dump()] == ["G10001=5983"]


def test_a_guest_is_not_resent_to_a_new_table(daemon, proxy_to):
    """A guest's table ends with its connection: the lost reply is an error, not a bet on a new table."""
    proxy = proxy_to(daemon, 1, b"Bet RED")
    client = Client("127.0.0.1", proxy.port, retry=FAST)
    client.login("guest")
    with pytest.raises(ConnectionError):
        client.bet("RED", 10)
    client.close()


def test_the_meter_console_loses_no_reading_and_counts_none_twice(start_daemon, proxy_to, tmp_path):
    roster = tmp_path / "roster.csv"
    roster.write_text("G10001\nG10002\n", encoding="utf-8")
    daemon = start_daemon("--roster", str(roster), users=True)
    proxy = proxy_to(daemon, 2, b"Accepted")
    done = subprocess.run(
        [sys.executable, str(ROOT / "client.py"), "meter", "--port", str(proxy.port), "--user", "carol"],
        input="secret\n12\n13\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "Accepted: you have read 1 out of 1 readings" in done.stdout
    assert "Accepted: you have read 2 out of 2 readings" in done.stdout and proxy.lost == 2
    with Client("127.0.0.1", daemon.port) as root:
        root.login("root", "admin pass")
        assert [line.split("@")[0] for line in root.dump()] == ["G10001=12", "G10002=13"]


def test_batch_sends_labelled_lines_as_they_are(shared):
    done = subprocess.run(
        [sys.executable, str(ROOT / "client.py"), "batch", "--port", str(shared.port), "-"],
        input="@n-1 NOOP\n@q.2 QUIT\n",
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-2:] == ["200 @n-1 OK", "221 @q.2 Goodbye"]


def test_the_retry_gives_up_after_its_attempts_and_the_bet_stands_once(daemon, proxy_to):
    proxy = proxy_to(daemon, 10, b"Bet RED")
    client = Client("127.0.0.1", proxy.port, retry=FAST)
    client.login("dave", "hunter2")
    with pytest.raises(ConnectionError):
        client.bet("RED", 10)
    client.close()
    assert proxy.lost == FAST.attempts
    with Client("127.0.0.1", daemon.port) as direct:
        direct.login("dave", "hunter2")
        assert direct.table_status().bankroll == 990 and direct.stat()["label-replays"] == str(FAST.attempts - 1)


def test_a_retry_waits_longer_each_time_up_to_its_bound():
    retry = Retry(attempts=6, backoff=0.5, max_backoff=3.0)
    assert [retry.delay(resend) for resend in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    for wrong in ({"attempts": 0}, {"backoff": -1}, {"backoff": 2.0, "max_backoff": 1.0}):
        with pytest.raises(ValueError, match="a retry needs"):
            Retry(**wrong)


def test_flaky_link_loses_and_duplicates_nothing_in_a_short_run(engine):
    """scripts/flaky_link.py for 3 s (its default losses): it compares the database with what each client believes.

    A client gives up only after 10 sends fail in a row (about 1 in 10^9 per command at these rates).
    """
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "flaky_link.py"), "--clients", "4", "--seconds", "3"]
        + ["--engine", engine],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 differences (lost or duplicated)" in done.stdout and " resent;" in done.stdout


def _client_py(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "client.py"), *args], input=stdin, capture_output=True, text=True, timeout=120
    )


def test_play_places_a_bet_once_when_its_reply_is_lost(daemon, proxy_to):
    proxy = proxy_to(daemon, 1, b"Bet RED")
    done = _client_py("play", "--port", str(proxy.port), "--user", "dave", stdin="hunter2\nred 10\nquit\n")
    assert done.returncode == 0, done.stderr
    assert proxy.lost == 1 and "You leave with 990 chips" in done.stdout, done.stdout
    with Client("127.0.0.1", daemon.port) as direct:
        direct.login("dave", "hunter2")
        assert [(bet.bet, bet.amount) for bet in direct.bets().bets] == [("RED", 10)]


def test_simulate_as_a_registered_player_keeps_its_books_through_lost_replies(daemon, proxy_to):
    """Lost SPIN replies: each spin settles once, so what the players kept is what dave has."""
    proxy = proxy_to(daemon, 3, b"Bankroll")
    done = _client_py(
        "simulate", "--port", str(proxy.port), "--user", "dave", "--password", "hunter2", "--players", "1",
        "--rounds", "10", "--strategy", "flat", "--base", "1",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert proxy.lost == 3
    with Client("127.0.0.1", daemon.port) as direct:
        direct.login("dave", "hunter2")
        table = direct.table_status()
        assert table.rounds == 10 and table.open_bet_count == 0, table
