"""virtual_server_group, virtual_server, real_server and sorry_server blocks (keepalived 2.2).

Mirrors check_parser.c: vsg_handler()/alloc_vsg_entry() (group entries:
ADDR, ADDR-N, ADDR-ADDR, NET/LEN with a port, or fwmark N [inet|inet6]),
the virtual_server keywords (lb_algo/lvs_sched, lb_kind/lvs_method with
svr_forwarding_handler()'s tunnel options, persistence_*, protocol,
ip_family, ops and the scheduler flags, ha_suspend, quorum*, hysteresis,
omega, sorry_server*), real_server (weight, lvs_method, thresholds,
notify_up/notify_down) and the options a virtual server hands down
(values.Timing).  The blocks are read as written into mutable records
(``VirtualServer``, ``RealServer``); validate.py resolves them.

Deliberate differences: what keepalived logs and skips is an error here;
real server weights are limited to 65535 and persistence timeouts to
2147483 s, what the pylvs rule table (and ipvsadm) accepts.  The order of
statements only matters where keepalived reads it (sh-port/mh-port after
lb_algo, sorry_server_* after sorry_server, a real server takes the lb_kind
given before it).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from ipaddress import IPv4Address, ip_address, ip_network

from pylvs.config.checkers import CHECKERS, Checker, TrackFiles, read_checker
from pylvs.config.model import GroupEntry, Node, SorryServerConf, Where
from pylvs.config.values import TIMING_KEYWORDS, UINT_MAX, Reader, Timing, family, given, names
from pylvs.core.table import KNOWN_PES

SCHEDULERS = names("rr wrr lc wlc lblc sh mh dh fo ovf lblcr sed nq twos")
MAX_WEIGHT = 65535  # pylvs/ipvsadm (keepalived: INT32_MAX)
MAX_PERSISTENCE = 0x7FFFFFFF // 1000  # pylvs rule table (keepalived: 31 days)
MAX_GROUP_RANGE = 65536

_VS_FLAGS = names("ops flag-1 flag-2 flag-3 sh-port sh-fallback mh-port mh-fallback")
_VS_KEYWORDS = frozenset(
    names(
        "lb_algo lvs_sched lb_kind lvs_method persistence_timeout persistence_granularity "
        "persistence_engine protocol ip_family quorum hysteresis weight sorry_server "
        "sorry_server_inhibit sorry_server_lvs_method ha_suspend omega quorum_up quorum_down"
    )
    + _VS_FLAGS
    + TIMING_KEYWORDS
)
_RS_KEYWORDS = frozenset(
    names("weight lvs_method uthreshold lthreshold notify_up notify_down") + TIMING_KEYWORDS
)


@dataclass
class Forwarding:
    """lb_kind / lvs_method: NAT | DR | TUN and the tunnel's options."""

    method: str = "NAT"
    tun_type: str = "ipip"
    tun_port: int = 0
    tun_flags: str = "nocsum"


@dataclass
class RealServer:
    where: Where
    addr: str
    port: int
    fwd: Forwarding | None
    timing: Timing = field(default_factory=Timing)
    weight: int | None = None
    uthreshold: int = 0
    lthreshold: int = 0
    notify_up: str | None = None
    notify_down: str | None = None
    checkers: list[Checker] = field(default_factory=list)


@dataclass
class VirtualServer:
    where: Where
    kind: str
    addr: str | None = None
    port: int = 0
    fwmark: int | None = None
    group: str | None = None
    af: int = 0  # 4 | 6 | 0 (not known yet)
    timing: Timing = field(default_factory=lambda: Timing(alpha=False, inhibit=False))
    protocol: str | None = None
    sched: str | None = None
    fwd: Forwarding | None = None
    persistence_timeout: int = 0
    granularity: str | None = None
    pe: str | None = None
    ops: bool = False
    sched_flags: list[str] = field(default_factory=list)
    ha_suspend: bool = False
    omega: bool = False
    quorum: int = 1
    hysteresis: int = 0
    quorum_up: str | None = None
    quorum_down: str | None = None
    weight: int = 1
    sorry: SorryServerConf | None = None
    sorry_fwd: Forwarding | None = None
    rs: list[RealServer] = field(default_factory=list)

    def name(self) -> str:
        if self.kind == "group":
            return f"group {self.group}"
        if self.kind == "fwmark":
            return f"fwmark {self.fwmark}"
        return f"{self.addr} {self.port}"


def read_forwarding(p: Reader, n: Node) -> Forwarding | None:
    """svr_forwarding_handler(): NAT|DR|TUN [type ipip|gue|gre] [port N] [csum opts]."""
    method = p.arg(n)
    if method is None:
        return None
    if method not in ("NAT", "DR", "TUN"):
        p.error(n, f"unknown {n.words[0]} '{method}' (NAT|DR|TUN)")
        return None
    f = Forwarding(method)  # every lb_kind/lvs_method starts from ipip, no port, nocsum
    words = n.words[2:]
    i = 0
    while i < len(words):
        w = words[i]
        if w in ("type", "port"):
            if i + 1 >= len(words):
                p.error(n, f"missing tunnel {w}")
                return None
            v = words[i + 1]
            if w == "type":
                if v not in ("ipip", "gue", "gre"):
                    p.error(n, f"unknown tunnel type '{v}' (ipip|gue|gre)")
                    return None
                f.tun_type = v
            else:
                port = p.number(n, v, 1, 65535)
                if port is None:
                    return None
                f.tun_port = port
            i += 2
        elif w in ("nocsum", "csum", "remcsum"):
            f.tun_flags = w
            i += 1
        else:
            p.error(n, f"invalid tunnel option '{w}'")
            return None
    if (f.tun_type == "gue") != (f.tun_port != 0):
        p.error(n, "gue tunnels require a port, other tunnels cannot have one")
        return None
    if f.tun_type == "ipip" and f.tun_flags != "nocsum":
        p.error(n, "ipip tunnels do not support checksum options")
        return None
    if f.tun_type == "gre" and f.tun_flags == "remcsum":
        p.error(n, "gre tunnels do not support remcsum")
        return None
    return f


# -- virtual_server_group --------------------------------------------------------------


def read_group(p: Reader, n: Node, groups: dict[str, tuple[GroupEntry, ...]]) -> None:
    """A ``virtual_server_group NAME { }`` block into ``groups[NAME]``."""
    named = p.named_block(n)
    if named is None:
        return
    name, kids = named
    entries: list[GroupEntry] = []
    for c in kids:
        if not p.leaf(c):
            continue
        e = _group_fwmark(p, c) if c.words[0] == "fwmark" else _group_range(p, c)
        if e is not None:
            entries.append(e)
    if name in groups:
        p.error(n, f"duplicate virtual_server_group {name}")
        return
    if not entries:
        p.error(n, f"virtual_server_group {name} has no entries")
        return
    fams = {family(e.first) for e in entries if e.first is not None}
    if len(fams) > 1 and any(e.fwmark is not None and e.family is None for e in entries):
        p.error(n, f"virtual_server_group {name} has IPv4, IPv6 and a fwmark without family")
        return
    groups[name] = tuple(entries)


def _group_fwmark(p: Reader, c: Node) -> GroupEntry | None:
    mark = p.uint(c, 1, UINT_MAX, most=2)
    fam = c.words[2] if len(c.words) > 2 else None
    if fam is not None and fam not in ("inet", "inet6"):
        p.error(c, f"unknown address family '{fam}' for fwmark (inet|inet6)")
        return None
    return None if mark is None else GroupEntry(c.where, fwmark=mark, family=fam)


def _group_range(p: Reader, c: Node) -> GroupEntry | None:
    """alloc_vsg_entry(): ADDR, ADDR-N (last octet / IPv6 hex group), ADDR-ADDR, NET/LEN."""
    spec = c.words[0]
    port = p.port(c, 1)
    if len(c.words) > 2:
        p.warn(c, f"extra words after '{spec}' ignored: {' '.join(c.words[2:])}")
    if port is None:
        return None
    first, count = _range(spec)
    if first is None:
        p.error(c, f"invalid virtual server group address or range '{spec}'")
        return None
    if count < 1:
        p.error(c, f"address range '{spec}' ends before it starts")
        return None
    if count > MAX_GROUP_RANGE:
        p.error(c, f"address range '{spec}' has {count} addresses (at most 65536)")
        return None
    return GroupEntry(c.where, first=first, count=count, port=port)


def _range(spec: str) -> tuple[str | None, int]:
    """(first address, count) of a group entry; (None, 0) when it cannot be read."""
    try:
        if "/" in spec:
            net = ip_network(spec, strict=True)
            return str(net.network_address), net.num_addresses
        if "-" not in spec:
            return str(ip_address(spec)), 1
        head, tail = spec.split("-", 1)
        first = ip_address(head)
        if ("." if first.version == 4 else ":") in tail:
            last = ip_address(tail)
            if last.version != first.version:
                return None, 0
            return str(first), int(last) - int(first) + 1
        # the end replaces the last octet (decimal) or the last IPv6 group (hexadecimal)
        v4 = first.version == 4
        if not re.fullmatch(r"[0-9]+" if v4 else r"[0-9a-fA-F]+", tail):
            return None, 0
        end = int(tail, 10 if v4 else 16)
        if end > (255 if v4 else 0xFFFF):
            return None, 0
        start = int(first) & (0xFF if v4 else 0xFFFF)
        return str(first), (end - start + 1) if end > start else 0
    except ValueError:
        return None, 0


# -- virtual_server --------------------------------------------------------------------


def read_virtual_server(p: Reader, n: Node, track_files: TrackFiles) -> VirtualServer | None:
    """A ``virtual_server`` block as written; None when its head cannot be used."""
    vs = _vs_head(p, n)
    kids = p.block(n)
    if kids is None:
        return None
    ok = vs is not None
    vs = vs or VirtualServer(n.where, "ip")  # keep reading the block for its errors
    for c in kids:
        kw = c.words[0]
        if kw == "real_server":
            rs = read_real_server(p, c, vs, track_files)
            if rs is not None:
                vs.rs.append(rs)
        elif kw not in _VS_KEYWORDS:
            p.unknown(c, "in virtual_server")
        elif not p.leaf(c):
            continue
        elif kw in _VS_HANDLERS:
            _VS_HANDLERS[kw](p, c, vs)
        elif kw in _VS_FLAGS:
            _vs_flag(p, c, vs)
        elif kw in ("ha_suspend", "omega"):
            setattr(vs, kw, p.flag(c))
        elif kw in ("quorum_up", "quorum_down"):
            setattr(vs, kw, p.script(c))
        else:
            p.timing(c, vs.timing, "virtual")
    return vs if ok else None


def _vs_head(p: Reader, n: Node) -> VirtualServer | None:
    w = n.words
    if len(w) < 2:
        p.error(n, "virtual_server needs an address, 'fwmark N' or 'group NAME'")
        return None
    if w[1] in ("fwmark", "group"):
        v = p.arg(n, 2, 2)
        if v is None:
            return None
        if w[1] == "group":
            return VirtualServer(n.where, "group", group=v)
        mark = p.number(n, v, 1, UINT_MAX)
        return None if mark is None else VirtualServer(n.where, "fwmark", fwmark=mark)
    if len(w) > 3:
        p.warn(n, f"extra words after virtual_server ignored: {' '.join(w[3:])}")
    addr = p.address(n, w[1], "virtual server")
    port = p.port(n, 2)
    if addr is None or port is None:
        return None
    return VirtualServer(n.where, "ip", addr=addr, port=port, af=family(addr))


def _vs_sched(p: Reader, c: Node, vs: VirtualServer) -> None:
    s = p.arg(c, 1, 1)
    if s is not None and s not in SCHEDULERS:
        p.error(c, f"invalid lvs_sched '{s}' ({'|'.join(SCHEDULERS)})")
    elif s is not None:
        vs.sched = s


def _vs_fwd(p: Reader, c: Node, vs: VirtualServer) -> None:
    vs.fwd = read_forwarding(p, c) or vs.fwd


def _vs_flag(p: Reader, c: Node, vs: VirtualServer) -> None:
    kw = c.words[0]
    p.flag(c)
    if kw == "ops":
        vs.ops = True
    elif kw.startswith("flag-") or vs.sched == kw[:2]:
        vs.sched_flags.append(kw)
    else:
        p.warn(c, f"'{kw}' only applies to the {kw[:2]} scheduler given before it - ignored")


def _vs_persistence(p: Reader, c: Node, vs: VirtualServer) -> None:
    if len(c.words) < 2:
        vs.persistence_timeout = 360
    else:
        vs.persistence_timeout = p.uint(c, 1, MAX_PERSISTENCE) or vs.persistence_timeout


def _vs_granularity(p: Reader, c: Node, vs: VirtualServer) -> None:
    text = p.arg(c, 1, 1)
    if text is None:
        return
    af = vs.af or (4 if "." in text else 6)
    if af == 6:
        bits = p.number(c, text, 1, 128)
        if bits is None:
            return
        vs.granularity = str(bits)
    else:
        try:
            vs.granularity = str(IPv4Address(text))
        except ValueError:
            p.error(c, f"invalid IPv4 persistence_granularity '{text}'")
            return
    vs.af = vs.af or af
    vs.persistence_timeout = vs.persistence_timeout or 360


def _vs_engine(p: Reader, c: Node, vs: VirtualServer) -> None:
    vs.pe = p.arg(c, 1, 1)
    if vs.pe is not None and vs.pe not in KNOWN_PES:
        p.warn(c, f"persistence_engine {vs.pe}: not supported by pylvs, not used")


def _vs_protocol(p: Reader, c: Node, vs: VirtualServer) -> None:
    proto = p.arg(c, 1, 1)
    if proto is not None and proto.upper() not in ("TCP", "UDP", "SCTP"):
        p.error(c, f"unknown protocol '{proto}' (TCP|UDP|SCTP)")
    elif proto is not None:
        vs.protocol = proto.upper()


def _vs_family(p: Reader, c: Node, vs: VirtualServer) -> None:
    fam = p.arg(c, 1, 1)
    if fam not in ("inet", "inet6"):
        if fam is not None:
            p.error(c, f"unknown address family '{fam}' (inet|inet6)")
        return
    af = 4 if fam == "inet" else 6
    if vs.af and vs.af != af:
        p.error(c, f"ip_family {fam} conflicts with the virtual server's address family")
        return
    vs.af = af


def _vs_quorum(p: Reader, c: Node, vs: VirtualServer) -> None:
    vs.quorum = given(p.uint(c, 1, UINT_MAX), vs.quorum)


def _vs_hysteresis(p: Reader, c: Node, vs: VirtualServer) -> None:
    vs.hysteresis = given(p.uint(c, 0, UINT_MAX), vs.hysteresis)


def _vs_weight(p: Reader, c: Node, vs: VirtualServer) -> None:
    vs.weight = given(p.uint(c, 1, MAX_WEIGHT), vs.weight)


def _vs_sorry(p: Reader, c: Node, vs: VirtualServer) -> None:
    addr_text = p.arg(c, 1, 2)
    if addr_text is None:
        return
    addr = p.address(c, addr_text, "sorry server")
    port = p.port(c, 2)
    if addr is not None and port is not None:
        vs.sorry = SorryServerConf(c.where, addr, port)
        vs.sorry_fwd = vs.fwd


def _vs_sorry_inhibit(p: Reader, c: Node, vs: VirtualServer) -> None:
    if vs.sorry is None:
        p.error(c, "sorry_server_inhibit used before or without sorry_server")
    else:
        vs.sorry = dataclasses.replace(vs.sorry, inhibit=p.flag(c))


def _vs_sorry_fwd(p: Reader, c: Node, vs: VirtualServer) -> None:
    if vs.sorry is None:
        p.error(c, "sorry_server_lvs_method used before or without sorry_server")
        return
    vs.sorry_fwd = read_forwarding(p, c) or vs.sorry_fwd


_VS_HANDLERS = {
    "lb_algo": _vs_sched,
    "lvs_sched": _vs_sched,
    "lb_kind": _vs_fwd,
    "lvs_method": _vs_fwd,
    "persistence_timeout": _vs_persistence,
    "persistence_granularity": _vs_granularity,
    "persistence_engine": _vs_engine,
    "protocol": _vs_protocol,
    "ip_family": _vs_family,
    "quorum": _vs_quorum,
    "hysteresis": _vs_hysteresis,
    "weight": _vs_weight,
    "sorry_server": _vs_sorry,
    "sorry_server_inhibit": _vs_sorry_inhibit,
    "sorry_server_lvs_method": _vs_sorry_fwd,
}


# -- real_server -----------------------------------------------------------------------


def read_real_server(
    p: Reader, n: Node, vs: VirtualServer, track_files: TrackFiles
) -> RealServer | None:
    """A ``real_server`` block of ``vs`` (which gives it the lb_kind read so far)."""
    addr_text = p.arg(n, 1, 2)
    addr = None if addr_text is None else p.address(n, addr_text, "real server")
    port = p.port(n, 2)
    kids = p.block(n)
    if kids is None:
        return None
    rs = RealServer(n.where, addr or "0.0.0.0", port or 0, vs.fwd)
    for c in kids:
        kw = c.words[0]
        if kw in CHECKERS:
            rs.checkers.extend(read_checker(p, c, track_files))
        elif kw not in _RS_KEYWORDS:
            p.unknown(c, "in real_server")
        elif not p.leaf(c):
            continue
        elif kw == "weight":
            rs.weight = given(p.uint(c, 0, MAX_WEIGHT), rs.weight)
        elif kw == "lvs_method":
            rs.fwd = read_forwarding(p, c) or rs.fwd
        elif kw in ("uthreshold", "lthreshold"):
            setattr(rs, kw, given(p.uint(c, 0, UINT_MAX), getattr(rs, kw)))
        elif kw in ("notify_up", "notify_down"):
            setattr(rs, kw, p.script(c))
        else:
            p.timing(c, rs.timing, "real")
    if rs.lthreshold > rs.uthreshold:
        p.error(n, f"lthreshold {rs.lthreshold} above uthreshold {rs.uthreshold}")
    return rs if addr is not None and port is not None else None
