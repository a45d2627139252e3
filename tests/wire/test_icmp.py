"""icmp: the errors a director sends, checked against scapy, and the parser."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror, TCPerror
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    ICMPv6EchoRequest,
    ICMPv6PacketTooBig,
    ICMPv6TimeExceeded,
    IPerror6,
    IPv6,
    IPv6ExtHdrFragment,
)
from scapy.packet import Packet, Raw

from pylvs.wire import icmp, ipip
from pylvs.wire.ip import IPV4_HLEN
from tests.wire.helpers import KernelLab, kernel_lab, scapy_chksum

CLIENT = "203.0.113.9"
VIP = "192.0.2.100"
DIR = socket.inet_aton("192.0.2.1")
CLIENT6 = "2001:db8:1::9"
VIP6 = "2001:db8::100"
DIR6 = socket.inet_pton(socket.AF_INET6, "2001:db8::1")


def orig4(size: int = 1400, **kw: object) -> bytes:
    ip = {"src": CLIENT, "dst": VIP, "flags": "DF", "tos": 0x2B, "ttl": 57}
    ip.update(kw)
    p = IP(**ip) / TCP(sport=40000, dport=80, flags="PA")
    return bytes(p / Raw(b"d" * max(0, size - len(bytes(p)))))


def orig6(size: int = 1400) -> bytes:
    p = IPv6(src=CLIENT6, dst=VIP6, hlim=60) / TCP(sport=40000, dport=80)
    return bytes(p / Raw(b"d" * max(0, size - len(bytes(p)))))


def test_frag_needed_fields() -> None:
    orig = orig4(1500)
    out = icmp.frag_needed(orig, DIR, 1480, ident=321)
    assert len(out) == 576  # the whole error fits 576 bytes
    p = IP(out)
    assert p.proto == 1 and p.ttl == 64 and p.flags == 0 and p.id == 321
    assert p.tos == (0x2B & 0x1E) | 0xC0
    assert p.src == "192.0.2.1" and p.dst == CLIENT
    assert p.len == 576 and p.chksum == scapy_chksum(p, IP)
    i = p[ICMP]
    assert (i.type, i.code, i.nexthopmtu) == (3, 4, 1480)
    assert i.chksum == scapy_chksum(p, ICMP)
    assert bytes(out[20:24]) == bytes((3, 4)) + i.chksum.to_bytes(2, "big")
    assert out[24:28] == (1480).to_bytes(4, "big")
    assert out[28:] == orig[:548]
    quoted = p[IPerror]
    assert quoted.src == CLIENT and quoted.dst == VIP and quoted[TCPerror].dport == 80


def test_source_defaults_to_original_destination() -> None:
    p = IP(icmp.dest_unreachable(orig4(100), None))
    assert p.src == VIP and p.dst == CLIENT
    assert (p[ICMP].type, p[ICMP].code) == (3, 3)
    assert p[ICMP].chksum == scapy_chksum(p, ICMP)
    assert bytes(p[ICMP].payload) == orig4(100)  # a short packet is quoted whole


def test_time_exceeded_and_padding() -> None:
    orig = orig4(60)
    p = IP(icmp.time_exceeded(orig + b"\x00" * 6, DIR, ident=5))  # link padding not quoted
    assert (p[ICMP].type, p[ICMP].code) == (11, 0)
    assert bytes(p[ICMP].payload) == orig and p.len == 28 + 60
    assert p[ICMP].chksum == scapy_chksum(p, ICMP)


@settings(max_examples=100, deadline=None)
@given(st.integers(28, 1500), st.integers(68, 9000))
def test_quote_length(size: int, mtu: int) -> None:
    orig = orig4(size)
    out = icmp.frag_needed(orig, DIR, mtu)
    assert len(out) == 28 + min(len(orig), 548)
    assert out[28:] == orig[: len(out) - 28]
    small = icmp.icmp_error(orig, DIR, 3, 4, mtu, room=100)  # route MTU below 576
    assert len(small) == min(100, 28 + len(orig))
    out6 = icmp.packet_too_big6(orig6(max(size, 60)), DIR6, mtu)
    assert len(out6) == min(1280, 48 + max(size, 60))


def test_packet_too_big6_fields() -> None:
    orig = orig6(1500)
    out = icmp.packet_too_big6(orig, DIR6, 1460)
    assert len(out) == 1280
    p = IPv6(out)
    assert p.nh == 58 and p.hlim == 64 and p.tc == 0 and p.fl == 0
    assert p.src == "2001:db8::1" and p.dst == CLIENT6 and p.plen == 1240
    t = p[ICMPv6PacketTooBig]
    assert t.mtu == 1460 and t.code == 0
    assert t.cksum == scapy_chksum(p, ICMPv6PacketTooBig)
    assert out[48:] == orig[:1232]
    assert p[IPerror6].dst == VIP6


def test_dest_unreachable6_and_time_exceeded6() -> None:
    p = IPv6(icmp.dest_unreachable6(orig6(80), None))
    d = p[ICMPv6DestUnreach]
    assert p.src == VIP6 and d.code == 4 and d.cksum == scapy_chksum(p, ICMPv6DestUnreach)
    assert bytes(d.payload) == orig6(80)
    p = IPv6(icmp.time_exceeded6(orig6(80), DIR6, hop_limit=255))
    t = p[ICMPv6TimeExceeded]
    assert p.hlim == 255 and t.code == 0 and t.cksum == scapy_chksum(p, ICMPv6TimeExceeded)


def test_wrong_family_raises() -> None:
    with pytest.raises(ValueError):
        icmp.frag_needed(orig6(), DIR, 1400)
    with pytest.raises(ValueError):
        icmp.packet_too_big6(orig4(), DIR6, 1400)


def test_type_tables() -> None:
    assert [t for t in range(256) if icmp.is_error(t)] == [3, 4, 5, 11, 12]
    assert [t for t in range(256) if icmp.ipvs_related(t)] == [3, 4, 11]
    assert [t for t in range(256) if icmp.is_error6(t)] == list(range(128))
    assert not icmp.is_error6(128) and not icmp.is_error(0) and not icmp.is_error(8)


@pytest.mark.parametrize(
    ("pkt", "ok"),
    [
        (IP(src=CLIENT, dst=VIP) / TCP(), True),
        (IP(src=CLIENT, dst=VIP) / ICMP(type=8), True),
        (IP(src=CLIENT, dst=VIP, frag=100) / Raw(b"x" * 8), False),
        (IP(src=CLIENT, dst=VIP, flags="MF") / TCP(), True),  # first fragment
        (IP(src=CLIENT, dst=VIP) / ICMP(type=3) / IPerror() / TCP(), False),
        (IP(src=CLIENT, dst=VIP) / ICMP(type=11) / IPerror() / TCP(), False),
        (IP(src=CLIENT, dst=VIP) / ICMP(type=40), False),  # unknown type: assume an error
        (IP(src=CLIENT, dst="224.0.0.5") / UDP(), False),
        (IP(src=CLIENT, dst="255.255.255.255") / UDP(), False),
        (IP(src="0.0.0.0", dst=VIP) / UDP(), False),
    ],
)
def test_may_send_error(pkt: Packet, ok: bool) -> None:
    assert icmp.may_send_error(bytes(pkt)) is ok


@pytest.mark.parametrize(
    ("pkt", "icmp_type", "ok"),
    [
        (IPv6(src=CLIENT6, dst=VIP6) / TCP(), 1, True),
        (IPv6(src=CLIENT6, dst=VIP6) / ICMPv6EchoRequest(), 1, True),
        (IPv6(src=CLIENT6, dst=VIP6) / ICMPv6PacketTooBig() / IPerror6(), 2, False),
        (IPv6(src=CLIENT6, dst=VIP6) / IPv6ExtHdrFragment() / ICMPv6DestUnreach(), 1, False),
        (IPv6(src=CLIENT6, dst=VIP6) / IPv6ExtHdrFragment(offset=8, nh=58) / Raw(b"\x01"), 1, True),
        (IPv6(src=CLIENT6, dst="ff02::1") / UDP(), 2, True),  # too big: even to multicast
        (IPv6(src=CLIENT6, dst="ff02::1") / UDP(), 1, False),
        (IPv6(src="::", dst=VIP6) / UDP(), 1, False),
        (IPv6(src="ff02::1", dst=VIP6) / UDP(), 2, False),
    ],
)
def test_may_send_error6(pkt: Packet, icmp_type: int, ok: bool) -> None:
    assert icmp.may_send_error6(bytes(pkt), icmp_type) is ok


def test_check_mtu() -> None:
    big_df, big = orig4(1480), orig4(1480, flags=0)
    assert icmp.check_mtu(big_df, 1480) == icmp.MTU_OK
    assert icmp.check_mtu(big_df, 1479) == icmp.MTU_ICMP
    assert icmp.check_mtu(big_df + b"\0" * 10, 1480) == icmp.MTU_OK  # padding does not count
    assert icmp.check_mtu(big, 1000) == icmp.MTU_OK  # no DF: fragment
    assert icmp.check_mtu(big_df, 1000, tunnel=True, pmtu_disc=False) == icmp.MTU_OK
    assert icmp.check_mtu(big_df, 1000, tunnel=True) == icmp.MTU_ICMP
    assert icmp.check_mtu(big_df, 1000, gso=True) == icmp.MTU_OK
    assert icmp.check_mtu(big_df, 1000, icmp_related=True) == icmp.MTU_OK
    big6 = orig6(1400)
    assert icmp.check_mtu(big6, 1400) == icmp.MTU_OK
    assert icmp.check_mtu(big6, 1399) == icmp.MTU_ICMP
    assert icmp.check_mtu(big6, 1399, icmp_related=True) == icmp.MTU_DROP
    later = bytes(IPv6() / IPv6ExtHdrFragment(offset=100) / Raw(b"x" * 1400))
    assert icmp.check_mtu(later, 1280) == icmp.MTU_DROP  # only the first fragment gets one
    assert icmp.check_mtu(b"", 1500) == icmp.MTU_DROP


def test_parse_error_scapy_built() -> None:
    inner = IPerror(src=VIP, dst=CLIENT) / TCP(sport=80, dport=40000)
    pkt = IP(src="10.0.0.1", dst=VIP) / ICMP(type=3, code=4, nexthopmtu=1400) / inner
    e = icmp.parse_error(bytes(pkt))
    assert isinstance(e, icmp.IcmpError), e
    assert (e.type, e.code, e.info & 0xFFFF, e.offset, e.quoted) == (3, 4, 1400, 20, 28)
    assert bytes(pkt)[e.quoted :] == bytes(inner)
    pkt6 = IPv6(src="2001:db8::ff", dst=VIP6) / ICMPv6PacketTooBig(mtu=1300) / IPerror6() / TCP()
    e6 = icmp.parse_error6(bytes(pkt6))
    assert isinstance(e6, icmp.IcmpError), e6
    assert (e6.type, e6.info, e6.offset, e6.quoted) == (2, 1300, 40, 48)


def test_parse_own_errors() -> None:
    e = icmp.parse_error(icmp.frag_needed(orig4(), DIR, 1400))
    assert isinstance(e, icmp.IcmpError) and e.info == 1400 and e.quoted == 28
    e6 = icmp.parse_error6(icmp.packet_too_big6(orig6(), DIR6, 1400))
    assert isinstance(e6, icmp.IcmpError) and e6.info == 1400 and e6.quoted == 48


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (bytes(IP() / ICMP(type=8)), "not an error"),
        (bytes(IP() / ICMP(type=3, chksum=1) / IPerror()), "checksum"),
        (bytes(IP() / ICMP(type=3) / Raw(b"x" * 8)), "quoted"),
        (bytes(IP() / ICMP(type=3) / IPerror6()), "another IP version"),
        (bytes(IP() / TCP()), "not ICMP"),
        (bytes(IP(proto=1) / Raw(b"\x03\x00")), "short ICMP"),
    ],
)
def test_parse_error_reasons(raw: bytes, why: str) -> None:
    r = icmp.parse_error(raw)
    assert isinstance(r, str) and why in r, r


def test_parse_error6_reasons() -> None:
    bad = IPv6() / ICMPv6DestUnreach(cksum=1) / IPerror6()
    assert "checksum" in str(icmp.parse_error6(bytes(bad)))
    assert "not an error" in str(icmp.parse_error6(bytes(IPv6() / ICMPv6EchoRequest())))
    assert "not ICMPv6" in str(icmp.parse_error6(bytes(IPv6() / UDP())))
    ok = icmp.parse_error6(bytes(IPv6() / ICMPv6DestUnreach(cksum=1) / IPerror6()), verify=False)
    assert isinstance(ok, icmp.IcmpError)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=120), st.integers(0, 255))
def test_parsers_never_raise(garbage: bytes, t: int) -> None:
    assert isinstance(icmp.parse_error(garbage), str | icmp.IcmpError)
    assert isinstance(icmp.parse_error6(garbage), str | icmp.IcmpError)
    assert isinstance(icmp.may_send_error(garbage), bool)
    assert isinstance(icmp.may_send_error6(garbage, t), bool)
    assert icmp.check_mtu(garbage, 60) in (icmp.MTU_OK, icmp.MTU_DROP, icmp.MTU_ICMP)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 600), st.integers(0, 255))
def test_parse_survives_corruption(pos: int, value: int) -> None:
    out = bytearray(icmp.frag_needed(orig4(), DIR, 1400))
    out[pos % len(out)] = value
    assert isinstance(icmp.parse_error(bytes(out)), str | icmp.IcmpError)
    out6 = bytearray(icmp.packet_too_big6(orig6(300), DIR6, 1400))
    out6[pos % len(out6)] = value
    assert isinstance(icmp.parse_error6(bytes(out6)), str | icmp.IcmpError)


def test_tunnel_error_relay() -> None:
    """What ip_vs_in_icmp does with a frag-needed about one of our IPIP
    packets: parse, strip the tunnel from the (truncated) quote, and send the
    client its own error with the MTU less the tunnel overhead."""
    client_pkt = orig4(1400)
    tunneled = ipip.encap(client_pkt, DIR, socket.inet_aton("198.51.100.7"))
    router_err = icmp.frag_needed(tunneled, socket.inet_aton("10.9.9.9"), 1400)
    e = icmp.parse_error(router_err)
    assert isinstance(e, icmp.IcmpError)
    quoted = router_err[e.quoted :]
    d = ipip.decap(quoted, partial=True)
    assert isinstance(d, ipip.Decap) and d.outer_dst == socket.inet_aton("198.51.100.7")
    mtu = (e.info & 0xFFFF) - IPV4_HLEN
    raw = icmp.frag_needed(quoted[d.offset :], None, mtu)
    relay = IP(raw)
    assert relay.dst == CLIENT and relay.src == VIP and relay[ICMP].nexthopmtu == 1380
    assert relay[ICMP].chksum == scapy_chksum(relay, ICMP)
    assert raw[28:] == client_pkt[: 576 - 28 - 20]


# -- against the kernel: its own errors, and its acceptance of ours -------------


class RoutingLab(KernelLab):
    """``KernelLab`` with forwarding on in A and a second link, MTU 1300,
    towards 10.99.2.0/24 and 2001:db8:97::/64 (w2 in A, w3 in B)."""

    def configure(self) -> None:
        super().configure()
        self.veth("w2", "w3", "mtu", "1300")
        self.ip("-n", self.a, "addr", "add", "10.99.2.1/24", "dev", "w2")
        self.ip("-n", self.a, "addr", "add", "2001:db8:97::1/64", "dev", "w2", "nodad")
        self.ip("-n", self.a, "link", "set", "w2", "up")
        self.ip("-n", self.b, "link", "set", "w3", "up")
        forwarding = ("net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
        self.ip("netns", "exec", self.a, "sysctl", "-qw", *forwarding)

    def up(self) -> None:
        super().up()
        mb = ":".join(f"{x:02x}" for x in self.mac_b)
        for peer in ("10.99.0.2", "2001:db8:99::2"):
            self.ip("-n", self.a, "neigh", "add", peer, "lladdr", mb, "dev", "w0", "nud", "stale")
        time.sleep(0.2)
        self.drain()


@pytest.fixture
def lab() -> Iterator[RoutingLab]:
    yield from kernel_lab(RoutingLab("wi"))


def _icmp4(f: bytes) -> bool:
    return f[12:14] == b"\x08\x00" and f[23] == 1


def _icmp6(t: int) -> Callable[[bytes], bool]:
    return lambda f: f[12:14] == b"\x86\xdd" and f[20] == 58 and f[54] == t


def test_kernel_errors_are_ours(lab: RoutingLab) -> None:
    """The kernel's own ICMP errors equal ours byte for byte, given the id
    (IPv4) or flow label (IPv6) the kernel picked."""
    a4 = socket.inet_aton("10.99.0.1")
    cases4 = [
        # a UDP packet to a closed port of A
        (
            IP(src="10.99.0.2", dst="10.99.0.1", tos=0x2B, flags="DF")
            / UDP(sport=5, dport=9)
            / Raw(b"z" * 30),
            lambda p, i: icmp.dest_unreachable(p, None, ident=i),
        ),
        # a DF packet A must forward over its MTU-1300 link
        (
            IP(src="10.99.0.2", dst="10.99.2.5", flags="DF", ttl=9)
            / UDP(sport=5, dport=9)
            / Raw(b"z" * 1372),
            lambda p, i: icmp.frag_needed(p, a4, 1300, ident=i),
        ),
        # TTL 1 on a packet to forward
        (
            IP(src="10.99.0.2", dst="10.99.2.5", ttl=1) / UDP(sport=5, dport=9) / Raw(b"z" * 20),
            lambda p, i: icmp.time_exceeded(p, a4, ident=i),
        ),
    ]
    for pkt, ours in cases4:
        raw = bytes(pkt)
        lab.send_ip(raw)
        k = lab.expect(_icmp4)[14:]
        assert k == ours(raw, int.from_bytes(k[4:6], "big"))
    raw6 = bytes(
        IPv6(src="2001:db8:99::2", dst="2001:db8:99::1", tc=0x2B, fl=7)
        / UDP(sport=5, dport=9)
        / Raw(b"z" * 30)
    )
    lab.send_ip(raw6)
    k = lab.expect(_icmp6(1))[14:]
    flow = int.from_bytes(k[0:4], "big") & 0xFFFFF
    assert k == icmp.icmp6_error(raw6, None, 1, 4, flow_label=flow)
    big6 = bytes(
        IPv6(src="2001:db8:99::2", dst="2001:db8:97::5", hlim=9)
        / UDP(sport=5, dport=9)
        / Raw(b"z" * 1352)
    )
    lab.send_ip(big6)
    k = lab.expect(_icmp6(2))[14:]
    flow = int.from_bytes(k[0:4], "big") & 0xFFFFF
    a6 = socket.inet_pton(socket.AF_INET6, "2001:db8:99::1")
    assert k == icmp.icmp6_error(big6, a6, 2, 0, 1300, flow_label=flow)


def test_kernel_accepts_our_pmtu_errors(lab: RoutingLab) -> None:
    """A connected DF socket in A learns the MTU from our frag-needed and
    packet-too-big (the kernel checks checksums and the quoted packet)."""
    for route in (
        ("route", "add", "10.99.1.0/24", "via", "10.99.0.2"),
        ("-6", "route", "add", "2001:db8:98::/64", "via", "2001:db8:99::2"),
    ):
        lab.ip("-n", lab.a, *route)
    u = lab.socket_in_a(socket.AF_INET, socket.SOCK_DGRAM)
    u6 = lab.socket_in_a(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        u.setsockopt(socket.IPPROTO_IP, 10, 2)  # IP_MTU_DISCOVER = IP_PMTUDISC_DO
        u.connect(("10.99.1.5", 9999))
        u.send(b"x" * 1400)
        sent = lab.expect(lambda f: f[12:14] == b"\x08\x00" and f[23] == 17)[14:]
        lab.send_ip(icmp.frag_needed(sent, socket.inet_aton("10.99.0.2"), 1280, ident=1))
        u6.setsockopt(socket.IPPROTO_IPV6, 23, 2)  # IPV6_MTU_DISCOVER = IPV6_PMTUDISC_DO
        u6.connect(("2001:db8:98::5", 9999))
        u6.send(b"x" * 1400)
        sent6 = lab.expect(lambda f: f[12:14] == b"\x86\xdd" and f[20] == 17)[14:]
        b6 = socket.inet_pton(socket.AF_INET6, "2001:db8:99::2")
        lab.send_ip(icmp.packet_too_big6(sent6, b6, 1300))
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            mtu4 = u.getsockopt(socket.IPPROTO_IP, 14)  # IP_MTU
            mtu6 = u6.getsockopt(socket.IPPROTO_IPV6, 24)  # IPV6_MTU
            if (mtu4, mtu6) == (1280, 1300):
                break
            time.sleep(0.05)
        assert (mtu4, mtu6) == (1280, 1300)
    finally:
        u.close()
        u6.close()
