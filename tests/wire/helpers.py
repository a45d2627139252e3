"""Helpers shared by the wire tests: frames and checksums checked with scapy, and
``KernelLab``, two network namespaces in which the kernel's own frames are compared
with ours (scapy is used in tests only)."""

from __future__ import annotations

import ctypes
import os
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from ipaddress import IPv4Address, IPv6Address
from typing import TypeVar

import pytest
from hypothesis import strategies as st
from scapy.layers.l2 import Ether
from scapy.packet import Packet

from pylvs.wire import csum
from pylvs.wire.packet import Pkt, parse

MAC1 = "02:00:00:00:00:01"
MAC2 = "02:00:00:00:00:02"

ip4 = st.integers(0, 2**32 - 1).map(lambda n: str(IPv4Address(n)))
ip6 = st.integers(0, 2**128 - 1).map(lambda n: str(IPv6Address(n)))
ports = st.integers(0, 65535)
payloads = st.binary(max_size=64)


# -- frames and checksums ----------------------------------------------------------


def eth() -> Ether:
    """An Ethernet header with fixed addresses (scapy would otherwise look them up)."""
    return Ether(dst=MAC1, src=MAC2)


def frame(p: Packet) -> bytearray:
    return bytearray(bytes(p))


def parsed(buf: bytearray, partial: bool = False, start: int = 0, end: int | None = None) -> Pkt:
    r = parse(buf, start, len(buf) if end is None else end, partial)
    assert isinstance(r, Pkt), r
    return r


def l4_csum_at(pkt: Pkt) -> int:
    return {6: 16, 17: 6, 58: 2, 1: 2}[pkt.proto] + pkt.l4


def make_partial(pkt: Pkt) -> None:
    """Put the folded pseudo-header sum in the TCP/UDP checksum, as CHECKSUM_PARTIAL."""
    buf = pkt.buf
    length = pkt.end - pkt.l4
    if pkt.proto == 17:
        length = struct.unpack_from("!H", buf, pkt.l4 + 4)[0]
    if pkt.af == 4:
        s = csum.pseudo4(pkt.saddr, pkt.daddr, pkt.proto, length)
    else:
        s = csum.pseudo6(pkt.saddr, pkt.daddr, pkt.proto, length)
    csum.put(buf, l4_csum_at(pkt), csum.fold(s))
    pkt.csum_partial = True


def complete_partial(buf: bytearray, csum_start: int, csum_offset: int, end: int) -> None:
    """What the NIC (or skb_checksum_help) does for NEEDS_CSUM: sum from csum_start
    to the end, field included, and store the complement (0 sent as 0xffff)."""
    value = csum.finish(csum.add(buf, csum_start, end))
    csum.put(buf, csum_start + csum_offset, value or 0xFFFF)


def _csum_field(layer: Packet) -> str:
    return "cksum" if any(f.name == "cksum" for f in layer.fields_desc) else "chksum"


def scapy_chksum(pkt: Packet, layer: type[Packet], nb: int = 1) -> int:
    """The checksum scapy computes for the ``nb``-th ``layer`` of ``pkt``."""
    q = pkt.copy()
    field = _csum_field(q.getlayer(layer, nb))
    setattr(q.getlayer(layer, nb), field, None)
    value: int = getattr(pkt.__class__(bytes(q)).getlayer(layer, nb), field)
    return value


def recomputed(data: bytes | bytearray, layer: type[Packet]) -> tuple[int, int]:
    """(checksum in the frame, checksum scapy computes) for ``layer``."""
    e = Ether(bytes(data))
    got: int = getattr(e[layer], _csum_field(e[layer]))
    return got, scapy_chksum(e, layer)


def assert_csums(data: bytes | bytearray, *layers: type[Packet]) -> None:
    for layer in layers:
        got, want = recomputed(data, layer)
        assert got == want, f"{layer.__name__} checksum {got:#x} != scapy {want:#x}"


# -- against the kernel ----------------------------------------------------------------


class KernelLab:
    """Two network namespaces joined by veth: in A the kernel under test
    (10.99.0.1/24 and 2001:db8:99::1/64 on ``w0``), in B an AF_PACKET socket
    on ``w1`` that injects and captures frames.  ``configure`` adds to A."""

    def __init__(self, tag: str) -> None:
        unique = f"{tag}{os.getpid() % 100000}"
        self.a, self.b = f"pylvs-{unique}-a", f"pylvs-{unique}-b"
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.home = os.open("/proc/self/ns/net", os.O_RDONLY)
        self.ps: socket.socket | None = None
        self.mac_a = self.mac_b = b""

    def _setns(self, fd: int) -> None:
        if self.libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
            raise OSError(ctypes.get_errno(), "setns")

    def _socket_in(self, ns: str, family: int, kind: int, proto: int = 0) -> socket.socket:
        fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
        try:
            self._setns(fd)
            return socket.socket(family, kind, proto)
        finally:
            os.close(fd)
            self._setns(self.home)

    def socket_in_a(self, family: int, kind: int) -> socket.socket:
        return self._socket_in(self.a, family, kind)

    def ip(self, *args: str) -> str:
        return subprocess.run(["ip", *args], check=True, capture_output=True, text=True).stdout

    def veth(self, name_a: str, name_b: str, *options: str) -> None:
        """A veth pair, ``name_a`` in A and ``name_b`` in B (``options``: "mtu", "1300")."""
        peer = ("peer", "name", name_b, "netns", self.b)
        self.ip("link", "add", name_a, "netns", self.a, *options, "type", "veth", *peer)

    def configure(self) -> None:
        """The link between A and B, A's addresses on it, both ends up; a
        subclass adds links, routes and sysctls."""
        self.veth("w0", "w1")
        self.ip("-n", self.a, "addr", "add", "10.99.0.1/24", "dev", "w0")
        self.ip("-n", self.a, "addr", "add", "2001:db8:99::1/64", "dev", "w0", "nodad")
        self.ip("-n", self.a, "link", "set", "w0", "up")
        self.ip("-n", self.b, "link", "set", "w1", "up")

    def up(self) -> None:
        self.ip("netns", "add", self.a)
        self.ip("netns", "add", self.b)
        self.configure()
        self.ps = self._socket_in(self.b, socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
        self.ps.bind(("w1", 0))
        self.ps.settimeout(0.5)
        self.mac_b = self.ps.getsockname()[4]
        out = self.ip("-n", self.a, "-o", "link", "show", "w0")
        self.mac_a = bytes.fromhex(out.split("link/ether ")[1].split()[0].replace(":", ""))

    def send(self, frame: bytes) -> None:
        assert self.ps is not None
        self.ps.send(frame)

    def send_ip(self, packet: bytes) -> None:
        """``packet`` (IPv4 or IPv6) in an Ethernet frame from B to A."""
        etype = b"\x08\x00" if packet[0] >> 4 == 4 else b"\x86\xdd"
        self.send(self.mac_a + self.mac_b + etype + packet)

    def neigh(self, addr: str) -> str:
        """A's neighbour entry for ``addr`` on ``w0``."""
        return self.ip("-n", self.a, "neigh", "show", addr, "dev", "w0")

    def drain(self) -> None:
        assert self.ps is not None
        try:
            while True:
                self.ps.recv(65535)
        except TimeoutError:
            pass

    def expect(self, pred: Callable[[bytes], bool], timeout: float = 3.0) -> bytes:
        assert self.ps is not None
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                f = self.ps.recv(65535)
            except TimeoutError:
                continue
            if pred(f):
                return f
        raise AssertionError("expected frame not seen")

    def down(self) -> None:
        if self.ps is not None:
            self.ps.close()
        for ns in (self.a, self.b):
            if os.path.exists(f"/run/netns/{ns}"):
                subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        os.close(self.home)


L = TypeVar("L", bound=KernelLab)


def kernel_lab(lab: L) -> Iterator[L]:
    """The body of a ``lab`` fixture: ``lab`` up, yielded, down again.  What the
    comparison needs (root, iproute2, namespaces and veth) missing: a skip, or a
    failure when CI=true."""
    missing = ""
    if os.geteuid() != 0:
        missing = "root"
    elif shutil.which("ip") is None:
        missing = "the ip command (iproute2)"
    if not missing:
        try:
            lab.up()
        except (OSError, subprocess.CalledProcessError) as e:
            missing = f"network namespaces and veth ({e})"
    if missing:
        lab.down()
        if os.environ.get("CI") == "true":
            pytest.fail(f"kernel comparison needs {missing}")
        pytest.skip(f"kernel comparison needs {missing}")
    try:
        yield lab
    finally:
        lab.down()
