"""The virtio_net_hdr that AF_PACKET puts before each frame with PACKET_VNET_HDR.

With ``setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)`` every frame read from
the socket starts with this 10-byte header (include/uapi/linux/virtio_net.h)
and every frame written must start with one (net/packet/af_packet.c).  It
carries what the kernel knows of the packet's checksum and segmentation:

- flags NEEDS_CSUM: CHECKSUM_PARTIAL; the transport checksum at
  ``csum_start + csum_offset`` (offsets from the start of the Ethernet
  header) holds only the pseudo-header sum and is to be completed over
  ``csum_start..end``.  The fix for the veth offload trap in the lab notes:
  send it on with the same flag (the kernel or NIC completes it).
- flags DATA_VALID: CHECKSUM_UNNECESSARY; the checksum was verified.
- gso_type/gso_size: a GSO super-packet (TSO from a local stack over veth)
  larger than the MTU, to be cut into gso_size-byte segments on output;
  hdr_len is the header length (a hint on receive).

The fields are in the legacy virtio byte order, which af_packet.c takes as
the host's (vio_le() is virtio_legacy_is_little_endian(): little-endian on
x86/arm64), hence the native byte order of the struct here.

On send the kernel raises hdr_len to csum_start + csum_offset + 2 when
needed and rejects hdr_len beyond the frame.  GSO types name plain
TCPv4/TCPv6/UDP packets only: an encapsulated (IPIP) super-packet cannot be
described, so such packets must be segmented before encapsulation.
"""

from __future__ import annotations

import struct

from pylvs.wire.ip import IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP
from pylvs.wire.nat import complete_csum
from pylvs.wire.packet import Pkt
from pylvs.wire.packet import csum_offset_of as csum_offset_of

# include/uapi/linux/if_packet.h (SOL_PACKET options)
SOL_PACKET = 263
PACKET_AUXDATA = 8
PACKET_VNET_HDR = 15
PACKET_VNET_HDR_SZ = 24
TP_STATUS_CSUMNOTREADY = 1 << 3
TP_STATUS_CSUM_VALID = 1 << 7

# include/uapi/linux/virtio_net.h
VIRTIO_NET_HDR_F_NEEDS_CSUM = 1
VIRTIO_NET_HDR_F_DATA_VALID = 2
VIRTIO_NET_HDR_F_RSC_INFO = 4
VIRTIO_NET_HDR_GSO_NONE = 0
VIRTIO_NET_HDR_GSO_TCPV4 = 1
VIRTIO_NET_HDR_GSO_UDP = 3
VIRTIO_NET_HDR_GSO_TCPV6 = 4
VIRTIO_NET_HDR_GSO_UDP_L4 = 5
VIRTIO_NET_HDR_GSO_ECN = 0x80

VNET_HDR_LEN = 10
_HDR = struct.Struct("=BBHHHH")  # flags, gso_type, hdr_len, gso_size, csum_start, csum_offset

NO_HDR = bytes(VNET_HDR_LEN)
"""The header of a plain packet: no checksum to complete, no GSO."""


class VnetHdr:
    """A decoded virtio_net_hdr."""

    __slots__ = ("csum_offset", "csum_start", "flags", "gso_size", "gso_type", "hdr_len")

    def __init__(
        self,
        flags: int = 0,
        gso_type: int = VIRTIO_NET_HDR_GSO_NONE,
        hdr_len: int = 0,
        gso_size: int = 0,
        csum_start: int = 0,
        csum_offset: int = 0,
    ) -> None:
        self.flags = flags
        self.gso_type = gso_type
        self.hdr_len = hdr_len
        self.gso_size = gso_size
        self.csum_start = csum_start
        self.csum_offset = csum_offset

    def __repr__(self) -> str:
        return (
            f"VnetHdr(flags={self.flags} gso_type={self.gso_type} hdr_len={self.hdr_len}"
            f" gso_size={self.gso_size} csum_start={self.csum_start}"
            f" csum_offset={self.csum_offset})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VnetHdr):
            return NotImplemented
        return self.astuple() == other.astuple()

    __hash__ = None  # type: ignore[assignment]

    def astuple(self) -> tuple[int, int, int, int, int, int]:
        return (
            self.flags,
            self.gso_type,
            self.hdr_len,
            self.gso_size,
            self.csum_start,
            self.csum_offset,
        )

    @property
    def needs_csum(self) -> bool:
        return bool(self.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM)

    @property
    def data_valid(self) -> bool:
        return bool(self.flags & VIRTIO_NET_HDR_F_DATA_VALID)

    @property
    def is_gso(self) -> bool:
        return self.gso_type != VIRTIO_NET_HDR_GSO_NONE


def unpack(buf: bytes | bytearray | memoryview, offset: int = 0) -> VnetHdr | None:
    """Decode the header at ``offset``; None when fewer than 10 bytes remain."""
    if offset < 0 or len(buf) - offset < VNET_HDR_LEN:
        return None
    return VnetHdr(*_HDR.unpack_from(buf, offset))


def needs_csum(buf: bytes | bytearray | memoryview, offset: int = 0) -> bool:
    """Just the NEEDS_CSUM flag of the header at ``offset`` (the hot path's question)."""
    return len(buf) > offset >= 0 and bool(buf[offset] & VIRTIO_NET_HDR_F_NEEDS_CSUM)


def pack(h: VnetHdr) -> bytes:
    return _HDR.pack(h.flags, h.gso_type, h.hdr_len, h.gso_size, h.csum_start, h.csum_offset)


def pack_into(buf: bytearray, offset: int, h: VnetHdr) -> None:
    _HDR.pack_into(
        buf, offset, h.flags, h.gso_type, h.hdr_len, h.gso_size, h.csum_start, h.csum_offset
    )


def describes(h: VnetHdr, pkt: Pkt) -> bool:
    """Whether a NEEDS_CSUM header points at ``pkt``'s own TCP/UDP checksum.

    The partial state that packet/nat assume (``parse(..., partial=True)``);
    a header pointing elsewhere (an inner packet of a tunnel) does not fit it.
    """
    if not h.needs_csum:
        return True
    if pkt.proto != IPPROTO_TCP and pkt.proto != IPPROTO_UDP:
        return False
    return h.csum_start == pkt.l4 - pkt.start and h.csum_offset == csum_offset_of(pkt.proto)


def build(
    *,
    csum_start: int = 0,
    csum_offset: int = 0,
    needs_csum: bool = False,
    data_valid: bool = False,
    gso_type: int = VIRTIO_NET_HDR_GSO_NONE,
    gso_size: int = 0,
    hdr_len: int = 0,
) -> bytes:
    """Pack a header from its parts (``csum_*`` only matter with ``needs_csum``)."""
    if needs_csum:
        flags = VIRTIO_NET_HDR_F_NEEDS_CSUM
    else:
        flags = VIRTIO_NET_HDR_F_DATA_VALID if data_valid else 0
        csum_start = csum_offset = 0
    return _HDR.pack(flags, gso_type, hdr_len, gso_size, csum_start, csum_offset)


def partial_csum(csum_start: int, csum_offset: int) -> bytes:
    """``build(needs_csum=True, csum_start=..., csum_offset=...)`` for the per-packet
    path (positional, no keyword handling)."""
    return _HDR.pack(VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0, csum_start, csum_offset)


def for_pkt(pkt: Pkt, gso_type: int = VIRTIO_NET_HDR_GSO_NONE, gso_size: int = 0) -> bytes:
    """The header to send ``pkt`` (as rewritten) with.

    NEEDS_CSUM pointing at ``pkt``'s transport checksum when
    ``pkt.csum_partial`` (offsets recomputed from the packet, so they follow
    a VLAN tag or anything added in front), else no flag.  ``gso_type`` and
    ``gso_size`` are passed through from the received header; ``hdr_len`` is
    the offset of the end of the transport header.  A partial SCTP checksum
    (a CRC32c, which virtio cannot offload) is completed here first.
    """
    if pkt.csum_partial and pkt.proto == IPPROTO_SCTP:
        complete_csum(pkt)
    hdr_len = 0
    if not pkt.fragoff:
        if pkt.proto == IPPROTO_TCP:
            hdr_len = pkt.l4 + ((pkt.buf[pkt.l4 + 12] >> 4) << 2) - pkt.start
        elif pkt.proto == IPPROTO_UDP:
            hdr_len = pkt.l4 + 8 - pkt.start
    if pkt.csum_partial and not pkt.fragoff:
        off = csum_offset_of(pkt.proto)
        if off >= 0:
            return _HDR.pack(
                VIRTIO_NET_HDR_F_NEEDS_CSUM,
                gso_type,
                hdr_len,
                gso_size,
                pkt.l4 - pkt.start,
                off,
            )
    return _HDR.pack(0, gso_type, hdr_len, gso_size, 0, 0)


def shift(h: VnetHdr, delta: int) -> VnetHdr:
    """The header after ``delta`` bytes were inserted in front of the transport
    header (an outer IP header, a VLAN tag): csum_start and hdr_len move."""
    return VnetHdr(
        h.flags,
        h.gso_type,
        h.hdr_len + delta if h.hdr_len else 0,
        h.gso_size,
        h.csum_start + delta if h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM else h.csum_start,
        h.csum_offset,
    )
