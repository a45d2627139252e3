"""Shortest expected delay scheduling: mirrors net/netfilter/ipvs/ip_vs_sed.c.

Same two-stage walk as wlc, but the overhead is ``activeconns + 1`` (the
incoming job counts; inactive connections are ignored).  The first dest
that is not OVERLOADed and has weight > 0 starts as the choice; a later
non-OVERLOADed dest replaces it only when
``loh * dest.weight > doh * least.weight``, so ties keep the earlier dest.
Later dests are not tested for weight 0, exactly like the kernel: they can
never win the strict comparison.
"""

from __future__ import annotations

from pylvs.core.model import DEST_F_OVERLOAD, Dest, Packet, Service
from pylvs.sched.base import Scheduler, first_usable, register


@register
class ShortestExpectedDelay(Scheduler):
    name = "sed"

    def schedule(self, svc: Service, pkt: Packet, now: float) -> Dest | None:
        dests = svc.destinations
        n = len(dests)
        i = first_usable(dests)
        if i < 0:
            return None
        least = dests[i]
        loh = least.activeconns + 1
        for j in range(i + 1, n):
            d = dests[j]
            if d.flags & DEST_F_OVERLOAD:
                continue
            doh = d.activeconns + 1
            if loh * d.weight > doh * least.weight:
                least = d
                loh = doh
        return least
