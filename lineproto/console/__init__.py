"""``client.py``: the console programs, one module each, dispatched by subcommand.

Each program module offers ``add_parsers(programs)``, which adds its subcommands
with ``set_defaults(run=function)``; ``function(args)`` returns the exit status.
How every program ends is decided here, once: a :class:`ConsoleError` is one line
on stderr with its status; a daemon that goes away mid-session is one line and 1;
Ctrl+C is 130 (a program may print what it has first); a closed output pipe is a
quiet 141. The statuses are in :mod:`.errors`.
"""

from __future__ import annotations

import argparse
import os
import select
import sys

from .. import PRODUCT, __version__
from ..argtypes import ArgumentParser
from ..client import ClientError, ReplyError
from ..extras import program_name
from ..web import cli as web
from ..wire import ProtocolError
from . import meter, play, raw, simulate, verify
from .errors import BROKEN_PIPE, FAILED, INTERRUPTED, ConsoleError, UsageError, reason

PROGRAM_MODULES = (raw, play, simulate, meter, verify, web)
#: The reply code of a daemon that closes the connection (idle, shutting down, too many failures).
CLOSING = 421


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog=program_name("lineproto"),
        description=f"{PRODUCT} {__version__} console clients",
        epilog="Exit status: 0 done, 1 the daemon could not be reached, refused or went away, "
        "2 a mistake on the command line, 130 Ctrl+C, 141 the reader of the output went away.",
    )
    parser.add_argument("--version", action="version", version=f"{PRODUCT} {__version__}")
    programs = parser.add_subparsers(dest="program", metavar="PROGRAM", required=True)
    for module in PROGRAM_MODULES:
        module.add_parsers(programs)
    for subparser in programs.choices.values():
        subparser.set_defaults(parser=subparser)
    return parser


def _pass_bytes_through() -> None:
    """Bytes typed that are not UTF-8 reach the programs as surrogates, never as a decoding traceback.

    A line holding them cannot be sent (the client refuses it with ValueError, which
    every program reports); echoed back, they are the bytes that came in.
    """
    for stream in (sys.stdin, sys.stdout):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="surrogateescape")


def _stdout_gone() -> bool:
    """True when nobody reads our standard output any more (a pipe whose reader closed it).

    A broken pipe may also be the daemon's socket; only this tells the two apart.
    """
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll() here, or no real stdout
        return False


def _silence_stdout() -> None:
    """After a broken pipe: point stdout at /dev/null so the interpreter's last flush cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _pass_bytes_through()
    prog = args.parser.prog
    try:
        return args.run(args)
    except UsageError as exc:
        args.parser.error(str(exc))  # argparse's own one-line format; exits 2
    except ConsoleError as exc:
        print(f"{prog}: {exc}", file=sys.stderr, flush=True)
        return exc.status
    except ReplyError as exc:
        what = "the daemon closed the connection" if exc.code == CLOSING else "refused"
        print(f"{prog}: {what}: {reason(exc)}", file=sys.stderr, flush=True)
        return FAILED
    except (ClientError, ProtocolError, OSError) as exc:
        if isinstance(exc, BrokenPipeError) and _stdout_gone():
            _silence_stdout()
            return BROKEN_PIPE
        print(f"{prog}: connection lost: {reason(exc)}", file=sys.stderr, flush=True)
        return FAILED
    except KeyboardInterrupt:
        print(file=sys.stderr, flush=True)
        return INTERRUPTED
    return FAILED  # not reached: parser.error exits
