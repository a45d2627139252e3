"""NginxBackends: a real nginx serving HTTP real servers, with an optional PROXY-protocol one."""

from __future__ import annotations

import http.client
import os
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from pylvs.testing.backends import (
    Backend,
    BackendStartError,
    BackendUnavailable,
    NginxBackends,
    can_connect,
    find_nginx,
)


def require_nginx() -> None:
    try:
        find_nginx()
    except BackendUnavailable as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"nginx is required in CI: {e}")
        pytest.skip(str(e))


def free_port(address: str) -> int:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family) as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces, so split after the last ")".
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(entry.name))
    return out


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as r:
        body: bytes = r.read()
        return body


def raw_request(address: str, port: int, payload: bytes) -> bytes:
    with socket.create_connection((address, port), timeout=5) as s:
        s.sendall(payload)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.fixture(scope="module")
def nginx() -> Iterator[NginxBackends]:
    require_nginx()
    servers = [
        Backend("127.0.0.1", free_port("127.0.0.1")),
        Backend("::1", free_port("::1")),
        Backend("127.0.0.1", free_port("127.0.0.1"), proxy_protocol=True, name="pp-server"),
    ]
    with NginxBackends(servers, workers=2, big_size=300_000) as b:
        yield b


def test_each_backend_names_itself(nginx: NginxBackends) -> None:
    v4, v6, _ = nginx.servers
    assert get(v4.url()) == f"backend {v4.port}\n".encode()
    assert get(v6.url()) == f"backend {v6.port}\n".encode()
    assert v6.url().startswith("http://[::1]:")


def test_big_is_served_whole(nginx: NginxBackends) -> None:
    for b in nginx.servers[:2]:
        body = get(b.url("/big"))
        assert len(body) == 300_000
        assert body[:256] == bytes(range(256))


def test_client_endpoint_reports_the_peer(nginx: NginxBackends) -> None:
    b = nginx[0]
    with socket.create_connection((b.address, b.port), timeout=5) as s:
        s.sendall(b"GET /client HTTP/1.0\r\n\r\n")
        reply = b""
        while chunk := s.recv(4096):
            reply += chunk
        local = s.getsockname()
    assert reply.endswith(f"\r\n\r\n127.0.0.1 {local[1]}\n".encode())


def test_keep_alive_reuses_the_connection(nginx: NginxBackends) -> None:
    b = nginx[0]
    conn = http.client.HTTPConnection(b.address, b.port, timeout=5)
    try:
        conn.request("GET", "/")
        first = conn.getresponse()
        assert first.read() == b.body.encode()
        assert first.getheader("Connection", "").lower() == "keep-alive"
        sock = conn.sock
        conn.request("GET", "/big")
        second = conn.getresponse()
        assert len(second.read()) == 300_000
        assert conn.sock is sock  # no reconnect happened
    finally:
        conn.close()


def test_workers_and_user(nginx: NginxBackends) -> None:
    assert nginx.pid is not None
    workers = children(nginx.pid)
    assert len(workers) == 2
    for w in workers:
        # Root keeps its workers as root (``user root;``), anyone else runs them as itself.
        assert os.stat(f"/proc/{w}").st_uid == os.geteuid()


def test_access_log_off_by_default(nginx: NginxBackends) -> None:
    get(nginx[0].url())
    assert nginx.log_lines(0) == []
    assert not nginx.access_log_path(0).exists()
    with pytest.raises(ValueError):
        nginx.proxy_clients(0)


def test_proxy_protocol_v1_header_is_logged(nginx: NginxBackends) -> None:
    pp = nginx[2]
    before = len(nginx.proxy_clients(pp))
    r4 = raw_request(
        pp.address,
        pp.port,
        f"PROXY TCP4 192.0.2.10 127.0.0.1 40001 {pp.port}\r\nGET / HTTP/1.0\r\n\r\n".encode(),
    )
    assert r4.startswith(b"HTTP/1.1 200 ")
    assert r4.endswith(b"\r\n\r\npp-server\n")
    r6 = raw_request(
        pp.address,
        pp.port,
        f"PROXY TCP6 2001:db8::7 ::1 40002 {pp.port}\r\nGET /client HTTP/1.0\r\n\r\n".encode(),
    )
    assert r6.endswith(b"\r\n\r\n2001:db8::7 40002\n")
    logged = nginx.proxy_clients(pp, wait_for=before + 2)
    assert logged[before:] == [("192.0.2.10", 40001), ("2001:db8::7", 40002)]
    # The same server found by (address, port).
    assert nginx.proxy_clients((pp.address, pp.port))[before:] == logged[before:]


def test_proxy_protocol_server_rejects_a_request_without_header(nginx: NginxBackends) -> None:
    pp = nginx[2]
    reply = raw_request(pp.address, pp.port, b"GET / HTTP/1.0\r\n\r\n")
    assert b"pp-server" not in reply


def test_access_log_on_request() -> None:
    require_nginx()
    port = free_port("127.0.0.1")
    with NginxBackends([("127.0.0.1", port)], access_log=True) as b:
        get(b[0].url())
        lines: list[str] = []
        deadline = time.monotonic() + 5
        while not lines and time.monotonic() < deadline:
            time.sleep(0.02)  # nginx logs a request after it sent the response
            lines = b.log_lines(0)
        assert len(lines) == 1
        assert '"GET / HTTP/1.1" 200' in lines[0]


def test_stop_closes_ports_and_ends_processes() -> None:
    require_nginx()
    port = free_port("127.0.0.1")
    with NginxBackends([("127.0.0.1", port)], workers=2) as b:
        pid = b.pid
        assert pid is not None
        workers = children(pid)
        prefix = b.prefix
        assert can_connect("127.0.0.1", port)
    assert not can_connect("127.0.0.1", port)
    for p in [pid, *workers]:
        assert not Path(f"/proc/{p}").exists()
    assert not prefix.exists()


def test_busy_port_is_a_clear_error() -> None:
    require_nginx()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(BackendStartError, match="Address already in use"):
            NginxBackends([("127.0.0.1", port)], startup_timeout=10).__enter__()


def test_missing_binary_is_a_clear_error() -> None:
    with pytest.raises(BackendUnavailable, match="nginx not found"):
        NginxBackends([("127.0.0.1", 1)], nginx="/nonexistent/sbin/nginx")
