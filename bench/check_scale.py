"""Health-check scale: N real servers with TCP_CHECK at delay_loop 1 s on one CheckRunner.

The real servers are N loopback listeners (addresses 127.0.0.1.. x ports 15900..,
e.g. 20 addresses x 50 ports for 1,000) in a child process that accepts and closes,
so that the CPU measured (getrusage of this process) is the checker's alone.  After a
warm-up longer than the warmup spread, it measures for --seconds:

- CPU: (user + system time) / wall time, in % of one core (the goal: below 50 %);
- checks run and checks per second (expected about N / delay_loop);
- missed rounds: checks that started a whole delay_loop or more after their planned time
  (the goal: none), and the largest lateness;
- failures and state changes (expected none: every listener answers).

    .venv/bin/python bench/check_scale.py                    # 1,000 servers, uvloop
    .venv/bin/python bench/check_scale.py --loop asyncio --servers 2000 --seconds 30

Exit status 0 when CPU < --max-cpu and no round was missed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import selectors
import socket
import subprocess
import sys
import time
from collections.abc import Hashable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from pylvs.check.runner import CheckRunner, ServerSpec
from pylvs.config.model import CheckerConf, Where

BASE_PORT = 15900


def raise_nofile(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))


def endpoints(servers: int, ports: int) -> list[tuple[str, int]]:
    addresses = -(-servers // ports)
    out = [(f"127.0.0.{a + 1}", BASE_PORT + p) for a in range(addresses) for p in range(ports)]
    return out[:servers]


def listen(servers: int, ports: int) -> None:
    """The child: accept and close on every endpoint until stdin closes."""
    raise_nofile(servers + 256)
    sel = selectors.DefaultSelector()
    socks = []
    for addr in endpoints(servers, ports):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(addr)
        s.listen(128)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        socks.append(s)
    sel.register(sys.stdin, selectors.EVENT_READ)
    print("ready", flush=True)
    while True:
        for key, _ in sel.select():
            if key.fileobj is sys.stdin:
                return
            lsock = key.fileobj
            assert isinstance(lsock, socket.socket)
            while True:
                try:
                    conn, _ = lsock.accept()
                except BlockingIOError:
                    break
                conn.close()


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def measure(args: argparse.Namespace) -> dict[str, float]:
    changes: list[tuple[Hashable, bool]] = []

    def on_change(key: Hashable, up: bool, weight: int | None, reason: str) -> None:
        changes.append((key, up))

    where = Where("bench", 0)
    specs = {
        (ip, port): ServerSpec(
            (
                CheckerConf(
                    "TCP_CHECK",
                    where,
                    ip,
                    port,
                    connect_timeout=2.0,
                    retry=1,
                    delay_before_retry=1.0,
                    delay_loop=args.delay_loop,
                    warmup=args.delay_loop,  # keepalived's default: spread over a round
                ),
            )
        )
        for ip, port in endpoints(args.servers, args.ports)
    }
    runner = CheckRunner(on_change)
    runner.start(specs)
    await asyncio.sleep(args.warmup)
    st = runner.stats
    checks0, fail0, missed0 = st.checks, st.failures, st.missed
    st.lateness_max = 0.0
    wall0, cpu0 = time.monotonic(), cpu_seconds()
    await asyncio.sleep(args.seconds)
    wall, cpu = time.monotonic() - wall0, cpu_seconds() - cpu0
    result = {
        "cpu_percent": 100.0 * cpu / wall,
        "checks": st.checks - checks0,
        "checks_per_s": (st.checks - checks0) / wall,
        "missed": st.missed - missed0,
        "lateness_max_ms": 1000.0 * st.lateness_max,
        "failures": st.failures - fail0,
        "changes": len(changes),
        "wall": wall,
    }
    await runner.stop()
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--servers", type=int, default=1000)
    p.add_argument("--ports", type=int, default=50)
    p.add_argument("--delay-loop", type=float, default=1.0)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--warmup", type=float, default=3.0, help="seconds before measuring")
    p.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    p.add_argument("--max-cpu", type=float, default=50.0)
    p.add_argument("--listen", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.listen:
        listen(args.servers, args.ports)
        return 0
    raise_nofile(args.servers * 2 + 256)
    child = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--listen",
            "--servers",
            str(args.servers),
            "--ports",
            str(args.ports),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        if child.stdout.readline().strip() != "ready":
            print("listeners did not start", file=sys.stderr)
            return 1
        if args.loop == "uvloop":
            import uvloop

            r = uvloop.run(measure(args))
        else:
            r = asyncio.run(measure(args))
    finally:
        if child.stdin is not None:
            child.stdin.close()
        child.wait(10)
    expected = args.servers / args.delay_loop
    print(
        f"{args.servers} real servers, TCP_CHECK, delay_loop {args.delay_loop:g} s, "
        f"{args.loop}, {r['wall']:.1f} s measured\n"
        f"  CPU              {r['cpu_percent']:.1f} % of one core (goal < {args.max_cpu:g} %)\n"
        f"  checks           {r['checks']:.0f} ({r['checks_per_s']:.0f}/s, about "
        f"{expected:.0f}/s expected)\n"
        f"  missed rounds    {r['missed']:.0f}   (largest lateness {r['lateness_max_ms']:.1f} ms)\n"
        f"  failures         {r['failures']:.0f}, state changes {r['changes']:.0f}"
    )
    good = r["cpu_percent"] < args.max_cpu and r["missed"] == 0 and r["failures"] == 0
    return 0 if good else 1


if __name__ == "__main__":
    raise SystemExit(main())
