"""``Engine.report`` (a proxy's FIN/RST report) is ``account`` then ``conn_in`` or
``packet_out``: two engines fed the same connection lives, one each way, agree on every
counter, state, timer and sync call."""

from __future__ import annotations

from ipaddress import ip_address

from hypothesis import given, settings
from hypothesis import strategies as st

from pylvs.core.conn import Conn
from pylvs.core.engine import Engine
from pylvs.core.model import DestSpec, Fwd, Proto, ServiceKey, ServiceSpec
from pylvs.core.proto_tcp import TH_ACK, TH_FIN, TH_RST, TH_SYN

VIP = ip_address("10.0.0.1")
K = ServiceKey.inet(Proto.TCP, VIP, 80)

# (inbound, flags, in packets, in bytes, out packets, out bytes, seconds later)
step = st.tuples(
    st.booleans(),
    st.sampled_from([TH_FIN | TH_ACK, TH_RST | TH_ACK, TH_RST, TH_ACK]),
    st.integers(0, 5),
    st.integers(0, 10_000),
    st.integers(0, 5),
    st.integers(0, 10_000),
    st.floats(0, 200),
)


def engine(synced: list[tuple[int, float]]) -> Engine:
    e = Engine()
    e.table.add_service(ServiceSpec(K, "rr", 0, 0, None))
    e.table.add_dest(K, DestSpec(ip_address("192.168.1.1"), 80, Fwd.MASQ, 1))
    e.sync = lambda cp, now: synced.append((cp.in_pkts, now))
    return e


def snapshot(e: Engine, cp: Conn) -> tuple[object, ...]:
    assert cp.dest is not None
    stats = [
        (s.inpkts, s.inbytes, s.outpkts, s.outbytes)
        for s in (cp.dest.stats, cp.dest.svc.stats, e.table.tot_stats)
    ]
    return (
        stats,
        cp.state,
        cp.in_pkts,
        cp.timeout,
        cp.expires,
        cp.dest.activeconns,
        cp.dest.inactconns,
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(step, max_size=6))
def test_report_is_account_then_the_packet(
    steps: list[tuple[bool, int, int, int, int, int, float]],
) -> None:
    synced_a: list[tuple[int, float]] = []
    synced_b: list[tuple[int, float]] = []
    a, b = engine(synced_a), engine(synced_b)
    now = 1000.0
    conns = []
    for e in (a, b):
        cp = e.packet_in(Proto.TCP, ip_address("10.9.0.1"), 40000, VIP, 80, now, flags=TH_SYN)
        assert isinstance(cp, Conn)
        e.established(cp, now)
        conns.append(cp)
    ca, cb = conns
    for inbound, flags, ip, ib, op, ob, later in steps:
        ib, ob = (ib if ip else 0), (ob if op else 0)  # a relay counts bytes with its reads
        now += later
        a.report(ca, now, inbound, flags, ip, ib, op, ob)
        if ip or op:
            b.account(cb, now, ip, ib, op, ob)
        if inbound:
            b.conn_in(cb, now, flags, 0)
        else:
            b.packet_out(cb, now, flags=flags)
        assert snapshot(a, ca) == snapshot(b, cb)
    assert synced_a == synced_b
