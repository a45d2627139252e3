"""What the packet data plane needs to know of the host's network: links,
local addresses, routes (a userspace longest-prefix match over the main
table, cached per destination) and neighbours.

Read with iproute2's JSON output (``ip -j``) when the rules change and every
few seconds: the per-packet path only does dictionary lookups.  Neighbours
the kernel does not know yet are resolved by the data plane itself with ARP
(arp.py codecs) and learnt here.
"""

from __future__ import annotations

import json
import socket
import subprocess
from dataclasses import dataclass, field

ROUTE_CACHE_MAX = 65536


def ip_json(*args: str) -> list[dict[str, object]]:
    out = subprocess.run(
        ["ip", "-j", *args], capture_output=True, text=True, check=True, timeout=10
    ).stdout
    data = json.loads(out) if out.strip() else []
    return data if isinstance(data, list) else []


def mac_bytes(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


@dataclass
class Link:
    name: str
    index: int
    mac: bytes
    mtu: int
    addrs4: list[bytes] = field(default_factory=list)
    addrs6: list[bytes] = field(default_factory=list)


def links() -> dict[str, Link]:
    out: dict[str, Link] = {}
    for d in ip_json("addr", "show"):
        name = str(d.get("ifname", ""))
        mac = str(d.get("address", "") or "")
        link = Link(
            name,
            int(str(d.get("ifindex", 0))),
            mac_bytes(mac) if mac.count(":") == 5 else bytes(6),
            int(str(d.get("mtu", 1500))),
        )
        infos = d.get("addr_info", [])
        for a in infos if isinstance(infos, list) else []:
            fam, local = a.get("family"), a.get("local")
            if fam == "inet":
                link.addrs4.append(socket.inet_pton(socket.AF_INET, local))
            elif fam == "inet6":
                link.addrs6.append(socket.inet_pton(socket.AF_INET6, local))
        out[name] = link
    return out


@dataclass(frozen=True)
class Route:
    net: int
    plen: int
    dev: str
    gateway: bytes | None
    prefsrc: bytes | None
    metric: int


@dataclass(frozen=True)
class NextHop:
    """Where a packet to some address leaves: interface, on-link neighbour, source."""

    dev: str
    neighbour: bytes  # the address to resolve on ``dev`` (the gateway, or the destination)
    src: bytes | None


class Routes:
    """IPv4 main-table routes with a per-destination cache."""

    def __init__(self) -> None:
        self.table: list[Route] = []
        self.cache: dict[bytes, NextHop | None] = {}

    def load(self) -> None:
        table: list[Route] = []
        for r in ip_json("-4", "route", "show", "table", "main"):
            dst = str(r.get("dst", ""))
            if r.get("type", "unicast") not in ("unicast", None):
                continue
            if dst == "default":
                net, plen = 0, 0
            else:
                addr, _, bits = dst.partition("/")
                net = int.from_bytes(socket.inet_pton(socket.AF_INET, addr), "big")
                plen = int(bits) if bits else 32
            gw = r.get("gateway")
            src = r.get("prefsrc")
            table.append(
                Route(
                    net,
                    plen,
                    str(r.get("dev", "")),
                    socket.inet_pton(socket.AF_INET, str(gw)) if gw else None,
                    socket.inet_pton(socket.AF_INET, str(src)) if src else None,
                    int(str(r.get("metric", 0))),
                )
            )
        table.sort(key=lambda r: (-r.plen, r.metric))
        self.table = table
        self.cache.clear()

    def lookup(self, addr: bytes) -> NextHop | None:
        hit = self.cache.get(addr, False)
        if hit is not False:
            return hit  # type: ignore[return-value]
        a = int.from_bytes(addr, "big")
        found: NextHop | None = None
        for r in self.table:
            mask = ((1 << r.plen) - 1) << (32 - r.plen) if r.plen else 0
            if a & mask == r.net & mask:
                found = NextHop(r.dev, r.gateway or addr, r.prefsrc)
                break
        if len(self.cache) >= ROUTE_CACHE_MAX:
            self.cache.clear()
        self.cache[addr] = found
        return found


def neighbours() -> dict[tuple[str, bytes], bytes]:
    """The kernel's resolved IPv4 neighbours: (dev, address) -> MAC."""
    out: dict[tuple[str, bytes], bytes] = {}
    for n in ip_json("-4", "neigh", "show"):
        mac = n.get("lladdr")
        state = n.get("state", [])
        if not mac or (isinstance(state, list) and "FAILED" in state):
            continue
        out[(str(n.get("dev", "")), socket.inet_pton(socket.AF_INET, str(n.get("dst"))))] = (
            mac_bytes(str(mac))
        )
    return out
