#!/usr/bin/env python3
"""Crash test: kill -9 the daemon under load, restart, and check nothing acknowledged is lost.

    python3 scripts/crash_test.py [--kills 10] [--clients 20] [--seed N]

Each client is a player and a meter reader. It bets, spins and submits readings
as fast as it can over one connection, one command in flight, and remembers
every acknowledged (2yz) result. At a random moment the daemon gets SIGKILL;
it is restarted on the same database and every client's state is checked:

* money: bankroll, chips on open bets and rounds equal the last acknowledged
  state, or the state after the one command that was in flight; and for every
  player, bankroll + open bets == start bankroll + what the recorded spins
  returned - what they staked (chips are conserved);
* readings: every acknowledged reading is in the dump with its value and
  reader, and no reading appears that was never sent.
"""

import argparse
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lineproto.client import Client, Job, Spin  # noqa: E402
from lineproto.domain.accounts import User, format_user, hash_password  # noqa: E402
from lineproto.domain.meters import parse_dump_line  # noqa: E402
from lineproto.domain.roulette import Limits  # noqa: E402
from lineproto.store import SqliteStore  # noqa: E402

PASSWORD = "crash test"
START_BANKROLL = 1000


class Daemon:
    def __init__(self, workdir: Path, db: Path, users: Path, engine: str = "events"):
        self.notify = workdir / f"notify-{time.monotonic_ns()}"
        self.log = open(workdir / "daemon.log", "ab")  # noqa: SIM115 - open while the daemon runs
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "daemon.py"),
                "--port",
                "0",
                "--notify",
                str(self.notify),
                "--db",
                str(db),
                "--users",
                str(users),
                "--log-level",
                "warning",
                "--start-bankroll",
                str(START_BANKROLL),
                "--engine",
                engine,
            ],
            stdout=subprocess.DEVNULL,
            stderr=self.log,
            cwd=workdir,
        )
        deadline = time.monotonic() + 30
        while not self.notify.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"daemon did not start (see {workdir / 'daemon.log'})")
            time.sleep(0.01)
        self.port = int(self.notify.read_text().strip().rsplit(":", 1)[1])

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.log.close()

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(30)
        self.log.close()


def connect(port: int, name: str) -> Client:
    """A logged-in client; 4yz/5yz replies raise, so a refused step stops that player loudly."""
    client = Client("127.0.0.1", port, timeout=30)
    client.login(name, PASSWORD)
    return client


def money(client: Client) -> tuple[int, int, int]:
    stat = client.stat()
    return int(stat["bankroll"]), int(stat["open-bet-chips"]), int(stat["rounds"])


class Player(threading.Thread):
    def __init__(self, name: str, port: int, rng: random.Random):
        super().__init__(daemon=True)
        self.name, self.port, self.rng = name, port, rng
        self.acknowledged = 0
        self.in_flight = None  # (kind, detail) of the command sent but not answered
        self.readings = {}  # meter -> value, acknowledged

    def run(self) -> None:
        try:
            line = connect(self.port, self.name)
            line.command("CLR")
            self.state = money(line)
            while True:
                self.step(line)
        except (OSError, ConnectionError):
            return  # the daemon was killed

    def step(self, line: Client) -> None:
        bankroll, staked, rounds = self.state
        choice = self.rng.random()
        if choice < 0.45 and bankroll > 0:
            amount = self.rng.randint(1, min(20, bankroll))
            self.in_flight = ("bet", amount)
            reply = line.command(f"BET RED {amount}")
            assert reply.code == 200, reply
            self.state = (bankroll - amount, staked + amount, rounds)
        elif choice < 0.7:
            self.in_flight = ("spin", None)
            reply = line.command("SPIN")
            assert reply.code == 250, reply
            spin = Spin.from_reply(reply)
            self.state = (spin.bankroll, 0, spin.rounds)
        else:
            self.in_flight = ("job", None)
            reply = line.command("JOB")
            assert reply.code == 250, reply
            meter = Job.from_reply(reply).meter
            value = self.rng.randint(0, 99999)
            self.in_flight = ("read", (meter, value))
            reply = line.command(f"READ {meter} {value}")
            assert reply.code == 250, reply
            self.readings[meter] = value
        self.acknowledged += 1
        self.in_flight = None


def check_player(player: Player, line: Client) -> list[str]:
    """Problems with this player's money after the restart."""
    after = money(line)
    before = player.state
    allowed = [before]
    if player.in_flight and player.in_flight[0] == "bet":
        amount = player.in_flight[1]
        allowed.append((before[0] - amount, before[1] + amount, before[2]))
    if player.in_flight and player.in_flight[0] == "spin" and after[1] == 0 and after[2] == before[2] + 1:
        allowed.append(after)  # the spin committed; its outcome is checked by the audit
    if after not in allowed:
        return [f"{player.name}: state {after} after restart, acknowledged {before}, in flight {player.in_flight}"]
    return []


def run(
    kills: int = 10,
    clients: int = 20,
    seed: int | None = None,
    min_run: float = 0.3,
    max_run: float = 2.5,
    workdir: Path | None = None,
    say=print,
    tamper=None,
    engine: str = "events",
    min_acknowledged: int = 0,
    min_readings: int = 0,
) -> dict:
    """Run the kill/restart/check rounds.

    Each round kills the daemon after a random delay, but never before every player has logged
    in and the players together have ``min_acknowledged`` operations and ``min_readings``
    readings acknowledged in that round (so a slow machine cannot make a round check nothing).
    ``tamper(db_path, acknowledged)`` (tests only) runs before the final check, with the
    acknowledged readings (meter -> (value, reader)).
    """
    seed = seed if seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    workdir = Path(workdir or tempfile.mkdtemp(prefix="lineproto-crash-"))
    db, users_file = workdir / "crash.db", workdir / "users.txt"
    names = [f"p{i:02d}" for i in range(clients)]
    users_file.write_text(
        "".join(
            format_user(User(name, f"Player {name}", frozenset({"player", "reader"}), hash_password(PASSWORD, n=2**10)))
            + "\n"
            for name in names
        )
    )
    say(f"crash test: {kills} kills, {clients} clients, seed {seed}, workdir {workdir}")
    problems, checked = [], 0
    acknowledged, maybe = {}, {}  # meter -> (value, reader): acknowledged, or in flight at a kill
    for kill in range(1, kills + 1):
        daemon = Daemon(workdir, db, users_file, engine)
        players = [Player(name, daemon.port, random.Random(rng.random())) for name in names]
        for player in players:
            player.start()
        delay = rng.uniform(min_run, max_run)
        time.sleep(delay)
        _wait_for_progress(players, min_acknowledged, min_readings)
        daemon.kill()
        for player in players:
            player.join(30)
        daemon = Daemon(workdir, db, users_file, engine)
        round_checked = 0
        for player in players:
            if not hasattr(player, "state"):
                continue  # killed before it logged in
            line = connect(daemon.port, player.name)
            problems += check_player(player, line)
            line.close()
            round_checked += player.acknowledged
            acknowledged.update((meter, (value, player.name)) for meter, value in player.readings.items())
            if player.in_flight and player.in_flight[0] == "read":
                meter, value = player.in_flight[1]
                maybe[meter] = (value, player.name)
        daemon.stop()
        checked += round_checked
        say(
            f"kill {kill}: after {delay:.2f} s, {round_checked} acknowledged operations checked, "
            f"{len(problems)} problems so far"
        )
    if tamper is not None:
        tamper(db, dict(acknowledged))
    problems += check_database(db, names, acknowledged, maybe)
    report = {
        "seed": seed,
        "kills": kills,
        "acknowledged_checked": checked,
        "readings_checked": len(acknowledged),
        "losses": len(problems),
        "problems": problems,
    }
    say(
        f"done: {kills} kill points, {checked} acknowledged operations and {len(acknowledged)} readings "
        f"checked, chips conserved for {clients} players, losses found: {len(problems)}"
    )
    for problem in problems:
        say(f"  PROBLEM {problem}")
    return report


def _wait_for_progress(players, min_acknowledged: int, min_readings: int, timeout: float = 60.0) -> None:
    """Wait until every player is logged in and the round has the acknowledgements asked for."""
    deadline = time.monotonic() + timeout
    while not (
        all(hasattr(player, "state") for player in players)
        and sum(player.acknowledged for player in players) >= min_acknowledged
        and sum(len(player.readings) for player in players) >= min_readings
    ):
        if time.monotonic() > deadline or not any(player.is_alive() for player in players):
            raise RuntimeError("the players made no progress before the kill")
        time.sleep(0.01)


def check_database(db: Path, names, acknowledged: dict, maybe: dict) -> list[str]:
    """Readings and chip conservation, read from the database after the last restart."""
    problems = []
    store = SqliteStore(str(db))
    try:
        dump = {entry.meter: entry for entry in map(parse_dump_line, store.meters.dump())}
        for meter, (value, name) in acknowledged.items():
            line = dump.get(meter)
            if line is None or (line.reading, line.reason, line.reader) != (value, "", name):
                problems.append(f"reading {meter}={value} by {name} was acknowledged, found {line}")
        for meter, (value, name) in maybe.items():
            line = dump.get(meter)
            if line is not None and (line.reading, line.reason, line.reader) != (value, "", name):
                problems.append(f"reading {meter}: in flight {value} by {name}, found {line}")
        unknown = set(dump) - set(acknowledged) - set(maybe)
        problems += [f"reading {meter} in the dump but never sent" for meter in sorted(unknown)]
        for name in names:
            audit = store.audit(name)
            if audit["start"] is None:
                continue
            table = store.load_table(name, Limits())
            expected = audit["start"] + audit["returned"] - audit["staked"]
            if table.bankroll + table.staked != expected:
                problems.append(
                    f"{name}: bankroll {table.bankroll} + open {table.staked} != "
                    f"start {audit['start']} + spins' net {audit['returned'] - audit['staked']}"
                )
    finally:
        store.close()
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10, help="kill points to try (default 10)")
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients (default 20)")
    parser.add_argument("--seed", type=int, help="seed for kill times and client choices")
    parser.add_argument(
        "--engine", choices=("events", "threads"), default="events", help="the daemon's engine (default events)"
    )
    args = parser.parse_args(argv)
    report = run(args.kills, args.clients, args.seed, engine=args.engine)
    return 1 if report["losses"] else 0


if __name__ == "__main__":
    sys.exit(main())
