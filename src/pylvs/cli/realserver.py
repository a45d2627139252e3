"""``pylvs realserver start|stop|status``: a host as an LVS DR/TUN real server.

The seeds' ``realserver.sh`` as a command (see pylvs.realserver.setup for
what each mode changes).  Exit status: 0 done; for ``status`` 0 fully
configured, 3 not configured, 1 partially configured; 1 on a failure
(including not root), 2 on a bad argument (bad VIP, unknown device).
"""

from __future__ import annotations

import argparse
import sys

from pylvs.realserver import setup
from pylvs.realserver.setup import RealServerError, State, Status

PROG = "pylvs realserver"
EPILOG = """\
start  DR: the VIP on lo, arp_ignore=1/arp_announce=2 on all, lo and the devices
       (--dev, else every device but lo), strict rp_filter relaxed to 0.
       TUN: the same plus tunnel reception: tunl0 if the kernel has ipip, else a
       userspace decapsulator (raw IPIP socket, or UDP --tun-port for GUE) and a
       TUN device.  What start changed is recorded; start twice is an error.
stop   undo exactly what start recorded (nothing recorded: says so, exit 0)
status report; exit 0 configured, 3 not configured, 1 partially configured
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Configure this host (network namespace) as an LVS real server.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("action", choices=("start", "stop", "status"))
    p.add_argument("--vip", required=True, help="the virtual IP address (IPv4 or IPv6)")
    p.add_argument("--mode", choices=("dr", "tun"), help="forwarding method (needed by start)")
    p.add_argument(
        "--dev",
        action="append",
        default=[],
        metavar="DEV",
        help="receiving device(s) for the ARP/rp_filter settings (repeat or comma-separate; "
        "default: every device except lo)",
    )
    p.add_argument(
        "--tun-type", choices=("ipip", "gue"), default="ipip", help="tunnel encapsulation (TUN)"
    )
    p.add_argument("--tun-port", type=int, default=0, metavar="N", help="UDP port for GUE")
    return p


def _vip_line(st: State) -> str:
    where = f" in netns {st.netns}" if st.netns else ""
    tunnel = {
        "none": "",
        "kernel-ipip": ", kernel ipip on tunl0",
        "decap": f", userspace {st.tun_type} decapsulator",
    }[st.tunnel]
    return f"{st.vip} ({st.mode}{tunnel}){where}"


def render_start(st: State) -> str:
    lines = [f"{PROG}: started {_vip_line(st)}"]
    for a in st.addrs:
        lines.append(f"  {'added' if a.added else 'kept (already there)'} {a.prefix} on {a.dev}")
    for c in st.sysctls:
        lines.append(f"  {setup.sysctl_name(c.key)}: {c.previous} -> {c.value}")
    if st.tunl0_created:
        lines.append("  created tunl0")
    if st.decap_pid:
        lines.append(f"  decapsulator pid {st.decap_pid} on TUN device {st.decap_dev}")
    if len(lines) == 1:
        lines.append("  (everything was in place already)")
    return "\n".join(lines)


def render_stop(st: State) -> str:
    lines = [f"{PROG}: stopped {_vip_line(st)}"]
    if st.decap_pid:
        lines.append(f"  decapsulator pid {st.decap_pid} stopped, {st.decap_dev} removed")
    for a in st.addrs:
        if a.added:
            lines.append(f"  removed {a.prefix} from {a.dev}")
    for c in reversed(st.sysctls):
        if not (st.decap_dev and f"/{st.decap_dev}/" in c.key):  # gone with the device
            lines.append(f"  {setup.sysctl_name(c.key)}: {c.value} -> {c.previous}")
    return "\n".join(lines)


def render_status(s: Status) -> str:
    word = {0: "configured", 1: "partially configured", 3: "not configured"}[s.code]
    where = f" in netns {s.netns}" if s.netns else ""
    tunnel = "" if s.tunnel == "none" else f", tunnel {s.tunnel}"
    recorded = "recorded by start" if s.state is not None else "no start record"
    lines = [f"realserver {s.vip} (mode {s.mode}{tunnel}){where}: {word} ({recorded})"]
    for c in s.checks:
        lines.append(f"  [{'ok' if c.ok else 'no'}] {c.what}")
    if s.counters is not None:
        dropped = sum(v for k, v in s.counters.items() if k.startswith("dropped_"))
        lines.append(
            f"  counters: decapsulated {s.counters.get('decapsulated', 0)}, dropped {dropped}"
        )
        for k, v in s.counters.items():
            lines.append(f"    {k:<28} {v}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else argv
    try:
        a = build_parser().parse_args(args_in)
    except SystemExit as e:
        return int(e.code or 0)
    devs = [d for item in a.dev for d in item.split(",") if d]
    try:
        vip = setup.parse_vip(a.vip)
        if a.action == "start":
            if a.mode is None:
                raise RealServerError("start needs --mode dr|tun", 2)
            print(render_start(setup.start(vip, a.mode, devs, a.tun_type, a.tun_port)))
            return 0
        if a.action == "stop":
            st = setup.stop(vip)
            if st is None:
                print(f"{PROG}: nothing to stop for {vip} (no start record in this namespace)")
            else:
                print(render_stop(st))
            return 0
        s = setup.status(vip, a.mode, devs)
        print(render_status(s))
        return s.code
    except RealServerError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return e.code
    except OSError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
