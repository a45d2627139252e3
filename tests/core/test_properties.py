"""Engine-level properties under random rule changes and traffic (hypothesis)."""

from __future__ import annotations

from ipaddress import IPv4Address

from hypothesis import given, settings
from hypothesis import strategies as st

from pylvs.core.conn import F_TEMPLATE, Conn
from pylvs.core.engine import Engine
from pylvs.core.model import DEST_F_OVERLOAD, DestSpec, Fwd, Proto, ServiceKey, ServiceSpec
from pylvs.core.proto_tcp import TH_ACK, TH_RST, TH_SYN
from pylvs.sched import base

VIP = IPv4Address("10.0.0.1")
K = ServiceKey.inet(Proto.TCP, VIP, 80)
# lblc/lblcr keep using a cached server while the kernel's own overload rule
# allows it, without looking at the OVERLOAD flag (ip_vs_lblc_schedule): for
# them only weight 0 is excluded.  tests/sched/test_lblc.py pins that case.
FLAG_BLIND_ON_CACHE_HIT = {"lblc", "lblcr"}

op = st.one_of(
    st.tuples(st.just("add"), st.integers(0, 7), st.integers(0, 5), st.integers(0, 4)),
    st.tuples(st.just("edit"), st.integers(0, 7), st.integers(0, 5), st.integers(0, 4)),
    st.tuples(st.just("del"), st.integers(0, 7), st.just(0), st.just(0)),
    st.tuples(st.just("conn"), st.integers(0, 50), st.integers(0, 3), st.just(0)),
    st.tuples(st.just("close"), st.integers(0, 1000), st.just(0), st.just(0)),
    st.tuples(st.just("tick"), st.integers(1, 200), st.just(0), st.just(0)),
)


def spec(i: int, weight: int, u: int) -> DestSpec:
    return DestSpec(IPv4Address(0xC0A80000 + i), 80, Fwd.MASQ, weight, u, 0)


@settings(max_examples=60, deadline=None)
@given(sched=st.sampled_from(base.names()), ops=st.lists(op, max_size=80))
def test_new_connections_never_go_to_quiescent_or_overloaded(
    sched: str, ops: list[tuple[str, int, int, int]]
) -> None:
    e = Engine()
    e.table.add_service(ServiceSpec(K, sched))
    svc = e.table.get(K)
    assert svc is not None
    now = 0.0
    live: list[Conn] = []
    cport = 1024
    for name, a, b, c in ops:
        present = {int(d.addr) - 0xC0A80000: d for d in svc.destinations}
        if name == "add" and a not in present:
            e.table.add_dest(K, spec(a, b, c))
        elif name == "edit" and a in present:
            e.table.edit_dest(K, spec(a, b, c))
        elif name == "del" and a in present:
            e.table.del_dest(K, present[a].addr, 80)
        elif name == "conn":
            before = {d: (d.weight, bool(d.flags & DEST_F_OVERLOAD)) for d in svc.destinations}
            cport += 1
            client = IPv4Address(0x01010100 + a)
            r = e.packet_in(Proto.TCP, client, cport, VIP, 80, now, flags=TH_SYN)
            if isinstance(r, Conn):
                assert r.dest in before
                weight, overloaded = before[r.dest]
                assert weight > 0
                if sched not in FLAG_BLIND_ON_CACHE_HIT:
                    assert not overloaded
                if b:
                    e.packet_in(Proto.TCP, client, cport, VIP, 80, now, flags=TH_ACK)
                live.append(r)
        elif name == "close" and live:
            cp = live.pop(a % len(live))
            _, cport_, _, _, _, _ = cp.endpoints()
            e.packet_in(Proto.TCP, cp.endpoints()[0], cport_, VIP, 80, now, flags=TH_RST)
        elif name == "tick":
            now += a
            e.tick(now)
        # Invariant: dest counters equal the live entries bound to each dest.
        for d in svc.destinations:
            mine = [x for x in e.conns.tab.values() if x.dest is d]
            assert d.persistconns == sum(1 for x in mine if x.flags & F_TEMPLATE)
            conns = [x for x in mine if not x.flags & F_TEMPLATE]
            assert d.activeconns == sum(1 for x in conns if not x.inactive)
            assert d.inactconns == sum(1 for x in conns if x.inactive)
