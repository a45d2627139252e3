"""PING_CHECK (keepalived check_ping.c): one ICMP (ICMPv6) echo request to connect_ip;
the check passes when the echo reply arrives within connect_timeout, and fails on an
ICMP error, a send error or silence.

Sockets: an unprivileged ICMP datagram socket (SOCK_DGRAM, IPPROTO_ICMP[V6]) when
``net.ipv4.ping_group_range`` admits our group (the kernel picks the echo identifier,
fills the checksum and hands us only our replies and errors), else a raw socket, which
needs CAP_NET_RAW (root): then we checksum (IPv4), skip the IP header and keep only
echo replies carrying our identifier and sequence.  keepalived widens
ping_group_range itself when needed; pylvs does not change sysctls (a deliberate
difference).
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import os
import socket
import struct

from pylvs.check.base import bind_source, describe_error, destination, recv_datagram, set_fwmark
from pylvs.check.state import Result
from pylvs.config.model import CheckerConf

ECHO_REQUEST = {socket.AF_INET: 8, socket.AF_INET6: 128}
ECHO_REPLY = {socket.AF_INET: 0, socket.AF_INET6: 129}
PROTO = {socket.AF_INET: socket.IPPROTO_ICMP, socket.AF_INET6: socket.IPPROTO_ICMPV6}
PAYLOAD = bytes(range(56))

_seq = itertools.count(1)
_mode: dict[socket.AddressFamily, str] = {}  # family -> "dgram" | "raw", once found out


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return int(~total & 0xFFFF)


def echo_request(
    family: socket.AddressFamily, ident: int, seq: int, payload: bytes = PAYLOAD
) -> bytes:
    head = struct.pack("!BBHHH", ECHO_REQUEST[family], 0, 0, ident, seq)
    if family == socket.AF_INET:  # ICMPv6 checksums are the kernel's (pseudo-header)
        head = head[:2] + struct.pack("!H", checksum(head + payload)) + head[4:]
    return head + payload


def parse_reply(
    family: socket.AddressFamily, data: bytes, raw: bool
) -> tuple[int, int, int] | None:
    """(type, identifier, sequence) of an ICMP message; None if too short."""
    if raw and family == socket.AF_INET:
        if not data:
            return None
        data = data[(data[0] & 0x0F) * 4 :]
    if len(data) < 8:
        return None
    typ, _code, _sum, ident, seq = struct.unpack_from("!BBHHH", data)
    return typ, ident, seq


def open_icmp(family: socket.AddressFamily, mode: str = "auto") -> tuple[socket.socket, bool]:
    """An ICMP socket and whether it is raw; ``mode``: auto, dgram or raw."""
    kinds = {"dgram": [False], "raw": [True]}.get(mode)
    if kinds is None:
        known = _mode.get(family)
        kinds = [known == "raw"] if known else [False, True]
    error: OSError | None = None
    for raw in kinds:
        kind = socket.SOCK_RAW if raw else socket.SOCK_DGRAM
        try:
            sock = socket.socket(family, kind | socket.SOCK_NONBLOCK, PROTO[family])
        except OSError as e:
            if e.errno not in (errno.EACCES, errno.EPERM, errno.EPROTONOSUPPORT):
                raise
            error = e
            continue
        if mode == "auto":
            _mode[family] = "raw" if raw else "dgram"
        return sock, raw
    assert error is not None
    raise error


async def ping(conf: CheckerConf, mode: str = "auto") -> Result:
    target = f"PING_CHECK {conf.connect_ip}"
    family = socket.AF_INET6 if ":" in conf.connect_ip else socket.AF_INET
    try:
        sock, raw = open_icmp(family, mode)
    except OSError as e:
        return Result(False, f"{target}: no ICMP socket: {describe_error(e)}")
    try:
        set_fwmark(sock, conf.fwmark)
        if conf.bind_if:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, conf.bind_if.encode())
        if conf.bindto:
            bind_source(sock, conf)
        sock.connect(destination(conf, 0))
        seq = next(_seq) & 0xFFFF
        ident = (os.getpid() ^ id(sock)) & 0xFFFF
        sock.send(echo_request(family, ident, seq))
        if not raw:
            ident = sock.getsockname()[1]  # the kernel's identifier for this ping socket
        async with asyncio.timeout(conf.connect_timeout):
            while True:
                msg = parse_reply(family, await recv_datagram(sock), raw)
                if msg is None:
                    continue
                typ, rid, rseq = msg
                if typ == ECHO_REPLY[family] and rid == ident and rseq == seq:
                    return Result(True, f"{target}: echo reply")
                if not raw and typ != ECHO_REPLY[family]:
                    return Result(False, f"{target}: ICMP type {typ}")
    except TimeoutError:
        return Result(False, f"{target}: no echo reply")
    except OSError as e:
        return Result(False, f"{target}: {describe_error(e)}")
    finally:
        sock.close()


async def run(conf: CheckerConf) -> Result:
    return await ping(conf)
