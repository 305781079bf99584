#!/usr/bin/env python3
"""Exactly-once over a bad link: clients play and read meters through a proxy that loses replies.

    python3 scripts/flaky_link.py [--clients 20] [--seconds 60] [--lose 0.05] [--reset 0.01] [--engine events]

Starts a daemon of its own on a temporary database, and a proxy in front of it that swallows a
share of the replies (the connection then hangs until the client's reply timeout) and resets a
share of the connections at a random moment. Half the clients are players (BET then SPIN), half
meter readers (JOB then READ), each a registered user with ``Client(retry=...)``. At the end every
player's bankroll in the database must be what its client last heard, every reader's readings
what its client believes it submitted, once each: zero lost, zero duplicated. Exit 0 when so, 1
when not (each difference on stderr), 2 for a mistake on the command line.
"""

import argparse
import random
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lineproto.argtypes import positive_int, positive_seconds  # noqa: E402
from lineproto.client import Client, ClientError, Retry  # noqa: E402
from lineproto.domain.accounts import User, format_user, hash_password  # noqa: E402

#: Cheap password hashes: the users are the script's own, on a throwaway database.
COST = {"n": 2**10, "r": 8, "p": 1}
RETRY = Retry(attempts=10, backoff=0.05, max_backoff=1.0)
REPLY_TIMEOUT = 1.0  # a swallowed reply costs the client this long before it resends


def share(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"a share is 0 or more and less than 1: {text!r}")
    return value


class FlakyProxy:
    """Forwards to the daemon; swallows ``lose`` of the replies, resets ``reset`` of the connections."""

    def __init__(self, upstream: int, lose: float, reset: float, seed: int):
        self.upstream, self.lose, self.reset = upstream, lose, reset
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.swallowed = self.resets = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _roll(self, chance: float) -> bool:
        with self.lock:
            return self.random.random() < chance

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream))
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, replies: bool) -> None:
        try:
            while data := source.recv(65536):
                if self._roll(self.reset):  # a reset at a random moment, either way
                    with self.lock:
                        self.resets += 1
                    for sock in (source, target):
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        sock.shutdown(socket.SHUT_RD)
                    break
                if replies and b"@" in data and self._roll(self.lose):
                    with self.lock:
                        self.swallowed += 1
                    continue  # this reply never arrives: the client times out and resends
                target.sendall(data)
        except OSError:
            pass
        for sock in (source, target):
            hang_up(sock)


def hang_up(sock: socket.socket) -> None:
    """Shut down, then close: the shutdown wakes the other pump, blocked in recv on the same socket
    (a close alone would leave it there, and the connection open)."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


class Player(threading.Thread):
    """BET then SPIN until the time is up; believes the bankroll of the last reply it got."""

    def __init__(self, name: str, password: str, port: int, until: float, seed: int):
        super().__init__(daemon=True)
        self.name, self.password, self.port, self.until = name, password, port, until
        self.random = random.Random(seed)
        self.bankroll: int | None = None
        self.commands = self.resent = 0
        self.error: str | None = None

    def run(self) -> None:
        try:
            client = self.connect()
            while time.monotonic() < self.until:
                self.bankroll = client.bet(self.random.choice(["RED", "BLACK", "EVEN", "ODD"]), 1).bankroll
                self._count(client)
                self.bankroll = client.spin().bankroll
                self._count(client)
            client.close()
        except (ClientError, OSError) as exc:
            self.error = f"{self.name}: {exc!r}"

    def connect(self) -> Client:
        """A logged-in client; the first login is tried again too (the retry covers what follows)."""
        for attempt in range(1, RETRY.attempts + 1):
            try:
                client = Client("127.0.0.1", self.port, timeout=REPLY_TIMEOUT, retry=RETRY)
                client.login(self.name, self.password)
                return client
            except (ClientError, OSError):
                if attempt == RETRY.attempts:
                    raise
                time.sleep(RETRY.delay(attempt))
        raise AssertionError("unreachable")

    def _count(self, client: Client) -> None:
        self.commands += 1
        self.resent += bool(client.last_delivery and client.last_delivery.resent)


class Reader(Player):
    """JOB then READ until the time is up; believes each reading whose Accepted reply it got."""

    def __init__(self, *args):
        super().__init__(*args)
        self.readings: dict[str, int] = {}

    def run(self) -> None:
        try:
            client = self.connect()
            while time.monotonic() < self.until:
                meter = client.job()
                self._count(client)
                if meter is None:
                    break
                value = self.random.randrange(100000)
                client.read(meter, value)
                self._count(client)
                self.readings[meter] = value
            client.close()
        except (ClientError, OSError) as exc:
            self.error = f"{self.name}: {exc!r}"


def start_daemon(directory: Path, engine: str, users: Path, roster: Path) -> subprocess.Popen:
    notify = directory / "notify"
    daemon = subprocess.Popen(
        [sys.executable, str(ROOT / "daemon.py"), "--db", str(directory / "flaky.db"), "--users", str(users)]
        + ["--roster", str(roster)]
        + ["--port", "0", "--notify", str(notify), "--engine", engine, "--password-cost", str(COST["n"])]
        + ["--address-lock-after", "1000000", "--account-lock-after", "1000000", "--log-level", "warning"],
        stdout=subprocess.DEVNULL,
        stderr=open(directory / "daemon.log", "wb"),  # noqa: SIM115 - open while the daemon runs
    )
    deadline = time.monotonic() + 20
    while not notify.exists():
        if daemon.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"flaky_link: the daemon did not start: {(directory / 'daemon.log').read_text()}")
        time.sleep(0.01)
    daemon.port = int(notify.read_text().splitlines()[0].rsplit(":", 1)[1])  # type: ignore[attr-defined]
    return daemon


def check(database: Path, players: list[Player], readers: list[Reader]) -> list[str]:
    """Every difference between the database and what the clients believe."""
    problems = []
    with sqlite3.connect(database) as db:
        for player in players:
            row = db.execute("SELECT bankroll FROM players WHERE name = ?", (player.name,)).fetchone()
            if player.bankroll is not None and (row is None or row[0] != player.bankroll):
                problems.append(f"{player.name}: believes bankroll {player.bankroll}, the database has {row}")
        for reader in readers:
            stored = dict(
                db.execute("SELECT meter, reading FROM submissions WHERE reader = ?", (reader.name,)).fetchall()
            )
            count = db.execute("SELECT count(*) FROM submissions WHERE reader = ?", (reader.name,)).fetchone()[0]
            if stored != reader.readings:
                problems.append(f"{reader.name}: believes {len(reader.readings)} readings, stored {len(stored)}")
            if count != len(stored):
                problems.append(f"{reader.name}: {count - len(stored)} readings submitted twice")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="flaky_link.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=positive_int, default=20)
    parser.add_argument("--seconds", type=positive_seconds, default=60.0)
    parser.add_argument("--lose", type=share, default=0.05, help="share of replies swallowed (default 0.05)")
    parser.add_argument("--reset", type=share, default=0.01, help="share of reads that reset (default 0.01)")
    parser.add_argument("--engine", choices=("events", "threads"), default="events")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="flaky-link-") as name:
        directory = Path(name)
        meters = directory / "roster.csv"
        meters.write_text("".join(f"M{n:06d}\n" for n in range(50000)), encoding="utf-8")
        names = [f"p{n}" if n % 2 == 0 else f"r{n}" for n in range(args.clients)]
        users = directory / "users.txt"
        users.write_text(
            "".join(
                format_user(User(n, n, frozenset({"player" if n[0] == "p" else "reader"}), hash_password(n, **COST)))
                + "\n"
                for n in names
            ),
            encoding="utf-8",
        )
        daemon = start_daemon(directory, args.engine, users, meters)
        try:
            proxy = FlakyProxy(daemon.port, args.lose, args.reset, args.seed)  # type: ignore[attr-defined]
            until = time.monotonic() + args.seconds
            clients = [
                (Player if n[0] == "p" else Reader)(n, n, proxy.port, until, args.seed + i) for i, n in enumerate(names)
            ]
            for client in clients:
                client.start()
            for client in clients:
                client.join()
        finally:
            daemon.terminate()
            daemon.wait(10)
        players = [c for c in clients if not isinstance(c, Reader)]
        readers = [c for c in clients if isinstance(c, Reader)]
        problems = [c.error for c in clients if c.error] + check(directory / "flaky.db", players, readers)
    commands = sum(c.commands for c in clients)
    resent = sum(c.resent for c in clients)
    print(
        f"{len(clients)} clients, {args.seconds:g} s, engine {args.engine}: {commands} commands, {resent} resent; "
        f"proxy swallowed {proxy.swallowed} replies, reset {proxy.resets} connections; "
        f"{len(problems)} differences (lost or duplicated)"
    )
    for problem in problems:
        print(f"flaky_link: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
