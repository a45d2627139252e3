"""lblcr against vectors derived by hand from net/netfilter/ipvs/ip_vs_lblcr.c.

Notation in comments: oh = overhead = activeconns * 256 + inactconns; dest
lists and sets are written head first (the last one added is the head).
"""

from __future__ import annotations

from ipaddress import ip_address

from pylvs.core import destlist
from pylvs.core.model import DEST_F_OVERLOAD, Service
from pylvs.sched.lblc import DEFAULT_EXPIRATION
from pylvs.sched.lblcr import LblcrScheduler, set_max, set_min
from pylvs.testing.builders import add, edit, packet, remove, service

X = "10.9.0.1"
XA = ip_address(X)


def make(expiration: float = DEFAULT_EXPIRATION) -> tuple[Service, LblcrScheduler]:
    svc = service("lblcr", expiration=expiration)
    sched = svc.sched
    assert isinstance(sched, LblcrScheduler)
    sched.arm_timer(svc, 0.0)
    return svc, sched


def go(svc: Service, daddr: str, now: float) -> object:
    assert svc.sched is not None
    return svc.sched.schedule(svc, packet(daddr=daddr), now)


def test_set_min_and_set_max_rules() -> None:
    svc, _ = make()
    r = add(svc, "10.0.0.4", weight=1)
    q = add(svc, "10.0.0.3", weight=2)
    p = add(svc, "10.0.0.2", weight=0)
    p.inactconns = 9999
    q.activeconns = 2  # oh 512
    q.flags |= DEST_F_OVERLOAD
    r.activeconns = 1  # oh 256
    # set_max: p has weight 0 -> q first (512); r: 512*1 < 256*2 is false -> q.
    # Flags are not looked at.
    assert set_max([p, q, r]) is q
    # set_min: p weight 0, q OVERLOAD -> r
    assert set_min([p, q, r]) is r
    q.flags &= ~DEST_F_OVERLOAD
    # set_min: q first (512); r: 512*1 > 256*2 is false -> q (ties keep the first)
    assert set_min([q, r]) is q
    r.activeconns = 0  # 512*1 > 0*2 -> r
    assert set_min([q, r]) is r
    r.flags |= DEST_F_OVERLOAD  # a flagged later member is skipped too
    assert set_min([q, r]) is q
    r.flags &= ~DEST_F_OVERLOAD
    # an unavailable member is never the pick
    remove(svc, r)
    assert set_min([q, r]) is q
    assert set_min([p]) is None
    assert set_max([p]) is None


def test_new_entry_then_sticks_to_its_set() -> None:
    svc, sched = make()
    add(svc, "10.0.0.2")
    b = add(svc, "10.0.0.3")
    c = add(svc, "10.0.0.4")  # list [c, b, a]
    assert go(svc, X, 0.0) is c  # all idle: the head
    assert sched.cached(XA) == [c]
    assert sched.lastmod(XA) == 0.0
    c.inactconns = 50  # least-connection would now pick b (50*1 > 0*1)
    assert go(svc, X, 1.0) is c  # c is not overloaded (0 active <= 1)
    assert sched.cached(XA) == [c]
    assert b.overhead() == 0


def test_set_grows_when_the_pick_is_overloaded() -> None:
    svc, sched = make()
    a = add(svc, "10.0.0.2")
    b = add(svc, "10.0.0.3")
    c = add(svc, "10.0.0.4")  # list [c, b, a]
    assert go(svc, X, 0.0) is c
    c.activeconns = 2  # 2 > 1 and b: 0*2 < 1 -> overloaded
    # least-connection: c(512); b: 512 > 0 -> b(0); a: 0 > 0 no -> b
    assert go(svc, X, 10.0) is b
    assert sched.cached(XA) == [b, c]
    assert sched.lastmod(XA) == 10.0
    # set_min([b, c]): b(0); c: 0 > 512 no -> b, not overloaded, set unchanged
    assert go(svc, X, 20.0) is b
    assert sched.lastmod(XA) == 10.0
    b.activeconns = 3  # oh 768: set_min -> c (768 > 512); c overloaded (a idle)
    # least-connection: c(512); b: 512 > 768 no; a: 512 > 0 -> a
    assert go(svc, X, 30.0) is a
    assert sched.cached(XA) == [a, b, c]
    assert sched.lastmod(XA) == 30.0


def test_growth_does_not_duplicate_a_member() -> None:
    svc, sched = make()
    a = add(svc, "10.0.0.2")
    c = add(svc, "10.0.0.4")  # list [c, a]
    assert go(svc, X, 0.0) is c
    c.activeconns = 2
    a.flags |= DEST_F_OVERLOAD  # a (0*2 < 1) still makes c "overloaded"...
    # ...but least-connection skips a and returns c, already in the set
    assert go(svc, X, 50.0) is c
    assert sched.cached(XA) == [c]
    assert sched.lastmod(XA) == 0.0


def test_set_shrinks_after_expiration_without_change() -> None:
    svc, sched = make()
    add(svc, "10.0.0.2")
    b = add(svc, "10.0.0.3")
    c = add(svc, "10.0.0.4")  # list [c, b, a]
    assert go(svc, X, 0.0) is c
    c.activeconns = 2
    assert go(svc, X, 100.0) is b  # grows to [b, c], lastmod 100
    c.activeconns = 1  # oh 256, not overloaded any more
    assert go(svc, X, 43200.0) is b  # keeps the entry in use
    # now > lastmod + 86400 is strict: 86500 is not after 86500
    assert go(svc, X, 86500.0) is b
    assert sched.cached(XA) == [b, c]
    # 86501: set_min -> b (0 vs 256); set_max: b(0); c: 0*1 < 256*1 -> c removed
    assert go(svc, X, 86501.0) is b
    assert sched.cached(XA) == [b]
    assert sched.lastmod(XA) == 86501.0


def test_shrink_may_remove_the_member_just_picked() -> None:
    svc, sched = make()
    a = add(svc, "10.0.0.2")
    b = add(svc, "10.0.0.3")
    c = add(svc, "10.0.0.4")  # list [c, b, a]
    assert go(svc, X, 0.0) is c
    c.activeconns = 2
    assert go(svc, X, 1.0) is b  # [b, c], lastmod 1
    c.activeconns = 0  # b and c now equal
    assert go(svc, X, 43200.0) is b
    # 86402 > 1 + 86400: the pick is made first (set_min -> head b), then
    # set_max also keeps the head b on a tie, so b is erased -- and returned.
    assert go(svc, X, 86402.0) is b
    assert sched.cached(XA) == [c]
    assert go(svc, X, 86403.0) is c
    assert a.overhead() == 0


def test_unusable_members_are_skipped_and_set_regrows() -> None:
    svc, sched = make()
    a = add(svc, "10.0.0.2")
    b = add(svc, "10.0.0.3")
    c = add(svc, "10.0.0.4")  # list [c, b, a]
    assert go(svc, X, 0.0) is c
    c.activeconns = 2
    assert go(svc, X, 1.0) is b  # [b, c]
    c.activeconns = 0
    remove(svc, b)  # b no longer available: set_min -> c
    assert go(svc, X, 2.0) is c
    assert sched.cached(XA) == [b, c]  # removed dests stay in the set
    edit(svc, c, weight=0)  # set_min -> None: least-connection over [c, a] -> a
    assert go(svc, X, 3.0) is a
    assert sched.cached(XA) == [a, b, c]
    assert sched.lastmod(XA) == 3.0


def test_no_destination() -> None:
    svc, sched = make()
    d = add(svc, "10.0.0.2", weight=0)
    assert go(svc, X, 0.0) is None
    assert sched.entries == 0
    edit(svc, d, weight=1)
    d.flags |= DEST_F_OVERLOAD
    assert go(svc, X, 0.0) is None


def test_full_expiration_check() -> None:
    # Full checks run on every 30th tick of the 60-s timer armed at 0, i.e. at
    # t = 1800 m; an entry goes when now >= lastuse + expiration.
    svc, sched = make()
    a = add(svc, "10.0.0.2")
    assert go(svc, X, 0.0) is a
    sched.run_timers(svc, 86399.0)
    assert sched.cached(XA) == [a]
    sched.run_timers(svc, 86400.0)
    assert sched.cached(XA) is None
    assert sched.entries == 0


def test_expire_runs_one_timer_tick() -> None:
    svc, sched = make(expiration=10.0)
    a = add(svc, "10.0.0.2")
    assert go(svc, X, 0.0) is a
    for t in range(1, 30):
        sched.expire(svc, float(t))  # counter 1 -> 30
    assert sched.cached(XA) == [a]
    sched.expire(svc, 30.0)  # full check: 30 >= 0 + 10
    assert sched.cached(XA) is None


def test_replacing_entries_keeps_an_exact_counter() -> None:
    svc, sched = make()
    add(svc, "10.0.0.2")
    b = add(svc, "10.0.0.3")
    go(svc, X, 0.0)
    b.activeconns = 2
    go(svc, X, 1.0)  # grows, but it is the same entry
    go(svc, "10.9.0.2", 2.0)
    assert sched.entries == 2


def test_done_service_flushes() -> None:
    svc, sched = make()
    a = add(svc, "10.0.0.2")
    go(svc, X, 0.0)
    destlist.unbind_scheduler(svc)
    assert sched.entries == 0
    assert sched.schedule(svc, packet(daddr=X), 1.0) is a
    assert sched.cached(XA) is None
