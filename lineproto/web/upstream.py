"""A small asyncio client of the line protocol: one connection to the daemon, over the sans-I/O reply parser.

The gateway opens one :class:`Upstream` per browser session (and per WebSocket it bridges
byte for byte, :mod:`.ws`). Commands may be sent by several requests at once: each line is
written in the order :meth:`Upstream.command` is called and its reply is matched by that
order (the protocol answers every non-empty line once, in order), so requests pipeline
without ever taking one another's replies. Events (6yz lines of a shared table) never
become replies: each goes to every queue :meth:`Upstream.subscribe` handed out.

The connection may start with a PROXY v2 header (``--daemon-proxy``) naming the browser's
address, so the daemon applies its per-address limits and login throttling to the browser,
not to the gateway; over TLS the header comes before the handshake, as the daemon expects.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
import struct
import time
from collections import deque
from dataclasses import dataclass

from ..wire import ProtocolError, Reply, ReplyParser
from ..wire.limits import MAX_LINE_BYTES
from ..wire.proxy import V2_SIGNATURE
from ..wire.reply import Event

#: Events one subscriber may have waiting; a subscriber that falls further behind is cut off
#: (its queue gets None), so a browser that stops reading cannot make the gateway hold more and more.
MAX_QUEUED_EVENTS = 256
#: Bytes a reply line may have (what the client library accepts): a longer one is a protocol error.
_READ_CHUNK = 65536
#: A line the daemon would refuse (CR, LF, NUL inside) is never sent.
_FORBIDDEN = ("\r", "\n", "\0")


class UpstreamClosed(ConnectionError):
    """The daemon closed the connection (or it failed) before the reply came."""


class UpstreamTimeout(TimeoutError):
    """No connection, greeting or reply within the time allowed."""


@dataclass(frozen=True)
class DaemonAddress:
    """Where the daemon listens and how to reach it: ``--daemon HOST:PORT``, ``--daemon-tls``,
    ``--daemon-cafile``, ``--daemon-proxy``."""

    host: str
    port: int
    tls: ssl.SSLContext | None = None
    proxy: bool = False
    connect_timeout: float = 10.0
    reply_timeout: float = 30.0

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def proxy_v2_header(source: tuple[str, int] | None, destination: tuple[str, int] | None) -> bytes:
    """A PROXY protocol v2 header: ``PROXY`` TCP4/TCP6 from ``source`` to ``destination``, or ``LOCAL``
    (the gateway's own connection: the daemon keeps the gateway's address) when either is unknown
    or they are not of one IP version."""
    local = V2_SIGNATURE + struct.pack("!BBH", 0x20, 0x00, 0)
    if source is None or destination is None:
        return local
    try:
        src, dst = ipaddress.ip_address(source[0]), ipaddress.ip_address(destination[0])
    except ValueError:
        return local
    if isinstance(src, ipaddress.IPv6Address) and src.ipv4_mapped is not None:
        src = src.ipv4_mapped
    if isinstance(dst, ipaddress.IPv6Address) and dst.ipv4_mapped is not None:
        dst = dst.ipv4_mapped
    if src.version != dst.version:
        return local
    family = 0x11 if src.version == 4 else 0x21
    body = src.packed + dst.packed + struct.pack("!HH", source[1], destination[1])
    return V2_SIGNATURE + struct.pack("!BBH", 0x21, family, len(body)) + body


def check_line(line: str) -> bytes:
    """The line as it goes on the wire, or ValueError: CR, LF or NUL inside, or over the daemon's limit."""
    if any(char in line for char in _FORBIDDEN):
        raise ValueError("a command line cannot hold CR, LF or NUL")
    data = line.encode("utf-8")
    if len(data) > MAX_LINE_BYTES:
        raise ValueError(f"a command line is at most {MAX_LINE_BYTES} bytes")
    return data + b"\r\n"


async def open_stream(
    address: DaemonAddress, client: tuple[str, int] | None, server: tuple[str, int] | None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TCP (or TLS) stream to the daemon, its PROXY v2 header sent first when the daemon expects one."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(address.host, address.port), address.connect_timeout
        )
    except TimeoutError:
        raise UpstreamTimeout(f"{address} did not accept a connection within {address.connect_timeout:g} s") from None
    try:
        if address.proxy:
            writer.write(proxy_v2_header(client, server))
            await writer.drain()
        if address.tls is not None:
            await asyncio.wait_for(writer.start_tls(address.tls, server_hostname=address.host), address.connect_timeout)
    except BaseException:
        writer.close()
        raise
    return reader, writer


class Upstream:
    """One logged-in (or not yet) line-protocol connection: :meth:`command` and :meth:`subscribe`."""

    def __init__(self, address: DaemonAddress, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.address = address
        self.greeting: Reply | None = None
        #: ``time.monotonic()`` of the last command sent: a keep-alive NOOPs a quiet connection.
        self.last_sent = time.monotonic()
        self._reader, self._writer = reader, writer
        self._parser = ReplyParser(on_event=self._event)
        self._waiting: deque[asyncio.Future[Reply]] = deque()
        self._subscribers: set[asyncio.Queue[Event | None]] = set()
        self._closed: BaseException | None = None
        self._task = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def open(
        cls,
        address: DaemonAddress,
        client: tuple[str, int] | None = None,
        server: tuple[str, int] | None = None,
    ) -> Upstream:
        """Connect and read the greeting (a ``421`` greeting is returned as it is: the caller says why)."""
        reader, writer = await open_stream(address, client, server)
        upstream = cls(address, reader, writer)
        waiter = asyncio.get_running_loop().create_future()
        upstream._waiting.append(waiter)
        try:
            upstream.greeting = await asyncio.wait_for(waiter, address.connect_timeout)
        except TimeoutError:
            await upstream.close()
            raise UpstreamTimeout(f"{address} sent no greeting within {address.connect_timeout:g} s") from None
        except BaseException:
            await upstream.close()
            raise
        return upstream

    @property
    def closed(self) -> bool:
        return self._closed is not None

    async def command(self, line: str) -> Reply:
        """Send one line, return its reply (any code: the caller maps it). UpstreamClosed, UpstreamTimeout."""
        data = check_line(line)
        if self._closed is not None:
            raise UpstreamClosed(f"the connection to {self.address} is closed")
        waiter: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)  # appended and written without an await between: replies keep the order
        self._writer.write(data)
        self.last_sent = time.monotonic()
        try:
            await self._writer.drain()
            return await asyncio.wait_for(asyncio.shield(waiter), self.address.reply_timeout)
        except TimeoutError:
            # A late reply would be taken for the next command's: the connection cannot be used again.
            waiter.cancel()
            self._end(UpstreamTimeout(f"no reply from {self.address} within {self.address.reply_timeout:g} s"))
            self._writer.close()
            raise UpstreamTimeout(f"no reply from {self.address} within {self.address.reply_timeout:g} s") from None
        except (ConnectionError, OSError) as exc:
            self._end(exc)
            raise UpstreamClosed(f"the connection to {self.address} failed: {exc}") from exc

    def subscribe(self) -> asyncio.Queue[Event | None]:
        """A queue that gets every event from now on, and None when the connection ends (or it fell behind)."""
        queue: asyncio.Queue[Event | None] = asyncio.Queue(MAX_QUEUED_EVENTS + 1)
        if self._closed is not None:
            queue.put_nowait(None)
        else:
            self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Event | None]) -> None:
        self._subscribers.discard(queue)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    async def close(self, polite: bool = True) -> None:
        """QUIT (when ``polite`` and still open), then close the socket and stop reading."""
        if polite and self._closed is None:
            try:
                await asyncio.wait_for(self.command("QUIT"), 2.0)
            except (UpstreamClosed, UpstreamTimeout, ValueError, OSError):
                pass
        self._end(UpstreamClosed("closed by the gateway"))
        self._writer.close()
        self._task.cancel()
        try:
            await self._task
        except (asyncio.CancelledError, Exception):
            pass

    # -- reading ---------------------------------------------------------------

    async def _read(self) -> None:
        try:
            while True:
                data = await self._reader.read(_READ_CHUNK)
                if not data:
                    raise UpstreamClosed(f"{self.address} closed the connection")
                for reply in self._parser.feed(data):
                    self._reply(reply)
        except asyncio.CancelledError:
            raise
        except (ConnectionError, OSError, ProtocolError) as exc:
            self._end(exc)

    def _reply(self, reply: Reply) -> None:
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(reply)
                return
        # A reply nobody asked for: the daemon's parting 421 (idle, shutdown). The reader goes on to the close.

    def _event(self, event: Event) -> None:
        for queue in list(self._subscribers):
            if queue.qsize() >= MAX_QUEUED_EVENTS:
                self._subscribers.discard(queue)
                queue.put_nowait(None)
            else:
                queue.put_nowait(event)

    def _end(self, reason: BaseException) -> None:
        if self._closed is None:
            self._closed = reason
        closed = UpstreamClosed(f"the connection to {self.address} ended: {reason}")
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_exception(closed)
        for queue in self._subscribers:
            queue.put_nowait(None)
        self._subscribers.clear()
