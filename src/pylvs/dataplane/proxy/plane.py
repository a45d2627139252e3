"""The proxy data plane: an unprivileged L4 director on sockets (the default).

For every TCP and UDP virtual service it listens on the service's
address:port (IP_FREEBIND, so a VIP that is routed to the host but not
configured on it works), asks the engine for a real server, connects, and
relays.  Rules changed through the API take effect at once: listeners are
added and removed as services come and go, and existing connections keep
their real server.

Forwarding methods: masquerading is the default and the natural fit;
FULLNAT and "local" are accepted (the real server sees the director's
address either way; PROXY protocol v1/v2 per real server carries the client's
address).  Direct routing and tunneling rewrite packets, which a socket
cannot do: they are refused with a message pointing at the packet plane.

Real servers that are deleted (or otherwise unavailable) follow the kernel's
expire_nodest_conn: with 0 (default) their connections are held (no bytes
move, as the kernel drops the packets) and resume if the server comes back;
with 1 they are reset at their next packet.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import socket
import time
from collections import Counter
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import ClassVar

from pylvs.core.conn import Conn, conn_key
from pylvs.core.engine import Engine
from pylvs.core.model import DEST_F_AVAILABLE, Dest, Fwd, Proto, Service
from pylvs.core.proto_tcp import TH_RST, TH_SYN
from pylvs.daemon.ctl import Policy
from pylvs.dataplane.base import DataPlane
from pylvs.dataplane.proxy.poller import Poller
from pylvs.dataplane.proxy.tcp import PIPE_SIZE, Relay, Sock, reset_close
from pylvs.dataplane.proxy.udp import UdpService
from pylvs.dataplane.proxy.workers import RemoteRelay, WorkerPool
from pylvs.wire import proxyproto

log = logging.getLogger("pylvsd.proxy")

IP_FREEBIND = 15
IPV6_FREEBIND = 78
ACCEPT_BATCH = 64
REFUSED = "direct routing (-g) and tunneling (-i) rewrite packets: they need --dataplane packet"

ListenKey = tuple[int, str, int]  # (protocol, address, port)


def bind_socket(proto: int, addr: str, port: int) -> socket.socket:
    v6 = ":" in addr
    fam = socket.AF_INET6 if v6 else socket.AF_INET
    kind = socket.SOCK_STREAM if proto == Proto.TCP else socket.SOCK_DGRAM
    s = socket.socket(fam, kind | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if v6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.setsockopt(socket.IPPROTO_IPV6, IPV6_FREEBIND, 1)
        else:
            s.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
        s.bind((addr, port))
        if kind == socket.SOCK_STREAM:
            # Accepted sockets inherit TCP_NODELAY from the listener: one call, not one each.
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.listen(4096)
    except OSError:
        s.close()
        raise
    return s


class TcpListener:
    __slots__ = ("family", "fd", "key", "plane", "sock", "vaddr", "vpacked", "vport")

    def __init__(self, plane: ProxyDataPlane, key: ListenKey) -> None:
        self.plane = plane
        self.key = key
        self.sock = bind_socket(Proto.TCP, key[1], key[2])
        self.fd = self.sock.fileno()
        self.family = self.sock.family
        self.vaddr = ip_address(key[1])
        self.vpacked = self.vaddr.packed
        self.vport = key[2]

    def start(self) -> None:
        self.plane.loop.add_reader(self.fd, self.on_readable)

    def stop_accepting(self) -> None:
        self.plane.loop.remove_reader(self.fd)

    def on_readable(self) -> None:
        plane = self.plane
        engine = plane.engine
        for _ in range(ACCEPT_BATCH):
            try:
                fd, peer = self.sock._accept()  # type: ignore[attr-defined]
            except BlockingIOError:
                return
            except OSError as e:
                plane.counters["accept_error"] += 1
                log.warning("accept on %s:%d: %s", self.key[1], self.key[2], e)
                return
            # Left in blocking mode: the relay reads and writes with MSG_DONTWAIT.
            csock = Sock(self.family, socket.SOCK_STREAM, 0, fd)
            cache = plane.addr_cache
            known = cache.get(peer[0])
            if known is None:
                if len(cache) > 65536:
                    cache.clear()
                a = ip_address(peer[0])
                known = cache[peer[0]] = (a, a.packed)
            caddr = known[0]
            now = time.monotonic()
            r = engine.packet_in(
                Proto.TCP,
                caddr,
                peer[1],
                self.vaddr,
                self.vport,
                now,
                flags=TH_SYN,
                new_conn=True,
                key=conn_key(Proto.TCP, known[1], self.vpacked, peer[1], self.vport),
            )
            if not isinstance(r, Conn) or r.dest is None:
                plane.counters["no_dest"] += 1
                reset_close(csock)
                continue
            dest = r.dest
            pp = dest.extra.get("proxy_protocol")
            header = proxyproto.header(pp, caddr, peer[1], self.vaddr, self.vport) if pp else None
            if plane.pool is not None:
                plane.pool.dispatch(r, csock, plane.addr_text(dest), r.dport, header)
            else:
                relay = Relay(plane, r, csock, header)
                r.extra = relay
                plane.relays.add(relay)
                fam = socket.AF_INET6 if isinstance(dest.addr, IPv6Address) else socket.AF_INET
                relay.connect(plane.addr_text(dest), r.dport, fam)
            if plane.open_relays() >= plane.max_conns:
                plane.pause_accepting()
                return

    def close(self) -> None:
        self.plane.loop.remove_reader(self.fd)
        self.sock.close()


class ProxyDataPlane(DataPlane):
    name: ClassVar[str] = "proxy"
    policy: ClassVar[Policy] = Policy(
        default_fwd=Fwd.MASQ,
        refused_fwd=frozenset({Fwd.DROUTE, Fwd.TUNNEL}),
        refused_message=REFUSED,
    )

    def __init__(self, args: argparse.Namespace | None = None) -> None:
        self.connect_timeout = float(getattr(args, "connect_timeout", 5.0) or 5.0)
        self.max_conns = int(getattr(args, "max_conns", 0) or 0) or default_max_conns()
        self.listeners: dict[ListenKey, TcpListener | UdpService] = {}
        self.relays: set[Relay] = set()
        self.paused: set[Relay | RemoteRelay] = set()
        self.counters: Counter[str] = Counter()
        self.accepting = True
        self.warned: set[str] = set()
        self.buffer = bytearray(PIPE_SIZE)  # shared by every relay's copy mode
        self.view = memoryview(self.buffer)
        # Client address text -> (address, packed): ipaddress is slow to build.
        self.addr_cache: dict[str, tuple[IPv4Address | IPv6Address, bytes]] = {}
        self.addr_texts: dict[Dest, str] = {}
        self.nworkers = int(getattr(args, "workers", 1) or 1)
        self.pool: WorkerPool | None = None

    async def start(self, engine: Engine) -> None:
        raise_nofile_limit()
        # Relays free themselves by reference counting; keep the cyclic collector from
        # walking the long-lived engine objects on every few thousand allocations.
        gc.freeze()
        gc.set_threshold(50_000, 50, 100)
        self.engine = engine
        engine.reply_index = False  # replies come back on the connection's own socket
        self.loop = asyncio.get_running_loop()
        self.poller = Poller(self.loop)
        if self.nworkers > 1:
            self.pool = WorkerPool(self, self.nworkers)
        self.table_changed()

    # -- rules -> listeners -------------------------------------------------------
    def wanted(self) -> dict[ListenKey, Service]:
        out: dict[ListenKey, Service] = {}
        for svc in self.engine.table:
            why = None
            if svc.fwmark:
                why = "firewall-mark services need --dataplane packet"
            elif svc.protocol not in (Proto.TCP, Proto.UDP):
                why = "SCTP is not relayed by the proxy data plane"
            elif svc.port == 0:
                why = "port-zero services cannot be listened on"
            if why:
                self._warn_once(f"{svc!r}: {why}")
                continue
            out[(svc.protocol, str(svc.addr), svc.port)] = svc
        return out

    def _warn_once(self, msg: str) -> None:
        if msg not in self.warned:
            self.warned.add(msg)
            log.warning("%s", msg)

    def table_changed(self) -> None:
        want = self.wanted()
        for key in list(self.listeners):
            if key not in want:
                self.listeners.pop(key).close()
        for key in want:
            if key in self.listeners:
                continue
            try:
                lst: TcpListener | UdpService
                lst = TcpListener(self, key) if key[0] == Proto.TCP else UdpService(self, key)
            except OSError as e:
                self.counters["bind_error"] += 1
                self._warn_once(f"cannot listen on {key[1]}:{key[2]}: {e.strerror}")
                continue
            self.listeners[key] = lst
            if self.accepting or key[0] == Proto.UDP:
                lst.start()
        for relay in list(self.paused):
            dest = relay.tag.dest
            if relay.closed:
                self.paused.discard(relay)
            elif dest is not None and dest.flags & DEST_F_AVAILABLE:
                self.paused.discard(relay)
                relay.resume()
        every: list[Relay | RemoteRelay] = [*self.relays]
        if self.pool is not None:
            every += [r for w in self.pool.workers for r in w.relays.values()]
        for each in every:
            self.check_dest(each)

    # -- connection limits ----------------------------------------------------------
    def pause_accepting(self) -> None:
        if self.accepting:
            self.accepting = False
            self.counters["accept_paused"] += 1
            for lst in self.listeners.values():
                if isinstance(lst, TcpListener):
                    lst.stop_accepting()

    # -- what relays tell the director (RelayHost) ------------------------------------
    def established(self, relay: Relay) -> None:
        self.engine.established(relay.tag, time.monotonic())

    def failed(self, relay: Relay, err: int) -> None:
        self.engine.packet_out(relay.tag, time.monotonic(), flags=TH_RST)

    def flush_counts(self, relay: Relay, now: float) -> None:
        if relay.inpkts or relay.outpkts:
            self.engine.account(
                relay.tag, now, relay.inpkts, relay.inbytes, relay.outpkts, relay.outbytes
            )
            relay.inpkts = relay.inbytes = relay.outpkts = relay.outbytes = 0

    def state(self, relay: Relay, inbound: bool, flags: int) -> None:
        self.engine.report(
            relay.tag,
            time.monotonic(),
            inbound,
            flags,
            relay.inpkts,
            relay.inbytes,
            relay.outpkts,
            relay.outbytes,
        )
        relay.inpkts = relay.inbytes = relay.outpkts = relay.outbytes = 0

    def addr_text(self, dest: Dest) -> str:
        """str(dest.addr), cached per dest: ipaddress builds the text anew each time."""
        t = self.addr_texts.get(dest)
        if t is None:
            if len(self.addr_texts) > 4096:
                self.addr_texts.clear()
            t = self.addr_texts[dest] = str(dest.addr)
        return t

    def open_relays(self) -> int:
        return len(self.relays) + (self.pool.open_relays() if self.pool is not None else 0)

    def check_dest(self, rr: Relay | RemoteRelay) -> None:
        """A connection whose real server went away: expire it (expire_nodest_conn) or
        hold it until the server comes back (the kernel drops its packets meanwhile)."""
        dest = rr.tag.dest
        if dest is not None and not dest.flags & DEST_F_AVAILABLE and not rr.closed:
            if self.engine.sysctl.expire_nodest_conn:
                self.engine.conns.expire_now(rr.tag, time.monotonic())
                rr.abort()
            elif not rr.paused:
                rr.pause()
                self.paused.add(rr)

    def remote_closed(self, rr: RemoteRelay) -> None:
        self.paused.discard(rr)
        self._maybe_resume_accepting()

    def relay_closed(self, relay: Relay) -> None:
        if relay.inpkts or relay.outpkts:
            self.flush_counts(relay, time.monotonic())
        conn = relay.tag
        if conn.extra is relay:
            conn.extra = None
        self.relays.discard(relay)
        self.paused.discard(relay)
        if not self.accepting:
            self._maybe_resume_accepting()

    def _maybe_resume_accepting(self) -> None:
        # Resume accepting 10% (at least one connection) below the limit.
        if not self.accepting and self.open_relays() <= self.max_conns - max(
            1, self.max_conns // 10
        ):
            self.accepting = True
            for lst in self.listeners.values():
                if isinstance(lst, TcpListener):
                    lst.start()

    def counter_values(self) -> dict[str, int]:
        return {**self.counters, "relays": len(self.relays)}

    # -- timers ------------------------------------------------------------------------
    def tick(self, now: float) -> None:
        """Report counts, run connect timeouts (every daemon tick, 0.5 s)."""
        for relay in list(self.relays):
            self.flush_counts(relay, now)
            if relay.deadline and relay.deadline <= now:
                relay.on_connect_timeout()

    def expired(self, conns: list[Conn]) -> None:
        for c in conns:
            x = c.extra
            if isinstance(x, (Relay, RemoteRelay)):
                x.abort()
            elif x is not None and hasattr(x, "close"):
                x.close()
        now = time.monotonic()
        for lst in self.listeners.values():
            if isinstance(lst, UdpService):
                lst.sweep(now)

    async def stop(self) -> None:
        for relay in list(self.relays):
            relay.abort()
        if self.pool is not None:
            self.pool.close()
        for lst in self.listeners.values():
            lst.close()
        self.listeners.clear()
        self.poller.stop()


def raise_nofile_limit() -> None:
    """Use the hard RLIMIT_NOFILE: a director holds many sockets."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def default_max_conns() -> int:
    """Each relay holds 2 sockets and 4 pipe ends: stay well inside RLIMIT_NOFILE."""
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(16, (soft - 64) // 6)
