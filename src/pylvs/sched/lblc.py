"""Locality-Based Least-Connection scheduling (kernel net/netfilter/ipvs/ip_vs_lblc.c).

Per service, a cache maps the packet's destination address (``pkt.daddr``) to
one real server.  A cached server is kept while it is available, has a
weight above zero and is not "overloaded" by the lblc rule (more active
connections than its weight while some server in the service has fewer than
half its weight).  Otherwise a weighted least-connection choice is made and
cached.

The cache is a hash table of 1024 buckets (``hash_32`` of the address), as in
the kernel, because the size-triggered garbage collection walks buckets in
order from a ``rover`` and stops part-way: which entries it drops depends on
the bucket order.  Its expiry timer, every 60 s:

- on every 30th run (the ``counter``), drops every entry unused for
  ``expiration`` seconds (sysctl ``lblc_expiration``, default one day);
- otherwise, if the table holds more than ``max_size`` entries (16384), drops
  entries unused for 6 minutes, bucket by bucket, until a goal is met.

Deliberate differences, because the engine reads no clock:

- ``expire(svc, now)`` is the timer body (one run at ``now``; the next run is
  due 60 s later).  ``schedule()`` also runs every timer tick that fell due at
  or before ``now`` (at its own due time) before it looks up the cache, so a
  data plane that only calls ``schedule()`` gets the timer's behaviour too.
  ``run_timers(svc, now)`` does the same catch-up without scheduling.
- The kernel arms the timer in ``init_service``; here the first tick is due
  60 s after ``arm_timer(svc, now)`` (the lead's table should call it with
  the service's creation time), or, if that was never called, 60 s after the
  first ``schedule``/``run_timers`` call.

Kernel facts kept on purpose:

- A cached dest carrying IP_VS_DEST_F_OVERLOAD is still used (only
  availability, weight > 0 and the lblc rule are checked on a hit).
- Removed dests are not purged: their entries stay and are simply ignored on
  lookup because the dest is no longer available (there is no del_dest hook).
  If the same Dest object comes back (the kernel's dest trash), the entry is
  valid again.
- Replacing a cached dest unlinks the old entry without decrementing the
  entry counter, then counts the new entry, so ``entries`` (the kernel's
  ``tbl->entries``) drifts above the real number of entries.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from pylvs.core.model import (
    DEST_F_AVAILABLE,
    DEST_F_OVERLOAD,
    Address,
    Dest,
    Packet,
    Service,
)
from pylvs.sched.base import Scheduler, register

CHECK_EXPIRE_INTERVAL = 60.0  # seconds between timer runs (60*HZ)
ENTRY_TIMEOUT = 6 * 60.0  # idle time after which the size-driven GC may drop an entry
DEFAULT_EXPIRATION = 24 * 60 * 60.0  # sysctl lblc_expiration / lblcr_expiration default
COUNT_FOR_FULL_EXPIRATION = 30  # every 30th timer run is a full expiration check

TAB_BITS = 10  # CONFIG_IP_VS_LBLC_TAB_BITS / CONFIG_IP_VS_LBLCR_TAB_BITS default
TAB_SIZE = 1 << TAB_BITS
TAB_MASK = TAB_SIZE - 1
MAX_SIZE = TAB_SIZE * 16  # tbl->max_size

_GOLDEN_RATIO_32 = 0x61C88647


def lblc_hashkey(addr: Address) -> int:
    """Bucket of an address: hash_32() of the host-order address (IPv6 folded by XOR)."""
    return locate(addr)[1]


def locate(addr: Address) -> tuple[int, int]:
    """(dict key, bucket) of an address; the key keeps IPv4 and IPv6 apart."""
    value = int(addr)
    if addr.version == 4:
        key = value
    else:
        key = value | (1 << 128)
        value = ((value >> 96) ^ (value >> 64) ^ (value >> 32) ^ value) & 0xFFFFFFFF
    return key, ((value * _GOLDEN_RATIO_32) & 0xFFFFFFFF) >> (32 - TAB_BITS)


def least_conn(svc: Service) -> Dest | None:
    """__ip_vs_lblc_schedule(): weighted least connections over the service's dests.

    OVERLOAD-flagged dests are skipped; the first candidate must have a
    positive weight.  A later dest replaces the current choice only when
    strictly less loaded: ``loh * dest.weight > doh * least.weight``.
    """
    dests = iter(svc.destinations)
    least: Dest | None = None
    loh = 0
    for d in dests:
        if d.flags & DEST_F_OVERLOAD:
            continue
        if d.weight > 0:
            least = d
            loh = d.overhead()
            break
    if least is None:
        return None
    for d in dests:
        if d.flags & DEST_F_OVERLOAD:
            continue
        doh = d.overhead()
        if loh * d.weight > doh * least.weight:
            least = d
            loh = doh
    return least


def is_overloaded(dest: Dest, svc: Service) -> bool:
    """The lblc/lblcr rule: more active conns than weight while any dest of the
    service (flags not considered) has ``activeconns * 2 < weight``."""
    if dest.activeconns > dest.weight:
        for d in svc.destinations:
            if d.activeconns * 2 < d.weight:
                return True
    return False


class LocalityEntry:
    """Common part of a cache entry: the destination address and its last use."""

    __slots__ = ("addr", "bucket", "key", "lastuse")

    def __init__(self, addr: Address, lastuse: float) -> None:
        self.addr = addr
        self.key, self.bucket = locate(addr)
        self.lastuse = lastuse


E = TypeVar("E", bound=LocalityEntry)


class LocalityTable(Generic[E]):
    """The per-service hash table with its expiry timer (ip_vs_lblc{,r}_table).

    Only non-empty buckets are stored.  Inside a bucket the order does not
    matter: every walk handles a whole bucket.
    """

    __slots__ = ("buckets", "counter", "dead", "entries", "max_size", "next_due", "rover")

    def __init__(self) -> None:
        self.buckets: dict[int, dict[int, E]] = {}  # bucket -> key -> entry
        self.entries = 0  # tbl->entries (a counter, see the lblc drift)
        self.max_size = MAX_SIZE
        self.rover = 0
        self.counter = 1
        self.dead = False
        self.next_due: float | None = None  # None: timer not armed yet

    def get(self, addr: Address) -> E | None:
        key, h = locate(addr)
        return self.lookup(key, h)

    def lookup(self, key: int, h: int) -> E | None:
        bucket = self.buckets.get(h)
        return None if bucket is None else bucket.get(key)

    def link(self, entry: E) -> None:
        """Hash a new entry in and count it."""
        h = entry.bucket
        bucket = self.buckets.get(h)
        if bucket is None:
            bucket = self.buckets[h] = {}
        bucket[entry.key] = entry
        self.entries += 1

    def unlink(self, entry: E) -> None:
        """Take an entry out of its bucket; the caller adjusts ``entries``."""
        h = entry.bucket
        bucket = self.buckets[h]
        del bucket[entry.key]
        if not bucket:
            del self.buckets[h]

    def real_size(self) -> int:
        return sum(len(b) for b in self.buckets.values())

    def flush(self) -> None:
        """Drop everything and refuse new entries (done_service)."""
        self.dead = True
        self.buckets.clear()
        self.entries = 0
        self.next_due = None

    def arm(self, now: float) -> None:
        if not self.dead:
            self.next_due = now + CHECK_EXPIRE_INTERVAL

    def _drop_idle(self, h: int, now: float, idle: float) -> int:
        """Remove the entries of bucket ``h`` unused for ``idle`` seconds; return how many."""
        bucket = self.buckets.get(h)
        if bucket is None:
            return 0
        stale = [e for e in bucket.values() if now >= e.lastuse + idle]
        for e in stale:
            del bucket[e.key]
        if not bucket:
            del self.buckets[h]
        self.entries -= len(stale)
        return len(stale)

    def full_check(self, now: float, expiration: float) -> None:
        """Drop every entry unused for ``expiration`` seconds.

        The kernel walks all buckets starting after the rover; a full turn
        leaves the rover where it was.
        """
        for h in list(self.buckets):
            self._drop_idle(h, now, expiration)

    def check_expire(self, now: float, expiration: float) -> None:
        """One run of the periodic timer at ``now``; the next one is due 60 s later."""
        if self.dead:
            return
        if self.counter % COUNT_FOR_FULL_EXPIRATION == 0:
            self.full_check(now, expiration)
            self.counter = 1
        elif self.entries <= self.max_size:
            self.counter += 1
        else:
            goal = (self.entries - self.max_size) * 4 // 3
            goal = min(goal, self.max_size // 2)
            j = self.rover
            for _ in range(TAB_SIZE):
                j = (j + 1) & TAB_MASK
                goal -= self._drop_idle(j, now, ENTRY_TIMEOUT)
                if goal <= 0:
                    break
            self.rover = j
        self.next_due = now + CHECK_EXPIRE_INTERVAL

    def run_timers(self, now: float, expiration: float) -> None:
        """Run every timer tick due at or before ``now``, each at its due time.

        Ticks that can only advance the counter are taken in one step.
        """
        if self.dead:
            return
        if self.next_due is None:
            self.arm(now)
            return
        while self.next_due <= now:
            due = self.next_due
            if self.entries <= self.max_size and self.counter % COUNT_FOR_FULL_EXPIRATION:
                pending = int((now - due) // CHECK_EXPIRE_INTERVAL) + 1
                left = COUNT_FOR_FULL_EXPIRATION - self.counter % COUNT_FOR_FULL_EXPIRATION
                steps = min(left, pending)
                self.counter += steps
                self.next_due = due + steps * CHECK_EXPIRE_INTERVAL
            else:
                self.check_expire(due, expiration)


class LblcEntry(LocalityEntry):
    """ip_vs_lblc_entry: destination address -> one real server."""

    __slots__ = ("dest",)

    def __init__(self, addr: Address, dest: Dest, lastuse: float) -> None:
        super().__init__(addr, lastuse)
        self.dest = dest


@register
class LblcScheduler(Scheduler):
    """lblc: sticks each destination address to one server, moving it when overloaded."""

    name = "lblc"

    def __init__(self, *, expiration: float = DEFAULT_EXPIRATION) -> None:
        self.expiration = expiration  # sysctl net.ipv4.vs.lblc_expiration, seconds
        self.table: LocalityTable[LblcEntry] = LocalityTable()

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
        key, h = locate(daddr)
        en = tbl.lookup(key, h)
        if en is not None:
            en.lastuse = now
            dest = en.dest
            if dest.flags & DEST_F_AVAILABLE and dest.weight > 0 and not is_overloaded(dest, svc):
                return dest
        dest_new = least_conn(svc)
        if dest_new is None:
            return None
        if not tbl.dead:
            self._new(en, daddr, dest_new, now)
        return dest_new

    # -- timer -----------------------------------------------------------------

    def arm_timer(self, svc: Service, now: float) -> None:
        """Start the periodic timer as init_service would at time ``now``."""
        self.table.arm(now)

    def expire(self, svc: Service, now: float) -> None:
        """The timer body, run once at ``now`` (ip_vs_lblc_check_expire)."""
        self.table.check_expire(now, self.expiration)

    def run_timers(self, svc: Service, now: float) -> None:
        """Run the timer ticks due at or before ``now`` (what schedule() does first)."""
        self.table.run_timers(now, self.expiration)

    # -- inspection ------------------------------------------------------------

    @property
    def entries(self) -> int:
        """The kernel's entry counter (may exceed the real number, see module doc)."""
        return self.table.entries

    def cached(self, daddr: Address) -> Dest | None:
        """The cached dest for ``daddr`` without touching its last-use time."""
        en = self.table.get(daddr)
        return None if en is None else en.dest

    # -- internals -------------------------------------------------------------

    def _new(self, en: LblcEntry | None, daddr: Address, dest: Dest, now: float) -> None:
        """ip_vs_lblc_new(): keep an entry that already maps to ``dest``, else replace it.

        ``en`` is the entry the lookup found (nothing can change it in between).
        """
        tbl = self.table
        if en is not None:
            if en.dest is dest:
                return
            tbl.unlink(en)  # the kernel does not decrement the counter here
        tbl.link(LblcEntry(daddr, dest, now))
