"""IPVS TUN mode: IP-in-IP encapsulation (ip_vs_xmit.c, ip_vs_tunnel_xmit).

What the kernel puts in the outer header (ip_vs_prepare_tunneled_skb and
ip_vs_tunnel_xmit / ip_vs_tunnel_xmit_v6):

- protocol / next header: IPPROTO_IPIP (4) for an IPv4 inner packet,
  IPPROTO_IPV6 (41) for an IPv6 one (so IPv4 outer + IPv6 inner is "6in4");
- TOS / traffic class: the inner DS field with the ECN bits copied, except
  that an inner CE becomes ECT(0) (INET_ECN_encapsulate, RFC 6040 "normal");
- TTL / hop limit: the inner TTL or hop limit, which the caller must
  already have decremented (__ip_vs_get_out_rt calls decrement_ttl before
  the transmitter runs; see ``ip.decrement_ttl``);
- DF: the inner DF bit when the ``pmtu_disc`` sysctl is on (the default),
  never for an IPv6 inner packet, 0 when pmtu_disc is off;
- id: 0 when DF is set, else a per-destination counter (ip_select_ident);
  the caller supplies that counter as ``ident``;
- IPv6 outer: flow label 0, hop limit and traffic class as above.

The encapsulation header is written in front of an inner packet already in
place: ``encap_into(buf, off, inner_len, ...)`` expects the inner packet at
``buf[off + outer_hlen(src):]`` and writes only the outer header, so a data
plane can receive a frame at a fixed headroom and send it with no copy.
``encap`` is the copying convenience.

Parsing never raises on bad input: it returns a reason string.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from pylvs.wire import csum
from pylvs.wire.ip import (
    IP4,
    IP6,
    IP_DF,
    IPPROTO_IPIP,
    IPPROTO_IPV6,
    IPV4_HLEN,
    IPV6_HLEN,
    Buffer,
    parse_outer,
)

# Tunnel types and flags of an IPVS destination (include/uapi/linux/ip_vs.h).
TUN_TYPE_IPIP = 0
TUN_TYPE_GUE = 1
TUN_TYPE_GRE = 2
TUN_F_CSUM = 1 << 0  # IP_VS_TUNNEL_ENCAP_FLAG_CSUM
TUN_F_REMCSUM = 1 << 1  # IP_VS_TUNNEL_ENCAP_FLAG_REMCSUM

UDP_HLEN = 8
GUE_HLEN = 4
GUE_REMCSUM_OPTLEN = 8  # private flags word (GUE_LEN_PRIV) + start/offset (GUE_PLEN_REMCSUM)
GRE_HLEN = 4
GRE_CSUM_HLEN = 8

_ECN_MASK = 0x03
_ECN_ECT_0 = 0x02
_ECN_CE = 0x03

_H = struct.Struct("!H")
# Module globals of our own, not the imported names: CPython compiles a method
# call on an imported name without LOAD_METHOD, building a bound method on every
# call, about 0.1 us more per packet.
_IP4 = IP4
_IP6 = IP6


class Decap(NamedTuple):
    """A decapsulated tunnel packet: the inner packet starts at ``offset``."""

    offset: int
    outer_src: bytes
    outer_dst: bytes


class Inner(NamedTuple):
    """What the outer header takes from the inner packet (ip_vs_prepare_tunneled_skb)."""

    proto: int  # IPPROTO_IPIP or IPPROTO_IPV6
    dsfield: int  # outer TOS / traffic class, ECN already encapsulated
    ttl: int
    df: bool


def ecn_encapsulate(inner_dsfield: int) -> int:
    """INET_ECN_encapsulate(inner, inner): keep DSCP and ECN, CE -> ECT(0)."""
    ecn = inner_dsfield & _ECN_MASK
    if ecn == _ECN_CE:
        ecn = _ECN_ECT_0
    return (inner_dsfield & ~_ECN_MASK & 0xFF) | ecn


def inner_info(
    inner: Buffer, off: int = 0, *, ttl: int | None = None, df: bool | None = None
) -> Inner:
    """Protocol, outer DS field, TTL and DF for an inner IP packet at ``off``.

    ``ttl`` and ``df``, when not None, replace the inner packet's TTL / hop
    limit and DF (an IPv6 inner packet has no DF: False).  Raises ValueError
    if it is not an IPv4 or IPv6 packet (the caller of an encapsulation
    hands over packets it has already parsed)."""
    if len(inner) - off < 1:
        raise ValueError("empty inner packet")
    version = inner[off] >> 4
    if version == 4:
        if len(inner) - off < IPV4_HLEN:
            raise ValueError("short inner IPv4 header")
        if df is None:
            df = bool(((inner[off + 6] << 8) | inner[off + 7]) & IP_DF)
        return Inner(
            IPPROTO_IPIP,
            ecn_encapsulate(inner[off + 1]),
            inner[off + 8] if ttl is None else ttl,
            df,
        )
    if version == 6:
        if len(inner) - off < IPV6_HLEN:
            raise ValueError("short inner IPv6 header")
        ds = ((inner[off] & 0x0F) << 4) | (inner[off + 1] >> 4)
        return Inner(
            IPPROTO_IPV6,
            ecn_encapsulate(ds),
            inner[off + 7] if ttl is None else ttl,
            bool(df),
        )
    raise ValueError(f"inner packet is not IP (version {version})")


def outer_hlen(outer_src: bytes) -> int:
    """The outer IP header length for this address family (20 or 40)."""
    return IPV4_HLEN if len(outer_src) == 4 else IPV6_HLEN


def put_outer(
    buf: bytearray | memoryview,
    off: int,
    payload_len: int,
    proto: int,
    outer_src: bytes,
    outer_dst: bytes,
    inner: Inner,
    ident: int = 0,
) -> int:
    """Write an outer IPv4 or IPv6 header at ``buf[off:]`` for ``payload_len``
    bytes after it, its DS field, TTL and DF from ``inner`` (``inner_info``);
    returns the header length.  Shared with GUE and GRE."""
    if len(outer_src) == 4:
        tot_len = IPV4_HLEN + payload_len
        if tot_len > 0xFFFF:
            raise ValueError(f"encapsulated packet too long ({tot_len})")
        if len(outer_dst) != 4:
            raise ValueError("outer addresses of different families")
        _IP4.pack_into(
            buf,
            off,
            0x45,
            inner.dsfield,
            tot_len,
            0 if inner.df else ident & 0xFFFF,  # ip_select_ident: DF packets get id 0
            IP_DF if inner.df else 0,
            inner.ttl,
            proto,
            0,
            outer_src,
            outer_dst,
        )
        _H.pack_into(buf, off + 10, csum.checksum(buf, off, off + IPV4_HLEN))
        return IPV4_HLEN
    if len(outer_src) != 16 or len(outer_dst) != 16:
        raise ValueError("outer addresses must be 4 or 16 bytes, of one family")
    if payload_len > 0xFFFF:
        raise ValueError(f"encapsulated payload too long ({payload_len})")
    _IP6.pack_into(
        buf,
        off,
        (6 << 28) | (inner.dsfield << 20),
        payload_len,
        proto,
        inner.ttl,
        outer_src,
        outer_dst,
    )
    return IPV6_HLEN


def with_headroom(inner: Buffer, hlen: int) -> bytearray:
    """A copy of ``inner`` after ``hlen`` free bytes: the buffer the copying
    forms of the ``*_into`` encapsulations write their headers into."""
    buf = bytearray(hlen + len(inner))
    buf[hlen:] = inner
    return buf


def encap_into(
    buf: bytearray | memoryview,
    off: int,
    inner_len: int,
    outer_src: bytes,
    outer_dst: bytes,
    *,
    ttl: int | None = None,
    df: bool | None = None,
    ident: int = 0,
) -> int:
    """Write the IPIP outer header at ``buf[off:]`` in front of the inner
    packet already at ``buf[off + outer_hlen(outer_src):]``.

    ``ttl`` None copies the inner TTL / hop limit; ``df`` None copies the
    inner DF (pmtu_disc=1; pass False for pmtu_disc=0).  ``ident`` is the
    IPv4 id for a packet without DF.  Returns the outer packet's length."""
    i = off + IPV4_HLEN
    if inner_len >= 20 and len(outer_src) == 4 and len(outer_dst) == 4 and buf[i] >> 4 == 4:
        # the common case, IPv4 in IPv4, inlined (this runs per packet)
        tos = buf[i + 1]
        if tos & _ECN_MASK == _ECN_CE:
            tos ^= _ECN_CE ^ _ECN_ECT_0
        if df is None:
            df = bool(buf[i + 6] & 0x40)
        tot_len = IPV4_HLEN + inner_len
        if tot_len > 0xFFFF:
            raise ValueError(f"encapsulated packet too long ({tot_len})")
        ident = 0 if df else ident & 0xFFFF
        frag = IP_DF if df else 0
        if ttl is None:
            ttl = buf[i + 8]
        # The header checksum from the fields: 16-bit words summed modulo 0xffff (a
        # 32-bit address counts as the sum of its two words, 2**16 being 1 modulo 0xffff).
        s = 0x4500 + tos + tot_len + ident + frag + (ttl << 8) + IPPROTO_IPIP
        s += int.from_bytes(outer_src, "big") + int.from_bytes(outer_dst, "big")
        check = 0xFFFF - (s % 0xFFFF or 0xFFFF)
        _IP4.pack_into(
            buf,
            off,
            0x45,
            tos,
            tot_len,
            ident,
            frag,
            ttl,
            IPPROTO_IPIP,
            check,
            outer_src,
            outer_dst,
        )
        return tot_len
    hlen = outer_hlen(outer_src)
    info = inner_info(buf, off + hlen, ttl=ttl, df=df)
    put_outer(buf, off, inner_len, info.proto, outer_src, outer_dst, info, ident)
    return hlen + inner_len


def encap(
    inner: Buffer,
    outer_src: bytes,
    outer_dst: bytes,
    *,
    ttl: int | None = None,
    df: bool | None = None,
    ident: int = 0,
) -> bytes:
    """The inner packet inside an outer IPv4 (4-byte addresses) or IPv6
    (16-byte addresses) header, as ip_vs_tunnel_xmit[_v6] builds it: the
    copying form of ``encap_into``."""
    buf = with_headroom(inner, outer_hlen(outer_src))
    encap_into(buf, 0, len(inner), outer_src, outer_dst, ttl=ttl, df=df, ident=ident)
    return bytes(buf)


def _inner_ok(packet: Buffer, off: int, end: int, proto: int, partial: bool) -> str:
    """Check that an inner packet of the announced protocol starts at ``off``."""
    if end - off < 1:
        return "inner packet truncated"
    version = packet[off] >> 4
    if version != (4 if proto == IPPROTO_IPIP else 6):
        return f"inner version {version} does not match protocol {proto}"
    if not partial and end - off < (IPV4_HLEN if proto == IPPROTO_IPIP else IPV6_HLEN):
        return "inner packet truncated"
    return ""


def decap(packet: Buffer, *, partial: bool = False) -> Decap | str:
    """A real server's view of an IPIP / 6in4 / 4in6 / ip6ip6 packet.

    Returns where the inner packet starts and the outer addresses, or why
    the packet is not a well-formed tunnel packet.  IPv6 extension headers
    in the outer packet are not supported (IPVS does not send any).  The
    inner packet's own length field delimits it (link padding may follow).
    """
    try:
        if len(packet) >= 1 and packet[0] >> 4 not in (4, 6):
            return f"not IP (version {packet[0] >> 4})"
        parsed = parse_outer(packet, partial=partial)
        if isinstance(parsed, str):
            return parsed
        hlen, end, proto, src, dst = parsed
        if proto not in (IPPROTO_IPIP, IPPROTO_IPV6):
            return f"not a tunnel packet (protocol {proto})"
        why = _inner_ok(packet, hlen, end, proto, partial)
        if why:
            return why
        return Decap(hlen, src, dst)
    except (IndexError, ValueError, struct.error) as e:  # defensive: never raise
        return f"malformed packet: {e}"


def tunnel_mtu(
    dst_mtu: int,
    *,
    outer6: bool = False,
    tun_type: int = TUN_TYPE_IPIP,
    tun_flags: int = 0,
    inner_csum_partial: bool = False,
) -> int | None:
    """The MTU an inner packet must fit (__ip_vs_get_out_rt[_v6] in tunnel
    mode): the route MTU less the outer IP header, less UDP + GUE (+ the
    remote checksum option when REMCSUM applies to a CHECKSUM_PARTIAL
    packet) or the GRE header.  None when below 68 (IPv4 outer) or 1280
    (IPv6 outer): the kernel then drops the packet without an ICMP error."""
    mtu = dst_mtu - (IPV6_HLEN if outer6 else IPV4_HLEN)
    if tun_type == TUN_TYPE_GUE:
        mtu -= UDP_HLEN + GUE_HLEN
        if tun_flags & TUN_F_REMCSUM and inner_csum_partial:
            mtu -= GUE_REMCSUM_OPTLEN
    elif tun_type == TUN_TYPE_GRE:
        mtu -= GRE_CSUM_HLEN if tun_flags & TUN_F_CSUM else GRE_HLEN
    if mtu < (1280 if outer6 else 68):
        return None
    return mtu
