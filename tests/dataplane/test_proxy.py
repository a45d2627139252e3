"""The proxy data plane end to end: real nginx real servers, real sockets, pylvsadm."""

from __future__ import annotations

import os
import shlex
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator

import pytest

from pylvs.sched import base as sched_base
from pylvs.testing.backends import BackendUnavailable, NginxBackends
from pylvs.testing.daemon import RunningDaemon, pylvsd

B = [("127.0.0.1", 12001), ("127.0.0.1", 12002), ("127.0.0.1", 12003)]
PP = [("127.0.0.1", 12021), ("127.0.0.1", 12022)]
V6 = [("::1", 12031)]
VIP = "127.0.0.1"


@pytest.fixture(scope="module")
def nginx() -> Iterator[NginxBackends]:
    from pylvs.testing.backends import Backend

    servers = [Backend(a, p) for a, p in B + V6] + [Backend(a, p, True) for a, p in PP]
    try:
        with NginxBackends(servers) as n:
            yield n
    except BackendUnavailable as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs nginx: {e}")
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def director(nginx: NginxBackends) -> Iterator[RunningDaemon]:
    with pylvsd("--connect-timeout", "1.5", dataplane="proxy") as d:
        yield d


@pytest.fixture(autouse=True)
def clean(director: RunningDaemon) -> None:
    adm(director, "-C")


def adm(d: RunningDaemon, cmd: str) -> str:
    r = d.pylvsadm(*shlex.split(cmd))
    assert r.returncode == 0, (cmd, r.stderr)
    return r.stdout


def get(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return str(r.read().decode())


def service(
    d: RunningDaemon,
    port: int,
    sched: str = "rr",
    extra: str = "",
    backends: list[tuple[str, int]] = B,
    opts: str = "",
) -> str:
    adm(d, f"-A -t {VIP}:{port} -s {sched} {extra}")
    for a, p in backends:
        adm(d, f"-a -t {VIP}:{port} -r {a}:{p} -m {opts}")
    return f"http://{VIP}:{port}/"


def counts(d: RunningDaemon) -> dict[str, tuple[int, int]]:
    """-Ln parsed: real server -> (ActiveConn, InActConn)."""
    out = {}
    for line in adm(d, "-Ln").splitlines():
        if line.startswith("  -> ") and not line.startswith("  -> RemoteAddress"):
            f = line.split()
            out[f[1]] = (int(f[4]), int(f[5]))
    return out


def wait_until(cond: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def test_rr_order_and_every_scheduler(director: RunningDaemon) -> None:
    url = service(director, 11000)
    # The kernel adds a real server at the head: rr starts with the newest (12003).
    assert [get(url).split()[1] for _ in range(6)] == ["12003", "12002", "12001"] * 2
    for i, name in enumerate(sched_base.names()):
        port = 11100 + i
        u = service(director, port, name)
        seen = {get(u) for _ in range(6)}
        assert seen <= {f"backend {p}\n" for _, p in B}, name
        if name in ("sh", "dh", "mh", "lblc", "lblcr"):
            assert len(seen) == 1, name  # one client address, one destination address
    assert counts(director)[f"{VIP}:12001"] != (0, 0)


def test_connection_entries_follow_the_sockets(director: RunningDaemon) -> None:
    service(director, 11001, backends=B[:1])
    c = socket.create_connection((VIP, 11001))
    c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert b"backend 12001" in c.recv(4096)
    wait_until(lambda: "ESTABLISHED" in adm(director, "-Lnc"))
    assert counts(director)[f"{VIP}:12001"] == (1, 0)
    line = next(x for x in adm(director, "-Lnc").splitlines() if "ESTABLISHED" in x)
    assert line.split()[0] == "TCP" and line.split()[1].startswith("14:")  # 900 s counting down
    assert f":{c.getsockname()[1]}" in line and f"{VIP}:11001" in line and "127.0.0.1:12001" in line
    c.close()
    wait_until(lambda: "TIME_WAIT" in adm(director, "-Lnc"))
    assert counts(director)[f"{VIP}:12001"] == (0, 1)
    stats = adm(director, "-Ln --stats").splitlines()
    assert any(
        x.split()[1] == "127.0.0.1:11001" and x.split()[2] == "1"
        for x in stats
        if x.startswith("TCP")
    )


def test_persistence(director: RunningDaemon) -> None:
    url = service(director, 11002, "rr", "-p 60")
    assert len({get(url) for _ in range(6)}) == 1
    assert "NONE" in adm(director, "-Lnc") or "ASSURED" in adm(director, "-Lnc")


def test_weight_zero_drains(director: RunningDaemon) -> None:
    service(director, 11003, backends=B[:2])
    held = socket.create_connection((VIP, 11003))  # rr: goes to 12002
    held.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert b"backend 12002" in held.recv(4096)
    adm(director, f"-e -t {VIP}:11003 -r 127.0.0.1:12002 -m -w 0")
    assert {get(f"http://{VIP}:11003/") for _ in range(4)} == {"backend 12001\n"}
    held.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # the old connection still works
    assert b"backend 12002" in held.recv(4096)
    held.close()


def test_thresholds(director: RunningDaemon) -> None:
    service(director, 11004, backends=B[:1], opts="-x 1")
    adm(director, f"-a -t {VIP}:11004 -r 127.0.0.1:12002 -m")
    held = socket.create_connection((VIP, 11004))  # to 12002 (the newest), now overloaded? no:
    held.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    first = held.recv(4096)
    assert b"backend 12002" in first
    c2 = socket.create_connection((VIP, 11004))  # to 12001, which reaches its -x 1
    c2.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert b"backend 12001" in c2.recv(4096)
    # 12001 is overloaded while c2 is open: new connections all go to 12002.
    assert {get(f"http://{VIP}:11004/") for _ in range(4)} == {"backend 12002\n"}
    held.close()
    c2.close()


def test_delete_real_server_under_load(director: RunningDaemon) -> None:
    url = service(director, 11005)
    errors: list[str] = []
    served: list[str] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            try:
                served.append(get(url, timeout=3).split()[1])
            except OSError as e:
                errors.append(repr(e))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    adm(director, f"-d -t {VIP}:11005 -r 127.0.0.1:12002")
    mark = len(served)
    time.sleep(4.0)
    stop.set()
    for t in threads:
        t.join(10)
    # Only requests that were in flight to the deleted server may fail (with the default
    # expire_nodest_conn=0 their packets are held, as the kernel drops them): at most one per
    # client thread.  Everything sent to the other servers succeeded.
    assert len(errors) <= len(threads), errors
    after = served[mark + 4 :]
    assert after and "12002" not in after
    assert {"12001", "12003"} <= set(after)


def test_udp_flows_and_one_packet(director: RunningDaemon) -> None:
    servers = []
    for port in (12101, 12102):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((VIP, port))
        servers.append(s)

    def echo(s: socket.socket) -> None:
        while True:
            try:
                data, peer = s.recvfrom(2048)
            except OSError:
                return
            s.sendto(data + b" from %d" % s.getsockname()[1], peer)

    for s in servers:
        threading.Thread(target=echo, args=(s,), daemon=True).start()
    try:
        adm(director, f"-A -u {VIP}:11053 -s rr")
        for p in (12101, 12102):
            adm(director, f"-a -u {VIP}:11053 -r 127.0.0.1:{p} -m")
        clients = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
        servers_seen = []
        for i, c in enumerate(clients):
            c.settimeout(3)
            seen = set()
            for n in range(3):
                c.sendto(b"c%d-%d" % (i, n), (VIP, 11053))
                data, _ = c.recvfrom(2048)
                assert data.startswith(b"c%d-%d from " % (i, n))  # back to the right client
                seen.add(data.split()[-1])
            assert len(seen) == 1  # one flow per client, sticky to its server
            servers_seen.append(seen.pop())
        assert sorted(servers_seen) == [b"12101", b"12102"]
        lnc = [x for x in adm(director, "-Lnc").splitlines() if x.startswith("UDP")]
        assert len(lnc) == 2 and all(x.split()[2] == "UDP" for x in lnc)
        assert all(v == (0, 1) for v in counts(director).values())  # UDP is never "active"
        adm(director, f"-E -u {VIP}:11053 -s rr -o")
        # A new client (an existing flow keeps its entry until it expires, as in the kernel).
        c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        c.settimeout(3)
        clients.append(c)
        got = set()
        for n in range(4):
            c.sendto(b"ops%d" % n, (VIP, 11053))
            got.add(c.recvfrom(2048)[0].split()[-1])
        assert got == {b"12101", b"12102"}  # each datagram scheduled on its own
        for c in clients:
            c.close()
    finally:
        for s in servers:
            s.close()


def test_proxy_protocol_seen_by_nginx(director: RunningDaemon, nginx: NginxBackends) -> None:
    adm(director, f"-A -t {VIP}:11006 -s rr")
    adm(director, f"-a -t {VIP}:11006 -r 127.0.0.1:12021 -m --proxy-protocol v1")
    adm(director, f"-a -t {VIP}:11006 -r 127.0.0.1:12022 -m --proxy-protocol v2")
    ports = []
    for _ in range(2):
        c = socket.create_connection((VIP, 11006))
        ports.append(c.getsockname()[1])
        c.sendall(b"GET /client HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        body = b""
        while chunk := c.recv(4096):
            body += chunk
        c.close()
        # nginx answers with the peer the PROXY header announced: the real client.
        assert body.endswith(f"127.0.0.1 {ports[-1]}\n".encode())
    assert ("127.0.0.1", ports[1]) in nginx.proxy_clients(PP[0], wait_for=1)
    assert ("127.0.0.1", ports[0]) in nginx.proxy_clients(PP[1], wait_for=1)


def test_ipv6_service(director: RunningDaemon) -> None:
    adm(director, "-A -t [::1]:11007 -s rr")
    adm(director, "-a -t [::1]:11007 -r [::1]:12031 -m")
    assert get("http://[::1]:11007/") == "backend 12031\n"
    assert "[::1]:12031" in adm(director, "-Ln")


def test_faults_reset_the_client(director: RunningDaemon) -> None:
    # Refused: nothing listens on 12099.
    service(director, 11008, backends=[("127.0.0.1", 12099)])
    c = socket.create_connection((VIP, 11008))
    c.settimeout(3)
    t0 = time.monotonic()
    with pytest.raises((ConnectionResetError, ConnectionAbortedError)):
        c.sendall(b"x")
        if c.recv(10) == b"":
            raise ConnectionResetError
    assert time.monotonic() - t0 < 1.5
    c.close()
    # Silent: a listener whose accept queue is full drops the SYN; the connect timeout (1.5 s)
    # resets the client.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 12098))
    silent.listen(0)
    fillers = []
    try:
        for _ in range(3):
            f = socket.socket()
            f.setblocking(False)
            f.connect_ex(("127.0.0.1", 12098))
            fillers.append(f)
        time.sleep(0.2)
        service(director, 11009, backends=[("127.0.0.1", 12098)])
        c = socket.create_connection((VIP, 11009))
        c.settimeout(5)
        t0 = time.monotonic()
        try:
            data = c.recv(10)
        except ConnectionResetError:
            data = b""
        elapsed = time.monotonic() - t0
        assert data == b"" and 1.0 < elapsed < 3.5
        c.close()
    finally:
        for f in fillers:
            f.close()
        silent.close()


def test_connection_limit(nginx: NginxBackends) -> None:
    with pylvsd("--max-conns", "2", dataplane="proxy") as d:
        adm(d, f"-A -t {VIP}:11010 -s rr")
        adm(d, f"-a -t {VIP}:11010 -r 127.0.0.1:12001 -m")
        held = [socket.create_connection((VIP, 11010)) for _ in range(2)]
        for h in held:
            h.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert b"backend" in h.recv(4096)
        third = socket.create_connection((VIP, 11010))  # queued by the kernel, not accepted
        third.settimeout(1.0)
        third.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        with pytest.raises(TimeoutError):
            third.recv(4096)
        held[0].close()
        third.settimeout(5)
        assert b"backend" in third.recv(4096)
        for s in [*held, third]:
            s.close()
