"""Real-server fixtures for tests and benchmarks: one real nginx serving N HTTP backends.

Mirrors no kernel file: this is test tooling.  ``NginxBackends`` starts ONE nginx master
(the Debian binary, /usr/sbin/nginx) whose server blocks listen on the given
(address, port) pairs, IPv4 or IPv6.  Every backend answers

- ``GET /``       -> ``"backend <port>\\n"`` (or the name given), text/plain;
- ``GET /big``    -> a static file of ``big_size`` bytes (default 1 MiB);
- ``GET /client`` -> ``"<remote_addr> <remote_port>\\n"``: the peer nginx saw (for a
  ``proxy_protocol`` backend, the address and port the PROXY header announced).

Keep-alive is on, the access log is off unless asked for.  A backend created with
``proxy_protocol=True`` listens with ``proxy_protocol`` (v1 and v2 headers) and always logs
``$proxy_protocol_addr $proxy_protocol_port`` to its own file, read back with
:meth:`NginxBackends.proxy_clients`.

Everything lives in a private temporary directory (config, pid, logs, temp paths), so no
root is needed for ports above 1024.  Running as root, nginx would hand its workers to an
unprivileged user that cannot read that directory, so the config then says ``user root;``.

``NginxProcess`` is the lower layer (any nginx config text, same start/stop discipline); the
proxy benchmark uses it for nginx's ``stream`` proxy.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

NGINX = "/usr/sbin/nginx"
STREAM_MODULE_DIRS = ("/usr/lib/nginx/modules", "/usr/share/nginx/modules")
MIME_TEXT = "text/plain"


class BackendUnavailable(RuntimeError):
    """The program a fixture needs is not installed (or not executable)."""


class BackendStartError(RuntimeError):
    """The program is there but did not start or did not open its ports in time."""


def find_nginx(path: str | None = None) -> str:
    """Path of an executable nginx: ``path``, else /usr/sbin/nginx, else ``nginx`` on PATH."""
    for candidate in (path,) if path else (NGINX, "nginx"):
        found = candidate if os.path.isabs(candidate) else shutil.which(candidate)
        if found and os.path.isfile(found) and os.access(found, os.X_OK):
            return found
    raise BackendUnavailable(
        f"nginx not found ({path or NGINX}); install the Debian package 'nginx' "
        "(see scripts/debian-packages.txt)"
    )


def find_stream_module() -> str:
    """Path of nginx's dynamic ``stream`` module (Debian package libnginx-mod-stream)."""
    for d in STREAM_MODULE_DIRS:
        p = Path(d) / "ngx_stream_module.so"
        if p.is_file():
            return str(p)
    raise BackendUnavailable(
        "ngx_stream_module.so not found; install the Debian package 'libnginx-mod-stream'"
    )


def hostport(address: str, port: int) -> str:
    """``addr:port`` with IPv6 addresses in brackets, as nginx, URLs and ipvsadm write them."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def can_connect(address: str, port: int, timeout: float = 0.5) -> bool:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect((address, port))
        except OSError:
            return False
        return True


def wait_for_ports(
    endpoints: Iterable[tuple[str, int]],
    proc: subprocess.Popen[bytes] | None = None,
    timeout: float = 10.0,
    what: str = "server",
) -> None:
    """Wait until every (address, port) accepts TCP connections; fail early if ``proc`` dies."""
    pending = list(endpoints)
    deadline = time.monotonic() + timeout
    while pending:
        if proc is not None and proc.poll() is not None:
            raise BackendStartError(f"{what} exited with status {proc.returncode}")
        if can_connect(*pending[0]):
            pending.pop(0)
            continue
        if time.monotonic() > deadline:
            missing = ", ".join(hostport(a, p) for a, p in pending)
            raise BackendStartError(f"{what}: no listener on {missing} after {timeout:.0f} s")
        time.sleep(0.02)


def stop_process(
    proc: subprocess.Popen[bytes], first: int = signal.SIGTERM, grace: float = 5.0
) -> None:
    """Stop ``proc``: ``first``, then SIGTERM, each with ``grace`` s to exit, then SIGKILL.

    The SIGKILL goes to the whole process group (start the process with
    ``start_new_session=True``) so that workers of a killed master do not linger.
    """
    signals = [first] if first == signal.SIGTERM else [first, signal.SIGTERM]
    for sig in signals:
        if proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


class NginxProcess:
    """One nginx master running ``conf`` from a private prefix directory; a context manager.

    ``conf`` may use ``{prefix}`` for the directory; ``pid``/``error_log``/temp paths and, as
    root, ``user root;`` are prepended to it.  ``endpoints`` are waited for on start.
    """

    def __init__(
        self,
        conf: str,
        endpoints: Sequence[tuple[str, int]],
        *,
        nginx: str | None = None,
        startup_timeout: float = 10.0,
        prefix: str | os.PathLike[str] | None = None,
    ) -> None:
        self.nginx = find_nginx(nginx)
        self.endpoints = list(endpoints)
        self.startup_timeout = startup_timeout
        self._own_dir: tempfile.TemporaryDirectory[str] | None = None
        if prefix is None:
            self._own_dir = tempfile.TemporaryDirectory(prefix="pylvs-nginx-")
            prefix = self._own_dir.name
        self.prefix = Path(prefix)
        self.conf_text = conf
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def conf_path(self) -> Path:
        return self.prefix / "nginx.conf"

    @property
    def error_log(self) -> Path:
        return self.prefix / "logs" / "error.log"

    def _preamble(self) -> str:
        p = self.prefix
        lines = [f"pid {p}/nginx.pid;", f"error_log {self.error_log} warn;"]
        if os.geteuid() == 0:
            lines.insert(0, "user root;")
        return "\n".join(lines) + "\n"

    def render(self) -> str:
        return self._preamble() + self.conf_text.replace("{prefix}", str(self.prefix))

    def start(self) -> None:
        (self.prefix / "logs").mkdir(parents=True, exist_ok=True)
        (self.prefix / "tmp").mkdir(exist_ok=True)
        self.conf_path.write_text(self.render())
        stderr = open(self.prefix / "logs" / "stderr.log", "wb")  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(
                [
                    self.nginx,
                    "-p",
                    f"{self.prefix}/",
                    "-c",
                    str(self.conf_path),
                    "-e",
                    str(self.error_log),
                    "-g",
                    "daemon off;",
                ],
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                start_new_session=True,
            )
        finally:
            stderr.close()
        try:
            self._wait_for_pid_file()
            wait_for_ports(self.endpoints, self.proc, self.startup_timeout, "nginx")
        except BackendStartError as e:
            self.stop()
            raise BackendStartError(f"{e}\n{self.logs()}") from None

    def _wait_for_pid_file(self) -> None:
        # nginx writes its pid file only once every listening socket is bound, so this tells
        # "our nginx listens" apart from "someone else already listens on that port".
        assert self.proc is not None
        pid_file = self.prefix / "nginx.pid"
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self.proc.poll() is not None:
                raise BackendStartError(f"nginx exited with status {self.proc.returncode}")
            with contextlib.suppress(OSError, ValueError):
                if int(pid_file.read_text().strip() or "0") == self.proc.pid:
                    return
            if time.monotonic() > deadline:
                raise BackendStartError(f"nginx did not start in {self.startup_timeout:.0f} s")
            time.sleep(0.02)

    def logs(self) -> str:
        """nginx's error log and stderr, for error messages."""
        out = []
        for f in (self.error_log, self.prefix / "logs" / "stderr.log"):
            with contextlib.suppress(OSError):
                text = f.read_text(errors="replace").strip()
                if text:
                    out.append(text)
        return "\n".join(out)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, first=signal.SIGQUIT)
            self.proc = None

    def close(self) -> None:
        self.stop()
        if self._own_dir is not None:
            self._own_dir.cleanup()
            self._own_dir = None

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@dataclass(frozen=True)
class Backend:
    """One HTTP real server: where it listens and how it names itself."""

    address: str
    port: int
    proxy_protocol: bool = False
    name: str = ""

    @property
    def body(self) -> str:
        """What ``GET /`` returns."""
        return f"{self.name or f'backend {self.port}'}\n"

    @property
    def hostport(self) -> str:
        return hostport(self.address, self.port)

    def url(self, path: str = "/") -> str:
        return f"http://{self.hostport}{path}"


BackendSpec = Backend | tuple[str, int]


class NginxBackends(NginxProcess):
    """N HTTP real servers served by one nginx master; use as a context manager.

    >>> with NginxBackends([("127.0.0.1", 9001), ("::1", 9002)]) as b:  # doctest: +SKIP
    ...     urllib.request.urlopen(b[0].url()).read()  # b"backend 9001\\n"
    """

    def __init__(
        self,
        servers: Iterable[BackendSpec],
        *,
        workers: int = 1,
        big_size: int = 1 << 20,
        access_log: bool = False,
        keepalive_requests: int = 1000,
        worker_connections: int = 4096,
        nginx: str | None = None,
        startup_timeout: float = 10.0,
    ) -> None:
        self.servers = [s if isinstance(s, Backend) else Backend(*s) for s in servers]
        if not self.servers:
            raise ValueError("NginxBackends needs at least one server")
        self.workers = workers
        self.big_size = big_size
        self.access_log = access_log
        self.keepalive_requests = keepalive_requests
        self.worker_connections = worker_connections
        endpoints = [(s.address, s.port) for s in self.servers]
        super().__init__(self._conf(), endpoints, nginx=nginx, startup_timeout=startup_timeout)

    def __getitem__(self, i: int) -> Backend:
        return self.servers[i]

    def __len__(self) -> int:
        return len(self.servers)

    def _index(self, server: int | Backend | tuple[str, int]) -> int:
        if isinstance(server, int):
            return server
        key = (server.address, server.port) if isinstance(server, Backend) else server
        for i, s in enumerate(self.servers):
            if (s.address, s.port) == key:
                return i
        raise KeyError(f"no backend {key!r}")

    def access_log_path(self, server: int | Backend | tuple[str, int]) -> Path:
        return self.prefix / "logs" / f"access-{self._index(server)}.log"

    def _conf(self) -> str:
        # Literal nginx text; "{prefix}" is filled in by NginxProcess.render.
        temp = "\n".join(
            f"    {kind}_temp_path {{prefix}}/tmp/{kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        out = [
            f"worker_processes {self.workers};",
            f"events {{ worker_connections {self.worker_connections}; }}",
            "http {",
            temp,
            f"    default_type {MIME_TEXT};",
            "    sendfile on; tcp_nopush on; tcp_nodelay on;",
            f"    keepalive_timeout 65s; keepalive_requests {self.keepalive_requests};",
            "    access_log off;",
            '    log_format main \'$remote_addr $remote_port "$request" $status '
            "$body_bytes_sent';",
            "    log_format pp '$proxy_protocol_addr $proxy_protocol_port $remote_addr "
            '$remote_port "$request" $status\';',
        ]
        for i, s in enumerate(self.servers):
            listen = s.hostport + (" proxy_protocol" if s.proxy_protocol else "")
            peer = (
                "$proxy_protocol_addr $proxy_protocol_port"
                if s.proxy_protocol
                else ("$remote_addr $remote_port")
            )
            log = ""
            if s.proxy_protocol:
                log = f"access_log {{prefix}}/logs/access-{i}.log pp;"
            elif self.access_log:
                log = f"access_log {{prefix}}/logs/access-{i}.log main;"
            body = s.body.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
            out += [
                "    server {",
                f"        listen {listen};",
                f"        {log}" if log else "",
                "        root {prefix}/html;",
                f'        location = / {{ return 200 "{body}"; }}',
                "        location = /big { }",
                f'        location = /client {{ return 200 "{peer}\\n"; }}',
                "    }",
            ]
        out.append("}")
        return "\n".join(line for line in out if line) + "\n"

    def start(self) -> None:
        html = self.prefix / "html"
        html.mkdir(parents=True, exist_ok=True)
        chunk = bytes(range(256)) * 4096  # 1 MiB pattern, not all zeros
        with open(html / "big", "wb") as f:
            left = self.big_size
            while left > 0:
                f.write(chunk[:left])
                left -= len(chunk)
        super().start()

    def log_lines(self, server: int | Backend | tuple[str, int]) -> list[str]:
        """The access-log lines of one backend so far (empty if it logs nothing)."""
        try:
            return self.access_log_path(server).read_text().splitlines()
        except FileNotFoundError:
            return []

    def proxy_clients(
        self,
        server: int | Backend | tuple[str, int],
        *,
        wait_for: int = 0,
        timeout: float = 5.0,
    ) -> list[tuple[str, int]]:
        """Client (address, port) pairs a ``proxy_protocol`` backend logged from PROXY headers.

        nginx writes the log line after it sent the response, so a client that just read
        its answer may be ahead of the log: ``wait_for`` waits (up to ``timeout`` s) until
        at least that many requests are logged.  A request that came without a header logs
        as ("", 0).
        """
        if not self.servers[self._index(server)].proxy_protocol:
            raise ValueError(f"backend {server!r} was not created with proxy_protocol=True")
        deadline = time.monotonic() + timeout
        while True:
            lines = self.log_lines(server)
            if len(lines) >= wait_for or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        out = []
        for line in lines:
            addr, port = line.split(" ", 2)[:2]
            out.append(("" if addr == "-" else addr, int(port) if port.isdigit() else 0))
        return out
