"""Virtual servers as read -> ``VirtualServerConf``: keepalived 2.2's validate_check_config().

Mirrors check_data.c validate_check_config() and check_check_script_security():
inheritance virtual server -> real server -> checker (values.inherit, then
checkers.resolve_checker), the defaults (lb_algo wlc, lb_kind NAT, protocol
UDP for address services, delay_loop 60 s) and the corrections keepalived makes
with a message (ops without UDP, zero port without persistence, quorum above
the total weight, hysteresis not below quorum, DR/TUN port mismatches,
ha_suspend with fwmarks, the family of fwmark services): the correction is
made and a warning kept.

Deliberate differences: errors for what keepalived logs and skips or only
finds when it talks to the kernel (a virtual server naming a missing group,
real servers of another address family, duplicated real servers, two virtual
servers for the same IPVS service).
"""

from __future__ import annotations

from pylvs.config.checkers import resolve_checker
from pylvs.config.lvs import group_addresses
from pylvs.config.model import (
    GroupEntry,
    RealServerConf,
    SorryServerConf,
    VirtualServerConf,
    Where,
)
from pylvs.config.values import Reader, family, given, inherit, truthy
from pylvs.config.virtual import Forwarding, RealServer, VirtualServer

Groups = dict[str, tuple[GroupEntry, ...]]


def resolve_virtual_server(
    p: Reader, vs: VirtualServer, groups: Groups, global_defs: dict[str, object]
) -> VirtualServerConf | None:
    """The virtual server with defaults and corrections applied; None when it is not used."""
    entries: tuple[GroupEntry, ...] = ()
    if vs.kind == "group":
        assert vs.group is not None
        if vs.group not in groups:
            p.error(vs.where, f"virtual_server_group {vs.group} is not defined")
            return None
        entries = groups[vs.group]
    if not vs.rs:
        p.warn(vs.where, f"virtual server {vs.name()} has no real servers - ignored")
        return None
    fwmark_only = vs.kind == "fwmark" or (
        vs.kind == "group" and all(e.fwmark is not None for e in entries)
    )
    by_address = not fwmark_only
    fams = {family(e.first) for e in entries if e.first is not None}
    fams |= {4 if e.family == "inet" else 6 for e in entries if e.family is not None}
    if vs.kind == "group" and len(fams) == 1 and not vs.af:
        vs.af = fams.pop()
    if fwmark_only and vs.protocol is not None:
        p.warn(vs.where, f"protocol given for fwmark service {vs.name()} - ignored")
    if vs.ha_suspend and (vs.kind == "fwmark" or any(e.fwmark for e in entries)):
        p.warn(vs.where, "ha_suspend cannot be used with fwmarks - cleared")
        vs.ha_suspend = False
    protocol = vs.protocol or "TCP"
    if by_address:
        if vs.protocol is None:
            p.warn(vs.where, f"virtual server {vs.name()}: no protocol set - UDP")
            protocol = "UDP"
        if vs.ops and protocol != "UDP":
            p.warn(vs.where, "one packet scheduling (ops) requires UDP - cleared")
            vs.ops = False
        zero_port = (vs.kind == "ip" and vs.port == 0) or any(
            e.fwmark is None and e.port == 0 for e in entries
        )
        if zero_port and not vs.persistence_timeout:
            p.warn(vs.where, "zero port only valid for persistent services - 360 s set")
            vs.persistence_timeout = 360
    if vs.sched is None:
        p.warn(vs.where, f"virtual server {vs.name()}: no lvs_sched set - 'wlc'")
    log_all = truthy(global_defs.get("checker_log_all_failures"))
    real_servers = _real_servers(p, vs, entries, log_all)
    if not real_servers:
        return None
    weight_sum = sum(r.weight for r in real_servers)
    quorum, hysteresis = vs.quorum, vs.hysteresis
    if quorum > weight_sum:
        p.warn(vs.where, f"quorum {quorum} exceeds the total weight {weight_sum} - reduced")
        quorum = weight_sum
    if hysteresis >= quorum and hysteresis:
        p.warn(vs.where, f"hysteresis {hysteresis} >= quorum {quorum} - reduced")
        hysteresis = max(quorum - 1, 0)
    t = vs.timing
    return VirtualServerConf(
        where=vs.where,
        kind=vs.kind,
        addr=vs.addr,
        port=vs.port,
        fwmark=vs.fwmark,
        group=vs.group,
        protocol=protocol,
        lb_algo=vs.sched or "wlc",
        lb_kind=(vs.fwd or Forwarding()).method,
        persistence_timeout=vs.persistence_timeout,
        persistence_granularity=vs.granularity if vs.persistence_timeout else None,
        persistence_engine=vs.pe if vs.persistence_timeout else None,
        ops=vs.ops,
        sched_flags=tuple(dict.fromkeys(vs.sched_flags)),
        ha_suspend=vs.ha_suspend,
        virtualhost=t.virtualhost,
        alpha=bool(t.alpha),
        omega=vs.omega,
        quorum=quorum,
        hysteresis=hysteresis,
        quorum_up=vs.quorum_up,
        quorum_down=vs.quorum_down,
        sorry_server=_sorry_server(p, vs, real_servers),
        delay_loop=given(t.delay_loop, 60.0),
        real_servers=real_servers,
        ip_family="inet6" if vs.af == 6 else "inet",
    )


def _real_servers(
    p: Reader, vs: VirtualServer, entries: tuple[GroupEntry, ...], log_all: bool
) -> tuple[RealServerConf, ...]:
    out: list[RealServerConf] = []
    seen: dict[tuple[str, int], Where] = {}
    if vs.fwd is None and any(r.fwd is None for r in vs.rs):
        p.warn(vs.where, f"virtual server {vs.name()}: no lb_kind set - NAT")
    misc_timeout = given(vs.timing.delay_loop, 60.0)
    for r in vs.rs:
        f = r.fwd or vs.fwd or Forwarding()
        af = family(r.addr)
        if f.method != "TUN":
            if vs.af and vs.af != af:
                p.error(
                    r.where,
                    f"real server {r.addr} and virtual server address "
                    "families differ (only TUN can mix them)",
                )
                continue
            vs.af = vs.af or af
        port = _rs_port(p, vs, r, f, entries)
        if (r.addr, port) in seen:
            p.error(
                r.where,
                f"real server {r.addr} {port} is duplicated (first at {seen[(r.addr, port)]})",
            )
            continue
        seen[(r.addr, port)] = r.where
        t = inherit(r.timing, vs.timing)
        checkers = tuple(
            resolve_checker(
                p, c, r.addr, port, t, misc_timeout=misc_timeout, log_all_failures=log_all
            )
            for c in r.checkers
        )
        out.append(
            RealServerConf(
                where=r.where,
                addr=r.addr,
                port=port,
                weight=given(r.weight, vs.weight),
                uthreshold=r.uthreshold,
                lthreshold=r.lthreshold,
                inhibit_on_failure=bool(t.inhibit),
                alpha=bool(t.alpha),
                notify_up=r.notify_up,
                notify_down=r.notify_down,
                lvs_method=f.method,
                tun_type=f.tun_type,
                tun_port=f.tun_port,
                tun_flags=f.tun_flags,
                checkers=checkers,
            )
        )
    if vs.af == 0 and vs.kind == "fwmark":  # all tunnelled: their family if they agree
        fams = {family(r.addr) for r in out}
        vs.af = fams.pop() if len(fams) == 1 else 4
    return tuple(out)


def _rs_port(
    p: Reader, vs: VirtualServer, r: RealServer, f: Forwarding, entries: tuple[GroupEntry, ...]
) -> int:
    """The port corrections of validate_check_config()."""
    if vs.kind == "group":
        if f.method != "NAT" and r.port:
            for e in entries:
                if e.fwmark is not None:
                    p.warn(
                        r.where,
                        f"fwmark group: port {r.port} of real server {r.addr} will be ignored",
                    )
                    break
                if e.port != r.port:
                    p.warn(
                        r.where,
                        f"real server {r.addr} port {r.port} and group "
                        f"entry port {e.port} don't match - the entry's port is used",
                    )
                    break
        return r.port
    if f.method == "NAT":
        return r.port if r.port or vs.kind == "fwmark" else vs.port
    if vs.kind == "fwmark":
        if r.port:
            p.warn(r.where, f"fwmark virtual server: port of real server {r.addr} cleared")
        return 0
    if r.port and r.port != vs.port:
        p.warn(
            r.where,
            f"virtual server and real server {r.addr} ports don't match - {vs.port} used",
        )
    return vs.port


def _sorry_server(
    p: Reader, vs: VirtualServer, rss: tuple[RealServerConf, ...]
) -> SorryServerConf | None:
    s = vs.sorry
    if s is None:
        return None
    f = vs.sorry_fwd or vs.fwd or Forwarding()
    af = family(s.addr)
    if f.method != "TUN" and vs.af and vs.af != af:
        p.error(s.where, "sorry server and virtual server address families differ")
        return None
    port = s.port
    if f.method != "NAT":
        if vs.kind == "fwmark" and port:
            p.warn(s.where, "fwmark virtual server: sorry server port cleared")
            port = 0
        elif vs.kind == "ip":
            if port and port != vs.port:
                p.warn(s.where, "virtual server and sorry server ports don't match")
            port = vs.port
    inhibit = s.inhibit
    for r in rss:
        if (r.addr, r.port) == (s.addr, port) and r.inhibit_on_failure != inhibit:
            p.warn(
                s.where,
                "sorry server is also a real server with another "
                "inhibit_on_failure - the real server's is used",
            )
            inhibit = r.inhibit_on_failure
    return SorryServerConf(
        s.where, s.addr, port, f.method, inhibit, f.tun_type, f.tun_port, f.tun_flags
    )


def check_script_security(
    p: Reader, servers: list[VirtualServerConf | None], global_defs: dict[str, object]
) -> None:
    """check_check_script_security(): scripts without enable_script_security."""
    if "enable_script_security" in global_defs:
        return
    for vs in servers:
        if vs is None:
            continue
        scripts = [vs.quorum_up, vs.quorum_down]
        for r in vs.real_servers:
            scripts += [r.notify_up, r.notify_down]
            scripts += [str(c.options["misc_path"]) for c in r.checkers if c.kind == "MISC_CHECK"]
        if any(scripts):
            p.warn(
                vs.where,
                "SECURITY VIOLATION - check scripts are being executed but "
                "enable_script_security is not set in global_defs",
            )
            return


def check_duplicates(p: Reader, servers: list[VirtualServerConf], groups: Groups) -> None:
    """Two virtual servers asking for the same IPVS service."""
    seen: dict[tuple[object, ...], Where] = {}
    for vs in servers:
        keys: list[tuple[object, ...]] = []
        if vs.kind == "ip":
            keys.append((vs.protocol, vs.addr, vs.port))
        elif vs.kind == "fwmark":
            keys.append(("fwmark", vs.fwmark, vs.ip_family))
        else:
            for e in groups.get(vs.group or "", ()):
                if e.fwmark is not None:
                    keys.append(("fwmark", e.fwmark, e.family or vs.ip_family))
                else:
                    keys.extend((vs.protocol, a, e.port) for a in group_addresses(e))
        for k in keys:
            if k in seen and seen[k] != vs.where:
                what = f"fwmark {k[1]}" if k[0] == "fwmark" else f"{k[0]} {k[1]} {k[2]}"
                p.error(vs.where, f"duplicate virtual server {what} (also at {seen[k]})")
                break
            seen.setdefault(k, vs.where)
