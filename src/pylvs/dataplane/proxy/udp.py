"""UDP relaying for the proxy data plane.

A virtual UDP service is one socket bound to its address:port.  Each client
flow (client address:port) is an engine connection with the UDP timeout;
the flow gets its own socket connected to the chosen real server, so replies
come back on it and are sent to the right client from the service socket.
The flow closes when the engine's entry expires.

One-packet scheduling (-o): every datagram is scheduled on its own and the
engine keeps no entry; replies still need a way back, so a short-lived reply
socket per (client, real server) pair stays open for the UDP timeout after
its last datagram.
"""

from __future__ import annotations

import socket
import time
from ipaddress import ip_address
from typing import TYPE_CHECKING

from pylvs.core.conn import Conn
from pylvs.core.model import DEST_F_AVAILABLE, Proto

if TYPE_CHECKING:
    from pylvs.dataplane.proxy.plane import ListenKey, ProxyDataPlane

MAX_DATAGRAM = 65535
READ_BATCH = 64


class UdpFlow:
    __slots__ = ("client", "conn", "fd", "last", "ops_key", "service", "sock")

    def __init__(
        self,
        service: UdpService,
        conn: Conn | None,
        client: tuple[str, int],
        dest_addr: str,
        dport: int,
    ) -> None:
        fam = socket.AF_INET6 if ":" in dest_addr else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        s.connect((dest_addr, dport))
        self.sock = s
        self.fd = s.fileno()
        self.service = service
        self.conn = conn
        self.client = client
        self.last = time.monotonic()
        self.ops_key: tuple[tuple[str, int], str, int] | None = None
        service.plane.loop.add_reader(self.fd, self.on_reply)
        if conn is not None:
            conn.extra = self

    def send(self, data: bytes) -> None:
        self.last = time.monotonic()
        try:
            self.sock.send(data)
        except (BlockingIOError, ConnectionRefusedError):
            self.service.plane.counters["udp_send_dropped"] += 1
        except OSError:
            self.service.plane.counters["udp_send_error"] += 1

    def on_reply(self) -> None:
        plane = self.service.plane
        for _ in range(READ_BATCH):
            try:
                data = self.sock.recv(MAX_DATAGRAM)
            except BlockingIOError:
                return
            except OSError:
                plane.counters["udp_reply_error"] += 1  # e.g. ICMP port unreachable
                return
            self.last = time.monotonic()
            conn = self.conn
            if conn is not None and conn.alive:
                plane.engine.packet_out(conn, self.last, size=len(data) + 28)
            try:
                self.service.sock.sendto(data, self.client)
            except OSError:
                plane.counters["udp_reply_dropped"] += 1

    def close(self) -> None:
        self.service.plane.loop.remove_reader(self.fd)
        self.sock.close()
        if self.conn is not None and self.conn.extra is self:
            self.conn.extra = None
        if self.ops_key is not None:
            self.service.ops_flows.pop(self.ops_key, None)
        self.service.flows.discard(self)


class UdpService:
    __slots__ = ("fd", "flows", "key", "ops_flows", "plane", "sock", "vaddr", "vport")

    def __init__(self, plane: ProxyDataPlane, key: ListenKey) -> None:
        from pylvs.dataplane.proxy.plane import bind_socket

        self.plane = plane
        self.key = key
        self.sock = bind_socket(Proto.UDP, key[1], key[2])
        self.fd = self.sock.fileno()
        self.vaddr = ip_address(key[1])
        self.vport = key[2]
        self.flows: set[UdpFlow] = set()
        self.ops_flows: dict[tuple[tuple[str, int], str, int], UdpFlow] = {}

    def start(self) -> None:
        self.plane.loop.add_reader(self.fd, self.on_readable)

    def on_readable(self) -> None:
        plane = self.plane
        engine = plane.engine
        for _ in range(READ_BATCH):
            try:
                data, peer = self.sock.recvfrom(MAX_DATAGRAM)
            except BlockingIOError:
                return
            except OSError:
                plane.counters["udp_recv_error"] += 1
                return
            now = time.monotonic()
            client = (peer[0], peer[1])
            r = engine.packet_in(
                Proto.UDP,
                ip_address(peer[0]),
                peer[1],
                self.vaddr,
                self.vport,
                now,
                size=len(data) + 28,
            )
            if not isinstance(r, Conn) or r.dest is None:
                plane.counters["no_dest"] += 1
                continue
            dest = r.dest
            if not dest.flags & DEST_F_AVAILABLE:
                plane.counters["dest_unavailable"] += 1
                continue
            flow = r.extra if isinstance(r.extra, UdpFlow) else None
            if flow is None:
                daddr = str(dest.addr)
                if r.alive:
                    flow = UdpFlow(self, r, client, daddr, r.dport)
                else:  # one-packet scheduling: no entry is kept
                    k = (client, daddr, r.dport)
                    flow = self.ops_flows.get(k)
                    if flow is None:
                        flow = UdpFlow(self, None, client, daddr, r.dport)
                        flow.ops_key = k
                        self.ops_flows[k] = flow
                self.flows.add(flow)
            flow.send(data)

    def sweep(self, now: float) -> None:
        """Close one-packet reply sockets idle longer than the UDP timeout."""
        if not self.ops_flows:
            return
        limit = now - self.plane.engine.conns.timeouts.udp
        for flow in list(self.ops_flows.values()):
            if flow.last < limit:
                flow.close()

    def close(self) -> None:
        for flow in list(self.flows):
            flow.close()
        self.plane.loop.remove_reader(self.fd)
        self.sock.close()
