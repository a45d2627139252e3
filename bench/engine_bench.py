"""Engine benchmark: scheduling decisions/s, connection-table rates and memory.

Run on demand:  .venv/bin/python bench/engine_bench.py [--entries 1000000]

- decisions/s for every scheduler at 10 and 1,000 real servers (a fresh
  client address and port per decision, so hashing schedulers do real work;
  for the least-connection family the counters vary across servers);
- connection-table insert rate (``ConnTable.new``: bind + hash + timer) and
  lookup rate (``ConnTable.get`` on hits) with 1,000,000 entries;
- memory per connection entry at 1,000,000 entries (RSS growth, everything
  an entry costs: object, key, index slot, timer-wheel slot).

Targets (issue 2): >= 200,000 decisions/s for rr, wrr, sh, dh, mh at any size;
<= 300 bytes per entry at 1M entries; >= 1,000,000 lookups/s.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import time
from collections.abc import Callable
from ipaddress import IPv4Address

from pylvs.core.conn import ConnTable, conn_key
from pylvs.core.model import Packet, Proto
from pylvs.sched import base
from pylvs.testing import builders

TARGET_DECISIONS = 200_000
TARGET_BYTES = 300
TARGET_LOOKUPS = 1_000_000
FAST = ("rr", "wrr", "sh", "dh", "mh")


def rate(fn: Callable[[int], None], n: int, min_time: float = 0.4) -> float:
    """Operations per second of ``fn(n)``, repeated until ``min_time`` passed; best of 3."""
    best = 0.0
    for _ in range(3):
        done = 0
        t0 = time.perf_counter()
        while True:
            fn(n)
            done += n
            dt = time.perf_counter() - t0
            if dt >= min_time:
                break
        best = max(best, done / dt)
    return best


def decisions(sched: str, ndests: int, clients: int = 4096) -> float:
    """Decisions/s with ``clients`` distinct client address:port pairs, cycled."""
    rnd = random.Random(7)
    svc = builders.service(sched)
    for i in range(ndests):
        d = builders.add(svc, str(IPv4Address(0x0A010000 + i)), 80, weight=1 + i % 5)
        d.activeconns = rnd.randrange(50)
        d.inactconns = rnd.randrange(200)
    pkts = [
        Packet(
            Proto.TCP,
            IPv4Address(0xC0000000 + rnd.randrange(1 << 24)),
            1024 + i % 60000,
            IPv4Address(0x0A000001 + rnd.randrange(64)),
            80,
        )
        for i in range(clients)
    ]
    schedule = svc.sched.schedule  # type: ignore[union-attr]

    def run(n: int) -> None:
        for p in pkts:
            schedule(svc, p, 0.0)

    return rate(run, clients)


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def conn_table(entries: int) -> tuple[float, float, float]:
    svc = builders.service("rr")
    dest = builders.add(svc, "10.1.0.1", 80, fwd=builders.Fwd.DROUTE)
    vip = IPv4Address("10.0.0.1").packed
    keys = [
        conn_key(Proto.TCP, (0xC0000000 + (i >> 14)).to_bytes(4, "big"), vip, 1024 + i % 16384, 80)
        for i in range(entries)
    ]
    gc.collect()
    before = rss_bytes()
    tab = ConnTable()
    new = tab.new
    t0 = time.perf_counter()
    for i, k in enumerate(keys):
        new(k, dest, 80, 0, i * 1e-6)
    insert_rate = entries / (time.perf_counter() - t0)
    gc.collect()
    per_entry = (rss_bytes() - before) / entries
    get = tab.get
    sample = keys[:: max(1, entries // 100_000)]

    def lookups(n: int) -> None:
        for k in sample:
            get(k)

    lookup_rate = rate(lookups, len(sample))
    assert len(tab) == entries and all(get(k) is not None for k in sample[:100])
    return insert_rate, lookup_rate, per_entry


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--sizes", default="10,1000")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    ok = True
    print("decisions/s; 4,096 clients cycled (clients come back, as in real traffic)")
    print(f"{'scheduler':<10}" + "".join(f"{f'{n} dests':>16}" for n in sizes) + "   target")
    for name in base.names():
        row = [decisions(name, n) for n in sizes]
        target = f">= {TARGET_DECISIONS:,}" if name in FAST else "-"
        if name in FAST and min(row) < TARGET_DECISIONS:
            ok = False
            target += "  MISSED"
        print(f"{name:<10}" + "".join(f"{r:>14,.0f}/s" for r in row) + f"   {target}")
    print("\nhashing schedulers with 300,000 distinct clients (every decision a new client)")
    for name in ("sh", "dh", "mh"):
        row = [decisions(name, n, clients=300_000) for n in sizes]
        print(f"{name:<10}" + "".join(f"{r:>14,.0f}/s" for r in row))
    ins, look, mem = conn_table(args.entries)
    print(f"\nconnection table with {args.entries:,} entries")
    print(f"  insert  {ins:>14,.0f}/s")
    print(
        f"  lookup  {look:>14,.0f}/s   target >= {TARGET_LOOKUPS:,}"
        + ("" if look >= TARGET_LOOKUPS else "  MISSED")
    )
    print(
        f"  memory  {mem:>14,.0f} bytes/entry   target <= {TARGET_BYTES}"
        + ("" if mem <= TARGET_BYTES else "  MISSED")
    )
    ok = ok and look >= TARGET_LOOKUPS and mem <= TARGET_BYTES
    print("\nall targets met" if ok else "\nsome targets missed")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
