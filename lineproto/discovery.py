"""Discovery: the daemon advertises itself by DNS-SD over mDNS; clients find it by name.

``daemon.py --advertise NAME`` registers ``NAME._lineproto._tcp.local.`` with
the address and port the daemon listens on and TXT records ``version``,
``tls`` (``yes`` when AUTH TLS is offered) and ``tls-port`` (the implicit-TLS
listener, when there is one). :func:`find` looks a name up and returns where
to connect; ``client.py PROGRAM --service NAME`` uses it.

mDNS runs on the interfaces of the address the daemon listens on: loopback
for the default 127.0.0.1 (so it works on a machine with no network at all:
Linux delivers multicast sent on ``lo`` back to the sockets joined there), that
interface's address for a specific one, every interface for 0.0.0.0.

Both sides need the optional ``zeroconf`` package: ``pip install 'lineproto[discovery]'``.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from . import __version__
from .errors import StartError
from .extras import require

log = logging.getLogger("lineproto.discovery")

#: The DNS-SD service type the daemon registers.
SERVICE_TYPE = "_lineproto._tcp.local."
#: Seconds :func:`find` waits for an answer by default.
DEFAULT_FIND_TIMEOUT = 3.0
#: The extra that brings zeroconf.
EXTRA = "discovery"


class DiscoveryError(Exception):
    """A lookup failed: no daemon answered for the name (the message says which)."""


class MissingExtra(StartError, DiscoveryError):
    """zeroconf is not installed: the one line names the extra that brings it."""


def require_zeroconf(feature: str) -> ModuleType:
    """The zeroconf module, or MissingExtra (``lineproto.extras.require``'s line) naming the extra to install."""
    try:
        return require("zeroconf", EXTRA, feature)
    except StartError as exc:
        raise MissingExtra(str(exc)) from None


def check_name(name: str) -> str:
    """An instance name as DNS-SD allows it: 1-63 bytes, no dot (argparse type)."""
    if not name or len(name.encode()) > 63 or "." in name or any(ord(c) < 32 for c in name):
        raise argparse.ArgumentTypeError(f"invalid service name {name!r}: 1-63 bytes, no dots or control characters")
    return name


def add_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument(
        "--advertise",
        metavar="NAME",
        type=check_name,
        help=f"advertise the daemon as NAME.{SERVICE_TYPE} by mDNS/DNS-SD (extra '{EXTRA}'); "
        "clients find it with --service NAME",
    )


def service_name(name: str) -> str:
    """The full DNS-SD name of instance ``name``."""
    return f"{name}.{SERVICE_TYPE}"


def interfaces_for(host: str) -> list[str] | None:
    """The interface addresses mDNS runs on for a daemon listening on ``host``; None: every interface."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None  # a host name: it may be on any interface
    if address.is_unspecified:
        return None
    return [str(address)]


def txt_records(tls_offered: bool, tls_port: int | None) -> dict[str, str]:
    """The TXT records: the version, whether TLS is offered, and the implicit-TLS port."""
    records = {"version": __version__, "tls": "yes" if tls_offered else "no"}
    if tls_port is not None:
        records["tls-port"] = str(tls_port)
    return records


@dataclass(frozen=True)
class Service:
    """A daemon found by :func:`find`: where to connect, and what its TXT records say."""

    name: str
    host: str
    port: int
    version: str | None = None
    tls: bool = False
    tls_port: int | None = None


def _zeroconf_instance(zeroconf: ModuleType, interfaces: list[str] | None):
    choice = zeroconf.InterfaceChoice.All if interfaces is None else interfaces
    return zeroconf.Zeroconf(interfaces=choice, ip_version=zeroconf.IPVersion.V4Only)


def find(
    name: str, timeout: float = DEFAULT_FIND_TIMEOUT, interfaces: list[str] | None = None, feature: str = "find"
) -> Service:
    """Where the daemon advertised as ``name`` listens; DiscoveryError if none answers within ``timeout``.

    ``interfaces``: the addresses of the interfaces to ask on (default every one, loopback included);
    ``feature``: what asked, for the line that names the missing extra.
    """
    zeroconf = require_zeroconf(feature)
    instance = _zeroconf_instance(zeroconf, interfaces)
    try:
        info = instance.get_service_info(SERVICE_TYPE, service_name(name), timeout=int(timeout * 1000))
    finally:
        instance.close()
    if info is None or info.port is None:
        raise DiscoveryError(f"no daemon advertised as {name!r} ({SERVICE_TYPE}) answered within {timeout:g} s")
    addresses = info.parsed_addresses()
    if not addresses:
        raise DiscoveryError(f"the daemon advertised as {name!r} gave no address")
    txt = {key.decode(): (value or b"").decode() for key, value in info.properties.items()}
    tls_port = txt.get("tls-port")
    return Service(
        name=name,
        host=addresses[0],
        port=info.port,
        version=txt.get("version"),
        tls=txt.get("tls") == "yes",
        tls_port=int(tls_port) if tls_port and tls_port.isdigit() else None,
    )


class Advertiser:
    """The daemon's advertisement: registered once serving, withdrawn (goodbye packets) at shutdown."""

    def __init__(self, name: str):
        self.name = name
        self.zeroconf = require_zeroconf("--advertise")  # at start-up, before serving: a missing extra stops the daemon
        self._instance: Any = None  # a zeroconf.Zeroconf while advertising
        self._info: Any = None

    @classmethod
    def for_args(cls, args: argparse.Namespace) -> Advertiser | None:
        name = getattr(args, "advertise", None)
        return cls(name) if name else None

    def start(self, server) -> None:
        zeroconf = self.zeroconf
        host, port = server.address
        interfaces = interfaces_for(host)
        self._instance = _zeroconf_instance(zeroconf, interfaces)
        tls_port = server.tls_address[1] if server.tls_address is not None else None
        self._info = zeroconf.ServiceInfo(
            SERVICE_TYPE,
            service_name(self.name),
            port=port,
            properties=txt_records(server.state.tls.available, tls_port),
            parsed_addresses=interfaces or self._all_addresses(),
            server=f"{self.name}.local.",
        )
        try:
            self._instance.register_service(self._info)
        except zeroconf.NonUniqueNameException:
            self.stop()
            raise StartError(f"--advertise {self.name}: another daemon on the network has that name") from None
        log.info("advertised as %s on %s:%d", service_name(self.name), host, port)

    def _all_addresses(self) -> list[str]:
        """Every IPv4 address of the machine, for a daemon listening on all of them."""
        import ifaddr  # zeroconf's own dependency

        return [ip.ip for adapter in ifaddr.get_adapters() for ip in adapter.ips if isinstance(ip.ip, str)]

    def stop(self) -> None:
        if self._instance is None:
            return
        try:
            if self._info is not None:
                self._instance.unregister_service(self._info)
        finally:
            self._instance.close()
            self._instance = None
