"""dh scheduler (ip_vs_dh.c).

Buckets are hash_32(fold(daddr), 8); hand-derived in test_sh.py's docstring:
10.0.0.1 -> 39, 10.0.0.2 -> 137, 10.0.0.3 -> 235, 10.0.0.5 -> 174,
10.0.0.8 -> 212, and any IPv6 address folding to 0x0A000001 -> 39.
The table gives bucket i to the (i mod n)-th dest in list order.
"""

from __future__ import annotations

from pylvs.core import destlist
from pylvs.core.model import (
    DEST_F_AVAILABLE,
    DEST_F_OVERLOAD,
    Dest,
    Proto,
    Service,
    ServiceKey,
    ServiceSpec,
)
from pylvs.sched.dh import DestinationHashing
from pylvs.testing.builders import add, edit, packet, remove


def _svc(addr: str = "192.0.2.1") -> Service:
    svc = Service(ServiceSpec(ServiceKey.inet(Proto.TCP, addr, 80), "dh", 0))
    destlist.bind_scheduler(svc, DestinationHashing())
    return svc


def _table(svc: Service) -> list[Dest | None]:
    sched = svc.sched
    assert isinstance(sched, DestinationHashing)
    return sched.buckets


def _pick(svc: Service, daddr: str, saddr: str = "198.51.100.7") -> Dest | None:
    assert svc.sched is not None
    return svc.sched.schedule(svc, packet(saddr, 40000, daddr, 80), 0.0)


def _three(weights: tuple[int, int, int] = (1, 1, 1)) -> tuple[Service, Dest, Dest, Dest]:
    svc = _svc()
    a = add(svc, "172.16.0.1", 80, weights[0])
    b = add(svc, "172.16.0.2", 80, weights[1])
    c = add(svc, "172.16.0.3", 80, weights[2])
    return svc, a, b, c  # list [c, b, a]


def test_empty() -> None:
    svc = _svc()
    assert _table(svc) == [None] * 256
    assert _pick(svc, "10.0.0.1") is None


def test_table_three_dests_ignores_weights() -> None:
    for weights in ((1, 1, 1), (5, 1, 3), (0, 7, 1)):
        svc, a, b, c = _three(weights)
        # 256 = 85 * 3 + 1
        assert _table(svc) == [c, b, a] * 85 + [c]


def test_pinned_lookups() -> None:
    svc, a, b, c = _three()
    # 39 % 3 = 0 -> c, 137 % 3 = 2 -> a, 235 % 3 = 1 -> b, 174 % 3 = 0 -> c
    assert _pick(svc, "10.0.0.1") is c
    assert _pick(svc, "10.0.0.2") is a
    assert _pick(svc, "10.0.0.3") is b
    assert _pick(svc, "10.0.0.5") is c
    # The source address plays no part.
    assert _pick(svc, "10.0.0.3", saddr="203.0.113.9") is b


def test_remove_dest_reassigns() -> None:
    svc, a, b, c = _three()
    remove(svc, b)
    assert _table(svc) == [c, a] * 128
    # 39, 137, 235 are odd -> a; 174, 212 even -> c
    assert _pick(svc, "10.0.0.1") is a
    assert _pick(svc, "10.0.0.3") is a
    assert _pick(svc, "10.0.0.5") is c
    assert _pick(svc, "10.0.0.8") is c


def test_unusable_owner_returns_none() -> None:
    svc, a, _b, c = _three()
    c.flags |= DEST_F_OVERLOAD
    assert _pick(svc, "10.0.0.1") is None
    assert _pick(svc, "10.0.0.2") is a  # others unaffected: no fallback
    c.flags &= ~DEST_F_OVERLOAD
    assert _pick(svc, "10.0.0.1") is c
    c.flags &= ~DEST_F_AVAILABLE
    assert _pick(svc, "10.0.0.1") is None


def test_weight_zero_owner_and_edit_keeps_table() -> None:
    svc, _a, _b, c = _three()
    before = list(_table(svc))
    edit(svc, c, weight=0)
    assert _table(svc) == before
    assert _pick(svc, "10.0.0.1") is None
    edit(svc, c, weight=4)
    assert _table(svc) == before
    assert _pick(svc, "10.0.0.1") is c


def test_ipv6_destination_address() -> None:
    svc = _svc("2001:db8::100")
    a = add(svc, "2001:db8::1", 80, 1)
    b = add(svc, "2001:db8::2", 80, 1)
    assert svc.sched is not None
    # a00::1 folds to 0x0A000001 -> bucket 39 (odd) -> a; 2001:db8::2001:db8 -> 0 -> b.
    pkt = packet("2001:db8::99", 40000, "a00::1", 80)
    assert svc.sched.schedule(svc, pkt, 0.0) is a
    pkt = packet("2001:db8::99", 40000, "2001:db8::2001:db8", 80)
    assert svc.sched.schedule(svc, pkt, 0.0) is b
