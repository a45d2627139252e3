"""ipip: IPVS TUN-mode encapsulation checked against scapy, both directions."""

from __future__ import annotations

import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.packet import Packet, Raw

from pylvs.wire import ipip
from pylvs.wire.ip import IPPROTO_IPIP, IPPROTO_IPV6, decrement_ttl
from tests.wire.helpers import scapy_chksum

DIR4 = socket.inet_aton("192.0.2.1")
RS4 = socket.inet_aton("198.51.100.7")
DIR6 = socket.inet_pton(socket.AF_INET6, "2001:db8::1")
RS6 = socket.inet_pton(socket.AF_INET6, "2001:db8::7")


def inner4(**kw: object) -> bytes:
    ip = {"src": "203.0.113.9", "dst": "192.0.2.100", "ttl": 63, "tos": 0, "flags": "DF"}
    ip.update(kw)
    return bytes(IP(**ip) / TCP(sport=40000, dport=80, flags="S") / Raw(b"hello"))


def inner6(**kw: object) -> bytes:
    ip = {"src": "2001:db8:1::9", "dst": "2001:db8::100", "hlim": 57, "tc": 0}
    ip.update(kw)
    return bytes(IPv6(**ip) / UDP(sport=5353, dport=53) / Raw(b"q" * 12))


def test_ipv4_in_ipv4_fields() -> None:
    inner = inner4(tos=0xB8 | 1, ttl=63, flags="DF")  # DSCP EF, ECT(1)
    out = ipip.encap(inner, DIR4, RS4, ident=1234)
    p = IP(out)
    assert p.version == 4 and p.ihl == 5
    assert p.proto == IPPROTO_IPIP
    assert p.tos == 0xB9  # DS field copied with its ECN bits
    assert p.len == len(out) == 20 + len(inner)
    assert p.ttl == 63
    assert p.flags == "DF" and p.frag == 0
    assert p.id == 0  # DF: ip_select_ident uses 0
    assert socket.inet_aton(p.src) == DIR4 and socket.inet_aton(p.dst) == RS4
    assert p.chksum == scapy_chksum(p, IP)
    assert bytes(p.payload) == inner
    assert p[TCP].dport == 80 and p.getlayer(IP, 2).dst == "192.0.2.100"


def test_no_df_uses_ident_and_override() -> None:
    inner = inner4(flags=0)
    p = IP(ipip.encap(inner, DIR4, RS4, ident=0xBEEF))
    assert p.flags == 0 and p.id == 0xBEEF
    # pmtu_disc=0: DF never copied; explicit TTL
    p = IP(ipip.encap(inner4(flags="DF"), DIR4, RS4, df=False, ttl=7, ident=9))
    assert p.flags == 0 and p.id == 9 and p.ttl == 7
    assert p.chksum == scapy_chksum(p, IP)


@pytest.mark.parametrize(("ecn", "outer"), [(0, 0), (1, 1), (2, 2), (3, 2)])
def test_ecn_encapsulation(ecn: int, outer: int) -> None:
    p = IP(ipip.encap(inner4(tos=0x28 | ecn), DIR4, RS4))
    assert p.tos == 0x28 | outer  # CE becomes ECT(0) (INET_ECN_encapsulate)


def test_ipv6_in_ipv4() -> None:
    inner = inner6(tc=0x2B, hlim=12)
    out = ipip.encap(inner, DIR4, RS4, ident=77)
    p = IP(out)
    assert p.proto == IPPROTO_IPV6
    assert p.flags == 0 and p.id == 77  # DF is never set for an IPv6 inner packet
    assert p.ttl == 12 and p.tos == 0x2A
    assert p.chksum == scapy_chksum(p, IP)
    assert isinstance(p.payload, IPv6) and bytes(p.payload) == inner


@pytest.mark.parametrize("make", [inner4, inner6])
def test_ipv6_outer(make: object) -> None:
    assert callable(make)
    inner = make()
    out = ipip.encap(inner, DIR6, RS6)
    p = IPv6(out)
    assert p.nh == (IPPROTO_IPIP if inner[0] >> 4 == 4 else IPPROTO_IPV6)
    assert p.plen == len(inner) and p.fl == 0
    assert p.hlim == (63 if inner[0] >> 4 == 4 else 57)
    assert bytes(p.payload) == inner


def test_encap_into_writes_in_front() -> None:
    inner = inner4(flags=0)
    buf = bytearray(b"\xee" * 14 + bytes(20) + inner + b"\xaa" * 30)
    n = ipip.encap_into(buf, 14, len(inner), DIR4, RS4, ident=5)
    assert n == 20 + len(inner)
    assert bytes(buf[14 : 14 + n]) == ipip.encap(inner, DIR4, RS4, ident=5)
    assert buf[:14] == b"\xee" * 14 and buf[14 + n :] == b"\xaa" * 30
    buf6 = bytearray(40) + inner6()
    assert ipip.encap_into(memoryview(buf6), 0, len(buf6) - 40, DIR6, RS6) == len(buf6)
    assert bytes(buf6) == ipip.encap(inner6(), DIR6, RS6)


def test_encap_rejects_non_ip() -> None:
    with pytest.raises(ValueError):
        ipip.encap(b"\x00" * 40, DIR4, RS4)
    with pytest.raises(ValueError):
        ipip.encap(inner4(), DIR4, RS6)
    with pytest.raises(ValueError):
        ipip.encap(bytes(IP(len=65535 - 10) / Raw(b"x" * (65535 - 30))), DIR4, RS4)


@pytest.mark.parametrize(
    "pkt",
    [
        IP(src="192.0.2.1", dst="198.51.100.7") / IP(dst="192.0.2.100") / TCP(),
        IP(src="192.0.2.1", dst="198.51.100.7", options=b"\x01" * 4) / IP() / UDP(),
        IP(src="192.0.2.1", dst="198.51.100.7") / IPv6() / UDP(),
        IPv6(src="2001:db8::1", dst="2001:db8::7") / IP() / TCP(),
        IPv6(src="2001:db8::1", dst="2001:db8::7") / IPv6() / TCP(),
    ],
)
def test_decap_scapy_built(pkt: Packet) -> None:
    raw = bytes(pkt) + b"\x00" * 6  # Ethernet padding after the packet is ignored
    d = ipip.decap(raw)
    assert isinstance(d, ipip.Decap), d
    outer = pkt.getlayer(0)
    hlen = len(raw) - 6 - len(bytes(outer.payload))
    assert d.offset == hlen
    assert raw[d.offset : len(raw) - 6] == bytes(outer.payload)
    fam = socket.AF_INET if isinstance(outer, IP) else socket.AF_INET6
    assert d.outer_src == socket.inet_pton(fam, outer.src)
    assert d.outer_dst == socket.inet_pton(fam, outer.dst)


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"", "empty"),
        (bytes(IP(proto=6) / TCP()), "not a tunnel"),
        (bytes(IP(proto=4) / IPv6()), "does not match"),
        (bytes(IP(proto=41) / IP()), "does not match"),
        (bytes(IP(proto=4, flags="MF") / IP()), "fragment"),
        (bytes(IP(proto=4, frag=10) / IP()), "fragment"),
        (bytes(IP(proto=4) / IP())[:30], "truncated"),
        (bytes(IP(proto=4, len=20)), "truncated"),
        (bytes(IP(proto=4, chksum=1) / IP()), "checksum"),
        (bytes(IP(ihl=4, proto=4) / IP()), "header length"),
        (bytes(IPv6(nh=4) / IP())[:50], "truncated"),
        (b"\x50" + bytes(39), "not IP"),
    ],
)
def test_decap_reasons(raw: bytes, why: str) -> None:
    r = ipip.decap(raw)
    assert isinstance(r, str) and why in r, r


def test_decap_partial_accepts_quoted_copy() -> None:
    out = ipip.encap(inner4() + b"z" * 600, DIR4, RS4)
    assert isinstance(ipip.decap(out[:100]), str)
    d = ipip.decap(out[:100], partial=True)
    assert isinstance(d, ipip.Decap) and d.offset == 20


def test_decrement_ttl() -> None:
    buf = bytearray(inner4(ttl=64))
    assert decrement_ttl(buf)
    p = IP(bytes(buf))
    assert p.ttl == 63 and p.chksum == scapy_chksum(p, IP)
    for ttl in (1, 0):
        buf = bytearray(inner4(ttl=ttl))
        before = bytes(buf)
        assert not decrement_ttl(buf) and bytes(buf) == before
    buf6 = bytearray(b"\0\0" + inner6(hlim=2))
    assert decrement_ttl(buf6, 2) and IPv6(bytes(buf6[2:])).hlim == 1
    assert not decrement_ttl(buf6, 2)


def test_tunnel_mtu() -> None:
    assert ipip.tunnel_mtu(1500) == 1480
    assert ipip.tunnel_mtu(1500, outer6=True) == 1460
    assert ipip.tunnel_mtu(1500, tun_type=ipip.TUN_TYPE_GUE) == 1468
    flags = ipip.TUN_F_REMCSUM
    assert ipip.tunnel_mtu(1500, tun_type=ipip.TUN_TYPE_GUE, tun_flags=flags) == 1468
    assert (
        ipip.tunnel_mtu(1500, tun_type=ipip.TUN_TYPE_GUE, tun_flags=flags, inner_csum_partial=True)
        == 1460
    )
    assert ipip.tunnel_mtu(1500, tun_type=ipip.TUN_TYPE_GRE) == 1476
    assert ipip.tunnel_mtu(1500, tun_type=ipip.TUN_TYPE_GRE, tun_flags=ipip.TUN_F_CSUM) == 1472
    assert ipip.tunnel_mtu(88) == 68 and ipip.tunnel_mtu(87) is None
    assert ipip.tunnel_mtu(1319, outer6=True) is None


# -- properties ----------------------------------------------------------------

addr4 = st.binary(min_size=4, max_size=4)
addr6 = st.binary(min_size=16, max_size=16)


@st.composite
def inner_packets(draw: st.DrawFn) -> bytes:
    payload = draw(st.binary(max_size=300))
    if draw(st.booleans()):
        pkt: Packet = IP(
            src=socket.inet_ntoa(draw(addr4)),
            dst=socket.inet_ntoa(draw(addr4)),
            tos=draw(st.integers(0, 255)),
            ttl=draw(st.integers(0, 255)),
            id=draw(st.integers(0, 0xFFFF)),
            flags=draw(st.sampled_from([0, 2])),
            proto=draw(st.integers(0, 255)),
        ) / Raw(payload)
    else:
        pkt = IPv6(
            src=socket.inet_ntop(socket.AF_INET6, draw(addr6)),
            dst=socket.inet_ntop(socket.AF_INET6, draw(addr6)),
            tc=draw(st.integers(0, 255)),
            fl=draw(st.integers(0, 0xFFFFF)),
            hlim=draw(st.integers(0, 255)),
            nh=59,
        ) / Raw(payload)
    return bytes(pkt)


@settings(max_examples=200, deadline=None)
@given(inner_packets(), st.booleans(), st.integers(0, 0xFFFF), st.sampled_from([None, False]))
def test_round_trip(inner: bytes, v6: bool, ident: int, df: bool | None) -> None:
    src, dst = (DIR6, RS6) if v6 else (DIR4, RS4)
    out = ipip.encap(inner, src, dst, ident=ident, df=df)
    d = ipip.decap(out)
    assert isinstance(d, ipip.Decap), d
    assert out[d.offset :] == inner
    assert (d.outer_src, d.outer_dst) == (src, dst)
    if not v6:
        p = IP(out)
        assert p.chksum == scapy_chksum(p, IP)
        inner_df = inner[0] >> 4 == 4 and bool(inner[6] & 0x40) and df is None
        assert bool(p.flags.DF) == inner_df
        assert p.id == (0 if inner_df else ident)
        assert p.ttl == (inner[8] if inner[0] >> 4 == 4 else inner[7])


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=120), st.booleans())
def test_decap_never_raises(garbage: bytes, partial: bool) -> None:
    r = ipip.decap(garbage, partial=partial)
    assert isinstance(r, str | ipip.Decap)


@settings(max_examples=300, deadline=None)
@given(inner_packets(), st.integers(0, 200), st.integers(0, 255))
def test_decap_survives_corruption(inner: bytes, pos: int, value: int) -> None:
    out = bytearray(ipip.encap(inner, DIR4, RS4))
    out[pos % len(out)] = value
    r = ipip.decap(bytes(out))
    assert isinstance(r, str | ipip.Decap)
    r = ipip.decap(bytes(out[: pos % len(out)]), partial=True)
    assert isinstance(r, str | ipip.Decap)


@settings(max_examples=200, deadline=None)
@given(
    inner_packets(),
    st.booleans(),
    st.integers(0, 40),
    st.sampled_from([None, False, True]),
    st.sampled_from([None, 1, 255]),
    st.integers(0, 0xFFFF),
)
def test_encap_into_matches_encap(
    inner: bytes, v6: bool, off: int, df: bool | None, ttl: int | None, ident: int
) -> None:
    src, dst = (DIR6, RS6) if v6 else (DIR4, RS4)
    hlen = ipip.outer_hlen(src)
    buf = bytearray(off + hlen) + inner + b"\x99" * 3
    n = ipip.encap_into(buf, off, len(inner), src, dst, df=df, ttl=ttl, ident=ident)
    assert bytes(buf[off : off + n]) == ipip.encap(inner, src, dst, df=df, ttl=ttl, ident=ident)
    assert buf[off + n :] == b"\x99" * 3
