"""Round-robin scheduling: mirrors net/netfilter/ipvs/ip_vs_rr.c.

The kernel keeps a cursor (``svc->sched_data``) that points either at the
list head or at the dest picked last.  A new service starts at the head, so
the first pick is the newest dest (index 0, since dests are added at the
head).  Scheduling walks forward from the cursor, wraps once and gives up
after re-checking the cursor's own dest; OVERLOADed and weight-0 dests are
skipped.  When the cursor's dest is unlinked the cursor moves to the entry
before it, so the next pick is the entry that followed the removed one.

Deliberate difference: the kernel cursor is a list pointer; here it is the
dest object plus its index (``-1`` = list head), kept in step by the
add/del hooks and re-located by identity if the list was changed behind
our back.
"""

from __future__ import annotations

from pylvs.core.model import Dest, Packet, Service
from pylvs.sched.base import Scheduler, register, usable

_HEAD = -1


@register
class RoundRobin(Scheduler):
    name = "rr"

    __slots__ = ("_cur", "_pos")

    def __init__(self) -> None:
        self._cur: Dest | None = None  # None: the cursor is at the list head
        self._pos: int = _HEAD

    def init_service(self, svc: Service) -> None:
        self._cur = None
        self._pos = _HEAD

    def add_dest(self, svc: Service, dest: Dest) -> None:
        # The kernel has no add_dest hook: the new dest goes in front of
        # every entry, so only our cached index shifts.
        if self._cur is not None:
            self._pos += 1

    def del_dest(self, svc: Service, dest: Dest) -> None:
        cur = self._cur
        if cur is None:
            return
        dests = svc.destinations
        if dest is cur:
            # Step back to the predecessor of the removed entry (or the head).
            self._pos -= 1
            if 0 <= self._pos < len(dests):
                self._cur = dests[self._pos]
            else:
                self._cur = None
                self._pos = _HEAD
        elif not (self._pos < len(dests) and dests[self._pos] is cur):
            # The removed entry was in front of the cursor.
            self._pos -= 1

    def _locate(self, dests: list[Dest]) -> int:
        cur = self._cur
        if cur is None:
            return _HEAD
        pos = self._pos
        if 0 <= pos < len(dests) and dests[pos] is cur:
            return pos
        for i, d in enumerate(dests):
            if d is cur:
                self._pos = i
                return i
        # Cursor dest vanished without a del_dest call: restart at the head.
        self._cur = None
        self._pos = _HEAD
        return _HEAD

    def schedule(self, svc: Service, pkt: Packet, now: float) -> Dest | None:
        dests = svc.destinations
        pos = self._locate(dests)
        # First pass: after the cursor up to the end of the list.
        for i in range(pos + 1, len(dests)):
            d = dests[i]
            if usable(d):
                self._cur = d
                self._pos = i
                return d
        # Second pass only when the cursor is not the head: from the first
        # entry up to and including the cursor's own dest.
        for i in range(pos + 1):
            d = dests[i]
            if usable(d):
                self._cur = d
                self._pos = i
                return d
        return None
