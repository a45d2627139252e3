"""PING_CHECK: ICMP and ICMPv6 echo over a raw socket (root) and, in a private network
namespace where ping_group_range admits us, over an unprivileged ICMP datagram socket."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys

import pytest

from pylvs.check.ping import checksum, echo_request, parse_reply, ping, run
from tests.check.helpers import conf, require_root

NETNS_SCRIPT = """
import asyncio, json, sys, time
sys.path[:0] = {paths!r}
from pylvs.check.ping import ping
from tests.check.helpers import conf
async def main():
    out = {{}}
    for ip, mode in {cases!r}:
        t0 = time.monotonic()
        r = await ping(conf("PING_CHECK", ip, connect_timeout=0.5), mode=mode)
        out[ip + " " + mode] = [r.ok, r.reason, time.monotonic() - t0]
    print(json.dumps(out))
asyncio.run(main())
"""


def test_raw_echo_v4_and_v6() -> None:
    require_root("PING_CHECK over a raw socket")
    for ip in ("127.0.0.1", "::1"):
        res = asyncio.run(ping(conf("PING_CHECK", ip), mode="raw"))
        assert res.ok, res.reason
        assert asyncio.run(run(conf("PING_CHECK", ip))).ok  # auto: whatever works here


def test_in_a_namespace_datagram_sockets_and_silence() -> None:
    require_root("a network namespace")
    if not (shutil.which("unshare") and shutil.which("ip")):
        if os.environ.get("CI") == "true":
            pytest.fail("unshare and ip are required in CI")
        pytest.skip("unshare/ip missing")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    cases = [
        ("127.0.0.1", "dgram"),
        ("::1", "dgram"),
        ("10.99.99.99", "dgram"),  # no route
        ("10.98.0.77", "raw"),  # on a veth whose peer has no address: nobody answers
        ("10.98.0.77", "dgram"),
    ]
    code = NETNS_SCRIPT.format(paths=[os.path.join(root, "src"), root], cases=cases)
    sh = (
        "ip link set lo up && ip link add d0 type veth peer name d1 && ip link set d0 up && "
        "ip link set d1 up && "
        "ip addr add 10.98.0.1/24 dev d0 && "
        "echo '0 2147483647' > /proc/sys/net/ipv4/ping_group_range && "
        f'exec {sys.executable} -c "$0"'
    )
    out = subprocess.run(
        ["unshare", "--net", "sh", "-c", sh, code],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert out.returncode == 0, out.stderr
    results = json.loads(out.stdout)
    assert results["127.0.0.1 dgram"][0], results
    assert results["::1 dgram"][0], results
    ok, why, took = results["10.99.99.99 dgram"]
    assert not ok and "unreachable" in why.lower() and took < 0.4
    for mode in ("raw", "dgram"):
        ok, why, took = results[f"10.98.0.77 {mode}"]
        assert not ok and "no echo reply" in why, (mode, why)
        assert 0.45 < took < 1.0


def test_packets() -> None:
    pkt = echo_request(socket.AF_INET, 0x1234, 7)
    assert pkt[0] == 8 and checksum(pkt) == 0
    assert parse_reply(socket.AF_INET, b"\x00\x00\x00\x00\x12\x34\x00\x07", raw=False) == (
        0,
        0x1234,
        7,
    )
    ip_header = bytes([0x45]) + bytes(19)
    reply = ip_header + b"\x00\x00\x00\x00\x12\x34\x00\x07"
    assert parse_reply(socket.AF_INET, reply, raw=True) == (0, 0x1234, 7)
    assert parse_reply(socket.AF_INET6, b"\x81\x00", raw=True) is None
    v6 = echo_request(socket.AF_INET6, 1, 2)
    assert v6[0] == 128 and v6[2:4] == b"\0\0"  # the kernel checksums ICMPv6
