"""pylvsadm's text output, byte for byte as ipvsadm 1.31 prints it.

Mirrors the listing half of ipvsadm 1.31's ``ipvsadm.c`` (``print_title``,
``print_service_entry``, ``print_largenum``, ``print_sched_flags``,
``fwd_name``/``fwd_switch``/``fwd_tun_info``, ``print_tunnel_rule``,
``list_all``, ``list_service``, ``list_conn``/``print_conn``,
``list_timeout``, ``list_daemon``, ``addrport_to_anyname``) and the sort
order of ``libipvs.c`` (``ipvs_cmp_services``, ``ipvs_cmp_dests`` under glibc
``qsort``, a top-down merge sort).  ipvsadm 1.31 is 1.30 plus the GRE tunnel
patch ("allow tunneling with gre encapsulation").  ``-Lc`` rows are built the
way ipvsadm builds them from ``/proc/net/ip_vs_conn`` lines written by the
kernel's ``ip_vs_conn_seq_show`` (``net/netfilter/ipvs/ip_vs_conn.c``).

Pure: no I/O.  Name lookups (what ipvsadm does with ``gethostbyaddr`` and
``getservbyport`` when ``-n`` is not given) go through an injected
``Resolver``; ``pylvs.cli.resolve`` has the real one.  A name that cannot be
resolved falls back to the numeric form, as in ipvsadm.

Kept quirks of ipvsadm (deliberately reproduced):

* the comparisons of the sort subtract unsigned 32-bit values into an ``int``,
  so addresses (or fwmarks) more than 2^31 apart compare "backwards"
  (``10.0.0.1`` sorts after ``200.0.0.1``); the merge order is glibc's;
* an IPv4 ``"PROT addr:port"`` is cut to 33 characters and an IPv4 real server
  ``addr:port`` to 28 (IPv6 is never cut); any ``addr:port`` is cut to 59
  (ipvsadm's 60-byte buffer);
* fwmark services carry no protocol in the kernel's answer, so their real
  servers' ports are never turned into service names;
* ``-S`` does not save ``-x``/``-y`` thresholds (ipvsadm 1.31 does not);
* a forwarding method ipvsadm has no name for prints as ``(null)`` (glibc).

Our extensions (not in ipvsadm):

* the FULLNAT forwarding method is listed as ``FullNat`` (seven characters,
  exactly the width of the Forward column) and saved as ``--fullnat``;
* a real server's proxy protocol is saved as ``--proxy-protocol v1|v2`` at the
  end of its ``-a`` line;
* a FULLNAT service's local addresses are saved after its real servers, one
  line each: ``--add-laddr <service> -z LADDR`` (``<service>`` as in the
  ``-A`` line, e.g. ``-t 10.0.0.1:80``; the address always numeric);
* ``--json`` prints ``json.dumps({"services": [...]})`` (or ``connections``,
  ``timeout``, ``daemons``) with ``sort_keys`` and ``indent=2``; services and
  real servers are in the same order as the text listing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Protocol, TypeVar, cast

from pylvs.cli.command import ListFormat
from pylvs.daemon.views import ConnJSON, DaemonJSON, DestJSON, ServiceJSON, TimeoutJSON

IPVS_VERSION = "1.2.1"  # NVERSION(ipvs_info.version) of every kernel since 2.6.x
CONN_TAB_SIZE = 4096  # ipvs_info.size with the default CONFIG_IP_VS_TAB_BITS=12

AF_INET = 2
AF_INET6 = 10
_PROTO_NUM = {"tcp": 6, "udp": 17, "sctp": 132}
_PROTO_TITLE = {"tcp": "TCP", "udp": "UDP", "sctp": "SCTP"}  # protocol_name()
_PROTO_OPT = {"tcp": "-t", "udp": "-u", "sctp": "--sctp-service"}  # option_from_protocol()

SVC_F_PERSISTENT = 0x0001
SVC_F_ONEPACKET = 0x0004
SVC_F_SCHED1 = 0x0008
SVC_F_SCHED2 = 0x0010
SVC_F_SCHED3 = 0x0020
_SVC_F_SCHED_ANY = SVC_F_SCHED1 | SVC_F_SCHED2 | SVC_F_SCHED3

_FWD_NAME = {  # fwd_name(); "fullnat" is ours
    "masq": "Masq",
    "local": "Local",
    "tunnel": "Tunnel",
    "droute": "Route",
    "fullnat": "FullNat",
}
_FWD_SWITCH = {  # fwd_switch(); "fullnat" is ours
    "masq": "-m",
    "tunnel": "-i",
    "local": "-g",
    "droute": "-g",
    "fullnat": "--fullnat",
}
_NULL = "(null)"  # what glibc's printf("%s", NULL) prints
_TUN_FLAGS = ("-c", "+c", "r+c")  # tunflags[] by tun_flags value
_TUN_FLAG_OPTS = ("--tun-nocsum", "--tun-csum", "--tun-remcsum")  # tun_flags_opts[]
_NA = "n/a"

# print_title()
_ARROW = "  -> RemoteAddress:Port"
_PROT = "Prot LocalAddress:Port"
_TITLE_PLAIN = (
    "Prot LocalAddress:Port Scheduler Flags\n"
    "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
)
_TITLE_TUN = (
    "Prot LocalAddress:Port Scheduler Flags\n"
    "  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n"
)

_ADDRPORT_MAX = 59  # addrport_to_anyname(): snprintf(buf, 60, ...)
_SVC_NAME_MAX_V4 = 33  # svc_name[33] = '\0' for non-IPv6 services
_DEST_NAME_MAX_V4 = 28  # dname[28] = '\0' for non-IPv6 real servers


class Resolver(Protocol):
    """Name lookups: ``None`` when there is no name (ipvsadm prints numbers)."""

    def host(self, addr: str) -> str | None:
        """gethostbyaddr(): the host name of a numeric address."""
        ...

    def service(self, port: int, proto: str) -> str | None:
        """getservbyport(): the service name of ``port`` for "tcp"/"udp"/"sctp"."""
        ...


class NumericResolver:
    """Resolves nothing: every address and port prints as a number."""

    def host(self, addr: str) -> str | None:
        return None

    def service(self, port: int, proto: str) -> str | None:
        return None


_NO_NAMES = NumericResolver()


@dataclass(frozen=True)
class _Fmt:
    """ipvsadm's FMT_* bits."""

    numeric: bool = False
    rule: bool = False
    stats: bool = False
    rate: bool = False
    thresholds: bool = False
    persistent_conn: bool = False
    tun_info: bool = False
    nosort: bool = False
    exact: bool = False

    @classmethod
    def of(cls, fmt: ListFormat) -> _Fmt:
        return cls(
            numeric=fmt.numeric,
            stats=fmt.stats,
            rate=fmt.rate,
            thresholds=fmt.thresholds,
            persistent_conn=fmt.persistent_conn,
            tun_info=fmt.tun_info,
            nosort=fmt.nosort,
            exact=fmt.exact,
        )


# ---------------------------------------------------------------- addresses

Address = IPv4Address | IPv6Address


def _addr(text: str, family: str = "") -> Address:
    """A JSON address string as an address ("" is the zero address of ``family``)."""
    if not text:
        return IPv6Address(0) if family == "inet6" else IPv4Address(0)
    return ip_address(text)


def inet_ntop(addr: Address) -> str:
    """glibc's inet_ntop(): RFC 5952 text, with the IPv4 tail for ::a.b.c.d / ::ffff:a.b.c.d."""
    if isinstance(addr, IPv4Address):
        return str(addr)
    raw = addr.packed
    words = [int.from_bytes(raw[i : i + 2], "big") for i in range(0, 16, 2)]
    # The first longest run of at least two zero words becomes "::".
    best_base, best_len = -1, 0
    cur_base, cur_len = -1, 0
    for i, w in enumerate(words):
        if w == 0:
            if cur_base < 0:
                cur_base, cur_len = i, 1
            else:
                cur_len += 1
        elif cur_base >= 0:
            if cur_len > best_len:
                best_base, best_len = cur_base, cur_len
            cur_base = -1
    if cur_base >= 0 and cur_len > best_len:
        best_base, best_len = cur_base, cur_len
    if best_len < 2:
        best_base = -1
    out: list[str] = []
    i = 0
    while i < 8:
        if best_base >= 0 and best_base <= i < best_base + best_len:
            if i == best_base:
                out.append(":")
            i += 1
            continue
        if i:
            out.append(":")
        if i == 6 and best_base == 0 and (best_len == 6 or (best_len == 5 and words[5] == 0xFFFF)):
            out.append(str(IPv4Address(raw[12:])))
            break
        out.append(f"{words[i]:x}")
        i += 1
    if best_base >= 0 and best_base + best_len == 8:
        out.append(":")
    return "".join(out)


def addrport(addr: Address, port: int, proto: str, numeric: bool, resolver: Resolver | None) -> str:
    """addrport_to_anyname(): ``host:port``, ``[host]:port`` for IPv6, at most 59 chars.

    ``proto`` is "tcp"/"udp"/"sctp" or anything else (no service-name lookup).
    """
    text = inet_ntop(addr)
    if numeric:
        host, pname = text, str(port)
    else:
        res = resolver if resolver is not None else _NO_NAMES
        host = res.host(text) or text
        name = res.service(port, proto) if proto in _PROTO_NUM else None
        pname = name or str(port)
    s = f"{host}:{pname}" if addr.version == 4 else f"[{host}]:{pname}"
    return s[:_ADDRPORT_MAX]


# ---------------------------------------------------------------- sorting

T = TypeVar("T")


def _i32(v: int) -> int:
    """An unsigned difference stored in a C ``int``."""
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def _words(addr: Address) -> tuple[int, int, int, int]:
    """union nf_inet_addr as four host-order 32-bit words (IPv4 in the first)."""
    raw = addr.packed.ljust(16, b"\0")
    w = [int.from_bytes(raw[i : i + 4], "big") for i in range(0, 16, 4)]
    return (w[0], w[1], w[2], w[3])


def _cmp_addr(af: int, a: Address, b: Address) -> int:
    wa, wb = _words(a), _words(b)
    if af == AF_INET6:
        r = 0
        for i in range(4):
            r = _i32(wa[i] - wb[i])
            if r:
                break
        return r
    return _i32(wa[0] - wb[0])


def _af(family: str) -> int:
    return AF_INET6 if family == "inet6" else AF_INET


def _svc_addr(s: ServiceJSON) -> Address:
    if s["fwmark"]:
        return IPv4Address(0)  # fwmark services report no address
    return _addr(s["address"], s["family"])


def cmp_services(s1: ServiceJSON, s2: ServiceJSON) -> int:
    """ipvs_cmp_services(): fwmark, family, protocol, address, port."""
    r = _i32(s1["fwmark"] - s2["fwmark"])
    if r:
        return r
    af1 = _af(s1["family"])
    r = af1 - _af(s2["family"])
    if r:
        return r
    r = _proto_num(s1) - _proto_num(s2)
    if r:
        return r
    r = _cmp_addr(af1, _svc_addr(s1), _svc_addr(s2))
    if r:
        return r
    return _svc_port(s1) - _svc_port(s2)


def cmp_dests(d1: DestJSON, d2: DestJSON) -> int:
    """ipvs_cmp_dests(): address (as d1's family), then port."""
    a1 = _addr(d1["address"], d1["family"])
    a2 = _addr(d2["address"], d2["family"])
    r = _cmp_addr(_af(d1["family"]), a1, a2)
    if r:
        return r
    return d1["port"] - d2["port"]


def qsort(items: Sequence[T], cmp: Callable[[T, T], int]) -> list[T]:
    """glibc qsort(): top-down merge sort, left half first, ties keep the left item."""
    n = len(items)
    if n <= 1:
        return list(items)
    n1 = n // 2
    left = qsort(items[:n1], cmp)
    right = qsort(items[n1:], cmp)
    out: list[T] = []
    i = j = 0
    while i < len(left) and j < len(right):
        if cmp(left[i], right[j]) <= 0:
            out.append(left[i])
            i += 1
        else:
            out.append(right[j])
            j += 1
    out.extend(left[i:])
    out.extend(right[j:])
    return out


def sort_services(services: Sequence[ServiceJSON]) -> list[ServiceJSON]:
    return qsort(services, cmp_services)


def sort_dests(dests: Sequence[DestJSON]) -> list[DestJSON]:
    return qsort(dests, cmp_dests)


# ---------------------------------------------------------------- pieces


def _proto_num(s: ServiceJSON) -> int:
    if s["fwmark"]:
        return 0  # the kernel does not report a fwmark service's protocol
    return _PROTO_NUM.get(s["protocol"], 0)


def _proto_for_names(s: ServiceJSON) -> str:
    return "" if s["fwmark"] else s["protocol"]


def _svc_port(s: ServiceJSON) -> int:
    return 0 if s["fwmark"] else s["port"]


def _c_int(v: int) -> str:
    """printf("%d") of an unsigned 32-bit value."""
    return str(_i32(v))


def print_largenum(i: int, exact: bool) -> str:
    """print_largenum(): nine columns, K/M/G/T from 100 million up (or exact)."""
    if exact:
        s = str(i)
        return s.rjust(9 if len(s) <= 8 else len(s) + 1)
    if i < 100_000_000:
        return f"{i:9d}"
    if i < 1_000_000_000:
        return f"{i // 1000:8d}K"
    if i < 100_000_000_000:
        return f"{i // 1_000_000:8d}M"
    if i < 100_000_000_000_000:
        return f"{i // 1_000_000_000:8d}G"
    return f"{i // 1_000_000_000_000:8d}T"


def sched_flags_text(s: ServiceJSON) -> str:
    """print_sched_flags(): names depend on the scheduler (sh-*, mh-*, flag-N)."""
    flags = s["flags"]
    names: list[str] = []
    sched = s["sched_name"]
    if sched == "sh":
        if flags & SVC_F_SCHED1:
            names.append("sh-fallback")
        if flags & SVC_F_SCHED2:
            names.append("sh-port")
    elif sched == "mh":
        if flags & SVC_F_SCHED1:
            names.append("mh-fallback")
        if flags & SVC_F_SCHED2:
            names.append("mh-port")
    else:
        if flags & SVC_F_SCHED1:
            names.append("flag-1")
        if flags & SVC_F_SCHED2:
            names.append("flag-2")
        if flags & SVC_F_SCHED3:
            names.append("flag-3")
    return ",".join(names)


def _v4_mask(mask: int) -> str:
    return str(IPv4Address(mask & 0xFFFFFFFF))


def _persistent(s: ServiceJSON) -> bool:
    return bool(s["flags"] & SVC_F_PERSISTENT) or s["persistent"]


def _ops(s: ServiceJSON) -> bool:
    return bool(s["flags"] & SVC_F_ONEPACKET) or s["ops"]


def service_name(s: ServiceJSON, f: _Fmt, resolver: Resolver | None) -> str:
    """svc_name of print_service_entry(): "TCP  addr:port" / "-t addr:port" / "FWM  N"."""
    v6 = s["family"] == "inet6"
    if s["fwmark"]:
        mark = _c_int(s["fwmark"])
        if f.rule:
            return f"-f {mark} -6" if v6 else f"-f {mark}"
        return f"FWM  {mark} IPv6" if v6 else f"FWM  {mark}"
    vname = addrport(
        _addr(s["address"], s["family"]), s["port"], s["protocol"], f.numeric, resolver
    )
    if f.rule:
        return f"{_PROTO_OPT.get(s['protocol'], '--xxx-service')} {vname}"
    name = f"{_PROTO_TITLE.get(s['protocol'], '?'):<4} {vname}"
    return name if v6 else name[:_SVC_NAME_MAX_V4]


def _tun_info(d: DestJSON) -> str:
    """fwd_tun_info(), "n/a" when it has nothing."""
    if d["fwd_method"] != "tunnel":
        return _NA
    kind = d["tun_type"]
    if kind == "ipip":
        return "ipip"
    if kind == "gue":
        return f"gue:{d['tun_port']}:{_tun_flag(_TUN_FLAGS, d)}"[:15]
    if kind == "gre":
        return f"gre:{_tun_flag(_TUN_FLAGS, d)}"[:15]
    return _NA


def _tun_flag(table: tuple[str, str, str], d: DestJSON) -> str:
    v = d["tun_flags"]
    return table[v] if 0 <= v < len(table) else "?"


def title(f: _Fmt) -> str:
    """print_title(): the two column-title lines (nothing for -S)."""
    if f.stats:
        return (
            f"{_PROT:<33} {'Conns':>8} {'InPkts':>8} {'OutPkts':>8} {'InBytes':>8} "
            f"{'OutBytes':>8}\n{_ARROW}\n"
        )
    if f.rate:
        return (
            f"{_PROT:<33} {'CPS':>8} {'InPPS':>8} {'OutPPS':>8} {'InBPS':>8} "
            f"{'OutBPS':>8}\n{_ARROW}\n"
        )
    if f.thresholds:
        return (
            f"{_PROT:<33} {'Uthreshold':<10} {'Lthreshold':<10} {'ActiveConn':<10} "
            f"{'InActConn':<10}\n{_ARROW}\n"
        )
    if f.persistent_conn:
        return (
            f"{_PROT:<33} {'Weight':<9} {'PersistConn':<11} {'ActiveConn':<10} "
            f"{'InActConn':<10}\n{_ARROW}\n"
        )
    if f.tun_info:
        return _TITLE_TUN
    if f.rule:
        return ""
    return _TITLE_PLAIN


_STATS_KEYS = ("conns", "inpkts", "outpkts", "inbytes", "outbytes")
_RATE_KEYS = ("cps", "inpps", "outpps", "inbps", "outbps")


def _largenums(values: Mapping[str, object], keys: tuple[str, ...], exact: bool) -> str:
    """The --stats / --rate columns, each through print_largenum."""
    return "".join(print_largenum(cast(int, values[k]), exact) for k in keys)


def _mask_text(s: ServiceJSON) -> str:
    """The persistence netmask as ipvsadm shows it, or "" when it is the default
    (255.255.255.255 for IPv4, prefix length 128 for IPv6)."""
    if s["family"] == "inet6":
        return "" if s["netmask"] == 128 else str(s["netmask"])
    return "" if s["netmask"] == 0xFFFFFFFF else _v4_mask(s["netmask"])


def _service_line(s: ServiceJSON, name: str, f: _Fmt) -> str:
    ln = f.exact
    if f.rule:
        out = f"-A {name} -s {s['sched_name']}"
        if _persistent(s):
            out += f" -p {s['timeout']}"
            mask = _mask_text(s)
            if mask:
                out += f" -M {mask}"
        if s["pe_name"]:
            out += f" --pe {s['pe_name']}"
        if _ops(s):
            out += " -o"
        if s["flags"] & _SVC_F_SCHED_ANY:
            out += " -b " + sched_flags_text(s)
        return out + "\n"
    if f.stats:
        return f"{name:<33}" + _largenums(s["stats"], _STATS_KEYS, ln) + "\n"
    if f.rate:
        return f"{name:<33}" + _largenums(s["rates"], _RATE_KEYS, ln) + "\n"
    out = f"{name} {s['sched_name']}"
    if s["flags"] & _SVC_F_SCHED_ANY:
        out += f" ({sched_flags_text(s)})"
    if _persistent(s):
        out += f" persistent {s['timeout']}"
        mask = _mask_text(s)
        if mask:
            out += f" mask {mask}"
        if s["pe_name"]:
            out += f" pe {s['pe_name']}"
    if _ops(s):
        out += " ops"
    return out + "\n"


def _dest_rule(name: str, dname: str, d: DestJSON) -> str:
    switch = _FWD_SWITCH.get(d["fwd_method"], _NULL)
    out = f"-a {name} -r {dname} {switch} -w {d['weight']}"
    if d["fwd_method"] == "tunnel":  # print_tunnel_rule()
        kind = d["tun_type"]
        if kind == "gre":
            out += f" --tun-type gre {_tun_flag(_TUN_FLAG_OPTS, d)}"
        elif kind == "gue":
            out += f" --tun-type gue --tun-port {d['tun_port']} {_tun_flag(_TUN_FLAG_OPTS, d)}"
        elif kind == "ipip":
            out += " --tun-type ipip"
    if d["proxy_protocol"]:
        out += f" --proxy-protocol {d['proxy_protocol']}"
    return out + "\n"


def _dest_line(s: ServiceJSON, name: str, d: DestJSON, f: _Fmt, resolver: Resolver | None) -> str:
    addr = _addr(d["address"], d["family"])
    dname = addrport(addr, d["port"], _proto_for_names(s), f.numeric, resolver)
    if f.rule:
        return _dest_rule(name, dname, d)
    if d["family"] != "inet6":
        dname = dname[:_DEST_NAME_MAX_V4]
    ln = f.exact
    if f.stats:
        return f"  -> {dname:<28}" + _largenums(d["stats"], _STATS_KEYS, ln) + "\n"
    if f.rate:
        rt = d["rates"]
        return (
            f"  -> {dname:<28} {rt['cps']:8d} {rt['inpps']:8d} {rt['outpps']:8d}"
            + print_largenum(rt["inbps"], ln)
            + print_largenum(rt["outbps"], ln)
            + "\n"
        )
    if f.thresholds:
        return (
            f"  -> {dname:<28} {d['u_thresh']:<10d} {d['l_thresh']:<10d} "
            f"{d['activeconns']:<10d} {d['inactconns']:<10d}\n"
        )
    if f.persistent_conn:
        return (
            f"  -> {dname:<28} {d['weight']:<9d} {d['persistconns']:<11d} "
            f"{d['activeconns']:<10d} {d['inactconns']:<10d}\n"
        )
    fwd = _FWD_NAME.get(d["fwd_method"], _NULL)
    if f.tun_info:
        return (
            f"  -> {dname:<28} {fwd:<7} {_tun_info(d):<13} {d['weight']:<6d} "
            f"{d['activeconns']:<10d} {d['inactconns']:<10d}\n"
        )
    return (
        f"  -> {dname:<28} {fwd:<7} {d['weight']:<6d} "
        f"{d['activeconns']:<10d} {d['inactconns']:<10d}\n"
    )


def service_entry(s: ServiceJSON, f: _Fmt, resolver: Resolver | None) -> str:
    """print_service_entry(): the service line and its real servers (sorted unless nosort)."""
    name = service_name(s, f, resolver)
    out = [_service_line(s, name, f)]
    dests = s["dests"] if f.nosort else sort_dests(s["dests"])
    out.extend(_dest_line(s, name, d, f, resolver) for d in dests)
    if f.rule:
        out.extend(f"--add-laddr {name} -z {inet_ntop(_addr(a))}\n" for a in s["laddrs"])
    return "".join(out)


def _dumps(obj: object) -> str:
    return json.dumps(obj, sort_keys=True, indent=2) + "\n"


def _sorted_for_json(services: Sequence[ServiceJSON], nosort: bool) -> list[ServiceJSON]:
    if nosort:
        return list(services)
    out: list[ServiceJSON] = []
    for s in sort_services(services):
        c = s.copy()
        c["dests"] = sort_dests(s["dests"])
        out.append(c)
    return out


# ---------------------------------------------------------------- public API


def render_list(
    services: Sequence[ServiceJSON],
    fmt: ListFormat,
    resolver: Resolver | None = None,
    *,
    version: str = IPVS_VERSION,
    conn_tab_size: int = CONN_TAB_SIZE,
) -> str:
    """``ipvsadm -L`` (list_all): version line, titles, every service sorted."""
    if fmt.json:
        return _dumps({"services": _sorted_for_json(services, fmt.nosort)})
    f = _Fmt.of(fmt)
    out = [f"IP Virtual Server version {version} (size={conn_tab_size})\n", title(f)]
    ordered = list(services) if f.nosort else sort_services(services)
    out.extend(service_entry(s, f, resolver) for s in ordered)
    return "".join(out)


def render_service(service: ServiceJSON, fmt: ListFormat, resolver: Resolver | None = None) -> str:
    """``ipvsadm -L -t VIP:PORT`` (list_service): titles and that service, no version line."""
    if fmt.json:
        return _dumps({"services": _sorted_for_json([service], fmt.nosort)})
    f = _Fmt.of(fmt)
    return title(f) + service_entry(service, f, resolver)


def render_save(
    services: Sequence[ServiceJSON], numeric: bool, resolver: Resolver | None = None
) -> str:
    """``ipvsadm -S [-n]``: one -A line per service, then its -a lines (always sorted)."""
    f = _Fmt(numeric=numeric, rule=True)
    return "".join(service_entry(s, f, resolver) for s in sort_services(services))


_CONN_PROTO = {"tcp": "TCP", "udp": "UDP", "sctp": "SCTP", "ip": "IP"}  # ip_vs_proto_name()


def _conn_seconds(expires: float) -> int:
    """Whole seconds as the kernel prints them: msecs / 1000, never negative.

    A microsecond of slack absorbs float noise from ``expires - now``.
    """
    if expires <= 0:
        return 0
    return int(expires * 1000 + 1e-3) // 1000


def conn_line(c: ConnJSON, fmt: ListFormat, resolver: Resolver | None = None) -> str:
    """print_conn(): one ``-Lc`` row."""
    pname = _CONN_PROTO.get(c["protocol"], c["protocol"].upper())
    # ipvsadm picks the family from the client address text, the real
    # server's family from its own text; names only for TCP/UDP/SCTP.
    caddr = _addr(c["caddr"], c["family"])
    af_family = "inet6" if caddr.version == 6 else "inet"
    vaddr = _addr(c["vaddr"], af_family)
    daddr = _addr(c["daddr"], af_family)
    proto = c["protocol"] if pname in ("TCP", "UDP", "SCTP") else ""
    n = fmt.numeric
    cname = addrport(caddr, c["cport"], proto, n, resolver)
    vname = addrport(vaddr, c["vport"], proto, n, resolver)
    dname = addrport(daddr, c["dport"], proto, n, resolver)
    secs = _conn_seconds(c["expires"])
    expire = f"{secs // 60:02d}:{secs % 60:02d}"
    # The kernel appends " PENAME PEDATA" when the entry has persistence
    # engine data; ipvsadm's sscanf takes one word of each.
    pe_words = ([c["pe_name"], *c["pe_data"].split()] if c["pe_name"] else [])[:2]
    if fmt.persistent_conn and len(pe_words) == 2:
        return (
            f"{pname:<3} {expire:<6} {c['state']:<11} {cname:<18} {vname:<18} "
            f"{dname:<16} {pe_words[0]:<18} {pe_words[1]}\n"
        )
    return f"{pname:<3} {expire:<6} {c['state']:<11} {cname:<18} {vname:<18} {dname}\n"


def render_conns(
    conns: Sequence[ConnJSON], fmt: ListFormat, resolver: Resolver | None = None
) -> str:
    """``ipvsadm -Lc`` (list_conn): header, titles and one row per entry, in the given order."""
    if fmt.json:
        return _dumps({"connections": list(conns)})
    out = ["IPVS connection entries\n"]
    if fmt.persistent_conn:
        out.append(
            f"pro expire {'state':<11} {'source':<18} {'virtual':<18} {'destination':<18} "
            f"{'pe name':<16} pe_data\n"
        )
    else:
        out.append(f"pro expire {'state':<11} {'source':<18} {'virtual':<18} destination\n")
    out.extend(conn_line(c, fmt, resolver) for c in conns)
    return "".join(out)


def render_timeout(t: TimeoutJSON, *, as_json: bool = False) -> str:
    """``ipvsadm -L --timeout`` (list_timeout)."""
    if as_json:
        return _dumps({"timeout": t})
    return f"Timeout (tcp tcpfin udp): {t['tcp']} {t['tcpfin']} {t['udp']}\n"


def render_daemon(daemons: Sequence[DaemonJSON], *, as_json: bool = False) -> str:
    """``ipvsadm -L --daemon`` (list_daemon): master first, then backup, as the kernel dumps."""
    if as_json:
        return _dumps({"daemons": list(daemons)})
    out: list[str] = []
    for state in ("master", "backup"):
        for d in daemons:
            if d["state"] != state:
                continue
            line = f"{state} sync daemon (mcast={d['mcast_ifn']}, syncid={_c_int(d['syncid'])}"
            if d["sync_maxlen"]:
                line += f", maxlen={d['sync_maxlen']}"
            if d["mcast_group"]:
                line += f", group={inet_ntop(_addr(d['mcast_group']))}"
            if d["mcast_port"]:
                line += f", port={d['mcast_port']}"
            if d["mcast_ttl"]:
                line += f", ttl={d['mcast_ttl']}"
            out.append(line + ")\n")
    return "".join(out)
