"""pylvsd as a process: its socket, its API's refusals, atomic batches, signals."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pylvs.cli.client import ApiError, Client
from pylvs.testing.daemon import pylvsd, wait_for_socket

SVC = {"protocol": "tcp", "address": "10.0.0.1", "port": 80, "sched_name": "rr"}


def test_socket_mode_and_refusals() -> None:
    with pylvsd() as d:
        assert stat.S_IMODE(os.stat(d.socket).st_mode) == 0o660
        c = Client(d.socket)
        c.request("POST", "/v1/services", SVC)
        with pytest.raises(ApiError) as ei:
            c.request("POST", "/v1/services", SVC)
        assert ei.value.status == 409 and ei.value.message == "Service already exists"
        with pytest.raises(ApiError) as ei:
            c.request("DELETE", "/v1/services/tcp:10.0.0.9:80")
        assert ei.value.status == 404 and ei.value.message == "No such service"
        with pytest.raises(ApiError) as ei:
            c.request("POST", "/v1/services/tcp:10.0.0.9:80/dests", {"address": "10.1.1.1"})
        assert ei.value.message == "Service not defined"
        with pytest.raises(ApiError) as ei:
            c.request("POST", "/v1/services", {**SVC, "port": 81, "sched_name": "nope"})
        assert ei.value.message == "Scheduler or persistence engine not found"
        with pytest.raises(ApiError) as ei:
            c.request("POST", "/v1/services", {"protocol": "tcp", "address": "10.0.0.1"})
        assert ei.value.message == "Zero port specified for non-persistent service"
        with pytest.raises(ApiError) as ei:
            c.request("POST", "/v1/services", "garbage")
        assert ei.value.status == 400
        # DR (the none plane's default) forces the service port.
        dest = c.request(
            "POST", "/v1/services/tcp:10.0.0.1:80/dests", {"address": "10.1.1.1", "port": 8080}
        )
        assert dest["port"] == 80 and dest["fwd_method"] == "droute"


def test_batch_is_all_or_nothing() -> None:
    with pylvsd() as d:
        c = Client(d.socket)
        c.request("POST", "/v1/services", SVC)
        before = c.get("/v1/services")
        ops = [
            {"op": "add_service", "service": {**SVC, "port": 443}},
            {"op": "add_dest", "service": SVC, "dest": {"address": "10.1.1.2", "port": 80}},
            {"op": "add_service", "service": SVC},
        ]
        with pytest.raises(ApiError) as ei:
            c.request("POST", "/v1/batch", {"ops": ops})
        assert ei.value.index == 2 and ei.value.message == "Service already exists"
        assert c.get("/v1/services") == before
        with pytest.raises(ApiError) as ei:
            c.request("POST", "/v1/batch", {"ops": [ops[0], {"op": "bogus"}]})
        assert ei.value.index == 1 and c.get("/v1/services") == before
        assert c.request("POST", "/v1/batch", {"ops": ops[:2]}) == {"applied": 2}
        assert len(c.get("/v1/services")) == 2


def test_second_daemon_refused_and_stale_socket_cleaned(tmp_path: Path) -> None:
    with pylvsd() as d:
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "pylvs.daemon.main",
                "--dataplane",
                "none",
                "--socket",
                d.socket,
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert r.returncode == 1 and "another pylvsd is already running" in r.stderr
    stale = tmp_path / "stale.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(stale))
    s.close()  # a socket file nobody answers on
    proc = subprocess.Popen(
        [sys.executable, "-m", "pylvs.daemon.main", "--dataplane", "none", "--socket", str(stale)],
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_socket(str(stale), proc)
        assert Client(str(stale)).get("/v1/info")["dataplane"] == "none"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    assert not stale.exists()  # removed on clean shutdown


def test_rules_at_start_and_reload(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.write_text(
        "-A -t 10.0.0.1:80 -s rr\n"
        "-a -t 10.0.0.1:80 -r 192.168.0.2:80 -m -w 1\n"
        "-a -t 10.0.0.1:80 -r 192.168.0.3:80 -m -w 2\n"
        "-A -u 10.0.0.1:53 -s wlc\n"
    )
    with pylvsd("--rules", str(rules)) as d:
        c = Client(d.socket)
        svcs = {s["port"]: s for s in c.get("/v1/services")}
        assert set(svcs) == {80, 53}
        # Each -a goes to the head of the list, as in the kernel: the last one comes first.
        assert [x["address"] for x in svcs[80]["dests"]] == ["192.168.0.3", "192.168.0.2"]
        rules.write_text(
            "-A -t 10.0.0.1:80 -s rr\n"
            "-a -t 10.0.0.1:80 -r 192.168.0.2:80 -m -w 5\n"
            "-A -t 10.0.0.1:443 -s sh\n"
        )
        d.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            svcs = {s["port"]: s for s in c.get("/v1/services")}
            if set(svcs) == {80, 443}:
                break
            time.sleep(0.1)
        assert set(svcs) == {80, 443}
        assert [(x["address"], x["weight"]) for x in svcs[80]["dests"]] == [("192.168.0.2", 5)]
        # A broken file leaves everything as it was.
        rules.write_text("-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r bad-address -m\n")
        before = c.get("/v1/services")
        d.proc.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        assert c.get("/v1/services") == before and d.proc.poll() is None


def test_bad_rules_file_stops_start(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.write_text("-A -t 10.0.0.1:80 -s rr\n-A -t 10.0.0.1:80 -s rr\n")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pylvs.daemon.main",
            "--dataplane",
            "none",
            "--socket",
            str(tmp_path / "s.sock"),
            "--rules",
            str(rules),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 1
    assert f"{rules}:2: Service already exists" in r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "pylvs.daemon.main", "--config-test", "--rules", str(rules)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 1 and "Service already exists" in r.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--workers", "0"], "--workers must be at least 1"),
        (["--connect-timeout", "-1"], "--connect-timeout must be positive"),
        (["--max-conns", "-5"], "--max-conns must be 0 (automatic) or positive"),
        (["--http", "nonsense"], "--http wants ADDR:PORT"),
        (["--dataplane", "none", "--workers", "2"], "--workers is for the proxy data plane"),
        (["--dataplane", "bogus"], "invalid choice"),
    ],
)
def test_bad_daemon_options(tmp_path: Path, args: list[str], message: str) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "pylvs.daemon.main", "--socket", str(tmp_path / "s"), *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 2 and message in r.stderr
    assert not (tmp_path / "s").exists()
