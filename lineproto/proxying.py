"""The PROXY protocol's settings: which listener expects a header, and which proxies are believed.

Behind HAProxy (``send-proxy`` or ``send-proxy-v2``) every connection comes from the proxy; the
header it sends first says who the client is (:mod:`lineproto.wire.proxy` parses it, the
Connection's PROXY stage applies it). A header is believed only from the addresses of
``--proxy-from`` (loopback by default): anyone else could claim any address. The daemon's
options are added here by :func:`add_arguments`, so they are written once.
"""

from __future__ import annotations

import argparse
import ipaddress
from typing import Final, TypeAlias

from .wire.proxy import VERSIONS

Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

#: ``--proxy-protocol`` values: ``off``, or which header versions the listener accepts.
MODES: Final = ("off", *VERSIONS)


class Networks(tuple[Network, ...]):
    """The value of ``--proxy-from``: networks that print back as the option's text (``config`` shows it)."""

    def __str__(self) -> str:
        return ",".join(str(network) for network in self)


#: Whose PROXY headers are believed when ``--proxy-from`` is not given: this machine only.
DEFAULT_PROXY_FROM: Final = Networks((ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")))
#: Seconds a connection may take to send its whole PROXY header before it is closed.
PROXY_HEADER_TIMEOUT: Final = 5.0


def proxy_networks(text: str) -> Networks:
    """``--proxy-from``: comma-separated addresses or CIDR networks (``10.0.0.0/8,::1``)."""
    networks = []
    for part in text.split(","):
        part = part.strip()
        try:
            networks.append(ipaddress.ip_network(part))
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an address or CIDR network: {part!r}") from None
    return Networks(networks)


def is_trusted(address: str, networks: tuple[Network, ...]) -> bool:
    """True if ``address`` (a peer's host, IPv4-mapped IPv6 included) is in one of ``networks``."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:  # not an IP address at all (a UNIX socket, a test's made-up peer)
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in networks)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The daemon's PROXY protocol options (``args.proxy_protocol``, ``tls_proxy_protocol``, ``proxy_from``)."""
    group = parser.add_argument_group("PROXY protocol, behind HAProxy (docs/DEPLOYING.md)")
    group.add_argument(
        "--proxy-protocol",
        choices=MODES,
        default="off",
        help="the plain port's connections start with a PROXY header of this version (v1: send-proxy, "
        "v2: send-proxy-v2, any: either); it is then required (default %(default)s)",
    )
    group.add_argument(
        "--tls-proxy-protocol",
        choices=MODES,
        default="off",
        help="the same for the TLS port (--tls-port): the header comes before the TLS handshake",
    )
    group.add_argument(
        "--proxy-from",
        type=proxy_networks,
        default=DEFAULT_PROXY_FROM,
        metavar="CIDR,...",
        help="the proxies whose headers are believed; others are closed (default 127.0.0.0/8,::1)",
    )
