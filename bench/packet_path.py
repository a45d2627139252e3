"""CPU time of the packet data plane's Python path per frame (issue 5), no iperf3.

Run as root:  .venv/bin/python bench/packet_path.py [--frames N] [--rounds R] [--cpu C]

The process moves itself into a fresh network namespace (unshare(2); it goes away with the
process) holding a veth pair (this kernel has no ``dummy`` module): frames sent out of one
end are real AF_PACKET sends, delivered inline to the other end, which drops them as meant
for another host.  A ``PacketDataPlane`` is started on that end as pylvsd starts it (its
nftables table lands in the throwaway namespace), with DR, NAT and FULLNAT services for
TCP and UDP; the next hops' MACs are learnt as from ARP.  Each case opens a flow (SYN,
SYN-ACK, ACK for TCP), then feeds pre-built frames of the established flow (UDP with 64
bytes of data, TCP ACK with 64 bytes of data, no virtio offload) to ``frame()`` as
``on_readable`` does after ``recv_into``: copied into the receive buffer, then handled.

Printed per case: µs of process CPU (time.process_time) per frame over N frames, the
median and the minimum of the rounds; the same for ``sock.send`` alone of the frame the
plane sent; the difference, the Python share.  On a busy machine the minimum is the
steadier figure (other load slows the CPU, it does not add to our CPU time).
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import os
import statistics
import subprocess
import sys
import time
from ipaddress import ip_address
from pathlib import Path

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from pylvs.core.engine import Engine
from pylvs.core.model import DestSpec, Fwd, Proto, ServiceKey, ServiceSpec
from pylvs.dataplane.packet.afpacket import Port
from pylvs.dataplane.packet.plane import HEADROOM, PacketDataPlane
from pylvs.dataplane.packet.xmit import Fnat

CLONE_NEWNET = 0x40000000
DEV, PEER = "d0", "d1"  # the peer drops what it gets (PACKET_OTHERHOST) right away
CIP = "10.0.0.2"
CMAC = "02:00:00:00:00:02"
PAYLOAD = b"x" * 64
# mode -> (VIP, RIP, pylvsadm-style forwarding method)
MODES = {
    "dr": ("10.0.0.100", "10.0.0.11", Fwd.DROUTE),
    "nat": ("10.0.0.101", "192.168.10.11", Fwd.MASQ),
    "fullnat": ("10.0.0.102", "192.168.10.12", Fwd.FULLNAT),
}
LIP = "192.168.10.2"
NEIGHBOURS = {CIP: CMAC, "10.0.0.11": "02:00:00:00:00:11"}
NEIGHBOURS |= {"192.168.10.11": "02:00:00:00:01:11", "192.168.10.12": "02:00:00:00:01:12"}


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, text=True)


def enter_netns() -> None:
    """A fresh network namespace with the dummy interface and the director's addresses."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET): run as root")
    sh("ip", "link", "set", "lo", "up")
    sh("ip", "link", "add", DEV, "type", "veth", "peer", "name", PEER)
    sh("ip", "link", "set", PEER, "up")
    sh("ip", "link", "set", DEV, "up")
    for a in ("10.0.0.1/24", "192.168.10.1/24", f"{LIP}/24"):
        sh("ip", "addr", "add", a, "dev", DEV)


def build_plane() -> tuple[PacketDataPlane, Port, asyncio.AbstractEventLoop]:
    engine = Engine()
    t = engine.table
    for vip, rip, fwd in MODES.values():
        for proto, vport in ((Proto.TCP, 80), (Proto.UDP, 53)):
            key = ServiceKey.inet(proto, vip, vport)
            t.add_service(ServiceSpec(key, "rr"))
            t.add_dest(key, DestSpec(ip_address(rip), vport, fwd, 1))
            if fwd == Fwd.FULLNAT:
                t.add_laddr(key, ip_address(LIP))
    plane = PacketDataPlane(argparse.Namespace(interface=[DEV]))
    loop = asyncio.new_event_loop()
    loop.run_until_complete(plane.start(engine))
    port = plane.ports[DEV]
    for addr, mac in NEIGHBOURS.items():  # as if learnt from ARP
        plane.neigh.learn(DEV, ip_address(addr).packed, bytes.fromhex(mac.replace(":", "")))
    return plane, port, loop


class Case:
    """One flow of one mode: frames in (client side) and out (real server side)."""

    def __init__(self, plane: PacketDataPlane, port: Port, mode: str, proto: str, cport: int):
        self.plane, self.port = plane, port
        self.vip, self.rip, self.fwd = MODES[mode]
        self.proto = proto
        self.cport = cport
        self.vport = 80 if proto == "tcp" else 53
        self.dmac = ":".join(f"{b:02x}" for b in port.mac)
        self.lip, self.lport = CIP, cport  # where the real server answers (FULLNAT: local)

    def l4(self, sport: int, dport: int, flags: str, seq: int, ack: int, data: bytes) -> object:
        if self.proto == "udp":
            return UDP(sport=sport, dport=dport) / data
        return TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack, window=65535) / data

    def frame_in(self, flags: str = "A", data: bytes = PAYLOAD, seq: int = 1001) -> bytes:
        """Client -> VIP; data acknowledges 1000 bytes from the server (not the TOA ACK)."""
        ip = IP(src=CIP, dst=self.vip, ttl=64)
        l4 = self.l4(self.cport, self.vport, flags, seq, 6001 if data else 5001, data)
        return bytes(10) + bytes(Ether(dst=self.dmac, src=CMAC) / ip / l4)

    def frame_out(self, flags: str = "A", data: bytes = PAYLOAD, seq: int = 5001) -> bytes:
        ip = IP(src=self.rip, dst=self.lip, ttl=64)
        l4 = self.l4(self.vport, self.lport, flags, seq, 1001, data)
        return bytes(10) + bytes(Ether(dst=self.dmac, src=NEIGHBOURS[self.rip]) / ip / l4)

    def feed(self, frame: bytes) -> None:
        plane = self.plane
        plane.buf[HEADROOM : HEADROOM + len(frame)] = frame
        tx = plane.tx
        plane.frame(self.port, len(frame), time.monotonic())
        if plane.tx != tx + 1:
            raise SystemExit(f"{self.proto} frame not forwarded: {dict(plane.counters)}")

    def open(self) -> None:
        """Start the flow (TCP: the handshake) and learn the FULLNAT local address."""
        if self.proto == "tcp":
            self.feed(self.frame_in("S", b"", 1000))
        else:
            self.feed(self.frame_in())
        key = bytes([6 if self.proto == "tcp" else 17]) + ip_address(CIP).packed
        key += ip_address(self.vip).packed + self.cport.to_bytes(2, "big")
        cp = self.plane.engine.conns.tab[key + self.vport.to_bytes(2, "big")]
        if isinstance(cp.extra, Fnat):
            self.lip, self.lport = str(ip_address(cp.extra.lip)), cp.extra.lport
        if self.proto == "tcp":
            if self.fwd != Fwd.DROUTE:
                self.feed(self.frame_out("SA", b"", 5000))
            self.feed(self.frame_in("A", b""))


def measure(case: Case, frame: bytes, n: int, rounds: int) -> tuple[list[float], list[float]]:
    """Process CPU µs per frame of each round: frame() (after the copy), then send alone."""
    plane, port = case.plane, case.port
    tx = plane.tx
    now = time.monotonic()
    f = plane.frame
    buf = plane.buf
    ln = len(frame)
    end = HEADROOM + ln
    us = []
    for _ in range(rounds):
        t0 = time.process_time()
        for _ in range(n):
            buf[HEADROOM:end] = frame
            f(port, ln, now)
        us.append((time.process_time() - t0) / n * 1e6)
    if plane.tx - tx != n * rounds:
        raise SystemExit(f"frames lost ({plane.tx - tx} of {n * rounds}): {dict(plane.counters)}")
    # What went out: the frame as rewritten in the buffer, vnet header included.
    plane.buf[HEADROOM : HEADROOM + len(frame)] = frame
    plane.frame(port, len(frame), now)
    sent = bytes(plane.view[HEADROOM : HEADROOM + len(frame)])
    send = port.sock.send
    ts = []
    for _ in range(rounds):
        t0 = time.process_time()
        for _ in range(n):
            send(sent)
        ts.append((time.process_time() - t0) / n * 1e6)
    return us, ts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--frames", type=int, default=10000, help="frames per round")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--cpu", type=int, default=-1, help="pin to this CPU (default: no pinning)")
    ap.add_argument("--only", default="", help="comma-separated case names to run")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root (a network namespace and AF_PACKET)")
    if args.cpu >= 0:
        os.sched_setaffinity(0, {args.cpu})
    enter_netns()
    plane, port, loop = build_plane()
    only = set(filter(None, args.only.split(",")))
    print("µs of process CPU per frame, median (min) of the rounds")
    print(f"{'case':<17}{'frame()':>15}{'send alone':>15}{'python':>15}")
    cport = 40000
    try:
        for mode in MODES:
            for proto in ("udp", "tcp"):
                cport += 1
                case = Case(plane, port, mode, proto, cport)
                case.open()
                dirs = [("in", case.frame_in())]
                if mode != "dr":
                    dirs.append(("out", case.frame_out()))
                for d, frame in dirs:
                    name = f"{mode}-{proto}-{d}"
                    if only and name not in only:
                        continue
                    us, send = measure(case, frame, args.frames, args.rounds)
                    cols = [(statistics.median(x), min(x)) for x in (us, send)]
                    cols.append((cols[0][0] - cols[1][0], cols[0][1] - cols[1][1]))
                    text = "".join(f"{m:>8.2f} ({lo:5.2f})" for m, lo in cols)
                    print(f"{name:<17}{text}", flush=True)
    finally:
        loop.run_until_complete(plane.stop())
        loop.close()


if __name__ == "__main__":
    main()
