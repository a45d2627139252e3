"""In-place address/port rewriting of parsed packets (LVS NAT and FULLNAT).

The kernel's ip_vs_proto_{tcp,udp,sctp}.c snat/dnat handlers and
ip_vs_nat_icmp{,_v6} in ip_vs_core.c, for a ``Pkt`` from packet.parse:

- ``set_dst``/``set_src`` change an address and port.  The IPv4 header
  checksum and the transport checksum are updated incrementally (RFC 1624).
  A complete TCP/UDP/ICMPv6 checksum follows the pseudo-header and port
  changes; a partial one (``pkt.csum_partial``: the field holds the
  pseudo-header sum) follows only the address changes.  A UDP checksum of 0
  over IPv4 means "none" and stays 0; a computed UDP checksum of 0 is sent
  as 0xffff.  SCTP's CRC32c has no pseudo header: it is recomputed when a
  port changes or the checksum is partial (virtio cannot offload CRC32c).
- ``set_addrs``: both sides at once; ``nat4`` does it for an IPv4 TCP/UDP
  packet with one checksum update for the two changes (FULLNAT).
- ``dec_ttl``, ``set_macs``: the forwarding chores.
- ``parse_icmp_inner``/``rewrite_icmp_inner``/``nat_icmp``: ICMP errors about
  a connection's packets, with the quoted header rewritten as the kernel
  does and the ICMP checksum recomputed over the whole message.
- ``complete_csum``: turn a partial transport checksum into a complete one
  (for a packet sent on without a virtio_net_hdr).

A later fragment (``pkt.fragoff != 0``) carries no transport header: only
its IP header is rewritten; the first fragment's transport checksum gets the
pseudo-header change for the whole datagram.
"""

from __future__ import annotations

import struct

from pylvs.wire import csum
from pylvs.wire.ip import (
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPPROTO_SCTP,
    IPPROTO_TCP,
    IPPROTO_UDP,
)
from pylvs.wire.packet import Pkt, csum_offset_of, pseudo_sum, skip_exthdrs6

_H = struct.Struct("!H")
_HH = struct.Struct("!HH")
_ADDRS4 = struct.Struct("4s4s")
_ifb = int.from_bytes
_MASK128 = (1 << 128) - 1  # a multiple of 0xffff, as is 0xffffffff
_A4 = struct.Struct("4s")  # pack_into is faster than bytearray slice assignment
_A16 = struct.Struct("16s")
_MACS = struct.Struct("6s6s")
_LE32 = struct.Struct("<I")
_IP4 = struct.Struct("!BxHxxHxBH4s4s")  # ver/ihl, tot_len, frag_off, proto, check, saddr, daddr
_IP6_ADDRS = struct.Struct("!8x16s16s")

ICMP_DEST_UNREACH = 3
ICMP_SOURCE_QUENCH = 4
ICMP_TIME_EXCEEDED = 11
ICMPV6_INFOMSG_MASK = 0x80

_PORT_PROTOS = (IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP)

ICMP_INNER_REASONS = (
    "frag",  # the ICMP message is fragmented
    "not_icmp",  # not ICMP (IPv4) / ICMPv6 (IPv6)
    "icmp_not_error",  # an informational message (echo, ...)
    "inner_short",  # quoted IP header, or the quoted ports, cut short
    "inner_version",  # quoted header of another IP version
    "inner_ihl",  # quoted IPv4 header length wrong
    "inner_bad_exthdr",  # quoted IPv6 extension headers wrong
)
"""Every reason string ``parse_icmp_inner`` returns."""


# -- SCTP CRC32c (RFC 4960 appendix B; Castagnoli, reflected 0x82F63B78) ---------


def _crc32c_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return tuple(table)


_CRC32C = _crc32c_table()


def crc32c(data: bytes | bytearray | memoryview) -> int:
    """CRC32c of ``data`` (initial and final XOR with 0xffffffff)."""
    crc = 0xFFFFFFFF
    table = _CRC32C
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _sctp_fill(buf: bytearray, l4: int, end: int) -> None:
    """Write the SCTP common header's checksum (little-endian CRC32c, as Linux stores it)."""
    _LE32.pack_into(buf, l4 + 8, 0)
    _LE32.pack_into(buf, l4 + 8, crc32c(memoryview(buf)[l4:end]))


def sctp_csum_ok(pkt: Pkt) -> bool:
    """Verify the CRC32c of an SCTP packet (True when partial or a fragment)."""
    if pkt.proto != IPPROTO_SCTP or pkt.csum_partial or pkt.frag:
        return True
    buf = pkt.buf
    got: int = _LE32.unpack_from(buf, pkt.l4 + 8)[0]
    view = bytearray(buf[pkt.l4 : pkt.end])
    _LE32.pack_into(view, 8, 0)
    return crc32c(view) == got


# -- addresses and ports ---------------------------------------------------------


def _rewrite(
    pkt: Pkt, aoff: int, old: bytes, new: bytes, poff: int, oldport: int, newport: int
) -> bool:
    """Write address ``new`` at ``aoff`` and port ``newport`` at ``poff``; fix checksums.

    Returns whether the port was written (the packet has one).  This is the
    hot path, so the RFC 1624 updates (csum.replace, csum.partial_replace)
    are done inline on whole-address integers: 2**16 is 1 modulo 0xffff, so
    an address read as one big-endian integer is congruent to the sum of
    its 16-bit words, and a one's-complement fold is ``s % 0xffff or 0xffff``.
    """
    n = len(new)
    if n != len(old):
        raise ValueError(f"address of {n} bytes for an IPv{pkt.af} packet")
    buf = pkt.buf
    proto = pkt.proto
    has_port = pkt.fragoff == 0 and (proto == 6 or proto == 17 or proto == 132)
    addr_changed = old != new
    port_changed = has_port and oldport != newport
    if not (addr_changed or port_changed or pkt.csum_partial):
        return has_port
    # ``minus`` is congruent to the sum of the complements of the old words (~m in
    # RFC 1624 eqn. 3), ``plus`` to the sum of the new words (m').
    minus = plus = 0
    if addr_changed:
        plus = _ifb(new)
        if n == 4:
            _A4.pack_into(buf, aoff, new)
            minus = 0xFFFFFFFF - _ifb(old)
            c = pkt.l3 + 10
            s = ((_H.unpack_from(buf, c)[0] ^ 0xFFFF) + minus + plus) % 0xFFFF or 0xFFFF
            _H.pack_into(buf, c, s ^ 0xFFFF)
        else:
            _A16.pack_into(buf, aoff, new)
            minus = _MASK128 - _ifb(old)
    if port_changed:
        _H.pack_into(buf, poff, newport)
    if pkt.fragoff:
        return has_port
    if proto == 6:
        c = pkt.l4 + 16
    elif proto == 17:
        c = pkt.l4 + 6
    elif proto == IPPROTO_SCTP:
        # The CRC covers the whole datagram: not computable from a first fragment.
        if has_port and not pkt.frag and (port_changed or pkt.csum_partial):
            _sctp_fill(buf, pkt.l4, pkt.end)
            pkt.csum_partial = False
        return has_port
    elif proto == IPPROTO_ICMPV6:
        c = pkt.l4 + 2
    else:
        return has_port
    check = _H.unpack_from(buf, c)[0]
    if pkt.csum_partial:
        if addr_changed:  # the field is a pseudo-header sum: ports are not in it
            _H.pack_into(buf, c, (check + minus + plus) % 0xFFFF or 0xFFFF)
        return has_port
    if proto == 17 and check == 0 and pkt.af == 4:
        return has_port  # no checksum
    if port_changed:
        minus += 0xFFFF - oldport
        plus += newport
    s = (((check ^ 0xFFFF) + minus + plus) % 0xFFFF or 0xFFFF) ^ 0xFFFF
    if s == 0 and proto == 17:
        s = 0xFFFF
    _H.pack_into(buf, c, s)
    return has_port


def set_dst(pkt: Pkt, addr: bytes, port: int) -> None:
    """Rewrite the destination address and port (DNAT); checksums and ``pkt`` follow."""
    off = pkt.l3 + 16 if pkt.af == 4 else pkt.l3 + 24
    if _rewrite(pkt, off, pkt.daddr, addr, pkt.l4 + 2, pkt.dport, port):
        pkt.dport = port
    pkt.daddr = addr if type(addr) is bytes else bytes(addr)


def set_src(pkt: Pkt, addr: bytes, port: int) -> None:
    """Rewrite the source address and port (SNAT); checksums and ``pkt`` follow."""
    off = pkt.l3 + 12 if pkt.af == 4 else pkt.l3 + 8
    if _rewrite(pkt, off, pkt.saddr, addr, pkt.l4, pkt.sport, port):
        pkt.sport = port
    pkt.saddr = addr if type(addr) is bytes else bytes(addr)


def nat4(pkt: Pkt, saddr: bytes, sport: int, daddr: bytes, dport: int) -> None:
    """``set_src(pkt, saddr, sport)`` then ``set_dst(pkt, daddr, dport)`` in one
    pass, for an IPv4 TCP or UDP packet that has its transport header (``pkt.fragoff``
    0): the same bytes and ``pkt`` fields, with half the work for FULLNAT, which
    changes both sides.  Other packets (IPv6, SCTP, later fragments): ``set_addrs``.

    The RFC 1624 updates of the two calls add up (a one's-complement sum is
    associative, and the normalising ``% 0xffff or 0xffff`` is idempotent),
    so one update with both changes gives the checksum the two calls give;
    a side that changes nothing adds nothing, as there.
    """
    buf = pkt.buf
    old_s, old_d = pkt.saddr, pkt.daddr
    old_sp, old_dp = pkt.sport, pkt.dport
    addrs = 0  # ~m + m' of the changed addresses (see nat._rewrite)
    if old_s != saddr:
        addrs = 0xFFFFFFFF - _ifb(old_s) + _ifb(saddr)
    if old_d != daddr:
        addrs += 0xFFFFFFFF - _ifb(old_d) + _ifb(daddr)
    ports = 0
    if old_sp != sport:
        ports = 0xFFFF - old_sp + sport
    if old_dp != dport:
        ports += 0xFFFF - old_dp + dport
    addr_changed = old_s != saddr or old_d != daddr
    port_changed = old_sp != sport or old_dp != dport
    if addr_changed:
        l3 = pkt.l3
        _ADDRS4.pack_into(buf, l3 + 12, saddr, daddr)
        c = l3 + 10
        _H.pack_into(
            buf, c, (((_H.unpack_from(buf, c)[0] ^ 0xFFFF) + addrs) % 0xFFFF or 0xFFFF) ^ 0xFFFF
        )
    l4 = pkt.l4
    if port_changed:
        _HH.pack_into(buf, l4, sport, dport)
    proto = pkt.proto
    c = l4 + 16 if proto == 6 else l4 + 6
    check = _H.unpack_from(buf, c)[0]
    if pkt.csum_partial:
        if addr_changed:  # the field is a pseudo-header sum: ports are not in it
            _H.pack_into(buf, c, (check + addrs) % 0xFFFF or 0xFFFF)
    elif (addr_changed or port_changed) and not (proto == 17 and check == 0):
        s = (((check ^ 0xFFFF) + addrs + ports) % 0xFFFF or 0xFFFF) ^ 0xFFFF
        if s == 0 and proto == 17:
            s = 0xFFFF
        _H.pack_into(buf, c, s)
    pkt.saddr = saddr
    pkt.daddr = daddr
    pkt.sport = sport
    pkt.dport = dport


def set_addrs(pkt: Pkt, saddr: bytes, sport: int, daddr: bytes, dport: int) -> None:
    """Rewrite the source and the destination: ``nat4`` where it applies (IPv4 TCP
    or UDP with its transport header), else ``set_src``/``set_dst`` for each side
    that changes."""
    proto = pkt.proto
    if pkt.af == 4 and (proto == 6 or proto == 17) and not pkt.fragoff:
        nat4(pkt, saddr, sport, daddr, dport)
        return
    if saddr != pkt.saddr or sport != pkt.sport:
        set_src(pkt, saddr, sport)
    if daddr != pkt.daddr or dport != pkt.dport:
        set_dst(pkt, daddr, dport)


def set_macs(pkt: Pkt, dst_mac: bytes, src_mac: bytes) -> None:
    """Rewrite the Ethernet destination and source addresses."""
    if len(dst_mac) != 6 or len(src_mac) != 6:
        raise ValueError("MAC addresses are 6 bytes")
    _MACS.pack_into(pkt.buf, pkt.start, dst_mac, src_mac)


def dec_ttl(pkt: Pkt) -> bool:
    """Decrement the TTL / hop limit as a router does (ip_forward, ip6_forward).

    False, and the packet unchanged, when it is 1 or 0 already: the packet
    must be dropped (the kernel answers ICMP time exceeded).  This is
    ``ip.decrement_ttl`` on ``pkt``'s header, inlined: it runs per packet.
    """
    buf = pkt.buf
    l3 = pkt.l3
    if pkt.af == 4:
        ttl = buf[l3 + 8]
        if ttl <= 1:
            return False
        buf[l3 + 8] = ttl - 1
        # ip_decrease_ttl: the TTL is the high byte of its word, so the checksum
        # grows by 0x0100 (with the end-around carry).
        c = l3 + 10
        check = _H.unpack_from(buf, c)[0] + 0x100
        _H.pack_into(buf, c, (check + (check >= 0xFFFF)) & 0xFFFF)
        return True
    hl = buf[l3 + 7]
    if hl <= 1:
        return False
    buf[l3 + 7] = hl - 1
    return True


def complete_csum(pkt: Pkt) -> bool:
    """Compute the complete transport checksum from scratch; clears ``csum_partial``.

    For TCP, UDP, ICMP, ICMPv6 and SCTP in an unfragmented packet; False
    (nothing done) otherwise.  What a NIC does for CHECKSUM_PARTIAL, needed
    when the packet leaves without a virtio_net_hdr saying NEEDS_CSUM.
    """
    if pkt.frag:
        return False
    buf = pkt.buf
    l4 = pkt.l4
    end = pkt.end
    proto = pkt.proto
    if proto == IPPROTO_SCTP:
        _sctp_fill(buf, l4, end)
    elif proto == IPPROTO_ICMP:
        csum.put(buf, l4 + 2, 0)
        csum.put(buf, l4 + 2, csum.checksum(buf, l4, end))
    elif proto in (IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMPV6):
        c = l4 + csum_offset_of(proto)
        length = _H.unpack_from(buf, l4 + 4)[0] if proto == IPPROTO_UDP else end - l4
        csum.put(buf, c, 0)
        check = csum.finish(pseudo_sum(pkt, length) + csum.add(buf, l4, l4 + length))
        if check == 0 and proto == IPPROTO_UDP:
            check = 0xFFFF
        csum.put(buf, c, check)
    else:
        return False
    pkt.csum_partial = False
    return True


# -- ICMP errors about a connection -------------------------------------------


class Inner:
    """The IP header quoted in an ICMP error, and its transport ports.

    Offsets are absolute in the packet's buffer.  ``has_ports`` is False
    when the quoted packet is not TCP/UDP/SCTP, is a later fragment, or its
    first 4 transport bytes were not quoted.
    """

    __slots__ = (
        "af",
        "daddr",
        "dport",
        "fragoff",
        "has_ports",
        "ihl",
        "l3",
        "l4",
        "proto",
        "saddr",
        "sport",
    )

    def __init__(
        self,
        af: int,
        l3: int,
        ihl: int,
        proto: int,
        saddr: bytes,
        daddr: bytes,
        fragoff: int,
        has_ports: bool,
        sport: int,
        dport: int,
    ) -> None:
        self.af = af
        self.l3 = l3
        self.ihl = ihl
        self.l4 = l3 + ihl
        self.proto = proto
        self.saddr = saddr
        self.daddr = daddr
        self.fragoff = fragoff
        self.has_ports = has_ports
        self.sport = sport
        self.dport = dport

    def __repr__(self) -> str:
        return (
            f"Inner(af={self.af} proto={self.proto} {self.saddr.hex()}:{self.sport}"
            f" -> {self.daddr.hex()}:{self.dport})"
        )


def parse_icmp_inner(pkt: Pkt) -> Inner | str:
    """The quoted packet of an ICMP/ICMPv6 error, or a reason string.

    Error types as the kernel's ip_vs_in_icmp/ip_vs_out_icmp take them:
    IPv4 destination unreachable, source quench, time exceeded; any ICMPv6
    type below 128.  Like the kernel, ports are read only for TCP/UDP/SCTP
    in a first fragment; a missing inner IPv4 header or its ports makes the
    packet unrelated (reason "inner_short").
    """
    if pkt.frag:
        return "frag"
    buf = pkt.buf
    end = pkt.end
    off = pkt.l4 + 8
    if pkt.af == 4:
        if pkt.proto != IPPROTO_ICMP:
            return "not_icmp"
        t = pkt.icmp_type
        if t != ICMP_DEST_UNREACH and t != ICMP_SOURCE_QUENCH and t != ICMP_TIME_EXCEEDED:
            return "icmp_not_error"
        if end - off < 20:
            return "inner_short"
        vihl, _tot, frag_off, proto, _check, saddr, daddr = _IP4.unpack_from(buf, off)
        if vihl >> 4 != 4:
            return "inner_version"
        ihl = (vihl & 0x0F) << 2
        if ihl < 20 or off + ihl > end:
            return "inner_ihl"
        fragoff = (frag_off & 0x1FFF) << 3
        af = 4
    else:
        if pkt.proto != IPPROTO_ICMPV6:
            return "not_icmp"
        if pkt.icmp_type & ICMPV6_INFOMSG_MASK:
            return "icmp_not_error"
        if end - off < 40:
            return "inner_short"
        if buf[off] >> 4 != 6:
            return "inner_version"
        saddr, daddr = _IP6_ADDRS.unpack_from(buf, off)
        r = skip_exthdrs6(buf, off + 40, end, buf[off + 6])
        if isinstance(r, str):
            return "inner_" + r
        proto, l4, _frag, fragoff = r
        ihl = l4 - off
        af = 6
    sport = dport = 0
    has_ports = False
    if fragoff == 0 and proto in _PORT_PROTOS:
        l4 = off + ihl
        if end - l4 < 4:
            return "inner_short"
        sport, dport = _HH.unpack_from(buf, l4)
        has_ports = True
    return Inner(af, off, ihl, proto, saddr, daddr, fragoff, has_ports, sport, dport)


def _set_outer(pkt: Pkt, aoff: int, old: bytes, new: bytes) -> None:
    if len(new) != len(old):
        raise ValueError(f"address of {len(new)} bytes for an IPv{pkt.af} packet")
    buf = pkt.buf
    buf[aoff : aoff + len(new)] = new
    if pkt.af == 4:
        c = pkt.l3 + 10
        csum.put(buf, c, csum.replace_bytes(csum.get(buf, c), old, new))


def _put_inner_addr(buf: bytearray, off: int, addr: bytes, alen: int, what: str) -> bytes:
    if len(addr) != alen:
        raise ValueError(f"inner {what} address of the wrong family")
    buf[off : off + alen] = addr
    return bytes(addr)


def rewrite_icmp_inner(
    pkt: Pkt,
    inner: Inner,
    *,
    outer_saddr: bytes | None = None,
    outer_daddr: bytes | None = None,
    inner_saddr: bytes | None = None,
    inner_sport: int | None = None,
    inner_daddr: bytes | None = None,
    inner_dport: int | None = None,
) -> None:
    """Rewrite the given outer and quoted fields of an ICMP error, then its checksums.

    The outer IPv4 header checksum is updated, the quoted IPv4 header's
    checksum recomputed (ip_send_check), quoted ports written only when
    ``inner.has_ports``; the quoted transport checksum is left alone, as the
    kernel does.  Finally the ICMP(v6) checksum is computed over the whole
    message (ICMPv6 with the new outer pseudo header); ``csum_partial`` is
    cleared.
    """
    buf = pkt.buf
    v4 = pkt.af == 4
    if outer_saddr is not None:
        _set_outer(pkt, pkt.l3 + (12 if v4 else 8), pkt.saddr, outer_saddr)
        pkt.saddr = bytes(outer_saddr)
    if outer_daddr is not None:
        _set_outer(pkt, pkt.l3 + (16 if v4 else 24), pkt.daddr, outer_daddr)
        pkt.daddr = bytes(outer_daddr)
    il3 = inner.l3
    alen = 4 if v4 else 16
    if inner_saddr is not None:
        inner.saddr = _put_inner_addr(buf, il3 + (12 if v4 else 8), inner_saddr, alen, "source")
    if inner_daddr is not None:
        o = il3 + (16 if v4 else 24)
        inner.daddr = _put_inner_addr(buf, o, inner_daddr, alen, "destination")
    if v4 and (inner_saddr is not None or inner_daddr is not None):
        csum.put(buf, il3 + 10, 0)
        csum.put(buf, il3 + 10, csum.checksum(buf, il3, il3 + inner.ihl))
    if inner.has_ports:
        if inner_sport is not None:
            _H.pack_into(buf, inner.l4, inner_sport)
            inner.sport = inner_sport
        if inner_dport is not None:
            _H.pack_into(buf, inner.l4 + 2, inner_dport)
            inner.dport = inner_dport
    l4 = pkt.l4
    end = pkt.end
    csum.put(buf, l4 + 2, 0)
    if v4:
        check = csum.checksum(buf, l4, end)
    else:
        s = csum.pseudo6(pkt.saddr, pkt.daddr, IPPROTO_ICMPV6, end - l4)
        check = csum.finish(s + csum.add(buf, l4, end))
    csum.put(buf, l4 + 2, check)
    pkt.csum_partial = False


def nat_icmp(pkt: Pkt, inner: Inner, addr: bytes, port: int, inout: bool) -> None:
    """The kernel's ip_vs_nat_icmp/ip_vs_nat_icmp_v6 for LVS/NAT.

    ``inout`` True (an error from the real server side going to the client,
    quoting a packet sent to the real server): outer source, quoted
    destination and quoted destination port become the virtual ``addr``:``port``.
    ``inout`` False (an error from outside quoting a reply the director
    sent): outer destination, quoted source and quoted source port become
    the real server's ``addr``:``port``.
    """
    if inout:
        rewrite_icmp_inner(pkt, inner, outer_saddr=addr, inner_daddr=addr, inner_dport=port)
    else:
        rewrite_icmp_inner(pkt, inner, outer_daddr=addr, inner_saddr=addr, inner_sport=port)
