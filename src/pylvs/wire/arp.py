"""Neighbour resolution frames: ARP (RFC 826) and IPv6 neighbour discovery
(RFC 4861), Ethernet framed, as a director / keepalived sends them.

- ``request``: broadcast "who-has", target hardware address zero (as the
  kernel's arp_solicit sends it);
- ``reply`` / ``answer``: "is-at", unicast to the asker;
- ``gratuitous``: keepalived's gratuitous ARP (vrrp_arp.c
  send_gratuitous_arp_immediate): a broadcast *request* with sender and
  target protocol address both the announced address and target hardware
  address ff:ff:ff:ff:ff:ff (or the ``arping -A`` reply form);
- ``ns`` / ``na`` / ``unsolicited_na`` / ``answer_ns``: ICMPv6 135/136 with
  hop limit 255, the pseudo-header checksum, source / target link-layer
  address options; solicitations go to the target's solicited-node
  multicast group ff02::1:ffXX:XXXX on MAC 33:33:ff:XX:XX:XX, unsolicited
  advertisements (keepalived vrrp_ndisc.c) to ff02::1 on 33:33:00:00:00:01
  with the override flag.

Parsers accept one 802.1Q tag and return a reason string on bad input.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from pylvs.wire import csum
from pylvs.wire.ip import (
    ETH_HLEN,
    ETH_P_8021Q,
    ETH_P_ARP,
    ETH_P_IP,
    ETH_P_IPV6,
    IP6,
    IPPROTO_ICMPV6,
    IPV6_HLEN,
    Buffer,
)

ARPHRD_ETHER = 1
ARPHRD_IEEE802 = 6
ARPOP_REQUEST = 1
ARPOP_REPLY = 2
ARP_LEN = 28

BROADCAST = b"\xff" * 6
ZERO_MAC = bytes(6)

NDISC_ROUTER_SOLICITATION = 133
NDISC_ROUTER_ADVERTISEMENT = 134
NDISC_NEIGHBOUR_SOLICITATION = 135
NDISC_NEIGHBOUR_ADVERTISEMENT = 136
NDISC_HOPLIMIT = 255
ND_OPT_SOURCE_LL_ADDR = 1
ND_OPT_TARGET_LL_ADDR = 2
NA_ROUTER = 0x80  # flags byte of a neighbour advertisement
NA_SOLICITED = 0x40
NA_OVERRIDE = 0x20
ALL_NODES = bytes.fromhex("ff020000000000000000000000000001")
UNSPECIFIED = bytes(16)

_ETH = struct.Struct("!6s6sH")
_ARP = struct.Struct("!HHBBH6s4s6s4s")
_ND = struct.Struct("!BBHI16s")  # type, code, checksum, flags/reserved, target
_H = struct.Struct("!H")


class Arp(NamedTuple):
    op: int
    sha: bytes
    spa: bytes
    tha: bytes
    tpa: bytes

    @property
    def gratuitous(self) -> bool:
        """An announcement: sender and target protocol addresses are equal."""
        return self.spa == self.tpa


class Nd(NamedTuple):
    """A neighbour solicitation (type 135) or advertisement (136).
    ``flags``: NA_ROUTER | NA_SOLICITED | NA_OVERRIDE bits (0 for NS);
    ``lladdr``: the source (NS) or target (NA) link-layer address option."""

    type: int
    flags: int
    src: bytes
    dst: bytes
    target: bytes
    lladdr: bytes | None
    eth_src: bytes


def _eth(dst: bytes, src: bytes, ethertype: int) -> bytes:
    if len(dst) != 6 or len(src) != 6:
        raise ValueError("MAC addresses are 6 bytes")
    return _ETH.pack(dst, src, ethertype)


def _payload(frame: Buffer, ethertype: int) -> tuple[int, bytes, bytes] | str:
    """Offset of the payload of an Ethernet frame of ``ethertype``, its source
    and destination MAC; one 802.1Q tag is skipped."""
    if len(frame) < ETH_HLEN:
        return "short Ethernet header"
    off = 12
    etype = (frame[off] << 8) | frame[off + 1]
    if etype == ETH_P_8021Q:
        if len(frame) < ETH_HLEN + 4:
            return "short 802.1Q header"
        off += 4
        etype = (frame[off] << 8) | frame[off + 1]
    if etype != ethertype:
        return f"ethertype {etype:#06x}, not {ethertype:#06x}"
    return off + 2, bytes(frame[6:12]), bytes(frame[0:6])


def _arp(op: int, eth_dst: bytes, sha: bytes, spa: bytes, tha: bytes, tpa: bytes) -> bytes:
    if len(spa) != 4 or len(tpa) != 4 or len(tha) != 6:
        raise ValueError("ARP for IPv4 over Ethernet: 4-byte IPs, 6-byte MACs")
    return _eth(eth_dst, sha, ETH_P_ARP) + _ARP.pack(
        ARPHRD_ETHER, ETH_P_IP, 6, 4, op, sha, spa, tha, tpa
    )


def request(
    src_mac: bytes, src_ip: bytes, target_ip: bytes, *, dst_mac: bytes = BROADCAST
) -> bytes:
    """who-has ``target_ip`` tell ``src_ip`` (broadcast unless ``dst_mac``,
    as for a unicast reachability probe)."""
    return _arp(ARPOP_REQUEST, dst_mac, src_mac, src_ip, ZERO_MAC, target_ip)


def reply(src_mac: bytes, src_ip: bytes, dst_mac: bytes, dst_ip: bytes) -> bytes:
    """``src_ip`` is-at ``src_mac``, to ``dst_ip`` at ``dst_mac``."""
    return _arp(ARPOP_REPLY, dst_mac, src_mac, src_ip, dst_mac, dst_ip)


def answer(req: Arp, mac: bytes) -> bytes:
    """The reply to a parsed request for one of our addresses (arp_process)."""
    return reply(mac, req.tpa, req.sha, req.spa)


def gratuitous(mac: bytes, ip: bytes, *, op: int = ARPOP_REQUEST) -> bytes:
    """keepalived's gratuitous ARP for ``ip`` at ``mac``: a request with
    target hardware address ff:ff:ff:ff:ff:ff.  ``op=ARPOP_REPLY`` gives the
    reply form of ``arping -A``, whose target hardware address is ``mac``
    itself: Linux (arp_is_garp) only treats a reply with tha == sha as
    gratuitous, overriding a neighbour entry updated less than locktime ago."""
    return _arp(op, BROADCAST, mac, ip, mac if op == ARPOP_REPLY else BROADCAST, ip)


def parse_arp(frame: Buffer) -> Arp | str:
    """An Ethernet frame carrying an ARP request or reply for IPv4."""
    try:
        p = _payload(frame, ETH_P_ARP)
        if isinstance(p, str):
            return p
        off = p[0]
        if len(frame) - off < ARP_LEN:
            return "short ARP packet"
        hrd, pro, hln, pln, op, sha, spa, tha, tpa = _ARP.unpack_from(frame, off)
        if hrd not in (ARPHRD_ETHER, ARPHRD_IEEE802) or pro != ETH_P_IP:
            return f"ARP for hardware {hrd} / protocol {pro:#06x}"
        if hln != 6 or pln != 4:
            return "ARP address lengths are not 6/4"
        if op not in (ARPOP_REQUEST, ARPOP_REPLY):
            return f"ARP operation {op}"
        return Arp(op, sha, spa, tha, tpa)
    except (IndexError, ValueError, struct.error) as e:
        return f"malformed ARP: {e}"


def solicited_node(addr: bytes) -> bytes:
    """The solicited-node multicast address ff02::1:ffXX:XXXX of ``addr``."""
    if len(addr) != 16:
        raise ValueError("IPv6 address is 16 bytes")
    return bytes.fromhex("ff0200000000000000000001ff") + addr[13:]


def multicast_mac(group: bytes) -> bytes:
    """The Ethernet address of an IPv6 multicast group (RFC 2464: 33:33 + low 32 bits)."""
    return b"\x33\x33" + group[12:16]


def _nd(
    eth_src: bytes,
    eth_dst: bytes,
    src: bytes,
    dst: bytes,
    icmp_type: int,
    flags: int,
    target: bytes,
    opt_type: int,
    lladdr: bytes | None,
) -> bytes:
    if len(src) != 16 or len(dst) != 16 or len(target) != 16:
        raise ValueError("IPv6 addresses are 16 bytes")
    opt = b"" if lladdr is None else bytes((opt_type, 1)) + lladdr
    body = bytearray(_ND.pack(icmp_type, 0, 0, flags << 24, target) + opt)
    s = csum.add(body) + csum.pseudo6(src, dst, IPPROTO_ICMPV6, len(body))
    _H.pack_into(body, 2, csum.finish(s))
    ip6 = IP6.pack(6 << 28, len(body), IPPROTO_ICMPV6, NDISC_HOPLIMIT, src, dst)
    return _eth(eth_dst, eth_src, ETH_P_IPV6) + ip6 + bytes(body)


def ns(
    src_mac: bytes,
    src_ip: bytes,
    target_ip: bytes,
    *,
    dst_ip: bytes | None = None,
    dst_mac: bytes | None = None,
) -> bytes:
    """Neighbour solicitation for ``target_ip``, to its solicited-node group
    unless ``dst_ip`` (unicast probe, then give ``dst_mac``).  A source of
    :: (duplicate address detection) carries no source link-layer option."""
    dst = solicited_node(target_ip) if dst_ip is None else dst_ip
    if dst_mac is None:
        if dst[0] != 0xFF:
            raise ValueError("unicast solicitation needs dst_mac")
        dst_mac = multicast_mac(dst)
    lladdr = None if src_ip == UNSPECIFIED else src_mac
    return _nd(
        src_mac,
        dst_mac,
        src_ip,
        dst,
        NDISC_NEIGHBOUR_SOLICITATION,
        0,
        target_ip,
        ND_OPT_SOURCE_LL_ADDR,
        lladdr,
    )


def na(
    src_mac: bytes,
    target_ip: bytes,
    dst_mac: bytes,
    dst_ip: bytes,
    *,
    src_ip: bytes | None = None,
    router: bool = False,
    solicited: bool = True,
    override: bool = True,
    tllao: bool = True,
) -> bytes:
    """Neighbour advertisement: ``target_ip`` is at ``src_mac``."""
    flags = (NA_ROUTER if router else 0) | (NA_SOLICITED if solicited else 0)
    flags |= NA_OVERRIDE if override else 0
    src = target_ip if src_ip is None else src_ip
    return _nd(
        src_mac,
        dst_mac,
        src,
        dst_ip,
        NDISC_NEIGHBOUR_ADVERTISEMENT,
        flags,
        target_ip,
        ND_OPT_TARGET_LL_ADDR,
        src_mac if tllao else None,
    )


def unsolicited_na(mac: bytes, ip: bytes, *, router: bool = False) -> bytes:
    """keepalived's unsolicited advertisement: to all nodes, override set."""
    return na(mac, ip, multicast_mac(ALL_NODES), ALL_NODES, router=router, solicited=False)


def answer_ns(sol: Nd, mac: bytes, *, router: bool = False) -> bytes:
    """The advertisement answering a parsed solicitation for one of our
    addresses (ndisc_recv_ns): unicast and solicited, or to all nodes and
    unsolicited if it came from :: (duplicate address detection)."""
    if sol.src == UNSPECIFIED:
        return unsolicited_na(mac, sol.target, router=router)
    dst_mac = sol.lladdr if sol.lladdr is not None else sol.eth_src
    return na(mac, sol.target, dst_mac, sol.src, router=router, solicited=True)


def parse_nd(frame: Buffer) -> Nd | str:
    """An Ethernet frame carrying a neighbour solicitation or advertisement,
    validated as RFC 4861 7.1 asks (hop limit 255, code 0, checksum, length,
    target not multicast, options of non-zero length, no link-layer option
    from ::, solicited flag not on a multicast advertisement).  IPv6
    extension headers are not supported."""
    try:
        p = _payload(frame, ETH_P_IPV6)
        if isinstance(p, str):
            return p
        off, eth_src, _eth_dst = p
        if len(frame) - off < IPV6_HLEN:
            return "short IPv6 header"
        vtf, plen, nexthdr, hop, src, dst = IP6.unpack_from(frame, off)
        if vtf >> 28 != 6:
            return "not IPv6"
        if nexthdr != IPPROTO_ICMPV6:
            return f"next header {nexthdr}, not ICMPv6"
        icmp = off + IPV6_HLEN
        end = icmp + plen
        if end > len(frame):
            return "truncated IPv6 packet"
        if plen < 1:
            return "empty ICMPv6 message"
        if frame[icmp] not in (NDISC_NEIGHBOUR_SOLICITATION, NDISC_NEIGHBOUR_ADVERTISEMENT):
            return f"ICMPv6 type {frame[icmp]}"
        if plen < _ND.size:
            return "short neighbour discovery message"
        icmp_type, code, _, word, target = _ND.unpack_from(frame, icmp)
        if hop != NDISC_HOPLIMIT:
            return f"hop limit {hop}, not 255"
        if code != 0:
            return f"ICMPv6 code {code}"
        s = csum.add(frame, icmp, end) + csum.pseudo6(src, dst, IPPROTO_ICMPV6, plen)
        if csum.finish(s) != 0:
            return "bad ICMPv6 checksum"
        if target[0] == 0xFF:
            return "multicast target"
        want = ND_OPT_SOURCE_LL_ADDR
        if icmp_type == NDISC_NEIGHBOUR_ADVERTISEMENT:
            want = ND_OPT_TARGET_LL_ADDR
        lladdr = None
        o = icmp + _ND.size
        while o < end:
            if end - o < 2:
                return "truncated option"
            olen = frame[o + 1] * 8
            if olen == 0 or o + olen > end:
                return "bad option length"
            if frame[o] == want and olen >= 8:
                lladdr = bytes(frame[o + 2 : o + 8])
            o += olen
        flags = 0
        if icmp_type == NDISC_NEIGHBOUR_SOLICITATION:
            if src == UNSPECIFIED:
                if lladdr is not None:
                    return "link-layer option from ::"
                if dst[:13] != solicited_node(target)[:13]:
                    return "DAD solicitation not to a solicited-node group"
        else:
            flags = (word >> 24) & (NA_ROUTER | NA_SOLICITED | NA_OVERRIDE)
            if dst[0] == 0xFF and flags & NA_SOLICITED:
                return "solicited advertisement to a multicast address"
        return Nd(icmp_type, flags, src, dst, target, lladdr, eth_src)
    except (IndexError, ValueError, struct.error) as e:
        return f"malformed neighbour discovery: {e}"
