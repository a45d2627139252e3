"""Destination hashing scheduling: mirrors net/netfilter/ipvs/ip_vs_dh.c.

A 256-bucket table (IP_VS_DH_TAB_BITS 8) is rebuilt on init and when a dest
is added or deleted (the kernel has no upd_dest hook for dh: weights do not
shape the table).  Walking the dest list from the head and wrapping, bucket
``i`` gets the next dest, one bucket each, ignoring weights.

Bucket of a packet: ``hash_32(fold(daddr), 8)``, ``daddr`` being the address
the packet was sent to.  The owner is refused (no dest) when it is not
AVAILABLE, its weight is <= 0 or it is OVERLOADed; there is no fallback.
"""

from __future__ import annotations

from pylvs.core.model import DEST_F_AVAILABLE, DEST_F_OVERLOAD, Address, Dest, Packet, Service
from pylvs.sched.base import TableScheduler, register
from pylvs.sched.hashing import addr_fold, hash_32

IP_VS_DH_TAB_BITS = 8
IP_VS_DH_TAB_SIZE = 1 << IP_VS_DH_TAB_BITS


def dh_hashkey(af: int, addr: Address) -> int:
    """ip_vs_dh_hashkey()."""
    return hash_32(addr_fold(af, addr), IP_VS_DH_TAB_BITS)


def dh_assign(dests: list[Dest]) -> list[Dest | None]:
    """ip_vs_dh_reassign(): one bucket per dest in list order, round and round."""
    if not dests:
        return [None] * IP_VS_DH_TAB_SIZE
    n = len(dests)
    return [dests[i % n] for i in range(IP_VS_DH_TAB_SIZE)]


@register
class DestinationHashing(TableScheduler):
    name = "dh"

    def __init__(self) -> None:
        self.buckets: list[Dest | None] = [None] * IP_VS_DH_TAB_SIZE

    def reassign(self, svc: Service) -> None:
        self.buckets = dh_assign(svc.destinations)

    def init_service(self, svc: Service) -> None:
        self.reassign(svc)

    def upd_dest(self, svc: Service, dest: Dest) -> None:
        return None  # dh has no upd_dest hook: a weight edit keeps the table

    def done_service(self, svc: Service) -> None:
        self.buckets = [None] * IP_VS_DH_TAB_SIZE

    # No upd_dest: the kernel's dh scheduler does not register one.

    def schedule(self, svc: Service, pkt: Packet, now: float) -> Dest | None:
        dest = self.buckets[dh_hashkey(svc.af, pkt.daddr)]
        if (
            dest is None
            or not dest.flags & DEST_F_AVAILABLE
            or dest.weight <= 0
            or dest.flags & DEST_F_OVERLOAD
        ):
            return None
        return dest
