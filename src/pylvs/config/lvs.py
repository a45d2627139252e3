"""The LVS table a keepalived.conf asks for, in pylvs engine terms (keepalived 2.2 ipvswrapper.c).

``rules(conf)`` gives every virtual service with ALL its real servers at their
configured weight: what the table is before health checking takes servers out
(or sets them to weight 0 with inhibit_on_failure) and brings the sorry server
in.  It mirrors ipvs_set_srule()/ipvs_set_drule()/ipvs_group_cmd():

- a virtual_server_group becomes one service per address of each range
  (``10.0.0.1-10``, ``a-b``, ``net/len``) with the group entry's port, in file
  order, then one service per fwmark entry; every one gets the same real servers;
- persistence (``persistence_timeout``) sets SVC_F_PERSISTENT, the timeout, the
  granularity netmask and the persistence engine (when the pylvs table has
  it: none yet, so ``persistence_engine sip`` is left out); ``ops`` SVC_F_ONEPACKET;
  ``flag-N``/``sh-*``/``mh-*`` the scheduler flags;
- lb_kind/lvs_method NAT -> MASQ, DR -> DROUTE, TUN -> TUNNEL with its type,
  port and checksum flags; DR/TUN real servers take the service port (0 for a
  fwmark service), NAT ones keep theirs (0 means "the port the client used").

The sorry server is not in the table: it only enters when quorum is lost.
"""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import IPv4Address, ip_address

from pylvs.config.model import GroupEntry, KeepalivedConf, RealServerConf, VirtualServerConf
from pylvs.core.model import (
    AF_INET,
    AF_INET6,
    SVC_F_ONEPACKET,
    SVC_F_PERSISTENT,
    SVC_F_SCHED1,
    SVC_F_SCHED2,
    SVC_F_SCHED3,
    TUN_F_CSUM,
    TUN_F_NOCSUM,
    TUN_F_REMCSUM,
    DestSpec,
    Fwd,
    Proto,
    ServiceKey,
    ServiceSpec,
    TunType,
)
from pylvs.core.table import KNOWN_PES

FWD = {"NAT": Fwd.MASQ, "DR": Fwd.DROUTE, "TUN": Fwd.TUNNEL}
TUN_TYPES = {"ipip": TunType.IPIP, "gue": TunType.GUE, "gre": TunType.GRE}
TUN_FLAGS = {"nocsum": TUN_F_NOCSUM, "csum": TUN_F_CSUM, "remcsum": TUN_F_REMCSUM}
SCHED_FLAGS = {
    "flag-1": SVC_F_SCHED1,
    "flag-2": SVC_F_SCHED2,
    "flag-3": SVC_F_SCHED3,
    "sh-fallback": SVC_F_SCHED1,
    "sh-port": SVC_F_SCHED2,
    "mh-fallback": SVC_F_SCHED1,
    "mh-port": SVC_F_SCHED2,
}
PROTOCOLS = {"TCP": Proto.TCP, "UDP": Proto.UDP, "SCTP": Proto.SCTP}

Rule = tuple[ServiceSpec, list[DestSpec]]


def rules(conf: KeepalivedConf) -> list[Rule]:
    """Every service of the configuration with all its real servers, in file order."""
    out: list[Rule] = []
    for vs in conf.virtual_servers:
        for key in service_keys(vs, conf.groups.get(vs.group or "", ())):
            spec = service_spec(vs, key)
            out.append((spec, [dest_spec(rs, key) for rs in vs.real_servers]))
    return out


def service_keys(vs: VirtualServerConf, entries: tuple[GroupEntry, ...] = ()) -> list[ServiceKey]:
    """The IPVS services one virtual_server block stands for."""
    af = AF_INET6 if vs.ip_family == "inet6" else AF_INET
    proto = PROTOCOLS[vs.protocol]
    if vs.kind == "ip":
        assert vs.addr is not None
        return [ServiceKey.inet(proto, vs.addr, vs.port)]
    if vs.kind == "fwmark":
        assert vs.fwmark is not None
        return [ServiceKey.mark(vs.fwmark, af)]
    keys: list[ServiceKey] = []
    for e in entries:  # ipvs_group_cmd(): the address ranges, then the fwmarks
        if e.fwmark is None:
            keys.extend(ServiceKey.inet(proto, a, e.port) for a in group_addresses(e))
    for e in entries:
        if e.fwmark is not None:
            fam = {"inet": AF_INET, "inet6": AF_INET6}.get(e.family or "", af)
            keys.append(ServiceKey.mark(e.fwmark, fam))
    return keys


def group_addresses(e: GroupEntry) -> Iterator[str]:
    """The addresses of a group entry's range, first to last."""
    if e.first is None:
        return
    first = ip_address(e.first)
    for i in range(e.count):
        yield str(first + i)


def service_spec(vs: VirtualServerConf, key: ServiceKey) -> ServiceSpec:
    flags = 0
    for f in vs.sched_flags:
        flags |= SCHED_FLAGS[f]
    if vs.ops:
        flags |= SVC_F_ONEPACKET
    if not vs.persistence_timeout:
        return ServiceSpec(key, vs.lb_algo, flags)
    netmask: int | None = None
    g = vs.persistence_granularity
    if g is not None:
        if key.af == AF_INET6:
            netmask = int(g) if g.isdigit() else None
        elif not g.isdigit():
            netmask = int(IPv4Address(g))
    return ServiceSpec(
        key,
        vs.lb_algo,
        flags | SVC_F_PERSISTENT,
        vs.persistence_timeout,
        netmask,
        pe if (pe := vs.persistence_engine or "") in KNOWN_PES else "",
    )


def dest_spec(rs: RealServerConf, key: ServiceKey) -> DestSpec:
    """ipvs_set_drule() + the port ipvs_cmd()/ipvs_group_cmd() give it."""
    fwd = FWD[rs.lvs_method]
    port = rs.port
    if fwd != Fwd.MASQ:
        port = key.port  # the service port; 0 for fwmark services
    return DestSpec(
        ip_address(rs.addr),
        port,
        fwd,
        rs.weight,
        rs.uthreshold,
        rs.lthreshold,
        TUN_TYPES[rs.tun_type],
        rs.tun_port,
        TUN_FLAGS[rs.tun_flags],
    )
