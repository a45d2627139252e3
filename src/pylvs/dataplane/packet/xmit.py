"""Transmission per forwarding method (net/netfilter/ipvs/ip_vs_xmit.c).

Frames are rewritten in place in the receive buffer (which keeps headroom
in front for tunnel headers) and sent out of the interface the route to the
next hop leaves by, with the next hop's MAC (neigh.py).  The virtio_net_hdr
goes along: a partial checksum stays partial (the kernel completes it at
output, after our incremental update of the pseudo-header sum), and a GSO
super-packet stays one frame, except in a tunnel, where it is cut first
(gso.py).

TTL: the request direction is delivered to the director (LOCAL_IN in the
kernel) and leaves without a TTL decrement, as IPVS does; NAT replies are
routed by the director (FORWARD) and lose one.
"""

from __future__ import annotations

import random
import struct
from typing import TYPE_CHECKING

from pylvs.core.conn import F_SYNC, Conn, conn_key
from pylvs.core.model import TUN_F_CSUM, TUN_F_REMCSUM, Dest, Fwd, TunType
from pylvs.core.proto_tcp import TH_ACK, TH_FIN, TH_RST, TH_SYN
from pylvs.dataplane.packet import gso
from pylvs.dataplane.packet.afpacket import Port
from pylvs.dataplane.packet.netinfo import NextHop
from pylvs.wire import gue, icmp, ipip, nat, toa, vnet
from pylvs.wire.packet import IPPROTO_TCP, IPPROTO_UDP, Pkt

if TYPE_CHECKING:
    from pylvs.dataplane.packet.plane import PacketDataPlane

ETH_HLEN = 14
VNET_HLEN = 10
_K4 = struct.Struct("!B4s4sHH")
_I = struct.Struct("!I")
_MACS = struct.Struct("12s")  # destination + source MAC (pack_into beats a slice assignment)
_ETH_IP = b"\x08\x00"
CSUM_OFFSET = {IPPROTO_TCP: 16, IPPROTO_UDP: 6}
LPORT_MIN, LPORT_MAX = 1024, 65535
GUE_HLEN = 8 + 4  # UDP + GUE base header
_NO_VNET = bytes(VNET_HLEN)


def tunnel_hlen(dest: Dest) -> int:
    """Bytes a tunnel adds after the outer IPv4 header (GUE: UDP + GUE; GRE: 4, or 8
    with its checksum; IPIP: none).  remcsum is sent as a plain checksum."""
    csum_flag = dest.tun_flags & (TUN_F_CSUM | TUN_F_REMCSUM)
    if dest.tun_type == TunType.GUE:
        return GUE_HLEN
    if dest.tun_type == TunType.GRE:
        return gue.gre_hlen(bool(csum_flag))
    return 0


class Fnat:
    """FULLNAT state of a connection (in Conn.extra)."""

    __slots__ = ("lip", "lport", "toa_ack")

    def __init__(self, lip: bytes, lport: int) -> None:
        self.lip = lip
        self.lport = lport
        self.toa_ack = -1  # the real server's ISN + 1, once its SYN-ACK went by


class Xmit:
    def __init__(self, plane: PacketDataPlane) -> None:
        self.plane = plane
        self.buf = plane.buf
        self.view = plane.view
        self.counters = plane.counters
        self.engine = plane.engine
        self.dests: dict[Dest, bytes] = {}
        self.l2: dict[bytes, tuple[Port, bytes]] = {}  # next-hop cache (see resolve)
        self.rx_start = plane.rx_start  # where received frames start in the buffer
        self.lrr = 0
        self.rnd = random.Random()

    def rip(self, dest: Dest) -> bytes:
        r = self.dests.get(dest)
        if r is None:
            r = self.dests[dest] = dest.addr.packed
        return r

    # -- client -> real server -----------------------------------------------------
    def forward(
        self, port: Port, pkt: Pkt, cp: Conn, now: float, gso_type: int, gso_size: int
    ) -> None:
        dest = cp.dest
        if dest is None:
            self.counters["drop_no_dest_conn"] += 1
            return
        rip = self.dests.get(dest)
        if rip is None:
            rip = self.rip(dest)
        # Literal numbers (Fwd.* are global + attribute lookups), DR first.
        fwd = cp.flags & 7
        if fwd == 3:  # Fwd.DROUTE
            self.out(pkt, rip, gso_type, gso_size, now)
        elif fwd == 0:  # Fwd.MASQ
            nat.set_addrs(pkt, pkt.saddr, pkt.sport, rip, cp.dport)
            self.out(pkt, rip, gso_type, gso_size, now)
        elif fwd == 5:  # Fwd.FULLNAT
            self.fullnat_in(pkt, cp, dest, rip, gso_type, gso_size, now)
        elif fwd == 2:  # Fwd.TUNNEL
            self.tunnel(port, pkt, dest, rip, gso_type, gso_size, now)
        else:
            self.counters["drop_local"] += 1

    def fullnat_in(
        self, pkt: Pkt, cp: Conn, dest: Dest, rip: bytes, gso_type: int, gso_size: int, now: float
    ) -> None:
        f = cp.extra
        if not isinstance(f, Fnat) and cp.flags & F_SYNC and cp.okey and len(cp.okey) == 13:
            # Synced from the master (after a failover): its local address and port
            # came with it, in the reply key; keep them or the connection breaks.
            f = cp.extra = Fnat(cp.okey[5:9], int.from_bytes(cp.okey[11:13], "big"))
        if not isinstance(f, Fnat):
            f = self.bind_local(pkt, cp, dest, rip)
            if f is None:
                self.counters["drop_no_laddr"] += 1
                return
        caddr, cport = pkt.saddr, pkt.sport
        nat.set_addrs(pkt, f.lip, f.lport, rip, cp.dport)
        if pkt.proto == 6:  # IPPROTO_TCP
            fl = pkt.tcp_flags
            if (fl & TH_SYN and not fl & (TH_RST | TH_FIN)) or (
                fl & TH_ACK
                and not fl & (TH_SYN | TH_RST | TH_FIN)
                and _I.unpack_from(pkt.buf, pkt.l4 + 8)[0] == f.toa_ack
            ):
                nh = self.plane.routes.lookup(rip)
                mtu = self.plane.ports[nh.dev].mtu if nh and nh.dev in self.plane.ports else 1500
                if toa.add_toa(pkt, caddr, cport, mtu):
                    self.counters["toa_added"] += 1
                    self.out(pkt, rip, gso_type, gso_size, now, moved=True)
                    return
        self.out(pkt, rip, gso_type, gso_size, now)

    def bind_local(self, pkt: Pkt, cp: Conn, dest: Dest, rip: bytes) -> Fnat | None:
        """A local address and port for a new FULLNAT connection (round robin over the
        service's pool, a free port picked at random)."""
        pool = [a.packed for a in dest.svc.laddrs if len(a.packed) == len(rip)]
        if not pool:
            return None
        out = self.engine.conns.out
        for _ in range(32):
            self.lrr += 1
            lip = pool[self.lrr % len(pool)]
            lport = self.rnd.randint(LPORT_MIN, LPORT_MAX)
            okey = conn_key(pkt.proto, rip, lip, cp.dport, lport)
            if okey not in out:
                self.engine.conns.attach_out_key(cp, okey)
                f = Fnat(lip, lport)
                cp.extra = f
                return f
        return None

    # -- real server -> client (NAT, FULLNAT) ---------------------------------------
    def reply(
        self, port: Port, pkt: Pkt, cp: Conn, now: float, gso_type: int, gso_size: int
    ) -> None:
        self.engine.packet_out(cp, now, flags=pkt.tcp_flags, size=pkt.end - pkt.l3)
        key = cp.key
        if len(key) != _K4.size:
            self.counters["drop_v6_unsupported"] += 1
            return
        _, caddr, vaddr, cport, vport = _K4.unpack(key)
        fwd = cp.flags & 7
        if fwd == 0:  # Fwd.MASQ
            nat.set_addrs(pkt, vaddr, vport, pkt.daddr, pkt.dport)
            if not nat.dec_ttl(pkt):
                self.counters["drop_ttl"] += 1
                return
        elif fwd == 5:  # Fwd.FULLNAT
            f = cp.extra
            if isinstance(f, Fnat) and pkt.proto == 6:  # IPPROTO_TCP
                fl = pkt.tcp_flags
                if fl & TH_SYN and fl & TH_ACK:
                    f.toa_ack = (_I.unpack_from(pkt.buf, pkt.l4 + 4)[0] + 1) & 0xFFFFFFFF
                    toa.adjust_mss(pkt)
            nat.set_addrs(pkt, vaddr, vport, caddr, cport)
        else:
            return
        self.out(pkt, caddr, gso_type, gso_size, now)

    # -- tunnels ------------------------------------------------------------------------
    def tunnel(
        self,
        port: Port,
        pkt: Pkt,
        dest: Dest,
        rip: bytes,
        gso_type: int,
        gso_size: int,
        now: float,
    ) -> None:
        plane = self.plane
        nh = plane.routes.lookup(rip)
        out = plane.ports.get(nh.dev) if nh is not None else None
        if nh is None or out is None:
            self.counters["drop_no_route"] += 1
            return
        src = nh.src or (out.addrs4[0] if out.addrs4 else None)
        if src is None or pkt.af != 4:
            self.counters["drop_tunnel_source"] += 1
            return
        ohl = 20 + tunnel_hlen(dest)
        room = out.mtu - ohl
        df = bool(pkt.buf[pkt.l3 + 6] & 0x40)
        if gso_type:
            hlen = pkt.l4 - pkt.l3 + (((pkt.buf[pkt.l4 + 12] >> 4) << 2) if pkt.proto == 6 else 8)
            if hlen + gso_size > room and df:
                self.frag_needed(pkt, room, now)
                return
            csum_flag = bool(dest.tun_flags & (TUN_F_CSUM | TUN_F_REMCSUM))
            l4off = pkt.l4 - pkt.l3
            off = CSUM_OFFSET.get(pkt.proto, 16)
            room_front = VNET_HLEN + ETH_HLEN + ohl
            hdr = _NO_VNET
            if not csum_flag:
                hdr = vnet.build(
                    needs_csum=True, csum_start=ETH_HLEN + ohl + l4off, csum_offset=off
                )
            for seg in gso.segments(pkt, gso_size, partial=not csum_flag, headroom=room_front):
                self.encap_frame(nh, out, seg, src, rip, dest, hdr, now)
            return
        inner_len = pkt.end - pkt.l3
        if inner_len > room:
            if df:
                self.frag_needed(pkt, room, now)
            else:
                self.counters["drop_too_big"] += 1
            return
        csum_flag = bool(dest.tun_flags & (TUN_F_CSUM | TUN_F_REMCSUM))
        off = CSUM_OFFSET.get(pkt.proto, -1)
        partial = pkt.csum_partial and off >= 0
        if pkt.csum_partial and (csum_flag or off < 0):
            # The tunnel's own checksum covers the inner packet: finish it first.
            nat.complete_csum(pkt)
            partial = False
        o = pkt.l3 - ohl
        if dest.tun_type == TunType.GUE:
            gue.encap_gue_into(
                self.buf, o, inner_len, src, rip, dport=dest.tun_port, csum_flag=csum_flag
            )
        elif dest.tun_type == TunType.GRE:
            gue.encap_gre_into(self.buf, o, inner_len, src, rip, csum_flag=csum_flag)
        else:
            ipip.encap_into(self.buf, o, inner_len, src, rip)
        e = o - ETH_HLEN
        buf = self.buf
        buf[e + 12 : e + 14] = _ETH_IP
        # A partial inner checksum stays partial: the header points at it behind the
        # outer headers (a NIC finishes it; so does pylvs realserver's decapsulator).
        hdr = vnet.partial_csum(pkt.l4 - e, off) if partial else _NO_VNET
        end = o + ohl + inner_len
        l2 = self.l2.get(rip)  # the outer destination's next hop, when known (resolve)
        if l2 is not None and l2[0] is out:
            s = e - VNET_HLEN
            buf[s:e] = hdr
            _MACS.pack_into(buf, e, l2[1])
            plane.send_raw(out, self.view[s:end])
            return
        self.emit(nh, out, e, end, hdr, now)
        self.resolve(rip, now)  # for the next packets (None while the neighbour is unknown)

    def encap_frame(
        self,
        nh: NextHop,
        out: Port,
        frame: bytearray,
        src: bytes,
        rip: bytes,
        dest: Dest,
        hdr: bytes,
        now: float,
    ) -> None:
        """One segment of a cut super-packet, already placed behind room for the vnet,
        Ethernet and outer headers: encapsulated in place and sent."""
        o = VNET_HLEN + ETH_HLEN
        inner_len = len(frame) - o - 20 - tunnel_hlen(dest)
        csum_flag = bool(dest.tun_flags & (TUN_F_CSUM | TUN_F_REMCSUM))
        if dest.tun_type == TunType.GUE:
            gue.encap_gue_into(
                frame, o, inner_len, src, rip, dport=dest.tun_port, csum_flag=csum_flag
            )
        elif dest.tun_type == TunType.GRE:
            gue.encap_gre_into(frame, o, inner_len, src, rip, csum_flag=csum_flag)
        else:
            ipip.encap_into(frame, o, inner_len, src, rip)
        frame[:VNET_HLEN] = hdr
        frame[VNET_HLEN + 12 : o] = _ETH_IP
        self.emit_frame(nh, out, frame, now)

    # -- ICMP ---------------------------------------------------------------------------
    def frag_needed(self, pkt: Pkt, mtu: int, now: float) -> None:
        """The packet does not fit the tunnel: tell the client (pmtu_disc)."""
        self.counters["icmp_frag_needed"] += 1
        orig = self.view[pkt.l3 : pkt.end]
        if not icmp.may_send_error(orig):
            return
        self.send_ip(icmp.frag_needed(orig, None, mtu), pkt.saddr, now)

    def unreachable(self, port: Port, pkt: Pkt, now: float) -> None:
        """No real server for a new connection (ip_vs_leave): port unreachable."""
        orig = self.view[pkt.l3 : pkt.end]
        if pkt.af == 4 and icmp.may_send_error(orig):
            self.send_ip(icmp.dest_unreachable(orig, None), pkt.saddr, now)

    def icmp(self, port: Port, pkt: Pkt, now: float) -> None:
        """ICMP errors about a connection (ip_vs_in_icmp / ip_vs_out_icmp)."""
        if not icmp.ipvs_related(pkt.icmp_type):
            return
        inner = nat.parse_icmp_inner(pkt)
        if isinstance(inner, str):
            return
        conns = self.engine.conns
        # An error from the real server's side about a packet the director sent it
        # (client -> RIP, or LIP -> RIP for FULLNAT): goes back to the client.
        okey = conn_key(inner.proto, inner.daddr, inner.saddr, inner.dport, inner.sport)
        cp = conns.out.get(okey)
        if cp is not None and len(cp.key) == _K4.size:
            _, caddr, vaddr, cport, vport = _K4.unpack(cp.key)
            self.counters["icmp_out"] += 1
            if cp.flags & 7 == Fwd.FULLNAT:
                nat.rewrite_icmp_inner(
                    pkt,
                    inner,
                    outer_saddr=vaddr,
                    outer_daddr=caddr,
                    inner_saddr=caddr,
                    inner_sport=cport,
                    inner_daddr=vaddr,
                    inner_dport=vport,
                )
            else:
                nat.nat_icmp(pkt, inner, vaddr, vport, True)
            self.out(pkt, caddr, 0, 0, now)
            return
        # An error from outside about a reply the director sent (VIP -> client):
        # goes to the real server.
        ikey = conn_key(inner.proto, inner.daddr, inner.saddr, inner.dport, inner.sport)
        cp = conns.tab.get(ikey)
        if cp is None or cp.dest is None:
            return
        self.counters["icmp_in"] += 1
        rip = self.rip(cp.dest)
        fwd = cp.flags & 7
        if fwd == Fwd.MASQ:
            nat.nat_icmp(pkt, inner, rip, cp.dport, False)
        elif fwd == Fwd.FULLNAT and isinstance(cp.extra, Fnat):
            f = cp.extra
            nat.rewrite_icmp_inner(
                pkt,
                inner,
                outer_saddr=f.lip,
                outer_daddr=rip,
                inner_saddr=rip,
                inner_sport=cp.dport,
                inner_daddr=f.lip,
                inner_dport=f.lport,
            )
        elif fwd == Fwd.TUNNEL:
            self.tunnel(port, pkt, cp.dest, rip, 0, 0, now)
            return
        self.out(pkt, rip, 0, 0, now)

    # -- output -------------------------------------------------------------------------
    def out(
        self, pkt: Pkt, to: bytes, gso_type: int, gso_size: int, now: float, moved: bool = False
    ) -> None:
        """Send ``pkt`` (rewritten in the receive buffer) toward ``to``.

        The virtio_net_hdr received with the frame still describes it when
        only addresses, ports and the TTL changed (the common case: sent on as
        it came); ``moved`` says the layout changed (TOA) and a new one is made.
        """
        l2 = self.l2.get(to)
        if l2 is None:
            l2 = self.resolve(to, now)
            if l2 is None:
                self.pending(pkt, to, gso_type, gso_size, now)
                return
        port, macs = l2
        start = pkt.start
        end = pkt.end
        if not gso_type and end - pkt.l3 > port.mtu:
            if pkt.af == 4 and self.buf[pkt.l3 + 6] & 0x40:
                self.frag_needed(pkt, port.mtu, now)
            else:
                self.counters["drop_too_big"] += 1
            return
        if moved or start != self.rx_start or pkt.proto == 132:  # IPPROTO_SCTP
            self.buf[start - VNET_HLEN : start] = vnet.for_pkt(pkt, gso_type, gso_size)
        _MACS.pack_into(self.buf, start, macs)
        self.plane.send_raw(port, self.view[start - VNET_HLEN : end])

    def resolve(self, to: bytes, now: float) -> tuple[Port, bytes] | None:
        """Interface and MAC header (destination, source) toward ``to``, cached until
        routes or neighbours change; None when unknown yet (or no route: counted)."""
        plane = self.plane
        nh = plane.routes.lookup(to)
        port = plane.ports.get(nh.dev) if nh is not None else None
        if nh is None or port is None:
            self.counters["drop_no_route"] += 1
            return None
        mac = plane.neigh.get(port.name, nh.neighbour)
        if mac is None:
            return None
        l2 = self.l2[to] = (port, mac + port.mac)
        return l2

    def pending(self, pkt: Pkt, to: bytes, gso_type: int, gso_size: int, now: float) -> None:
        """The next hop toward ``to`` is not resolved: queue the frame and ask."""
        nh = self.plane.routes.lookup(to)
        port = self.plane.ports.get(nh.dev) if nh is not None else None
        if nh is None or port is None:
            return
        start = pkt.start
        frame = bytearray(vnet.for_pkt(pkt, gso_type, gso_size))
        frame += self.view[start : pkt.end]
        frame[VNET_HLEN + 6 : VNET_HLEN + 12] = port.mac
        self.hold(nh, port, frame, now)

    def emit(self, nh: NextHop, port: Port, start: int, end: int, hdr: bytes, now: float) -> None:
        """The frame at ``buf[start:end]`` (room for the vnet header before it)."""
        buf = self.buf
        s = start - VNET_HLEN
        buf[s:start] = hdr
        buf[start + 6 : start + 12] = port.mac
        mac = self.plane.neigh.get(port.name, nh.neighbour)
        if mac is None:
            self.hold(nh, port, bytearray(self.view[s:end]), now)
            return
        buf[start : start + 6] = mac
        self.plane.send_raw(port, self.view[s:end])

    def emit_frame(self, nh: NextHop, port: Port, frame: bytearray, now: float) -> None:
        """A frame built apart (vnet header + Ethernet header + packet)."""
        frame[16:22] = port.mac
        mac = self.plane.neigh.get(port.name, nh.neighbour)
        if mac is None:
            self.hold(nh, port, frame, now)
            return
        frame[10:16] = mac
        self.plane.send_raw(port, frame)

    def send_ip(self, packet: bytes, to: bytes, now: float) -> None:
        """An IPv4 packet we made (ICMP): routed to ``to``."""
        nh = self.plane.routes.lookup(to)
        port = self.plane.ports.get(nh.dev) if nh is not None else None
        if nh is None or port is None:
            self.counters["drop_no_route"] += 1
            return
        frame = bytearray(VNET_HLEN + 12) + _ETH_IP + packet
        self.emit_frame(nh, port, frame, now)

    def hold(self, nh: NextHop, port: Port, frame: bytearray, now: float) -> None:
        src = nh.src or (port.addrs4[0] if port.addrs4 else bytes(4))
        self.plane.neigh.hold(port.name, nh.neighbour, frame, port.mac, src, now)
        self.counters["neigh_wait"] += 1
