"""A short crash test in the suite: SIGKILL under load, restart, nothing acknowledged lost.

The long run is ``python3 scripts/crash_test.py`` (10 kill points, 20 clients).
"""

import sqlite3
import sys

from conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import crash_test


def test_kill_9_under_load_loses_nothing_acknowledged(tmp_path, engine):
    report = crash_test.run(
        kills=2,
        clients=8,
        seed=20261122,
        min_run=0.4,
        max_run=1.0,
        workdir=tmp_path,
        say=lambda text: None,
        engine=engine,
        min_acknowledged=60,
        min_readings=6,
    )
    assert report["problems"] == []
    assert report["acknowledged_checked"] > 100 and report["readings_checked"] > 10


def test_the_check_finds_a_lost_reading_and_a_lost_chip(tmp_path):
    # The lost reading is one the client saw acknowledged, and the round is not killed before one
    # is: once the tamper chose "the smallest meter id", which was sometimes only in flight.
    def lose_a_reading_and_a_chip(db, acknowledged):
        meter = min(acknowledged)
        connection = sqlite3.connect(db)
        assert connection.execute("DELETE FROM latest WHERE meter = ?", (meter,)).rowcount == 1
        assert connection.execute("UPDATE players SET bankroll = bankroll + 1 WHERE name = 'p00'").rowcount == 1
        connection.commit()
        connection.close()

    report = crash_test.run(
        kills=1,
        clients=4,
        seed=7,
        min_run=0.5,
        max_run=0.6,
        workdir=tmp_path,
        say=lambda text: None,
        tamper=lose_a_reading_and_a_chip,
        min_readings=1,
    )
    assert any("was acknowledged, found None" in problem for problem in report["problems"])
    assert any(problem.startswith("p00: bankroll") for problem in report["problems"])
