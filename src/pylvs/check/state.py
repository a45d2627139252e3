"""A checker's up/down life and a real server's health (keepalived 2.2 check_api.c,
check_tcp.c/check_misc.c epilogs, ipwrapper.c update_svr_checker_state).

Pure: no I/O, no clock.  The caller feeds results and the time; each answer says when
to check next and whether the checker changed state.

Rules, as keepalived 2.2 applies them:

- A checker starts up, or down in ``alpha`` mode.  Its first
  check runs after a random delay in [0, ``warmup``] (the random number is an argument).
- A success resets the retry count; the checker goes (or stays) up.  Next check after
  ``delay_loop``.
- A failure while the checker is up (or has not reported yet) is retried: with
  ``retry`` = N, the failure becomes final only after N further failed checks, each
  ``delay_before_retry`` after the previous one; then the checker goes down and the
  next check is ``delay_loop`` away.  A success in between cancels the retries.
  With ``log_all_failures`` every intermediate failure is logged.
- While a checker is down, failures are not retried (MISC_CHECK, UDP_CHECK and
  PING_CHECK do so; TCP_CHECK in 2.2 also spaces the failing checks of a down server by
  ``delay_before_retry``, which changes nothing but the load).
- MISC_CHECK measures its period from the start of the script (keepalived's
  ``last_ran``), the other checkers from the end of the check.
- A real server is up only when all its checkers are up (ipwrapper.c counts failed
  checkers).  With no checker it is always up.

Weights: MISC_CHECK ``misc_dynamic`` asks for an absolute weight (exit status - 2; exit
0 gives the configured weight back); FILE_CHECK adds ``value x weight`` to the
configured weight.  keepalived keeps the sum ``configured + contributions`` clamped to
[0, 65535]; :class:`ServerHealth` does the same and reports ``None`` while no checker
changes the configured weight.  A checker that goes down drops its contribution.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pylvs.config.model import CheckerConf

Transition = Literal["up", "down"]

WEIGHT_LIMIT = 65535  # keepalived's IPVS_WEIGHT_LIMIT: ipvsadm's maximum weight
FILE_POLL = 1.0  # FILE_CHECK reads its file at least this often (keepalived: inotify)


@dataclass(frozen=True, slots=True)
class Result:
    """What one check found.

    ``weight``: the absolute weight the checker asks for (MISC_CHECK misc_dynamic);
    ``offset``: what the checker adds to the configured weight (FILE_CHECK; MISC_CHECK
    misc_dynamic exit 0 gives 0: back to the configured weight).  None: no opinion.
    """

    ok: bool
    reason: str = ""
    weight: int | None = None
    offset: int | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What to do after a result: when to check next, and the checker's change if any.

    ``log`` is a line worth logging (a transition, a retried failure with
    log_all_failures, a first report), None otherwise.
    """

    next_at: float
    transition: Transition | None = None
    retrying: bool = False
    weight_changed: bool = False
    log: str | None = None


class CheckState:
    """One checker's state machine (see the module docstring)."""

    __slots__ = (
        "alpha",
        "delay_before_retry",
        "delay_loop",
        "from_start",
        "has_run",
        "log_all_failures",
        "name",
        "offset",
        "retry",
        "retry_it",
        "up",
        "warmup",
        "weight",
    )

    def __init__(
        self,
        *,
        delay_loop: float,
        retry: int = 1,
        delay_before_retry: float = 1.0,
        warmup: float = 0.0,
        alpha: bool = False,
        log_all_failures: bool = False,
        from_start: bool = False,
        name: str = "",
    ) -> None:
        if delay_loop <= 0:
            raise ValueError(f"delay_loop must be positive, not {delay_loop}")
        if retry < 0:
            raise ValueError(f"retry must be >= 0, not {retry}")
        self.delay_loop = delay_loop
        self.retry = retry
        self.delay_before_retry = delay_before_retry
        self.warmup = max(0.0, warmup)
        self.alpha = alpha
        self.log_all_failures = log_all_failures
        self.from_start = from_start
        self.name = name
        self.up = not alpha
        self.has_run = False
        self.retry_it = 0
        self.weight: int | None = None  # absolute weight asked for (misc_dynamic)
        self.offset = 0  # added to the configured weight (FILE_CHECK)

    @classmethod
    def for_conf(cls, conf: CheckerConf) -> CheckState:
        """The state for a checker block (``conf.alpha`` is resolved by the parser from
        the checker, real server or virtual server): MISC_CHECK counts its period from
        the script's start; FILE_CHECK knows its state at once (no retry, no alpha,
        keepalived check_file.c) and, standing in for inotify, reads its file every
        FILE_POLL seconds at most."""
        name = f"{conf.kind} {conf.where}"
        if conf.kind == "FILE_CHECK":
            poll = min(conf.delay_loop, FILE_POLL)
            return cls(delay_loop=poll, retry=0, warmup=0.0, alpha=False, name=name)
        return cls(
            delay_loop=conf.delay_loop,
            retry=conf.retry,
            delay_before_retry=conf.delay_before_retry,
            warmup=conf.warmup,
            alpha=conf.alpha,
            log_all_failures=conf.log_all_failures,
            from_start=conf.kind == "MISC_CHECK",
            name=name,
        )

    def start(self, now: float, rand: float = 0.0) -> float:
        """When to run the first check: ``rand`` in [0, 1] scales ``warmup``."""
        return now + self.warmup * min(1.0, max(0.0, rand))

    def result(self, res: Result, now: float, started: float | None = None) -> Outcome:
        """Feed one check's result at ``now`` (the check began at ``started``)."""
        base = started if self.from_start and started is not None else now
        if res.ok:
            return self._success(res, now, base)
        return self._failure(res, now, base)

    def _next(self, base: float, delay: float, now: float) -> float:
        return max(base + delay, now)

    def _success(self, res: Result, now: float, base: float) -> Outcome:
        self.retry_it = 0
        weight_changed = False
        if res.weight is not None and (self.weight != res.weight or self.offset != 0):
            self.weight, self.offset, weight_changed = res.weight, 0, True
        elif res.offset is not None and (self.offset != res.offset or self.weight is not None):
            self.weight, self.offset, weight_changed = None, res.offset, True
        first = not self.has_run
        self.has_run = True
        next_at = self._next(base, self.delay_loop, now)
        if not self.up:
            self.up = True
            return Outcome(next_at, "up", weight_changed=weight_changed, log=_msg("up", res))
        log = _msg("up (first check)", res) if first else None
        return Outcome(next_at, weight_changed=weight_changed, log=log)

    def _failure(self, res: Result, now: float, base: float) -> Outcome:
        if not (self.up or not self.has_run):
            # Already down and reported: nothing to retry, nothing to change.
            return Outcome(self._next(base, self.delay_loop, now))
        if self.retry_it < self.retry:
            self.retry_it += 1
            log = None
            if self.log_all_failures:
                log = _msg(f"failed, retry {self.retry_it}/{self.retry}", res)
            return Outcome(self._next(base, self.delay_before_retry, now), retrying=True, log=log)
        self.retry_it = 0
        first = not self.has_run
        self.has_run = True
        weight_changed = self.weight is not None or self.offset != 0
        self.weight, self.offset = None, 0
        next_at = self._next(base, self.delay_loop, now)
        after = f" after {self.retry} retries" if self.retry else ""
        if self.up:
            self.up = False
            return Outcome(
                next_at, "down", weight_changed=weight_changed, log=_msg(f"down{after}", res)
            )
        log = _msg("down (first check)", res) if first else None
        return Outcome(next_at, weight_changed=weight_changed, log=log)


def _msg(what: str, res: Result) -> str:
    return f"{what}: {res.reason}" if res.reason else what


@dataclass(frozen=True, slots=True)
class ServerChange:
    """A real server's new health: up or down, and its weight (None: the configured one)."""

    up: bool
    weight: int | None
    reason: str


class ServerHealth:
    """A real server seen through all its checkers: up only when every one is up.

    ``checks`` may be replaced (configuration reload); :meth:`update` reports a change
    of the server's state or weight since the last report.
    """

    __slots__ = ("_reported", "checks", "weight")

    def __init__(self, checks: Sequence[CheckState], weight: int = 1) -> None:
        self.checks = list(checks)
        self.weight = weight
        self._reported = (self.up, self.effective_weight)

    @property
    def up(self) -> bool:
        return all(c.up for c in self.checks)

    @property
    def effective_weight(self) -> int | None:
        """The weight the checkers ask for, or None for the configured weight."""
        extra = 0
        changed = False
        for c in self.checks:
            if c.weight is not None:
                extra += c.weight - self.weight
                changed = True
            elif c.offset:
                extra += c.offset
                changed = True
        if not changed:
            return None
        return min(WEIGHT_LIMIT, max(0, self.weight + extra))

    @property
    def reported(self) -> tuple[bool, int | None]:
        return self._reported

    def update(self, reason: str = "") -> ServerChange | None:
        now = (self.up, self.effective_weight)
        if now == self._reported:
            return None
        self._reported = now
        return ServerChange(now[0], now[1], reason)
