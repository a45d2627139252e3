"""nat: rewriting against scapy's own checksum computation, complete and partial."""

from __future__ import annotations

import socket
import struct
import threading
from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror, TCPerror, UDPerror, fragment
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    ICMPv6EchoRequest,
    ICMPv6PacketTooBig,
    IPv6,
    IPv6ExtHdrDestOpt,
)
from scapy.layers.l2 import Dot1Q, Ether
from scapy.layers.sctp import SCTP, SCTPChunkData
from scapy.packet import Packet, Raw

from pylvs.wire import csum, vnet
from pylvs.wire.nat import (
    Inner,
    complete_csum,
    crc32c,
    dec_ttl,
    nat_icmp,
    parse_icmp_inner,
    rewrite_icmp_inner,
    sctp_csum_ok,
    set_dst,
    set_macs,
    set_src,
)
from pylvs.wire.packet import Pkt, l4_csum_ok, parse
from pylvs.wire.toa import add_toa
from tests.lab import Lab, Topology, require_root
from tests.wire.helpers import (
    assert_csums,
    complete_partial,
    eth,
    frame,
    ip4,
    ip6,
    l4_csum_at,
    make_partial,
    parsed,
    payloads,
    ports,
)

CIP, VIP, RIP, LIP = "192.0.2.10", "198.51.100.1", "10.1.0.5", "10.1.0.1"
CIP6, VIP6, RIP6 = "2001:db8::10", "2001:db8:1::1", "fd00::5"


def a4(s: str) -> bytes:
    return IPv4Address(s).packed


def a6(s: str) -> bytes:
    return IPv6Address(s).packed


def l3cls(p: Pkt) -> type[Packet]:
    return IP if p.af == 4 else IPv6


def test_set_dst_tcp4_complete() -> None:
    buf = frame(eth() / IP(src=CIP, dst=VIP) / TCP(sport=40000, dport=80, flags="S") / b"payload")
    p = parsed(buf)
    set_dst(p, a4(RIP), 8080)
    assert (p.daddr, p.dport) == (a4(RIP), 8080)
    e = Ether(bytes(buf))
    assert (e[IP].dst, e[TCP].dport, e[IP].src, e[TCP].sport) == (RIP, 8080, CIP, 40000)
    assert_csums(buf, IP, TCP)
    set_src(p, a4(LIP), 5000)  # FULLNAT
    assert_csums(buf, IP, TCP)
    assert Ether(bytes(buf))[TCP].sport == 5000
    assert l4_csum_ok(parsed(buf))


def test_unchanged_is_noop() -> None:
    buf = frame(eth() / IP(src=CIP, dst=VIP) / TCP(sport=1, dport=80))
    before = bytes(buf)
    p = parsed(buf)
    set_dst(p, a4(VIP), 80)
    set_src(p, a4(CIP), 1)
    assert bytes(buf) == before


def test_wrong_family_raises() -> None:
    p = parsed(frame(eth() / IP() / TCP()))
    with pytest.raises(ValueError):
        set_dst(p, a6(RIP6), 80)
    with pytest.raises(ValueError):
        set_macs(p, b"\x00" * 5, b"\x00" * 6)


@pytest.mark.parametrize("v6", [False, True])
@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_partial_checksum_follows_addresses_only(v6: bool, proto: str) -> None:
    l3 = IPv6(src=CIP6, dst=VIP6) if v6 else IP(src=CIP, dst=VIP)
    l4 = TCP(sport=1000, dport=80) if proto == "tcp" else UDP(sport=1000, dport=53)
    buf = frame(eth() / l3 / l4 / b"some data!")
    p = parsed(buf)
    make_partial(p)
    field = l4_csum_at(p)
    set_dst(p, a6(RIP6) if v6 else a4(RIP), 8080)
    set_src(p, a6("fd00::1") if v6 else a4(LIP), 7070)
    # The field now holds the new pseudo-header sum ...
    q = parsed(buf, partial=True)
    want_partial = csum.fold(
        (csum.pseudo6 if v6 else csum.pseudo4)(q.saddr, q.daddr, q.proto, q.end - q.l4)
    )
    assert csum.get(buf, field) == want_partial
    # ... and completing it as the NIC would gives scapy's checksum.
    complete_partial(buf, p.l4, field - p.l4, p.end)
    assert_csums(buf, l3cls(p), TCP if proto == "tcp" else UDP)


def test_udp_zero_checksum_stays_zero() -> None:
    buf = frame(eth() / IP(src=CIP, dst=VIP) / UDP(sport=1, dport=53, chksum=0) / b"q")
    p = parsed(buf)
    set_dst(p, a4(RIP), 5353)
    assert Ether(bytes(buf))[UDP].chksum == 0
    assert_csums(buf, IP)


def test_udp_result_zero_is_sent_as_ffff() -> None:
    # Choose the payload word so that after the rewrite the sum is all ones.
    after = eth() / IP(src=CIP, dst=RIP) / UDP(sport=1, dport=5353) / b"\x00\x00"
    c0 = Ether(bytes(after))[UDP].chksum
    payload = struct.pack("!H", c0)
    check = Ether(bytes(eth() / IP(src=CIP, dst=RIP) / UDP(sport=1, dport=5353) / payload))
    assert check[UDP].chksum == 0xFFFF  # scapy maps 0 to 0xffff as well
    buf = frame(eth() / IP(src=CIP, dst=VIP) / UDP(sport=1, dport=53) / payload)
    p = parsed(buf)
    set_dst(p, a4(RIP), 5353)
    assert Ether(bytes(buf))[UDP].chksum == 0xFFFF
    assert l4_csum_ok(parsed(buf))


def test_icmpv6_echo_pseudo_header() -> None:
    buf = frame(eth() / IPv6(src=CIP6, dst=VIP6) / ICMPv6EchoRequest(id=3) / b"ping")
    p = parsed(buf)
    set_dst(p, a6(RIP6), 0)
    assert_csums(buf, ICMPv6EchoRequest)
    buf4 = frame(eth() / IP(src=CIP, dst=VIP) / ICMP(id=3) / b"ping")
    p4 = parsed(buf4)
    set_dst(p4, a4(RIP), 0)
    assert_csums(buf4, IP, ICMP)


def test_vlan_frame() -> None:
    buf = frame(eth() / Dot1Q(vlan=7) / IP(src=CIP, dst=VIP) / TCP(dport=80) / b"x")
    p = parsed(buf)
    set_dst(p, a4(RIP), 81)
    assert_csums(buf, IP, TCP)


def test_fragments_rewritten_then_reassembled() -> None:
    whole = IP(src=CIP, dst=VIP, id=99) / UDP(sport=4000, dport=53) / bytes(range(200))
    frags = [frame(eth() / f) for f in fragment(whole, fragsize=64)]  # type: ignore[no-untyped-call]
    assert len(frags) > 2
    for buf in frags:
        p = parsed(buf)
        set_dst(p, a4(RIP), 5353)
        set_src(p, a4(LIP), 6000)
        assert_csums(buf, IP)
    # Reassemble by hand: the first fragment's UDP checksum covers the datagram.
    data = b""
    for buf in frags:
        e = Ether(bytes(buf))
        data += bytes(e[IP].payload)
    rebuilt = eth() / IP(src=LIP, dst=RIP, id=99, proto=17) / Raw(data)
    u = UDP(bytes(rebuilt[Raw]))
    assert (u.sport, u.dport) == (6000, 5353)
    got = u.chksum
    full = Ether(bytes(eth() / IP(src=LIP, dst=RIP) / UDP(bytes(u))))
    assert got == recomputed_udp(full)


def recomputed_udp(e: Packet) -> int:
    del e[UDP].chksum
    value: int = Ether(bytes(e))[UDP].chksum
    return value


def test_sctp_port_change_recomputes_crc() -> None:
    buf = frame(
        eth() / IP(src=CIP, dst=VIP) / SCTP(sport=3000, dport=80) / SCTPChunkData(data=b"hi")
    )
    p = parsed(buf)
    assert sctp_csum_ok(p)
    set_dst(p, a4(RIP), 8080)
    assert_csums(buf, IP, SCTP)
    assert sctp_csum_ok(parsed(buf))
    # address-only change: no pseudo header, CRC unchanged and still right
    before = Ether(bytes(buf))[SCTP].chksum
    set_src(p, a4(LIP), 3000)
    assert Ether(bytes(buf))[SCTP].chksum == before
    assert_csums(buf, IP, SCTP)
    # a partial SCTP checksum is completed (virtio cannot offload CRC32c)
    csum.put(buf, p.l4 + 8, 0)
    q = parsed(buf, partial=True)
    set_dst(q, a4(VIP), 80)
    assert not q.csum_partial
    assert_csums(buf, IP, SCTP)


def test_crc32c_known_value() -> None:
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value


def test_dec_ttl() -> None:
    buf = frame(eth() / IP(ttl=64) / TCP())
    p = parsed(buf)
    assert dec_ttl(p)
    assert Ether(bytes(buf))[IP].ttl == 63
    assert_csums(buf, IP)
    one = frame(eth() / IP(ttl=1) / TCP())
    before = bytes(one)
    assert not dec_ttl(parsed(one))
    assert bytes(one) == before
    six = frame(eth() / IPv6(hlim=2) / TCP())
    p6 = parsed(six)
    assert dec_ttl(p6)
    assert not dec_ttl(p6)
    assert Ether(bytes(six))[IPv6].hlim == 1


@settings(max_examples=150, deadline=None)
@given(ttl=st.integers(2, 255), ident=st.integers(0, 65535), tos=st.integers(0, 255), d=st.data())
def test_dec_ttl_matches_recomputation(ttl: int, ident: int, tos: int, d: st.DataObject) -> None:
    buf = frame(eth() / IP(src=d.draw(ip4), dst=d.draw(ip4), ttl=ttl, id=ident, tos=tos) / TCP())
    assert dec_ttl(parsed(buf))
    assert Ether(bytes(buf))[IP].ttl == ttl - 1
    assert_csums(buf, IP)
    assert isinstance(parse(buf, 0, len(buf), False), Pkt)


def test_set_macs() -> None:
    buf = frame(Ether(dst="02:00:00:00:00:01", src="02:00:00:00:00:02") / IP() / TCP())
    p = parsed(buf)
    set_macs(p, bytes.fromhex("0a0b0c0d0e0f"), bytes.fromhex("010203040506"))
    e = Ether(bytes(buf))
    assert (e.dst, e.src) == ("0a:0b:0c:0d:0e:0f", "01:02:03:04:05:06")
    assert len(buf) == len(bytes(e))


@pytest.mark.parametrize(
    "pkt",
    [
        eth() / IP(src=CIP, dst=VIP) / TCP(dport=80) / b"abc",
        eth() / IP(src=CIP, dst=VIP) / UDP(dport=53) / b"abcd",
        eth() / IPv6(src=CIP6, dst=VIP6) / TCP(dport=80) / b"abc",
        eth() / IPv6(src=CIP6, dst=VIP6) / UDP(dport=53) / b"abc",
        eth() / IP(src=CIP, dst=VIP) / ICMP() / b"abc",
        eth() / IPv6(src=CIP6, dst=VIP6) / ICMPv6EchoRequest() / b"abc",
        eth() / IP(src=CIP, dst=VIP) / SCTP() / SCTPChunkData(data=b"x"),
    ],
)
def test_complete_csum(pkt: Packet) -> None:
    buf = frame(pkt)
    p = parsed(buf)
    layer = type(Ether(bytes(buf)).payload.payload)
    csum.put(buf, p.l4 + (8 if p.proto == 132 else l4_csum_at(p) - p.l4), 0x1234)
    p.csum_partial = True
    assert complete_csum(p)
    assert not p.csum_partial
    assert_csums(buf, layer)


# -- ICMP errors ------------------------------------------------------------------


def icmp_from_rs() -> bytearray:
    """Port unreachable from the real server about a packet sent to it (after DNAT)."""
    quoted = IP(src=CIP, dst=RIP) / TCP(sport=40000, dport=8080, flags="S")
    return frame(eth() / IP(src=RIP, dst=CIP) / ICMP(type=3, code=3) / bytes(quoted)[:28])


def test_parse_icmp_inner() -> None:
    buf = icmp_from_rs()
    p = parsed(buf)
    inner = parse_icmp_inner(p)
    assert isinstance(inner, Inner)
    assert (inner.af, inner.proto, inner.l3, inner.ihl) == (4, 6, p.l4 + 8, 20)
    assert (inner.saddr, inner.daddr) == (a4(CIP), a4(RIP))
    assert (inner.sport, inner.dport, inner.has_ports) == (40000, 8080, True)


def test_nat_icmp_out_like_kernel() -> None:
    buf = icmp_from_rs()
    p = parsed(buf)
    inner = parse_icmp_inner(p)
    assert isinstance(inner, Inner)
    nat_icmp(p, inner, a4(VIP), 80, inout=True)
    e = Ether(bytes(buf))
    assert e[IP].src == VIP and e[IP].dst == CIP
    assert e[IPerror].src == CIP and e[IPerror].dst == VIP
    assert e[TCPerror].sport == 40000 and e[TCPerror].dport == 80
    assert_csums(buf, IP, ICMP, IPerror)
    assert l4_csum_ok(parsed(buf))


def test_nat_icmp_in_like_kernel() -> None:
    # A router near the client reports a reply the director sent (vip:80 -> client).
    quoted = IP(src=VIP, dst=CIP, ttl=1) / UDP(sport=53, dport=33000) / b"answer"
    buf = frame(eth() / IP(src="203.0.113.1", dst=VIP) / ICMP(type=11) / bytes(quoted))
    p = parsed(buf)
    inner = parse_icmp_inner(p)
    assert isinstance(inner, Inner)
    nat_icmp(p, inner, a4(RIP), 5353, inout=False)
    e = Ether(bytes(buf))
    assert e[IP].dst == RIP and e[IP].src == "203.0.113.1"
    assert e[IPerror].src == RIP and e[UDPerror].sport == 5353 and e[UDPerror].dport == 33000
    assert_csums(buf, IP, ICMP, IPerror)


def test_rewrite_icmp_inner_fullnat() -> None:
    # FULLNAT: RS answers the local address; outer and quoted get both sides.
    quoted = IP(src=LIP, dst=RIP) / TCP(sport=5000, dport=8080)
    buf = frame(eth() / IP(src=RIP, dst=LIP) / ICMP(type=3, code=4) / bytes(quoted)[:28])
    p = parsed(buf)
    inner = parse_icmp_inner(p)
    assert isinstance(inner, Inner)
    rewrite_icmp_inner(
        p,
        inner,
        outer_saddr=a4(VIP),
        outer_daddr=a4(CIP),
        inner_saddr=a4(CIP),
        inner_sport=40000,
        inner_daddr=a4(VIP),
        inner_dport=80,
    )
    e = Ether(bytes(buf))
    assert (e[IP].src, e[IP].dst, e[IPerror].src, e[IPerror].dst) == (VIP, CIP, CIP, VIP)
    assert (e[TCPerror].sport, e[TCPerror].dport) == (40000, 80)
    assert_csums(buf, IP, ICMP, IPerror)
    assert (p.saddr, p.daddr, inner.sport, inner.dport) == (a4(VIP), a4(CIP), 40000, 80)


def test_icmpv6_error() -> None:
    quoted = IPv6(src=CIP6, dst=RIP6) / IPv6ExtHdrDestOpt() / TCP(sport=40000, dport=8080)
    buf = frame(eth() / IPv6(src=RIP6, dst=CIP6) / ICMPv6DestUnreach(code=4) / bytes(quoted))
    p = parsed(buf)
    inner = parse_icmp_inner(p)
    assert isinstance(inner, Inner)
    assert (inner.af, inner.proto, inner.ihl, inner.dport) == (6, 6, 48, 8080)
    nat_icmp(p, inner, a6(VIP6), 80, inout=True)
    e = Ether(bytes(buf))
    assert e[IPv6].src == VIP6
    assert_csums(buf, ICMPv6DestUnreach)
    q = parsed(buf)
    assert l4_csum_ok(q)
    again = parse_icmp_inner(q)
    assert isinstance(again, Inner)
    assert (again.daddr, again.dport) == (a6(VIP6), 80)


def test_icmp_not_related() -> None:
    echo = parsed(frame(eth() / IP() / ICMP(type=8)))
    assert parse_icmp_inner(echo) == "icmp_not_error"
    echo6 = parsed(frame(eth() / IPv6() / ICMPv6EchoRequest()))
    assert parse_icmp_inner(echo6) == "icmp_not_error"
    tcp = parsed(frame(eth() / IP() / TCP()))
    assert parse_icmp_inner(tcp) == "not_icmp"
    short = parsed(frame(eth() / IP() / ICMP(type=3) / (b"\x45" + bytes(10))))
    assert parse_icmp_inner(short) == "inner_short"
    noports = parsed(frame(eth() / IP() / ICMP(type=3) / bytes(IP(proto=6))[:20]))
    assert parse_icmp_inner(noports) == "inner_short"
    big6 = frame(eth() / IPv6() / ICMPv6PacketTooBig() / bytes(IPv6() / UDP(dport=9)))
    inner = parse_icmp_inner(parsed(big6))
    assert isinstance(inner, Inner) and inner.dport == 9


def test_icmp_quoting_icmp_has_no_ports() -> None:
    quoted = IP(src=CIP, dst=RIP) / ICMP(type=8)
    buf = frame(eth() / IP(src=RIP, dst=CIP) / ICMP(type=3, code=1) / bytes(quoted))
    p = parsed(buf)
    inner = parse_icmp_inner(p)
    assert isinstance(inner, Inner) and not inner.has_ports
    nat_icmp(p, inner, a4(VIP), 80, inout=True)
    assert_csums(buf, IP, ICMP, IPerror)


# -- properties -----------------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(
    v6=st.booleans(),
    udp=st.booleans(),
    partial=st.booleans(),
    d=st.data(),
    ports4=st.tuples(ports, ports, ports, ports),
    payload=payloads,
)
def test_rewrite_equals_scapy_build(
    v6: bool,
    udp: bool,
    partial: bool,
    d: st.DataObject,
    ports4: tuple[int, int, int, int],
    payload: bytes,
) -> None:
    """DNAT+SNAT of a packet equals scapy building the rewritten packet from scratch."""
    addr = ip6 if v6 else ip4
    s1, d1, s2, d2 = (d.draw(addr) for _ in range(4))
    sp1, dp1, sp2, dp2 = ports4

    def build(src: str, dst: str, sport: int, dport: int) -> bytes:
        l3 = IPv6(src=src, dst=dst) if v6 else IP(src=src, dst=dst)
        l4 = UDP(sport=sport, dport=dport) if udp else TCP(sport=sport, dport=dport, seq=7)
        return bytes(eth() / l3 / l4 / payload)

    buf = bytearray(build(s1, d1, sp1, dp1))
    p = parsed(buf)
    if partial:
        make_partial(p)

    def pack(s: str) -> bytes:
        return IPv6Address(s).packed if v6 else IPv4Address(s).packed

    set_dst(p, pack(d2), dp2)
    set_src(p, pack(s2), sp2)
    if partial:
        complete_partial(buf, p.l4, l4_csum_at(p) - p.l4, p.end)
    want = build(s2, d2, sp2, dp2)
    got_csum = csum.get(buf, l4_csum_at(p))
    want_csum = csum.get(bytearray(want), l4_csum_at(p))
    if not udp and {got_csum, want_csum} == {0, 0xFFFF}:
        csum.put(buf, l4_csum_at(p), want_csum)  # the same value in one's complement
    assert bytes(buf) == want


# -- live: a kernel on both sides -------------------------------------------------

LIVE_VIP = "10.77.0.9"
LIVE_LIP = "10.77.0.8"


class Reflector(threading.Thread):
    """A tiny FULLNAT in a namespace, built from these codecs on an AF_PACKET socket with
    PACKET_VNET_HDR: client -> VIP:80/53 becomes LIP -> client:8080/5353 (TOA on the SYN),
    and the answers are mapped back, so the client's kernel checks every checksum."""

    def __init__(self, sock: socket.socket, client: str, client_mac: str, own_mac: str) -> None:
        super().__init__(daemon=True)
        self.sock = sock
        self.client = IPv4Address(client).packed
        self.vip = IPv4Address(LIVE_VIP).packed
        self.lip = IPv4Address(LIVE_LIP).packed
        self.client_mac = bytes.fromhex(client_mac.replace(":", ""))
        self.own_mac = bytes.fromhex(own_mac.replace(":", ""))
        self.stop = threading.Event()
        self.seen_partial = 0
        self.forwarded = 0
        self.toa = 0
        self.errors: list[str] = []

    def run(self) -> None:
        buf = bytearray(70000)
        maps = {80: 8080, 53: 5353}
        back = {v: k for k, v in maps.items()}
        while not self.stop.is_set():
            try:
                n = self.sock.recv_into(buf)
            except TimeoutError:
                continue
            except OSError:
                return
            h = vnet.unpack(buf)
            assert h is not None
            p = parse(buf, vnet.VNET_HDR_LEN, n, h.needs_csum)
            if isinstance(p, str):
                continue
            if p.daddr == self.vip and p.dport in maps:
                if (
                    p.proto == 6
                    and p.tcp_flags & 0x12 == 0x02
                    and add_toa(p, p.saddr, p.sport, 1500)
                ):
                    self.toa += 1
                set_dst(p, self.client, maps[p.dport])
                set_src(p, self.lip, p.sport)
            elif p.saddr == self.client and p.daddr == self.lip and p.sport in back:
                set_src(p, self.vip, back[p.sport])
                set_dst(p, self.client, p.dport)
            else:
                continue
            if not vnet.describes(h, p):
                self.errors.append(f"vnet header {h} does not describe {p}")
            self.seen_partial += h.needs_csum
            dec_ttl(p)
            set_macs(p, self.client_mac, self.own_mac)
            buf[: vnet.VNET_HDR_LEN] = vnet.for_pkt(p, h.gso_type, h.gso_size)
            self.sock.send(memoryview(buf)[: p.end])
            self.forwarded += 1


@pytest.mark.parametrize("offload", [False, True], ids=["complete", "partial"])
def test_live_nat_through_af_packet(offload: bool) -> None:
    """Checksums as the kernel sees them: "complete" has all offloads off (the client
    sends complete checksums, ours are verified on receipt); "partial" keeps the
    client's TX offloads (its packets come with NEEDS_CSUM) and turns TX checksumming
    off on the reflector's side so the kernel completes our partial checksums in
    software, and RX checksumming off on the client's so its stack verifies them."""
    require_root("ethtool")
    topo = Topology(
        nodes=["c", "d"], lans={"wl0": ["c:10.77.0.2/24", "d:10.77.0.1/24"]}, offload=offload
    )
    with Lab(topo) as lab:
        if offload:
            # d: the kernel completes what we send; c: verify on receipt (veth
            # marks checksum-less packets "unnecessary" when RX checksumming is on).
            lab.sh("d", "ethtool -K wl0 tx off >/dev/null")
            lab.sh("c", "ethtool -K wl0 rx off >/dev/null")
        for addr in (LIVE_VIP, LIVE_LIP):
            lab.sh("c", f"ip neigh replace {addr} lladdr {lab.mac('d', 'wl0')} dev wl0")
        lab.http_server("c", 8080, "web")
        lab.udp_server("c", 5353, "dns")
        sock = lab.socket("d", socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
        sock.setsockopt(vnet.SOL_PACKET, vnet.PACKET_VNET_HDR, 1)
        sock.bind(("wl0", 0))
        sock.settimeout(0.2)
        r = Reflector(sock, "10.77.0.2", lab.mac("c", "wl0"), lab.mac("d", "wl0"))
        r.start()
        try:
            assert lab.http_get("c", f"http://{LIVE_VIP}/").startswith(f"web {LIVE_LIP} ")
            assert lab.udp_ask("c", LIVE_VIP, 53).startswith(f"dns {LIVE_LIP} ")
        finally:
            r.stop.set()
            r.join(timeout=5)
            sock.close()
        assert not r.errors
        assert r.toa == 1
        assert r.forwarded >= 6
        assert (r.seen_partial > 0) is offload
