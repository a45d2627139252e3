"""Weighted fail-over scheduling: mirrors net/netfilter/ipvs/ip_vs_fo.c.

Returns the non-OVERLOADed dest with the highest weight (weight 0 never
qualifies); among equal weights the first one in list order wins, since
only a strictly higher weight replaces the current choice.
"""

from __future__ import annotations

from pylvs.core.model import DEST_F_OVERLOAD, Dest, Packet, Service
from pylvs.sched.base import Scheduler, register


@register
class FailOver(Scheduler):
    name = "fo"

    def schedule(self, svc: Service, pkt: Packet, now: float) -> Dest | None:
        best: Dest | None = None
        hw = 0
        for d in svc.destinations:
            if not (d.flags & DEST_F_OVERLOAD) and d.weight > hw:
                best = d
                hw = d.weight
        return best
