"""DNS_CHECK against a small UDP DNS responder: the query on the wire, NOERROR,
NXDOMAIN, replies with another ID, silence and ICMP port unreachable."""

from __future__ import annotations

import asyncio
import struct
import time
from typing import Any, cast

import pytest

from pylvs.check.dns import build_query, encode_name, read_reply, run
from tests.check.helpers import closed_port, conf

PORT = 15401


class Responder(asyncio.DatagramProtocol):
    def __init__(self, rcode: int = 0, decoy: bool = False, mute: bool = False) -> None:
        self.rcode = rcode
        self.decoy = decoy
        self.mute = mute
        self.queries: list[bytes] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.queries.append(data)
        if self.mute or self.transport is None:
            return
        qid, _flags = struct.unpack_from("!HH", data)
        question = data[12:]
        if self.decoy:  # a reply to someone else first, then a query (QR clear)
            self.transport.sendto(struct.pack("!HHHHHH", qid ^ 1, 0x8180, 1, 0, 0, 0), addr)
            self.transport.sendto(struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0), addr)
        flags = 0x8180 | self.rcode
        self.transport.sendto(struct.pack("!HHHHHH", qid, flags, 1, 0, 0, 0) + question, addr)


async def ask(proto: Responder, **kw: Any) -> tuple[bool, str, float]:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: proto, ("127.0.0.1", PORT))
    try:
        t0 = time.monotonic()
        res = await run(conf("DNS_CHECK", port=PORT, **kw))
        return res.ok, res.reason, time.monotonic() - t0
    finally:
        transport.close()


def test_noerror_passes_and_the_query_is_keepalived_s() -> None:
    r = Responder()
    ok, why, _ = asyncio.run(ask(r, type="A", name="www.example.test"))
    assert ok, why
    q = r.queries[0]
    _qid, flags, qd, an, ns, ar = struct.unpack_from("!HHHHHH", q)
    assert (flags, qd, an, ns, ar) == (0x0100, 1, 0, 0, 0)  # RD, one question
    assert q[12:] == b"\x03www\x07example\x04test\x00" + struct.pack("!HH", 1, 1)


def test_defaults_soa_of_the_root() -> None:
    r = Responder()
    ok, why, _ = asyncio.run(ask(r))
    assert ok, why
    assert r.queries[0][12:] == b"\x00" + struct.pack("!HH", 6, 1)


def test_error_rcode_fails() -> None:
    ok, why, _ = asyncio.run(ask(Responder(rcode=3), name="nope.test"))
    assert not ok and "NXDOMAIN" in why
    ok, why, _ = asyncio.run(ask(Responder(rcode=2)))
    assert not ok and "SERVFAIL" in why


def test_replies_with_another_id_or_queries_are_ignored() -> None:
    ok, why, _ = asyncio.run(ask(Responder(decoy=True), type="MX", name="example.test"))
    assert ok, why


def test_silence_times_out_and_no_server_fails_at_once() -> None:
    ok, why, took = asyncio.run(ask(Responder(mute=True), connect_timeout=0.3))
    assert not ok and "timed out" in why and took < 1.0
    t0 = time.monotonic()
    res = asyncio.run(run(conf("DNS_CHECK", port=closed_port(), connect_timeout=2)))
    assert not res.ok and "refused" in res.reason.lower()
    assert time.monotonic() - t0 < 1.0


def test_unknown_type() -> None:
    res = asyncio.run(run(conf("DNS_CHECK", port=PORT, type="SRVX")))
    assert not res.ok and "unknown DNS type" in res.reason


def test_wire_helpers() -> None:
    assert encode_name(".") == b"\x00"
    assert encode_name("a.b.") == b"\x01a\x01b\x00"
    q = build_query(0x1234, "x", 28)
    assert q[:2] == b"\x12\x34"
    assert read_reply(struct.pack("!HHHHHH", 0x1234, 0x8183, 0, 0, 0, 0), 0x1234) == 3
    assert read_reply(struct.pack("!HHHHHH", 0x1234, 0x0100, 0, 0, 0, 0), 0x1234) is None
    assert read_reply(b"\x12", 0x1234) is None
    with pytest.raises(ValueError):
        encode_name("a" * 64)
