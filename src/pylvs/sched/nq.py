"""Never-queue scheduling: mirrors net/netfilter/ipvs/ip_vs_nq.c.

One walk in list order over dests that are not OVERLOADed and have a
non-zero weight.  The first idle one (``activeconns == 0``) is returned at
once.  Otherwise the choice is the sed one: overhead ``activeconns + 1``,
and a dest replaces the current choice only when
``loh * dest.weight > doh * least.weight`` (ties keep the earlier dest).
"""

from __future__ import annotations

from pylvs.core.model import DEST_F_OVERLOAD, Dest, Packet, Service
from pylvs.sched.base import Scheduler, register


@register
class NeverQueue(Scheduler):
    name = "nq"

    def schedule(self, svc: Service, pkt: Packet, now: float) -> Dest | None:
        least: Dest | None = None
        loh = 0
        for d in svc.destinations:
            if d.flags & DEST_F_OVERLOAD or d.weight == 0:
                continue
            if d.activeconns == 0:
                return d
            doh = d.activeconns + 1
            if least is None or loh * d.weight > doh * least.weight:
                least = d
                loh = doh
        return least
