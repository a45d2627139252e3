"""Fuzzing the codecs: whatever the bytes, parse returns a Pkt or a known reason,
and every rewrite of a parsed Pkt completes without raising and leaves a frame
that parses again to the same layout."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    ICMPv6EchoRequest,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
)
from scapy.layers.l2 import Dot1Q
from scapy.layers.sctp import SCTP, SCTPChunkData

from pylvs.wire import csum, vnet
from pylvs.wire.nat import (
    ICMP_INNER_REASONS,
    Inner,
    complete_csum,
    dec_ttl,
    nat_icmp,
    parse_icmp_inner,
    sctp_csum_ok,
    set_dst,
    set_macs,
    set_src,
)
from pylvs.wire.packet import PARSE_REASONS, Pkt, l4_csum_ok, parse
from pylvs.wire.toa import add_toa, adjust_mss, parse_toa, tcp_options
from tests.wire.helpers import eth

REASONS = {
    "short_eth",
    "qinq",
    "short_ip",
    "bad_version",
    "bad_ihl",
    "bad_len",
    "ip_csum",
    "bad_exthdr",
    "arp",
    "ethertype",
    "short_l4",
    "bad_doff",
    "bad_udp_len",
}
INNER_REASONS = {
    "frag",
    "not_icmp",
    "icmp_not_error",
    "inner_short",
    "inner_version",
    "inner_ihl",
    "inner_bad_exthdr",
}

_quoted4 = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1, dport=80))[:28]
_quoted6 = bytes(IPv6(src="fd00::1", dst="fd00::2") / IPv6ExtHdrDestOpt() / UDP(dport=53))
SEEDS = [
    bytes(p)
    for p in (
        eth() / IP() / TCP(options=[("MSS", 1460), ("NOP", None), ("WScale", 7)]) / b"data",
        eth() / Dot1Q(vlan=5) / IP(options=b"\x01" * 4) / UDP() / b"dns?",
        eth() / IP(flags="MF") / UDP() / (b"u" * 30),
        eth() / IP(frag=10) / (b"f" * 30),
        eth() / IP() / ICMP(type=3, code=3) / _quoted4,
        eth() / IP() / ICMP(type=8) / b"echo",
        eth() / IP() / SCTP(sport=1, dport=2) / SCTPChunkData(data=b"s"),
        eth() / IPv6() / IPv6ExtHdrHopByHop() / TCP(flags="S") / b"x",
        eth() / IPv6() / IPv6ExtHdrFragment(m=1) / UDP() / b"frag",
        eth() / IPv6() / ICMPv6DestUnreach() / _quoted6,
        eth() / IPv6() / ICMPv6EchoRequest() / b"ping",
        eth() / IPv6() / SCTP() / SCTPChunkData(data=b"six"),
    )
]

A4, B4 = bytes([10, 9, 8, 7]), bytes([172, 16, 0, 1])
A6, B6 = bytes(range(16)), bytes(range(16, 32))


def fix_ip4(buf: bytearray, l3: int = 14) -> None:
    """Make an IPv4 header checksum right, so fuzzing gets past it."""
    if len(buf) >= l3 + 20 and buf[l3] >> 4 == 4:
        ihl = (buf[l3] & 15) * 4
        if ihl >= 20 and len(buf) >= l3 + ihl:
            csum.put(buf, l3 + 10, 0)
            csum.put(buf, l3 + 10, csum.checksum(buf, l3, l3 + ihl))


def exercise(buf: bytearray, partial: bool, inout: bool) -> None:
    r = parse(buf, 0, len(buf), partial)
    if isinstance(r, str):
        assert r in REASONS, r
        return
    p = r
    l4_csum_ok(p)
    sctp_csum_ok(p)
    parse_toa(tcp_options(p))
    vnet.for_pkt(p)
    a, b = (A4, B4) if p.af == 4 else (A6, B6)
    inner = parse_icmp_inner(p)
    if isinstance(inner, Inner):
        nat_icmp(p, inner, a, 8080, inout)
    else:
        assert inner in INNER_REASONS, inner
    set_dst(p, a, 8080)
    set_src(p, b, 5000)
    set_macs(p, b"\x02" * 6, b"\x04" * 6)
    dec_ttl(p)
    adjust_mss(p)
    add_toa(p, A4, 40000, 1500)
    complete_csum(p)
    vnet.for_pkt(p)
    q = parse(buf, p.start, p.end, p.csum_partial)
    assert isinstance(q, Pkt), q
    assert (q.l3, q.l4, q.proto, q.saddr, q.daddr) == (p.l3, p.l4, p.proto, b, a)
    assert (q.sport, q.dport) == (p.sport, p.dport)


FAST = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(data=st.binary(min_size=14, max_size=200), partial=st.booleans(), inout=st.booleans())
def test_random_bytes(data: bytes, partial: bool, inout: bool) -> None:
    exercise(bytearray(data), partial, inout)


@FAST
@given(
    ethertype=st.sampled_from([b"\x08\x00", b"\x86\xdd", b"\x81\x00\x00\x07\x08\x00"]),
    version=st.sampled_from([0x45, 0x46, 0x4F, 0x60]),
    proto=st.sampled_from([1, 6, 17, 44, 58, 132, 0, 60]),
    body=st.binary(min_size=20, max_size=160),
    partial=st.booleans(),
)
def test_random_ip_bodies(
    ethertype: bytes, version: int, proto: int, body: bytes, partial: bool
) -> None:
    head = bytes(12) + ethertype
    l3 = len(head)
    buf = bytearray(head + bytes([version]) + body)
    if version == 0x60 and len(buf) >= l3 + 40:
        buf[l3 + 6] = proto
        plen = max(0, len(buf) - l3 - 40)
        csum.put(buf, l3 + 4, plen)
    elif len(buf) >= l3 + 20:
        buf[l3 + 9] = proto
        csum.put(buf, l3 + 2, len(buf) - l3)
        buf[l3 + 6] &= 0x20  # no fragment offset: reach the transport header
        buf[l3 + 7] = 0
        fix_ip4(buf, l3)
    exercise(buf, partial, True)


@FAST
@given(
    seed=st.sampled_from(SEEDS),
    cut=st.integers(0, 200),
    flips=st.lists(st.tuples(st.integers(0, 199), st.integers(0, 255)), max_size=4),
    fix=st.booleans(),
    partial=st.booleans(),
    inout=st.booleans(),
)
def test_mutated_frames(
    seed: bytes,
    cut: int,
    flips: list[tuple[int, int]],
    fix: bool,
    partial: bool,
    inout: bool,
) -> None:
    buf = bytearray(seed[: max(cut, 0)] if cut < len(seed) else seed)
    for pos, val in flips:
        if pos < len(buf):
            buf[pos] = val
    if fix:
        fix_ip4(buf, 18 if buf[12:14] == b"\x81\x00" else 14)
    exercise(buf, partial, inout)


@FAST
@given(
    seed=st.sampled_from(SEEDS),
    field=st.sampled_from(["ihl", "totlen", "plen", "doff", "udplen", "inner"]),
    value=st.integers(0, 0xFFFF),
    partial=st.booleans(),
)
def test_length_fields(seed: bytes, field: str, value: int, partial: bool) -> None:
    buf = bytearray(seed)
    l3 = 18 if buf[12:14] == b"\x81\x00" else 14
    v4 = buf[l3] >> 4 == 4
    l4 = l3 + ((buf[l3] & 15) * 4 if v4 else 40)
    if field == "ihl" and v4:
        buf[l3] = 0x40 | (value & 15)
    elif field == "totlen" and v4:
        csum.put(buf, l3 + 2, value)
    elif field == "plen" and not v4:
        csum.put(buf, l3 + 4, value)
    elif field == "doff" and l4 + 13 < len(buf):
        buf[l4 + 12] = value & 0xFF
    elif field == "udplen" and l4 + 6 <= len(buf):
        csum.put(buf, l4 + 4, value)
    elif field == "inner" and l4 + 10 < len(buf):
        buf[l4 + 8] = value & 0xFF  # quoted version/ihl of an ICMP error
        buf[l4 + 9] = value >> 8
    fix_ip4(buf, l3)
    exercise(buf, partial, bool(value & 1))


def test_reason_lists_are_complete() -> None:
    assert set(PARSE_REASONS) == REASONS
    assert set(ICMP_INNER_REASONS) == INNER_REASONS


def test_seeds_parse() -> None:
    for seed in SEEDS:
        assert isinstance(parse(bytearray(seed), 0, len(seed), False), Pkt)
        exercise(bytearray(seed), False, True)
        exercise(bytearray(seed), True, False)
