"""Rate estimator for services, real servers and the totals (ip_vs_est.c).

Mirrors net/netfilter/ipvs/ip_vs_est.c.  Every 2 seconds each estimator
takes the difference of its counters since the previous sample and feeds it
into an exponentially weighted moving average with weight W = 1/4:

* connections and packets: ``rate = delta << 9`` (delta per 2 s, scaled by
  2^10 per second), bytes: ``rate = delta << 4`` (scaled by 2^5 per second);
* ``avg += (rate - avg) >> 2`` computed as signed 64-bit numbers (an
  arithmetic shift, so the average rounds towards minus infinity and decays
  all the way to 0 when traffic stops);
* the readout rounds: ``(avg + 0x1FF) >> 10`` for cps/pps and
  ``(avg + 0xF) >> 5`` for bytes per second (ip_vs_read_estimator).

The counters and averages are u64 in the kernel; this module wraps them to
64 bits (``& U64``) and reinterprets them as s64 exactly where the kernel
casts, so even pathological inputs (a counter that goes backwards, a delta
of 2^55 or more) give the kernel's numbers.

The arithmetic is identical in the old timer-based estimator and in the
kthread-based one that replaced it in Linux 6.2.  The kthread version splits
the 2 s period into 50 ticks of 40 ms ("rows") to spread the work, but every
estimator still sits in one row and is sampled once per 2 s.  While there
are few estimators (fewer than 2 * tick_max, thousands) the kernel puts all
new ones in the same row, so they share one phase, as they did with the old
global timer.  A new estimator is first sampled at the next pass of that
phase, 0-2 s after it was started.  :class:`EstimatorSet` does the same, with
one phase for the whole set.

Deliberate differences:

* Catching up (:meth:`EstimatorSet.tick`): the kernel's kthread runs late
  rows straight away, but if it is more than 8 ticks (320 ms) behind it
  resynchronises its timer.  Each estimator is then sampled once, and that
  sample covers the whole gap.  Here the clock is whatever ``now`` the caller
  passes, so a late call takes one sample per full period missed, keeping
  the phase.  The first of those samples sees all the traffic and the others
  see none.  That keeps the total traffic fed into the average right.  Past
  ``max_catchup`` periods (default 10, i.e. the process was suspended or the
  clock jumped) the set takes a single sample and re-phases to ``now``, as
  the kernel does.  Replaying a long gap costs work and only drives the
  averages to about zero.  ``max_catchup=1`` gives the kernel's
  "one sample, then re-phase" behaviour for any missed period.  A clock that
  goes backwards by more than a period re-phases too; the kernel does the
  same when its next run is more than a tick away.
* Our :class:`~pylvs.core.model.Stats` counters are live and ``Stats.zero()``
  really clears them.  The kernel instead keeps ``kstats0`` offsets, and its
  counters are a snapshot refreshed at each sample.
  :meth:`Estimator.zero_stats` gives the kernel's ``ip_vs_zero_stats()``
  result: the traffic counted since the last sample is still seen by the
  next one.  :meth:`Estimator.zero` is the plain ``ip_vs_zero_estimator()``
  baseline taken from the live counters.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from pylvs.core.model import Stats

__all__ = [
    "EST_PERIOD",
    "MAX_CATCHUP",
    "U64",
    "Estimator",
    "EstimatorSet",
    "Rates",
]

EST_PERIOD = 2.0
"""Seconds between two samples of one estimator (2 * HZ in the kernel)."""

MAX_CATCHUP = 10
"""Most periods :meth:`EstimatorSet.tick` replays before it re-phases instead."""

U64 = (1 << 64) - 1
_S64_SIGN = 1 << 63
_TWO64 = 1 << 64


def _ewma(avg: int, rate: int) -> int:
    """``avg += ((s64)rate - (s64)avg) >> 2`` on u64 ``avg`` and ``rate``."""
    if avg < _S64_SIGN and rate < _S64_SIGN:
        # Both non-negative as s64: no overflow is possible and the result
        # stays within [0, max(avg, rate)], so no wrapping is needed.
        return avg + ((rate - avg) >> 2)
    srate = rate - _TWO64 if rate >= _S64_SIGN else rate
    savg = avg - _TWO64 if avg >= _S64_SIGN else avg
    diff = (srate - savg) & U64  # the s64 subtraction wraps
    if diff >= _S64_SIGN:
        diff -= _TWO64
    return (avg + (diff >> 2)) & U64


@dataclass(frozen=True, slots=True)
class Rates:
    """Decoded rates as ipvsadm --rate shows them (per second, bytes per second)."""

    cps: int
    inpps: int
    outpps: int
    inbps: int
    outbps: int


class Estimator:
    """The struct ip_vs_estimator of one Stats object.

    A new estimator starts all zero (the kernel kzalloc()s it together with
    fresh, zero counters).  Attributes carry the kernel's names and scaled
    units; use :meth:`rates` for the values users see.
    """

    __slots__ = (
        "cps",
        "inbps",
        "inpps",
        "last_conns",
        "last_inbytes",
        "last_inpkts",
        "last_outbytes",
        "last_outpkts",
        "outbps",
        "outpps",
        "stats",
    )

    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        self.last_conns = 0
        self.last_inpkts = 0
        self.last_outpkts = 0
        self.last_inbytes = 0
        self.last_outbytes = 0
        self.cps = 0  # scaled by 2^10
        self.inpps = 0  # scaled by 2^10
        self.outpps = 0  # scaled by 2^10
        self.inbps = 0  # scaled by 2^5
        self.outbps = 0  # scaled by 2^5

    def sample(self) -> None:
        """Take one 2-second sample (the body of ip_vs_chain_estimation())."""
        s = self.stats
        # conns, inpkts, outpkts: per 2 s -> per s scaled by 2^10 is << 9
        cur = s.conns & U64
        self.cps = _ewma(self.cps, ((cur - self.last_conns) << 9) & U64)
        self.last_conns = cur
        cur = s.inpkts & U64
        self.inpps = _ewma(self.inpps, ((cur - self.last_inpkts) << 9) & U64)
        self.last_inpkts = cur
        cur = s.outpkts & U64
        self.outpps = _ewma(self.outpps, ((cur - self.last_outpkts) << 9) & U64)
        self.last_outpkts = cur
        # bytes: per 2 s -> per s scaled by 2^5 is << 4
        cur = s.inbytes & U64
        self.inbps = _ewma(self.inbps, ((cur - self.last_inbytes) << 4) & U64)
        self.last_inbytes = cur
        cur = s.outbytes & U64
        self.outbps = _ewma(self.outbps, ((cur - self.last_outbytes) << 4) & U64)
        self.last_outbytes = cur

    def rates(self) -> Rates:
        """ip_vs_read_estimator(): round the scaled averages (u64 arithmetic)."""
        return Rates(
            ((self.cps + 0x1FF) & U64) >> 10,
            ((self.inpps + 0x1FF) & U64) >> 10,
            ((self.outpps + 0x1FF) & U64) >> 10,
            ((self.inbps + 0xF) & U64) >> 5,
            ((self.outbps + 0xF) & U64) >> 5,
        )

    def zero(self) -> None:
        """ip_vs_zero_estimator(): clear the averages, take the counters as baseline.

        Call it after ``Stats.zero()`` (the baseline is then 0) or on its own
        to restart the averages without losing the counters.  The next sample
        sees only the traffic that arrives after this call.
        """
        s = self.stats
        self.last_conns = s.conns & U64
        self.last_inpkts = s.inpkts & U64
        self.last_outpkts = s.outpkts & U64
        self.last_inbytes = s.inbytes & U64
        self.last_outbytes = s.outbytes & U64
        self.cps = self.inpps = self.outpps = self.inbps = self.outbps = 0

    def zero_stats(self) -> None:
        """ip_vs_zero_stats(): zero the counters and the averages, as the kernel does.

        The kernel keeps its baseline at the snapshot of the last sample, so
        the traffic counted between that sample and the zeroing is still part
        of the next sample.  Here the counters themselves are cleared, so the
        baseline moves down by the same amount (modulo 2^64) to keep that
        traffic.  Call this *instead of* ``Stats.zero()``.
        """
        s = self.stats
        self.last_conns = (self.last_conns - s.conns) & U64
        self.last_inpkts = (self.last_inpkts - s.inpkts) & U64
        self.last_outpkts = (self.last_outpkts - s.outpkts) & U64
        self.last_inbytes = (self.last_inbytes - s.inbytes) & U64
        self.last_outbytes = (self.last_outbytes - s.outbytes) & U64
        s.zero()
        self.cps = self.inpps = self.outpps = self.inbps = self.outbps = 0

    def __repr__(self) -> str:
        r = self.rates()
        return (
            f"Estimator(cps={r.cps} inpps={r.inpps} outpps={r.outpps} "
            f"inbps={r.inbps} outbps={r.outbps})"
        )


class EstimatorSet:
    """All estimators of one IPVS instance, sampled together every 2 s.

    Keys are any hashable values (service keys, (service key, dest key)
    pairs, a "total" marker...).  ``tick(now)`` is the kernel's estimation
    kthread/timer driven by the caller's clock.
    """

    __slots__ = ("_ests", "_next", "max_catchup", "period")

    def __init__(self, period: float = EST_PERIOD, max_catchup: int = MAX_CATCHUP) -> None:
        if period <= 0:
            raise ValueError("period must be positive")
        if max_catchup < 1:
            raise ValueError("max_catchup must be at least 1")
        self.period = period
        self.max_catchup = max_catchup
        self._ests: dict[Hashable, Estimator] = {}
        self._next: float | None = None  # when the next sample is due

    def add(self, key: Hashable, stats: Stats) -> Estimator:
        """ip_vs_start_estimator() with a new estimator (all zero) for ``stats``."""
        return self.insert(key, Estimator(stats))

    def insert(self, key: Hashable, est: Estimator) -> Estimator:
        """Restart an existing estimator and keep its state.

        The kernel does this for a real server taken back from the trash.
        """
        if key in self._ests:
            raise ValueError(f"estimator {key!r} already present")
        self._ests[key] = est
        return est

    def remove(self, key: Hashable) -> Estimator | None:
        """ip_vs_stop_estimator(): stop sampling; the estimator is returned as is."""
        return self._ests.pop(key, None)

    def get(self, key: Hashable) -> Estimator | None:
        return self._ests.get(key)

    def __len__(self) -> int:
        return len(self._ests)

    def __contains__(self, key: object) -> bool:
        return key in self._ests

    @property
    def next_due(self) -> float | None:
        """When the next sample is due (None until the first tick)."""
        return self._next

    def tick(self, now: float) -> int:
        """Take the samples due at ``now``; return how many rounds were taken.

        The first call only sets the phase (the first sample is one period
        later).  A call that is k whole periods late takes k samples and
        keeps the phase, up to ``max_catchup``.  Past that it takes one sample
        and re-phases to ``now``.  A clock that went backwards by more than a
        period re-phases without sampling.
        """
        period = self.period
        nxt = self._next
        if nxt is None:
            self._next = now + period
            return 0
        if now < nxt:
            if nxt - now > period:
                self._next = now + period
            return 0
        due = int((now - nxt) // period) + 1
        if due > self.max_catchup:
            rounds = 1
            self._next = now + period
        else:
            rounds = due
            self._next = nxt + due * period
        ests = self._ests.values()
        for _ in range(rounds):
            for est in ests:
                est.sample()
        return rounds
