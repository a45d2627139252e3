"""toa: inserting and reading LVS FULLNAT's TCP option address, checked with scapy."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrHopByHop
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Packet

from pylvs.wire import csum
from pylvs.wire.nat import set_dst, set_src
from pylvs.wire.packet import l4_csum_ok, parse
from pylvs.wire.toa import (
    TCPOPT_TOA,
    TCPOPT_TOA_V6,
    add_toa,
    adjust_mss,
    parse_toa,
    tcp_options,
    toa_option,
)
from tests.wire.helpers import (
    assert_csums,
    complete_partial,
    eth,
    frame,
    ip4,
    make_partial,
    parsed,
    payloads,
    ports,
)

CIP = IPv4Address("192.0.2.10").packed
SYN_OPTS = [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1, 0)), ("NOP", None), ("WScale", 7)]


def syn4(options: list[tuple[str, object]] | None = None) -> Packet:
    opts = SYN_OPTS if options is None else options
    return (
        eth()
        / IP(src="10.1.0.1", dst="10.1.0.5")
        / TCP(sport=5000, dport=8080, flags="S", options=opts)
    )


def test_option_layout() -> None:
    assert toa_option(CIP, 40000) == bytes([254, 8]) + (40000).to_bytes(2, "big") + CIP
    v6 = IPv6Address("2001:db8::10").packed
    assert toa_option(v6, 1) == bytes([253, 20, 0, 1]) + v6
    with pytest.raises(ValueError):
        toa_option(b"\x01\x02", 1)


@pytest.mark.parametrize("spare", [0, 100])
def test_add_toa_syn(spare: int) -> None:
    raw = bytes(syn4() / b"data after the header")
    buf = bytearray(raw + b"\xaa" * spare)
    p = parsed(buf, end=len(raw))
    assert add_toa(p, CIP, 40000, mtu=1500)
    assert p.end == len(raw) + 8
    assert len(buf) == len(raw) + (8 if spare == 0 else spare)  # grown only without room
    out = bytes(buf[: p.end])
    e = Ether(out)
    assert e[IP].len == len(raw) - 14 + 8
    assert e[TCP].dataofs == (20 + 20 + 8) // 4
    assert e[TCP].options[0] == (TCPOPT_TOA, (40000).to_bytes(2, "big") + CIP)
    assert e[TCP].options[1:] == Ether(raw)[TCP].options
    assert bytes(e[TCP].payload) == b"data after the header"
    assert_csums(out, IP, TCP)
    q = parsed(bytearray(out))
    assert l4_csum_ok(q)
    assert parse_toa(tcp_options(q)) == (CIP, 40000)


def test_add_toa_ipv6_packet_both_kinds() -> None:
    base = eth() / IPv6(src="fd00::1", dst="fd00::5") / IPv6ExtHdrHopByHop()
    raw = bytes(base / TCP(sport=1, dport=80, flags="A") / b"GET / HTTP/1.0\r\n\r\n")
    buf = bytearray(raw)
    p = parsed(buf)
    assert add_toa(p, CIP, 1234, mtu=1500)
    e = Ether(bytes(buf))
    assert e[IPv6].plen == len(raw) - 14 - 40 + 8
    assert_csums(buf, TCP)
    cip6 = IPv6Address("2001:db8::10").packed
    assert add_toa(parsed(buf), cip6, 4321, mtu=1500)
    e = Ether(bytes(buf))
    assert e[TCP].options[0] == (TCPOPT_TOA_V6, (4321).to_bytes(2, "big") + cip6)
    assert e[TCP].options[1] == (TCPOPT_TOA, (1234).to_bytes(2, "big") + CIP)
    assert_csums(buf, TCP)
    assert parse_toa(tcp_options(parsed(buf))) == (cip6, 4321)


def test_add_toa_vlan_and_padding() -> None:
    raw = bytes(eth() / Dot1Q(vlan=3) / IP(src="1.1.1.1", dst="2.2.2.2") / TCP(flags="A"))
    buf = bytearray(raw + bytes(60 - len(raw)))  # Ethernet padding after the IP packet
    p = parsed(buf)
    assert p.end == len(raw)
    assert add_toa(p, CIP, 80, mtu=1500)
    assert_csums(buf[: p.end], IP, TCP)


@pytest.mark.parametrize(
    ("opts_len", "ok"), [(0, True), (28, True), (32, True), (36, False), (40, False)]
)
def test_header_limit(opts_len: int, ok: bool) -> None:
    raw = bytes(syn4(options=[("NOP", None)] * opts_len))
    buf = bytearray(raw)
    assert add_toa(parsed(buf), CIP, 1, mtu=1500) is ok
    if not ok:
        assert bytes(buf) == raw
    else:
        assert Ether(bytes(buf))[TCP].dataofs * 4 == 20 + opts_len + 8


def test_mtu_limit() -> None:
    raw = bytes(syn4() / (b"x" * 100))
    ip_len = len(raw) - 14
    buf = bytearray(raw)
    assert not add_toa(parsed(buf), CIP, 1, mtu=ip_len + 7)
    assert bytes(buf) == raw
    assert add_toa(parsed(buf), CIP, 1, mtu=ip_len + 8)


def test_not_tcp_or_fragment() -> None:
    udp = frame(eth() / IP() / UDP() / b"x")
    assert not add_toa(parsed(udp), CIP, 1, mtu=1500)
    frag = frame(eth() / IP(flags="MF") / TCP())
    assert not add_toa(parsed(frag), CIP, 1, mtu=1500)


@pytest.mark.parametrize("v6", [False, True])
def test_partial_checksum(v6: bool) -> None:
    l3 = IPv6(src="fd00::1", dst="fd00::5") if v6 else IP(src="10.1.0.1", dst="10.1.0.5")
    buf = frame(eth() / l3 / TCP(sport=1, dport=2, flags="PA") / b"partial payload")
    p = parsed(buf)
    make_partial(p)
    assert add_toa(p, CIP, 777, mtu=1500)
    # The field holds the pseudo-header sum for the new length: completing it
    # over the segment (as the NIC would) gives scapy's checksum.
    q = parsed(buf, partial=True)
    pseudo = (csum.pseudo6 if v6 else csum.pseudo4)(q.saddr, q.daddr, 6, q.end - q.l4)
    assert csum.get(buf, q.l4 + 16) == csum.fold(pseudo)
    complete_partial(buf, p.l4, 16, p.end)
    assert_csums(buf, TCP)


def test_fullnat_sequence() -> None:
    """DNAT + SNAT + TOA on the client's SYN, as tcp_fnat_in_handler does."""
    buf = frame(
        eth()
        / IP(src="192.0.2.10", dst="198.51.100.1")
        / TCP(sport=40000, dport=80, flags="S", options=SYN_OPTS)
    )
    p = parsed(buf)
    assert add_toa(p, p.saddr, p.sport, mtu=1500)
    set_dst(p, IPv4Address("10.1.0.5").packed, 8080)
    set_src(p, IPv4Address("10.1.0.1").packed, 5000)
    assert_csums(buf, IP, TCP)
    q = parsed(buf)
    assert parse_toa(tcp_options(q)) == (CIP, 40000)
    assert (q.sport, q.dport) == (5000, 8080)


def test_parse_toa_walk() -> None:
    toa = toa_option(CIP, 9)
    assert parse_toa(b"\x01\x01" + toa) == (CIP, 9)
    assert parse_toa(b"\x02\x04\x05\xb4" + toa) == (CIP, 9)
    assert parse_toa(b"\x00" + toa) is None  # after EOL
    assert parse_toa(b"\x02\x01" + toa) is None  # silly length stops the walk
    assert parse_toa(toa[:7]) is None
    assert parse_toa(b"") is None
    assert parse_toa(b"\x08") is None
    assert parse_toa(bytes([254, 20, 0, 5]) + bytes(16)) == (bytes(16), 5)  # DPVS IPv6


@pytest.mark.parametrize("nops", [0, 1, 2, 3])
def test_adjust_mss(nops: int) -> None:
    opts = [("NOP", None)] * nops + [("MSS", 1460), ("WScale", 7)]
    buf = frame(eth() / IP() / TCP(flags="SA", options=opts) / b"abc")
    p = parsed(buf)
    assert adjust_mss(p)
    e = Ether(bytes(buf))
    assert ("MSS", 1452) in e[TCP].options
    assert_csums(buf, IP, TCP)
    none = frame(eth() / IP() / TCP(flags="SA", options=[("WScale", 7)]))
    assert not adjust_mss(parsed(none))


@settings(max_examples=60, deadline=None)
@given(
    src=ip4,
    dst=ip4,
    sport=ports,
    cport=ports,
    nops=st.integers(0, 32),
    payload=payloads,
    partial=st.booleans(),
    spare=st.integers(0, 12),
)
def test_toa_property(
    src: str,
    dst: str,
    sport: int,
    cport: int,
    nops: int,
    payload: bytes,
    partial: bool,
    spare: int,
) -> None:
    raw = bytes(
        eth()
        / IP(src=src, dst=dst)
        / TCP(sport=sport, dport=80, options=[("NOP", None)] * nops)
        / payload
    )
    buf = bytearray(raw + b"\x55" * spare)
    p = parsed(buf, end=len(raw))
    if partial:
        make_partial(p)
    cip = IPv4Address(dst).packed
    ok = add_toa(p, cip, cport, mtu=1500)
    doff = 20 + ((nops + 3) // 4) * 4
    assert ok is (doff + 8 <= 60)
    if not ok:
        return
    out = buf[: p.end]
    if partial:
        complete_partial(out, p.l4, 16, len(out))
    e = Ether(bytes(out))
    assert bytes(e[TCP].payload) == payload
    assert_csums(out, IP, TCP)
    r = parse(out, 0, len(out), False)
    assert not isinstance(r, str)
    assert parse_toa(tcp_options(r)) == (cip, cport)
