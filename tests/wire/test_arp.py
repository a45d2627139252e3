"""arp: ARP and IPv6 neighbour discovery frames checked against scapy."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
    in6_getnsma,
    in6_getnsmac,
)
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Packet, Raw

from pylvs.wire import arp
from tests.wire.helpers import KernelLab, kernel_lab, scapy_chksum

MAC = bytes.fromhex("020000000001")
PEER_MAC = bytes.fromhex("020000000002")
VIP = socket.inet_aton("192.0.2.100")
PEER = socket.inet_aton("192.0.2.7")
VIP6 = socket.inet_pton(socket.AF_INET6, "2001:db8::100")
PEER6 = socket.inet_pton(socket.AF_INET6, "fe80::2")


def mac(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


def ip6(b: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET6, b)


def test_request() -> None:
    f = Ether(arp.request(MAC, VIP, PEER))
    assert f.dst == "ff:ff:ff:ff:ff:ff" and f.src == mac(MAC) and f.type == 0x0806
    a = f[ARP]
    assert (a.hwtype, a.ptype, a.hwlen, a.plen, a.op) == (1, 0x0800, 6, 4, 1)
    assert a.hwsrc == mac(MAC) and a.psrc == "192.0.2.100"
    assert a.hwdst == "00:00:00:00:00:00" and a.pdst == "192.0.2.7"
    unicast = Ether(arp.request(MAC, VIP, PEER, dst_mac=PEER_MAC))
    assert unicast.dst == mac(PEER_MAC) and unicast[ARP].hwdst == "00:00:00:00:00:00"


def test_reply_and_answer() -> None:
    f = Ether(arp.reply(MAC, VIP, PEER_MAC, PEER))
    assert f.dst == mac(PEER_MAC) and f.src == mac(MAC)
    a = f[ARP]
    assert a.op == 2 and a.hwsrc == mac(MAC) and a.psrc == "192.0.2.100"
    assert a.hwdst == mac(PEER_MAC) and a.pdst == "192.0.2.7"
    req = bytes(
        Ether(src=mac(PEER_MAC), dst="ff:ff:ff:ff:ff:ff")
        / ARP(op=1, hwsrc=mac(PEER_MAC), psrc="192.0.2.7", pdst="192.0.2.100")
    )
    parsed = arp.parse_arp(req)
    assert isinstance(parsed, arp.Arp)
    assert arp.answer(parsed, MAC) == arp.reply(MAC, VIP, PEER_MAC, PEER)


def test_gratuitous_like_keepalived() -> None:
    f = Ether(arp.gratuitous(MAC, VIP))
    a = f[ARP]
    assert f.dst == "ff:ff:ff:ff:ff:ff" and a.op == 1
    assert a.psrc == a.pdst == "192.0.2.100"
    assert a.hwsrc == mac(MAC) and a.hwdst == "ff:ff:ff:ff:ff:ff"
    r = Ether(arp.gratuitous(MAC, VIP, op=arp.ARPOP_REPLY))[ARP]
    assert r.op == 2 and r.hwdst == r.hwsrc == mac(MAC)  # arping -A
    g = arp.parse_arp(arp.gratuitous(MAC, VIP))
    assert isinstance(g, arp.Arp) and g.gratuitous


@pytest.mark.parametrize(
    "frame",
    [
        Ether() / ARP(op=1, hwsrc=mac(PEER_MAC), psrc="192.0.2.7", pdst="192.0.2.100"),
        Ether() / Dot1Q(vlan=10) / ARP(op=2, hwsrc=mac(PEER_MAC), psrc="192.0.2.7"),
        Ether() / ARP(op=1, psrc="192.0.2.7") / Raw(b"\x00" * 18),  # padded to 60
    ],
)
def test_parse_arp_scapy_built(frame: Packet) -> None:
    a = arp.parse_arp(bytes(frame))
    assert isinstance(a, arp.Arp), a
    s = frame[ARP]
    assert a.op == s.op and a.sha == bytes.fromhex(s.hwsrc.replace(":", ""))
    assert a.spa == socket.inet_aton(s.psrc) and a.tpa == socket.inet_aton(s.pdst)
    assert a.tha == bytes.fromhex(s.hwdst.replace(":", ""))


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (bytes(Ether() / ARP(op=3)), "operation"),
        (bytes(Ether() / ARP(ptype=0x86DD)), "protocol"),
        (bytes(Ether() / ARP(hwlen=8)), "lengths"),
        (bytes(Ether() / IPv6()), "ethertype"),
        (bytes(Ether() / ARP())[:30], "short ARP"),
        (b"\x00" * 10, "short Ethernet"),
        (bytes(Ether(type=0x8100))[:15], "802.1Q"),
    ],
)
def test_parse_arp_reasons(raw: bytes, why: str) -> None:
    r = arp.parse_arp(raw)
    assert isinstance(r, str) and why in r, r


def test_multicast_addresses() -> None:
    for a in ("2001:db8::1234:5678", "fe80::aabb:ccdd:eeff", "::1"):
        b = socket.inet_pton(socket.AF_INET6, a)
        assert arp.solicited_node(b) == in6_getnsma(b)
        assert mac(arp.multicast_mac(arp.solicited_node(b))) == in6_getnsmac(in6_getnsma(b))
    assert mac(arp.multicast_mac(arp.ALL_NODES)) == "33:33:00:00:00:01"


def test_ns() -> None:
    f = Ether(arp.ns(MAC, PEER6, VIP6))
    assert f.type == 0x86DD and f.src == mac(MAC)
    assert f.dst == in6_getnsmac(in6_getnsma(VIP6))
    p = f[IPv6]
    assert p.hlim == 255 and p.nh == 58 and p.src == "fe80::2"
    assert p.dst == ip6(in6_getnsma(VIP6))
    s = f[ICMPv6ND_NS]
    assert s.type == 135 and s.code == 0 and s.tgt == "2001:db8::100"
    assert s.cksum == scapy_chksum(f, ICMPv6ND_NS)
    assert f[ICMPv6NDOptSrcLLAddr].lladdr == mac(MAC)
    dad = Ether(arp.ns(MAC, arp.UNSPECIFIED, VIP6))
    assert ICMPv6NDOptSrcLLAddr not in dad and dad[IPv6].src == "::"
    assert dad[ICMPv6ND_NS].cksum == scapy_chksum(dad, ICMPv6ND_NS)
    uni = Ether(arp.ns(MAC, PEER6, VIP6, dst_ip=VIP6, dst_mac=PEER_MAC))
    assert uni.dst == mac(PEER_MAC) and uni[IPv6].dst == "2001:db8::100"
    with pytest.raises(ValueError):
        arp.ns(MAC, PEER6, VIP6, dst_ip=VIP6)


def test_na_flags() -> None:
    f = Ether(arp.na(MAC, VIP6, PEER_MAC, PEER6, router=True))
    a = f[ICMPv6ND_NA]
    assert (a.R, a.S, a.O) == (1, 1, 1) and a.tgt == "2001:db8::100"
    assert f[IPv6].src == "2001:db8::100" and f[IPv6].dst == "fe80::2" and f[IPv6].hlim == 255
    assert f[ICMPv6NDOptDstLLAddr].lladdr == mac(MAC)
    assert a.cksum == scapy_chksum(f, ICMPv6ND_NA)
    u = Ether(arp.unsolicited_na(MAC, VIP6))
    assert u.dst == "33:33:00:00:00:01" and u[IPv6].dst == "ff02::1"
    ua = u[ICMPv6ND_NA]
    assert (ua.R, ua.S, ua.O) == (0, 0, 1) and ua.cksum == scapy_chksum(u, ICMPv6ND_NA)
    bare = Ether(arp.na(MAC, VIP6, PEER_MAC, PEER6, override=False, tllao=False))
    assert bare[ICMPv6ND_NA].O == 0 and ICMPv6NDOptDstLLAddr not in bare


def test_parse_nd_and_answer() -> None:
    sol = (
        Ether(src=mac(PEER_MAC))
        / IPv6(src="fe80::2", dst=ip6(in6_getnsma(VIP6)), hlim=255)
        / ICMPv6ND_NS(tgt="2001:db8::100")
        / ICMPv6NDOptSrcLLAddr(lladdr=mac(PEER_MAC))
    )
    n = arp.parse_nd(bytes(sol))
    assert isinstance(n, arp.Nd), n
    assert n.type == 135 and n.target == VIP6 and n.src == PEER6 and n.lladdr == PEER_MAC
    reply = Ether(arp.answer_ns(n, MAC))
    assert reply.dst == mac(PEER_MAC) and reply[IPv6].dst == "fe80::2"
    assert reply[ICMPv6ND_NA].S == 1 and reply[ICMPv6ND_NA].tgt == "2001:db8::100"
    dad = (
        Ether(src=mac(PEER_MAC))
        / IPv6(src="::", dst=ip6(in6_getnsma(VIP6)), hlim=255)
        / ICMPv6ND_NS(tgt="2001:db8::100")
    )
    nd = arp.parse_nd(bytes(dad))
    assert isinstance(nd, arp.Nd) and nd.lladdr is None
    r = Ether(arp.answer_ns(nd, MAC))
    assert r[IPv6].dst == "ff02::1" and r[ICMPv6ND_NA].S == 0
    adv = (
        Ether()
        / Dot1Q(vlan=3)
        / IPv6(src="fe80::2", dst="ff02::1", hlim=255)
        / ICMPv6ND_NA(tgt="fe80::2", R=1, S=0, O=1)
        / ICMPv6NDOptDstLLAddr(lladdr=mac(PEER_MAC))
    )
    na = arp.parse_nd(bytes(adv))
    assert isinstance(na, arp.Nd), na
    assert na.type == 136 and na.flags == arp.NA_ROUTER | arp.NA_OVERRIDE
    assert na.lladdr == PEER_MAC
    for own in (arp.ns(MAC, PEER6, VIP6), arp.unsolicited_na(MAC, VIP6)):
        assert isinstance(arp.parse_nd(own), arp.Nd)


def _ns(**kw: object) -> Packet:
    ip = {"src": "fe80::2", "dst": ip6(in6_getnsma(VIP6)), "hlim": 255}
    ip.update(kw)
    return Ether() / IPv6(**ip) / ICMPv6ND_NS(tgt="2001:db8::100")


@pytest.mark.parametrize(
    ("frame", "why"),
    [
        (_ns(hlim=64), "hop limit"),
        (Ether() / IPv6(hlim=255) / ICMPv6ND_NS(tgt="2001:db8::1", cksum=1), "checksum"),
        (Ether() / IPv6(hlim=255) / ICMPv6ND_NS(tgt="2001:db8::1", code=1), "code"),
        (Ether() / IPv6(hlim=255) / ICMPv6ND_NS(tgt="ff02::1"), "multicast target"),
        (_ns() / ICMPv6NDOptSrcLLAddr(len=0), "option length"),
        (_ns(src="::") / ICMPv6NDOptSrcLLAddr(lladdr=mac(MAC)), "from ::"),
        (_ns(src="::", dst="ff02::1"), "solicited-node"),
        (Ether() / IPv6(dst="ff02::1", hlim=255) / ICMPv6ND_NA(tgt="::1", S=1), "solicited"),
        (Ether() / IPv6(hlim=255) / ICMPv6EchoRequest(), "type 128"),
        (Ether() / IPv6(hlim=255, nh=0) / Raw(bytes(24)), "next header"),
        (Ether() / ARP(), "ethertype"),
    ],
)
def test_parse_nd_reasons(frame: Packet, why: str) -> None:
    r = arp.parse_nd(bytes(frame))
    assert isinstance(r, str) and why in r, r


def test_parse_nd_truncated() -> None:
    raw = bytes(_ns())
    for n in range(len(raw)):
        assert isinstance(arp.parse_nd(raw[:n]), str)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=120))
def test_parsers_never_raise(garbage: bytes) -> None:
    assert isinstance(arp.parse_arp(garbage), str | arp.Arp)
    assert isinstance(arp.parse_nd(garbage), str | arp.Nd)
    eth_arp = b"\xff" * 12 + b"\x08\x06" + garbage
    eth_v6 = b"\xff" * 12 + b"\x86\xdd" + garbage
    assert isinstance(arp.parse_arp(eth_arp), str | arp.Arp)
    assert isinstance(arp.parse_nd(eth_v6), str | arp.Nd)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 100), st.integers(0, 255))
def test_parse_survives_corruption(pos: int, value: int) -> None:
    for good in (arp.unsolicited_na(MAC, VIP6), arp.ns(MAC, PEER6, VIP6), arp.gratuitous(MAC, VIP)):
        bad = bytearray(good)
        bad[pos % len(bad)] = value
        assert isinstance(arp.parse_nd(bytes(bad)), str | arp.Nd)
        assert isinstance(arp.parse_arp(bytes(bad)), str | arp.Arp)


# -- against the kernel ----------------------------------------------------------


@pytest.fixture
def lab() -> Iterator[KernelLab]:
    yield from kernel_lab(KernelLab("wa"))


A4, B4 = socket.inet_aton("10.99.0.1"), socket.inet_aton("10.99.0.2")
A6 = socket.inet_pton(socket.AF_INET6, "2001:db8:99::1")
B6 = socket.inet_pton(socket.AF_INET6, "2001:db8:99::2")


def test_kernel_arp_frames_are_ours(lab: KernelLab) -> None:
    req = arp.request(lab.mac_b, B4, A4)
    lab.send(req)
    got = lab.expect(lambda f: f[12:14] == b"\x08\x06" and f[6:12] == lab.mac_a)
    parsed = arp.parse_arp(req)
    assert isinstance(parsed, arp.Arp)
    assert got == arp.answer(parsed, lab.mac_a)  # the kernel's reply, byte for byte
    u = lab.socket_in_a(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.sendto(b"x", ("10.99.0.3", 9))
        got = lab.expect(lambda f: f[12:14] == b"\x08\x06" and f[20:22] == b"\x00\x01")
    finally:
        u.close()
    assert got == arp.request(lab.mac_a, A4, socket.inet_aton("10.99.0.3"))


def test_kernel_nd_frames_are_ours(lab: KernelLab) -> None:
    sol = arp.ns(lab.mac_b, B6, A6)
    lab.send(sol)
    got = lab.expect(lambda f: f[12:14] == b"\x86\xdd" and f[20] == 58 and f[54] == 136)
    parsed = arp.parse_nd(sol)
    assert isinstance(parsed, arp.Nd)
    assert got == arp.answer_ns(parsed, lab.mac_a)  # the kernel's advertisement
    u = lab.socket_in_a(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        u.sendto(b"x", ("2001:db8:99::3", 9))
        got = lab.expect(lambda f: f[12:14] == b"\x86\xdd" and f[20] == 58 and f[54] == 135)
    finally:
        u.close()
    assert got == arp.ns(lab.mac_a, A6, socket.inet_pton(socket.AF_INET6, "2001:db8:99::3"))


def test_kernel_takes_our_announcements(lab: KernelLab) -> None:
    """Gratuitous ARP (both forms) and an unsolicited NA override the
    kernel's neighbour entries, even one updated a moment ago (locktime)."""
    old = mac(lab.mac_b)
    lab.ip("-n", lab.a, "neigh", "add", "10.99.0.2", "lladdr", old, "dev", "w0", "nud", "stale")
    lab.ip(
        "-n", lab.a, "neigh", "add", "2001:db8:99::2", "lladdr", old, "dev", "w0", "nud", "stale"
    )
    steps = [
        (arp.gratuitous(bytes.fromhex("020000000099"), B4), "10.99.0.2", "02:00:00:00:00:99"),
        (
            arp.gratuitous(bytes.fromhex("020000000098"), B4, op=arp.ARPOP_REPLY),
            "10.99.0.2",
            "02:00:00:00:00:98",
        ),
        (
            arp.unsolicited_na(bytes.fromhex("020000000097"), B6),
            "2001:db8:99::2",
            "02:00:00:00:00:97",
        ),
    ]
    for frame, addr, want in steps:
        lab.send(frame)
        deadline = time.monotonic() + 2
        while want not in lab.neigh(addr) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert want in lab.neigh(addr), lab.neigh(addr)
