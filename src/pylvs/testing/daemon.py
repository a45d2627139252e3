"""Start a real pylvsd for tests: a subprocess on a private socket, always stopped."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


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
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stderr.read().decode() if proc.stderr else ""
            raise RuntimeError(f"pylvsd exited with {proc.returncode}: {out}")
        if os.path.exists(path):
            s = socket.socket(socket.AF_UNIX)
            try:
                s.connect(path)
                return
            except OSError:
                pass
            finally:
                s.close()
        time.sleep(0.05)
    raise RuntimeError("pylvsd did not come up")


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
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
