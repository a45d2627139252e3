"""fo and ovf choices derived by hand from ip_vs_fo.c and ip_vs_ovf.c.

Rows give the dests in LIST order as (weight, activeconns, overloaded).

- fo: the non-OVERLOADed dest with the highest weight; hw starts at 0 and
  only a strictly higher weight replaces, so weight 0 never wins and ties
  keep the earlier dest.  Connection counters are ignored.
- ovf: skip OVERLOADed dests, weight 0 and activeconns > weight (so
  activeconns == weight is still eligible); among the rest the highest
  weight, ties keep the earlier dest.
"""

from __future__ import annotations

import pytest

from pylvs.core.model import DEST_F_OVERLOAD, Service
from pylvs.testing.builders import add, edit, packet, service

Row = tuple[int, int, bool]
OVL = True


def build(sched: str, rows: list[Row]) -> Service:
    svc = service(sched)
    for idx in reversed(range(len(rows))):  # head insertion: add in reverse
        w, a, ovl = rows[idx]
        d = add(svc, f"10.0.2.{idx + 1}", 80, w)
        d.activeconns = a
        if ovl:
            d.flags |= DEST_F_OVERLOAD
    return svc


def index_of(svc: Service) -> int | None:
    assert svc.sched is not None
    got = svc.sched.schedule(svc, packet(), 0.0)
    if got is None:
        return None
    return next(k for k, d in enumerate(svc.destinations) if d is got)


FO = [
    ([(1, 0, False), (3, 0, False), (2, 0, False)], 1),
    ([(3, 0, False), (3, 0, False), (1, 0, False)], 0),
    ([(1, 0, False), (3, 0, False), (3, 0, False)], 1),
    ([(5, 0, OVL), (3, 0, False), (4, 0, False)], 2),
    # connections do not matter
    ([(2, 1000, False), (1, 0, False)], 0),
    ([(0, 0, False), (0, 0, False)], None),
    ([(0, 0, False), (7, 0, OVL)], None),
    ([], None),
]

OVF = [
    ([(1, 0, False), (3, 0, False)], 1),
    # activeconns == weight is still eligible
    ([(3, 3, False), (1, 0, False)], 0),
    # activeconns > weight overflows to the next; tie 2/2 keeps the earlier
    ([(3, 4, False), (2, 0, False), (2, 1, False)], 1),
    ([(3, 4, False), (2, 3, False), (2, 1, False)], 2),
    ([(0, 0, False), (1, 1, False)], 1),
    ([(0, 0, False), (1, 2, False)], None),
    ([(5, 0, OVL), (4, 0, False)], 1),
    ([], None),
]


@pytest.mark.parametrize(("rows", "want"), FO)
def test_fo(rows: list[Row], want: int | None) -> None:
    assert index_of(build("fo", rows)) == want


@pytest.mark.parametrize(("rows", "want"), OVF)
def test_ovf(rows: list[Row], want: int | None) -> None:
    assert index_of(build("ovf", rows)) == want


def test_fo_failover_and_back() -> None:
    svc = build("fo", [(10, 0, False), (5, 0, False), (1, 0, False)])
    assert index_of(svc) == 0
    primary = svc.destinations[0]
    edit(svc, primary, weight=0)
    assert index_of(svc) == 1
    svc.destinations[1].flags |= DEST_F_OVERLOAD
    assert index_of(svc) == 2
    edit(svc, primary, weight=10)
    assert index_of(svc) == 0


def test_ovf_fills_in_weight_order() -> None:
    # list: w2, w3.  Each pick adds one active connection to the chosen dest.
    svc = build("ovf", [(2, 0, False), (3, 0, False)])
    assert svc.sched is not None
    picks = []
    for _ in range(8):
        d = svc.sched.schedule(svc, packet(), 0.0)
        if d is None:
            picks.append("-")
            continue
        picks.append(str(d.weight))
        d.activeconns += 1
    # w3 takes conns while active <= 3 (4 picks: 0,1,2,3), then w2 takes
    # 3 picks (0,1,2), then nothing is eligible.
    assert "".join(picks) == "3333222-"
