"""AF_PACKET sockets of the packet data plane, one per interface.

Each socket reads every frame of its interface with a virtio_net_hdr in
front (PACKET_VNET_HDR: partial checksums and GSO super-packets are
described, not broken, see wire/vnet.py) and writes frames out of the same
interface, bypassing the director's IP stack.  Frames the socket itself
sent are not read back (PACKET_IGNORE_OUTGOING).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

from pylvs.dataplane.packet.txring import TxRing
from pylvs.wire.vnet import PACKET_VNET_HDR, SOL_PACKET

ETH_P_ALL = 0x0003
PACKET_IGNORE_OUTGOING = 23
RCVBUF = 8 << 20
SO_RCVBUFFORCE = 33


@dataclass
class Port:
    """An interface the data plane owns."""

    name: str
    index: int
    mac: bytes
    mtu: int
    sock: socket.socket
    addrs4: list[bytes] = field(default_factory=list)
    ring: TxRing | None = None

    @property
    def fd(self) -> int:
        return self.sock.fileno()


def open_port(name: str, index: int, mac: bytes, mtu: int, addrs4: list[bytes]) -> Port:
    s = socket.socket(
        socket.AF_PACKET,
        socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
        socket.htons(ETH_P_ALL),
    )
    try:
        s.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
        s.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        try:
            s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF)
        except OSError:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        s.bind((name, ETH_P_ALL))
    except OSError:
        s.close()
        raise
    port = Port(name, index, mac, mtu, s, addrs4)
    try:
        port.ring = TxRing(name)
    except OSError:
        pass  # frames go out one send() each
    return port
