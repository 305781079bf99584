"""Split an input byte stream into command lines.

A line ends with LF, CRLF, or CR NUL (what telnet sends for a bare Enter in
some modes). The telnet layer (``telnet.py``) runs first: its answers come out
as events in stream order, and a telnet interrupt (Ctrl+C) discards the line
typed so far. A line longer than the limit
is reported once as :class:`LineTooLong` and the rest of it, up to the next line
ending, is discarded; invalid UTF-8 is reported as :class:`InvalidUtf8`. Either
way the stream carries on with the next line.
"""

from dataclasses import dataclass

from .limits import MAX_LINE_BYTES
from .telnet import Answer, TelnetFilter


@dataclass(frozen=True, slots=True)
class LineTooLong:
    """A line exceeded ``limit`` bytes; it was discarded up to its line ending."""

    limit: int


@dataclass(frozen=True, slots=True)
class InvalidUtf8:
    """A complete line was not valid UTF-8; ``line`` holds its raw bytes."""

    line: bytes


#: What :meth:`LineReader.feed` yields: a decoded line, why a line was discarded, or a telnet answer.
LineEvent = str | LineTooLong | InvalidUtf8 | Answer


class LineReader:
    """Incremental framing: ``feed(bytes)`` returns the events it completes.

    Events are, in stream order: ``str`` (a decoded line without its ending,
    possibly empty), :class:`LineTooLong`, :class:`InvalidUtf8`, or a telnet
    :class:`~lineproto.wire.telnet.Answer` to send to the peer.
    """

    __slots__ = ("max_line", "_telnet", "_buffer", "_discarding")  # one per connection: keep it small

    def __init__(self, max_line: int = MAX_LINE_BYTES, telnet: TelnetFilter | None = None):
        self.max_line = max_line
        self._telnet = telnet if telnet is not None else TelnetFilter()
        self._buffer = b""
        self._discarding = False  # inside an overlong line, waiting for its end

    def feed(self, data: bytes) -> list[LineEvent]:
        events: list[LineEvent] = []
        for piece in self._telnet.feed(data):
            if isinstance(piece, bytes):
                self._frame(piece, events)
            elif isinstance(piece, Answer):
                events.append(piece)
            else:  # INTERRUPT: the partial line is gone
                self._buffer, self._discarding = b"", False
        return events

    def _frame(self, data: bytes, events: list[LineEvent]) -> None:
        """Append the events that plain ``data`` completes; keep its unfinished tail."""
        data = self._buffer + data
        if b"\r\x00" in data:
            data = data.replace(b"\r\x00", b"\n")
        parts = data.split(b"\n")
        rest = parts.pop()
        for part in parts:
            if self._discarding:
                self._discarding = False  # this part is the tail of the long line
                continue
            if part.endswith(b"\r"):
                part = part[:-1]
            if len(part) > self.max_line:
                events.append(LineTooLong(self.max_line))
                continue
            try:
                events.append(part.decode("utf-8"))
            except UnicodeDecodeError:
                events.append(InvalidUtf8(part))
        if len(rest) > self.max_line + 1:  # +1: a CR may still precede the LF
            if not self._discarding:
                events.append(LineTooLong(self.max_line))
                self._discarding = True
            rest = rest[-1:] if rest.endswith(b"\r") else b""
        self._buffer = rest

    def finish(self) -> list[LineEvent]:
        """At end of input: the unterminated last line, if any, as an event."""
        rest, self._buffer = self._buffer, b""
        if self._discarding or not rest:
            self._discarding = False
            return []
        events: list[LineEvent] = []
        self._frame(rest + b"\n", events)  # already past the telnet layer: not through it again
        return events

    @property
    def pending(self) -> int:
        """Bytes held of an unfinished line."""
        return len(self._buffer)
