"""The packet data plane's per-packet shortcuts against the general path (no root needed).

- ``nat.nat4`` (both sides of a FULLNAT rewrite in one pass) against ``nat.set_src`` then
  ``nat.set_dst``: the same bytes and Pkt fields for any IPv4 TCP/UDP packet, checksum
  complete, partial, wrong or absent (UDP 0).
- ``PacketDataPlane.frame`` with the engine's short entry (``Engine.packet_in_hit``)
  against a plane whose engine always answers "ask packet_in": random DR, NAT and FULLNAT
  traffic in both directions, interleaved with sysctl, weight and real-server changes and
  timer runs, gives the same frames sent (read back from a socketpair standing in for the
  interface), counters, connection table and nftables bookkeeping.
"""

from __future__ import annotations

import random
import socket
import struct
from ipaddress import ip_address

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pylvs.core.conn import Conn
from pylvs.core.engine import Engine
from pylvs.core.model import DestSpec, Fwd, Proto, ServiceKey, ServiceSpec
from pylvs.core.proto_tcp import TH_ACK, TH_FIN, TH_RST, TH_SYN
from pylvs.dataplane.packet.afpacket import Port
from pylvs.dataplane.packet.netinfo import Route
from pylvs.dataplane.packet.plane import HEADROOM, PacketDataPlane
from pylvs.dataplane.packet.xmit import Fnat, Xmit
from pylvs.wire import csum, nat
from pylvs.wire.packet import Pkt, parse

MAC, GW_MAC, CMAC = b"\x02\x00\x00\x00\x00\x01", b"\x02\x00\x00\x00\x00\xfe", b"\x02" * 6
GW = bytes([10, 0, 0, 254])
LIP = ip_address("192.168.10.2")
# (VIP, forwarding method, real servers)
MODES = [
    ("10.0.0.100", Fwd.DROUTE, ["10.0.0.11", "10.0.0.12"]),
    ("10.0.0.101", Fwd.MASQ, ["192.168.10.11", "192.168.10.12"]),
    ("10.0.0.102", Fwd.FULLNAT, ["192.168.10.21", "192.168.10.22"]),
]
PROTOS = [(Proto.TCP, 80), (Proto.UDP, 53)]
CLIENTS = [bytes([10, 9, 0, 1]), bytes([10, 9, 0, 2])]
FLAGS = [TH_SYN, TH_ACK, TH_ACK | 0x08, TH_SYN | TH_ACK, TH_FIN | TH_ACK, TH_RST, 0]


def frame(
    proto: int, saddr: bytes, daddr: bytes, sport: int, dport: int, fl: int, n: int, partial: bool
) -> bytes:
    """vnet header + Ethernet + IPv4 + TCP/UDP + ``n`` bytes, checksums right (or partial)."""
    data = bytes(range(n))
    if proto == 6:
        l4 = bytearray(struct.pack("!HHIIBBHHH", sport, dport, 1000, 2000, 0x50, fl, 65535, 0, 0))
        off = 16
    else:
        l4 = bytearray(struct.pack("!HHHH", sport, dport, 8 + n, 0))
        off = 6
    l4 += data
    ph = csum.pseudo4(saddr, daddr, proto, len(l4))
    csum.put(l4, off, csum.fold(ph) if partial else csum.finish(ph + csum.add(l4)) or 0xFFFF)
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 1, 0x4000, 64, proto, 0,
                               saddr, daddr))  # fmt: skip
    csum.put(ip, 10, csum.checksum(ip))
    vnet = struct.pack("<BBHHHH", 1, 0, 0, 0, 34, off) if partial else bytes(10)
    return vnet + MAC + CMAC + b"\x08\x00" + ip + l4


# -- nat4 ---------------------------------------------------------------------------------

addr = st.binary(min_size=4, max_size=4)
port = st.integers(0, 65535)


@settings(max_examples=1500, deadline=None)
@given(
    proto=st.sampled_from([6, 17]),
    old=st.tuples(addr, addr, port, port),
    new=st.tuples(addr | st.none(), addr | st.none(), port | st.none(), port | st.none()),
    n=st.integers(0, 30),
    partial=st.booleans(),
    check=st.none() | st.just(0) | st.just(0xFFFF) | port,
)
def test_nat4_is_set_src_then_set_dst(
    proto: int,
    old: tuple[bytes, bytes, int, int],
    new: tuple[bytes | None, bytes | None, int | None, int | None],
    n: int,
    partial: bool,
    check: int | None,
) -> None:
    f = bytearray(frame(proto, old[0], old[1], old[2], old[3], TH_ACK, n, partial)[10:])
    if check is not None:  # a wrong checksum, or none at all (UDP 0)
        csum.put(f, 34 + (16 if proto == 6 else 6), check)
    # None: that side stays as it is (NAT changes one side, FULLNAT both)
    s, d = new[0] or old[0], new[1] or old[1]
    sp = old[2] if new[2] is None else new[2]
    dp = old[3] if new[3] is None else new[3]
    a, b = parse(bytearray(f), 0, len(f), partial), parse(bytearray(f), 0, len(f), partial)
    assert isinstance(a, Pkt) and isinstance(b, Pkt)
    nat.set_src(a, s, sp)
    nat.set_dst(a, d, dp)
    nat.nat4(b, s, sp, d, dp)
    assert a.buf == b.buf
    fields = [x for x in Pkt.__slots__ if x != "buf"]
    assert [getattr(a, x) for x in fields] == [getattr(b, x) for x in fields]


# -- the plane ----------------------------------------------------------------------------


class GeneralPathEngine(Engine):
    """An engine whose short entry always declines: every packet goes through packet_in."""

    def packet_in_hit(
        self, cp: Conn, protocol: int, now: float, flags: int = 0, size: int = 0
    ) -> bool:
        return False


def plane_of(engine: Engine) -> tuple[PacketDataPlane, Port, socket.socket]:
    for vip, fwd, rips in MODES:
        for proto, vport in PROTOS:
            key = ServiceKey.inet(proto, vip, vport)
            engine.table.add_service(ServiceSpec(key, "rr"))
            for rip in rips:
                engine.table.add_dest(key, DestSpec(ip_address(rip), vport, fwd, 1))
            if fwd == Fwd.FULLNAT:
                engine.table.add_laddr(key, LIP)
    plane = PacketDataPlane()
    plane.engine = engine
    ours, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    peer.setblocking(False)
    port = Port("p0", 1, MAC, 1500, ours, [bytes([10, 0, 0, 1])])
    plane.ports = {"p0": port}
    plane.xmit = Xmit(plane)
    plane.xmit.rnd = random.Random(7)  # FULLNAT local ports: the same in both planes
    plane.routes.table = [Route(0, 0, "p0", GW, None, 0)]
    plane.neigh.macs[("p0", GW)] = GW_MAC
    plane.vips = {ip_address(vip).packed for vip, _, _ in MODES}
    return plane, port, peer


def sent(peer: socket.socket) -> list[bytes]:
    out = []
    while True:
        try:
            out.append(peer.recv(4096))
        except BlockingIOError:
            return out


def snapshot(plane: PacketDataPlane) -> object:
    e = plane.engine
    conns = []
    for c in e.conns.tab.values():
        f = c.extra
        lp = (f.lip, f.lport, f.toa_ack) if isinstance(f, Fnat) else None
        d = c.dest
        dd = None if d is None else (d.addr, d.activeconns, d.inactconns, d.stats.inpkts)
        conns.append((c.key, dd, c.flags, c.state, c.expires, c.in_pkts, c.okey, lp))
    t = e.table.tot_stats
    totals = (t.conns, t.inpkts, t.inbytes, t.outpkts, t.outbytes)
    return sorted(conns, key=repr), totals, dict(plane.counters), plane.tx, dict(plane.held)


def reply_frame(plane: PacketDataPlane, mode: int, p: int, c: int, cport: int, fl: int) -> bytes:
    """The real server's answer to a connection of ``plane`` (b"" when it has none)."""
    vip, fwd, _ = MODES[mode]
    proto, vport = PROTOS[p]
    key = struct.pack("!B4s4sHH", proto, CLIENTS[c], ip_address(vip).packed, cport, vport)
    cp = plane.engine.conns.tab.get(key)
    if cp is None or cp.dest is None or fwd == Fwd.DROUTE:
        return b""
    to, to_port = CLIENTS[c], cport
    if isinstance(cp.extra, Fnat):
        to, to_port = cp.extra.lip, cp.extra.lport
    return frame(proto, cp.dest.addr.packed, to, cp.dport, to_port, fl, 20, False)


op = st.tuples(
    st.sampled_from(["in", "in", "in", "out", "out", "sysctl", "weight", "tick"]),
    st.integers(0, 2),  # mode
    st.integers(0, 1),  # protocol, real server, sysctl
    st.integers(0, 1),  # client
    st.integers(0, 1),  # client port
    st.sampled_from(FLAGS),
    st.integers(0, 2),  # weight, sysctl value
    st.booleans(),  # partial checksum
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(op, min_size=1, max_size=40))
@example(  # NAT, UDP: expire_nodest_conn, the real servers at weight 0, TCP SYN reuse
    [
        ("in", 1, 1, 0, 0, 0, 0, False),
        ("in", 1, 0, 0, 0, TH_SYN, 0, False),
        ("out", 1, 0, 0, 0, TH_RST, 0, False),
        ("sysctl", 0, 1, 0, 0, 0, 1, False),
        ("weight", 1, 0, 0, 0, 0, 0, False),
        ("weight", 1, 1, 0, 0, 0, 0, False),
        ("in", 1, 1, 0, 0, 0, 0, True),
        ("in", 1, 0, 0, 0, TH_SYN, 0, True),
    ]
)
def test_frame_short_entry_is_general_path(
    ops: list[tuple[str, int, int, int, int, int, int, bool]],
) -> None:
    a, a_port, a_peer = plane_of(GeneralPathEngine())
    b, b_port, b_peer = plane_of(Engine())
    now = 100.0
    try:
        for kind, mode, x, c, cp_i, fl, v, partial in ops:
            cport = 40000 + cp_i
            if kind in ("in", "out"):
                if kind == "in":
                    vip = ip_address(MODES[mode][0]).packed
                    proto, vport = PROTOS[x]
                    f = frame(proto, CLIENTS[c], vip, cport, vport, fl, 20, partial)
                else:
                    f = reply_frame(a, mode, x, c, cport, fl)
                    assert f == reply_frame(b, mode, x, c, cport, fl)
                for plane, port in ((a, a_port), (b, b_port)):
                    if f:
                        plane.buf[HEADROOM : HEADROOM + len(f)] = f
                        plane.frame(port, len(f), now)
            elif kind == "sysctl":
                name = ("conn_reuse_mode", "expire_nodest_conn")[x]
                for plane in (a, b):
                    setattr(plane.engine.sysctl, name, v)
            elif kind == "weight":
                vaddr, fwd, rips = MODES[mode]
                for plane in (a, b):
                    for proto, vport in PROTOS:
                        key = ServiceKey.inet(proto, vaddr, vport)
                        spec = DestSpec(ip_address(rips[x]), vport, fwd, v)
                        plane.engine.table.edit_dest(key, spec)
            else:
                now += 1 + 100 * v
                for plane in (a, b):
                    plane.expired(plane.engine.tick(now))
            assert sent(a_peer) == sent(b_peer)
            assert snapshot(a) == snapshot(b)
    finally:
        for s in (a_port.sock, a_peer, b_port.sock, b_peer):
            s.close()
