"""Reading what a person types: answers, passwords and line history, the same in every program.

On a terminal, answers come through :func:`input` (line editing) and passwords
through :func:`getpass.getpass` (no echo). Off a terminal (a pipe, a file) both
are simply the next line of standard input: the answer is echoed after its
prompt, so a piped session's output reads like the terminal's, and the password
never is. No ``GetPassWarning``, and no looking for ``/dev/tty`` behind the
pipe's back.
"""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import TextIO

#: Lines kept in a program's history file.
HISTORY_LENGTH = 1000


def is_terminal(stream: TextIO | None) -> bool:
    """True when ``stream`` is a terminal (False for pipes, files and closed or missing streams)."""
    try:
        return stream is not None and stream.isatty()
    except (AttributeError, ValueError):
        return False


def _next_line(prompt: str) -> str | None:
    sys.stdout.write(prompt)
    sys.stdout.flush()  # whoever drives the pipe sees the question before we wait
    line = sys.stdin.readline()
    return line.rstrip("\r\n") if line else None


def ask(prompt: str) -> str | None:
    """One answer (without its line ending), or None at end of input."""
    if is_terminal(sys.stdin):
        try:
            return input(prompt)
        except EOFError:
            print(flush=True)
            return None
    answer = _next_line(prompt)
    sys.stdout.write(("" if answer is None else answer) + "\n")
    sys.stdout.flush()
    return answer


def ask_password(prompt: str = "Password: ") -> str | None:
    """A password: hidden on a terminal, else the next line of input (never echoed); None at end of input."""
    if is_terminal(sys.stdin):
        try:
            return getpass.getpass(prompt)
        except EOFError:
            print(flush=True)
            return None
    answer = _next_line(prompt)
    sys.stdout.write("\n")
    sys.stdout.flush()
    return answer


def history_path(name: str) -> Path:
    """``$XDG_STATE_HOME/lineproto/NAME`` (``~/.local/state/lineproto/NAME`` when unset or relative)."""
    state = os.environ.get("XDG_STATE_HOME", "")
    base = Path(state) if os.path.isabs(state) else Path.home() / ".local" / "state"
    return base / "lineproto" / name


class LineHistory:
    """readline's history for one program, loaded on entry and saved on exit (mode 0600).

    Only on a terminal: piped input neither reads nor writes the file (and readline is
    not even loaded). ``forget_last`` drops the line just typed, for lines that hold a
    password. A file that cannot be written costs one warning line, never the session.
    """

    def __init__(self, name: str, program: str):
        self.path = history_path(name)
        self.program = program
        self._readline: ModuleType | None = None

    def __enter__(self) -> LineHistory:
        if not is_terminal(sys.stdin):
            return self
        try:
            import readline
        except ImportError:  # no line editing on this Python: nothing to remember
            return self
        self._readline = readline
        readline.set_history_length(HISTORY_LENGTH)
        try:
            readline.read_history_file(self.path)
        except OSError:  # none yet, or unreadable: start empty
            pass
        return self

    def forget_last(self) -> None:
        if self._readline is not None and self._readline.get_current_history_length():
            self._readline.remove_history_item(self._readline.get_current_history_length() - 1)

    def __exit__(self, *exc_info) -> None:
        if self._readline is None:
            return
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
            os.chmod(self.path, 0o600)
            self._readline.write_history_file(self.path)
        except OSError as exc:
            print(f"{self.program}: history not saved to {self.path}: {exc.strerror or exc}", file=sys.stderr)
