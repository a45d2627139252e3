"""DNS_CHECK (keepalived check_dns.c): one query over UDP to connect_ip:connect_port.

The query asks ``name`` (default ``.``) for ``type`` (A, NS, CNAME, SOA, MX, TXT,
AAAA; default SOA), class IN, recursion desired, a random ID.  Datagrams whose ID does
not match, or that are queries, are ignored; the check passes on the first reply with
RCODE 0 (NOERROR), whatever its answer section holds (keepalived reads the header
only), and fails on another RCODE, an ICMP error or no reply within connect_timeout.

No DNS library is needed: the query and the header check are a few bytes of RFC 1035,
built and read here (pure functions).
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct

from pylvs.check.base import describe_error, destination, hostport, open_socket, recv_datagram
from pylvs.check.state import Result
from pylvs.config.model import CheckerConf

TYPES: dict[str, int] = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "MX": 15, "TXT": 16, "AAAA": 28}
DEFAULT_TYPE = "SOA"
DEFAULT_NAME = "."
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


def encode_name(name: str) -> bytes:
    """``www.example.com`` -> length-prefixed labels ending with the root label."""
    out = bytearray()
    for label in name.strip(".").split("."):
        if not label:
            continue
        raw = label.encode("idna") if not label.isascii() else label.encode()
        if len(raw) > 63:
            raise ValueError(f"DNS label too long: {label!r}")
        out.append(len(raw))
        out += raw
    out.append(0)
    return bytes(out)


def build_query(qid: int, name: str, qtype: int) -> bytes:
    """A standard query: ID, RD set, one question (name, type, class IN)."""
    header = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    return header + encode_name(name) + struct.pack("!HH", qtype, 1)


def read_reply(data: bytes, qid: int) -> int | None:
    """The RCODE of a reply to query ``qid``; None for anything else (ignored)."""
    if len(data) < 12:
        return None
    rid, flags = struct.unpack_from("!HH", data)
    if rid != qid or not flags & 0x8000:
        return None
    return int(flags & 0x000F)


def qtype_of(value: object) -> int:
    if isinstance(value, int):
        return value
    text = str(value or DEFAULT_TYPE).upper()
    if text not in TYPES:
        raise ValueError(f"unknown DNS type {value!r}")
    return TYPES[text]


async def run(conf: CheckerConf) -> Result:
    name = str(conf.options.get("name") or DEFAULT_NAME)
    target = f"DNS_CHECK {hostport(conf.connect_ip, conf.connect_port)}"
    try:
        qtype = qtype_of(conf.options.get("type"))
        qid = random.getrandbits(16)
        query = build_query(qid, name, qtype)
    except ValueError as e:
        return Result(False, f"{target}: {e}")
    try:
        sock = open_socket(conf, socket.SOCK_DGRAM)
    except OSError as e:
        return Result(False, f"{target}: {describe_error(e)}")
    try:
        async with asyncio.timeout(conf.connect_timeout):
            sock.connect(destination(conf))
            sock.send(query)
            while True:
                rcode = read_reply(await recv_datagram(sock), qid)
                if rcode is not None:
                    break
    except (OSError, TimeoutError) as e:
        return Result(
            False,
            f"{target}: {name} {conf.options.get('type') or DEFAULT_TYPE}: {describe_error(e)}",
        )
    finally:
        sock.close()
    if rcode != 0:
        return Result(False, f"{target}: {name}: {RCODES.get(rcode, f'rcode {rcode}')}")
    return Result(True, f"{target}: {name}: NOERROR")
