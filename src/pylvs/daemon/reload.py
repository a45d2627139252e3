"""The changes that turn one rule set into another, keeping what is unchanged.

Used by SIGHUP reloads: services and real servers present in both sets are
edited only when their attributes differ, so their connections, counters
and scheduler state stay; the rest is added or deleted.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

from pylvs.core.model import DestSpec, ServiceKey, ServiceSpec
from pylvs.core.table import Op

Rules = list[tuple[ServiceSpec, list[DestSpec], list[IPv4Address | IPv6Address]]]


def diff_ops(current: Rules, desired: Rules) -> list[Op]:
    cur = {s.key: (s, ds, la) for s, ds, la in current}
    want = {s.key: (s, ds, la) for s, ds, la in desired}
    ops: list[Op] = []
    for key in cur.keys() - want.keys():
        ops.append(Op("del_service", (key,)))
    for key, (spec, dests, laddrs) in want.items():
        if key not in cur:
            ops.append(Op("add_service", (spec,)))
            ops.extend(Op("add_dest", (key, d)) for d in reversed(dests))
            ops.extend(Op("add_laddr", (key, a)) for a in laddrs)
            continue
        cspec, cdests, claddrs = cur[key]
        if cspec != spec:
            ops.append(Op("edit_service", (spec,)))
        ops.extend(_dest_ops(key, cdests, dests))
        ops.extend(Op("del_laddr", (key, a)) for a in claddrs if a not in laddrs)
        ops.extend(Op("add_laddr", (key, a)) for a in laddrs if a not in claddrs)
    return ops


def _dest_ops(key: ServiceKey, current: list[DestSpec], desired: list[DestSpec]) -> list[Op]:
    cur = {d.key: d for d in current}
    want = {d.key: d for d in desired}
    ops = [Op("del_dest", (key, d.addr, d.port)) for k, d in cur.items() if k not in want]
    for d in reversed(desired):  # added at the head: keep the file's order
        if d.key not in cur:
            ops.append(Op("add_dest", (key, d)))
        elif cur[d.key] != d:
            ops.append(Op("edit_dest", (key, d)))
    return ops
