"""Where the daemon's log goes and how its lines look: ``--log-file``, ``--log-format``, ``--syslog``.

Standard error gets the log unless a file or syslog is named. A file is reopened on SIGHUP
(:func:`reopen_files`), so logrotate can move it away and signal the daemon. ``--log-format json``
writes one JSON object per line: ``time``, ``level``, ``logger``, ``message``, and the structured
fields a log call gives with ``extra=`` (``peer``, ``account``, ...). Client text in a message is
escaped by the caller (:func:`lineproto.wire.logtext.for_log`) before it gets here.
"""

import argparse
import datetime
import json
import logging
import logging.handlers
import os
import sys

from . import PRODUCT
from .errors import StartError

FORMATS = ("text", "json")
LEVELS = ("debug", "info", "warning", "error")
DEFAULT_SYSLOG_ADDRESS = "/dev/log"
#: The text format; syslog stamps its own time, so its lines leave the time out.
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
SYSLOG_TEXT_FORMAT = "%(levelname)s %(name)s: %(message)s"

#: What every LogRecord has: the rest of a record's attributes are the fields given with ``extra=``.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The daemon's logging options."""
    group = parser.add_argument_group("logging (docs/DEPLOYING.md, Logging)")
    group.add_argument("--log-level", default="info", choices=LEVELS, help="default %(default)s")
    group.add_argument(
        "--log-file", metavar="FILE", help="append the log to FILE instead of standard error; reopened on SIGHUP"
    )
    group.add_argument(
        "--log-format",
        choices=FORMATS,
        default="text",
        help="text: time level logger: message (default); json: one JSON object per line",
    )
    group.add_argument("--syslog", action="store_true", help="send the log to syslog (facility daemon)")
    group.add_argument(
        "--syslog-address",
        default=DEFAULT_SYSLOG_ADDRESS,
        metavar="PATH|HOST:PORT",
        help="syslog's socket, or a UDP host:port (default %(default)s)",
    )


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, then the ``extra=`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=True)


class ReopenedFileHandler(logging.FileHandler):
    """A log file that :func:`reopen_files` closes and opens again by name (after logrotate moved it)."""

    def reopen(self) -> None:
        with self.lock:  # type: ignore[union-attr]  # created by Handler.__init__
            if self.stream is not None:
                self.stream.close()  # the stream only: close() would also forget the handler at exit
            self.stream = self._open()


def configure(args: argparse.Namespace, serving: bool = True) -> None:
    """Send the log where ``args`` say, in their format; replaces any handlers set before.

    Not ``serving`` (an administration subcommand, run by hand): its few lines go to standard
    error, for the person who ran it, never into the daemon's log file or syslog.
    """
    json_lines = serving and args.log_format == "json"
    handlers: list[logging.Handler] = []
    if serving and args.log_file:
        handlers.append(_file_handler(args.log_file))
    if serving and args.syslog:
        handlers.append(_syslog_handler(args.syslog_address))
    if not handlers:
        handlers.append(logging.StreamHandler(sys.stderr))
    for handler in handlers:
        if json_lines:
            handler.setFormatter(JsonFormatter())
        elif isinstance(handler, logging.handlers.SysLogHandler):
            handler.setFormatter(logging.Formatter(SYSLOG_TEXT_FORMAT))
        else:
            handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
        old.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(args.log_level.upper())


def reopen_files() -> int:
    """SIGHUP: open the log files again by name; the number reopened."""
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, ReopenedFileHandler)]
    for handler in handlers:
        handler.reopen()
    return len(handlers)


def _file_handler(path: str) -> ReopenedFileHandler:
    try:
        return ReopenedFileHandler(path, encoding="utf-8")
    except OSError as exc:
        raise StartError(f"--log-file {path}: {exc.strerror or exc}") from None


def _syslog_handler(address: str) -> logging.handlers.SysLogHandler:
    if address.startswith("/") and not os.path.exists(address):  # SysLogHandler itself would drop every line
        raise StartError(f"--syslog: no syslog socket at {address}")
    host, colon, port = address.rpartition(":")
    target: str | tuple[str, int] = address
    if colon and not address.startswith("/"):
        try:
            target = (host.strip("[]"), int(port))
        except ValueError:
            raise StartError(f"--syslog-address {address}: a socket path or HOST:PORT") from None
    try:
        handler = logging.handlers.SysLogHandler(target, facility=logging.handlers.SysLogHandler.LOG_DAEMON)
    except OSError as exc:
        raise StartError(f"--syslog: cannot reach syslog at {address}: {exc.strerror or exc}") from None
    handler.ident = f"{PRODUCT}[{os.getpid()}]: "
    return handler
