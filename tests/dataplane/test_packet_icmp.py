"""ICMP under the packet data plane (ip_vs_in_icmp / ip_vs_out_icmp / ip_vs_leave).

- An error from the real server's side about a packet of a NAT connection
  (fragmentation needed, quoting client -> RIP) reaches the client from the
  VIP, quoting client -> VIP, once (the director's stack does not also forward
  the raw one).
- An error from the client's side about a reply (quoting VIP -> client)
  reaches the real server, quoting RIP -> client.
- A new connection to a service with no real server gets ICMP port
  unreachable from the VIP (the client's connect is refused at once).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from scapy.layers.inet import ICMP, IP, IPerror, TCPerror

from tests.dataplane.packet_lab import CIP, VIP_NAT, Setup, routed_setup

PORT = 7100


@pytest.fixture(scope="module")
def routed() -> Iterator[Setup]:
    with routed_setup() as s:
        yield s


def send_from(s: Setup, node: str, packet: str) -> None:
    """Send a scapy-built packet from ``node``'s namespace."""
    code = f"from scapy.all import *\nsend({packet}, verbose=0)\n"
    r = s.lab.run(node, ["python3", "-c", code], timeout=30)
    if r.returncode:  # the system python may lack scapy: use the test's interpreter
        import sys

        r = s.lab.run(node, [sys.executable, "-c", code], timeout=30)
    assert r.returncode == 0, r.stderr


def icmp_errors(pkts: object) -> list[IP]:
    return [p[IP] for p in pkts if ICMP in p and p[ICMP].type in (3, 4, 11)]  # type: ignore[attr-defined]


def held_connection(s: Setup, port: int) -> socket.socket:
    c = s.lab.socket("client")
    c.settimeout(5)
    c.connect((VIP_NAT, port))
    return c


def inject(
    s: Setup, vport: int, rs: str, sender: str, watch: tuple[str, str], error: str
) -> tuple[list[IP], str, int]:
    """Hold a connection through a NAT service VIP:``vport`` -> ``rs``:80, send the ICMP
    error ``error`` (scapy text with ``{rip}`` and ``{cport}``) from ``sender``'s
    namespace; the ICMP errors a capture on ``watch`` (node, LAN) saw, the real
    server's address and the client's port."""
    rip = s.rip[rs]
    s.director.setup(f"-A -t {VIP_NAT}:{vport} -s rr", f"-a -t {VIP_NAT}:{vport} -r {rip}:80 -m")
    with held_connection(s, vport) as c:
        cport = c.getsockname()[1]
        with s.lab.capture(*watch, "icmp") as cap:
            send_from(s, sender, error.format(rip=rip, cport=cport))
            time.sleep(0.5)
    return icmp_errors(cap.packets()), rip, cport


def test_error_from_the_real_server_side_reaches_the_client_from_the_vip(routed: Setup) -> None:
    got, _rip, cport = inject(
        routed,
        80,
        "rs1",
        "rs1",
        ("client", "ext"),
        f"IP(src='{{rip}}', dst='{CIP}')/ICMP(type=3, code=4, nexthopmtu=1400)"
        f"/IP(src='{CIP}', dst='{{rip}}')/TCP(sport={{cport}}, dport=80, flags='A')",
    )
    assert len(got) == 1, [p.summary() for p in got]  # rewritten once, no raw copy
    e = got[0]
    assert (e.src, e.dst) == (VIP_NAT, CIP)
    assert (e[ICMP].type, e[ICMP].code, e[ICMP].nexthopmtu) == (3, 4, 1400)
    assert (e[IPerror].src, e[IPerror].dst) == (CIP, VIP_NAT)
    assert (e[TCPerror].sport, e[TCPerror].dport) == (cport, 80)
    chk = e[ICMP].chksum
    del e[ICMP].chksum
    assert IP(bytes(e))[ICMP].chksum == chk, "ICMP checksum"
    assert routed.director.counters().get("icmp_out", 0) >= 1


def test_error_from_the_client_side_reaches_the_real_server(routed: Setup) -> None:
    got, rip, cport = inject(
        routed,
        81,
        "rs2",
        "client",
        ("rs2", "int"),
        f"IP(src='{CIP}', dst='{VIP_NAT}')/ICMP(type=3, code=4, nexthopmtu=1300)"
        f"/IP(src='{VIP_NAT}', dst='{CIP}')/TCP(sport=81, dport={{cport}}, flags='A')",
    )
    assert len(got) == 1, [p.summary() for p in got]
    e = got[0]
    assert (e.src, e.dst) == (CIP, rip)
    assert (e[IPerror].src, e[IPerror].dst) == (rip, CIP)
    assert (e[TCPerror].sport, e[TCPerror].dport) == (80, cport)
    assert routed.director.counters().get("icmp_in", 0) >= 1


def test_no_real_server_gets_port_unreachable(routed: Setup) -> None:
    s = routed
    s.director.setup(f"-A -t {VIP_NAT}:{PORT} -s rr")
    with s.lab.capture("client", "ext", "icmp") as cap:
        c = s.lab.socket("client")
        c.settimeout(5)
        t0 = time.monotonic()
        with pytest.raises(ConnectionRefusedError):
            c.connect((VIP_NAT, PORT))
        c.close()
        assert time.monotonic() - t0 < 2, "refused at once, not after a timeout"
        time.sleep(0.3)
    got = icmp_errors(cap.packets())
    assert got, "no ICMP error"
    e = got[0]
    assert (e.src, e.dst, e[ICMP].type, e[ICMP].code) == (VIP_NAT, CIP, 3, 3)
    assert e[TCPerror].dport == PORT
    assert s.director.counters().get("no_dest", 0) >= 1
