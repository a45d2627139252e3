"""Scheduler protocol and registry (kernel ip_vs_sched.c).

A scheduler is bound to one service.  The table calls the hooks in the same
places the kernel does:

- ``init_service`` when the scheduler is bound (service added, or -E changed
  the scheduler); the service may already have destinations.
- ``add_dest`` after a new dest was linked at the head of the list.
- ``del_dest`` after a dest was unlinked from the list.
- ``upd_dest`` after an existing dest's weight/thresholds were edited.
- ``done_service`` when the scheduler is unbound.
- ``schedule`` picks a dest for a new connection, or returns None.

Schedulers never read the clock; ``now`` (seconds, float) is passed in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from pylvs.core.model import DEST_F_OVERLOAD, Dest, Packet, Service

_REGISTRY: dict[str, type[Scheduler]] = {}


class Scheduler:
    """Base class; the default hooks do nothing."""

    name: ClassVar[str] = ""

    def init_service(self, svc: Service) -> None:
        return None

    def done_service(self, svc: Service) -> None:
        return None

    def add_dest(self, svc: Service, dest: Dest) -> None:
        return None

    def del_dest(self, svc: Service, dest: Dest) -> None:
        return None

    def upd_dest(self, svc: Service, dest: Dest) -> None:
        return None

    def schedule(self, svc: Service, pkt: Packet, now: float) -> Dest | None:
        raise NotImplementedError


def register(cls: type[Scheduler]) -> type[Scheduler]:
    """Class decorator: make a scheduler available under ``cls.name``."""
    if not cls.name:
        raise ValueError("scheduler without a name")
    _REGISTRY[cls.name] = cls
    return cls


def _load_all() -> None:
    # Import the scheduler modules for their @register side effect.
    from pylvs.sched import (  # noqa: F401
        dh,
        fo,
        lblc,
        lblcr,
        lc,
        mh,
        nq,
        ovf,
        rr,
        sed,
        sh,
        twos,
        wlc,
        wrr,
    )


def names() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)


def lookup(name: str) -> type[Scheduler] | None:
    _load_all()
    return _REGISTRY.get(name)


def create(name: str, **options: object) -> Scheduler:
    cls = lookup(name)
    if cls is None:
        raise KeyError(name)
    return cls(**options)


def usable(dest: Dest) -> bool:
    """Common test: not OVERLOADed and weight > 0."""
    return not (dest.flags & DEST_F_OVERLOAD) and dest.weight > 0


def first_usable(dests: list[Dest]) -> int:
    """Index of the first dest that is neither OVERLOADed nor of weight 0, else -1
    (the first loop of ip_vs_wlc_schedule / ip_vs_sed_schedule)."""
    for i, d in enumerate(dests):
        if not (d.flags & DEST_F_OVERLOAD) and d.weight > 0:
            return i
    return -1


RandomSource = Callable[[int], int]
"""``f(n)`` returns a uniformly random integer in [0, n) (get_random_u32_below)."""


class TableScheduler(Scheduler):
    """A scheduler whose lookup table is rebuilt from the dest list on every
    change (ip_vs_sh_reassign, ip_vs_mh_reassign, ip_vs_dh_reassign)."""

    def reassign(self, svc: Service) -> object:
        raise NotImplementedError

    def add_dest(self, svc: Service, dest: Dest) -> None:
        self.reassign(svc)

    def del_dest(self, svc: Service, dest: Dest) -> None:
        self.reassign(svc)

    def upd_dest(self, svc: Service, dest: Dest) -> None:
        self.reassign(svc)
