"""Small builders for tests and benchmarks: services and dests without validation."""

from __future__ import annotations

from ipaddress import ip_address

from pylvs.core import destlist
from pylvs.core.model import (
    Dest,
    DestSpec,
    Fwd,
    Packet,
    Proto,
    Service,
    ServiceKey,
    ServiceSpec,
)
from pylvs.sched import base


def service(
    sched_name: str,
    *,
    flags: int = 0,
    addr: str = "10.0.0.1",
    port: int = 80,
    protocol: int = Proto.TCP,
    timeout: int = 0,
    **sched_options: object,
) -> Service:
    """A service bound to a fresh scheduler instance (ip_vs_add_service order)."""
    svc = Service(ServiceSpec(ServiceKey.inet(protocol, addr, port), sched_name, flags, timeout))
    destlist.bind_scheduler(svc, base.create(sched_name, **sched_options))
    return svc


def add(
    svc: Service,
    addr: str,
    port: int = 80,
    weight: int = 1,
    *,
    u_thresh: int = 0,
    l_thresh: int = 0,
    fwd: Fwd = Fwd.MASQ,
) -> Dest:
    """Add a dest at the head of the list and call the add_dest hook."""
    return destlist.link_dest(
        svc, DestSpec(ip_address(addr), port, fwd, weight, u_thresh, l_thresh)
    )


def edit(svc: Service, dest: Dest, *, weight: int | None = None) -> None:
    spec = dest.spec()
    if weight is not None:
        spec = DestSpec(
            spec.addr,
            spec.port,
            spec.fwd_method,
            weight,
            spec.u_thresh,
            spec.l_thresh,
            spec.tun_type,
            spec.tun_port,
            spec.tun_flags,
            spec.extra,
        )
    destlist.update_dest(svc, dest, spec)


def remove(svc: Service, dest: Dest) -> None:
    destlist.unlink_dest(svc, dest)


def packet(
    saddr: str = "192.168.1.1",
    sport: int = 40000,
    daddr: str = "10.0.0.1",
    dport: int = 80,
    protocol: int = Proto.TCP,
) -> Packet:
    return Packet(protocol, ip_address(saddr), sport, ip_address(daddr), dport)
