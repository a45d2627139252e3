"""mh scheduler (ip_vs_mh.c) and the SipHash primitives (lib/siphash.c).

Where the expected values come from:

- SipHash-2-4 / hsiphash vectors: the published reference vectors (key
  00..0f, message 00..n-1), as listed in the kernel's siphash KUnit test;
  the hsiphash ones are those of 64-bit kernels (SipHash-1-3, low 32 bits).
- Slot counts per dest: derived by hand from the population rounds (they do
  not depend on the hash): each round gives every dest ``turns`` slots in
  list order until all 4093 slots are taken.
- Offsets, skips, client slots and owners for dests 172.16.0.{1,2,3}:80:
  computed by a separate C program written from the SipHash paper and the
  kernel's populate loop (not from this Python code); that program also
  reproduces the kernel vector hsiphash(00 01 02 03) = 0x88d38328.
"""

from __future__ import annotations

from ipaddress import ip_address

import pytest

from pylvs.core import destlist
from pylvs.core.errors import IPVSError
from pylvs.core.model import (
    DEST_F_OVERLOAD,
    SVC_F_MH_FALLBACK,
    SVC_F_MH_PORT,
    Dest,
    Proto,
    Service,
    ServiceKey,
    ServiceSpec,
)
from pylvs.sched.hashing import hsiphash, siphash
from pylvs.sched.mh import (
    MH_HASH1,
    MH_HASH2,
    MaglevHashing,
    mh_gcd_weight,
    mh_hashkey,
    mh_shift_weight,
)
from pylvs.testing.builders import add, edit, packet, remove

KEY = (0x0706050403020100, 0x0F0E0D0C0B0A0908)
M = 4093

# --- SipHash primitives ---------------------------------------------------------


def test_siphash_2_4_reference_vectors() -> None:
    assert siphash(b"", KEY) == 0x726FDB47DD0E0E31
    assert siphash(bytes(range(1)), KEY) == 0x74F839C593DC67FD
    assert siphash(bytes(range(4)), KEY) == 0xCF2794E0277187B7
    assert siphash(bytes(range(8)), KEY) == 0x93F5F5799A932462
    assert siphash(bytes(range(15)), KEY) == 0xA129CA6149BE45E5
    assert siphash(bytes(range(16)), KEY) == 0x3F2ACC7F57C29BDB
    assert siphash(bytes(range(63)), KEY) == 0x958A324CEB064572


def test_hsiphash_64bit_kernel_vectors() -> None:
    assert hsiphash(b"", KEY) == 0x050FC4DC
    assert hsiphash(bytes(range(1)), KEY) == 0x7D57CA93
    assert hsiphash(bytes(range(4)), KEY) == 0x88D38328  # the 4-byte case mh uses
    assert hsiphash(bytes(range(8)), KEY) == 0x8D299A8E
    assert hsiphash(bytes(range(15)), KEY) == 0x2A519956
    assert hsiphash(bytes(range(63)), KEY) == 0xB7BBB3A8


def test_mh_keys() -> None:
    assert MH_HASH1 == (2654435761, 2654435761)
    assert MH_HASH2 == (2654446892, 2654446892)


def test_mh_hashkey_pinned() -> None:
    v4 = 2

    def off(a: str) -> int:
        return mh_hashkey(v4, ip_address(a), 80, MH_HASH1, 0) % M

    def skip(a: str) -> int:
        return mh_hashkey(v4, ip_address(a), 80, MH_HASH2, 0) % (M - 1) + 1

    assert (off("172.16.0.1"), skip("172.16.0.1")) == (407, 507)
    assert (off("172.16.0.2"), skip("172.16.0.2")) == (678, 551)
    assert (off("172.16.0.3"), skip("172.16.0.3")) == (1954, 525)
    slots = [mh_hashkey(v4, ip_address(f"10.0.0.{k}"), 0, MH_HASH1, 0) % M for k in range(1, 9)]
    assert slots == [3711, 1884, 3741, 3701, 3620, 2581, 754, 2959]
    assert mh_hashkey(v4, ip_address("10.0.0.1"), 80, MH_HASH1, 0) % M == 3167
    # IPv6 folding: a00::1 folds to 0x0A000001 like 10.0.0.1.
    assert mh_hashkey(10, ip_address("a00::1"), 0, MH_HASH1, 0) % M == 3711


# --- helpers ----------------------------------------------------------------------


def _svc(flags: int = 0, addr: str = "192.0.2.1", **opts: int) -> Service:
    svc = Service(ServiceSpec(ServiceKey.inet(Proto.TCP, addr, 80), "mh", flags))
    destlist.bind_scheduler(svc, MaglevHashing(**opts))
    return svc


def _lookup(svc: Service) -> list[Dest | None]:
    sched = svc.sched
    assert isinstance(sched, MaglevHashing)
    return sched.lookup


def _counts(svc: Service, *dests: Dest) -> list[int]:
    table = _lookup(svc)
    return [sum(1 for d in table if d is x) for x in dests]


def _three(flags: int = 0) -> tuple[Service, Dest, Dest, Dest]:
    svc = _svc(flags)
    a = add(svc, "172.16.0.1", 80, 1)
    b = add(svc, "172.16.0.2", 80, 1)
    c = add(svc, "172.16.0.3", 80, 1)
    return svc, a, b, c  # list [c, b, a]


def _pick(svc: Service, saddr: str, sport: int = 40000, proto: int = Proto.TCP) -> Dest | None:
    assert svc.sched is not None
    return svc.sched.schedule(svc, packet(saddr, sport, protocol=proto), 0.0)


def _reference_table(svc: Service) -> list[Dest | None]:
    """Textbook Maglev with the kernel's weighting, written independently.

    Each dest's preference list is offset, offset+skip, offset+2*skip, ...
    (mod M); ``nxt`` indexes into it.  Rounds go over the list; a dest takes
    ``turns`` slots per round (the kernel carries its turn counter across
    dests that have no turns, which cannot matter since it is 0 there).
    """
    dests = svc.destinations
    pos = [d.last_weight for d in dests if d.last_weight > 0]
    if not pos:
        return [None] * M
    g = 0
    for w in pos:
        a, b = w, g
        while b:
            a, b = b, a % b
        g = a
    mw = max(pos) // g
    rshift = max(0, len(bin(mw)) - 2 - 6)
    prefs = []
    for d in dests:
        o = mh_hashkey(svc.af, d.addr, d.port, MH_HASH1, 0) % M
        s = mh_hashkey(svc.af, d.addr, d.port, MH_HASH2, 0) % (M - 1) + 1
        t = (d.last_weight // g) >> rshift
        if t == 0 and d.last_weight != 0:
            t = 1
        prefs.append((o, s, t))
    table: list[Dest | None] = [None] * M
    nxt = [0] * len(dests)
    filled = 0
    while True:
        for i, (o, s, t) in enumerate(prefs):
            for _ in range(t):
                while table[(o + nxt[i] * s) % M] is not None:
                    nxt[i] += 1
                table[(o + nxt[i] * s) % M] = dests[i]
                filled += 1
                if filled == M:
                    return table


# --- gcd / shift ------------------------------------------------------------------


def test_gcd_and_shift() -> None:
    svc = _svc()
    add(svc, "172.16.0.1", 80, 200)
    add(svc, "172.16.0.2", 80, 100)
    add(svc, "172.16.0.3", 80, 0)
    assert mh_gcd_weight(svc.destinations) == 100
    assert mh_shift_weight(svc.destinations, 100, 6) == 0  # fls(2) = 2 < 6
    svc2 = _svc()
    add(svc2, "172.16.0.1", 80, 1)
    add(svc2, "172.16.0.2", 80, 256)
    assert mh_gcd_weight(svc2.destinations) == 1
    assert mh_shift_weight(svc2.destinations, 1, 6) == 3  # fls(256) = 9, 9 - 6
    assert mh_shift_weight(svc2.destinations, 0, 6) == 0


# --- tables -----------------------------------------------------------------------


def test_empty_and_all_zero_weight() -> None:
    svc = _svc()
    assert _lookup(svc) == [None] * M
    assert _pick(svc, "10.0.0.1") is None
    add(svc, "172.16.0.1", 80, 0)
    assert _lookup(svc) == [None] * M  # gcd 0: table reset
    assert _pick(svc, "10.0.0.1") is None
    svc_fb = _svc(SVC_F_MH_FALLBACK)
    add(svc_fb, "172.16.0.1", 80, 0)
    assert _pick(svc_fb, "10.0.0.1") is None


def test_three_equal_weights_table() -> None:
    svc, a, b, c = _three()
    # 4093 = 3 * 1364 + 1: the list head (c) gets the extra slot.
    assert _counts(svc, c, b, a) == [1365, 1364, 1364]
    t = _lookup(svc)
    # Round 1 puts each dest on its own offset (no collision among 1954, 678, 407).
    assert (t[1954], t[678], t[407]) == (c, b, a)
    assert t[:16] == [a, c, b, b, a, a, b, c, a, a, c, c, a, c, c, a]
    assert t == _reference_table(svc)


def test_weighted_counts() -> None:
    svc = _svc()
    a = add(svc, "172.16.0.1", 80, 1)
    b = add(svc, "172.16.0.2", 80, 2)
    # List [b, a], turns 2 and 1: 3 slots per round, 4093 = 1364 * 3 + 1.
    assert _counts(svc, b, a) == [2729, 1364]
    assert _lookup(svc) == _reference_table(svc)
    # Same proportions after the gcd: 200/100.
    edit(svc, a, weight=100)
    edit(svc, b, weight=200)
    assert _counts(svc, b, a) == [2729, 1364]


def test_rshift_counts() -> None:
    svc = _svc()
    a = add(svc, "172.16.0.1", 80, 1)
    b = add(svc, "172.16.0.2", 80, 256)
    # rshift 3: turns 256 >> 3 = 32 and (1 >> 3 = 0 -> 1); 33 per round,
    # 4093 = 124 * 33 + 1, the extra slot to the head b.
    assert _counts(svc, b, a) == [32 * 124 + 1, 124]
    assert _lookup(svc) == _reference_table(svc)


def test_dest_added_with_weight_zero_takes_no_slot() -> None:
    svc, a, b, c = _three()
    before = list(_lookup(svc))
    d = add(svc, "172.16.0.4", 80, 0)
    assert _lookup(svc) == before
    assert d not in _lookup(svc)
    # Once it gets a weight it joins: list [d, c, b, a], d is the head.
    edit(svc, d, weight=1)
    assert _counts(svc, d, c, b, a) == [1024, 1023, 1023, 1023]
    assert _lookup(svc) == _reference_table(svc)


def test_quiesced_dest_keeps_slots() -> None:
    svc, _a, b, _c = _three()
    before = list(_lookup(svc))
    edit(svc, b, weight=0)  # last_weight stays 1
    assert b.last_weight == 1
    assert _lookup(svc) == before
    assert _pick(svc, "10.0.0.1") is None  # slot 3711 belongs to b


def test_remove_dest_reassigns() -> None:
    svc, a, b, c = _three()
    remove(svc, b)
    assert _counts(svc, c, a) == [2047, 2046]
    assert b not in _lookup(svc)
    assert _lookup(svc) == _reference_table(svc)
    # Clients of c and a stay; b's clients move (10.0.0.1 -> c, 10.0.0.6 -> a).
    expected = {1: c, 2: a, 3: c, 4: a, 5: a, 6: a, 7: a, 8: c}
    for k, dest in expected.items():
        assert _pick(svc, f"10.0.0.{k}") is dest, k


def test_init_service_sees_existing_dests() -> None:
    svc, a, b, c = _three()
    fresh = MaglevHashing()
    destlist.bind_scheduler(svc, fresh)
    assert fresh.lookup == _lookup(svc)
    assert _counts(svc, c, b, a) == [1365, 1364, 1364]


def test_done_service_resets() -> None:
    svc, _a, _b, _c = _three()
    sched = svc.sched
    assert isinstance(sched, MaglevHashing)
    destlist.unbind_scheduler(svc)
    assert sched.lookup == [None] * M


# --- scheduling -------------------------------------------------------------------


def test_pinned_lookups() -> None:
    svc, a, b, c = _three()
    expected = {1: b, 2: a, 3: c, 4: a, 5: a, 6: b, 7: a, 8: c}
    for k, dest in expected.items():
        assert _pick(svc, f"10.0.0.{k}") is dest, k
    # No port flag: the source port is ignored.
    assert _pick(svc, "10.0.0.1", 80) is b


def test_port_flag() -> None:
    svc, _a, b, c = _three(SVC_F_MH_PORT)
    assert _pick(svc, "10.0.0.1", 80) is c  # slot 3167
    assert _pick(svc, "10.0.0.1", 80, Proto.UDP) is c
    assert _pick(svc, "10.0.0.1", 0) is b  # port 0 = no port: slot 3711
    assert _pick(svc, "10.0.0.1", 80, 1) is b  # ICMP carries no port


def test_fallback() -> None:
    svc, a, b, _c = _three(SVC_F_MH_FALLBACK)
    assert _pick(svc, "10.0.0.1") is b
    b.flags |= DEST_F_OVERLOAD
    # ihash 3711; probes re-hash with offsets 3711, 3712, ...: slots 891 (b),
    # 2430 (b), 878 (a).
    assert _pick(svc, "10.0.0.1") is a
    b.flags &= ~DEST_F_OVERLOAD
    edit(svc, b, weight=0)  # quiesced: still in the table, unavailable
    assert _pick(svc, "10.0.0.1") is a
    # Without the fallback flag the same client gets nothing.
    svc.flags = 0
    assert _pick(svc, "10.0.0.1") is None


def test_fallback_all_unavailable() -> None:
    svc, a, b, c = _three(SVC_F_MH_FALLBACK)
    for d in (a, b, c):
        d.flags |= DEST_F_OVERLOAD
    assert _pick(svc, "10.0.0.1") is None


def test_ipv6() -> None:
    # ::ac10:N folds to 172.16.0.N, so the table equals the IPv4 one.
    svc = _svc(addr="2001:db8::100")
    a = add(svc, "::ac10:1", 80, 1)
    b = add(svc, "::ac10:2", 80, 1)
    c = add(svc, "::ac10:3", 80, 1)
    t = _lookup(svc)
    assert (t[1954], t[678], t[407]) == (c, b, a)
    assert t[:16] == [a, c, b, b, a, a, b, c, a, a, c, c, a, c, c, a]
    assert svc.sched is not None
    pkt = packet("a00::1", 40000, "2001:db8::100", 80)  # slot 3711 -> b
    assert svc.sched.schedule(svc, pkt, 0.0) is b


# --- table size option --------------------------------------------------------------


def test_tab_index_option_and_too_many_dests() -> None:
    sched = MaglevHashing(tab_index=8)
    assert (sched.tab_size, sched.tab_bits) == (251, 4)
    with pytest.raises(ValueError):
        MaglevHashing(tab_index=18)
    svc = _svc(tab_index=8)
    dests = [add(svc, f"172.16.{i // 250}.{i % 250 + 1}", 80, 1) for i in range(251)]
    table = list(_lookup(svc))
    assert all(table.count(d) == 1 for d in dests)
    # One more than the table size: the kernel refuses to rebuild (-EINVAL).
    add(svc, "172.17.0.1", 80, 1)
    assert _lookup(svc) == table
    with pytest.raises(IPVSError):
        destlist.bind_scheduler(svc, MaglevHashing(tab_index=8))


def test_unrolled_hsiphash_u32_matches_the_reference() -> None:
    from pylvs.sched.hashing import hsiphash_u32

    # The kernel vector: bytes 00 01 02 03 are the little-endian u32 0x03020100.
    assert hsiphash_u32(0x03020100, KEY) == 0x88D38328
    for v in (0, 1, 0xFFFFFFFF, 0x0A000001, 0xDEADBEEF, 123456789):
        for key in (KEY, (2654435761, 2654435761), (2654446892, 2654446892)):
            assert hsiphash_u32(v, key) == hsiphash(v.to_bytes(4, "little"), key)
