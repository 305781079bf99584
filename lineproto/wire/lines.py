"""Split an input byte stream into command lines.

A line ends with LF, CRLF, or CR NUL (what telnet sends for a bare Enter in
some modes). Telnet negotiation is stripped first. A line longer than the limit
is reported once as :class:`LineTooLong` and the rest of it, up to the next line
ending, is discarded; invalid UTF-8 is reported as :class:`InvalidUtf8`. Either
way the stream carries on with the next line.
"""

from dataclasses import dataclass

from .limits import MAX_LINE_BYTES
from .telnet import TelnetFilter


@dataclass(frozen=True, slots=True)
class LineTooLong:
    """A line exceeded ``limit`` bytes; it was discarded up to its line ending."""

    limit: int


@dataclass(frozen=True, slots=True)
class InvalidUtf8:
    """A complete line was not valid UTF-8; ``line`` holds its raw bytes."""

    line: bytes


#: What :meth:`LineReader.feed` yields: a decoded line, or why a line was discarded.
LineEvent = str | LineTooLong | InvalidUtf8


class LineReader:
    """Incremental framing: ``feed(bytes)`` returns the events it completes.

    Events are, in stream order: ``str`` (a decoded line without its ending,
    possibly empty), :class:`LineTooLong` or :class:`InvalidUtf8`.
    """

    __slots__ = ("max_line", "_telnet", "_buffer", "_discarding")  # one per connection: keep it small

    def __init__(self, max_line: int = MAX_LINE_BYTES, telnet: TelnetFilter | None = None):
        self.max_line = max_line
        self._telnet = telnet if telnet is not None else TelnetFilter()
        self._buffer = b""
        self._discarding = False  # inside an overlong line, waiting for its end

    def feed(self, data: bytes) -> list[LineEvent]:
        data = self._buffer + self._telnet.feed(data)
        if b"\r\x00" in data:
            data = data.replace(b"\r\x00", b"\n")
        parts = data.split(b"\n")
        rest = parts.pop()
        events: list[LineEvent] = []
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
        return events

    def finish(self) -> list[LineEvent]:
        """At end of input: the unterminated last line, if any, as an event."""
        rest, self._buffer = self._buffer, b""
        if self._discarding or not rest:
            self._discarding = False
            return []
        return self.feed(rest + b"\n")

    @property
    def pending(self) -> int:
        """Bytes held of an unfinished line."""
        return len(self._buffer)
