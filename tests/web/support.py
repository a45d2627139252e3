"""Helpers of the observability tests: real HTTP backends, client traffic through the
VIP, /metrics and ``pylvsadm -Ln --stats/--rate --exact`` parsed into comparable maps."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

from prometheus_client.parser import text_string_to_metric_families

from pylvs.testing.daemon import RunningDaemon, free_port

LO = "127.0.0.1"

Labels = frozenset[tuple[str, str]]
Samples = dict[tuple[str, Labels], float]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one request per connection

    def do_GET(self) -> None:
        body = f"backend {self.server.server_address[1]} {'x' * 500}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return None


class Backend:
    """A real HTTP server on 127.0.0.1 (a thread per connection)."""

    def __init__(self, port: int = 0) -> None:
        self.server = ThreadingHTTPServer((LO, port or free_port()), _Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Traffic:
    """Clients in a thread: GET / through ``LO:port`` in a loop, a new connection each."""

    def __init__(self, port: int, pause: float = 0.02) -> None:
        self.port = port
        self.pause = pause
        self.ok = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with urllib.request.urlopen(f"http://{LO}:{self.port}/", timeout=5) as r:
                    r.read()
                self.ok += 1
            except OSError as e:
                self.errors.append(repr(e))
            time.sleep(self.pause)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def requests(port: int, n: int) -> None:
    for _ in range(n):
        with urllib.request.urlopen(f"http://{LO}:{port}/", timeout=5) as r:
            assert r.read().startswith(b"backend ")


def hold(port: int, n: int) -> list[socket.socket]:
    """``n`` established connections through the VIP that stay open (active)."""
    out = []
    for _ in range(n):
        s = socket.create_connection((LO, port), timeout=5)
        out.append(s)
    return out


def wait_for(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached in {timeout:.0f} s")
        time.sleep(0.1)


# -- reading the daemon ------------------------------------------------------------------------


def http_get(d: RunningDaemon, path: str) -> tuple[str, str]:
    """(content type, body) of GET ``path`` on the --http listener."""
    with urllib.request.urlopen(f"http://{d.http}{path}", timeout=30) as r:
        return str(r.headers.get("Content-Type", "")), r.read().decode()


def api(d: RunningDaemon, path: str) -> object:
    return json.loads(http_get(d, path)[1])


def metrics(d: RunningDaemon) -> Samples:
    return parse_metrics(http_get(d, "/metrics")[1])


def parse_metrics(text: str) -> Samples:
    out: Samples = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in out, f"duplicate series {key}"
            out[key] = s.value
    return out


def families(text: str) -> dict[str, tuple[str, str]]:
    """name -> (type, help) of every family (the name as written in # TYPE)."""
    out = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, help_ = line[7:].partition(" ")
            out[name] = ("", help_)
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            out[name] = (kind, out[name][1])
    return out


def backend(vip: str, vport: int, rip: str, rport: int, proto: str = "TCP") -> Labels:
    return frozenset(
        {
            "local_address": vip,
            "local_port": str(vport),
            "local_mark": "",
            "proto": proto,
            "remote_address": rip,
            "remote_port": str(rport),
        }.items()
    )


def service(vip: str, vport: int, proto: str = "TCP") -> Labels:
    return frozenset(
        {"local_address": vip, "local_port": str(vport), "local_mark": "", "proto": proto}.items()
    )


def listing(text: str) -> dict[str, list[int]]:
    """``pylvsadm -Ln --stats|--rate --exact``: "TCP 1.2.3.4:80" / "1.2.3.4:80 -> 5.6.7.8:80"
    -> the five numbers."""
    out: dict[str, list[int]] = {}
    current = ""
    for line in text.splitlines():
        f = line.split()
        if f and f[0] in ("TCP", "UDP", "SCTP", "FWM") and len(f) == 7:
            current = f[1]
            out[f"{f[0]} {f[1]}"] = [int(x) for x in f[2:]]
        elif line.startswith("  -> ") and len(f) == 7:
            out[f"{current} -> {f[1]}"] = [int(x) for x in f[2:]]
    return out
