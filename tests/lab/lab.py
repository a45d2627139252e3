"""``Lab``: a ``Topology`` built out of network namespaces, veth pairs and bridges.

Naming (prefix ``plXXXX`` unique per lab, see ``tests.lab.markers``):

- node ``rs1`` -> namespace ``<prefix>-rs1``; LANs with a bridge share the private namespace
  ``<prefix>--sw`` (a node name cannot start with ``-``, so it never clashes);
- a node's interface on LAN ``int`` is called ``int`` (inside the node's namespace); in the
  switch namespace the bridge is ``int`` and its ports ``int+1``, ``int+2``, ... (member order);
- MAC addresses are fixed: ``02:PP:PP:LL:MM:SS`` (PP prefix digits, LL LAN index, MM member
  index, SS 00 on the node side, 01 on the bridge port), so captures read easily; ifindexes
  are unique in the lab (from 10 up), so both ends of a veth never share one (see
  ``_link_commands`` for why that matters).

Nothing is ever created in the caller's namespace: every veth end is created directly in
its namespace (``ip link add ... netns A type veth peer ... netns B``), so deleting the
namespaces removes every interface, and no two labs can collide on an interface name.

Build order: namespaces; IPv6 off where unused; links; per node ``lo`` up, addresses, links
up; routes; sysctls; offload.  Any failure tears down whatever exists and raises ``LabError``.
Teardown (``__exit__``, ``close()``, atexit, or the stale sweep of a later lab): captures,
started processes (process groups), any other process still in a lab namespace, namespaces,
temporary directory (unless ``keep_files`` or PYLVS_LAB_KEEP=1), marker.
"""

from __future__ import annotations

import atexit
import itertools
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self, TypedDict, Unpack

from tests.lab import servers
from tests.lab.capture import Capture
from tests.lab.errors import LabCommandError, LabError
from tests.lab.markers import TMP_PREFIX, claim_prefix, destroy_prefix, release_prefix, sweep_stale
from tests.lab.netns import in_netns, netns_socket, stop_process, write_sysctl
from tests.lab.require import find_tool
from tests.lab.topology import Topology


class RunOptions(TypedDict, total=False):
    """The keyword options of ``Lab.run`` (``Lab.run_ns`` names their defaults)."""

    check: bool
    timeout: float | None
    input: str | None
    env: Mapping[str, str] | None


OFFLOAD_OFF = ("tx", "off", "rx", "off", "tso", "off", "gso", "off", "gro", "off")
_LIVE: set[Lab] = set()


def _close_live_labs() -> None:
    for lab in list(_LIVE):
        try:
            lab.close()
        except Exception as e:  # atexit: report, carry on with the other labs
            print(f"tests.lab: cleanup of {lab.prefix} failed: {e}")


atexit.register(_close_live_labs)


def tool(name: str) -> str:
    return find_tool(name) or name


class Lab:
    """A built topology; use as ``with Lab(topo) as lab:`` (or ``start()`` / ``close()``)."""

    def __init__(self, topo: Topology, *, keep_files: bool | None = None) -> None:
        self.topo = topo
        self.keep_files = (
            os.environ.get("PYLVS_LAB_KEEP") == "1" if keep_files is None else keep_files
        )
        self.build_seconds = 0.0
        self._procs: list[subprocess.Popen[Any]] = []
        self._captures: list[Capture] = []
        self._state = "new"
        self._serial = itertools.count(1)
        self._ip = tool("ip")
        sweep_stale()
        self.tmpdir = Path(tempfile.mkdtemp(prefix=TMP_PREFIX))
        try:
            self.prefix = claim_prefix(self.tmpdir)
        except BaseException:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            raise
        _LIVE.add(self)

    def __repr__(self) -> str:
        return f"<Lab {self.prefix} {self._state} nodes={list(self.topo.nodes)}>"

    # -- names ---------------------------------------------------------------------------

    @property
    def switch_ns(self) -> str:
        """The private namespace holding the bridges of LANs with other than two members."""
        return f"{self.prefix}--sw"

    def ns(self, node: str) -> str:
        """Namespace name of ``node``."""
        if node not in self.topo.nodes:
            raise KeyError(f"unknown node {node!r}")
        return f"{self.prefix}-{node}"

    def iface(self, node: str, lan: str) -> str:
        """Interface name of ``node`` on ``lan`` (inside ``ns(node)``)."""
        return self.topo.member(node, lan).lan

    def port(self, node: str, lan: str) -> str:
        """Bridge port (in ``switch_ns``) that ``node``'s interface on ``lan`` plugs into."""
        m = self.topo.member(node, lan)
        if not self.topo.bridged(lan):
            raise LabError(f"LAN {lan!r} is a plain veth pair: it has no bridge ports")
        return f"{lan[:11]}+{m.index}"

    def assigned_mac(self, node: str, lan: str, *, port: bool = False) -> str:
        """The MAC given at creation to ``node``'s interface on ``lan`` (or its bridge port)."""
        m = self.topo.member(node, lan)
        lan_index = list(self.topo.lans).index(lan) + 1
        p = int(self.prefix[2:], 16)
        octets = (0x02, p >> 8, p & 0xFF, lan_index, m.index, 1 if port else 0)
        return ":".join(f"{o:02x}" for o in octets)

    def new_path(self, stem: str, suffix: str = "") -> Path:
        """A fresh, unused path in the lab's temporary directory (removed at lab exit)."""
        return self.tmpdir / f"{stem}.{next(self._serial)}{suffix}"

    def mac(self, node: str, lan: str) -> str:
        """Current MAC of ``node``'s interface on ``lan``, as the kernel reports it."""
        argv = [self._ip, "-n", self.ns(node), "-j", "link", "show", "dev", self.iface(node, lan)]
        r = subprocess.run(argv, capture_output=True, text=True, check=False)
        if r.returncode != 0:
            raise LabCommandError(node, argv, r)
        return str(json.loads(r.stdout)[0]["address"])

    def addr(self, node: str, lan: str) -> str:
        """First address of ``node`` on ``lan`` (without prefix length)."""
        m = self.topo.member(node, lan)
        if not m.addresses:
            raise LabError(f"{node} has no address on {lan}")
        return str(m.addresses[0].ip)

    # -- build -----------------------------------------------------------------------------

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> Self:
        """Build everything; on any failure tear down what exists and raise."""
        if self._state != "new":
            raise LabError(f"lab {self.prefix} is {self._state}: build it only once")
        self._state = "building"
        t0 = time.monotonic()
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        self._state = "running"
        self.build_seconds = time.monotonic() - t0
        return self

    def ip_batch(self, ns: str | None, commands: Sequence[str], what: str) -> None:
        """Run ``ip -batch`` (in namespace ``ns``, or the caller's); raise LabError on failure."""
        argv = [self._ip, *(["-n", ns] if ns else []), "-batch", "-"]
        text = "".join(f"{c}\n" for c in commands)
        r = subprocess.run(argv, input=text, capture_output=True, text=True, check=False)
        if r.returncode != 0:
            listing = "\n".join(f"  {i}: {c}" for i, c in enumerate(commands, 1))
            raise LabError(f"{what}: {r.stderr.strip()}\n(ip -batch lines:\n{listing})")

    def _build(self) -> None:
        topo = self.topo
        bridged = [lan for lan in topo.lans if topo.bridged(lan)]
        all_ns = [self.ns(n) for n in topo.nodes] + ([self.switch_ns] if bridged else [])
        self.ip_batch(None, [f"netns add {n}" for n in all_ns], "creating namespaces")
        if os.path.exists("/proc/sys/net/ipv6"):
            # Set before the interfaces exist, which inherit "default": either no IPv6 at all
            # (quiet captures) or no duplicate address detection (addresses usable at once).
            for ns in all_ns:
                off = ns == self.switch_ns or not topo.wants_ipv6
                knob, value = ("disable_ipv6", "1") if off else ("accept_dad", "0")
                self._sysctls(ns, {f"net.ipv6.conf.{c}.{knob}": value for c in ("all", "default")})
        self.ip_batch(None, self._link_commands(), "creating links")
        if bridged:
            switch = ["link set dev lo up"]
            for lan in bridged:
                for m in topo.members_of(lan):
                    port = self.port(m.node, lan)
                    switch += [f"link set dev {port} master {lan}", f"link set dev {port} up"]
                switch.append(f"link set dev {lan} up")
            self.ip_batch(self.switch_ns, switch, "setting up bridges")
        for node in topo.nodes:
            cmds = ["link set dev lo up"]
            for m in topo.lans_of(node):
                for a in m.addresses:
                    nodad = " nodad" if a.version == 6 else ""
                    cmds.append(f"addr add {a.with_prefixlen} dev {m.lan}{nodad}")
                cmds.append(f"link set dev {m.lan} up")
            self.ip_batch(self.ns(node), cmds, f"configuring {node}")
        for node, routes in topo.routes.items():
            cmds = [f"route add {r}" for r in routes]
            self.ip_batch(self.ns(node), cmds, f"adding routes on {node}")
        for node, table in topo.sysctls.items():
            self._sysctls(self.ns(node), table, node)
        if not topo.offload:
            self._offload_off()

    def _link_commands(self) -> list[str]:
        # Every device gets its own ifindex, unique in the whole lab.  Left to the kernel,
        # both ends of a veth pair would often get the same number in their fresh namespaces;
        # the kernel then treats their carrier change as non-urgent and may delay the
        # operstate "up" by a second, and IPv6 ignores the link until then.
        index = iter(range(10, 1 << 20))
        cmds = []
        for lan in self.topo.lans:
            members = self.topo.members_of(lan)
            if not self.topo.bridged(lan):
                a, b = members
                cmds.append(
                    f"link add name {lan} index {next(index)} "
                    f"address {self.assigned_mac(a.node, lan)} netns {self.ns(a.node)} "
                    f"type veth peer name {lan} index {next(index)} "
                    f"address {self.assigned_mac(b.node, lan)} netns {self.ns(b.node)}"
                )
                continue
            cmds.append(
                f"link add name {lan} index {next(index)} netns {self.switch_ns} "
                "type bridge forward_delay 0 mcast_snooping 0"
            )
            for m in members:
                cmds.append(
                    f"link add name {lan} index {next(index)} "
                    f"address {self.assigned_mac(m.node, lan)} netns {self.ns(m.node)} "
                    f"type veth peer name {self.port(m.node, lan)} index {next(index)} "
                    f"address {self.assigned_mac(m.node, lan, port=True)} netns {self.switch_ns}"
                )
        return cmds

    def _sysctls(self, ns: str, table: Mapping[str, str], node: str | None = None) -> None:
        def apply() -> None:
            for key, value in table.items():
                write_sysctl(key, str(value))

        try:
            in_netns(ns, apply)
        except OSError as e:
            raise LabError(f"setting sysctls on {node or ns}: {e}") from None

    def _offload_off(self) -> None:
        ethtool = tool("ethtool")
        per_ns: dict[str, list[str]] = {}
        for m in self.topo.members:
            per_ns.setdefault(self.ns(m.node), []).append(m.lan)
            if self.topo.bridged(m.lan):
                per_ns.setdefault(self.switch_ns, []).append(self.port(m.node, m.lan))
        for ns, ifaces in per_ns.items():
            script = " && ".join(f"{ethtool} -K {i} {' '.join(OFFLOAD_OFF)}" for i in ifaces)
            r = self.run_ns(ns, ["sh", "-c", script])
            if r.returncode != 0:
                raise LabError(f"turning offloads off in {ns}: {r.stderr.strip()}")

    # -- teardown ------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop captures and processes, delete the namespaces and files; idempotent."""
        if self._state == "closed":
            return
        self._state = "closed"
        _LIVE.discard(self)
        problems = []
        for cap in self._captures:
            try:
                cap.stop()
            except Exception as e:
                problems.append(f"capture: {e}")
        for proc in self._procs:
            try:
                stop_process(proc)
            except Exception as e:
                problems.append(f"process {proc.pid}: {e}")
        left = destroy_prefix(self.prefix)
        if left:
            problems.append(f"namespaces not deleted: {left}")
        else:
            release_prefix(self.prefix)
        if not self.keep_files:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
        if problems:
            raise LabError(f"tearing down lab {self.prefix}: " + "; ".join(problems))

    # -- commands ------------------------------------------------------------------------------

    def _netns_exec(self, ns: str, argv: Sequence[str]) -> list[str]:
        return [self._ip, "netns", "exec", ns, *argv]

    def run_ns(
        self,
        ns: str,
        argv: Sequence[str],
        *,
        check: bool = False,
        timeout: float | None = 30.0,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """``run`` by namespace name (e.g. ``switch_ns``)."""
        r = subprocess.run(
            self._netns_exec(ns, argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            env=env,
            check=False,
        )
        if check and r.returncode != 0:
            raise LabCommandError(ns, argv, r)
        return r

    def run(
        self, node: str, argv: Sequence[str], **options: Unpack[RunOptions]
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` in ``node``'s namespace and wait; output captured as text.  With
        ``check=True`` a non-zero exit raises ``LabCommandError`` (showing stderr); the
        options and their defaults are ``run_ns``'s."""
        try:
            return self.run_ns(self.ns(node), argv, **options)
        except LabCommandError as e:
            e.node = node
            raise

    def sh(
        self, node: str, script: str, *, check: bool = True, timeout: float | None = 30.0
    ) -> subprocess.CompletedProcess[str]:
        """Run a shell one-liner in ``node``'s namespace (``check=True`` by default)."""
        return self.run(node, ["sh", "-c", script], check=check, timeout=timeout)

    def popen(
        self,
        node: str,
        argv: Sequence[str],
        *,
        stdin: int | IO[Any] | None = subprocess.DEVNULL,
        stdout: int | IO[Any] | None = None,
        stderr: int | IO[Any] | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
    ) -> subprocess.Popen[str]:
        """Start ``argv`` in ``node``'s namespace, in its own session; stopped at lab exit."""
        if self._state not in ("building", "running"):
            raise LabError(f"lab {self.prefix} is {self._state}")
        proc = subprocess.Popen(
            self._netns_exec(self.ns(node), argv),
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            env=env,
            cwd=cwd,
            text=True,
            start_new_session=True,
        )
        self._procs.append(proc)
        return proc

    def socket(
        self,
        node: str,
        family: int = socket.AF_INET,
        type: int = socket.SOCK_STREAM,
        proto: int = 0,
    ) -> socket.socket:
        """A socket of this process living in ``node``'s namespace (close it yourself)."""
        return netns_socket(self.ns(node), family, type, proto)

    def http_get(
        self, node: str, url: str, *, timeout: float = 5.0, args: Sequence[str] = ()
    ) -> str:
        """Fetch ``url`` with curl in ``node``'s namespace and return the body; an error
        (connection, timeout, HTTP status >= 400) raises AssertionError with curl's stderr."""
        argv = [tool("curl"), "-sS", "--noproxy", "*", "--max-time", f"{timeout:g}"]
        argv += ["--fail-with-body", *args, url]
        try:
            r = self.run(node, argv, timeout=timeout + 5)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{node}: curl {url} hung past {timeout + 5:g} s") from None
        if r.returncode != 0:
            raise AssertionError(
                f"{node}: curl {url} failed (exit {r.returncode}): {r.stderr.strip()}"
                + (f"; body: {r.stdout.strip()!r}" if r.stdout else "")
            )
        return r.stdout

    def udp_ask(
        self, node: str, host: str, port: int, payload: bytes = b"?", *, timeout: float = 2.0
    ) -> str:
        """Send one datagram from ``node`` and return the answer (AssertionError if none)."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with self.socket(node, family, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout)
            s.sendto(payload, (host, port))
            try:
                return s.recv(65535).decode(errors="replace")
            except TimeoutError:
                raise AssertionError(f"{node}: no UDP answer from {host}:{port}") from None

    # -- servers and captures ---------------------------------------------------------------

    def http_server(
        self, node: str, port: int = 80, name: str | None = None, *, bind: str = "0.0.0.0"
    ) -> servers.Server:
        """Python HTTP/1.1 server answering ``"<name> <peer-ip> <peer-port>\\n"``; ready."""
        return servers.http_server(self, node, port, name or node, bind)

    def udp_server(
        self, node: str, port: int = 53, name: str | None = None, *, bind: str = "0.0.0.0"
    ) -> servers.Server:
        """UDP server answering ``"<name> <peer-ip> <peer-port>"``; ready on return."""
        return servers.udp_server(self, node, port, name or node, bind)

    def nginx(
        self, node: str, port: int = 80, body: str | None = None, *, bind: str = "0.0.0.0"
    ) -> servers.NginxServer:
        """Real nginx answering ``body + "\\n"`` (default: the node name); ready on return.
        ``body`` is an nginx string, so ``$remote_addr`` and friends expand."""
        return servers.nginx(self, node, port, node if body is None else body, bind)

    def capture(self, node: str, lan: str, bpf_filter: str = "", *, snaplen: int = 0) -> Capture:
        """tcpdump on ``node``'s interface on ``lan`` (``lan`` may also be any interface
        name of the node, e.g. ``lo`` or ``any``); capturing when this returns."""
        iface = lan if lan not in self.topo.lans else self.iface(node, lan)
        cap = Capture(self, node, iface, bpf_filter, snaplen=snaplen)
        self._captures.append(cap)
        return cap
