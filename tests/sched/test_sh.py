"""sh scheduler (ip_vs_sh.c) and the shared hash_32 primitive (include/linux/hash.h).

Hand-derived values used below.  hash_32(x, 8) is the top byte of
x * 0x61C88647 mod 2**32 (G = 0x61C88647):

    1G = 0x61C88647 -> 0x61 =  97      5G = 0x1E8EA9F63 -> 0xE8 = 232
    2G = 0xC3910C8E -> 0xC3 = 195      6G = 0x24AB325AA -> 0x4A =  74
    3G = 0x1255992D5 -> 0x25 =  37     7G = 0x2AC7BABF1 -> 0xAC = 172
    4G = 0x18722191C -> 0x87 = 135     8G = 0x30E443238 -> 0x0E =  14

For 10.0.0.k = 0x0A000000 + k: 0x0A000000 * G = (0x0A * G) << 24, and
0x0A * G = 0x3D1D53EC6 ends in 0xC6, so it only adds 0xC6 (198) to the top
byte: bucket(10.0.0.k) = (198 + top byte of kG) mod 256:

    10.0.0.1 -> 39   10.0.0.2 -> 137   10.0.0.3 -> 235   10.0.0.5 -> 174
    10.0.0.6 -> 16   10.0.0.7 -> 114   10.0.0.8 -> 212

With the port flag, 10.0.0.1 port 80 hashes 0x0A000051: 0x51 * G =
0x1EF0727C77 (top byte of the low word 0xF0 = 240), so 198 + 240 - 256 = 182.
"""

from __future__ import annotations

from ipaddress import ip_address

from pylvs.core import destlist
from pylvs.core.model import (
    DEST_F_OVERLOAD,
    SVC_F_SH_FALLBACK,
    SVC_F_SH_PORT,
    Dest,
    Proto,
    Service,
    ServiceKey,
    ServiceSpec,
)
from pylvs.sched.hashing import GOLDEN_RATIO_32, addr_fold, hash_32
from pylvs.sched.sh import SourceHashing, sh_hashkey
from pylvs.testing.builders import add, edit, packet, remove


def _svc(flags: int = 0, addr: str = "192.0.2.1", protocol: int = Proto.TCP) -> Service:
    svc = Service(ServiceSpec(ServiceKey.inet(protocol, addr, 80), "sh", flags))
    destlist.bind_scheduler(svc, SourceHashing())
    return svc


def _table(svc: Service) -> list[Dest | None]:
    sched = svc.sched
    assert isinstance(sched, SourceHashing)
    return sched.buckets


def _ref_hash_32(val: int, bits: int) -> int:
    # Straight from the definition: u32 product, keep the high `bits` bits.
    return ((val * 0x61C88647) % (1 << 32)) >> (32 - bits)


# --- hash_32 -----------------------------------------------------------------


def test_golden_ratio_constant() -> None:
    assert GOLDEN_RATIO_32 == 0x61C88647


def test_hash_32_hand_values() -> None:
    assert [hash_32(k, 8) for k in range(1, 9)] == [97, 195, 37, 135, 232, 74, 172, 14]
    assert hash_32(0x0A000001, 8) == 39
    assert hash_32(0x0A000051, 8) == 182
    assert hash_32(0x01000000, 8) == 0x47  # G << 24 keeps only G's low byte
    assert hash_32(0, 8) == 0


def test_hash_32_matches_definition() -> None:
    for val in (0, 1, 0x7FFFFFFF, 0xFFFFFFFF, 0xC0A80101, 0x12345678, 0xDEADBEEF):
        for bits in (1, 4, 8, 12, 20, 32):
            assert hash_32(val, bits) == _ref_hash_32(val, bits)
    # Input is taken as u32.
    assert hash_32(0x1_0000_0005, 8) == hash_32(5, 8)


def test_addr_fold() -> None:
    assert addr_fold(2, ip_address("10.0.0.1")) == 0x0A000001
    assert addr_fold(10, ip_address("a00::1")) == 0x0A000001
    assert addr_fold(10, ip_address("::a00:1")) == 0x0A000001
    assert addr_fold(10, ip_address("2001:db8::2001:db8")) == 0
    assert addr_fold(10, ip_address("2001:db8::1")) == 0x20010DB9


def test_sh_hashkey_pinned() -> None:
    got = [sh_hashkey(2, ip_address(f"10.0.0.{k}"), 0, 0) for k in (1, 2, 3, 5, 6, 7, 8)]
    assert got == [39, 137, 235, 174, 16, 114, 212]
    assert sh_hashkey(2, ip_address("10.0.0.1"), 80, 0) == 182
    # The offset is added after hashing.
    assert sh_hashkey(2, ip_address("10.0.0.1"), 0, 39) == 78
    assert sh_hashkey(2, ip_address("10.0.0.1"), 0, 250) == (39 + 250) % 256


# --- bucket tables -----------------------------------------------------------


def test_empty_service_table_and_schedule() -> None:
    svc = _svc()
    assert _table(svc) == [None] * 256
    assert svc.sched is not None
    assert svc.sched.schedule(svc, packet("10.0.0.1"), 0.0) is None


def test_table_weights_1_1() -> None:
    svc = _svc()
    a = add(svc, "172.16.0.1", 80, 1)
    b = add(svc, "172.16.0.2", 80, 1)
    # List order: [b, a] (new dests at the head): one bucket each, alternating.
    assert _table(svc) == [b, a] * 128


def test_table_weights_3_1_2() -> None:
    svc = _svc()
    a = add(svc, "172.16.0.1", 80, 3)
    b = add(svc, "172.16.0.2", 80, 1)
    c = add(svc, "172.16.0.3", 80, 2)
    # List [c(2), b(1), a(3)]: period of 6 buckets c c b a a a; 256 = 42*6 + 4.
    assert _table(svc) == [c, c, b, a, a, a] * 42 + [c, c, b, a]


def test_table_with_weight_zero_dest() -> None:
    svc = _svc()
    a = add(svc, "172.16.0.1", 80, 2)
    b = add(svc, "172.16.0.2", 80, 0)
    c = add(svc, "172.16.0.3", 80, 1)
    # A weight-0 dest still owns one bucket (++d_count >= 0 moves on after it).
    assert _table(svc) == [c, b, a, a] * 64


def test_table_weights_exceeding_size() -> None:
    svc = _svc()
    a = add(svc, "172.16.0.1", 80, 100)
    b = add(svc, "172.16.0.2", 80, 200)
    assert _table(svc) == [b] * 200 + [a] * 56


def test_init_service_sees_existing_dests() -> None:
    svc = _svc()
    a = add(svc, "172.16.0.1", 80, 1)
    b = add(svc, "172.16.0.2", 80, 2)
    fresh = SourceHashing()
    destlist.bind_scheduler(svc, fresh)
    assert fresh.buckets == [b, b, a] * 85 + [b]


def test_remove_dest_reassigns() -> None:
    svc = _svc()
    a = add(svc, "172.16.0.1", 80, 3)
    b = add(svc, "172.16.0.2", 80, 1)
    c = add(svc, "172.16.0.3", 80, 2)
    remove(svc, b)
    # List [c(2), a(3)]: c c a a a; 256 = 51*5 + 1.
    assert _table(svc) == [c, c, a, a, a] * 51 + [c]
    assert b not in _table(svc)


def test_edit_weight_reassigns() -> None:
    svc = _svc()
    a = add(svc, "172.16.0.1", 80, 3)
    b = add(svc, "172.16.0.2", 80, 1)
    c = add(svc, "172.16.0.3", 80, 2)
    edit(svc, a, weight=1)
    assert _table(svc) == [c, c, b, a] * 64


def test_done_service_flushes() -> None:
    svc = _svc()
    add(svc, "172.16.0.1", 80, 1)
    sched = svc.sched
    assert isinstance(sched, SourceHashing)
    destlist.unbind_scheduler(svc)
    assert sched.buckets == [None] * 256


# --- scheduling --------------------------------------------------------------


def _three(flags: int = 0) -> tuple[Service, Dest, Dest, Dest]:
    svc = _svc(flags)
    a = add(svc, "172.16.0.1", 80, 3)
    b = add(svc, "172.16.0.2", 80, 1)
    c = add(svc, "172.16.0.3", 80, 2)
    return svc, a, b, c  # period c c b a a a


def _pick(svc: Service, saddr: str, sport: int = 40000, proto: int = Proto.TCP) -> Dest | None:
    assert svc.sched is not None
    return svc.sched.schedule(svc, packet(saddr, sport, protocol=proto), 0.0)


def test_schedule_pinned_buckets() -> None:
    svc, a, b, c = _three()
    # bucket % 6: 39->3 a, 137->5 a, 235->1 c, 174->0 c, 16->4 a, 114->0 c, 212->2 b
    expected = {1: a, 2: a, 3: c, 5: c, 6: a, 7: c, 8: b}
    for k, dest in expected.items():
        assert _pick(svc, f"10.0.0.{k}") is dest, k
    # Without the port flag the source port does not matter.
    assert _pick(svc, "10.0.0.8", 1) is b
    assert _pick(svc, "10.0.0.8", 65535) is b


def test_schedule_removal_moves_clients() -> None:
    svc, a, b, c = _three()
    assert _pick(svc, "10.0.0.8") is b
    remove(svc, b)
    # Table c c a a a: bucket 212 % 5 = 2 -> a; 39 % 5 = 4 -> a; 235 % 5 = 0 -> c.
    assert _pick(svc, "10.0.0.8") is a
    assert _pick(svc, "10.0.0.1") is a
    assert _pick(svc, "10.0.0.3") is c


def test_unavailable_without_fallback() -> None:
    svc, a, _b, c = _three()
    a.flags |= DEST_F_OVERLOAD
    assert _pick(svc, "10.0.0.1") is None  # bucket 39 -> a
    assert _pick(svc, "10.0.0.3") is c
    a.flags &= ~DEST_F_OVERLOAD
    assert _pick(svc, "10.0.0.1") is a


def test_weight_zero_owner_without_and_with_fallback() -> None:
    for flags, expected in ((0, None), (SVC_F_SH_FALLBACK, "a")):
        svc = _svc(flags)
        a = add(svc, "172.16.0.1", 80, 2)
        add(svc, "172.16.0.2", 80, 0)
        add(svc, "172.16.0.3", 80, 1)
        # Table c b a a: 10.0.0.2 -> bucket 137, 137 % 4 = 1 -> b (weight 0).
        # Fallback probes bucket (137 + 137) & 255 = 18, 18 % 4 = 2 -> a.
        got = _pick(svc, "10.0.0.2")
        assert got is (a if expected else None)


def test_fallback_probe_order() -> None:
    svc, a, b, c = _three(SVC_F_SH_FALLBACK)
    assert _pick(svc, "10.0.0.1") is a  # bucket 39
    a.flags |= DEST_F_OVERLOAD
    # Probe i looks at bucket (39 + i + 39) & 255: 78 -> c.
    assert _pick(svc, "10.0.0.1") is c
    c.flags |= DEST_F_OVERLOAD
    # 78 -> c (overloaded), 79 -> c, 80 -> b.
    assert _pick(svc, "10.0.0.1") is b
    b.flags |= DEST_F_OVERLOAD
    assert _pick(svc, "10.0.0.1") is None


def test_fallback_on_empty_service() -> None:
    svc = _svc(SVC_F_SH_FALLBACK)
    assert _pick(svc, "10.0.0.1") is None


def test_port_flag() -> None:
    svc, a, b, _c = _three(SVC_F_SH_PORT)
    # 10.0.0.1:80 -> bucket 182, 182 % 6 = 2 -> b (without the flag: 39 -> a).
    assert _pick(svc, "10.0.0.1", 80) is b
    assert _pick(svc, "10.0.0.1", 80, Proto.UDP) is b
    assert _pick(svc, "10.0.0.1", 80, Proto.SCTP) is b
    # Port 0 hashes like no port at all.
    assert _pick(svc, "10.0.0.1", 0) is a
    # Protocols without ports (ICMP = 1) hash with port 0.
    assert _pick(svc, "10.0.0.1", 80, 1) is a


def test_port_flag_uses_source_port_not_dest_port() -> None:
    svc, _a, b, _c = _three(SVC_F_SH_PORT)
    assert svc.sched is not None
    pkt = packet("10.0.0.1", 80, "192.0.2.1", 443)
    assert svc.sched.schedule(svc, pkt, 0.0) is b


def test_ipv6_clients() -> None:
    svc = _svc(addr="2001:db8::100")
    a = add(svc, "2001:db8::1", 80, 1)
    b = add(svc, "2001:db8::2", 80, 1)
    assert _table(svc) == [b, a] * 128
    assert svc.sched is not None
    # a00::1 and ::a00:1 fold to 0x0A000001 -> bucket 39 (odd) -> a.
    for client in ("a00::1", "::a00:1"):
        pkt = packet(client, 40000, "2001:db8::100", 80)
        assert svc.sched.schedule(svc, pkt, 0.0) is a
    # 2001:db8::2001:db8 folds to 0 -> bucket 0 -> b.
    pkt = packet("2001:db8::2001:db8", 40000, "2001:db8::100", 80)
    assert svc.sched.schedule(svc, pkt, 0.0) is b
