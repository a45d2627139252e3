"""Internet checksums (RFC 1071) and their incremental updates (RFC 1624).

The kernel's helpers in include/net/checksum.h and net/core/utils.c, in
Python.  Sums are kept "unfolded" (any non-negative int) until ``fold``;
a full sum over a buffer uses one big-integer conversion, which is far
faster in CPython than a loop over 16-bit words:  the one's-complement sum
of the 16-bit words of ``data`` is congruent to ``int(data) mod 0xffff``.

Two checksum states exist for a TCP/UDP packet handed over by a virtual NIC
(the kernel's ip_summed):

- complete: the field holds the final checksum; an address or port change
  is applied with ``replace2``/``replace4``/``replace16``.
- partial (CHECKSUM_PARTIAL, virtio_net_hdr NEEDS_CSUM): the field holds
  the folded pseudo-header sum, not complemented, and whoever sends the
  packet on computes the rest.  Only pseudo-header fields (addresses,
  length) change it, with ``partial_replace``; ports do not.
"""

from __future__ import annotations

import struct

_H = struct.Struct("!H")


def add(data: bytes | bytearray | memoryview, start: int = 0, end: int | None = None) -> int:
    """Unfolded one's-complement sum of ``data[start:end]`` (odd length padded with 0)."""
    view = memoryview(data)[start:end]
    n = int.from_bytes(view, "big")
    if len(view) & 1:
        n <<= 8
    if n == 0:
        return 0
    r = n % 0xFFFF
    return r if r else 0xFFFF


def fold(s: int) -> int:
    """Fold an unfolded sum to 16 bits (one's complement, not inverted)."""
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def finish(s: int) -> int:
    """The checksum field value for an unfolded sum: ~fold(s)."""
    return ~fold(s) & 0xFFFF


def checksum(data: bytes | bytearray | memoryview, start: int = 0, end: int | None = None) -> int:
    """The checksum of a block (IPv4 header, ICMP message): ~sum."""
    return finish(add(data, start, end))


def pseudo4(saddr: bytes, daddr: bytes, proto: int, length: int) -> int:
    """Unfolded IPv4 pseudo-header sum."""
    return add(saddr) + add(daddr) + proto + length


def pseudo6(saddr: bytes, daddr: bytes, proto: int, length: int) -> int:
    """Unfolded IPv6 pseudo-header sum (RFC 8200 8.1)."""
    return add(saddr) + add(daddr) + proto + length


def replace(old: int, old_sum: int, new_sum: int) -> int:
    """RFC 1624 eqn. 3: a complete checksum field after data whose sum was
    ``old_sum`` becomes data whose sum is ``new_sum``:  ~(~old + ~m + m')."""
    return finish((~old & 0xFFFF) + (0xFFFF - fold(old_sum)) + fold(new_sum))


def replace2(old: int, before: int, after: int) -> int:
    """Complete checksum after one 16-bit word changed from ``before`` to ``after``."""
    return finish((~old & 0xFFFF) + (~before & 0xFFFF) + after)


def replace_bytes(old: int, before: bytes, after: bytes) -> int:
    """Complete checksum after an aligned field (an address) changed."""
    return replace(old, add(before), add(after))


def partial_replace(old: int, before: bytes, after: bytes) -> int:
    """A partial checksum field (pseudo-header sum, not inverted) after a
    pseudo-header field changed: fold(old - before + after)."""
    s = fold(old + (0xFFFF - fold(add(before))) + fold(add(after)))
    return s


def partial_replace2(old: int, before: int, after: int) -> int:
    """A partial checksum field after a 16-bit pseudo-header word (the length) changed."""
    return fold(old + (~before & 0xFFFF) + after)


def put(buf: bytearray, offset: int, value: int) -> None:
    _H.pack_into(buf, offset, value)


def get(buf: bytes | bytearray | memoryview, offset: int) -> int:
    v: int = _H.unpack_from(buf, offset)[0]
    return v
