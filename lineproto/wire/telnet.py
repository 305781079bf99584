"""The telnet layer of the input (RFC 854/855): strip IAC sequences, answer what needs an answer.

Telnet clients send IAC sequences (WILL/DO/..., commands, subnegotiations)
before and between lines. They are control data, never command text, so they
are removed here and never echoed. UTF-8 never contains the byte 0xFF, so
stripping IAC cannot damage valid text.

The server enables no option: it stays in the NVT's line-by-line mode, which
is what a line protocol wants. What a client sends is answered like this:

- ``DO TIMING-MARK`` gets ``WILL TIMING-MARK`` every time (RFC 860): telnet
  sends it after Ctrl+C and hides all output until the mark comes back. The
  answer is an :class:`Answer` in stream order, so the connection sends it
  after the replies to every line before it. Like BSD telnetd, the option is
  then taken as off again, and ``DONT``/``WONT TIMING-MARK`` get no answer.
- Any other ``DO x`` gets ``WONT x``, ``WILL x`` gets ``DONT x``; ``WONT`` and
  ``DONT`` are never answered (RFC 854, RFC 1143: refusing needs no reply).
  A refusal is sent once per option and direction; a repeated request is not
  answered again until the peer has said ``WONT x`` (or ``DONT x``) itself,
  so two programs cannot refuse each other in a loop and a flood of requests
  gets at most one answer per option.
- ``IP`` (Ctrl+C), ``BRK`` and ``EL`` (erase line) become :data:`INTERRUPT`:
  the line typed so far is discarded; lines already complete are not undone.
- ``AYT`` (are you there) gets the text line :data:`AYT_ANSWER`, in order.
- ``AO`` (abort output) does nothing: the server keeps no reply output of its
  own to discard (each reply is handed to the transport as it is made).
- ``EC``, ``NOP``, ``DM``, ``GA`` and subnegotiations are dropped.

All answers to one :meth:`TelnetFilter.feed` together are at most
``max_answer`` bytes (a flood of ``DO TIMING-MARK`` or ``AYT`` is answered up
to that, the rest is dropped), so no input makes the server write more than
that per chunk it reads.
"""

from .limits import MAX_SUBNEGOTIATION_BYTES, MAX_TELNET_ANSWER_BYTES

IAC = 255
DONT, DO, WONT, WILL = 254, 253, 252, 251
SB, SE = 250, 240
GA, EL, EC, AYT, AO, IP, BRK, DM, NOP = 249, 248, 247, 246, 245, 244, 243, 242, 241
TIMING_MARK = 6

#: What ``IAC AYT`` is answered with: a short line a person at telnet sees (not a reply: no code).
AYT_ANSWER = b"[Yes]\r\n"

_DATA, _IAC, _OPTION, _SB, _SB_IAC = range(5)
_INTERRUPTS = frozenset((IP, BRK, EL))


class Answer:
    """Bytes to send to the peer once everything received before them has been answered."""

    __slots__ = ("data",)

    def __init__(self, data: bytes):
        self.data = data

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Answer) and other.data == self.data

    def __repr__(self) -> str:
        return f"Answer({self.data!r})"


class Interrupt:
    """The peer interrupted (IP, BRK, EL): discard the line typed so far."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "INTERRUPT"


INTERRUPT = Interrupt()

#: What :meth:`TelnetFilter.feed` returns, in stream order: plain data, an answer, an interrupt.
TelnetPiece = bytes | Answer | Interrupt


class TelnetFilter:
    """Incremental telnet layer: ``feed(bytes)`` returns the pieces of the stream, in order.

    A piece is ``bytes`` of plain data, an :class:`Answer` to send back, or
    :data:`INTERRUPT`. ``IAC IAC`` is an escaped 0xFF data byte. ``IAC SB ...
    IAC SE`` is dropped, but a subnegotiation longer than
    ``max_subnegotiation`` bytes is abandoned and the bytes after that point
    are read as data again. See the module docstring for what is answered.
    """

    # one per connection: keep it small (the refusals sent are bit sets, one bit per option)
    __slots__ = ("max_subnegotiation", "max_answer", "_state", "_verb", "_sb_length", "_refused_will", "_refused_do")

    def __init__(self, max_subnegotiation: int = MAX_SUBNEGOTIATION_BYTES, max_answer: int = MAX_TELNET_ANSWER_BYTES):
        self.max_subnegotiation = max_subnegotiation
        self.max_answer = max_answer
        self._state = _DATA
        self._verb = 0  # WILL/WONT/DO/DONT while waiting for its option byte
        self._sb_length = 0
        self._refused_will = 0  # bit x: DONT x sent, not to be sent again until the peer says WONT x
        self._refused_do = 0  # bit x: WONT x sent, likewise until the peer says DONT x

    def feed(self, data: bytes) -> list[TelnetPiece]:
        if self._state == _DATA and IAC not in data:
            return [data]  # the common case: no telnet at all
        pieces: list[TelnetPiece] = []
        text = bytearray()  # plain data not yet in pieces
        budget = self.max_answer
        state = self._state
        for byte in data:
            if state == _DATA:
                if byte == IAC:
                    state = _IAC
                else:
                    text.append(byte)
                continue
            reply = b""
            if state == _IAC:
                state = _DATA
                if byte == IAC:
                    text.append(IAC)
                elif byte in (WILL, WONT, DO, DONT):
                    state = _OPTION
                    self._verb = byte
                elif byte == SB:
                    state = _SB
                    self._sb_length = 0
                elif byte in _INTERRUPTS:
                    _flush(text, pieces)
                    pieces.append(INTERRUPT)
                elif byte == AYT:
                    reply = AYT_ANSWER
                # anything else (NOP, DM, GA, EC, AO, ...) is dropped
            elif state == _OPTION:
                state = _DATA
                reply = self._negotiate(self._verb, byte, budget >= 3)
            else:  # inside a subnegotiation
                self._sb_length += 1
                if state == _SB_IAC and byte == SE:
                    state = _DATA
                elif byte == IAC and state == _SB:
                    state = _SB_IAC
                else:
                    state = _SB
                if state != _DATA and self._sb_length > self.max_subnegotiation:
                    state = _DATA  # abandoned: read what follows as data
            if reply and len(reply) <= budget:
                budget -= len(reply)
                _flush(text, pieces)  # the answer goes after the data before it
                if pieces and pieces[-1].__class__ is Answer:  # one piece for answers in a row
                    pieces[-1] = Answer(pieces[-1].data + reply)
                else:
                    pieces.append(Answer(reply))
        self._state = state
        _flush(text, pieces)
        return pieces

    def strip(self, data: bytes) -> bytes:
        """Only the plain data of ``data``: for a reader that answers nothing (a client of the server)."""
        pieces = self.feed(data)
        if len(pieces) == 1 and pieces[0].__class__ is bytes:
            return pieces[0]
        return b"".join(piece for piece in pieces if piece.__class__ is bytes)

    def _negotiate(self, verb: int, option: int, can_answer: bool) -> bytes:
        """The answer to ``IAC verb option`` (b"" for none); records the refusals sent.

        Without ``can_answer`` (the answer budget is spent) a request is left unanswered and
        unrecorded, so its next repetition is answered.
        """
        bit = 1 << option
        if verb == DONT:
            self._refused_do &= ~bit  # the peer changed its mind: a later DO x is a new request
            return b""
        if verb == WONT:
            self._refused_will &= ~bit
            return b""
        if not can_answer:
            return b""
        if verb == DO:
            if option == TIMING_MARK:
                return bytes((IAC, WILL, TIMING_MARK))
            if self._refused_do & bit:
                return b""
            self._refused_do |= bit
            return bytes((IAC, WONT, option))
        # WILL
        if self._refused_will & bit:
            return b""
        self._refused_will |= bit
        return bytes((IAC, DONT, option))


def _flush(text: bytearray, pieces: list[TelnetPiece]) -> None:
    """Move the plain data gathered so far, if any, to the end of ``pieces``."""
    if text:
        pieces.append(bytes(text))
        text.clear()
