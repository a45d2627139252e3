"""Golden tests for pylvs.cli.render against ipvsadm 1.31's printf formats.

Expected text is written down by hand from ipvsadm.c (1.30 + the GRE patch =
1.31): either as literal blocks (typed column by column) or with f-strings
that transcribe one C format each, e.g. ``"  -> %-28s %-7s %-6d %-10u %-10u\\n"``
becomes ``f"  -> {d:<28} {fwd:<7} {w:<6} {a:<10} {i:<10}\\n"``.  The sort
orders follow libipvs.c's ipvs_cmp_services/ipvs_cmp_dests, worked by hand
under glibc's merge-sort qsort (explained per test).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from pylvs.cli.command import ListFormat
from pylvs.cli.render import (
    inet_ntop,
    print_largenum,
    render_conns,
    render_daemon,
    render_list,
    render_save,
    render_service,
    render_timeout,
)
from pylvs.daemon.views import ConnJSON, DaemonJSON, DestJSON, ServiceJSON, TimeoutJSON

VERSION = "IP Virtual Server version 1.2.1 (size=4096)\n"
TITLE = (
    "Prot LocalAddress:Port Scheduler Flags\n"
    "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
)
ZERO_STATS = {"conns": 0, "inpkts": 0, "outpkts": 0, "inbytes": 0, "outbytes": 0}
ZERO_RATES = {"cps": 0, "inpps": 0, "outpps": 0, "inbps": 0, "outbps": 0}


def fam(address: str) -> str:
    return "inet6" if ":" in address else "inet"


def dest(
    address: str,
    port: int,
    fwd: str = "droute",
    weight: int = 1,
    active: int = 0,
    inact: int = 0,
    persist: int = 0,
    **kw: Any,
) -> DestJSON:
    d: dict[str, Any] = {
        "address": address,
        "port": port,
        "family": fam(address),
        "fwd_method": fwd,
        "weight": weight,
        "u_thresh": 0,
        "l_thresh": 0,
        "activeconns": active,
        "inactconns": inact,
        "persistconns": persist,
        "tun_type": "ipip",
        "tun_port": 0,
        "tun_flags": 0,
        "proxy_protocol": "",
        "available": True,
        "overloaded": False,
        "stats": dict(ZERO_STATS),
        "rates": dict(ZERO_RATES),
    }
    d.update(kw)
    return d  # type: ignore[return-value]


def svc(
    protocol: str = "tcp",
    address: str = "10.0.0.1",
    port: int = 80,
    sched: str = "wlc",
    dests: list[DestJSON] | None = None,
    fwmark: int = 0,
    family: str | None = None,
    flags: int = 0,
    timeout: int = 0,
    netmask: int | None = None,
    **kw: Any,
) -> ServiceJSON:
    if fwmark:
        protocol, address, port = "", "", 0
    af = family or fam(address)
    s: dict[str, Any] = {
        "family": af,
        "protocol": protocol,
        "address": address,
        "port": port,
        "fwmark": fwmark,
        "sched_name": sched,
        "flags": flags,
        "persistent": bool(flags & 1),
        "timeout": timeout,
        "netmask": netmask if netmask is not None else (128 if af == "inet6" else 0xFFFFFFFF),
        "ops": bool(flags & 4),
        "sched_flags": [],
        "pe_name": "",
        "stats": dict(ZERO_STATS),
        "rates": dict(ZERO_RATES),
        "dests": dests or [],
        "laddrs": [],
    }
    s.update(kw)
    return s  # type: ignore[return-value]


class FakeResolver:
    def __init__(self, hosts: dict[str, str], services: dict[tuple[int, str], str]) -> None:
        self.hosts = hosts
        self.services = services
        self.asked: list[tuple[int, str]] = []

    def host(self, addr: str) -> str | None:
        return self.hosts.get(addr)

    def service(self, port: int, proto: str) -> str | None:
        self.asked.append((port, proto))
        return self.services.get((port, proto))


NAMES = FakeResolver(
    {"10.0.0.1": "www.example.com", "10.0.0.2": "real1", "10.1.1.1": "client.example"},
    {(80, "tcp"): "http", (53, "udp"): "domain", (443, "tcp"): "https"},
)
N = ListFormat(numeric=True)


# "  -> %-28s %-7s %-6d %-10u %-10u\n"
def plain_row(dname: str, fwd: str, w: int, a: int = 0, i: int = 0) -> str:
    return f"  -> {dname:<28} {fwd:<7} {w:<6} {a:<10} {i:<10}\n"


# ------------------------------------------------------------ print_largenum


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "        0"),  # %9llu
        (99_999_999, " 99999999"),  # largest plain number
        (100_000_000, "  100000K"),  # %8lluK of i/1000
        (999_999_999, "  999999K"),
        (1_000_000_000, "    1000M"),  # %8lluM of i/1e6
        (99_999_999_999, "   99999M"),
        (100_000_000_000, "     100G"),  # %8lluG of i/1e9
        (99_999_999_999_999, "   99999G"),
        (100_000_000_000_000, "     100T"),  # %8lluT of i/1e12
        (123_456_789_012_345_678, "  123456T"),
    ],
)
def test_print_largenum(value: int, text: str) -> None:
    assert len(text) == 9  # every non-exact form is nine columns wide
    assert print_largenum(value, exact=False) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (7, "        7"),  # up to 8 digits: width 9
        (12_345_678, " 12345678"),
        (123_456_789, " 123456789"),  # 9 digits: width len+1 = 10
        (10**15, " 1000000000000000"),
    ],
)
def test_print_largenum_exact(value: int, text: str) -> None:
    assert print_largenum(value, exact=True) == text


# ------------------------------------------------------------ plain listing


def test_plain_listing_literal() -> None:
    # Typed by hand: "TCP  " is "%-4s " of "TCP"; real servers sorted by address.
    s = svc(
        address="192.168.0.100",
        sched="rr",
        dests=[dest("192.168.0.11", 80, "masq", 3, 12, 345), dest("192.168.0.10", 80)],
    )
    expected = (
        "IP Virtual Server version 1.2.1 (size=4096)\n"
        "Prot LocalAddress:Port Scheduler Flags\n"
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
        "TCP  192.168.0.100:80 rr\n"
        "  -> 192.168.0.10:80              Route   1      0          0         \n"
        "  -> 192.168.0.11:80              Masq    3      12         345       \n"
    )
    assert render_list([s], N) == expected


def test_empty_table() -> None:
    assert render_list([], N) == VERSION + TITLE


def test_custom_version_and_size() -> None:
    out = render_list([], N, version="1.2.1", conn_tab_size=1048576)
    assert out.startswith("IP Virtual Server version 1.2.1 (size=1048576)\n")


@pytest.mark.parametrize(
    ("service", "line"),
    [
        (svc("udp", port=53, sched="rr"), "UDP  10.0.0.1:53 rr"),
        (svc("sctp", port=9999, sched="rr"), "SCTP 10.0.0.1:9999 rr"),
        (svc(address="2001:db8::1", sched="rr"), "TCP  [2001:db8::1]:80 rr"),
        (svc(fwmark=1), "FWM  1 wlc"),
        (svc(fwmark=2, family="inet6", sched="rr"), "FWM  2 IPv6 rr"),
        # persistent N, then "mask a.b.c.d" only when not /32
        (svc(port=443, flags=1, timeout=300), "TCP  10.0.0.1:443 wlc persistent 300"),
        (
            svc(port=443, flags=1, timeout=300, netmask=0xFFFFFF00),
            "TCP  10.0.0.1:443 wlc persistent 300 mask 255.255.255.0",
        ),
        # IPv6: the prefix length, only when not 128
        (
            svc(address="2001:db8::1", flags=1, timeout=360, netmask=64),
            "TCP  [2001:db8::1]:80 wlc persistent 360 mask 64",
        ),
        (
            svc(address="2001:db8::1", flags=1, timeout=360),
            "TCP  [2001:db8::1]:80 wlc persistent 360",
        ),
        (
            svc(fwmark=3, family="inet6", flags=1, timeout=60, netmask=48),
            "FWM  3 IPv6 wlc persistent 60 mask 48",
        ),
        (
            svc(fwmark=4, flags=1, timeout=60, netmask=0xFFFF0000),
            "FWM  4 wlc persistent 60 mask 255.255.0.0",
        ),
        # pe only with persistence, ops last
        (
            svc("udp", port=5060, sched="rr", flags=1, timeout=360, pe_name="sip"),
            "UDP  10.0.0.1:5060 rr persistent 360 pe sip",
        ),
        (svc("udp", port=5060, sched="rr", pe_name="sip"), "UDP  10.0.0.1:5060 rr"),
        (svc("udp", port=53, sched="rr", flags=4), "UDP  10.0.0.1:53 rr ops"),
        # scheduler flags in parentheses, before persistent
        (svc(sched="sh", flags=8 | 16), "TCP  10.0.0.1:80 sh (sh-fallback,sh-port)"),
        (svc(sched="mh", flags=16), "TCP  10.0.0.1:80 mh (mh-port)"),
        (svc(sched="mh", flags=8), "TCP  10.0.0.1:80 mh (mh-fallback)"),
        (svc(flags=8 | 32), "TCP  10.0.0.1:80 wlc (flag-1,flag-3)"),
        (svc(sched="sh", flags=32), "TCP  10.0.0.1:80 sh ()"),  # no sh name for flag-3
        (
            svc("udp", port=0, sched="sh", flags=1 | 4 | 8, timeout=30, netmask=0xFFFFFF00),
            "UDP  10.0.0.1:0 sh (sh-fallback) persistent 30 mask 255.255.255.0 ops",
        ),
    ],
)
def test_service_line(service: ServiceJSON, line: str) -> None:
    assert render_list([service], N) == VERSION + TITLE + line + "\n"


def test_fwmark_above_int_max_prints_as_c_int() -> None:
    # sprintf("FWM  %d", fwmark) of an unsigned value
    assert render_list([svc(fwmark=0xFFFFFFFF)], N).endswith("FWM  -1 wlc\n")
    assert render_save([svc(fwmark=0xFFFFFFFE)], True).startswith("-A -f -2 -s wlc\n")


def test_forward_names_and_columns() -> None:
    s = svc(
        dests=[
            dest("10.0.0.2", 80, "masq", 65535, 123456789, 1),
            dest("10.0.0.3", 80, "local", 0),
            dest("10.0.0.4", 80, "tunnel", 2),
            dest("10.0.0.5", 80, "droute", 3),
            dest("10.0.0.6", 80, "fullnat", 4),
            dest("10.0.0.7", 80, "bypass", 5),
        ]
    )
    expected = (
        VERSION
        + TITLE
        + "TCP  10.0.0.1:80 wlc\n"
        + plain_row("10.0.0.2:80", "Masq", 65535, 123456789, 1)
        + plain_row("10.0.0.3:80", "Local", 0)
        + plain_row("10.0.0.4:80", "Tunnel", 2)
        + plain_row("10.0.0.5:80", "Route", 3)
        + plain_row("10.0.0.6:80", "FullNat", 4)  # our extension, fills %-7s exactly
        + plain_row("10.0.0.7:80", "(null)", 5)  # fwd_name() NULL through glibc printf
    )
    assert render_list([s], N) == expected


def test_ipv6_dests_and_mixed_family_tunnel() -> None:
    s = svc(
        address="2001:db8::1",
        dests=[
            dest("2001:db8::10", 80, "masq"),
            dest("2001:db8::9", 80, "masq"),
            dest("2001:db8:0:0:1:0:0:1", 8080, "masq"),
        ],
    )
    # cmp_dests compares the four 32-bit words: ::9 < ::10 < ::1:0:0:1 (word 2).
    expected = (
        VERSION
        + TITLE
        + "TCP  [2001:db8::1]:80 wlc\n"
        + plain_row("[2001:db8::9]:80", "Masq", 1)
        + plain_row("[2001:db8::10]:80", "Masq", 1)
        + plain_row("[2001:db8::1:0:0:1]:8080", "Masq", 1)
    )
    assert render_list([s], N) == expected


def test_long_ipv6_names_are_not_cut() -> None:
    a = "2001:db8:1111:2222:3333:4444:5555:6666"
    s = svc(address=a, dests=[dest(a, 65535, "masq")])
    out = render_list([s], N)
    assert f"TCP  [{a}]:80 wlc\n" in out
    # no 28-column cut for IPv6, the columns just move right
    assert f"  -> [{a}]:65535 Masq    1      0          0         \n" in out


# ------------------------------------------------------------ sorting


def test_service_sort_order() -> None:
    # ipvs_cmp_services: fwmark (0 first), af (2 before 10), protocol
    # (TCP 6 < UDP 17 < SCTP 132), address word(s), port.
    services = [
        svc(fwmark=2, family="inet6"),
        svc(address="2001:db8::1"),
        svc("sctp", port=9999),
        svc("udp", port=53),
        svc(address="10.0.0.2", port=22),
        svc(port=443),
        svc(fwmark=1),
        svc(port=80),
    ]
    lines = [ln for ln in render_list(services, N).splitlines()[3:]]
    assert lines == [
        "TCP  10.0.0.1:80 wlc",
        "TCP  10.0.0.1:443 wlc",
        "TCP  10.0.0.2:22 wlc",
        "UDP  10.0.0.1:53 wlc",
        "SCTP 10.0.0.1:9999 wlc",
        "TCP  [2001:db8::1]:80 wlc",
        "FWM  1 wlc",
        "FWM  2 IPv6 wlc",
    ]
    # --nosort keeps the given order
    lines = render_list(services, ListFormat(numeric=True, nosort=True)).splitlines()[3:]
    assert lines[0] == "FWM  2 IPv6 wlc" and lines[-1] == "TCP  10.0.0.1:80 wlc"


def test_sort_wraps_like_c_int() -> None:
    # ntohl(a) - ntohl(b) as int: 0x0A000001 - 0xC8000001 = 0x42000000 > 0, so
    # 10.0.0.1 compares greater than 200.0.0.1.
    s = svc(dests=[dest("10.0.0.1", 80), dest("200.0.0.1", 80)])
    body = render_list([s], N).splitlines()[4:]
    assert [ln.split()[1] for ln in body] == ["200.0.0.1:80", "10.0.0.1:80"]
    # fwmark 0 - 0xFFFFFFFF = 1 > 0: that fwmark service sorts before the rest
    lines = render_list([svc(), svc(fwmark=0xFFFFFFFF)], N).splitlines()[3:]
    assert lines == ["FWM  -1 wlc", "TCP  10.0.0.1:80 wlc"]


def test_sort_is_glibc_merge_sort() -> None:
    # 10 < 100, 100 < 200 but 200 < 10 (wrap): the result depends on the
    # algorithm.  glibc msort of [200, 10, 100]: n1 = 1 -> left [200];
    # right [10, 100] sorts to [10, 100] (cmp(10,100) < 0); merge:
    # cmp(200, 10) = int(0xBE000000) < 0 -> take 200 -> [200, 10, 100].
    s = svc(dests=[dest("200.0.0.1", 80), dest("10.0.0.1", 80), dest("100.0.0.1", 80)])
    body = render_list([s], N).splitlines()[4:]
    assert [ln.split()[1] for ln in body] == ["200.0.0.1:80", "10.0.0.1:80", "100.0.0.1:80"]
    # and [10, 100, 200]: left [10], right [100, 200] stays; cmp(10,100) < 0
    # -> [10, 100, 200].
    s = svc(dests=[dest("10.0.0.1", 80), dest("100.0.0.1", 80), dest("200.0.0.1", 80)])
    body = render_list([s], N).splitlines()[4:]
    assert [ln.split()[1] for ln in body] == ["10.0.0.1:80", "100.0.0.1:80", "200.0.0.1:80"]


def test_mixed_family_dests_tie_keeps_input_order() -> None:
    # A tunnel service may mix families.  cmp_dests(v4 10.0.0.1, v6 a00:1::)
    # compares word 0 only (d1 is IPv4): 0x0A000001 both, ports equal -> 0;
    # cmp(v6, v4) compares all four words of the union: also 0.  glibc's merge
    # takes the left item on a tie, so either input order is kept.
    v4 = dest("10.0.0.1", 80, "tunnel")
    v6 = dest("a00:1::", 80, "tunnel")
    for order in ([v4, v6], [v6, v4]):
        body = render_list([svc(dests=order)], N).splitlines()[4:]
        assert [ln.split()[1] for ln in body] == [
            "10.0.0.1:80" if d is v4 else "[a00:1::]:80" for d in order
        ]


def test_dest_sort_by_port_and_nosort() -> None:
    s = svc(dests=[dest("10.0.0.2", 8080), dest("10.0.0.2", 80), dest("10.0.0.1", 9000)])
    body = render_list([s], N).splitlines()[4:]
    assert [ln.split()[1] for ln in body] == ["10.0.0.1:9000", "10.0.0.2:80", "10.0.0.2:8080"]
    body = render_list([s], ListFormat(numeric=True, nosort=True)).splitlines()[4:]
    assert [ln.split()[1] for ln in body] == ["10.0.0.2:8080", "10.0.0.2:80", "10.0.0.1:9000"]


# ------------------------------------------------------------ names


def test_resolved_names() -> None:
    s = svc(dests=[dest("10.0.0.2", 80, "masq"), dest("10.0.0.3", 8080, "masq")])
    expected = (
        VERSION
        + TITLE
        + "TCP  www.example.com:http wlc\n"
        + plain_row("real1:http", "Masq", 1)
        + plain_row("10.0.0.3:8080", "Masq", 1)  # no name: numeric fallback
    )
    assert render_list([s], ListFormat(), NAMES) == expected
    # -n never asks
    r = FakeResolver({"10.0.0.1": "x"}, {(80, "tcp"): "y"})
    render_list([s], N, r)
    assert r.asked == []


def test_resolved_names_use_service_protocol() -> None:
    r = FakeResolver({}, {(53, "udp"): "domain", (53, "tcp"): "WRONG"})
    out = render_list([svc("udp", port=53, dests=[dest("10.0.0.2", 53)])], ListFormat(), r)
    assert "UDP  10.0.0.1:domain wlc\n" in out
    assert plain_row("10.0.0.2:domain", "Route", 1) in out
    # fwmark services have no protocol: ports stay numbers, nobody is asked
    r = FakeResolver({}, {(80, "tcp"): "http"})
    out = render_list([svc(fwmark=1, dests=[dest("10.0.0.2", 80)])], ListFormat(), r)
    assert plain_row("10.0.0.2:80", "Route", 1) in out
    assert r.asked == []


def test_name_truncation() -> None:
    long_host = "a-very-long-host-name.example.com"  # 33 characters
    r = FakeResolver({"10.0.0.1": long_host, "10.0.0.2": long_host}, {})
    out = render_list([svc(dests=[dest("10.0.0.2", 80)])], ListFormat(), r)
    # svc_name[33] = '\0': "TCP  " + 28 characters of the name
    assert f"{'TCP  ' + long_host[:28]} wlc\n" in out
    # dname[28] = '\0'
    assert f"  -> {long_host[:28]} Route   1      " in out
    # 60-byte buffer: at most 59 characters, even in -S
    huge = "h" * 70
    r = FakeResolver({"10.0.0.1": huge}, {})
    assert render_save([svc()], False, r) == f"-A -t {(huge + ':80')[:59]} -s wlc\n"


def test_ipv6_resolved_keeps_brackets() -> None:
    r = FakeResolver({"2001:db8::1": "v6.example"}, {(80, "tcp"): "http"})
    out = render_list([svc(address="2001:db8::1")], ListFormat(), r)
    assert "TCP  [v6.example]:http wlc\n" in out


@pytest.mark.parametrize(
    ("addr", "text"),
    [
        ("::1", "::1"),
        ("::", "::"),
        ("2001:db8::", "2001:db8::"),
        ("1:0:2:3:4:5:6:7", "1:0:2:3:4:5:6:7"),  # a single zero word is not "::"
        ("1:0:0:2:0:0:0:3", "1:0:0:2::3"),  # the longest run
        ("1:0:0:2:3:0:0:4", "1::2:3:0:0:4"),  # first of equal runs
        ("::ffff:1.2.3.4", "::ffff:1.2.3.4"),  # glibc keeps the IPv4 tail
        ("::1.2.3.4", "::1.2.3.4"),
        ("10.0.0.1", "10.0.0.1"),
    ],
)
def test_inet_ntop(addr: str, text: str) -> None:
    from ipaddress import ip_address

    assert inet_ntop(ip_address(addr)) == text


# ------------------------------------------------------------ --stats / --rate


def test_stats_listing() -> None:
    st = {
        "conns": 5,
        "inpkts": 123_456_789,
        "outpkts": 1_234_567_890,
        "inbytes": 123_456_789_012,
        "outbytes": 123_456_789_012_345,
    }
    d = dest("10.0.0.2", 80, stats={**st, "conns": 99_999_999})
    s = svc(dests=[d], stats=st)
    out = render_list([s], ListFormat(numeric=True, stats=True))
    expected = (
        VERSION
        # "%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n"
        + "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n"
        + "  -> RemoteAddress:Port\n"
        # "%-33s" then print_largenum x5
        + "TCP  10.0.0.1:80                         5  123456K    1234M     123G     123T\n"
        # "  -> %-28s" then print_largenum x5
        + "  -> 10.0.0.2:80                  99999999  123456K    1234M     123G     123T\n"
    )
    assert out == expected
    exact = render_list([s], ListFormat(numeric=True, stats=True, exact=True))
    assert exact.splitlines()[3] == (
        f"{'TCP  10.0.0.1:80':<33}{5:>9}{123456789:>10}{1234567890:>11}"
        f"{123456789012:>13}{123456789012345:>16}"
    )


def test_rate_listing() -> None:
    rt = {"cps": 1, "inpps": 2, "outpps": 3, "inbps": 100_000_000, "outbps": 5_000_000_000}
    d = dest("10.0.0.2", 80, rates={**rt, "cps": 123_456_789})
    s = svc(dests=[d], rates=rt)
    out = render_list([s], ListFormat(numeric=True, rate=True))
    assert out == (
        VERSION
        + f"{'Prot LocalAddress:Port':<33} {'CPS':>8} {'InPPS':>8} {'OutPPS':>8}"
        + f" {'InBPS':>8} {'OutBPS':>8}\n"
        + "  -> RemoteAddress:Port\n"
        + f"{'TCP  10.0.0.1:80':<33}{1:>9}{2:>9}{3:>9}{'100000K':>9}{'5000M':>9}\n"
        # "  -> %-28s %8llu %8llu %8llu": cps/inpps/outpps never abbreviated
        + f"  -> {'10.0.0.2:80':<28} {123456789:>8} {2:>8} {3:>8}{'100000K':>9}{'5000M':>9}\n"
    )


def test_stats_wins_over_rate_and_thresholds() -> None:
    both = render_list([svc()], ListFormat(numeric=True, stats=True, rate=True, thresholds=True))
    assert both == render_list([svc()], ListFormat(numeric=True, stats=True))


# ------------------------------------------------------------ thresholds / persistent-conn


def test_thresholds_listing() -> None:
    d = dest("10.0.0.2", 80, "masq", 1, 7, 8, u_thresh=100, l_thresh=50)
    s = svc(flags=1, timeout=300, dests=[d])
    out = render_list([s], ListFormat(numeric=True, thresholds=True))
    assert out == (
        VERSION
        + "Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn \n"
        + "  -> RemoteAddress:Port\n"
        + "TCP  10.0.0.1:80 wlc persistent 300\n"
        + "  -> 10.0.0.2:80                  100        50         7          8         \n"
    )


def test_persistent_conn_listing() -> None:
    d = dest("10.0.0.2", 80, "masq", 2, 7, 8, 9)
    out = render_list([svc(dests=[d])], ListFormat(numeric=True, persistent_conn=True))
    assert out == (
        VERSION
        + "Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn \n"
        + "  -> RemoteAddress:Port\n"
        + "TCP  10.0.0.1:80 wlc\n"
        + "  -> 10.0.0.2:80                  2         9           7          8         \n"
    )


# ------------------------------------------------------------ --tun-info


def test_tun_info_listing() -> None:
    s = svc(
        dests=[
            dest("10.0.0.2", 80, "tunnel", 1, 3, 4),
            dest("10.0.0.3", 80, "tunnel", tun_type="gue", tun_port=6080, tun_flags=1),
            dest("10.0.0.4", 80, "tunnel", tun_type="gue", tun_port=65535, tun_flags=2),
            dest("10.0.0.5", 80, "tunnel", tun_type="gre", tun_flags=0),
            dest("10.0.0.6", 80, "masq"),
            dest("10.0.0.7", 80, "fullnat"),
        ]
    )

    # "  -> %-28s %-7s %-13s %-6d %-10u %-10u\n"
    def row(dname: str, fwd: str, ti: str, w: int = 1, a: int = 0, i: int = 0) -> str:
        return f"  -> {dname:<28} {fwd:<7} {ti:<13} {w:<6} {a:<10} {i:<10}\n"

    assert render_list([s], ListFormat(numeric=True, tun_info=True)) == (
        VERSION
        + "Prot LocalAddress:Port Scheduler Flags\n"
        + "  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n"
        + "TCP  10.0.0.1:80 wlc\n"
        + row("10.0.0.2:80", "Tunnel", "ipip", 1, 3, 4)
        + row("10.0.0.3:80", "Tunnel", "gue:6080:+c")
        + row("10.0.0.4:80", "Tunnel", "gue:65535:r+c")
        + row("10.0.0.5:80", "Tunnel", "gre:-c")
        + row("10.0.0.6:80", "Masq", "n/a")
        + row("10.0.0.7:80", "FullNat", "n/a")
    )
    # --tun-info ranks after --persistent-conn
    both = ListFormat(numeric=True, tun_info=True, persistent_conn=True)
    assert render_list([s], both) == render_list(
        [s], ListFormat(numeric=True, persistent_conn=True)
    )


# ------------------------------------------------------------ single service


def test_single_service_has_no_version_line() -> None:
    s = svc(dests=[dest("10.0.0.3", 80), dest("10.0.0.2", 80)])
    assert render_service(s, N) == (
        TITLE
        + "TCP  10.0.0.1:80 wlc\n"
        + plain_row("10.0.0.2:80", "Route", 1)
        + plain_row("10.0.0.3:80", "Route", 1)
    )
    out = render_service(s, ListFormat(numeric=True, stats=True))
    assert out.startswith("Prot LocalAddress:Port               Conns")


# ------------------------------------------------------------ -S


def test_save_numeric() -> None:
    web = svc(dests=[dest("10.0.0.3", 80), dest("10.0.0.2", 80, "masq", 3)])
    tls = svc(port=443, sched="sh", flags=1 | 8 | 16, timeout=300, netmask=0xFFFFFF00)
    sip = svc("udp", port=5060, sched="rr", flags=1 | 4, timeout=360, pe_name="sip")
    sctp = svc("sctp", port=9999, sched="rr", dests=[dest("10.0.0.2", 9999, "local", 0)])
    fw4 = svc(
        fwmark=1,
        sched="rr",
        flags=1,
        timeout=300,
        dests=[
            dest("10.0.0.5", 0, "tunnel", tun_type="gue", tun_port=6080, tun_flags=1),
            dest("10.0.0.4", 0, "tunnel"),
        ],
    )
    fw6 = svc(
        fwmark=2,
        family="inet6",
        flags=1,
        timeout=300,
        netmask=64,
        dests=[dest("2001:db8::5", 0, "tunnel", 1, tun_type="gre", tun_flags=0)],
    )
    v6 = svc(address="2001:db8::1", flags=1, timeout=100, dests=[dest("2001:db8::2", 80)])
    fnat = svc(
        address="10.0.0.9",
        sched="rr",
        dests=[dest("192.168.1.2", 8080, "fullnat", 2, proxy_protocol="v1")],
        laddrs=["192.168.0.1", "192.168.0.2"],
    )
    services = [fw6, fw4, v6, sctp, sip, fnat, tls, web]
    assert render_save(services, True) == (
        "-A -t 10.0.0.1:80 -s wlc\n"
        "-a -t 10.0.0.1:80 -r 10.0.0.2:80 -m -w 3\n"
        "-a -t 10.0.0.1:80 -r 10.0.0.3:80 -g -w 1\n"
        "-A -t 10.0.0.1:443 -s sh -p 300 -M 255.255.255.0 -b sh-fallback,sh-port\n"
        "-A -t 10.0.0.9:80 -s rr\n"
        "-a -t 10.0.0.9:80 -r 192.168.1.2:8080 --fullnat -w 2 --proxy-protocol v1\n"
        "--add-laddr -t 10.0.0.9:80 -z 192.168.0.1\n"
        "--add-laddr -t 10.0.0.9:80 -z 192.168.0.2\n"
        "-A -u 10.0.0.1:5060 -s rr -p 360 --pe sip -o\n"
        "-A --sctp-service 10.0.0.1:9999 -s rr\n"
        "-a --sctp-service 10.0.0.1:9999 -r 10.0.0.2:9999 -g -w 0\n"
        "-A -t [2001:db8::1]:80 -s wlc -p 100\n"
        "-a -t [2001:db8::1]:80 -r [2001:db8::2]:80 -g -w 1\n"
        "-A -f 1 -s rr -p 300\n"
        "-a -f 1 -r 10.0.0.4:0 -i -w 1 --tun-type ipip\n"
        "-a -f 1 -r 10.0.0.5:0 -i -w 1 --tun-type gue --tun-port 6080 --tun-csum\n"
        "-A -f 2 -6 -s wlc -p 300 -M 64\n"
        "-a -f 2 -6 -r [2001:db8::5]:0 -i -w 1 --tun-type gre --tun-nocsum\n"
    )


def test_save_pe_without_persistence_and_flags() -> None:
    # --pe is saved whether or not the service is persistent; -b after -o.
    s = svc("udp", port=53, sched="rr", flags=4 | 8 | 32, pe_name="sip")
    assert render_save([s], True) == "-A -u 10.0.0.1:53 -s rr --pe sip -o -b flag-1,flag-3\n"


def test_save_thresholds_are_not_saved() -> None:
    s = svc(dests=[dest("10.0.0.2", 80, "masq", 1, u_thresh=100, l_thresh=10)])
    assert render_save([s], True) == (
        "-A -t 10.0.0.1:80 -s wlc\n-a -t 10.0.0.1:80 -r 10.0.0.2:80 -m -w 1\n"
    )


def test_save_resolves_names_without_n() -> None:
    s = svc(dests=[dest("10.0.0.2", 80, "masq", 3), dest("10.0.0.3", 8080, "masq")])
    assert render_save([s], False, NAMES) == (
        "-A -t www.example.com:http -s wlc\n"
        "-a -t www.example.com:http -r real1:http -m -w 3\n"
        # a 28-column cut does not apply to -S
        "-a -t www.example.com:http -r 10.0.0.3:8080 -m -w 1\n"
    )
    assert render_save([s], True, NAMES).startswith("-A -t 10.0.0.1:80 -s wlc\n")


def test_save_has_no_header() -> None:
    assert render_save([], True) == ""


# ------------------------------------------------------------ -c


def conn(
    protocol: str,
    caddr: str,
    cport: int,
    vaddr: str,
    vport: int,
    daddr: str,
    dport: int,
    state: str,
    expires: float,
    **kw: Any,
) -> ConnJSON:
    c: dict[str, Any] = {
        "protocol": protocol,
        "family": fam(caddr),
        "caddr": caddr,
        "cport": cport,
        "vaddr": vaddr,
        "vport": vport,
        "daddr": daddr,
        "dport": dport,
        "state": state,
        "expires": expires,
        "fwd_method": "masq",
        "template": False,
        "fwmark": 0,
        "pe_name": "",
        "pe_data": "",
    }
    c.update(kw)
    return c  # type: ignore[return-value]


CONN_HEAD = (
    "IPVS connection entries\n"
    "pro expire state       source             virtual            destination\n"
)


def test_conns_numeric_literal() -> None:
    conns = [
        conn("tcp", "10.1.1.1", 40000, "10.0.0.1", 80, "10.0.0.2", 80, "ESTABLISHED", 899.7),
        conn("udp", "10.1.1.1", 5353, "10.0.0.1", 53, "10.0.0.3", 53, "UDP", 299.0),
        # persistence template of a TCP service: client port 0, state NONE
        conn("tcp", "10.1.1.0", 0, "10.0.0.1", 443, "10.0.0.2", 443, "NONE", 300.0),
        # template of fwmark 1: protocol IP, vaddr is the fwmark as address
        conn("ip", "10.1.1.1", 0, "0.0.0.1", 0, "10.0.0.5", 0, "NONE", 59.999),
        conn("tcp", "2001:db8::c", 1234, "2001:db8::1", 80, "2001:db8::2", 80, "SYN_RECV", 60),
        conn("sctp", "10.1.1.1", 5000, "10.0.0.1", 9999, "10.0.0.2", 9999, "ESTABLISHED", 6000),
    ]
    assert render_conns(conns, N) == CONN_HEAD + (
        "TCP 14:59  ESTABLISHED 10.1.1.1:40000     10.0.0.1:80        10.0.0.2:80\n"
        "UDP 04:59  UDP         10.1.1.1:5353      10.0.0.1:53        10.0.0.3:53\n"
        "TCP 05:00  NONE        10.1.1.0:0         10.0.0.1:443       10.0.0.2:443\n"
        "IP  00:59  NONE        10.1.1.1:0         0.0.0.1:0          10.0.0.5:0\n"
        "TCP 01:00  SYN_RECV    [2001:db8::c]:1234 [2001:db8::1]:80   [2001:db8::2]:80\n"
        "SCTP 100:00 ESTABLISHED 10.1.1.1:5000      10.0.0.1:9999      10.0.0.2:9999\n"
    )


@pytest.mark.parametrize(
    ("expires", "text"),
    [(0.0, "00:00"), (-3.0, "00:00"), (0.999, "00:00"), (1.0, "00:01"), (3599.5, "59:59")],
)
def test_conn_expire_truncates_to_seconds(expires: float, text: str) -> None:
    # jiffies_delta_to_msecs(expires - jiffies) / 1000, negative deltas are 0
    c = conn("udp", "10.1.1.1", 1, "10.0.0.1", 53, "10.0.0.3", 53, "UDP", expires)
    assert render_conns([c], N).splitlines()[2].startswith(f"UDP {text:<6} UDP ")


def test_conns_resolved() -> None:
    c = conn("tcp", "10.1.1.1", 40000, "10.0.0.1", 80, "10.0.0.2", 80, "ESTABLISHED", 10)
    tpl = conn("ip", "10.1.1.1", 0, "0.0.0.1", 0, "10.0.0.2", 80, "NONE", 10)
    r = FakeResolver(NAMES.hosts, {**NAMES.services, (0, "tcp"): "WRONG"})
    out = render_conns([c, tpl], ListFormat(), r)
    # "%-3s %-6s %-11s %-18s %-18s %s\n": long names push the columns right
    assert out == CONN_HEAD + (
        "TCP 00:10  ESTABLISHED client.example:40000 www.example.com:http real1:http\n"
        # protocol IP: no service names at all
        "IP  00:10  NONE        client.example:0   0.0.0.1:0          real1:80\n"
    )


def test_conns_persistent_conn_pe_columns() -> None:
    sip = conn(
        "udp",
        "10.1.1.1",
        5060,
        "10.0.0.1",
        5060,
        "10.0.0.2",
        5060,
        "UDP",
        100,
        pe_name="sip",
        pe_data="abc@host",
    )
    plain = conn("udp", "10.1.1.2", 5060, "10.0.0.1", 5060, "10.0.0.2", 5060, "UDP", 100)
    out = render_conns([sip, plain], ListFormat(numeric=True, persistent_conn=True))
    assert out == (
        "IPVS connection entries\n"
        # "pro expire %-11s %-18s %-18s %-18s %-16s %s\n"
        "pro expire state       source             virtual            destination"
        "        pe name          pe_data\n"
        # "%-3s %-6s %-11s %-18s %-18s %-16s %-18s %s\n"
        "UDP 01:40  UDP         10.1.1.1:5060      10.0.0.1:5060      10.0.0.2:5060    "
        "sip                abc@host\n"
        # no pe fields (sscanf gave 9): the plain row
        "UDP 01:40  UDP         10.1.1.2:5060      10.0.0.1:5060      10.0.0.2:5060\n"
    )
    # without --persistent-conn the pe fields are not shown
    assert render_conns([sip], N).splitlines()[2].endswith("10.0.0.2:5060")


def test_conns_empty() -> None:
    assert render_conns([], N) == CONN_HEAD


# ------------------------------------------------------------ --timeout / --daemon


def test_timeout() -> None:
    assert render_timeout({"tcp": 900, "tcpfin": 120, "udp": 300}) == (
        "Timeout (tcp tcpfin udp): 900 120 300\n"
    )


def daemon(state: str, **kw: Any) -> DaemonJSON:
    d: dict[str, Any] = {
        "state": state,
        "mcast_ifn": "eth0",
        "syncid": 0,
        "sync_maxlen": 0,
        "mcast_group": "",
        "mcast_port": 0,
        "mcast_ttl": 0,
    }
    d.update(kw)
    return d  # type: ignore[return-value]


def test_daemon() -> None:
    full = daemon(
        "master",
        syncid=1,
        sync_maxlen=1472,
        mcast_group="224.0.0.81",
        mcast_port=8848,
        mcast_ttl=1,
    )
    bare = daemon("backup", mcast_ifn="eth1", syncid=7)
    v6 = daemon("backup", mcast_group="ff02::1:81", mcast_port=8848)
    assert render_daemon([bare, full]) == (
        "master sync daemon (mcast=eth0, syncid=1, maxlen=1472, group=224.0.0.81, "
        "port=8848, ttl=1)\n"
        "backup sync daemon (mcast=eth1, syncid=7)\n"
    )
    assert render_daemon([v6]) == (
        "backup sync daemon (mcast=eth0, syncid=0, group=ff02::1:81, port=8848)\n"
    )
    assert render_daemon([]) == ""


# ------------------------------------------------------------ --json


def test_json_forms() -> None:
    s = svc(dests=[dest("10.0.0.3", 80), dest("10.0.0.2", 80)])
    other = svc(port=22)
    out = render_list([s, other], ListFormat(json=True))
    assert out.endswith("}\n") and out.startswith('{\n  "services": [\n')
    data = json.loads(out)
    assert [x["port"] for x in data["services"]] == [22, 80]
    assert [d["address"] for d in data["services"][1]["dests"]] == ["10.0.0.2", "10.0.0.3"]
    assert s["dests"][0]["address"] == "10.0.0.3"  # the input is not changed
    raw = json.loads(render_list([s, other], ListFormat(json=True, nosort=True)))
    assert raw == {"services": [s, other]}
    assert json.loads(render_service(s, ListFormat(json=True)))["services"][0]["port"] == 80
    c = conn("udp", "10.1.1.1", 1, "10.0.0.1", 53, "10.0.0.3", 53, "UDP", 1.5)
    assert json.loads(render_conns([c], ListFormat(json=True))) == {"connections": [c]}
    t: TimeoutJSON = {"tcp": 1, "tcpfin": 2, "udp": 3}
    assert (
        render_timeout(t, as_json=True)
        == json.dumps({"timeout": t}, sort_keys=True, indent=2) + "\n"
    )
    dm = daemon("master")
    assert json.loads(render_daemon([dm], as_json=True)) == {"daemons": [dm]}
