"""``client.py simulate`` over time: worker processes, the progress line, Ctrl+C.

A terminal is a pseudo-terminal (the child's stdin, stdout and stderr); Ctrl+C is
SIGINT to the child's whole process group, as a terminal sends it, so the worker
processes get it too.
"""

import os
import re
import signal

import pytest
from test_console_meter import Terminal, environment
from test_console_roulette import CLIENT_SCRIPT, check_rtp_band, client_py, summary

SIMULATE = [*CLIENT_SCRIPT, "simulate"]
PROGRESS = re.compile(r"\r(\d+) rounds played, (\d+) of (\d+) players left, (\d+) s")


def test_workers_share_out_the_players(start_daemon):
    daemon = start_daemon(users=True)
    done = client_py(
        "simulate",
        "--port",
        str(daemon.port),
        "--strategy",
        "flat,1326",
        "--players",
        "6",
        "--rounds",
        "50",
        "--base",
        "1",
        "--workers",
        "2",
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # piped: no progress line
    rows = summary(done.stdout)
    assert list(rows) == ["flat", "1326"]
    flat = rows["flat"]
    # 1 chip a spin cannot lose 100 chips in 50 spins
    assert (flat["players"], flat["rounds"], flat["staked"], flat["busted"]) == (6, 300, 300, 0)
    assert flat["min"] >= 100 - 50 and flat["max"] <= 100 + 50
    for row in rows.values():
        check_rtp_band(row, "american", budget=100)
    last = done.stdout.splitlines()[-1]
    assert re.fullmatch(r"\d+ rounds in \d+\.\d s \(\d+ rounds/s\), 2 worker processes", last), last


def test_more_workers_than_players_is_one_worker_each(start_daemon):
    daemon = start_daemon(users=True)
    done = client_py("simulate", "--port", str(daemon.port), "--players", "2", "--rounds", "3", "--workers", "8")
    assert done.returncode == 0, done.stderr
    assert summary(done.stdout)["martingale"]["players"] == 2
    assert done.stdout.rstrip().endswith(", 2 worker processes")


def test_progress_line_on_a_terminal(start_daemon):
    daemon = start_daemon(users=True)
    term = Terminal([*SIMULATE, "--port", str(daemon.port), "--players", "3", "--rounds", "20", "--base", "1"])
    term.expect(" players left, ")
    assert term.finish() == 0
    transcript = term.transcript()
    shown = PROGRESS.findall(transcript)
    assert shown and all(int(total) == 3 and int(left) <= 3 for _, left, total, _ in shown), transcript
    assert "\r\x1b[K" in transcript  # the line is cleared before the summary
    assert summary(transcript)["martingale"]["players"] == 3


@pytest.mark.parametrize(
    "how",
    [
        ["--workers", "2"],  # guests, two worker processes
        ["--user", "dave", "--password", "hunter2"],  # dave's players one after another
    ],
)
def test_ctrl_c_prints_the_summary_so_far(start_daemon, how):
    daemon = start_daemon("--start-bankroll", "1000000", users=True)
    # flat, 1 chip: no guest loses 100 chips before the run is interrupted (~1e-6 within 300 rounds)
    term = Terminal(
        [
            *SIMULATE,
            "--port",
            str(daemon.port),
            "--strategy",
            "flat",
            "--base",
            "1",
            "--players",
            "4",
            "--rounds",
            "1000000",
            *how,
        ],
        env=environment(),
    )
    while not any(int(rounds) > 0 for rounds, *_ in PROGRESS.findall(term.transcript())):
        term.expect(" players left, ")
    os.killpg(term.process.pid, signal.SIGINT)
    assert term.finish(timeout=30) == 130
    transcript = term.transcript()
    assert "Traceback" not in transcript and "KeyboardInterrupt" not in transcript
    row = summary(transcript)["flat"]
    assert 0 < row["rounds"] < 4 * 1000000 and row["staked"] == row["rounds"] and row["busted"] == 0
    assert re.search(r"interrupted: the summary covers the \d+ rounds played so far", transcript)
