"""lc / wlc / sed / nq choices derived by hand from the kernel sources
ip_vs_lc.c, ip_vs_wlc.c, ip_vs_sed.c and ip_vs_nq.c.

Each row gives the dests in LIST order as (weight, activeconns, inactconns,
overloaded) and the index the kernel picks (None = no destination).

- lc: overhead (a << 8) + i over dests that are not OVERLOADed and have
  weight != 0; strictly smaller replaces, so ties keep the earlier dest.
- wlc: first dest not OVERLOADed with weight > 0 starts; a later dest that is
  not OVERLOADed replaces it iff loh * w_dest > doh * w_least, overhead
  (a << 8) + i.
- sed: as wlc with overhead a + 1 (inactive ignored).
- nq: over dests not OVERLOADed with weight != 0 in list order; the first
  with a == 0 wins at once; else sed's overhead and comparison, first
  candidate accepted.
"""

from __future__ import annotations

import pytest

from pylvs.core.model import DEST_F_OVERLOAD, Service
from pylvs.testing.builders import add, packet, service

Row = tuple[int, int, int, bool]
OVL = True


def choose(sched: str, rows: list[Row]) -> int | None:
    svc: Service = service(sched)
    for idx in reversed(range(len(rows))):  # head insertion: add in reverse
        w, a, i, ovl = rows[idx]
        d = add(svc, f"10.0.1.{idx + 1}", 80, w)
        d.activeconns = a
        d.inactconns = i
        if ovl:
            d.flags |= DEST_F_OVERLOAD
    assert svc.sched is not None
    got = svc.sched.schedule(svc, packet(), 0.0)
    if got is None:
        return None
    return next(k for k, d in enumerate(svc.destinations) if d is got)


LC = [
    # overheads 256, 5, 300 -> index 1
    ([(1, 1, 0, False), (1, 0, 5, False), (1, 0, 300, False)], 1),
    # 256 vs 255: one active weighs 256 inactive
    ([(1, 1, 0, False), (1, 0, 255, False)], 1),
    # 256 vs 256: tie keeps the first
    ([(1, 1, 0, False), (1, 0, 256, False)], 0),
    ([(1, 0, 3, False), (1, 0, 3, False), (1, 0, 3, False)], 0),
    # weights are ignored by lc (except 0)
    ([(100, 0, 2, False), (1, 0, 1, False)], 1),
    # the idle dest is overloaded / quiesced
    ([(1, 0, 0, OVL), (1, 0, 1, False)], 1),
    ([(0, 0, 0, False), (1, 0, 1, False)], 1),
    ([(0, 0, 0, False), (1, 0, 0, OVL)], None),
    ([], None),
]

WLC = [
    # 256 * 2 > 256 * 1 -> the heavier one
    ([(1, 1, 0, False), (2, 1, 0, False)], 1),
    # 256 * 2 > 512 * 1 is false: equal load keeps the first
    ([(1, 1, 0, False), (2, 2, 0, False)], 0),
    ([(2, 2, 0, False), (1, 1, 0, False)], 0),
    # all idle: 0 * w > 0 * w never holds, the first usable dest wins
    ([(1, 0, 0, False), (100, 0, 0, False)], 0),
    # inactive connections count: (0<<8)+10 vs +9
    ([(1, 0, 10, False), (1, 0, 9, False)], 1),
    # first usable skips overloaded and weight 0
    ([(5, 0, 0, OVL), (0, 0, 0, False), (1, 0, 10, False), (1, 0, 9, False)], 3),
    # a later weight-0 dest can never win (256 * 0 > 0 * 1 is false)
    ([(1, 1, 0, False), (0, 0, 0, False)], 0),
    # overloaded later dest skipped even though it is lighter
    ([(1, 1, 0, False), (1, 0, 0, OVL)], 0),
    # 768 (w1) vs 512 (w3): 768*3 > 512*1 -> index 1; then 512 (w3) vs
    # 512 (w2): 512*2 > 512*3 false -> index 1 stays
    ([(1, 3, 0, False), (3, 2, 0, False), (2, 2, 0, False)], 1),
    # ... but 256 (w2): 512*2 = 1024 > 256*3 = 768 -> index 2
    ([(1, 3, 0, False), (3, 2, 0, False), (2, 1, 0, False)], 2),
    ([(0, 0, 0, False), (1, 0, 0, OVL)], None),
    ([], None),
]

SED = [
    # (a+1): 1*3 > 3*1 false -> tie keeps the first
    ([(1, 0, 0, False), (3, 2, 0, False)], 0),
    # 2*3 = 6 > 3*1 -> second
    ([(1, 1, 0, False), (3, 2, 0, False)], 1),
    # all idle: 1*3 > 1*1 -> heavier dest (unlike wlc)
    ([(1, 0, 0, False), (3, 0, 0, False)], 1),
    # inactive connections are ignored (wlc would pick index 1)
    ([(1, 0, 1000, False), (1, 0, 0, False)], 0),
    # 2*1 > 1*2 false
    ([(2, 1, 0, False), (1, 0, 0, False)], 0),
    # later weight 0 never wins: 6*0 > 1*1 false
    ([(1, 5, 0, False), (0, 0, 0, False)], 0),
    # first usable is index 2 (oh 5, w1); index 3: 5*2 > 10*1 false (tie)
    ([(5, 0, 0, OVL), (0, 0, 0, False), (1, 4, 0, False), (2, 9, 0, False)], 2),
    # ... and with a=8 (oh 9): 5*2 = 10 > 9 -> index 3
    ([(5, 0, 0, OVL), (0, 0, 0, False), (1, 4, 0, False), (2, 8, 0, False)], 3),
    ([(0, 0, 0, False)], None),
    ([], None),
]

NQ = [
    # the first idle dest wins at once, whatever the weights
    ([(10, 3, 0, False), (1, 0, 0, False), (1, 0, 0, False)], 1),
    ([(100, 1, 0, False), (1, 0, 0, False)], 1),
    # idle means activeconns == 0; inactive connections do not matter
    ([(1, 1, 0, False), (1, 0, 100, False)], 1),
    # idle but quiesced / overloaded does not count
    ([(0, 0, 0, False), (1, 2, 0, False)], 1),
    ([(1, 0, 0, OVL), (1, 2, 0, False)], 1),
    # no idle dest: sed rule, 2*3 > 3*1
    ([(1, 1, 0, False), (3, 2, 0, False)], 1),
    # 3*3 > 9*1 false: tie keeps the first
    ([(1, 2, 0, False), (3, 8, 0, False)], 0),
    ([(1, 2, 0, False), (3, 7, 0, False)], 1),
    ([(0, 0, 0, False), (1, 0, 0, OVL)], None),
    ([], None),
]


@pytest.mark.parametrize(("rows", "want"), LC)
def test_lc(rows: list[Row], want: int | None) -> None:
    assert choose("lc", rows) == want


@pytest.mark.parametrize(("rows", "want"), WLC)
def test_wlc(rows: list[Row], want: int | None) -> None:
    assert choose("wlc", rows) == want


@pytest.mark.parametrize(("rows", "want"), SED)
def test_sed(rows: list[Row], want: int | None) -> None:
    assert choose("sed", rows) == want


@pytest.mark.parametrize(("rows", "want"), NQ)
def test_nq(rows: list[Row], want: int | None) -> None:
    assert choose("nq", rows) == want


def test_wlc_tracks_counters_between_calls() -> None:
    svc = service("wlc")
    add(svc, "10.0.1.2", 80, 2)
    a = add(svc, "10.0.1.1", 80, 1)  # list: a, b
    assert svc.sched is not None
    picks = []
    for _ in range(6):
        d = svc.sched.schedule(svc, packet(), 0.0)
        assert d is not None
        picks.append("a" if d is a else "b")
        d.activeconns += 1
    # a(0,w1) vs b(0,w2): tie -> a.  a=256: 256*2 > 0 -> b.
    # a=256,b=256: 512 > 256 -> b.  b=512: 512 > 512 false -> a.
    # a=512,b=512: 1024 > 512 -> b.  b=768: 1024 > 768 -> b.
    assert "".join(picks) == "abbabb"
