"""lblc against vectors derived by hand from net/netfilter/ipvs/ip_vs_lblc.c.

Notation in comments: oh = overhead = activeconns * 256 + inactconns; the
service's dest list is head first (the last dest added is the head).
"""

from __future__ import annotations

from ipaddress import ip_address

from pylvs.core import destlist
from pylvs.core.model import DEST_F_OVERLOAD, Service
from pylvs.sched.lblc import DEFAULT_EXPIRATION, LblcScheduler, lblc_hashkey
from pylvs.testing.builders import add, edit, packet, remove, service

X = "10.9.0.1"
Y = "10.9.0.2"


def make(expiration: float = DEFAULT_EXPIRATION) -> tuple[Service, LblcScheduler]:
    svc = service("lblc", expiration=expiration)
    sched = svc.sched
    assert isinstance(sched, LblcScheduler)
    return svc, sched


def go(svc: Service, daddr: str, now: float) -> object:
    assert svc.sched is not None
    return svc.sched.schedule(svc, packet(daddr=daddr), now)


def test_hashkey_is_hash_32_of_host_order_address() -> None:
    # hash_32(v, 10) = (v * 0x61C88647 mod 2**32) >> 22
    # 10.0.0.1 = 0x0A000001: 0x0A000000*G mod 2**32 = 0xC6000000 (low byte of 10*G
    # is 0xC6), + G = 0x27C88647 -> top 10 bits 0b0010011111 = 159.
    assert lblc_hashkey(ip_address("10.0.0.1")) == 159
    # 0xC0A80002 * G mod 2**32 = 0x22290C8E -> 136
    assert lblc_hashkey(ip_address("192.168.0.2")) == 136
    # 0xC0A80005 * G mod 2**32 = 0x47829F63 -> 286
    assert lblc_hashkey(ip_address("192.168.0.5")) == 286
    # 0xC0A80003 * G mod 2**32 = 0x83F192D5 -> 527
    assert lblc_hashkey(ip_address("192.168.0.3")) == 527
    # IPv6 folds the four words by XOR: 0x20010DB8 ^ 0 ^ 0 ^ 1 = 0x20010DB9,
    # * G mod 2**32 = 0x3F01A44F -> 252
    assert lblc_hashkey(ip_address("2001:db8::1")) == 252


def test_first_choice_is_weighted_least_connection_then_sticks() -> None:
    svc, sched = make()
    a = add(svc, "10.0.0.2", weight=1)
    b = add(svc, "10.0.0.3", weight=1)
    c = add(svc, "10.0.0.4", weight=3)  # list [c, b, a]
    a.activeconns = 1  # oh 256
    b.inactconns = 10  # oh 10
    c.activeconns = 2  # oh 512
    # least=c (512); b: 512*1 > 10*3 -> b (10); a: 10*1 > 256*1 no -> b
    assert go(svc, X, 0.0) is b
    assert sched.cached(ip_address(X)) is b
    # Now b oh 1000: least=c(512); b: 512*1 > 1000*3 no; a: 512*1 > 256*3 no -> c.
    b.inactconns = 1000
    # X still goes to b: b has 0 active <= weight 1, so not overloaded.
    assert go(svc, X, 1.0) is b
    # A new address gets the current least-loaded choice.
    assert go(svc, Y, 2.0) is c
    assert sched.entries == 2


def test_tie_keeps_first_and_cross_multiplication_direction() -> None:
    svc, _ = make()
    a = add(svc, "10.0.0.2", weight=2)
    b = add(svc, "10.0.0.3", weight=1)  # list [b, a]
    a.activeconns, b.activeconns = 2, 1  # a 512/2 == b 256/1
    # least=b(256); a: 256*2 > 512*1 is 512 > 512: no -> stays b
    assert go(svc, "10.9.1.1", 0.0) is b
    a.activeconns = 1  # a 256/2 < b 256/1: 256*2 > 256*1 -> a
    assert go(svc, "10.9.1.2", 0.0) is a


def test_overload_rule_moves_the_entry_and_counter_drifts() -> None:
    svc, sched = make()
    a = add(svc, "10.0.0.2", weight=1)
    b = add(svc, "10.0.0.3", weight=4)  # list [b, a]
    assert go(svc, X, 0.0) is b  # all idle: head wins
    b.activeconns = 4  # == weight: not overloaded
    assert go(svc, X, 1.0) is b
    b.activeconns = 5  # > weight 4 and a: 0*2 < 1 -> overloaded
    # least=b(1280); a: 1280*1 > 0*4 -> a
    assert go(svc, X, 2.0) is a
    assert sched.cached(ip_address(X)) is a
    # ip_vs_lblc_new() unlinked the old entry without atomic_dec() and then
    # counted the new one: the kernel counter says 2 for 1 real entry.
    assert sched.entries == 2
    assert sched.table.real_size() == 1


def test_overload_rule_needs_a_lightly_loaded_dest() -> None:
    svc, _ = make()
    a = add(svc, "10.0.0.2", weight=1)
    b = add(svc, "10.0.0.3", weight=4)
    assert go(svc, X, 0.0) is b
    b.activeconns, a.activeconns = 5, 1
    # b: 5 > 4, but a: 1*2 < 1 no, b: 10 < 4 no -> not overloaded, although
    # least-connection would now pick a (1280*1 > 256*4).
    assert go(svc, X, 1.0) is b


def test_overload_rule_counts_a_flagged_light_dest() -> None:
    svc, _ = make()
    a = add(svc, "10.0.0.2", weight=1)
    c = add(svc, "10.0.0.4", weight=10)
    b = add(svc, "10.0.0.3", weight=4)  # list [b, c, a]
    assert go(svc, X, 0.0) is b  # all idle: head
    b.activeconns = 5  # 5 > 4
    c.activeconns = 5  # 5*2 < 10 is false: c is not "light"
    a.flags |= DEST_F_OVERLOAD  # a: 0*2 < 1 is light; its flag is not looked at
    # overloaded -> least-connection: b(1280); c: 1280*10 > 1280*4 -> c;
    # a skipped (OVERLOAD)
    assert go(svc, X, 1.0) is c


def test_overload_rule_counts_flagged_dests_but_reschedule_skips_them() -> None:
    svc, sched = make()
    a = add(svc, "10.0.0.2", weight=1)
    b = add(svc, "10.0.0.3", weight=4)
    assert go(svc, X, 0.0) is b
    b.activeconns = 5
    a.flags |= DEST_F_OVERLOAD  # a: 0*2 < 1 still makes b "overloaded"
    # re-schedule skips a -> b again; the entry already maps to b and is kept
    assert go(svc, X, 1.0) is b
    assert sched.entries == 1


def test_weight_zero_and_overload_flag_never_chosen() -> None:
    svc, sched = make()
    c = add(svc, "10.0.0.4", weight=1)
    b = add(svc, "10.0.0.3", weight=5)
    a = add(svc, "10.0.0.2", weight=0)
    assert svc.destinations == [a, b, c]
    b.flags |= DEST_F_OVERLOAD
    c.activeconns = 10
    # a skipped (weight 0), b skipped (OVERLOAD), c is the only candidate
    assert go(svc, X, 0.0) is c
    # weight 0 after the first candidate: 2560*0 > 0*1 is false
    svc2, _ = make()
    z = add(svc2, "10.0.0.2", weight=0)
    h = add(svc2, "10.0.0.3", weight=1)  # list [h, z]
    h.activeconns = 10
    assert z.overhead() == 0
    assert go(svc2, X, 0.0) is h
    # nothing usable: None and no entry
    c.flags |= DEST_F_OVERLOAD
    assert go(svc, Y, 1.0) is None
    assert sched.cached(ip_address(Y)) is None


def test_cached_dest_with_weight_zero_is_replaced() -> None:
    svc, sched = make()
    a = add(svc, "10.0.0.2")
    b = add(svc, "10.0.0.3")  # list [b, a]
    assert go(svc, X, 0.0) is b
    edit(svc, b, weight=0)
    assert go(svc, X, 1.0) is a
    assert sched.cached(ip_address(X)) is a


def test_cached_dest_with_overload_flag_is_still_used() -> None:
    # The hit path checks AVAILABLE, weight > 0 and is_overloaded() only.
    svc, _ = make()
    add(svc, "10.0.0.2")
    b = add(svc, "10.0.0.3")
    assert go(svc, X, 0.0) is b
    b.flags |= DEST_F_OVERLOAD
    assert go(svc, X, 1.0) is b


def test_removed_dest_is_not_available_any_more() -> None:
    svc, sched = make()
    a = add(svc, "10.0.0.2")
    b = add(svc, "10.0.0.3")
    assert go(svc, X, 0.0) is b
    remove(svc, b)
    # the entry still points at b until the next lookup replaces it
    assert sched.cached(ip_address(X)) is b
    assert go(svc, X, 1.0) is a
    assert sched.cached(ip_address(X)) is a


def test_full_expiration_every_30th_tick() -> None:
    # Timer armed at 0: ticks at 60k.  counter starts at 1 and ticks 1..29
    # raise it to 30, tick 30 does the full check and resets it to 1: full
    # checks at t = 1800, 3600, ... (every 1800 s).  An entry goes when
    # now >= lastuse + 86400 at a full check.
    svc, sched = make()
    a = add(svc, "10.0.0.2")
    sched.arm_timer(svc, 0.0)
    assert go(svc, X, 0.0) is a
    assert go(svc, Y, 100.0) is a
    sched.run_timers(svc, 86399.0)
    assert sched.cached(ip_address(X)) is a
    sched.run_timers(svc, 86400.0)  # 48th full check: 86400 >= 0 + 86400
    assert sched.cached(ip_address(X)) is None
    assert sched.cached(ip_address(Y)) is a  # 86400 < 100 + 86400
    sched.run_timers(svc, 88199.0)
    assert sched.cached(ip_address(Y)) is a  # no full check before 88200
    sched.run_timers(svc, 88200.0)
    assert sched.cached(ip_address(Y)) is None
    assert sched.entries == 0


def test_schedule_runs_due_timer_ticks_first() -> None:
    def setup() -> tuple[Service, object, object]:
        svc, sched = make()
        a = add(svc, "10.0.0.2")
        b = add(svc, "10.0.0.3")  # list [b, a]
        sched.arm_timer(svc, 0.0)
        assert go(svc, X, 0.0) is b
        b.inactconns = 5  # least-connection now prefers a
        return svc, a, b

    svc1, _, b1 = setup()
    assert go(svc1, X, 86340.0) is b1  # last full check (84600) kept it
    svc2, a2, _ = setup()
    assert go(svc2, X, 86400.0) is a2  # the full check due at 86400 ran first


def test_expire_is_one_timer_run() -> None:
    svc, sched = make(expiration=5.0)
    a = add(svc, "10.0.0.2")
    sched.arm_timer(svc, 0.0)
    assert go(svc, X, 0.0) is a
    for t in range(1, 30):  # counter 1 -> 30, no full check yet
        sched.expire(svc, float(t))
    assert sched.cached(ip_address(X)) is a
    sched.expire(svc, 30.0)  # counter % 30 == 0: full check, 30 >= 0 + 5
    assert sched.cached(ip_address(X)) is None
    assert sched.table.counter == 1
    assert sched.table.next_due == 90.0  # re-armed 60 s after this run


def test_timer_arms_itself_on_first_use() -> None:
    svc, sched = make()
    add(svc, "10.0.0.2")
    go(svc, X, 5.0)
    assert sched.table.next_due == 65.0


def test_expiration_sysctl() -> None:
    svc, sched = make(expiration=3600.0)
    a = add(svc, "10.0.0.2")
    sched.arm_timer(svc, 0.0)
    assert go(svc, X, 0.0) is a
    sched.run_timers(svc, 1800.0)  # first full check: 1800 < 3600, kept
    assert sched.cached(ip_address(X)) is a
    sched.run_timers(svc, 3599.0)
    assert sched.cached(ip_address(X)) is a
    sched.run_timers(svc, 3600.0)  # second full check
    assert sched.cached(ip_address(X)) is None


def test_idle_entries_are_not_collected_below_max_size() -> None:
    svc, sched = make()
    add(svc, "10.0.0.2")
    sched.arm_timer(svc, 0.0)
    go(svc, X, 0.0)
    sched.run_timers(svc, 1799.0)  # 29 ticks, table far below 16384
    assert sched.entries == 1
    assert sched.table.counter == 30


def test_garbage_collection_over_max_size_walks_buckets_from_rover() -> None:
    # Three stale entries in buckets 136 (192.168.0.2), 286 (192.168.0.5)
    # and 527 (192.168.0.3) (see the hash vectors above).  The table is filled
    # past max_size = 1024*16 = 16384 with fresh entries.  A tick with
    # entries > max_size has goal = (entries - 16384)*4/3, walks the buckets
    # from rover+1 dropping entries idle >= 360 s, and stops after the bucket
    # where goal reaches 0, leaving the rover there.
    svc, sched = make()
    add(svc, "10.0.0.2")
    sched.arm_timer(svc, 0.0)
    stale = ["192.168.0.2", "192.168.0.5", "192.168.0.3"]
    for s in stale:
        go(svc, s, 0.0)
    base = int(ip_address("10.128.0.0"))
    for i in range(16382):
        go(svc, str(ip_address(base + i)), 400.0)  # ticks 60..360: counter 1 -> 7
    assert sched.entries == 16385
    assert sched.table.counter == 7
    sched.run_timers(svc, 420.0)  # goal = 1*4/3 = 1: bucket 136 drops 192.168.0.2
    assert sched.cached(ip_address(stale[0])) is None
    assert sched.cached(ip_address(stale[1])) is not None
    assert sched.cached(ip_address(stale[2])) is not None
    assert sched.table.rover == 136
    assert sched.entries == 16384
    assert sched.table.counter == 7  # a GC run does not count
    go(svc, str(ip_address(base + 20000)), 430.0)
    assert sched.entries == 16385
    sched.run_timers(svc, 480.0)  # from bucket 137: 286 drops 192.168.0.5
    assert sched.cached(ip_address(stale[1])) is None
    assert sched.cached(ip_address(stale[2])) is not None
    assert sched.table.rover == 286
    assert sched.entries == 16384


def test_done_service_flushes_and_stops_caching() -> None:
    svc, sched = make()
    a = add(svc, "10.0.0.2")
    go(svc, X, 0.0)
    destlist.unbind_scheduler(svc)
    assert sched.entries == 0
    assert sched.cached(ip_address(X)) is None
    assert sched.schedule(svc, packet(daddr=X), 1.0) is a
    assert sched.cached(ip_address(X)) is None  # dead table: no new entries
    destlist.bind_scheduler(svc, sched)  # init_service: a fresh table
    assert go(svc, X, 2.0) is a
    assert sched.cached(ip_address(X)) is a
