"""The packet data plane's forwarding methods end to end, after the seeds' experiments.

Real packets through ``pylvsd --dataplane packet`` in network namespaces (packet_lab.py has
the topologies): NAT with the VIP on a subnet of its own and NAT port mapping (seeds 000,
004), FULLNAT with the client's address in a TOA option (003), DR with ARP suppression on
the real servers (000, 001, 002), IPIP tunnelling (000), UDP through NAT and DR.  Captures
(tcpdump, read back with scapy) show what each method does to the packets.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from itertools import cycle, islice
from typing import Any

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from tests.dataplane.packet_lab import (
    ALT_PORT,
    CIP,
    DIP,
    LIP,
    UDP_PORT,
    VIP_DR,
    VIP_NAT,
    VIP_TUN,
    HttpConn,
    Reply,
    Setup,
    arp_who_has,
    flat_setup,
    http_once,
    routed_setup,
    udp_once,
    wait_until,
)

TOA_KIND, TOA_LEN = 254, 8


@pytest.fixture(scope="module")
def routed() -> Iterator[Setup]:
    with routed_setup() as s:
        yield s


@pytest.fixture(scope="module")
def flat() -> Iterator[Setup]:
    with flat_setup() as s:
        yield s


def rr_order(s: Setup, service: str, n: int) -> list[str]:
    """The first ``n`` picks of rr: the real servers as ``-Ln --nosort`` lists them (the
    kernel's list, newest first), from the top, round and round; as node names."""
    by_addr = {a: node for node, a in s.rip.items()}
    listed = [by_addr[d.addr.rsplit(":", 1)[0]] for d in s.director.dests(service, nosort=True)]
    return list(islice(cycle(listed), n))


def servers(replies: list[Reply]) -> list[str]:
    return [r.server.split(":")[0] for r in replies]


def tcp_packets(pkts: Any) -> list[Any]:
    return [p for p in pkts if p.haslayer(Ether) and p.haslayer(IP) and p.haslayer(TCP)]


def flags(p: Any) -> str:
    return str(p[TCP].flags)


# --- NAT -----------------------------------------------------------------------------------


def test_nat_vip_on_another_subnet(routed: Setup) -> None:
    """Seed 000: VIP 100.222.111.1:8000 -> real servers :80, -m; the client reaches the VIP
    by a host route through the director."""
    lab, d = routed.lab, routed.director
    svc = f"-t {VIP_NAT}:8000"
    d.setup(f"-A {svc} -s rr", *(f"-a {svc} -r {rip}:80 -m" for rip in routed.rip.values()))
    # The kernel adds a real server at the head of the service's list: rr starts with the
    # newest (rs2), and -Ln --nosort shows that list as it is (-Ln sorts by address).
    assert [r.addr for r in d.dests(f"TCP {VIP_NAT}:8000", nosort=True)] == [
        f"{routed.rip['rs2']}:80",
        f"{routed.rip['rs1']}:80",
    ]
    inside = lab.capture("director", "int", "tcp")
    outside = lab.capture("client", "ext", "tcp")
    replies = [http_once(lab, "client", VIP_NAT, 8000) for _ in range(4)]
    assert servers(replies) == ["rs2", "rs1", "rs2", "rs1"]
    assert servers(replies) == rr_order(routed, f"TCP {VIP_NAT}:8000", 4)
    for r in replies:
        assert (r.peer_ip, r.peer_port) == (CIP, r.local_port), (
            f"the real server must see the client itself as its peer: {r}"
        )
    ports = {r.local_port for r in replies}

    rip_of = {r.local_port: routed.rip[r.server] for r in replies}
    seen_back = set()
    for p in tcp_packets(inside.packets()):
        ip, tcp = p[IP], p[TCP]
        assert "R" not in flags(p), f"a reset on the director's int side: {p.summary()}"
        if ip.src == CIP:
            assert tcp.sport in ports and (ip.dst, tcp.dport) == (rip_of[tcp.sport], 80), (
                f"a client packet not rewritten to its real server: {p.summary()}"
            )
        else:
            # Replies travel rip -> cip back through the director.
            assert (ip.src, tcp.sport, ip.dst) == (rip_of[tcp.dport], 80, CIP), p.summary()
            seen_back.add(tcp.dport)
    assert seen_back == ports, "every connection's replies must come back through the director"

    got = [p for p in tcp_packets(outside.packets()) if p[IP].dst == CIP]
    assert got, "the client captured no answer"
    for p in got:
        assert (p[IP].src, p[TCP].sport) == (VIP_NAT, 8000), (
            f"the client must only ever see the VIP: {p.summary()}"
        )
        assert "R" not in flags(p), f"the director's own stack reset the VIP: {p.summary()}"
    assert {p[TCP].dport for p in got} == ports


def test_nat_port_mapping(routed: Setup) -> None:
    """Seed 004: VIP:80 -> RIP:8000 (-m); real servers listen on 8000 only for this."""
    lab, d = routed.lab, routed.director
    svc = f"-t {VIP_NAT}:80"
    d.setup(f"-A {svc} -s rr", *(f"-a {svc} -r {rip}:{ALT_PORT} -m" for rip in routed.rip.values()))
    rows = d.dests(f"TCP {VIP_NAT}:80")
    assert [(r.addr, r.fwd) for r in rows] == [
        (f"{rip}:{ALT_PORT}", "Masq") for rip in sorted(routed.rip.values())
    ]
    inside = lab.capture("director", "int", "tcp")
    outside = lab.capture("client", "ext", "tcp")
    replies = [http_once(lab, "client", VIP_NAT, 80) for _ in range(4)]
    assert [r.server for r in replies] == [f"rs{i}:{ALT_PORT}" for i in (2, 1, 2, 1)]
    assert all(r.peer_ip == CIP for r in replies), replies
    to_rs = [p for p in tcp_packets(inside.packets()) if p[IP].src == CIP]
    assert to_rs and all(p[TCP].dport == ALT_PORT for p in to_rs), [p.summary() for p in to_rs]
    back = [p for p in tcp_packets(outside.packets()) if p[IP].dst == CIP]
    assert back and all((p[IP].src, p[TCP].sport) == (VIP_NAT, 80) for p in back), [
        p.summary() for p in back
    ]


# --- FULLNAT ---------------------------------------------------------------------------------


def toa_options(tcp: Any) -> list[tuple[int, bytes]]:
    """(length, value) of every kind-254 option in the raw TCP header."""
    raw = bytes(tcp)[20 : tcp.dataofs * 4]
    found = []
    i = 0
    while i < len(raw):
        kind = raw[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        length = raw[i + 1]
        if kind == TOA_KIND:
            found.append((length, raw[i + 2 : i + length]))
        i += max(length, 2)
    return found


def test_fullnat_toa(routed: Setup) -> None:
    """Seed 003: FULLNAT; the real server sees the local address, the client's address
    travels in the TOA option (kind 254, length 8: port, then IPv4 address) of the SYN."""
    lab, d = routed.lab, routed.director
    svc = f"-t {VIP_NAT}:80"
    d.setup(
        f"-A {svc} -s rr",
        *(f"-a {svc} -r {rip}:80 --fullnat" for rip in routed.rip.values()),
        f"--add-laddr {svc} -z {LIP}",
    )
    caps = {rs: lab.capture(rs, "int", "tcp port 80") for rs in routed.rip}
    replies = []
    for _ in range(2):
        with HttpConn(lab, "client", VIP_NAT, 80) as c:
            replies.append(c.get())
            replies.append(c.get(close=True))  # a second request on the same connection
    assert servers(replies) == ["rs2", "rs2", "rs1", "rs1"]
    for r in replies:
        assert r.peer_ip == LIP, f"FULLNAT: the real server must see the local address: {r}"
    for rs, cap in caps.items():
        mine = [r for r in replies if r.server == rs]
        syns = [
            p for p in tcp_packets(cap.packets()) if flags(p) == "S" and p[IP].dst == routed.rip[rs]
        ]
        assert len(syns) == 1, f"{rs}: expected one SYN, got {[p.summary() for p in syns]}"
        syn = syns[0]
        assert (syn[IP].src, syn[TCP].sport) == (LIP, mine[0].peer_port), syn.summary()
        scapy_view = [o for o in syn[TCP].options if o[0] == TOA_KIND]
        assert len(scapy_view) == 1, f"{rs}: no TOA option in {syn[TCP].options}"
        opts = toa_options(syn[TCP])
        assert [length for length, _ in opts] == [TOA_LEN], f"{rs}: TOA options {opts}"
        port, addr = struct.unpack("!H4s", opts[0][1])
        assert (".".join(map(str, addr)), port) == (CIP, mine[0].local_port), (
            f"{rs}: the TOA must carry the client's address and port"
        )


# --- DR ----------------------------------------------------------------------------------------


def test_dr_arp_answered_by_director_only(flat: Setup) -> None:
    """Seeds 001/002: with arp_ignore/arp_announce on the real servers (VIP on lo), only
    the director answers ARP for the VIP."""
    lab = flat.lab
    director_mac = lab.mac("director", "lan")
    for vip in (VIP_DR, VIP_TUN):
        answers = arp_who_has(lab, "client", "lan", vip)
        rs_macs = {rs: lab.mac(rs, "lan") for rs in flat.rip}
        assert answers == [director_mac], (
            f"ARP for {vip}: expected one answer, from the director {director_mac}; "
            f"got {answers} (real servers: {rs_macs})"
        )


def test_dr_rewrites_only_macs(flat: Setup) -> None:
    """Seed 000 (DR): every real server in rr order; the IP packet the client sent arrives
    unchanged at the real server (same addresses, IP id, TTL, checksum, payload), only the
    Ethernet header is new (director -> real server); replies bypass the director."""
    lab, d = flat.lab, flat.director
    svc = f"-t {VIP_DR}:80"
    d.setup(f"-A {svc} -s rr", *(f"-a {svc} -r {rip}:80 -g" for rip in flat.rip.values()))
    macs = {n: lab.mac(n, "lan") for n in ("client", "director", *flat.rip)}
    sent = lab.capture("client", "lan", f"tcp and host {VIP_DR}")
    at_director = lab.capture("director", "lan", f"tcp and src host {VIP_DR}")
    arrived = {rs: lab.capture(rs, "lan", f"tcp and dst host {VIP_DR}") for rs in flat.rip}
    replies = [http_once(lab, "client", VIP_DR, 80) for _ in range(4)]
    assert servers(replies) == ["rs2", "rs1", "rs2", "rs1"]
    assert servers(replies) == rr_order(flat, f"TCP {VIP_DR}:80", 4)
    for r in replies:
        assert (r.peer_ip, r.peer_port) == (CIP, r.local_port), r

    def key(p: Any) -> tuple[int, int, int, str]:
        return (p[TCP].sport, p[TCP].seq, p[IP].id, flags(p))

    client_pkts = tcp_packets(sent.packets())
    out = {key(p): p for p in client_pkts if p[Ether].src == macs["client"]}
    assert out and all(p[Ether].dst == macs["director"] for p in out.values())
    server_of = {r.local_port: r.server for r in replies}
    matched = 0
    for rs, cap in arrived.items():
        for p in tcp_packets(cap.packets()):
            if p[Ether].dst != macs[rs]:
                continue  # a frame the bridge flooded before it learnt the director's MAC
            assert server_of[p[TCP].sport] == rs, f"{rs} got another's packet {p.summary()}"
            assert p[Ether].src == macs["director"], f"{rs}: {p[Ether].src} {p.summary()}"
            original = out.get(key(p))
            assert original is not None, f"{rs}: a packet the client never sent: {p.summary()}"
            assert bytes(p[IP]) == bytes(original[IP]), (
                f"{rs}: DR changed the IP packet:\n sent {original[IP]!r}\n got  {p[IP]!r}"
            )
            matched += 1
    assert matched == len(out), f"{len(out)} packets sent to the VIP, {matched} reached a server"
    # The answers come straight from the real servers (their MACs), never via the director.
    back = [p for p in client_pkts if p[Ether].dst == macs["client"]]
    assert back and all(p[IP].src == VIP_DR for p in back)
    assert {p[Ether].src for p in back} == {macs["rs1"], macs["rs2"]}, [p.summary() for p in back]
    assert not tcp_packets(at_director.packets()), "DR replies must not pass the director"
    # The director sees only the client's half: the entries follow the INPUT_ONLY state
    # table, where the client's FIN leaves them in FIN_WAIT.
    rip_of = {r.local_port: f"{flat.rip[r.server]}:80" for r in replies}

    def entries() -> dict[int, tuple[str, str]]:
        return {
            int(c.source.rsplit(":", 1)[1]): (c.state, c.dest)
            for c in d.conns()
            if c.virtual == f"{VIP_DR}:80" and c.source.startswith(f"{CIP}:")
        }

    want = {port: ("FIN_WAIT", rip) for port, rip in rip_of.items()}
    wait_until(
        lambda: {p: entries().get(p) for p in want} == want,
        f"-Lnc to show {want}",
        show=entries,
    )


# --- TUN ----------------------------------------------------------------------------------------


def test_tun_ipip_encapsulation(flat: Setup) -> None:
    """Seed 000 (IPIP): the real server receives director -> real server, protocol 4,
    around the client's packet cip -> VIP; HTTP works through every real server."""
    lab, d = flat.lab, flat.director
    svc = f"-t {VIP_TUN}:80"
    d.setup(f"-A {svc} -s rr", *(f"-a {svc} -r {rip}:80 -i" for rip in flat.rip.values()))
    assert {r.fwd for r in d.dests(f"TCP {VIP_TUN}:80")} == {"Tunnel"}
    caps = {rs: lab.capture(rs, "lan", "ip proto 4") for rs in flat.rip}
    replies = [http_once(lab, "client", VIP_TUN, 80) for _ in range(4)]
    assert servers(replies) == ["rs2", "rs1", "rs2", "rs1"]
    for r in replies:
        assert (r.peer_ip, r.peer_port) == (CIP, r.local_port), r
    director_mac = lab.mac("director", "lan")
    for rs, cap in caps.items():
        pkts = [p for p in cap.packets() if p.haslayer(IP)]
        assert pkts, f"{rs}: no IPIP packet captured"
        ports = set()
        for p in pkts:
            outer = p[IP]
            assert p[Ether].src == director_mac, p.summary()
            assert (outer.src, outer.dst, outer.proto) == (DIP, flat.rip[rs], 4), p.summary()
            inner = outer.payload
            assert isinstance(inner, IP) and inner.haslayer(TCP), p.summary()
            assert (inner.src, inner.dst, inner[TCP].dport) == (CIP, VIP_TUN, 80), p.summary()
            ports.add(inner[TCP].sport)
        assert ports == {r.local_port for r in replies if r.server == rs}


# --- UDP -----------------------------------------------------------------------------------------


def test_udp_nat(routed: Setup) -> None:
    lab, d = routed.lab, routed.director
    svc = f"-u {VIP_NAT}:{UDP_PORT}"
    d.setup(f"-A {svc} -s rr", *(f"-a {svc} -r {rip}:{UDP_PORT} -m" for rip in routed.rip.values()))
    got = [udp_once(lab, "client", VIP_NAT, UDP_PORT) for _ in range(4)]
    assert [r.server for r, _ in got] == ["rs2", "rs1", "rs2", "rs1"]
    for r, src in got:
        assert (r.peer_ip, r.peer_port) == (CIP, r.local_port), r
        assert src == (VIP_NAT, UDP_PORT), f"the answer must come from the VIP: {src}"


def test_udp_dr(flat: Setup) -> None:
    lab, d = flat.lab, flat.director
    svc = f"-u {VIP_DR}:{UDP_PORT}"
    d.setup(f"-A {svc} -s rr", *(f"-a {svc} -r {rip}:{UDP_PORT} -g" for rip in flat.rip.values()))
    got = [udp_once(lab, "client", VIP_DR, UDP_PORT) for _ in range(4)]
    assert [r.server for r, _ in got] == ["rs2", "rs1", "rs2", "rs1"]
    for r, src in got:
        assert (r.peer_ip, r.peer_port) == (CIP, r.local_port), r
        assert src == (VIP_DR, UDP_PORT), f"the answer must come from the VIP: {src}"
