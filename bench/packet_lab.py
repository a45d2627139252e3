"""Lab plumbing for ``bench/packet_modes``: topologies, pylvsd, real servers, iperf3.

Two topologies, built with ``tests.lab`` (network namespaces, veth pairs, bridges):

- ``flat`` (DR, TUN; the seeds' DR experiment, everything on one subnet): one bridged LAN
  ``lan`` with client 10.0.0.2, director 10.0.0.1 (+ VIP 10.0.0.100/32), rs1 10.0.0.11.
  rs1 answers the client directly.  The direct path is client -> 10.0.0.11 over the bridge.
- ``routed`` (NAT, FULLNAT): client 10.0.0.2 --ext-- director 10.0.0.1 (+ VIP/32) /
  192.168.10.1 (+ FULLNAT local address 192.168.10.2) --int-- rs1 192.168.10.11, whose
  default route is the director.  The direct path is client -> 192.168.10.11 through the
  director's kernel as a plain IP router (pylvsd not running).

Measurements are iperf3 runs from the client, each against a fresh ``iperf3 -s -1`` on rs1:
TCP throughput as received (Gbit/s), and 64-byte UDP at ``-b 0`` (packets/s that reached
the server, and the share lost).  Every failure raises ``Failed`` with a one-line reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
for _p in (REPO, REPO / "src"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from tests.lab import Lab, LabError, Topology  # noqa: E402
from tests.lab.netns import stop_process  # noqa: E402

from pylvs.cli.client import DaemonStartError, stop_daemon, wait_for_daemon  # noqa: E402

VIP = "10.0.0.100"
PORT = 5201
LADDR = "192.168.10.2"
UDP_LEN = 64


class Failed(Exception):
    """This measurement (or this whole mode) could not be made; the message says why."""


@dataclass(frozen=True)
class Mode:
    """A forwarding method: its topology and the pylvsadm forwarding flag."""

    name: str
    topology: str
    flag: str
    realserver: str = ""  # ``pylvs realserver --mode`` on rs1 ("" = none needed)


MODES = {
    "dr": Mode("dr", "flat", "-g", "dr"),
    "nat": Mode("nat", "routed", "-m"),
    "tun": Mode("tun", "flat", "-i", "tun"),
    "fullnat": Mode("fullnat", "routed", "--fullnat"),
}

DIRECT_PATH = {
    "flat": "client -> rs1 10.0.0.11 on one bridged LAN (client, director, rs1), no director",
    "routed": "client -> rs1 192.168.10.11 via the director's kernel as a plain IP router "
    "(ip_forward=1, pylvsd not running)",
}


def topology(kind: str, offload: bool) -> Topology:
    """The ``flat`` (one LAN) or ``routed`` (ext + int) lab description."""
    director_sysctls = {"director": {"net.ipv4.ip_forward": "1"}}
    if kind == "flat":
        return Topology(
            nodes=["client", "director", "rs1"],
            lans={
                "lan": [
                    "client:10.0.0.2/24",
                    f"director:10.0.0.1/24,{VIP}/32",
                    "rs1:10.0.0.11/24",
                ]
            },
            sysctls=director_sysctls,
            offload=offload,
        )
    if kind == "routed":
        return Topology(
            nodes=["client", "director", "rs1"],
            lans={
                "ext": ["client:10.0.0.2/24", f"director:10.0.0.1/24,{VIP}/32"],
                "int": [f"director:192.168.10.1/24,{LADDR}/24", "rs1:192.168.10.11/24"],
            },
            routes={"client": ["default via 10.0.0.1"], "rs1": ["default via 192.168.10.1"]},
            sysctls=director_sysctls,
            offload=offload,
        )
    raise ValueError(f"unknown topology {kind!r}")


def rs1_address(lab: Lab, kind: str) -> str:
    return lab.addr("rs1", "lan" if kind == "flat" else "int")


def director_interfaces(lab: Lab, kind: str) -> list[str]:
    lans = ["lan"] if kind == "flat" else ["ext", "int"]
    return [lab.iface("director", lan) for lan in lans]


def client_lan(kind: str) -> str:
    return "lan" if kind == "flat" else "ext"


def offload_state(lab: Lab, node: str, lan: str) -> str:
    """What ``ethtool -k`` reports for the offloads that matter, e.g. "tx-csum on, tso on"."""
    try:
        r = lab.run(node, ["ethtool", "-k", lab.iface(node, lan)], timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"ethtool -k failed: {e}"
    if r.returncode != 0:
        return f"ethtool -k failed: {r.stderr.strip()}"
    wanted = {
        "tx-checksumming": "tx-csum",
        "rx-checksumming": "rx-csum",
        "tcp-segmentation-offload": "tso",
        "generic-segmentation-offload": "gso",
        "generic-receive-offload": "gro",
    }
    found = dict(re.findall(r"^([a-z-]+): (on|off)", r.stdout, re.M))
    return ", ".join(f"{short} {found.get(k, '?')}" for k, short in wanted.items())


def tail(path: Path, n: int = 3) -> str:
    """The last ``n`` non-blank lines of a log, joined on one line."""
    with contextlib.suppress(OSError):
        lines = [x.strip() for x in path.read_text(errors="replace").splitlines() if x.strip()]
        return " | ".join(lines[-n:])
    return ""


def python_env(**extra: str) -> dict[str, str]:
    """The environment for our Python tools: this tree's ``src`` first on the path."""
    env = dict(os.environ, **extra)
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH", "")])
    )
    return env


# --- the director -------------------------------------------------------------------------


@dataclass
class Director:
    """A running ``pylvsd --dataplane packet`` in the director namespace."""

    proc: subprocess.Popen[str]
    socket: str
    log: Path

    def alive(self) -> None:
        """Raise ``Failed`` if the daemon has exited."""
        if self.proc.poll() is not None:
            raise Failed(f"pylvsd exited with status {self.proc.returncode}: {tail(self.log)}")

    def adm(self, *args: str) -> None:
        """One pylvsadm (ipvsadm syntax) command against this daemon; ``Failed`` if refused."""
        argv = [sys.executable, "-m", "pylvs.cli.pylvsadm", *args]
        env = python_env(PYLVS_SOCKET=self.socket)
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env)
        if r.returncode != 0:
            why = (r.stderr or r.stdout).strip().splitlines()
            raise Failed(f"pylvsadm {' '.join(args)}: {why[-1] if why else r.returncode}")


@contextmanager
def pylvsd(lab: Lab, interfaces: list[str], extra: list[str]) -> Iterator[Director]:
    """Start pylvsd on ``interfaces`` in the director namespace; stopped (SIGTERM) on exit."""
    sock = str(lab.new_path("pylvsd", ".sock"))
    log = lab.new_path("pylvsd", ".log")
    argv = [sys.executable, "-m", "pylvs.daemon.main", "--dataplane", "packet"]
    for name in interfaces:
        argv += ["--interface", name]
    argv += ["--socket", sock, "--log-level", "warning", *extra]
    with open(log, "w") as out:
        proc = lab.popen("director", argv, stdout=out, stderr=out, env=python_env())
    try:
        try:
            wait_for_daemon(sock, proc, timeout=20)
        except DaemonStartError as e:
            raise Failed(f"{e}: {tail(log)}") from None
        yield Director(proc, sock, log)
    finally:
        stop_daemon(proc)


def configure(d: Director, mode: Mode, rip: str) -> None:
    """TCP and UDP virtual services VIP:5201 (iperf3 needs both) -> rip:5201 by ``mode``."""
    for proto in ("-t", "-u"):
        vs = f"{VIP}:{PORT}"
        d.adm("-A", proto, vs, "-s", "rr")
        d.adm("-a", proto, vs, "-r", f"{rip}:{PORT}", mode.flag)
        if mode.name == "fullnat":
            d.adm("--add-laddr", proto, vs, "-z", LADDR)


@contextmanager
def realserver(lab: Lab, node: str, mode: str) -> Iterator[None]:
    """``pylvs realserver start --vip VIP --mode dr|tun`` on ``node``; stopped on exit."""
    state = lab.tmpdir / "realserver"
    env = python_env(PYLVS_REALSERVER_DIR=str(state))
    base = [sys.executable, "-m", "pylvs.cli.main", "realserver"]
    r = lab.run(node, [*base, "start", "--vip", VIP, "--mode", mode], env=env, timeout=30)
    if r.returncode != 0:
        raise Failed(f"pylvs realserver start --mode {mode}: {(r.stderr or r.stdout).strip()}")
    try:
        yield
    finally:
        lab.run(node, [*base, "stop", "--vip", VIP], env=env, timeout=30)


# --- iperf3 -------------------------------------------------------------------------------


@contextmanager
def iperf3_server(lab: Lab, node: str, bind: str = "") -> Iterator[Path]:
    """A one-test ``iperf3 -s -1`` on ``node`` (bound to ``bind`` if given), listening when
    this yields its log file; always stopped."""
    log = lab.new_path("iperf3-s", ".log")
    argv = ["iperf3", "-s", "-1", "-p", str(PORT), *(["-B", bind] if bind else [])]
    with open(log, "w") as out:
        proc = lab.popen(node, argv, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 10
        while True:
            r = lab.run(node, ["ss", "-Hltn", f"sport = :{PORT}"], timeout=10)
            if r.stdout.strip():
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise Failed(f"iperf3 -s did not start: {tail(log)}")
            time.sleep(0.05)
        yield log
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
    finally:
        stop_process(proc)


def iperf3_client(lab: Lab, target: str, duration: int, bind: str, *args: str) -> dict[str, Any]:
    """Run one iperf3 client test from the client node against ``target`` (the server on
    rs1 bound to ``bind``, "" = any address); its JSON report."""
    argv = ["iperf3", "-c", target, "-p", str(PORT), "-t", str(duration), "-J"]
    argv += ["--connect-timeout", "3000", *args]
    with iperf3_server(lab, "rs1", bind) as log:
        try:
            r = lab.run("client", argv, timeout=duration + 30)
        except subprocess.TimeoutExpired:
            r = None
    server = [x for x in tail(log, 20).split(" | ") if "error" in x]
    said = f" (iperf3 -s: {server[-1]})" if server else ""
    what = f"iperf3 {' '.join(args) or 'TCP'}"
    if r is None:
        raise Failed(f"{what} hung (no result {duration + 30} s after start){said}")
    out: dict[str, Any] = {}
    with contextlib.suppress(ValueError):
        out = json.loads(r.stdout)
    if r.returncode != 0 or "error" in out:
        why = out.get("error") or r.stderr.strip()[-200:] or f"exit status {r.returncode}"
        raise Failed(f"{what}: {why}{said}")
    return out


def tcp_gbps(lab: Lab, target: str, duration: int, bind: str = "") -> dict[str, float]:
    """TCP, one stream: ``tcp`` Gbit/s as the server received them, ``retr`` segments the
    sender retransmitted per second, ``rtt`` the sender's mean smoothed RTT in ms."""
    out = iperf3_client(lab, target, duration, bind)
    try:
        end = out["end"]
        sent = end["sum_sent"]
        figures = {
            "tcp": float(end["sum_received"]["bits_per_second"]) / 1e9,
            "retr": float(sent.get("retransmits", 0)) / max(float(sent["seconds"]), 1e-9),
        }
        rtt = end["streams"][0]["sender"].get("mean_rtt")
    except (KeyError, IndexError, TypeError, ValueError):
        raise Failed("iperf3 TCP: no sum_received/sum_sent in its report") from None
    if isinstance(rtt, int | float):
        figures["rtt"] = rtt / 1000
    return figures


def udp_rate(lab: Lab, target: str, duration: int, bind: str = "") -> dict[str, float]:
    """64-byte UDP at full speed: ``udp`` packets/s that reached the server, ``loss`` the
    percentage of sent packets that did not.

    A DR/TUN real server must bind the VIP (``bind``): iperf3 connect()s its UDP socket to
    the client, and from a wildcard socket the kernel would pick rs1's own address as the
    source of the replies, which the client (talking to the VIP) refuses."""
    out = iperf3_client(lab, target, duration, bind, "-u", "-l", str(UDP_LEN), "-b", "0")
    try:
        s = out["end"]["sum_received"] if "sum_received" in out["end"] else out["end"]["sum"]
        sent, lost, seconds = int(s["packets"]), int(s["lost_packets"]), float(s["seconds"])
    except (KeyError, TypeError, ValueError):
        raise Failed("iperf3 UDP: no packet counts in its report") from None
    if seconds <= 0:
        raise Failed("iperf3 UDP: report covers no time")
    lost = min(max(lost, 0), sent)
    return {"udp": (sent - lost) / seconds, "loss": 100.0 * lost / sent if sent else 100.0}


def build(kind: str, offload: bool) -> Lab:
    """Build a lab (the caller closes it); ``Failed`` if it cannot be built."""
    try:
        return Lab(topology(kind, offload)).start()
    except (LabError, OSError) as e:
        raise Failed(f"building the {kind} lab: {e}") from None
