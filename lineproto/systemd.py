"""systemd: listening sockets by socket activation, and the notify protocol, with the standard library.

Socket activation (``sd_listen_fds``): systemd (or ``systemd-socket-activate``)
binds the sockets of ``lineproto.socket`` and starts the daemon with them open
from descriptor 3 on, ``LISTEN_FDS`` saying how many, ``LISTEN_PID`` for whom
(a child that inherited the environment must not take them) and
``LISTEN_FDNAMES`` their names: the one named :data:`TLS_NAME` is the
implicit-TLS listener, every other one a plain listener. The variables are
removed once read, so no child of the daemon sees them.

Notify (``sd_notify``): one datagram per message to the ``AF_UNIX`` socket
named by ``NOTIFY_SOCKET`` (a leading ``@`` is Linux's abstract namespace),
holding ``NAME=value`` lines: ``READY=1`` once serving, ``STATUS=`` for
``systemctl status``, ``WATCHDOG=1`` every half ``WATCHDOG_USEC`` while the
server is healthy (systemd restarts a daemon whose pings stop), and
``STOPPING=1`` when shutdown begins.

The parsing and formatting are plain functions with no sockets
(:func:`parse_listen_fds`, :func:`notify_address`, :func:`format_message`,
:func:`watchdog_interval`); :func:`take_listen_sockets`, :class:`Notifier` and
:class:`Watchdog` do the I/O; :class:`Deployment` is what the daemon's serve
path calls.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass

from .errors import StartError

log = logging.getLogger("lineproto.systemd")

#: The first descriptor systemd passes (``SD_LISTEN_FDS_START``).
LISTEN_FDS_START = 3
#: ``FileDescriptorName=`` of the implicit-TLS listener in a socket unit; other names are plain listeners.
TLS_NAME = "lineproto-tls"
#: The variables of socket activation, removed once read.
LISTEN_VARIABLES = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")
#: Seconds between STATUS= updates when no watchdog sets a shorter beat.
STATUS_INTERVAL = 10.0
#: Seconds the server has to show it still serves (``Server.responsive``) before a watchdog ping.
HEALTH_TIMEOUT = 1.0


@dataclass(frozen=True)
class ListenFds:
    """The descriptors systemd passed, split by name into plain and TLS listeners."""

    plain: tuple[int, ...]
    tls: tuple[int, ...]


def parse_listen_fds(environ: Mapping[str, str], pid: int) -> ListenFds | None:
    """The descriptors passed to process ``pid`` by ``LISTEN_*``; None when none were passed to it.

    Variables meant for another process (``LISTEN_PID`` not ``pid``) are ignored,
    as ``sd_listen_fds`` does; malformed ones are a StartError.
    """
    if "LISTEN_FDS" not in environ or "LISTEN_PID" not in environ:
        return None
    try:
        if int(environ["LISTEN_PID"]) != pid:
            return None
        count = int(environ["LISTEN_FDS"])
    except ValueError:
        raise StartError(
            f"LISTEN_PID={environ['LISTEN_PID']!r} LISTEN_FDS={environ['LISTEN_FDS']!r}: not numbers"
        ) from None
    if count < 1:
        return None
    fds = range(LISTEN_FDS_START, LISTEN_FDS_START + count)
    names = environ.get("LISTEN_FDNAMES")
    labels = names.split(":") if names else ["unknown"] * count
    if len(labels) != count:
        raise StartError(f"LISTEN_FDNAMES={names!r} names {len(labels)} sockets, LISTEN_FDS says {count}")
    return ListenFds(
        plain=tuple(fd for fd, name in zip(fds, labels, strict=True) if name != TLS_NAME),
        tls=tuple(fd for fd, name in zip(fds, labels, strict=True) if name == TLS_NAME),
    )


def _listening_tcp_socket(fd: int) -> socket.socket:
    """The socket object for a passed descriptor, which must be a listening TCP socket."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise StartError(f"systemd passed descriptor {fd}, which is not a socket: {exc.strerror or exc}") from None
    if (
        sock.family not in (socket.AF_INET, socket.AF_INET6)
        or sock.type != socket.SOCK_STREAM
        or not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    ):
        sock.detach()
        raise StartError(f"systemd passed descriptor {fd}, which is not a listening TCP socket (ListenStream=)")
    sock.set_inheritable(False)
    return sock


def take_listen_sockets(
    environ: MutableMapping[str, str] | None = None, pid: int | None = None
) -> tuple[tuple[socket.socket, ...], tuple[socket.socket, ...]] | None:
    """The plain and TLS listening sockets systemd passed us, or None; the ``LISTEN_*`` variables are removed."""
    environ = os.environ if environ is None else environ
    fds = parse_listen_fds(environ, os.getpid() if pid is None else pid)
    for name in LISTEN_VARIABLES:
        environ.pop(name, None)
    if fds is None:
        return None
    if not fds.plain:
        raise StartError(f"systemd passed only TLS sockets ({TLS_NAME}): a plain listener is needed too")
    return tuple(map(_listening_tcp_socket, fds.plain)), tuple(map(_listening_tcp_socket, fds.tls))


# ---------------------------------------------------------------------------- notify


def notify_address(value: str) -> str | bytes:
    """The ``AF_UNIX`` address ``NOTIFY_SOCKET`` names: a path, or ``@name`` in the abstract namespace."""
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    if not value.startswith("/"):
        raise StartError(f"NOTIFY_SOCKET={value!r}: neither an absolute path nor @abstract")
    return value


def format_message(**fields: object) -> bytes:
    """One notify datagram: ``NAME=value`` lines (a value's line breaks become spaces)."""
    return "\n".join(f"{name}={' '.join(str(value).splitlines())}" for name, value in fields.items()).encode()


def watchdog_interval(environ: Mapping[str, str], pid: int) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings (half of ``WATCHDOG_USEC``), or None when no watchdog is set for us."""
    usec = environ.get("WATCHDOG_USEC")
    if not usec:
        return None
    owner = environ.get("WATCHDOG_PID")
    try:
        if owner and int(owner) != pid:
            return None
        interval = int(usec) / 2_000_000
    except ValueError:
        raise StartError(f"WATCHDOG_USEC={usec!r} WATCHDOG_PID={owner!r}: not numbers") from None
    return interval if interval > 0 else None


class Notifier:
    """Sends notify messages to ``NOTIFY_SOCKET``; does nothing when it is not set (not run by systemd)."""

    def __init__(self, environ: MutableMapping[str, str] | None = None):
        environ = os.environ if environ is None else environ
        value = environ.pop("NOTIFY_SOCKET", None)  # a child of ours is not the service
        self.address = notify_address(value) if value else None
        self._sock: socket.socket | None = None
        if self.address is not None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._failed = False

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def send(self, **fields: object) -> None:
        """One datagram; a failure is logged once (the service goes on: only systemd's view of it suffers)."""
        if self._sock is None or self.address is None:
            return
        try:
            self._sock.sendto(format_message(**fields), self.address)
        except OSError as exc:
            if not self._failed:
                log.warning("systemd notify to %r failed: %s", self.address, exc.strerror or exc)
            self._failed = True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class Watchdog:
    """A thread that pings ``WATCHDOG=1`` while the server is healthy and keeps ``STATUS=`` current."""

    def __init__(
        self,
        notifier: Notifier,
        interval: float | None,
        healthy: Callable[[], bool],
        status: Callable[[], str],
        shown: str = "",
    ):
        self.notifier = notifier
        self.shown = shown  # the STATUS= systemd has now (READY=1 carried one)
        self.interval = interval
        self.healthy = healthy
        self.status = status
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="systemd-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        beat = min(self.interval, STATUS_INTERVAL) if self.interval is not None else STATUS_INTERVAL
        shown = self.shown
        while not self._stop.wait(beat):
            if not self.healthy():
                continue  # no ping: systemd's WatchdogSec= restarts a server that stays unhealthy
            fields: dict[str, object] = {}
            if self.interval is not None:
                fields["WATCHDOG"] = 1
            status = self.status()
            if status != shown:
                fields["STATUS"] = shown = status
            if fields:
                self.notifier.send(**fields)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


# ---------------------------------------------------------------------------- the daemon's side


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The deployment options: ``--inetd`` and ``--advertise`` (socket activation needs none)."""
    from . import discovery, inetd

    group = parser.add_argument_group("deployment (docs/DEPLOYING.md)")
    inetd.add_arguments(group)
    discovery.add_arguments(group)


def server_status(server) -> str:
    """The ``STATUS=`` line: where the server listens and how many connections it holds."""
    host, port = server.address
    count = server.state.open_connections
    return f"serving on {host}:{port}; {count} connection{'' if count == 1 else 's'}"


class Deployment:
    """What the daemon's serve path asks of systemd, inetd and discovery, in three calls.

    ``listeners()`` gives ServerSettings its pre-bound or inetd socket (if any);
    ``started(server, running)`` once serving: READY=1, the watchdog, the mDNS
    advertisement; ``stopping()`` when shutdown begins: STOPPING=1, and the
    advertisement withdrawn.
    """

    def __init__(self, args: argparse.Namespace, environ: MutableMapping[str, str] | None = None):
        from . import discovery, inetd

        environ = os.environ if environ is None else environ
        self.args = args
        if getattr(args, "inetd", False) and getattr(args, "advertise", None):
            raise StartError("--advertise does not go with --inetd: inetd owns the port, and may advertise it")
        self.inetd_socket = inetd.take_socket() if getattr(args, "inetd", False) else None
        self.activated = take_listen_sockets(environ) if self.inetd_socket is None else None
        self.watchdog_interval = watchdog_interval(environ, os.getpid())
        self.notifier = Notifier(environ)
        self.advertiser = discovery.Advertiser.for_args(args)
        self.watchdog: Watchdog | None = None

    def listeners(self) -> dict:
        """Keyword arguments for :class:`~lineproto.engines.ServerSettings`: the sockets we were given."""
        if self.inetd_socket is not None:
            return {"inetd": self.inetd_socket}
        if self.activated is not None:
            plain, tls = self.activated
            log.info("socket activation: %d plain and %d TLS listeners from systemd", len(plain), len(tls))
            return {"sockets": plain, "tls_sockets": tls}
        return {}

    def started(self, server, running) -> None:
        """The server serves: tell systemd, start the watchdog, advertise."""
        status = server_status(server)
        self.notifier.send(READY=1, STATUS=status)
        if self.notifier.enabled:
            self.watchdog = Watchdog(
                self.notifier,
                self.watchdog_interval,
                healthy=lambda: running.alive and server.responsive(HEALTH_TIMEOUT),
                status=lambda: server_status(server),
                shown=status,
            )
            self.watchdog.start()
        if self.advertiser is not None:
            self.advertiser.start(server)

    def stopping(self) -> None:
        """Shutdown begins: STOPPING=1, the pings end, the advertisement goes."""
        if self.watchdog is not None:
            self.watchdog.stop()
        self.notifier.send(STOPPING=1, STATUS="stopping")
        if self.advertiser is not None:
            self.advertiser.stop()
        self.notifier.close()
