"""``client.py meter --gui``: the real Tk window under Xvfb, driven in this process, and once end to end.

In-process tests build the window on a Tk root of their own and drive it as a
person would: typing into the entries, pressing the buttons and keys; they pump
Tk's events until what they wait for shows (with a deadline), never sleeping for
a fixed time. One test runs ``client.py meter --gui --spawn`` as a subprocess and
types into it with xdotool.
"""

import os
import re
import select
import shutil
import socket
import subprocess
import sys
import threading
import time
import tkinter as tk

import pytest

from conftest import ROOT, RawConnection, write_users_file
from lineproto.console import build_parser
from lineproto.console.gui import MeterWindow, gui_options

CLIENT = [sys.executable, str(ROOT / "client.py"), "meter", "--gui"]
DAEMON = [sys.executable, str(ROOT / "daemon.py")]
WELCOME = "Welcome, Carol Dent, to the lineproto meter service"


def need(program: str, package: str) -> str:
    path = shutil.which(program)
    if path is None:
        pytest.fail(f"{program} is missing: sudo apt-get install {package} (scripts/test-packages.sh installs it)")
    return path


@pytest.fixture(scope="module")
def display():
    """An Xvfb server on a free display number (it writes the number once it accepts clients)."""
    read, write = os.pipe()
    server = subprocess.Popen(
        [need("Xvfb", "xvfb"), "-displayfd", str(write), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
        pass_fds=[write],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write)
    number = b""
    deadline = time.monotonic() + 20
    try:
        while not number.endswith(b"\n"):
            ready, _, _ = select.select([read], [], [], max(0, deadline - time.monotonic()))
            chunk = os.read(read, 16) if ready else b""
            if not chunk:
                raise RuntimeError(f"Xvfb did not start (status {server.poll()})")
            number += chunk
    except BaseException:
        server.kill()
        server.wait()
        raise
    finally:
        os.close(read)
    previous = os.environ.get("DISPLAY")
    os.environ["DISPLAY"] = f":{number.decode().strip()}"
    yield os.environ["DISPLAY"]
    if previous is None:
        del os.environ["DISPLAY"]
    else:
        os.environ["DISPLAY"] = previous
    server.terminate()
    server.wait()


@pytest.fixture
def roster(tmp_path):
    path = tmp_path / "roster.csv"
    path.write_text("G10001\nG10002\nE200003\n", encoding="utf-8")
    return path


class App:
    """The meter window on a Tk root of this process, with what a test does to it."""

    def __init__(self, *argv: str):
        self.root = tk.Tk()
        self.window = MeterWindow(self.root, gui_options(build_parser().parse_args(["meter", "--gui", *argv])))

    @property
    def dialog(self):
        return self.window.dialog

    @property
    def session(self):
        return self.window.session

    def pump(self, condition, timeout: float = 15.0, what: str = "") -> None:
        """Process Tk events until ``condition()`` holds (the window polls its worker every 50 ms)."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {timeout} s: {what or condition}; status {self.texts()}")
            self.root.tk.dooneevent(0)

    def texts(self) -> dict:
        if self.window.closed:
            return {"closed": True}
        texts = {"status": self.status(), "title": self.root.title()}
        if self.dialog is not None:
            texts["dialog"] = self.dialog.message.cget("text")
        return texts

    def status(self) -> str:
        return str(self.window.status.cget("text"))

    def type(self, widget, text: str) -> None:
        """Keystrokes into ``widget``, as X key events (the entry must have the focus to take them)."""
        widget.focus_force()
        self.root.update()
        for char in text:
            keysym = {" ": "space"}.get(char, char)
            widget.event_generate("<KeyPress>", keysym=keysym)
        self.root.update()

    def key(self, widget, keysym: str) -> None:
        widget.focus_force()
        self.root.update()
        widget.event_generate(f"<KeyPress-{keysym}>")
        self.root.update()

    def log_in(self, password: str = "secret") -> None:
        self.pump(lambda: self.dialog is not None and self.root.focus_get() is not None, what="the dialog")
        self.type(self.dialog.password_entry, password)
        self.key(self.dialog.password_entry, "Return")

    def wait_meter(self, meter: str) -> None:
        self.pump(lambda: self.session.meter == meter and self.session.can_submit, what=f"meter {meter}")

    def close(self) -> None:
        if not self.window.closed:
            self.window.quit()


@pytest.fixture
def app(display):
    """``app(*argv)`` -> an :class:`App`; whatever a test leaves open is closed after it."""
    apps = []

    def open_app(*argv: str) -> App:
        apps.append(App(*argv))
        return apps[-1]

    yield open_app
    for opened in apps:
        opened.close()


def enabled(widget) -> bool:
    return "disabled" not in widget.state()


def dump(port: int) -> list[str]:
    """The daemon's DUMP, as the admin sees it."""
    with RawConnection(port) as root:
        root.reply()
        root.command("USER root")
        assert root.command("PASS admin pass").code == 230
        return list(root.command("DUMP").lines[1:-1])


def test_ok_is_enabled_only_when_both_fields_are_filled(app, daemon, monkeypatch):
    monkeypatch.setenv("LOGNAME", "carol")
    window = app("--port", str(daemon.port))
    window.pump(lambda: window.dialog.message.cget("text") == f"Connected to 127.0.0.1:{daemon.port}")
    dialog = window.dialog
    assert dialog.user.get() == "carol"  # the login name
    assert dialog.password_entry.cget("show") == "\u2022"
    assert not enabled(dialog.ok)
    window.type(dialog.password_entry, "s")
    assert enabled(dialog.ok)
    dialog.user.set("")
    window.root.update()
    assert not enabled(dialog.ok)
    window.key(dialog.password_entry, "Return")  # Enter with OK disabled does nothing
    assert not window.session.logged_in and window.session.worker.pending == 0
    assert not enabled(window.window.reading_entry) and window.status() == "Log in to start"
    window.key(dialog.user_entry, "Escape")  # Escape is Cancel: the program ends
    assert window.window.closed
    assert dump(daemon.port) == []  # a daemon it did not start still runs


def test_login_failure_is_shown_and_the_password_asked_again(app, daemon, roster):
    window = app("--port", str(daemon.port), "--user", "carol")
    window.log_in("wrong")
    window.pump(lambda: window.dialog.message.cget("text") == "Login failed: Login incorrect")
    assert window.dialog.password.get() == "" and not enabled(window.dialog.ok)
    assert window.root.focus_get() is window.dialog.password_entry
    window.log_in("secret")
    window.pump(lambda: window.session.logged_in)
    assert window.dialog is None and window.status() == WELCOME


def test_a_round_to_all_jobs_done(app, start_daemon, roster):
    daemon = start_daemon("--roster", str(roster), users=True)
    window = app("--port", str(daemon.port), "--user", "carol")
    window.log_in()
    window.wait_meter("G10001")
    main = window.window
    assert main.meter.cget("text") == "G10001" and main.counts.cget("text") == "Read 0/0"
    assert window.root.focus_get() is main.reading_entry
    assert enabled(main.reason_entry)  # the reading is empty: a reason may be given
    window.type(main.reading_entry, "5983")
    assert not enabled(main.reason_entry)
    window.key(main.reading_entry, "Return")
    window.wait_meter("G10002")
    assert main.counts.cget("text") == "Read 1/1"
    assert window.status() == "Accepted: you have read 1 out of 1 readings"
    assert main.reading.get() == "" and window.root.title() == "lineproto meter - G10002 - Read 1/1"

    window.type(main.reading_entry, "2980q")
    window.key(main.reading_entry, "Return")
    assert window.status() == "Invalid reading" and main.counts.cget("text") == "Read 1/1"
    main.reading.set("9" * 19)
    main.submit_button.invoke()
    window.pump(lambda: "Bad reading" in window.status() and window.session.can_submit)  # the daemon's refusal
    assert window.session.meter == "G10002"

    main.reading.set("")
    main.submit_button.invoke()
    assert window.status() == "Enter a reading, or the reason there is none"
    assert enabled(main.reason_entry)
    window.type(main.reason_entry, "Dog in the yard")
    window.key(main.reason_entry, "Return")
    window.wait_meter("E200003")
    assert main.counts.cget("text") == "Read 2/2"

    window.type(main.reading_entry, "42")
    main.submit_button.invoke()
    window.pump(lambda: window.session.finished)
    assert main.meter.cget("text") == "All jobs done"
    assert window.status() == "Accepted: you have read 3 out of 3 readings. All jobs done"
    assert main.counts.cget("text") == "Read 3/3"
    assert not any(enabled(w) for w in (main.reading_entry, main.reason_entry, main.submit_button))
    main.quit_button.invoke()
    lines = dump(daemon.port)  # still running: not the window's to stop
    assert sorted(line.split("@")[0] for line in lines) == ["E200003=42", "G10001=5983", "G10002=-1"]
    assert any(line.startswith("G10002=") and line.endswith("[Dog in the yard]carol") for line in lines), lines


def test_no_job_now_says_why(app, start_daemon, tmp_path):
    """The only meter is held by another reader: 450, shown as the console shows it, and nothing to enter."""
    one = tmp_path / "one.csv"
    one.write_text("G10001\n", encoding="utf-8")
    daemon = start_daemon("--roster", str(one), users=True)
    with RawConnection(daemon.port) as other:
        other.reply()
        other.command("USER root")
        other.command("PASS admin pass")
        assert other.command("JOB").lines[0].startswith("G10001")
        window = app("--port", str(daemon.port), "--user", "carol")
        window.log_in()
        window.pump(lambda: window.session.finished)
    main = window.window
    assert main.meter.cget("text") == "No job now"
    assert window.status() == f"{WELCOME}. 1 unread meter is held by other readers; try again later"
    assert not enabled(main.reading_entry) and not enabled(main.submit_button)


class SilentServer:
    """A port that greets like a lineproto daemon, then never answers: a daemon hung mid-session."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            connection.sendall(b"220 lineproto 0.1.0 ready\r\n")
            self.connections.append(connection)

    def close(self):
        self.listener.close()
        for connection in self.connections:
            connection.close()


@pytest.fixture
def silent():
    server = SilentServer()
    yield server
    server.close()


def test_a_hung_daemon_leaves_the_window_responsive(app, silent):
    window = app("--port", str(silent.port), "--user", "carol", "--timeout", "60")
    window.log_in()
    waiting = re.compile(r"Logging in\.\.\. waiting for [0-9]+ s \(gives up after 60 s\)")
    window.pump(lambda: waiting.fullmatch(window.dialog.message.cget("text")))  # the event loop runs the clock
    assert not enabled(window.dialog.ok)
    window.dialog.user.set("")  # and takes input
    window.root.update()
    assert window.dialog.user_entry.get() == ""
    started = time.monotonic()
    window.key(window.dialog.user_entry, "Escape")  # Cancel ends it at once, the request still out
    assert window.window.closed and time.monotonic() - started < 5


def test_a_daemon_that_does_not_answer_in_time_is_a_message(app, silent):
    window = app("--port", str(silent.port), "--user", "carol", "--timeout", "1")
    window.log_in()
    window.pump(lambda: "within 1 s" in window.dialog.message.cget("text") and window.session.can_log_in)
    assert window.dialog.message.cget("text") == f"no reply from 127.0.0.1:{silent.port} within 1 s; connection closed"
    assert window.dialog.password.get() == "secret"  # OK tries again


def test_a_lost_connection_offers_to_reconnect(app, start_daemon, roster):
    daemon = start_daemon("--roster", str(roster), "--idle-timeout", "3", users=True)
    window = app("--port", str(daemon.port), "--user", "carol")
    window.log_in()
    window.wait_meter("G10001")
    main = window.window
    assert not enabled(main.reconnect_button)
    daemon.wait_log("idle timeout")  # the daemon has closed the connection
    window.type(main.reading_entry, "17")
    window.key(main.reading_entry, "Return")
    window.pump(lambda: window.session.lost)
    assert window.status().startswith(("The daemon closed the connection: ", "Connection lost: "))
    assert window.status().endswith(". Reconnect to go on")
    assert enabled(main.reconnect_button) and not enabled(main.reading_entry)
    main.reconnect_button.invoke()
    window.pump(lambda: not window.session.lost and window.session.can_submit)
    assert window.status() == WELCOME and window.session.meter == "G10001"
    window.type(main.reading_entry, "17")
    window.key(main.reading_entry, "Return")
    window.wait_meter("G10002")
    assert main.counts.cget("text") == "Read 1/1"


def test_quit_stops_the_daemon_it_started(app, tmp_path, roster):
    db = tmp_path / "meters.db"
    users = write_users_file(tmp_path / "users.txt")
    window = app("--port", "0", "--users", str(users), "--roster", str(roster), "--db", str(db), "--user", "carol")
    starting = "Starting a daemon on any free port..."
    window.pump(lambda: window.dialog.message.cget("text").startswith((starting, "Connected to ")))
    assert window.dialog.message.cget("text").startswith(starting)  # a daemon takes far longer than a poll to start
    assert window.status() == "Log in to start"
    window.log_in()  # typed while the daemon starts: the login waits for it
    window.wait_meter("G10001")
    daemon = window.session.daemon
    assert daemon is not None and daemon.process.poll() is None
    window.type(window.window.reading_entry, "5")
    window.key(window.window.reading_entry, "Return")
    window.wait_meter("G10002")
    window.window.quit_button.invoke()
    assert daemon.process.returncode == 0
    with pytest.raises(OSError):
        socket.create_connection((daemon.host, daemon.port), timeout=2).close()
    result = subprocess.run([*DAEMON, "dump", "--db", str(db)], capture_output=True, text=True, timeout=30)
    assert result.stdout.startswith("G10001=5@"), result


def test_a_daemon_that_cannot_start_is_shown(app, tmp_path):
    bad = tmp_path / "roster.csv"
    bad.write_text("G10001\nno good\n", encoding="utf-8")
    window = app("--port", "0", "--roster", str(bad), "--user", "carol")
    window.pump(lambda: window.session.can_log_in and not window.session.busy and window.dialog.message.cget("text"))
    message = window.dialog.message.cget("text")
    assert message.startswith("the daemon exited with status 2: ") and "bad roster" in message, message
    assert window.session.daemon is None


def test_options_for_a_daemon_of_its_own_are_refused_when_one_answers(app, daemon, tmp_path):
    window = app("--port", str(daemon.port), "--db", str(tmp_path / "other.db"), "--user", "carol")
    window.pump(lambda: not window.session.busy)
    assert window.dialog.message.cget("text") == (
        f"a daemon already answers on 127.0.0.1:{daemon.port}, so none was started for --db: "
        "stop it, or choose another --port (0: any free port)"
    )
    assert window.session.daemon is None and not (tmp_path / "other.db").exists()


def test_the_program_end_to_end_with_xdotool(display, tmp_path, roster):
    """``client.py meter --gui --spawn`` as a person runs it: keys only, then the daemon is gone."""
    xdotool = need("xdotool", "xdotool")
    users = write_users_file(tmp_path / "users.txt")
    db = tmp_path / "meters.db"
    env = dict(os.environ, LOGNAME="carol", USER="carol")
    argv = [*CLIENT, "--spawn", "--port", "0", "--users", str(users), "--roster", str(roster), "--db", str(db)]
    program = subprocess.Popen(argv, env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    try:

        def xdo(*args: str) -> str:
            done = subprocess.run([xdotool, *args], capture_output=True, text=True, timeout=20, env=env, check=True)
            return done.stdout.strip()

        def focus(title: str) -> None:
            window_id = xdo("search", "--sync", "--name", title).split()[0]
            xdo("windowfocus", "--sync", window_id)

        focus("^lineproto meter: log in$")
        xdo("type", "secret")
        xdo("key", "Return")
        for meter, keys, counts in (("G10001", "11", "1/1"), ("G10002", "22", "2/2"), ("E200003", "33", "3/3")):
            focus(f"^lineproto meter - {meter} - ")
            xdo("type", keys)
            xdo("key", "Return")
            xdo("search", "--sync", "--name", f"Read {counts}$")
        focus("^lineproto meter - all jobs done - Read 3/3$")
        xdo("key", "ctrl+q")
        assert program.wait(timeout=30) == 0
    finally:
        if program.poll() is None:
            program.kill()
            program.wait()
    err = program.stderr.read()
    port = int(err.split("Started a daemon on 127.0.0.1:")[1].split()[0])
    assert "Stopped the daemon (status 0)" in err and "Traceback" not in err
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    result = subprocess.run([*DAEMON, "dump", "--db", str(db)], capture_output=True, text=True, timeout=30)
    assert sorted(line.split("@")[0] for line in result.stdout.splitlines()) == ["E200003=33", "G10001=11", "G10002=22"]


def test_no_display_is_one_line_and_status_2(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "DISPLAY"}
    result = subprocess.run([*CLIENT, "--port", "1"], capture_output=True, text=True, env=env, timeout=30)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "--gui needs a display" in result.stderr, result.stderr


def test_no_tkinter_is_one_line_and_status_2(tmp_path):
    """A Python without tkinter (Debian without python3-tk) is stood in for by a tkinter that cannot load."""
    (tmp_path / "tkinter.py").write_text('raise ModuleNotFoundError("No module named \'tkinter\'", name="tkinter")\n')
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    result = subprocess.run([*CLIENT, "--port", "1"], capture_output=True, text=True, env=env, timeout=30)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "--gui needs tkinter" in result.stderr, result.stderr
