"""Weighted least-connection scheduling: mirrors net/netfilter/ipvs/ip_vs_wlc.c.

The first dest that is not OVERLOADed and has weight > 0 is the initial
choice; every later non-OVERLOADed dest replaces it when
``loh * dest.weight > doh * least.weight`` (overhead/weight strictly
smaller, compared by cross multiplication), with overhead
``(activeconns << 8) + inactconns``.  Ties keep the earlier dest.  As in
the kernel, later dests are not tested for weight 0: such a dest can never
win the strict comparison.  Python integers do not overflow, which matches
the kernel's 64-bit products.
"""

from __future__ import annotations

from pylvs.core.model import DEST_F_OVERLOAD, Dest, Packet, Service
from pylvs.sched.base import Scheduler, first_usable, register


@register
class WeightedLeastConnection(Scheduler):
    name = "wlc"

    def schedule(self, svc: Service, pkt: Packet, now: float) -> Dest | None:
        dests = svc.destinations
        n = len(dests)
        i = first_usable(dests)
        if i < 0:
            return None
        least = dests[i]
        loh = (least.activeconns << 8) + least.inactconns
        for j in range(i + 1, n):
            d = dests[j]
            if d.flags & DEST_F_OVERLOAD:
                continue
            doh = (d.activeconns << 8) + d.inactconns
            if loh * d.weight > doh * least.weight:
                least = d
                loh = doh
        return least
