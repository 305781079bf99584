"""The Python client library, over the same wire codec as the server (docs/CLIENT.md).

    with Client("127.0.0.1", 36000) as client:
        client.login("carol", "secret")
        reply = client.command("NOOP")

``command`` raises :class:`TransientError` for 4yz replies and
:class:`PermanentError` for 5yz; both carry the :class:`Reply`. A reply that
is not well formed raises :class:`ProtocolError`, a dropped connection
:class:`ConnectionClosed` (a ``ConnectionError``). No connection or greeting
within ``connect_timeout`` raises :class:`ConnectionTimeout`, no reply within
``timeout`` :class:`ReplyTimeout` (both ``TimeoutError``s).
"""

from ..wire import ProtocolError, Reply
from ..wire.shapes import Accepted, Job, Status
from .connection import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_TIMEOUT,
    ClientError,
    Connection,
    ConnectionClosed,
    ConnectionTimeout,
    Delivery,
    PermanentError,
    ReplyError,
    ReplyTimeout,
    Retry,
    TransientError,
    check_line,
    check_reply,
)
from .meters import MeterCommands
from .roulette import (
    BetOutcome,
    Cleared,
    OpenBet,
    OpenBets,
    PlacedBet,
    RouletteCommands,
    Spin,
    TableInfo,
    TableStatus,
)

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "Accepted",
    "BetOutcome",
    "Cleared",
    "Client",
    "ClientError",
    "Connection",
    "ConnectionClosed",
    "ConnectionTimeout",
    "Delivery",
    "Job",
    "OpenBet",
    "OpenBets",
    "PermanentError",
    "PlacedBet",
    "ProtocolError",
    "Reply",
    "ReplyError",
    "ReplyTimeout",
    "Retry",
    "Spin",
    "Status",
    "TableInfo",
    "TableStatus",
    "TransientError",
    "check_line",
    "check_reply",
]


class Client(RouletteCommands, MeterCommands, Connection):
    """A connection with every service's commands as typed methods."""
