"""Least-connection scheduling: mirrors net/netfilter/ipvs/ip_vs_lc.c.

Picks the usable dest (not OVERLOADed, weight not 0) with the smallest
overhead ``(activeconns << 8) + inactconns``; on ties the first one in list
order stays, since only a strictly smaller overhead replaces it.
"""

from __future__ import annotations

from pylvs.core.model import DEST_F_OVERLOAD, Dest, Packet, Service
from pylvs.sched.base import Scheduler, register


@register
class LeastConnection(Scheduler):
    name = "lc"

    def schedule(self, svc: Service, pkt: Packet, now: float) -> Dest | None:
        least: Dest | None = None
        loh = 0
        for d in svc.destinations:
            if d.flags & DEST_F_OVERLOAD or d.weight == 0:
                continue
            doh = (d.activeconns << 8) + d.inactconns
            if least is None or doh < loh:
                least = d
                loh = doh
        return least
