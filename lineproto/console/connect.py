"""Where the programs connect (``--host`` or ``--service``, ``--port``, ``--timeout``) and the one way they connect.

:func:`connect` turns every way a connection can fail before its greeting into one
:class:`~.errors.ConsoleError` line: nothing listening, a port that accepts but never
greets, a daemon that is full (421), something that is not a lineproto daemon, no daemon answering
for the name of ``--service`` (looked up by mDNS: :mod:`lineproto.discovery`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from .. import DEFAULT_HOST, DEFAULT_PORT
from ..argtypes import connect_port, positive_seconds
from ..client import Client, ConnectionClosed, ConnectionTimeout, ReplyError, Retry
from ..discovery import DiscoveryError, MissingExtra, check_name, find
from ..wire import ProtocolError
from .errors import USAGE, ConsoleError, reason

#: Seconds for the connection and its greeting, then for each reply (``--timeout``).
DEFAULT_TIMEOUT = 10.0


class Unreachable(ConsoleError):
    """Nothing answers at the address: refused, no route, unknown host."""


def add_address(
    parser: argparse.ArgumentParser, port_type: Callable[[str], int] = connect_port, port_range: str = "1-65535"
) -> None:
    """``--host`` or ``--service``, ``-p/--port`` and ``--timeout`` for a program that talks to a daemon."""
    address = parser.add_mutually_exclusive_group()
    address.add_argument("--host", default=DEFAULT_HOST, help="daemon address (default %(default)s)")
    address.add_argument(
        "--service",
        dest="host",
        type=ServiceName.parse,
        metavar="NAME",
        help="the daemon advertised as NAME (daemon.py --advertise NAME), found by mDNS; "
        "--port is not used (extra 'discovery')",
    )
    parser.add_argument(
        "-p", "--port", type=port_type, default=DEFAULT_PORT, help=f"daemon port, {port_range} (default %(default)s)"
    )
    parser.add_argument(
        "--timeout",
        type=positive_seconds,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="how long to wait for the connection and the daemon's greeting, then for "
        "each reply; exit 1 when it runs out (default %(default)g)",
    )


class ServiceName(str):
    """A ``--service NAME`` in place of ``--host``: :func:`connect` looks up the address when it connects."""

    @classmethod
    def parse(cls, text: str) -> ServiceName:
        return cls(check_name(text))


def look_up(name: str, timeout: float | None) -> tuple[str, int]:
    """The host and port the daemon advertised as ``name`` gave, or a ConsoleError line."""
    try:
        service = find(name, timeout if timeout is not None else DEFAULT_TIMEOUT, feature="--service")
    except MissingExtra as exc:
        raise ConsoleError(str(exc), USAGE) from None
    except DiscoveryError as exc:
        raise Unreachable(str(exc)) from None
    return service.host, service.port


def where(host: str, port: int) -> str:
    """``host:port``, with an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


#: How ``meter``, ``play`` and ``simulate`` resend a change whose reply a dropped link lost:
#: 5 sends, 0.2 s before the first resend, doubling up to 5 s (about 3 s in all).
CONSOLE_RETRY = Retry(attempts=5, backoff=0.2, max_backoff=5.0)

#: ``connect(reply_timeout=...)`` default: each reply gets as long as the connection did.
SAME_AS_CONNECT = -1.0


def connect(
    host: str,
    port: int,
    timeout: float | None,
    hint: str = "",
    reply_timeout: float | None = SAME_AS_CONNECT,
    retry: Retry | None = None,
) -> Client:
    """A client with the daemon's greeting read, or a ConsoleError saying in one line why not.

    ``timeout`` bounds the connection and the greeting; ``reply_timeout`` each reply
    after that (by default the same; None: no bound, for a program whose reader waits
    as long as the daemon takes). ``hint`` follows the message when nothing answers
    (:class:`Unreachable`). A :class:`ServiceName` host is looked up first, within ``timeout``.
    ``retry``: resend a command whose reply a dropped connection
    lost, under the same label (the programs that change state: ``meter``, ``play``, ``simulate``).
    """
    if isinstance(host, ServiceName):
        host, port = look_up(host, timeout)
    address = where(host, port)
    if reply_timeout == SAME_AS_CONNECT:
        reply_timeout = timeout
    try:
        return Client(host, port, timeout=reply_timeout, connect_timeout=timeout, retry=retry)
    except ConnectionTimeout as exc:
        raise ConsoleError(f"{exc} (is a lineproto daemon listening there?)") from None
    except ConnectionClosed:
        raise ConsoleError(f"{address} closed the connection without a greeting") from None
    except OSError as exc:
        raise Unreachable(f"cannot connect to {address}: {exc.strerror or exc}{hint}") from None
    except ReplyError as exc:
        raise ConsoleError(f"{address} turned the connection away: {reason(exc)}") from None
    except ProtocolError as exc:
        raise ConsoleError(f"{address} does not greet like a lineproto daemon: {exc}") from None
