"""Malformed frames at a running packet data plane: dropped, counted, never a crash.

The client's namespace writes raw frames (AF_PACKET) at the director's MAC:
truncated headers, lying length fields, bad header checksums, odd protocols,
fragments, random bytes.  Afterwards the daemon is alive, the drop counters
(GET /v1/dataplane) moved, and HTTP through the VIP still works.
"""

from __future__ import annotations

import json
import os
import random
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab import Lab, Topology, require_root

VIP = "10.0.0.100"


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    require_root("nft", "curl")
    topo = Topology(
        nodes=["client", "director", "rs1"],
        lans={
            "ext": ["client:10.0.0.2/24", "director:10.0.0.1/24"],
            "int": ["director:192.168.10.1/24", "rs1:192.168.10.11/24"],
        },
        routes={"client": ["default via 10.0.0.1"], "rs1": ["default via 192.168.10.1"]},
        sysctls={"director": {"net.ipv4.ip_forward": "1"}},
    )
    with Lab(topo) as lab:
        lab.sh("director", f"ip addr add {VIP}/32 dev ext")
        lab.http_server("rs1", port=80, name="rs1")
        yield lab


def api(sock: str, path: str) -> dict[str, object]:
    out = subprocess.run(
        ["curl", "-sf", "--unix-socket", sock, f"http://pylvsd{path}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    data = json.loads(out)
    assert isinstance(data, dict)
    return data


def frames(dst_mac: bytes, src_mac: bytes) -> list[bytes]:
    """A catalogue of broken frames, plus seeded random garbage."""
    eth = dst_mac + src_mac + b"\x08\x00"
    vip = socket.inet_aton(VIP)
    cip = socket.inet_aton("10.0.0.2")

    def ip(
        proto: int, payload: bytes, tot: int | None = None, ihl: int = 5, frag: int = 0
    ) -> bytes:
        tot = 20 + len(payload) if tot is None else tot
        h = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, tot, 1, frag, 64, proto, 0, cip, vip)
        s = sum(struct.unpack("!10H", h))
        s = (s & 0xFFFF) + (s >> 16)
        s = (s & 0xFFFF) + (s >> 16)
        h = h[:10] + struct.pack("!H", ~s & 0xFFFF) + h[12:]
        return h + payload

    syn = struct.pack("!HHIIBBHHH", 40000, 80, 1, 0, 0x50, 0x02, 65535, 0, 0)
    out = [
        eth,  # no IP header at all
        eth + b"\x45\x00",  # truncated IP header
        eth + ip(6, syn)[:30],  # truncated TCP header
        eth + ip(6, syn, tot=400),  # total length beyond the frame
        eth + ip(6, syn, tot=10),  # total length below the header
        eth + ip(6, syn, ihl=3),  # header length below 20
        eth + ip(6, syn, ihl=15),  # header length beyond the packet
        eth + ip(6, syn)[:10] + b"\x00\x00" + ip(6, syn)[12:],  # bad header checksum
        eth + ip(6, syn[:12] + b"\x10" + syn[13:]),  # data offset 1 word
        eth + ip(6, syn[:12] + b"\xf0" + syn[13:]),  # data offset beyond the segment
        eth + ip(17, b"\x00\x35"),  # truncated UDP header
        eth + ip(253, b"experimental"),  # odd protocol
        eth + ip(6, syn, frag=0x2000),  # first fragment
        eth + ip(6, b"x" * 24, frag=0x0003),  # later fragment
        eth + ip(1, b"\x03\x04\x00\x00\x00\x00\x05\xdc" + b"\x45" * 10),  # ICMP, inner cut
        eth[:12] + b"\x86\xdd" + b"\x60" + bytes(10),  # truncated IPv6
        eth[:12] + b"\x08\x06" + bytes(8),  # truncated ARP
        eth[:12] + b"\x81\x00" + b"\x00",  # truncated VLAN tag
    ]
    rnd = random.Random(5)
    for _ in range(300):
        n = rnd.randrange(14, 200)
        out.append(eth + bytes(rnd.randrange(256) for _ in range(n)))
    return out


def test_malformed_frames_are_counted_and_forwarding_survives(lab: Lab, tmp_path: Path) -> None:
    sock = str(tmp_path / "pylvsd.sock")
    env = dict(os.environ, PYLVS_SOCKET=sock)
    log = open(tmp_path / "pylvsd.log", "w")  # noqa: SIM115
    d = lab.popen(
        "director",
        [
            *(sys.executable, "-m", "pylvs.daemon.main", "--dataplane", "packet"),
            *("--interface", "ext", "--interface", "int", "--socket", sock),
        ],
        stdout=log,
        stderr=log,
    )

    def adm(*args: str) -> None:
        r = subprocess.run(
            [sys.executable, "-m", "pylvs.cli.pylvsadm", *args],
            env=env,
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0, (args, r.stderr)

    try:
        deadline = time.monotonic() + 20
        while not os.path.exists(sock) and time.monotonic() < deadline:
            assert d.poll() is None, (tmp_path / "pylvsd.log").read_text()
            time.sleep(0.05)
        time.sleep(0.2)
        adm("-A", "-t", f"{VIP}:80", "-s", "rr")
        adm("-a", "-t", f"{VIP}:80", "-r", "192.168.10.11:80", "-m")
        assert lab.http_get("client", f"http://{VIP}/").startswith("rs1 10.0.0.2 ")
        before = api(sock, "/v1/dataplane")["counters"]
        assert isinstance(before, dict)

        dst = bytes.fromhex(lab.mac("director", "ext").replace(":", ""))
        src = bytes.fromhex(lab.mac("client", "ext").replace(":", ""))
        with lab.socket("client", socket.AF_PACKET, socket.SOCK_RAW, 0) as raw:
            raw.bind(("ext", 0))
            for f in frames(dst, src):
                raw.send(f if len(f) >= 14 else f + bytes(14 - len(f)))
        time.sleep(0.5)

        assert d.poll() is None, "pylvsd died on malformed frames"
        after = api(sock, "/v1/dataplane")["counters"]
        assert isinstance(after, dict)
        drops = {k: v - before.get(k, 0) for k, v in after.items() if k.startswith("drop_")}
        moved = {k: v for k, v in drops.items() if v}
        assert sum(moved.values()) >= 10, f"drops not counted: {moved}"
        for reason in ("drop_short_ip", "drop_bad_len", "drop_bad_ihl", "drop_ip_csum"):
            assert moved.get(reason), f"{reason} not counted: {moved}"
        assert not after.get("exception"), "a frame raised inside the forwarder"
        assert lab.http_get("client", f"http://{VIP}/").startswith("rs1 10.0.0.2 ")
    finally:
        d.terminate()
        d.wait(10)
        log.close()
    assert d.returncode == 0, (tmp_path / "pylvsd.log").read_text()
    r = lab.run("director", ["nft", "list", "table", "inet", "pylvs"])
    assert r.returncode != 0, "the nftables table outlived pylvsd"
