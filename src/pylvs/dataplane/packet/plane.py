"""The packet data plane: LVS proper on raw frames (root).

``pylvsd --dataplane packet --interface IF [--interface IF2 ...]`` reads the
frames of the given interfaces with AF_PACKET, asks the engine about every
packet that concerns a virtual service or one of its connections, and
transmits per real server forwarding method (ip_vs_xmit.c):

- NAT (-m): destination rewritten to RIP:rport; replies from the real
  server (it routes through the director) rewritten back to VIP:vport;
- DR (-g): only the Ethernet destination changes, to the real server's MAC;
- TUN (-i): IPIP (or GUE) encapsulation, outer source the director's
  address toward the real server; packets that no longer fit get ICMP
  fragmentation-needed back (pmtu_disc);
- FULLNAT (--fullnat): source rewritten to a local address and port of the
  service's pool, destination to RIP:rport, the client's address in a TOA
  option; replies mapped back.

The connection table follows the packets (xmit.py for the rewriting): NAT
and FULLNAT see both directions and run the full TCP state table; DR and
TUN see only the client's side (the INPUT_ONLY table), as the kernel does.

What the director's own stack must not do (answer the VIP, forward NAT
replies un-rewritten, reset FULLNAT replies) is kept off with an nftables
table installed on start and removed on clean shutdown (nft.py).  Firewall-
mark services are refused: marks are set by netfilter after the packet tap
this data plane reads from.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import struct
import time
from collections import Counter
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import ClassVar

from pylvs.core.conn import F_FWD_MASK, F_ONE_PACKET, Conn, conn_key
from pylvs.core.engine import DROP, NO_DEST, Engine
from pylvs.core.model import Fwd, Proto
from pylvs.daemon.ctl import Policy
from pylvs.dataplane.base import DataPlane
from pylvs.dataplane.packet import netinfo, nft
from pylvs.dataplane.packet.afpacket import Port, open_port
from pylvs.dataplane.packet.neigh import Neighbours
from pylvs.dataplane.packet.xmit import Fnat, Xmit
from pylvs.wire import arp
from pylvs.wire.packet import IPPROTO_ICMP, parse

log = logging.getLogger("pylvsd.packet")

HEADROOM = 64  # room to prepend tunnel headers in place
BUFSIZE = 1 << 17  # a GSO super-packet (64 KiB) plus headers
BUDGET = 256  # frames per interface per wakeup
REFRESH = 5.0  # seconds between re-reads of routes and neighbours
RETRY = 1.0  # ... or sooner after a packet found no route (a link back up, say)
Address = IPv4Address | IPv6Address
L4 = (Proto.TCP, Proto.UDP, Proto.SCTP)
_K4 = struct.Struct("!B4s4sHH")  # an IPv4 connection key (conn.conn_key)
Elem = tuple[str, bytes, int, int]  # ("v"ip | "r"eal server | "l"ocal address, addr, proto, port)


class PacketDataPlane(DataPlane):
    name: ClassVar[str] = "packet"
    policy: ClassVar[Policy] = Policy(default_fwd=Fwd.DROUTE)

    def __init__(self, args: argparse.Namespace | None = None) -> None:
        self.ifnames: list[str] = list(getattr(args, "interface", None) or [])
        self.ports: dict[str, Port] = {}
        self.by_fd: dict[int, Port] = {}
        self.counters: Counter[str] = Counter()
        self.buf = bytearray(HEADROOM + BUFSIZE)
        self.view = memoryview(self.buf)
        self.rx = self.view[HEADROOM:]
        self.rx_start = HEADROOM + 10  # the Ethernet header, after the virtio_net_hdr
        self.rxn = self.tx = 0
        self.addrs: dict[bytes, Address] = {}
        self.vips: set[bytes] = set()
        self.local4: set[bytes] = set()
        self.routes = netinfo.Routes()
        self.neigh = Neighbours(self.send_frame)
        self.refreshed = 0.0
        self.no_route_seen = 0  # drop_no_route at the last refresh
        self.nft_text = ""
        self.nft_dirty = False
        self.held: Counter[Elem] = Counter()
        self.conn_elems: dict[Conn, tuple[Elem, ...]] = {}
        self.started = False
        self.batching = False  # handling received frames: output goes through the rings
        self.warned: set[str] = set()

    # -- lifecycle -------------------------------------------------------------------
    async def start(self, engine: Engine) -> None:
        self.engine = engine
        self.loop = asyncio.get_running_loop()
        if not self.ifnames:
            raise RuntimeError("the packet data plane needs --interface")
        links = netinfo.links()
        for name in self.ifnames:
            link = links.get(name)
            if link is None:
                raise RuntimeError(f"no interface {name!r}")
            port = open_port(name, link.index, link.mac, link.mtu, link.addrs4)
            self.ports[name] = port
            self.by_fd[port.fd] = port
        self.local4 = {a for link in links.values() for a in link.addrs4}
        self.xmit = Xmit(self)
        self.refresh(time.monotonic())
        self.started = True
        self.table_changed()
        for port in self.ports.values():
            self.loop.add_reader(port.fd, self.on_readable, port)
        log.info("packet data plane on %s", ", ".join(self.ports))

    async def stop(self) -> None:
        for port in self.ports.values():
            self.loop.remove_reader(port.fd)
            if port.ring is not None:
                port.ring.close()
            port.sock.close()
        self.ports.clear()
        if self.started:
            nft.remove()

    def refresh(self, now: float) -> None:
        self.refreshed = now
        self.no_route_seen = self.counters["drop_no_route"]
        if self.started:
            self.xmit.l2.clear()
        self.routes.load()
        self.neigh.load()
        links = netinfo.links()
        self.local4 = {a for link in links.values() for a in link.addrs4}
        for name, port in self.ports.items():
            if name in links:
                port.addrs4 = links[name].addrs4
                port.mac = links[name].mac
                port.mtu = links[name].mtu

    # -- rules -----------------------------------------------------------------------
    def table_changed(self) -> None:
        if not self.started:
            return
        self.apply_nft()
        self.xmit.dests.clear()

    def apply_nft(self) -> None:
        """The nftables sets: what the rules name, plus what live connections still
        use (a deleted real server's or service's connections are dropped by
        the data plane, as the kernel drops them; the director's stack must
        not answer or forward them meanwhile)."""
        self.nft_dirty = False
        vips: list[tuple[str, int, int]] = []
        nat_rs: list[tuple[str, int, int]] = []
        laddrs: list[str] = []
        self.vips = set()
        held_vips: set[Elem] = set()
        for e in self.held:
            kind, a, proto, port = e
            if kind == "v":
                held_vips.add(e)
            elif kind == "r":
                nat_rs.append((str(self.addr(a)), proto, port))
            else:
                laddrs.append(str(self.addr(a)))
        for svc in self.engine.table:
            if svc.fwmark or svc.addr is None:
                self._warn(f"{svc!r}: firewall-mark services are not served by the packet plane")
                continue
            if svc.addr.version != 4:
                self._warn(f"{svc!r}: IPv6 is not forwarded by the packet plane yet")
                continue
            vips.append((str(svc.addr), svc.protocol, svc.port))
            self.vips.add(svc.addr.packed)
            laddrs += [str(a) for a in svc.laddrs]
            for d in svc.destinations:
                if d.fwd_method in (Fwd.MASQ, Fwd.FULLNAT):
                    nat_rs.append((str(d.addr), svc.protocol, d.port or svc.port))
        # Connections of a deleted service: shield exactly them (a new connection
        # to that address:port is the stack's business again, as in the kernel).
        orphans = held_vips - {("v", self.addr_packed(a), p, port) for a, p, port in vips}
        flows: list[tuple[str, int, str, int]] = []
        if orphans:
            for cp, elems in self.conn_elems.items():
                if elems[0] in orphans and len(cp.key) == 13:
                    _, caddr, vaddr, cport, vport = _K4.unpack(cp.key)
                    flows.append((str(self.addr(caddr)), cport, str(self.addr(vaddr)), vport))
            self.vips |= {e[1] for e in orphans}
        text = nft.ruleset(vips, nat_rs, laddrs, flows)
        if text != self.nft_text:
            nft.apply(text)
            self.nft_text = text

    def hold(self, cp: Conn, vaddr: bytes, proto: int, vport: int) -> None:
        """A new connection: count the nftables elements it relies on."""
        elems: list[Elem] = [("v", vaddr, proto, vport)]
        fwd = cp.flags & F_FWD_MASK
        if fwd in (Fwd.MASQ, Fwd.FULLNAT) and cp.dest is not None:
            elems.append(("r", self.xmit.rip(cp.dest), proto, cp.dport))
            f = cp.extra
            if isinstance(f, Fnat):
                elems.append(("l", f.lip, 0, 0))
        t = tuple(elems)
        self.conn_elems[cp] = t
        held = self.held
        for e in t:
            held[e] += 1

    def _warn(self, msg: str) -> None:
        if msg not in self.warned:
            self.warned.add(msg)
            log.warning("%s", msg)

    # -- receive ---------------------------------------------------------------------
    def on_readable(self, port: Port) -> None:
        self.batching = True
        try:
            self._receive(port)
        finally:
            self.batching = False
            for p in self.ports.values():
                if p.ring is not None and p.ring.pending:
                    p.ring.flush()

    def _receive(self, port: Port) -> None:
        recv = port.sock.recv_into
        rx = self.rx
        now = time.monotonic()
        for _ in range(BUDGET):
            try:
                n = recv(rx)
            except BlockingIOError:
                return
            except OSError as e:
                self.counters[f"rx_error_{e.errno}"] += 1
                # An error (ENETDOWN: the link went down) comes with POLLERR, on which
                # uvloop (libuv) closes the poll handle for good: register again.
                self.loop.call_soon(self.rearm, port)
                return
            self.rxn += 1
            try:
                self.frame(port, n, now)
            except Exception:
                self.counters["exception"] += 1
                log.exception("frame on %s", port.name)

    def rearm(self, port: Port) -> None:
        """Read ``port`` again after an error (a new poll handle under uvloop)."""
        if self.ports.get(port.name) is port:
            self.loop.remove_reader(port.fd)
            self.loop.add_reader(port.fd, self.on_readable, port)

    @staticmethod
    def addr_packed(text: str) -> bytes:
        return ip_address(text).packed

    def addr(self, packed: bytes) -> Address:
        a = self.addrs.get(packed)
        if a is None:
            if len(self.addrs) > 65536:
                self.addrs.clear()
            a = self.addrs[packed] = ip_address(packed)
        return a

    def frame(self, port: Port, n: int, now: float) -> None:
        buf = self.buf
        off = HEADROOM
        if n < 10:
            self.counters["drop_short_vnet"] += 1
            return
        start = off + 10
        if not buf[start] & 1 and buf[start : start + 6] != port.mac:
            # Unicast for another host (a switch flooding it, e.g. to a VRRP backup
            # while the master's port is down): the kernel drops PACKET_OTHERHOST
            # before IPVS sees it, and so does this data plane.
            self.counters["drop_otherhost"] += 1
            return
        pkt = parse(buf, start, off + n, (buf[off] & 1) != 0)  # NEEDS_CSUM
        if isinstance(pkt, str):
            if pkt == "arp":
                self.on_arp(port, start, off + n)
            else:
                self.counters[f"drop_{pkt}"] += 1
            return
        proto = pkt.proto
        if proto == 6 or proto == 17:  # TCP, UDP: the common case first
            pass
        elif proto == IPPROTO_ICMP:
            self.xmit.icmp(port, pkt, now)
            return
        elif proto not in L4:
            return
        if pkt.frag:
            if pkt.daddr in self.vips:
                # IPVS reassembles first; this data plane does not (documented).
                self.counters["drop_fragment"] += 1
            return
        if pkt.af == 4:
            key = _K4.pack(proto, pkt.saddr, pkt.daddr, pkt.sport, pkt.dport)  # conn_key
        else:
            key = conn_key(proto, pkt.saddr, pkt.daddr, pkt.sport, pkt.dport)
        engine = self.engine
        conns = engine.conns
        cp = conns.out.get(key)
        if cp is not None:
            self.xmit.reply(port, pkt, cp, now, buf[off + 1], buf[off + 4] | buf[off + 5] << 8)
            return
        if pkt.daddr not in self.vips:
            return
        # A packet of a connection in the table that can only be counted on it takes
        # the engine's short entry; anything else (a new connection, reuse rules, an
        # unavailable real server) is packet_in's to decide.
        cp = conns.tab.get(key)
        if cp is None or not engine.packet_in_hit(cp, proto, now, pkt.tcp_flags, pkt.end - pkt.l3):
            r = engine.packet_in(
                proto,
                self.addr(pkt.saddr),
                pkt.sport,
                self.addr(pkt.daddr),
                pkt.dport,
                now,
                flags=pkt.tcp_flags,
                size=pkt.end - pkt.l3,
                key=key,
            )
            if not isinstance(r, Conn):
                if r == NO_DEST:
                    self.counters["no_dest"] += 1
                    self.xmit.unreachable(port, pkt, now)
                elif r == DROP:
                    self.counters["drop_no_dest_conn"] += 1
                return
            cp = r
        new = cp.in_pkts == 1 and not cp.flags & F_ONE_PACKET
        vaddr, vport = pkt.daddr, pkt.dport
        self.xmit.forward(port, pkt, cp, now, buf[off + 1], buf[off + 4] | buf[off + 5] << 8)
        if new:
            self.hold(cp, vaddr, proto, vport)

    def on_arp(self, port: Port, start: int, end: int) -> None:
        a = arp.parse_arp(self.view[start:end])
        if isinstance(a, str):
            self.counters[f"drop_arp_{a}"] += 1
            return
        if self.neigh.get(port.name, a.spa) != a.sha:
            self.xmit.l2.clear()
        for frame in self.neigh.learn(port.name, a.spa, a.sha):
            self.send_raw(port, frame)
        # ARP for a VIP is the stack's: answered where the VIP is configured (the
        # seeds' director, the VRRP master), never by the data plane, so a VRRP
        # backup serving the same VIP stays silent.

    # -- transmit --------------------------------------------------------------------
    def send_frame(self, dev: str, frame: bytes) -> None:
        """Send an Ethernet frame we built (complete checksums) out of ``dev``."""
        port = self.ports.get(dev)
        if port is not None:
            self.send_raw(port, bytes(10) + frame)

    def send_raw(self, port: Port, data: bytes | bytearray | memoryview) -> None:
        """Send a frame (virtio_net_hdr first): into the transmit ring while a batch
        of received frames is handled (flushed at its end), else at once."""
        ring = port.ring
        if ring is not None:
            if self.batching and ring.put(data):
                self.tx += 1
                return
            ring.flush()  # what is queued goes first
        try:
            port.sock.send(data)
            self.tx += 1
        except BlockingIOError:
            self.counters["tx_full"] += 1
        except OSError as e:
            self.counters[f"tx_error_{e.errno}"] += 1

    # -- timers ----------------------------------------------------------------------
    def tick(self, now: float) -> None:
        missed = self.counters["drop_no_route"] != self.no_route_seen
        if now - self.refreshed >= (RETRY if missed else REFRESH):
            try:
                self.refresh(now)
            except Exception as e:  # a failing `ip` must not stop forwarding
                log.warning("refreshing routes and neighbours: %s", e)
                self.refreshed = now
        if self.nft_dirty:
            try:
                self.apply_nft()
            except RuntimeError as e:
                log.warning("%s", e)
        dropped = self.neigh.forget_unanswered(now)
        if dropped:
            self.counters["drop_neigh_unresolved"] += dropped

    def expired(self, conns: list[Conn]) -> None:
        held = self.held
        for c in conns:
            t = self.conn_elems.pop(c, None)
            if t is None:
                continue
            for e in t:
                n = held[e] - 1
                if n > 0:
                    held[e] = n
                else:
                    del held[e]
                    self.nft_dirty = True

    def counter_values(self) -> dict[str, int]:
        rings = [p.ring for p in self.ports.values() if p.ring is not None]
        extra = {"tx_ring": sum(r.queued for r in rings)}
        errors = sum(r.errors for r in rings)
        if errors:
            extra["tx_ring_error"] = errors
        return {**self.counters, **extra, "rx": self.rxn, "tx": self.tx}
