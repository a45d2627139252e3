"""``pylvs realserver start|stop|status``: the steps, with an undo record.

start (root) configures a real server for one VIP, in the network namespace
it runs in:

- DR and TUN: for an IPv4 VIP, ``arp_ignore=1`` and ``arp_announce=2`` on
  ``all``, ``lo`` and the receiving devices (``--dev``, else every device
  except lo present at start), so the host neither answers ARP for the VIP
  nor uses it as an ARP source; reverse-path filtering is relaxed where it
  is strict (``rp_filter`` 1 -> 0 on ``all``, the receiving devices and the
  tunnel device; 0 and 2 are left alone).  An IPv6 VIP needs no sysctl:
  Linux answers neighbour solicitations only for addresses of the receiving
  device, never for lo's.
- DR: the VIP as /32 (/128) on lo (the seeds' ``lo:0``; the host route they
  add is the local route the kernel makes by itself).
- TUN with a kernel that has ipip (tunl0, --tun-type ipip): the VIP on
  tunl0, tunl0 up, as the seeds do.  Otherwise (this kernel, or GUE): the VIP
  on lo and the userspace decapsulator (``decap``) started as a daemon with
  its TUN device ``pylvs<hex>`` (up, rp_filter 0, IPv6 off for an IPv4 VIP).
  accept_local is not needed: the inner source is the client, not us.

Every change is recorded with the value it replaced in ``state.json`` under
``/run/pylvs/realserver/<VIP>[@<netns>]/`` ($PYLVS_REALSERVER_DIR replaces
the base), and stop restores exactly that: values back, addresses and
devices it added removed, the decapsulator stopped.  start twice for one
VIP is an error (stop first); stop without a record says so and succeeds.
A failed start undoes what it had done.  No pyroute2: ``ip`` and /proc/sys.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import zlib
from dataclasses import asdict, dataclass, field
from typing import Any

import pylvs

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
BASE_DIR = "/run/pylvs/realserver"
PROC_SYS = "/proc/sys"
DECAP_MODULE = "pylvs.realserver.decap"


class RealServerError(Exception):
    """A failure to report as one line; ``code`` is the exit status."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class SysctlChange:
    key: str  # path under /proc/sys, e.g. net/ipv4/conf/eth0/arp_ignore
    previous: str
    value: str


@dataclass
class AddrChange:
    dev: str
    prefix: str  # "10.0.0.100/32"
    added: bool  # False: it was there already, stop leaves it


@dataclass
class State:
    vip: str
    mode: str  # "dr" | "tun"
    tunnel: str  # "none" | "kernel-ipip" | "decap"
    tun_type: str
    tun_port: int
    netns: str
    devs: list[str]
    sysctls: list[SysctlChange] = field(default_factory=list)
    addrs: list[AddrChange] = field(default_factory=list)
    tunl0_created: bool = False
    tunl0_was_up: bool = True
    decap_pid: int = 0
    decap_dev: str = ""
    started: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> State:
        d: dict[str, Any] = json.loads(text)
        d["sysctls"] = [SysctlChange(**s) for s in d.get("sysctls", [])]
        d["addrs"] = [AddrChange(**a) for a in d.get("addrs", [])]
        return cls(**d)


# -- arguments ----------------------------------------------------------------
def parse_vip(text: str) -> IPAddress:
    """A VIP from the command line ("10.0.0.100", "10.0.0.100/32", "2001:db8::1")."""
    addr, _, plen = text.partition("/")
    try:
        vip = ipaddress.ip_address(addr)
    except ValueError:
        raise RealServerError(f"bad VIP {text!r}: not an IPv4 or IPv6 address", 2) from None
    if plen and plen != str(vip.max_prefixlen):
        raise RealServerError(f"bad VIP {text!r}: a VIP is one address (/{vip.max_prefixlen})", 2)
    if vip.is_unspecified or vip.is_multicast or vip.is_loopback:
        raise RealServerError(f"bad VIP {text!r}: unspecified, multicast or loopback", 2)
    if isinstance(vip, ipaddress.IPv4Address) and vip == ipaddress.IPv4Address("255.255.255.255"):
        raise RealServerError(f"bad VIP {text!r}: broadcast", 2)
    return vip


def check_devs(devs: list[str]) -> list[str]:
    """The devices given with --dev, each checked to exist in this namespace."""
    out: list[str] = []
    for d in devs:
        if d == "lo" or not d:
            raise RealServerError(f"--dev {d!r}: name a receiving device, not lo", 2)
        try:
            socket.if_nametoindex(d)
        except OSError:
            raise RealServerError(f"unknown device {d!r} (see `ip link`)", 2) from None
        if d not in out:
            out.append(d)
    return out


def require_root() -> None:
    if os.geteuid() != 0:
        raise RealServerError("must be run as root (it changes addresses and sysctls)", 1)


# -- the system ---------------------------------------------------------------
def sysctl_name(key: str) -> str:
    """/proc/sys path -> sysctl's dotted name (dots in a device name shown as /)."""
    return ".".join(p.replace(".", "/") for p in key.split("/"))


def read_sysctl(key: str) -> str | None:
    try:
        with open(os.path.join(PROC_SYS, key)) as f:
            return f.read().strip()
    except OSError:
        return None


def write_sysctl(key: str, value: str) -> None:
    try:
        with open(os.path.join(PROC_SYS, key), "w") as f:
            f.write(value)
    except OSError as e:
        raise RealServerError(f"cannot set {sysctl_name(key)}={value}: {e.strerror}") from None


def conf_key(dev: str, name: str) -> str:
    return f"net/ipv4/conf/{dev}/{name}"


def ipv4_devices() -> list[str]:
    """This namespace's devices (per /proc/sys/net/ipv4/conf), lo and ours excluded."""
    try:
        names = sorted(os.listdir(os.path.join(PROC_SYS, "net/ipv4/conf")))
    except OSError:
        return []
    return [n for n in names if n not in ("all", "default", "lo") and not n.startswith("pylvs")]


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        r = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    except FileNotFoundError:
        raise RealServerError("the `ip` command (iproute2) is not installed") from None
    if check and r.returncode != 0:
        msg = r.stderr.strip() or f"exit {r.returncode}"
        raise RealServerError(f"ip {' '.join(args)}: {msg}")
    return r


def has_addr(dev: str, vip: IPAddress) -> bool:
    r = ip("-j", "addr", "show", "dev", dev, check=False)
    if r.returncode != 0:
        return False
    for link in json.loads(r.stdout or "[]"):
        for a in link.get("addr_info", []):
            if a.get("local") == str(vip) and a.get("prefixlen") == vip.max_prefixlen:
                return True
    return False


def link_up(dev: str) -> bool | None:
    """Whether ``dev`` is administratively up; None if it does not exist."""
    r = ip("-j", "link", "show", "dev", dev, check=False)
    if r.returncode != 0:
        return None
    links = json.loads(r.stdout or "[]")
    return bool(links) and "UP" in links[0].get("flags", [])


def netns_tag() -> str:
    """This network namespace: its `ip netns` name, "" for init's, else netns-<inode>."""
    try:
        ino = os.stat("/proc/self/ns/net").st_ino
    except OSError:
        return ""
    try:
        for name in sorted(os.listdir("/run/netns")):
            if os.stat(os.path.join("/run/netns", name)).st_ino == ino:
                return name
    except OSError:
        pass
    try:
        if os.stat("/proc/1/ns/net").st_ino == ino:
            return ""
    except OSError:
        pass  # pid 1 hidden (a sandbox): cannot tell, stay unique
    return f"netns-{ino}"


def state_dir(vip: IPAddress) -> str:
    base = os.environ.get("PYLVS_REALSERVER_DIR") or BASE_DIR
    tag = netns_tag()
    return os.path.join(base, f"{vip}@{tag}" if tag else str(vip))


def load_state(vip: IPAddress) -> State | None:
    path = os.path.join(state_dir(vip), "state.json")
    try:
        with open(path) as f:
            return State.from_json(f.read())
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as e:
        raise RealServerError(f"unreadable state {path}: {e}") from None


def save_state(st: State) -> None:
    d = state_dir(ipaddress.ip_address(st.vip))
    tmp = os.path.join(d, "state.json.tmp")
    with open(tmp, "w") as f:
        f.write(st.to_json())
    os.replace(tmp, os.path.join(d, "state.json"))


def tun_device(vip: IPAddress) -> str:
    """The decapsulator's TUN device name for a VIP (<= 15 characters)."""
    if isinstance(vip, ipaddress.IPv4Address):
        return f"pylvs{int(vip):08x}"
    return f"pylvs6{zlib.crc32(vip.packed):08x}"


def kernel_ipip() -> tuple[bool, bool]:
    """(the kernel has ipip, we created tunl0 to find out)."""
    tunl0 = os.path.join(PROC_SYS, "net/ipv4/conf/tunl0")
    if os.path.isdir("/sys/module/ipip") or os.path.isdir(tunl0):
        return True, False
    r = ip("link", "add", "tunl0", "type", "ipip", check=False)
    has = os.path.isdir(tunl0)
    return has, has and r.returncode == 0


def decap_alive(pid: int, vip: str) -> bool:
    """``pid`` is a running decapsulator for ``vip`` (not a reused pid)."""
    if pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                return False
    except OSError:
        return False
    return DECAP_MODULE.encode() in argv and vip.encode() in argv


# -- start --------------------------------------------------------------------
class _Start:
    """start's steps; each records its undo in ``st`` before the next one runs."""

    def __init__(self, st: State) -> None:
        self.st = st

    def sysctl(self, key: str, value: str, only_if: str | None = None) -> None:
        cur = read_sysctl(key)
        if cur is None:
            raise RealServerError(f"no sysctl {sysctl_name(key)}")
        if cur == value or (only_if is not None and cur != only_if):
            return
        self.st.sysctls.append(SysctlChange(key, cur, value))
        write_sysctl(key, value)

    def addr(self, dev: str, vip: IPAddress) -> None:
        prefix = f"{vip}/{vip.max_prefixlen}"
        if has_addr(dev, vip):
            self.st.addrs.append(AddrChange(dev, prefix, False))
            return
        ip("addr", "add", prefix, "dev", dev)
        self.st.addrs.append(AddrChange(dev, prefix, True))

    def arp(self, devs: list[str]) -> None:
        for dev in ["all", "lo", *devs]:
            self.sysctl(conf_key(dev, "arp_ignore"), "1")
            self.sysctl(conf_key(dev, "arp_announce"), "2")

    def rp_filter(self, devs: list[str]) -> None:
        for dev in ["all", *devs]:
            self.sysctl(conf_key(dev, "rp_filter"), "0", only_if="1")


def start(
    vip: IPAddress,
    mode: str,
    devs: list[str] | None = None,
    tun_type: str = "ipip",
    tun_port: int = 0,
) -> State:
    """Configure this host as a real server for ``vip``; returns the record."""
    require_root()
    if mode not in ("dr", "tun"):
        raise RealServerError(f"bad mode {mode!r}: dr or tun", 2)
    if tun_type not in ("ipip", "gue"):
        raise RealServerError(f"bad tunnel type {tun_type!r}: ipip or gue", 2)
    if mode == "tun" and tun_type == "gue" and not 0 < tun_port < 65536:
        raise RealServerError("--tun-type gue needs --tun-port 1..65535", 2)
    chosen = check_devs(devs) if devs else ipv4_devices()
    d = state_dir(vip)
    if os.path.exists(os.path.join(d, "state.json")):
        raise RealServerError(
            f"already started for {vip} (record in {d}); run `pylvs realserver stop --vip {vip}`"
        )
    st = State(str(vip), mode, "none", tun_type, tun_port, netns_tag(), chosen, started=time.time())
    os.makedirs(d, exist_ok=True)
    s = _Start(st)
    v4 = isinstance(vip, ipaddress.IPv4Address)
    try:
        has_ipip = False
        if mode == "tun" and tun_type == "ipip":
            has_ipip, st.tunl0_created = kernel_ipip()
        if has_ipip:
            st.tunnel = "kernel-ipip"
            if v4:
                s.arp([*chosen, "tunl0"])
                s.rp_filter([*chosen, "tunl0"])
            st.tunl0_was_up = bool(link_up("tunl0"))
            s.addr("tunl0", vip)
            ip("link", "set", "dev", "tunl0", "up")
        else:
            if v4:
                s.arp(chosen)
                s.rp_filter(chosen)
            s.addr("lo", vip)
            if mode == "tun":
                st.tunnel = "decap"
                _start_decap(st, s)
        save_state(st)
    except BaseException:
        undo(st)
        shutil.rmtree(d, ignore_errors=True)
        raise
    return st


def _start_decap(st: State, s: _Start) -> None:
    vip = ipaddress.ip_address(st.vip)
    dev = tun_device(vip)
    if link_up(dev) is not None:
        raise RealServerError(f"device {dev} exists already (another decapsulator for {vip}?)")
    d = state_dir(vip)
    cmd = [sys.executable, "-m", DECAP_MODULE, "--vip", st.vip, "--dev", dev, "--state-dir", d]
    cmd += ["--tun-type", st.tun_type, "--tun-port", str(st.tun_port), "--daemon"]
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(pylvs.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30, env=env, cwd="/")
    except subprocess.TimeoutExpired:
        raise RealServerError("the decapsulator did not start within 30 s") from None
    out = r.stdout.strip()
    if r.returncode != 0 or not out.isdigit():
        raise RealServerError(f"the decapsulator failed: {r.stderr.strip() or out}")
    st.decap_pid = int(out)
    st.decap_dev = dev
    if isinstance(vip, ipaddress.IPv4Address):
        s.sysctl(conf_key(dev, "rp_filter"), "0")
        if os.path.exists(os.path.join(PROC_SYS, "net/ipv6/conf", dev)):
            s.sysctl(f"net/ipv6/conf/{dev}/disable_ipv6", "1")
    ip("link", "set", "dev", dev, "up")


# -- stop ---------------------------------------------------------------------
def stop_decap(pid: int, vip: str, dev: str, timeout: float = 5.0) -> None:
    if decap_alive(pid, vip):
        os.kill(pid, signal.SIGTERM)
        end = time.monotonic() + timeout
        while decap_alive(pid, vip) and time.monotonic() < end:
            time.sleep(0.05)
        if decap_alive(pid, vip):
            os.kill(pid, signal.SIGKILL)
    end = time.monotonic() + timeout
    while dev and link_up(dev) is not None and time.monotonic() < end:
        time.sleep(0.05)
    if dev and link_up(dev) is not None:
        raise RealServerError(f"device {dev} is still there after the decapsulator stopped")


def undo(st: State) -> list[str]:
    """Revert ``st``'s changes, newest first; returns the errors (each step tried)."""
    errors: list[str] = []
    vip = ipaddress.ip_address(st.vip)

    def attempt(step: str, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except (RealServerError, OSError) as e:
            errors.append(f"{step}: {e}")

    if st.decap_pid:
        attempt("stopping the decapsulator", stop_decap, st.decap_pid, st.vip, st.decap_dev)
    for a in reversed(st.addrs):
        if a.added and has_addr(a.dev, vip):
            attempt(f"removing {a.prefix} from {a.dev}", ip, "addr", "del", a.prefix, "dev", a.dev)
    if st.tunnel == "kernel-ipip":
        if st.tunl0_created:
            attempt("deleting tunl0", ip, "link", "del", "tunl0")
        elif not st.tunl0_was_up:
            attempt("setting tunl0 down", ip, "link", "set", "dev", "tunl0", "down")
    elif st.tunl0_created:
        attempt("deleting tunl0", ip, "link", "del", "tunl0")
    for c in reversed(st.sysctls):
        if read_sysctl(c.key) is not None:  # a device that is gone has nothing to restore
            attempt(f"restoring {sysctl_name(c.key)}", write_sysctl, c.key, c.previous)
    return errors


def stop(vip: IPAddress) -> State | None:
    """Undo what start recorded for ``vip``; None if there was no record."""
    require_root()
    st = load_state(vip)
    if st is None:
        return None
    errors = undo(st)
    if errors:
        raise RealServerError("stop incomplete (record kept, run stop again): " + "; ".join(errors))
    shutil.rmtree(state_dir(vip), ignore_errors=True)
    return st


# -- status -------------------------------------------------------------------
@dataclass
class Check:
    ok: bool
    what: str


@dataclass
class Status:
    vip: str
    netns: str
    mode: str
    tunnel: str
    state: State | None
    checks: list[Check]
    counters: dict[str, int] | None = None

    @property
    def code(self) -> int:
        """0 fully configured, 3 not configured, 1 partially (as LSB status)."""
        if all(c.ok for c in self.checks):
            return 0
        if self.state is None and not self.checks[0].ok:
            return 3
        return 1


def read_counters(vip: IPAddress, pid: int, wait: float = 1.0) -> dict[str, int] | None:
    """The decapsulator's counters, fresh: SIGUSR1, then wait for its next write."""
    path = os.path.join(state_dir(vip), "counters.json")

    def load() -> dict[str, Any] | None:
        try:
            with open(path) as f:
                doc: dict[str, Any] = json.load(f)
            return doc
        except (OSError, ValueError):
            return None

    before = load()
    try:
        signalled = decap_alive(pid, str(vip))
        if signalled:
            os.kill(pid, signal.SIGUSR1)
    except OSError:  # not root: the last periodic write will do
        signalled = False
    end = time.monotonic() + (wait if signalled else 0.0)
    while time.monotonic() < end:
        now = load()
        if now is not None and (before is None or now.get("seq") != before.get("seq")):
            before = now
            break
        time.sleep(0.02)
    if before is None:
        return None
    counters: dict[str, int] = before.get("counters", {})
    return counters


def status(vip: IPAddress, mode: str | None = None, devs: list[str] | None = None) -> Status:
    """What is in place for ``vip`` in this namespace (no root needed to look)."""
    st = load_state(vip)
    if st is not None:
        mode, tunnel, chosen = st.mode, st.tunnel, st.devs
    else:
        mode = mode or "dr"
        chosen = check_devs(devs) if devs else ipv4_devices()
        tunnel = "none"
        if mode == "tun":
            tunl0 = os.path.isdir(os.path.join(PROC_SYS, "net/ipv4/conf/tunl0"))
            tunnel = "kernel-ipip" if tunl0 and has_addr("tunl0", vip) else "decap"
    vip_dev = "tunl0" if tunnel == "kernel-ipip" else "lo"
    checks = [Check(has_addr(vip_dev, vip), f"VIP {vip}/{vip.max_prefixlen} on {vip_dev}")]
    extra = ["tunl0"] if tunnel == "kernel-ipip" else []
    decap_dev = (st.decap_dev if st else "") or tun_device(vip)
    if isinstance(vip, ipaddress.IPv4Address):
        for dev in ["all", "lo", *chosen, *extra]:
            for name, want in (("arp_ignore", "1"), ("arp_announce", "2")):
                key = conf_key(dev, name)
                val = read_sysctl(key)
                checks.append(Check(val == want, f"{sysctl_name(key)} = {val} (want {want})"))
        rp = ["all", *chosen, *extra] + ([decap_dev] if tunnel == "decap" else [])
        for dev in rp:
            key = conf_key(dev, "rp_filter")
            val = read_sysctl(key)
            ok = val is not None and val != "1"
            checks.append(Check(ok, f"{sysctl_name(key)} = {val} (want 0 or 2, not strict)"))
    counters = None
    if tunnel == "kernel-ipip":
        checks.append(Check(bool(link_up("tunl0")), "tunl0 up (kernel ipip)"))
    elif tunnel == "decap":
        pid = st.decap_pid if st else 0
        alive = decap_alive(pid, str(vip))
        checks.append(
            Check(alive, f"decapsulator pid {pid or '-'} {'alive' if alive else 'not running'}")
        )
        up = link_up(decap_dev)
        state_word = "missing" if up is None else ("up" if up else "down")
        checks.append(Check(bool(up), f"tunnel device {decap_dev} {state_word}"))
        counters = read_counters(vip, pid) if st else None
    return Status(str(vip), netns_tag(), mode, tunnel, st, checks, counters)
