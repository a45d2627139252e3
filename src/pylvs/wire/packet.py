"""Parsing an Ethernet frame into the offsets and fields the data plane needs.

``parse`` is the per-packet entry of the packet data plane: it reads one
Ethernet frame held in a bytearray (as filled by ``recv_into`` on an
AF_PACKET socket, after the optional virtio_net_hdr) and returns a ``Pkt``
with the offsets of the IP and transport headers, or a short reason string
for a frame it will not handle ("short_eth", "bad_ihl", "ip_csum", "arp",
...), which the data plane counts.  Nothing here raises on malformed input.
The common case (untagged IPv4 TCP/UDP without options, not a fragment) has
its own path, one unpack, making the same checks as the general one.

Lengths are checked the way the kernel's ip_rcv_core/ipv6_rcv do: the IP
total (payload) length must fit in the frame, and bytes after it (Ethernet
padding of short frames) are not part of the packet, so ``Pkt.end`` is set
to the end of the IP packet.  The IPv4 header checksum is verified.  The
transport checksum is not (``l4_csum_ok`` is separate so the hot path can
skip it, e.g. when the vnet header says DATA_VALID).

Checksum states (see csum.py): ``partial=True`` says the frame came with
virtio_net_hdr NEEDS_CSUM (the kernel's CHECKSUM_PARTIAL): its TCP/UDP
checksum field holds the pseudo-header sum only.
"""

from __future__ import annotations

import struct

from pylvs.wire import csum

# The numbers are ip.py's; the data plane takes them from here.
from pylvs.wire.ip import ETH_HLEN as ETH_HLEN
from pylvs.wire.ip import ETH_P_8021AD as ETH_P_8021AD
from pylvs.wire.ip import ETH_P_8021Q as ETH_P_8021Q
from pylvs.wire.ip import ETH_P_ARP as ETH_P_ARP
from pylvs.wire.ip import ETH_P_IP as ETH_P_IP
from pylvs.wire.ip import ETH_P_IPV6 as ETH_P_IPV6
from pylvs.wire.ip import IPPROTO_AH as IPPROTO_AH
from pylvs.wire.ip import IPPROTO_ESP as IPPROTO_ESP
from pylvs.wire.ip import IPPROTO_GRE as IPPROTO_GRE
from pylvs.wire.ip import IPPROTO_ICMP as IPPROTO_ICMP
from pylvs.wire.ip import IPPROTO_ICMPV6 as IPPROTO_ICMPV6
from pylvs.wire.ip import IPPROTO_IPIP as IPPROTO_IPIP
from pylvs.wire.ip import IPPROTO_IPV6 as IPPROTO_IPV6
from pylvs.wire.ip import IPPROTO_SCTP as IPPROTO_SCTP
from pylvs.wire.ip import IPPROTO_TCP as IPPROTO_TCP
from pylvs.wire.ip import IPPROTO_UDP as IPPROTO_UDP

VLAN_HLEN = 4

# IPv6 extension headers skipped to reach the transport header (RFC 8200 4.);
# AH and ESP are left as the packet's protocol, as IPVS treats them.
_NEXTHDR_HOP = 0
_NEXTHDR_ROUTING = 43
_NEXTHDR_FRAGMENT = 44
_NEXTHDR_DEST = 60
_MAX_EXTHDRS = 8

PARSE_REASONS = (
    "short_eth",  # shorter than an Ethernet (+VLAN) header, or bad bounds
    "qinq",  # two VLAN tags
    "arp",  # ARP, handled apart
    "ethertype",  # neither IPv4, IPv6 nor ARP
    "short_ip",  # IP header cut short
    "bad_version",  # IP version not matching the ethertype
    "bad_ihl",  # IPv4 header length below 20
    "bad_len",  # IP total/payload length beyond the frame, or below the header
    "ip_csum",  # IPv4 header checksum wrong
    "bad_exthdr",  # IPv6 extension headers cut short or too many (> 8)
    "short_l4",  # transport header cut short
    "bad_doff",  # TCP data offset below 20 or beyond the packet
    "bad_udp_len",  # UDP length below 8 or beyond the packet
)
"""Every reason string ``parse`` returns, for counters."""

TCP_FIN = 0x01
TCP_SYN = 0x02
TCP_RST = 0x04
TCP_PSH = 0x08
TCP_ACK = 0x10
TCP_URG = 0x20

_H = struct.Struct("!H")
_HH = struct.Struct("!HH")
_HHH = struct.Struct("!HHH")
_IP4W = struct.Struct("!6H4s4s")  # five words, the checksum, saddr, daddr
_ifb = int.from_bytes
_BB = struct.Struct("!BB")
_IP6 = struct.Struct("!IHBx16s16s")  # ver/tc/flow, payload_len, nexthdr, saddr, daddr
_TCP = struct.Struct("!HH8xBB")  # sport, dport, doff/res, flags
_EXT = struct.Struct("!BB")  # nexthdr, hdrlen (8-octet units, not counting the first 8)
_FRAG6 = struct.Struct("!BxH")  # nexthdr, offset << 3 | M
# parse's common case in one read: ethertype; the IPv4 header's five words, checksum and
# addresses; the ports, the UDP length (TCP: sequence number, unused), the TCP data offset
# and flags (UDP: payload, unused).  Bytes past the frame are read but not used.
_FAST4 = struct.Struct("!12xH6H4s4sHHH6xBB")


class Pkt:
    """A parsed frame: offsets into ``buf`` and the fields of its headers.

    Offsets are absolute indexes into ``buf``.  ``end`` is the end of the IP
    packet (Ethernet padding excluded).  ``ihl`` is the IP header length
    including skipped IPv6 extension headers, so ``l4 == l3 + ihl``.
    ``sport``/``dport`` are 0 for protocols without ports and for fragments
    other than the first (``fragoff != 0``: no transport header present).
    ``vlan`` is the 802.1Q TCI (PCP/DEI/VID) of a tagged frame, else None.
    ``icmp_type``/``icmp_code`` are -1 unless the packet is ICMP/ICMPv6.
    """

    __slots__ = (
        "af",
        "buf",
        "csum_partial",
        "daddr",
        "dport",
        "end",
        "frag",
        "fragoff",
        "icmp_code",
        "icmp_type",
        "ihl",
        "l3",
        "l4",
        "proto",
        "saddr",
        "sport",
        "start",
        "tcp_flags",
        "vlan",
    )

    buf: bytearray
    start: int
    end: int
    l3: int
    af: int
    ihl: int
    proto: int
    l4: int
    saddr: bytes
    daddr: bytes
    sport: int
    dport: int
    tcp_flags: int
    frag: bool
    fragoff: int
    csum_partial: bool
    vlan: int | None
    icmp_type: int
    icmp_code: int

    def __repr__(self) -> str:
        return (
            f"Pkt(af={self.af} proto={self.proto} {self.saddr.hex()}:{self.sport}"
            f" -> {self.daddr.hex()}:{self.dport} len={self.end - self.l3}"
            f" flags={self.tcp_flags:#x} frag={self.frag} partial={self.csum_partial})"
        )

    @property
    def has_l4(self) -> bool:
        """True when the transport header is in this packet (not a later fragment)."""
        return self.fragoff == 0

    def frame(self) -> memoryview:
        """The frame's bytes (Ethernet header to end of IP packet), no copy."""
        return memoryview(self.buf)[self.start : self.end]


def parse(buf: bytearray, start: int, end: int, partial: bool) -> Pkt | str:
    """Parse the Ethernet frame ``buf[start:end]``; a ``Pkt`` or a reason string.

    The common case (untagged IPv4, no options, TCP or UDP, not a fragment)
    is read with one unpack and the same checks, in the same order, as
    ``parse_any`` makes, which takes every other frame (and gives the same
    answer for these: tests/wire/test_fuzz.py compares the two).
    """
    size = len(buf)
    if start < 0 or end > size or end - start < 14 or size - start < 48:  # 48: _FAST4.size
        return parse_any(buf, start, end, partial)
    etype, w0, tot, w2, frag_off, w4, w5, saddr, daddr, sport, dport, ulen, doff, fl = (
        _FAST4.unpack_from(buf, start)
    )
    proto = w4 & 0xFF
    # Literal numbers on the hot path: module constants would be global lookups.
    if (
        etype != 0x0800  # ETH_P_IP
        or w0 >> 8 != 0x45  # version 4, IHL 5
        or frag_off & 0x3FFF  # MF or an offset: a fragment
        or not (proto == 6 or proto == 17)  # IPPROTO_TCP, IPPROTO_UDP
    ):
        return parse_any(buf, start, end, partial)
    l3 = start + 14
    if end - l3 < 20:
        return "short_ip"
    if tot < 20 or l3 + tot > end:
        return "bad_len"
    end = l3 + tot
    # See parse_any for the identity behind this header checksum test.
    if (w0 + tot + w2 + frag_off + w4 + w5 + _ifb(saddr) + _ifb(daddr)) % 0xFFFF:
        return "ip_csum"
    l4 = l3 + 20
    if proto == 6:
        if end - l4 < 20:
            return "short_l4"
        doff = (doff >> 4) << 2
        if doff < 20 or l4 + doff > end:
            return "bad_doff"
    else:
        if end - l4 < 8:
            return "short_l4"
        if ulen < 8 or l4 + ulen > end:
            return "bad_udp_len"
        fl = 0
    # Built field by field, as parse_any does: an __init__ taking the 19 values costs
    # more than the assignments (this runs per packet).
    p = Pkt()
    p.buf = buf
    p.start = start
    p.end = end
    p.l3 = l3
    p.af = 4
    p.ihl = 20
    p.proto = proto
    p.l4 = l4
    p.saddr = saddr
    p.daddr = daddr
    p.sport = sport
    p.dport = dport
    p.tcp_flags = fl
    p.frag = False
    p.fragoff = 0
    p.csum_partial = partial
    p.vlan = None
    p.icmp_type = -1
    p.icmp_code = -1
    return p


def parse_any(buf: bytearray, start: int, end: int, partial: bool) -> Pkt | str:
    """``parse`` for any frame (VLAN tags, IPv6, IP options, fragments, other protocols)."""
    if start < 0 or end > len(buf) or end - start < ETH_HLEN:
        return "short_eth"
    etype = _H.unpack_from(buf, start + 12)[0]
    l3 = start + ETH_HLEN
    vlan: int | None = None
    # Literal numbers on the hot path: module constants would be global lookups.
    if etype == 0x8100 or etype == 0x88A8:  # ETH_P_8021Q, ETH_P_8021AD
        if end - l3 < VLAN_HLEN:
            return "short_eth"
        vlan, etype = _HH.unpack_from(buf, l3)
        l3 += VLAN_HLEN
        if etype == 0x8100 or etype == 0x88A8:
            return "qinq"

    fragoff = 0
    if etype == 0x0800:  # ETH_P_IP
        if end - l3 < 20:
            return "short_ip"
        w0, tot, w2, frag_off, w4, w5, saddr, daddr = _IP4W.unpack_from(buf, l3)
        if w0 >> 12 != 4:
            return "bad_version"
        ihl = (w0 >> 6) & 0x3C
        if ihl < 20:
            return "bad_ihl"
        if l3 + ihl > end:
            return "short_ip"
        if tot < ihl or l3 + tot > end:
            return "bad_len"
        end = l3 + tot
        if ihl == 20:
            # The header's one's-complement sum must be all ones, i.e. 0 modulo
            # 0xffff (csum.py's identity; 2**16 == 1 modulo 0xffff, so a 32-bit
            # address counts as the sum of its two words).  Nonzero: version 4.
            s = w0 + tot + w2 + frag_off + w4 + w5 + _ifb(saddr) + _ifb(daddr)
            if s % 0xFFFF:
                return "ip_csum"
        elif csum.checksum(buf, l3, l3 + ihl):
            return "ip_csum"
        proto = w4 & 0xFF
        frag = (frag_off & 0x3FFF) != 0
        fragoff = (frag_off & 0x1FFF) << 3
        af = 4
    elif etype == 0x86DD:  # ETH_P_IPV6
        if end - l3 < 40:
            return "short_ip"
        vtf, plen, proto, saddr, daddr = _IP6.unpack_from(buf, l3)
        if vtf >> 28 != 6:
            return "bad_version"
        if l3 + 40 + plen > end:
            return "bad_len"
        end = l3 + 40 + plen
        r = skip_exthdrs6(buf, l3 + 40, end, proto)
        if isinstance(r, str):
            return r
        proto, off, frag, fragoff = r
        ihl = off - l3
        af = 6
    elif etype == 0x0806:  # ETH_P_ARP
        return "arp"
    else:
        return "ethertype"

    l4 = l3 + ihl
    sport = dport = tcp_flags = 0
    icmp_type = icmp_code = -1
    if fragoff == 0:
        if proto == 6:  # IPPROTO_TCP
            if end - l4 < 20:
                return "short_l4"
            sport, dport, doff, tcp_flags = _TCP.unpack_from(buf, l4)
            doff = (doff >> 4) << 2
            if doff < 20 or l4 + doff > end:
                return "bad_doff"
        elif proto == 17:  # IPPROTO_UDP
            if end - l4 < 8:
                return "short_l4"
            sport, dport, ulen = _HHH.unpack_from(buf, l4)
            # In a first fragment the length is the whole datagram's.
            if ulen < 8 or (l4 + ulen > end and not frag):
                return "bad_udp_len"
        elif proto == 1 or proto == 58:  # IPPROTO_ICMP, IPPROTO_ICMPV6
            if end - l4 < 8:
                return "short_l4"
            icmp_type, icmp_code = _BB.unpack_from(buf, l4)
        elif proto == 132:  # IPPROTO_SCTP
            if end - l4 < 12:
                return "short_l4"
            sport, dport = _HH.unpack_from(buf, l4)

    p = Pkt()
    p.buf = buf
    p.start = start
    p.end = end
    p.l3 = l3
    p.af = af
    p.ihl = ihl
    p.proto = proto
    p.l4 = l4
    p.saddr = saddr
    p.daddr = daddr
    p.sport = sport
    p.dport = dport
    p.tcp_flags = tcp_flags
    p.frag = frag
    p.fragoff = fragoff
    p.csum_partial = partial
    p.vlan = vlan
    p.icmp_type = icmp_type
    p.icmp_code = icmp_code
    return p


def skip_exthdrs6(
    buf: bytearray, off: int, end: int, nexthdr: int
) -> tuple[int, int, bool, int] | str:
    """Skip IPv6 extension headers from ``off`` (just after the fixed header).

    Returns (protocol, transport offset, is a fragment, fragment offset in
    bytes) or "bad_exthdr".  An atomic fragment (offset 0, M clear) is a
    whole packet (RFC 6946).
    """
    frag = False
    fragoff = 0
    for _ in range(_MAX_EXTHDRS):
        if nexthdr in (_NEXTHDR_HOP, _NEXTHDR_ROUTING, _NEXTHDR_DEST):
            if end - off < 8:
                return "bad_exthdr"
            nexthdr, hl = _EXT.unpack_from(buf, off)
            off += (hl + 1) << 3
            if off > end:
                return "bad_exthdr"
        elif nexthdr == _NEXTHDR_FRAGMENT:
            if end - off < 8:
                return "bad_exthdr"
            nexthdr, fo = _FRAG6.unpack_from(buf, off)
            off += 8
            if fo & 0xFFF9:
                frag = True
                fragoff = fo & 0xFFF8
        else:
            return nexthdr, off, frag, fragoff
    return "bad_exthdr"


def csum_offset_of(proto: int) -> int:
    """Offset of the checksum field in a transport header (-1: none we know)."""
    if proto == IPPROTO_TCP:
        return 16
    if proto == IPPROTO_UDP:
        return 6
    if proto in (IPPROTO_ICMP, IPPROTO_ICMPV6):
        return 2
    if proto == IPPROTO_SCTP:
        return 8
    return -1


def pseudo_sum(pkt: Pkt, length: int) -> int:
    """Unfolded pseudo-header sum of ``pkt`` for a transport length."""
    if pkt.af == 4:
        return csum.pseudo4(pkt.saddr, pkt.daddr, pkt.proto, length)
    return csum.pseudo6(pkt.saddr, pkt.daddr, pkt.proto, length)


def l4_csum_ok(pkt: Pkt) -> bool:
    """Verify a complete TCP/UDP/ICMP/ICMPv6 checksum (the full sum, pseudo header incl.).

    True when there is nothing to verify here: a partial checksum (not
    computed yet), a fragment (the checksum covers the whole datagram), a
    UDP checksum of 0 over IPv4 (none), or another protocol (SCTP's CRC32c
    is checked by ``nat.sctp_csum_ok``).
    """
    if pkt.csum_partial or pkt.frag:
        return True
    buf = pkt.buf
    l4 = pkt.l4
    proto = pkt.proto
    if proto == IPPROTO_TCP:
        length = pkt.end - l4
    elif proto == IPPROTO_UDP:
        length = _H.unpack_from(buf, l4 + 4)[0]
        if _H.unpack_from(buf, l4 + 6)[0] == 0:
            return pkt.af == 4
    elif proto == IPPROTO_ICMP:
        return csum.checksum(buf, l4, pkt.end) == 0
    elif proto == IPPROTO_ICMPV6:
        length = pkt.end - l4
    else:
        return True
    s = pseudo_sum(pkt, length) + csum.add(buf, l4, l4 + length)
    return csum.fold(s) == 0xFFFF
