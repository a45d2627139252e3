"""PROXY protocol headers (HAProxy's spec, versions 1 and 2): the client's
address as the real server should see it, sent first on the connection to
the real server.  The socket equivalent of LVS FULLNAT's TOA option.
"""

from __future__ import annotations

import struct
from ipaddress import IPv4Address, IPv6Address

Address = IPv4Address | IPv6Address

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
_V2_CMD_PROXY = 0x21  # version 2, command PROXY
_FAM_TCP4, _FAM_UDP4, _FAM_TCP6, _FAM_UDP6 = 0x11, 0x12, 0x21, 0x22


def v1(src: Address, sport: int, dst: Address, dport: int) -> bytes:
    """``PROXY TCP4 <src> <dst> <sport> <dport>\\r\\n`` (TCP only in version 1)."""
    fam = "TCP4" if src.version == 4 else "TCP6"
    return f"PROXY {fam} {src} {dst} {sport} {dport}\r\n".encode("ascii")


def v2(src: Address, sport: int, dst: Address, dport: int, *, udp: bool = False) -> bytes:
    """The binary version 2 header with the PROXY command and the addresses."""
    if src.version == 4:
        fam = _FAM_UDP4 if udp else _FAM_TCP4
        body = src.packed + dst.packed + struct.pack("!HH", sport, dport)
    else:
        fam = _FAM_UDP6 if udp else _FAM_TCP6
        body = src.packed + dst.packed + struct.pack("!HH", sport, dport)
    return V2_SIGNATURE + struct.pack("!BBH", _V2_CMD_PROXY, fam, len(body)) + body


def header(version: str, src: Address, sport: int, dst: Address, dport: int) -> bytes:
    if version == "v1":
        return v1(src, sport, dst, dport)
    if version == "v2":
        return v2(src, sport, dst, dport)
    raise ValueError(f"PROXY protocol version {version!r}")
