"""Real servers inside lab namespaces: the peer-echo HTTP and UDP servers, and real nginx.

Each is started with ``Lab.popen`` (own session, stopped at lab exit) and is ready when the
starting call returns: a probe from inside the namespace (a socket made there, see
``tests.lab.netns``) must see the TCP port accept, or get a UDP answer, within
``startup_timeout`` seconds; otherwise the server is stopped and ``LabError`` carries its log.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.lab.errors import LabError
from tests.lab.netns import in_netns, stop_process

if TYPE_CHECKING:
    from tests.lab.lab import Lab

HERE = Path(__file__).resolve().parent
NGINX = "/usr/sbin/nginx"
STARTUP_TIMEOUT = 5.0


@dataclass
class Server:
    """A server process in node ``node``'s namespace, listening on ``bind``:``port``."""

    node: str
    name: str
    port: int
    bind: str
    proc: subprocess.Popen[Any]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        """What the server wrote to stdout/stderr."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        stop_process(self.proc)


@dataclass
class NginxServer(Server):
    """Real nginx; every request is logged as ``$remote_addr $remote_port $status "$request"``."""

    prefix: Path = field(default_factory=Path)

    @property
    def access_log_path(self) -> Path:
        return self.prefix / "access.log"

    def access_log(self, min_lines: int = 0, timeout: float = 2.0) -> list[str]:
        """Lines of the access log; waits up to ``timeout`` s for at least ``min_lines``
        (nginx writes the line just after the response, so a client may be faster)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                lines = self.access_log_path.read_text().splitlines()
            except FileNotFoundError:
                lines = []
            if len(lines) >= min_lines or time.monotonic() > deadline:
                return lines
            time.sleep(0.01)

    def clients(self, min_lines: int = 0, timeout: float = 2.0) -> list[str]:
        """The ``$remote_addr`` of every logged request, in order."""
        return [line.split()[0] for line in self.access_log(min_lines, timeout)]

    def pid_file_pid(self) -> int | None:
        """The pid in nginx's pid file, written once its listening sockets are bound."""
        try:
            return int((self.prefix / "nginx.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def error_log(self) -> str:
        try:
            return (self.prefix / "error.log").read_text(errors="replace")
        except OSError:
            return ""


def probe_address(bind: str) -> str:
    if bind in ("", "0.0.0.0"):
        return "127.0.0.1"
    if bind == "::":
        return "::1"
    return bind


def wait_ready(
    lab: Lab,
    server: Server,
    proto: str,
    started: Callable[[], bool],
    timeout: float = STARTUP_TIMEOUT,
) -> None:
    """Wait until ``started()`` (the server says it has bound its port: no other listener is
    being mistaken for it) and a probe from inside the namespace is answered; else stop the
    server and raise ``LabError`` with its output."""
    address = probe_address(server.bind)
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM

    def answered() -> bool:
        with socket.socket(family, kind) as s:
            s.settimeout(0.1)
            try:
                if proto == "tcp":
                    s.connect((address, server.port))
                else:
                    s.sendto(b"ready?", (address, server.port))
                    s.recv(512)
            except OSError:
                return False
            return True

    def probe() -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and server.proc.poll() is None:
            if started() and answered():
                return True
            time.sleep(0.01)
        return False

    if in_netns(lab.ns(server.node), probe):
        return
    status = "exited" if server.proc.poll() is not None else "did not answer"
    server.stop()
    logs = server.log().strip()
    if isinstance(server, NginxServer):
        logs = f"{logs}\n{server.error_log().strip()}".strip()
    raise LabError(
        f"{server.name} on {server.node} {status} ({proto} {address} port {server.port}, "
        f"waited up to {timeout:.0f} s); its output:\n{logs}"
    )


def start_script(lab: Lab, node: str, script: str, name: str, port: int, bind: str) -> Server:
    log_path = lab.new_path(f"{script}-{node}-{port}", ".log")
    argv = [sys.executable, "-I", "-u", str(HERE / script), "--port", str(port)]
    argv += ["--name", name, "--bind", bind]
    with open(log_path, "w") as log:
        proc = lab.popen(node, argv, stdout=log, stderr=subprocess.STDOUT)
    return Server(node=node, name=name, port=port, bind=bind, proc=proc, log_path=log_path)


def said_listening(server: Server) -> Callable[[], bool]:
    return lambda: "listening on" in server.log()


def http_server(lab: Lab, node: str, port: int, name: str, bind: str) -> Server:
    server = start_script(lab, node, "httpd.py", name, port, bind)
    wait_ready(lab, server, "tcp", said_listening(server))
    return server


def udp_server(lab: Lab, node: str, port: int, name: str, bind: str) -> Server:
    server = start_script(lab, node, "udpd.py", name, port, bind)
    wait_ready(lab, server, "udp", said_listening(server))
    return server


def nginx_quote(text: str) -> str:
    """An nginx double-quoted string (variables such as $remote_addr still expand)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def nginx_conf(prefix: Path, port: int, body: str, bind: str) -> str:
    listen = f"[{bind}]:{port}" if ":" in bind else f"{bind}:{port}"
    temp = " ".join(f"{k}_temp_path {prefix}/tmp/{k};" for k in ("client_body", "proxy"))
    temp += "".join(f" {k}_temp_path {prefix}/tmp/{k};" for k in ("fastcgi", "uwsgi", "scgi"))
    return f"""daemon off;
master_process off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    log_format lab '$remote_addr $remote_port $status "$request"';
    access_log {prefix}/access.log lab;
    {temp}
    keepalive_requests 100000;
    server {{
        listen {listen};
        location / {{
            default_type text/plain;
            return 200 {nginx_quote(body + chr(10))};
        }}
    }}
}}
"""


def nginx(lab: Lab, node: str, port: int, body: str, bind: str) -> NginxServer:
    prefix = lab.new_path(f"nginx-{node}-{port}")
    (prefix / "tmp").mkdir(parents=True)
    conf = prefix / "nginx.conf"
    conf.write_text(nginx_conf(prefix, port, body, bind))
    log_path = prefix / "stderr.log"
    argv = [NGINX, "-p", f"{prefix}/", "-e", str(prefix / "error.log"), "-c", str(conf)]
    with open(log_path, "w") as log:
        proc = lab.popen(node, argv, stdout=log, stderr=subprocess.STDOUT)
    server = NginxServer(
        node=node, name="nginx", port=port, bind=bind, proc=proc, log_path=log_path, prefix=prefix
    )
    wait_ready(lab, server, "tcp", lambda: server.pid_file_pid() == server.pid)
    return server
