"""SMTP_CHECK against a small asyncio SMTP server: the dialogue, helo_name, bad codes,
multi-line replies, silence, refusal."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from pylvs.check.smtp import reply_code, run
from tests.check.helpers import closed_port, conf

PORT = 15301


async def dialogue(
    banner: bytes,
    helo_reply: bytes = b"250 hello\r\n",
    quit_reply: bytes = b"221 bye\r\n",
    **kw: Any,
) -> tuple[bool, str, list[bytes], float]:
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(banner)
            await writer.drain()
            line = await reader.readline()
            seen.append(line)
            writer.write(helo_reply)
            await writer.drain()
            line = await reader.readline()
            seen.append(line)
            if line:
                writer.write(quit_reply)
                await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", PORT)
    try:
        t0 = time.monotonic()
        res = await run(conf("SMTP_CHECK", port=PORT, **kw))
        return res.ok, res.reason, seen, time.monotonic() - t0
    finally:
        server.close()


def test_greeting_helo_quit() -> None:
    ok, why, seen, _ = asyncio.run(dialogue(b"220 mx.test ESMTP\r\n"))
    assert ok, why
    assert seen == [b"HELO smtpchecker.keepalived.org\r\n", b"QUIT\r\n"]


def test_helo_name() -> None:
    ok, why, seen, _ = asyncio.run(dialogue(b"220 mx\r\n", helo_name="lb1.example.net"))
    assert ok, why
    assert seen[0] == b"HELO lb1.example.net\r\n"


def test_multi_line_greeting() -> None:
    ok, why, _, _ = asyncio.run(dialogue(b"220-mx.test\r\n220-more\r\n220 ready\r\n"))
    assert ok, why


@pytest.mark.parametrize(
    ("banner", "helo", "what"),
    [
        (b"554 go away\r\n", b"250 x\r\n", "greeting"),
        (b"220 mx\r\n", b"501 bad\r\n", "HELO"),
        (b"hello\r\n", b"250 x\r\n", "greeting"),
    ],
)
def test_bad_codes_fail(banner: bytes, helo: bytes, what: str) -> None:
    ok, why, _, _ = asyncio.run(dialogue(banner, helo))
    assert not ok and what in why


def test_silent_server_times_out() -> None:
    async def main() -> tuple[bool, str, float]:
        async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await asyncio.sleep(3)
            writer.close()

        server = await asyncio.start_server(mute, "127.0.0.1", PORT)
        try:
            t0 = time.monotonic()
            res = await run(conf("SMTP_CHECK", port=PORT, connect_timeout=0.3))
            return res.ok, res.reason, time.monotonic() - t0
        finally:
            server.close()

    ok, why, took = asyncio.run(main())
    assert not ok and "timed out waiting for greeting" in why
    assert took < 1.0


def test_closed_after_greeting_and_refused() -> None:
    ok, why, _, _ = asyncio.run(dialogue(b"220 mx\r\n", b""))
    assert not ok and "HELO" in why
    res = asyncio.run(run(conf("SMTP_CHECK", port=closed_port())))
    assert not res.ok and "refused" in res.reason.lower()


def test_reply_code() -> None:
    assert reply_code(b"220 ok\r\n") == (220, True)
    assert reply_code(b"220-more\r\n") == (220, False)
    assert reply_code(b"250\r\n") == (250, True)
    assert reply_code(b"25O x\r\n") == (None, True)
    assert reply_code(b"2200 x\r\n") == (None, True)
