"""pylvsadm against a real pylvsd (--dataplane none): ipvsadm's behaviour end to end."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from pylvs.testing.daemon import RunningDaemon, pylvsd

SEEDS = [
    line.split()[1:] if line.startswith("ipvsadm ") else line.split()
    for line in (Path(__file__).parent / "seed_commands.txt").read_text().splitlines()
    if line.strip()
]


@pytest.fixture(scope="module")
def daemon() -> Iterator[RunningDaemon]:
    with pylvsd() as d:
        yield d


@pytest.fixture(autouse=True)
def clean(daemon: RunningDaemon) -> None:
    assert daemon.pylvsadm("-C").returncode == 0


def ok(d: RunningDaemon, cmd: str, stdin: str | None = None) -> str:
    r = d.pylvsadm(*shlex.split(cmd), stdin=stdin)
    assert r.returncode == 0, (cmd, r.stderr)
    return r.stdout


def refused(d: RunningDaemon, cmd: str, message: str, code: int) -> None:
    before = ok(d, "-S -n")
    r = d.pylvsadm(*shlex.split(cmd))
    assert (r.returncode, r.stderr.rstrip("\n")) == (code, message), cmd
    assert ok(d, "-S -n") == before


def test_listing_matches_ipvsadm_text(daemon: RunningDaemon) -> None:
    ok(daemon, "-A -t 10.0.0.1:80 -s wrr -p 120 -M 255.255.255.0")
    ok(daemon, "-a -t 10.0.0.1:80 -r 192.168.0.2:8080 -m -w 3")
    ok(daemon, "-a -t 10.0.0.1:80 -r 192.168.0.3 -g -w 0")
    ok(daemon, "-A -u 10.0.0.1:53 -s sh -b sh-port -o")
    ok(daemon, "-A -f 7 -s rr")
    ok(daemon, "-a -f 7 -r 192.168.0.9 -i --tun-type gue --tun-port 6080")
    expected = (
        "IP Virtual Server version 1.2.1 (size=4096)\n"
        "Prot LocalAddress:Port Scheduler Flags\n"
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
        "TCP  10.0.0.1:80 wrr persistent 120 mask 255.255.255.0\n"
        "  -> 192.168.0.2:8080             Masq    3      0          0         \n"
        "  -> 192.168.0.3:80               Route   0      0          0         \n"
        "UDP  10.0.0.1:53 sh (sh-port) ops\n"
        "FWM  7 rr\n"
        "  -> 192.168.0.9:0                Tunnel  1      0          0         \n"
    )
    assert ok(daemon, "-L -n") == expected
    assert ok(daemon, "-Ln --timeout") == "Timeout (tcp tcpfin udp): 900 120 300\n"
    ok(daemon, "--set 1200 5 60")
    assert ok(daemon, "-Ln --timeout") == "Timeout (tcp tcpfin udp): 1200 5 60\n"
    ok(daemon, "--set 900 120 300")
    assert ok(daemon, "-L -n -t 10.0.0.1:80").splitlines()[-1].startswith("  -> 192.168.0.3:80")
    assert ok(daemon, "-Lnc") == (
        "IPVS connection entries\npro expire state       source             virtual            "
        "destination\n"
    )


def test_seed_commands_run_unchanged(daemon: RunningDaemon) -> None:
    # The seeds show alternatives on the same addresses (NAT, then DR, then TUN for the same
    # real servers): each article's block runs on a clean table, as in the articles.
    blocks: list[list[list[str]]] = [[]]
    for args in SEEDS:
        if args in (["-S"], ["-R"], ["-C"]) or (
            args[:1] == ["-a"] and "-i" in args and blocks[-1] and "-g" in blocks[-1][-1]
        ):
            blocks.append([])
            if args != ["-a", "-t", "1.65.15.145:80", "-r", "1.65.15.143:80", "-i"]:
                continue
            blocks[-1].append(["-A", "-t", "1.65.15.145:80", "-s", "rr"])
        blocks[-1].append(args)
    ran = 0
    for block in blocks:
        ok(daemon, "-C")
        for args in block:
            r = daemon.pylvsadm(*args)
            assert r.returncode == 0, (args, r.stderr)
            ran += 1
    assert ran >= len(SEEDS) - 3


def test_save_clear_restore_round_trip(daemon: RunningDaemon) -> None:
    for cmd in (
        "-A -t 10.0.0.1:80 -s wlc -p 300",
        "-a -t 10.0.0.1:80 -r 192.168.0.2:80 -m -w 2",
        "-a -t 10.0.0.1:80 -r 192.168.0.3:80 -m",
        "-A -t [2001:db8::1]:443 -s mh -b mh-fallback,mh-port",
        "-a -t [2001:db8::1]:443 -r [2001:db8::10]:443 -m -x 100 -y 50",
        "-A --sctp-service 10.0.0.2:5060 -s lc",
        "-A -f 12 -6 -s sh -p -M 64",
        "-A -t 10.0.0.3:0 -s rr -p 60",
        "-a -t 10.0.0.3:0 -r 192.168.1.1:0 -g",
        "-a -t 10.0.0.1:80 -r 192.168.0.4:80 --fullnat --proxy-protocol v2",
        "--add-laddr -t 10.0.0.1:80 -z 10.9.0.1",
    ):
        ok(daemon, cmd)
    saved = ok(daemon, "-S -n")
    assert "-A -t 10.0.0.1:80 -s wlc -p 300" in saved
    assert "--add-laddr -t 10.0.0.1:80 -z 10.9.0.1" in saved
    ok(daemon, "-C")
    assert ok(daemon, "-S -n") == ""
    ok(daemon, "-R", stdin=saved)
    assert ok(daemon, "-S -n") == saved


def test_restore_is_all_or_nothing(daemon: RunningDaemon) -> None:
    ok(daemon, "-A -t 10.0.0.1:80 -s rr")
    before = ok(daemon, "-S -n")
    bad = "-A -t 10.0.0.2:80 -s rr\n-a -t 10.0.0.2:80 -r 192.168.0.2 -m\n-A -t 10.0.0.1:80 -s rr\n"
    r = daemon.pylvsadm("-R", stdin=bad)
    assert r.returncode == 255
    assert r.stderr == "Service already exists (line 3; nothing was restored)\n"
    assert ok(daemon, "-S -n") == before
    r = daemon.pylvsadm("-R", stdin="-A -t 10.0.0.2:80 -s rr\n-a -t 10.0.0.2:80 -r nonsense!! -m\n")
    assert r.returncode != 0 and ok(daemon, "-S -n") == before


def test_refusals_print_ipvsadm_messages(daemon: RunningDaemon) -> None:
    ok(daemon, "-A -t 10.0.0.1:80 -s rr")
    ok(daemon, "-a -t 10.0.0.1:80 -r 192.168.0.2 -m")
    refused(daemon, "-A -t 10.0.0.1:80 -s rr", "Service already exists", 255)
    refused(daemon, "-A -t 10.0.0.2:80 -s nosuch", "Scheduler or persistence engine not found", 255)
    refused(daemon, "-E -t 10.0.0.9:80 -s rr", "No such service", 255)
    refused(daemon, "-D -t 10.0.0.9:80", "No such service", 255)
    refused(daemon, "-a -t 10.0.0.9:80 -r 192.168.0.2 -m", "Service not defined", 255)
    refused(daemon, "-a -t 10.0.0.1:80 -r 192.168.0.2 -m", "Destination already exists", 255)
    refused(daemon, "-d -t 10.0.0.1:80 -r 192.168.0.7", "No such destination", 255)
    refused(daemon, "-e -t 10.0.0.1:80 -r 192.168.0.7 -m", "No such destination", 255)
    refused(daemon, "-A -t 10.0.0.3:0 -s rr", "Zero port specified for non-persistent service", 2)
    refused(daemon, "-a -t 10.0.0.1:80 -r 192.168.0.5 -w 70000", "illegal weight specified", 2)
    refused(daemon, "-A -t 10.0.0.300:80", "illegal virtual server address[:port] specified", 2)
    refused(daemon, "-L -n -t 10.0.0.9:80", "No such service", 1)
    r = daemon.pylvsadm("-A", "-t", "10.0.0.4:80", "-c")
    assert r.returncode == 2 and "Illegal" in r.stderr


def default_interface() -> str:
    """The interface of the default route (the sync daemon now really opens it)."""
    import json
    import subprocess

    out = subprocess.run(
        ["ip", "-j", "route", "show", "default"], capture_output=True, text=True
    ).stdout
    routes = json.loads(out or "[]")
    return str(routes[0]["dev"]) if routes else "lo"


def test_daemon_commands(daemon: RunningDaemon) -> None:
    dev = default_interface()
    ok(daemon, f"--start-daemon master --mcast-interface {dev} --syncid 7")
    out = ok(daemon, "-L --daemon")
    assert out.startswith(f"master sync daemon (mcast={dev}, syncid=7")
    r = daemon.pylvsadm("--start-daemon", "master", "--mcast-interface", dev)
    assert (r.returncode, r.stderr) == (255, "Daemon has already run\n")
    ok(daemon, "--stop-daemon master")
    r = daemon.pylvsadm("--stop-daemon", "master")
    assert (r.returncode, r.stderr) == (255, "No daemon is running\n")


def test_proxy_defaults_differ(tmp_path: Path) -> None:
    with pylvsd(dataplane="proxy") as d:
        ok(d, "-A -t 127.0.0.1:18080 -s rr")
        ok(d, "-a -t 127.0.0.1:18080 -r 127.0.0.1:18081")
        assert "Masq" in ok(d, "-Ln")
        r = d.pylvsadm("-a", "-t", "127.0.0.1:18080", "-r", "127.0.0.2", "-g")
        assert r.returncode == 255 and "need --dataplane packet" in r.stderr


def test_no_daemon(tmp_path: Path) -> None:
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "-m", "pylvs.cli.pylvsadm", "--socket", str(tmp_path / "none"), "-Ln"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 2 and r.stderr.startswith("Can't initialize ipvs:")
