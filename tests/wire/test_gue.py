"""gue: GUE and GRE tunnel encapsulation checked against scapy, both directions."""

from __future__ import annotations

import socket
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import GRE
from scapy.packet import Packet, Raw

from pylvs.wire import csum, gue, ipip
from pylvs.wire.ip import IPPROTO_GRE, IPPROTO_IPIP, IPPROTO_IPV6, IPPROTO_UDP
from tests.wire.helpers import scapy_chksum

DIR4 = socket.inet_aton("192.0.2.1")
RS4 = socket.inet_aton("198.51.100.7")
DIR6 = socket.inet_pton(socket.AF_INET6, "2001:db8::1")
RS6 = socket.inet_pton(socket.AF_INET6, "2001:db8::7")
PORT = 6080


def inner4(sport: int = 40000, **kw: object) -> bytes:
    ip = {"src": "203.0.113.9", "dst": "192.0.2.100", "ttl": 63, "flags": "DF"}
    ip.update(kw)
    return bytes(IP(**ip) / TCP(sport=sport, dport=80, flags="PA") / Raw(b"GET / HTTP/1.0\r\n\r\n"))


def inner6() -> bytes:
    return bytes(IPv6(src="2001:db8:1::9", dst="2001:db8::100", hlim=9) / UDP(dport=53) / b"q")


def test_flow_src_port() -> None:
    assert gue.flow_src_port(0) == 32768
    assert gue.flow_src_port(0xFFFF0000) == 32768 + 28230
    assert gue.flow_src_port(0x80000000) == 32768 + 14115
    assert gue.flow_src_port(0x80000000, 1000, 1100) == 1050
    ports = {gue.flow_src_port(gue.flow_hash(inner4(sport=p))) for p in range(1000, 1400)}
    assert all(32768 <= p < 60999 for p in ports)
    assert len(ports) > 300  # flows spread over the range
    # one flow, one port: the payload and TTL do not matter, the ports do
    a = gue.flow_hash(inner4(ttl=3))
    assert a == gue.flow_hash(bytes(IP(bytes(inner4(ttl=9)))))
    assert a != gue.flow_hash(inner4(sport=40001))


def test_gue_fields_ipv4() -> None:
    inner = inner4()
    out = gue.encap_gue(inner, DIR4, RS4, dport=PORT, ident=3)
    p = IP(out)
    assert p.proto == IPPROTO_UDP and p.flags == "DF" and p.id == 0 and p.ttl == 63
    assert p.len == len(out) == 20 + 8 + 4 + len(inner)
    assert p.chksum == scapy_chksum(p, IP)
    u = p[UDP]
    assert u.dport == PORT and u.len == 8 + 4 + len(inner)
    assert u.sport == gue.flow_src_port(gue.flow_hash(inner))
    assert u.chksum == 0  # no tun_flags csum: no UDP checksum
    payload = bytes(u.payload)
    assert payload[:4] == bytes((0, IPPROTO_IPIP, 0, 0))  # version 0, hlen 0, no flags
    assert payload[4:] == inner
    assert IP(payload[4:])[TCP].dport == 80


@pytest.mark.parametrize("v6", [False, True])
def test_gue_checksum(v6: bool) -> None:
    src, dst = (DIR6, RS6) if v6 else (DIR4, RS4)
    out = gue.encap_gue(inner6(), src, dst, dport=PORT, sport=4242, csum_flag=True)
    p = IPv6(out) if v6 else IP(out)
    assert p[UDP].sport == 4242
    assert p[UDP].chksum != 0 and p[UDP].chksum == scapy_chksum(p, UDP)
    assert bytes(p[UDP].payload)[:4] == bytes((0, IPPROTO_IPV6, 0, 0))
    d = gue.decap_gue_packet(out, port=PORT)
    assert isinstance(d, ipip.Decap) and out[d.offset :] == inner6()


def test_gue_remote_checksum() -> None:
    # an inner TCP segment whose checksum field holds only the pseudo-header
    # sum, as a CHECKSUM_PARTIAL packet does
    full = IP(inner4())
    seg_len = len(bytes(full[TCP]))
    q = full.copy()
    q[TCP].chksum = csum.fold(
        csum.pseudo4(socket.inet_aton(full.src), socket.inet_aton(full.dst), 6, seg_len)
    )
    partial = bytes(q)
    out = gue.encap_gue(partial, DIR4, RS4, dport=PORT, remcsum=(20, 16))
    p = IP(out)
    assert p[UDP].chksum == scapy_chksum(p, UDP)  # remcsum implies the UDP checksum
    g = bytes(p[UDP].payload)
    b0, proto, flags = struct.unpack("!BBH", g[:4])
    assert b0 == 2 and proto == IPPROTO_IPIP and flags == gue.GUE_FLAG_PRIV
    pflags, start, field = struct.unpack("!IHH", g[4:12])
    assert (pflags, start, field) == (gue.GUE_PFLAG_REMCSUM, 20, 36)
    assert g[12:] == partial
    parsed = gue.parse_gue(g)
    assert isinstance(parsed, gue.Gue) and parsed.remcsum == (20, 36) and parsed.offset == 12
    # the receiver completes the inner checksum in place
    assert "writable" in str(gue.decap_gue_packet(out, port=PORT))
    buf = bytearray(out)
    d = gue.decap_gue_packet(buf, port=PORT)
    assert isinstance(d, ipip.Decap) and d.offset == 20 + 8 + 12
    done = IP(bytes(buf[d.offset :]))
    assert done[TCP].chksum == full[TCP].chksum == scapy_chksum(done, TCP)
    with pytest.raises(ValueError):
        gue.encap_gue(partial, DIR4, RS4, dport=PORT, remcsum=(20, len(partial)))


def test_encap_gue_into() -> None:
    inner = inner4()
    hl = 20 + gue.gue_hlen()
    buf = bytearray(b"\xee" * 14 + bytes(hl) + inner + b"pad")
    n = gue.encap_gue_into(buf, 14, len(inner), DIR4, RS4, dport=PORT, csum_flag=True, ident=1)
    assert bytes(buf[14 : 14 + n]) == gue.encap_gue(
        inner, DIR4, RS4, dport=PORT, csum_flag=True, ident=1
    )
    assert buf[14 + n :] == b"pad" and buf[:14] == b"\xee" * 14


@pytest.mark.parametrize(
    ("pkt", "hlen"),
    [
        (IP(dst="198.51.100.7") / UDP(dport=PORT) / Raw(b"\x00\x04\x00\x00") / IP() / TCP(), 32),
        (IP() / UDP(dport=PORT, chksum=0) / Raw(b"\x00\x29\x00\x00") / IPv6() / TCP(), 32),
        (IPv6() / UDP(dport=PORT) / Raw(b"\x00\x04\x00\x00") / IP() / TCP(), 52),
        (IP() / UDP(dport=PORT) / IP() / TCP(), 28),  # GUE version 1: direct IPv4
        (IP() / UDP(dport=PORT) / IPv6() / TCP(), 28),  # GUE version 1: direct IPv6
        # hlen 1 with 4 bytes of options, no flags: options skipped
        (IP() / UDP(dport=PORT) / Raw(b"\x01\x04\x00\x00" + bytes(4)) / IP() / TCP(), 36),
    ],
)
def test_decap_scapy_built(pkt: Packet, hlen: int) -> None:
    raw = bytes(pkt)
    d = gue.decap_gue_packet(raw, port=PORT)
    assert isinstance(d, ipip.Decap), d
    assert d.offset == hlen
    inner = pkt[UDP].payload
    if isinstance(inner, Raw):  # the GUE header, built by hand
        inner = inner.payload
    assert raw[hlen:] == bytes(inner)


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (b"", "empty"),
        (b"\x00\x04\x00", "short"),
        (b"\x80\x04\x00\x00" + bytes(inner4()), "version 2"),
        (b"\xc0\x04\x00\x00" + bytes(inner4()), "version 3"),
        (b"\x20\x04\x00\x00" + bytes(inner4()), "control"),
        (b"\x00\x04\x00\x02" + bytes(inner4()), "flags"),
        (b"\x00\x04\x00\x01" + bytes(inner4()), "private flags missing"),
        (b"\x01\x04\x00\x01\x40\0\0\0" + bytes(inner4()), "private flags"),
        (b"\x01\x04\x00\x01\x80\0\0\0" + bytes(inner4()), "remote checksum option"),
        (b"\x02\x04\x00\x01\x80\0\0\0\xff\xff\x00\x10" + bytes(inner4()), "outside"),
        (b"\x05\x04\x00\x00" + bytes(8), "truncated"),
        (b"\x00\x11\x00\x00" + bytes(inner4()), "not IP"),
        (b"\x00\x29\x00\x00" + bytes(inner4()), "does not match"),
        (b"\x00\x04\x00\x00", "without inner"),
        (b"\x50" + bytes(30), "IP version 5"),
    ],
)
def test_decap_gue_reasons(payload: bytes, why: str) -> None:
    r = gue.decap_gue(bytearray(payload))
    assert isinstance(r, str) and why in r, r


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (bytes(IP() / TCP()), "protocol 6"),
        (bytes(IP() / UDP(dport=PORT + 1) / Raw(b"\x00\x04\0\0") / IP()), "tunnel port"),
        (bytes(IP() / UDP(dport=PORT, len=7) / Raw(b"\x00\x04\0\0") / IP()), "UDP length"),
        (bytes(IP() / UDP(dport=PORT, chksum=1) / Raw(b"\x00\x04\0\0") / IP()), "checksum"),
        (bytes(IP(proto=17) / Raw(b"\x17\xc0")), "short UDP"),
    ],
)
def test_decap_gue_packet_reasons(raw: bytes, why: str) -> None:
    r = gue.decap_gue_packet(raw, port=PORT)
    assert isinstance(r, str) and why in r, r


@pytest.mark.parametrize("csum_flag", [False, True])
@pytest.mark.parametrize("make", [inner4, inner6])
def test_gre_fields(csum_flag: bool, make: object) -> None:
    assert callable(make)
    inner = make()
    out = gue.encap_gre(inner, DIR4, RS4, csum_flag=csum_flag, ident=11)
    p = IP(out)
    assert p.proto == IPPROTO_GRE and p.chksum == scapy_chksum(p, IP)
    g = p[GRE]
    assert g.version == 0 and g.routing_present == 0 and g.key_present == 0
    assert g.chksum_present == int(csum_flag)
    assert g.proto == (0x0800 if inner[0] >> 4 == 4 else 0x86DD)
    if csum_flag:
        assert g.chksum == scapy_chksum(p, GRE)
    assert bytes(g.payload) == inner
    d = gue.decap_gre_packet(out)
    assert isinstance(d, ipip.Decap) and out[d.offset :] == inner


@pytest.mark.parametrize(
    ("pkt", "hlen"),
    [
        (IP() / GRE() / IP() / TCP(), 24),
        (IP() / GRE(chksum_present=1) / IP() / TCP(), 28),
        (IP() / GRE(key_present=1, key=7, seqnum_present=1, sequence_number=9) / IP(), 32),
        (IPv6() / GRE(proto=0x86DD) / IPv6() / TCP(), 44),
    ],
)
def test_decap_gre_scapy_built(pkt: Packet, hlen: int) -> None:
    raw = bytes(pkt)
    d = gue.decap_gre_packet(raw)
    assert isinstance(d, ipip.Decap), d
    assert d.offset == hlen and raw[hlen:] == bytes(pkt[GRE].payload)


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (bytes(GRE(version=1) / IP()), "version"),
        (bytes(GRE(routing_present=1) / IP()), "flags"),
        (bytes(GRE(chksum_present=1, chksum=1) / IP()), "checksum"),
        (bytes(GRE(proto=0x6558) / IP()), "not IP"),
        (bytes(GRE(proto=0x86DD) / IP()), "does not match"),
        (bytes(GRE(key_present=1))[:6], "truncated"),
        (b"\x00\x00\x08", "short"),
        (bytes(GRE(proto=0x0800)), "without inner"),
    ],
)
def test_decap_gre_reasons(raw: bytes, why: str) -> None:
    r = gue.decap_gre(raw)
    assert isinstance(r, str) and why in r, r


# -- properties ----------------------------------------------------------------


@st.composite
def inner_packets(draw: st.DrawFn) -> bytes:
    payload = draw(st.binary(max_size=200))
    if draw(st.booleans()):
        pkt: Packet = IP(
            src=socket.inet_ntoa(draw(st.binary(min_size=4, max_size=4))),
            tos=draw(st.integers(0, 255)),
            ttl=draw(st.integers(0, 255)),
            flags=draw(st.sampled_from([0, 2])),
            proto=draw(st.sampled_from([6, 17, 132, 47])),
        ) / Raw(payload)
    else:
        pkt = IPv6(tc=draw(st.integers(0, 255)), nh=draw(st.sampled_from([6, 17, 59]))) / Raw(
            payload
        )
    return bytes(pkt)


@settings(max_examples=200, deadline=None)
@given(inner_packets(), st.booleans(), st.booleans(), st.integers(1, 0xFFFF))
def test_gue_round_trip(inner: bytes, v6: bool, csum_flag: bool, port: int) -> None:
    src, dst = (DIR6, RS6) if v6 else (DIR4, RS4)
    out = gue.encap_gue(inner, src, dst, dport=port, csum_flag=csum_flag)
    d = gue.decap_gue_packet(out, port=port)
    assert isinstance(d, ipip.Decap), d
    assert out[d.offset :] == inner and (d.outer_src, d.outer_dst) == (src, dst)
    p = IPv6(out) if v6 else IP(out)
    if csum_flag:
        assert p[UDP].chksum == scapy_chksum(p, UDP)
    else:
        assert p[UDP].chksum == 0


@settings(max_examples=200, deadline=None)
@given(inner_packets(), st.booleans(), st.booleans())
def test_gre_round_trip(inner: bytes, v6: bool, csum_flag: bool) -> None:
    src, dst = (DIR6, RS6) if v6 else (DIR4, RS4)
    out = gue.encap_gre(inner, src, dst, csum_flag=csum_flag)
    d = gue.decap_gre_packet(out)
    assert isinstance(d, ipip.Decap), d
    assert out[d.offset :] == inner


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=100))
def test_parsers_never_raise(garbage: bytes) -> None:
    for f in (gue.decap_gue, gue.decap_gre, gue.parse_gue):
        assert isinstance(f(garbage), str | int | gue.Gue)
        assert isinstance(f(bytearray(garbage)), str | int | gue.Gue)
    for partial in (False, True):
        assert isinstance(gue.decap_gue_packet(garbage, partial=partial), str | ipip.Decap)
        assert isinstance(gue.decap_gre_packet(garbage, partial=partial), str | ipip.Decap)


@settings(max_examples=300, deadline=None)
@given(inner_packets(), st.integers(0, 300), st.integers(0, 255), st.booleans())
def test_decap_survives_corruption(inner: bytes, pos: int, value: int, gre: bool) -> None:
    if gre:
        out = bytearray(gue.encap_gre(inner, DIR4, RS4, csum_flag=True))
    else:
        out = bytearray(gue.encap_gue(inner, DIR4, RS4, dport=PORT, remcsum=(0, 0)))
    out[pos % len(out)] = value
    for partial in (False, True):
        r1 = gue.decap_gue_packet(out, port=PORT, partial=partial)
        r2 = gue.decap_gre_packet(out, partial=partial)
        assert isinstance(r1, str | ipip.Decap) and isinstance(r2, str | ipip.Decap)
