"""Maglev hashing scheduling: mirrors net/netfilter/ipvs/ip_vs_mh.c.

Lookup table of a prime size (``primes[CONFIG_IP_VS_MH_TAB_INDEX - 8]``,
default index 12 -> 4093 entries), rebuilt on init and on every
add/del/upd:

- ``gcd`` is the gcd of the positive ``last_weight`` values; ``rshift`` is
  ``fls(max_last_weight / gcd) - IP_VS_MH_TAB_BITS`` clamped at 0
  (``IP_VS_MH_TAB_BITS`` = index / 2 = 6 by default).  gcd < 1 (no dest with
  a positive last_weight) empties the table.
- Per dest, in list order: ``offset = H(hash1) % SIZE``,
  ``skip = H(hash2) % (SIZE - 1) + 1`` where ``H`` is ``hsiphash`` of the
  u32 ``port + fold(addr)`` under the fixed keys below, and
  ``turns = ((last_weight / gcd) >> rshift) or (last_weight != 0)``.
- Population: rounds over the list; each dest with turns >= 1 claims
  ``turns`` slots per round, each time the next free slot of its
  permutation ``offset, offset + skip, ...`` (mod SIZE), until every slot
  is taken.

Lookup: slot ``H(hash1 of port + fold(saddr)) % SIZE``; ``port`` is the
client's source port with the mh-port flag (TCP/UDP/SCTP only), else 0.  A
dest is unavailable when weight <= 0 or OVERLOADed (a quiesced dest keeps
its slots because the table is built from last_weight).  With mh-fallback
the kernel re-hashes with ``roffset = (i + ihash) % SIZE`` added to the key
for ``i`` in ``0..SIZE-1`` and takes the first available slot owner.

Deliberate differences: ``hsiphash`` is the 64-bit kernel build (see
``hashing.py``); the reply-direction (``ip_vs_iph_inverse``) case is not
modelled.  ``tab_index`` models CONFIG_IP_VS_MH_TAB_INDEX.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from math import gcd

from pylvs.core import errors
from pylvs.core.model import (
    SVC_F_MH_FALLBACK,
    SVC_F_MH_PORT,
    Address,
    Dest,
    Packet,
    Service,
)
from pylvs.sched.base import TableScheduler, register, usable
from pylvs.sched.hashing import U32_MASK, SipKey, addr_fold, hashed_port, hsiphash_u32

PRIMES = (251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071)
IP_VS_MH_TAB_INDEX = 12  # CONFIG_IP_VS_MH_TAB_INDEX default
CLIENT_CACHE = 1 << 16  # memoised client hashes per service (cleared when full)

# generate_hash_secret(): fixed keys, both words equal.
MH_HASH1: SipKey = (2654435761, 2654435761)
MH_HASH2: SipKey = (2654446892, 2654446892)


def mh_hashkey(af: int, addr: Address, port: int, key: SipKey, offset: int) -> int:
    """ip_vs_mh_hashkey(): hsiphash of the u32 ``offset + port + fold(addr)``."""
    return hsiphash_u32((offset + port + addr_fold(af, addr)) & U32_MASK, key)


@lru_cache(maxsize=8192)
def mh_offset_skip(af: int, addr: Address, port: int, size: int) -> tuple[int, int]:
    """A dest's permutation: (offset, skip) as ip_vs_mh_permutate() computes them."""
    offset = mh_hashkey(af, addr, port, MH_HASH1, 0) % size
    skip = mh_hashkey(af, addr, port, MH_HASH2, 0) % (size - 1) + 1
    return offset, skip


def _c_div(a: int, b: int) -> int:
    """C integer division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def mh_gcd_weight(dests: list[Dest]) -> int:
    """ip_vs_mh_gcd_weight()."""
    g = 0
    for d in dests:
        w = d.last_weight
        if w > 0:
            g = gcd(w, g) if g > 0 else w
    return g


def mh_shift_weight(dests: list[Dest], g: int, tab_bits: int) -> int:
    """ip_vs_mh_shift_weight()."""
    if g < 1:
        return 0
    weight = 0
    for d in dests:
        if d.last_weight > weight:
            weight = d.last_weight
    mw = _c_div(weight, g)
    shift = mw.bit_length() - tab_bits  # fls(mw) for mw >= 0
    return shift if shift >= 0 else 0


@dataclass(slots=True)
class _DestSetup:
    offset: int
    skip: int
    perm: int
    turns: int


def mh_populate(dests: list[Dest], af: int, size: int, g: int, rshift: int) -> list[Dest | None]:
    """ip_vs_mh_permutate() + ip_vs_mh_populate(): the lookup table."""
    if g < 1:
        return [None] * size
    setups: list[_DestSetup] = []
    for d in dests:
        offset, skip = mh_offset_skip(af, d.addr, d.port, size)
        lw = d.last_weight
        turns = _c_div(lw, g) >> rshift
        if not turns:
            turns = 1 if lw != 0 else 0
        setups.append(_DestSetup(offset, skip, offset, turns))

    lookup: list[Dest | None] = [None] * size
    used = bytearray(size)
    n = 0
    dt_count = 0
    ndests = len(dests)
    while True:
        idx = 0  # back at the list head: restart with the first entry
        while idx < ndests:
            ds = setups[idx]
            if ds.turns < 1:  # a dest added with weight 0 takes no slot
                idx += 1
                continue
            c = ds.perm
            while used[c]:
                ds.perm += ds.skip
                if ds.perm >= size:
                    ds.perm -= size
                c = ds.perm
            used[c] = 1
            lookup[c] = dests[idx]
            n += 1
            if n == size:
                return lookup
            dt_count += 1
            if dt_count >= ds.turns:
                dt_count = 0
                idx += 1


@register
class MaglevHashing(TableScheduler):
    name = "mh"

    def __init__(self, *, tab_index: int = IP_VS_MH_TAB_INDEX) -> None:
        if not 8 <= tab_index <= 17:
            raise ValueError("tab_index must be in 8..17 (CONFIG_IP_VS_MH_TAB_INDEX)")
        self.tab_bits = tab_index // 2
        self.tab_size = PRIMES[tab_index - 8]
        self.lookup: list[Dest | None] = [None] * self.tab_size
        self.gcd = 0
        self.rshift = 0
        self._hcache: dict[int, int] = {}

    def _client_hash(self, af: int, addr: Address, port: int) -> int:
        """hsiphash of a client key, memoised: the kernel recomputes it, we keep
        the last CLIENT_CACHE results because SipHash in Python costs microseconds.
        The value depends only on the key, never on the table."""
        x = (port + addr_fold(af, addr)) & U32_MASK
        cache = self._hcache
        h = cache.get(x)
        if h is None:
            if len(cache) >= CLIENT_CACHE:
                cache.clear()
            h = cache[x] = hsiphash_u32(x, MH_HASH1)
        return h

    def reassign(self, svc: Service) -> bool:
        dests = svc.destinations
        self.gcd = mh_gcd_weight(dests)
        self.rshift = mh_shift_weight(dests, self.gcd, self.tab_bits)
        if len(dests) > self.tab_size:
            return False  # -EINVAL: the table is left as it was
        self.lookup = mh_populate(dests, svc.af, self.tab_size, self.gcd, self.rshift)
        return True

    def init_service(self, svc: Service) -> None:
        self.lookup = [None] * self.tab_size
        if not self.reassign(svc):
            raise errors.invalid("mh: more dests than lookup table entries")

    def done_service(self, svc: Service) -> None:
        self.lookup = [None] * self.tab_size

    def _get(self, af: int, addr: Address, port: int) -> Dest | None:
        dest = self.lookup[self._client_hash(af, addr, port) % self.tab_size]
        return dest if dest is not None and usable(dest) else None

    def _get_fallback(self, af: int, addr: Address, port: int) -> Dest | None:
        size = self.tab_size
        ihash = self._client_hash(af, addr, port) % size
        dest = self.lookup[ihash]
        if dest is None:
            return None
        if usable(dest):
            return dest
        for offset in range(size):
            roffset = (offset + ihash) % size
            dest = self.lookup[mh_hashkey(af, addr, port, MH_HASH1, roffset) % size]
            if dest is None:
                break
            if usable(dest):
                return dest
        return None

    def schedule(self, svc: Service, pkt: Packet, now: float) -> Dest | None:
        port = hashed_port(pkt) if svc.flags & SVC_F_MH_PORT else 0
        if svc.flags & SVC_F_MH_FALLBACK:
            return self._get_fallback(svc.af, pkt.saddr, port)
        return self._get(svc.af, pkt.saddr, port)
