"""The nftables table that keeps the director's own stack out of the way.

The packet data plane sees every frame on its interfaces through AF_PACKET
(packet taps run before netfilter), so the kernel must not also act on the
frames the data plane forwards:

- packets to a virtual service (VIP, protocol, port): with the VIP
  configured on the director, as the seeds do, the kernel would answer a
  SYN with a RST; after a service is deleted, the packets of its live
  connections (dropped by the data plane, as IPVS drops them) one by one;
- NAT replies from a real server (RIP, protocol, port) on their way to a
  client: with ip_forward on, the kernel would route them on un-rewritten;
  replies to the director's own addresses (health checks) are left alone;
- FULLNAT replies to a local address of the pool: no socket owns them, the
  kernel would reset them;
- ICMP errors from a NAT real server to a client: the data plane rewrites
  and forwards them (ip_vs_out_icmp), the kernel would forward them raw.

One table, ``inet pylvs``, in the prerouting hook at raw priority (before
connection tracking), replaced atomically on every rule change and deleted
on clean shutdown.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable

TABLE = "pylvs"
PROTO = {6: "tcp", 17: "udp", 132: "sctp"}

Triple = tuple[str, int, int]  # (address text, protocol, port)


def _elements(items: Iterable[Triple]) -> str:
    return ", ".join(f"{a} . {PROTO[p]} . {port}" for a, p, port in sorted(set(items)))


def ruleset(
    vips: Iterable[Triple],
    nat_rs: Iterable[Triple],
    laddrs: Iterable[str],
    flows: Iterable[tuple[str, int, str, int]] = (),
) -> str:
    """The table's text; ``flows`` are (client, port, VIP, port) of live connections
    whose service is gone (shielded one by one)."""
    v4 = [t for t in vips if ":" not in t[0]]
    v6 = [t for t in vips if ":" in t[0]]
    r4 = [t for t in nat_rs if ":" not in t[0]]
    r6 = [t for t in nat_rs if ":" in t[0]]
    a4 = sorted({t[0] for t in r4})
    l4 = sorted({a for a in laddrs if ":" not in a})
    l6 = sorted({a for a in laddrs if ":" in a})

    def tset(name: str, kind: str, items: list[Triple]) -> str:
        body = f"type {kind} . inet_proto . inet_service;"
        if items:
            body += f" elements = {{ {_elements(items)} }};"
        return f"  set {name} {{ {body} }}\n"

    def aset(name: str, kind: str, items: list[str]) -> str:
        body = f"type {kind};"
        if items:
            body += f" elements = {{ {', '.join(items)} }};"
        return f"  set {name} {{ {body} }}\n"

    return (
        f"table inet {TABLE}\n"
        f"delete table inet {TABLE}\n"
        f"table inet {TABLE} {{\n"
        + tset("vip4", "ipv4_addr", v4)
        + tset("vip6", "ipv6_addr", v6)
        + tset("rs4", "ipv4_addr", r4)
        + tset("rs6", "ipv6_addr", r6)
        + aset("laddr4", "ipv4_addr", l4)
        + aset("rsaddr4", "ipv4_addr", a4)
        + aset(
            "flow4",
            "ipv4_addr . inet_service . ipv4_addr . inet_service",
            [f"{c} . {cp} . {v} . {vp}" for c, cp, v, vp in sorted(set(flows))],
        )
        + aset("laddr6", "ipv6_addr", l6)
        + "  chain pre {\n"
        "    type filter hook prerouting priority raw; policy accept;\n"
        "    ip daddr . meta l4proto . th dport @vip4 drop\n"
        "    ip saddr . th sport . ip daddr . th dport @flow4 drop\n"
        "    ip6 daddr . meta l4proto . th dport @vip6 drop\n"
        "    ip daddr @laddr4 ip saddr . meta l4proto . th sport @rs4 drop\n"
        "    ip6 daddr @laddr6 ip6 saddr . meta l4proto . th sport @rs6 drop\n"
        "    ip saddr . meta l4proto . th sport @rs4 fib daddr type != local drop\n"
        "    ip6 saddr . meta l4proto . th sport @rs6 fib daddr type != local drop\n"
        "    ip saddr @rsaddr4 icmp type { destination-unreachable, source-quench,"
        " time-exceeded } fib daddr type != local drop\n"
        "  }\n"
        "}\n"
    )


def apply(text: str) -> None:
    r = subprocess.run(["nft", "-f", "-"], input=text, capture_output=True, text=True, timeout=10)
    if r.returncode != 0:
        raise RuntimeError(f"nft: {r.stderr.strip()}")


def remove() -> None:
    subprocess.run(
        ["nft", "delete", "table", "inet", TABLE], capture_output=True, text=True, timeout=10
    )
