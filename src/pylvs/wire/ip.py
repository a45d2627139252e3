"""IPv4 and IPv6 headers: the numbers and layouts the wire modules share.

Ethertypes (include/uapi/linux/if_ether.h), IP protocol numbers (in.h),
header lengths and fragment bits (ip.h), the full IPv4 and IPv6 header
layouts, the header checks of ip_rcv / ipv6_rcv for a packet that starts
with its IP header, and the forwarding TTL step.  The parsers return a
reason string instead of raising, as every parser in ``pylvs.wire`` does.

The per-packet parser (``packet.parse``) and rewriter (``nat``) keep their
own narrower layouts and literal numbers: a global lookup or a call costs
there.
"""

from __future__ import annotations

import struct

from pylvs.wire import csum

Buffer = bytes | bytearray | memoryview

ETH_HLEN = 14
ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_8021Q = 0x8100
ETH_P_8021AD = 0x88A8
ETH_P_IPV6 = 0x86DD

IPPROTO_ICMP = 1
IPPROTO_IPIP = 4
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_IPV6 = 41
IPPROTO_GRE = 47
IPPROTO_ESP = 50
IPPROTO_AH = 51
IPPROTO_ICMPV6 = 58
IPPROTO_SCTP = 132

IPV4_HLEN = 20
IPV6_HLEN = 40
IP_DF = 0x4000
IP_MF = 0x2000
IP_OFFSET = 0x1FFF

# version/ihl, tos, tot_len, id, frag_off, ttl, protocol, check, saddr, daddr
IP4 = struct.Struct("!BBHHHBBH4s4s")
# version/class/flow, payload_len, next header, hop limit, saddr, daddr
IP6 = struct.Struct("!IHBB16s16s")
_H = struct.Struct("!H")


def parse_outer4(packet: Buffer, *, partial: bool = False) -> tuple[int, int, int] | str:
    """Validate an IPv4 header as ip_rcv does; returns (ihl, end, protocol).

    ``end`` is the packet's end per tot_len (trailing link padding ignored).
    ``partial`` accepts a packet shorter than tot_len (a copy quoted in an
    ICMP error)."""
    n = len(packet)
    if n < IPV4_HLEN:
        return "short IPv4 header"
    b0 = packet[0]
    if b0 >> 4 != 4:
        return "not IPv4"
    ihl = (b0 & 0x0F) * 4
    if ihl < IPV4_HLEN:
        return "bad IPv4 header length"
    if n < ihl:
        return "truncated IPv4 options"
    tot_len = (packet[2] << 8) | packet[3]
    if tot_len < ihl:
        return "bad IPv4 total length"
    if tot_len > n:
        if not partial:
            return "truncated IPv4 packet"
        tot_len = n
    if csum.checksum(packet, 0, ihl) != 0:
        return "bad IPv4 header checksum"
    frag = (packet[6] << 8) | packet[7]
    if frag & (IP_MF | IP_OFFSET):
        return "IPv4 fragment (reassemble first)"
    return ihl, tot_len, packet[9]


def parse_outer6(packet: Buffer, *, partial: bool = False) -> tuple[int, int, int] | str:
    """Validate a fixed IPv6 header; returns (40, end, next header)."""
    n = len(packet)
    if n < IPV6_HLEN:
        return "short IPv6 header"
    if packet[0] >> 4 != 6:
        return "not IPv6"
    end = IPV6_HLEN + ((packet[4] << 8) | packet[5])
    if end > n:
        if not partial:
            return "truncated IPv6 packet"
        end = n
    return IPV6_HLEN, end, packet[6]


def parse_outer(
    packet: Buffer, *, partial: bool = False
) -> tuple[int, int, int, bytes, bytes] | str:
    """``parse_outer4`` for a version 4 packet, else ``parse_outer6``, with the
    addresses: (header length, end, protocol, source, destination)."""
    if len(packet) < 1:
        return "empty packet"
    if packet[0] >> 4 == 4:
        p = parse_outer4(packet, partial=partial)
        if isinstance(p, str):
            return p
        return (*p, bytes(packet[12:16]), bytes(packet[16:20]))
    p = parse_outer6(packet, partial=partial)
    if isinstance(p, str):
        return p
    return (*p, bytes(packet[8:24]), bytes(packet[24:40]))


def decrement_ttl(buf: bytearray | memoryview, off: int = 0) -> bool:
    """Forwarding's TTL step (ip_forward / ip6_forward, ip_vs_xmit.c
    decrement_ttl) on the IP header at ``buf[off:]``: False, the packet
    unchanged, when the TTL or hop limit is <= 1 (the caller drops it and
    may send ICMP time exceeded); else decrement it and, for IPv4, update the
    header checksum.  ``nat.dec_ttl`` inlines it for a parsed packet."""
    if buf[off] >> 4 == 6:
        hop = buf[off + 7]
        if hop <= 1:
            return False
        buf[off + 7] = hop - 1
        return True
    ttl = buf[off + 8]
    if ttl <= 1:
        return False
    buf[off + 8] = ttl - 1
    # ip_decrease_ttl: the TTL is the high byte of its word, so the checksum
    # grows by 0x0100 (with the end-around carry).
    c = off + 10
    check = _H.unpack_from(buf, c)[0] + 0x100
    _H.pack_into(buf, c, (check + (check >= 0xFFFF)) & 0xFFFF)
    return True
