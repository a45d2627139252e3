"""The userspace tunnel decapsulator of a TUN-mode real server.

LVS TUN sends a request to the real server inside an outer IP header
(IPIP: protocol 4 for an IPv4 inner packet, 41 for IPv6; or GUE: the same
inner packet behind a UDP + GUE header).  A kernel with ipip/fou strips it
on tunl0; this kernel has neither, so this process does the job, and keeps
the packet's checksum state as the kernel's own decapsulation does:

- IPv4 outer headers are read from an AF_PACKET socket bound to ETH_P_IP
  with PACKET_VNET_HDR: each packet comes with its virtio_net_hdr, which
  says whether a transport checksum was left partial by the sender
  (CHECKSUM_PARTIAL: normal over veth with offloads, and nobody completes
  it on the way) and where, counted from the Ethernet header.  A classic BPF
  filter keeps what ip_rcv would take for this host: on an Ethernet or
  loopback link (14-byte header), not PACKET_OTHERHOST/OUTGOING, not from
  our own TUN device, not a fragment, protocol 4 (41 for an IPv6 VIP) or,
  for GUE, UDP to the tunnel port.  Bound to a protocol, the socket sees
  each packet once, where the IP stack does (after a bridge or a VLAN);
- the raw socket of protocol 4 (or 41), or for GUE the UDP socket on the
  tunnel port, stays open: while it exists the kernel sends no ICMP
  protocol (port) unreachable.  Its own BPF filter drops what the AF_PACKET
  socket surely took (DF set, Ethernet/loopback ingress); of what is left
  only what the AF_PACKET socket could not see is used: datagrams the
  kernel reassembled from fragments (IP_RECVFRAGSIZE), packets that came
  over another link type or our TUN device (IP_PKTINFO);
- IPv6 outer headers are read from the IPv6 raw/UDP sockets as before
  (payload only, no checksum state: the inner checksum must be complete);
- the outer header is checked (what ip_rcv and udp_rcv check: version,
  lengths, header checksum, no martian source; UDP length and checksum;
  the outer destination one of our addresses) and removed, the inner packet
  is checked (version, lengths, IPv4 header checksum, destination == the
  VIP) and the outer ECN CE mark is propagated as ip_tunnel_rcv does (RFC
  6040: CE over a not-ECT inner packet is dropped);
- the inner packet is written to a TUN device (IFF_TUN | IFF_NO_PI |
  IFF_VNET_HDR) behind a virtio_net_hdr: NEEDS_CSUM with csum_start moved
  onto the inner packet when the checksum was partial, so the local stack
  gets the CHECKSUM_PARTIAL skb the kernel's ipip would hand it; a GRO
  super-packet keeps gso_type/gso_size; a GUE remote checksum offload
  option becomes a partial checksum too (fou's default); an IPIP packet's
  DATA_VALID is passed on; otherwise the header is zero.  The local stack
  answers the client directly from the VIP, by the normal route, as in
  LVS TUN.

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
import ctypes
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
from pylvs.wire.vnet import (
    NO_HDR,
    PACKET_VNET_HDR,
    SOL_PACKET,
    VIRTIO_NET_HDR_F_DATA_VALID,
    VIRTIO_NET_HDR_F_NEEDS_CSUM,
    VNET_HDR_LEN,
)

IPPROTO_IPIP = 4
IPPROTO_UDP = 17
IPPROTO_IPV6 = 41
IP_PKTINFO = 8  # <linux/in.h>; not exported by Python's socket module
IP_RECVFRAGSIZE = 25  # cmsg: the largest fragment of a reassembled datagram
IP_DF = 0x4000
IP_FRAG = 0x3FFF  # MF | fragment offset
TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000

# AF_PACKET and classic BPF (<linux/if_packet.h>, <linux/filter.h>)
ETH_P_IP = 0x0800
ETH_HLEN = 14
ARPHRD_ETHER = 1
ARPHRD_LOOPBACK = 772
PACKET_OTHERHOST = 3
PACKET_OUTGOING = 4
PACKET_IGNORE_OUTGOING = 23
SIOCGIFHWADDR = 0x8927
SO_ATTACH_FILTER = 26
SO_RCVBUFFORCE = 33
SKF_AD_OFF = -0x1000
SKF_AD_PKTTYPE = 4
SKF_AD_IFINDEX = 8
SKF_AD_HATYPE = 28
SKF_NET_OFF = -0x100000

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
DECAP_PARTIAL = "decapsulated_csum_partial"
DECAP_GSO = "decapsulated_gso"
DROP_OUTER = "dropped_outer_malformed"
DROP_OUTER_CSUM = "dropped_outer_bad_checksum"
DROP_GSO = "dropped_outer_gso"
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
    DECAP_PARTIAL,
    DECAP_GSO,
    DROP_OUTER,
    DROP_OUTER_CSUM,
    DROP_GSO,
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
_L3 = VNET_HDR_LEN + ETH_HLEN  # the outer IP header in an AF_PACKET read
_VNET = struct.Struct("=BBHHHH")  # flags, gso_type, hdr_len, gso_size, csum_start, csum_offset
_W10 = struct.Struct("!10H")  # an IPv4 header without options, as 16-bit words
_NEEDS = VIRTIO_NET_HDR_F_NEEDS_CSUM
_PACKET_LINKS = (ARPHRD_ETHER, ARPHRD_LOOPBACK, -1)  # the AF_PACKET socket's (-1: gone since)
_CHECKED = VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_DATA_VALID


class Drop(Exception):
    """A packet that is not decapsulated; ``reason`` is its counter name."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# -- packets -----------------------------------------------------------------------------
def outer_ipv4(buf: bytes | bytearray, off: int, end: int) -> tuple[int, int, int, int, int, int]:
    """Check an outer IPv4 header at ``buf[off:end]`` as ip_rcv does.

    Returns (source, destination, ECN bits, protocol, payload offset, payload
    end), the addresses as 32-bit integers; bytes after the header's total
    length (Ethernet padding) are left out.
    """
    if end - off < 20:
        raise Drop(DROP_OUTER)
    w = _W10.unpack_from(buf, off)
    w0 = w[0]
    ihl = (w0 >> 6) & 0x3C
    tot = w[1]
    if w0 >> 12 != 4 or ihl < 20 or tot < ihl or off + tot > end:
        raise Drop(DROP_OUTER)
    s = sum(w)
    if ihl > 20:
        s += csum.add(buf, off + 20, off + ihl)
    if s % 0xFFFF:  # the one's complement sum of a valid header is 0xffff (RFC 1071)
        raise Drop(DROP_OUTER_CSUM)
    if w[6] < 0x100 or w[6] >= 0xE000:  # martian source: 0/8, multicast, limited broadcast
        raise Drop(DROP_OUTER)
    return (
        (w[6] << 16) | w[7],
        (w[8] << 16) | w[9],
        w0 & ECN_MASK,
        w[4] & 0xFF,
        off + ihl,
        off + tot,
    )


def outer_udp(
    buf: bytes | bytearray, off: int, end: int, src: int, dst: int, verify: bool
) -> tuple[int, int]:
    """Check the UDP header at ``buf[off:end]`` as udp_rcv does (length; the
    checksum unless 0 or ``verify`` is False: the kernel vouched for it or it
    is partial).  Returns (payload offset, payload end)."""
    if end - off < 8:
        raise Drop(DROP_OUTER)
    ulen = (buf[off + 4] << 8) | buf[off + 5]
    if ulen < 8 or off + ulen > end:
        raise Drop(DROP_OUTER)
    end = off + ulen
    if verify and (buf[off + 6] or buf[off + 7]):
        s = csum.add(buf, off, end) + (src >> 16) + (src & 0xFFFF) + (dst >> 16) + (dst & 0xFFFF)
        if (s + IPPROTO_UDP + ulen) % 0xFFFF:
            raise Drop(DROP_OUTER_CSUM)
    return off + 8, end


def inner_check(buf: bytearray, off: int, end: int, proto: int, vip: bytes, outer_ecn: int) -> int:
    """Check the inner packet at ``buf[off:end]``; returns where it ends.

    ``proto`` is the outer next-protocol (4: IPv4 inner, 41: IPv6 inner).
    Bytes after the inner packet's own length are left out (as ip_rcv does);
    an outer CE is copied into the inner header in place.  Raises Drop for
    anything the local stack should not see.
    """
    n = end - off
    tot: int
    if proto == IPPROTO_IPIP:
        if n < 20:
            raise Drop(DROP_INNER)
        w = _W10.unpack_from(buf, off)
        ihl = (w[0] >> 6) & 0x3C
        tot = w[1]
        if w[0] >> 12 != 4 or ihl < 20 or tot < ihl or tot > n:
            raise Drop(DROP_INNER)
        s = sum(w)
        if ihl > 20:
            s += csum.add(buf, off + 20, off + ihl)
        if s % 0xFFFF:
            raise Drop(DROP_CSUM)
        if buf[off + 16 : off + 20] != vip:
            raise Drop(DROP_OTHER_VIP)
        inner_ecn = w[0] & ECN_MASK
    elif proto == IPPROTO_IPV6:
        if n < 40 or buf[off] >> 4 != 6:
            raise Drop(DROP_INNER)
        tot = 40 + ((buf[off + 4] << 8) | buf[off + 5])
        if tot == 40 or tot > n:  # payload length 0: a jumbogram, never tunnelled by LVS
            raise Drop(DROP_INNER)
        if buf[off + 24 : off + 40] != vip:
            raise Drop(DROP_OTHER_VIP)
        inner_ecn = (buf[off + 1] >> 4) & ECN_MASK
    else:
        raise Drop(DROP_PROTO)
    if outer_ecn == ECN_CE:
        if inner_ecn == ECN_NOT_ECT:
            raise Drop(DROP_ECN)
        if inner_ecn != ECN_CE:
            _set_ce(buf, off)
    return off + tot


def _set_ce(buf: bytearray, off: int) -> None:
    if buf[off] >> 4 == 4:
        before = csum.get(buf, off)
        buf[off + 1] |= ECN_CE
        csum.put(buf, off + 10, csum.replace2(csum.get(buf, off + 10), before, csum.get(buf, off)))
    else:
        buf[off + 1] |= ECN_CE << 4


def gue_header(
    buf: bytes | bytearray, off: int, end: int
) -> tuple[int, int, tuple[int, int] | None]:
    """Check the GUE header at ``buf[off:end]`` (version 0, or 1 = direct IP).

    Returns (inner protocol, inner offset, remote checksum offload): the
    REMCSUM option that IPVS adds for remcsum tunnels, as (start, field
    offset) relative to the inner packet, or None.
    """
    if end - off < 4:
        raise Drop(DROP_GUE)
    b0 = buf[off]
    version = b0 >> 6
    if version == 1:  # direct IP: the first nibble is the IP version
        nib = b0 >> 4
        if nib == 4:
            return IPPROTO_IPIP, off, None
        if nib == 6:
            return IPPROTO_IPV6, off, None
        raise Drop(DROP_GUE)
    if version != 0 or b0 & 0x20:  # unknown version, or a control message
        raise Drop(DROP_GUE)
    hlen = (b0 & 0x1F) * 4
    proto = buf[off + 1]
    flags = (buf[off + 2] << 8) | buf[off + 3]
    inner = off + 4 + hlen
    if inner > end or flags & ~GUE_FLAG_PRIV:
        raise Drop(DROP_GUE)
    remcsum: tuple[int, int] | None = None
    if flags & GUE_FLAG_PRIV:
        if hlen < 4:
            raise Drop(DROP_GUE)
        pflags = struct.unpack_from("!I", buf, off + 4)[0]
        if pflags & ~GUE_PFLAG_REMCSUM:
            raise Drop(DROP_GUE)
        if pflags & GUE_PFLAG_REMCSUM:
            if hlen < 8:
                raise Drop(DROP_GUE)
            start, field = struct.unpack_from("!HH", buf, off + 8)
            if start >= end - inner or field + 2 > end - inner or field < start:
                raise Drop(DROP_GUE)
            remcsum = (start, field)
    if proto not in (IPPROTO_IPIP, IPPROTO_IPV6):
        raise Drop(DROP_PROTO)
    return proto, inner, remcsum


def decapsulate(
    buf: bytearray,
    off: int,
    end: int,
    proto: int,
    vip: bytes,
    outer_ecn: int,
    gue: bool = False,
    vnet: tuple[int, int, int, int, int, int] = (0, 0, 0, 0, 0, 0),
) -> tuple[int, int, bytes]:
    """The inner packet of the tunnel payload ``buf[off:end]`` and the
    virtio_net_hdr to write it to the TUN device with.

    ``gue``: the payload starts with a GUE header (``proto`` is then read
    from it).  ``vnet`` is the received packet's virtio_net_hdr (flags,
    gso_type, hdr_len, gso_size, csum_start, csum_offset), csum_start as an
    index in ``buf``.  A partial checksum inside the inner packet stays
    partial (csum_start made relative to the inner packet); one in the
    stripped outer headers (GUE's UDP) leaves the inner packet complete.  A
    GRO super-packet stays one (gso_type and gso_size kept: the inner TCP
    stream was merged).  Returns (start, end, header): the inner packet is
    ``buf[start:end]``.  Raises Drop.
    """
    remcsum = None
    if gue:
        proto, off, remcsum = gue_header(buf, off, end)
    iend = inner_check(buf, off, end, proto, vip, outer_ecn)
    flags, gso_type, _hdr_len, gso_size, start, field = vnet
    if remcsum is not None:  # skb_remcsum_adjust_partial: the field holds the pseudo sum
        start, field = remcsum
        if field + 2 > iend - off:
            raise Drop(DROP_GUE)
        return off, iend, _VNET.pack(_NEEDS, gso_type, 0, gso_size, start, field - start)
    if flags & _NEEDS:
        start -= off
        if start >= 0:
            if start + field + 2 > iend - off:
                raise Drop(DROP_INNER)
            return off, iend, _VNET.pack(_NEEDS, gso_type, 0, gso_size, start, field)
        flags = 0  # an outer checksum (GUE's UDP) was partial: the inner one is complete
    elif flags & VIRTIO_NET_HDR_F_DATA_VALID and gue:
        flags = 0  # CHECKSUM_UNNECESSARY was about the outer UDP checksum
    if flags or gso_type:
        return (
            off,
            iend,
            _VNET.pack(flags & VIRTIO_NET_HDR_F_DATA_VALID, gso_type, 0, gso_size, 0, 0),
        )
    return off, iend, NO_HDR


# -- sockets and the device --------------------------------------------------------------
_Insn = tuple[str, int, str, str]  # (opcode, k, jump-if-true label, jump-if-false label)
_OPS = {"ldw": 0x20, "ldh": 0x28, "ldb": 0x30, "ldxmsh": 0xB1, "ldhx": 0x48, "jeq": 0x15}
_OPS |= {"jset": 0x45, "ret": 0x06}


def bpf_assemble(prog: list[_Insn | str]) -> bytes:
    """Classic BPF: a list of instructions and label names to struct sock_filter[]."""
    where: dict[str, int] = {}
    insns: list[_Insn] = []
    for item in prog:
        if isinstance(item, str):
            where[item] = len(insns)
        else:
            insns.append(item)
    out = bytearray()
    for i, (op, k, jt, jf) in enumerate(insns):
        t = where[jt] - i - 1 if jt else 0
        f = where[jf] - i - 1 if jf else 0
        out += struct.pack("=HBBI", _OPS[op], t, f, k & 0xFFFFFFFF)
    return bytes(out)


def attach_filter(s: socket.socket, code: bytes) -> None:
    """SO_ATTACH_FILTER with ``code`` (from bpf_assemble)."""
    buf = ctypes.create_string_buffer(code, len(code))
    fprog = struct.pack("HL", len(code) // 8, ctypes.addressof(buf))
    s.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def _linked(eth: str, other: str, tun_index: int) -> list[_Insn | str]:
    """Packets received on an Ethernet or loopback link other than our TUN device
    go on to label ``eth``, the others to label ``other``."""
    return [
        ("ldw", SKF_AD_OFF + SKF_AD_HATYPE, "", ""),
        ("jeq", ARPHRD_ETHER, "ether", ""),
        ("jeq", ARPHRD_LOOPBACK, "ether", other),
        "ether",
        ("ldw", SKF_AD_OFF + SKF_AD_IFINDEX, "", ""),
        ("jeq", tun_index, other, eth),
    ]


def packet_filter(proto: int, tun_index: int, udp_port: int = 0) -> bytes:
    """The AF_PACKET socket's filter: IPv4 tunnel packets that ip_rcv would take
    for this host and that the kernel does not reassemble first."""
    l3 = ETH_HLEN
    prog: list[_Insn | str] = [
        ("ldw", SKF_AD_OFF + SKF_AD_PKTTYPE, "", ""),
        ("jeq", PACKET_OTHERHOST, "drop", ""),
        ("jeq", PACKET_OUTGOING, "drop", ""),
        *_linked("ip", "drop", tun_index),
        "ip",
        ("ldh", l3 + 6, "", ""),
        ("jset", IP_FRAG, "drop", ""),
        ("ldb", l3 + 9, "", ""),
    ]
    if udp_port:
        prog += [
            ("jeq", IPPROTO_UDP, "", "drop"),
            ("ldxmsh", l3, "", ""),
            ("ldhx", l3 + 2, "", ""),
            ("jeq", udp_port, "accept", "drop"),
        ]
    else:
        prog.append(("jeq", proto, "accept", "drop"))
    prog += ["accept", ("ret", 0x40000, "", ""), "drop", ("ret", 0, "", "")]
    return bpf_assemble(prog)


def leftover_filter(tun_index: int) -> bytes:
    """The raw/UDP socket's filter: drop what the AF_PACKET socket surely took
    (DF set, so not reassembled, received on an Ethernet or loopback link)."""
    prog: list[_Insn | str] = [
        *_linked("df", "accept", tun_index),
        "df",
        ("ldh", SKF_NET_OFF + 6, "", ""),
        ("jset", IP_DF, "drop", "accept"),
        "accept",
        ("ret", 0x40000, "", ""),
        "drop",
        ("ret", 0, "", ""),
    ]
    return bpf_assemble(prog)


class LocalAddresses:
    """This namespace's addresses, re-read (at most once a second) on a miss.

    ``addr in local`` takes packed addresses; ``local.v4`` holds the IPv4 ones
    as integers for the per-packet test (``has4`` on a miss)."""

    def __init__(self) -> None:
        self._addrs: set[bytes] = set()
        self.v4: set[int] = set()
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
        self.v4 = {int.from_bytes(a, "big") for a in addrs if len(a) == 4}

    def __contains__(self, addr: bytes) -> bool:
        if addr in self._addrs:
            return True
        if time.monotonic() - self._when >= 1.0:
            self.refresh()
            return addr in self._addrs
        return False

    def has4(self, addr: int) -> bool:
        return addr in self.v4 or addr.to_bytes(4, "big") in self


def open_tun(name: str) -> int:
    """Create (attach to) the TUN device ``name``, with a virtio_net_hdr before
    each packet (TUNSETVNETHDRSZ stays 10); returns its non-blocking fd."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    flags = IFF_TUN | IFF_NO_PI | IFF_VNET_HDR
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", name.encode(), flags))
    except OSError:
        os.close(fd)
        raise
    return fd


def link_type(index: int) -> int:
    """The ARPHRD type of interface ``index`` in this namespace (-1: gone)."""
    try:
        name = socket.if_indextoname(index)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            ifr = fcntl.ioctl(s, SIOCGIFHWADDR, struct.pack("16s24x", name.encode()))
    except OSError:
        return -1
    family: int = struct.unpack_from("=H", ifr, 16)[0]
    return family


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
        self.gue = tun_type == "gue"
        self.counters = dict.fromkeys(COUNTERS, 0)
        self.tun_fd = -1
        self.tun_index = 0
        self.handlers: dict[int, Callable[[socket.socket], None]] = {}
        self.sockets: dict[int, socket.socket] = {}
        self.local = LocalAddresses()
        self.rxbuf = bytearray(VNET_HDR_LEN + ETH_HLEN + 65536)
        self.rxview = memoryview(self.rxbuf)
        self._link_types: dict[int, int] = {}
        self._seq = 0
        self._written: dict[str, int] | None = {}
        self._stop = False
        self._dump = False

    # -- setup -------------------------------------------------------------
    def open(self) -> None:
        """Open the TUN device and the receiving sockets (raises OSError)."""
        self.tun_fd = open_tun(self.dev)
        self.tun_index = socket.if_nametoindex(self.dev)
        proto = IPPROTO_IPIP if self.vip.version == 4 else IPPROTO_IPV6
        if self.gue:
            self._add(socket.AF_INET, socket.SOCK_DGRAM, 0, self._gue4, required=True)
            self._add(socket.AF_INET6, socket.SOCK_DGRAM, 0, self._gue6, required=False)
        else:
            self._add(socket.AF_INET, socket.SOCK_RAW, proto, self._raw4, required=True)
            self._add(socket.AF_INET6, socket.SOCK_RAW, proto, self._raw6, required=False)
        self._add_packet(proto)

    def _add_packet(self, proto: int) -> None:
        s = socket.socket(
            socket.AF_PACKET, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.htons(ETH_P_IP)
        )
        try:
            s.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
            s.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            _rcvbuf(s)
            attach_filter(s, packet_filter(proto, self.tun_index, self.tun_port if self.gue else 0))
            s.setblocking(False)
            _flush(s)  # what arrived before the filter was attached
        except OSError:
            s.close()
            raise
        self.sockets[s.fileno()] = s
        self.handlers[s.fileno()] = self._frame

    def _add(
        self,
        family: int,
        kind: int,
        proto: int,
        handler: Callable[[socket.socket], None],
        required: bool,
    ) -> None:
        try:
            s = socket.socket(family, kind | socket.SOCK_CLOEXEC, proto)
        except OSError:
            if required:
                raise
            return
        try:
            if family == socket.AF_INET:
                # Only the leftovers of the AF_PACKET socket: reassembled datagrams,
                # other link types.  Kept open for what it tells the kernel.
                attach_filter(s, leftover_filter(self.tun_index))
                s.setsockopt(socket.IPPROTO_IP, IP_RECVFRAGSIZE, 1)
                s.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
            else:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVTCLASS, 1)
            _rcvbuf(s)
            if kind == socket.SOCK_DGRAM:
                if family == socket.AF_INET:
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
    def _frame(self, s: socket.socket) -> None:
        """One IPv4 tunnel packet from the AF_PACKET socket, with its virtio_net_hdr."""
        buf = self.rxbuf
        try:
            n = s.recv_into(buf)
        except OSError as e:
            if e.errno != errno.EINVAL:
                raise
            # af_packet could not describe it (a GSO super-packet of an encapsulated
            # type, e.g. after GRO on the way): dropped by the kernel.
            self.counters[DROP_GSO] += 1
            return
        flags = buf[0]
        try:
            src, dst, ecn, proto, off, end = outer_ipv4(buf, _L3, n)
            if dst not in self.local.v4 and not self.local.has4(dst):
                raise Drop(DROP_NOT_LOCAL)
            if self.gue:
                off, end = outer_udp(buf, off, end, src, dst, not flags & _CHECKED)
            f, g, h, size, start, coff = _VNET.unpack_from(buf)
            vnet = (f, g, h, size, start + VNET_HDR_LEN, coff)  # start: from the Ethernet header
            ioff, iend, hdr = decapsulate(
                buf, off, end, proto, self.vip_packed, ecn, self.gue, vnet
            )
        except Drop as d:
            self.counters[d.reason] += 1
            return
        self._write(hdr, self.rxview[ioff:iend])

    def _deliver(
        self, data: bytes | bytearray, proto: int, outer_dst: bytes, outer_ecn: int
    ) -> None:
        """A tunnel payload the kernel handed to a socket (no checksum state)."""
        buf = data if isinstance(data, bytearray) else bytearray(data)
        try:
            if outer_dst not in self.local:
                raise Drop(DROP_NOT_LOCAL)
            off, end, hdr = decapsulate(
                buf, 0, len(buf), proto, self.vip_packed, outer_ecn, self.gue
            )
        except Drop as d:
            self.counters[d.reason] += 1
            return
        self._write(hdr, memoryview(buf)[off:end])

    def _write(self, hdr: bytes, inner: memoryview) -> None:
        try:
            os.writev(self.tun_fd, (hdr, inner))
        except OSError:
            self.counters[DROP_TUN] += 1
            return
        c = self.counters
        c[DECAPSULATED] += 1
        c[DECAP_BYTES] += len(inner)
        if hdr[0] & VIRTIO_NET_HDR_F_NEEDS_CSUM:
            c[DECAP_PARTIAL] += 1
        if hdr[1]:
            c[DECAP_GSO] += 1

    def _leftover(self, anc: list[tuple[int, int, bytes]]) -> tuple[bool, bytes, int]:
        """From an IPv4 socket's ancillary data: whether the AF_PACKET socket did not
        see the packet (reassembled, or from another link type), destination, ECN."""
        mine = False
        dst = b""
        ecn = 0
        for level, kind, value in anc:
            if level != socket.IPPROTO_IP:
                continue
            if kind == IP_RECVFRAGSIZE:
                mine = True
            elif kind == IP_PKTINFO and len(value) >= 12:
                index = int.from_bytes(value[:4], sys.byteorder)
                dst = value[8:12]
                link = self._link_types.get(index)
                if link is None:
                    link = self._link_types[index] = link_type(index)
                mine |= index == self.tun_index or link not in _PACKET_LINKS
            elif kind == socket.IP_TOS and value:
                ecn = value[0] & ECN_MASK
        return mine, dst, ecn

    def _raw4(self, s: socket.socket) -> None:
        pkt, anc, _flags, _addr = s.recvmsg(65535, 256)
        mine, _dst, _ecn = self._leftover(anc)
        if not mine:
            return  # decapsulated from the AF_PACKET socket
        buf = bytearray(pkt)
        try:
            _src, dst, ecn, proto, off, end = outer_ipv4(buf, 0, len(buf))
        except Drop as d:
            self.counters[d.reason] += 1
            return
        self._deliver(buf[off:end], proto, dst.to_bytes(4, "big"), ecn)

    def _raw6(self, s: socket.socket) -> None:
        # An IPv6 raw socket gets the payload only; the header's destination
        # and traffic class come as ancillary data.
        data, anc, _flags, _addr = s.recvmsg(65535, 256)
        dst, ecn = _v6_ancillary(anc)
        self._deliver(data, s.proto, dst, ecn)

    def _gue4(self, s: socket.socket) -> None:
        data, anc, _flags, _addr = s.recvmsg(65535, 256)
        mine, dst, ecn = self._leftover(anc)
        if mine:
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
                os.read(self.tun_fd, 65535 + VNET_HDR_LEN)
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


def _rcvbuf(s: socket.socket) -> None:
    try:
        s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 4 << 20)
    except OSError:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)


def _drain(s: socket.socket) -> None:
    try:
        while s.recv(4096):
            pass
    except BlockingIOError:
        pass


def _flush(s: socket.socket) -> None:
    for _ in range(100000):
        try:
            s.recv(1)
        except BlockingIOError:
            return
        except OSError:
            continue


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
