"""Engine behaviours: connection life, accounting, persistence, thresholds, quiescing."""

from __future__ import annotations

from ipaddress import ip_address

import pytest

from pylvs.core.conn import F_TEMPLATE, Conn
from pylvs.core.engine import DROP, NO_DEST, NO_SERVICE, Engine
from pylvs.core.model import (
    DEST_F_OVERLOAD,
    SVC_F_ONEPACKET,
    SVC_F_PERSISTENT,
    DestSpec,
    Fwd,
    Proto,
    ServiceKey,
    ServiceSpec,
)
from pylvs.core.proto_tcp import TH_ACK, TH_FIN, TH_RST, TH_SYN, TcpState

VIP = ip_address("10.0.0.1")
K = ServiceKey.inet(Proto.TCP, VIP, 80)


def mk(
    sched: str = "rr",
    flags: int = 0,
    timeout: int = 0,
    netmask: int | None = None,
    key: ServiceKey = K,
) -> Engine:
    e = Engine()
    e.table.add_service(ServiceSpec(key, sched, flags, timeout, netmask))
    return e


def add(
    e: Engine,
    addr: str,
    weight: int = 1,
    fwd: Fwd = Fwd.MASQ,
    port: int = 80,
    key: ServiceKey = K,
    **kw: int,
) -> None:
    e.table.add_dest(key, DestSpec(ip_address(addr), port, fwd, weight, **kw))  # type: ignore[arg-type]


def syn(
    e: Engine,
    client: str,
    cport: int,
    now: float,
    vport: int = 80,
    proto: int = Proto.TCP,
    fwmark: int = 0,
) -> Conn | int:
    return e.packet_in(
        proto, ip_address(client), cport, VIP, vport, now, flags=TH_SYN, size=60, fwmark=fwmark
    )


def dest_of(r: Conn | int) -> str:
    assert isinstance(r, Conn) and r.dest is not None
    return str(r.dest.addr)


def counts(e: Engine, key: ServiceKey = K) -> dict[str, tuple[int, int, int]]:
    svc = e.table.get(key)
    assert svc is not None
    return {str(d.addr): (d.activeconns, d.inactconns, d.persistconns) for d in svc.destinations}


def test_rr_first_pick_is_newest_and_stats_count() -> None:
    e = mk()
    add(e, "192.168.0.2")
    add(e, "192.168.0.3")
    picks = [dest_of(syn(e, "1.1.1.1", 1000 + i, 0.0)) for i in range(4)]
    assert picks == ["192.168.0.3", "192.168.0.2", "192.168.0.3", "192.168.0.2"]
    svc = e.table.get(K)
    assert svc is not None
    assert svc.stats.conns == 4 and svc.stats.inpkts == 4 and svc.stats.inbytes == 240
    assert e.table.tot_stats.conns == 4


def test_tcp_lifecycle_nat_accounting_and_expiry() -> None:
    e = mk()
    add(e, "192.168.0.2")
    cp = syn(e, "1.1.1.1", 1000, 0.0)
    assert isinstance(cp, Conn)
    assert cp.state == TcpState.SYN_RECV and counts(e)["192.168.0.2"] == (1, 0, 0)
    # The reply is found through the out index (real server -> client).
    assert cp.okey is not None
    assert e.conns.out_get(cp.okey) is cp
    e.packet_out(cp, 0.1, flags=TH_SYN | TH_ACK, size=60)
    assert cp.state == TcpState.SYN_RECV
    assert e.packet_in(Proto.TCP, ip_address("1.1.1.1"), 1000, VIP, 80, 0.2, flags=TH_ACK) is cp
    assert cp.state == TcpState.ESTABLISHED and cp.timeout == 900
    e.packet_in(Proto.TCP, ip_address("1.1.1.1"), 1000, VIP, 80, 1.0, flags=TH_FIN | TH_ACK)
    assert cp.state == TcpState.CLOSE_WAIT and counts(e)["192.168.0.2"] == (0, 1, 0)
    e.packet_out(cp, 1.1, flags=TH_FIN | TH_ACK)
    assert cp.state == TcpState.TIME_WAIT and cp.timeout == 120
    assert e.tick(100.0) == []
    assert e.tick(122.0) == [cp]
    assert counts(e)["192.168.0.2"] == (0, 0, 0) and len(e.conns) == 0
    assert e.conns.out_get(cp.okey) is None
    svc = e.table.get(K)
    assert svc is not None and svc.stats.outpkts == 2


def test_dr_uses_the_input_only_table() -> None:
    e = mk()
    add(e, "192.168.0.2", fwd=Fwd.DROUTE)
    cp = syn(e, "1.1.1.1", 1000, 0.0)
    assert isinstance(cp, Conn) and cp.okey is None  # no reply index for DR
    e.packet_in(Proto.TCP, ip_address("1.1.1.1"), 1000, VIP, 80, 0.1, flags=TH_ACK)
    e.packet_in(Proto.TCP, ip_address("1.1.1.1"), 1000, VIP, 80, 0.2, flags=TH_FIN | TH_ACK)
    # INPUT_ONLY: ESTABLISHED + fin -> FIN_WAIT (INPUT would give CLOSE_WAIT)
    assert cp.state == TcpState.FIN_WAIT


def test_unknown_traffic_and_no_dest() -> None:
    e = mk()
    assert syn(e, "1.1.1.1", 1000, 0.0) == NO_DEST  # service without real servers
    assert syn(e, "1.1.1.1", 1000, 0.0, vport=81) == NO_SERVICE
    add(e, "192.168.0.2")
    # A non-SYN packet without a connection is not scheduled.
    r = e.packet_in(Proto.TCP, ip_address("1.1.1.1"), 1000, VIP, 80, 0.0, flags=TH_ACK)
    assert r == NO_SERVICE


def test_udp_is_inactive_with_udp_timeout_and_one_packet() -> None:
    uk = ServiceKey.inet(Proto.UDP, VIP, 53)
    e = mk(key=uk)
    add(e, "192.168.0.2", port=53, key=uk)
    cp = e.packet_in(Proto.UDP, ip_address("1.1.1.1"), 5000, VIP, 53, 0.0, size=80)
    assert isinstance(cp, Conn) and cp.timeout == 300
    assert counts(e, uk)["192.168.0.2"] == (0, 1, 0)
    assert e.packet_in(Proto.UDP, ip_address("1.1.1.1"), 5000, VIP, 53, 1.0) is cp
    e.table.edit_service(ServiceSpec(uk, "rr", SVC_F_ONEPACKET))
    cp2 = e.packet_in(Proto.UDP, ip_address("1.1.1.2"), 5000, VIP, 53, 2.0)
    assert isinstance(cp2, Conn) and not cp2.alive
    assert e.conns.get(cp2.key) is None
    assert counts(e, uk)["192.168.0.2"] == (0, 1, 0)  # only the first flow remains
    e.conns.timeouts.set(0, 0, 10)
    e.packet_in(Proto.UDP, ip_address("1.1.1.1"), 5000, VIP, 53, 3.0)
    assert cp.timeout == 10


def test_weight_zero_drains() -> None:
    e = mk()
    add(e, "192.168.0.2")
    add(e, "192.168.0.3")
    cp = syn(e, "1.1.1.1", 1000, 0.0)
    assert dest_of(cp) == "192.168.0.3"
    e.table.edit_dest(K, DestSpec(ip_address("192.168.0.3"), 80, Fwd.MASQ, 0))
    # the existing connection goes on...
    assert e.packet_in(Proto.TCP, ip_address("1.1.1.1"), 1000, VIP, 80, 1.0, flags=TH_ACK) is cp
    # ...new ones avoid the quiescent server
    assert {dest_of(syn(e, "1.1.1.2", 2000 + i, 1.0)) for i in range(5)} == {"192.168.0.2"}


def test_upper_threshold_and_hysteresis() -> None:
    e = mk("wlc")
    add(e, "192.168.0.2", u_thresh=4)
    add(e, "192.168.0.3", weight=1)
    svc = e.table.get(K)
    assert svc is not None
    d2 = svc.find_dest(ip_address("192.168.0.2"), 80)
    assert d2 is not None
    conns = []
    for i in range(20):
        r = syn(e, "1.1.1.1", 1000 + i, 0.0)
        assert isinstance(r, Conn)
        conns.append(r)
    assert d2.activeconns == 4 and d2.flags & DEST_F_OVERLOAD
    # Without l_thresh the flag clears when total * 4 < u_thresh * 3, i.e. at 2.
    mine = [c for c in conns if c.dest is d2]
    e.conns.expire_now(mine[0], 1.0)
    assert d2.flags & DEST_F_OVERLOAD  # 3 * 4 = 12 is not < 12
    e.conns.expire_now(mine[1], 1.0)
    assert not d2.flags & DEST_F_OVERLOAD  # 2 * 4 = 8 < 12


def test_lower_threshold_hysteresis() -> None:
    e = mk("rr")
    add(e, "192.168.0.2", u_thresh=3, l_thresh=1)
    cs = [syn(e, "1.1.1.1", 1000 + i, 0.0) for i in range(3)]
    assert cs[2] != NO_DEST and syn(e, "1.1.1.1", 2000, 0.0) == NO_DEST
    for c in cs[:2]:
        assert isinstance(c, Conn)
        e.conns.expire_now(c, 0.0)
    assert syn(e, "1.1.1.1", 2001, 0.0) == NO_DEST  # total 1 is not < l_thresh 1
    assert isinstance(cs[2], Conn)
    e.conns.expire_now(cs[2], 0.0)
    assert isinstance(syn(e, "1.1.1.1", 2002, 0.0), Conn)


def test_persistence_templates_and_netmask() -> None:
    e = mk("rr", SVC_F_PERSISTENT, 300, 0xFFFFFF00)
    add(e, "192.168.0.2")
    add(e, "192.168.0.3")
    a = syn(e, "1.1.1.1", 1000, 0.0)
    b = syn(e, "1.1.1.77", 2000, 1.0)  # same /24: same template, same server
    c = syn(e, "1.1.2.1", 3000, 1.0)  # other network: rr moves on
    assert dest_of(a) == dest_of(b) == "192.168.0.3" and dest_of(c) == "192.168.0.2"
    assert isinstance(a, Conn) and a.control is not None and a.control.flags & F_TEMPLATE
    assert a.control is b.control and a.control.n_control == 2
    assert counts(e)["192.168.0.3"] == (2, 0, 1)
    tpl = a.control
    assert tpl.endpoints()[1] == 0 and tpl.endpoints()[3] == 80  # <caddr/24, 0, vip, 80>
    assert str(tpl.endpoints()[0]) == "1.1.1.0"
    # Connections close and expire; the template outlives them by its own timeout.
    for cp in (a, b):
        assert isinstance(cp, Conn)
        e.packet_in(Proto.TCP, cp.endpoints()[0], cp.endpoints()[1], VIP, 80, 2.0, flags=TH_ACK)
        e.packet_in(Proto.TCP, cp.endpoints()[0], cp.endpoints()[1], VIP, 80, 2.0, flags=TH_RST)
        assert cp.state == TcpState.CLOSE and cp.timeout == 10
    e.tick(20.0)
    assert counts(e)["192.168.0.3"] == (0, 0, 1)
    # The template was refreshed at 1.0 by the second connection: due at 301.
    e.tick(300.5)
    assert tpl.alive
    e.tick(302.0)
    assert not tpl.alive and counts(e)["192.168.0.3"] == (0, 0, 0)


def test_template_with_live_connections_is_retried_every_60s() -> None:
    e = mk("rr", SVC_F_PERSISTENT, 30)
    add(e, "192.168.0.2")
    a = syn(e, "1.1.1.1", 1000, 0.0)
    assert isinstance(a, Conn) and a.control is not None
    tpl = a.control
    e.packet_in(Proto.TCP, ip_address("1.1.1.1"), 1000, VIP, 80, 0.0, flags=TH_ACK)  # 900 s
    e.tick(31.0)
    assert tpl.alive and tpl.timeout == 60  # expire_later
    e.tick(92.0)
    assert tpl.alive
    assert dest_of(syn(e, "1.1.1.1", 1001, 93.0)) == "192.168.0.2"


def test_template_invalidated_when_dest_deleted() -> None:
    e = mk("rr", SVC_F_PERSISTENT, 300)
    add(e, "192.168.0.2")
    add(e, "192.168.0.3")
    a = syn(e, "1.1.1.1", 1000, 0.0)
    assert dest_of(a) == "192.168.0.3"
    e.table.del_dest(K, ip_address("192.168.0.3"), 80)
    # The old connection's server is gone: its packets are dropped (expire_nodest_conn=0).
    r = e.packet_in(Proto.TCP, ip_address("1.1.1.1"), 1000, VIP, 80, 1.0, flags=TH_ACK)
    assert r == DROP
    b = syn(e, "1.1.1.1", 1001, 1.0)
    assert dest_of(b) == "192.168.0.2"


def test_expire_quiescent_template() -> None:
    for sysctl_on, expected in ((0, "192.168.0.3"), (1, "192.168.0.2")):
        e = mk("rr", SVC_F_PERSISTENT, 300)
        e.sysctl.expire_quiescent_template = sysctl_on
        add(e, "192.168.0.2")
        add(e, "192.168.0.3")
        assert dest_of(syn(e, "1.1.1.1", 1000, 0.0)) == "192.168.0.3"
        e.table.edit_dest(K, DestSpec(ip_address("192.168.0.3"), 80, Fwd.MASQ, 0))
        assert dest_of(syn(e, "1.1.1.1", 1001, 1.0)) == expected


def test_port_zero_and_fwmark_persistence() -> None:
    k0 = ServiceKey.inet(Proto.TCP, VIP, 0)
    e = mk("rr", SVC_F_PERSISTENT, 300, key=k0)
    add(e, "192.168.0.2", port=0, key=k0)
    cp = syn(e, "1.1.1.1", 1000, 0.0, vport=443)
    assert isinstance(cp, Conn) and cp.dport == 443
    cp2 = syn(e, "1.1.1.1", 1001, 0.0, vport=80)
    assert isinstance(cp2, Conn) and cp.control is cp2.control  # one <caddr,0,vip,0> template
    fk = ServiceKey.mark(5)
    e.table.add_service(ServiceSpec(fk, "rr", SVC_F_PERSISTENT, 300))
    add(e, "192.168.0.9", port=0, key=fk)
    cp3 = syn(e, "1.1.1.1", 1002, 0.0, vport=8080, fwmark=5)
    assert isinstance(cp3, Conn) and cp3.control is not None
    assert cp3.control.protocol == 0  # <IPPROTO_IP, caddr, 0, fwmark, 0>
    assert cp3.fwmark == 5 and dest_of(cp3) == "192.168.0.9"


def test_conn_reuse_after_time_wait() -> None:
    e = mk()
    add(e, "192.168.0.2")
    add(e, "192.168.0.3")
    cp = syn(e, "1.1.1.1", 1000, 0.0)
    e.packet_in(Proto.TCP, ip_address("1.1.1.1"), 1000, VIP, 80, 0.1, flags=TH_ACK)
    e.packet_in(Proto.TCP, ip_address("1.1.1.1"), 1000, VIP, 80, 0.2, flags=TH_FIN | TH_ACK)
    e.packet_out(cp, 0.3, flags=TH_FIN | TH_ACK)  # type: ignore[arg-type]
    assert isinstance(cp, Conn) and cp.state == TcpState.TIME_WAIT
    again = syn(e, "1.1.1.1", 1000, 1.0)
    assert isinstance(again, Conn) and again is not cp and not cp.alive
    assert dest_of(again) == "192.168.0.2"  # rescheduled: rr moved on
    assert e.conns.get(again.key) is again


def test_expire_nodest_conn() -> None:
    e = mk()
    e.sysctl.expire_nodest_conn = 1
    add(e, "192.168.0.2")
    add(e, "192.168.0.3")
    cp = syn(e, "1.1.1.1", 1000, 0.0)
    assert dest_of(cp) == "192.168.0.3"
    e.table.del_dest(K, ip_address("192.168.0.3"), 80)
    r = e.packet_in(Proto.TCP, ip_address("1.1.1.1"), 1000, VIP, 80, 1.0, flags=TH_ACK)
    assert r == NO_SERVICE and isinstance(cp, Conn) and not cp.alive
    assert dest_of(syn(e, "1.1.1.1", 1000, 1.0)) == "192.168.0.2"


def test_deleted_dest_comes_back_with_its_connections() -> None:
    e = mk()
    add(e, "192.168.0.2")
    cp = syn(e, "1.1.1.1", 1000, 0.0)
    assert isinstance(cp, Conn)
    old = cp.dest
    e.table.del_dest(K, ip_address("192.168.0.2"), 80)
    add(e, "192.168.0.2", weight=3)
    svc = e.table.get(K)
    assert svc is not None and svc.destinations[0] is old and old.weight == 3
    assert old.activeconns == 1


@pytest.mark.parametrize("af_addr", ["2001:db8::1"])
def test_ipv6_service(af_addr: str) -> None:
    k6 = ServiceKey.inet(Proto.TCP, af_addr, 80)
    e = Engine()
    e.table.add_service(ServiceSpec(k6, "wrr", SVC_F_PERSISTENT, 300, 64))
    e.table.add_dest(k6, DestSpec(ip_address("2001:db8::10"), 80, Fwd.MASQ, 1))
    r = e.packet_in(
        Proto.TCP, ip_address("2001:db8:1::5"), 1000, ip_address(af_addr), 80, 0.0, flags=TH_SYN
    )
    assert isinstance(r, Conn) and r.control is not None
    assert str(r.control.endpoints()[0]) == "2001:db8:1::"


def test_zero_and_rates() -> None:
    e = mk()
    add(e, "192.168.0.2")
    e.tick(0.0)
    for i in range(100):
        syn(e, "1.1.1.1", 1000 + i, 1.0)
    e.tick(2.0)
    svc = e.table.get(K)
    assert svc is not None
    est = e.est.get(svc)
    assert est is not None and est.rates().cps > 0
    e.zero(K)
    assert svc.stats.conns == 0 and est.rates().cps == 0
