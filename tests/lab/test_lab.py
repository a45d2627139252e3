"""Tests of the namespace lab fixture: it builds what it says, serves, captures, and cleans up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab import Lab, LabCommandError, LabError, Topology, require_root
from tests.lab.markers import MARKER_DIR
from tests.lab.netns import list_netns

REPO = Path(__file__).resolve().parents[2]

ROUTED = Topology(
    nodes=["client", "router", "server"],
    lans={
        "left": ["client:10.1.0.2/24", "router:10.1.0.1/24"],
        "right": ["router:10.2.0.1/24", "server:10.2.0.2/24"],
    },
    routes={"client": ["default via 10.1.0.1"], "server": ["default via 10.2.0.1"]},
    sysctls={"router": {"net.ipv4.ip_forward": "1"}},
)

BRIDGED = Topology(
    nodes=["a", "b", "c"],
    lans={"lan": ["a:10.9.0.1/24", "b:10.9.0.2/24", "c:10.9.0.3/24"]},
)


@pytest.fixture
def root() -> None:
    require_root("tcpdump", "ethtool", "nginx", "curl", "ping")


def root_links() -> dict[str, str]:
    """Interfaces of this (the root) namespace: name -> MAC."""
    out = subprocess.run(["ip", "-j", "link"], capture_output=True, text=True, check=True).stdout
    return {str(link["ifname"]): str(link.get("address", "")) for link in json.loads(out)}


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def assert_gone(lab: Lab, links_before: dict[str, str]) -> None:
    assert list_netns(lab.prefix) == []
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    assert lab.prefix not in netns.stdout
    # Other test runs may add interfaces here meanwhile: look for ours (names, MAC prefix).
    links = root_links()
    new = set(links) - set(links_before)
    ours = set(lab.topo.lans) | {f"{lan}+" for lan in lab.topo.lans}
    assert not {n for n in new if n in ours or n.rstrip("0123456789") in ours}, new
    mac_prefix = lab.assigned_mac(lab.topo.members[0].node, lab.topo.members[0].lan)[:9]
    assert not [n for n, mac in links.items() if mac.startswith(mac_prefix)]
    assert not (MARKER_DIR / lab.prefix).exists()
    assert not lab.tmpdir.exists()
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True)
    assert str(lab.tmpdir) not in ps.stdout
    assert lab.prefix not in ps.stdout


@pytest.fixture
def routed(root: None) -> Iterator[Lab]:
    with Lab(ROUTED) as lab:
        yield lab


# -- topology validation (no root needed) -------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"nodes": ["a", "b"], "lans": {"l": ["a:10.0.0.300/24", "b:10.0.0.2/24"]}}, "bad address"),
        ({"nodes": ["a"], "lans": {"l": ["a:10.0.0.1/24", "x:10.0.0.2/24"]}}, "unknown node"),
        ({"nodes": ["a", "a"]}, "listed twice"),
        ({"nodes": ["-a"]}, "bad node name"),
        ({"nodes": ["a", "b"], "lans": {"sixteen-chars-xx": ["a", "b"]}}, "bad LAN name"),
        ({"nodes": ["a", "b"], "lans": {"lo": ["a", "b"]}}, "bad LAN name"),
        ({"nodes": ["a", "b"], "lans": {"l": ["a", "a"]}}, "listed twice"),
        ({"nodes": ["a"], "routes": {"b": ["default via 10.0.0.1"]}}, "unknown node"),
        ({"nodes": ["a"], "sysctls": {"b": {"net.ipv4.ip_forward": "1"}}}, "unknown node"),
    ],
)
def test_topology_rejects_bad_descriptions(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Topology(**kwargs)  # type: ignore[arg-type]


def test_topology_members_and_bridging() -> None:
    topo = Topology(
        nodes=["d", "r1", "r2"],
        lans={"ext": ["d:10.0.0.1/24,10.0.0.100/24", "r1"], "int": ["d", "r1", "r2"]},
    )
    assert not topo.bridged("ext") and topo.bridged("int")
    d = topo.member("d", "ext")
    assert [str(a) for a in d.addresses] == ["10.0.0.1/24", "10.0.0.100/24"]
    assert topo.member("r2", "int").index == 3
    assert not topo.wants_ipv6
    with pytest.raises(KeyError):
        topo.member("r2", "ext")


def test_require_root_skips_or_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="not running as root"):
        require_root()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        require_root()


def test_require_root_names_missing_programs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no-such-program-xyz"):
        require_root("no-such-program-xyz")


# -- building and serving ------------------------------------------------------------------


def test_routed_client_fetches_and_servers_see_its_address(routed: Lab) -> None:
    lab = routed
    assert routed.build_seconds < 3.0, f"building took {routed.build_seconds:.2f} s"
    assert lab.ns("server") == f"{lab.prefix}-server"
    assert lab.iface("router", "right") == "right"
    assert lab.addr("server", "right") == "10.2.0.2"

    lab.http_server("server", port=80, name="srv")
    name, peer, port = lab.http_get("client", "http://10.2.0.2/").split()
    assert (name, peer) == ("srv", "10.1.0.2")
    assert 1024 <= int(port) <= 65535

    ng = lab.nginx("server", port=8080, body="ng")
    assert lab.http_get("client", "http://10.2.0.2:8080/") == "ng\n"
    assert ng.clients(min_lines=1) == ["10.1.0.2"]
    assert ng.access_log()[0].endswith('200 "GET / HTTP/1.1"')

    lab.udp_server("server", port=53, name="dns")
    assert lab.udp_ask("client", "10.2.0.2", 53).split()[:2] == ["dns", "10.1.0.2"]
    reply = lab.run("client", ["ping", "-c1", "-W2", "10.2.0.2"], check=True)
    assert "1 received" in reply.stdout


def test_http_server_keepalive_and_connection_close(routed: Lab) -> None:
    routed.http_server("server", port=80)
    url = "http://10.2.0.2/"
    kept = routed.http_get("client", url, args=[url]).splitlines()
    assert len(kept) == 2 and kept[0] == kept[1], "curl should reuse the keep-alive connection"
    closed = routed.http_get("client", url, args=["-H", "Connection: close", url]).splitlines()
    assert len(closed) == 2 and closed[0] != closed[1], "Connection: close must close"
    head = routed.run("client", ["curl", "-sSi", "-H", "Connection: close", url], check=True)
    assert "Connection: close" in head.stdout


def test_router_without_forwarding_drops(root: None) -> None:
    topo = Topology(nodes=ROUTED.nodes, lans=ROUTED.lans, routes=ROUTED.routes)
    with Lab(topo) as lab:
        lab.http_server("server")
        with pytest.raises(AssertionError, match="curl"):
            lab.http_get("client", "http://10.2.0.2/", timeout=0.5)


def test_bridged_lan_members_reach_each_other(root: None) -> None:
    with Lab(BRIDGED) as lab:
        for node in BRIDGED.nodes:
            lab.http_server(node)
        for src in BRIDGED.nodes:
            for dst in BRIDGED.nodes:
                if src == dst:
                    continue
                target = lab.addr(dst, "lan")
                lab.run(src, ["ping", "-c1", "-W2", target], check=True)
                body = lab.http_get(src, f"http://{target}/")
                assert body.split()[:2] == [dst, lab.addr(src, "lan")]
        links = json.loads(lab.run_ns(lab.switch_ns, ["ip", "-j", "link"], check=True).stdout)
        ports = sorted(str(x["ifname"]) for x in links if x.get("master") == "lan")
        assert ports == [lab.port(n, "lan") for n in BRIDGED.nodes] == ["lan+1", "lan+2", "lan+3"]


def test_ipv6_lan(root: None) -> None:
    topo = Topology(nodes=["a", "b"], lans={"v6": ["a:fd00::1/64", "b:fd00::2/64"]})
    with Lab(topo) as lab:
        lab.http_server("b", bind="::")
        assert lab.http_get("a", "http://[fd00::2]/").split()[:2] == ["b", "fd00::1"]


def test_parallel_labs_do_not_collide(root: None) -> None:
    with Lab(BRIDGED) as one, Lab(BRIDGED) as two:
        assert one.prefix != two.prefix
        one.http_server("b", name="one")
        two.http_server("b", name="two")
        assert one.http_get("a", "http://10.9.0.2/").startswith("one 10.9.0.1 ")
        assert two.http_get("a", "http://10.9.0.2/").startswith("two 10.9.0.1 ")


def test_macs_are_fixed_and_reported(routed: Lab) -> None:
    mac = routed.mac("server", "right")
    assert mac == routed.assigned_mac("server", "right")
    shown = routed.run("server", ["ip", "link", "show", "dev", "right"], check=True).stdout
    assert f"link/ether {mac} " in shown


# -- captures and offload --------------------------------------------------------------------


def test_capture_sees_routed_packets_with_right_macs(routed: Lab) -> None:
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether

    routed.http_server("server")
    with routed.capture("server", "right", "tcp port 80") as cap:
        routed.http_get("client", "http://10.2.0.2/")
    pkts = cap.packets()
    router_mac, server_mac = routed.mac("router", "right"), routed.mac("server", "right")
    inbound = [p for p in pkts if p[IP].src == "10.1.0.2" and p[IP].dst == "10.2.0.2"]
    outbound = [p for p in pkts if p[IP].src == "10.2.0.2" and p[IP].dst == "10.1.0.2"]
    assert inbound and outbound, [p.summary() for p in pkts]
    assert all(p[Ether].src == router_mac and p[Ether].dst == server_mac for p in inbound)
    assert all(p[Ether].src == server_mac and p[Ether].dst == router_mac for p in outbound)
    assert inbound[0][TCP].flags == "S" and inbound[0][TCP].dport == 80
    assert all(p.haslayer(TCP) for p in pkts), "the filter must apply"


def test_capture_on_bridged_lan_sees_sender_mac(root: None) -> None:
    from scapy.layers.inet import ICMP, IP
    from scapy.layers.l2 import Ether

    with Lab(BRIDGED) as lab, lab.capture("c", "lan", "icmp") as cap:
        lab.run("a", ["ping", "-c2", "-i0.2", "-W2", "10.9.0.3"], check=True)
    requests = [p for p in cap.packets() if p[ICMP].type == 8]
    assert len(requests) == 2
    assert {(p[Ether].src, p[IP].src, p[IP].dst) for p in requests} == {
        (lab.assigned_mac("a", "lan"), "10.9.0.1", "10.9.0.3")
    }


def features(lab: Lab, ns: str, iface: str) -> dict[str, str]:
    out = lab.run_ns(ns, ["ethtool", "-k", iface], check=True).stdout
    pairs = (line.strip().split(":", 1) for line in out.splitlines()[1:] if ":" in line)
    return {k: v.split()[0] for k, v in pairs if v.strip()}


def test_offload_off_turns_checksumming_off(root: None) -> None:
    from scapy.layers.inet import IP, TCP

    topo = Topology(
        nodes=["a", "b", "c"],
        lans={"lan": ["a:10.9.0.1/24", "b:10.9.0.2/24", "c:10.9.0.3/24"], "p2p": ["a", "b"]},
        offload=False,
    )
    with Lab(topo) as lab:
        for ns, iface in [(lab.ns("a"), "lan"), (lab.ns("a"), "p2p"), (lab.switch_ns, "lan+1")]:
            f = features(lab, ns, iface)
            for name in ("tx-checksumming", "rx-checksumming", "tcp-segmentation-offload"):
                assert f[name] == "off", (ns, iface, name)
            assert f["generic-segmentation-offload"] == "off"
            assert f["generic-receive-offload"] == "off"
        lab.http_server("b")
        with lab.capture("a", "lan", "tcp port 80") as cap:
            lab.http_get("a", "http://10.9.0.2/")
        sent = [p for p in cap.packets() if p[IP].src == "10.9.0.1"]
        assert sent
        for p in sent:
            # With TX checksumming off the stack fills in full checksums: the wire is valid.
            fresh = IP(bytes(p[IP]))
            del fresh[TCP].chksum
            assert IP(bytes(fresh))[TCP].chksum == p[TCP].chksum
    with Lab(BRIDGED) as lab:
        assert features(lab, lab.ns("a"), "lan")["tx-checksumming"] == "on"


# -- errors and cleanup ------------------------------------------------------------------------


def test_command_errors_carry_stderr(routed: Lab) -> None:
    with pytest.raises(LabCommandError, match="nosuchdev"):
        routed.run("client", ["ip", "link", "show", "dev", "nosuchdev"], check=True)
    assert routed.sh("client", "echo hi; echo err >&2").stdout == "hi\n"
    with pytest.raises(AssertionError, match=r"10\.2\.0\.2"):
        routed.http_get("client", "http://10.2.0.2:81/", timeout=2)


def test_server_start_failure_is_reported(routed: Lab) -> None:
    routed.http_server("server", port=80)
    with pytest.raises(LabError, match=r"(?s)exited.*Address already in use"):
        routed.http_server("server", port=80)
    # (A busy port would do too, but nginx retries that bind for 2.5 s.)
    with pytest.raises(LabError, match=r"(?s)exited.*Cannot assign requested address"):
        routed.nginx("server", port=8080, bind="10.99.99.99")


def test_nothing_remains_after_the_with_block(root: None) -> None:
    before = root_links()
    with Lab(ROUTED) as lab:
        pids = [
            lab.http_server("server").pid,
            lab.udp_server("server").pid,
            lab.nginx("server", port=8080).pid,
            lab.popen("client", ["sleep", "600"]).pid,
            int(lab.sh("router", "sleep 600 >/dev/null 2>&1 & echo $!").stdout),
        ]
        cap = lab.capture("client", "left", "tcp")
        pids.append(cap.proc.pid)
        assert all(alive(p) for p in pids)
        assert len(list_netns(lab.prefix)) == 3
        assert (MARKER_DIR / lab.prefix).exists()
    assert not any(alive(p) for p in pids)
    assert_gone(lab, before)
    assert cap.packets() is not None  # the pcap outlives the lab's files


@pytest.mark.parametrize(
    ("change", "stage"),
    [
        ({"routes": {"client": ["default via 172.31.0.1"]}}, "routes on client"),
        ({"ipv6": False, "lans": {"left": ["client:fd00::1/64", "router"]}}, "configuring client"),
        ({"sysctls": {"router": {"net.ipv4.no_such_knob": "1"}}}, "sysctls on router"),
    ],
)
def test_build_failure_midway_leaves_nothing(
    root: None, change: dict[str, object], stage: str
) -> None:
    base: dict[str, object] = {
        "nodes": ROUTED.nodes,
        "lans": ROUTED.lans,
        "routes": ROUTED.routes,
        "sysctls": ROUTED.sysctls,
    }
    before = root_links()
    lab = Lab(Topology(**{**base, **change}))  # type: ignore[arg-type]
    with pytest.raises(LabError, match=stage), lab:
        pytest.fail("the build should have failed")
    assert_gone(lab, before)


CRASHER = textwrap.dedent(
    """
    import os, sys
    from tests.lab import Lab, Topology
    lab = Lab(Topology(nodes=["a", "b"], lans={"l": ["a:10.7.0.1/24", "b:10.7.0.2/24"]}))
    lab.start()
    srv = lab.http_server("b")
    sleeper = lab.popen("a", ["sleep", "600"])
    print(lab.prefix, lab.tmpdir, srv.pid, sleeper.pid, flush=True)
    sys.stdin.readline()
    if sys.argv[1] == "crash":
        os._exit(0)  # no atexit, no __exit__: as if SIGKILLed
    sys.exit(0)      # normal exit without close(): atexit must clean up
    """
)


def run_crasher(mode: str) -> tuple[subprocess.Popen[str], list[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", CRASHER, mode],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().split()


def finish(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.close()
    assert proc.wait(10) == 0


def test_stale_labs_of_dead_processes_are_swept(root: None) -> None:
    proc, (prefix, tmpdir, *pids) = run_crasher("crash")
    try:
        with Lab(BRIDGED):  # the owner is alive: its lab must be left alone
            assert len(list_netns(prefix)) == 2
            assert all(alive(int(p)) for p in pids)
    finally:
        finish(proc)
    assert len(list_netns(prefix)) == 2, "os._exit must have left the lab behind"
    with Lab(BRIDGED) as lab:
        assert lab.prefix != prefix
    assert list_netns(prefix) == []
    assert not any(alive(int(p)) for p in pids)
    assert not (MARKER_DIR / prefix).exists()
    assert not Path(tmpdir).exists()


def test_atexit_cleans_up_unclosed_labs(root: None) -> None:
    proc, (prefix, tmpdir, *pids) = run_crasher("exit")
    assert len(list_netns(prefix)) == 2
    finish(proc)
    assert list_netns(prefix) == []
    assert not any(alive(int(p)) for p in pids)
    assert not (MARKER_DIR / prefix).exists()
    assert not Path(tmpdir).exists()


def test_a_four_node_lab_builds_fast(root: None) -> None:
    topo = Topology(
        nodes=["client", "director", "rs1", "rs2"],
        lans={
            "ext": ["client:10.0.0.2/24", "director:10.0.0.1/24"],
            "int": ["director:192.168.10.1/24", "rs1:192.168.10.11/24", "rs2:192.168.10.12/24"],
        },
        routes={
            "client": ["default via 10.0.0.1"],
            "rs1": ["default via 192.168.10.1"],
            "rs2": ["default via 192.168.10.1"],
        },
        sysctls={"director": {"net.ipv4.ip_forward": "1"}},
        offload=False,
    )
    t0 = time.monotonic()
    with Lab(topo) as lab:
        built = time.monotonic() - t0
        lab.run("client", ["ping", "-c1", "-W2", "192.168.10.12"], check=True)
    total = time.monotonic() - t0
    assert built < 2.0, f"building took {built:.2f} s"
    assert total < 3.0, f"build + teardown took {total:.2f} s"
