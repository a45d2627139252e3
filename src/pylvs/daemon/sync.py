"""The connection sync daemons (kernel ip_vs_sync.c threads), on pylvsd's event loop.

``ipvsadm --start-daemon master|backup`` (and keepalived's lvs_sync_daemon) start
them through ``Control.start_daemon``, which calls ``start``; ``stop`` ends them.

- master (sync_thread_master, make_send_sock): a UDP socket with the multicast
  interface set (IP_MULTICAST_IF: the interface's index and address), loopback
  off, the TTL asked for (default 1), no path MTU discovery (IP_PMTUDISC_DONT),
  bound to the interface's IPv4 address and connected to the group (default
  224.0.0.81:8848).  The engine calls ``MasterSync.conn_in`` after each client
  packet (``Engine.sync``); every ``SEND_DELAY`` the ready messages are sent
  (full ones at once, the one being filled after 2 s).  A send that would block
  is retried on the next round; other errors drop the message (counted), as
  ip_vs_send_sync_msg() does.
- backup (sync_thread_backup, make_receive_sock): a UDP socket with
  SO_REUSEADDR, bound to the interface (SO_BINDTODEVICE when allowed, and
  IP_MULTICAST_ALL off) and to the group's address and port, member of the
  group on that interface; each datagram is read with a buffer of
  ``sync_maxlen`` bytes (a longer one is truncated, then refused for its size,
  as in the kernel) and handed to ``BackupSync.receive`` (syncid filter, then
  the connections).

``sync_maxlen`` as the kernel sets it: a value given is clamped to [1, 65507]
(master) or [1024, 65507] (backup) (65535 - IP/UDP headers; 65487 over IPv6);
none given is 1500 - 28 on a master and the interface MTU (at least 1500) - 28
on a backup.  An interface name not given is ``eth0`` (ipvsadm's default); an
unknown one is refused with ENODEV ("No such device"), as the kernel does.

A director may run both daemons at once (keepalived does, with an lvs_sync_daemon
that names no VRRP instance; with one, it swaps master and backup on the VRRP
transitions).

What a failover keeps depends on the data plane of the director that takes over:

- packet (NAT, DR, TUN, FULLNAT): forwarding is per packet, so a synced connection
  continues as it would on the old master: same real server, NAT replies found by
  their reply header, persistence templates keep clients on their server; a
  FULLNAT connection is indexed under the master's local address and port (our
  optional entry option), which the packet plane must reuse for it (its reply
  key, ``Conn.okey``) instead of binding a new local port;
- proxy: connections are TCP sockets ending on the director (client to director,
  director to real server) and sockets cannot move, so every connection open on
  the failed master is lost: the client's next segment reaches the new master,
  which has no socket for it and answers with a reset (or the client times out).
  New connections work at once; synced templates still send returning clients
  to the server they had; synced entries otherwise only show in ``-Lnc`` and in
  the real servers' connection counts until they expire;
- none: the table only (a director that only holds rules and sync state).

Deliberate differences: one sync thread (no sync_ports), the receive buffer is
enlarged to 1 MiB (Python reads slower than the kernel), stopping a master drops
what was not yet sent (as the kernel does).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import socket
import struct
import weakref
from collections import deque
from collections.abc import Callable
from ipaddress import IPv6Address, ip_address
from typing import TYPE_CHECKING

from pylvs.core.engine import Engine
from pylvs.core.errors import IPVSError
from pylvs.core.sync import BackupSync, MasterSync, SyncSysctl

if TYPE_CHECKING:
    from pylvs.daemon.ctl import Control, SyncDaemon

log = logging.getLogger("pylvsd.sync")

SEND_DELAY = 0.02  # IPVS_SYNC_SEND_DELAY: HZ / 50
SWEEP_PERIOD = 10.0  # seconds between sweeps of the master's per-connection marks
RCVBUF = 1 << 20
DEFAULT_IFN = "eth0"  # ipvsadm's DEF_MCAST_IFN
HLEN4 = 20 + 8
HLEN6 = 40 + 8

SIOCGIFADDR = 0x8915
SIOCGIFMTU = 0x8921
IP_MULTICAST_ALL = 49
IP_MTU_DISCOVER = 10
IPV6_MTU_DISCOVER = 23
IP_PMTUDISC_DONT = 0
SO_BINDTODEVICE = 25


def effective_maxlen(state: str, requested: int, mtu: int, v6: bool) -> int:
    """start_sync_thread()'s sync_maxlen."""
    hlen = HLEN6 if v6 else HLEN4
    backup = state == "backup"
    if requested:
        return max(1024 if backup else 1, min(requested, 65535 - hlen))
    return (max(1500, min(mtu, 65535)) if backup else 1500) - hlen


def interface(name: str) -> tuple[int, int, bytes | None]:
    """(ifindex, MTU, primary IPv4 address or None) of ``name``; ENODEV if unknown."""
    try:
        index = socket.if_nametoindex(name)
    except (OSError, ValueError):  # ValueError: a NUL or an unencodable character
        raise IPVSError(
            "No such device", errno.ENODEV, f"unknown mcast interface {name!r}"
        ) from None
    req = struct.pack("16s24x", name.encode()[:15])  # struct ifreq
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            mtu = struct.unpack_from("=i", fcntl.ioctl(s.fileno(), SIOCGIFMTU, req), 16)[0]
        except OSError:
            mtu = 1500
        try:
            addr: bytes | None = fcntl.ioctl(s.fileno(), SIOCGIFADDR, req)[20:24]
        except OSError:
            addr = None
    return index, mtu, addr


class MasterDaemon:
    """A running master: the socket, the sender task, ``MasterSync`` on the engine hook."""

    def __init__(
        self, engine: Engine, cfg: SyncDaemon, clock: Callable[[], float], sysctl: SyncSysctl
    ) -> None:
        loop = asyncio.get_running_loop()  # before anything is set up
        self.engine = engine
        self.cfg = cfg
        self.clock = clock
        self.sync = MasterSync(cfg.syncid, cfg.sync_maxlen, sysctl)
        self.counters: dict[str, int] = {"sent": 0, "send_errors": 0, "send_eagain": 0}
        self.pending: deque[bytes] = deque()
        self.sock = self._socket()
        self._last_sweep = clock()
        engine.sync = self.sync.conn_in
        self.task = loop.create_task(self._run())
        log.info(
            "sync thread started: state = MASTER, mcast_ifn = %s, syncid = %d, id = 0",
            cfg.mcast_ifn,
            cfg.syncid,
        )

    def _socket(self) -> socket.socket:
        cfg = self.cfg
        index, _, addr = interface(cfg.mcast_ifn)
        group = ip_address(cfg.mcast_group)
        if isinstance(group, IPv6Address):
            s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            try:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, cfg.mcast_ttl)
                s.setsockopt(socket.IPPROTO_IPV6, IPV6_MTU_DISCOVER, IP_PMTUDISC_DONT)
                s.connect((str(group), cfg.mcast_port, 0, index))
            except OSError:
                s.close()
                raise
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                mreqn = struct.pack("=4s4si", bytes(4), addr or bytes(4), index)
                s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, mreqn)
                s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
                s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, cfg.mcast_ttl)
                s.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DONT)
                if addr is None:
                    log.error("You probably need to specify IP address on multicast interface.")
                else:
                    s.bind((socket.inet_ntoa(addr), 0))
                s.connect((str(group), cfg.mcast_port))
            except OSError:
                s.close()
                raise
        s.setblocking(False)
        return s

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(SEND_DELAY)
            try:
                self.flush(self.clock())
            except Exception:  # never let one bad round end the daemon
                log.exception("sync master")

    def flush(self, now: float) -> int:
        """Send what is ready; returns the number of messages sent."""
        self.pending.extend(self.sync.pop_ready(now))
        sent = 0
        while self.pending:
            msg = self.pending[0]
            try:
                self.sock.send(msg)
            except BlockingIOError:
                self.counters["send_eagain"] += 1
                break
            except OSError as e:
                self.counters["send_errors"] += 1
                log.debug("sync send: %s", e)
            else:
                sent += 1
            self.pending.popleft()
        self.counters["sent"] += sent
        if now - self._last_sweep >= SWEEP_PERIOD:
            self._last_sweep = now
            self.sync.sweep()
        return sent

    def stats(self) -> dict[str, int]:
        return {**self.sync.counters, **self.counters}

    def close(self) -> None:
        if self.engine.sync == self.sync.conn_in:
            self.engine.sync = None
        self.task.cancel()
        self.sock.close()
        log.info("stopping master sync thread")


class BackupDaemon:
    """A running backup: the group membership and ``BackupSync`` behind a reader."""

    def __init__(
        self, engine: Engine, cfg: SyncDaemon, clock: Callable[[], float], sysctl: SyncSysctl
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.cfg = cfg
        self.clock = clock
        self.sync = BackupSync(engine, cfg.syncid, sysctl)
        self.counters: dict[str, int] = {"received": 0, "receive_errors": 0}
        self.sock = self._socket()
        self.loop.add_reader(self.sock.fileno(), self._readable)
        log.info(
            "sync thread started: state = BACKUP, mcast_ifn = %s, syncid = %d, id = 0",
            cfg.mcast_ifn,
            cfg.syncid,
        )

    def _socket(self) -> socket.socket:
        cfg = self.cfg
        index, _, _ = interface(cfg.mcast_ifn)
        group = ip_address(cfg.mcast_group)
        v6 = isinstance(group, IPv6Address)
        s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            with contextlib.suppress(OSError):
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            try:
                s.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, cfg.mcast_ifn.encode())
            except PermissionError:
                pass  # unprivileged: the membership on the interface still filters
            if v6:
                s.bind((str(group), cfg.mcast_port, 0, index))
                mreq = group.packed + struct.pack("=I", index)
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
            else:
                with contextlib.suppress(OSError):
                    s.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_ALL, 0)
                s.bind((str(group), cfg.mcast_port))
                mreqn = struct.pack("=4s4si", group.packed, bytes(4), index)
                s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreqn)
        except OSError:
            s.close()
            raise
        s.setblocking(False)
        return s

    def _readable(self) -> None:
        recv = self.sock.recv
        size = self.cfg.sync_maxlen
        for _ in range(64):
            try:
                data = recv(size)
            except BlockingIOError:
                return
            except OSError as e:
                self.counters["receive_errors"] += 1
                log.debug("sync receive: %s", e)
                return
            self.counters["received"] += 1
            try:
                self.sync.receive(data, self.clock())
            except Exception:  # garbage must never end the daemon
                self.counters["receive_errors"] += 1
                log.exception("sync backup")

    def stats(self) -> dict[str, int]:
        return {**self.sync.counters, **self.counters}

    def close(self) -> None:
        with contextlib.suppress(ValueError, OSError):
            self.loop.remove_reader(self.sock.fileno())
        self.sock.close()
        log.info("stopping backup sync thread")


Runner = MasterDaemon | BackupDaemon
_RUNNING: weakref.WeakKeyDictionary[Control, dict[str, Runner]] = weakref.WeakKeyDictionary()
_SYSCTL: weakref.WeakKeyDictionary[Control, SyncSysctl] = weakref.WeakKeyDictionary()


def sysctl_of(control: Control) -> SyncSysctl:
    """The sync_* settings used by ``control``'s daemons (kernel defaults until changed)."""
    s = _SYSCTL.get(control)
    if s is None:
        s = _SYSCTL[control] = SyncSysctl()
    return s


def start(control: Control, sd: SyncDaemon) -> Runner:
    """Start the daemon ``sd`` describes for ``control``'s engine (needs a running loop).

    Fills in what the kernel fills in (interface name, sync_maxlen); raises
    IPVSError (ENODEV for an unknown interface, or the socket's error) and then
    nothing runs.
    """
    if not sd.mcast_ifn:
        sd.mcast_ifn = DEFAULT_IFN
    _, mtu, _ = interface(sd.mcast_ifn)
    v6 = ip_address(sd.mcast_group).version == 6
    sd.sync_maxlen = effective_maxlen(sd.state, sd.sync_maxlen, mtu, v6)
    running = _RUNNING.setdefault(control, {})
    if sd.state in running:
        raise IPVSError("Daemon has already run", errno.EEXIST)
    sysctl = sysctl_of(control)
    try:
        if sd.state == "master":
            r: Runner = MasterDaemon(control.engine, sd, control.clock, sysctl)
        else:
            r = BackupDaemon(control.engine, sd, control.clock, sysctl)
    except OSError as e:
        err = e.errno or errno.EINVAL
        raise IPVSError(e.strerror or str(e), err, f"sync daemon on {sd.mcast_ifn}") from None
    running[sd.state] = r
    return r


def stop(control: Control, state: str) -> bool:
    """Stop ``control``'s ``state`` daemon; False when none runs."""
    r = _RUNNING.get(control, {}).pop(state, None)
    if r is None:
        return False
    r.close()
    return True


def running(control: Control) -> dict[str, Runner]:
    return dict(_RUNNING.get(control, {}))


def stats(control: Control) -> dict[str, dict[str, int]]:
    """Counters of ``control``'s running daemons, by state."""
    return {state: r.stats() for state, r in _RUNNING.get(control, {}).items()}
