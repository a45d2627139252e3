"""Observability for pylvsd: Prometheus metrics, the live dashboard, the event log.

No keepalived file corresponds: ``metrics.py`` speaks node_exporter's IPVS
collector (collector/ipvs_linux.go) so Grafana dashboards built for the
kernel keep working, ``dashboard.py`` is the one-page status view (what
HAProxy's stats page is to HAProxy), ``events.py`` keeps the recent state
changes (keepalived only logs them) and formats JSON log lines.

The records the daemon's parts hand over are defined here, with no imports
of aiohttp or prometheus_client, so that ``daemon/health.py`` and the VRRP
code can produce them cheaply.  Every provider is a callable the daemon
passes to ``daemon.api.make_app``; ``None`` (or a provider answering
``None``) means "this part is not running".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import NotRequired, TypedDict


class HealthState(TypedDict):
    """One real server of one virtual service, as the health checkers see it."""

    service: str  # API service id: tcp:10.0.0.1:80, udp:[2001:db8::1]:53, fwmark:5
    virtual_server: str  # keepalived's name for it: "TCP 10.0.0.1:80", "FWM 5", "group web"
    address: str  # the real server's address
    port: int  # its port as the table has it (DR/TUN: the service's port)
    up: bool
    weight: int  # the weight it has while up (configured, or set by misc_dynamic)
    since: float  # unix time of the last transition (or of the start of checking)


class VrrpInstance(TypedDict):
    """One vrrp_instance (keepalived's vrrp_t, the fields a status page needs)."""

    name: str
    state: str  # INIT | BACKUP | MASTER | FAULT | STOP (keepalived's VRRP_STATE_*)
    interface: NotRequired[str]
    vrid: NotRequired[int]
    priority: NotRequired[int]
    effective_priority: NotRequired[int]
    since: NotRequired[float]  # unix time of the last transition


# keepalived's numbers for the states (include/vrrp.h VRRP_STATE_*).
VRRP_STATES = {"INIT": 0, "BACKUP": 1, "MASTER": 2, "FAULT": 3, "DELETED": 97, "STOP": 98}

CountersProvider = Callable[[], Mapping[str, int]]
HealthProvider = Callable[[], "list[HealthState] | None"]
VrrpProvider = Callable[[], "list[VrrpInstance] | None"]
SyncProvider = Callable[[], "Mapping[str, int] | None"]

__all__ = [
    "VRRP_STATES",
    "CountersProvider",
    "HealthProvider",
    "HealthState",
    "SyncProvider",
    "VrrpInstance",
    "VrrpProvider",
]
