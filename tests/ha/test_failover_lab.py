"""Failover of a VRRP pair of packet directors with connection sync (issue 7's lab test).

Two directors d1 (priority 150) and d2 (priority 100) each run ``pylvsd --dataplane packet
--interface ... -f keepalived.conf`` with the same virtual servers (VIP:80 for short HTTP
connections, VIP:9000 for one long upload), one VRRP instance (version 3, advert_int 0.5)
holding the VIP, and keepalived's ``lvs_sync_daemon IF VI_1 id 7``, so the master's
connections are synced to the backup (IPVS sync protocol v1).  Topologies:

- DR: one bridged LAN ``lan``: client 10.0.0.2, d1 10.0.0.1, d2 10.0.0.3, rs1 10.0.0.11,
  rs2 10.0.0.12 (``pylvs realserver start --mode dr``: VIP on lo, ARP suppressed); VRRP
  and sync on ``lan``.
- NAT: ``ext`` (client 10.0.0.2, d1 10.0.0.1, d2 10.0.0.3, the VIP) and ``int`` (d1
  192.168.10.1, d2 192.168.10.3, rs1 .11, rs2 .12).  The real servers' default gateway
  192.168.10.254 is a second virtual_ipaddress (``dev int``) of the same instance, as
  keepalived NAT setups have it, so the replies follow the VIP; sync on ``int``.

The client streams random data at 200 kB/s to a sink on a real server through VIP:9000
(the sink acknowledges every read with its byte count and, at the end, the count and
SHA-256 of everything received) and opens 20 new HTTP connections per second to VIP:80
(3 s timeout each).  Then the master dies, by link down (every link of d1 down in its
namespace) or by SIGKILL of its pylvsd: d2 must hold the VIP within 3 x advert_int +
skew + 0.5 s (measured from the kill to the VIP on d2's interface), new connections work
after that, and the upload carries on without a reset, every byte intact; the backup
forwards nothing before it is master.  Then d1 comes back (link up, or pylvsd started
again): with the default preempt it takes the VIP back (and the upload moves back with
it), with ``preempt_delay`` only after the delay, with ``nopreempt`` never.  A restarted
d1 uses preempt_delay, as keepalived setups with lvs_sync_daemon should: taking over
before d2's sync messages (which wait up to 2 s to fill) have arrived would lose the
connections it does not know yet, the upload among them.  Only connections attempted
around a role change may fail.  Failover time, service restoration (first new connection
answered), the upload's longest pause and the connections lost are printed (``pytest
-s``; ``bench/failover.py`` runs the same).

Also: only the master answers ARP for the VIP (the backup's data plane serves the same
VIP but stays silent).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pylvs.cli.client import Client, DaemonStartError, wait_for_daemon
from pylvs.ha.vrrp import master_down_interval
from tests.dataplane.packet_lab import TOOLS, HttpConn, arp_who_has, python_env, realserver
from tests.lab import Lab, Topology, require_root

CIP, VIP, GW = "10.0.0.2", "10.0.0.100", "192.168.10.254"
DIP = {"d1": "10.0.0.1", "d2": "10.0.0.3"}
DIP_INT = {"d1": "192.168.10.1", "d2": "192.168.10.3"}
RIP = {
    "dr": {"rs1": "10.0.0.11", "rs2": "10.0.0.12"},
    "nat": {"rs1": "192.168.10.11", "rs2": "192.168.10.12"},
}
PRIORITY = {"d1": 150, "d2": 100}
HTTP, SINK = 80, 9000
VERSION, ADVERT = 3, 0.5
MARGIN = 0.5
TAKEOVER = master_down_interval(VERSION, PRIORITY["d2"], ADVERT) + MARGIN  # d2 takes over
PREEMPT = master_down_interval(VERSION, PRIORITY["d1"], ADVERT) + MARGIN  # d1 takes back
RATE = 20.0  # new connections per second
CONNECT_TIMEOUT = 3.0  # per new connection (connect + request + answer)
SLOW = 0.5  # a new connection answered later than this was held up by a role change
SETTLE = 1.0  # after a role change: the clients' neighbour caches and in-flight SYNs
SYNC_WAIT = 6.0  # a sync message waits up to 2 s for company
PROGRESS_WAIT = 10.0  # for the upload to move again (TCP retransmission backoff)
CHUNK, CHUNKS_PER_S = 4096, 50  # the upload: 200 kB/s
PREEMPT_DELAY = 2.0  # > IPVS_SYNC_FLUSH_TIME: a restarted master has the synced table first
BACK = {  # how d1 coming back is configured -> its vrrp_instance line
    "preempt": "",
    "preempt_delay": f"preempt_delay {PREEMPT_DELAY:g}",
    "nopreempt": "nopreempt",
}

SINK_SCRIPT = r"""
import hashlib, socket, sys, threading

def serve(c):
    h, n = hashlib.sha256(), 0
    with c:
        while True:
            data = c.recv(65536)
            if not data:
                break
            h.update(data)
            n += len(data)
            c.sendall(b"%d\n" % n)
        c.sendall(b"END %d %s\n" % (n, h.hexdigest().encode()))

srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", int(sys.argv[1])))
srv.listen(64)
print("listening", flush=True)
while True:
    conn, _ = srv.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""


# --- the lab ------------------------------------------------------------------------------


def topology(mode: str) -> Topology:
    rips = RIP[mode]
    fwd = {n: {"net.ipv4.ip_forward": "1"} for n in DIP}
    if mode == "dr":
        members = [f"client:{CIP}/24", *(f"{n}:{a}/24" for n, a in DIP.items())]
        members += [f"{n}:{a}/24" for n, a in rips.items()]
        return Topology(nodes=["client", *DIP, *rips], lans={"lan": members}, sysctls=fwd)
    return Topology(
        nodes=["client", *DIP, *rips],
        lans={
            "ext": [f"client:{CIP}/24", *(f"{n}:{a}/24" for n, a in DIP.items())],
            "int": [
                *(f"{n}:{a}/24" for n, a in DIP_INT.items()),
                *(f"{n}:{a}/24" for n, a in rips.items()),
            ],
        },
        routes={n: [f"default via {GW}"] for n in rips},
        sysctls=fwd,
    )


def interfaces(mode: str) -> list[str]:
    return ["lan"] if mode == "dr" else ["ext", "int"]


def keepalived_conf(mode: str, node: str, back: str) -> str:
    vrrp_if, sync_if = ("lan", "lan") if mode == "dr" else ("ext", "int")
    kind = "DR" if mode == "dr" else "NAT"
    gateway = "" if mode == "dr" else f"        {GW}/24 dev int\n"
    servers = "".join(
        f"""
virtual_server {VIP} {port} {{
    lb_algo rr
    lb_kind {kind}
    protocol TCP
"""
        + "".join(
            f"    real_server {rip} {port} {{\n        weight 1\n    }}\n"
            for rip in RIP[mode].values()
        )
        + "}\n"
        for port in (HTTP, SINK)
    )
    return f"""global_defs {{
    router_id {node}
    lvs_sync_daemon {sync_if} VI_1 id 7
}}
vrrp_instance VI_1 {{
    state BACKUP
    interface {vrrp_if}
    virtual_router_id 51
    priority {PRIORITY[node]}
    version {VERSION}
    advert_int {ADVERT:g}
    {BACK[back]}
    virtual_ipaddress {{
        {VIP}/32 dev {vrrp_if}
{gateway}    }}
}}
{servers}"""


def addresses(lab: Lab, node: str) -> set[str]:
    """Every IPv4 address of ``node``."""
    out = subprocess.run(
        ["ip", "-n", lab.ns(node), "-4", "-o", "addr", "show"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return set(re.findall(r"inet (\S+)/", out))


def wait_for(cond: Callable[[], object], what: str, timeout: float, step: float = 0.02) -> float:
    """Poll ``cond`` until true; the seconds it took (AssertionError after ``timeout``)."""
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(step)
    return time.monotonic() - t0


@dataclass
class Pylvsd:
    """``pylvsd --dataplane packet -f keepalived.conf`` in director namespace ``node``."""

    lab: Lab
    node: str
    mode: str
    conf: Path
    proc: subprocess.Popen[str] | None = None
    socket: str = ""
    log_path: Path | None = None

    def launch(self) -> None:
        self.socket = str(self.lab.new_path(f"pylvsd-{self.node}", ".sock"))
        self.log_path = self.lab.new_path(f"pylvsd-{self.node}", ".log")
        argv = [sys.executable, "-m", "pylvs.daemon.main", "--dataplane", "packet"]
        for name in interfaces(self.mode):
            argv += ["--interface", name]
        argv += ["-f", str(self.conf), "--socket", self.socket, "--log-level", "info"]
        with open(self.log_path, "w") as out:
            self.proc = self.lab.popen(self.node, argv, stdout=out, stderr=out, env=python_env())

    def wait_ready(self) -> None:
        assert self.proc is not None
        try:
            wait_for_daemon(self.socket, self.proc, timeout=30)
        except DaemonStartError as e:
            raise AssertionError(f"{self.node}: pylvsd did not start: {e}\n{self.log()}") from None

    def log(self) -> str:
        if self.log_path is None:
            return ""
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-3000:]
        return ""

    def diagnose(self) -> str:
        """The log's end, and what the daemon says if it runs."""
        text = self.log()
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(Exception):
                text += f"\ncounters: {self.api('/v1/dataplane')['counters']}"
                text += f"\nconnections:\n{self.adm('-Lnc')}"
        return text

    def api(self, path: str) -> Any:
        return Client(self.socket, timeout=5).get(path)

    def state(self) -> str:
        """The VRRP instance's state (GET /v1/vrrp: a list of instances)."""
        [vi] = [i for i in self.api("/v1/vrrp") if i["name"] == "VI_1"]
        return str(vi["state"])

    def adm(self, *args: str) -> str:
        argv = [sys.executable, "-m", "pylvs.cli.pylvsadm", *args]
        env = python_env(PYLVS_SOCKET=self.socket)
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env)
        if r.returncode != 0:
            raise AssertionError(f"{self.node}: pylvsadm {' '.join(args)}: {r.stderr}")
        return r.stdout

    def sync_daemons(self) -> list[str]:
        """The states of the running sync daemons (``-L --daemon``)."""
        return [line.split()[0] for line in self.adm("-L", "--daemon").splitlines()]

    def has_conn(self, client_port: int, port: int) -> bool:
        """The client's connection to VIP:port is in the table (``-Lnc``), ESTABLISHED."""
        mine = (f"{CIP}:{client_port}", f"{VIP}:{port}")
        for line in self.adm("-Lnc").splitlines()[2:]:
            f = line.split()
            if len(f) == 6 and (f[3], f[4]) == mine and f[2] == "ESTABLISHED":
                return True
        return False

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM; AssertionError unless it exits 0 without a data plane exception."""
        if self.proc is None or self.proc.poll() is not None:
            return
        exceptions = dict(self.api("/v1/dataplane")["counters"]).get("exception", 0)
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            code = None
        assert (code, exceptions) == (0, 0), f"{self.node}: unclean stop ({code}, {exceptions} "
        f"frame exceptions):\n{self.log()}"


# --- the clients --------------------------------------------------------------------------


@dataclass
class Attempt:
    start: float
    end: float = 0.0
    error: str | None = None


class NewConnections:
    """A steady stream of new HTTP connections from the client to VIP:80, one every
    1/RATE s, each on its own thread (so a slow one does not delay the next)."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.attempts: list[Attempt] = []
        self.running = threading.Event()
        self.threads: list[threading.Thread] = []
        self.pacer = threading.Thread(target=self._pace, name="new-conns", daemon=True)

    def _one(self, a: Attempt) -> None:
        try:
            with HttpConn(self.lab, "client", VIP, HTTP, timeout=CONNECT_TIMEOUT) as c:
                c.get(close=True, timeout=CONNECT_TIMEOUT)
        except Exception as e:  # every failure counts as a lost connection
            a.error = f"{type(e).__name__}: {e}"
        a.end = time.monotonic()

    def _pace(self) -> None:
        start = time.monotonic()
        n = 0
        while self.running.is_set():
            a = Attempt(time.monotonic())
            self.attempts.append(a)
            t = threading.Thread(target=self._one, args=(a,), daemon=True)
            t.start()
            self.threads.append(t)
            n += 1
            time.sleep(max(0.0, start + n / RATE - time.monotonic()))

    def __enter__(self) -> NewConnections:
        self.running.set()
        self.pacer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.running.clear()
        self.pacer.join()
        for t in self.threads:
            t.join(CONNECT_TIMEOUT + 5)

    def ok_since(self, t: float) -> bool:
        """Some connection started after ``t`` was answered."""
        return any(a.start >= t and a.end and a.error is None for a in list(self.attempts))

    def restored(self, t: float, since: float) -> float:
        """Seconds from ``since`` to the first answer to a connection started after ``t``."""
        ends = [a.end for a in self.attempts if a.start >= t and a.end and a.error is None]
        return min(ends) - since


class Upload:
    """One long TCP upload from the client to the sink (VIP:9000): CHUNK random bytes
    CHUNKS_PER_S times a second; the sink's running counts are kept as progress."""

    def __init__(self, lab: Lab) -> None:
        self.sock = lab.socket("client")
        self.sock.settimeout(30)
        self.sock.connect((VIP, SINK))
        self.port = int(self.sock.getsockname()[1])
        self.sha = hashlib.sha256()
        self.sent = 0
        self.progress: list[tuple[float, int]] = [(time.monotonic(), 0)]
        self.end: str | None = None
        self.errors: list[str] = []
        self.running = threading.Event()
        self.running.set()
        self.writer = threading.Thread(target=self._write, name="upload-w", daemon=True)
        self.reader = threading.Thread(target=self._read, name="upload-r", daemon=True)
        self.writer.start()
        self.reader.start()

    def _write(self) -> None:
        start, n = time.monotonic(), 0
        try:
            while self.running.is_set():
                data = os.urandom(CHUNK)
                self.sock.sendall(data)
                self.sha.update(data)
                self.sent += len(data)
                n += 1
                time.sleep(max(0.0, start + n / CHUNKS_PER_S - time.monotonic()))
            self.sock.shutdown(socket.SHUT_WR)
        except OSError as e:
            self.errors.append(f"send: {type(e).__name__}: {e}")

    def _read(self) -> None:
        buf = b""
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return
                buf += data
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    if line.startswith(b"END "):
                        self.end = line.decode()
                    elif line:
                        self.progress.append((time.monotonic(), int(line)))
        except OSError as e:
            self.errors.append(f"receive: {type(e).__name__}: {e}")

    def acked(self) -> int:
        return self.progress[-1][1]

    def moved_since(self, t: float) -> Callable[[], bool]:
        """True once the sink acknowledged more than it had at ``t``."""
        before = max((n for when, n in list(self.progress) if when <= t), default=0)
        return lambda: self.acked() > before or bool(self.errors)

    def longest_pause(self) -> float:
        times = [when for when, _ in self.progress]
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)

    def close(self) -> None:
        self.running.clear()
        self.sock.close()

    def finish(self) -> None:
        """Stop sending; AssertionError unless the sink got every byte, unchanged."""
        self.running.clear()
        self.writer.join(30)
        self.reader.join(30)
        assert not self.errors, f"the upload failed: {self.errors}"
        want = f"END {self.sent} {self.sha.hexdigest()}"
        assert self.end == want, f"the sink saw {self.end!r}, the client sent {want!r}"


# --- the scenario -------------------------------------------------------------------------


@dataclass
class Report:
    """What one failover scenario measured."""

    mode: str
    how: str
    back: str
    failover: float = 0.0  # kill -> VIP on d2
    restored: float = 0.0  # kill -> first new connection answered
    failback: float | None = None  # d1 back -> VIP on d1 (preempt)
    attempts: int = 0
    lost: list[Attempt] = field(default_factory=list)
    slow: int = 0  # answered, but after more than SLOW seconds
    upload_bytes: int = 0
    upload_pause: float = 0.0
    back_at: float = 0.0  # d1 back (link up, pylvsd started), seconds after the kill

    def line(self) -> str:
        back = f"{self.failback:.2f} s" if self.failback is not None else "none"
        return (
            f"{self.mode.upper()} {self.how} ({self.back}): failover {self.failover:.2f} s (limit "
            f"{TAKEOVER:.2f}), first new connection answered {self.restored:.2f} s after "
            f"the kill, failback {back}; new connections lost {len(self.lost)}/"
            f"{self.attempts} ({self.slow} more answered after > {SLOW:g} s); upload "
            f"{self.upload_bytes} bytes intact, longest pause {self.upload_pause:.2f} s"
        )

    def lost_detail(self, t0: float) -> str:
        """When the lost connections started (s after the kill) and why they failed."""
        errors = sorted({a.error or "" for a in self.lost})
        starts = ", ".join(f"{a.start - t0:+.2f}" for a in self.lost)
        return (
            f"lost new connections started at {starts} s (d1 back at +{self.back_at:.2f} s): "
            + "; ".join(errors)
        )


def said_listening(log_path: Path) -> Callable[[], bool]:
    return lambda: "listening" in log_path.read_text()


def start_servers(lab: Lab, mode: str) -> None:
    script = lab.new_path("sink", ".py")
    script.write_text(SINK_SCRIPT)
    for rs in RIP[mode]:
        if mode == "dr":
            realserver(lab, rs, VIP, "dr")
        lab.http_server(rs, HTTP, rs)
        log_path = lab.new_path(f"sink-{rs}", ".log")
        with open(log_path, "w") as out:
            argv = [sys.executable, "-I", "-u", str(script), str(SINK)]
            lab.popen(rs, argv, stdout=out, stderr=subprocess.STDOUT)
        wait_for(said_listening(log_path), f"the sink on {rs}", 10)


@contextlib.contextmanager
def directors(lab: Lab, mode: str, back: str) -> Iterator[dict[str, Pylvsd]]:
    """d1 and d2 running, d1 MASTER with the VIP and the master sync daemon."""
    ds = {}
    for node in DIP:
        conf = lab.new_path(f"keepalived-{node}", ".conf")
        conf.write_text(keepalived_conf(mode, node, back))
        ds[node] = Pylvsd(lab, node, mode, conf)
    try:
        # d1 first: with nopreempt, whoever is master first stays master
        ds["d1"].launch()
        ds["d1"].wait_ready()
        wait_for(lambda: VIP in addresses(lab, "d1"), "d1 MASTER with the VIP", PREEMPT + 5)
        ds["d2"].launch()
        ds["d2"].wait_ready()
        wait_for(lambda: ds["d2"].state() == "BACKUP", "d2 BACKUP", 5)
        assert VIP not in addresses(lab, "d2")
        wait_for(lambda: ds["d1"].sync_daemons() == ["master"], "d1's master sync daemon", 5)
        assert ds["d2"].sync_daemons() == ["backup"]
        yield ds
    except BaseException:
        for d in ds.values():
            print(f"--- {d.node}:\n{d.diagnose()}")
        raise
    finally:
        for d in ds.values():
            if d.proc is not None and d.proc.poll() is None:
                with contextlib.suppress(Exception):
                    d.proc.kill()


def failover(mode: str, how: str, back: str) -> Report:
    """Build the lab, run the scenario, return what it measured (AssertionError on any
    check failing).  ``how``: "link" or "sigkill"; ``back``: a key of BACK."""
    report = Report(mode, how, back)
    with Lab(topology(mode)) as lab:
        start_servers(lab, mode)
        with directors(lab, mode, back) as ds:
            with NewConnections(lab) as conns:
                up = Upload(lab)
                try:
                    t_kill, windows = scenario(lab, ds["d1"], ds["d2"], conns, up, report)
                    up.finish()
                finally:
                    up.close()
            for d in ds.values():
                d.stop()
        report.attempts = len(conns.attempts)
        report.lost = [a for a in conns.attempts if a.error is not None]
        report.slow = sum(a.error is None and a.end - a.start > SLOW for a in conns.attempts)
        report.upload_bytes = up.sent
        report.upload_pause = up.longest_pause()
    print(report.line())
    if report.lost:
        print(f"  {report.lost_detail(t_kill)}")
    outside = [a for a in report.lost if not any(lo <= a.start <= hi for lo, hi in windows)]
    assert not outside, (
        f"{len(outside)} new connections failed outside the role changes: "
        + "; ".join(f"at {a.start - t_kill:+.2f} s: {a.error}" for a in outside[:5])
    )
    assert len(report.lost) <= RATE * (TAKEOVER + SETTLE + CONNECT_TIMEOUT), report.line()
    return report


def scenario(
    lab: Lab, d1: Pylvsd, d2: Pylvsd, conns: NewConnections, up: Upload, report: Report
) -> tuple[float, list[tuple[float, float]]]:
    """Kill d1, check d2's takeover, bring d1 back, check the preemption rule; the kill's
    time and the windows in which new connections may fail."""
    mode, how = report.mode, report.how
    wait_for(lambda: d2.has_conn(up.port, SINK), "the upload synced to d2", SYNC_WAIT, step=0.2)
    time.sleep(1.0)

    # -- the master dies
    t_kill = time.monotonic()
    if how == "link":
        for dev in interfaces(mode):
            lab.run("d1", ["ip", "link", "set", dev, "down"], check=True)
    else:
        d1.kill()
    t_dead = time.monotonic()  # the link is down, the process gone
    report.failover = wait_for(lambda: VIP in addresses(lab, "d2"), "the VIP on d2", TAKEOVER)
    t_vip = t_kill + report.failover
    assert d2.state() == "MASTER"
    if mode == "nat":
        assert GW in addresses(lab, "d2")
    wait_for(lambda: d2.sync_daemons() == ["master"], "d2's master sync daemon", 2)
    wait_for(lambda: conns.ok_since(t_dead), "a new connection answered", 10)
    report.restored = conns.restored(t_dead, since=t_kill)
    # The backup forwards nothing for the master (not even frames a switch floods to
    # it while the master's port is down): the answers start with d2 as master.
    assert report.restored > report.failover - 0.1, report.line()
    wait_for(up.moved_since(t_vip), "the upload moving through d2", PROGRESS_WAIT)
    assert not up.errors, up.errors
    time.sleep(2.0)  # traffic through d2 alone
    windows = [(t_kill - CONNECT_TIMEOUT - 0.5, t_vip + SETTLE)]

    # -- d1 comes back
    t_back = time.monotonic()
    report.back_at = t_back - t_kill
    if how == "link":
        for dev in interfaces(mode):
            lab.run("d1", ["ip", "link", "set", dev, "up"], check=True)
    else:
        d1.launch()
        d1.wait_ready()
    if report.back == "nopreempt":
        wait_for(lambda: d1.state() == "BACKUP", "d1 BACKUP", 10)
        time.sleep(PREEMPT + 0.5)
        assert (d1.state(), d2.state()) == ("BACKUP", "MASTER")
        assert VIP not in addresses(lab, "d1") and VIP in addresses(lab, "d2")
        wait_for(up.moved_since(time.monotonic()), "the upload still moving", PROGRESS_WAIT)
    else:
        delay = PREEMPT_DELAY if report.back == "preempt_delay" else 0.0
        limit = delay + PREEMPT + (2.0 if how == "link" else 15.0)  # + pylvsd's start
        wait_for(lambda: VIP in addresses(lab, "d1"), "d1 taking the VIP back", limit)
        report.failback = time.monotonic() - t_back
        assert report.failback >= delay, report.line()
        wait_for(lambda: VIP not in addresses(lab, "d2"), "d2 releasing the VIP", 3)
        assert (d1.state(), d2.state()) == ("MASTER", "BACKUP")
        t_new = t_back + report.failback
        windows.append((t_new - CONNECT_TIMEOUT - 0.5, t_new + SETTLE))
        wait_for(up.moved_since(t_new), "the upload moving through d1", PROGRESS_WAIT)
    time.sleep(1.0 + SETTLE)
    assert not up.errors, up.errors
    return t_kill, windows


# (mode, how d1 dies, how it comes back): default preempt after a link flap (d1 kept its
# table), nopreempt, and preempt_delay after a restart (the restarted d1 must get the synced
# connections before it takes over: d2's sync messages wait up to 2 s to fill).
CASES = [
    ("dr", "link", "preempt"),
    ("dr", "sigkill", "nopreempt"),
    ("nat", "link", "preempt"),
    ("nat", "sigkill", "preempt_delay"),
]


@pytest.mark.parametrize(("mode", "how", "back"), CASES, ids=["-".join(c) for c in CASES])
def test_failover(mode: str, how: str, back: str) -> None:
    require_root(*TOOLS)
    failover(mode, how, back)


class ProxyArpBug(AssertionError):
    """The backup answered ARP for the VIP."""


def test_only_the_master_answers_arp_for_the_vip() -> None:
    require_root(*TOOLS)
    with Lab(topology("dr")) as lab:
        start_servers(lab, "dr")
        with directors(lab, "dr", "preempt") as ds:
            answers = set(arp_who_has(lab, "client", "lan", VIP))
            for d in ds.values():
                d.stop()
            macs = {n: lab.mac(n, "lan") for n in DIP}
    if answers != {macs["d1"]}:
        raise ProxyArpBug(f"ARP for {VIP} answered by {answers}; directors {macs}")
