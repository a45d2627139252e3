"""VRRP on the wire: the asyncio adapter around the pure ``pylvs.ha.vrrp`` state machine.

Mirrors keepalived's vrrp_scheduler.c / vrrp.c I/O (open_vrrp_read_socket,
open_vrrp_send_socket, vrrp_send_pkt, vrrp_dispatcher_read), vrrp_ipaddress.c
(addresses, here through ``ip addr add/del ... dev IF``), vrrp_arp.c / vrrp_ndisc.c
(gratuitous ARP and unsolicited neighbour advertisements through an AF_PACKET socket,
frames from ``pylvs.wire.arp``), vrrp_if.c's link tracking (an rtnetlink RTMGRP_LINK
socket; up = IFF_UP and IFF_RUNNING), and the notify / vrrp_script children
(asyncio subprocesses; a script past its timeout gets SIGTERM, then SIGKILL, and fails).

One raw IPPROTO_VRRP (112) socket per interface and family: bound to the interface,
the multicast group joined on it (224.0.0.18 / ff02::12 unless configured otherwise),
multicast TTL / hop limit 255, multicast loop off.  IPv4 advertisements are sent
with IP_HDRINCL as keepalived builds them (TOS 0xc0, TTL 255; ``unicast_ttl`` for
unicast peers); the TTL is read back from the received header and checked by the
state machine.  IPv6 uses IPV6_CHECKSUM (the kernel computes and verifies the
pseudo-header checksum) and IPV6_RECVHOPLIMIT / IPV6_RECVPKTINFO.

Dropped packets are counted by reason (``status()["dropped"]``): malformed, version,
checksum (the codec), vrid (not ours: ignored), ttl, auth, advert_int, address_list,
unicast_src (the instance checks).

``VrrpManager`` is usable alone; ``python -m pylvs.ha.vrrp_io -f keepalived.conf``
runs it (SIGTERM/SIGINT: graceful stop, SIGHUP: reload, ``--status FILE``: the
status as JSON, rewritten when it changes).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import ipaddress
import json
import logging
import os
import signal
import socket
import struct
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pylvs.ha import vrrp as sm
from pylvs.ha.vrrp_conf import VrrpConf
from pylvs.wire import arp
from pylvs.wire import vrrp as wire

log = logging.getLogger("pylvs.vrrp")

SIOCGIFFLAGS = 0x8913
SIOCGIFADDR = 0x8915
SIOCGIFHWADDR = 0x8927
IFF_UP = 0x1
IFF_RUNNING = 0x40
IP_MULTICAST_ALL = 49
RTMGRP_LINK = 1
RTM_NEWLINK = 16
RTM_DELLINK = 17
IFLA_IFNAME = 3
SCRIPT_KILL_GRACE = 2.0
_NLMSG = struct.Struct("=IHHII")
_IFINFO = struct.Struct("=BxHiII")
_RTA = struct.Struct("=HH")


# -- interface facts (ioctl and /proc, so they follow the network namespace) ----------------


def _ifreq(name: str, request: int) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        buf = struct.pack("16s16x", name.encode()[:15])
        return fcntl.ioctl(s.fileno(), request, buf)


def link_up(name: str) -> bool:
    """keepalived's IF_FLAGS_UP: administratively up and running (carrier); False if absent."""
    try:
        flags = struct.unpack_from("H", _ifreq(name, SIOCGIFFLAGS), 16)[0]
    except OSError:
        return False
    return bool(flags & IFF_UP and flags & IFF_RUNNING)


def hw_address(name: str) -> bytes:
    return _ifreq(name, SIOCGIFHWADDR)[18:24]


def primary_address(name: str, family: int) -> str:
    """The interface's primary IPv4 address, or its IPv6 link-local address."""
    if family == 4:
        return socket.inet_ntoa(_ifreq(name, SIOCGIFADDR)[20:24])
    with open("/proc/net/if_inet6") as f:
        for line in f:
            hexaddr, _idx, _plen, scope, _flags, dev = line.split()
            if dev == name and int(scope, 16) == 0x20:
                return str(ipaddress.IPv6Address(bytes.fromhex(hexaddr)))
    raise OSError(f"{name} has no IPv6 link-local address")


# -- sockets ----------------------------------------------------------------------------


@dataclass
class VrrpSocket:
    """The raw VRRP socket of one interface and family."""

    interface: str
    family: int
    ifindex: int
    sock: socket.socket
    groups: set[str] = field(default_factory=set)

    @classmethod
    def open(cls, interface: str, family: int) -> VrrpSocket:
        ifindex = socket.if_nametoindex(interface)
        af = socket.AF_INET6 if family == 6 else socket.AF_INET
        s = socket.socket(af, socket.SOCK_RAW, wire.IPPROTO_VRRP)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
            if family == 4:
                s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
                s.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_ALL, 0)
                s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, wire.TTL)
                s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
                mreqn = struct.pack("4s4si", bytes(4), bytes(4), ifindex)
                s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, mreqn)
            else:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_CHECKSUM, 6)
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, wire.TTL)
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, wire.TTL)
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
            s.setblocking(False)
        except BaseException:
            s.close()
            raise
        return cls(interface, family, ifindex, s)

    def join(self, group: str) -> None:
        if group in self.groups:
            return
        addr = ipaddress.ip_address(group).packed
        if self.family == 4:
            mreqn = struct.pack("4s4si", addr, bytes(4), self.ifindex)
            self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreqn)
        else:
            mreq = struct.pack("16sI", addr, self.ifindex)
            self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
        self.groups.add(group)

    def send(self, act: sm.SendAdvert, ident: int) -> None:
        for dst in act.dst:
            ttl = act.ttl if dst not in self.groups else wire.TTL
            if self.family == 4:
                pkt = wire.build_ip4(act.advert, act.src, dst, ttl=ttl, ident=ident)
                self.sock.sendto(pkt, (dst, 0))
            else:
                msg = wire.build(act.advert, act.src, dst)
                self.sock.sendto(msg, (dst, 0, 0, self.ifindex))

    def receive(self) -> tuple[str, str | None, int | None, wire.Advert] | str | None:
        """One packet: (src, dst, ttl, advert), a drop reason, or None (nothing there)."""
        try:
            if self.family == 4:
                data = self.sock.recv(65535)
                got = wire.parse_ip4(data, alt_dst=wire.MCAST_GROUP4)
                if isinstance(got, str):
                    return got
                return got.src, got.dst, got.ttl, got.advert
            data, anc, _flags, addr = self.sock.recvmsg(65535, 256)
        except (BlockingIOError, InterruptedError):
            return None
        src = addr[0].split("%")[0]
        dst: str | None = None
        hops: int | None = None
        for level, kind, value in anc:
            if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_HOPLIMIT:
                hops = int.from_bytes(value[:4], sys.byteorder)
            elif level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO:
                dst = str(ipaddress.IPv6Address(value[:16]))
        adv = wire.parse(data, src, dst or wire.MCAST_GROUP6, alt_dst=wire.MCAST_GROUP6)
        if isinstance(adv, str):
            return adv
        return src, dst, hops, adv


class LinkMonitor:
    """RTM_NEWLINK / RTM_DELLINK messages of the namespace -> (name, up) callbacks."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        self.sock.bind((0, RTMGRP_LINK))
        self.sock.setblocking(False)

    def read(self) -> list[tuple[str, bool]]:
        out: list[tuple[str, bool]] = []
        while True:
            try:
                data = self.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return out
            except OSError as e:  # ENOBUFS: missed messages, the caller re-reads flags
                log.warning("link monitor: %s", e)
                out.append(("*", False))
                return out
            out += self._parse(data)

    @staticmethod
    def _parse(data: bytes) -> list[tuple[str, bool]]:
        out = []
        off = 0
        while off + _NLMSG.size <= len(data):
            length, kind, _flags, _seq, _pid = _NLMSG.unpack_from(data, off)
            if length < _NLMSG.size:
                break
            if kind in (RTM_NEWLINK, RTM_DELLINK):
                body = off + _NLMSG.size
                _fam, _type, _index, flags, _change = _IFINFO.unpack_from(data, body)
                a = body + _IFINFO.size
                while a + _RTA.size <= off + length:
                    alen, atype = _RTA.unpack_from(data, a)
                    if alen < _RTA.size:
                        break
                    if atype == IFLA_IFNAME:
                        name = data[a + 4 : a + alen].split(b"\0")[0].decode(errors="replace")
                        up = kind == RTM_NEWLINK and bool(flags & IFF_UP and flags & IFF_RUNNING)
                        out.append((name, up))
                    a += (alen + 3) & ~3
            off += (length + 3) & ~3
        return out

    def close(self) -> None:
        self.sock.close()


# -- the manager ---------------------------------------------------------------------------


class VrrpManager:
    """Runs the vrrp_instances of a ``VrrpConf`` in the current asyncio loop and network
    namespace: ``await start(conf)``, ``await reload(conf)``, ``await stop()``,
    ``status()``.  ``ip`` is the iproute2 binary used for the virtual addresses;
    ``on_change`` is called with every ``StateChange`` (e.g. to move an IPVS sync
    daemon between master and backup, as keepalived's lvs_sync_daemon follows its
    vrrp_instance); it must not block."""

    def __init__(
        self, *, ip: str = "ip", on_change: Callable[[sm.StateChange], None] | None = None
    ) -> None:
        self.ip = ip
        self.on_change = on_change
        self.system: sm.VrrpSystem | None = None
        self.conf: VrrpConf | None = None
        self.sockets: dict[tuple[str, int], VrrpSocket] = {}
        self.errors: dict[str, int] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._queue: asyncio.Queue[sm.Action | None] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._scripts: list[asyncio.Task[None]] = []
        self._children: set[asyncio.Task[None]] = set()
        self._links: LinkMonitor | None = None
        self._garp: dict[str, socket.socket] = {}
        self._ident = 0

    # -- life cycle ------------------------------------------------------------------------

    async def start(self, conf: VrrpConf) -> None:
        """Open the sockets and start every instance (raises OSError when an interface
        is missing or has no address)."""
        if self.system is not None:
            raise RuntimeError("VrrpManager already started")
        self._loop = asyncio.get_running_loop()
        self._worker = asyncio.create_task(self._work(), name="vrrp-actions")
        self._links = LinkMonitor()
        self._loop.add_reader(self._links.sock.fileno(), self._on_links)
        self._activate(self._prepare(conf))

    async def reload(self, conf: VrrpConf) -> None:
        """keepalived's reload (``VrrpSystem.start(previous=...)``): masters still
        configured stay MASTER, removed ones send priority 0 and release their
        addresses, vrrp_scripts keep their state.  Raises, changing nothing, when the
        new configuration cannot be used (a missing interface...)."""
        old = self.system
        if old is None:
            await self.start(conf)
            return
        system = self._prepare(conf)
        self._stop_scripts()
        if self._timer is not None:
            self._timer.cancel()
        self._activate(system, old)

    async def stop(self, graceful: bool = True) -> None:
        """Stop: ``graceful`` masters send priority 0, remove their addresses and every
        instance notifies STOP (keepalived's shutdown); otherwise everything is left as
        it is (like keepalived --dont-release-vrrp)."""
        if self.system is None:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._stop_scripts()
        if graceful:
            self._execute(self.system.handle(sm.Shutdown(), self._now()))
        self._queue.put_nowait(None)
        if self._worker is not None:
            await self._worker
        if self._children:
            await asyncio.wait(list(self._children), timeout=5.0)
        assert self._loop is not None
        if self._links is not None:
            self._loop.remove_reader(self._links.sock.fileno())
            self._links.close()
        for vs in self.sockets.values():
            self._loop.remove_reader(vs.sock.fileno())
            vs.sock.close()
        for s in self._garp.values():
            s.close()
        self.sockets.clear()
        self._garp.clear()

    def status(self) -> dict[str, object]:
        """JSON-able: instances (state, priority, master, counters), sync groups,
        scripts, dropped packets by reason, I/O errors."""
        if self.system is None:
            return {"instances": {}, "dropped": {}, "errors": {}}
        out = self.system.status(self._now())
        out["errors"] = dict(self.errors)
        out["sockets"] = [f"{k[0]}/ipv{k[1]}" for k in self.sockets]
        return out

    # -- setup -------------------------------------------------------------------------------

    def _prepare(self, conf: VrrpConf) -> sm.VrrpSystem:
        """The state machine of ``conf`` (OSError when an interface is missing or has no
        address) and the sockets it needs; nothing running is changed."""
        sources = {
            i.name: i.src_ip or primary_address(i.interface, i.family) for i in conf.instances
        }
        system = sm.VrrpSystem(conf, sources)
        for inst in conf.instances:
            key = (inst.interface, inst.family)
            if key not in self.sockets:
                vs = VrrpSocket.open(inst.interface, inst.family)
                self.sockets[key] = vs
                assert self._loop is not None
                self._loop.add_reader(vs.sock.fileno(), self._on_packet, vs)
            if not inst.unicast:
                self.sockets[key].join(inst.mcast_group)
        return system

    def _activate(self, system: sm.VrrpSystem, previous: sm.VrrpSystem | None = None) -> None:
        conf = system.conf
        wanted = {(i.interface, i.family) for i in conf.instances}
        for key in list(self.sockets):
            if key not in wanted:
                vs = self.sockets.pop(key)
                assert self._loop is not None
                self._loop.remove_reader(vs.sock.fileno())
                vs.sock.close()
        self.system, self.conf = system, conf
        names = {i.interface for i in conf.instances}
        names |= {t.name for i in conf.instances for t in i.track_interfaces}
        names |= {a.dev for i in conf.instances for a in i.vips + i.evips if a.dev}
        links = {n: link_up(n) for n in names}
        self._execute(system.start(self._now(), links, previous))
        for name in system.scripts:
            task = asyncio.create_task(self._run_script(name), name=f"vrrp-script-{name}")
            self._scripts.append(task)

    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    # -- events -------------------------------------------------------------------------------

    def _handle(self, event: sm.Event) -> None:
        if self.system is None:
            return
        self._execute(self.system.handle(event, self._now()))

    def _on_packet(self, vs: VrrpSocket) -> None:
        for _ in range(64):  # a burst at most, then let the loop breathe
            try:
                got = vs.receive()
            except OSError as e:
                self._error(f"receive on {vs.interface}: {e.strerror}")
                return
            if got is None:
                return
            if self.system is None:
                continue
            if isinstance(got, str):
                self.system.drop(wire.reason_kind(got))
                log.debug("%s: dropped: %s", vs.interface, got)
                continue
            src, dst, ttl, adv = got
            self._handle(sm.AdvertIn(vs.interface, src, dst, ttl, adv))

    def _on_links(self) -> None:
        assert self._links is not None
        events = self._links.read()
        if self.system is None:
            return
        names = set(self.system.links)
        for name, up in events:
            if name == "*":  # lost messages: read every interface's flags again
                for n in names:
                    self._handle(sm.LinkChange(n, link_up(n)))
            elif name in names:
                self._handle(sm.LinkChange(name, up and link_up(name)))

    def _on_timer(self) -> None:
        self._timer = None
        self._handle(sm.Timer())

    # -- actions ------------------------------------------------------------------------------

    def _execute(self, actions: Sequence[sm.Action]) -> None:
        """Adverts and timers at once; addresses, ARPs and notifies in order by a worker."""
        for act in actions:
            if isinstance(act, sm.SendAdvert):
                self._send_advert(act)
            elif isinstance(act, sm.SetTimer):
                if self._timer is not None:
                    self._timer.cancel()
                    self._timer = None
                if act.at is not None and self._loop is not None:
                    self._timer = self._loop.call_at(act.at, self._on_timer)
            elif isinstance(act, sm.StateChange):
                log.info(
                    "(%s) %s -> %s, priority %d: %s",
                    act.instance,
                    act.old,
                    act.new,
                    act.priority,
                    act.reason,
                )
                if self.on_change is not None:
                    try:
                        self.on_change(act)
                    except Exception as e:  # the callback's problem, not VRRP's
                        self._error(f"on_change: {e}")
            else:
                self._queue.put_nowait(act)

    def _send_advert(self, act: sm.SendAdvert) -> None:
        inst = self.system.instances.get(act.instance) if self.system else None
        family = inst.conf.family if inst is not None else act.advert.family
        vs = self.sockets.get((act.interface, family))
        if vs is None:
            self._error(f"no socket for {act.interface}")
            return
        self._ident = (self._ident + 1) & 0xFFFF or 1
        try:
            vs.send(act, self._ident)
        except OSError as e:
            # A priority 0 advert on an interface that is down is expected to fail.
            self._error(f"send advert on {act.interface}: {e.strerror}")

    def _error(self, what: str) -> None:
        key = what.split(":", 1)[0]
        self.errors[key] = self.errors.get(key, 0) + 1
        log.warning("%s", what)

    async def _work(self) -> None:
        while True:
            act = await self._queue.get()
            if act is None:
                return
            try:
                if isinstance(act, sm.AddAddresses | sm.RemoveAddresses):
                    await self._addresses(act)
                elif isinstance(act, sm.SendGarp):
                    self._send_garp(act)
                elif isinstance(act, sm.RunNotify):
                    self._spawn_notify(act)
            except Exception as e:  # an action failing must not stop the others
                self._error(f"{type(act).__name__}: {e}")

    async def _addresses(self, act: sm.AddAddresses | sm.RemoveAddresses) -> None:
        add = isinstance(act, sm.AddAddresses)
        for a in act.addresses:
            args = a.ip_args(act.interface)
            if not add:
                args = [*args[: 3 if a.peer else 1], "dev", a.dev or act.interface]
            cmd = [self.ip, "addr", "add" if add else "del", *args]
            proc = await asyncio.create_subprocess_exec(
                *cmd,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            _out, err = await proc.communicate()
            text = err.decode(errors="replace").strip()
            # Adding what is there, or removing what is not (at start) is no failure.
            expected = ("File exists",) if add else ("Cannot assign", "address not found")
            benign = any(b in text for b in expected)
            if proc.returncode != 0 and not benign:
                self._error(f"ip addr {'add' if add else 'del'} {args[0]}: {text}")

    def _send_garp(self, act: sm.SendGarp) -> None:
        for a in act.addresses:
            dev = a.dev or act.interface
            try:
                s = self._garp.get(dev)
                if s is None:
                    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)  # send only
                    s.bind((dev, 0))
                    self._garp[dev] = s
                mac = hw_address(dev)
                ip = ipaddress.ip_address(a.address).packed
                frame = arp.gratuitous(mac, ip) if a.family == 4 else arp.unsolicited_na(mac, ip)
                for _ in range(act.repeat):
                    s.send(frame)
            except OSError as e:
                self._error(f"gratuitous ARP on {dev}: {e.strerror}")

    def _spawn_notify(self, act: sm.RunNotify) -> None:
        task = asyncio.create_task(self._notify(act.argv))
        self._children.add(task)
        task.add_done_callback(self._children.discard)

    async def _notify(self, argv: tuple[str, ...]) -> None:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as e:
            self._error(f"notify {argv[0]}: {e.strerror}")
            return
        await proc.wait()

    # -- vrrp_script -----------------------------------------------------------------------

    def _stop_scripts(self) -> None:
        for t in self._scripts:
            t.cancel()
        self._scripts.clear()

    async def _run_script(self, name: str) -> None:
        assert self.conf is not None
        sc = self.conf.scripts[name]
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            ok = await run_check(sc.argv, sc.run_timeout)
            self._handle(sm.ScriptResult(name, ok))
            await asyncio.sleep(max(0.0, started + sc.interval - loop.time()))


async def run_check(argv: Sequence[str], timeout: float) -> bool:
    """Run a vrrp_script once: True on exit status 0; a timeout (SIGTERM, then SIGKILL
    to its process group), a signal or a failure to start is a failure."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError:
        return False
    try:
        try:
            return await asyncio.wait_for(proc.wait(), timeout) == 0
        except TimeoutError:
            for sig, grace in ((signal.SIGTERM, SCRIPT_KILL_GRACE), (signal.SIGKILL, None)):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), grace)
                    break
            return False
    except asyncio.CancelledError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        raise


# -- standalone runner ------------------------------------------------------------------------


def load(path: str) -> VrrpConf:
    from pylvs.config import keepalived
    from pylvs.ha import vrrp_conf

    conf = vrrp_conf.from_keepalived(keepalived.load(path))
    for w in conf.warnings:
        log.warning("%s", w)
    return conf


def write_status(mgr: VrrpManager, path: Path, last: str = "") -> str:
    """Write ``mgr.status()`` as JSON to ``path`` (atomically) unless it is ``last``."""
    text = json.dumps(mgr.status(), indent=1, sort_keys=True)
    if text != last:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return text


async def _status_writer(mgr: VrrpManager, path: Path, done: asyncio.Event) -> None:
    last = ""
    while not done.is_set():
        last = write_status(mgr, path, last)
        await asyncio.sleep(0.1)


async def amain(args: argparse.Namespace) -> int:
    mgr = VrrpManager(ip=args.ip)
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    reload_wanted = asyncio.Event()
    graceful = {"value": True}

    def term(sig: int) -> None:
        graceful["value"] = sig != signal.SIGUSR2
        done.set()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR2):
        loop.add_signal_handler(sig, term, sig)
    loop.add_signal_handler(signal.SIGHUP, reload_wanted.set)
    await mgr.start(load(args.config))
    stopped = asyncio.Event()
    writer = None
    if args.status:
        writer = asyncio.create_task(_status_writer(mgr, Path(args.status), stopped))
    log.info("VRRP started: %d instance(s)", len(mgr.system.instances if mgr.system else ()))
    while not done.is_set():
        waits = [asyncio.create_task(done.wait()), asyncio.create_task(reload_wanted.wait())]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for w in waits:
            w.cancel()
        if reload_wanted.is_set() and not done.is_set():
            reload_wanted.clear()
            try:
                await mgr.reload(load(args.config))
                log.info("configuration reloaded")
            except Exception as e:
                log.error("reload failed, keeping the running configuration: %s", e)
    await mgr.stop(graceful=graceful["value"])
    stopped.set()
    if writer is not None:
        await writer
        write_status(mgr, Path(args.status))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m pylvs.ha.vrrp_io",
        description="Run the vrrp_instances of a keepalived.conf (SIGTERM: graceful stop "
        "with priority 0, SIGUSR2: stop leaving addresses in place, SIGHUP: reload).",
    )
    ap.add_argument("-f", "--use-file", dest="config", default="/etc/keepalived/keepalived.conf")
    ap.add_argument("--status", help="write the status as JSON to this file when it changes")
    ap.add_argument("--ip", default="ip", help="the iproute2 binary (default: ip)")
    ap.add_argument("-l", "--log-level", default="INFO")
    args = ap.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return asyncio.run(amain(args))
    except Exception as e:
        from pylvs.config.model import ConfigError

        if isinstance(e, ConfigError | OSError):
            print(f"pylvs vrrp: {e}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())


__all__ = [
    "LinkMonitor",
    "VrrpManager",
    "VrrpSocket",
    "link_up",
    "main",
    "primary_address",
    "run_check",
]
