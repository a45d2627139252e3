"""Shared plumbing of the packet data plane end-to-end tests (``test_packet_*.py``).

Two lab topologies after the seeds' experiments (``tests.lab``: namespaces, veth, bridges):

- ``routed`` (NAT, FULLNAT; seed 000's NAT experiment with the VIP on a subnet of its own):
  client 10.0.0.2 (+ 10.0.0.3, a second client address) --ext-- director 10.0.0.1 with the
  VIP 100.222.111.1/32, and 192.168.10.1 + the FULLNAT local address 192.168.10.2 --int
  (bridged)-- rs1 192.168.10.11, rs2 192.168.10.12, whose default route is the director.
  The client knows only a host route to the VIP through the director, as in the seed.
- ``flat`` (DR, TUN; seeds 000, 001, 002): one bridged LAN with client 10.0.0.2, director
  10.0.0.1 (+ the DR VIP 10.0.0.100/32 and the TUN VIP 10.0.0.110/32), rs1 10.0.0.11 and
  rs2 10.0.0.12, prepared with ``pylvs realserver start`` (VIP on lo, ARP suppression; for
  TUN also the tunnel decapsulator).  Real servers answer the client directly.

``pylvsd(lab, interfaces)`` runs ``pylvsd --dataplane packet`` in the director namespace;
``Director.adm`` runs ``pylvsadm`` (ipvsadm syntax) against it and ``Director.setup`` loads
a whole rule set in one ``pylvsadm -R`` (``-C`` first).  Leaving the context stops the
daemon with SIGTERM and checks the clean shutdown: exit status 0, no frame handling
exception counted, and the nftables table ``inet pylvs`` gone from the director namespace.

Clients talk from the client namespace with sockets made there (``HttpConn``, ``http_once``,
``udp_once``); the lab's peer-echo servers answer ``"NAME PEER_IP PEER_PORT"``, parsed into
``Reply``.  ``routed_setup`` / ``flat_setup`` build a whole lab with servers and daemon for a
module-scoped fixture; tests reset the rules with ``Director.setup`` (``-C`` first).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from pylvs.cli.client import Client, DaemonStartError, wait_for_daemon
from tests.lab import Lab, Topology, require_root

SRC = Path(__file__).resolve().parents[2] / "src"
TABLE = "inet pylvs"
TOOLS = ("nft", "tcpdump", "curl", "ethtool")

# routed (NAT, FULLNAT)
CIP, CIP2, DIP = "10.0.0.2", "10.0.0.3", "10.0.0.1"
VIP_NAT = "100.222.111.1"
DIP_INT, LIP = "192.168.10.1", "192.168.10.2"
RIP_ROUTED = {"rs1": "192.168.10.11", "rs2": "192.168.10.12"}
# flat (DR, TUN)
VIP_DR, VIP_TUN = "10.0.0.100", "10.0.0.110"
RIP_FLAT = {"rs1": "10.0.0.11", "rs2": "10.0.0.12"}
REAL_SERVERS = ("rs1", "rs2")
ALT_PORT = 8000  # second HTTP server on each real server (port mapping, seed 004)
UDP_PORT = 53


def python_env(**extra: str) -> dict[str, str]:
    """Environment for our Python tools: this tree's ``src`` first on the path."""
    env = dict(os.environ, **extra)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))
    return env


def wait_until(
    cond: Callable[[], object],
    what: str,
    timeout: float = 5.0,
    show: Callable[[], object] | None = None,
) -> None:
    """Poll ``cond`` until true; AssertionError naming ``what`` (and ``show()``, the state
    last seen) after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            last = f"; last seen: {show()}" if show is not None else ""
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}{last}")
        time.sleep(0.02)


# --- topologies --------------------------------------------------------------------------


def routed_topology() -> Topology:
    """client --ext-- director --int (bridge)-- rs1, rs2 (NAT, FULLNAT)."""
    rs = [f"{n}:{a}/24" for n, a in RIP_ROUTED.items()]
    return Topology(
        nodes=["client", "director", *REAL_SERVERS],
        lans={
            "ext": [f"client:{CIP}/24,{CIP2}/24", f"director:{DIP}/24,{VIP_NAT}/32"],
            "int": [f"director:{DIP_INT}/24,{LIP}/24", *rs],
        },
        routes={
            "client": [f"{VIP_NAT}/32 via {DIP}"],
            **{n: [f"default via {DIP_INT}"] for n in REAL_SERVERS},
        },
        sysctls={"director": {"net.ipv4.ip_forward": "1"}},
    )


def flat_topology() -> Topology:
    """client, director, rs1, rs2 on one bridged LAN (DR, TUN)."""
    rs = [f"{n}:{a}/24" for n, a in RIP_FLAT.items()]
    return Topology(
        nodes=["client", "director", *REAL_SERVERS],
        lans={"lan": [f"client:{CIP}/24", f"director:{DIP}/24,{VIP_DR}/32,{VIP_TUN}/32", *rs]},
        sysctls={"director": {"net.ipv4.ip_forward": "1"}},
    )


# --- the director ------------------------------------------------------------------------


class DestRow(NamedTuple):
    """One ``-> RIP:PORT Forward Weight ActiveConn InActConn`` line of ``-Ln``."""

    addr: str
    fwd: str
    weight: int
    active: int
    inactive: int


class ConnRow(NamedTuple):
    """One line of ``-Lnc``."""

    proto: str
    expire: str
    state: str
    source: str
    virtual: str
    dest: str


class StatsRow(NamedTuple):
    """Counters of a service or a real server in ``-Ln --stats --exact``."""

    conns: int
    inpkts: int
    outpkts: int
    inbytes: int
    outbytes: int


@dataclass
class Director:
    """A running ``pylvsd --dataplane packet`` in ``lab``'s director namespace."""

    lab: Lab
    proc: subprocess.Popen[str]
    socket: str
    log_path: Path

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def adm_result(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "pylvs.cli.pylvsadm", *args]
        env = python_env(PYLVS_SOCKET=self.socket)
        return subprocess.run(
            argv, input=stdin, capture_output=True, text=True, timeout=30, env=env, check=False
        )

    def adm(self, *args: str, stdin: str | None = None) -> str:
        """``pylvsadm ARGS``; its stdout, or AssertionError with its stderr."""
        r = self.adm_result(*args, stdin=stdin)
        if r.returncode != 0:
            alive = "" if self.proc.poll() is None else f"; pylvsd exited: {self.log()[-800:]}"
            raise AssertionError(
                f"pylvsadm {' '.join(args)} exited {r.returncode}: {r.stderr.strip()}{alive}"
            )
        return r.stdout

    def setup(self, *lines: str) -> None:
        """Replace every rule: ``pylvsadm -R`` of ``-C`` followed by ``lines``."""
        self.adm("-R", stdin="".join(f"{x}\n" for x in ("-C", *lines)))

    def api(self, path: str) -> Any:
        return Client(self.socket, timeout=5).get(path)

    def counters(self) -> dict[str, int]:
        """The data plane's own counters (GET /v1/dataplane)."""
        return dict(self.api("/v1/dataplane")["counters"])

    def nft_table(self) -> str | None:
        """``nft list table inet pylvs`` in the director namespace; None if absent."""
        r = self.lab.run("director", ["nft", "list", "table", *TABLE.split()])
        return r.stdout if r.returncode == 0 else None

    def dests(self, service: str, *, nosort: bool = False) -> list[DestRow]:
        """The real servers of ``service`` ("TCP  VIP:PORT" as listed) in ``-Ln`` order."""
        out = self.adm("-Ln", *(["--nosort"] if nosort else []))
        rows: list[DestRow] = []
        inside = False
        for line in out.splitlines():
            if not line.startswith(" "):
                inside = line.split()[:2] == service.split()
            elif inside and line.startswith("  -> ") and "RemoteAddress" not in line:
                f = line.split()
                rows.append(DestRow(f[1], f[2], int(f[3]), int(f[4]), int(f[5])))
        return rows

    def conns(self) -> list[ConnRow]:
        rows = []
        for line in self.adm("-Lnc").splitlines()[2:]:
            f = line.split()
            if len(f) == 6:
                rows.append(ConnRow(*f))
        return rows

    def stats(self) -> dict[str, StatsRow]:
        """``-Ln --stats --exact``: "TCP VIP:PORT" (service) and "RIP:PORT" (real
        server, the last service's) -> counters."""
        rows: dict[str, StatsRow] = {}
        for line in self.adm("-Ln", "--stats", "--exact").splitlines():
            f = line.split()
            if len(f) == 7 and f[0] in ("TCP", "UDP", "SCTP"):
                rows[f"{f[0]} {f[1]}"] = StatsRow(*map(int, f[2:]))
            elif len(f) == 7 and f[0] == "->" and f[2].isdigit():
                rows[f[1]] = StatsRow(*map(int, f[2:]))
        return rows

    def stop(self, *, check: bool = True) -> None:
        """SIGTERM; with ``check``: exit status 0 and the nftables table gone."""
        problems: list[str] = []
        if check and self.proc.poll() is None:
            try:
                exceptions = self.counters().get("exception", 0)
            except Exception as e:
                problems.append(f"reading /v1/dataplane: {e}")
            else:
                if exceptions:
                    problems.append(f"{exceptions} frames raised an exception in the data plane")
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            problems.append("pylvsd ignored SIGTERM for 10 s (killed)")
        if not check:
            with contextlib.suppress(Exception):
                self.lab.run("director", ["nft", "delete", "table", *TABLE.split()])
            return
        if self.proc.returncode != 0:
            problems.append(f"pylvsd exited with status {self.proc.returncode}")
        table = self.nft_table()
        if table is not None:
            problems.append(f"nftables table {TABLE} still there after SIGTERM:\n{table}")
        if problems:
            raise AssertionError(
                "unclean pylvsd shutdown: " + "; ".join(problems) + f"\nlog:\n{self.log()[-2000:]}"
            )


def start_pylvsd(lab: Lab, interfaces: Sequence[str], *extra: str) -> Director:
    """Start pylvsd on ``interfaces`` of the director; return once its API answers and the
    data plane has installed its nftables table."""
    sock = str(lab.new_path("pylvsd", ".sock"))
    log_path = lab.new_path("pylvsd", ".log")
    argv = [sys.executable, "-m", "pylvs.daemon.main", "--dataplane", "packet"]
    for name in interfaces:
        argv += ["--interface", name]
    argv += ["--socket", sock, "--log-level", "info", *extra]
    with open(log_path, "w") as out:
        proc = lab.popen("director", argv, stdout=out, stderr=out, env=python_env())
    d = Director(lab, proc, sock, log_path)
    try:
        wait_for_daemon(sock, proc, timeout=20)
        wait_until(lambda: d.nft_table() is not None, f"nftables table {TABLE}")
    except (DaemonStartError, AssertionError) as e:
        d.stop(check=False)
        raise AssertionError(f"pylvsd did not start: {e}\n{d.log()[-2000:]}") from None
    return d


@contextmanager
def pylvsd(lab: Lab, interfaces: Sequence[str], *extra: str) -> Iterator[Director]:
    """A running pylvsd; on exit stopped, and (unless the body failed) checked clean."""
    d = start_pylvsd(lab, interfaces, *extra)
    try:
        yield d
    except BaseException:
        d.stop(check=False)
        raise
    d.stop()


# --- real servers ------------------------------------------------------------------------


def realserver(lab: Lab, node: str, vip: str, mode: str, *extra: str) -> None:
    """``pylvs realserver start --vip VIP --mode MODE`` on ``node`` (state in the lab's
    directory; the lab's teardown removes the namespace with all of it)."""
    env = python_env(PYLVS_REALSERVER_DIR=str(lab.tmpdir / f"realserver-{node}"))
    argv = [sys.executable, "-m", "pylvs.cli.main", "realserver", "start", "--vip", vip]
    r = lab.run(node, [*argv, "--mode", mode, *extra], env=env)
    if r.returncode != 0:
        raise AssertionError(f"{node}: realserver start {vip} {mode}: {r.stderr.strip()}")


# --- clients -----------------------------------------------------------------------------


class Reply(NamedTuple):
    """A peer-echo server's answer, and the client's own port."""

    server: str
    peer_ip: str
    peer_port: int
    local_port: int


def parse_reply(text: str, local_port: int) -> Reply:
    f = text.split()
    if len(f) != 3 or not f[2].isdigit():
        raise AssertionError(f"not a peer-echo answer: {text!r}")
    return Reply(f[0], f[1], int(f[2]), local_port)


class HttpConn:
    """An HTTP/1.1 keep-alive connection from ``node``'s namespace."""

    def __init__(
        self,
        lab: Lab,
        node: str,
        host: str,
        port: int = 80,
        *,
        source: str | None = None,
        timeout: float = 3.0,
    ) -> None:
        self.where = f"{node} -> {host}:{port}"
        self.host = host
        self.sock = lab.socket(node)
        self.sock.settimeout(timeout)
        self.buf = b""
        try:
            if source:
                self.sock.bind((source, 0))
            self.sock.connect((host, port))
        except OSError as e:
            self.sock.close()
            raise AssertionError(f"{self.where}: connect: {e}") from None
        self.local_port = int(self.sock.getsockname()[1])

    def _read_until(self, marker: bytes) -> None:
        while marker not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed by the peer")
            self.buf += chunk

    def send(self, *, close: bool = False) -> None:
        """Send one GET (``Connection: close`` with ``close``)."""
        req = f"GET / HTTP/1.1\r\nHost: {self.host}\r\n"
        req += "Connection: close\r\n\r\n" if close else "\r\n"
        try:
            self.sock.sendall(req.encode())
        except OSError as e:
            raise AssertionError(f"{self.where} (client port {self.local_port}): {e!r}") from None

    def receive(self, timeout: float | None = None) -> Reply:
        """Read one answer (AssertionError on any failure, e.g. nothing in ``timeout`` s)."""
        if timeout is not None:
            self.sock.settimeout(timeout)
        try:
            self._read_until(b"\r\n\r\n")
            head, _, self.buf = self.buf.partition(b"\r\n\r\n")
            status = head.split(b"\r\n", 1)[0].decode(errors="replace")
            m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
            if not status.startswith("HTTP/1.1 200") or m is None:
                raise AssertionError(f"{self.where}: bad answer {head[:200]!r}")
            n = int(m.group(1))
            while len(self.buf) < n:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("closed by the peer")
                self.buf += chunk
            body, self.buf = self.buf[:n], self.buf[n:]
        except OSError as e:
            raise AssertionError(
                f"{self.where} (client port {self.local_port}): {type(e).__name__}: {e}"
            ) from None
        return parse_reply(body.decode(errors="replace"), self.local_port)

    def get(self, *, close: bool = False, timeout: float | None = None) -> Reply:
        """One GET and its answer."""
        self.send(close=close)
        return self.receive(timeout)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> HttpConn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def http_once(
    lab: Lab, node: str, host: str, port: int = 80, *, source: str | None = None
) -> Reply:
    """One request on a fresh connection (``Connection: close``)."""
    with HttpConn(lab, node, host, port, source=source) as c:
        return c.get(close=True)


def udp_once(
    lab: Lab, node: str, host: str, port: int, timeout: float = 2.0
) -> tuple[Reply, tuple[str, int]]:
    """One datagram from a fresh socket: the answer and the address it came from."""
    with lab.socket(node, socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(b"?", (host, port))
        local_port = int(s.getsockname()[1])
        try:
            data, src = s.recvfrom(65535)
        except TimeoutError:
            raise AssertionError(f"{node}: no UDP answer from {host}:{port}") from None
    return parse_reply(data.decode(errors="replace"), local_port), (src[0], int(src[1]))


def arp_who_has(lab: Lab, node: str, lan: str, target: str, wait: float = 0.5) -> list[str]:
    """Broadcast one ARP request for ``target`` from ``node``'s interface on ``lan``; the
    MAC addresses of every answer heard within ``wait`` seconds."""
    from scapy.layers.l2 import ARP, Ether

    eth_p_arp = 0x0806
    mac = lab.mac(node, lan)
    ask = Ether(dst="ff:ff:ff:ff:ff:ff", src=mac, type=eth_p_arp) / ARP(
        op=1, hwsrc=mac, psrc=lab.addr(node, lan), hwdst="00:00:00:00:00:00", pdst=target
    )
    answers: list[str] = []
    with lab.socket(node, socket.AF_PACKET, socket.SOCK_RAW, socket.htons(eth_p_arp)) as s:
        s.bind((lab.iface(node, lan), eth_p_arp))
        s.send(bytes(ask))
        deadline = time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0:
            s.settimeout(left)
            try:
                data = s.recv(2048)
            except TimeoutError:
                break
            a = Ether(data).getlayer(ARP)
            if a is not None and a.op == 2 and a.psrc == target:
                answers.append(str(a.hwsrc))
    return answers


# --- whole setups ------------------------------------------------------------------------


@dataclass
class Setup:
    """A built lab with its real servers and a running pylvsd."""

    lab: Lab
    director: Director
    rip: dict[str, str]


@contextmanager
def routed_setup() -> Iterator[Setup]:
    """The ``routed`` lab: HTTP servers on ports 80 and 8000 and UDP on 53 of rs1 and rs2,
    pylvsd on ext and int."""
    require_root(*TOOLS)
    with Lab(routed_topology()) as lab:
        for rs in REAL_SERVERS:
            lab.http_server(rs, 80, rs)
            lab.http_server(rs, ALT_PORT, f"{rs}:{ALT_PORT}")
            lab.udp_server(rs, UDP_PORT, rs)
        with pylvsd(lab, ["ext", "int"]) as d:
            yield Setup(lab, d, dict(RIP_ROUTED))


@contextmanager
def flat_setup() -> Iterator[Setup]:
    """The ``flat`` lab: rs1 and rs2 real servers of the DR VIP (``realserver --mode
    dr``) and of the TUN VIP (``--mode tun``), HTTP on 80 and UDP on the DR VIP's port 53;
    pylvsd on lan."""
    require_root(*TOOLS)
    with Lab(flat_topology()) as lab:
        for rs in REAL_SERVERS:
            realserver(lab, rs, VIP_DR, "dr")
            realserver(lab, rs, VIP_TUN, "tun")
            lab.http_server(rs, 80, rs)
            # Bound to the VIP: the answer leaves from the VIP, as a DR service must.
            lab.udp_server(rs, UDP_PORT, rs, bind=VIP_DR)
        with pylvsd(lab, ["lan"]) as d:
            yield Setup(lab, d, dict(RIP_FLAT))
