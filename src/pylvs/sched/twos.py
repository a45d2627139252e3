"""Power-of-two-choices scheduling: mirrors net/netfilter/ipvs/ip_vs_twos.c.

Over the usable dests (not OVERLOADed, weight > 0) let ``total`` be the sum
of weights.  Two numbers r1, r2 are drawn, in this order, from
``[0, total + 1)``.  Walking the usable dests in list order, both are
reduced by each weight; choice 1 (2) is the first dest at which r1 (r2)
becomes <= 0.  Choice 2 wins only when
``weight2 * overhead1 > weight1 * overhead2`` (strictly lower
overhead/weight, overhead ``(activeconns << 8) + inactconns``), so ties
keep choice 1.

Deliberate difference: the random source is injected
(``Twos(random_below=f)``, ``f(n)`` in ``[0, n)`` like
get_random_u32_below); the default is a private ``random.Random``
instance, never the module-level global.  Products are exact Python
integers, where the kernel multiplies 32-bit ints.
"""

from __future__ import annotations

import random

from pylvs.core.model import DEST_F_OVERLOAD, Dest, Packet, Service
from pylvs.sched.base import RandomSource, Scheduler, register


@register
class Twos(Scheduler):
    name = "twos"

    def __init__(self, random_below: RandomSource | None = None) -> None:
        if random_below is None:
            random_below = random.Random().randrange
        self._random_below: RandomSource = random_below

    def schedule(self, svc: Service, pkt: Packet, now: float) -> Dest | None:
        dests = svc.destinations
        total = 0
        choice1: Dest | None = None  # starts as the LAST usable dest
        for d in dests:
            if not (d.flags & DEST_F_OVERLOAD) and d.weight > 0:
                total += d.weight
                choice1 = d
        if choice1 is None:
            return None
        total += 1  # draws include total itself
        r1 = self._random_below(total)
        r2 = self._random_below(total)

        choice2: Dest | None = None
        w1 = w2 = -1  # -1: not picked yet
        oh1 = oh2 = 0
        for d in dests:
            if d.flags & DEST_F_OVERLOAD:
                continue
            w = d.weight
            if w <= 0:
                continue
            r1 -= w
            r2 -= w
            if r1 <= 0 and w1 == -1:
                choice1 = d
                w1 = w
                oh1 = (d.activeconns << 8) + d.inactconns
            if r2 <= 0 and w2 == -1:
                choice2 = d
                w2 = w
                oh2 = (d.activeconns << 8) + d.inactconns
            if w1 != -1 and w2 != -1:
                break
        if choice2 is not None and w2 * oh1 > w1 * oh2:
            return choice2
        return choice1
