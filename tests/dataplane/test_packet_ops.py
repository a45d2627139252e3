"""Operating the packet data plane: what pylvsadm changes does to real traffic.

On the ``routed`` lab (packet_lab.py) with NAT: weight 0 drains a real server (its
connections go on, new ones go elsewhere); after deleting a real server under load every
new connection succeeds on the others, while the deleted server's own connections are
dropped silently and resume when it is added back (kernel defaults); persistence (-p)
keeps a client address on one real server; ``-Lnc`` follows the TCP states; ``--stats``
counts exactly the packets and bytes a capture sees.  And the nftables table that keeps the
director's own stack off the VIP: there while pylvsd runs and following the rules, gone
after SIGTERM; connections that outlive their real server or service stay shielded by
that table until they expire (their replies never leak raw, the director never resets
them)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from scapy.layers.inet import IP, TCP

from tests.dataplane.packet_lab import (
    CIP,
    CIP2,
    RIP_ROUTED,
    TABLE,
    TOOLS,
    VIP_NAT,
    ConnRow,
    Director,
    HttpConn,
    Reply,
    Setup,
    http_once,
    routed_setup,
    routed_topology,
    start_pylvsd,
    wait_until,
)
from tests.lab import Lab, require_root


@pytest.fixture(scope="module")
def routed() -> Iterator[Setup]:
    with routed_setup() as s:
        yield s


def nat_service(s: Setup, vport: int, *service_opts: str) -> str:
    """VIP:vport rr over rs1:80 and rs2:80 (NAT), added rs1 first: rr picks rs2 first.
    Each test has a virtual port of its own: the kernel takes a re-added real server back
    from its trash with its counters, so reusing one would mix the tests' numbers."""
    svc = f"{VIP_NAT}:{vport}"
    s.director.setup(
        f"-A -t {svc} -s rr {' '.join(service_opts)}".rstrip(),
        *(f"-a -t {svc} -r {rip}:80 -m" for rip in s.rip.values()),
    )
    return svc


def conn_row(d: Director, svc: str, client_port: int, source: str = CIP) -> ConnRow | None:
    """The -Lnc entry of ``source:client_port`` to ``svc``."""
    for row in d.conns():
        if row.source == f"{source}:{client_port}" and row.virtual == svc:
            return row
    return None


def state_of(d: Director, svc: str, client_port: int) -> str:
    row = conn_row(d, svc, client_port)
    return row.state if row else ""


def test_weight_zero_drains(routed: Setup) -> None:
    """Weight 0: the existing connection keeps its real server; new ones go elsewhere."""
    lab, d = routed.lab, routed.director
    svc = nat_service(routed, 81)
    vport = int(svc.rsplit(":", 1)[1])
    rs2 = f"{routed.rip['rs2']}:80"
    with HttpConn(lab, "client", VIP_NAT, vport) as held:
        assert held.get().server == "rs2"
        d.adm("-e", "-t", svc, "-r", rs2, "-m", "-w", "0")
        (row,) = (r for r in d.dests(f"TCP {svc}") if r.addr == rs2)
        assert (row.weight, row.active) == (0, 1), row
        fresh = [http_once(lab, "client", VIP_NAT, vport).server for _ in range(6)]
        assert fresh == ["rs1"] * 6, "a weight-0 real server must get no new connection"
        for _ in range(3):
            r = held.get()
            assert (r.server, r.peer_port) == ("rs2", held.local_port), (
                f"the connection opened before weight 0 must stay on rs2: {r}"
            )
    d.adm("-e", "-t", svc, "-r", rs2, "-m", "-w", "1")
    after = {http_once(lab, "client", VIP_NAT, vport).server for _ in range(4)}
    assert after == {"rs1", "rs2"}, "weight back to 1: rs2 must be scheduled again"


def test_delete_real_server_under_load(routed: Setup) -> None:
    """-d while a client keeps opening connections: those opened afterwards go to the
    others and not one fails.  A connection already on the deleted real server has its
    packets silently dropped (expire_nodest_conn = 0, the kernel default; the entry stays)
    and carries on when the real server is added back (taken back from the trash)."""
    lab, d = routed.lab, routed.director
    svc = nat_service(routed, 82)
    vport = int(svc.rsplit(":", 1)[1])
    rs2 = f"{routed.rip['rs2']}:80"
    results: list[tuple[float, Reply | str]] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            t = time.monotonic()
            try:
                results.append((t, http_once(lab, "client", VIP_NAT, vport)))
            except AssertionError as e:
                results.append((t, str(e)))

    with HttpConn(lab, "client", VIP_NAT, vport) as held:
        assert held.get().server == "rs2"
        worker = threading.Thread(target=load, daemon=True)
        worker.start()
        try:
            wait_until(lambda: len(results) >= 10, "10 connections before the deletion")
            d.adm("-d", "-t", svc, "-r", rs2)
            deleted = time.monotonic()
            wait_until(
                lambda: sum(t > deleted for t, _ in results) >= 20,
                "20 connections after the deletion",
                timeout=10,
            )
        finally:
            stop.set()
            worker.join(10)
        held.send()
        with pytest.raises(AssertionError, match="timed out"):
            held.receive(timeout=0.5)
        row = conn_row(d, svc, held.local_port)
        assert row is not None and (row.state, row.dest) == ("ESTABLISHED", rs2), row
        d.adm("-a", "-t", svc, "-r", rs2, "-m")
        r = held.receive(timeout=5)  # the GET, retransmitted by the client's TCP
        assert (r.server, r.peer_port) == ("rs2", held.local_port), r
        (back,) = (x for x in d.dests(f"TCP {svc}") if x.addr == rs2)
        # (>= 1: a load connection caught on rs2 by the deletion may be back as well)
        assert back.active >= 1, f"rs2 must come back with its connection: {back}"

    early = [x for t, x in results if t < deleted]
    late = [x for t, x in results if t > deleted]
    late_errors = [x for x in late if isinstance(x, str)]
    assert not late_errors, f"{len(late_errors)} of {len(late)} failed: {late_errors[:3]}"
    assert {x.server for x in late if isinstance(x, Reply)} == {"rs1"}, (
        "new connections after -d must avoid the deleted real server"
    )
    # At most the one request in flight on rs2 at the deletion may have lost packets.
    early_errors = [x for x in early if isinstance(x, str)]
    assert len(early_errors) <= 1, early_errors
    assert {x.server for x in early if isinstance(x, Reply)} == {"rs1", "rs2"}


def test_persistence(routed: Setup) -> None:
    """-p: every connection of a client address goes to the real server of its template;
    another client address gets its own (rr moves on: the other real server).  -Lnc shows
    the templates (client port 0), ASSURED once a connection they control got
    established (ip_vs_control_assure_ct)."""
    lab, d = routed.lab, routed.director
    svc = nat_service(routed, 83, "-p", "60")
    vport = int(svc.rsplit(":", 1)[1])
    first = [http_once(lab, "client", VIP_NAT, vport).server for _ in range(8)]
    second = [http_once(lab, "client", VIP_NAT, vport, source=CIP2).server for _ in range(8)]
    assert first == ["rs2"] * 8, f"client {CIP} must stick to one real server: {first}"
    assert second == ["rs1"] * 8, f"client {CIP2} must stick to the next one: {second}"
    rows = [r for r in d.conns() if r.virtual == svc]
    templates = {(r.source, r.state, r.dest) for r in rows if r.source.endswith(":0")}
    assert templates == {
        (f"{CIP}:0", "ASSURED", f"{routed.rip['rs2']}:80"),
        (f"{CIP2}:0", "ASSURED", f"{routed.rip['rs1']}:80"),
    }, f"one persistence template per client address expected in -Lnc:\n{rows}"
    assert all("00:50" <= r.expire <= "01:00" for r in rows if r.source.endswith(":0")), rows
    assert len(rows) == 2 + 16, f"16 connections and 2 templates expected:\n{rows}"


def test_connection_entries(routed: Setup) -> None:
    """-Lnc follows the TCP state (ESTABLISHED 15 min, then TIME_WAIT 2 min) and -Ln
    counts the connection active, then inactive."""
    lab, d = routed.lab, routed.director
    svc = nat_service(routed, 84)
    vport = int(svc.rsplit(":", 1)[1])
    rs2 = f"{routed.rip['rs2']}:80"
    with HttpConn(lab, "client", VIP_NAT, vport) as held:
        assert held.get().server == "rs2"
        port = held.local_port
        row = conn_row(d, svc, port)
        assert row is not None, f"no -Lnc entry for client port {port}"
        assert (row.proto, row.state, row.dest) == ("TCP", "ESTABLISHED", rs2), row
        assert "14:00" <= row.expire <= "15:00", f"ESTABLISHED expires in 15 min: {row}"
        (dr,) = (r for r in d.dests(f"TCP {svc}") if r.addr == rs2)
        assert (dr.active, dr.inactive) == (1, 0), dr
    wait_until(
        lambda: state_of(d, svc, port) == "TIME_WAIT",
        "the entry to reach TIME_WAIT",
        show=lambda: conn_row(d, svc, port),
    )
    row = conn_row(d, svc, port)
    assert row is not None and "01:50" <= row.expire <= "02:00", f"TIME_WAIT: 2 min: {row}"
    (dr,) = (r for r in d.dests(f"TCP {svc}") if r.addr == rs2)
    assert (dr.active, dr.inactive) == (0, 1), dr


def test_stats_count_packets_and_bytes(routed: Setup) -> None:
    """--stats: connections, packets and bytes (IP lengths) each way, exactly what a
    capture on the client's side of the director sees; the real servers add up to the
    service; the counters grow with more traffic."""
    lab, d = routed.lab, routed.director
    svc = nat_service(routed, 85)
    vport = int(svc.rsplit(":", 1)[1])
    key = f"TCP {svc}"

    def run(n: int) -> tuple[int, int, int, int]:
        cap = lab.capture("director", "ext", f"tcp and host {VIP_NAT} and port {vport}")
        ports = [http_once(lab, "client", VIP_NAT, vport).local_port for _ in range(n)]
        wait_until(
            lambda: all(state_of(d, svc, p) == "TIME_WAIT" for p in ports),
            "the connections to close",
            show=lambda: [conn_row(d, svc, p) for p in ports],
        )
        time.sleep(0.1)  # the client's last ACK follows the server's FIN
        pkts = [p for p in cap.packets() if p.haslayer(IP) and p.haslayer(TCP)]
        inp = [p[IP] for p in pkts if p[IP].dst == VIP_NAT]
        out = [p[IP] for p in pkts if p[IP].src == VIP_NAT]
        return len(inp), len(out), sum(p.len for p in inp), sum(p.len for p in out)

    in1, out1, inb1, outb1 = run(3)
    s1 = d.stats()
    assert s1[key] == (3, in1, out1, inb1, outb1), (
        f"--stats {s1[key]} vs the capture: 3 conns, {in1}/{out1} packets, {inb1}/{outb1} bytes"
    )
    rs_rows = [s1[f"{rip}:80"] for rip in routed.rip.values()]
    assert tuple(map(sum, zip(*rs_rows, strict=True))) == s1[key], (s1, rs_rows)
    assert all(r.conns > 0 and r.inpkts > 0 and r.outbytes > 0 for r in rs_rows), rs_rows

    in2, out2, inb2, outb2 = run(2)
    s2 = d.stats()
    assert s2[key] == (5, in1 + in2, out1 + out2, inb1 + inb2, outb1 + outb2), (s1[key], s2[key])
    assert s2[key].inpkts > s1[key].inpkts


def refused(lab: Lab, host: str, port: int) -> bool:
    """True when a connection from the client is reset (the director's own stack)."""
    with lab.socket("client") as s:
        s.settimeout(2)
        try:
            s.connect((host, port))
        except ConnectionRefusedError:
            return True
    return False


def test_nftables_table_lifecycle() -> None:
    """Without pylvsd the director's stack resets connections to the VIP (it is a local
    address with no listener); pylvsd's table ``inet pylvs`` takes the service ports away
    from it while the service exists, and is gone after SIGTERM."""
    require_root(*TOOLS)
    with Lab(routed_topology()) as lab:
        lab.http_server("rs1", 80, "rs1")
        assert refused(lab, VIP_NAT, 80), "control: the bare director must reset the VIP"
        rip = RIP_ROUTED["rs1"]
        svc = f"{VIP_NAT}:80"
        d = start_pylvsd(lab, ["ext", "int"])
        try:
            table = d.nft_table()
            assert table is not None and "elements" not in table, table
            d.setup(f"-A -t {svc} -s rr", f"-a -t {svc} -r {rip}:80 -m")
            table = d.nft_table() or ""
            assert f"{VIP_NAT} . tcp . 80" in table, table
            assert f"{rip} . tcp . 80" in table, table
            assert http_once(lab, "client", VIP_NAT, 80).server == "rs1"
            d.adm("-C")
            table = d.nft_table() or ""
            assert f"{VIP_NAT} . tcp . 80" not in table, "-C must take the VIP out: " + table
            # The finished connection (TIME_WAIT) is still in the table: its own flow stays
            # shielded until it expires, nothing else.
            assert f". {VIP_NAT} . 80" in table, table
            assert refused(lab, VIP_NAT, 80), "no service: the VIP is the director's again"
            d.setup(f"-A -t {svc} -s rr", f"-a -t {svc} -r {rip}:80 -m")
        except BaseException:
            d.stop(check=False)
            raise
        d.stop()  # SIGTERM: exit 0 and no table left (checked by stop)
        assert d.nft_table() is None, f"{TABLE} left behind"
        assert refused(lab, VIP_NAT, 80), "after pylvsd: the stack resets the VIP again"


def test_deleted_real_server_replies_stay_behind_the_vip(routed: Setup) -> None:
    """After -d, a packet from the deleted real server on a still-listed connection is
    rewritten to come from the VIP (ip_vs_out does not care whether the real server is
    available); the client must never see the real server's own address."""
    lab, d = routed.lab, routed.director
    rs2 = routed.rip["rs2"]
    server = lab.http_server("rs2", 9000, "rs2:9000")
    svc = f"{VIP_NAT}:86"
    d.setup(f"-A -t {svc} -s rr", f"-a -t {svc} -r {rs2}:9000 -m")
    with HttpConn(lab, "client", VIP_NAT, 86) as held:
        assert held.get().server == "rs2:9000"
        cap = lab.capture("client", "ext", "tcp")
        d.adm("-d", "-t", svc, "-r", f"{rs2}:9000")
        server.stop()  # rs2 closes its side: a FIN from 192.168.10.12:9000
        time.sleep(0.5)
        pkts = [p for p in cap.packets() if p.haslayer(IP) and p.haslayer(TCP)]
    to_client = [p for p in pkts if p[IP].dst == CIP]
    assert any(p[IP].src == VIP_NAT and "F" in str(p[TCP].flags) for p in to_client), [
        p.summary() for p in pkts
    ]
    leaked = [p.summary() for p in to_client if p[IP].src != VIP_NAT]
    assert not leaked, f"un-rewritten replies reached the client: {leaked}"


def test_deleted_service_connection_is_dropped_not_reset(routed: Setup) -> None:
    """After -D, a packet of a connection of the deleted service is dropped silently (its
    entry outlives the service; expire_nodest_conn = 0), as in ip_vs_in: the director's
    own stack must not answer it with a reset."""
    lab, d = routed.lab, routed.director
    svc = nat_service(routed, 87)
    with HttpConn(lab, "client", VIP_NAT, 87) as held:
        assert held.get().server == "rs2"
        d.adm("-D", "-t", svc)
        row = conn_row(d, svc, held.local_port)
        assert row is not None and row.state == "ESTABLISHED", row
        with pytest.raises(AssertionError, match="timed out"):
            held.get(timeout=0.5)
