"""Sans-I/O line codec shared by the server and the client.

Nothing here touches a socket: bytes go in, lines, commands and replies come out,
so every rule of the framing is tested without a network.
"""

from .command import CommandLine, CommandSyntaxError, parse_command
from .limits import (
    MAX_LINE_BYTES,
    MAX_REPLY_LINE_BYTES,
    MAX_SUBNEGOTIATION_BYTES,
)
from .lines import InvalidUtf8, LineReader, LineTooLong
from .reply import ProtocolError, Reply, ReplyParser, format_reply
from .telnet import TelnetFilter

__all__ = [
    "MAX_LINE_BYTES",
    "MAX_REPLY_LINE_BYTES",
    "MAX_SUBNEGOTIATION_BYTES",
    "CommandLine",
    "CommandSyntaxError",
    "InvalidUtf8",
    "LineReader",
    "LineTooLong",
    "ProtocolError",
    "Reply",
    "ReplyParser",
    "TelnetFilter",
    "format_reply",
    "parse_command",
]
