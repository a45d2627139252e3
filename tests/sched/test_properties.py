"""Property tests for rr, wrr, lc, wlc, sed, nq, fo, ovf and twos.

Under random add / edit (weights include 0) / remove / overload / counter /
schedule sequences, a chosen dest is never weight 0 or OVERLOADed and is
always in the service's list, and a scheduler answers None only when no
dest is eligible (ovf also needs activeconns <= weight).

wrr: once the dests stop changing, the kernel's (cl, cw) state always sits
on its periodic orbit, whose period is sum(weights) / gcd picks; so ANY
window of sum(weights) picks hands each dest exactly its weight.
"""

from __future__ import annotations

import random
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from pylvs.core import destlist
from pylvs.core.model import DEST_F_OVERLOAD, Dest, Service
from pylvs.sched.base import create, usable
from pylvs.sched.twos import Twos
from pylvs.sched.wrr import WeightedRoundRobin
from pylvs.testing.builders import add, edit, packet, remove, service

MINE = ["rr", "wrr", "lc", "wlc", "sed", "nq", "fo", "ovf", "twos"]
PKT = packet()

weights = st.one_of(st.sampled_from([0, 1]), st.integers(min_value=0, max_value=12))
# (kind, dest index or add weight, weight / overload flag / count, inactconns)
Op = tuple[str, int, int, int]
op = st.tuples(
    st.sampled_from(["add", "edit", "remove", "overload", "conns", "schedule"]),
    st.integers(0, 15),
    weights,
    st.integers(0, 20),
)


def eligible(name: str, d: Dest) -> bool:
    if name == "ovf":
        return usable(d) and d.activeconns <= d.weight
    return usable(d)


def make_service(name: str, seed: int) -> Service:
    if name == "twos":
        svc = service("rr")
        destlist.bind_scheduler(svc, Twos(random_below=random.Random(seed).randrange))
        return svc
    return service(name)


def check_pick(name: str, svc: Service) -> Dest | None:
    assert svc.sched is not None
    got = svc.sched.schedule(svc, PKT, 0.0)
    if got is None:
        assert not any(eligible(name, d) for d in svc.destinations), name
        return None
    assert any(d is got for d in svc.destinations), name
    assert got.weight > 0, name
    assert not got.flags & DEST_F_OVERLOAD, name
    assert eligible(name, got), name
    return got


def apply_ops(name: str, svc: Service, ops: list[Op]) -> None:
    added = 0
    for kind, x, y, z in ops:
        dests = svc.destinations
        if kind == "add":
            added += 1
            add(svc, f"10.1.{added // 256}.{added % 256}", 80, y)
        elif kind == "schedule":
            for _ in range(1 + x % 5):
                check_pick(name, svc)
        elif dests:
            d = dests[x % len(dests)]
            if kind == "edit":
                edit(svc, d, weight=y)
            elif kind == "remove":
                remove(svc, d)
            elif kind == "overload":
                if y % 2:
                    d.flags |= DEST_F_OVERLOAD
                else:
                    d.flags &= ~DEST_F_OVERLOAD
            elif kind == "conns":
                d.activeconns = y
                d.inactconns = z


@settings(max_examples=150, deadline=None)
@given(
    name=st.sampled_from(MINE),
    ops=st.lists(op, max_size=40),
    seed=st.integers(0, 2**32 - 1),
)
def test_choice_is_always_valid(name: str, ops: list[Op], seed: int) -> None:
    svc = make_service(name, seed)
    apply_ops(name, svc, ops)
    for _ in range(10):
        check_pick(name, svc)


@settings(max_examples=150, deadline=None)
@given(ops=st.lists(op, max_size=40))
def test_wrr_window_of_sum_weights_picks_matches_weights(ops: list[Op]) -> None:
    svc = service("wrr")
    apply_ops("wrr", svc, ops)
    for d in svc.destinations:
        d.flags &= ~DEST_F_OVERLOAD
    total = sum(d.weight for d in svc.destinations)
    picks = [check_pick("wrr", svc) for _ in range(2 * total)]
    counts = Counter(id(d) for d in picks if d is not None)
    assert None not in picks
    assert counts == Counter({id(d): 2 * d.weight for d in svc.destinations if d.weight})


@settings(max_examples=100, deadline=None)
@given(ws=st.lists(weights, min_size=1, max_size=8), cycles=st.integers(1, 3))
def test_wrr_fresh_bind_full_cycles(ws: list[int], cycles: int) -> None:
    svc = service("wrr")
    for i, w in enumerate(ws):
        add(svc, f"10.0.9.{i + 1}", 80, w)
    destlist.bind_scheduler(svc, WeightedRoundRobin())
    total = sum(ws)
    picks = [check_pick("wrr", svc) for _ in range(cycles * total)]
    counts = Counter(id(d) for d in picks if d is not None)
    assert counts == Counter({id(d): cycles * d.weight for d in svc.destinations if d.weight})


@settings(max_examples=100, deadline=None)
@given(ops=st.lists(op, max_size=40))
def test_rr_window_visits_each_usable_dest_once(ops: list[Op]) -> None:
    svc = service("rr")
    apply_ops("rr", svc, ops)
    live = [d for d in svc.destinations if usable(d)]
    picks = [check_pick("rr", svc) for _ in range(len(live))]
    assert sorted(id(d) for d in picks) == sorted(id(d) for d in live)


def test_all_registered() -> None:
    for name in MINE:
        s = create(name)
        assert s.name == name
