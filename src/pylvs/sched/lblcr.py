"""Locality-Based Least-Connection with Replication (kernel net/netfilter/ipvs/ip_vs_lblcr.c).

Per service, a cache maps the packet's destination address (``pkt.daddr``) to
a *set* of real servers, newest member first (the kernel adds at the list
head).  On a hit:

1. the weighted least-loaded usable member is picked (ip_vs_dest_set_min);
2. if the set has more than one member and was last changed more than
   ``expiration`` seconds ago (sysctl ``lblcr_expiration``, default one day),
   its weighted most-loaded member is removed (ip_vs_dest_set_max) -- after
   the pick, so the picked member itself may be the one removed;
3. if the pick exists and is not overloaded by the lblc rule it is used;
   otherwise a weighted least-connection choice over the whole service is
   made and added to the set (if not already a member).

The hash table, its 60-s expiry timer (full check on every 30th run,
size-driven garbage collection of entries unused for 6 minutes) and the
deliberate differences for the missing clock are those of ``lblc`` (see
``pylvs.sched.lblc``): ``expire(svc, now)`` is one timer run, ``schedule()``
first runs the ticks that fell due, ``arm_timer(svc, now)`` starts the timer.

Unlike lblc, removing an entry always decrements the entry counter, so there
is no counter drift.  Removed dests stay in the sets (no del_dest hook); the
pick skips them because they are no longer available, but the
most-loaded removal may still choose them.
"""

from __future__ import annotations

from pylvs.core.model import DEST_F_AVAILABLE, DEST_F_OVERLOAD, Address, Dest, Packet, Service
from pylvs.sched.base import Scheduler, register
from pylvs.sched.lblc import (
    DEFAULT_EXPIRATION,
    LocalityEntry,
    LocalityTable,
    is_overloaded,
    least_conn,
    locate,
)


class LblcrEntry(LocalityEntry):
    """ip_vs_lblcr_entry: destination address -> set of servers (head first)."""

    __slots__ = ("dests", "lastmod")

    def __init__(self, addr: Address, dest: Dest, now: float) -> None:
        super().__init__(addr, now)
        self.dests: list[Dest] = [dest]
        self.lastmod = now


def set_insert(en: LblcrEntry, dest: Dest, now: float) -> None:
    """ip_vs_dest_set_insert(check=true): add at the head unless already a member."""
    for d in en.dests:
        if d is dest:
            return
    en.dests.insert(0, dest)
    en.lastmod = now


def set_erase(en: LblcrEntry, dest: Dest, now: float) -> None:
    """ip_vs_dest_set_erase()."""
    for i, d in enumerate(en.dests):
        if d is dest:
            del en.dests[i]
            en.lastmod = now
            return


def set_min(dests: list[Dest]) -> Dest | None:
    """ip_vs_dest_set_min(): weighted least-loaded available, non-OVERLOAD member.

    The first candidate needs weight > 0; a later member replaces it only when
    strictly less loaded (``loh * d.weight > doh * least.weight``).
    """
    it = iter(dests)
    least: Dest | None = None
    loh = 0
    for d in it:
        if d.flags & DEST_F_OVERLOAD:
            continue
        if d.weight > 0 and d.flags & DEST_F_AVAILABLE:
            least = d
            loh = d.overhead()
            break
    if least is None:
        return None
    for d in it:
        if d.flags & DEST_F_OVERLOAD:
            continue
        doh = d.overhead()
        if loh * d.weight > doh * least.weight and d.flags & DEST_F_AVAILABLE:
            least = d
            loh = doh
    return least


def set_max(dests: list[Dest]) -> Dest | None:
    """ip_vs_dest_set_max(): weighted most-loaded member with weight > 0.

    Flags are not looked at.  A later member replaces the choice only when
    strictly more loaded (``moh * d.weight < doh * most.weight``).
    """
    it = iter(dests)
    most: Dest | None = None
    moh = 0
    for d in it:
        if d.weight > 0:
            most = d
            moh = d.overhead()
            break
    if most is None:
        return None
    for d in it:
        doh = d.overhead()
        if moh * d.weight < doh * most.weight and d.weight > 0:
            most = d
            moh = doh
    return most


@register
class LblcrScheduler(Scheduler):
    """lblcr: each destination address gets a growing/shrinking set of servers."""

    name = "lblcr"

    def __init__(self, *, expiration: float = DEFAULT_EXPIRATION) -> None:
        self.expiration = expiration  # sysctl net.ipv4.vs.lblcr_expiration, seconds
        self.table: LocalityTable[LblcrEntry] = LocalityTable()

    # -- hooks -----------------------------------------------------------------

    def init_service(self, svc: Service) -> None:
        self.table = LocalityTable()

    def done_service(self, svc: Service) -> None:
        self.table.flush()

    def schedule(self, svc: Service, pkt: Packet, now: float) -> Dest | None:
        tbl = self.table
        due = tbl.next_due
        if due is None or due <= now:
            tbl.run_timers(now, self.expiration)
        daddr = pkt.daddr
        en = tbl.lookup(*locate(daddr))
        if en is not None:
            en.lastuse = now
            dest = set_min(en.dests)
            if len(en.dests) > 1 and now > en.lastmod + self.expiration:
                most = set_max(en.dests)
                if most is not None:
                    set_erase(en, most, now)
            if dest is not None and not is_overloaded(dest, svc):
                return dest
            dest = least_conn(svc)
            if dest is None:
                return None
            if not tbl.dead:
                set_insert(en, dest, now)
            return dest
        dest = least_conn(svc)
        if dest is None:
            return None
        if not tbl.dead:
            tbl.link(LblcrEntry(daddr, dest, now))
        return dest

    # -- timer -----------------------------------------------------------------

    def arm_timer(self, svc: Service, now: float) -> None:
        """Start the periodic timer as init_service would at time ``now``."""
        self.table.arm(now)

    def expire(self, svc: Service, now: float) -> None:
        """The timer body, run once at ``now`` (ip_vs_lblcr_check_expire)."""
        self.table.check_expire(now, self.expiration)

    def run_timers(self, svc: Service, now: float) -> None:
        """Run the timer ticks due at or before ``now`` (what schedule() does first)."""
        self.table.run_timers(now, self.expiration)

    # -- inspection ------------------------------------------------------------

    @property
    def entries(self) -> int:
        return self.table.entries

    def cached(self, daddr: Address) -> list[Dest] | None:
        """A copy of the set for ``daddr`` (newest first), without touching it."""
        en = self.table.get(daddr)
        return None if en is None else list(en.dests)

    def lastmod(self, daddr: Address) -> float | None:
        en = self.table.get(daddr)
        return None if en is None else en.lastmod
