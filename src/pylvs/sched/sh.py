"""Source hashing scheduling: mirrors net/netfilter/ipvs/ip_vs_sh.c.

A table of ``2**IP_VS_SH_TAB_BITS`` (default 256) buckets is rebuilt from
the dest list on init and on every add/del/upd: walking the list from the
head (wrapping around as often as needed), each dest fills ``weight``
consecutive buckets, but always at least one (so a weight-0 dest still owns
one bucket; lookups then find it unavailable).

Bucket of a client: ``(offset + hash_32(port + fold(saddr), BITS)) & MASK``
with ``offset`` 0 and ``port`` the client's source port when the service has
the sh-port flag (TCP/UDP/SCTP only, else 0).  A dest is unavailable when
its weight is <= 0 or it is OVERLOADed.  Without sh-fallback an unavailable
bucket owner means no dest.  With sh-fallback the kernel probes offsets
``roffset = (i + ihash) % SIZE`` for ``i`` in ``0..SIZE-1``, re-hashing with
each ``roffset`` (so bucket ``(roffset + ihash) & MASK``), and takes the first
available owner.

Deliberate differences: the kernel ignores the reply-direction
(``ip_vs_iph_inverse``) case here, since a Packet always carries the
client's address in ``saddr``.  ``tab_bits`` models CONFIG_IP_VS_SH_TAB_BITS.
"""

from __future__ import annotations

from pylvs.core.model import (
    SVC_F_SH_FALLBACK,
    SVC_F_SH_PORT,
    Address,
    Dest,
    Packet,
    Service,
)
from pylvs.sched.base import TableScheduler, register, usable
from pylvs.sched.hashing import U32_MASK, addr_fold, hash_32, hashed_port

IP_VS_SH_TAB_BITS = 8


def sh_hashkey(
    af: int, addr: Address, port: int, offset: int, bits: int = IP_VS_SH_TAB_BITS
) -> int:
    """ip_vs_sh_hashkey()."""
    mask = (1 << bits) - 1
    return (offset + hash_32((port + addr_fold(af, addr)) & U32_MASK, bits)) & mask


def sh_assign(dests: list[Dest], size: int) -> list[Dest | None]:
    """ip_vs_sh_reassign(): the bucket table for a dest list (list order)."""
    if not dests:
        return [None] * size
    table: list[Dest | None] = []
    idx = 0
    d_count = 0
    for _ in range(size):
        if idx == len(dests):  # back at the list head: wrap to the first entry
            idx = 0
        dest = dests[idx]
        table.append(dest)
        d_count += 1
        if d_count >= dest.weight:
            idx += 1
            d_count = 0
    return table


@register
class SourceHashing(TableScheduler):
    name = "sh"

    def __init__(self, *, tab_bits: int = IP_VS_SH_TAB_BITS) -> None:
        if not 4 <= tab_bits <= 20:
            raise ValueError("tab_bits must be in 4..20 (CONFIG_IP_VS_SH_TAB_BITS)")
        self.tab_bits = tab_bits
        self.tab_size = 1 << tab_bits
        self.buckets: list[Dest | None] = [None] * self.tab_size

    def reassign(self, svc: Service) -> None:
        self.buckets = sh_assign(svc.destinations, self.tab_size)

    def init_service(self, svc: Service) -> None:
        self.reassign(svc)

    def done_service(self, svc: Service) -> None:
        self.buckets = [None] * self.tab_size

    def _get(self, af: int, addr: Address, port: int) -> Dest | None:
        dest = self.buckets[sh_hashkey(af, addr, port, 0, self.tab_bits)]
        return dest if dest is not None and usable(dest) else None

    def _get_fallback(self, af: int, addr: Address, port: int) -> Dest | None:
        ihash = sh_hashkey(af, addr, port, 0, self.tab_bits)
        dest = self.buckets[ihash]
        if dest is None:
            return None
        if usable(dest):
            return dest
        size = self.tab_size
        for offset in range(size):
            roffset = (offset + ihash) % size
            dest = self.buckets[sh_hashkey(af, addr, port, roffset, self.tab_bits)]
            if dest is None:
                break
            if usable(dest):
                return dest
        return None

    def schedule(self, svc: Service, pkt: Packet, now: float) -> Dest | None:
        port = hashed_port(pkt) if svc.flags & SVC_F_SH_PORT else 0
        if svc.flags & SVC_F_SH_FALLBACK:
            return self._get_fallback(svc.af, pkt.saddr, port)
        return self._get(svc.af, pkt.saddr, port)
