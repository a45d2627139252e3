"""Overflow-connection scheduling: mirrors net/netfilter/ipvs/ip_vs_ovf.c.

Candidates are dests that are not OVERLOADed, have weight > 0 and whose
active connection count does not exceed their weight
(``activeconns <= weight``; the kernel skips ``activeconns > weight``).
Among them the highest weight wins; on equal weights the first in list
order stays.
"""

from __future__ import annotations

from pylvs.core.model import DEST_F_OVERLOAD, Dest, Packet, Service
from pylvs.sched.base import Scheduler, register


@register
class Overflow(Scheduler):
    name = "ovf"

    def schedule(self, svc: Service, pkt: Packet, now: float) -> Dest | None:
        best: Dest | None = None
        hw = 0
        for d in svc.destinations:
            w = d.weight
            if d.flags & DEST_F_OVERLOAD or d.activeconns > w or w == 0:
                continue
            if best is None or w > hw:
                best = d
                hw = w
        return best
