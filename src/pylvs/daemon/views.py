"""The JSON the control API speaks (v1), built from engine objects.

These TypedDicts are the contract between pylvsd and its clients: pylvsadm's
renderers (``pylvs.cli.render``) consume exactly these shapes.  Field names
follow the IPVS netlink attributes.
"""

from __future__ import annotations

from typing import TypedDict

from pylvs.core import proto_tcp, proto_udp
from pylvs.core.conn import F_ASSURED, F_TEMPLATE, Conn
from pylvs.core.est import Estimator, EstimatorSet
from pylvs.core.model import (
    AF_INET6,
    SVC_F_ONEPACKET,
    SVC_F_SCHED1,
    SVC_F_SCHED2,
    SVC_F_SCHED3,
    Dest,
    Fwd,
    Proto,
    Service,
    Stats,
    TunType,
)

FWD_NAMES = {
    Fwd.MASQ: "masq",
    Fwd.LOCALNODE: "local",
    Fwd.TUNNEL: "tunnel",
    Fwd.DROUTE: "droute",
    Fwd.BYPASS: "bypass",
    Fwd.FULLNAT: "fullnat",
}
FWD_BY_NAME = {v: k for k, v in FWD_NAMES.items()}
TUN_NAMES = {TunType.IPIP: "ipip", TunType.GUE: "gue", TunType.GRE: "gre"}
TUN_BY_NAME = {v: k for k, v in TUN_NAMES.items()}
PROTO_NAMES = {Proto.TCP: "tcp", Proto.UDP: "udp", Proto.SCTP: "sctp"}
PROTO_BY_NAME = {v: k for k, v in PROTO_NAMES.items()}
SCHED_FLAG_NAMES = ((SVC_F_SCHED1, "flag-1"), (SVC_F_SCHED2, "flag-2"), (SVC_F_SCHED3, "flag-3"))


class StatsJSON(TypedDict):
    conns: int
    inpkts: int
    outpkts: int
    inbytes: int
    outbytes: int


class RatesJSON(TypedDict):
    cps: int
    inpps: int
    outpps: int
    inbps: int
    outbps: int


class DestJSON(TypedDict):
    address: str
    port: int
    family: str  # "inet" | "inet6"
    fwd_method: str  # masq | local | tunnel | droute | fullnat
    weight: int
    u_thresh: int
    l_thresh: int
    activeconns: int
    inactconns: int
    persistconns: int
    tun_type: str  # ipip | gue | gre
    tun_port: int
    tun_flags: int  # IP_VS_TUNNEL_ENCAP_FLAG_* bits: 0 nocsum, 1 csum, 2 remcsum
    proxy_protocol: str  # "" | "v1" | "v2"
    available: bool
    overloaded: bool
    stats: StatsJSON
    rates: RatesJSON


class ServiceJSON(TypedDict):
    family: str  # "inet" | "inet6"
    protocol: str  # "tcp" | "udp" | "sctp"; "" for fwmark services
    address: str  # "" for fwmark services
    port: int
    fwmark: int
    sched_name: str
    flags: int  # IP_VS_SVC_F_* bits (1 persistent, 4 one-packet, 8/16/32 scheduler flags)
    persistent: bool
    timeout: int  # persistence timeout, seconds
    netmask: int  # IPv4: 32-bit mask as an integer; IPv6: prefix length
    ops: bool
    sched_flags: list[str]  # "flag-1", "flag-2", "flag-3" (sh-fallback = flag-1, ...)
    pe_name: str
    stats: StatsJSON
    rates: RatesJSON
    dests: list[DestJSON]  # in the kernel's list order (newest first)
    laddrs: list[str]


class ConnJSON(TypedDict):
    protocol: str  # "tcp" | "udp" | "sctp" | "ip" (fwmark templates)
    family: str
    caddr: str
    cport: int
    vaddr: str
    vport: int
    daddr: str
    dport: int
    state: str  # as the kernel names it: ESTABLISHED, SYN_RECV, ..., UDP, NONE (templates)
    expires: float  # seconds until the entry's timer fires
    fwd_method: str
    template: bool
    fwmark: int
    pe_name: str
    pe_data: str


class TimeoutJSON(TypedDict):
    tcp: int
    tcpfin: int
    udp: int


class DaemonJSON(TypedDict):
    state: str  # "master" | "backup"
    mcast_ifn: str
    syncid: int
    sync_maxlen: int
    mcast_group: str
    mcast_port: int
    mcast_ttl: int


_ZERO_RATES: RatesJSON = {"cps": 0, "inpps": 0, "outpps": 0, "inbps": 0, "outbps": 0}


def family(af: int) -> str:
    return "inet6" if af == AF_INET6 else "inet"


def stats_json(st: Stats) -> StatsJSON:
    return {
        "conns": st.conns,
        "inpkts": st.inpkts,
        "outpkts": st.outpkts,
        "inbytes": st.inbytes,
        "outbytes": st.outbytes,
    }


def rates_json(est: Estimator | None) -> RatesJSON:
    if est is None:
        return dict(_ZERO_RATES)  # type: ignore[return-value]
    r = est.rates()
    return {
        "cps": r.cps,
        "inpps": r.inpps,
        "outpps": r.outpps,
        "inbps": r.inbps,
        "outbps": r.outbps,
    }


def dest_json(d: Dest, est: EstimatorSet) -> DestJSON:
    return {
        "address": str(d.addr),
        "port": d.port,
        "family": family(d.af),
        "fwd_method": FWD_NAMES[d.fwd_method],
        "weight": d.weight,
        "u_thresh": d.u_thresh,
        "l_thresh": d.l_thresh,
        "activeconns": d.activeconns,
        "inactconns": d.inactconns,
        "persistconns": d.persistconns,
        "tun_type": TUN_NAMES[d.tun_type],
        "tun_port": d.tun_port,
        "tun_flags": d.tun_flags,
        "proxy_protocol": str(d.extra.get("proxy_protocol", "")),
        "available": d.available,
        "overloaded": d.overloaded,
        "stats": stats_json(d.stats),
        "rates": rates_json(est.get(d)),
    }


def service_json(svc: Service, est: EstimatorSet) -> ServiceJSON:
    return {
        "family": family(svc.af),
        "protocol": PROTO_NAMES.get(Proto(svc.protocol), "") if svc.protocol else "",
        "address": str(svc.addr) if svc.addr is not None else "",
        "port": svc.port,
        "fwmark": svc.fwmark,
        "sched_name": svc.sched_name,
        "flags": svc.flags,
        "persistent": svc.persistent,
        "timeout": svc.timeout,
        "netmask": svc.netmask,
        "ops": bool(svc.flags & SVC_F_ONEPACKET),
        "sched_flags": [name for bit, name in SCHED_FLAG_NAMES if svc.flags & bit],
        "pe_name": svc.pe_name,
        "stats": stats_json(svc.stats),
        "rates": rates_json(est.get(svc)),
        "dests": [dest_json(d, est) for d in svc.destinations],
        "laddrs": [str(a) for a in svc.laddrs],
    }


def state_name(conn: Conn) -> str:
    if conn.flags & F_TEMPLATE:
        return "ASSURED" if conn.flags & F_ASSURED else "NONE"
    proto = conn.protocol
    if proto == Proto.TCP:
        return proto_tcp.STATE_NAMES[conn.state]
    if proto == Proto.UDP:
        return proto_udp.STATE_NAMES[0]
    if proto == Proto.SCTP:
        from pylvs.core import proto_sctp

        return proto_sctp.state_name(conn.state)
    return "NONE"


def conn_json(conn: Conn, now: float) -> ConnJSON:
    caddr, cport, vaddr, vport, daddr, dport = conn.endpoints()
    proto = conn.protocol
    return {
        "protocol": PROTO_NAMES.get(Proto(proto), "ip") if proto in PROTO_NAMES else "ip",
        "family": family(AF_INET6 if caddr.version == 6 else 2),
        "caddr": str(caddr),
        "cport": cport,
        "vaddr": str(vaddr),
        "vport": vport,
        "daddr": str(daddr) if daddr is not None else "",
        "dport": dport,
        "state": state_name(conn),
        "expires": max(0.0, conn.expires - now),
        "fwd_method": FWD_NAMES.get(conn.fwd_method, "masq"),
        "template": bool(conn.flags & F_TEMPLATE),
        "fwmark": conn.fwmark,
        "pe_name": "",
        "pe_data": "",
    }
