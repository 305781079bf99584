"""State survives stop/start, Ctrl+C, and a full disk, seen through the real socket."""

import os
import signal
import subprocess

import pytest

from conftest import RawConnection, stat


def login(port, name, password):
    raw = RawConnection(port)
    assert raw.reply().code == 220
    raw.command(f"USER {name}")
    assert raw.command(f"PASS {password}").code == 230
    return raw


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_everything_comes_back_after_a_restart(start_daemon, tmp_path, stop_signal):
    db = str(tmp_path / "state.db")
    roster = tmp_path / "roster.csv"
    roster.write_text("M1\nM2\nM3\nM4\n")
    daemon = start_daemon("--db", db, "--roster", str(roster), "--seed", "3", users=True)
    with login(daemon.port, "dave", "hunter2") as dave:
        assert dave.command("BET RED 100").code == 200
        assert dave.command("SPIN").code == 250
        assert dave.command("TABL EUROPEAN").code == 200
        assert dave.command("BET SPLIT 17-18 25").code == 200
        before = stat(dave)
        open_bets = dave.command("BETS").lines
    with login(daemon.port, "carol", "secret") as carol:
        for value in (11, 22):
            meter = carol.command("JOB").lines[0].split()[0]
            assert carol.command(f"READ {meter} {value}").code == 250
        assert carol.command("JOB").lines[0].startswith("M3")  # held when the daemon stops
    assert daemon.stop(stop_signal) == 0

    daemon = start_daemon("--db", db, users=True)  # no --roster: it is in the database
    with login(daemon.port, "dave", "hunter2") as dave:
        after = stat(dave)
        for key in ("wheel", "bankroll", "rounds", "open-bets"):
            assert after[key] == before[key]
        assert dave.command("BETS").lines == open_bets
    with login(daemon.port, "root", "admin pass") as root:
        dump = root.command("DUMP").lines
        assert any(line.startswith("M1=11@") and line.endswith("]carol") for line in dump)
        assert any(line.startswith("M2=22@") and line.endswith("]carol") for line in dump)
        assert stat(root)["all-readings"] == "2"
        assert root.command("JOB").lines[0].startswith("M3")  # the dead session's job is back in the pool


@pytest.fixture
def tiny_disk(tmp_path):
    """A 4 MiB tmpfs: a real full disk for SQLite to run into."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True, text=True
    )
    assert result.returncode == 0, f"cannot mount a tmpfs (the suite runs as root): {result.stderr}"
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_disk_gives_452_keeps_serving_and_recovers(start_daemon, tiny_disk):
    db = str(tiny_disk / "full.db")
    daemon = start_daemon("--db", db, users=True)
    filler = tiny_disk / "filler"
    with login(daemon.port, "carol", "secret") as carol:
        assert carol.command("NOOP").code == 200
        free = os.statvfs(tiny_disk).f_bavail * os.statvfs(tiny_disk).f_frsize
        filler.write_bytes(b"\0" * max(0, free - 256 * 1024))  # leave ~256 KiB for the database
        accepted, failed = 0, None
        for value in range(20_000):
            reply = carol.command("JOB")
            if reply.code == 250:
                reply = carol.command(f"READ {reply.lines[0].split()[0]} {value}")
            if reply.code != 250:
                failed = reply
                break
            accepted += 1
        assert failed is not None and failed.code == 452, failed
        assert accepted > 0
        assert carol.command("NOOP").code == 200  # the connection and daemon carry on
        counts = stat(carol)
        assert counts["my-readings"] == counts["all-readings"] == str(accepted)  # nothing half-applied
        filler.unlink()  # space comes back
        meter = carol.command("JOB").lines[0].split()[0]
        assert carol.command(f"READ {meter} 1").code == 250
    assert daemon.stop() == 0
    daemon = start_daemon("--db", db, users=True)
    with login(daemon.port, "carol", "secret") as carol:
        assert stat(carol)["all-readings"] == str(accepted + 1)
