"""How a console program ends when it cannot do its job: one line on stderr and an exit status.

The programs raise :class:`ConsoleError` (or :class:`UsageError`); ``client.py``'s
``main`` prints the line and returns the status, so every program ends the same way.
"""

from ..client import ReplyError

#: Exit statuses of client.py (README, "Talk to it").
OK = 0
FAILED = 1  # the daemon cannot be reached, refused, or the connection was lost
USAGE = 2  # a mistake on the command line, or a batch file that cannot be sent
INTERRUPTED = 130  # Ctrl+C (128 + SIGINT), as shells report it
BROKEN_PIPE = 141  # the reader of our output went away (128 + SIGPIPE), as if killed by it


class ConsoleError(Exception):
    """End the program: ``str(self)`` is the one line for stderr, ``status`` the exit status."""

    def __init__(self, message: str, status: int = FAILED):
        super().__init__(message)
        self.status = status


class UsageError(ConsoleError):
    """A mistake on the command line found after parsing (options that do not go together)."""

    def __init__(self, message: str):
        super().__init__(message, USAGE)


def reason(exc: BaseException) -> str:
    """What went wrong, in one line: a refusal's reply text, else the exception's message."""
    if isinstance(exc, ReplyError):
        return exc.reply.lines[0]
    if isinstance(exc, UnicodeEncodeError):  # surrogates: bytes typed or read that were not UTF-8
        return "it holds bytes that are not UTF-8 text"
    return str(exc) or type(exc).__name__
