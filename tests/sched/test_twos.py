"""twos choices derived by hand from ip_vs_twos.c (get_random_u32_below).

Over usable dests (not OVERLOADed, weight > 0) total = sum(weights) + 1;
r1 then r2 are drawn from [0, total).  Walking the usable dests in list
order both are reduced by each weight; choice k is the first dest where
rk <= 0.  Choice 2 replaces choice 1 only when w2 * oh1 > w1 * oh2,
overhead oh = (activeconns << 8) + inactconns.

For weights 1, 2, 3 in list order (A, B, C): total = 7 and
r = 0, 1 -> A (1 - 1 = 0 <= 0);  r = 2, 3 -> B;  r = 4, 5, 6 -> C.
"""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from pylvs.core import destlist
from pylvs.core.model import DEST_F_OVERLOAD, Dest, Service
from pylvs.sched.twos import Twos
from pylvs.testing.builders import add, packet, service


class Scripted:
    """A RandomSource returning fixed values and recording the bounds."""

    def __init__(self, values: Iterable[int]) -> None:
        self.values = list(values)
        self.bounds: list[int] = []

    def __call__(self, n: int) -> int:
        self.bounds.append(n)
        v = self.values.pop(0)
        assert 0 <= v < n
        return v


def build(rows: list[tuple[int, int, int, bool]], rnd: Scripted) -> tuple[Service, list[Dest]]:
    """rows in LIST order: (weight, activeconns, inactconns, overloaded)."""
    svc = service("rr")  # any scheduler; rebound below
    dests: list[Dest] = []
    for idx in reversed(range(len(rows))):
        w, a, i, ovl = rows[idx]
        d = add(svc, f"10.0.3.{idx + 1}", 80, w)
        d.activeconns = a
        d.inactconns = i
        if ovl:
            d.flags |= DEST_F_OVERLOAD
        dests.insert(0, d)
    destlist.bind_scheduler(svc, Twos(random_below=rnd))
    return svc, dests


def run(rows: list[tuple[int, int, int, bool]], draws: tuple[int, int]) -> int | None:
    rnd = Scripted(draws)
    svc, dests = build(rows, rnd)
    assert svc.sched is not None
    got = svc.sched.schedule(svc, packet(), 0.0)
    assert not rnd.values  # exactly two draws
    if got is None:
        return None
    return dests.index(got)


IDLE = [(1, 0, 0, False), (2, 0, 0, False), (3, 0, 0, False)]


@pytest.mark.parametrize(("r", "want"), [(0, 0), (1, 0), (2, 1), (3, 1), (4, 2), (5, 2), (6, 2)])
def test_weighted_mapping_same_draw_twice(r: int, want: int) -> None:
    assert run(IDLE, (r, r)) == want


def test_bound_is_total_weight_plus_one() -> None:
    rnd = Scripted([0, 0])
    svc, _ = build(IDLE, rnd)
    assert svc.sched is not None
    svc.sched.schedule(svc, packet(), 0.0)
    assert rnd.bounds == [7, 7]


def test_tie_keeps_first_draw() -> None:
    # all idle: 3 * 0 > 1 * 0 is false -> choice 1
    assert run(IDLE, (0, 4)) == 0
    assert run(IDLE, (4, 0)) == 2


@pytest.mark.parametrize(
    ("rows", "draws", "want"),
    [
        # A loaded (256): choice 2 = C: 3 * 256 > 1 * 0 -> C
        ([(1, 1, 0, False), (2, 0, 0, False), (3, 0, 0, False)], (0, 4), 2),
        # A 256, C 768: 3 * 256 > 1 * 768 false (equal per weight) -> A
        ([(1, 1, 0, False), (2, 0, 0, False), (3, 3, 0, False)], (0, 4), 0),
        # A 256, C 512: 768 > 512 -> C
        ([(1, 1, 0, False), (2, 0, 0, False), (3, 2, 0, False)], (0, 4), 2),
        # inactive connections count: A 10, C 31 -> 3 * 10 > 1 * 31 false
        ([(1, 0, 10, False), (2, 0, 0, False), (3, 0, 31, False)], (0, 4), 0),
        ([(1, 0, 10, False), (2, 0, 0, False), (3, 0, 29, False)], (0, 4), 2),
        # choice 1 = C loaded (256), choice 2 = A idle: 1 * 256 > 3 * 0 -> A
        ([(1, 0, 0, False), (2, 0, 0, False), (3, 1, 0, False)], (4, 0), 0),
    ],
)
def test_compare_overhead_per_weight(
    rows: list[tuple[int, int, int, bool]], draws: tuple[int, int], want: int
) -> None:
    assert run(rows, draws) == want


def test_unusable_dests_are_not_counted() -> None:
    rows = [(5, 0, 0, True), (0, 0, 0, False), (3, 0, 0, False), (1, 0, 0, False)]
    # total = 3 + 1 + 1 = 5: r in 0..3 -> index 2, r = 4 -> index 3
    rnd = Scripted([3, 4])
    svc, dests = build(rows, rnd)
    assert svc.sched is not None
    got = svc.sched.schedule(svc, packet(), 0.0)
    assert rnd.bounds == [5, 5]
    assert got is dests[2]  # both idle: tie keeps choice 1
    assert run(rows, (4, 4)) == 3


def test_no_usable_dest_draws_nothing() -> None:
    rnd = Scripted([])
    svc, _ = build([(0, 0, 0, False), (2, 0, 0, True)], rnd)
    assert svc.sched is not None
    assert svc.sched.schedule(svc, packet(), 0.0) is None
    assert rnd.bounds == []


def test_default_random_source() -> None:
    svc = service("twos")
    a = add(svc, "10.0.3.1", 80, 1)
    b = add(svc, "10.0.3.2", 80, 0)
    assert svc.sched is not None
    for _ in range(50):
        assert svc.sched.schedule(svc, packet(), 0.0) is a
    assert b.weight == 0
