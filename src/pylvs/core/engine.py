"""The facade data planes call (kernel ip_vs_core.c, without the packets).

A data plane turns what it sees into calls:

- ``packet_in``: a packet from a client toward a virtual address (the
  kernel's ip_vs_in): finds or creates the connection, with the kernel's
  connection-reuse and dest-availability rules, counts it, and moves the
  protocol state.  It returns the ``Conn`` to forward on, or a verdict.
- ``packet_out``: a reply the director saw (NAT, FULLNAT; ip_vs_out).
- ``tick``: timers (connection expiry, the rate estimator), driven by ``now``.

Nothing here does I/O or reads the clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pylvs.core import proto_tcp
from pylvs.core.conn import (
    F_NOOUTPUT,
    F_ONE_PACKET,
    F_TEMPLATE,
    IPPROTO_IP,
    Conn,
    ConnTable,
    conn_key,
    template_key,
)
from pylvs.core.est import EstimatorSet
from pylvs.core.model import (
    AF_INET6,
    DEST_F_AVAILABLE,
    SVC_F_ONEPACKET,
    SVC_F_PERSISTENT,
    Address,
    Dest,
    Fwd,
    Packet,
    Proto,
    Service,
    ServiceKey,
    Stats,
)
from pylvs.core.table import Table

FTPPORT = 21

# Verdicts packet_in returns instead of a connection.
NO_SERVICE = 0  # not for a virtual service: not ours, let it pass
NO_DEST = 1  # a virtual service with no usable real server (ip_vs_leave: ICMP/RST)
DROP = 2  # drop silently (e.g. the connection's real server is gone)

EST_PERIOD = 2.0
_INPUT = int(proto_tcp.Dir.INPUT)
_OUTPUT = int(proto_tcp.Dir.OUTPUT)
_TH_SYN = proto_tcp.TH_SYN
_TH_RST = proto_tcp.TH_RST


@dataclass(slots=True)
class Sysctl:
    """The /proc/sys/net/ipv4/vs/ switches the engine honours (kernel defaults)."""

    conn_reuse_mode: int = 1
    expire_nodest_conn: int = 0
    expire_quiescent_template: int = 0
    sloppy_tcp: int = 0


def masked_source(svc: Service, caddr: Address) -> bytes:
    """The client's network after masking with the service's persistence netmask."""
    if svc.af == AF_INET6:
        plen = svc.netmask
        bits = int(caddr)
        mask = ((1 << 128) - 1) ^ ((1 << (128 - plen)) - 1) if plen else 0
        return (bits & mask).to_bytes(16, "big")
    return (int(caddr) & svc.netmask).to_bytes(4, "big")


class Engine:
    def __init__(
        self,
        table: Table | None = None,
        conns: ConnTable | None = None,
        sysctl: Sysctl | None = None,
    ) -> None:
        self.table = table if table is not None else Table()
        self.conns = conns if conns is not None else ConnTable()
        self.sysctl = sysctl if sysctl is not None else Sysctl()
        self.est = EstimatorSet()
        # Index NAT entries by their reply header (a packet data plane looks
        # replies up there); a proxy sees replies on the connection's own socket.
        self.reply_index = True
        self._est_generation = -1
        self._est_keys: set[object] = set()
        # Connection sync (ip_vs_sync_conn): called after each client packet's
        # state change while a master sync daemon runs (core.sync.MasterSync).
        self.sync: Callable[[Conn, float], None] | None = None

    # -- the input path -----------------------------------------------------
    def packet_in(
        self,
        protocol: int,
        caddr: Address,
        cport: int,
        vaddr: Address,
        vport: int,
        now: float,
        *,
        flags: int = 0,
        size: int = 0,
        fwmark: int = 0,
        new_conn: bool | None = None,
        key: bytes | None = None,
    ) -> Conn | int:
        """One packet from a client (ip_vs_in).

        ``flags`` are the TCP header flags (TCP) or the SCTP event (SCTP).
        ``new_conn`` says whether the packet may start a connection; by
        default a TCP SYN (any non-RST packet with sloppy_tcp) or any UDP
        packet.  ``size`` is the IP packet length, for the byte counters.
        """
        if key is None:
            key = conn_key(protocol, caddr.packed, vaddr.packed, cport, vport)
        if new_conn is None:
            new_conn = self._is_new(protocol, flags)
        conns = self.conns
        cp = conns.tab.get(key)
        sysctl = self.sysctl
        if cp is not None and new_conn and sysctl.conn_reuse_mode:
            dest = cp.dest
            resched = False
            if (
                sysctl.expire_nodest_conn and dest is not None and dest.weight == 0
            ) or self._new_conn_expected(cp):
                resched = True
            if resched:
                if not cp.n_control:
                    conns.expire_now(cp, now)
                cp = None
        if cp is not None:
            dest = cp.dest
            if dest is not None and not dest.flags & DEST_F_AVAILABLE:
                if not sysctl.expire_nodest_conn:
                    return DROP
                conns.expire_now(cp, now)
                cp = None
        if cp is None:
            if not new_conn:
                return NO_SERVICE  # nothing to schedule on: the packet goes on as normal
            svc = self.table.find(protocol, vaddr, vport, fwmark)
            if svc is None:
                return NO_SERVICE
            pkt = Packet(protocol, caddr, cport, vaddr, vport)
            made = self.schedule(svc, pkt, now, fwmark, key)
            if made is None:
                return NO_DEST
            cp = made
        self.conn_in(cp, now, flags, size)
        if cp.flags & F_ONE_PACKET:
            conns.release_one_packet(cp)
        return cp

    def packet_in_hit(
        self, cp: Conn, protocol: int, now: float, flags: int = 0, size: int = 0
    ) -> bool:
        """``packet_in`` for a packet whose key the caller found in ``conns.tab`` (``cp``),
        when nothing but ``conn_in`` can follow: then the packet is counted and True.

        False, with nothing changed, when ``packet_in`` must decide: the packet
        may start a connection that replaces ``cp`` (a TCP SYN; a UDP packet
        with conn_reuse_mode and expire_nodest_conn set and the real server at
        weight 0), the real server is unavailable or unknown, a one-packet
        entry, a protocol other than TCP and UDP.  UDP is never "expected new"
        (is_new_conn_expected), so for UDP only the weight rule applies.
        """
        dest = cp.dest
        if dest is None or not dest.flags & DEST_F_AVAILABLE or cp.flags & F_ONE_PACKET:
            return False
        sysctl = self.sysctl
        if protocol == 17:  # IPPROTO_UDP: every packet counts as new
            if sysctl.conn_reuse_mode and sysctl.expire_nodest_conn and dest.weight == 0:
                return False
        elif protocol == 6:  # IPPROTO_TCP
            if flags & _TH_SYN or (sysctl.sloppy_tcp and not flags & _TH_RST):
                return False
        else:
            return False
        self.conn_in(cp, now, flags, size)
        return True

    def conn_in(self, cp: Conn, now: float, flags: int = 0, size: int = 0) -> None:
        """A client packet for a connection the data plane already holds (no lookup)."""
        dest = cp.dest
        if dest is not None:
            st = dest.stats
            st.inpkts += 1
            st.inbytes += size
            st = dest.svc.stats
            st.inpkts += 1
            st.inbytes += size
        st = self.table.tot_stats
        st.inpkts += 1
        st.inbytes += size
        self.conns.set_state(cp, _INPUT, flags, now)
        cp.in_pkts += 1
        sync = self.sync
        if sync is not None:
            sync(cp, now)

    def established(self, cp: Conn, now: float) -> None:
        """A proxy's connect succeeded: the real server's SYN+ACK, then the client's ACK."""
        self.packet_out(cp, now, flags=proto_tcp.TH_SYN | proto_tcp.TH_ACK)
        self.conn_in(cp, now, proto_tcp.TH_ACK, 0)

    def account(
        self, cp: Conn, now: float, inpkts: int, inbytes: int, outpkts: int, outbytes: int
    ) -> None:
        """Traffic counted elsewhere (a proxy worker), with no state change.

        The connection's timer restarts, as it would with each packet.
        """
        self._traffic(cp, inpkts, inbytes, outpkts, outbytes)
        self.conns.touch(cp, now)

    def _traffic(self, cp: Conn, inpkts: int, inbytes: int, outpkts: int, outbytes: int) -> None:
        for st in self._stats_of(cp):
            st.inpkts += inpkts
            st.inbytes += inbytes
            st.outpkts += outpkts
            st.outbytes += outbytes
        cp.in_pkts += inpkts

    def report(
        self,
        cp: Conn,
        now: float,
        inbound: bool,
        flags: int,
        inpkts: int = 0,
        inbytes: int = 0,
        outpkts: int = 0,
        outbytes: int = 0,
    ) -> None:
        """A proxy's report at a FIN or RST: ``account`` for the traffic it counted
        since its last report, then ``conn_in`` (``inbound``, from the client) or
        ``packet_out`` (from the real server) for the packet with ``flags``, in
        one pass (one timer restart, one update per counter)."""
        if inbound:
            inpkts += 1
        else:
            outpkts += 1
        self._traffic(cp, inpkts, inbytes, outpkts, outbytes)
        self.conns.set_state(cp, _INPUT if inbound else _OUTPUT, flags, now)
        if inbound:
            sync = self.sync
            if sync is not None:
                sync(cp, now)

    def _stats_of(self, cp: Conn) -> tuple[Stats, ...]:
        dest = cp.dest
        if dest is None:
            return (self.table.tot_stats,)
        return (dest.stats, dest.svc.stats, self.table.tot_stats)

    def packet_out(self, cp: Conn, now: float, *, flags: int = 0, size: int = 0) -> None:
        """A reply from the real server that went through the director (ip_vs_out)."""
        dest = cp.dest
        if dest is not None:
            st = dest.stats
            st.outpkts += 1
            st.outbytes += size
            st = dest.svc.stats
            st.outpkts += 1
            st.outbytes += size
        st = self.table.tot_stats
        st.outpkts += 1
        st.outbytes += size
        self.conns.set_state(cp, _OUTPUT, flags, now)

    def _is_new(self, protocol: int, flags: int) -> bool:
        if protocol == Proto.TCP:
            if self.sysctl.sloppy_tcp:
                return not flags & proto_tcp.TH_RST
            return bool(flags & proto_tcp.TH_SYN)
        return protocol == Proto.UDP

    def _new_conn_expected(self, cp: Conn) -> bool:
        """is_new_conn_expected(): a SYN may replace a closing, uncontrolled connection."""
        if cp.control is not None:
            return False
        proto = cp.key[0]
        if proto == Proto.TCP:
            st = cp.state
            return (
                st == proto_tcp.TcpState.TIME_WAIT
                or st == proto_tcp.TcpState.CLOSE
                or (
                    bool(self.sysctl.conn_reuse_mode & 2)
                    and st == proto_tcp.TcpState.FIN_WAIT
                    and bool(cp.flags & F_NOOUTPUT)
                )
            )
        if proto == Proto.SCTP:
            from pylvs.core import proto_sctp

            return proto_sctp.is_closed(cp.state)
        return False

    # -- scheduling -----------------------------------------------------------
    def schedule(
        self,
        svc: Service,
        pkt: Packet,
        now: float,
        fwmark: int = 0,
        key: bytes | None = None,
    ) -> Conn | None:
        """ip_vs_schedule(): a new connection for ``pkt``, or None when no dest fits."""
        if key is None:
            key = conn_key(pkt.protocol, pkt.saddr.packed, pkt.daddr.packed, pkt.sport, pkt.dport)
        if svc.flags & SVC_F_PERSISTENT:
            return self._sched_persist(svc, pkt, now, fwmark, key)
        if not svc.fwmark and pkt.dport != svc.port:
            return None  # port zero is only for persistent services
        sched = svc.sched
        dest = sched.schedule(svc, pkt, now) if sched is not None else None
        if dest is None:
            return None
        flags = F_ONE_PACKET if svc.flags & SVC_F_ONEPACKET and pkt.protocol == Proto.UDP else 0
        cp = self._new_conn(key, dest, dest.port or pkt.dport, flags, now, fwmark, pkt)
        self._conn_stats(dest)
        return cp

    def _sched_persist(
        self, svc: Service, pkt: Packet, now: float, fwmark: int, key: bytes
    ) -> Conn | None:
        """ip_vs_sched_persist(): reuse the client's template or make one."""
        snet = masked_source(svc, pkt.saddr)
        protocol = pkt.protocol
        vaddr = pkt.daddr.packed
        vport = 0
        if pkt.dport == svc.port:
            if svc.port != FTPPORT:
                vport = pkt.dport
        elif svc.fwmark:
            protocol = IPPROTO_IP
            vaddr = svc.fwmark.to_bytes(4, "big")
            if svc.af == AF_INET6:
                vaddr += bytes(12)
        tkey = template_key(protocol, snet, vaddr, vport)
        conns = self.conns
        ct = conns.tab.get(tkey)
        if ct is not None and not self._check_template(ct):
            ct = None
        if ct is None:
            sched = svc.sched
            dest = sched.schedule(svc, pkt, now) if sched is not None else None
            if dest is None:
                return None
            tdport = dest.port if (pkt.dport == svc.port and svc.port != FTPPORT) else 0
            ct = conns.new(tkey, dest, tdport, F_TEMPLATE, now)
            ct.timeout = svc.timeout
        else:
            dest = ct.dest
            assert dest is not None
        dport = pkt.dport
        if dport == svc.port and dest.port:
            dport = dest.port
        flags = F_ONE_PACKET if svc.flags & SVC_F_ONEPACKET and pkt.protocol == Proto.UDP else 0
        cp = self._new_conn(key, dest, dport, flags, now, fwmark, pkt)
        conns.control_add(cp, ct)
        conns.touch(ct, now)
        self._conn_stats(dest)
        return cp

    def _check_template(self, ct: Conn) -> bool:
        """ip_vs_check_template(): a template whose dest went away is invalidated."""
        dest = ct.dest
        if (
            dest is None
            or not dest.flags & DEST_F_AVAILABLE
            or (self.sysctl.expire_quiescent_template and dest.weight == 0)
        ):
            self.conns.invalidate_template(ct)
            return False
        return True

    def _new_conn(
        self,
        key: bytes,
        dest: Dest,
        dport: int,
        flags: int,
        now: float,
        fwmark: int,
        pkt: Packet,
    ) -> Conn:
        out_key = None
        if self.reply_index and dest.fwd_method == Fwd.MASQ and dest.af == pkt.af:
            # The reply's header: real server -> client.
            out_key = conn_key(pkt.protocol, dest.addr.packed, pkt.saddr.packed, dport, pkt.sport)
        return self.conns.new(key, dest, dport, flags, now, fwmark=fwmark, out_key=out_key)

    def _conn_stats(self, dest: Dest) -> None:
        dest.stats.conns += 1
        dest.svc.stats.conns += 1
        self.table.tot_stats.conns += 1

    # -- timers -----------------------------------------------------------------
    def tick(self, now: float) -> list[Conn]:
        """Run due timers; returns the connections that expired."""
        gone = self.conns.expire(now)
        if gone:
            self.table.purge_trash()
        self._sync_estimators()
        self.est.tick(now)
        return gone

    def _sync_estimators(self) -> None:
        t = self.table
        if t.generation == self._est_generation:
            return
        self._est_generation = t.generation
        wanted: dict[object, Stats] = {"total": t.tot_stats}
        for svc in t:
            wanted[svc] = svc.stats
            for d in svc.destinations:
                wanted[d] = d.stats
        have = self._est_keys
        for k in have - wanted.keys():
            self.est.remove(k)
        for k, st in wanted.items():
            if k not in have:
                self.est.add(k, st)
        self._est_keys = set(wanted)

    def zero(self, svc_key: ServiceKey | None = None) -> None:
        """ipvsadm -Z: counters and the estimator's memory of them."""
        zeroed = self.table.zero(svc_key)
        self._sync_estimators()
        ids = {id(s) for s in zeroed}
        for k in self._est_keys:
            e = self.est.get(k)
            if e is not None and id(e.stats) in ids:
                e.zero()
