"""VRRP in a namespace lab: two pylvs speakers, pylvs against keepalived, injected garbage.

One bridged LAN ``vlan``: d1 10.7.0.1, d2 10.7.0.2, client 10.7.0.9 (and fd07::1/2/9).
The speakers are ``python -m pylvs.ha.vrrp_io -f CONF --status FILE`` processes (the
status file is the manager's ``status()``); the interop peer is the Debian keepalived
2.2.7 in the foreground (``keepalived -n -l -D -P -f CONF -p/-r/-c PIDFILES``), whose
notify script appends its states to a file.  Each test uses its own VRID and VIP.

Failover times are measured from the event (link down, SIGKILL, SIGTERM) to the VIP
showing up on the new master, and must stay within 3 x advert_int + skew + 0.5 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet import IP
from scapy.layers.l2 import Ether
from scapy.layers.vrrp import VRRP, VRRPv3

from pylvs.config.model import Where
from pylvs.ha import vrrp as sm
from pylvs.ha.vrrp import master_down_interval
from pylvs.ha.vrrp_conf import InstanceConf, VirtualAddress, VrrpConf
from pylvs.ha.vrrp_io import VrrpManager, run_check
from tests.lab import Lab, Topology, require_root
from tests.lab.netns import in_netns, stop_process

SRC = Path(__file__).resolve().parents[2] / "src"
KEEPALIVED = "/usr/sbin/keepalived"
ADDR = {"d1": "10.7.0.1", "d2": "10.7.0.2", "client": "10.7.0.9"}
MARGIN = 0.5


def python_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))
    return env


def wait_for(cond: Callable[[], object], what: str, timeout: float) -> float:
    """Poll ``cond`` until true; return the seconds it took (AssertionError on timeout)."""
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)
    return time.monotonic() - t0


def bound(version: int, prio: int, adv: float) -> float:
    """3 x advert_int + skew (the backup's priority) + 0.5 s."""
    return master_down_interval(version, prio, adv) + MARGIN


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    require_root("keepalived")
    topo = Topology(
        nodes=["d1", "d2", "client"],
        lans={"vlan": [f"{n}:{a}/24,fd07::{a.rsplit('.', 1)[1]}/64" for n, a in ADDR.items()]},
    )
    with Lab(topo) as lab:
        yield lab


def vips(lab: Lab, node: str) -> set[str]:
    out = subprocess.run(
        ["ip", "-n", lab.ns(node), "-br", "addr", "show", "dev", "vlan"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return {w.split("/")[0] for w in out[2:]}


def has_vip(lab: Lab, node: str, vip: str) -> Callable[[], bool]:
    return lambda: vip in vips(lab, node)


def lacks_vip(lab: Lab, node: str, vip: str) -> Callable[[], bool]:
    return lambda: vip not in vips(lab, node)


def instance(vrid: int, vip: str, prio: int, *, version: int, adv: float, extra: str = "") -> str:
    auth = "authentication {\n auth_type PASS\n auth_pass s3cret\n }" if version == 2 else ""
    plen = 64 if ":" in vip else 24
    return f"""vrrp_instance VI_{vrid} {{
    interface vlan
    virtual_router_id {vrid}
    priority {prio}
    version {version}
    advert_int {adv:g}
    {auth}
    virtual_ipaddress {{
        {vip}/{plen}
    }}
    {extra}
}}
"""


class Speaker:
    """One VRRP process in a lab node: pylvs (``kind="pylvs"``) or keepalived."""

    def __init__(self, lab: Lab, node: str, name: str, conf: str, kind: str = "pylvs") -> None:
        self.lab, self.node, self.kind = lab, node, kind
        self.dir = lab.new_path(f"vrrp-{name}")
        self.dir.mkdir()
        self.conf = self.dir / "keepalived.conf"
        self.status_path = self.dir / "status.json"
        self.states = self.dir / "states"
        self.log = self.dir / "log"
        script = self.dir / "notify.sh"
        script.write_text(f'#!/bin/sh\necho "$*" >> {self.states}\n')
        script.chmod(0o755)
        self.conf.write_text(conf.replace("NOTIFY", f"notify {script}"))
        self.proc: subprocess.Popen[Any] | None = None

    def start(self) -> Speaker:
        if self.kind == "pylvs":
            argv = [sys.executable, "-m", "pylvs.ha.vrrp_io", "-f", str(self.conf)]
            argv += ["--status", str(self.status_path), "-l", "debug"]
            env: dict[str, str] | None = python_env()
        else:
            pids = [str(self.dir / p) for p in ("k.pid", "v.pid", "c.pid")]
            argv = [KEEPALIVED, "-n", "-l", "-D", "-P", "-f", str(self.conf)]
            argv += ["-p", pids[0], "-r", pids[1], "-c", pids[2]]
            env = None
        with open(self.log, "a") as log:
            self.proc = self.lab.popen(
                self.node, argv, stdout=log, stderr=subprocess.STDOUT, env=env
            )
        if self.kind == "pylvs":
            wait_for(self.status_path.exists, f"{self.node}: pylvs status file", 15)
        return self

    def status(self, vrid: int) -> dict[str, Any]:
        data = json.loads(self.status_path.read_text())
        vi: dict[str, Any] = data["instances"][f"VI_{vrid}"]
        vi["dropped"] = data["dropped"]
        return vi

    def state(self, vrid: int) -> str:
        if self.kind == "pylvs":
            return str(self.status(vrid)["state"])
        text = self.states.read_text() if self.states.exists() else ""
        lines = [ln.split() for ln in text.splitlines() if ln.startswith("INSTANCE")]
        return lines[-1][2] if lines else "INIT"

    def in_state(self, vrid: int, state: str) -> Callable[[], bool]:
        def check() -> bool:
            with contextlib.suppress(OSError, ValueError, KeyError, IndexError):
                return self.state(vrid) == state
            return False

        return check

    def kill(self, sig: int) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, sig)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Stop (SIGTERM: graceful) and return the exit status."""
        if self.proc is None:
            return 0
        stop_process(self.proc, sig, grace=10.0)
        code = self.proc.returncode
        self.proc = None
        return code

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@contextlib.contextmanager
def speakers(*items: Speaker) -> Iterator[None]:
    try:
        yield
    finally:
        for s in items:
            s.stop(signal.SIGKILL)


def neigh_mac(lab: Lab, vip: str) -> str | None:
    out = lab.run("client", ["ip", "neigh", "show", vip, "dev", "vlan"]).stdout.split()
    return out[out.index("lladdr") + 1] if "lladdr" in out else None


def test_pylvs_pair_elects_fails_over_and_preempts(lab: Lab) -> None:
    vrid, vip, adv = 61, "10.7.0.100", 0.5
    conf = {
        prio: instance(vrid, vip, prio, version=3, adv=adv, extra="NOTIFY") for prio in (150, 100)
    }
    d1 = Speaker(lab, "d1", "d1", conf[150])
    d2 = Speaker(lab, "d2", "d2", conf[100])
    limit = bound(3, 100, adv)  # d2 taking over: 1.5 + 156 x 0.5 / 256 + 0.5
    with speakers(d1, d2):
        d2.start()
        d1.start()
        wait_for(d1.in_state(vrid, "MASTER"), "d1 MASTER", 10)
        wait_for(has_vip(lab, "d1", vip), "the VIP on d1", 5)
        wait_for(d2.in_state(vrid, "BACKUP"), "d2 BACKUP", 5)
        wait_for(lacks_vip(lab, "d2", vip), "no VIP on d2", 5)
        assert d2.status(vrid)["master"] == ADDR["d1"]
        lab.run("client", ["ping", "-c1", "-W1", vip], check=True)
        assert neigh_mac(lab, vip) == lab.mac("d1", "vlan")

        # the master's link dies (its switch port): d2 takes over, d1 goes to FAULT
        lab.run_ns(lab.switch_ns, ["ip", "link", "set", "dev", lab.port("d1", "vlan"), "down"])
        took = wait_for(has_vip(lab, "d2", vip), "the VIP on d2 after d1's link died", limit)
        print(f"failover after link down: {took:.3f} s (limit {limit:.3f})")
        wait_for(d1.in_state(vrid, "FAULT"), "d1 FAULT", 5)
        wait_for(lacks_vip(lab, "d1", vip), "d1 releasing the VIP", 5)
        # gratuitous ARPs moved the client's neighbour entry without it asking
        d2_mac = lab.mac("d2", "vlan")
        wait_for(lambda: neigh_mac(lab, vip) == d2_mac, "the client's ARP entry -> d2", 2)

        # the link comes back: d1 (150) preempts d2 (100)
        lab.run_ns(lab.switch_ns, ["ip", "link", "set", "dev", lab.port("d1", "vlan"), "up"])
        took = wait_for(has_vip(lab, "d1", vip), "d1 preempting", bound(3, 150, adv) + 1)
        print(f"preemption after link up: {took:.3f} s")
        wait_for(d2.in_state(vrid, "BACKUP"), "d2 BACKUP again", 5)
        wait_for(lacks_vip(lab, "d2", vip), "d2 releasing the VIP", 5)

        # graceful stop: priority 0, d2 takes over after its skew time only
        t0 = time.monotonic()
        assert d1.stop() == 0
        wait_for(has_vip(lab, "d2", vip), "the VIP on d2 after d1 stopped", limit)
        print(f"failover after a graceful stop: {time.monotonic() - t0:.3f} s")
        assert vip not in vips(lab, "d1")
        assert d2.status(vrid)["stats"]["pri_zero_rcvd"] >= 1
        assert d1.states.read_text().split("\n")[-2] == f"INSTANCE VI_{vrid} STOP 150"
        assert "INSTANCE VI_61 FAULT 150" in d1.states.read_text()

        # back again, then SIGKILL: the VIP stays on the dead d1 but d2 takes over in time
        d1.start()
        wait_for(d1.in_state(vrid, "MASTER"), "d1 MASTER after restart", bound(3, 150, adv) + 3)
        wait_for(d2.in_state(vrid, "BACKUP"), "d2 BACKUP", 5)
        d1.kill(signal.SIGKILL)
        took = wait_for(has_vip(lab, "d2", vip), "the VIP on d2 after SIGKILL of d1", limit)
        print(f"failover after SIGKILL: {took:.3f} s (limit {limit:.3f})")
        d1.stop()
        assert vip in vips(lab, "d1")  # left behind by the killed process ...
        d1.start()  # ... and removed by the next start, before it preempts again
        wait_for(d1.in_state(vrid, "MASTER"), "d1 MASTER again", bound(3, 150, adv) + 3)
        wait_for(lacks_vip(lab, "d2", vip), "d2 releasing the VIP", 5)
        assert d1.stop() == 0
        wait_for(has_vip(lab, "d2", vip), "the VIP on d2", limit)

        # nopreempt: d1 (150) comes back but leaves d2 (100) master
        d1n = Speaker(lab, "d1", "d1n", conf[150].replace("NOTIFY", "nopreempt"))
        with speakers(d1n):
            d1n.start()
            wait_for(d1n.in_state(vrid, "BACKUP"), "d1 BACKUP", 5)
            time.sleep(bound(3, 150, adv) + 0.5)
            assert d1n.state(vrid) == "BACKUP" and vip in vips(lab, "d2")
            assert vip not in vips(lab, "d1")
            assert d2.stop() == 0  # ... until d2 goes away
            wait_for(has_vip(lab, "d1", vip), "d1 taking over", bound(3, 150, adv))
            assert d1n.stop() == 0
    assert "Traceback" not in d1.text() + d2.text()


@pytest.mark.parametrize("version", [2, 3])
def test_interop_with_keepalived(lab: Lab, version: int) -> None:
    """keepalived master + pylvs backup, then pylvs master + keepalived backup."""
    vrid, vip = 60 + version, f"10.7.0.10{version}"
    adv = 1.0 if version == 2 else 0.5
    k_hi = Speaker(lab, "d1", f"k{version}", instance(vrid, vip, 150, version=version, adv=adv,
                                                     extra="NOTIFY"), "keepalived")  # fmt: skip
    p = Speaker(lab, "d2", f"p{version}", instance(vrid, vip, 100, version=version, adv=adv))
    k_lo = Speaker(lab, "d1", f"k{version}lo", instance(vrid, vip, 50, version=version, adv=adv,
                                                        extra="NOTIFY"), "keepalived")  # fmt: skip
    with speakers(k_hi, p, k_lo):
        k_hi.start()
        p.start()
        wait_for(has_vip(lab, "d1", vip), "keepalived MASTER", bound(version, 150, adv) + 3)
        wait_for(lambda: p.status(vrid)["stats"].get("advert_rcvd", 0) >= 2, "adverts", 5)
        st = p.status(vrid)
        assert (st["state"], st["master"], st["dropped"]) == ("BACKUP", ADDR["d1"], {})
        assert vip not in vips(lab, "d2")

        k_hi.stop()  # keepalived sends priority 0 and removes its VIP
        limit = bound(version, 100, adv)
        took = wait_for(has_vip(lab, "d2", vip), "pylvs taking over from keepalived", limit)
        print(f"v{version}: pylvs took over {took:.3f} s after keepalived stopped")
        assert p.status(vrid)["stats"]["pri_zero_rcvd"] >= 1
        assert vip not in vips(lab, "d1")

        k_lo.start()  # keepalived at priority 50 hears pylvs and stays BACKUP
        wait_for(k_lo.in_state(vrid, "BACKUP"), "keepalived BACKUP", 10)
        time.sleep(master_down_interval(version, 50, adv) + MARGIN)
        assert k_lo.state(vrid) == "BACKUP" and vip not in vips(lab, "d1")
        log = k_lo.text()
        for bad in ("invalid passwd", "checksum", "wrong version", "interval mismatch"):
            assert bad not in log, log

        assert p.stop() == 0  # priority 0 from pylvs: keepalived takes over
        limit = bound(version, 50, adv)
        took = wait_for(has_vip(lab, "d1", vip), "keepalived taking over from pylvs", limit)
        print(f"v{version}: keepalived took over {took:.3f} s after pylvs stopped")
        wait_for(k_lo.in_state(vrid, "MASTER"), "keepalived MASTER", 2)
        assert "Backup received priority 0 advertisement" in k_lo.text()
        assert vip not in vips(lab, "d2")
        k_lo.stop()
        wait_for(lacks_vip(lab, "d1", vip), "keepalived releasing the VIP", 5)


def test_interop_ipv6_with_keepalived(lab: Lab) -> None:
    """VRRPv3 over IPv6 (ff02::12, the kernel's IPV6_CHECKSUM) both ways."""
    vrid, vip, adv = 66, "fd07::100", 0.5
    k = Speaker(lab, "d1", "k6", instance(vrid, vip, 150, version=3, adv=adv), "keepalived")
    p = Speaker(lab, "d2", "p6", instance(vrid, vip, 100, version=3, adv=adv))
    with speakers(k, p):
        k.start()
        p.start()
        wait_for(has_vip(lab, "d1", vip), "keepalived MASTER (IPv6)", bound(3, 150, adv) + 3)
        wait_for(lambda: p.status(vrid)["stats"].get("advert_rcvd", 0) >= 2, "adverts", 5)
        st = p.status(vrid)
        assert (st["state"], st["dropped"]) == ("BACKUP", {})
        assert st["master"].startswith("fe80::")
        k.stop()
        wait_for(has_vip(lab, "d2", vip), "pylvs taking over (IPv6)", bound(3, 100, adv))
        k.start()  # keepalived (150) preempts pylvs: it accepted pylvs's adverts meanwhile
        wait_for(has_vip(lab, "d1", vip), "keepalived preempting (IPv6)", bound(3, 150, adv) + 3)
        wait_for(lacks_vip(lab, "d2", vip), "pylvs releasing (IPv6)", 5)
        wait_for(p.in_state(vrid, "BACKUP"), "pylvs BACKUP (IPv6)", 2)
        assert "checksum" not in k.text().lower()


def test_bad_packets_are_dropped_and_counted(lab: Lab) -> None:
    v3, v2 = 64, 65
    conf = instance(v3, "10.7.0.104", 200, version=3, adv=0.5)
    conf += instance(v2, "10.7.0.105", 200, version=2, adv=1)
    d1 = Speaker(lab, "d1", "inject", conf)
    with speakers(d1):
        d1.start()
        for vrid in (v3, v2):
            wait_for(d1.in_state(vrid, "MASTER"), f"VI_{vrid} MASTER", 8)
        mac = bytes.fromhex(lab.mac("client", "vlan").replace(":", ""))
        eth = Ether(src=mac, dst="01:00:5e:00:00:12")

        def ip(ttl: int = 255, **kw: Any) -> Any:
            return IP(src=ADDR["client"], dst="224.0.0.18", ttl=ttl, proto=112, **kw)

        def v3adv(**kw: Any) -> Any:
            fields = {"vrid": v3, "priority": 254, "ipcount": 1, "addrlist": ["10.7.0.104"]}
            return VRRPv3(**{**fields, "adv": 50, **kw})

        def v2adv(pw: bytes = b"s3cret\0\0", **kw: Any) -> Any:
            a1, a2 = int.from_bytes(pw[:4], "big"), int.from_bytes(pw[4:8], "big")
            fields = {"vrid": v2, "priority": 254, "ipcount": 1, "addrlist": ["10.7.0.105"]}
            return VRRP(**{**fields, "authtype": 1, "adv": 1, "auth1": a1, "auth2": a2, **kw})

        junk = bytes(eth / ip()) + b"\x31\x40\xfe"  # a VRRP header cut short
        cases = {
            "ttl": [eth / ip(ttl=64) / v3adv(), eth / ip(ttl=1) / v2adv()],
            "checksum": [eth / ip() / v3adv(chksum=0x1234), eth / ip() / v2adv(chksum=1)],
            "version": [eth / ip() / v3adv(version=4), eth / ip() / v2adv(vrid=v3)],
            "vrid": [eth / ip() / v3adv(vrid=99), eth / ip() / v2adv(vrid=98)],
            "auth": [eth / ip() / v2adv(pw=b"wrongpw!"), eth / ip() / v2adv(authtype=0)],
            "advert_int": [eth / ip() / v2adv(adv=2)],
            "address_list": [eth / ip() / v3adv(addrlist=["10.7.0.99"])],
            "malformed": [junk, eth / ip() / v3adv(type=2), eth / ip() / v3adv(ipcount=3)],
        }
        with lab.socket("client", socket.AF_PACKET, socket.SOCK_RAW) as s:
            s.bind(("vlan", 0))
            for _round in range(3):
                for frames in cases.values():
                    for f in frames:
                        s.send(f if isinstance(f, bytes) else bytes(f))
            time.sleep(0.5)
            assert d1.proc is not None and d1.proc.poll() is None
            dropped = d1.status(v3)["dropped"]
            for reason, frames in cases.items():
                assert dropped.get(reason, 0) >= 3 * len(frames), (reason, dropped)
            assert d1.state(v3) == "MASTER" and d1.state(v2) == "MASTER"
            assert d1.status(v2)["stats"]["auth"] == 6
            # the same advert, well formed: d1 yields to priority 254
            s.send(bytes(eth / ip() / v3adv()))
            wait_for(d1.in_state(v3, "BACKUP"), "d1 yielding to a valid advert", 2)
            s.send(bytes(eth / ip() / v2adv()))
            wait_for(d1.in_state(v2, "BACKUP"), "d1 yielding to a valid v2 advert", 2)
        assert d1.stop() == 0
    assert "Traceback" not in d1.text()


def unicast(src: str, peer: str) -> str:
    return f"unicast_src_ip {src}\n unicast_peer {{\n {peer}\n }}"


def test_unicast_with_keepalived_and_reload(lab: Lab) -> None:
    """unicast_src_ip / unicast_peer (v3: the checksum uses the peer's address) against
    keepalived, and a SIGHUP reload that adds a VIP to a running master without a flap."""
    vrid, vip, vip2, adv = 67, "10.7.0.107", "10.7.0.108", 0.5
    to_d2, to_d1 = unicast(ADDR["d1"], ADDR["d2"]), unicast(ADDR["d2"], ADDR["d1"])
    k = Speaker(lab, "d1", "ku", instance(vrid, vip, 150, version=3, adv=adv, extra=to_d2),
                "keepalived")  # fmt: skip
    p = Speaker(lab, "d2", "pu", instance(vrid, vip, 100, version=3, adv=adv, extra=to_d1))
    k_lo = Speaker(lab, "d1", "kul", instance(vrid, vip, 50, version=3, adv=adv, extra=to_d2),
                   "keepalived")  # fmt: skip
    with speakers(k, p, k_lo):
        k.start()
        p.start()
        wait_for(has_vip(lab, "d1", vip), "keepalived MASTER (unicast)", bound(3, 150, adv) + 3)
        wait_for(lambda: p.status(vrid)["stats"].get("advert_rcvd", 0) >= 2, "adverts", 5)
        assert (p.status(vrid)["state"], p.status(vrid)["dropped"]) == ("BACKUP", {})
        k.stop()
        wait_for(has_vip(lab, "d2", vip), "pylvs taking over (unicast)", bound(3, 100, adv))
        wait_for(p.in_state(vrid, "MASTER"), "pylvs MASTER", 2)

        # reload with a second VIP: still MASTER (became master once), both VIPs there
        p.conf.write_text(
            p.conf.read_text().replace(f"{vip}/24", f"{vip}/24\n {vip2}/24 label vlan:r")
        )
        p.kill(signal.SIGHUP)
        wait_for(has_vip(lab, "d2", vip2), "the VIP added by the reload", 5)
        assert p.status(vrid)["stats"].get("become_master") == 1
        assert {vip, vip2} <= vips(lab, "d2")
        assert "vlan:r" in lab.run("d2", ["ip", "addr", "show", "dev", "vlan"]).stdout

        k_lo.conf.write_text(k_lo.conf.read_text().replace(f"{vip}/24", f"{vip}/24\n {vip2}/24"))
        k_lo.start()  # keepalived (50) accepts pylvs's unicast adverts: stays BACKUP
        time.sleep(master_down_interval(3, 50, adv) + 1.0)
        assert vip not in vips(lab, "d1")
        assert "Entering MASTER STATE" not in k_lo.text()
        assert "checksum" not in k_lo.text().lower()
        assert p.stop() == 0
        wait_for(has_vip(lab, "d1", vip2), "keepalived taking over (unicast)", bound(3, 50, adv))
        assert not {vip, vip2} & vips(lab, "d2")


def test_track_script_moves_the_vip(lab: Lab) -> None:
    """A vrrp_script (weight 0) failing puts the master in FAULT; passing again, back."""
    vrid, vip, adv = 68, "10.7.0.109", 0.5
    flag = lab.new_path("healthy")
    flag.write_text("")
    script = f'vrrp_script chk {{\n script "/usr/bin/test -e {flag}"\n interval 1\n}}\n'
    track = "track_script {\n chk\n }\n NOTIFY"
    d1 = Speaker(lab, "d1", "s1", script + instance(vrid, vip, 150, version=3, adv=adv,
                                                    extra=track))  # fmt: skip
    d2 = Speaker(lab, "d2", "s2", instance(vrid, vip, 100, version=3, adv=adv))
    with speakers(d1, d2):
        d1.start()
        d2.start()
        wait_for(has_vip(lab, "d1", vip), "d1 MASTER", bound(3, 150, adv) + 3)
        assert json.loads(d1.status_path.read_text())["scripts"] == {"chk": "up"}
        flag.unlink()
        wait_for(d1.in_state(vrid, "FAULT"), "d1 FAULT after its script failed", 3)
        took = wait_for(has_vip(lab, "d2", vip), "d2 taking over", bound(3, 100, adv))
        print(f"failover after the script failed: <= {took:.3f} s after FAULT")
        assert vip not in vips(lab, "d1")
        flag.write_text("")
        wait_for(has_vip(lab, "d1", vip), "d1 back", 1.5 + bound(3, 150, adv))
        wait_for(lacks_vip(lab, "d2", vip), "d2 releasing", 5)
        states = d1.states.read_text().split("\n")
        assert f"INSTANCE VI_{vrid} FAULT 150" in states
        assert states[-2] == f"INSTANCE VI_{vrid} MASTER 150"


@pytest.mark.parametrize(
    ("argv", "timeout", "ok", "most"),
    [
        (["true"], 5.0, True, 2.0),
        (["false"], 5.0, False, 2.0),
        (["/nonexistent/check"], 5.0, False, 1.0),
        (["sh", "-c", "exit 3"], 5.0, False, 2.0),
        (["sleep", "30"], 0.3, False, 2.0),  # SIGTERM after the timeout: a failure
        (["sh", "-c", "trap '' TERM; sleep 30"], 0.3, False, 4.0),  # SIGKILL 2 s later
    ],
)
def test_run_check(argv: list[str], timeout: float, ok: bool, most: float) -> None:
    t0 = time.monotonic()
    assert asyncio.run(run_check(argv, timeout)) is ok
    assert time.monotonic() - t0 < most


def test_manager_in_process(lab: Lab) -> None:
    """The API pylvsd uses: VrrpManager in this process's event loop (on a thread that
    joined d1's namespace): start, on_change, status, graceful stop."""
    vip = "10.7.0.110"
    w = Where("api", 1)
    conf = VrrpConf(
        instances=(InstanceConf(w, "VI_API", "vlan", 70, priority=255, version=3,
                                advert_int=0.3, vips=(VirtualAddress(w, vip, 24),)),)
    )  # fmt: skip
    changes: list[tuple[str, str]] = []

    async def scenario() -> tuple[dict[str, Any], set[str], dict[str, Any]]:
        mgr = VrrpManager(on_change=lambda c: changes.append((str(c.old), str(c.new))))
        await mgr.start(conf)
        for _ in range(100):  # the owner is master at once; the address follows
            await asyncio.sleep(0.02)
            if vip in vips(lab, "d1"):
                break
        await asyncio.sleep(0.5)
        running = mgr.status()
        held = vips(lab, "d1")
        await mgr.stop()
        return running, held, mgr.status()

    running, held, stopped = in_netns(lab.ns("d1"), lambda: asyncio.run(scenario()))
    vi = running["instances"]["VI_API"]
    assert (vi["state"], vi["priority"], vi["master"]) == ("MASTER", 255, ADDR["d1"])
    assert vi["stats"]["advert_sent"] >= 2 and running["errors"] == {}
    assert vip in held and vip not in vips(lab, "d1")  # released by the graceful stop
    assert stopped["instances"]["VI_API"]["stats"]["pri_zero_sent"] == 1
    assert changes == [("INIT", "MASTER"), ("MASTER", "STOP")]
    assert stopped["instances"]["VI_API"]["state"] == sm.State.STOP
