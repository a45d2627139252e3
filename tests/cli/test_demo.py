"""The README's first command: `pylvs demo` serves through a real proxy director."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def test_live_demo(tmp_path: Path) -> None:
    env = dict(os.environ, PYLVS_SOCKET=str(tmp_path / "demo.sock"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "pylvs.cli.main", "demo"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        out = ""
        deadline = time.monotonic() + 30
        while "Ctrl-C" not in out and time.monotonic() < deadline:
            out += proc.stdout.readline()
        assert "director on 127.0.0.1:8080" in out
        bodies = [
            urllib.request.urlopen("http://127.0.0.1:8080/", timeout=5).read() for _ in range(12)
        ]
        counts = {p: sum(f":{p}".encode() in b for b in bodies) for p in (8081, 8082, 8083)}
        assert counts == {8081: 6, 8082: 4, 8083: 2}  # wrr 3/2/1 over two full rounds
        adm = subprocess.run(
            [sys.executable, "-m", "pylvs.cli.pylvsadm", "-Ln"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert "TCP  127.0.0.1:8080 wrr" in adm.stdout
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0
    assert not (tmp_path / "demo.sock").exists()
