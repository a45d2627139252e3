"""TCP_CHECK against real sockets: success, refused, a SYN that is never answered,
bindto/bind_port, and the registry."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from pylvs.check import get_checker
from pylvs.check.base import KINDS
from pylvs.check.tcp import run
from tests.check.helpers import closed_port, conf

PORT = 15001


def test_listener_passes() -> None:
    with socket.create_server(("127.0.0.1", PORT)) as srv:
        res = asyncio.run(run(conf("TCP_CHECK", "127.0.0.1", PORT)))
        assert res.ok, res.reason
        assert "127.0.0.1:15001" in res.reason
        srv.settimeout(1)
        conn, _ = srv.accept()  # the checker really connected
        conn.close()


def test_ipv6_listener_passes() -> None:
    with socket.create_server(("::1", PORT), family=socket.AF_INET6) as _srv:
        res = asyncio.run(run(conf("TCP_CHECK", "::1", PORT)))
        assert res.ok, res.reason
        assert "[::1]:15001" in res.reason


def test_refused_fails_at_once() -> None:
    t0 = time.monotonic()
    res = asyncio.run(run(conf("TCP_CHECK", "127.0.0.1", closed_port())))
    assert not res.ok
    assert "refused" in res.reason.lower()
    assert time.monotonic() - t0 < 0.5


def test_unanswered_syn_times_out_after_connect_timeout() -> None:
    # A listener whose accept queue is full drops further SYNs: the connect hangs.
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", PORT + 1))
        srv.listen(0)
        fillers = []
        for _ in range(4):
            c = socket.socket()
            c.setblocking(False)
            try:
                c.connect(("127.0.0.1", PORT + 1))
            except BlockingIOError:
                pass
            fillers.append(c)
        time.sleep(0.1)
        try:
            t0 = time.monotonic()
            res = asyncio.run(run(conf("TCP_CHECK", "127.0.0.1", PORT + 1, connect_timeout=0.5)))
            took = time.monotonic() - t0
        finally:
            for c in fillers:
                c.close()
    assert not res.ok and "timed out" in res.reason
    assert 0.45 < took < 1.5


def test_bindto_and_bind_port_set_the_source() -> None:
    with socket.create_server(("127.0.0.1", PORT + 2)) as srv:
        srv.settimeout(2)
        c = conf("TCP_CHECK", "127.0.0.1", PORT + 2, bindto="127.0.0.7", bind_port=PORT + 3)
        res = asyncio.run(run(c))
        assert res.ok, res.reason
        conn, peer = srv.accept()
        conn.close()
    assert peer == ("127.0.0.7", PORT + 3)


def test_bindto_a_foreign_address_fails() -> None:
    c = conf("TCP_CHECK", "127.0.0.1", PORT + 2, bindto="192.0.2.77")
    res = asyncio.run(run(c))
    assert not res.ok and "assign" in res.reason


def test_registry_knows_every_keepalived_checker() -> None:
    assert set(KINDS) == {
        "TCP_CHECK",
        "HTTP_GET",
        "SSL_GET",
        "MISC_CHECK",
        "SMTP_CHECK",
        "DNS_CHECK",
        "UDP_CHECK",
        "PING_CHECK",
        "FILE_CHECK",
    }
    for kind in KINDS:
        assert callable(get_checker(kind))
    assert get_checker("TCP_CHECK") is run
    with pytest.raises(KeyError):
        get_checker("BFD_CHECK")
