"""PACKET_TX_RING (TPACKET_V2) for the packet data plane's output.

Frames forwarded while a batch of received frames is being handled are
copied into a ring shared with the kernel and sent with one send() call per
batch (af_packet.c tpacket_snd), instead of one system call each.  Besides
the system calls, it lets the receivers of a burst be woken once for it.

The ring belongs to a socket of its own, bound to the interface for output
only: a socket with a transmit ring sends nothing but its ring, and a GSO
super-packet (up to 64 KiB) is sent the ordinary way, by the receiving
socket.  Each ring slot holds a ``tpacket2_hdr`` (32 bytes: status, length,
...) and the frame after it: the virtio_net_hdr, then the Ethernet frame.  A
frame that does not fit a slot or finds its slot still in the kernel's
hands is not queued: the caller flushes what is queued and sends
it itself, so frames leave in the order they were given.

The kernel builds a packet from a slot without copying its payload (page
fragments marked zero-copy) and gives the slot back when the packet loses its
owner; a packet that is then still held on this host (a veth peer, a local
socket) had those fragments copied first (skb_orphan_frags), so a reused slot
cannot change a packet in flight (tests/dataplane/test_packet_txring.py).

PACKET_LOSS is set: a frame the kernel refuses is skipped rather than
stopping the ring (what the data plane sends was checked against the MTU).
"""

from __future__ import annotations

import mmap
import socket
import struct

from pylvs.wire.vnet import PACKET_VNET_HDR, SOL_PACKET

PACKET_LOSS = 14
PACKET_VERSION = 10
PACKET_TX_RING = 13
TPACKET_V2 = 1
TP_STATUS_AVAILABLE = 0
TP_STATUS_SEND_REQUEST = 1
DATA_OFFSET = 32  # TPACKET2_HDRLEN - sizeof(struct sockaddr_ll): where a slot's frame starts
FRAME_SIZE = 2048  # a 1500-byte MTU frame with its headers fits
BLOCK_SIZE = 1 << 16
BLOCKS = 8  # 256 slots
FLUSH_AT = 64  # queued frames that make a flush without waiting for the batch's end
_HDR = struct.Struct("=II")  # tp_status, tp_len
_STATUS = struct.Struct("=I")
_REQ = struct.Struct("=IIII")  # tpacket_req: block size, block count, frame size, frame count


class TxRing:
    """The transmit ring of one AF_PACKET socket."""

    __slots__ = ("errors", "head", "map", "max_len", "pending", "queued", "slots", "sock")

    def __init__(self, ifname: str) -> None:
        """A ring for output on ``ifname``; OSError if the kernel refuses (the
        caller then sends the ordinary way)."""
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
        try:
            sock.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
            sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V2)
            sock.setsockopt(SOL_PACKET, PACKET_LOSS, 1)
            self.slots = BLOCKS * (BLOCK_SIZE // FRAME_SIZE)
            req = _REQ.pack(BLOCK_SIZE, BLOCKS, FRAME_SIZE, self.slots)
            sock.setsockopt(SOL_PACKET, PACKET_TX_RING, req)
            sock.bind((ifname, 0))  # protocol 0: this socket receives nothing
            self.map = mmap.mmap(sock.fileno(), BLOCK_SIZE * BLOCKS)
        except OSError:
            sock.close()
            raise
        self.sock = sock
        self.head = 0
        self.pending = 0
        self.queued = 0  # frames that went through the ring
        self.errors = 0
        self.max_len = FRAME_SIZE - DATA_OFFSET

    def put(self, data: bytes | bytearray | memoryview) -> bool:
        """Queue one frame; False when it is not queued (too long, or its slot is
        still being sent): the caller flushes and sends it itself."""
        n = len(data)
        if n > self.max_len:
            return False
        m = self.map
        off = self.head * FRAME_SIZE
        if _STATUS.unpack_from(m, off)[0] != TP_STATUS_AVAILABLE:
            return False
        d = off + DATA_OFFSET
        m[d : d + n] = data
        _HDR.pack_into(m, off, TP_STATUS_SEND_REQUEST, n)
        head = self.head + 1
        self.head = 0 if head == self.slots else head
        self.pending += 1
        self.queued += 1
        if self.pending >= FLUSH_AT:
            self.flush()
        return True

    def flush(self) -> None:
        """Hand what is queued to the kernel (it is sent before this returns, or
        left queued for the next flush if the device is busy)."""
        if not self.pending:
            return
        self.pending = 0
        try:
            self.sock.send(b"", socket.MSG_DONTWAIT)
        except BlockingIOError:
            pass
        except OSError:
            self.errors += 1

    def close(self) -> None:
        self.map.close()
        self.sock.close()
