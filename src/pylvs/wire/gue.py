"""IPVS TUN mode over UDP (GUE) and GRE: ``--tun-type gue|gre``.

GUE, as ip_vs_xmit.c ipvs_gue_encap builds it: outer IP (fields as in
``ipip``, protocol UDP), then a UDP header with

- source port from the inner flow's hash, spread over the local port range
  (udp_flow_src_port: ``((h ^ h << 16) * (high - low)) >> 32 + low``).  The
  kernel hashes with a secret key, so only the property "one flow, one
  port" can be reproduced; ``flow_hash`` is our stable stand-in;
- destination port: the destination's ``--tun-port``;
- checksum 0 unless the destination has tun_flags ``csum`` or ``remcsum``
  (``--tun-csum`` / ``--tun-remcsum``), then the full UDP checksum (a
  computed 0 is sent as 0xffff);

then a GUE header, version 0, C=0, proto_ctype IPPROTO_IPIP (4) or
IPPROTO_IPV6 (41), hlen 0 and no flags -- except with ``remcsum`` on an
inner packet whose L4 checksum is still partial (CHECKSUM_PARTIAL): then
the P flag, a private flags word with REMCSUM, and the checksum start and
field offsets (relative to the inner packet) follow, hlen 2, and the inner
checksum field keeps its pseudo-header sum for the receiver to complete.

GRE (ipvs_gre_encap, kernels >= 5.7): outer protocol 47, a 4-byte GRE
header (version 0, protocol 0x0800 / 0x86dd), or 8 bytes with the C bit and
a checksum over GRE header and payload when tun_flags has ``csum``.

The decoders mirror the receiving kernel (fou.c gue_udp_recv with
validate_gue_flags, gre_parse_header) and also accept GUE version 1
(direct IPv4/IPv6 in UDP).  They return a reason string instead of raising.
"""

from __future__ import annotations

import struct
import zlib
from typing import NamedTuple

from pylvs.wire import csum
from pylvs.wire.ip import (
    ETH_P_IP,
    ETH_P_IPV6,
    IP_OFFSET,
    IPPROTO_GRE,
    IPPROTO_IPIP,
    IPPROTO_IPV6,
    IPPROTO_UDP,
    IPV4_HLEN,
    Buffer,
    parse_outer,
)
from pylvs.wire.ipip import (
    GRE_CSUM_HLEN,
    GRE_HLEN,
    GUE_HLEN,
    GUE_REMCSUM_OPTLEN,
    UDP_HLEN,
    Decap,
    inner_info,
    outer_hlen,
    put_outer,
    with_headroom,
)

GUE_FLAG_PRIV = 0x0001  # standard flags: private flags word present
GUE_PFLAG_REMCSUM = 0x80000000  # private flags: remote checksum offload
GRE_CSUM = 0x8000
GRE_ROUTING = 0x4000
GRE_KEY = 0x2000
GRE_SEQ = 0x1000
GRE_VERSION = 0x0007

PORT_RANGE = (32768, 60999)  # net.ipv4.ip_local_port_range default

_UDP = struct.Struct("!HHHH")
_GUE = struct.Struct("!BBH")
_REMCSUM = struct.Struct("!IHH")
_GRE = struct.Struct("!HH")
_H = struct.Struct("!H")

# Transport protocols whose first 4 bytes are ports (flow dissector keys).
_PORTS = frozenset((6, 17, 33, 132, 136))
_PROTO = [bytes((p,)) for p in range(256)]


class Gue(NamedTuple):
    """A parsed GUE header.  ``offset``: where the inner packet starts in
    the UDP payload; ``remcsum``: (start, field offset) relative to it."""

    version: int
    control: bool
    proto: int
    offset: int
    remcsum: tuple[int, int] | None


def flow_hash(inner: Buffer, seed: int = 0) -> int:
    """A stable 32-bit hash of the inner flow: addresses, protocol and, for
    TCP/UDP/SCTP/DCCP/UDP-Lite first fragments, the ports."""
    view = memoryview(inner)
    n = len(view)
    if n >= IPV4_HLEN and view[0] >> 4 == 4:
        l4 = (view[0] & 0x0F) * 4
        proto = view[9]
        h = zlib.crc32(view[12:20], seed)
        if ((view[6] << 8) | view[7]) & IP_OFFSET:
            return zlib.crc32(_PROTO[proto], h)  # non-first fragment: no ports
    elif n >= 40 and view[0] >> 4 == 6:
        l4, proto = 40, view[6]
        h = zlib.crc32(view[8:40], seed)
    else:
        return zlib.crc32(view[:20], seed)
    h = zlib.crc32(_PROTO[proto], h)
    if proto in _PORTS and n >= l4 + 4:
        h = zlib.crc32(view[l4 : l4 + 4], h)
    return h


def flow_src_port(hash32: int, low: int = PORT_RANGE[0], high: int = PORT_RANGE[1]) -> int:
    """udp_flow_src_port for a flow hash and the local port range."""
    h = hash32 & 0xFFFFFFFF
    h ^= (h << 16) & 0xFFFFFFFF
    return ((h * (high - low)) >> 32) + low


def gue_hlen(remcsum: bool = False) -> int:
    """UDP + GUE header bytes between the outer IP header and the inner packet."""
    return UDP_HLEN + GUE_HLEN + (GUE_REMCSUM_OPTLEN if remcsum else 0)


def gre_hlen(csum_flag: bool = False) -> int:
    return GRE_CSUM_HLEN if csum_flag else GRE_HLEN


def encap_gue_into(
    buf: bytearray | memoryview,
    off: int,
    inner_len: int,
    outer_src: bytes,
    outer_dst: bytes,
    *,
    dport: int,
    sport: int | None = None,
    csum_flag: bool = False,
    remcsum: tuple[int, int] | None = None,
    ttl: int | None = None,
    df: bool | None = None,
    ident: int = 0,
) -> int:
    """Write outer IP + UDP + GUE at ``buf[off:]`` in front of the inner packet
    already at ``buf[off + outer_hlen(outer_src) + gue_hlen(remcsum is not None):]``.

    ``sport`` None derives it from the inner flow.  ``remcsum`` is
    (csum_start, csum_offset) of an inner packet whose checksum field holds
    only the pseudo-header sum (skb csum_start/csum_offset, relative to the
    inner packet); pass it only when tun_flags has remcsum and the inner
    checksum is partial, else the inner checksum must be complete.
    ``csum_flag`` (tun_flags csum) asks for the UDP checksum; remcsum implies it.
    Returns the outer packet's length."""
    ip_hlen = outer_hlen(outer_src)
    optlen = GUE_REMCSUM_OPTLEN if remcsum is not None else 0
    udp_off = off + ip_hlen
    inner_off = udp_off + UDP_HLEN + GUE_HLEN + optlen
    info = inner_info(buf, inner_off, ttl=ttl, df=df)
    if sport is None:
        view = memoryview(buf)[inner_off : inner_off + inner_len]
        sport = flow_src_port(flow_hash(view))
    udp_len = UDP_HLEN + GUE_HLEN + optlen + inner_len
    gue_off = udp_off + UDP_HLEN
    if remcsum is None:
        _GUE.pack_into(buf, gue_off, 0, info.proto, 0)
    else:
        start, field = remcsum
        if start < 0 or field < 0 or start + field + 2 > inner_len:
            raise ValueError(f"remote checksum {remcsum} outside the inner packet")
        _GUE.pack_into(buf, gue_off, optlen >> 2, info.proto, GUE_FLAG_PRIV)
        _REMCSUM.pack_into(buf, gue_off + GUE_HLEN, GUE_PFLAG_REMCSUM, start, start + field)
    _UDP.pack_into(buf, udp_off, sport, dport, udp_len, 0)
    if csum_flag or remcsum is not None:
        s = csum.add(buf, udp_off, udp_off + udp_len)
        pseudo = csum.pseudo4 if ip_hlen == IPV4_HLEN else csum.pseudo6
        s += pseudo(outer_src, outer_dst, IPPROTO_UDP, udp_len)
        _H.pack_into(buf, udp_off + 6, csum.finish(s) or 0xFFFF)
    put_outer(buf, off, udp_len, IPPROTO_UDP, outer_src, outer_dst, info, ident)
    return ip_hlen + udp_len


def encap_gue(
    inner: Buffer,
    outer_src: bytes,
    outer_dst: bytes,
    *,
    dport: int,
    sport: int | None = None,
    csum_flag: bool = False,
    remcsum: tuple[int, int] | None = None,
    ttl: int | None = None,
    df: bool | None = None,
    ident: int = 0,
) -> bytes:
    """Copying form of ``encap_gue_into``."""
    buf = with_headroom(inner, outer_hlen(outer_src) + gue_hlen(remcsum is not None))
    encap_gue_into(
        buf,
        0,
        len(inner),
        outer_src,
        outer_dst,
        dport=dport,
        sport=sport,
        csum_flag=csum_flag,
        remcsum=remcsum,
        ttl=ttl,
        df=df,
        ident=ident,
    )
    return bytes(buf)


def parse_gue(payload: Buffer) -> Gue | str:
    """Parse the GUE header at the start of a UDP payload (gue_udp_recv)."""
    n = len(payload)
    if n < 1:
        return "empty GUE payload"
    b0 = payload[0]
    version = b0 >> 6
    if version == 1:  # direct encapsulation: the IP version nibble is 4 or 6
        nibble = b0 >> 4
        if nibble == 4:
            return Gue(1, False, IPPROTO_IPIP, 0, None)
        if nibble == 6:
            return Gue(1, False, IPPROTO_IPV6, 0, None)
        return f"GUE version 1 with IP version {nibble}"
    if version != 0:
        return f"undefined GUE version {version}"
    if n < GUE_HLEN:
        return "short GUE header"
    optlen = (b0 & 0x1F) * 4
    control = bool(b0 & 0x20)
    proto = payload[1]
    flags = (payload[2] << 8) | payload[3]
    hdrlen = GUE_HLEN + optlen
    if n < hdrlen:
        return "truncated GUE options"
    if flags & ~GUE_FLAG_PRIV:
        return f"unknown GUE flags {flags:#06x}"
    remcsum = None
    if flags & GUE_FLAG_PRIV:
        if optlen < 4:
            return "GUE private flags missing"
        pflags = int.from_bytes(payload[GUE_HLEN : GUE_HLEN + 4], "big")
        if pflags & ~GUE_PFLAG_REMCSUM:
            return f"unknown GUE private flags {pflags:#010x}"
        if pflags & GUE_PFLAG_REMCSUM:
            if optlen < GUE_REMCSUM_OPTLEN:
                return "GUE remote checksum option missing"
            start = (payload[GUE_HLEN + 4] << 8) | payload[GUE_HLEN + 5]
            field = (payload[GUE_HLEN + 6] << 8) | payload[GUE_HLEN + 7]
            if hdrlen + max(field + 2, start) > n:
                return "GUE remote checksum outside the packet"
            remcsum = (start, field)
    return Gue(0, control, proto, hdrlen, remcsum)


def decap_gue(payload: Buffer) -> int | str:
    """Where the inner IP packet starts in a GUE UDP payload, or why it is
    not one.  A remote checksum (remcsum) is completed in place, as the
    kernel does with FOU_F_REMCSUM_NOPARTIAL; that needs a writable buffer
    (bytearray or writable memoryview), else a reason is returned."""
    try:
        g = parse_gue(payload)
        if isinstance(g, str):
            return g
        if g.control:
            return "GUE control message (not supported)"
        if g.proto not in (IPPROTO_IPIP, IPPROTO_IPV6):
            return f"GUE carries protocol {g.proto}, not IP"
        if len(payload) - g.offset < 1:
            return "GUE without inner packet"
        version = payload[g.offset] >> 4
        if version != (4 if g.proto == IPPROTO_IPIP else 6):
            return f"inner version {version} does not match GUE protocol {g.proto}"
        if g.remcsum is not None:
            if isinstance(payload, bytes) or (isinstance(payload, memoryview) and payload.readonly):
                return "remote checksum needs a writable buffer"
            start, field = g.remcsum
            inner = g.offset
            s = csum.add(payload, inner + start, len(payload))
            _H.pack_into(payload, inner + field, csum.finish(s))
        return g.offset
    except (IndexError, ValueError, struct.error) as e:
        return f"malformed GUE: {e}"


def _outer(packet: Buffer, proto: int, partial: bool) -> tuple[int, int, bytes, bytes] | str:
    o = parse_outer(packet, partial=partial)
    if isinstance(o, str):
        return o
    hlen, end, got, src, dst = o
    if got != proto:
        return f"protocol {got}, not {proto}"
    return hlen, end, src, dst


def decap_gue_packet(
    packet: Buffer, *, port: int | None = None, partial: bool = False
) -> Decap | str:
    """A whole outer IPv4/IPv6 + UDP + GUE packet, as a real server receives
    it on its GUE port: checks the IP header, the UDP length, the port and a
    non-zero UDP checksum (not with ``partial``, for copies quoted in ICMP
    errors), then the GUE header (see ``decap_gue``)."""
    try:
        o = _outer(packet, IPPROTO_UDP, partial)
        if isinstance(o, str):
            return o
        hlen, end, src, dst = o
        if end - hlen < UDP_HLEN:
            return "short UDP header"
        _sport, dport, ulen, check = _UDP.unpack_from(packet, hlen)
        if port is not None and dport != port:
            return f"UDP port {dport}, not the tunnel port {port}"
        if ulen < UDP_HLEN or (ulen > end - hlen and not partial):
            return "bad UDP length"
        uend = min(hlen + ulen, end)
        if check and not partial:
            pseudo = csum.pseudo4 if len(src) == 4 else csum.pseudo6
            s = csum.add(packet, hlen, uend) + pseudo(src, dst, IPPROTO_UDP, ulen)
            if csum.finish(s) != 0:
                return "bad UDP checksum"
        # A zero checksum is accepted, over IPv6 too (RFC 6935 tunnels).
        r = decap_gue(memoryview(packet)[hlen + UDP_HLEN : uend])
        if isinstance(r, str):
            return r
        return Decap(hlen + UDP_HLEN + r, src, dst)
    except (IndexError, ValueError, struct.error) as e:
        return f"malformed packet: {e}"


def encap_gre_into(
    buf: bytearray | memoryview,
    off: int,
    inner_len: int,
    outer_src: bytes,
    outer_dst: bytes,
    *,
    csum_flag: bool = False,
    ttl: int | None = None,
    df: bool | None = None,
    ident: int = 0,
) -> int:
    """Write outer IP + GRE at ``buf[off:]`` in front of the inner packet at
    ``buf[off + outer_hlen(outer_src) + gre_hlen(csum_flag):]``."""
    ip_hlen = outer_hlen(outer_src)
    gre_off = off + ip_hlen
    glen = gre_hlen(csum_flag)
    info = inner_info(buf, gre_off + glen, ttl=ttl, df=df)
    ptype = ETH_P_IP if info.proto == IPPROTO_IPIP else ETH_P_IPV6
    _GRE.pack_into(buf, gre_off, GRE_CSUM if csum_flag else 0, ptype)
    if csum_flag:
        _GRE.pack_into(buf, gre_off + 4, 0, 0)
        _H.pack_into(buf, gre_off + 4, csum.checksum(buf, gre_off, gre_off + glen + inner_len))
    put_outer(buf, off, glen + inner_len, IPPROTO_GRE, outer_src, outer_dst, info, ident)
    return ip_hlen + glen + inner_len


def encap_gre(
    inner: Buffer,
    outer_src: bytes,
    outer_dst: bytes,
    *,
    csum_flag: bool = False,
    ttl: int | None = None,
    df: bool | None = None,
    ident: int = 0,
) -> bytes:
    """Copying form of ``encap_gre_into``."""
    buf = with_headroom(inner, outer_hlen(outer_src) + gre_hlen(csum_flag))
    encap_gre_into(
        buf, 0, len(inner), outer_src, outer_dst, csum_flag=csum_flag, ttl=ttl, df=df, ident=ident
    )
    return bytes(buf)


def decap_gre(payload: Buffer, *, partial: bool = False) -> int | str:
    """Where the inner IP packet starts in a GRE payload (gre_parse_header):
    version 0 without routing, optional checksum (verified unless
    ``partial``), key and sequence; protocol IPv4 or IPv6."""
    try:
        n = len(payload)
        if n < GRE_HLEN:
            return "short GRE header"
        flags, ptype = _GRE.unpack_from(payload, 0)
        if flags & (GRE_VERSION | GRE_ROUTING):
            return f"unsupported GRE flags/version {flags:#06x}"
        hlen = GRE_HLEN + 4 * sum(1 for f in (GRE_CSUM, GRE_KEY, GRE_SEQ) if flags & f)
        if n < hlen:
            return "truncated GRE header"
        if flags & GRE_CSUM and not partial and csum.checksum(payload) != 0:
            return "bad GRE checksum"
        if ptype not in (ETH_P_IP, ETH_P_IPV6):
            return f"GRE carries {ptype:#06x}, not IP"
        if n - hlen < 1:
            return "GRE without inner packet"
        version = payload[hlen] >> 4
        if version != (4 if ptype == ETH_P_IP else 6):
            return f"inner version {version} does not match GRE protocol {ptype:#06x}"
        return hlen
    except (IndexError, ValueError, struct.error) as e:
        return f"malformed GRE: {e}"


def decap_gre_packet(packet: Buffer, *, partial: bool = False) -> Decap | str:
    """A whole outer IPv4/IPv6 + GRE packet: see ``decap_gre``."""
    try:
        o = _outer(packet, IPPROTO_GRE, partial)
        if isinstance(o, str):
            return o
        hlen, end, src, dst = o
        r = decap_gre(memoryview(packet)[hlen:end], partial=partial)
        if isinstance(r, str):
            return r
        return Decap(hlen + r, src, dst)
    except (IndexError, ValueError, struct.error) as e:
        return f"malformed packet: {e}"
