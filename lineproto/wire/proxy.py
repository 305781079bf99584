"""The PROXY protocol header (HAProxy's spec, versions 1 and 2), parsed with no I/O.

A proxy in front of the daemon (HAProxy with ``send-proxy`` or ``send-proxy-v2``)
opens each connection with one header that says who the client really is. Feed a
:class:`ProxyParser` the first bytes of a connection: :meth:`ProxyParser.feed`
returns :data:`NEED_MORE` until the header is whole, then a :class:`ProxyHeader`
(and :attr:`ProxyParser.rest` holds the bytes that followed it, the client's own
first bytes); a malformed, oversize or unexpected header raises :class:`ProxyError`
as soon as the bytes in hand prove it wrong, so nothing is ever guessed.

Version 1 is one ASCII line, at most :data:`MAX_V1_BYTES` bytes with its CRLF::

    PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\\r\\n
    PROXY UNKNOWN\\r\\n                               (the proxy cannot say: use the real peer)

Version 2 is binary: the 12-byte :data:`V2_SIGNATURE` (it contains ``QUIT\\n``, which
is why the header must be taken off before any line framing), a version/command
byte (``0x20`` LOCAL, ``0x21`` PROXY), a family/transport byte (``0x11`` TCP over
IPv4, ``0x21`` TCP over IPv6, ...), a 2-byte length (bounded by
:data:`MAX_V2_LENGTH`), the addresses, then TLVs. LOCAL (HAProxy's health checks)
carries no client: the real peer is the one to use (:attr:`ProxyHeader.client` is
None, as for ``UNKNOWN``). TLVs of the types HAProxy sends (ALPN, authority,
CRC32C, which is checked, unique id, SSL with its sub-TLVs, network namespace) are
read into fields; the others are kept as raw :class:`Tlv` and otherwise skipped.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field
from typing import Final

#: The first 12 bytes of every version 2 header.
V2_SIGNATURE: Final = b"\r\n\r\n\x00\r\nQUIT\n"
#: What a version 1 header starts with.
V1_PREFIX: Final = b"PROXY "
#: Longest version 1 header, CRLF included (the spec's bound: ``PROXY UNKNOWN`` and two IPv6 addresses).
MAX_V1_BYTES: Final = 107
#: Fixed part of a version 2 header: signature, version/command, family, length.
V2_FIXED_BYTES: Final = 16
#: Largest version 2 length field accepted (addresses and TLVs): far above what HAProxy sends
#: (216 bytes of UNIX addresses is the largest address block), so a header cannot make a
#: connection hold more than this before its greeting.
MAX_V2_LENGTH: Final = 2048
#: The shortest possible version 1 header, ``PROXY UNKNOWN\r\n``.
MIN_V1_BYTES: Final = 15

#: Longest unique id TLV the spec allows.
MAX_UNIQUE_ID_BYTES: Final = 128
#: Which versions a listener accepts (``--proxy-protocol``, ``off`` aside).
VERSIONS: Final = ("v1", "v2", "any")

# Version 2 TLV types (the spec, section 2.2).
PP2_TYPE_ALPN: Final = 0x01
PP2_TYPE_AUTHORITY: Final = 0x02
PP2_TYPE_CRC32C: Final = 0x03
PP2_TYPE_NOOP: Final = 0x04
PP2_TYPE_UNIQUE_ID: Final = 0x05
PP2_TYPE_SSL: Final = 0x20
PP2_SUBTYPE_SSL_VERSION: Final = 0x21
PP2_SUBTYPE_SSL_CN: Final = 0x22
PP2_SUBTYPE_SSL_CIPHER: Final = 0x23
PP2_SUBTYPE_SSL_SIG_ALG: Final = 0x24
PP2_SUBTYPE_SSL_KEY_ALG: Final = 0x25
PP2_TYPE_NETNS: Final = 0x30
#: Bit of the SSL TLV's client field: the client connected over SSL/TLS.
PP2_CLIENT_SSL: Final = 0x01

#: Version 2 family/transport byte -> (family name, address block bytes).
_V2_FAMILIES: Final = {
    0x00: ("UNSPEC", 0),
    0x11: ("TCP4", 12),
    0x12: ("UDP4", 12),
    0x21: ("TCP6", 36),
    0x22: ("UDP6", 36),
    0x31: ("UNIX", 216),
    0x32: ("UNIX-DGRAM", 216),
}
#: Families whose source is a client address the daemon can use.
_IP_FAMILIES: Final = frozenset({"TCP4", "TCP6"})


class ProxyError(ValueError):
    """The bytes are not a valid PROXY header of an accepted version; the message says why."""


class NeedMore:
    """What :meth:`ProxyParser.feed` returns while the header is not whole yet."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_MORE"


NEED_MORE: Final = NeedMore()


@dataclass(frozen=True)
class Tlv:
    """One version 2 TLV as it came: its type and its value."""

    type: int
    value: bytes


@dataclass(frozen=True)
class SslInfo:
    """The SSL TLV: whether the client used TLS to the proxy, and what the proxy saw of it."""

    client: int  # bit field: PP2_CLIENT_SSL, PP2_CLIENT_CERT_CONN (0x02), PP2_CLIENT_CERT_SESS (0x04)
    verify: int  # 0: the client's certificate (if any) was verified
    version: str | None = None
    common_name: str | None = None
    cipher: str | None = None
    signature_algorithm: str | None = None
    key_algorithm: str | None = None

    @property
    def used_tls(self) -> bool:
        return bool(self.client & PP2_CLIENT_SSL)


@dataclass(frozen=True)
class ProxyHeader:
    """A parsed PROXY header.

    ``command`` is ``PROXY`` or ``LOCAL`` (version 1 has only PROXY); ``family`` is
    ``TCP4``, ``TCP6``, ``UNKNOWN`` (version 1) or a version 2 family name (``UNSPEC``,
    ``UDP4``, ``UNIX``, ...). ``source`` and ``destination`` are ``(address, port)``
    when the family is TCP or UDP over IP, else None.
    """

    version: int
    command: str
    family: str
    source: tuple[str, int] | None = None
    destination: tuple[str, int] | None = None
    tlvs: tuple[Tlv, ...] = ()
    alpn: bytes | None = None
    authority: str | None = None
    unique_id: bytes | None = None
    ssl: SslInfo | None = None
    netns: str | None = None

    @property
    def client(self) -> tuple[str, int] | None:
        """The client's TCP address and port, or None: then the real peer is the one to use."""
        if self.command == "PROXY" and self.family in _IP_FAMILIES:
            return self.source
        return None


@dataclass
class ProxyParser:
    """Collects a connection's first bytes until they make a whole PROXY header.

    ``accept`` is ``v1``, ``v2`` or ``any``. After :meth:`feed` has returned the header,
    :attr:`rest` holds the bytes after it; the parser takes no more input.
    """

    accept: str = "any"
    rest: bytes = b""
    _buffer: bytearray = field(default_factory=bytearray)
    _header: ProxyHeader | None = None

    def __post_init__(self) -> None:
        if self.accept not in VERSIONS:
            raise ValueError(f"accept must be one of {', '.join(VERSIONS)}, not {self.accept!r}")

    @property
    def done(self) -> bool:
        return self._header is not None

    @property
    def wanted(self) -> int:
        """How many bytes may be fed next without any of them coming from after the header.

        A reader that must leave the bytes after the header in the socket (the TLS
        handshake follows) reads at most this many at a time; 0 once the header is whole.
        """
        if self._header is not None:
            return 0
        buffer = self._buffer
        if self.accept == "v2" or (buffer[:1] == V2_SIGNATURE[:1] and self.accept == "any"):
            if len(buffer) < V2_FIXED_BYTES:
                return V2_FIXED_BYTES - len(buffer)
            length: int = struct.unpack_from("!H", buffer, 14)[0]
            return V2_FIXED_BYTES + length - len(buffer)
        if len(buffer) < MIN_V1_BYTES:  # also for "any" with nothing yet: a v2 header is longer
            return MIN_V1_BYTES - len(buffer)
        return 1 if buffer.endswith(b"\r") else 2

    def feed(self, data: bytes) -> NeedMore | ProxyHeader:
        """Add bytes: :data:`NEED_MORE`, or the whole header; ProxyError when they cannot be one."""
        if self._header is not None:
            raise RuntimeError("the header is parsed already: the bytes after it are in rest")
        self._buffer += data
        buffer = self._buffer
        if not buffer:
            return NEED_MORE
        if buffer[0] == V2_SIGNATURE[0]:
            header, end = self._feed_v2(buffer)
        else:
            header, end = self._feed_v1(buffer)
        if header is None:
            return NEED_MORE
        self._header = header
        self.rest = bytes(buffer[end:])
        self._buffer = bytearray()
        return header

    def _feed_v1(self, buffer: bytearray) -> tuple[ProxyHeader | None, int]:
        if self.accept == "v2":
            raise ProxyError("not a PROXY v2 header (wrong signature)")
        head = bytes(buffer[: len(V1_PREFIX)])
        if not V1_PREFIX.startswith(head):
            raise ProxyError("not a PROXY header (wrong signature)")
        end = buffer.find(b"\n", 0, MAX_V1_BYTES)
        if end < 0:
            if len(buffer) >= MAX_V1_BYTES:
                raise ProxyError(f"PROXY v1 header longer than {MAX_V1_BYTES} bytes")
            return None, 0
        if end == 0 or buffer[end - 1] != 0x0D:
            raise ProxyError("PROXY v1 header does not end in CRLF")
        return parse_v1_line(bytes(buffer[: end - 1])), end + 1

    def _feed_v2(self, buffer: bytearray) -> tuple[ProxyHeader | None, int]:
        if self.accept == "v1":
            raise ProxyError("not a PROXY v1 header (wrong signature)")
        if not V2_SIGNATURE.startswith(bytes(buffer[: len(V2_SIGNATURE)])):
            raise ProxyError("not a PROXY v2 header (wrong signature)")
        if len(buffer) < V2_FIXED_BYTES:
            return None, 0
        version_command, _, length = struct.unpack_from("!BBH", buffer, 12)
        if version_command >> 4 != 2:
            raise ProxyError(f"PROXY v2 header of version {version_command >> 4}")
        if length > MAX_V2_LENGTH:
            raise ProxyError(f"PROXY v2 header of {length} bytes, more than {MAX_V2_LENGTH}")
        end = V2_FIXED_BYTES + length
        if len(buffer) < end:
            return None, 0
        return parse_v2(bytes(buffer[:end])), end


def parse_v1_line(line: bytes) -> ProxyHeader:
    """A version 1 header from its line without the CRLF."""
    try:
        text = line.decode("ascii")
    except UnicodeDecodeError:
        raise ProxyError("PROXY v1 header is not ASCII") from None
    words = text.split(" ")
    if words[0] != "PROXY" or len(words) < 2:
        raise ProxyError("not a PROXY v1 header")
    family = words[1]
    if family == "UNKNOWN":  # the rest of the line, whatever it holds, is to be ignored
        return ProxyHeader(1, "PROXY", "UNKNOWN")
    if family not in _IP_FAMILIES:
        raise ProxyError(f"PROXY v1 header of unknown protocol {family[:8]!r}")
    if len(words) != 6:
        raise ProxyError("PROXY v1 header needs: PROXY TCP4|TCP6 source destination source-port destination-port")
    version = 4 if family == "TCP4" else 6
    source = (_v1_address(words[2], version), _v1_port(words[4]))
    destination = (_v1_address(words[3], version), _v1_port(words[5]))
    return ProxyHeader(1, "PROXY", family, source, destination)


def _v1_address(text: str, version: int) -> str:
    try:
        address = ipaddress.IPv4Address(text) if version == 4 else ipaddress.IPv6Address(text)
    except ValueError:
        raise ProxyError(f"PROXY v1 header: {text[:45]!r} is not an IPv{version} address") from None
    if "%" in text:  # a scope id means nothing to this host
        raise ProxyError(f"PROXY v1 header: {text[:45]!r} is not an IPv{version} address")
    return str(address)


def _v1_port(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 5 or (len(text) > 1 and text[0] == "0"):
        raise ProxyError(f"PROXY v1 header: {text[:8]!r} is not a port")
    port = int(text)
    if port > 65535:
        raise ProxyError(f"PROXY v1 header: {port} is not a port")
    return port


def parse_v2(header: bytes) -> ProxyHeader:
    """A version 2 header from all of its bytes (signature, fixed part, addresses, TLVs)."""
    version_command, family_byte, length = struct.unpack_from("!BBH", header, 12)
    if len(header) != V2_FIXED_BYTES + length:
        raise ProxyError("PROXY v2 header of the wrong length")
    command = {0: "LOCAL", 1: "PROXY"}.get(version_command & 0x0F)
    if command is None:
        raise ProxyError(f"PROXY v2 header of unknown command {version_command & 0x0F}")
    if family_byte not in _V2_FAMILIES:
        raise ProxyError(f"PROXY v2 header of unknown family 0x{family_byte:02x}")
    family, address_bytes = _V2_FAMILIES[family_byte]
    payload = header[V2_FIXED_BYTES:]
    if len(payload) < address_bytes:
        raise ProxyError(f"PROXY v2 header too short for {family} addresses")
    source = destination = None
    if family in ("TCP4", "UDP4"):
        source_ip, destination_ip, source_port, destination_port = struct.unpack_from("!4s4sHH", payload)
        source = (str(ipaddress.IPv4Address(source_ip)), source_port)
        destination = (str(ipaddress.IPv4Address(destination_ip)), destination_port)
    elif family in ("TCP6", "UDP6"):
        source_ip, destination_ip, source_port, destination_port = struct.unpack_from("!16s16sHH", payload)
        source = (str(ipaddress.IPv6Address(source_ip)), source_port)
        destination = (str(ipaddress.IPv6Address(destination_ip)), destination_port)
    at = V2_FIXED_BYTES + address_bytes
    tlvs = _split_tlvs(header[at:], "PROXY v2 TLV")
    alpn = unique_id = None
    authority = netns = None
    ssl = None
    for offset, tlv in tlvs:
        if tlv.type == PP2_TYPE_ALPN:
            alpn = tlv.value
        elif tlv.type == PP2_TYPE_AUTHORITY:
            authority = _text(tlv, "authority")
        elif tlv.type == PP2_TYPE_CRC32C:
            _check_crc32c(tlv, header, at + offset)
        elif tlv.type == PP2_TYPE_UNIQUE_ID:
            if len(tlv.value) > MAX_UNIQUE_ID_BYTES:
                raise ProxyError(f"PROXY v2 unique id longer than {MAX_UNIQUE_ID_BYTES} bytes")
            unique_id = tlv.value
        elif tlv.type == PP2_TYPE_SSL:
            ssl = _read_ssl(tlv.value)
        elif tlv.type == PP2_TYPE_NETNS:
            netns = _text(tlv, "network namespace")
        # PP2_TYPE_NOOP and unknown types: kept in tlvs, nothing to read
    return ProxyHeader(
        2,
        command,
        family,
        source,
        destination,
        tuple(tlv for _, tlv in tlvs),
        alpn=alpn,
        authority=authority,
        unique_id=unique_id,
        ssl=ssl,
        netns=netns,
    )


def _split_tlvs(data: bytes, what: str) -> list[tuple[int, Tlv]]:
    """The TLVs in ``data``, each with the offset of its value in ``data``; ProxyError if one is cut."""
    tlvs = []
    offset = 0
    while offset < len(data):
        if len(data) - offset < 3:
            raise ProxyError(f"{what} cut short")
        kind, size = struct.unpack_from("!BH", data, offset)
        offset += 3
        if len(data) - offset < size:
            raise ProxyError(f"{what} 0x{kind:02x} longer than the header")
        tlvs.append((offset, Tlv(kind, data[offset : offset + size])))
        offset += size
    return tlvs


_SSL_SUBTYPES: Final = {
    PP2_SUBTYPE_SSL_VERSION: "version",
    PP2_SUBTYPE_SSL_CN: "common_name",
    PP2_SUBTYPE_SSL_CIPHER: "cipher",
    PP2_SUBTYPE_SSL_SIG_ALG: "signature_algorithm",
    PP2_SUBTYPE_SSL_KEY_ALG: "key_algorithm",
}


def _read_ssl(value: bytes) -> SslInfo:
    if len(value) < 5:
        raise ProxyError("PROXY v2 SSL TLV cut short")
    client, verify = struct.unpack_from("!BI", value)
    texts = {}
    for _, sub in _split_tlvs(value[5:], "PROXY v2 SSL sub-TLV"):
        name = _SSL_SUBTYPES.get(sub.type)
        if name is not None:
            texts[name] = _text(sub, name.replace("_", " "))
    return SslInfo(client, verify, **texts)


def _text(tlv: Tlv, what: str) -> str:
    try:
        return tlv.value.decode("utf-8")
    except UnicodeDecodeError:
        raise ProxyError(f"PROXY v2 {what} is not UTF-8") from None


def _check_crc32c(tlv: Tlv, header: bytes, at: int) -> None:
    """The checksum (its value at ``at`` in ``header``) covers the whole header with itself zeroed."""
    if len(tlv.value) != 4:
        raise ProxyError("PROXY v2 CRC32C TLV is not 4 bytes")
    zeroed = header[:at] + b"\x00\x00\x00\x00" + header[at + 4 :]
    if crc32c(zeroed) != struct.unpack("!I", tlv.value)[0]:
        raise ProxyError("PROXY v2 header fails its CRC32C check")


def _crc32c_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC32C_TABLE: Final = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), the checksum of the PP2_TYPE_CRC32C TLV."""
    crc = 0xFFFFFFFF
    table = _CRC32C_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF
