"""Neighbour resolution for the packet data plane (the part of net/ipv4/arp.c
it needs): MAC addresses of next hops on the data plane's interfaces.

Known from the kernel's table (read at start and on refresh), learnt from
every ARP packet seen, and otherwise asked for with an ARP request.  While a
neighbour is unresolved, frames for it wait in a short queue (the kernel's
unres_qlen idea: a few packets, the oldest dropped first) and go out when
the answer arrives; a neighbour that never answers costs one request per
second, not one per packet.
"""

from __future__ import annotations

from collections.abc import Callable

from pylvs.dataplane.packet import netinfo
from pylvs.wire import arp

QUEUE = 8
RETRY = 1.0

Key = tuple[str, bytes]  # (interface, IPv4 address)
Send = Callable[[str, bytes], None]  # (interface, frame without the vnet header)


class Neighbours:
    def __init__(self, send: Send) -> None:
        self.send = send
        self.macs: dict[Key, bytes] = {}
        self.waiting: dict[Key, list[bytearray]] = {}
        self.asked: dict[Key, float] = {}

    def load(self) -> None:
        self.macs.update(netinfo.neighbours())

    def get(self, dev: str, addr: bytes) -> bytes | None:
        return self.macs.get((dev, addr))

    def hold(
        self, dev: str, addr: bytes, frame: bytearray, mac: bytes, src: bytes, now: float
    ) -> None:
        """Queue ``frame`` (vnet header + Ethernet frame) until ``addr`` answers;
        ask for it (from ``mac``/``src`` on ``dev``) at most once a second."""
        key = (dev, addr)
        q = self.waiting.setdefault(key, [])
        q.append(frame)
        if len(q) > QUEUE:
            del q[0]
        if now - self.asked.get(key, -RETRY) >= RETRY:
            self.asked[key] = now
            self.send(dev, arp.request(mac, src, addr))

    def learn(self, dev: str, addr: bytes, mac: bytes) -> list[bytearray]:
        """An ARP packet showed ``addr`` at ``mac``: the frames that waited for it,
        with their destination MAC filled in (after the 10-byte vnet header)."""
        if addr == bytes(4) or mac == bytes(6):
            return []
        key = (dev, addr)
        self.macs[key] = mac
        self.asked.pop(key, None)
        frames = self.waiting.pop(key, [])
        for f in frames:
            f[10:16] = mac
        return frames

    def forget_unanswered(self, now: float) -> int:
        """Drop the queues of neighbours asked long ago (count of frames dropped)."""
        dropped = 0
        for key, when in list(self.asked.items()):
            if now - when > 3 * RETRY:
                dropped += len(self.waiting.pop(key, []))
                del self.asked[key]
        return dropped
