"""Software segmentation of GSO super-packets (net/ipv4/tcp_offload.c in Python).

A local stack on a virtual NIC hands over TCP segments of up to 64 KiB with
the segment size in the virtio_net_hdr; sent on unchanged they are cut by
the kernel at output.  An encapsulated super-packet (IPIP, GUE) cannot be
described to the kernel that way, so TUN mode cuts it here first, the way
tcp_gso_segment() does: every segment gets the headers, its share of the
payload, sequence number advanced, IPv4 id incremented, CWR only on the
first, FIN and PSH only on the last, and a partial checksum for the kernel
(or NIC) to finish, or a complete one when the tunnel's own checksum (GUE
csum, GRE csum) must cover the inner packet.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from pylvs.wire import csum
from pylvs.wire.packet import IPPROTO_TCP, IPPROTO_UDP, Pkt

_H = struct.Struct("!H")
_I = struct.Struct("!I")
TCP_FIN_PSH = 0x01 | 0x08
TCP_CWR = 0x80


def segments(pkt: Pkt, size: int, partial: bool = True, headroom: int = 0) -> Iterator[bytearray]:
    """The IP packets (no Ethernet header) ``pkt`` splits into, ``size`` bytes of
    payload each; TCP or UDP (UDP_L4 GSO: one datagram per segment).  With
    ``partial`` the transport checksum is left partial (the pseudo-header sum,
    for the kernel or NIC to finish at output); else it is computed.  Each
    packet starts ``headroom`` bytes into its buffer (room for the headers
    in front of it)."""
    buf = pkt.buf
    l3, l4, end = pkt.l3, pkt.l4, pkt.end
    if pkt.proto == IPPROTO_TCP:
        hlen = l4 + ((buf[l4 + 12] >> 4) << 2) - l3
    elif pkt.proto == IPPROTO_UDP:
        hlen = l4 + 8 - l3
    else:
        return
    head = bytes(headroom) + buf[l3 : l3 + hlen]
    first = l3 + hlen
    if size <= 0 or first >= end:
        return
    v4 = pkt.af == 4
    l4off = l4 - l3
    seq = _I.unpack_from(buf, l4 + 4)[0] if pkt.proto == IPPROTO_TCP else 0
    ident = _H.unpack_from(buf, l3 + 4)[0] if v4 else 0
    flags = buf[l4 + 13] if pkt.proto == IPPROTO_TCP else 0
    i = 0
    pos = first
    while pos < end:
        chunk = min(size, end - pos)
        last = pos + chunk >= end
        seg = bytearray(head)
        seg += buf[pos : pos + chunk]
        seg_view = memoryview(seg)[headroom:]
        total = hlen + chunk
        l4len = total - l4off
        if v4:
            _H.pack_into(seg_view, 2, total)
            _H.pack_into(seg_view, 4, (ident + i) & 0xFFFF)
            _H.pack_into(seg_view, 10, 0)
            _H.pack_into(seg_view, 10, csum.checksum(seg_view, 0, l4off))
            pseudo = csum.pseudo4(pkt.saddr, pkt.daddr, pkt.proto, l4len)
        else:
            _H.pack_into(seg_view, 4, total - 40)
            pseudo = csum.pseudo6(pkt.saddr, pkt.daddr, pkt.proto, l4len)
        if pkt.proto == IPPROTO_TCP:
            _I.pack_into(seg_view, l4off + 4, (seq + i * size) & 0xFFFFFFFF)
            f = flags
            if i:
                f &= ~TCP_CWR
            if not last:
                f &= ~TCP_FIN_PSH
            seg_view[l4off + 13] = f
            c = l4off + 16
        else:
            _H.pack_into(seg_view, l4off + 4, l4len)
            c = l4off + 6
        if partial:
            _H.pack_into(seg_view, c, csum.fold(pseudo))
        else:
            _H.pack_into(seg_view, c, 0)
            v = csum.finish(pseudo + csum.add(seg_view, l4off))
            _H.pack_into(seg_view, c, v or (0xFFFF if pkt.proto == IPPROTO_UDP else 0))
        seg_view.release()
        yield seg
        pos += chunk
        i += 1
