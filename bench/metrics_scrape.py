"""/metrics scrape time: 1,000 virtual services x 10 real servers (the goal: < 100 ms).

The table is built directly in an Engine (no daemon), with traffic-sized counters
(connections, packets and bytes in the millions) and the rate estimator sampled,
so that every value is a realistic number.  It times, best of --rounds:

- ``exposition``: what GET /metrics answers (pylvs.web.metrics.IPVSCollector.exposition),
  in steady state, and the first scrape after a change of the table (series rebuilt);
- ``generate_latest``: prometheus_client's own text writer over the same collector
  (for comparison: it formats every sample in Python);
- with --http, a real scrape: pylvsd --dataplane none restores the same table from an
  ipvsadm -S file and /metrics is fetched over TCP (urllib), best of --rounds.

    .venv/bin/python bench/metrics_scrape.py
    .venv/bin/python bench/metrics_scrape.py --services 500 --servers 10 --http

Exit status 0 when the exposition (and the HTTP scrape, with --http) is under
--max-ms, 1 otherwise.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import urllib.request
from ipaddress import IPv4Address
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry

from pylvs.core.engine import Engine
from pylvs.core.model import DestSpec, Fwd, Proto, ServiceKey, ServiceSpec
from pylvs.daemon.ctl import Control
from pylvs.dataplane.none import NoDataPlane
from pylvs.web.events import Events
from pylvs.web.metrics import IPVSCollector


def vip(i: int) -> IPv4Address:
    return IPv4Address(0x0A000000 + i + 1)  # 10.0.0.1...


def rip(i: int, j: int) -> IPv4Address:
    return IPv4Address(0xC0A80000 + i * 16 + j + 1)  # 192.168.x.y


def build(services: int, servers: int, seed: int = 1) -> Engine:
    engine = Engine()
    t = engine.table
    for i in range(services):
        key = ServiceKey.inet(Proto.TCP, vip(i), 80)
        t.add_service(ServiceSpec(key, "wlc"))
        for j in range(servers):
            t.add_dest(key, DestSpec(rip(i, j), 8080, Fwd.MASQ, 1 + j % 5))
    rnd = random.Random(seed)
    now = 0.0
    engine.tick(now)  # estimators for every service and real server
    for round_ in range(3):  # traffic, then an estimator sample
        for svc in t:
            for d in svc.destinations:
                c = rnd.randrange(1, 5_000)
                for st in (d.stats, svc.stats, t.tot_stats):
                    st.conns += c
                    st.inpkts += c * 12
                    st.outpkts += c * 10
                    st.inbytes += c * 1_500
                    st.outbytes += c * 90_000
                d.activeconns = rnd.randrange(0, 300)
                d.inactconns = rnd.randrange(0, 3_000)
        now += 2.0
        engine.tick(now)
        del round_
    return engine


def rules_text(services: int, servers: int) -> str:
    lines = []
    for i in range(services):
        lines.append(f"-A -t {vip(i)}:80 -s wlc")
        lines += [f"-a -t {vip(i)}:80 -r {rip(i, j)}:8080 -m -w 1" for j in range(servers)]
    return "\n".join(lines) + "\n"


def best(fn: object, rounds: int) -> tuple[float, int]:
    assert callable(fn)
    times, size = [], 0
    for _ in range(rounds):
        t = time.perf_counter()
        size = len(fn())
        times.append(time.perf_counter() - t)
    return min(times), size


def http_scrape(services: int, servers: int, rounds: int) -> tuple[float, int]:
    from pylvs.testing.daemon import pylvsd

    with tempfile.TemporaryDirectory() as d:
        rules = Path(d) / "rules"
        rules.write_text(rules_text(services, servers))
        with pylvsd("--rules", str(rules), http=True) as daemon:
            url = f"http://{daemon.http}/metrics"

            def get() -> bytes:
                with urllib.request.urlopen(url, timeout=30) as r:
                    return bytes(r.read())

            get()  # the first scrape builds the label caches
            return best(get, rounds)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--services", type=int, default=1000)
    p.add_argument("--servers", type=int, default=10, help="real servers per service")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--max-ms", type=float, default=100.0)
    p.add_argument("--http", action="store_true", help="also scrape a real pylvsd over TCP")
    p.add_argument("--no-generate-latest", action="store_true")
    a = p.parse_args()

    t0 = time.perf_counter()
    engine = build(a.services, a.servers)
    control = Control(engine, NoDataPlane.policy, time.monotonic)
    events = Events()
    events.record("reload", "bench")
    c = IPVSCollector(
        control,
        dataplane="none",
        counters=lambda: {"drop_ttl": 3, "rx": 10, "relays": 0},
        events=events,
        version="bench",
    )
    print(
        f"table: {a.services} services x {a.servers} real servers, built in "
        f"{time.perf_counter() - t0:.1f} s"
    )
    first, size = best(c.exposition, 1)
    samples = sum(1 for line in c.exposition().splitlines() if not line.startswith(b"#"))
    print(f"first scrape (label caches built): {first * 1000:.1f} ms")
    ms, size = best(c.exposition, a.rounds)
    ms *= 1000
    print(f"exposition (GET /metrics):  {ms:7.1f} ms  {size / 1e6:.1f} MB  {samples} samples")
    ok = ms < a.max_ms
    # one real server edited: the table's generation moves, label texts are reused
    svc = next(iter(engine.table))
    spec = svc.destinations[0].spec()
    engine.table.edit_dest(svc.key, DestSpec(spec.addr, spec.port, spec.fwd_method, 7))
    changed, _ = best(c.exposition, 1)
    print(f"first scrape after a change:  {changed * 1000:5.1f} ms")
    if not a.no_generate_latest:
        reg = CollectorRegistry(auto_describe=False)
        reg.register(c)
        gl, gsize = best(lambda: generate_latest(reg), min(a.rounds, 2))
        print(f"generate_latest (compare):  {gl * 1000:7.1f} ms  {gsize / 1e6:.1f} MB")
    if a.http:
        hs, hsize = http_scrape(a.services, a.servers, a.rounds)
        print(f"HTTP scrape of pylvsd:      {hs * 1000:7.1f} ms  {hsize / 1e6:.1f} MB")
        ok = ok and hs * 1000 < a.max_ms
    print("OK" if ok else f"SLOW: above {a.max_ms:.0f} ms")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
