"""Connection sync between two real pylvsd in network namespaces.

One bridged LAN ``lan`` (tests.lab): client 10.0.0.2, the master director 10.0.0.1 (and
fd00::1) with the DR VIP 10.0.0.100 (``pylvsd --dataplane packet``), the backup director
10.0.0.3 (and fd00::3)
(``pylvsd --dataplane none``: it only holds the table), rs1 10.0.0.11 and rs2 10.0.0.12
prepared with ``pylvs realserver start --mode dr``.  Both directors get the same rules;
``pylvsadm --start-daemon master|backup --mcast-interface lan`` starts the sync daemons
(IPVS sync protocol v1 to 224.0.0.81:8848 over the bridge).  Real HTTP connections through
the master's VIP must then show up in the backup's ``pylvsadm -Lnc`` with the master's
state, and ``pylvsadm -L --daemon`` prints what ipvsadm prints (list_daemon()).
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from pylvs.cli.client import Client, wait_for_daemon
from tests.dataplane.packet_lab import (
    TOOLS,
    ConnRow,
    Director,
    HttpConn,
    http_once,
    python_env,
    realserver,
    start_pylvsd,
    wait_until,
)
from tests.lab import Lab, Topology, require_root

CIP, DIP, BIP, VIP = "10.0.0.2", "10.0.0.1", "10.0.0.3", "10.0.0.100"
DIP6, BIP6 = "fd00::1", "fd00::3"  # the sync daemons may talk IPv6 multicast too
RIPS = {"rs1": "10.0.0.11", "rs2": "10.0.0.12"}
RULES = (f"-A -t {VIP}:80 -s rr", *(f"-a -t {VIP}:80 -r {rip}:80 -g" for rip in RIPS.values()))
SYNC_WAIT = 6.0  # a message waits up to 2 s (IPVS_SYNC_FLUSH_TIME) for company


def topology() -> Topology:
    return Topology(
        nodes=["client", "director", "backup", *RIPS],
        lans={
            "lan": [
                f"client:{CIP}/24",
                f"director:{DIP}/24,{VIP}/32,{DIP6}/64",
                f"backup:{BIP}/24,{BIP6}/64",
                *(f"{n}:{a}/24" for n, a in RIPS.items()),
            ]
        },
        sysctls={"director": {"net.ipv4.ip_forward": "1"}},
    )


@dataclass
class Backup:
    """``pylvsd --dataplane none`` in the backup namespace."""

    proc: subprocess.Popen[str]
    socket: str
    log_path: Path

    def adm_result(self, *args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "pylvs.cli.pylvsadm", *args]
        env = python_env(PYLVS_SOCKET=self.socket)
        return subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env)

    def adm(self, *args: str, stdin: str | None = None) -> str:
        argv = [sys.executable, "-m", "pylvs.cli.pylvsadm", *args]
        env = python_env(PYLVS_SOCKET=self.socket)
        r = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=30, env=env)
        if r.returncode != 0:
            log = self.log_path.read_text(errors="replace")[-1500:]
            raise AssertionError(f"backup: pylvsadm {' '.join(args)}: {r.stderr}\n{log}")
        return r.stdout

    def conns(self) -> list[ConnRow]:
        return [ConnRow(*f) for f in (x.split() for x in self.adm("-Lnc").splitlines()[2:])]


@contextmanager
def backup_pylvsd(lab: Lab) -> Iterator[Backup]:
    sock = str(lab.new_path("backup", ".sock"))
    log_path = lab.new_path("backup", ".log")
    argv = [sys.executable, "-m", "pylvs.daemon.main", "--dataplane", "none"]
    argv += ["--socket", sock, "--log-level", "debug"]
    with open(log_path, "w") as out:
        proc = lab.popen("backup", argv, stdout=out, stderr=out, env=python_env())
    try:
        wait_for_daemon(sock, proc, timeout=20)
        yield Backup(proc, sock, log_path)
        assert proc.poll() is None, f"backup pylvsd died: {log_path.read_text()[-2000:]}"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Pair:
    lab: Lab
    master: Director
    backup: Backup


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    require_root(*TOOLS)
    with Lab(topology()) as lab:
        for rs in RIPS:
            realserver(lab, rs, VIP, "dr")
            lab.http_server(rs, 80, rs)
        master = start_pylvsd(lab, ["lan"])
        try:
            with backup_pylvsd(lab) as backup:
                yield Pair(lab, master, backup)
        finally:
            master.stop(check=False)


def rules(p: Pair) -> None:
    """Same rules on both, no daemons running."""
    p.master.setup(*RULES)
    p.backup.adm("-R", stdin="".join(f"{x}\n" for x in ("-C", *RULES)))
    for d in (p.master, p.backup):
        for state in ("master", "backup"):
            with contextlib.suppress(AssertionError):
                d.adm("--stop-daemon", state)


def key(r: ConnRow) -> tuple[str, str, str]:
    return (r.source, r.virtual, r.dest)


def test_daemon_listing_and_refusals(pair: Pair) -> None:
    rules(pair)
    m, b = pair.master, pair.backup
    r = b.adm_result("--start-daemon", "backup", "--mcast-interface", "nosuch0")
    assert (r.returncode, r.stderr) == (255, "No such device\n")
    assert b.adm("-L", "--daemon") == ""
    m.adm("--start-daemon", "master", "--mcast-interface", "lan", "--syncid", "7")
    b.adm("--start-daemon", "backup", "--mcast-interface", "lan", "--syncid", "7")
    # list_daemon(): "%s sync daemon (mcast=%s, syncid=%d" + maxlen, group, port, ttl as the
    # kernel reports them (sync_maxlen: 1500 - 28 on a master, the MTU (1500) - 28 on a backup).
    assert m.adm("-L", "--daemon") == (
        "master sync daemon (mcast=lan, syncid=7, maxlen=1472, group=224.0.0.81, "
        "port=8848, ttl=1)\n"
    )
    assert b.adm("-L", "--daemon") == (
        "backup sync daemon (mcast=lan, syncid=7, maxlen=1472, group=224.0.0.81, "
        "port=8848, ttl=1)\n"
    )
    r = b.adm_result("--start-daemon", "backup", "--mcast-interface", "lan")
    assert (r.returncode, r.stderr) == (255, "Daemon has already run\n")
    # Both at once on one director, as the kernel allows; options as given (maxlen clamped
    # to at least 1024 on a backup).
    m.adm(
        "--start-daemon",
        "backup",
        "--mcast-interface",
        "lan",
        "--syncid",
        "3",
        "--sync-maxlen",
        "100",
        "--mcast-port",
        "9000",
        "--mcast-ttl",
        "2",
    )
    assert m.adm("-L", "--daemon").splitlines() == [
        "master sync daemon (mcast=lan, syncid=7, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)",
        "backup sync daemon (mcast=lan, syncid=3, maxlen=1024, group=224.0.0.81, port=9000, ttl=2)",
    ]
    m.adm("--stop-daemon", "backup")
    m.adm("--stop-daemon", "master")
    b.adm("--stop-daemon", "backup")
    r = b.adm_result("--stop-daemon", "backup")
    assert (r.returncode, r.stderr) == (255, "No daemon is running\n")
    assert Client(b.socket).get("/v1/daemons") == []


def test_master_connections_appear_on_the_backup(pair: Pair) -> None:
    rules(pair)
    m, b = pair.master, pair.backup
    m.adm("--start-daemon", "master", "--mcast-interface", "lan", "--syncid", "7")
    b.adm("--start-daemon", "backup", "--mcast-interface", "lan", "--syncid", "7")
    with HttpConn(pair.lab, "client", VIP, 80) as c:
        c.get()
        c.get()  # SYN, ACK, request, ACK, request...: synced at the 3rd client packet
        mine = f"{CIP}:{c.local_port}"

        def synced() -> list[ConnRow]:
            return [r for r in b.conns() if r.source == mine]

        wait_until(lambda: synced(), "the connection on the backup", SYNC_WAIT, b.conns)
        [row] = synced()
        [mrow] = [r for r in m.conns() if r.source == mine]
        assert (row.proto, row.state, key(row)) == ("TCP", "ESTABLISHED", key(mrow))
        minutes, seconds = map(int, row.expire.split(":"))
        assert 14 * 60 <= minutes * 60 + seconds <= 15 * 60  # the master's 900 s timeout
        rip = row.dest.split(":")[0]
        assert [ln.split()[-2:] for ln in b.adm("-Ln").splitlines() if f"{rip}:80" in ln] == [
            ["1", "0"]  # ActiveConn 1, InActConn 0, as on the master
        ]
    # Closing is a change of state: synced at once (then flushed within 2 s).
    wait_until(
        lambda: (
            [r.state for r in b.conns() if r.source == mine]
            == [r.state for r in m.conns() if r.source == mine]
            != ["ESTABLISHED"]
        ),
        "the closing state on the backup",
        SYNC_WAIT,
        lambda: (b.conns(), m.conns()),
    )


def test_many_short_connections(pair: Pair) -> None:
    rules(pair)
    m, b = pair.master, pair.backup
    m.adm("--start-daemon", "master", "--mcast-interface", "lan")  # syncid 0
    b.adm("--start-daemon", "backup", "--mcast-interface", "lan", "--syncid", "0")
    ports = {http_once(pair.lab, "client", VIP, 80).local_port for _ in range(20)}
    want = {(f"{CIP}:{p}", f"{VIP}:80") for p in ports}

    def have() -> set[tuple[str, str]]:
        return {(r.source, r.virtual) for r in b.conns()} & want

    wait_until(lambda: have() == want, "20 connections on the backup", SYNC_WAIT, have)
    master_rows = {key(r): r.state for r in m.conns() if (r.source, r.virtual) in want}
    wait_until(
        lambda: (
            {key(r): r.state for r in b.conns() if (r.source, r.virtual) in want} == master_rows
        ),
        "the same real servers and states as the master",
        SYNC_WAIT,
        b.conns,
    )


def test_other_syncid_is_ignored(pair: Pair) -> None:
    rules(pair)
    m, b = pair.master, pair.backup
    m.adm("--start-daemon", "master", "--mcast-interface", "lan", "--syncid", "7")
    b.adm("--start-daemon", "backup", "--mcast-interface", "lan", "--syncid", "9")
    before = {key(r) for r in b.conns()}
    ports = [http_once(pair.lab, "client", VIP, 80).local_port for _ in range(3)]
    time.sleep(3.0)  # the master flushed what it had (2 s); the backup must not show it
    mine = {f"{CIP}:{p}" for p in ports}
    assert {r.source for r in m.conns()} >= mine
    assert not [r for r in b.conns() if r.source in mine and key(r) not in before]


def test_ipv6_multicast_group(pair: Pair) -> None:
    rules(pair)
    m, b = pair.master, pair.backup
    group = ["--mcast-group", "ff02::8848", "--mcast-interface", "lan"]
    m.adm("--start-daemon", "master", *group)
    b.adm("--start-daemon", "backup", *group)
    for d, state in ((m, "master"), (b, "backup")):
        assert d.adm("-L", "--daemon") == (
            f"{state} sync daemon (mcast=lan, syncid=0, maxlen=1452, group=ff02::8848, "
            "port=8848, ttl=1)\n"  # 1500 - 40 - 8
        )
    with HttpConn(pair.lab, "client", VIP, 80) as c:
        c.get()
        c.get()
        mine = f"{CIP}:{c.local_port}"
        wait_until(
            lambda: [r.state for r in b.conns() if r.source == mine] == ["ESTABLISHED"],
            "the connection on the backup",
            SYNC_WAIT,
            b.conns,
        )
