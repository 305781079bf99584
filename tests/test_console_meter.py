"""``client.py meter`` as a user runs it: through a pseudo-terminal, and through plain pipes."""

import os
import pty
import re
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, write_users_file

CLIENT = [sys.executable, str(ROOT / "client.py"), "meter"]
WELCOME = "Welcome, Carol Dent, to the lineproto meter service"


def environment(login_name="carol", **overrides):
    env = dict(os.environ, LOGNAME=login_name, USER=login_name, LNAME=login_name, USERNAME=login_name)
    env.pop("PYTHONWARNINGS", None)
    env.update(overrides)
    return env


class Terminal:
    """A child process whose stdin, stdout and stderr are one pseudo-terminal."""

    def __init__(self, args, cwd=None, env=None):
        master, slave = pty.openpty()
        self.master = master
        self.process = subprocess.Popen(
            args, stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=env or environment(), start_new_session=True
        )
        os.close(slave)
        self.output = b""
        self.seen = 0  # expect() looks only after its previous match

    def expect(self, text, timeout=15.0):
        """Read until ``text`` shows up after the previous match; return the transcript so far."""
        wanted = text.encode()
        deadline = time.monotonic() + timeout
        while wanted not in self.output[self.seen :]:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {text!r} in {self.transcript()!r}")
            ready, _, _ = select.select([self.master], [], [], remaining)
            if ready and not self._read():
                raise AssertionError(f"ended without {text!r}: {self.transcript()!r}")
        self.seen = self.output.index(wanted, self.seen) + len(wanted)
        return self.transcript()

    def wait_asleep(self, timeout=15.0):
        """Until the child's main thread sleeps in the kernel (Linux /proc): blocked waiting for input.

        The prompt comes out a moment before the program blocks reading the answer; a
        Ctrl+C in that moment reaches a CPython readline that is not listening yet.
        """
        deadline = time.monotonic() + timeout
        while True:
            with open(f"/proc/{self.process.pid}/stat") as stat:
                state = stat.read().rpartition(")")[2].split()[0]
            if state == "S":
                return
            assert time.monotonic() < deadline, f"the child never waited: state {state}"
            time.sleep(0.001)

    def _read(self):
        try:
            data = os.read(self.master, 4096)
        except OSError:  # EIO: the child closed the terminal
            return False
        self.output += data
        return bool(data)

    def type(self, line):
        os.write(self.master, line.encode() + b"\r")

    def finish(self, timeout=15.0):
        """Wait for the exit; read what is left; return the exit status."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if ready and not self._read():
                break
            if not ready and self.process.poll() is not None:
                break
        status = self.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        os.close(self.master)
        return status

    def transcript(self):
        return self.output.decode("utf-8", "replace").replace("\r\n", "\n")


def run_piped(args, stdin_text, timeout=30, cwd=None, env=None):
    result = subprocess.run(
        args, input=stdin_text, capture_output=True, text=True, env=env or environment(), timeout=timeout, cwd=cwd
    )
    return result.returncode, result.stdout, result.stderr


@pytest.fixture
def roster(tmp_path):
    path = tmp_path / "roster.csv"
    path.write_text("G10001\nG10002\nE200003\n", encoding="utf-8")
    return path


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_pty_session_to_all_jobs_done(start_daemon, roster):
    daemon = start_daemon("--roster", str(roster), users=True)
    term = Terminal([*CLIENT, "--port", str(daemon.port)])
    term.expect("Username [carol]: ")
    term.type("")
    term.expect("Password: ")
    term.type("secret")
    term.expect("Reading for meter G10001: ")
    term.type("5983")
    term.expect("Reading for meter G10002: ")
    term.type("2980q")
    term.expect("Invalid reading")
    term.expect("Reading for meter G10002: ")
    term.type("")
    term.expect("Reason for meter G10002: ")
    term.type("Dog in the yard")
    term.expect("Reading for meter E200003: ")
    term.type("42")
    assert term.finish() == 0
    transcript = term.transcript()
    assert "secret" not in transcript  # the password is not echoed
    lines = [line.rstrip() for line in transcript.splitlines()]
    assert lines == [
        "Username [carol]:",
        "Password:",
        WELCOME,
        "Reading for meter G10001: 5983",
        "Accepted: you have read 1 out of 1 readings",
        "Reading for meter G10002: 2980q",
        "Invalid reading",
        "Reading for meter G10002:",
        "Reason for meter G10002: Dog in the yard",
        "Accepted: you have read 2 out of 2 readings",
        "Reading for meter E200003: 42",
        "Accepted: you have read 3 out of 3 readings",
        "All jobs done",
    ], transcript


def test_pty_empty_reading_and_reason_end_the_session(start_daemon, roster, connect):
    daemon = start_daemon("--roster", str(roster), users=True)
    term = Terminal([*CLIENT, "--port", str(daemon.port), "--user", "carol"])
    term.expect("Password: ")
    term.type("secret")
    term.expect("Reading for meter G10001: ")
    term.type("")
    term.expect("Reason for meter G10001: ")
    term.type("")
    assert term.finish() == 0
    assert "Username" not in term.transcript() and WELCOME in term.transcript()
    assert "Accepted" not in term.transcript()
    # the job went back to the pool when the session ended
    root = connect(daemon.port)
    root.command("USER root")
    root.command("PASS admin pass")
    deadline = time.monotonic() + 10
    while "connections: 1" not in root.command("STAT").lines:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert root.command("JOB").lines[0].startswith("G10001 ")


def test_piped_session(start_daemon, roster):
    daemon = start_daemon("--roster", str(roster), users=True)
    status, out, err = run_piped([*CLIENT, "--port", str(daemon.port)], "\nsecret\n12\nabc\n\nLocked gate\n\n\n")
    assert status == 0, err
    assert out.splitlines() == [
        "Username [carol]: ",
        "Password: ",
        WELCOME,
        "Reading for meter G10001: 12",
        "Accepted: you have read 1 out of 1 readings",
        "Reading for meter G10002: abc",
        "Invalid reading",
        "Reading for meter G10002: ",
        "Reason for meter G10002: Locked gate",
        "Accepted: you have read 2 out of 2 readings",
        "Reading for meter E200003: ",
        "Reason for meter E200003: ",
    ]
    assert "secret" not in out


def test_end_of_input_ends_the_session(shared):
    status, out, err = run_piped([*CLIENT, "--port", str(shared.port), "--user", "carol"], "secret\n")
    assert status == 0, err
    assert WELCOME in out and re.search(r"Reading for meter (G[0-9]{5}|E[0-9]{5,6}|E[0-9]{9}): \n$", out)


def test_server_side_refusal_is_shown_and_asked_again(daemon):
    status, out, err = run_piped(
        [*CLIENT, "--port", str(daemon.port), "--user", "carol"], "secret\n" + "9" * 19 + "\n7\n"
    )
    assert status == 0, err
    assert "Bad reading" in out and "at most 18 digits" in out
    assert "Accepted: you have read 1 out of 1 readings" in out


def test_login_failure_exits_1(shared):
    status, out, err = run_piped([*CLIENT, "--port", str(shared.port)], "carol\nwrong\n")
    assert status == 1
    assert "Login failed: Login incorrect" in err
    assert "Welcome" not in out


def test_a_user_without_the_reader_role_is_refused(shared):
    status, out, err = run_piped([*CLIENT, "--port", str(shared.port), "--user", "dave"], "hunter2\n")
    assert status == 1
    assert "Welcome, Dave Rolls" in out
    assert "Permission denied" in err


def test_no_daemon_and_no_spawn_exits_1():
    status, _out, err = run_piped([*CLIENT, "--port", str(free_port())], "")
    assert status == 1
    assert "cannot connect" in err and "--spawn" in err


def test_spawn_starts_and_stops_a_daemon(tmp_path, roster):
    users = write_users_file(tmp_path / "users.txt")
    log = tmp_path / "daemon.log"
    port = free_port()
    status, out, err = run_piped(
        [
            *CLIENT,
            "--port",
            str(port),
            "--spawn",
            "--users",
            str(users),
            "--roster",
            str(roster),
            "--daemon-log",
            str(log),
        ],
        "carol\nsecret\n1\n2\n3\n",
        cwd=tmp_path,
    )
    assert status == 0, err
    assert out.splitlines()[-2:] == ["Accepted: you have read 3 out of 3 readings", "All jobs done"]
    assert f"Started a daemon on 127.0.0.1:{port}" in err
    assert "Stopped the daemon (status 0)" in err
    text = log.read_text()
    assert "meter dump at shutdown: 3 readings" in text
    assert "G10001=1@" in text and "E200003=3@" in text
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_spawn_reports_a_daemon_that_cannot_start(tmp_path):
    bad = tmp_path / "roster.csv"
    bad.write_text("G10001\nno good\n", encoding="utf-8")
    status, _out, err = run_piped([*CLIENT, "--port", "0", "--spawn", "--roster", str(bad)], "", cwd=tmp_path)
    assert status == 1
    assert "the daemon exited with status 2" in err and "bad roster" in err


def spawn_run(tmp_path, roster, *extra, answers="carol\nsecret\n1\n2\n3\n"):
    """``meter --spawn`` with the test users and ``roster``, in ``tmp_path``, its temporary files in tmp_path/tmp."""
    users = write_users_file(tmp_path / "users.txt")
    temporary = tmp_path / "tmp"
    temporary.mkdir(exist_ok=True)
    return run_piped(
        [*CLIENT, "--port", "0", "--spawn", "--users", str(users), "--roster", str(roster), *extra],
        answers,
        cwd=tmp_path,
        env=environment(TMPDIR=str(temporary)),
    )


def test_spawn_runs_on_a_throwaway_database(tmp_path, roster):
    """Each run starts from nothing: its roster, its readings; nothing stays behind but the daemon's log."""
    for _ in range(2):
        status, out, err = spawn_run(tmp_path, roster)
        assert status == 0, err
        accepted = [line for line in out.splitlines() if line.startswith("Accepted")]
        assert accepted == [f"Accepted: you have read {n} out of {n} readings" for n in (1, 2, 3)], out
        assert out.splitlines()[-1] == "All jobs done"
        log = re.search(r"its log: (\S+)", err)[1]
        assert "meter dump at shutdown: 3 readings" in Path(log).read_text()
        assert [path.name for path in (tmp_path / "tmp").iterdir()] == [os.path.basename(log)]
        os.unlink(log)
    assert not (tmp_path / "data").exists()  # the default ./data/lineproto.db was never touched


def test_spawn_with_db_keeps_that_database(tmp_path, roster):
    db = tmp_path / "meters.db"
    status, out, err = spawn_run(tmp_path, roster, "--db", str(db), "--daemon-log", str(tmp_path / "log"))
    assert status == 0, err
    assert out.splitlines()[-2:] == ["Accepted: you have read 3 out of 3 readings", "All jobs done"]
    status, out, err = spawn_run(tmp_path, roster, "--db", str(db), "--daemon-log", str(tmp_path / "log"))
    assert status == 0, err
    assert out.splitlines()[-1] == "All jobs done" and "Accepted" not in out  # read in the first run
    assert db.exists() and not (tmp_path / "data").exists()
    assert list((tmp_path / "tmp").iterdir()) == []


def test_spawn_files_are_refused_when_a_daemon_already_answers(shared, roster):
    status, out, err = run_piped(
        [*CLIENT, "--port", str(shared.port), "--spawn", "--roster", str(roster)], "carol\nsecret\n"
    )
    assert status == 1
    assert f"a daemon already answers on 127.0.0.1:{shared.port}" in err and "--roster" in err
    assert "Welcome" not in out


@pytest.mark.parametrize("option", ["--db", "--users", "--roster", "--daemon-log"])
def test_spawn_options_without_spawn_are_a_usage_error(tmp_path, option):
    status, _out, err = run_piped([*CLIENT, "--port", str(free_port()), option, str(tmp_path / "x")], "")
    assert status == 2
    assert len(err.splitlines()) == 1 and f"{option} goes with --spawn" in err


def test_ctrl_c_stops_the_spawned_daemon(tmp_path, roster):
    users = write_users_file(tmp_path / "users.txt")
    term = Terminal([*CLIENT, "--port", "0", "--spawn", "--users", str(users), "--roster", str(roster)], cwd=tmp_path)
    term.expect("Username [carol]: ")
    port = int(re.search(r"Started a daemon on 127.0.0.1:(\d+)", term.transcript())[1])
    term.wait_asleep()
    os.killpg(term.process.pid, signal.SIGINT)  # what Ctrl+C on a terminal sends
    assert term.finish() == 130
    assert "Stopped the daemon" in term.transcript() and "Traceback" not in term.transcript()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_spawn_with_a_service_name_is_a_usage_error():
    """--spawn starts a daemon here: it cannot start one at an address mDNS has not told yet."""
    status, _out, err = run_piped([*CLIENT, "--spawn", "--service", "meters"], "")
    assert status == 2
    assert len(err.splitlines()) == 1 and "--spawn starts a daemon on this machine" in err
