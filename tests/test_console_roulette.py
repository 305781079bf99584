"""``client.py simulate`` and ``client.py play`` against live daemons."""

import math
import re
import socket
import subprocess
import sys

import pytest
from test_fair import seeded_pockets

from conftest import ROOT, stat
from lineproto.domain.roulette import pocket_properties
from lineproto.wire import ReplyParser
from lineproto.wire.shapes import Status

P_RED = {"american": 18 / 38, "european": 18 / 37}
#: Standard deviations allowed between measured and theoretical return to player:
#: a false alarm about once in 16,000 runs.
Z = 4.0


CLIENT_SCRIPT = [sys.executable, str(ROOT / "client.py")]


def client_py(*args, stdin="", timeout=60):
    return subprocess.run(
        [*CLIENT_SCRIPT, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        start_new_session=True,
    )


def summary(stdout: str) -> dict[str, dict[str, float]]:
    """The summary table as {strategy: {column: value}}."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("strategy "))
    columns = [
        "strategy",
        "players",
        "rounds",
        "mean",
        "min",
        "max",
        "busted",
        "staked",
        "returned",
        "rtp",
        "sd",
        "theory",
    ]
    rows = {}
    for line in lines[start + 1 :]:
        cells = line.split()
        if len(cells) != len(columns):
            break
        rows[cells[0]] = {key: float(value) for key, value in zip(columns[1:], cells[1:], strict=True)}
    return rows


def check_rtp_band(row, wheel: str, budget: int, table_max: int = 500):
    """Measured RTP within Z standard deviations of 1 - house edge.

    A RED bet of s returns 2s with probability p, else 0, whatever stakes came
    before (the stakes are predictable, the outcomes independent), so
    sd(returned / staked) = 2 sqrt(p (1 - p) sum(s**2)) / staked. The program
    prints that figure from the stakes it made; the test checks it against
    the bound sum(s**2) <= smax * staked (smax: the budget or the table
    maximum, no stake can exceed either) and against a floor (every stake is
    at least 1 chip: sum(s**2) >= staked), then uses it for the band.
    """
    p = P_RED[wheel]
    theory = 2 * p  # 36/38 or 36/37
    assert row["theory"] == pytest.approx(theory, abs=5e-5)
    staked, returned = row["staked"], row["returned"]
    bound = 2 * math.sqrt(p * (1 - p) * min(budget, table_max) / staked)
    floor = 2 * math.sqrt(p * (1 - p) / staked)
    assert floor - 5e-5 <= row["sd"] <= bound + 5e-5
    assert row["rtp"] == pytest.approx(returned / staked, abs=5e-5)
    assert abs(returned / staked - theory) <= Z * (row["sd"] + 5e-5), row


def test_simulate_martingale_20_players_200_rounds(start_daemon):
    daemon = start_daemon("--seed", "7", users=True)
    done = client_py(
        "simulate", "--port", str(daemon.port), "--strategy", "martingale", "--players", "20", "--rounds", "200"
    )
    assert done.returncode == 0, done.stderr
    assert "budget 100, base 10, RED on the american wheel" in done.stdout
    row = summary(done.stdout)["martingale"]
    assert row["players"] == 20
    assert 0 < row["rounds"] <= 20 * 200
    # a player's final bankroll is its budget plus what it won or lost
    assert row["mean"] * 20 == pytest.approx(20 * 100 + row["returned"] - row["staked"], abs=20 * 0.05)
    assert 0 <= row["min"] <= row["mean"] <= row["max"]
    # Martingale stops when it cannot cover the next stake: 10+20+40 lost leaves 30 < 80
    assert row["busted"] >= 1 and row["min"] < 80
    check_rtp_band(row, "american", budget=100)
    print(done.stdout)


def test_simulate_several_strategies_on_the_european_wheel(start_daemon):
    daemon = start_daemon(users=True)
    done = client_py(
        "simulate",
        "--port",
        str(daemon.port),
        "--strategy",
        "flat,1326",
        "--strategy",
        "martingale",
        "--players",
        "10",
        "--rounds",
        "200",
        "--base",
        "1",
        "--wheel",
        "european",
    )
    assert done.returncode == 0, done.stderr
    rows = summary(done.stdout)
    assert list(rows) == ["flat", "1326", "martingale"]
    flat = rows["flat"]
    # 1 chip a spin cannot lose 100 chips in 200 spins but with probability ~1e-10
    assert (flat["players"], flat["rounds"], flat["staked"], flat["busted"]) == (10, 2000, 2000, 0)
    for row in rows.values():
        check_rtp_band(row, "european", budget=100)


def test_simulate_as_a_registered_player_shares_the_bankroll(start_daemon):
    daemon = start_daemon("--start-bankroll", "400", users=True)
    common = (
        "simulate",
        "--port",
        str(daemon.port),
        "--user",
        "dave",
        "--password",
        "hunter2",
        "--players",
        "4",
        "--rounds",
        "20",
        "--base",
        "5",
    )
    too_much = client_py(*common, "--budget", "101")
    assert too_much.returncode == 2
    assert "101 is more than 100" in too_much.stderr
    done = client_py(*common)  # default budget: 400 chips shared by 4 players
    assert done.returncode == 0, done.stderr
    assert "budget 100" in done.stdout and "(as dave)" in done.stdout
    row = summary(done.stdout)["martingale"]
    final_total = round(row["mean"] * 4)
    stat = client_py("batch", "-", "--port", str(daemon.port), stdin="USER dave\nPASS hunter2\nSTAT\n")
    *_, status = ReplyParser().feed(stat.stdout.encode())  # batch prints each reply as on the wire
    bankroll = int(Status.from_reply(status).values["bankroll"])
    assert bankroll == 400 - 4 * 100 + final_total  # what the players kept is what dave has


def test_simulate_refuses_a_guest_budget_above_the_guest_bankroll(start_daemon):
    daemon = start_daemon(users=True)
    done = client_py("simulate", "--port", str(daemon.port), "--budget", "500")
    assert done.returncode == 2
    assert "guest" in done.stderr and "--user" in done.stderr
    bad = client_py("simulate", "--port", str(daemon.port), "--strategy", "dalembert")
    assert bad.returncode == 2 and "unknown strategy" in bad.stderr


def test_play_through_stdin(start_daemon):
    daemon = start_daemon("--seed", "7", users=True)
    first = pocket_properties(seeded_pockets(7, 1)[0])
    red = first.color == "red"
    script = "red 10\nbet 17 5\nbets\nspin\nfour 5\nwheel european\nfour 5\nclear\npurple 5\nhelp\nquit\n"
    done = client_py("play", "--port", str(daemon.port), stdin=script)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "Logged in as guest: 100 chips. American wheel, bets 1-500 chips." in out
    assert "RED for 10 (pays 1:1); bankroll 90" in out
    assert "17 for 5 (pays 35:1); bankroll 85" in out
    assert "15 chips on the table, 85 in hand" in out
    assert f"The ball lands on {first.pocket} ({', '.join(first.describe().split()[1:])})" in out
    assert f"RED for 10: {'WIN, 20 back' if red else 'lose'}" in out
    after_spin = 85 + (20 if red else 0) + (180 if first.pocket == "17" else 0)
    assert f"Bankroll {after_spin} " in out and "1 round played" in out
    assert "refused: FOUR: FOUR (0-1-2-3) is only on a European wheel" in out
    assert "european wheel, pockets 0, 1-36, bets 1-500 chips, house edge 2.70%" in out
    assert f"FOUR for 5 (pays 8:1); bankroll {after_spin - 5}" in out
    assert f"5 chips back; bankroll {after_spin}" in out
    assert "refused: PURPLE: unknown bet" in out
    assert "split 17-18 5" in out  # the help text
    assert out.rstrip().endswith(f"You leave with {after_spin} chips.")


def test_play_with_a_registered_player_and_a_missing_daemon(start_daemon):
    daemon = start_daemon(users=True)
    done = client_py("play", "--port", str(daemon.port), "--user", "dave", stdin="hunter2\nbets\nquit\n")
    assert done.returncode == 0, done.stderr
    assert "Logged in as dave: 1000 chips." in done.stdout
    assert "You leave with 1000 chips." in done.stdout
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free_port = s.getsockname()[1]
    missing = client_py("play", "--port", str(free_port))
    assert missing.returncode == 1 and "cannot connect" in missing.stderr


def dave_bankroll(port: int) -> tuple[int, int]:
    """dave's (bankroll, chips on open bets) as the daemon has them."""
    stat = client_py("batch", "-", "--port", str(port), stdin="USER dave\nPASS hunter2\nSTAT\n")
    bankroll = int(re.search(r"bankroll: (\d+)", stat.stdout)[1])
    staked = int(re.search(r"open-bets: (\d+)", stat.stdout)[1])
    return bankroll, staked


def test_simulate_as_a_registered_player_gives_each_player_its_own_figures(start_daemon):
    """dave has one table: if his players shared it at once, one's SPIN would settle the others' bets.

    Flat players bet 1 chip for at most 100 rounds: a flat player's final bankroll is
    within 100 chips of its budget, and RTP stays near theory however the rounds of
    flat and martingale players interleave.
    """
    daemon = start_daemon("--start-bankroll", "1000", users=True)
    done = client_py(
        "simulate",
        "--port",
        str(daemon.port),
        "--user",
        "dave",
        "--password",
        "hunter2",
        "--strategy",
        "flat,martingale",
        "--players",
        "5",
        "--rounds",
        "100",
        "--base",
        "1",
    )
    assert done.returncode == 0, done.stderr
    rows = summary(done.stdout)
    flat = rows["flat"]
    assert (flat["players"], flat["rounds"], flat["staked"], flat["busted"]) == (5, 500, 500, 0)
    assert flat["min"] >= 0 and flat["max"] <= 100 + 100
    for row in rows.values():
        check_rtp_band(row, "american", budget=100)
        assert row["mean"] * row["players"] == pytest.approx(
            row["players"] * 100 + row["returned"] - row["staked"], abs=row["players"] * 0.05
        )
    finals = sum(round(row["mean"] * row["players"]) for row in rows.values())
    assert dave_bankroll(daemon.port) == (1000 - 10 * 100 + finals, 0)
    assert "budget 100" in done.stdout and "one after another at dave's table" in done.stdout


def test_simulate_refuses_a_registered_table_with_open_bets(start_daemon):
    daemon = start_daemon(users=True)
    client_py("batch", "-", "--port", str(daemon.port), stdin="USER dave\nPASS hunter2\nBET RED 25\n")
    done = client_py("simulate", "--port", str(daemon.port), "--user", "dave", "--password", "hunter2")
    assert done.returncode == 1
    assert "dave has 25 chips on open bets" in done.stderr and len(done.stderr.splitlines()) == 1
    assert dave_bankroll(daemon.port) == (975, 25)  # nothing played


def test_simulate_stops_when_another_connection_plays_the_same_table(start_daemon, connect):
    """A bet placed by another of dave's connections mid-run: no player is credited with it."""
    daemon = start_daemon("--start-bankroll", "100000", users=True)
    process = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "client.py"),
            "simulate",
            "--port",
            str(daemon.port),
            "--user",
            "dave",
            "--password",
            "hunter2",
            "--strategy",
            "flat",
            "--players",
            "1",
            "--rounds",
            "1000000",
            "--base",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        other = connect(daemon.port)
        other.command("USER dave")
        assert other.command("PASS hunter2").code == 230
        while int(stat(other)["rounds"]) == 0:  # the simulation has begun to play
            assert process.poll() is None, process.communicate()
        assert other.command("BET RED 7").code == 200
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 1
    assert "another connection of dave bet or spun at the table" in err
    assert "Traceback" not in err
    row = summary(out)["flat"]
    assert row["staked"] == row["rounds"]  # 1 chip a round, the 7 chips counted nowhere


def test_simulate_with_workers_and_a_registered_player_is_a_usage_error():
    done = client_py("simulate", "--user", "dave", "--password", "x", "--workers", "2")
    assert done.returncode == 2
    assert "--workers 2" in done.stderr and len(done.stderr.splitlines()) == 1


def test_play_as_a_registered_player_reads_the_password_from_a_pipe_cleanly(start_daemon):
    daemon = start_daemon(users=True)
    done = client_py("play", "--port", str(daemon.port), "--user", "dave", stdin="hunter2\nquit\n")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no GetPassWarning, no "Password input may be echoed"
    assert done.stdout.startswith("Password for dave: \nLogged in as dave: 1000 chips.")
    assert "hunter2" not in done.stdout
    wrong = client_py("play", "--port", str(daemon.port), "--user", "dave", stdin="nope\n")
    assert wrong.returncode == 1 and wrong.stderr == "client.py play: login failed: Login incorrect\n"
    none = client_py("play", "--port", str(daemon.port), "--user", "dave", stdin="")
    assert none.returncode == 1 and "no password given" in none.stderr and "Traceback" not in none.stderr


def test_simulate_reads_the_password_from_a_pipe_cleanly(start_daemon):
    daemon = start_daemon(users=True)
    done = client_py(
        "simulate", "--port", str(daemon.port), "--user", "dave", "--players", "1", "--rounds", "2", stdin="hunter2\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == "" and "hunter2" not in done.stdout


def test_play_says_what_is_left_on_the_table(start_daemon):
    daemon = start_daemon(users=True)
    guest = client_py("play", "--port", str(daemon.port), stdin="red 25\nquit\n")
    assert guest.returncode == 0, guest.stderr
    assert guest.stdout.rstrip().endswith("You leave with 75 chips; the 25 on open bets end with the guest table.")
    first = client_py("play", "--port", str(daemon.port), "--user", "dave", stdin="hunter2\nred 25\nquit\n")
    assert first.returncode == 0, first.stderr
    assert first.stdout.rstrip().endswith(
        "You leave with 975 chips in hand and 25 on open bets, which stay on your table for your next visit."
    )
    again = client_py("play", "--port", str(daemon.port), "--user", "dave", stdin="hunter2\nbets\n")
    assert again.returncode == 0, again.stderr
    assert "Logged in as dave: 975 chips in hand, 25 on open bets." in again.stdout
    assert "  RED for 25 (pays 1:1)" in again.stdout
    assert dave_bankroll(daemon.port) == (975, 25)
