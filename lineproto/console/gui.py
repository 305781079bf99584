"""``client.py meter --gui``: the meter reader's window (tkinter and ttk only).

A modal login dialog, then one window: the meter to read, a reading entry, a
reason entry (for a meter that cannot be read, so enabled only while the reading
is empty), Submit (Enter), ``Read N/M``, a status bar, Quit (Ctrl+Q). It uses the
daemon at ``--host``/``--port``, or starts one of its own when none answers, as
``meter --spawn`` does (:mod:`.spawn`), and stops that one, and only that one, when
the window closes.

Tk may be called only from the thread that runs it, and a network call may take
as long as ``--timeout``: so every call to the daemon runs on one :class:`Worker`
thread, in turn, and its result comes back to the Tk thread through the queue the
window polls with ``after()``. The window never waits for the daemon; while a
request is out the status bar says what it waits for and for how long.

:class:`MeterSession` is the window's logic without a widget (what is shown, what
each action sends); :class:`MeterWindow` and :class:`LoginDialog` draw it.
"""

from __future__ import annotations

import functools
import queue
import sys
import threading
import time
import tkinter as tk
from collections.abc import Callable
from tkinter import font as tkfont
from tkinter import ttk
from typing import Any

from ..client import Client, ClientError, PermanentError, ReplyError, TransientError
from ..wire import ProtocolError
from . import CLOSING
from .connect import connect, where
from .errors import OK, USAGE, ConsoleError, reason
from .meter import READING, login_name, welcome
from .spawn import SPAWN_TIMEOUT, SpawnedDaemon, check_options, connect_or_spawn

#: How often (ms) the window takes the worker's results and redraws a wait in progress.
POLL_MS = 50
#: Seconds a request may take before the status bar counts the seconds it has waited.
SLOW_AFTER = 1.0
#: Refusals that end the reader's session: logged out (530), not a reader (532).
SESSION_REFUSED = (530, 532)
TITLE = "lineproto meter"
#: What the meter label and the status bar say once every roster meter has a reading (251).
ALL_DONE = "All jobs done"


class Outcome:
    """What a call on the worker gave: its value, or the exception it raised."""

    def __init__(self, value: Any = None, error: BaseException | None = None):
        self.value = value
        self.error = error

    def get(self) -> Any:
        """The value; the call's exception raised again here, on the Tk thread."""
        if self.error is not None:
            raise self.error
        return self.value


class Worker:
    """One thread that runs the calls to the daemon in turn, off the Tk thread.

    What it reports (a call started, a call's outcome, progress) waits in a queue
    until :meth:`deliver` runs it on the Tk thread, the window's ``after()`` poll.
    """

    def __init__(self) -> None:
        self._jobs: queue.Queue[tuple[Callable[[], Any], Callable[[], None], Callable[[Outcome], None]] | None] = (
            queue.Queue()
        )
        self._reports: queue.Queue[Callable[[], None]] = queue.Queue()
        #: Calls submitted whose outcome has not been delivered yet (Tk thread only).
        self.pending = 0
        self._thread = threading.Thread(target=self._run, name="meter-network", daemon=True)
        self._thread.start()

    def submit(self, call: Callable[[], Any], started: Callable[[], None], done: Callable[[Outcome], None]) -> None:
        """Run ``call()`` after the calls before it; ``started()`` and ``done(outcome)`` on the Tk thread."""
        self.pending += 1
        self._jobs.put((call, started, done))

    def post(self, report: Callable[[], None]) -> None:
        """From the worker thread: run ``report()`` on the Tk thread."""
        self._reports.put(report)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            call, started, done = job
            self.post(started)
            try:
                outcome = Outcome(value=call())
            except Exception as exc:  # every failure is shown; none may end the thread
                outcome = Outcome(error=exc)
            self.post(functools.partial(self._finish, done, outcome))

    def _finish(self, done: Callable[[Outcome], None], outcome: Outcome) -> None:
        self.pending -= 1
        done(outcome)

    def deliver(self) -> None:
        """On the Tk thread: run every report that has come in."""
        while True:
            try:
                report = self._reports.get_nowait()
            except queue.Empty:
                return
            report()

    def stop(self, timeout: float) -> None:
        """Let the call in progress end (at most ``timeout`` s), run no more."""
        while True:
            try:
                self._jobs.get_nowait()
            except queue.Empty:
                break
        self._jobs.put(None)
        self._thread.join(timeout)


class MeterSession:
    """The meter reader's window without the widgets: what it shows, and what each action sends.

    The attributes are read by the window and changed only on the Tk thread (by an
    action, or by a call's outcome the worker delivers); ``changed()`` tells the
    window to draw them again. The connection itself (``client``, ``daemon``) is
    used only by calls on the worker, and by :meth:`close` once the window is gone.
    """

    def __init__(self, args, worker: Worker, changed: Callable[[], None]):
        self.args = args
        self.worker = worker
        self._changed = changed
        self.client: Client | None = None
        self.daemon: SpawnedDaemon | None = None
        self._address: tuple[str, int] | None = None
        self._credentials: tuple[str, str] | None = None
        self._logging_in = False
        self._closed = False
        # what the window shows
        self.login_message = ""
        self.logged_in = False
        self.meter: str | None = None
        self.counts: tuple[int, int] | None = None
        self.status = ""
        self.finished = False  # every job done (or held by others): nothing more to read
        self.note = ""  # why there is no meter: ALL_DONE, or the 450 line
        self.lost = False  # the connection is gone: Reconnect
        self.refusals = 0  # logins refused so far (the dialog clears the password after each)
        self.waiting: str | None = None  # what the call in progress waits for
        self._since = 0.0
        self._limit = 0.0  # seconds after which that wait gives up

    # ----------------------------------------------------------------- what the window asks

    @property
    def busy(self) -> bool:
        return self.worker.pending > 0

    @property
    def can_submit(self) -> bool:
        return self.logged_in and self.meter is not None and not (self.busy or self.lost or self.finished)

    @property
    def can_log_in(self) -> bool:
        return not self._logging_in

    @property
    def can_reconnect(self) -> bool:
        return self.lost and not self.busy

    def waiting_text(self) -> str | None:
        """What the call in progress waits for, with the seconds once it is slow; None when idle."""
        if self.waiting is None:
            return None
        waited = time.monotonic() - self._since
        if waited < SLOW_AFTER:
            return self.waiting
        return f"{self.waiting} waiting for {int(waited)} s (gives up after {self._limit:g} s)"

    def title(self) -> str:
        """The window title: the meter and the counts, so a task bar (and a test) can follow along."""
        parts = [TITLE]
        if self.logged_in:
            parts.append(self.meter or self.meter_text().lower())
            if self.counts:
                parts.append("Read {}/{}".format(*self.counts))
        return " - ".join(parts)

    def meter_text(self) -> str:
        """What the meter label shows: the meter, or why there is none."""
        if self.meter:
            return self.meter
        if self.finished:
            return ALL_DONE if self.note == ALL_DONE else "No job now"
        return "-"

    # ----------------------------------------------------------------- actions

    def start(self) -> None:
        """Connect (or start a daemon) while the login dialog is filled in."""
        self._request(f"Connecting to {where(self.args.host, self.args.port)}...", self._open, self._opened)

    def log_in(self, user: str, password: str) -> None:
        """The dialog's OK: log in (once the connection is there), then take the first job."""
        user = user.strip()
        if not user or not password or not self.can_log_in:
            return
        self._logging_in = True
        self._credentials = (user, password)
        self._request("Logging in...", self._begin, self._arrived)

    def submit(self, reading: str, why: str) -> None:
        """Submit: the reading, or without one the reason; checked here first, as the console does."""
        if not self.can_submit or self.meter is None:
            return
        meter, reading, why = self.meter, reading.strip(), why.strip()
        if reading:
            if not READING.fullmatch(reading):
                self._show("Invalid reading")
                return
            value = int(reading)
            self._request(f"Sending {meter}...", lambda: self._read(meter, value, None), self._read_done)
        elif why:
            self._request(f"Sending {meter}...", lambda: self._read(meter, None, why), self._read_done)
        else:
            self._show("Enter a reading, or the reason there is none")

    def reconnect(self) -> None:
        """After a lost connection: connect again, log in as before, take the job again."""
        if self.can_reconnect:
            self._request("Reconnecting...", self._begin, self._arrived)

    def close(self) -> None:
        """The window is gone: QUIT when idle, close, and stop the daemon this window started (only that one).

        A call hanging on the daemon is not waited for (the process ends with it),
        except the first connection: it may be starting a daemon, which must be
        stopped, so it gets the time that start may take.
        """
        if self._closed:
            return
        self._closed = True
        busy = self.busy
        if self._address is None:
            self.worker.stop(timeout=SPAWN_TIMEOUT + 2 * self.args.timeout)
        else:
            self.worker.stop(timeout=0)
        if self.client is not None:
            if not busy:
                try:
                    self.client.quit()
                except (ClientError, ProtocolError, OSError):
                    pass
            self.client.close()
        if self.daemon is not None:
            self.daemon.stop_and_say()

    # ----------------------------------------------------------------- plumbing (Tk thread)

    def _request(self, what: str, call: Callable[[], Any], done: Callable[[Outcome], None]) -> None:
        self.worker.submit(
            lambda: self._guarded(call), lambda: self._started(what), lambda outcome: self._done(done, outcome)
        )
        self._changed()

    def _started(self, what: str, limit: float | None = None) -> None:
        self.waiting, self._since = what, time.monotonic()
        self._limit = self.args.timeout if limit is None else limit
        self._changed()

    def _done(self, done: Callable[[Outcome], None], outcome: Outcome) -> None:
        if not self.busy:
            self.waiting = None
        done(outcome)
        self._changed()

    def _show(self, line: str) -> None:
        """A message where the user looks: the login dialog until logged in, then the status bar."""
        if self.logged_in:
            self.status = line
        else:
            self.login_message = line
        self._changed()

    def _progress(self, line: str) -> None:
        """From the worker: a step of starting the daemon (also on stderr, as the console says it)."""
        print(line, file=sys.stderr, flush=True)
        limit = SPAWN_TIMEOUT if line.startswith("Starting") else None
        self.worker.post(lambda: self._started(line, limit))

    # ----------------------------------------------------------------- calls (worker thread)

    def _guarded(self, call: Callable[[], Any]) -> Any:
        """``call()``; when the connection fails, it is closed here, on the worker, so the next call connects again."""
        try:
            return call()
        except ReplyError as exc:
            if exc.code == CLOSING:
                self._forget_client()
            raise
        except (ClientError, ProtocolError, OSError):
            self._forget_client()
            raise

    def _forget_client(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    def _open(self) -> str:
        """Connect, or start a daemon and connect to it; the first time only."""
        if self._address is None:
            self.client, self.daemon = connect_or_spawn(self.args, progress=self._progress)
            self._address = (self.daemon.host, self.daemon.port) if self.daemon else (self.args.host, self.args.port)
        elif self.client is None:
            self.client = connect(*self._address, self.args.timeout)
        return where(*self._address)

    def _begin(self) -> tuple[str, str | None, str, tuple[int, int]]:
        """Log in with the dialog's credentials and take a job: (welcome, meter, note, counts)."""
        assert self._credentials is not None
        self._open()
        assert self.client is not None
        user, password = self._credentials
        try:
            reply = self.client.login(user, password)
        except PermanentError as exc:
            raise LoginRefused(f"Login failed: {exc.reply.lines[0]}") from None
        except ValueError as exc:  # a control character, or bytes that are not UTF-8, in what was typed
            raise LoginRefused(f"Login failed: {reason(exc)}") from None
        meter, note = self._take_job()
        return welcome(self.client, reply, user), meter, note, self.client.meter_status()

    def _take_job(self) -> tuple[str | None, str]:
        """The next meter, or None and why: all jobs done (251), or the rest held by others (450)."""
        assert self.client is not None
        try:
            meter = self.client.job()
        except TransientError as exc:
            if exc.code == CLOSING:
                raise
            return None, exc.reply.lines[0]
        return meter, "" if meter else ALL_DONE

    def _read(self, meter: str, value: int | None, why: str | None) -> tuple[int, int, str | None, str]:
        assert self.client is not None
        if value is not None:
            mine, total = self.client.read(meter, value)
        else:
            mine, total = self.client.read(meter, reason=why)
        return mine, total, *self._take_job()

    # ----------------------------------------------------------------- outcomes (Tk thread)

    def _opened(self, outcome: Outcome) -> None:
        try:
            address = outcome.get()
        except (ConsoleError, ClientError, ProtocolError, OSError) as exc:
            if not self._logging_in:
                self.login_message = reason(exc)
            return
        if not self._logging_in:
            self.login_message = f"Connected to {address}"

    def _arrived(self, outcome: Outcome) -> None:
        """After logging in (from the dialog or to reconnect): the first job, or why not."""
        self._logging_in = False
        try:
            text, meter, note, counts = outcome.get()
        except LoginRefused as exc:
            self.refusals += 1
            self._show(str(exc))
            return
        except ReplyError as exc:
            self._show(f"Refused: {reason(exc)}")
            return
        except (ConsoleError, ClientError, ProtocolError, OSError) as exc:
            self._show(f"Connection lost: {reason(exc)}" if self.logged_in else reason(exc))
            return
        self.logged_in, self.lost = True, False
        self.counts = counts
        self._next(meter, note, text)

    def _read_done(self, outcome: Outcome) -> None:
        try:
            mine, total, meter, note = outcome.get()
        except PermanentError as exc:
            if exc.code in SESSION_REFUSED:
                self._lose(f"Refused: {reason(exc)}")
            else:  # 501 too many digits, ...: the same meter again
                self._show(exc.reply.lines[0])
            return
        except ValueError as exc:  # not sendable as typed
            self._show(f"Not sent: {reason(exc)}")
            return
        except ReplyError as exc:
            if exc.code == CLOSING:
                self._lose(f"The daemon closed the connection: {reason(exc)}")
            else:  # 451 storage unavailable, 452 full: nothing changed, the same meter again
                self._show(exc.reply.lines[0])
            return
        except (ClientError, ProtocolError, OSError) as exc:
            self._lose(f"Connection lost: {reason(exc)}")
            return
        self.counts = (mine, total)
        self._next(meter, note, f"Accepted: you have read {mine} out of {total} readings")

    def _next(self, meter: str | None, note: str, status: str) -> None:
        self.meter, self.finished, self.note = meter, meter is None, note
        self.status = f"{status}. {note}" if note else status

    def _lose(self, line: str) -> None:
        self.lost = True
        self.status = f"{line}. Reconnect to go on"


class LoginRefused(Exception):
    """The daemon refused the user name or password: the line the dialog shows."""


# --------------------------------------------------------------------------- the widgets


class LoginDialog:
    """The modal login dialog: user name (default: the login name), hidden password, OK, Cancel.

    OK is enabled once both are filled (and no login is on its way); Enter is OK,
    Escape and closing the dialog are Cancel, which ends the program.
    """

    def __init__(self, window: MeterWindow, user: str):
        self.window = window
        self._refusals_seen = 0
        self.top = tk.Toplevel(window.root)
        self.top.transient(window.root)
        self.top.resizable(False, False)
        frame = ttk.Frame(self.top, padding=12)
        frame.grid(sticky="nsew")
        self.user = tk.StringVar(value=user)
        self.password = tk.StringVar()
        ttk.Label(frame, text="User name:").grid(row=0, column=0, sticky="w", padx=(0, 8), pady=4)
        self.user_entry = ttk.Entry(frame, textvariable=self.user, width=28)
        self.user_entry.grid(row=0, column=1, sticky="ew", pady=4)
        ttk.Label(frame, text="Password:").grid(row=1, column=0, sticky="w", padx=(0, 8), pady=4)
        self.password_entry = ttk.Entry(frame, textvariable=self.password, show="\u2022", width=28)
        self.password_entry.grid(row=1, column=1, sticky="ew", pady=4)
        self.message = ttk.Label(frame, text="", wraplength=360, foreground="#444")
        self.message.grid(row=2, column=0, columnspan=2, sticky="w", pady=(8, 4))
        buttons = ttk.Frame(frame)
        buttons.grid(row=3, column=0, columnspan=2, sticky="e", pady=(8, 0))
        self.ok = ttk.Button(buttons, text="OK", command=self.submit, default="active")
        self.ok.grid(row=0, column=0, padx=4)
        self.cancel = ttk.Button(buttons, text="Cancel", command=window.quit)
        self.cancel.grid(row=0, column=1, padx=4)
        for variable in (self.user, self.password):
            variable.trace_add("write", lambda *_: self.render())
        self.top.bind("<Return>", lambda _event: self.submit())
        self.top.bind("<KP_Enter>", lambda _event: self.submit())
        self.top.bind("<Escape>", lambda _event: window.quit())
        self.top.protocol("WM_DELETE_WINDOW", window.quit)
        self.top.wait_visibility()
        self.top.grab_set()
        (self.password_entry if user else self.user_entry).focus_force()
        self.top.title(f"{TITLE}: log in")  # last: once it can be found by its title, it takes keys

    def submit(self) -> None:
        if str(self.ok.cget("state")) != "disabled":
            self.window.session.log_in(self.user.get(), self.password.get())

    def render(self) -> None:
        session = self.window.session
        filled = bool(self.user.get().strip() and self.password.get())
        self.ok.configure(state="normal" if filled and session.can_log_in else "disabled")
        self.message.configure(text=session.waiting_text() or session.login_message)
        if session.refusals != self._refusals_seen:  # refused: type the password again
            self._refusals_seen = session.refusals
            self.password.set("")
            self.password_entry.focus_set()

    def close(self) -> None:
        self.top.grab_release()
        self.top.destroy()


class MeterWindow:
    """The main window: the meter, the reading and reason entries, Submit, the counts, a status bar, Quit.

    It draws :class:`MeterSession` again whenever that changes, and polls the
    worker with ``after()``; Quit (Ctrl+Q, or closing the window) ends the program.
    """

    def __init__(self, root: tk.Tk, args):
        self.root = root
        self.worker = Worker()
        self.session = MeterSession(args, self.worker, changed=self.render)
        self._shown_meter: str | None = None
        self.dialog: LoginDialog | None = None
        self.closed = False
        root.title(TITLE)
        root.minsize(420, 240)
        root.columnconfigure(0, weight=1)
        root.rowconfigure(0, weight=1)
        body = ttk.Frame(root, padding=16)
        body.grid(row=0, column=0, sticky="nsew")
        body.columnconfigure(1, weight=1)
        ttk.Label(body, text="Meter:").grid(row=0, column=0, sticky="w", padx=(0, 8), pady=6)
        self.big_font = tkfont.nametofont("TkDefaultFont").copy()
        self.big_font.configure(size=18, weight="bold")
        self.meter = ttk.Label(body, text="", font=self.big_font)
        self.meter.grid(row=0, column=1, sticky="w", pady=6)
        ttk.Label(body, text="Reading:").grid(row=1, column=0, sticky="w", padx=(0, 8), pady=6)
        self.reading = tk.StringVar()
        self.reading_entry = ttk.Entry(body, textvariable=self.reading)
        self.reading_entry.grid(row=1, column=1, sticky="ew", pady=6)
        ttk.Label(body, text="Reason:").grid(row=2, column=0, sticky="w", padx=(0, 8), pady=6)
        self.reason = tk.StringVar()
        self.reason_entry = ttk.Entry(body, textvariable=self.reason)
        self.reason_entry.grid(row=2, column=1, sticky="ew", pady=6)
        ttk.Label(body, text="(no reading: say why)", foreground="#666").grid(row=3, column=1, sticky="w")
        buttons = ttk.Frame(body)
        buttons.grid(row=4, column=0, columnspan=2, sticky="ew", pady=(12, 0))
        buttons.columnconfigure(1, weight=1)
        self.submit_button = ttk.Button(buttons, text="Submit", command=self.submit, default="active")
        self.submit_button.grid(row=0, column=0)
        self.counts = ttk.Label(buttons, text="", anchor="center")
        self.counts.grid(row=0, column=1, sticky="ew")
        self.reconnect_button = ttk.Button(buttons, text="Reconnect", command=self.session.reconnect)
        self.reconnect_button.grid(row=0, column=2, padx=4)
        self.quit_button = ttk.Button(buttons, text="Quit", command=self.quit)
        self.quit_button.grid(row=0, column=3)
        self.status = ttk.Label(root, text="", relief="sunken", anchor="w", padding=(6, 2))
        self.status.grid(row=1, column=0, sticky="ew")
        self.reading.trace_add("write", lambda *_: self.render())
        root.bind("<Return>", self._enter)
        root.bind("<KP_Enter>", self._enter)
        root.bind("<Control-q>", lambda _event: self.quit())
        root.protocol("WM_DELETE_WINDOW", self.quit)
        self.render()
        self.dialog = LoginDialog(self, args.user or login_name())
        self.session.start()
        self._poll_id = self.root.after(POLL_MS, self._poll)

    def submit(self) -> None:
        self.session.submit(self.reading.get(), self.reason.get())

    def _enter(self, event: tk.Event) -> None:
        """Enter submits; on a button that has the focus (Tab), it presses that button."""
        if isinstance(event.widget, ttk.Button):
            event.widget.invoke()
        else:
            self.submit()

    def quit(self) -> None:
        """Close the window first, then end the connection and the daemon it started."""
        if self.closed:
            return
        self.closed = True
        self.root.after_cancel(self._poll_id)
        self.root.destroy()
        self.session.close()

    def _poll(self) -> None:
        if self.closed:
            return
        self.worker.deliver()
        if self.session.waiting:
            self.render()  # the seconds waited
        self._poll_id = self.root.after(POLL_MS, self._poll)

    def render(self) -> None:
        """Draw the session: every widget's text and state follows from it."""
        if self.closed:
            return
        session = self.session
        if session.logged_in and self.dialog is not None:
            self.dialog.close()
            self.dialog = None
            self.root.focus_force()  # the keyboard comes back from the dialog
        if self.dialog is not None:
            self.dialog.render()
        self.root.title(session.title())
        if session.meter != self._shown_meter:  # a new job: empty entries, the cursor in the reading
            self._shown_meter = session.meter
            self.reading.set("")
            self.reason.set("")
            if session.meter is not None:
                self.reading_entry.focus_set()
        self.meter.configure(text=session.meter_text())
        self.counts.configure(text="Read {}/{}".format(*session.counts) if session.counts else "")
        open_ = session.can_submit
        self.reading_entry.configure(state="normal" if open_ else "disabled")
        self.reason_entry.configure(state="normal" if open_ and not self.reading.get().strip() else "disabled")
        self.submit_button.configure(state="normal" if open_ else "disabled")
        self.reconnect_button.configure(state="normal" if session.can_reconnect else "disabled")
        waiting = session.waiting_text() if session.logged_in else None
        self.status.configure(text=waiting or session.status or ("Log in to start" if not session.logged_in else ""))


def gui_options(args):
    """``--gui`` starts a daemon when none answers, as ``--spawn`` does, so the options for it go with it."""
    args.spawn = True
    check_options(args)
    return args


def run_gui(args) -> int:
    """``client.py meter --gui``: 0 when the window is closed; no display is one line and 2."""
    gui_options(args)
    try:
        root = tk.Tk(className="lineproto-meter")
    except tk.TclError as exc:
        raise ConsoleError(f"--gui needs a display: {exc}", USAGE) from None
    window = MeterWindow(root, args)
    try:
        root.mainloop()
    finally:
        window.quit()
    return OK
