"""Frames leave the packet data plane through a transmit ring (txring.py): a burst that
outruns the receiver must still arrive byte for byte.

The kernel builds packets from ring slots without copying the payload and gives a slot
back once the packet loses its owner (on a veth, at the receiver's IP layer), while the
datagram may still wait in the real server's socket.  The real server here reads only
after many times the ring's 256 slots went by: a slot reused under a queued datagram
would show as changed bytes.
"""

from __future__ import annotations

import hashlib
import socket
import struct
import time
from collections.abc import Iterator

import pytest

from tests.dataplane.packet_lab import VIP_NAT, Setup, routed_setup

PORT = 9000
COUNT = 4000
SIZE = 1400
SO_RCVBUFFORCE = 33


@pytest.fixture(scope="module")
def routed() -> Iterator[Setup]:
    with routed_setup() as s:
        yield s


def payload(seq: int) -> bytes:
    head = struct.pack("!I", seq)
    body = hashlib.shake_128(head).digest(SIZE - len(head))
    return head + body


def test_burst_arrives_intact_through_the_ring(routed: Setup) -> None:
    lab, d = routed.lab, routed.director
    svc = f"-u {VIP_NAT}:{PORT}"
    d.setup(f"-A {svc} -s rr", f"-a {svc} -r {routed.rip['rs1']}:{PORT} -m")
    ring_before = d.counters()["tx_ring"]
    with (
        lab.socket("rs1", socket.AF_INET, socket.SOCK_DGRAM) as rx,
        lab.socket("client", socket.AF_INET, socket.SOCK_DGRAM) as tx,
    ):
        rx.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 64 << 20)
        rx.bind(("0.0.0.0", PORT))
        for seq in range(COUNT):
            tx.sendto(payload(seq), (VIP_NAT, PORT))
            if seq % 200 == 199:
                time.sleep(0.002)  # the director's socket buffer is not the subject here
        seen = -1
        while seen != (seen := d.counters()["tx_ring"]):  # until the director is done
            time.sleep(0.3)
        rx.setblocking(False)
        got: list[bytes] = []
        while True:
            try:
                got.append(rx.recv(65535))
            except BlockingIOError:
                break
    # Many times the ring's 256 slots, whatever the sockets on the way dropped.
    assert len(got) >= COUNT // 2, f"only {len(got)} of {COUNT} datagrams arrived"
    bad = [
        g[:4].hex() for g in got if len(g) != SIZE or g != payload(struct.unpack("!I", g[:4])[0])
    ]
    assert not bad, f"{len(bad)} datagrams changed on the way, e.g. seq {bad[:5]}"
    assert d.counters()["tx_ring"] - ring_before >= len(got), "the ring was not used"
