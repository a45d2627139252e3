"""rules(): the LVS table corpus files ask for, checked against lists written by hand,
and loaded into the real rule table."""

from __future__ import annotations

from ipaddress import ip_address
from pathlib import Path

import pytest

from pylvs.config.keepalived import load
from pylvs.config.lvs import rules
from pylvs.core.model import (
    AF_INET6,
    SVC_F_ONEPACKET,
    SVC_F_PERSISTENT,
    SVC_F_SCHED1,
    SVC_F_SCHED2,
    SVC_F_SCHED3,
    TUN_F_CSUM,
    TUN_F_NOCSUM,
    TUN_F_REMCSUM,
    DestSpec,
    Fwd,
    Proto,
    ServiceKey,
    ServiceSpec,
    TunType,
)
from pylvs.core.table import Table

CORPUS = Path(__file__).parent / "corpus"
TCP, UDP, SCTP = Proto.TCP, Proto.UDP, Proto.SCTP
MASQ, DR, TUN = Fwd.MASQ, Fwd.DROUTE, Fwd.TUNNEL


def table_of(name: str, config_id: str = "lvs1") -> list[tuple[ServiceSpec, list[DestSpec]]]:
    return rules(load(str(CORPUS / name), config_id=config_id))


def svc(proto: int, addr: str, port: int, sched: str, flags: int = 0, **kw: object) -> ServiceSpec:
    return ServiceSpec(ServiceKey.inet(proto, addr, port), sched, flags, **kw)  # type: ignore[arg-type]


def fwm(mark: int, sched: str, flags: int = 0, af: int = 2, **kw: object) -> ServiceSpec:
    return ServiceSpec(ServiceKey.mark(mark, af), sched, flags, **kw)  # type: ignore[arg-type]


def dest(addr: str, port: int, fwd: Fwd = MASQ, weight: int = 1, **kw: object) -> DestSpec:
    return DestSpec(ip_address(addr), port, fwd, weight, **kw)  # type: ignore[arg-type]


def test_minimal() -> None:
    assert table_of("minimal_tcp.conf") == [
        (
            svc(TCP, "192.0.2.10", 80, "rr"),
            [dest("10.0.0.1", 8080), dest("10.0.0.2", 8080, weight=3)],
        )
    ]


def test_seed_dr_persistent_with_granularity() -> None:
    assert table_of("seed_004_lvs_ha.conf") == [
        (
            svc(TCP, "10.210.214.253", 80, "wlc", SVC_F_PERSISTENT, timeout=50, netmask=0xFFFFFF00),
            [dest("10.210.214.195", 80, DR, 2)],  # the sorry server is not in the table
        )
    ]


def test_group_expansion() -> None:
    web_rs = [dest("10.0.5.1", 0, DR), dest("10.0.5.2", 0, DR)]
    expected = []
    for addr, port in [
        ("192.0.2.60", 80),
        ("192.0.2.61", 80),
        ("192.0.2.62", 80),
        ("192.0.2.63", 80),
        ("198.51.100.254", 8080),
        ("198.51.100.255", 8080),
        ("198.51.101.0", 8080),
        ("198.51.101.1", 8080),
        ("203.0.113.8", 443),
        ("203.0.113.9", 443),
        ("203.0.113.10", 443),
        ("203.0.113.11", 443),
    ]:
        # DR real servers without a port get the service's port
        expected.append(
            (svc(TCP, addr, port, "rr"), [dest(d.addr.exploded, port, DR) for d in web_rs])
        )
    expected.append((fwm(100, "rr"), web_rs))
    marks_rs = [dest("10.0.5.3", 8000)]
    expected += [(fwm(200, "wlc"), marks_rs), (fwm(201, "wlc"), marks_rs)]
    assert table_of("group.conf") == expected


def test_fwmark_tunnels_sched_flags() -> None:
    assert table_of("fwmark_tun_sched.conf") == [
        (
            fwm(1, "sh", SVC_F_PERSISTENT | SVC_F_SCHED1 | SVC_F_SCHED2, timeout=600),
            [
                dest("10.0.6.1", 0, TUN, tun_type=TunType.GUE, tun_port=6080, tun_flags=TUN_F_CSUM),
                dest("10.0.6.2", 0, TUN, tun_type=TunType.GRE, tun_flags=TUN_F_NOCSUM),
                dest("10.0.6.3", 0, TUN),
                dest(
                    "10.0.6.4", 0, TUN, tun_type=TunType.GUE, tun_port=6081, tun_flags=TUN_F_REMCSUM
                ),
            ],
        ),
        (fwm(2, "mh", SVC_F_SCHED1 | SVC_F_SCHED2, af=AF_INET6), [dest("2001:db8:6::1", 0, TUN)]),
        (
            svc(
                UDP,
                "192.0.2.70",
                5060,
                "wrr",
                SVC_F_ONEPACKET | SVC_F_SCHED1 | SVC_F_SCHED2 | SVC_F_SCHED3,
            ),
            [dest("10.0.6.10", 5060, DR)],
        ),
    ]


def test_persistence() -> None:
    assert table_of("persistence.conf") == [
        (svc(TCP, "192.0.2.80", 0, "rr", SVC_F_PERSISTENT, timeout=360), [dest("10.0.7.1", 0, DR)]),
        (
            svc(UDP, "192.0.2.81", 5060, "lblc", SVC_F_PERSISTENT, timeout=360, netmask=0xFFFFFF00),
            [dest("10.0.7.2", 5060)],
        ),
        (
            svc(SCTP, "192.0.2.82", 3868, "sed", SVC_F_PERSISTENT, timeout=7200),
            [dest("10.0.7.3", 3868)],
        ),
    ]


def test_inheritance_weights_thresholds_methods() -> None:
    assert table_of("inheritance.conf") == [
        (
            svc(TCP, "192.0.2.90", 80, "wlc"),
            [
                dest("10.0.8.1", 80, MASQ, 4),
                dest("10.0.8.2", 80, DR, 7, u_thresh=1000, l_thresh=800),
            ],
        ),
        (svc(TCP, "192.0.2.91", 80, "rr"), [dest("10.0.8.3", 80)]),
    ]


def test_ipv6() -> None:
    rs3 = [dest("2001:db8:200::3", 443, DR)]
    assert table_of("ipv6.conf") == [
        (
            svc(TCP, "2001:db8:100::1", 80, "rr", SVC_F_PERSISTENT, timeout=360, netmask=64),
            [dest("2001:db8:200::1", 8080), dest("2001:db8:200::2", 8080)],
        ),
        (svc(TCP, "2001:db8:100::10", 443, "wlc"), rs3),
        (svc(TCP, "2001:db8:100::11", 443, "wlc"), rs3),
        (svc(TCP, "2001:db8:100::12", 443, "wlc"), rs3),
    ]


def test_includes_and_parameters() -> None:
    assert table_of("include_main.conf") == [
        (
            svc(TCP, "192.0.2.110", 80, "wlc"),
            [dest("10.0.10.2", 80), dest("10.0.10.3", 80, weight=2)],
        ),
        (svc(TCP, "192.0.2.111", 8080, "rr"), [dest("10.0.10.1", 8080)]),
        (svc(TCP, "192.0.2.112", 8080, "rr"), [dest("10.0.10.1", 8080)]),
    ]
    assert table_of("params.conf", "lvs2") == [
        (svc(TCP, "192.0.2.120", 80, "rr"), [dest(f"10.0.11.{n}", 80) for n in (1, 2, 3)]),
        (
            svc(TCP, "192.0.2.121", 80, "rr"),
            [dest("10.0.11.7", 80), dest("10.0.11.9", 80), dest("10.0.11.20", 80, weight=2)],
        ),
    ]


def test_full_director() -> None:
    rs = ["10.20.0.11", "10.20.0.12"]
    assert table_of("vrrp_full.conf") == [
        (
            svc(TCP, "203.0.113.10", port, "wlc", SVC_F_PERSISTENT, timeout=300),
            [dest(a, port, DR, 100) for a in rs],
        )
        for port in (80, 443)
    ]


@pytest.mark.parametrize("name", sorted(p.name for p in CORPUS.glob("*.conf")))
def test_rules_load_into_the_rule_table(name: str) -> None:
    """Every service and real server the corpus asks for is accepted by the engine's table."""
    table = Table()
    expected = table_of(name)
    for spec, dests in expected:
        table.add_service(spec)
        for d in dests:
            table.add_dest(spec.key, d)
    assert len(table) == len(expected)
    for spec, dests in expected:
        got = table.get(spec.key)
        assert got is not None and len(got.destinations) == len(dests)
