"""Format replies (server side) and parse them incrementally (client side).

A reply is ``NNN text``; a multi-line reply is ``NNN-text`` lines ended by one
``NNN text`` line with the same code (RFC 959 section 4.2). Every line carries
the prefix, so FTP-style, SMTP-style and "read until ``NNN ``" parsers all read
it the same way and no reply text can be mistaken for a reply's end.
"""

import re
from typing import NamedTuple

from .labels import is_label
from .limits import MAX_CLIENT_REPLY_LINE_BYTES, MAX_REPLY_LINE_BYTES
from .telnet import TelnetFilter

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_MAX_TEXT_BYTES = MAX_REPLY_LINE_BYTES - 6  # "NNN-" + CRLF


class ProtocolError(Exception):
    """The peer sent something that is not a well-formed reply."""


class Reply(NamedTuple):
    """A complete reply: its code and its text lines (one or more).

    A named tuple: the server builds one per command, and tuples are the cheapest to build.
    """

    code: int
    lines: tuple[str, ...] = ("",)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def __str__(self) -> str:
        """The reply as on the wire, lines joined by LF (for printing)."""
        return format_reply(self.code, self.lines).decode("utf-8").rstrip("\r\n").replace("\r\n", "\n")


def split_text(text: str | tuple[str, ...] | list[str]) -> list[str]:
    """Lines of a reply text: split on CR/LF, control characters made visible, length capped."""
    if isinstance(text, str):
        lines = _LINE_BREAK.split(text)
    else:
        lines = [piece for item in text for piece in _LINE_BREAK.split(item)] or [""]
    return [_clean(line) for line in lines]


def _clean(line: str) -> str:
    if _CONTROL.search(line):
        line = _CONTROL.sub("?", line)
    encoded = line.encode("utf-8")
    if len(encoded) > _MAX_TEXT_BYTES:
        line = encoded[:_MAX_TEXT_BYTES].decode("utf-8", "ignore")
    return line


def format_reply(code: int, text: str | tuple[str, ...] | list[str] = "") -> bytes:
    """Encode a reply for the wire, CRLF line endings; multi-line when ``text`` has several lines."""
    if not 100 <= code <= 599:
        raise ValueError(f"reply code out of range: {code}")
    if type(text) is tuple and len(text) == 1:  # the common case: one short printable line
        line = text[0]
        if len(line) < 240 and line.isprintable():
            return f"{code} {line}\r\n".encode()
    lines = split_text(text)
    last = len(lines) - 1
    return "".join(f"{code}{'-' if i < last else ' '}{line}\r\n" for i, line in enumerate(lines)).encode("utf-8")


def label_reply(reply: Reply, label: str) -> Reply:
    """The reply to a labelled command: the same reply, ``@label`` first on its first line.

    ``200 Accepted`` becomes ``200 @r-17 Accepted``; a multi-line reply's first line
    ``211-Status:`` becomes ``211-@r-17 Status:``. The rest is untouched, so a strict
    parser reads the same reply with one more word in front.
    """
    first = reply.lines[0]
    return Reply(reply.code, (f"@{label} {first}" if first else f"@{label}", *reply.lines[1:]))


def reply_label(reply: Reply) -> tuple[str | None, Reply]:
    """The label of a reply and the reply without it; ``(None, reply)`` when it has none."""
    first = reply.lines[0]
    if first[:1] != "@":
        return None, reply
    label, _, rest = first[1:].partition(" ")
    if not is_label(label):
        return None, reply
    return label, Reply(reply.code, (rest, *reply.lines[1:]))


_REPLY_START = re.compile(r"([1-5][0-9][0-9])([ -]|$)")


class ReplyParser:
    """Incremental reply parser: ``feed(bytes) -> list[Reply]``.

    Accepts CRLF or LF line endings and, inside a multi-line reply, RFC 959's
    unprefixed continuation lines. Telnet commands in the stream (the server's
    answers to telnet negotiation a client sent) are skipped. Raises
    :class:`ProtocolError` (and nothing else) on malformed input; after that
    the parser must not be fed again.
    """

    def __init__(self, max_line: int = MAX_CLIENT_REPLY_LINE_BYTES):
        self.max_line = max_line
        self._buffer = b""
        self._code: int | None = None  # code of the multi-line reply in progress
        self._lines: list[str] = []
        self._telnet = TelnetFilter()

    def feed(self, data: bytes) -> list[Reply]:
        data = self._telnet.strip(data)
        parts = (self._buffer + data).split(b"\n")
        self._buffer = parts.pop()
        if len(self._buffer) > self.max_line:
            raise ProtocolError(f"reply line longer than {self.max_line} bytes")
        replies = []
        for raw in parts:
            if len(raw) > self.max_line:
                raise ProtocolError(f"reply line longer than {self.max_line} bytes")
            reply = self._line(raw[:-1] if raw.endswith(b"\r") else raw)
            if reply is not None:
                replies.append(reply)
        return replies

    @property
    def in_reply(self) -> bool:
        """True while part of a reply has been read."""
        return bool(self._buffer) or self._code is not None

    def _line(self, raw: bytes) -> Reply | None:
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError(f"reply is not UTF-8: {raw[:40]!r}") from exc
        if self._code is None:
            match = _REPLY_START.match(line)
            if not match:
                raise ProtocolError(f"not a reply line: {line[:80]!r}")
            code, text = int(match.group(1)), line[4:]
            if match.group(2) == "-":
                self._code, self._lines = code, [text]
                return None
            return Reply(code, (text,))
        prefix = str(self._code)
        if line == prefix or line.startswith(prefix + " "):
            self._lines.append(line[4:])
            reply = Reply(self._code, tuple(self._lines))
            self._code, self._lines = None, []
            return reply
        self._lines.append(line[4:] if line.startswith(prefix + "-") else line)
        return None
