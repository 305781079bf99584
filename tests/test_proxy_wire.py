"""The PROXY header parser (lineproto.wire.proxy): unit and property tests, no sockets.

Headers are built here byte by byte from HAProxy's spec, so the parser is checked against the
spec's layout, not against itself.
"""

import ipaddress
import itertools
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lineproto.wire.proxy import (
    MAX_V1_BYTES,
    MAX_V2_LENGTH,
    NEED_MORE,
    PP2_CLIENT_SSL,
    PP2_SUBTYPE_SSL_CIPHER,
    PP2_SUBTYPE_SSL_CN,
    PP2_SUBTYPE_SSL_VERSION,
    PP2_TYPE_ALPN,
    PP2_TYPE_AUTHORITY,
    PP2_TYPE_CRC32C,
    PP2_TYPE_NETNS,
    PP2_TYPE_NOOP,
    PP2_TYPE_SSL,
    PP2_TYPE_UNIQUE_ID,
    V2_SIGNATURE,
    ProxyError,
    ProxyHeader,
    ProxyParser,
    Tlv,
    crc32c,
)


def tlv(kind: int, value: bytes) -> bytes:
    return struct.pack("!BH", kind, len(value)) + value


def v2(command: int = 1, family: int = 0x11, addresses: bytes | None = None, tlvs: bytes = b"") -> bytes:
    """A version 2 header: signature, 0x2<command>, family, length, addresses, TLVs."""
    if addresses is None:
        addresses = v4_addresses("192.0.2.7", "198.51.100.1", 56324, 36000) if family == 0x11 else b""
    payload = addresses + tlvs
    return V2_SIGNATURE + struct.pack("!BBH", 0x20 | command, family, len(payload)) + payload


def v4_addresses(source: str, destination: str, sport: int, dport: int) -> bytes:
    packed = ipaddress.IPv4Address(source).packed + ipaddress.IPv4Address(destination).packed
    return packed + struct.pack("!HH", sport, dport)


def v6_addresses(source: str, destination: str, sport: int, dport: int) -> bytes:
    packed = ipaddress.IPv6Address(source).packed + ipaddress.IPv6Address(destination).packed
    return packed + struct.pack("!HH", sport, dport)


def with_crc32c(header: bytes) -> bytes:
    """``header`` (its last TLV a zeroed CRC32C) with the right checksum filled in."""
    return header[:-4] + struct.pack("!I", crc32c(header))


def parse(data: bytes, accept: str = "any") -> tuple[ProxyHeader, bytes]:
    parser = ProxyParser(accept)
    header = parser.feed(data)
    assert isinstance(header, ProxyHeader), header
    return header, parser.rest


def refused(data: bytes, accept: str = "any") -> str:
    with pytest.raises(ProxyError) as caught:
        result = ProxyParser(accept).feed(data)
        pytest.fail(f"accepted: {result}")
    return str(caught.value)


V1_TCP4 = b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 36000\r\n"
V1_TCP6 = b"PROXY TCP6 2001:db8::7 2001:db8::1 56324 36000\r\n"
V1_LONGEST = b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n".replace(
    b"f...f", b"ffff:ffff:ffff:ffff:ffff:ffff"
)
VALID = [
    V1_TCP4,
    V1_TCP6,
    b"PROXY UNKNOWN\r\n",
    V1_LONGEST,
    v2(),
    v2(command=0, family=0x00),
    v2(family=0x21, addresses=v6_addresses("2001:db8::7", "::1", 1, 2)),
    with_crc32c(v2(tlvs=tlv(PP2_TYPE_UNIQUE_ID, b"abc") + tlv(PP2_TYPE_CRC32C, b"\0\0\0\0"))),
]


# ---------------------------------------------------------------- version 1


def test_v1_tcp4_gives_both_addresses_and_keeps_what_follows() -> None:
    header, rest = parse(V1_TCP4 + b"USER guest\r\n")
    assert header == ProxyHeader(1, "PROXY", "TCP4", ("192.0.2.7", 56324), ("198.51.100.1", 36000))
    assert header.client == ("192.0.2.7", 56324)
    assert rest == b"USER guest\r\n"


def test_v1_tcp6() -> None:
    header, _ = parse(V1_TCP6)
    assert header.family == "TCP6"
    assert header.client == ("2001:db8::7", 56324)
    assert header.destination == ("2001:db8::1", 36000)


@pytest.mark.parametrize("line", [b"PROXY UNKNOWN\r\n", b"PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\n", V1_LONGEST])
def test_v1_unknown_has_no_client_and_ignores_the_rest_of_its_line(line) -> None:
    header, rest = parse(line + b"NOOP\r\n")
    assert (header.family, header.client, rest) == ("UNKNOWN", None, b"NOOP\r\n")


def test_the_longest_v1_header_is_107_bytes_and_accepted() -> None:
    assert len(V1_LONGEST) == MAX_V1_BYTES
    assert parse(V1_LONGEST)[0].family == "UNKNOWN"


def test_v1_longer_than_107_bytes_is_refused_without_waiting_for_its_end() -> None:
    line = b"PROXY UNKNOWN " + b"x" * (MAX_V1_BYTES - 14)
    assert len(line) == MAX_V1_BYTES
    assert "longer than 107" in refused(line)


@pytest.mark.parametrize(
    "line, why",
    [
        (b"PROXY TCP4 192.0.2.256 198.51.100.1 1 2\r\n", "not an IPv4 address"),
        (b"PROXY TCP4 2001:db8::1 198.51.100.1 1 2\r\n", "not an IPv4 address"),
        (b"PROXY TCP6 192.0.2.1 2001:db8::1 1 2\r\n", "not an IPv6 address"),
        (b"PROXY TCP6 fe80::1%eth0 2001:db8::1 1 2\r\n", "not an IPv6 address"),
        (b"PROXY TCP4 192.0.2.01 198.51.100.1 1 2\r\n", "not an IPv4 address"),
        (b"PROXY TCP4 192.0.2.1 198.51.100.1 65536 2\r\n", "not a port"),
        (b"PROXY TCP4 192.0.2.1 198.51.100.1 01 2\r\n", "not a port"),
        (b"PROXY TCP4 192.0.2.1 198.51.100.1 -1 2\r\n", "not a port"),
        (b"PROXY TCP4 192.0.2.1 198.51.100.1 1\r\n", "needs"),
        (b"PROXY TCP4 192.0.2.1  198.51.100.1 1 2\r\n", "needs"),
        (b"PROXY TCP4 192.0.2.1 198.51.100.1 1 2 3\r\n", "needs"),
        (b"PROXY UDP4 192.0.2.1 198.51.100.1 1 2\r\n", "unknown protocol"),
        (b"PROXY \r\n", "unknown protocol"),
        (b"PROXY TCP4 192.0.2.1 198.51.100.1 1 2\n", "CRLF"),
        (b"PROXY TCP4 192.0.2.\xc3\xa9 198.51.100.1 1 2\r\n", "not ASCII"),
    ],
)
def test_bad_v1_headers_are_refused_with_the_reason(line, why) -> None:
    assert why in refused(line)


# ---------------------------------------------------------------- version 2


def test_v2_proxy_tcp4() -> None:
    header, rest = parse(v2() + b"\xff\xfb\x01USER guest\r\n")
    assert header == ProxyHeader(2, "PROXY", "TCP4", ("192.0.2.7", 56324), ("198.51.100.1", 36000))
    assert header.client == ("192.0.2.7", 56324)
    assert rest == b"\xff\xfb\x01USER guest\r\n"


def test_v2_proxy_tcp6() -> None:
    header, _ = parse(v2(family=0x21, addresses=v6_addresses("2001:db8::7", "2001:db8::1", 443, 36000)))
    assert header.family == "TCP6"
    assert header.client == ("2001:db8::7", 443)


def test_v2_local_carries_no_client_whatever_its_addresses() -> None:
    header, rest = parse(v2(command=0, family=0x00) + b"NOOP\r\n")
    assert (header.command, header.family, header.client, rest) == ("LOCAL", "UNSPEC", None, b"NOOP\r\n")
    header, _ = parse(v2(command=0, family=0x11))
    assert header.command == "LOCAL"
    assert header.source == ("192.0.2.7", 56324)
    assert header.client is None


def test_v2_unix_and_udp_carry_no_tcp_client() -> None:
    assert parse(v2(family=0x31, addresses=b"\0" * 216))[0].client is None
    udp, _ = parse(v2(family=0x12, addresses=v4_addresses("192.0.2.7", "198.51.100.1", 1, 2)))
    assert (udp.family, udp.source, udp.client) == ("UDP4", ("192.0.2.7", 1), None)


def test_v2_length_above_the_bound_is_refused_from_the_fixed_part_alone() -> None:
    fixed = V2_SIGNATURE + struct.pack("!BBH", 0x21, 0x11, MAX_V2_LENGTH + 1)
    assert f"more than {MAX_V2_LENGTH}" in refused(fixed)
    header, _ = parse(v2(tlvs=tlv(PP2_TYPE_NOOP, b"\0" * (MAX_V2_LENGTH - 12 - 3))))
    assert header.client == ("192.0.2.7", 56324)


@pytest.mark.parametrize(
    "data, why",
    [
        (V2_SIGNATURE[:6] + b"X", "wrong signature"),
        (V2_SIGNATURE[:-1] + b"\r", "wrong signature"),
        (V2_SIGNATURE + struct.pack("!BBH", 0x11, 0x11, 12), "version 1"),
        (V2_SIGNATURE + struct.pack("!BBH", 0x31, 0x11, 12), "version 3"),
        (v2(command=2), "unknown command 2"),
        (v2(family=0x13, addresses=b"\0" * 12), "unknown family 0x13"),
        (v2(family=0x41, addresses=b"\0" * 12), "unknown family 0x41"),
        (v2(family=0x11, addresses=b"\0" * 11), "too short for TCP4"),
        (v2(family=0x21, addresses=b"\0" * 35), "too short for TCP6"),
        (v2(family=0x31, addresses=b"\0" * 215), "too short for UNIX"),
        (v2(tlvs=b"\x04\x00"), "cut short"),
        (v2(tlvs=tlv(PP2_TYPE_NOOP, b"12")[:-1]), "longer than the header"),
        (v2(tlvs=tlv(PP2_TYPE_AUTHORITY, b"\xff")), "authority is not UTF-8"),
        (v2(tlvs=tlv(PP2_TYPE_UNIQUE_ID, b"u" * 129)), "longer than 128"),
        (v2(tlvs=tlv(PP2_TYPE_SSL, b"\x01\0\0\0")), "SSL TLV cut short"),
        (v2(tlvs=tlv(PP2_TYPE_SSL, b"\x01\0\0\0\0" + b"\x21\x00\x05ab")), "SSL sub-TLV 0x21 longer"),
        (v2(tlvs=tlv(PP2_TYPE_CRC32C, b"\0\0\0")), "not 4 bytes"),
    ],
)
def test_bad_v2_headers_are_refused_with_the_reason(data, why) -> None:
    assert why in refused(data)


def test_the_tlvs_haproxy_sends_are_read() -> None:
    ssl = (
        bytes([PP2_CLIENT_SSL])
        + struct.pack("!I", 0)
        + tlv(PP2_SUBTYPE_SSL_VERSION, b"TLSv1.3")
        + tlv(PP2_SUBTYPE_SSL_CN, b"client.example")
        + tlv(PP2_SUBTYPE_SSL_CIPHER, b"TLS_AES_256_GCM_SHA384")
        + tlv(0x2F, b"an unknown sub-TLV")
    )
    tlvs = (
        tlv(PP2_TYPE_ALPN, b"h2")
        + tlv(PP2_TYPE_AUTHORITY, b"tables.example")
        + tlv(PP2_TYPE_UNIQUE_ID, b"7F000001:D5B4_7F000001:8CA0_1")
        + tlv(PP2_TYPE_SSL, ssl)
        + tlv(PP2_TYPE_NETNS, b"blue")
        + tlv(PP2_TYPE_NOOP, b"\0\0\0")
    )
    header, rest = parse(v2(tlvs=tlvs) + b"NOOP\r\n")
    assert rest == b"NOOP\r\n"
    assert header.alpn == b"h2"
    assert header.authority == "tables.example"
    assert header.unique_id == b"7F000001:D5B4_7F000001:8CA0_1"
    assert header.netns == "blue"
    assert header.ssl is not None and header.ssl.used_tls and header.ssl.verify == 0
    assert (header.ssl.version, header.ssl.common_name, header.ssl.cipher) == (
        "TLSv1.3",
        "client.example",
        "TLS_AES_256_GCM_SHA384",
    )
    assert [each.type for each in header.tlvs] == [0x01, 0x02, 0x05, 0x20, 0x30, 0x04]
    assert header.client == ("192.0.2.7", 56324)


def test_unknown_tlvs_are_kept_raw_and_otherwise_skipped() -> None:
    header, _ = parse(v2(tlvs=tlv(0xE0, b"custom") + tlv(0xEE, b"")))
    assert header.tlvs == (Tlv(0xE0, b"custom"), Tlv(0xEE, b""))
    assert header.client == ("192.0.2.7", 56324)


def test_crc32c_is_castagnoli() -> None:
    assert crc32c(b"123456789") == 0xE3069283  # the standard check value
    assert crc32c(b"") == 0


def test_a_right_crc32c_is_accepted_and_a_wrong_one_refused() -> None:
    good = with_crc32c(v2(tlvs=tlv(PP2_TYPE_ALPN, b"h2") + tlv(PP2_TYPE_CRC32C, b"\0\0\0\0")))
    assert parse(good)[0].alpn == b"h2"
    bad = good[:-1] + bytes([good[-1] ^ 1])
    assert "CRC32C" in refused(bad)
    tampered = good[:16] + b"\x7f" + good[17:]  # the source address changed after the checksum
    assert "CRC32C" in refused(tampered)


# ---------------------------------------------------------------- either version, the accepted versions


@pytest.mark.parametrize(
    "data",
    [b"USER guest\r\n", b"GET / HTTP/1.1\r\n", b"\x16\x03\x01", b"proxy TCP4", b"PROXYTCP4", b"\xff\xfd\x18", b"\n"],
)
def test_anything_else_is_refused_at_its_first_wrong_byte(data) -> None:
    assert "wrong signature" in refused(data)


def test_a_v1_header_on_a_v2_listener_and_the_reverse_are_refused() -> None:
    assert "not a PROXY v2 header" in refused(b"P", accept="v2")
    assert "not a PROXY v1 header" in refused(b"\r", accept="v1")
    assert parse(V1_TCP4, accept="v1")[0].version == 1
    assert parse(v2(), accept="v2")[0].version == 2


def test_the_parser_takes_nothing_after_the_header() -> None:
    parser = ProxyParser()
    assert isinstance(parser.feed(V1_TCP4), ProxyHeader)
    assert parser.done and parser.wanted == 0
    with pytest.raises(RuntimeError):
        parser.feed(b"more")


def test_an_unknown_accept_value_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        ProxyParser("v3")


# ---------------------------------------------------------------- properties


@pytest.mark.parametrize("header", VALID)
def test_truncated_at_every_byte_it_needs_more_and_then_completes(header) -> None:
    for cut in range(len(header)):
        parser = ProxyParser()
        assert parser.feed(header[:cut]) is NEED_MORE, cut
        assert isinstance(parser.feed(header[cut:] + b"AFTER"), ProxyHeader)
        assert parser.rest == b"AFTER"


@given(
    index=st.integers(0, len(VALID) - 1),
    after=st.binary(max_size=40),
    cuts=st.lists(st.integers(0, 200), max_size=8),
)
def test_any_chunking_gives_the_same_header_and_the_same_rest(index, after, cuts) -> None:
    data = VALID[index] + after
    whole, rest = parse(data)
    assert rest == after
    parser = ProxyParser()
    edges = sorted({0, len(data), *(cut for cut in cuts if cut < len(data))})
    chunks = [data[a:b] for a, b in itertools.pairwise(edges)]
    while not parser.done:
        result = parser.feed(chunks.pop(0))
        assert result is NEED_MORE or parser.done
    assert result == whole
    assert parser.rest + b"".join(chunks) == after


@given(index=st.integers(0, len(VALID) - 1), after=st.binary(min_size=1, max_size=40))
def test_reading_what_wanted_says_never_reads_past_the_header(index, after) -> None:
    stream = VALID[index] + after
    parser = ProxyParser()
    taken = 0
    result = NEED_MORE
    while result is NEED_MORE:
        want = parser.wanted
        assert want > 0
        result = parser.feed(stream[taken : taken + want])
        taken += want
    assert taken == len(VALID[index]) and parser.rest == b""


@given(st.binary(max_size=300), st.sampled_from(["v1", "v2", "any"]))
def test_arbitrary_bytes_need_more_or_give_a_header_or_a_proxy_error_only(data, accept) -> None:
    try:
        result = ProxyParser(accept).feed(data)
    except ProxyError:
        return
    assert result is NEED_MORE or isinstance(result, ProxyHeader)


@given(
    st.ip_addresses(v=4),
    st.ip_addresses(v=4),
    st.integers(0, 65535),
    st.integers(0, 65535),
    st.booleans(),
)
def test_any_ipv4_addresses_and_ports_come_back_in_both_versions(source, destination, sport, dport, binary) -> None:
    if binary:
        data = v2(addresses=v4_addresses(str(source), str(destination), sport, dport))
    else:
        data = f"PROXY TCP4 {source} {destination} {sport} {dport}\r\n".encode()
    header, _ = parse(data)
    assert header.source == (str(source), sport) and header.destination == (str(destination), dport)


@given(st.ip_addresses(v=6), st.ip_addresses(v=6), st.integers(0, 65535), st.booleans())
def test_any_ipv6_addresses_come_back_in_both_versions(source, destination, port, binary) -> None:
    if binary:
        data = v2(family=0x21, addresses=v6_addresses(str(source), str(destination), port, port))
    else:
        data = f"PROXY TCP6 {source} {destination} {port} {port}\r\n".encode()
    header, _ = parse(data)
    assert header.client == (str(source), port) and header.destination == (str(destination), port)
