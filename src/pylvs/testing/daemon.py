"""Start a real pylvsd for tests: a subprocess on a private socket, always stopped."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pylvs.cli.client import DaemonStartError, stop_daemon, wait_for_daemon


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RunningDaemon:
    def __init__(self, proc: subprocess.Popen[bytes], socket_path: str, http: str | None) -> None:
        self.proc = proc
        self.socket = socket_path
        self.http = http

    def env(self) -> dict[str, str]:
        e = dict(os.environ)
        e["PYLVS_SOCKET"] = self.socket
        return e

    def pylvsadm(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pylvs.cli.pylvsadm", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=60,
        )


def wait_for_socket(path: str, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    try:
        wait_for_daemon(path, proc, timeout)
    except DaemonStartError as e:
        out = proc.stderr.read().decode() if proc.stderr and proc.poll() is not None else ""
        raise RuntimeError(f"{e}: {out}") from e


@contextmanager
def pylvsd(*extra: str, http: bool = False, dataplane: str = "none") -> Iterator[RunningDaemon]:
    with tempfile.TemporaryDirectory(prefix="pylvsd-") as d:
        sock = str(Path(d) / "pylvsd.sock")
        args = [
            sys.executable,
            "-m",
            "pylvs.daemon.main",
            "--dataplane",
            dataplane,
            "--socket",
            sock,
            *extra,
        ]
        http_addr = None
        if http:
            http_addr = f"127.0.0.1:{free_port()}"
            args += ["--http", http_addr, "--http-writable"]
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            wait_for_socket(sock, proc)
            yield RunningDaemon(proc, sock, http_addr)
        finally:
            stop_daemon(proc)
