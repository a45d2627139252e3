"""``pylvs realserver`` in network namespaces (tests.lab): the real-server setup of LVS DR and
TUN, its exact undo, and the userspace decapsulator carrying real traffic.

The command runs as a user would run it (``python -m pylvs.cli.main realserver ...`` through
``ip netns exec``), with $PYLVS_REALSERVER_DIR pointing at a per-test directory.  Packets
for the tunnel are built with scapy in this process and sent from a "director" namespace
with a raw socket; replies are received by sockets living in the client's namespace.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet import IP, TCP, UDP, fragment
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Raw

from tests.lab import Lab, Topology, require_root
from tests.lab.netns import in_netns

SRC = str(Path(__file__).resolve().parents[2] / "src")
VIP = "10.0.0.100"
CIP, DIP, RIP = "10.0.0.2", "10.0.0.1", "10.0.0.11"
VIP6, CIP6, DIP6, RIP6 = "fd00::100", "fd00::2", "fd00::1", "fd00::11"
TUN_DEV = "pylvs0a000064"  # setup.tun_device(10.0.0.100)
ETH_P_ARP = 0x0806
ETH_P_IP = 0x0800
PACKET_OUTGOING = 4
SOL_PACKET = 263
PACKET_VNET_HDR = 15
PACKET_IGNORE_OUTGOING = 23
NEEDS_CSUM = 1
VNET = struct.Struct("=BBHHHH")  # virtio_net_hdr: flags, gso_type, hdr_len, gso_size, start, offset

# DR: the client reaches the VIP through the real server's MAC (what the director's
# MAC rewrite does), here with a route.  Non-default values that must come back after stop.
PAIR = Topology(
    nodes=["client", "rs1"],
    lans={"lan": [f"client:{CIP}/24", f"rs1:{RIP}/24"]},
    routes={"client": [f"{VIP}/32 via {RIP}"]},
    sysctls={"rs1": {"net.ipv4.conf.all.rp_filter": "1", "net.ipv4.conf.lan.arp_announce": "1"}},
)

# TUN: client, director and real server on one bridged LAN; the real server answers the
# client directly.  Offloads off: the end-to-end test re-sends the client's frames.
TRIO = Topology(
    nodes=["client", "director", "rs1"],
    lans={
        "lan": [
            f"client:{CIP}/24,{CIP6}/64",
            f"director:{DIP}/24,{DIP6}/64",
            f"rs1:{RIP}/24,{RIP6}/64",
        ]
    },
    routes={"client": [f"{VIP}/32 via {DIP}"]},
    sysctls={"rs1": {"net.ipv4.conf.all.rp_filter": "1"}},
    offload=False,
    ipv6=True,
)

# The same with offloads on: a TCP/UDP checksum left partial by a sender stays partial across
# the veths and the bridge up to the real server (the case the decapsulator must carry over).
TRIO_OFFLOAD = Topology(
    nodes=["client", "director", "rs1"],
    lans={"lan": [f"client:{CIP}/24", f"director:{DIP}/24", f"rs1:{RIP}/24"]},
    routes={"client": [f"{VIP}/32 via {DIP}"]},
    offload=True,
)

SNAPSHOT = r"""
import json, os, subprocess
sysctls = {}
for base in ("/proc/sys/net/ipv4/conf", "/proc/sys/net/ipv6/conf"):
    for root, _dirs, files in os.walk(base):
        for f in files:
            try:
                with open(os.path.join(root, f)) as fh:
                    sysctls[os.path.join(root, f)] = fh.read().strip()
            except OSError:
                pass
def ipj(*a):
    r = subprocess.run(["ip", "-j", *a], capture_output=True, text=True, check=True)
    return json.loads(r.stdout or "[]")
addrs = sorted([l["ifname"], a["local"], a["prefixlen"]]
               for l in ipj("addr", "show") for a in l.get("addr_info", []))
links = sorted([l["ifname"], sorted(l.get("flags", []))] for l in ipj("link", "show"))
routes = sorted(json.dumps(r, sort_keys=True) for r in ipj("route", "show", "table", "all"))
routes6 = sorted(json.dumps(r, sort_keys=True) for r in ipj("-6", "route", "show", "table", "all"))
print(json.dumps({"sysctls": sysctls, "addrs": addrs, "links": links,
                  "routes": routes, "routes6": routes6}))
"""


@pytest.fixture
def statedir(tmp_path: Path) -> Iterator[str]:
    d = tmp_path / "realserver"
    yield str(d)
    for pid in decap_pids(str(d)):  # a failed test must not leave a decapsulator behind
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass


@pytest.fixture
def pair() -> Iterator[Lab]:
    require_root("tcpdump")
    with Lab(PAIR) as lab:
        yield lab


@pytest.fixture
def trio() -> Iterator[Lab]:
    require_root("tcpdump", "ethtool", "curl")
    with Lab(TRIO) as lab:
        yield lab


@pytest.fixture
def trio_offload() -> Iterator[Lab]:
    require_root("tcpdump", "curl")
    with Lab(TRIO_OFFLOAD) as lab:
        yield lab


# -- helpers ----------------------------------------------------------------------------------
def rs(lab: Lab, node: str, statedir: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``pylvs realserver ARGS`` in ``node``'s namespace."""
    env = dict(os.environ, PYLVS_REALSERVER_DIR=statedir)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p)
    argv = [sys.executable, "-m", "pylvs.cli.main", "realserver", *args]
    return lab.run(node, argv, env=env, timeout=60)


def ok(r: subprocess.CompletedProcess[str], code: int = 0) -> str:
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    return r.stdout


def snapshot(lab: Lab, node: str) -> dict[str, Any]:
    r = lab.run(node, [sys.executable, "-c", SNAPSHOT], check=True)
    doc: dict[str, Any] = json.loads(r.stdout)
    return doc


def assert_same(before: dict[str, Any], after: dict[str, Any]) -> None:
    for k in ("addrs", "links", "routes", "routes6"):
        assert after[k] == before[k], k
    b, a = before["sysctls"], after["sysctls"]
    diff = {k: (b.get(k), a.get(k)) for k in set(a) | set(b) if a.get(k) != b.get(k)}
    assert not diff, diff


def decap_pids(statedir: str) -> list[int]:
    """Decapsulator processes working for ``statedir`` (any namespace)."""
    pids = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            argv = Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"pylvs.realserver.decap" in argv and any(statedir.encode() in a for a in argv):
            pids.append(int(p))
    return pids


def counters(lab: Lab, statedir: str, vip: str = VIP) -> dict[str, int]:
    """The decapsulator counters as ``status`` prints them."""
    out = ok(rs(lab, "rs1", statedir, "status", "--vip", vip))
    found: dict[str, int] = {}
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("counters:"))
    for line in lines[start + 1 :]:
        name, value = line.split()
        found[name] = int(value)
    return found


def sysctl(lab: Lab, node: str, key: str) -> str:
    return lab.run(node, ["cat", f"/proc/sys/{key}"], check=True).stdout.strip()


def arp_replies(lab: Lab, node: str, lan: str, target: str, wait: float = 1.0) -> list[str]:
    """MACs answering an ARP request for ``target`` sent from ``node`` on ``lan``."""
    my_mac, my_ip = lab.mac(node, lan), lab.addr(node, lan)
    with lab.socket(node, socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP)) as s:
        s.bind((lab.iface(node, lan), ETH_P_ARP))
        req = Ether(src=my_mac, dst="ff:ff:ff:ff:ff:ff") / ARP(
            op=1, hwsrc=my_mac, psrc=my_ip, pdst=target
        )
        s.send(bytes(req))
        answers = []
        end = time.monotonic() + wait
        while (left := end - time.monotonic()) > 0:
            s.settimeout(left)
            try:
                frame = s.recv(2048)
            except TimeoutError:
                break
            a = Ether(frame)
            if ARP in a and a[ARP].op == 2 and a[ARP].psrc == target and a[ARP].pdst == my_ip:
                answers.append(str(a[ARP].hwsrc))
        return answers


def send_raw(lab: Lab, node: str, pkt: bytes, dst: str, *, broadcast: bool = False) -> None:
    """Send a complete IP packet (header included) from ``node``."""
    family = socket.AF_INET6 if ":" in dst else socket.AF_INET
    with lab.socket(node, family, socket.SOCK_RAW, socket.IPPROTO_RAW) as s:
        if broadcast:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        s.sendto(pkt, (dst, 0))


def ipip(inner: Any, *, tos: int = 0) -> bytes:
    """An IPIP packet from the director to the real server, as IPVS TUN sends it."""
    return bytes(IP(src=DIP, dst=RIP, proto=4, tos=tos, ttl=64) / Raw(bytes(inner)))


def pseudo_sum(inner: bytes, proto: int) -> int:
    """The folded (not inverted) pseudo-header sum of an IPv4 packet's transport header:
    what a partial checksum field holds."""
    words = inner[12:20] + struct.pack("!HH", proto, len(inner) - (inner[0] & 15) * 4)
    s = sum(struct.unpack("!6H", words))
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def make_partial(inner: bytes, proto: int) -> tuple[bytes, int]:
    """``inner`` (IPv4 + TCP/UDP) with its checksum field as a sender with checksum offload
    leaves it; returns it and the field's offset in the transport header."""
    pkt = bytearray(inner)
    field = 16 if proto == 6 else 6
    struct.pack_into("!H", pkt, (pkt[0] & 15) * 4 + field, pseudo_sum(inner, proto))
    return bytes(pkt), field


def send_frame(lab: Lab, node: str, to: str, packet: bytes, vnet: bytes) -> None:
    """Send the IP ``packet`` in an Ethernet frame from ``node`` to ``to``'s MAC on "lan" with
    an AF_PACKET socket and the virtio_net_hdr ``vnet`` (offsets from the Ethernet header)."""
    eth = bytes.fromhex(lab.mac(to, "lan").replace(":", "") + lab.mac(node, "lan").replace(":", ""))
    with lab.socket(node, socket.AF_PACKET, socket.SOCK_RAW, 0) as s:
        s.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
        s.bind((lab.iface(node, "lan"), 0))
        s.send(vnet + eth + struct.pack("!H", ETH_P_IP) + packet)


class ClientSocket:
    """A UDP socket in the client's namespace on the client's address, to catch replies."""

    def __init__(self, lab: Lab, addr: str, port: int) -> None:
        family = socket.AF_INET6 if ":" in addr else socket.AF_INET
        self.sock = lab.socket("client", family, socket.SOCK_DGRAM)
        self.sock.bind((addr, port))

    def reply(self, timeout: float = 3.0) -> tuple[str, str, int]:
        self.sock.settimeout(timeout)
        data, peer = self.sock.recvfrom(2048)
        return data.decode(), peer[0], peer[1]

    def nothing(self, wait: float = 0.5) -> bool:
        self.sock.settimeout(wait)
        try:
            self.sock.recvfrom(2048)
        except TimeoutError:
            return True
        return False

    def close(self) -> None:
        self.sock.close()


def udp_to_vip(sport: int, payload: bytes = b"q", **ip: Any) -> Any:
    fields = {"src": CIP, "dst": VIP, **ip}
    return IP(**fields) / UDP(sport=sport, dport=53) / Raw(payload)


# -- setup and undo ------------------------------------------------------------------------
def test_dr_start_status_stop_restores_the_namespace(pair: Lab, statedir: str) -> None:
    before = snapshot(pair, "rs1")
    status = rs(pair, "rs1", statedir, "status", "--vip", VIP)
    assert "not configured" in ok(status, 3)

    out = ok(rs(pair, "rs1", statedir, "start", "--vip", VIP, "--mode", "dr"))
    assert f"added {VIP}/32 on lo" in out
    assert "net.ipv4.conf.all.rp_filter: 1 -> 0" in out
    assert "net.ipv4.conf.lan.arp_announce: 1 -> 2" in out
    for dev in ("all", "lo", "lan"):
        assert sysctl(pair, "rs1", f"net/ipv4/conf/{dev}/arp_ignore") == "1"
        assert sysctl(pair, "rs1", f"net/ipv4/conf/{dev}/arp_announce") == "2"
    assert f"{VIP}/32" in pair.sh("rs1", "ip -o addr show dev lo").stdout

    out = ok(rs(pair, "rs1", statedir, "status", "--vip", VIP))
    assert ": configured (recorded by start)" in out
    assert "[no]" not in out

    again = rs(pair, "rs1", statedir, "start", "--vip", VIP, "--mode", "dr")
    assert "already started" in again.stderr
    ok(again, 1)

    out = ok(rs(pair, "rs1", statedir, "stop", "--vip", VIP))
    assert f"removed {VIP}/32 from lo" in out
    assert_same(before, snapshot(pair, "rs1"))
    assert sysctl(pair, "rs1", "net/ipv4/conf/lan/arp_announce") == "1"
    assert "nothing to stop" in ok(rs(pair, "rs1", statedir, "stop", "--vip", VIP))
    ok(rs(pair, "rs1", statedir, "status", "--vip", VIP), 3)
    assert not os.listdir(statedir)


def test_dr_keeps_a_vip_that_was_there_and_reports_partial(pair: Lab, statedir: str) -> None:
    pair.sh("rs1", f"ip addr add {VIP}/32 dev lo")
    before = snapshot(pair, "rs1")
    ok(rs(pair, "rs1", statedir, "status", "--vip", VIP), 1)  # VIP but no ARP settings
    out = ok(rs(pair, "rs1", statedir, "start", "--vip", VIP, "--mode", "dr", "--dev", "lan"))
    assert "kept (already there)" in out
    pair.sh("rs1", "echo 0 > /proc/sys/net/ipv4/conf/lan/arp_ignore")
    out = ok(rs(pair, "rs1", statedir, "status", "--vip", VIP), 1)
    assert "partially configured" in out
    assert "[no] net.ipv4.conf.lan.arp_ignore = 0 (want 1)" in out
    ok(rs(pair, "rs1", statedir, "stop", "--vip", VIP))
    assert_same(before, snapshot(pair, "rs1"))  # the VIP stays: start did not add it


def test_ipv6_vip_round_trip(trio: Lab, statedir: str) -> None:
    before = snapshot(trio, "rs1")
    out = ok(rs(trio, "rs1", statedir, "start", "--vip", VIP6, "--mode", "dr"))
    assert f"added {VIP6}/128 on lo" in out
    assert "arp_ignore" not in out  # nothing ARP-related for an IPv6 VIP
    ok(rs(trio, "rs1", statedir, "status", "--vip", VIP6))
    ok(rs(trio, "rs1", statedir, "stop", "--vip", VIP6))
    assert_same(before, snapshot(trio, "rs1"))


def test_tun_start_status_stop_restores_the_namespace(trio: Lab, statedir: str) -> None:
    before = snapshot(trio, "rs1")
    out = ok(rs(trio, "rs1", statedir, "start", "--vip", VIP, "--mode", "tun"))
    assert "userspace ipip decapsulator" in out
    pids = decap_pids(statedir)
    assert len(pids) == 1
    assert f"decapsulator pid {pids[0]} on TUN device {TUN_DEV}" in out
    link = trio.sh("rs1", f"ip -o link show dev {TUN_DEV}").stdout
    assert "UP" in link
    assert sysctl(trio, "rs1", f"net/ipv4/conf/{TUN_DEV}/rp_filter") == "0"
    assert sysctl(trio, "rs1", "net/ipv4/conf/all/rp_filter") == "0"
    out = ok(rs(trio, "rs1", statedir, "status", "--vip", VIP))
    assert f"[ok] decapsulator pid {pids[0]} alive" in out
    assert f"[ok] tunnel device {TUN_DEV} up" in out
    assert "counters: decapsulated 0, dropped 0" in out

    out = ok(rs(trio, "rs1", statedir, "stop", "--vip", VIP))
    assert f"decapsulator pid {pids[0]} stopped" in out
    assert not decap_pids(statedir)
    assert_same(before, snapshot(trio, "rs1"))
    ok(rs(trio, "rs1", statedir, "status", "--vip", VIP, "--mode", "tun"), 3)


def test_tun_dead_decapsulator_is_partial_and_stop_still_restores(trio: Lab, statedir: str) -> None:
    before = snapshot(trio, "rs1")
    ok(rs(trio, "rs1", statedir, "start", "--vip", VIP, "--mode", "tun"))
    (pid,) = decap_pids(statedir)
    os.kill(pid, 9)
    deadline = time.monotonic() + 5
    while decap_pids(statedir) and time.monotonic() < deadline:
        time.sleep(0.05)
    out = ok(rs(trio, "rs1", statedir, "status", "--vip", VIP), 1)
    assert "[no] decapsulator" in out
    assert f"[no] tunnel device {TUN_DEV} missing" in out  # not persistent: gone with it
    ok(rs(trio, "rs1", statedir, "stop", "--vip", VIP))
    assert_same(before, snapshot(trio, "rs1"))


def test_failed_start_undoes_its_steps(trio: Lab, statedir: str) -> None:
    before = snapshot(trio, "rs1")
    with trio.socket("rs1", socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("0.0.0.0", 6080))
        r = rs(
            trio,
            "rs1",
            statedir,
            *["start", "--mode", "tun", "--tun-type", "gue", "--tun-port", "6080"],
            "--vip",
            VIP,
        )
        ok(r, 1)
        assert "decapsulator failed" in r.stderr and "Address already in use" in r.stderr
    assert_same(before, snapshot(trio, "rs1"))
    assert not decap_pids(statedir)
    assert not os.path.exists(os.path.join(statedir, f"{VIP}@{trio.ns('rs1')}"))


def test_clear_errors(pair: Lab, statedir: str) -> None:
    r = rs(pair, "rs1", statedir, "start", "--vip", "10.0.0.300", "--mode", "dr")
    ok(r, 2)
    assert "bad VIP '10.0.0.300'" in r.stderr
    r = rs(pair, "rs1", statedir, "start", "--vip", "10.0.0.0/24", "--mode", "dr")
    ok(r, 2)
    assert "bad VIP" in r.stderr
    r = rs(pair, "rs1", statedir, "start", "--vip", VIP, "--mode", "dr", "--dev", "eth9")
    ok(r, 2)
    assert "unknown device 'eth9'" in r.stderr
    r = rs(pair, "rs1", statedir, "start", "--vip", VIP)
    ok(r, 2)
    assert "start needs --mode" in r.stderr
    r = rs(pair, "rs1", statedir, "start", "--vip", VIP, "--mode", "tun", "--tun-type", "gue")
    ok(r, 2)
    assert "--tun-port" in r.stderr
    r = rs(pair, "rs1", statedir, "start", "--vip", VIP, "--mode", "nat")
    ok(r, 2)
    assert "invalid choice" in r.stderr
    assert not os.path.exists(statedir) or not os.listdir(statedir)


def test_not_root_is_a_clear_error() -> None:
    require_root()
    from pylvs.cli import main as cli

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            sys.stderr = os.fdopen(w, "w")
            os.setgid(65534)
            os.setuid(65534)
            code = cli.main(["realserver", "start", "--vip", VIP, "--mode", "dr"])
            sys.stderr.flush()
        except BaseException:
            code = 99
        os._exit(code)
    os.close(w)
    with os.fdopen(r) as f:
        err = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 1, err
    assert "must be run as root" in err


# -- DR traffic ------------------------------------------------------------------------------
def test_dr_real_server_answers_from_the_vip_and_hides_it_from_arp(
    pair: Lab, statedir: str
) -> None:
    rs_mac = pair.mac("rs1", "lan")
    # Control: a VIP on lo without the ARP settings is answered for (the problem DR solves).
    pair.sh("rs1", f"ip addr add {VIP}/32 dev lo")
    assert arp_replies(pair, "client", "lan", VIP) == [rs_mac]
    pair.sh("rs1", f"ip addr del {VIP}/32 dev lo")

    ok(rs(pair, "rs1", statedir, "start", "--vip", VIP, "--mode", "dr"))
    try:
        assert arp_replies(pair, "client", "lan", VIP) == []
        assert arp_replies(pair, "client", "lan", RIP) == [rs_mac]  # the RIP still answers

        pair.http_server("rs1", 80)
        pair.udp_server("rs1", 53, bind=VIP)
        pair.http_get("client", f"http://{VIP}/")  # the client learns the real server's MAC
        pair.sh("rs1", "ip neigh flush all")  # and the real server must ask for the client's
        with pair.capture("client", "lan", f"arp or host {VIP}") as cap:
            body = pair.http_get("client", f"http://{VIP}/")
            answer = pair.udp_ask("client", VIP, 53)
        assert body.startswith(f"rs1 {CIP} ")
        assert answer.startswith(f"rs1 {CIP} ")
        replies = [p for p in cap.packets() if IP in p and p[IP].src == VIP]
        assert replies, "no reply from the VIP captured"
        assert all(p[Ether].src == rs_mac for p in replies)
        arps = [p for p in cap.packets() if ARP in p and p[Ether].src == rs_mac]
        asks = [p for p in arps if p[ARP].op == 1]
        assert asks, "the real server did not ARP for the client"
        assert all(p[ARP].psrc == RIP for p in arps)  # arp_announce=2: never the VIP
    finally:
        ok(rs(pair, "rs1", statedir, "stop", "--vip", VIP))


# -- TUN traffic -----------------------------------------------------------------------------
def test_tun_ipip_datagram_is_answered_directly_and_bad_packets_are_counted(
    trio: Lab, statedir: str
) -> None:
    ok(rs(trio, "rs1", statedir, "start", "--vip", VIP, "--mode", "tun"))
    try:
        (pid,) = decap_pids(statedir)
        trio.udp_server("rs1", 53, bind=VIP)
        rs_mac = trio.mac("rs1", "lan")
        client = ClientSocket(trio, CIP, 40000)
        try:
            with (
                trio.capture("client", "lan", f"udp and host {VIP}") as at_client,
                trio.capture("director", "lan", "icmp") as icmp,
                trio.capture("rs1", TUN_DEV) as inner,
            ):
                send_raw(trio, "director", ipip(udp_to_vip(40000, tos=1), tos=3), RIP)
                assert client.reply() == (f"rs1 {CIP} 40000", VIP, 53)

                bad_csum = bytearray(bytes(udp_to_vip(40000)))
                bad_csum[10] ^= 0xFF
                wrong_version = bytearray(bytes(udp_to_vip(40000)))
                wrong_version[0] = 0x65
                short_ihl = bytearray(bytes(udp_to_vip(40000)))
                short_ihl[0] = 0x44
                bad = [
                    Raw(b"garbage"),  # shorter than an IP header
                    Raw(bytes(wrong_version)),
                    Raw(bytes(short_ihl)),
                    Raw(bytes(udp_to_vip(40000, b"x" * 40))[:-8]),  # truncated
                    Raw(bytes(bad_csum)),
                    udp_to_vip(40000, dst="10.0.0.99"),  # not our VIP
                ]
                for pkt in bad:
                    send_raw(trio, "director", ipip(pkt), RIP)
                # CE on the outer header over a not-ECT inner packet: dropped (RFC 6040)
                send_raw(trio, "director", ipip(udp_to_vip(40000), tos=3), RIP)
                # an IPIP broadcast reaches the raw socket but is not for us
                outer = IP(src=DIP, dst="10.0.0.255", proto=4) / Raw(bytes(udp_to_vip(40000)))
                send_raw(trio, "director", bytes(outer), "10.0.0.255", broadcast=True)
                assert client.nothing()

                send_raw(trio, "director", ipip(udp_to_vip(40000, b"again")), RIP)
                assert client.reply() == (f"rs1 {CIP} 40000", VIP, 53)
        finally:
            client.close()

        assert decap_pids(statedir) == [pid]  # survived all of it
        c = counters(trio, statedir)
        assert c["decapsulated"] == 2
        assert c["dropped_inner_malformed"] == 4
        assert c["dropped_inner_bad_checksum"] == 1
        assert c["dropped_other_destination"] == 1
        assert c["dropped_ecn_ce_not_ect"] == 1
        assert c["dropped_outer_not_local"] == 1
        assert c["dropped_tun_write_error"] == 0

        replies = [p for p in at_client.packets() if IP in p and p[IP].src == VIP]
        assert len(replies) == 2
        assert all(p[Ether].src == rs_mac and p[IP].dst == CIP for p in replies)
        assert not icmp.packets(), "the real server answered IPIP with ICMP"
        first = next(p for p in inner.packets() if IP in p and p[IP].dst == VIP)
        assert first[IP].tos & 3 == 3  # ECT(1) inner under CE outer: CE propagated
        rebuilt = IP(bytes(first[IP]))
        del rebuilt.chksum
        assert IP(bytes(rebuilt)).chksum == first[IP].chksum  # header checksum fixed up
    finally:
        ok(rs(trio, "rs1", statedir, "stop", "--vip", VIP))


def test_tun_gue_versions_and_remote_checksum_offload(trio: Lab, statedir: str) -> None:
    port = 6080
    ok(
        rs(
            trio,
            "rs1",
            statedir,
            *f"start --mode tun --tun-type gue --tun-port {port}".split(),
            "--vip",
            VIP,
        )
    )
    try:
        trio.udp_server("rs1", 53, bind=VIP)

        def gue(header: bytes, inner: bytes) -> bytes:
            udp = UDP(sport=50000, dport=port) / Raw(header + inner)
            return bytes(IP(src=DIP, dst=RIP) / udp)

        # remote checksum offload: the inner UDP checksum holds only the pseudo-header sum
        inner = bytearray(bytes(udp_to_vip(40003, b"remcsum")))
        ulen = len(inner) - 20
        words = socket.inet_aton(CIP) + socket.inet_aton(VIP) + struct.pack("!HH", 17, ulen)
        s = sum(struct.unpack("!6H", words))
        while s > 0xFFFF:
            s = (s & 0xFFFF) + (s >> 16)
        struct.pack_into("!H", inner, 26, s)
        remcsum = bytes((0x02, 4)) + struct.pack("!HIHH", 0x0001, 0x80000000, 20, 26)

        client = ClientSocket(trio, CIP, 40001)
        try:
            send_raw(trio, "director", gue(b"\x00\x04\x00\x00", bytes(udp_to_vip(40001))), RIP)
            assert client.reply() == (f"rs1 {CIP} 40001", VIP, 53)
            # version 1: the IP packet straight after the UDP header
            send_raw(trio, "director", gue(b"", bytes(udp_to_vip(40001))), RIP)
            assert client.reply() == (f"rs1 {CIP} 40001", VIP, 53)
            send_raw(trio, "director", gue(b"\x20\x04\x00\x00", b"ctrl"), RIP)  # control
            send_raw(trio, "director", gue(b"\x00\x04\x00\x80", bytes(udp_to_vip(40001))), RIP)
            send_raw(trio, "director", gue(b"\x00\x11\x00\x00", bytes(udp_to_vip(40001))), RIP)
            assert client.nothing()
        finally:
            client.close()
        client = ClientSocket(trio, CIP, 40003)
        try:
            send_raw(trio, "director", gue(remcsum, bytes(inner)), RIP)
            assert client.reply() == (f"rs1 {CIP} 40003", VIP, 53)
        finally:
            client.close()
        c = counters(trio, statedir)
        assert c["decapsulated"] == 3
        assert c["dropped_gue_malformed"] == 2  # control message, unknown flag
        assert c["dropped_inner_protocol"] == 1  # proto_ctype 17
    finally:
        ok(rs(trio, "rs1", statedir, "stop", "--vip", VIP))


def test_tun_ipv6_and_ipv4_vips_side_by_side(trio: Lab, statedir: str) -> None:
    before = snapshot(trio, "rs1")
    ok(rs(trio, "rs1", statedir, "start", "--vip", VIP6, "--mode", "tun"))
    ok(rs(trio, "rs1", statedir, "start", "--vip", VIP, "--mode", "tun"))
    try:
        assert len(decap_pids(statedir)) == 2
        trio.udp_server("rs1", 53, bind=VIP6)
        trio.udp_server("rs1", 54, bind=VIP)
        inner6 = IPv6(src=CIP6, dst=VIP6) / UDP(sport=40002, dport=53) / Raw(b"q")
        client = ClientSocket(trio, CIP6, 40002)
        try:
            # IPv6 in IPv6 (IPVS: outer IPv6 next header 41)
            outer = IPv6(src=DIP6, dst=RIP6, nh=41) / Raw(bytes(inner6))
            send_raw(trio, "director", bytes(outer), RIP6)
            assert client.reply() == (f"rs1 {CIP6} 40002", VIP6, 53)
            # IPv6 in IPv4 (a v6 service with a v4 real server address: protocol 41)
            send_raw(trio, "director", bytes(IP(src=DIP, dst=RIP, proto=41) / inner6), RIP)
            assert client.reply() == (f"rs1 {CIP6} 40002", VIP6, 53)
        finally:
            client.close()
        client = ClientSocket(trio, CIP, 40004)
        try:
            # IPv4 in IPv6 (protocol 4 over an IPv6 outer header) to the IPv4 VIP
            inner4 = IP(src=CIP, dst=VIP) / UDP(sport=40004, dport=54) / Raw(b"q")
            send_raw(trio, "director", bytes(IPv6(src=DIP6, dst=RIP6, nh=4) / inner4), RIP6)
            assert client.reply() == (f"rs1 {CIP} 40004", VIP, 54)
        finally:
            client.close()
        assert counters(trio, statedir, VIP6)["decapsulated"] == 2
        assert counters(trio, statedir, VIP)["decapsulated"] == 1
    finally:
        ok(rs(trio, "rs1", statedir, "stop", "--vip", VIP))
        ok(rs(trio, "rs1", statedir, "stop", "--vip", VIP6))
    assert_same(before, snapshot(trio, "rs1"))


class Encapsulator(threading.Thread):
    """Test-only stand-in for an IPVS TUN director: every frame the director receives for
    the VIP is sent on to the real server inside an IPIP header.

    ``partial``: frames are read and written with a virtio_net_hdr and a partial checksum
    stays partial (csum_start moved by the outer header), as the kernel's IPVS does with
    CHECKSUM_PARTIAL skbs; the outer header gets the inner DF bit."""

    def __init__(self, lab: Lab, *, partial: bool = False) -> None:
        super().__init__(daemon=True)
        self.partial = partial
        self.rx = lab.socket("director", socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
        if partial:
            self.rx.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
            self.rx.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            self.tx = lab.socket("director", socket.AF_PACKET, socket.SOCK_RAW, 0)
            self.tx.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
            self.tx.bind(("lan", 0))
            self.eth = bytes.fromhex(
                lab.mac("rs1", "lan").replace(":", "") + lab.mac("director", "lan").replace(":", "")
            ) + struct.pack("!H", ETH_P_IP)
        else:
            self.tx = lab.socket("director", socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        self.rx.bind(("lan", ETH_P_IP))
        self.rx.settimeout(0.1)
        self.vip = socket.inet_aton(VIP)
        self.sent = 0
        self.sent_partial = 0
        self.gso = 0
        self.done = threading.Event()

    def run(self) -> None:
        skip = VNET.size if self.partial else 0
        while not self.done.is_set():
            try:
                frame, addr = self.rx.recvfrom(65535)
            except TimeoutError:
                continue
            pkt = frame[skip + 14 :]
            if addr[2] == PACKET_OUTGOING or pkt[0] >> 4 != 4 or pkt[16:20] != self.vip:
                continue
            inner = pkt[: struct.unpack_from("!H", pkt, 2)[0]]
            if not self.partial:
                self.tx.sendto(ipip(Raw(inner), tos=inner[1] & 0xFC), (RIP, 0))
                self.sent += 1
                continue
            flags, gso_type, _hlen, _gsz, start, offset = VNET.unpack_from(frame)
            if gso_type:  # a super-packet would need cutting first (not in this test)
                self.gso += 1
                continue
            outer = IP(src=DIP, dst=RIP, proto=4, tos=inner[1] & 0xFC, ttl=64, flags=inner[6] >> 5)
            hdr = (
                VNET.pack(flags & NEEDS_CSUM, 0, 0, 0, start + 20, offset)
                if flags & NEEDS_CSUM
                else bytes(10)
            )
            self.tx.send(hdr + self.eth + bytes(outer / Raw(inner)))
            self.sent += 1
            self.sent_partial += flags & NEEDS_CSUM

    def stop(self) -> None:
        self.done.set()
        self.join(5)
        self.rx.close()
        self.tx.close()


def test_tun_end_to_end_http_through_an_encapsulating_director(trio: Lab, statedir: str) -> None:
    ok(rs(trio, "rs1", statedir, "start", "--vip", VIP, "--mode", "tun"))
    enc = Encapsulator(trio)
    enc.start()
    try:
        trio.http_server("rs1", 80)
        with trio.capture("client", "lan", f"tcp and src host {VIP}") as cap:
            for _ in range(3):
                assert trio.http_get("client", f"http://{VIP}/").startswith(f"rs1 {CIP} ")
        rs_mac = trio.mac("rs1", "lan")
        replies = cap.packets()
        assert replies and all(p[Ether].src == rs_mac for p in replies)  # not via the director
        assert enc.sent >= 3 * 5  # SYN, ACK, request, FIN, ACK... per connection
        assert counters(trio, statedir)["decapsulated"] == enc.sent
    finally:
        enc.stop()
        ok(rs(trio, "rs1", statedir, "stop", "--vip", VIP))


def test_tun_end_to_end_with_partial_checksums_carried_through(
    trio_offload: Lab, statedir: str
) -> None:
    """Offloads on: the client's TCP checksums are partial, the director keeps them so in the
    tunnel, and the decapsulator hands them to the stack as partial (CHECKSUM_PARTIAL)."""
    lab = trio_offload
    ok(rs(lab, "rs1", statedir, "start", "--vip", VIP, "--mode", "tun"))
    enc = Encapsulator(lab, partial=True)
    enc.start()
    try:
        lab.http_server("rs1", 80)
        for _ in range(3):
            assert lab.http_get("client", f"http://{VIP}/").startswith(f"rs1 {CIP} ")
        assert enc.sent >= 3 * 5 and enc.gso == 0
        assert enc.sent_partial >= 3 * 3  # SYN, request, ACKs... left partial by the client
        c = counters(lab, statedir)
        assert c["decapsulated"] == enc.sent
        assert c["decapsulated_csum_partial"] == enc.sent_partial
        assert sum(v for k, v in c.items() if k.startswith("dropped_")) == 0
    finally:
        enc.stop()
        ok(rs(lab, "rs1", statedir, "stop", "--vip", VIP))


@pytest.mark.parametrize("tun_type", ["ipip", "gue"])
def test_tun_partial_checksum_syn_is_answered(
    trio_offload: Lab, statedir: str, tun_type: str
) -> None:
    """An IPIP (or GUE) packet carrying a TCP SYN whose checksum is partial: on the wire the
    field holds only the pseudo-header sum, the skb is CHECKSUM_PARTIAL up to the real server,
    whose stack must take the decapsulated SYN as the kernel's own ipip would, and answer.
    The raw IPIP (UDP) socket filters the packet out, yet its presence still keeps the kernel
    from answering with ICMP protocol (port) unreachable."""
    lab = trio_offload
    port = 6080
    extra = ["--tun-type", "gue", "--tun-port", str(port)] if tun_type == "gue" else []
    ok(rs(lab, "rs1", statedir, "start", "--vip", VIP, "--mode", "tun", *extra))
    try:
        lab.http_server("rs1", 80)
        syn = bytes(IP(src=CIP, dst=VIP, flags="DF") / TCP(sport=41000, dport=80, flags="S"))
        inner, field = make_partial(syn, 6)
        if tun_type == "gue":
            gue = b"\x00\x04\x00\x00"  # version 0, proto_ctype 4, no flags
            udp = UDP(sport=50000, dport=port, chksum=0) / Raw(gue + inner)
            outer = bytes(IP(src=DIP, dst=RIP, flags="DF") / udp)
        else:
            outer = bytes(IP(src=DIP, dst=RIP, proto=4, flags="DF") / Raw(inner))
        l4 = 14 + len(outer) - len(inner) + 20  # the inner TCP header, from the Ethernet header
        with (
            lab.capture("client", "lan", f"tcp and src host {VIP}") as at_client,
            lab.capture("rs1", "lan", "ip proto 4 or udp") as at_rs,
            lab.capture("director", "lan", "icmp") as icmp,
        ):
            send_frame(lab, "director", "rs1", outer, VNET.pack(NEEDS_CSUM, 0, 0, 0, l4, field))
            deadline = time.monotonic() + 3
            while not at_client.packets() and time.monotonic() < deadline:
                time.sleep(0.05)
        answers = [p for p in at_client.packets() if TCP in p and p[TCP].dport == 41000]
        assert answers, "no answer to the SYN with a partial checksum"
        assert answers[0][IP].src == VIP and answers[0][TCP].flags == "SA"
        assert answers[0][Ether].src == lab.mac("rs1", "lan")
        # the frame really arrived partial: the field held the pseudo-header sum
        (seen,) = [bytes(p[Ether].payload) for p in at_rs.packets() if IP in p]
        assert seen[len(seen) - len(inner) + 36 : len(seen) - len(inner) + 38] == inner[36:38]
        assert TCP(bytes(syn)[20:]).chksum != struct.unpack("!H", inner[36:38])[0]
        assert not icmp.packets(), "the real server answered the tunnel packet with ICMP"
        c = counters(lab, statedir)
        assert c["decapsulated"] == 1
        assert c["decapsulated_csum_partial"] == 1
    finally:
        ok(rs(lab, "rs1", statedir, "stop", "--vip", VIP))


def test_tun_fragmented_ipip_is_reassembled_and_decapsulated_once(trio: Lab, statedir: str) -> None:
    """Outer IPIP fragments (IPVS fragments a tunnelled packet without DF) are reassembled by
    the kernel and taken from the raw socket; unfragmented packets, with or without DF, only
    from the AF_PACKET socket: each is decapsulated exactly once."""
    ok(rs(trio, "rs1", statedir, "start", "--vip", VIP, "--mode", "tun"))
    try:
        trio.udp_server("rs1", 53, bind=VIP)
        client = ClientSocket(trio, CIP, 40010)
        try:
            big = udp_to_vip(40010, b"f" * 3000)
            outer = IP(src=DIP, dst=RIP, proto=4, id=4242) / Raw(bytes(big))
            frags = fragment(outer, fragsize=1400)
            assert len(frags) == 3
            for f in frags:
                send_raw(trio, "director", bytes(f), RIP)
            assert client.reply() == (f"rs1 {CIP} 40010", VIP, 53)
            df = bytes(IP(src=DIP, dst=RIP, proto=4, flags="DF") / udp_to_vip(40010, b"d"))
            send_raw(trio, "director", df, RIP)
            assert client.reply() == (f"rs1 {CIP} 40010", VIP, 53)
            send_raw(trio, "director", ipip(udp_to_vip(40010, b"n")), RIP)  # no DF
            assert client.reply() == (f"rs1 {CIP} 40010", VIP, 53)
            assert client.nothing()
        finally:
            client.close()
        c = counters(trio, statedir)
        assert c["decapsulated"] == 3
        assert c["decapsulated_bytes"] == len(bytes(big)) + 2 * len(bytes(udp_to_vip(0, b"d")))
        assert sum(v for k, v in c.items() if k.startswith("dropped_")) == 0
    finally:
        ok(rs(trio, "rs1", statedir, "stop", "--vip", VIP))


def test_tun_ipip_over_another_link_type_comes_from_the_raw_socket(
    trio: Lab, statedir: str
) -> None:
    """IPIP arriving over a link without an Ethernet header (here a TUN device; WireGuard
    or PPP alike) is not the AF_PACKET socket's: the raw socket takes it, even with DF."""
    from pylvs.realserver import decap

    ok(rs(trio, "rs1", statedir, "start", "--vip", VIP, "--mode", "tun"))
    try:
        trio.udp_server("rs1", 53, bind=VIP)
        fd = in_netns(trio.ns("rs1"), lambda: decap.open_tun("pylvsx"))
        try:
            trio.sh("rs1", "echo 0 > /proc/sys/net/ipv4/conf/pylvsx/rp_filter")
            trio.sh("rs1", "ip link set pylvsx up")
            client = ClientSocket(trio, CIP, 40020)
            try:
                pkt = bytes(IP(src=DIP, dst=RIP, proto=4, flags="DF") / udp_to_vip(40020))
                os.write(fd, bytes(10) + pkt)  # no virtio_net_hdr flags
                assert client.reply() == (f"rs1 {CIP} 40020", VIP, 53)
                assert client.nothing()
            finally:
                client.close()
        finally:
            os.close(fd)
        c = counters(trio, statedir)
        assert c["decapsulated"] == 1
        assert sum(v for k, v in c.items() if k.startswith("dropped_")) == 0
    finally:
        ok(rs(trio, "rs1", statedir, "stop", "--vip", VIP))


# -- the header translation, without a namespace ----------------------------------------
def test_decapsulate_moves_the_checksum_state_to_the_inner_packet() -> None:
    from pylvs.realserver import decap

    vip = socket.inet_aton(VIP)
    syn, field = make_partial(bytes(IP(src=CIP, dst=VIP) / TCP(sport=1, dport=80)), 6)
    outer = bytes(IP(src=DIP, dst=RIP, proto=4) / Raw(syn))
    head = bytes(24)  # where a virtio_net_hdr and an Ethernet header would be

    def run(pkt: bytes, vnet: tuple[int, ...], gue: bool = False) -> tuple[bytes, Any]:
        buf = bytearray(head + pkt)
        _s, _d, ecn, proto, off, end = decap.outer_ipv4(buf, 24, len(buf))
        if gue:
            off += 8
        v = (*vnet[:4], vnet[4] + 10, vnet[5])  # csum_start as AF_PACKET counts it, in buf
        start, stop, hdr = decap.decapsulate(buf, off, end, proto, vip, ecn, gue, v)
        assert bytes(buf[start:stop]) == syn
        return bytes(buf[start:stop]), VNET.unpack(hdr)

    partial = (NEEDS_CSUM, 0, 0, 0, 14 + 20 + 20, field)
    assert run(outer, partial)[1] == (NEEDS_CSUM, 0, 0, 0, 20, 16)
    # a GRO super-packet (gso_type TCPv4) stays one, the checksum moved along
    assert run(outer, (NEEDS_CSUM, 1, 88, 1400, 54, 16))[1] == (NEEDS_CSUM, 1, 0, 1400, 20, 16)
    assert run(outer, (0, 0, 0, 0, 0, 0))[1] == (0, 0, 0, 0, 0, 0)
    assert run(outer, (2, 0, 0, 0, 0, 0))[1] == (2, 0, 0, 0, 0, 0)  # DATA_VALID passed on
    with pytest.raises(decap.Drop, match="dropped_inner_malformed"):
        run(outer, (NEEDS_CSUM, 0, 0, 0, 14 + 20 + 20 + 30, 16))  # beyond the inner packet

    gue = bytes(IP(src=DIP, dst=RIP) / UDP(sport=5, dport=6) / Raw(b"\x00\x04\x00\x00" + syn))
    into_inner = (NEEDS_CSUM, 0, 0, 0, 14 + 20 + 8 + 4 + 20, field)
    assert run(gue, into_inner, gue=True)[1] == (NEEDS_CSUM, 0, 0, 0, 20, 16)
    # the outer UDP checksum was the partial one: the inner packet is complete
    assert run(gue, (NEEDS_CSUM, 0, 0, 0, 14 + 20, 6), gue=True)[1] == (0, 0, 0, 0, 0, 0)
    # CHECKSUM_UNNECESSARY over GUE was about the outer UDP checksum
    assert run(gue, (2, 0, 0, 0, 0, 0), gue=True)[1] == (0, 0, 0, 0, 0, 0)
    # remote checksum offload becomes a partial checksum (fou's default)
    rem = bytes((0x02, 4)) + struct.pack("!HIHH", 0x0001, 0x80000000, 20, 36)
    rgue = bytes(IP(src=DIP, dst=RIP) / UDP(sport=5, dport=6) / Raw(rem + syn))
    assert run(rgue, (0, 0, 0, 0, 0, 0), gue=True)[1] == (NEEDS_CSUM, 0, 0, 0, 20, 16)


def test_outer_header_checks_of_the_packet_socket_path() -> None:
    from pylvs.realserver import decap

    pkt = bytearray(bytes(IP(src=DIP, dst=RIP, proto=4) / Raw(b"x" * 30)))
    padded = pkt + bytes(6)  # Ethernet padding is not part of the packet
    src, dst, _ecn, proto, off, end = decap.outer_ipv4(padded, 0, len(padded))
    assert (src, dst, proto, off, end) == (0x0A000001, 0x0A00000B, 4, 20, len(pkt))
    bad = bytearray(pkt)
    bad[8] ^= 1  # TTL changed, checksum not
    with pytest.raises(decap.Drop, match="dropped_outer_bad_checksum"):
        decap.outer_ipv4(bad, 0, len(bad))
    with pytest.raises(decap.Drop, match="dropped_outer_malformed"):
        decap.outer_ipv4(pkt, 0, len(pkt) - 1)  # truncated
    for martian in ("0.1.2.3", "224.0.0.1", "255.255.255.255"):
        m = bytes(IP(src=martian, dst=RIP, proto=4) / Raw(b"x"))
        with pytest.raises(decap.Drop, match="dropped_outer_malformed"):
            decap.outer_ipv4(m, 0, len(m))
    udp = bytearray(bytes(IP(src=DIP, dst=RIP) / UDP(sport=5, dport=6) / Raw(b"gue!")))
    assert decap.outer_udp(udp, 20, len(udp), 0x0A000001, 0x0A00000B, True) == (28, len(udp))
    udp[-1] ^= 0xFF
    with pytest.raises(decap.Drop, match="dropped_outer_bad_checksum"):
        decap.outer_udp(udp, 20, len(udp), 0x0A000001, 0x0A00000B, True)
    # not verified when the kernel vouched for it (DATA_VALID) or it is partial
    assert decap.outer_udp(udp, 20, len(udp), 0x0A000001, 0x0A00000B, False) == (28, len(udp))
