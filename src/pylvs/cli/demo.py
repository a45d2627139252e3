"""``pylvs demo``: the engine on simulated traffic, no sockets, no root.

It builds three virtual services (wrr, wlc, persistent sh), replays a stream
of simulated client connections through the engine with a simulated clock,
and prints the table with the connection counts and rates the engine keeps.
Until the proxy data plane exists this is the README's first command.
"""

from __future__ import annotations

import argparse
import random
from ipaddress import IPv4Address, ip_address

from pylvs.core.conn import Conn
from pylvs.core.engine import Engine
from pylvs.core.model import SVC_F_PERSISTENT, DestSpec, Fwd, Proto, ServiceKey, ServiceSpec
from pylvs.core.proto_tcp import TH_ACK, TH_FIN, TH_SYN

SERVICES = [
    (ServiceKey.inet(Proto.TCP, "10.0.0.1", 80), "wrr", 0, [(1, 3), (2, 2), (3, 1)]),
    (ServiceKey.inet(Proto.TCP, "10.0.0.1", 443), "wlc", 0, [(4, 1), (5, 1)]),
    (ServiceKey.inet(Proto.TCP, "10.0.0.2", 80), "sh", SVC_F_PERSISTENT, [(6, 1), (7, 1)]),
]


def build() -> Engine:
    e = Engine()
    for key, sched, flags, dests in SERVICES:
        e.table.add_service(ServiceSpec(key, sched, flags, 300 if flags else 0))
        for host, weight in dests:
            e.table.add_dest(
                key, DestSpec(ip_address(f"192.168.10.{host}"), 8080, Fwd.MASQ, weight)
            )
    return e


def simulate(e: Engine, seconds: int, rate: int, seed: int) -> list[Conn]:
    rnd = random.Random(seed)
    live: list[tuple[float, Conn]] = []
    opened: list[Conn] = []
    now = 0.0
    step = 1.0 / rate
    e.tick(now)
    for i in range(seconds * rate):
        now = i * step
        key = SERVICES[rnd.randrange(len(SERVICES))][0]
        assert key.addr is not None
        client = IPv4Address(0xC6336400 + rnd.randrange(200))  # 198.51.100.0/24
        cport = 1024 + (i % 60000)
        r = e.packet_in(key.protocol, client, cport, key.addr, key.port, now, flags=TH_SYN, size=60)
        if isinstance(r, Conn):
            e.packet_in(key.protocol, client, cport, key.addr, key.port, now, flags=TH_ACK, size=52)
            live.append((now + rnd.expovariate(1 / 3.0), r))
            opened.append(r)
        still = []
        for end, c in live:
            if end <= now and c.alive:
                _, ca, cp, va, vp, _ = (0, *c.endpoints()[:4], 0)
                e.packet_in(key.protocol, ca, cp, va, vp, now, flags=TH_FIN | TH_ACK, size=52)
            else:
                still.append((end, c))
        live = still
        e.tick(now)
    return opened


def report(e: Engine) -> str:
    lines = [
        f"{'virtual service / real server':<34}{'weight':>7}{'active':>8}{'inact':>7}"
        f"{'conns':>8}{'cps':>6}"
    ]
    for svc in e.table:
        est = e.est.get(svc)
        cps = est.rates().cps if est else 0
        lines.append(
            f"TCP {svc.addr}:{svc.port} {svc.sched_name:<14}{'':>7}{'':>8}{'':>7}"
            f"{svc.stats.conns:>8}{cps:>6}"
        )
        for d in svc.destinations:
            dest_est = e.est.get(d)
            dcps = dest_est.rates().cps if dest_est else 0
            lines.append(
                f"  -> {d.addr}:{d.port:<14}{d.weight:>10}{d.activeconns:>8}"
                f"{d.inactconns:>7}{d.stats.conns:>8}{dcps:>6}"
            )
    lines.append(f"connection entries: {len(e.conns)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="pylvs demo", description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=20, help="simulated seconds (default 20)")
    ap.add_argument("--rate", type=int, default=200, help="new connections per second")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    if args.seconds < 1 or args.rate < 1:
        ap.error("--seconds and --rate must be positive")
    e = build()
    simulate(e, args.seconds, args.rate, args.seed)
    print(report(e))
    return 0
