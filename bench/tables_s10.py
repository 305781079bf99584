#!/usr/bin/env python3
"""S10: shared tables under load: 20 tables x 50 seated players, every player betting each round.

Starts a daemon (``--round-seconds 1``, ``--port 0 --notify FILE``, waited for by its notify
file), seats ``--players`` connections per table from one client thread (non-blocking sockets,
a selector), and at every ``610`` (round open) each player bets ``RED 1``. For every round it
takes the spin's time as the first ``620`` (no more bets) any player at that table received plus
the table's spin pause, and measures each player's ``630`` (result) against it: the result
event's latency after the spin, settlement included. Prints p50/p99/max, the rounds settled per
second, the errors, and (``--registered``) the daemon's durable settlement time per table from
its debug log.

    python3 bench/tables_s10.py                  # guests, 20 x 50, 10 s
    python3 bench/tables_s10.py --registered     # registered players (a users file of cheap hashes)
"""

from __future__ import annotations

import argparse
import os
import re
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from lineproto.domain.accounts import User, format_user, hash_password  # noqa: E402
from lineproto.domain.tables import SPIN_SECONDS  # noqa: E402

SETTLED = re.compile(r"round \d+ at (\S+): (\d+) stored players settled in ([0-9.]+) ms")


class Player:
    """One seated connection: what it has read, and what it still has to say."""

    def __init__(self, sock: socket.socket, table: str, login: list[bytes]):
        self.sock = sock
        self.table = table
        self.buffer = b""
        self.out = b"".join(login) + f"JOIN {table}\r\n".encode()
        self.errors = 0


def read(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as file:
        return file.read()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def users_file(path: str, count: int) -> str:
    lines = []
    for n in range(count):
        user = User(f"p{n}", f"Player {n}", frozenset({"player"}), hash_password("pw", n=2**10, r=8, p=1))
        lines.append(format_user(user) + "\n")
    with open(path, "w", encoding="utf-8") as file:
        file.write("".join(lines))
    return path


def measure(
    engine: str = "events",
    registered: bool = False,
    seconds: float = 10.0,
    tables: int = 20,
    players: int = 50,
    round_seconds: float = 1.0,
    daemon_args: tuple[str, ...] = (),
) -> dict:
    """One S10 run: a daemon started and stopped, its figures (latencies in ms)."""
    total = tables * players
    spin_pause = min(SPIN_SECONDS, round_seconds / 4)
    with tempfile.TemporaryDirectory() as work:
        notify = os.path.join(work, "notify")
        names = [f"s{n}" for n in range(tables)]
        command = [
            sys.executable,
            os.path.join(ROOT, "daemon.py"),
            "--port", "0", "--notify", notify, "--db", os.path.join(work, "s10.db"),
            "--engine", engine, "--round-seconds", str(round_seconds),
            "--tables", ",".join(f"{name}:american" for name in names),
            "--max-connections", str(total + 10), "--max-per-address", str(total + 10),
            "--log-level", "debug", "--password-cost", "1024", *daemon_args,
        ]  # fmt: skip
        if registered:
            command += ["--users", users_file(os.path.join(work, "users.txt"), total)]
        log_path = os.path.join(work, "daemon.log")
        with open(log_path, "wb") as log_file:
            daemon = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log_file)
            try:
                deadline = time.monotonic() + 60
                while not os.path.exists(notify):
                    if daemon.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"the daemon did not start: {read(log_path)[-2000:]}")
                    time.sleep(0.02)
                port = int(read(notify).split()[0].rsplit(":", 1)[1])
                result = drive(port, names, players, registered, seconds, spin_pause)
            finally:
                daemon.send_signal(signal.SIGTERM)
                daemon.wait(30)
        settled = [float(m.group(3)) for m in SETTLED.finditer(read(log_path)) if int(m.group(2))]
    latencies = [value * 1000 for value in result["latencies"]]
    return {
        "engine": engine,
        "players": "registered" if registered else "guests",
        "tables": tables,
        "seated": players,
        "round_seconds": round_seconds,
        "results": len(latencies),
        "p50_ms": percentile(latencies, 50) if latencies else None,
        "p99_ms": percentile(latencies, 99) if latencies else None,
        "max_ms": max(latencies) if latencies else None,
        "rounds_per_s": result["rounds"] / seconds,
        "errors": result["errors"],
        "settle_median_ms": statistics.median(settled) if settled else None,
        "settle_p99_ms": percentile(settled, 99) if settled else None,
    }


def describe(figures: dict) -> str:
    """The figures of one run, in a line or two."""
    text = (
        f"S10 {figures['engine']} engine, {figures['tables']} tables x {figures['seated']} seated "
        f"({figures['players']}), --round-seconds {figures['round_seconds']:g}: "
    )
    if figures["p99_ms"] is not None:
        text += (
            f"result event after the spin p50 {figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms, "
            f"max {figures['max_ms']:.1f} ms ({figures['results']} results); "
        )
    text += f"{figures['rounds_per_s']:.1f} rounds settled/s; {figures['errors']} errors"
    if figures["settle_median_ms"] is not None:
        text += (
            f"; durable settlement per table median {figures['settle_median_ms']:.1f} ms, "
            f"p99 {figures['settle_p99_ms']:.1f} ms"
        )
    return text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", type=int, default=20)
    parser.add_argument("--players", type=int, default=50, help="seated per table (default 50)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured time (default 10)")
    parser.add_argument("--round-seconds", type=float, default=1.0)
    parser.add_argument("--engine", choices=("events", "threads"), default="events")
    parser.add_argument("--registered", action="store_true", help="registered players instead of guests")
    args = parser.parse_args(argv)
    figures = measure(args.engine, args.registered, args.seconds, args.tables, args.players, args.round_seconds)
    print(describe(figures))
    return 0 if figures["results"] and not figures["errors"] else 1


def drive(port: int, names: list[str], seated: int, registered: bool, seconds: float, spin_pause: float) -> dict:
    selector = selectors.DefaultSelector()
    players = []
    for t, table in enumerate(names):
        for n in range(seated):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.setblocking(False)
            index = t * seated + n
            login = [f"USER p{index}\r\nPASS pw\r\n".encode()] if registered else [b"USER guest\r\n"]
            player = Player(sock, table, login)
            players.append(player)
            selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, player)
    closed_at: dict[tuple[str, int], float] = {}  # (table, round) -> first 620 seen
    results: list[float] = []
    rounds: set[tuple[str, int]] = set()
    errors = 0
    warm_until = time.monotonic() + 3.0  # seats taken, a round or two to settle in
    end = warm_until + seconds
    while time.monotonic() < end:
        for key, mask in selector.select(timeout=0.1):
            player: Player = key.data
            if mask & selectors.EVENT_WRITE and player.out:
                sent = player.sock.send(player.out)
                player.out = player.out[sent:]
            if mask & selectors.EVENT_READ:
                try:
                    data = player.sock.recv(65536)
                except ConnectionError:
                    data = b""
                if not data:
                    errors += 1
                    selector.unregister(player.sock)
                    continue
                now = time.monotonic()
                player.buffer += data
                *lines, player.buffer = player.buffer.split(b"\n")
                for raw in lines:
                    line = raw.decode().rstrip("\r")
                    code = line[:3]
                    if code == "610":
                        player.out += b"BET RED 1\r\n"
                    elif code == "620":
                        closed_at.setdefault((player.table, int(line.split()[2])), now)
                    elif code == "630":
                        round_id = int(line.split()[2])
                        first = closed_at.get((player.table, round_id))
                        if first is not None and now >= warm_until:
                            results.append(now - (first + spin_pause))
                            rounds.add((player.table, round_id))
                    elif code[0] in "45" and now >= warm_until:
                        errors += 1
            wanted = selectors.EVENT_READ | (selectors.EVENT_WRITE if player.out else 0)
            if player.sock.fileno() != -1 and key.events != wanted:
                try:
                    selector.modify(player.sock, wanted, player)
                except (KeyError, ValueError):
                    pass
    for player in players:
        player.sock.close()
    return {"latencies": results, "rounds": len(rounds), "errors": errors}


if __name__ == "__main__":
    sys.exit(main())
