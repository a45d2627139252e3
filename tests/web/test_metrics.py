"""/metrics: node_exporter's IPVS names, types, help texts and labels; pylvs_* metrics;
and, after real TCP traffic through the proxy data plane, the same numbers as the JSON
API and ``pylvsadm -Ln --stats/--rate --exact``."""

from __future__ import annotations

import shlex
import time
from collections.abc import Iterator
from ipaddress import ip_address

import pytest
from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry

from pylvs.core.engine import Engine
from pylvs.core.model import DestSpec, Fwd, Proto, ServiceKey, ServiceSpec
from pylvs.daemon import views
from pylvs.daemon.ctl import Control
from pylvs.dataplane.none import NoDataPlane
from pylvs.testing.daemon import RunningDaemon, free_port, pylvsd
from pylvs.web import HealthState, VrrpInstance
from pylvs.web.events import Events
from pylvs.web.metrics import CONTENT_TYPE, IPVSCollector
from tests.web.support import (
    LO,
    Backend,
    Samples,
    api,
    backend,
    families,
    hold,
    http_get,
    listing,
    metrics,
    parse_metrics,
    requests,
    service,
    wait_for,
)

BACKEND_LABELS = {
    "local_address",
    "local_port",
    "remote_address",
    "remote_port",
    "proto",
    "local_mark",
}
# collector/ipvs_linux.go: name -> (type, help)
NODE_EXPORTER = {
    "node_ipvs_connections_total": ("counter", "The total number of connections made."),
    "node_ipvs_incoming_packets_total": ("counter", "The total number of incoming packets."),
    "node_ipvs_outgoing_packets_total": ("counter", "The total number of outgoing packets."),
    "node_ipvs_incoming_bytes_total": ("counter", "The total amount of incoming data."),
    "node_ipvs_outgoing_bytes_total": ("counter", "The total amount of outgoing data."),
    "node_ipvs_backend_connections_active": (
        "gauge",
        "The current active connections by local and remote address.",
    ),
    "node_ipvs_backend_connections_inactive": (
        "gauge",
        "The current inactive connections by local and remote address.",
    ),
    "node_ipvs_backend_weight": (
        "gauge",
        "The current backend weight by local and remote address.",
    ),
}
STATS = ("conns", "inpkts", "outpkts", "inbytes", "outbytes")
STAT_NAMES = ("connections", "incoming_packets", "outgoing_packets", "incoming_bytes")
STAT_NAMES += ("outgoing_bytes",)
RATE_NAMES = tuple(f"{n}_per_second" for n in STAT_NAMES)
RATES = ("cps", "inpps", "outpps", "inbps", "outbps")


# -- the collector on an engine built here ---------------------------------------------------


def table() -> tuple[Engine, Control]:
    e = Engine()
    t = e.table
    tcp = ServiceKey.inet(Proto.TCP, ip_address("10.0.0.1"), 80)
    udp6 = ServiceKey.inet(Proto.UDP, ip_address("2001:db8::1"), 53)
    fwm = ServiceKey.mark(7)
    sctp = ServiceKey.inet(Proto.SCTP, ip_address("10.0.0.2"), 9)
    t.add_service(ServiceSpec(tcp, "rr"))
    t.add_dest(tcp, DestSpec(ip_address("192.168.0.2"), 8080, Fwd.MASQ, 3))
    t.add_dest(tcp, DestSpec(ip_address("192.168.0.3"), 8080, Fwd.MASQ, 1))
    t.add_service(ServiceSpec(udp6, "wlc"))
    t.add_dest(udp6, DestSpec(ip_address("2001:db8:0:0:1:0:0:2"), 53, Fwd.MASQ, 2))
    t.add_service(ServiceSpec(fwm, "wlc"))
    t.add_dest(fwm, DestSpec(ip_address("192.168.0.4"), 0, Fwd.DROUTE, 5))
    t.add_service(ServiceSpec(sctp, "rr"))
    t.add_dest(sctp, DestSpec(ip_address("192.168.0.5"), 9, Fwd.MASQ, 1))
    return e, Control(e, NoDataPlane.policy, time.monotonic)


def traffic(e: Engine, rounds: int = 3) -> None:
    """Counter increments (some past 10^6 and 2^32) and estimator samples."""
    now = 100.0
    e.tick(now)
    t = e.table
    for r in range(rounds):
        for i, svc in enumerate(t):
            for j, d in enumerate(svc.destinations):
                c = 1 + 7 * i + 3 * j + r
                for st in (d.stats, svc.stats, t.tot_stats):
                    st.conns += c
                    st.inpkts += c * 10
                    st.outpkts += c * 9
                    st.inbytes += c * 1_000_003
                    st.outbytes += c * 5_000_000_011
                d.activeconns, d.inactconns = c, 2 * c
        now += 2.0
        e.tick(now)


def test_node_exporter_metrics_names_types_help_and_labels() -> None:
    e, control = table()
    traffic(e)
    text = IPVSCollector(control, dataplane="none").exposition().decode()
    fams = families(text)
    for name, want in NODE_EXPORTER.items():
        assert fams[name] == want, name
    m = parse_metrics(text)
    for name in NODE_EXPORTER:
        series = [labels for (n, labels) in m if n == name]
        if name.endswith("_total"):
            assert series == [frozenset()], name  # /proc/net/ip_vs_stats: no labels
        else:
            assert len(series) == 5, name
            assert all({k for k, _ in s} == BACKEND_LABELS for s in series), name
    tot = e.table.tot_stats
    for field, name in zip(STATS, STAT_NAMES, strict=True):
        assert m[(f"node_ipvs_{name}_total", frozenset())] == getattr(tot, field)
    w = "node_ipvs_backend_weight"
    # procfs's formats: decimal ports, Go's IPv6 text, FWM with the mark as %08X
    assert m[(w, backend("10.0.0.1", 80, "192.168.0.2", 8080))] == 3
    assert m[(w, backend("10.0.0.1", 80, "192.168.0.3", 8080))] == 1
    assert m[(w, backend("2001:db8::1", 53, "2001:db8::1:0:0:2", 53, "UDP"))] == 2
    fwm = frozenset(
        {
            "local_address": "",
            "local_port": "0",
            "local_mark": "00000007",
            "proto": "FWM",
            "remote_address": "192.168.0.4",
            "remote_port": "0",
        }.items()
    )
    assert m[(w, fwm)] == 5
    assert m[(w, backend("10.0.0.2", 9, "192.168.0.5", 9, "SCTP"))] == 1
    svc = next(iter(e.table))
    d = svc.destinations[-1]  # 192.168.0.2: added first, the kernel's list keeps it last
    lbl = backend("10.0.0.1", 80, "192.168.0.2", 8080)
    assert m[("node_ipvs_backend_connections_active", lbl)] == d.activeconns > 0
    assert m[("node_ipvs_backend_connections_inactive", lbl)] == d.inactconns > 0


def test_exposition_is_what_generate_latest_writes() -> None:
    """The fast writer and prometheus_client's own agree on every series, value, type and
    help text, escaping included."""
    e, control = table()
    traffic(e)
    events = Events()
    events.record("reload", "ok")
    events.record("rs_down", "x")
    health: list[HealthState] = [
        {
            "service": "tcp:10.0.0.1:80",
            "virtual_server": "TCP 10.0.0.1:80",
            "address": "192.168.0.2",
            "port": 8080,
            "up": True,
            "weight": 3,
            "since": 1714567890.123456,
        },
        {
            "service": "tcp:10.0.0.1:80",
            "virtual_server": "TCP 10.0.0.1:80",
            "address": "192.168.0.9",
            "port": 8080,
            "up": False,
            "weight": 1,
            "since": 1714567999.5,
        },
    ]
    vrrp: list[VrrpInstance] = [
        {"name": 'VI_1 "a\\b\n%s', "state": "MASTER", "interface": "eth0", "vrid": 51},
        {"name": "VI_2", "state": "BACKUP", "priority": 90, "since": 12.5},
    ]
    c = IPVSCollector(
        control,
        dataplane="proxy",
        counters=lambda: {"drop_ttl": 2, "udp_send_dropped": 1, "no_dest": 4, "rx": 10**7},
        health=lambda: health,
        vrrp=lambda: vrrp,
        sync=lambda: {"sent": 5, "received": 7},
        events=events,
        version="0.1.0",
    )
    ours = c.exposition().decode()
    reg = CollectorRegistry(auto_describe=False)
    reg.register(c)
    theirs = generate_latest(reg).decode()
    assert parse_metrics(ours) == parse_metrics(theirs)
    assert families(ours) == families(theirs)
    assert ours.count("\n") == theirs.count("\n")
    m = parse_metrics(ours)
    vi1 = frozenset({"instance": 'VI_1 "a\\b\n%s', "interface": "eth0", "vrid": "51"}.items())
    assert m[("pylvs_vrrp_state", vi1)] == 2  # keepalived's VRRP_STATE_MAST
    hl = backend("10.0.0.1", 80, "192.168.0.9", 8080)
    assert m[("pylvs_backend_health_up", hl)] == 0
    assert m[("pylvs_backend_health_last_change_timestamp_seconds", hl)] == 1714567999.5
    drops = {dict(lb)["reason"]: v for (n, lb), v in m.items() if n.endswith("drops_total")}
    assert drops == {"ttl": 2, "udp_send": 1, "no_dest": 4}
    assert (
        m[
            (
                "pylvs_dataplane_counter_total",
                frozenset({"dataplane": "proxy", "name": "rx"}.items()),
            )
        ]
        == 10**7
    )
    assert m[("pylvs_config_reloads_total", frozenset({("result", "success")}))] == 1
    assert m[("pylvs_sync_total", frozenset({("counter", "received")}))] == 7


def test_rates_are_the_estimators_and_follow_table_changes() -> None:
    e, control = table()
    traffic(e, rounds=4)
    c = IPVSCollector(control)
    m = parse_metrics(c.exposition().decode())
    for svc in e.table:
        sj = views.service_json(svc, e.est)
        if sj["fwmark"]:
            continue  # labels checked in the first test
        sl = service(*_svc_labels(sj))
        for name, field in zip(RATE_NAMES, RATES, strict=True):
            assert m[(f"pylvs_service_{name}", sl)] == sj["rates"][field], (sl, name)
        for name, field in zip(STAT_NAMES, STATS, strict=True):
            assert m[(f"pylvs_service_{name}_total", sl)] == sj["stats"][field]
        for dj in sj["dests"]:
            dl = backend(*_svc_labels(sj)[:2], _go(dj["address"]), dj["port"], _svc_labels(sj)[2])
            for name, field in zip(RATE_NAMES, RATES, strict=True):
                assert m[(f"pylvs_backend_{name}", dl)] == dj["rates"][field] > 0
    total = views.rates_json(e.est.get("total"))
    assert m[("pylvs_incoming_bytes_per_second", frozenset())] == total["inbps"] > 0
    # the label caches follow the table
    key = ServiceKey.inet(Proto.TCP, ip_address("10.0.0.1"), 80)
    e.table.add_dest(key, DestSpec(ip_address("192.168.0.7"), 8080, Fwd.MASQ, 9))
    e.table.edit_dest(key, DestSpec(ip_address("192.168.0.3"), 8080, Fwd.MASQ, 4))
    e.table.del_service(ServiceKey.mark(7))
    m = parse_metrics(c.exposition().decode())
    w = "node_ipvs_backend_weight"
    assert m[(w, backend("10.0.0.1", 80, "192.168.0.7", 8080))] == 9
    assert m[(w, backend("10.0.0.1", 80, "192.168.0.3", 8080))] == 4
    assert not [lb for (n, lb) in m if n == w and ("proto", "FWM") in lb]
    assert len([lb for (n, lb) in m if n == w]) == 5


def _go(addr: str) -> str:
    return str(ip_address(addr))


def _svc_labels(sj: views.ServiceJSON) -> tuple[str, int, str]:
    return (_go(sj["address"]), sj["port"], sj["protocol"].upper())


# -- a running pylvsd with real traffic ---------------------------------------------------------


@pytest.fixture
def backends() -> Iterator[list[Backend]]:
    bs = [Backend(), Backend()]
    yield bs
    for b in bs:
        b.close()


def adm(d: RunningDaemon, cmd: str) -> str:
    r = d.pylvsadm(*shlex.split(cmd))
    assert r.returncode == 0, (cmd, r.stderr)
    return r.stdout


def snapshot(
    d: RunningDaemon,
) -> tuple[Samples, list[views.ServiceJSON], dict[str, object], str, str]:
    """/metrics, the API and pylvsadm read while nothing moved (the estimator samples every
    2 s: read again until two scrapes around the rest agree)."""
    for _ in range(10):
        m1 = metrics(d)
        svcs = api(d, "/v1/services")
        stats = api(d, "/v1/stats")
        st = adm(d, "-Ln --stats --exact")
        rt = adm(d, "-Ln --rate --exact")
        if metrics(d) == m1:
            return m1, svcs, stats, st, rt  # type: ignore[return-value]
    raise AssertionError("the numbers never held still")


def test_metrics_agree_with_api_and_pylvsadm_after_real_traffic(backends: list[Backend]) -> None:
    vport = free_port()
    b1, b2 = backends
    with pylvsd("--connect-timeout", "2", dataplane="proxy", http=True) as d:
        adm(d, f"-A -t {LO}:{vport} -s rr")
        adm(d, f"-a -t {LO}:{vport} -r {LO}:{b1.port} -m -w 2")
        adm(d, f"-a -t {LO}:{vport} -r {LO}:{b2.port} -m -w 1")
        requests(vport, 20)
        held = hold(vport, 3)
        try:
            wait_for(
                lambda: sum(dd["activeconns"] for dd in api(d, "/v1/services")[0]["dests"]) == 3,  # type: ignore[index]
                10,
                "3 active connections",
            )
            wait_for(
                lambda: api(d, "/v1/services")[0]["rates"]["cps"] > 0,  # type: ignore[index]
                10,
                "a rate estimate",
            )
            ctype, _ = http_get(d, "/metrics")
            assert ctype == CONTENT_TYPE
            m, svcs, stats, st, rt = snapshot(d)
        finally:
            for s in held:
                s.close()
    tot = stats["stats"]
    assert isinstance(tot, dict)
    assert tot["conns"] == 23
    for field, name in zip(STATS, STAT_NAMES, strict=True):
        assert m[(f"node_ipvs_{name}_total", frozenset())] == tot[field] > 0
    stat_rows, rate_rows = listing(st), listing(rt)
    sj = svcs[0]
    sl = service(LO, vport)
    vs = f"TCP {LO}:{vport}"
    assert [m[(f"pylvs_service_{n}_total", sl)] for n in STAT_NAMES] == stat_rows[vs]
    assert [sj["stats"][f] for f in STATS] == stat_rows[vs]
    assert [m[(f"pylvs_service_{n}", sl)] for n in RATE_NAMES] == rate_rows[vs]
    assert [sj["rates"][f] for f in RATES] == rate_rows[vs]
    assert rate_rows[vs][0] > 0 and stat_rows[vs][0] == 23
    active = 0
    for dj in sj["dests"]:
        bl = backend(LO, vport, LO, dj["port"])
        row = f"{LO}:{vport} -> {LO}:{dj['port']}"
        assert (
            m[("node_ipvs_backend_weight", bl)]
            == dj["weight"]
            == (2 if dj["port"] == b1.port else 1)
        )
        assert m[("node_ipvs_backend_connections_active", bl)] == dj["activeconns"]
        assert m[("node_ipvs_backend_connections_inactive", bl)] == dj["inactconns"]
        active += dj["activeconns"]
        assert [m[(f"pylvs_backend_{n}_total", bl)] for n in STAT_NAMES] == stat_rows[row]
        assert [dj["stats"][f] for f in STATS] == stat_rows[row]
        assert [m[(f"pylvs_backend_{n}", bl)] for n in RATE_NAMES] == rate_rows[row]
        assert [dj["rates"][f] for f in RATES] == rate_rows[row]
        assert stat_rows[row][4] >= 10 * 500  # the bodies came back through the director
    assert active == 3
    assert m[("pylvs_connection_entries", frozenset())] >= 3
