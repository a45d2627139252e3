"""UDP_CHECK (keepalived check_udp.c): send ``payload`` (random bytes when none) on a
connected UDP socket and wait connect_timeout.

- An ICMP error (port/host/net unreachable) arriving meanwhile fails the check: the
  connected socket reports it as ECONNREFUSED, EHOSTUNREACH...
- Without ``require_reply``, silence is success (only an ICMP error fails).
- With ``require_reply``, a reply must arrive, its length within [min_reply_length,
  max_reply_length] (defaults 0 and 255), and when ``require_reply`` carries data the
  reply must match it over the shorter of the two lengths, ``X`` nibbles matching
  anything.

``payload`` and ``require_reply`` data are bytes or keepalived's free-format hex
(``"Ab12f 3 456"`` is AB 12 0F 03 45 06: pairs of digits from the left of each word,
a lone last digit is a low nibble); ``require_reply`` may also be True (any reply).
"""

from __future__ import annotations

import asyncio
import os
import socket

from pylvs.check.base import describe_error, destination, hostport, open_socket, recv_datagram
from pylvs.check.state import Result
from pylvs.config.model import CheckerConf

DEFAULT_MAX_REPLY = 255
RANDOM_PAYLOAD = 16


def parse_hex(text: str, allow_x: bool = False) -> tuple[bytes, bytes]:
    """keepalived's HEX_STR -> (data, mask): mask bits set where the data must match."""
    data = bytearray()
    mask = bytearray()
    for word in text.split():
        for i in range(0, len(word), 2):
            pair = word[i : i + 2]
            value = 0
            care = 0
            for ch in pair if len(pair) == 2 else "0" + pair:
                value <<= 4
                care <<= 4
                if ch in "xX" and allow_x:
                    continue
                value |= int(ch, 16)
                care |= 0xF
            data.append(value)
            mask.append(care)
    return bytes(data), bytes(mask)


def reply_matches(reply: bytes, data: bytes, mask: bytes) -> bool:
    n = min(len(reply), len(data))
    return all((reply[i] ^ data[i]) & mask[i] == 0 for i in range(n))


def _payload(value: object) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str) and value.strip():
        return parse_hex(value)[0]
    return os.urandom(RANDOM_PAYLOAD)


def _expected(value: object) -> tuple[bool, bytes, bytes]:
    """(required, data, mask) from the require_reply option."""
    if isinstance(value, (bytes, bytearray)):
        return True, bytes(value), b"\xff" * len(value)
    if isinstance(value, str):
        if not value.strip():
            return True, b"", b""
        data, mask = parse_hex(value, allow_x=True)
        return True, data, mask
    return bool(value), b"", b""


def _int_opt(conf: CheckerConf, key: str, default: int) -> int:
    v = conf.options.get(key)
    return int(v) if isinstance(v, (int, str)) and str(v).strip() else default


async def run(conf: CheckerConf) -> Result:
    target = f"UDP_CHECK {hostport(conf.connect_ip, conf.connect_port)}"
    payload = _payload(conf.options.get("payload"))
    required, data, mask = _expected(conf.options.get("require_reply"))
    lo = _int_opt(conf, "min_reply_length", 0)
    hi = _int_opt(conf, "max_reply_length", DEFAULT_MAX_REPLY)
    try:
        sock = open_socket(conf, socket.SOCK_DGRAM)
    except OSError as e:
        return Result(False, f"{target}: {describe_error(e)}")
    try:
        sock.connect(destination(conf))
        sock.send(payload)
        async with asyncio.timeout(conf.connect_timeout):
            reply = await recv_datagram(sock)
    except TimeoutError:
        if required:
            return Result(False, f"{target}: no reply")
        return Result(True, f"{target}: no ICMP error")
    except OSError as e:
        return Result(False, f"{target}: {describe_error(e)}")
    finally:
        sock.close()
    if required:
        if not lo <= len(reply) <= hi:
            return Result(False, f"{target}: reply of {len(reply)} bytes not in [{lo}, {hi}]")
        if data and not reply_matches(reply, data, mask):
            return Result(False, f"{target}: reply data mismatch")
    return Result(True, f"{target}: reply of {len(reply)} bytes")
