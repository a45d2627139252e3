"""ICMP errors a director sends, and the ICMP errors IPVS looks into.

Sending (net/ipv4/icmp.c __icmp_send, net/ipv6/icmp.c icmp6_send, as
IPVS calls them from ip_vs_xmit.c and ip_vs_core.c):

- "fragmentation needed" (type 3 code 4, next-hop MTU in the low 16 bits
  of the rest-of-header word) when a DF packet no longer fits, e.g. after
  TUN encapsulation (ensure_mtu_is_adequate, see ``check_mtu``); ICMPv6
  "packet too big" (type 2, MTU in the 32-bit word) for IPv6;
- "port unreachable" (3/3, ICMPv6 1/4) when a packet for a virtual service
  finds no real server (ip_vs_leave: "the TCP RST packet cannot be sent,
  instead that ICMP_PORT_UNREACH is sent here no matter it is TCP/UDP");
- "time exceeded" (11/0, ICMPv6 3/0) when the TTL / hop limit runs out
  (decrement_ttl).

Field by field, IPv4: TOS = (original TOS & 0x1e) | 0xc0 (IPTOS_TOS_MASK |
IPTOS_PREC_INTERNETCONTROL), no DF (the ICMP socket has PMTUDISC_DONT), TTL
64 (ip_default_ttl), id from the caller (ip_select_ident), source = the
original destination (for IPVS the VIP, a local address), destination =
the original source.  The quote is the original packet from its IP header
on, cut so the whole error is at most min(route MTU, 576) bytes.  IPv6:
traffic class 0, hop limit 64, the quote cut so the error fits 1280 bytes,
checksum over the IPv6 pseudo-header.  The kernel also rate-limits errors
(icmp_ratelimit / icmp_msgs_per_sec; PMTU errors are exempt): that is the
caller's business, as is the choice of a flow label (0 here by default).

The quote is taken as passed: IPVS quotes the packet after decrement_ttl.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from pylvs.wire import csum
from pylvs.wire.ip import (
    IP4,
    IP6,
    IP_DF,
    IP_OFFSET,
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPV4_HLEN,
    IPV6_HLEN,
    Buffer,
    parse_outer4,
    parse_outer6,
)

ICMP_DEST_UNREACH = 3
ICMP_SOURCE_QUENCH = 4
ICMP_REDIRECT = 5
ICMP_TIME_EXCEEDED = 11
ICMP_PARAMETERPROB = 12
ICMP_NET_UNREACH = 0
ICMP_HOST_UNREACH = 1
ICMP_PROT_UNREACH = 2
ICMP_PORT_UNREACH = 3
ICMP_FRAG_NEEDED = 4
ICMP_EXC_TTL = 0
NR_ICMP_TYPES = 18

ICMPV6_DEST_UNREACH = 1
ICMPV6_PKT_TOOBIG = 2
ICMPV6_TIME_EXCEED = 3
ICMPV6_PARAMPROB = 4
ICMPV6_NOROUTE = 0
ICMPV6_ADDR_UNREACH = 3
ICMPV6_PORT_UNREACH = 4
ICMPV6_EXC_HOPLIMIT = 0
ICMPV6_UNK_OPTION = 2
ICMPV6_INFOMSG_MASK = 0x80

ICMP_HLEN = 8
IPV6_MIN_MTU = 1280
ICMP_QUOTE_ROOM = 576  # RFC 1812 4.3.2.3: the whole error fits 576 bytes
TTL_DEFAULT = 64

# check_mtu verdicts (ensure_mtu_is_adequate)
MTU_OK = 0
MTU_DROP = 1  # drop silently
MTU_ICMP = 2  # drop and send frag_needed / packet_too_big6

_ERRORS4 = frozenset(
    (ICMP_DEST_UNREACH, ICMP_SOURCE_QUENCH, ICMP_REDIRECT, ICMP_TIME_EXCEEDED, ICMP_PARAMETERPROB)
)
_IPVS_RELATED4 = frozenset((ICMP_DEST_UNREACH, ICMP_SOURCE_QUENCH, ICMP_TIME_EXCEEDED))
_ICMP = struct.Struct("!BBHI")
_H = struct.Struct("!H")

_EXT_HDRS = frozenset((0, 43, 44, 51, 60))


class IcmpError(NamedTuple):
    """A parsed ICMP(v6) error: ``offset`` of the ICMP header and ``quoted``
    offset of the quoted IP header in the packet; ``info`` is the 32-bit
    word after the checksum (MTU for frag-needed: ``info & 0xffff``)."""

    type: int
    code: int
    info: int
    offset: int
    quoted: int


def is_error(icmp_type: int) -> bool:
    """ICMPv4 types that are errors and quote the offending packet
    (icmp_pointers[].error: 3, 4, 5, 11, 12)."""
    return icmp_type in _ERRORS4


def is_error6(icmp_type: int) -> bool:
    """ICMPv6 error types (< 128: 1..4 defined): ip_vs_in_icmp_v6 looks into all."""
    return 0 <= icmp_type < ICMPV6_INFOMSG_MASK


def ipvs_related(icmp_type: int) -> bool:
    """The ICMPv4 errors ip_vs_in_icmp / ip_vs_out_icmp relate to a
    connection: destination unreachable, source quench, time exceeded
    (redirect and parameter problem are left to the stack)."""
    return icmp_type in _IPVS_RELATED4


def _trim4(orig: Buffer) -> memoryview:
    """The original IPv4 packet without link padding (tot_len, when sane)."""
    view = memoryview(orig)
    if len(view) >= 4:
        tot = (view[2] << 8) | view[3]
        if IPV4_HLEN <= tot < len(view):
            return view[:tot]
    return view


def _trim6(orig: Buffer) -> memoryview:
    view = memoryview(orig)
    if len(view) >= IPV6_HLEN:
        end = IPV6_HLEN + ((view[4] << 8) | view[5])
        if end < len(view):
            return view[:end]
    return view


def may_send_error(orig: Buffer) -> bool:
    """icmp_send's own refusals, for an original IPv4 packet: no error about
    a non-first fragment, about an ICMP error (or unknown ICMP type), to a
    packet sent to a multicast / limited broadcast address, or from a zero,
    multicast or broadcast source.  (Subnet broadcasts need the routing
    table: the caller's check.)"""
    n = len(orig)
    if n < IPV4_HLEN or orig[0] >> 4 != 4:
        return False
    ihl = (orig[0] & 0x0F) * 4
    if ihl < IPV4_HLEN:
        return False
    if ((orig[6] << 8) | orig[7]) & IP_OFFSET:
        return False
    src0, dst0 = orig[12], orig[16]
    if dst0 >= 224 or src0 >= 224 or bytes(orig[12:16]) == b"\0\0\0\0":
        return False  # multicast (224/4), class E and 255.255.255.255
    if orig[9] == IPPROTO_ICMP:
        if n < ihl + 1:
            return False
        inner_type = orig[ihl]
        if inner_type > NR_ICMP_TYPES or is_error(inner_type):
            return False
    return True


def icmp_error(
    orig: Buffer,
    src: bytes | None,
    icmp_type: int,
    code: int,
    info: int = 0,
    *,
    ident: int = 0,
    ttl: int = TTL_DEFAULT,
    room: int = ICMP_QUOTE_ROOM,
) -> bytes:
    """An IPv4 ICMP message about ``orig`` (an IPv4 packet from its header),
    from ``src`` (None: the original destination, as the kernel picks for a
    packet to a local address) to the original source.  ``room`` is
    min(route MTU, 576)."""
    view = _trim4(orig)
    if len(view) < IPV4_HLEN or view[0] >> 4 != 4:
        raise ValueError("original packet is not IPv4")
    quote = view[: max(0, min(room, ICMP_QUOTE_ROOM) - IPV4_HLEN - ICMP_HLEN)]
    tos = view[1]
    if is_error(icmp_type):
        tos = (tos & 0x1E) | 0xC0
    saddr = bytes(view[16:20]) if src is None else src
    daddr = bytes(view[12:16])
    total = IPV4_HLEN + ICMP_HLEN + len(quote)
    buf = bytearray(total)
    IP4.pack_into(buf, 0, 0x45, tos, total, ident & 0xFFFF, 0, ttl, IPPROTO_ICMP, 0, saddr, daddr)
    _H.pack_into(buf, 10, csum.checksum(buf, 0, IPV4_HLEN))
    buf[IPV4_HLEN + ICMP_HLEN :] = quote
    _ICMP.pack_into(buf, IPV4_HLEN, icmp_type, code, 0, info & 0xFFFFFFFF)
    _H.pack_into(buf, IPV4_HLEN + 2, csum.checksum(buf, IPV4_HLEN))
    return bytes(buf)


def frag_needed(
    orig: Buffer, src: bytes | None, mtu: int, *, ident: int = 0, ttl: int = TTL_DEFAULT
) -> bytes:
    """ICMP_DEST_UNREACH / ICMP_FRAG_NEEDED with the next-hop MTU."""
    return icmp_error(
        orig, src, ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, mtu & 0xFFFF, ident=ident, ttl=ttl
    )


def dest_unreachable(
    orig: Buffer,
    src: bytes | None,
    code: int = ICMP_PORT_UNREACH,
    *,
    ident: int = 0,
    ttl: int = TTL_DEFAULT,
) -> bytes:
    """ICMP_DEST_UNREACH (default ICMP_PORT_UNREACH, what ip_vs_leave sends
    when a service has no available real server)."""
    return icmp_error(orig, src, ICMP_DEST_UNREACH, code, 0, ident=ident, ttl=ttl)


def time_exceeded(
    orig: Buffer, src: bytes | None, *, ident: int = 0, ttl: int = TTL_DEFAULT
) -> bytes:
    """ICMP_TIME_EXCEEDED / ICMP_EXC_TTL (decrement_ttl found TTL <= 1)."""
    return icmp_error(orig, src, ICMP_TIME_EXCEEDED, ICMP_EXC_TTL, 0, ident=ident, ttl=ttl)


def _upper6(packet: Buffer, end: int) -> tuple[int, int, int] | None:
    """Skip IPv6 extension headers: (upper protocol, its offset, fragment
    offset in bytes), or None if they run past ``end``."""
    nexthdr, off, frag = packet[6], IPV6_HLEN, 0
    for _ in range(16):
        if nexthdr not in _EXT_HDRS:
            return nexthdr, off, frag
        if off + 8 > end:
            return None
        if nexthdr == 44:
            frag = ((packet[off + 2] << 8) | packet[off + 3]) & 0xFFF8
            hlen = 8
        elif nexthdr == 51:
            hlen = (packet[off + 1] + 2) * 4
        else:
            hlen = (packet[off + 1] + 1) * 8
        nexthdr = packet[off]
        off += hlen
    return None


def may_send_error6(orig: Buffer, icmp_type: int, code: int = 0) -> bool:
    """icmp6_send's refusals: source unspecified or multicast; destination
    multicast unless the error is packet-too-big or parameter problem
    "unrecognized option"; an ICMPv6 error, or a first fragment too short
    to show its ICMPv6 type, as the original (is_ineligible)."""
    view = _trim6(orig)
    if len(view) < IPV6_HLEN or view[0] >> 4 != 6:
        return False
    if view[8] == 0xFF or bytes(view[8:24]) == bytes(16):
        return False
    if view[24] == 0xFF and not (
        icmp_type == ICMPV6_PKT_TOOBIG
        or (icmp_type == ICMPV6_PARAMPROB and code == ICMPV6_UNK_OPTION)
    ):
        return False
    up = _upper6(view, len(view))
    if up is None:
        return True  # is_ineligible: unparsable extension headers do not forbid
    proto, off, frag = up
    if proto != IPPROTO_ICMPV6 or frag:
        return True
    return off < len(view) and not is_error6(view[off])


def icmp6_error(
    orig: Buffer,
    src: bytes | None,
    icmp_type: int,
    code: int,
    info: int = 0,
    *,
    hop_limit: int = TTL_DEFAULT,
    flow_label: int = 0,
) -> bytes:
    """An ICMPv6 message about ``orig`` (an IPv6 packet), from ``src`` (None:
    the original destination) to the original source, at most 1280 bytes."""
    view = _trim6(orig)
    if len(view) < IPV6_HLEN or view[0] >> 4 != 6:
        raise ValueError("original packet is not IPv6")
    quote = view[: IPV6_MIN_MTU - IPV6_HLEN - ICMP_HLEN]
    saddr = bytes(view[24:40]) if src is None else src
    daddr = bytes(view[8:24])
    plen = ICMP_HLEN + len(quote)
    buf = bytearray(IPV6_HLEN + plen)
    IP6.pack_into(
        buf, 0, (6 << 28) | (flow_label & 0xFFFFF), plen, IPPROTO_ICMPV6, hop_limit, saddr, daddr
    )
    buf[IPV6_HLEN + ICMP_HLEN :] = quote
    _ICMP.pack_into(buf, IPV6_HLEN, icmp_type, code, 0, info & 0xFFFFFFFF)
    s = csum.add(buf, IPV6_HLEN) + csum.pseudo6(saddr, daddr, IPPROTO_ICMPV6, plen)
    _H.pack_into(buf, IPV6_HLEN + 2, csum.finish(s))
    return bytes(buf)


def packet_too_big6(
    orig: Buffer, src: bytes | None, mtu: int, *, hop_limit: int = TTL_DEFAULT
) -> bytes:
    """ICMPV6_PKT_TOOBIG with the MTU."""
    return icmp6_error(orig, src, ICMPV6_PKT_TOOBIG, 0, mtu, hop_limit=hop_limit)


def dest_unreachable6(
    orig: Buffer, src: bytes | None, code: int = ICMPV6_PORT_UNREACH, *, hop_limit: int = 64
) -> bytes:
    """ICMPV6_DEST_UNREACH (default ICMPV6_PORT_UNREACH, ip_vs_leave)."""
    return icmp6_error(orig, src, ICMPV6_DEST_UNREACH, code, 0, hop_limit=hop_limit)


def time_exceeded6(orig: Buffer, src: bytes | None, *, hop_limit: int = TTL_DEFAULT) -> bytes:
    """ICMPV6_TIME_EXCEED / ICMPV6_EXC_HOPLIMIT."""
    return icmp6_error(orig, src, ICMPV6_TIME_EXCEED, ICMPV6_EXC_HOPLIMIT, 0, hop_limit=hop_limit)


def check_mtu(
    packet: Buffer,
    mtu: int,
    *,
    tunnel: bool = False,
    pmtu_disc: bool = True,
    icmp_related: bool = False,
    gso: bool = False,
) -> int:
    """ensure_mtu_is_adequate for a packet about to leave with ``mtu`` (for
    TUN mode ``ipip.tunnel_mtu``): MTU_OK (send; an IPv4 packet without DF
    that is too long must be fragmented), MTU_DROP, or MTU_ICMP (drop and
    send frag_needed / packet_too_big6 to the source).  ``icmp_related``: the
    packet is an ICMP error being forwarded for a connection (no error about
    it); ``gso``: a GSO/GRO super-packet, segmented later (never too big)."""
    n = len(packet)
    if n < 1:
        return MTU_DROP
    if packet[0] >> 4 == 6:
        view = _trim6(packet)
        if gso or len(view) <= mtu:
            return MTU_OK
        up = _upper6(view, len(view))
        first = up is not None and up[2] == 0
        return MTU_ICMP if first and not icmp_related else MTU_DROP
    if tunnel and not pmtu_disc:
        return MTU_OK
    view = _trim4(packet)
    if n < IPV4_HLEN:
        return MTU_DROP
    df = ((view[6] << 8) | view[7]) & IP_DF
    if df and len(view) > mtu and not gso and not icmp_related:
        return MTU_ICMP
    return MTU_OK


def _parse_error(packet: Buffer, verify: bool, v6: bool) -> IcmpError | str:
    if v6:
        p6 = parse_outer6(packet)
        if isinstance(p6, str):
            return p6
        _, end, _ = p6
        up = _upper6(packet, end)
        if up is None:
            return "bad IPv6 extension headers"
        proto, off, frag = up
        if proto != IPPROTO_ICMPV6 or frag:
            return "not ICMPv6"
    else:
        p4 = parse_outer4(packet)
        if isinstance(p4, str):
            return p4
        off, end, proto = p4
        if proto != IPPROTO_ICMP:
            return "not ICMP"
    if end - off < ICMP_HLEN:
        return "short ICMP header"
    icmp_type, code, _, info = _ICMP.unpack_from(packet, off)
    if not (is_error6(icmp_type) if v6 else is_error(icmp_type)):
        return f"ICMP type {icmp_type} is not an error"
    if verify:
        if v6:
            s = csum.add(packet, off, end)
            s += csum.pseudo6(bytes(packet[8:24]), bytes(packet[24:40]), IPPROTO_ICMPV6, end - off)
            bad = csum.finish(s) != 0
        else:
            bad = csum.checksum(packet, off, end) != 0
        if bad:
            return "bad ICMP checksum"
    quoted = off + ICMP_HLEN
    need = IPV6_HLEN if v6 else IPV4_HLEN
    if end - quoted < need:
        return "quoted packet too short"
    if packet[quoted] >> 4 != (6 if v6 else 4):
        return "quoted packet of another IP version"
    return IcmpError(icmp_type, code, info, off, quoted)


def parse_error(packet: Buffer, *, verify: bool = True) -> IcmpError | str:
    """An IPv4 packet carrying an ICMP error, with at least a quoted IPv4
    header; ``verify`` checks the ICMP checksum (ip_vs_in_icmp does, unless
    the NIC did)."""
    try:
        return _parse_error(packet, verify, False)
    except (IndexError, ValueError, struct.error) as e:
        return f"malformed ICMP: {e}"


def parse_error6(packet: Buffer, *, verify: bool = True) -> IcmpError | str:
    """The same for an IPv6 packet carrying an ICMPv6 error."""
    try:
        return _parse_error(packet, verify, True)
    except (IndexError, ValueError, struct.error) as e:
        return f"malformed ICMPv6: {e}"
