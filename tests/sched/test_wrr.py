"""wrr vectors derived by hand from net/netfilter/ipvs/ip_vs_wrr.c.

Kernel facts used (mark = cl, cw, mw, di):
- di = gcd of the positive weights (1 if none), mw = max weight - (di - 1);
- init_service: cl = head, cw = mw (computed on the dests present then);
- add/del/upd (ip_vs_wrr_dest_changed): cl = head, di and mw recomputed;
  cw = mw if cw > mw or cw == 0, else if di > 1 cw = (cw / di) * di + 1.
  The builders bind the scheduler to an EMPTY service (mw = cw = 0), so the
  first add sets cw = mw = w - (w - 1) = 1, and later adds keep cw = 1:
  a service built with add() starts with one cw = 1 pass over the list;
- schedule continues after cl; a dest qualifies when not OVERLOADed and
  weight >= cw; at the end of the list cw -= di and the scan restarts at
  the head; cw <= 0 wraps to mw (and fails if this is the last pass or the
  scan began at the head); mw == 0 fails at once.

Dest letters are in LIST order (make() adds them in reverse because every
add goes to the head).
"""

from __future__ import annotations

from collections import Counter

from pylvs.core import destlist
from pylvs.core.model import DEST_F_OVERLOAD, Dest, Service
from pylvs.sched.wrr import WeightedRoundRobin
from pylvs.testing.builders import add, edit, packet, remove, service

PKT = packet()


def pick(svc: Service) -> Dest | None:
    assert svc.sched is not None
    return svc.sched.schedule(svc, PKT, 0.0)


def names(svc: Service, count: int) -> str:
    out = []
    for _ in range(count):
        d = pick(svc)
        out.append("-" if d is None else str(d.extra["n"]))
    return "".join(out)


def make(*weights: int) -> tuple[Service, list[Dest]]:
    svc = service("wrr")
    dests: list[Dest] = []
    for i in reversed(range(len(weights))):
        d = add(svc, f"10.0.0.{i + 2}", 80, weights[i])
        d.extra["n"] = "ABCDEFGH"[i]
        dests.insert(0, d)
    assert svc.destinations == dests
    return svc, dests


def mark(svc: Service) -> tuple[int, int, int, int]:
    s = svc.sched
    assert isinstance(s, WeightedRoundRobin)
    return s.cl, s.cw, s.mw, s.di


def test_mark_after_adds() -> None:
    svc, _ = make(4, 3, 2)
    # di = 1, mw = 4, cw stays at 1 from the first add.
    assert mark(svc) == (-1, 1, 4, 1)
    svc, _ = make(100, 50)
    # di = 50, mw = 100 - 49 = 51; cw: first add (weight 50) gave 1, then
    # di > 1: (1 / 50) * 50 + 1 = 1.
    assert mark(svc) == (-1, 1, 51, 50)


def test_432_list_order_abc() -> None:
    svc, _ = make(4, 3, 2)
    # cw=1: ABC | cw=4: A | cw=3: AB | cw=2: ABC | cw=1: ABC | cw=4: A | cw=3: AB
    assert names(svc, 3 + 9 + 3) == "ABC" + "A" + "AB" + "ABC" + "ABC" + "A" + "AB"


def test_432_newest_first() -> None:
    svc = service("wrr")
    for addr, w, n in (("10.0.0.2", 4, "A"), ("10.0.0.3", 3, "B"), ("10.0.0.4", 2, "C")):
        add(svc, addr, 80, w).extra["n"] = n
    # list is C2, B3, A4.
    # cw=1: CBA | cw=4: A | cw=3: BA | cw=2: CBA | cw=1: CBA | cw=4: A | cw=3: BA
    assert names(svc, 15) == "CBA" + "A" + "BA" + "CBA" + "CBA" + "A" + "BA"


def test_bind_with_existing_dests_starts_at_max_weight() -> None:
    svc, _ = make(4, 3, 2)
    destlist.bind_scheduler(svc, WeightedRoundRobin())
    assert mark(svc) == (-1, 4, 4, 1)
    # cw=4: A | cw=3: AB | cw=2: ABC | cw=1: ABC | again
    assert names(svc, 18) == ("A" + "AB" + "ABC" + "ABC") * 2


def test_511() -> None:
    svc, _ = make(5, 1, 1)
    # cw=1: ABC | cw=5,4,3,2: A A A A | cw=1: ABC | ...
    assert names(svc, 17) == "ABC" + "AAAA" + "ABC" + "AAAA" + "ABC"


def test_511_head_is_light() -> None:
    svc, _ = make(1, 1, 5)
    # cw=1: ABC | cw=5..2: CCCC | cw=1: ABC
    assert names(svc, 10) == "ABC" + "CCCC" + "ABC"


def test_22_is_plain_round_robin() -> None:
    svc, _ = make(2, 2)
    # di = 2, mw = 1: every pass is the cw = 1 pass.
    assert mark(svc) == (-1, 1, 1, 2)
    assert names(svc, 6) == "ABABAB"


def test_100_50() -> None:
    svc, _ = make(100, 50)
    # di = 50, mw = 51: cw alternates 1 (AB) and 51 (A).
    assert names(svc, 8) == "AB" + "A" + "AB" + "A" + "AB"


def test_50_100_list_order() -> None:
    svc, _ = make(50, 100)
    # cw=1: AB | cw=51: B | cw=1: AB
    assert names(svc, 8) == "AB" + "B" + "AB" + "B" + "AB"


def test_103_weight_zero_never_chosen() -> None:
    svc, _ = make(1, 0, 3)
    # di = 1, mw = 3. cw=1: A C | cw=3: C | cw=2: C | cw=1: A C
    assert mark(svc) == (-1, 1, 3, 1)
    assert names(svc, 9) == "AC" + "C" + "C" + "AC" + "C" + "C" + "A"


def test_overloaded_dest_skipped() -> None:
    svc, (_a, b, _c) = make(4, 3, 2)
    b.flags |= DEST_F_OVERLOAD
    # cw=1: A C | cw=4: A | cw=3: A | cw=2: A C | cw=1: A C | cw=4: A
    assert names(svc, 9) == "AC" + "A" + "A" + "AC" + "AC" + "A"


def test_all_weights_zero_no_available() -> None:
    svc, (_a, b) = make(0, 0)
    assert mark(svc) == (-1, 0, 0, 1)
    assert names(svc, 2) == "--"
    edit(svc, b, weight=3)
    # di = 3, mw = 1, cw was 0 -> 1.
    assert mark(svc) == (-1, 1, 1, 3)
    assert names(svc, 3) == "BBB"


def test_first_add_of_weight_one_sets_cw_from_zero() -> None:
    # adds: B (weight 1) into the empty service: cw 0 -> mw = 1; then A
    # (weight 0) at the head: di = 1, mw = 1, cw stays 1.
    svc, _ = make(0, 1)
    assert mark(svc) == (-1, 1, 1, 1)
    assert names(svc, 3) == "BBB"


def test_weight_one_after_all_zero() -> None:
    svc, (_a, b) = make(0, 0)
    edit(svc, b, weight=1)
    # cw was 0 -> mw = 1 (di = 1, so no rounding would have fixed it).
    assert mark(svc) == (-1, 1, 1, 1)
    assert names(svc, 3) == "BBB"


def test_empty_service() -> None:
    svc = service("wrr")
    assert pick(svc) is None


def test_all_overloaded_from_head_resets_cw_to_max() -> None:
    svc, dests = make(4, 3, 2)
    for d in dests:
        d.flags |= DEST_F_OVERLOAD
    # scan began at the head: cw 1 -> 0 wraps to mw=4 and fails there.
    assert pick(svc) is None
    assert mark(svc) == (-1, 4, 4, 1)
    for d in dests:
        d.flags &= ~DEST_F_OVERLOAD
    assert names(svc, 9) == "A" + "AB" + "ABC" + "ABC"


def test_all_overloaded_mid_list_stops_at_last() -> None:
    svc, dests = make(4, 3, 2)
    assert names(svc, 1) == "A"  # cl = A (0), cw = 1
    for d in dests:
        d.flags |= DEST_F_OVERLOAD
    # B, C fail at cw=1; wrap to 4 (restarted); cw=4,3,2 fail; cw=1 is the
    # last pass and scans only up to 'last' = A, failing there: cl = A.
    assert pick(svc) is None
    assert mark(svc) == (0, 1, 4, 1)
    for d in dests:
        d.flags &= ~DEST_F_OVERLOAD
    assert names(svc, 5) == "BC" + "A" + "AB"


def test_all_overloaded_after_full_last_pass_stops_at_head() -> None:
    svc, dests = make(4, 3, 2)
    assert names(svc, 4) == "ABC" + "A"  # cl = A, cw = 4
    for d in dests:
        d.flags |= DEST_F_OVERLOAD
    # B, C fail at cw=4; full scans at cw=3, 2 and 1 (the last pass) fail;
    # cw wraps to mw after the last pass: give up with cl = head, cw = mw.
    assert pick(svc) is None
    assert mark(svc) == (-1, 4, 4, 1)
    for d in dests:
        d.flags &= ~DEST_F_OVERLOAD
    assert names(svc, 6) == "A" + "AB" + "ABC"


def test_lone_survivor_is_found_behind_cursor() -> None:
    svc, (_a, b, c) = make(4, 3, 2)
    assert names(svc, 2) == "AB"  # cl = B, cw = 1
    b.flags |= DEST_F_OVERLOAD
    c.flags |= DEST_F_OVERLOAD
    # C fails, wrap to cw=4: A qualifies.
    assert names(svc, 3) == "AAA"


def test_add_mid_sequence_resets_to_head() -> None:
    svc, _ = make(4, 3, 2)
    assert names(svc, 4) == "ABC" + "A"  # now cl = A, cw = 4
    add(svc, "10.0.0.9", 80, 1).extra["n"] = "D"  # list: D A B C; cl = head
    assert mark(svc) == (-1, 4, 4, 1)
    # cw=4: A (again, from the head) | cw=3: AB | cw=2: ABC | cw=1: DABC |
    # cw=4: A | cw=3: AB
    assert names(svc, 13) == "A" + "AB" + "ABC" + "DABC" + "A" + "AB"


def test_remove_mid_sequence_rounds_cw() -> None:
    svc, (_a, b, _c) = make(4, 3, 2)
    assert names(svc, 6) == "ABC" + "A" + "AB"  # cl = B, cw = 3
    remove(svc, b)
    # di = gcd(4, 2) = 2, mw = 3, cw = (3 / 2) * 2 + 1 = 3.
    assert mark(svc) == (-1, 3, 3, 2)
    # cw=3: A | cw=1: AC | cw=3: A | cw=1: AC
    assert names(svc, 6) == "A" + "AC" + "A" + "AC"


def test_remove_rounds_cw_to_multiple_of_di_plus_one() -> None:
    svc, (_a, b, _c) = make(4, 3, 2)
    assert names(svc, 7) == "ABC" + "A" + "AB" + "A"  # cl = A, cw = 2
    remove(svc, b)
    # di = 2, mw = 3, cw = (2 / 2) * 2 + 1 = 3 (not 2).
    assert mark(svc) == (-1, 3, 3, 2)
    # cw=3: A | cw=1: AC | cw=3: A | cw=1: AC
    assert names(svc, 6) == "A" + "AC" + "A" + "AC"


def test_edit_weight_mid_sequence() -> None:
    svc, (a, _b, _c) = make(4, 3, 2)
    assert names(svc, 4) == "ABC" + "A"  # cl = A, cw = 4
    edit(svc, a, weight=1)
    # weights 1,3,2: di = 1, mw = 3, cw 4 > 3 -> 3.
    assert mark(svc) == (-1, 3, 3, 1)
    # cw=3: B | cw=2: BC | cw=1: ABC | cw=3: B
    assert names(svc, 7) == "B" + "BC" + "ABC" + "B"


def test_edit_weight_zero_mid_sequence() -> None:
    svc, (_a, b, _c) = make(4, 3, 2)
    edit(svc, b, weight=0)
    # weights 4,0,2: di = 2, mw = 3, cw = (1 / 2) * 2 + 1 = 1.
    assert mark(svc) == (-1, 1, 3, 2)
    # cw=1: AC | cw=3: A | cw=1: AC | cw=3: A
    assert names(svc, 8) == "AC" + "A" + "AC" + "A" + "AC"


def test_full_cycle_shares_equal_weights() -> None:
    for weights in ((4, 3, 2), (5, 1, 1), (2, 2), (100, 50), (1, 0, 3), (6, 4, 2, 0, 8)):
        svc, dests = make(*weights)
        warmup = sum(1 for w in weights if w > 0)  # the initial cw = 1 pass
        names(svc, warmup)
        total = sum(weights)
        counts = Counter(d.extra["n"] for d in (pick(svc) for _ in range(2 * total)) if d)
        assert counts == {d.extra["n"]: 2 * d.weight for d in dests if d.weight}, weights
