"""``client.py raw`` (an interactive line shell) and ``client.py batch FILE``.

``raw`` on a terminal shows a prompt, waits for each command's reply before the
next prompt (so replies and prompt do not mix) and keeps a readline history
(:class:`~.prompts.LineHistory`, ``PASS`` lines left out). Piped, it sends
what comes in as it comes and prints replies as they arrive, no prompt.
"""

from __future__ import annotations

import signal
import sys
import threading

from ..client import Client, ClientError, check_line
from ..wire import ProtocolError
from .connect import add_address, connect
from .errors import FAILED, OK, USAGE, ConsoleError, reason
from .prompts import LineHistory, is_terminal

#: The raw shell's prompt on a terminal.
PROMPT = "lineproto> "
#: Seconds the shell waits, after end of input, for the replies still due.
DRAIN_TIMEOUT = 10.0


def add_parsers(programs) -> None:
    raw = programs.add_parser(
        "raw",
        help="interactive line shell, replies printed as they come",
        description="Send each line typed to the daemon and print its replies. On a terminal: a prompt, "
        "line editing and a history kept in $XDG_STATE_HOME/lineproto/raw_history "
        "(~/.local/state/lineproto/raw_history; PASS lines are not kept). End of input "
        "(Ctrl+D) waits for the last replies and leaves; Ctrl+C leaves at once (exit 130).",
    )
    add_address(raw)
    raw.set_defaults(run=run_raw)
    batch = programs.add_parser(
        "batch",
        help="send each line of FILE; exit 0 if the last reply is 2yz",
        description="Send each non-blank line of FILE and print each reply. Exit 0 if the last reply "
        "is 2yz, 1 if not (or the daemon went away), 2 if FILE cannot be read or holds a "
        "line that cannot be sent (checked before connecting: then nothing is sent).",
    )
    batch.add_argument("file", help="file of command lines ('-' for standard input)")
    add_address(batch)
    batch.set_defaults(run=run_batch)


def is_password_line(line: str) -> bool:
    words = line.split(None, 1)
    return bool(words) and words[0].upper() == "PASS"


class ReplyPrinter:
    """Prints every reply of ``client`` as it arrives, on a thread, and counts them."""

    def __init__(self, client: Client):
        self.client = client
        self.replies = 0
        self.open = True
        self.failure: BrokenPipeError | None = None
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="replies", daemon=True)

    def start(self) -> None:
        # The thread starts with SIGINT blocked (it inherits the mask), so Ctrl+C is delivered to the
        # main thread and wakes it from input(); delivered here, the prompt would wait on.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            self._thread.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)

    def _run(self) -> None:
        while True:
            try:
                reply = self.client.read_reply()
            except TimeoutError:  # quiet for --timeout seconds: a shell waits as long as it takes
                continue
            except (ClientError, ProtocolError, OSError):
                print("connection closed", file=sys.stderr, flush=True)
                break
            try:
                print(reply, flush=True)
            except BrokenPipeError as exc:  # nobody reads our output any more: run_raw re-raises it
                self.failure = exc
                break
            with self._changed:
                self.replies += 1
                self._changed.notify_all()
        with self._changed:
            self.open = False
            self._changed.notify_all()

    def wait_for(self, replies: int, timeout: float | None) -> None:
        """Until ``replies`` replies have been printed, the connection closed, or ``timeout`` passed."""
        with self._changed:
            self._changed.wait_for(lambda: self.replies >= replies or not self.open, timeout)

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


def run_raw(args) -> int:
    client = connect(args.host, args.port, args.timeout, reply_timeout=None)  # the printer waits for replies
    terminal = is_terminal(sys.stdin)
    print(client.greeting, flush=True)
    client.listen(lambda event: print(event, flush=True))  # a shared table's events, as they come
    printer = ReplyPrinter(client)
    printer.start()
    sent = 0  # non-blank lines sent: each gets one reply
    try:
        with LineHistory("raw_history", args.parser.prog) as history:
            while printer.open:
                try:
                    line = input(PROMPT if terminal else "")
                except EOFError:
                    client.shutdown_write()  # the server answers what it has, then closes
                    printer.join(DRAIN_TIMEOUT)
                    break
                if is_password_line(line):
                    history.forget_last()
                if not printer.open:
                    break
                try:
                    client.send_line(line)
                except ValueError as exc:
                    print(f"not sent: {reason(exc)}", file=sys.stderr, flush=True)
                    continue
                if line.strip():
                    sent += 1
                    if terminal:
                        printer.wait_for(sent, args.timeout)
    finally:
        client.close()
    if printer.failure is not None:
        raise printer.failure  # main ends quietly with 141
    return OK


def read_batch(path: str) -> list[str]:
    """The non-blank lines of ``path`` ('-': standard input), each checked to be sendable.

    A file that cannot be read, or a line that cannot go on the wire (NUL, bytes that
    are not UTF-8), is a ConsoleError with exit status 2, before anything is sent.
    """
    name = "standard input" if path == "-" else path
    try:
        if path == "-":
            raw_lines = sys.stdin.readlines()
        else:
            with open(path, encoding="utf-8", errors="surrogateescape") as source:
                raw_lines = source.readlines()
    except OSError as exc:
        raise ConsoleError(f"cannot read {name}: {exc.strerror or exc}", USAGE) from None
    lines = []
    for number, raw_line in enumerate(raw_lines, 1):
        line = raw_line.rstrip("\r\n")
        if not line.strip():
            continue
        try:
            check_line(line).encode("utf-8")
        except ValueError as exc:
            raise ConsoleError(f"{name} line {number} cannot be sent: {reason(exc)}", USAGE) from None
        lines.append(line)
    return lines


def run_batch(args) -> int:
    lines = read_batch(args.file)
    client = connect(args.host, args.port, args.timeout)
    last = client.greeting
    print(last, flush=True)
    try:
        for line in lines:
            client.send_line(line)
            last = client.read_reply()
            print(last, flush=True)
    finally:
        client.close()
    return OK if 200 <= last.code < 300 else FAILED
