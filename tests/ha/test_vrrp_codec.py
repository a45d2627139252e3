"""pylvs.wire.vrrp against scapy's independent VRRP / VRRPv3 layers, and bad input."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP
from scapy.layers.inet6 import IPv6
from scapy.layers.vrrp import VRRP, VRRPv3

from pylvs.wire import csum
from pylvs.wire import vrrp as v

SRC, GROUP = "10.0.0.1", v.MCAST_GROUP4


def scapy_v2(prio: int = 150, addrs: tuple[str, ...] = ("10.0.0.100",), pw: bytes = b"") -> bytes:
    auth = v.pass_data(pw) if pw else bytes(8)
    a1, a2 = struct.unpack("!II", auth)
    layer = VRRP(
        vrid=51,
        priority=prio,
        ipcount=len(addrs),
        addrlist=list(addrs),
        authtype=1 if pw else 0,
        adv=1,
        auth1=a1,
        auth2=a2,
    )
    return bytes(IP(src=SRC, dst=GROUP, ttl=255, tos=0xC0, id=0) / layer)


def scapy_v3(adv_cs: int = 100, addrs: tuple[str, ...] = ("10.0.0.100",), **ip: object) -> bytes:
    layer = VRRPv3(vrid=7, priority=100, ipcount=len(addrs), addrlist=list(addrs), adv=adv_cs)
    fields: dict[str, object] = {"src": SRC, "dst": GROUP, "ttl": 255, "tos": 0xC0, "id": 0, **ip}
    return bytes(IP(**fields) / layer)  # type: ignore[arg-type]


def test_v2_pass_matches_scapy_both_ways() -> None:
    adv = v.Advert(2, 51, 150, ("10.0.0.100", "10.0.0.101"), 1, v.AUTH_PASS, v.pass_data("s3cret"))
    ours = v.build_ip4(adv, SRC, GROUP)
    theirs = scapy_v2(addrs=("10.0.0.100", "10.0.0.101"), pw=b"s3cret")
    assert ours == theirs
    got = v.parse_ip4(theirs)
    assert isinstance(got, v.Received)
    assert (got.src, got.dst, got.ttl) == (SRC, GROUP, 255)
    assert got.advert == v.Advert(
        2, 51, 150, ("10.0.0.100", "10.0.0.101"), 1.0, 1, b"s3cret\0\0", got.advert.checksum
    )
    assert got.advert.checksum == IP(theirs)[VRRP].chksum


def test_v3_ipv4_checksum_includes_the_pseudo_header() -> None:
    adv = v.Advert(3, 7, 100, ("10.0.0.100",), 1.0)
    assert v.build_ip4(adv, SRC, GROUP) == scapy_v3()
    msg = v.build(adv, SRC, GROUP)
    # The same message from another source (or to another destination) is wrong.
    assert (
        v.parse(msg, "10.0.0.2", GROUP)
        == f"checksum: VRRPv3 checksum {csum.get(msg, 6):#06x} is wrong"
    )
    assert isinstance(v.parse(msg, SRC, GROUP), v.Advert)


def test_v3_unicast_checksum_compat_with_the_group_address() -> None:
    """keepalived's old unicast v3 checksum used the multicast group in the pseudo-header."""
    adv = v.Advert(3, 7, 100, ("10.0.0.100",), 0.35)
    old_style = v.build(adv, SRC, GROUP)
    assert isinstance(v.parse(old_style, SRC, "10.0.0.2"), str)
    got = v.parse(old_style, SRC, "10.0.0.2", alt_dst=GROUP)
    assert isinstance(got, v.Advert) and got.adver_int == 0.35


def test_v3_ipv6_matches_scapy() -> None:
    adv = v.Advert(3, 7, 100, ("fe80::1", "2001:db8::5"), 1.0)
    ours = v.build(adv, "fe80::2", v.MCAST_GROUP6)
    pkt = IPv6(src="fe80::2", dst="ff02::12", nh=112, hlim=255) / VRRPv3(
        vrid=7, priority=100, ipcount=2, addrlist=["fe80::1", "2001:db8::5"], adv=100
    )
    assert bytes(IPv6(bytes(pkt))[VRRPv3]) == ours
    got = v.parse(ours, "fe80::2", v.MCAST_GROUP6)
    assert isinstance(got, v.Advert) and got.family == 6 and got.addresses == adv.addresses


@pytest.mark.parametrize("cs", [1, 35, 100, 4095])
def test_v3_intervals_in_centiseconds(cs: int) -> None:
    got = v.parse_ip4(scapy_v3(adv_cs=cs))
    assert isinstance(got, v.Received) and got.advert.adver_int == cs / 100
    again = v.build_ip4(got.advert, SRC, GROUP)
    assert again == scapy_v3(adv_cs=cs)


def _mutate(pkt: bytes, off: int, value: bytes, fix_ip: bool = True) -> bytes:
    b = bytearray(pkt)
    b[off : off + len(value)] = value
    if fix_ip:
        b[10:12] = b"\0\0"
        csum.put(b, 10, csum.checksum(b, 0, 20))
    return bytes(b)


def _recsum(pkt: bytes, pseudo: bool) -> bytes:
    b = bytearray(pkt)
    b[26:28] = b"\0\0"
    s = csum.add(b, 20)
    if pseudo:
        s += csum.pseudo4(bytes(b[12:16]), bytes(b[16:20]), 112, len(b) - 20)
    csum.put(b, 26, csum.finish(s))
    return bytes(b)


GOOD3 = scapy_v3()
GOOD2 = scapy_v2(pw=b"pw")


@pytest.mark.parametrize(
    ("pkt", "kind", "text"),
    [
        (b"", "malformed", "shorter than an IPv4 header"),
        (GOOD3[:20], "malformed", "IPv4 total length"),
        (GOOD3[:24], "malformed", "IPv4 total length 32, received 24"),
        (_mutate(GOOD3[:24], 2, b"\x00\x18"), "malformed", "shorter than the VRRP header"),
        (
            _mutate(GOOD3, 2, b"\x00\x24") + bytes(4),
            "malformed",
            "16 bytes for 1 addresses, expected 12",
        ),
        (_mutate(GOOD3, 6, b"\x20\x00"), "malformed", "fragment"),
        (_mutate(GOOD3, 9, b"\x33"), "malformed", "IPsec AH"),
        (_mutate(GOOD3, 9, b"\x11"), "malformed", "IP protocol 17"),
        (_recsum(_mutate(GOOD3, 20, b"\x13"), True), "version", "VRRP version 1"),
        (_recsum(_mutate(GOOD3, 20, b"\x41"), True), "version", "VRRP version 4"),
        (_recsum(_mutate(GOOD3, 20, b"\x32"), True), "malformed", "packet type 2"),
        (_recsum(_mutate(GOOD3, 21, b"\x00"), True), "malformed", "VRID 0"),
        (_recsum(_mutate(GOOD3, 24, b"\x00\x00"), True), "malformed", "interval 0"),
        (_recsum(_mutate(GOOD3, 23, b"\x02"), True), "malformed", "expected 16"),
        (_mutate(GOOD3, 22, b"\xfe"), "checksum", "VRRPv3 checksum"),
        (_mutate(GOOD2, 22, b"\xfe"), "checksum", "VRRPv2 checksum"),
        (_recsum(_mutate(GOOD2, 25, b"\x00"), False), "malformed", "interval 0"),
        (GOOD3 + b"x", "malformed", "IPv4 total length 32, received 33"),
    ],
)
def test_bad_packets_give_a_reason(pkt: bytes, kind: str, text: str) -> None:
    got = v.parse_ip4(pkt)
    assert isinstance(got, str), got
    assert text in got
    assert v.reason_kind(got) == kind


def test_v2_over_ipv6_and_reason_kinds() -> None:
    msg = bytearray(v.build(v.Advert(3, 7, 100, ("fe80::1",), 1.0), "fe80::2", "ff02::12"))
    msg[0] = 0x21
    assert v.parse(bytes(msg), "fe80::2", "ff02::12") == "version: VRRP version 2 over IPv6"
    assert v.reason_kind("whatever went wrong") == "malformed"


@pytest.mark.parametrize(
    "adv",
    [
        v.Advert(4, 1, 100, (), 1.0),
        v.Advert(2, 0, 100, (), 1.0),
        v.Advert(2, 1, 256, (), 1.0),
        v.Advert(2, 1, 100, (), 0.5),
        v.Advert(2, 1, 100, (), 256),
        v.Advert(3, 1, 100, (), 41.0),
        v.Advert(2, 1, 100, ("fe80::1",), 1.0),
    ],
)
def test_build_refuses_what_cannot_be_sent(adv: v.Advert) -> None:
    with pytest.raises(ValueError):
        v.build(adv, SRC, GROUP)


def test_build_v2_over_ipv6_refused_and_pass_data() -> None:
    with pytest.raises(ValueError):
        v.build(v.Advert(2, 1, 100, ("fe80::1",), 1.0), "fe80::2", "ff02::12")
    assert v.pass_data("0123456789") == b"01234567"
    assert v.pass_data(b"ab") == b"ab\0\0\0\0\0\0"


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=120))
def test_random_bytes_never_raise(data: bytes) -> None:
    assert isinstance(v.parse_ip4(data), v.Received | str)
    assert isinstance(v.parse(data, SRC, GROUP), v.Advert | str)
    assert isinstance(v.parse(data, "fe80::1", "ff02::12"), v.Advert | str)


@settings(max_examples=400, deadline=None)
@given(st.integers(0, len(GOOD2) - 1), st.integers(0, 255), st.integers(0, len(GOOD2)))
def test_mutated_packets_never_raise(off: int, value: int, cut: int) -> None:
    pkt = bytearray(GOOD2)
    pkt[off] = value
    got = v.parse_ip4(bytes(pkt[:cut]) if cut else bytes(pkt))
    assert isinstance(got, v.Received | str)
    if isinstance(got, v.Received):  # what survives really is a valid advertisement
        assert v.build_ip4(got.advert, got.src, got.dst, ttl=got.ttl)[20:] == bytes(pkt)[20:]
