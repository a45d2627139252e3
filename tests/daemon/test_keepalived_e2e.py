"""``pylvsd -f keepalived.conf`` end to end on the proxy data plane (issue 6, "Done when").

Real pieces only: pylvsd as a subprocess reading a keepalived.conf, real nginx real
servers (one nginx master per real server, so that each can be stopped and restarted
on its own), real MISC_CHECK and notify scripts, clients going through the VIP, and
``pylvsadm`` reading the table.  Polling (fast, through the control API) always has a
deadline; the removal time is measured and asserted against keepalived's bound
``delay_loop x (retry + 1) + connect_timeout`` plus a little slack for a loaded machine.

Ports: 16100-16799.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shlex
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

import pytest

from pylvs.cli.client import Client
from pylvs.testing.backends import Backend, BackendUnavailable, NginxBackends
from pylvs.testing.daemon import RunningDaemon, wait_for_socket

VIP = "127.0.0.1"
LO = "127.0.0.1"

# The checker timing every test uses, and keepalived's detection bound for it.
DELAY_LOOP = 1.0
CONNECT_TIMEOUT = 1.0
RETRY = 1
BOUND = DELAY_LOOP * (RETRY + 1) + CONNECT_TIMEOUT
SLACK = 2.0  # a loaded 2-core test machine

TCP_CHECK = """
        TCP_CHECK {
            connect_timeout 1
            retry 1
            delay_before_retry 1
        }"""

Table = dict[str, dict[str, int]]  # "vip:port" -> {"rs:port": weight}


# -- the daemon ------------------------------------------------------------------------------


@dataclass
class Keepalived:
    """A running ``pylvsd -f FILE`` on the proxy data plane."""

    proc: subprocess.Popen[bytes]
    socket: str
    conf: Path
    log_path: Path
    daemon: RunningDaemon = field(init=False)

    def __post_init__(self) -> None:
        self.daemon = RunningDaemon(self.proc, self.socket, None)

    def adm(self, cmd: str) -> str:
        r = self.daemon.pylvsadm(*shlex.split(cmd))
        assert r.returncode == 0, (cmd, r.stderr)
        return r.stdout

    def table(self) -> Table:
        """The table through the API (fast enough to poll every 50 ms)."""
        out: Table = {}
        for s in Client(self.socket, timeout=10).get("/v1/services"):
            out[f"{s['address']}:{s['port']}"] = {
                f"{d['address']}:{d['port']}": int(d["weight"]) for d in s["dests"]
            }
        return out

    def stats(self, service: str) -> dict[str, int]:
        for s in Client(self.socket, timeout=10).get("/v1/services"):
            if f"{s['address']}:{s['port']}" == service:
                return dict(s["stats"])
        raise KeyError(service)

    def pool(self, service: str) -> dict[str, int]:
        return self.table().get(service, {})

    def reload(self, text: str) -> None:
        """Replace the configuration file (atomically) and send SIGHUP."""
        tmp = self.conf.with_suffix(".new")
        tmp.write_text(text)
        os.replace(tmp, self.conf)
        self.proc.send_signal(signal.SIGHUP)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, text: str, count: int = 1, timeout: float = 10.0) -> None:
        wait_for(lambda: self.log().count(text) >= count, timeout, f"log {text!r} x{count}", self)

    def alive(self) -> bool:
        return self.proc.poll() is None


def listed(ln: str) -> Table:
    """``pylvsadm -Ln`` parsed: service -> {real server: weight}."""
    out: Table = {}
    current: dict[str, int] | None = None
    for line in ln.splitlines():
        f = line.split()
        if f and f[0] in ("TCP", "UDP", "SCTP", "FWM"):
            current = out.setdefault(f[1], {})
        elif line.startswith("  -> ") and f[1] != "RemoteAddress:Port":
            assert current is not None, ln
            current[f[1]] = int(f[3])
    return out


@contextlib.contextmanager
def keepalived(conf: Path, *extra: str) -> Iterator[Keepalived]:
    """pylvsd -f ``conf`` (proxy data plane), stderr to a file next to it; always stopped."""
    sock = conf.parent / "pylvsd.sock"
    log_path = conf.parent / "pylvsd.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pylvs.daemon.main",
                "--dataplane",
                "proxy",
                "--socket",
                str(sock),
                "--connect-timeout",
                "1",
                "-f",
                str(conf),
                *extra,
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
    k = Keepalived(proc, str(sock), conf, log_path)
    try:
        try:
            wait_for_socket(str(sock), proc)
        except RuntimeError as e:
            raise AssertionError(f"{e}\n{k.log()}") from None
        yield k
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise AssertionError(f"pylvsd did not stop on SIGTERM\n{k.log()}") from None


def wait_for(
    cond: Callable[[], bool], timeout: float, what: str, k: Keepalived | None = None
) -> float:
    """Poll ``cond`` every 50 ms; the time it took, or AssertionError after ``timeout``."""
    start = time.monotonic()
    deadline = start + timeout
    while True:
        if cond():
            return time.monotonic() - start
        if time.monotonic() > deadline:
            detail = ""
            if k is not None:
                detail = f"\ntable: {k.table()}\nlog:\n{k.log()}"
            raise AssertionError(f"{what}: not reached in {timeout:.1f} s{detail}")
        time.sleep(0.05)


def write_conf(path: Path, template: str, **values: object) -> Path:
    path.write_text(conf_text(template, **values))
    return path


def conf_text(template: str, **values: object) -> str:
    return Template(textwrap.dedent(template)).substitute(
        {k: str(v) for k, v in values.items()}, TCP_CHECK=TCP_CHECK
    )


def script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


# -- real servers ----------------------------------------------------------------------------


class RealServer:
    """One nginx master serving ``GET /`` -> ``name\\n`` on 127.0.0.1:port; stoppable."""

    def __init__(self, port: int, name: str = "") -> None:
        self.port = port
        self.name = name or f"rs{port}"
        self.nginx = NginxBackends([Backend(LO, port, name=self.name)])
        self.running = False

    @property
    def addr(self) -> str:
        return f"{LO}:{self.port}"

    @property
    def body(self) -> str:
        return f"{self.name}\n"

    def start(self) -> None:
        self.nginx.start()
        self.running = True

    def stop(self) -> None:
        """Stop nginx; returns once its listening socket is closed."""
        self.nginx.stop()
        self.running = False
        assert not _connects(self.port)

    def close(self) -> None:
        self.nginx.close()


def _connects(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((LO, port)) == 0


@pytest.fixture
def servers() -> Iterator[Callable[..., RealServer]]:
    """A factory of started real servers, all closed at the end of the test."""
    made: list[RealServer] = []

    def make(port: int, name: str = "", start: bool = True) -> RealServer:
        try:
            rs = RealServer(port, name)
        except BackendUnavailable as e:
            if os.environ.get("CI") == "true":
                pytest.fail(f"CI needs nginx: {e}")
            pytest.skip(str(e))
        made.append(rs)
        if start:
            rs.start()
        return rs

    yield make
    for rs in made:
        rs.close()


def get(port: int, timeout: float = 3.0) -> str:
    with urllib.request.urlopen(f"http://{VIP}:{port}/", timeout=timeout) as r:
        return str(r.read().decode())


class Hammer:
    """A client thread sending GET / to the VIP in a loop (a new connection each time)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.results: list[tuple[float, float, str | None, str]] = []  # start, end, body, error
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                body: str | None = get(self.port, timeout=3.0)
                err = ""
            except OSError as e:
                body, err = None, repr(e)
            self.results.append((t0, time.monotonic(), body, err))
            time.sleep(0.005)

    def __enter__(self) -> Hammer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def started_after(self, t: float) -> list[tuple[float, float, str | None, str]]:
        return [r for r in list(self.results) if r[0] >= t]

    def wait_count_after(self, t: float, n: int, timeout: float = 20.0) -> None:
        wait_for(lambda: len(self.started_after(t)) >= n, timeout, f"{n} requests")


# -- 2: failure detection, removal, sorry server -----------------------------------------------

FAILOVER = """
    virtual_server 127.0.0.1 $VPORT {
        delay_loop 1
        lb_algo rr
        lb_kind NAT
        protocol TCP
        sorry_server 127.0.0.1 $SORRY
        real_server 127.0.0.1 $RS1 {
            weight 1$TCP_CHECK
        }
        real_server 127.0.0.1 $RS2 {
            weight 1$TCP_CHECK
        }
    }
"""


def test_failover_removal_bound_and_sorry_server(
    tmp_path: Path, servers: Callable[..., RealServer], record_property: Callable[..., None]
) -> None:
    vport = 16100
    svc = f"{VIP}:{vport}"
    rs1, rs2 = servers(16101), servers(16102)
    sorry = servers(16109, "sorry")
    conf = write_conf(
        tmp_path / "keepalived.conf",
        FAILOVER,
        VPORT=vport,
        RS1=rs1.port,
        RS2=rs2.port,
        SORRY=sorry.port,
    )
    with keepalived(conf) as k:
        wait_for(lambda: set(k.pool(svc)) == {rs1.addr, rs2.addr}, 10, "both servers", k)
        assert listed(k.adm("-Ln")) == {svc: {rs2.addr: 1, rs1.addr: 1}}
        assert {get(vport) for _ in range(4)} == {rs1.body, rs2.body}

        with Hammer(vport) as hammer:
            hammer.wait_count_after(0, 20)
            # -- one real server stops: it leaves the pool within the bound
            rs2.stop()
            stopped = time.monotonic()
            took = wait_for(lambda: rs2.addr not in k.pool(svc), BOUND + SLACK + 5, "removal", k)
            removed = time.monotonic()
            record_property("removal_seconds", round(took, 3))
            print(f"removal took {took:.2f} s (bound {BOUND:.0f} s + {SLACK:.0f} s slack)")
            assert took <= BOUND + SLACK, f"removal took {took:.2f} s, bound {BOUND} s"
            assert listed(k.adm("-Ln")) == {svc: {rs1.addr: 1}}
            # -- new connections after the removal: no errors at all
            hammer.wait_count_after(removed, 100)
            after = hammer.started_after(removed)
            assert [r[3] for r in after if r[3]] == []
            assert {r[2] for r in after} == {rs1.body}
            # Only requests in flight during the detection window may have failed.
            failed = [r for r in hammer.results if r[3]]
            record_property("failed_in_detection_window", len(failed))
            assert all(stopped - 0.5 <= r[0] <= removed for r in failed), failed

            # -- it comes back: one good check is enough
            rs2.start()
            back = wait_for(lambda: rs2.addr in k.pool(svc), DELAY_LOOP + SLACK + 3, "back", k)
            record_property("recovery_seconds", round(back, 3))
            assert back <= DELAY_LOOP + CONNECT_TIMEOUT + SLACK
            mark = time.monotonic()
            hammer.wait_count_after(mark, 20)
            assert {r[2] for r in hammer.started_after(mark)} == {rs1.body, rs2.body}
            assert not [r for r in hammer.started_after(mark) if r[3]]

        # -- all down: quorum lost, the sorry server replaces the pool
        rs1.stop()
        rs2.stop()
        wait_for(lambda: k.pool(svc) == {sorry.addr: 1}, 2 * (BOUND + SLACK), "sorry server", k)
        assert listed(k.adm("-Ln")) == {svc: {sorry.addr: 1}}
        assert {get(vport) for _ in range(5)} == {sorry.body}

        # -- one comes back (quorum 1, hysteresis 0): the sorry server leaves
        rs1.start()
        wait_for(lambda: k.pool(svc) == {rs1.addr: 1}, DELAY_LOOP + SLACK + 3, "quorum back", k)
        assert {get(vport) for _ in range(5)} == {rs1.body}
        assert "Lost quorum" in k.log() and "Gained quorum" in k.log()
        assert k.alive()


# -- 3: inhibit_on_failure ---------------------------------------------------------------------

INHIBIT = """
    virtual_server 127.0.0.1 $VPORT {
        delay_loop 1
        lb_algo wrr
        lb_kind NAT
        protocol TCP
        real_server 127.0.0.1 $RS1 {
            weight 3
            inhibit_on_failure$TCP_CHECK
        }
        real_server 127.0.0.1 $RS2 {
            weight 2
            inhibit_on_failure$TCP_CHECK
        }
    }
"""


def test_inhibit_on_failure_keeps_the_server_at_weight_0(
    tmp_path: Path, servers: Callable[..., RealServer]
) -> None:
    vport = 16200
    svc = f"{VIP}:{vport}"
    rs1, rs2 = servers(16201), servers(16202)
    conf = write_conf(tmp_path / "k.conf", INHIBIT, VPORT=vport, RS1=rs1.port, RS2=rs2.port)
    with keepalived(conf) as k:
        wait_for(lambda: k.pool(svc) == {rs1.addr: 3, rs2.addr: 2}, 10, "weights", k)
        rs1.stop()
        took = wait_for(lambda: k.pool(svc).get(rs1.addr) == 0, BOUND + SLACK + 5, "w0", k)
        assert took <= BOUND + SLACK
        assert listed(k.adm("-Ln")) == {svc: {rs1.addr: 0, rs2.addr: 2}}
        # weight 0: no new connection goes there
        assert {get(vport) for _ in range(6)} == {rs2.body}
        rs1.start()
        wait_for(lambda: k.pool(svc) == {rs1.addr: 3, rs2.addr: 2}, 5, "weight back", k)
        assert listed(k.adm("-Ln")) == {svc: {rs1.addr: 3, rs2.addr: 2}}
        assert rs1.body in {get(vport) for _ in range(10)}


# -- 4: HTTP_GET digest and status_code ----------------------------------------------------------

HTTP = """
    virtual_server 127.0.0.1 $VPORT {
        delay_loop 1
        lb_algo rr
        lb_kind NAT
        protocol TCP
        real_server 127.0.0.1 $RS1 {
            HTTP_GET {
                url {
                    path /
                    digest $DIGEST1
                    status_code 200
                }
                connect_timeout 1
                retry 1
                delay_before_retry 1
            }
        }
        real_server 127.0.0.1 $RS2 {
            HTTP_GET {
                url {
                    path /
                    digest $DIGEST2
                    status_code $STATUS2
                }
                connect_timeout 1
                retry 1
                delay_before_retry 1
            }
        }
    }
"""


def genhash(*ports: int) -> list[str]:
    """``pylvs genhash -s 127.0.0.1 -p PORT -u /`` for each port (run concurrently)."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "pylvs.cli.main", "genhash", "-s", LO, "-p", str(p), "-u", "/"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for p in ports
    ]
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 0, stderr
        out.append(stdout.strip())
    return out


def test_http_get_digest_and_status_code(
    tmp_path: Path, servers: Callable[..., RealServer]
) -> None:
    vport = 16300
    svc = f"{VIP}:{vport}"
    rs1, rs2 = servers(16301), servers(16302)
    d1, d2 = genhash(rs1.port, rs2.port)
    # genhash digests the body nginx serves
    assert (d1, d2) == (
        hashlib.md5(rs1.body.encode()).hexdigest(),
        hashlib.md5(rs2.body.encode()).hexdigest(),
    )
    wrong = hashlib.md5(b"something else\n").hexdigest()
    values = {"VPORT": vport, "RS1": rs1.port, "RS2": rs2.port}
    conf = write_conf(tmp_path / "k.conf", HTTP, DIGEST1=d1, DIGEST2=d2, STATUS2=201, **values)
    with keepalived(conf) as k:
        # rs1 passes (200 + digest); rs2 answers 200 where 201 is expected: removed
        wait_for(lambda: k.pool(svc) == {rs1.addr: 1}, BOUND + SLACK + 5, "rs2 removed", k)
        k.wait_log("HTTP status code 200")

        # second file: rs1 expects another digest, rs2 now expects 200 -> they swap
        k.reload(conf_text(HTTP, DIGEST1=wrong, DIGEST2=d2, STATUS2=200, **values))
        k.wait_log("reloaded")
        wait_for(lambda: k.pool(svc) == {rs2.addr: 1}, BOUND + SLACK + 3, "swap", k)
        assert f"MD5 digest {d1} != {wrong}" in k.log()
        assert listed(k.adm("-Ln")) == {svc: {rs2.addr: 1}}
        assert {get(vport) for _ in range(3)} == {rs2.body}

        # third: rs2's status_code mismatch (201) takes it down; rs1 back to the good digest
        k.reload(conf_text(HTTP, DIGEST1=d1, DIGEST2=d2, STATUS2=201, **values))
        k.wait_log("reloaded", 2)
        wait_for(lambda: k.pool(svc) == {rs1.addr: 1}, BOUND + SLACK + 3, "rs2 down", k)
        assert k.log().count("HTTP status code 200") >= 2
        assert {get(vport) for _ in range(3)} == {rs1.body}


# -- 5: MISC_CHECK misc_dynamic -----------------------------------------------------------------

MISC = """
    virtual_server 127.0.0.1 $VPORT {
        delay_loop 1
        lb_algo wrr
        lb_kind NAT
        protocol TCP
        real_server 127.0.0.1 $RS1 {
            weight 7
            MISC_CHECK {
                misc_path "$SCRIPT"
                misc_timeout 3
                misc_dynamic
                retry 1
                delay_before_retry 1
            }
        }
    }
"""


def test_misc_check_dynamic_weights(tmp_path: Path) -> None:
    vport, rport = 16400, 16401
    svc = f"{VIP}:{vport}"
    rs = f"{LO}:{rport}"
    code, runs = tmp_path / "code", tmp_path / "runs"
    code.write_text("0\n")
    check = script(tmp_path / "misc.sh", f'echo run >> {runs}\nexit "$(cat {code})"\n')
    conf = write_conf(tmp_path / "k.conf", MISC, VPORT=vport, RS1=rport, SCRIPT=check)

    def ran() -> int:
        return len(runs.read_text().splitlines()) if runs.exists() else 0

    def exits(status: int, weight: int | None) -> None:
        """Make the script exit with ``status``: the server follows, and stays so for
        another run of the script."""
        code.write_text(f"{status}\n")
        want = {} if weight is None else {rs: weight}
        wait_for(lambda: k.pool(svc) == want, BOUND + SLACK + 2, f"exit {status}", k)
        seen = ran()
        wait_for(lambda: ran() >= seen + 1, 2 * DELAY_LOOP + SLACK, "another run", k)
        assert k.pool(svc) == want
        if status:
            assert listed(k.adm("-Ln")) == {svc: want}

    with keepalived(conf) as k:
        exits(0, 7)  # the configured weight
        exits(1, None)  # down (after its retry)
        exits(5, 3)  # misc_dynamic: up with weight 5 - 2
        exits(0, 7)  # back to the configured weight


# -- 6: notify_up / notify_down / quorum_up / quorum_down ----------------------------------------

NOTIFY = """
    virtual_server 127.0.0.1 $VPORT {
        delay_loop 1
        lb_algo rr
        lb_kind NAT
        protocol TCP
        quorum 2
        quorum_up "$NOTIFY quorum_up"
        quorum_down "$NOTIFY quorum_down"
        real_server 127.0.0.1 $RS1 {
            notify_up "$NOTIFY up rs1"
            notify_down "$NOTIFY down rs1"$TCP_CHECK
        }
        real_server 127.0.0.1 $RS2 {
            notify_up "$NOTIFY up rs2"
            notify_down "$NOTIFY down rs2"$TCP_CHECK
        }
    }
"""


def test_notify_and_quorum_scripts(tmp_path: Path, servers: Callable[..., RealServer]) -> None:
    vport = 16500
    svc = f"{VIP}:{vport}"
    rs1, rs2 = servers(16501), servers(16502)
    out = tmp_path / "notified"
    notify = script(tmp_path / "notify.sh", f'echo "$*" >> {out}\n')
    conf = write_conf(
        tmp_path / "k.conf", NOTIFY, VPORT=vport, RS1=rs1.port, RS2=rs2.port, NOTIFY=notify
    )

    def lines() -> list[str]:
        return out.read_text().splitlines() if out.exists() else []

    def next_lines(seen: int, n: int) -> set[str]:
        # the scripts run concurrently: their order within one transition is not fixed
        wait_for(lambda: len(lines()) >= seen + n, BOUND + SLACK + 3, f"{n} notifications", k)
        time.sleep(0.3)  # nothing more comes
        got = lines()
        assert len(got) == seen + n, got
        return set(got[seen:])

    with keepalived(conf) as k:
        wait_for(lambda: k.pool(svc) == {rs1.addr: 1, rs2.addr: 1}, 10, "both up", k)
        time.sleep(1.5)  # a round of checks: everything up, nothing to notify
        assert lines() == []
        rs1.stop()
        assert next_lines(0, 2) == {"down rs1", "quorum_down"}
        # rs2 down while quorum is already lost: no second quorum_down
        rs2.stop()
        assert next_lines(2, 1) == {"down rs2"}
        # both back: each notify_up, and one quorum_up
        rs1.start()
        rs2.start()
        assert next_lines(3, 3) == {"up rs1", "up rs2", "quorum_up"}
        assert k.pool(svc) == {rs1.addr: 1, rs2.addr: 1}


# -- 7: SIGHUP keeps unrelated established connections ------------------------------------------

RELOAD_1 = """
    virtual_server 127.0.0.1 $A {
        delay_loop 1
        lb_algo rr
        lb_kind NAT
        protocol TCP
        real_server 127.0.0.1 $RA {$TCP_CHECK
        }
    }
    virtual_server 127.0.0.1 $C {
        delay_loop 1
        lb_algo rr
        lb_kind NAT
        protocol TCP
        real_server 127.0.0.1 $RC {$TCP_CHECK
        }
    }
    virtual_server 127.0.0.1 $D {
        delay_loop 1
        lb_algo rr
        lb_kind NAT
        protocol TCP
        real_server 127.0.0.1 $RD1 {$TCP_CHECK
        }
        real_server 127.0.0.1 $RD2 {$TCP_CHECK
        }
    }
"""

RELOAD_2 = """
    virtual_server 127.0.0.1 $D {
        delay_loop 1
        lb_algo wlc
        lb_kind NAT
        protocol TCP
        real_server 127.0.0.1 $RD1 {
            weight 4$TCP_CHECK
        }
        real_server 127.0.0.1 $RB {$TCP_CHECK
        }
    }
    virtual_server 127.0.0.1 $A {
        delay_loop 1
        lb_algo rr
        lb_kind NAT
        protocol TCP
        real_server 127.0.0.1 $RA {$TCP_CHECK
        }
    }
    virtual_server 127.0.0.1 $B {
        delay_loop 1
        lb_algo rr
        lb_kind NAT
        protocol TCP
        real_server 127.0.0.1 $RB {$TCP_CHECK
        }
    }
"""


def http_on(sock: socket.socket) -> bytes:
    """One keep-alive request on an open connection; the response body."""
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, f"connection closed: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(4096)
        assert chunk, "connection closed in the body"
        body += chunk
    assert head.startswith(b"HTTP/1.1 200"), head
    return body


def test_sighup_keeps_established_connections(
    tmp_path: Path, servers: Callable[..., RealServer]
) -> None:
    ports = {"A": 16600, "B": 16601, "C": 16602, "D": 16603}
    ra, rb, rc = servers(16610), servers(16611), servers(16612)
    rd1, rd2 = servers(16613), servers(16614)
    values = {
        **ports,
        "RA": ra.port,
        "RB": rb.port,
        "RC": rc.port,
        "RD1": rd1.port,
        "RD2": rd2.port,
    }
    a, b, c, d = (f"{VIP}:{p}" for p in ports.values())
    conf = write_conf(tmp_path / "k.conf", RELOAD_1, **values)
    with keepalived(conf) as k:
        first = {a: {ra.addr: 1}, c: {rc.addr: 1}, d: {rd1.addr: 1, rd2.addr: 1}}
        wait_for(lambda: k.table() == first, 10, "first table", k)
        held = socket.create_connection((VIP, ports["A"]), timeout=5)
        try:
            assert http_on(held) == ra.body.encode()
            client = f"{LO}:{held.getsockname()[1]}"

            def established() -> bool:
                return any(
                    "ESTABLISHED" in line and client in line and a in line
                    for line in k.adm("-Lnc").splitlines()
                )

            wait_for(established, 5, "ESTABLISHED entry", k)
            conns_a = k.stats(a)["conns"]
            assert conns_a >= 1

            # B added, C removed, D's scheduler and real servers changed; A untouched
            k.reload(conf_text(RELOAD_2, **values))
            k.wait_log("reloaded")
            second = {a: {ra.addr: 1}, b: {rb.addr: 1}, d: {rd1.addr: 4, rb.addr: 1}}
            wait_for(lambda: k.table() == second, 5, "second table", k)
            ln = k.adm("-Ln")
            assert listed(ln) == second
            assert f"TCP  {d} wlc" in ln and f"TCP  {a} rr" in ln
            assert get(ports["B"]) == rb.body
            with pytest.raises(OSError):
                get(ports["C"], timeout=2)

            # the connection through A survived: same socket, another request
            assert http_on(held) == ra.body.encode()
            assert established()
            assert k.stats(a)["conns"] == conns_a  # A's counters were kept

            # a file that does not parse: SIGHUP changes nothing, the daemon keeps running
            saved = k.adm("-S -n")
            k.reload(conf_text(RELOAD_2, **values).replace("lb_algo wlc", "lb_algo wlc {", 1))
            k.wait_log("reload refused")
            time.sleep(0.5)
            assert k.alive()
            assert k.adm("-S -n") == saved
            assert http_on(held) == ra.body.encode()
            assert established()
            assert get(ports["B"]) == rb.body
        finally:
            held.close()


# -- 8: alpha ------------------------------------------------------------------------------------

ALPHA = """
    virtual_server 127.0.0.1 $VPORT {
        delay_loop 1
        lb_algo rr
        lb_kind NAT
        protocol TCP
        alpha
        real_server 127.0.0.1 $RS1 {
            MISC_CHECK {
                misc_path "$SLOW"
                misc_timeout 5
            }
        }
        real_server 127.0.0.1 $RS2 {$TCP_CHECK
        }
    }
    virtual_server 127.0.0.1 $VPORT2 {
        delay_loop 1
        lb_algo rr
        lb_kind NAT
        protocol TCP
        real_server 127.0.0.1 $RS2 {$TCP_CHECK
        }
    }
"""


def test_alpha_servers_start_absent(tmp_path: Path, servers: Callable[..., RealServer]) -> None:
    vport, vport2 = 16700, 16703
    svc, svc2 = f"{VIP}:{vport}", f"{VIP}:{vport2}"
    rs1 = servers(16701)
    rs2 = servers(16702, start=False)  # not listening yet
    slow = script(tmp_path / "slow.sh", "sleep 3\nexit 0\n")
    conf = write_conf(
        tmp_path / "k.conf",
        ALPHA,
        VPORT=vport,
        VPORT2=vport2,
        RS1=rs1.port,
        RS2=rs2.port,
        SLOW=slow,
    )
    with keepalived(conf) as k:
        # the service is there at once, with no real server: the first checks have not
        # passed (rs1's takes 3 s); without alpha, rs2 starts present
        wait_for(lambda: vport in {int(s.split(":")[1]) for s in k.table()}, 10, "service", k)
        t0 = time.monotonic()
        first = k.table()
        assert first[svc] == {}, first
        assert first.get(svc2) in ({rs2.addr: 1}, {}), first
        # rs1 appears once its (slow) first check passes
        wait_for(lambda: k.pool(svc) == {rs1.addr: 1}, 10, "rs1 after its first check", k)
        assert time.monotonic() - t0 >= 1.0
        # rs2 (down) never appeared under alpha; without alpha it is removed after retries
        wait_for(lambda: k.pool(svc2) == {}, BOUND + SLACK + 2, "rs2 removed from svc2", k)
        assert "Removing service [127.0.0.1:16702] of VS TCP 127.0.0.1:16703" in k.log()
        assert "Removing service [127.0.0.1:16702] of VS TCP 127.0.0.1:16700" not in k.log()
        assert listed(k.adm("-Ln")) == {svc: {rs1.addr: 1}, svc2: {}}
        # rs2 starts listening: it appears in both
        rs2.start()
        wait_for(
            lambda: k.table() == {svc: {rs2.addr: 1, rs1.addr: 1}, svc2: {rs2.addr: 1}},
            DELAY_LOOP + CONNECT_TIMEOUT + SLACK + 2,
            "rs2 after its check passes",
            k,
        )
        assert {get(vport) for _ in range(4)} == {rs1.body, rs2.body}
