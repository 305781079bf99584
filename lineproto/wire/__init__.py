"""Sans-I/O line codec shared by the server and the client.

Nothing here touches a socket: bytes go in, lines, commands and replies come out,
so every rule of the framing is tested without a network.
"""

from .limits import (
    MAX_LINE_BYTES,
    MAX_REPLY_LINE_BYTES,
    MAX_SUBNEGOTIATION_BYTES,
)
from .telnet import TelnetFilter
from .lines import InvalidUtf8, LineReader, LineTooLong
from .command import CommandLine, CommandSyntaxError, parse_command
from .reply import ProtocolError, Reply, ReplyParser, format_reply

__all__ = [
    "MAX_LINE_BYTES",
    "MAX_REPLY_LINE_BYTES",
    "MAX_SUBNEGOTIATION_BYTES",
    "TelnetFilter",
    "LineReader",
    "LineTooLong",
    "InvalidUtf8",
    "CommandLine",
    "CommandSyntaxError",
    "parse_command",
    "Reply",
    "ReplyParser",
    "ProtocolError",
    "format_reply",
]
