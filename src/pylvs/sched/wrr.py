"""Weighted round-robin scheduling: mirrors net/netfilter/ipvs/ip_vs_wrr.c.

State (the kernel's ``struct ip_vs_wrr_mark``):

- ``cl``: current list position, ``-1`` for the list head;
- ``di``: gcd of all positive weights (1 when there is none);
- ``mw``: max weight minus ``(di - 1)``, so the last pass runs with cw = 1;
- ``cw``: current weight; a dest qualifies when not OVERLOADed and
  ``weight >= cw``.

Every add/del/upd recomputes the mark (``ip_vs_wrr_dest_changed``): ``cl``
goes back to the head, ``cw`` is clamped to ``mw`` (or reset when 0), or
else rounded down to a multiple of ``di`` plus one.  ``schedule`` walks on
from ``cl``; at the end of the list it lowers ``cw`` by ``di`` and starts
from the head again, wrapping to ``mw`` when ``cw`` drops to 0 or below,
with the kernel's ``restarted``/last-pass stop rules so that it fails only
after every dest was checked against ``weight >= 1``.

Deliberate difference: ``cl`` is a list index instead of a list pointer;
every list change goes through the hooks, which reset it to the head.
"""

from __future__ import annotations

from math import gcd

from pylvs.core.model import DEST_F_OVERLOAD, Dest, Packet, Service
from pylvs.sched.base import Scheduler, register

_HEAD = -1
_NO_STOP = -2


def _gcd_weight(svc: Service) -> int:
    g = 0
    for d in svc.destinations:
        if d.weight > 0:
            g = gcd(d.weight, g) if g > 0 else d.weight
    return g if g else 1


def _max_weight(svc: Service) -> int:
    m = 0
    for d in svc.destinations:
        if d.weight > m:
            m = d.weight
    return m


@register
class WeightedRoundRobin(Scheduler):
    name = "wrr"

    __slots__ = ("cl", "cw", "di", "mw")

    def __init__(self) -> None:
        self.cl = _HEAD
        self.cw = 0
        self.mw = 0
        self.di = 1

    def init_service(self, svc: Service) -> None:
        self.cl = _HEAD
        self.di = _gcd_weight(svc)
        self.mw = _max_weight(svc) - (self.di - 1)
        self.cw = self.mw

    def _dest_changed(self, svc: Service) -> None:
        self.cl = _HEAD
        self.di = _gcd_weight(svc)
        self.mw = _max_weight(svc) - (self.di - 1)
        if self.cw > self.mw or self.cw == 0:
            self.cw = self.mw
        elif self.di > 1:
            self.cw = (self.cw // self.di) * self.di + 1

    def add_dest(self, svc: Service, dest: Dest) -> None:
        self._dest_changed(svc)

    def del_dest(self, svc: Service, dest: Dest) -> None:
        self._dest_changed(svc)

    def upd_dest(self, svc: Service, dest: Dest) -> None:
        self._dest_changed(svc)

    def schedule(self, svc: Service, pkt: Packet, now: float) -> Dest | None:
        dests = svc.destinations
        n = len(dests)
        pos = self.cl if self.cl < n else _HEAD
        if self.mw == 0:
            self.cl = pos
            return None
        last = pos
        stop = _NO_STOP
        last_pass = False
        restarted = False
        while True:
            for i in range(pos + 1, n):
                d = dests[i]
                if not (d.flags & DEST_F_OVERLOAD) and d.weight >= self.cw:
                    self.cl = i
                    return d
                if i == stop:
                    self.cl = i
                    return None
            pos = _HEAD  # the walk reached the list head
            self.cw -= self.di
            if self.cw <= 0:
                self.cw = self.mw
                if last_pass or last == _HEAD:
                    self.cl = _HEAD
                    return None
                restarted = True
            last_pass = self.cw <= self.di
            if last_pass and restarted and last != _HEAD:
                # The first traversal with cw = 1 only covered the dests
                # after 'last'; finish with the ones up to 'last'.
                stop = last
