"""Runs the health checkers of many real servers on one asyncio loop (keepalived's
check_daemon.c scheduler and ipwrapper.c server bookkeeping, on asyncio).

Each checker has a timer (``loop.call_at``, no thread, no polling loop); when it fires
the check runs as a task and its result goes through the checker's CheckState
(check/state.py) and the server's ServerHealth; a change of a server's state or weight
calls ``on_change(key, up, weight, reason)`` (weight None: the configured weight).
Servers start up, or down when one of their checkers has ``alpha``; ``on_change`` is
not called for that initial state (read it with :meth:`CheckRunner.health`).

``replace`` applies a new configuration: servers and checkers whose configuration did
not change (file:line positions aside) keep their state, timers and running checks;
new ones start as at startup (warmup, alpha); removed ones are cancelled (a running
MISC_CHECK script is killed).  ``stop`` cancels everything.

Time: ``clock`` (default: the loop's) is what the state machines see; timers are armed
on the loop's clock ``next_at - clock()`` ahead.  ``rand`` draws the warmup fraction.
``stats`` counts checks and lateness (how long after its planned time a check
started; a round is missed when that exceeds the checker's delay_loop).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import random
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from pylvs.check.base import get_checker
from pylvs.check.state import CheckState, Result, ServerHealth
from pylvs.config.model import CheckerConf, RealServerConf, UrlConf, Where

log = logging.getLogger("pylvsd.check")

OnChange = Callable[[Hashable, bool, "int | None", str], None]

_NOWHERE = Where("", 0)

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True, slots=True)
class ServerSpec:
    """What the runner needs to know of a real server."""

    checkers: tuple[CheckerConf, ...]
    weight: int = 1  # the configured weight, base of misc_dynamic/FILE_CHECK changes

    @classmethod
    def from_conf(cls, rs: RealServerConf) -> ServerSpec:
        return cls(rs.checkers, rs.weight)


def _strip(value: object) -> object:
    if isinstance(value, UrlConf):
        return dataclasses.replace(value, where=_NOWHERE)
    if isinstance(value, (tuple, list)):
        return tuple(_strip(v) for v in value)
    return value


def same_checker(a: CheckerConf, b: CheckerConf) -> bool:
    """Equal configurations, wherever in the file they are written."""
    if a.kind != b.kind:
        return False
    na = dataclasses.replace(
        a, where=_NOWHERE, options={k: _strip(v) for k, v in a.options.items()}
    )
    nb = dataclasses.replace(
        b, where=_NOWHERE, options={k: _strip(v) for k, v in b.options.items()}
    )
    return na == nb


@dataclass
class RunnerStats:
    checks: int = 0
    failures: int = 0
    lateness_max: float = 0.0
    lateness_sum: float = 0.0
    missed: int = 0  # checks that started a whole delay_loop or more after their time
    errors: int = 0  # checker bugs (exceptions), counted as failures


class _Slot:
    """One checker of one server: configuration, state machine, timer, running check."""

    __slots__ = ("conf", "due", "fn", "handle", "server", "started", "state", "task")

    def __init__(self, conf: CheckerConf, server: _Server) -> None:
        self.conf = conf
        self.server = server
        self.fn = get_checker(conf.kind)
        self.state = CheckState.for_conf(conf)
        self.handle: asyncio.TimerHandle | None = None
        self.task: asyncio.Task[Result] | None = None
        self.due = 0.0
        self.started = 0.0

    def cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        if self.task is not None:
            self.task.cancel()


@dataclass
class _Server:
    key: Hashable
    spec: ServerSpec
    slots: list[_Slot] = field(default_factory=list)
    health: ServerHealth = field(default_factory=lambda: ServerHealth([]))


class CheckRunner:
    def __init__(
        self,
        on_change: OnChange,
        *,
        clock: Callable[[], float] | None = None,
        rand: Callable[[], float] = random.random,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.on_change = on_change
        self._loop = loop
        self._clock = clock
        self.rand = rand
        self.servers: dict[Hashable, _Server] = {}
        self.stats = RunnerStats()
        self._running = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def now(self) -> float:
        return self._clock() if self._clock is not None else self.loop.time()

    # -- configuration -------------------------------------------------------------

    def start(self, servers: Mapping[K, ServerSpec]) -> None:
        """Start checking ``servers`` (key -> spec); call from the loop."""
        self._running = True
        self.replace(servers)

    def replace(self, servers: Mapping[K, ServerSpec]) -> None:
        """Move to a new set of servers, keeping what did not change (module docstring)."""
        self._running = True
        for key in [k for k in self.servers if k not in servers]:
            self._drop(self.servers.pop(key))
        for key, spec in servers.items():
            old = self.servers.get(key)
            if old is None:
                self._add(key, spec)
            else:
                self._update(old, spec)

    def _add(self, key: Hashable, spec: ServerSpec) -> None:
        server = _Server(key, spec)
        server.slots = [_Slot(c, server) for c in spec.checkers]
        server.health = ServerHealth([s.state for s in server.slots], spec.weight)
        self.servers[key] = server
        for slot in server.slots:
            self._arm_first(slot)

    def _update(self, server: _Server, spec: ServerSpec) -> None:
        kept: list[_Slot] = []
        unused = list(server.slots)
        fresh: list[_Slot] = []
        server.spec = spec
        for conf in spec.checkers:
            match = next((s for s in unused if same_checker(s.conf, conf)), None)
            if match is not None:
                unused.remove(match)
                match.conf = conf  # new positions for messages
                kept.append(match)
            else:
                slot = _Slot(conf, server)
                fresh.append(slot)
                kept.append(slot)
        for slot in unused:
            slot.cancel()
        server.slots = kept
        server.health.checks = [s.state for s in kept]
        server.health.weight = spec.weight
        for slot in fresh:
            self._arm_first(slot)
        self._report(server, "configuration changed")

    def _drop(self, server: _Server) -> None:
        for slot in server.slots:
            slot.cancel()
        server.slots = []

    async def stop(self) -> None:
        """Cancel every timer and running check, and wait for the checks to finish."""
        self._running = False
        tasks = []
        for server in self.servers.values():
            for slot in server.slots:
                if slot.task is not None:
                    tasks.append(slot.task)
                slot.cancel()
        self.servers.clear()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- state -----------------------------------------------------------------------

    def health(self, key: Hashable) -> tuple[bool, int | None]:
        """(up, weight) of a server as last reported (or initially)."""
        return self.servers[key].health.reported

    def keys(self) -> Iterable[Hashable]:
        return self.servers.keys()

    # -- scheduling ------------------------------------------------------------------

    def _arm_first(self, slot: _Slot) -> None:
        self._arm(slot, slot.state.start(self.now(), self.rand()))

    def _arm(self, slot: _Slot, at: float) -> None:
        slot.due = at
        when = at if self._clock is None else self.loop.time() + (at - self._clock())
        slot.handle = self.loop.call_at(when, self._fire, slot)

    def _fire(self, slot: _Slot) -> None:
        slot.handle = None
        if not self._running or not slot.server.slots:
            return
        now = self.now()
        late = max(0.0, now - slot.due)
        st = self.stats
        st.checks += 1
        st.lateness_sum += late
        if late > st.lateness_max:
            st.lateness_max = late
        if late >= slot.state.delay_loop:
            st.missed += 1
        slot.started = now
        task = self.loop.create_task(slot.fn(slot.conf))
        slot.task = task
        task.add_done_callback(functools.partial(self._done, slot))

    def _done(self, slot: _Slot, task: asyncio.Task[Result]) -> None:
        if slot.task is task:
            slot.task = None
        if task.cancelled() or slot not in slot.server.slots or not self._running:
            return
        exc = task.exception()
        if exc is not None:
            self.stats.errors += 1
            log.error("%s: checker error: %r", slot.conf.where, exc)
            res = Result(False, f"{slot.conf.kind} checker error: {exc!r}")
        else:
            res = task.result()
        if not res.ok:
            self.stats.failures += 1
        outcome = slot.state.result(res, self.now(), slot.started)
        if outcome.log is not None:
            level = logging.INFO if outcome.transition or outcome.retrying else logging.DEBUG
            log.log(
                level,
                "%s %s (%s): %s",
                slot.server.key,
                slot.conf.kind,
                slot.conf.where,
                outcome.log,
            )
        if outcome.transition is not None or outcome.weight_changed:
            self._report(slot.server, res.reason)
        self._arm(slot, outcome.next_at)

    def _report(self, server: _Server, reason: str) -> None:
        change = server.health.update(reason)
        if change is None:
            return
        log.info(
            "real server %s %s%s: %s",
            server.key,
            "up" if change.up else "down",
            "" if change.weight is None else f" weight {change.weight}",
            reason,
        )
        try:
            self.on_change(server.key, change.up, change.weight, reason)
        except Exception:
            log.exception("on_change for %s failed", server.key)
