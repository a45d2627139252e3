"""The userspace tunnel decapsulator of a TUN-mode real server.

LVS TUN sends a request to the real server inside an outer IP header
(IPIP: protocol 4 for an IPv4 inner packet, 41 for IPv6; or GUE: the same
inner packet behind a UDP + GUE header).  A kernel with ipip/fou strips it
on tunl0; this kernel has neither, so this process does the job:

- a raw socket of protocol 4 (or 41) receives a copy of every IPIP packet
  addressed to this host (with such a socket open the kernel does not send
  "protocol unreachable"); for GUE a UDP socket on the tunnel port;
- the outer header is checked (outer destination one of our addresses,
  lengths) and removed, the inner packet is checked (version, lengths,
  IPv4 header checksum, destination == the VIP) and the outer ECN CE mark
  is propagated as ip_tunnel_rcv does (RFC 6040: CE over a not-ECT inner
  packet is dropped);
- the inner packet is written to a TUN device (IFF_TUN | IFF_NO_PI): the
  local stack receives it as if from the wire and answers the client
  directly from the VIP, by the normal route, as in LVS TUN.

Anything else is dropped and counted by reason.  The counters are written
to ``<state-dir>/counters.json`` every second when they change, on SIGUSR1
and at exit.  ``--daemon`` opens everything first (so errors reach the
caller), then detaches (fork, setsid, fork), writes ``decap.pid`` and prints
the daemon's pid.  The TUN device is not persistent: it disappears with the
process.  Run as ``python3 -m pylvs.realserver.decap --vip VIP --dev NAME
--state-dir DIR [--tun-type ipip|gue --tun-port N] [--daemon]``.
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import ipaddress
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable

from pylvs.wire import csum

IPPROTO_IPIP = 4
IPPROTO_IPV6 = 41
IP_PKTINFO = 8  # <linux/in.h>; not exported by Python's socket module
TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000

# GUE header (the kernel's include/net/gue.h): version(2) C(1) hlen(5),
# proto_ctype, flags; the private-flags word and its REMCSUM option.
GUE_FLAG_PRIV = 0x0001
GUE_PFLAG_REMCSUM = 0x80000000

ECN_MASK = 3
ECN_NOT_ECT = 0
ECN_CE = 3

# Counter names (one per drop reason, plus the good ones).
DECAPSULATED = "decapsulated"
DECAP_BYTES = "decapsulated_bytes"
DROP_OUTER = "dropped_outer_malformed"
DROP_NOT_LOCAL = "dropped_outer_not_local"
DROP_GUE = "dropped_gue_malformed"
DROP_INNER = "dropped_inner_malformed"
DROP_CSUM = "dropped_inner_bad_checksum"
DROP_PROTO = "dropped_inner_protocol"
DROP_OTHER_VIP = "dropped_other_destination"
DROP_ECN = "dropped_ecn_ce_not_ect"
DROP_TUN = "dropped_tun_write_error"
TUN_DISCARDED = "tun_output_discarded"
COUNTERS = (
    DECAPSULATED,
    DECAP_BYTES,
    DROP_OUTER,
    DROP_NOT_LOCAL,
    DROP_GUE,
    DROP_INNER,
    DROP_CSUM,
    DROP_PROTO,
    DROP_OTHER_VIP,
    DROP_ECN,
    DROP_TUN,
    TUN_DISCARDED,
)

_BATCH = 64  # packets read from one socket per readiness


class Drop(Exception):
    """A packet that is not decapsulated; ``reason`` is its counter name."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def outer_ipv4(pkt: bytes) -> tuple[bytes, int, int, int]:
    """Check an outer IPv4 header as read from a raw socket.

    Returns (destination address, ECN bits, protocol, payload offset).
    """
    n = len(pkt)
    if n < 20 or pkt[0] >> 4 != 4:
        raise Drop(DROP_OUTER)
    ihl = (pkt[0] & 0x0F) * 4
    if ihl < 20 or ihl > n or struct.unpack_from("!H", pkt, 2)[0] != n:
        raise Drop(DROP_OUTER)
    return pkt[16:20], pkt[1] & ECN_MASK, pkt[9], ihl


def inner_packet(data: bytes | bytearray, proto: int, vip: bytes, outer_ecn: int) -> bytearray:
    """The inner packet of a tunnel payload, checked and ready for the TUN device.

    ``proto`` is the outer next-protocol (4: IPv4 inner, 41: IPv6 inner).
    Bytes after the inner packet's own length are cut off (as ip_rcv does).
    Raises Drop for anything the local stack should not see.
    """
    n = len(data)
    if proto == IPPROTO_IPIP:
        if n < 20 or data[0] >> 4 != 4:
            raise Drop(DROP_INNER)
        ihl = (data[0] & 0x0F) * 4
        tot = struct.unpack_from("!H", data, 2)[0]
        if ihl < 20 or tot < ihl or tot > n:
            raise Drop(DROP_INNER)
        if csum.checksum(data, 0, ihl) != 0:
            raise Drop(DROP_CSUM)
        if data[16:20] != vip:
            raise Drop(DROP_OTHER_VIP)
        out = bytearray(data[:tot])
        inner_ecn = out[1] & ECN_MASK
    elif proto == IPPROTO_IPV6:
        if n < 40 or data[0] >> 4 != 6:
            raise Drop(DROP_INNER)
        plen = struct.unpack_from("!H", data, 4)[0]
        if plen == 0 or 40 + plen > n:  # 0: a jumbogram, never tunnelled by LVS
            raise Drop(DROP_INNER)
        if data[24:40] != vip:
            raise Drop(DROP_OTHER_VIP)
        out = bytearray(data[: 40 + plen])
        inner_ecn = (out[1] >> 4) & ECN_MASK
    else:
        raise Drop(DROP_PROTO)
    if outer_ecn == ECN_CE:
        if inner_ecn == ECN_NOT_ECT:
            raise Drop(DROP_ECN)
        if inner_ecn != ECN_CE:
            _set_ce(out)
    return out


def _set_ce(pkt: bytearray) -> None:
    if pkt[0] >> 4 == 4:
        before = csum.get(pkt, 0)
        pkt[1] |= ECN_CE
        csum.put(pkt, 10, csum.replace2(csum.get(pkt, 10), before, csum.get(pkt, 0)))
    else:
        pkt[1] |= ECN_CE << 4


def gue_payload(data: bytes | bytearray) -> tuple[int, bytearray]:
    """Strip a GUE header (version 0, or version 1 = direct IP).

    Returns (inner protocol, inner bytes).  A remote checksum offload option
    (what IPVS adds for REMCSUM tunnels) is carried out on the inner packet:
    the transport checksum from ``start`` to the end is completed and stored
    at ``offset``, both relative to the inner packet.
    """
    if len(data) < 4:
        raise Drop(DROP_GUE)
    b0 = data[0]
    version = b0 >> 6
    if version == 1:  # direct IP: the first nibble is the IP version
        nib = b0 >> 4
        if nib == 4:
            return IPPROTO_IPIP, bytearray(data)
        if nib == 6:
            return IPPROTO_IPV6, bytearray(data)
        raise Drop(DROP_GUE)
    if version != 0 or b0 & 0x20:  # unknown version, or a control message
        raise Drop(DROP_GUE)
    hlen = (b0 & 0x1F) * 4
    proto = data[1]
    flags = struct.unpack_from("!H", data, 2)[0]
    if 4 + hlen > len(data) or flags & ~GUE_FLAG_PRIV:
        raise Drop(DROP_GUE)
    remcsum: tuple[int, int] | None = None
    if flags & GUE_FLAG_PRIV:
        if hlen < 4:
            raise Drop(DROP_GUE)
        pflags = struct.unpack_from("!I", data, 4)[0]
        if pflags & ~GUE_PFLAG_REMCSUM:
            raise Drop(DROP_GUE)
        if pflags & GUE_PFLAG_REMCSUM:
            if hlen < 8:
                raise Drop(DROP_GUE)
            start, offset = struct.unpack_from("!HH", data, 8)
            remcsum = (start, offset)
    if proto not in (IPPROTO_IPIP, IPPROTO_IPV6):
        raise Drop(DROP_PROTO)
    inner = bytearray(data[4 + hlen :])
    if remcsum is not None:
        start, offset = remcsum
        if start >= len(inner) or offset + 2 > len(inner) or offset < start:
            raise Drop(DROP_GUE)
        csum.put(inner, offset, csum.finish(csum.add(inner, start)))
    return proto, inner


class LocalAddresses:
    """This namespace's addresses, re-read (at most once a second) on a miss."""

    def __init__(self) -> None:
        self._addrs: set[bytes] = set()
        self._when = 0.0
        self.refresh()

    def refresh(self) -> None:
        self._when = time.monotonic()
        r = subprocess.run(["ip", "-j", "addr", "show"], capture_output=True, text=True)
        if r.returncode != 0:
            return
        addrs: set[bytes] = set()
        for link in json.loads(r.stdout or "[]"):
            for a in link.get("addr_info", []):
                try:
                    addrs.add(ipaddress.ip_address(a["local"]).packed)
                except (KeyError, ValueError):
                    continue
        self._addrs = addrs

    def __contains__(self, addr: bytes) -> bool:
        if addr in self._addrs:
            return True
        if time.monotonic() - self._when >= 1.0:
            self.refresh()
            return addr in self._addrs
        return False


def open_tun(name: str) -> int:
    """Create (attach to) the TUN device ``name``; returns its non-blocking fd."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", name.encode(), IFF_TUN | IFF_NO_PI))
    except OSError:
        os.close(fd)
        raise
    return fd


class Decapsulator:
    """The sockets, the TUN device, the counters and the receive loop."""

    def __init__(
        self, vip: str, dev: str, state_dir: str, tun_type: str = "ipip", tun_port: int = 0
    ) -> None:
        self.vip = ipaddress.ip_address(vip)
        self.vip_packed = self.vip.packed
        self.dev = dev
        self.state_dir = state_dir
        self.tun_type = tun_type
        self.tun_port = tun_port
        self.counters = dict.fromkeys(COUNTERS, 0)
        self.tun_fd = -1
        self.handlers: dict[int, Callable[[socket.socket], None]] = {}
        self.sockets: dict[int, socket.socket] = {}
        self.local = LocalAddresses()
        self._seq = 0
        self._written: dict[str, int] | None = {}
        self._stop = False
        self._dump = False

    # -- setup -------------------------------------------------------------
    def open(self) -> None:
        """Open the TUN device and the receiving sockets (raises OSError)."""
        self.tun_fd = open_tun(self.dev)
        proto = IPPROTO_IPIP if self.vip.version == 4 else IPPROTO_IPV6
        if self.tun_type == "gue":
            self._add(socket.AF_INET, socket.SOCK_DGRAM, 0, self._gue4, required=True)
            self._add(socket.AF_INET6, socket.SOCK_DGRAM, 0, self._gue6, required=False)
        else:
            self._add(socket.AF_INET, socket.SOCK_RAW, proto, self._raw4, required=True)
            self._add(socket.AF_INET6, socket.SOCK_RAW, proto, self._raw6, required=False)

    def _add(
        self,
        family: int,
        kind: int,
        proto: int,
        handler: Callable[[socket.socket], None],
        required: bool,
    ) -> None:
        try:
            s = socket.socket(family, kind, proto)
        except OSError:
            if required:
                raise
            return
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVTCLASS, 1)
            if kind == socket.SOCK_DGRAM:
                if family == socket.AF_INET:
                    s.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
                    s.setsockopt(socket.IPPROTO_IP, socket.IP_RECVTOS, 1)
                    s.bind(("0.0.0.0", self.tun_port))
                else:
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                    s.bind(("::", self.tun_port))
            s.setblocking(False)
        except OSError:
            s.close()
            if required:
                raise
            return
        self.sockets[s.fileno()] = s
        self.handlers[s.fileno()] = handler

    def close(self) -> None:
        for s in self.sockets.values():
            s.close()
        self.sockets.clear()
        if self.tun_fd >= 0:
            os.close(self.tun_fd)
            self.tun_fd = -1

    # -- per packet -------------------------------------------------------
    def _deliver(
        self, payload: bytes | bytearray, proto: int, outer_dst: bytes, outer_ecn: int
    ) -> None:
        try:
            if outer_dst not in self.local:
                raise Drop(DROP_NOT_LOCAL)
            if self.tun_type == "gue":
                proto, payload = gue_payload(payload)
            inner = inner_packet(payload, proto, self.vip_packed, outer_ecn)
        except Drop as d:
            self.counters[d.reason] += 1
            return
        try:
            os.write(self.tun_fd, inner)
        except OSError:
            self.counters[DROP_TUN] += 1
            return
        self.counters[DECAPSULATED] += 1
        self.counters[DECAP_BYTES] += len(inner)

    def _raw4(self, s: socket.socket) -> None:
        pkt = s.recv(65535)
        try:
            dst, ecn, proto, off = outer_ipv4(pkt)
        except Drop as d:
            self.counters[d.reason] += 1
            return
        self._deliver(pkt[off:], proto, dst, ecn)

    def _raw6(self, s: socket.socket) -> None:
        # An IPv6 raw socket gets the payload only; the header's destination
        # and traffic class come as ancillary data.
        data, anc, _flags, _addr = s.recvmsg(65535, 256)
        dst, ecn = _v6_ancillary(anc)
        self._deliver(data, s.proto, dst, ecn)

    def _gue4(self, s: socket.socket) -> None:
        data, anc, _flags, _addr = s.recvmsg(65535, 256)
        dst = b""
        ecn = 0
        for level, kind, value in anc:
            if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(value) >= 12:
                dst = value[8:12]
            elif level == socket.IPPROTO_IP and kind == socket.IP_TOS and value:
                ecn = value[0] & ECN_MASK
        self._deliver(data, 0, dst, ecn)

    def _gue6(self, s: socket.socket) -> None:
        data, anc, _flags, _addr = s.recvmsg(65535, 256)
        dst, ecn = _v6_ancillary(anc)
        self._deliver(data, 0, dst, ecn)

    def _drain_tun(self) -> None:
        # The kernel may route something into the device (e.g. IPv6 router
        # solicitations); nothing leaves through it, so it is read and dropped.
        for _ in range(_BATCH):
            try:
                os.read(self.tun_fd, 65535)
            except BlockingIOError:
                return
            self.counters[TUN_DISCARDED] += 1

    # -- loop --------------------------------------------------------------
    def write_counters(self, force: bool = False) -> None:
        if not force and self.counters == self._written:
            return
        self._seq += 1
        doc = {
            "pid": os.getpid(),
            "seq": self._seq,
            "time": time.time(),
            "vip": str(self.vip),
            "dev": self.dev,
            "tun_type": self.tun_type,
            "counters": self.counters,
        }
        path = os.path.join(self.state_dir, "counters.json")
        tmp = f"{path}.{os.getpid()}.tmp"
        try:
            with open(tmp, "w") as f:
                json.dump(doc, f)
            os.replace(tmp, path)
        except OSError as e:  # the state directory is gone: keep decapsulating
            if self._written is not None:
                print(f"decap: cannot write {path}: {e}", file=sys.stderr, flush=True)
            self._written = None
            return
        self._written = dict(self.counters)

    def run(self) -> None:
        """Receive until SIGTERM/SIGINT; counters on SIGUSR1 and every second."""
        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        old_fd = signal.set_wakeup_fd(wake_w.fileno(), warn_on_full_buffer=False)

        def on_stop(_sig: int, _frame: object) -> None:
            self._stop = True

        def on_dump(_sig: int, _frame: object) -> None:
            self._dump = True

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGUSR1, on_dump)
        fds = [wake_r.fileno(), self.tun_fd, *self.sockets]
        last = time.monotonic()
        self.write_counters(force=True)
        try:
            while not self._stop:
                ready, _, _ = select.select(fds, [], [], 1.0)
                for fd in ready:
                    if fd == wake_r.fileno():
                        _drain(wake_r)
                    elif fd == self.tun_fd:
                        self._drain_tun()
                    else:
                        self._receive(self.sockets[fd], self.handlers[fd])
                now = time.monotonic()
                if self._dump:
                    self._dump = False
                    self.write_counters(force=True)
                elif now - last >= 1.0:
                    last = now
                    self.write_counters()
        finally:
            signal.set_wakeup_fd(old_fd)
            wake_r.close()
            wake_w.close()
            self.write_counters(force=True)

    def _receive(self, s: socket.socket, handler: Callable[[socket.socket], None]) -> None:
        for _ in range(_BATCH):
            try:
                handler(s)
            except BlockingIOError:
                return
            except OSError as e:
                if e.errno in (errno.EINTR, errno.EAGAIN):
                    return
                raise


def _v6_ancillary(anc: list[tuple[int, int, bytes]]) -> tuple[bytes, int]:
    dst = b""
    ecn = 0
    for level, kind, value in anc:
        if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO and len(value) >= 16:
            dst = value[:16]
        elif level == socket.IPPROTO_IPV6 and kind == socket.IPV6_TCLASS and len(value) >= 4:
            ecn = int.from_bytes(value[:4], sys.byteorder) & ECN_MASK
    return dst, ecn


def _drain(s: socket.socket) -> None:
    try:
        while s.recv(4096):
            pass
    except BlockingIOError:
        pass


def _daemonize(state_dir: str) -> int | None:
    """Fork twice and setsid; the original process gets the daemon's pid, the daemon None."""
    r, w = os.pipe()
    pid = os.fork()
    if pid:
        os.close(w)
        os.waitpid(pid, 0)
        with os.fdopen(r) as f:
            text = f.read().strip()
        return int(text) if text.isdigit() else -1
    os.close(r)
    os.setsid()
    if os.fork():
        os._exit(0)
    os.chdir("/")
    os.umask(0o022)
    null = os.open(os.devnull, os.O_RDWR)
    log = os.open(
        os.path.join(state_dir, "decap.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644
    )
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.dup2(log, 2)
    os.close(null)
    os.close(log)
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the daemon
    with open(os.path.join(state_dir, "decap.pid"), "w") as f:
        f.write(f"{os.getpid()}\n")
    os.write(w, str(os.getpid()).encode())
    os.close(w)
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m pylvs.realserver.decap", description=__doc__)
    p.add_argument("--vip", required=True)
    p.add_argument("--dev", required=True, help="TUN device to create")
    p.add_argument("--state-dir", required=True)
    p.add_argument("--tun-type", choices=("ipip", "gue"), default="ipip")
    p.add_argument("--tun-port", type=int, default=0)
    p.add_argument("--daemon", action="store_true")
    a = p.parse_args(argv)
    if a.tun_type == "gue" and not 0 < a.tun_port < 65536:
        print("decap: --tun-port 1..65535 is needed with --tun-type gue", file=sys.stderr)
        return 2
    d = Decapsulator(a.vip, a.dev, a.state_dir, a.tun_type, a.tun_port)
    try:
        d.open()
    except OSError as e:
        d.close()
        print(f"decap: cannot open the tunnel device or sockets: {e}", file=sys.stderr)
        return 1
    if a.daemon:
        pid = _daemonize(a.state_dir)
        if pid is not None:
            d.close()
            print(pid, flush=True)
            return 0 if pid > 0 else 1
    print(
        f"decap: pid {os.getpid()} vip {d.vip} dev {d.dev} {d.tun_type} started",
        file=sys.stderr,
        flush=True,
    )
    try:
        d.run()
    finally:
        d.close()
        print(f"decap: exit, counters {d.counters}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
