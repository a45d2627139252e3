"""UDP_CHECK against real UDP sockets: echo replies, require_reply data with X nibbles
and lengths, a silent listener, ICMP port unreachable."""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

import pytest

from pylvs.check.udp import parse_hex, reply_matches, run
from tests.check.helpers import closed_port, conf

PORT = 15501


class Server(asyncio.DatagramProtocol):
    def __init__(self, reply: bytes | None = None, echo: bool = False) -> None:
        self.reply = reply
        self.echo = echo
        self.got: list[bytes] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.got.append(data)
        assert self.transport is not None
        if self.echo:
            self.transport.sendto(data, addr)
        elif self.reply is not None:
            self.transport.sendto(self.reply, addr)


async def probe(server: Server, **kw: Any) -> tuple[bool, str, float]:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: server, ("127.0.0.1", PORT))
    try:
        t0 = time.monotonic()
        res = await run(conf("UDP_CHECK", port=PORT, **kw))
        return res.ok, res.reason, time.monotonic() - t0
    finally:
        transport.close()


def test_payload_is_sent_and_echo_passes() -> None:
    s = Server(echo=True)
    ok, why, _ = asyncio.run(probe(s, payload=b"ping!", require_reply=True))
    assert ok, why
    assert s.got == [b"ping!"]
    s = Server(echo=True)
    ok, why, _ = asyncio.run(probe(s, payload="de ad be ef", require_reply="dead"))
    assert ok, why
    assert s.got == [b"\xde\xad\xbe\xef"]


def test_random_payload_when_none() -> None:
    s = Server(echo=True)
    assert asyncio.run(probe(s, require_reply=True))[0]
    assert len(s.got[0]) == 16


def test_reply_data_and_x_nibbles() -> None:
    s = Server(reply=b"\x12\x34\x56")
    assert asyncio.run(probe(s, require_reply="12 3X"))[0]
    ok, why, _ = asyncio.run(probe(Server(reply=b"\x12\x34\x56"), require_reply="12 4X"))
    assert not ok and "mismatch" in why
    # only the shorter of the two is compared
    assert asyncio.run(probe(Server(reply=b"\x12"), require_reply="12 34 56"))[0]


def test_reply_length_limits() -> None:
    ok, why, _ = asyncio.run(probe(Server(reply=b"x" * 10), require_reply=True, max_reply_length=8))
    assert not ok and "not in [0, 8]" in why
    ok, why, _ = asyncio.run(probe(Server(reply=b"xy"), require_reply=True, min_reply_length=3))
    assert not ok and "not in [3, 255]" in why


def test_silent_listener_passes_without_require_reply_only() -> None:
    ok, why, took = asyncio.run(probe(Server(), connect_timeout=0.3))
    assert ok, why
    assert 0.25 < took < 1.0  # waited for an ICMP error that did not come
    ok, why, _ = asyncio.run(probe(Server(), connect_timeout=0.3, require_reply=True))
    assert not ok and "no reply" in why


def test_port_unreachable_fails_at_once() -> None:
    t0 = time.monotonic()
    res = asyncio.run(run(conf("UDP_CHECK", port=closed_port(), connect_timeout=2)))
    assert not res.ok and "refused" in res.reason.lower()
    assert time.monotonic() - t0 < 1.0


@pytest.mark.parametrize(
    ("text", "data", "mask"),
    [
        ("Ab12f 3 456 546443123", bytes.fromhex("ab120f03450654644312 03"), b"\xff" * 11),
        ("1x", b"\x10", b"\xf0"),
        ("X", b"\x00", b"\xf0"),
    ],
)
def test_parse_hex(text: str, data: bytes, mask: bytes) -> None:
    assert parse_hex(text, allow_x=True) == (data, mask)


def test_reply_matches() -> None:
    data, mask = parse_hex("1x 2y".replace("y", "X"), allow_x=True)
    assert reply_matches(b"\x1f\x20", data, mask)
    assert not reply_matches(b"\x2f\x20", data, mask)
