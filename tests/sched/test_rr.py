"""rr vectors derived by hand from net/netfilter/ipvs/ip_vs_rr.c.

Kernel facts used:
- init_service puts the cursor on the list head, and a new dest is linked at
  the head, so the first pick of a fresh service is the NEWEST dest;
- schedule scans the entries after the cursor, then (only when the cursor
  is not the head) the entries from the first one up to and including the
  cursor's own dest; OVERLOADed and weight-0 dests are skipped; a miss
  leaves the cursor alone;
- del_dest of the cursor's dest moves the cursor to the entry before it,
  so the next scan starts at the entry that followed the removed one;
- add_dest/upd_dest do nothing: the cursor keeps pointing at its dest.
"""

from __future__ import annotations

from pylvs.core.model import DEST_F_OVERLOAD, Dest, Service
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
    """Dests named A, B, C... in LIST order: added in reverse, since each
    add goes to the head.  Returns the service and the dests in list order."""
    svc = service("rr")
    dests: list[Dest] = []
    for i in reversed(range(len(weights))):
        d = add(svc, f"10.0.0.{i + 2}", 80, weights[i])
        d.extra["n"] = "ABCDEFGH"[i]
        dests.insert(0, d)
    assert svc.destinations == dests
    return svc, dests


def named(svc: Service, addr: str, weight: int, n: str) -> Dest:
    d = add(svc, addr, 80, weight)
    d.extra["n"] = n
    return d


def test_first_pick_is_newest_dest() -> None:
    svc = service("rr")
    named(svc, "10.0.0.2", 1, "A")
    named(svc, "10.0.0.3", 1, "B")
    named(svc, "10.0.0.4", 1, "C")
    # list is C, B, A (head insertion); cursor at head -> C first.
    assert names(svc, 7) == "CBACBAC"


def test_plain_cycle_in_list_order() -> None:
    svc, _ = make(1, 1, 1, 1)
    assert names(svc, 9) == "ABCDABCDA"


def test_weights_do_not_matter_except_zero() -> None:
    svc, _ = make(5, 0, 1, 100)
    assert names(svc, 7) == "ACDACDA"


def test_overloaded_dest_is_skipped_then_comes_back() -> None:
    svc, (_a, b, _c) = make(1, 1, 1)
    b.flags |= DEST_F_OVERLOAD
    assert names(svc, 3) == "ACA"
    b.flags &= ~DEST_F_OVERLOAD
    # cursor is on A -> B is next.
    assert names(svc, 4) == "BCAB"


def test_second_pass_rechecks_cursor_dest() -> None:
    svc, (a, _b, c) = make(1, 1, 1)
    assert names(svc, 2) == "AB"
    a.flags |= DEST_F_OVERLOAD
    c.flags |= DEST_F_OVERLOAD
    # after B: C (overloaded), wrap, A (overloaded), B itself -> B again.
    assert names(svc, 2) == "BB"


def test_no_usable_dest_keeps_cursor() -> None:
    svc, (a, b, c) = make(1, 1, 1)
    assert names(svc, 1) == "A"
    for d in (a, b, c):
        d.flags |= DEST_F_OVERLOAD
    assert names(svc, 2) == "--"
    b.flags &= ~DEST_F_OVERLOAD
    c.flags &= ~DEST_F_OVERLOAD
    a.flags &= ~DEST_F_OVERLOAD
    # cursor still on A.
    assert names(svc, 3) == "BCA"


def test_all_weight_zero_and_empty() -> None:
    svc = service("rr")
    assert pick(svc) is None
    svc, (_a, b) = make(0, 0)
    assert pick(svc) is None
    edit(svc, b, weight=2)
    assert names(svc, 2) == "BB"


def test_add_mid_sequence_goes_to_head() -> None:
    svc, _ = make(1, 1, 1)
    assert names(svc, 2) == "AB"
    named(svc, "10.0.0.9", 1, "D")  # list: D, A, B, C; cursor on B
    assert names(svc, 6) == "CDABCD"


def test_add_on_fresh_cursor_at_head() -> None:
    svc, _ = make(1, 1)
    named(svc, "10.0.0.9", 1, "D")  # cursor still at the head
    assert names(svc, 4) == "DABD"


def test_remove_cursor_dest_next_is_its_successor() -> None:
    svc, (_a, b, _c) = make(1, 1, 1)
    assert names(svc, 2) == "AB"
    remove(svc, b)  # cursor moves back to A
    assert names(svc, 3) == "CAC"


def test_remove_cursor_dest_at_list_start() -> None:
    svc, (a, _b, _c) = make(1, 1, 1)
    assert names(svc, 1) == "A"
    remove(svc, a)  # cursor moves back to the head
    assert names(svc, 3) == "BCB"


def test_remove_cursor_dest_at_list_end() -> None:
    svc, (_a, _b, c) = make(1, 1, 1)
    assert names(svc, 3) == "ABC"
    remove(svc, c)  # cursor moves back to B, nothing follows: wrap to A
    assert names(svc, 3) == "ABA"


def test_remove_other_dests_keeps_cursor() -> None:
    svc, (a, _b, _c, d) = make(1, 1, 1, 1)
    assert names(svc, 2) == "AB"
    remove(svc, a)  # in front of the cursor
    assert names(svc, 1) == "C"
    remove(svc, d)  # behind the cursor
    assert names(svc, 3) == "BCB"


def test_edit_weight_zero_quiesces() -> None:
    svc, (_a, b, _c) = make(1, 1, 1)
    assert names(svc, 1) == "A"
    edit(svc, b, weight=0)
    assert names(svc, 3) == "CAC"
    edit(svc, b, weight=3)
    assert names(svc, 3) == "ABC"


def test_remove_last_dest_then_add() -> None:
    svc, (a,) = make(1)
    assert names(svc, 1) == "A"
    remove(svc, a)
    assert pick(svc) is None
    named(svc, "10.0.0.7", 1, "Z")
    assert names(svc, 2) == "ZZ"
