"""The destination list primitives of ip_vs_ctl.c, in the kernel's order.

They do no validation (``table.py`` does that first) and are shared by the
table and by test builders, so schedulers always see the kernel's sequence
of hook calls.
"""

from __future__ import annotations

from pylvs.core.model import DEST_F_AVAILABLE, Dest, DestSpec, Service
from pylvs.sched.base import Scheduler


def bind_scheduler(svc: Service, sched: Scheduler) -> None:
    """ip_vs_bind_scheduler(): init_service sees the current dest list."""
    sched.init_service(svc)
    svc.sched = sched
    svc.sched_name = sched.name


def replace_scheduler(svc: Service, new: Scheduler | None, name: str) -> None:
    """ip_vs_edit_service()'s scheduler change, made atomic.

    The new scheduler is initialised before the old one is let go, so a
    scheduler that refuses the service (mh with too many dests) leaves the
    old one in place.
    """
    if new is not None:
        new.init_service(svc)
    old = svc.sched
    if old is not None:
        old.done_service(svc)
    svc.sched = new
    svc.sched_name = name


def unbind_scheduler(svc: Service) -> None:
    sched = svc.sched
    if sched is not None:
        sched.done_service(svc)
    svc.sched = None


def link_dest(svc: Service, spec: DestSpec) -> Dest:
    """__ip_vs_update_dest(add=1): list_add_rcu() puts the dest at the HEAD."""
    dest = Dest(spec, svc)
    dest.last_weight = spec.weight
    svc.destinations.insert(0, dest)
    if svc.sched is not None:
        svc.sched.add_dest(svc, dest)
    return dest


def update_dest(svc: Service, dest: Dest, spec: DestSpec) -> None:
    """__ip_vs_update_dest(add=0): new attributes, then the upd_dest hook."""
    dest.apply(spec)
    if spec.weight > 0:
        dest.last_weight = spec.weight
    if svc.sched is not None:
        svc.sched.upd_dest(svc, dest)


def unlink_dest(svc: Service, dest: Dest) -> None:
    """__ip_vs_unlink_dest(): unlink, mark unavailable, then the del_dest hook."""
    svc.destinations.remove(dest)
    dest.flags &= ~DEST_F_AVAILABLE
    if svc.sched is not None:
        svc.sched.del_dest(svc, dest)
