"""The relay's edge cases through a real pylvsd: bulk integrity both ways (copy, then
splice), half-close, and bounded buffering when the client does not read."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from pylvs.testing.daemon import RunningDaemon, pylvsd

VIP = "127.0.0.1"
PORT = 14080
ECHO, HALF, FLOOD = 14001, 14002, 14003


def serve(port: int, handle: Callable[[socket.socket], None]) -> socket.socket:
    """A threaded TCP server on 127.0.0.1:``port``; close the returned socket to stop."""
    lst = socket.create_server((VIP, port))
    lst.listen(64)

    def accept() -> None:
        while True:
            try:
                c, _ = lst.accept()
            except OSError:
                return
            threading.Thread(target=run, args=(c,), daemon=True).start()

    def run(c: socket.socket) -> None:
        with c:
            try:
                handle(c)
            except OSError:
                pass

    threading.Thread(target=accept, daemon=True).start()
    return lst


def echo(c: socket.socket) -> None:
    while data := c.recv(1 << 16):
        c.sendall(data)


def half_close(c: socket.socket) -> None:
    """Read to EOF, then answer with what was read and close."""
    got = bytearray()
    while data := c.recv(1 << 16):
        got += data
    c.sendall(b"read %d bytes %s" % (len(got), hashlib.sha256(got).hexdigest().encode()))


FLOOD_SIZE = 64 << 20
flood_sent: list[int] = []


def flood(c: socket.socket) -> None:
    """Send FLOOD_SIZE bytes as fast as the peer takes them, recording progress."""
    chunk = bytes(1 << 16)
    flood_sent.append(0)
    i = len(flood_sent) - 1
    while flood_sent[i] < FLOOD_SIZE:
        flood_sent[i] += c.send(chunk)


@pytest.fixture(scope="module")
def director() -> Iterator[RunningDaemon]:
    servers = [serve(ECHO, echo), serve(HALF, half_close), serve(FLOOD, flood)]
    try:
        with pylvsd("--connect-timeout", "1.5", dataplane="proxy") as d:
            yield d
    finally:
        for s in servers:
            s.close()


def through(d: RunningDaemon, backend: int) -> socket.socket:
    d.pylvsadm("-C")
    assert d.pylvsadm("-A", "-t", f"{VIP}:{PORT}", "-s", "rr").returncode == 0
    assert d.pylvsadm("-a", "-t", f"{VIP}:{PORT}", "-r", f"{VIP}:{backend}", "-m").returncode == 0
    return socket.create_connection((VIP, PORT), timeout=10)


def test_bulk_echo_both_ways_is_intact(director: RunningDaemon) -> None:
    """16 MiB up and back down at once: both halves go from copying to splicing,
    and both block on each other's full buffers along the way."""
    payload = os.urandom(16 << 20)
    with through(director, ECHO) as s:
        sender = threading.Thread(target=s.sendall, args=(payload,))
        sender.start()
        got = bytearray()
        while len(got) < len(payload):
            data = s.recv(1 << 20)
            assert data, f"closed after {len(got)} bytes"
            got += data
        sender.join()
    assert hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()


def test_half_close_passes_the_fin_and_the_answer_back(director: RunningDaemon) -> None:
    body = os.urandom(300_000)
    with through(director, HALF) as s:
        s.sendall(body)
        s.shutdown(socket.SHUT_WR)  # the real server sees EOF, then answers
        answer = b""
        while data := s.recv(4096):
            answer += data
    assert answer == b"read %d bytes %s" % (len(body), hashlib.sha256(body).hexdigest().encode())
    # Both sides closed: the entry moves on from ESTABLISHED.
    listing = director.pylvsadm("-Lnc").stdout
    assert "ESTABLISHED" not in listing, listing


def test_slow_client_bounds_what_the_director_buffers(director: RunningDaemon) -> None:
    """The real server floods; the client reads nothing for a while.  Only socket
    buffers (and at most one pipe per direction) may hold data: the real server
    must stall far below the 64 MiB it wants to send, then finish once the
    client reads."""
    flood_sent.clear()
    with through(director, FLOOD) as s:
        time.sleep(1.5)
        stalled = flood_sent[0]
        time.sleep(0.5)
        assert flood_sent[0] == stalled, "the real server kept sending to nobody"
        assert stalled < 24 << 20, f"{stalled} bytes left the real server while nobody read"
        got = 0
        while got < FLOOD_SIZE:
            data = s.recv(1 << 20)
            assert data
            got += len(data)
    assert got == FLOOD_SIZE
