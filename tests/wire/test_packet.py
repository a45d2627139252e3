"""packet.parse and l4_csum_ok against frames built and checked by scapy."""

from __future__ import annotations

import sys
from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.layers.sctp import SCTP, SCTPChunkData
from scapy.packet import Packet

from pylvs.wire import csum, vnet
from pylvs.wire.packet import l4_csum_ok, parse
from tests.wire.helpers import (
    assert_csums,
    eth,
    frame,
    ip4,
    ip6,
    make_partial,
    parsed,
    payloads,
    ports,
)

# -- parse ------------------------------------------------------------------------


def tcp4() -> Packet:
    return (
        eth()
        / IP(src="10.0.0.1", dst="10.0.0.100")
        / TCP(sport=40000, dport=80, flags="PA")
        / b"hello world"
    )


def test_parse_tcp4_fields() -> None:
    buf = frame(tcp4())
    p = parsed(buf)
    assert (p.af, p.proto, p.l3, p.ihl, p.l4, p.start, p.end) == (4, 6, 14, 20, 34, 0, len(buf))
    assert p.saddr == IPv4Address("10.0.0.1").packed
    assert p.daddr == IPv4Address("10.0.0.100").packed
    assert (p.sport, p.dport) == (40000, 80)
    assert p.tcp_flags == 0x18
    assert not p.frag and p.fragoff == 0 and p.has_l4
    assert p.vlan is None and not p.csum_partial
    assert p.icmp_type == -1
    assert isinstance(p.saddr, bytes)
    assert bytes(p.frame()) == bytes(buf)
    assert l4_csum_ok(p)


def test_parse_ip_options_and_offset_in_buffer() -> None:
    pkt = eth() / IP(src="1.1.1.1", dst="2.2.2.2", options=b"\x01\x01\x01\x00") / UDP() / b"x"
    raw = bytes(pkt)
    buf = bytearray(b"\xee" * 10 + raw + b"\xdd" * 7)
    p = parsed(buf, start=10, end=10 + len(raw))
    assert p.ihl == 24 and p.l3 == 24 and p.l4 == 48 and p.end == 10 + len(raw)
    assert p.proto == 17 and l4_csum_ok(p)


def test_vlan_tag() -> None:
    buf = frame(eth() / Dot1Q(prio=5, vlan=42) / IP(dst="1.2.3.4") / TCP(dport=443))
    p = parsed(buf)
    assert p.vlan is not None and p.vlan & 0xFFF == 42 and p.vlan >> 13 == 5
    assert p.l3 == 18 and p.dport == 443


def test_ethernet_padding_ignored() -> None:
    raw = bytes(eth() / IP(src="1.1.1.1", dst="2.2.2.2") / TCP(flags="A"))
    assert len(raw) == 54
    buf = bytearray(raw + b"\x00" * 6)  # padded to the 60-byte minimum
    p = parsed(buf)
    assert p.end == 54
    assert l4_csum_ok(p)


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda b: b[:13], "short_eth"),
        (lambda b: b[:30], "short_ip"),
        (lambda b: b[:14] + bytes([0x65]) + b[15:], "bad_version"),
        (lambda b: b[:14] + bytes([0x44]) + b[15:], "bad_ihl"),
        (lambda b: b[:14] + bytes([0x4F]) + b[15:], "short_ip"),
        (lambda b: b[:-1], "bad_len"),
        (lambda b: b[:16] + b"\x00\x10" + b[18:], "bad_len"),
        (lambda b: b[:24] + bytes([b[24] ^ 1]) + b[25:], "ip_csum"),
        (lambda b: b[:12] + b"\x88\xcc" + b[14:], "ethertype"),
    ],
)
def test_reasons_ipv4(mutate: object, reason: str) -> None:
    raw = bytes(tcp4())
    data = mutate(raw)  # type: ignore[operator]
    assert parse(bytearray(data), 0, len(data), False) == reason


def fix_ip4(buf: bytearray) -> bytearray:
    ihl = (buf[14] & 15) * 4
    csum.put(buf, 24, 0)
    csum.put(buf, 24, csum.checksum(buf, 14, 14 + ihl))
    return buf


@settings(max_examples=200, deadline=None)
@given(header=st.binary(min_size=20, max_size=20), valid=st.booleans())
def test_ip_checksum_verdict_matches_csum(header: bytes, valid: bool) -> None:
    """parse's fast header check agrees with csum.checksum on any 20-byte header."""
    hdr = bytearray(header)
    hdr[0] = 0x45
    hdr[2:4] = b"\x00\x14"  # total length 20: no transport header
    if valid:
        csum.put(hdr, 10, 0)
        csum.put(hdr, 10, csum.checksum(hdr))
    buf = bytearray(bytes(eth())[:12] + b"\x08\x00") + hdr
    r = parse(buf, 0, len(buf), False)
    assert (r == "ip_csum") is (csum.checksum(hdr) != 0)


def test_reasons_l4() -> None:
    short_tcp = frame(eth() / IP() / TCP())[:-4]
    csum.put(short_tcp, 16, 36)
    assert parse(fix_ip4(short_tcp), 0, len(short_tcp), False) == "short_l4"
    bad_doff = frame(tcp4())
    bad_doff[34 + 12] = 0x40
    assert parse(bad_doff, 0, len(bad_doff), False) == "bad_doff"
    bad_doff[34 + 12] = 0xF0  # 60 bytes, more than the segment
    assert parse(bad_doff, 0, len(bad_doff), False) == "bad_doff"
    udp = frame(eth() / IP() / UDP() / b"abcd")
    csum.put(udp, 34 + 4, 100)
    assert parse(udp, 0, len(udp), False) == "bad_udp_len"
    csum.put(udp, 34 + 4, 7)
    assert parse(udp, 0, len(udp), False) == "bad_udp_len"
    icmp = frame(eth() / IP() / ICMP())[:-4]
    csum.put(icmp, 16, 24)
    assert parse(fix_ip4(icmp), 0, len(icmp), False) == "short_l4"


def test_arp_qinq() -> None:
    arp = frame(eth() / ARP())
    assert parse(arp, 0, len(arp), False) == "arp"
    qinq = frame(eth() / Dot1Q(vlan=1) / Dot1Q(vlan=2) / IP() / TCP())
    assert parse(qinq, 0, len(qinq), False) == "qinq"
    assert parse(bytearray(20), 0, 30, False) == "short_eth"  # end beyond the buffer
    assert parse(bytearray(20), -1, 20, False) == "short_eth"


def test_parse_ipv6_exthdrs() -> None:
    pkt = (
        Ether()
        / IPv6(src="2001:db8::1", dst="2001:db8::100")
        / IPv6ExtHdrHopByHop()
        / IPv6ExtHdrRouting()
        / IPv6ExtHdrDestOpt()
        / TCP(sport=1234, dport=80, flags="S")
    )
    buf = frame(pkt)
    p = parsed(buf)
    assert p.af == 6 and p.proto == 6
    assert p.ihl == 40 + 8 + 8 + 8
    assert p.l4 == 14 + p.ihl
    assert p.saddr == IPv6Address("2001:db8::1").packed
    assert (p.sport, p.dport, p.tcp_flags) == (1234, 80, 2)
    assert l4_csum_ok(p)


def test_ipv6_bad() -> None:
    buf = frame(eth() / IPv6() / UDP() / b"xyz")
    assert parse(buf, 0, len(buf) - 1, False) == "bad_len"
    assert parse(buf, 0, 50, False) == "short_ip"
    ext = frame(eth() / IPv6() / IPv6ExtHdrDestOpt() / UDP())
    ext[14 + 40 + 1] = 5  # extension header claims 48 bytes
    assert parse(ext, 0, len(ext), False) == "bad_exthdr"
    loop = frame(eth() / IPv6(nh=60) / ((b"\x3c\x00" + bytes(6)) * 9))
    assert parse(loop, 0, len(loop), False) == "bad_exthdr"


def test_ipv4_fragments() -> None:
    whole = IP(src="10.0.0.1", dst="10.0.0.2", id=7) / UDP(sport=5, dport=53) / (b"q" * 100)
    frags = [frame(eth() / f) for f in _fragment4(whole, 48)]
    first = parsed(frags[0])
    assert first.frag and first.fragoff == 0 and (first.sport, first.dport) == (5, 53)
    later = parsed(frags[1])
    assert later.frag and later.fragoff == 48 and (later.sport, later.dport) == (0, 0)
    assert not later.has_l4
    assert l4_csum_ok(later)  # not verifiable in a fragment


def _fragment4(p: Packet, size: int) -> list[Packet]:
    from scapy.layers.inet import fragment

    return list(fragment(p, fragsize=size))  # type: ignore[no-untyped-call]


def test_ipv6_fragment_header() -> None:
    first = frame(eth() / IPv6() / IPv6ExtHdrFragment(offset=0, m=1, nh=17) / UDP(sport=1, dport=2))
    p = parsed(first)
    assert p.frag and p.fragoff == 0 and p.dport == 2 and p.ihl == 48
    later = frame(eth() / IPv6() / IPv6ExtHdrFragment(offset=3, m=0, nh=17) / (b"x" * 16))
    p = parsed(later)
    assert p.frag and p.fragoff == 24 and p.dport == 0 and p.proto == 17
    atomic = frame(eth() / IPv6() / IPv6ExtHdrFragment(offset=0, m=0) / TCP(dport=9))
    p = parsed(atomic)
    assert not p.frag and p.dport == 9


def test_icmp_and_sctp() -> None:
    p = parsed(frame(eth() / IP() / ICMP(type=8, code=0, id=5) / b"ping"))
    assert (p.icmp_type, p.icmp_code, p.sport, p.dport) == (8, 0, 0, 0)
    assert l4_csum_ok(p)
    p = parsed(frame(eth() / IPv6() / ICMPv6EchoRequest(id=1) / b"ping"))
    assert (p.proto, p.icmp_type) == (58, 128)
    assert l4_csum_ok(p)
    p = parsed(frame(eth() / IP() / SCTP(sport=7, dport=9) / SCTPChunkData(data=b"d")))
    assert (p.proto, p.sport, p.dport) == (132, 7, 9)


def test_l4_csum_ok_detects_corruption() -> None:
    for pkt in (
        tcp4(),
        eth() / IP() / UDP() / b"data",
        eth() / IPv6() / UDP() / b"data",
        eth() / IPv6() / TCP() / b"data!",
        eth() / IP() / ICMP() / b"x",
        eth() / IPv6() / ICMPv6EchoRequest() / b"x",
    ):
        buf = frame(pkt)
        p = parsed(buf)
        assert l4_csum_ok(p)
        buf[-1] ^= 0x40
        assert not l4_csum_ok(parsed(buf))
        assert l4_csum_ok(parsed(buf, partial=True))  # partial: nothing to verify


def test_udp_zero_checksum() -> None:
    buf = frame(eth() / IP() / UDP(chksum=0) / b"data")
    assert l4_csum_ok(parsed(buf))
    buf6 = frame(eth() / IPv6() / UDP(chksum=0) / b"data")
    assert not l4_csum_ok(parsed(buf6))  # RFC 8200: mandatory over IPv6


def test_odd_length_checksum() -> None:
    buf = frame(eth() / IP() / TCP() / b"odd")
    assert l4_csum_ok(parsed(buf))


@settings(max_examples=60, deadline=None)
@given(
    v6=st.booleans(),
    udp=st.booleans(),
    a=st.data(),
    sport=ports,
    dport=ports,
    payload=payloads,
    pad=st.integers(0, 20),
)
def test_parse_matches_scapy(
    v6: bool, udp: bool, a: st.DataObject, sport: int, dport: int, payload: bytes, pad: int
) -> None:
    src, dst = (a.draw(ip6), a.draw(ip6)) if v6 else (a.draw(ip4), a.draw(ip4))
    l3 = IPv6(src=src, dst=dst) if v6 else IP(src=src, dst=dst)
    l4 = UDP(sport=sport, dport=dport) if udp else TCP(sport=sport, dport=dport, flags="SA")
    raw = bytes(eth() / l3 / l4 / payload)
    buf = bytearray(raw + b"\x00" * pad)
    p = parsed(buf)
    e = Ether(raw)
    ipl = e[IPv6] if v6 else e[IP]
    assert p.saddr == (IPv6Address(ipl.src) if v6 else IPv4Address(ipl.src)).packed
    assert p.daddr == (IPv6Address(ipl.dst) if v6 else IPv4Address(ipl.dst)).packed
    assert (p.sport, p.dport) == (sport, dport)
    assert p.end == len(raw)
    assert p.proto == (17 if udp else 6)
    assert l4_csum_ok(p)


# -- vnet -----------------------------------------------------------------------------


def test_vnet_roundtrip_and_byte_order() -> None:
    h = vnet.VnetHdr(vnet.VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0, 34, 16)
    raw = vnet.pack(h)
    assert len(raw) == vnet.VNET_HDR_LEN
    if sys.byteorder == "little":
        # As read from an AF_PACKET socket on x86 for a TCP SYN sent over veth.
        assert raw == bytes.fromhex("01000000000022001000")
    back = vnet.unpack(b"\xff" + raw, 1)
    assert back == h and back is not None and back.needs_csum and not back.is_gso
    assert vnet.unpack(raw[:9]) is None
    assert vnet.needs_csum(raw) and not vnet.needs_csum(vnet.NO_HDR)
    buf = bytearray(12)
    vnet.pack_into(buf, 2, h)
    assert bytes(buf[2:]) == raw
    assert vnet.build() == vnet.NO_HDR
    assert vnet.build(needs_csum=True, csum_start=34, csum_offset=16) == raw
    assert vnet.unpack(vnet.build(data_valid=True, csum_start=5)) == vnet.VnetHdr(2)


def test_vnet_for_pkt() -> None:
    buf = frame(eth() / Dot1Q(vlan=9) / IP() / TCP(options=[("MSS", 1400)]) / b"x")
    p = parsed(buf)
    assert vnet.for_pkt(p) == vnet.build(hdr_len=18 + 20 + 24)
    make_partial(p)
    h = vnet.unpack(vnet.for_pkt(p, vnet.VIRTIO_NET_HDR_GSO_TCPV4, 1448))
    assert h == vnet.VnetHdr(1, 1, 18 + 20 + 24, 1448, 38, 16)
    assert vnet.describes(h, p)
    assert not vnet.describes(vnet.VnetHdr(1, 0, 0, 0, 14, 16), p)
    assert vnet.describes(vnet.VnetHdr(), p)
    outer = vnet.shift(h, 20)  # an IPIP header in front
    assert (outer.csum_start, outer.hdr_len, outer.csum_offset) == (58, 82, 16)
    udp = parsed(frame(eth() / IPv6() / UDP() / b"x"))
    udp.csum_partial = True
    h6 = vnet.unpack(vnet.for_pkt(udp))
    assert h6 == vnet.VnetHdr(1, 0, 14 + 40 + 8, 0, 54, 6)
    sctp = frame(eth() / IP() / SCTP() / SCTPChunkData(data=b"x"))
    ps = parsed(sctp, partial=True)
    csum.put(sctp, ps.l4 + 8, 0)
    assert vnet.for_pkt(ps) == vnet.NO_HDR  # CRC32c completed here, not offloaded
    assert not ps.csum_partial
    assert_csums(sctp, SCTP)
