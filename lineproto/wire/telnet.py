"""Strip telnet option negotiation (RFC 854/855) from an input byte stream.

Telnet clients send IAC sequences (WILL/DO/..., subnegotiations) before and
between lines. They are control data, never command text, so they are removed
here and never echoed. UTF-8 never contains the byte 0xFF, so stripping IAC
cannot damage valid text.
"""

from .limits import MAX_SUBNEGOTIATION_BYTES

IAC = 255
DONT, DO, WONT, WILL = 254, 253, 252, 251
SB, SE = 250, 240

_DATA, _IAC, _OPTION, _SB, _SB_IAC = range(5)


class TelnetFilter:
    """Incremental IAC stripper: ``feed(bytes) -> bytes`` of plain data.

    ``IAC IAC`` is an escaped 0xFF data byte; ``IAC WILL/WONT/DO/DONT x`` and
    two-byte commands are dropped; ``IAC SB ... IAC SE`` is dropped, but a
    subnegotiation longer than ``max_subnegotiation`` bytes is abandoned and the
    bytes after that point are read as data again.
    """

    __slots__ = ("max_subnegotiation", "_state", "_sb_length")  # one per connection: keep it small

    def __init__(self, max_subnegotiation: int = MAX_SUBNEGOTIATION_BYTES):
        self.max_subnegotiation = max_subnegotiation
        self._state = _DATA
        self._sb_length = 0

    def feed(self, data: bytes) -> bytes:
        if self._state == _DATA and IAC not in data:
            return data  # the common case: no telnet at all
        out = bytearray()
        state = self._state
        for byte in data:
            if state == _DATA:
                if byte == IAC:
                    state = _IAC
                else:
                    out.append(byte)
            elif state == _IAC:
                if byte == IAC:
                    out.append(IAC)
                    state = _DATA
                elif byte in (WILL, WONT, DO, DONT):
                    state = _OPTION
                elif byte == SB:
                    state = _SB
                    self._sb_length = 0
                else:
                    state = _DATA  # a two-byte command (NOP, GA, AYT, ...)
            elif state == _OPTION:
                state = _DATA
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
        self._state = state
        return bytes(out)
