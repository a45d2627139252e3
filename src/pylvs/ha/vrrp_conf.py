"""keepalived.conf's VRRP side: ``vrrp_instance``, ``vrrp_script``, ``vrrp_sync_group``.

Mirrors keepalived 2.2's vrrp_parser.c (keywords), vrrp_data.c (alloc_vrrp*: defaults),
vrrp_track.c (track_interface / track_script lines), vrrp_ipaddress.c (virtual_ipaddress
lines), vrrp.c vrrp_complete_instance() and sync_group_tracking_init() (corrections).
Input: the raw ``config.model.Node`` trees that ``pylvs.config.keepalived`` keeps in
``KeepalivedConf.vrrp_blocks`` and the ``global_defs`` vrrp_* values.  Output: frozen
records; ``ConfigError`` lists every error (file:line), ``VrrpConf.warnings`` the rest.

As in the checker-side reader: where keepalived logs a bad value and ignores the
statement, this is an error; where it corrects the configuration (v3 with
authentication, nopreempt with state MASTER, garp_master_repeat 0, weights in a sync
group...) the correction is made with a warning.  Keywords keepalived knows but pylvs
does not act on (use_vmac, virtual_routes, track_file, strict_mode, ...) are warnings.

Deliberate differences: ``interface`` is required (keepalived allows a unicast
instance without one); IPsec AH authentication is refused (an error); the script
``user`` is ignored (scripts run as pylvsd's user).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace
from typing import Any

from pylvs.config.model import ConfigError, Diagnostic, KeepalivedConf, Node, Where
from pylvs.config.values import Reader, names
from pylvs.wire import vrrp as wire

IFNAMSIZ = 16
PRIO_DEFAULT = 100

# Known to keepalived, not acted on by pylvs: a warning each.
UNSUPPORTED_INSTANCE = frozenset(
    names(
        """use_vmac use_vmac_addr vmac_xmit_base use_ipvlan vrf track_file track_process
        track_bfd virtual_routes virtual_rules track_src_ip strict_mode smtp_alert debug
        accept no_accept promote_secondaries linkbeat_use_polling kernel_rx_buf_size
        notify_master_rx_lower_pri notify_priority_changes notify_deleted garp_extra_if
        vmac_garp_intvl garp_lower_prio_delay garp_lower_prio_repeat unicast_fault_no_peer
        old_unicast_checksum lvs_sync_daemon_interface"""
    )
)
UNSUPPORTED_GROUP = frozenset(
    names("track_file track_process track_bfd smtp_alert global_tracking notify_priority_changes")
)


@dataclass(frozen=True, slots=True)
class VirtualAddress:
    """One line of virtual_ipaddress(_excluded): ``ADDR[/LEN] [dev IF] [label L] [brd B]
    [scope S] [peer P] [no_track] ...`` (keepalived alloc_ipaddress)."""

    where: Where
    address: str
    prefixlen: int
    dev: str | None = None
    label: str | None = None
    broadcast: str | None = None
    scope: str | None = None
    peer: str | None = None
    flags: tuple[str, ...] = ()  # home -nodad mngtmpaddr noprefixroute autojoin
    preferred_lft: str | None = None
    no_track: bool = False

    @property
    def family(self) -> int:
        return 6 if ":" in self.address else 4

    def ip_args(self, default_dev: str) -> list[str]:
        """The arguments of ``ip addr add`` after ``add`` (``del`` needs only the first
        three and ``dev``)."""
        args = [f"{self.address}/{self.prefixlen}"]
        if self.peer:
            args = [self.address, "peer", f"{self.peer}/{self.prefixlen}"]
        args += ["dev", self.dev or default_dev]
        if self.label:
            args += ["label", self.label]
        if self.broadcast:
            args += ["broadcast", self.broadcast]
        if self.scope:
            args += ["scope", self.scope]
        if self.preferred_lft is not None:
            args += ["preferred_lft", self.preferred_lft]
        args += [f for f in self.flags if f != "-nodad"]
        if "-nodad" in self.flags or self.family == 6:
            args.append("nodad")
        return args


@dataclass(frozen=True, slots=True)
class Tracked:
    """A track_interface or track_script line: ``NAME [weight W [reverse]]``."""

    name: str
    weight: int = 0
    reverse: bool = False


@dataclass(frozen=True, slots=True)
class UnicastPeer:
    address: str
    min_ttl: int = 0
    max_ttl: int = 255


@dataclass(frozen=True, slots=True)
class ScriptConf:
    """vrrp_script NAME: run ``argv`` every ``interval`` s (killed after ``timeout``)."""

    where: Where
    name: str
    argv: tuple[str, ...]
    interval: float = 1.0
    timeout: float = 0.0  # 0: the interval (vrrp_script_thread)
    weight: int = 0
    reverse: bool = False
    rise: int = 1
    fall: int = 1
    init_fail: bool = False

    @property
    def run_timeout(self) -> float:
        return self.timeout or self.interval


@dataclass(frozen=True, slots=True)
class Notify:
    """notify_master/backup/fault/stop and notify (run with INSTANCE|GROUP NAME STATE PRIO)."""

    master: tuple[str, ...] | None = None
    backup: tuple[str, ...] | None = None
    fault: tuple[str, ...] | None = None
    stop: tuple[str, ...] | None = None
    generic: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class InstanceConf:
    where: Where
    name: str
    interface: str
    vrid: int
    priority: int = PRIO_DEFAULT
    state: str = "BACKUP"  # the initial state asked for: MASTER | BACKUP
    version: int = 2
    family: int = 4
    advert_int: float = 1.0
    nopreempt: bool = False
    preempt_delay: float = 0.0
    auth_type: int = wire.AUTH_NONE
    auth_data: bytes = b""
    vips: tuple[VirtualAddress, ...] = ()
    evips: tuple[VirtualAddress, ...] = ()
    src_ip: str | None = None  # unicast_src_ip / mcast_src_ip
    unicast_peers: tuple[UnicastPeer, ...] = ()
    mcast_group: str = wire.MCAST_GROUP4
    unicast_ttl: int = 255
    check_unicast_src: bool = False
    track_interfaces: tuple[Tracked, ...] = ()
    track_scripts: tuple[Tracked, ...] = ()
    dont_track_primary: bool = False
    garp_master_delay: float = 5.0
    garp_master_repeat: int = 5
    garp_master_refresh: float = 0.0
    garp_master_refresh_repeat: int = 1
    down_timer_adverts: int = 3
    lower_prio_no_advert: bool = False
    higher_prio_send_advert: bool = False
    skip_check_adv_addr: bool = False
    notify: Notify = field(default_factory=Notify)
    sync_group: str | None = None

    @property
    def unicast(self) -> bool:
        return bool(self.unicast_peers)


@dataclass(frozen=True, slots=True)
class SyncGroupConf:
    where: Where
    name: str
    members: tuple[str, ...]
    notify: Notify = field(default_factory=Notify)


@dataclass(frozen=True, slots=True)
class VrrpConf:
    instances: tuple[InstanceConf, ...] = ()
    scripts: dict[str, ScriptConf] = field(default_factory=dict, hash=False)
    sync_groups: tuple[SyncGroupConf, ...] = ()
    warnings: tuple[Diagnostic, ...] = ()


@dataclass
class _Globals:
    version: int = 2
    garp_delay: float = 5.0
    garp_repeat: int = 5
    garp_refresh: float = 0.0
    garp_refresh_repeat: int = 1
    mcast4: str = wire.MCAST_GROUP4
    mcast6: str = wire.MCAST_GROUP6
    down_timer_adverts: int = 3
    lower_prio_no_advert: bool = False
    higher_prio_send_advert: bool = False
    skip_check_adv_addr: bool = False
    check_unicast_src: bool = False


def from_keepalived(conf: KeepalivedConf) -> VrrpConf:
    """The VRRP configuration of a loaded keepalived.conf; ConfigError lists the errors."""
    where = Where(conf.files[0] if conf.files else "keepalived.conf", 0)
    return read_vrrp(conf.vrrp_blocks, conf.global_defs, where)


def read_vrrp(
    blocks: tuple[Node, ...] | list[Node],
    global_defs: dict[str, object] | None = None,
    where: Where | None = None,
) -> VrrpConf:
    """vrrp_script, vrrp_instance and vrrp_sync_group blocks (others: a warning)."""
    p = Reader()
    g = _read_globals(p, global_defs or {}, where or Where("global_defs", 0))
    scripts: dict[str, ScriptConf] = {}
    for n in blocks:
        if n.words[0] == "vrrp_script":
            _read_script(p, n, scripts)
    drafts: list[InstanceConf] = []
    groups: list[tuple[SyncGroupConf, list[Tracked], list[Tracked], bool]] = []
    for n in blocks:
        kw = n.words[0]
        if kw == "vrrp_instance":
            inst = _read_instance(p, n, g, scripts, drafts)
            if inst is not None:
                drafts.append(inst)
        elif kw == "vrrp_sync_group":
            grp = _read_group(p, n, scripts, [x[0] for x in groups])
            if grp is not None:
                groups.append(grp)
        elif kw != "vrrp_script":
            p.warn(n, f"'{kw}' is not supported by pylvs (ignored)")
    instances, sync_groups = _apply_groups(p, drafts, groups)
    _check_conflicts(p, instances)
    _check_scripts_used(p, instances, scripts)
    if p.errors:
        raise ConfigError(sorted(p.errors, key=lambda d: (d.where.file, d.where.line)))
    return VrrpConf(
        instances=tuple(instances),
        scripts=scripts,
        sync_groups=tuple(sync_groups),
        warnings=tuple(sorted(p.warnings, key=lambda d: (d.where.file, d.where.line))),
    )


# -- global_defs -------------------------------------------------------------------------


def _read_globals(p: Reader, defs: dict[str, object], where: Where) -> _Globals:
    g = _Globals()

    def value(key: str) -> str | None:
        v = defs.get(key)
        if v is None:
            return None
        if v is True:
            return "true"
        return v if isinstance(v, str) else " ".join(str(x) for x in v or ())  # type: ignore[attr-defined]

    def number(key: str, lo: float, hi: float) -> float | None:
        text = value(key)
        if text is None:
            return None
        try:
            v = float(text)
        except ValueError:
            v = lo - 1
        if not lo <= v <= hi:
            p.warn(where, f"global_defs {key} '{text}' invalid (ignored)")
            return None
        return v

    if (v := number("vrrp_version", 2, 3)) is not None:
        g.version = int(v)
    if (v := number("vrrp_garp_master_delay", 0, 86400 * 365)) is not None:
        g.garp_delay = int(v)
    if (v := number("vrrp_garp_master_repeat", 0, 2**31)) is not None:
        g.garp_repeat = max(1, int(v))
    if (v := number("vrrp_garp_master_refresh", 0, 2**31)) is not None:
        g.garp_refresh = int(v)
    if (v := number("vrrp_garp_master_refresh_repeat", 0, 2**31)) is not None:
        g.garp_refresh_repeat = max(1, int(v))
    if (v := number("vrrp_down_timer_adverts", 1, 100)) is not None:
        g.down_timer_adverts = int(v)
    for key, attr in (("vrrp_mcast_group4", "mcast4"), ("vrrp_mcast_group6", "mcast6")):
        text = value(key)
        if text is not None:
            try:
                a = ipaddress.ip_address(text)
                if not a.is_multicast or (a.version == 6) != (attr == "mcast6"):
                    raise ValueError(text)
                setattr(g, attr, str(a))
            except ValueError:
                p.warn(where, f"global_defs {key} '{text}' is not a multicast address (ignored)")
    for key, attr in (
        ("vrrp_lower_prio_no_advert", "lower_prio_no_advert"),
        ("vrrp_higher_prio_send_advert", "higher_prio_send_advert"),
        ("vrrp_skip_check_adv_addr", "skip_check_adv_addr"),
        ("vrrp_check_unicast_src", "check_unicast_src"),
    ):
        text = value(key)
        if text is not None:
            setattr(g, attr, text in ("true", "on", "yes"))
    if "vrrp_strict" in defs:
        p.warn(where, "global_defs vrrp_strict is not supported by pylvs (ignored)")
    return g


# -- vrrp_script ---------------------------------------------------------------------------


def _argv(p: Reader, n: Node) -> tuple[str, ...] | None:
    """A script keyword's command line (notify_script_init: the word re-split)."""
    text = p.script(n)
    if text is None:
        return None
    words = p.quoted_words(n, f"the {n.words[0]} script", text)
    if not words:
        p.error(n, f"'{n.words[0]}' is missing a script")
        return None
    return tuple(words)


def _weight(p: Reader, n: Node, i: int, what: str) -> tuple[int, bool | None] | None:
    """``weight W [reverse|noreverse]`` at word ``i``: (weight, reverse or None)."""
    w = p.number(n, n.words[i], -254, 254) if len(n.words) > i else None
    if w is None:
        if len(n.words) <= i:
            p.error(n, f"weight without value for {what}")
        return None
    if abs(w) == 254:
        p.warn(n, f"weight for {what} cannot be +/-254, setting to +/-253")
        w = 253 if w > 0 else -253
    rev: bool | None = None
    if len(n.words) > i + 1:
        opt = n.words[i + 1]
        if opt in ("reverse", "noreverse"):
            rev = opt == "reverse"
        else:
            p.warn(n, f"unknown weight option '{opt}' for {what} (ignored)")
    return w, rev


def _read_script(p: Reader, n: Node, scripts: dict[str, ScriptConf]) -> None:
    name = p.arg(n, 1, 1)
    kids = p.block(n)
    if name is None or kids is None:
        return
    if name in scripts:
        p.error(n, f"vrrp_script {name} already defined")
        return
    f: dict[str, Any] = {}
    for c in kids:
        kw = c.words[0]
        if kw == "user":
            p.warn(c, "vrrp_script user is not supported: scripts run as pylvsd's user")
        elif kw not in ("script", "interval", "timeout", "weight", "rise", "fall", "init_fail"):
            p.unknown(c, "in vrrp_script")
        elif not p.leaf(c):
            continue
        elif kw == "script":
            f["argv"] = _argv(p, c) or f.get("argv", ())
        elif kw in ("interval", "timeout"):
            v = p.uint(c, 0, 4294)
            if v == 0:
                p.warn(c, f"vrrp script {kw} must be greater than 0, setting to 1")
            if v is not None:
                f[kw] = float(max(v, 1))
        elif kw == "weight":
            wr = _weight(p, c, 1, f"vrrp_script {name}")
            if wr is not None and abs(wr[0]) > 253:
                p.error(c, f"vrrp_script {name} weight must be in [-253, 253]")
            elif wr is not None:
                f["weight"], f["reverse"] = wr[0], bool(wr[1])
        elif kw in ("rise", "fall"):
            v = p.uint(c, 1, 2**31 - 1)
            if v is not None:
                f[kw] = v
        else:
            f["init_fail"] = p.flag(c)
    if not f.get("argv"):
        p.error(n, f"No script set for vrrp_script {name}")
        return
    scripts[name] = ScriptConf(where=n.where, name=name, **f)


# -- vrrp_instance -------------------------------------------------------------------------


def _read_address(p: Reader, n: Node) -> VirtualAddress | None:
    """alloc_ipaddress(): one line of a virtual_ipaddress block."""
    w = n.words
    text, _, plen = w[0].partition("/")
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        p.error(n, f"VRRP parsed invalid IP {w[0]}")
        return None
    maxlen = 128 if addr.version == 6 else 32
    prefixlen = maxlen
    if plen:
        v = p.number(n, plen, 0, maxlen)
        if v is None:
            return None
        prefixlen = v
    va = VirtualAddress(where=n.where, address=str(addr), prefixlen=prefixlen)
    flags: list[str] = []
    i = 1
    while i < len(w):
        kw = w[i]
        if kw in ("dev", "label", "scope", "broadcast", "brd", "peer", "preferred_lft"):
            if i + 1 >= len(w):
                p.error(n, f"No {kw} parameter specified for {w[0]}")
                return None
            val = w[i + 1]
            i += 2
            if kw in ("dev", "label") and len(val) >= IFNAMSIZ:
                p.error(n, f"{kw} name '{val}' is longer than {IFNAMSIZ - 1} characters")
                return None
            if kw == "dev":
                va = replace(va, dev=val)
            elif kw == "label":
                if addr.version == 6:
                    p.warn(n, f"Cannot specify label for IPv6 addresses ({w[0]}) - ignoring")
                else:
                    va = replace(va, label=val)
            elif kw == "scope":
                va = replace(va, scope=val)
            elif kw in ("broadcast", "brd"):
                if addr.version == 6:
                    p.error(n, f"broadcast {val} for the IPv6 address {w[0]}")
                    return None
                if val not in ("+", "-") and p.address(n, val, "broadcast") is None:
                    return None
                va = replace(va, broadcast=val)
            elif kw == "peer":
                peer = p.address(n, val.partition("/")[0], "peer")
                if peer is None:
                    return None
                if (":" in peer) != (addr.version == 6):
                    p.error(n, f"Peer address {val} does not match address family")
                    return None
                va = replace(va, peer=peer)
            else:
                va = replace(va, preferred_lft=val)
        elif kw in ("home", "-nodad", "mngtmpaddr", "noprefixroute", "autojoin"):
            flags.append(kw)
            i += 1
        elif kw == "no_track":
            va = replace(va, no_track=True)
            i += 1
        elif kw == "use_vmac":
            p.warn(n, "use_vmac is not supported by pylvs (ignored)")
            i += 1
        else:
            p.warn(n, f"Unknown configuration entry '{kw}' for ip address - ignoring")
            i += 1
    return replace(va, flags=tuple(flags))


def _read_tracked(
    p: Reader, c: Node, what: str, scripts: dict[str, ScriptConf] | None
) -> list[Tracked]:
    """track_interface / track_script block lines (alloc_track_if, alloc_track_script)."""
    out: list[Tracked] = []
    for t in p.block(c) or ():
        name = t.words[0]
        if scripts is not None and name not in scripts:
            p.error(t, f"track script {name} not found")
            continue
        if scripts is None and len(name) >= IFNAMSIZ:
            p.error(t, f"interface name '{name}' too long")
            continue
        if any(x.name == name for x in out):
            p.warn(t, f"duplicate {what} {name} - ignoring")
            continue
        weight, reverse = (scripts[name].weight, scripts[name].reverse) if scripts else (0, False)
        if len(t.words) > 1:
            if t.words[1] != "weight":
                p.error(t, f"unknown {what} option '{t.words[1]}'")
                continue
            wr = _weight(p, t, 2, f"{what} {name}")
            if wr is None:
                continue
            weight = wr[0]
            reverse = reverse if wr[1] is None else wr[1]
        out.append(Tracked(name, weight, reverse))
    return out


_FLAGS = ("check_unicast_src", "dont_track_primary")
_BOOLS = ("lower_prio_no_advert", "higher_prio_send_advert", "skip_check_adv_addr")
_NOTIFY = ("notify_master", "notify_backup", "notify_fault", "notify_stop", "notify")


def _read_instance(  # one branch per keyword, as vrrp_parser.c
    p: Reader,
    n: Node,
    g: _Globals,
    scripts: dict[str, ScriptConf],
    seen: list[InstanceConf],
) -> InstanceConf | None:
    if len(n.words) != 2:
        p.error(n, "vrrp_instance must have a name")
        return None
    name = n.words[1]
    kids = p.block(n)
    if kids is None:
        return None
    if any(i.name == name for i in seen):
        p.error(n, f"vrrp instance {name} already defined")
        return None
    s: dict[str, Any] = {}  # the keywords given, as InstanceConf field values
    lists: dict[str, list[Any]] = {k: [] for k in ("vips", "evips", "peers", "tif", "tsc")}
    notify: dict[str, tuple[str, ...]] = {}
    for c in kids:
        kw = c.words[0]
        if kw in ("virtual_ipaddress", "virtual_ipaddress_excluded"):
            key = "vips" if kw == "virtual_ipaddress" else "evips"
            lists[key] += filter(None, (_read_address(p, a) for a in p.block(c) or ()))
        elif kw == "unicast_peer":
            lists["peers"] += filter(None, (_read_peer(p, a) for a in p.block(c) or ()))
        elif kw == "track_interface":
            lists["tif"] += _read_tracked(p, c, kw, None)
        elif kw == "track_script":
            lists["tsc"] += _read_tracked(p, c, kw, scripts)
        elif kw == "authentication":
            _read_auth(p, c, s)
        elif kw in UNSUPPORTED_INSTANCE:
            p.warn(c, f"'{kw}' is not supported by pylvs (ignored)")
        elif not p.leaf(c):
            continue
        elif kw == "state":
            st = p.arg(c, 1, 1)
            if st == "BACKUP" and s.get("state") == "MASTER":
                p.warn(c, "state previously set as MASTER - ignoring BACKUP")
            elif st in ("MASTER", "BACKUP"):
                s["state"] = st
            elif st is not None:
                p.warn(c, f"unknown state '{st}', defaulting to BACKUP")
                s["state"] = "BACKUP"
        elif kw == "interface":
            ifname = p.arg(c, 1, 1)
            if ifname is not None and (len(ifname) >= IFNAMSIZ or ifname == "lo"):
                p.error(c, f"interface '{ifname}' cannot be used for VRRP")
            elif ifname is not None:
                s["interface"] = ifname
        elif kw in ("virtual_router_id", "priority", "version", "unicast_ttl"):
            lo, hi = {"version": (2, 3), "unicast_ttl": (0, 255)}.get(kw, (1, 255))
            v = p.uint(c, lo, hi)
            if v is not None:
                s["vrid" if kw == "virtual_router_id" else kw] = v
        elif kw in ("advert_int", "preempt_delay"):
            t = p.timer(c, 0.01, 255.0) if kw == "advert_int" else p.timer(c, 0.0, 1000.0)
            if t is not None:
                s[kw] = t
        elif kw in ("nopreempt", "preempt"):
            s["nopreempt"] = p.flag(c) and kw == "nopreempt"
        elif kw == "native_ipv6":
            s["family"] = 6 if p.flag(c) else 4
        elif kw in ("unicast_src_ip", "mcast_src_ip", "mcast_dst_ip"):
            a = p.arg(c, 1, 1)
            addr = None if a is None else p.address(c, a, "source")
            if addr is not None and kw == "mcast_dst_ip":
                if not ipaddress.ip_address(addr).is_multicast:
                    p.error(c, f"mcast_dst_ip {addr} not multicast")
                else:
                    s["mcast_group"] = addr
            elif addr is not None:
                s["src_ip"] = addr
        elif kw in _FLAGS:
            s[kw] = p.flag(c)
        elif kw in ("garp_master_delay", "garp_master_refresh"):
            v = p.uint(c, 0, 4294)
            if v is not None:
                s[kw] = float(v)
        elif kw in ("garp_master_repeat", "garp_master_refresh_repeat", "down_timer_adverts"):
            v = p.uint(c, 0 if kw != "down_timer_adverts" else 1, 100 if kw[0] == "d" else 2**31)
            if v == 0:
                p.warn(c, f"{kw} must be greater than 0, setting to 1")
            if v is not None:
                s[kw] = max(v, 1)
        elif kw in _BOOLS:
            b = p.boolean(c)
            if b is not None:
                s[kw] = b
        elif kw in _NOTIFY:
            if kw in notify:
                p.warn(c, f"{kw} script already specified - ignoring")
            elif (argv := _argv(p, c)) is not None:
                notify[kw] = argv
        else:
            p.unknown(c, f"in vrrp_instance {name}")
    s["notify"] = _notify(notify)
    return _complete(p, n, name, s, g, lists)


def _read_auth(p: Reader, c: Node, s: dict[str, Any]) -> None:
    """authentication { auth_type PASS  auth_pass SECRET }"""
    for a in p.block(c) or ():
        kw = a.words[0]
        if kw not in ("auth_type", "auth_pass"):
            p.unknown(a, "in authentication")
            continue
        v = p.arg(a, 1, 1) if p.leaf(a) else None
        if v is None:
            continue
        if kw == "auth_pass":
            if len(v.encode()) > wire.AUTH_LEN:
                p.warn(a, "Truncating auth_pass to 8 characters")
            s["auth_data"] = wire.pass_data(v)
        elif v == "PASS":
            s["auth_type"] = wire.AUTH_PASS
        elif v == "AH":
            p.error(a, "auth_type AH (IPsec AH) is not supported by pylvs")
        else:
            p.error(a, f"unknown authentication type '{v}'")


def _read_peer(p: Reader, a: Node) -> UnicastPeer | None:
    addr = p.address(a, a.words[0], "unicast peer")
    if addr is None:
        return None
    peer = UnicastPeer(addr)
    w = a.words
    for i in range(1, len(w), 2):
        if i + 1 >= len(w):
            p.error(a, f"{w[i]} is missing a value")
            return None
        if w[i] not in ("min_ttl", "max_ttl"):
            p.error(a, f"unknown unicast_peer option {w[i]}")
            return None
        v = p.number(a, w[i + 1], 0, 255)
        if v is None:
            return None
        peer = replace(peer, min_ttl=v) if w[i] == "min_ttl" else replace(peer, max_ttl=v)
    if peer.min_ttl > peer.max_ttl:
        p.warn(a, f"min_ttl {peer.min_ttl} > max_ttl {peer.max_ttl} - all packets discarded")
    return peer


def _complete(
    p: Reader,
    n: Node,
    name: str,
    s: dict[str, Any],
    g: _Globals,
    lists: dict[str, list[Any]],
) -> InstanceConf | None:
    """vrrp_complete_instance(): defaults, derived values and keepalived's corrections."""
    vips: list[VirtualAddress] = lists["vips"]
    evips: list[VirtualAddress] = lists["evips"]
    peers: list[UnicastPeer] = lists["peers"]
    missing = False
    for key, what in (("vrid", "virtual_router_id"), ("interface", "interface")):
        if key not in s:
            p.error(n, f"({name}) {what} must be set")
            missing = True
    families = {a.family for a in vips} | {6 if ":" in x.address else 4 for x in peers}
    families |= {6 if ":" in a else 4 for a in (s.get("src_ip"), s.get("mcast_group")) if a}
    if s.get("family") == 6:
        families.add(6)
    if len(families) > 1:
        p.error(n, f"({name}) addresses of both IPv4 and IPv6: one family per instance")
    if missing or len(families) > 1:
        return None
    family = families.pop() if families else 4
    version = s.get("version", 3 if family == 6 else g.version)
    if family == 6 and version == 2:
        p.warn(n, f"({name}) VRRP version 2 cannot be used with IPv6 - using version 3")
        version = 3
    if not vips and version == 3:
        p.error(n, f"({name}) No VIP specified; at least one is required")
        return None
    if not vips:
        p.warn(n, f"({name}) No VIP specified; at least one is sensible")
    if len(vips) > wire.MAX_ADDRS:
        p.warn(n, f"({name}) more than 255 VIPs - excess moved to virtual_ipaddress_excluded")
        vips, evips = vips[: wire.MAX_ADDRS], vips[wire.MAX_ADDRS :] + evips
    state, prio = s.get("state", ""), s.get("priority", 0)
    prio = prio or (wire.PRIO_OWNER if state == "MASTER" else PRIO_DEFAULT)
    state = state or ("MASTER" if prio == wire.PRIO_OWNER else "BACKUP")
    auth_type, auth_data = s.get("auth_type", wire.AUTH_NONE), s.get("auth_data", b"")
    if auth_type and version == 3:
        p.warn(n, f"({name}) VRRP version 3 does not support authentication. Ignoring.")
        auth_type = wire.AUTH_NONE
    elif auth_type and not auth_data.strip(b"\0"):
        p.warn(n, f"({name}) Authentication specified but no password given. Ignoring")
        auth_type = wire.AUTH_NONE
    nopreempt, delay = s.get("nopreempt", False), s.get("preempt_delay", 0.0)
    for bad, msg in (
        (prio == wire.PRIO_OWNER and nopreempt, "nopreempt is incompatible with priority 255"),
        (state == "MASTER" and nopreempt, "nopreempt will not work with initial state MASTER"),
    ):
        if bad:
            p.warn(n, f"({name}) {msg} - clearing nopreempt")
            nopreempt = False
    for bad, msg in (
        (state == "MASTER" and delay, "preempt delay will not work with initial state MASTER"),
        (nopreempt and delay, "preempt_delay is incompatible with nopreempt mode"),
    ):
        if bad:
            p.warn(n, f"({name}) {msg} - clearing preempt_delay")
            delay = 0.0
    adv = s.get("advert_int", 1.0)
    unit = 1.0 if version == 2 else 0.01
    rounded = max(unit, min(255.0 if version == 2 else 40.95, round(adv / unit) * unit))
    if abs(rounded - adv) > 1e-9:
        p.warn(
            n, f"({name}) VRRPv{version} advertisement interval {adv:g}s rounded to {rounded:g}s"
        )
    tif, tsc = lists["tif"], lists["tsc"]
    if prio == wire.PRIO_OWNER:
        tif, tsc = _unweighted(p, (n.where, name), tif, tsc, "address owner", drop_if=True)
    mcast = s.get("mcast_group", g.mcast6 if family == 6 else g.mcast4)
    check_src = s.get("check_unicast_src", g.check_unicast_src)
    return InstanceConf(
        where=n.where,
        name=name,
        interface=s["interface"],
        vrid=s["vrid"],
        priority=prio,
        state=state,
        version=version,
        family=family,
        advert_int=round(rounded, 2),
        nopreempt=nopreempt,
        preempt_delay=delay,
        auth_type=auth_type,
        auth_data=auth_data if auth_type else b"",
        vips=tuple(vips),
        evips=tuple(evips),
        src_ip=s.get("src_ip"),
        unicast_peers=tuple(peers),
        mcast_group=mcast,
        unicast_ttl=s.get("unicast_ttl", 255),
        check_unicast_src=check_src or any(x.min_ttl or x.max_ttl != 255 for x in peers),
        track_interfaces=tuple(tif),
        track_scripts=tuple(tsc),
        dont_track_primary=s.get("dont_track_primary", False),
        garp_master_delay=s.get("garp_master_delay", g.garp_delay),
        garp_master_repeat=s.get("garp_master_repeat", g.garp_repeat),
        garp_master_refresh=s.get("garp_master_refresh", g.garp_refresh),
        garp_master_refresh_repeat=s.get("garp_master_refresh_repeat", g.garp_refresh_repeat),
        down_timer_adverts=s.get("down_timer_adverts", g.down_timer_adverts),
        lower_prio_no_advert=s.get("lower_prio_no_advert", g.lower_prio_no_advert),
        higher_prio_send_advert=s.get("higher_prio_send_advert", g.higher_prio_send_advert),
        skip_check_adv_addr=s.get("skip_check_adv_addr", g.skip_check_adv_addr),
        notify=s["notify"],
    )


def _notify(d: dict[str, tuple[str, ...]]) -> Notify:
    return Notify(
        master=d.get("notify_master"),
        backup=d.get("notify_backup"),
        fault=d.get("notify_fault"),
        stop=d.get("notify_stop"),
        generic=d.get("notify"),
    )


def _unweighted(
    p: Reader,
    inst: tuple[Where, str],
    tif: list[Tracked],
    tsc: list[Tracked],
    why: str,
    *,
    drop_if: bool,
) -> tuple[list[Tracked], list[Tracked]]:
    """Weights ignored (address owner, or a sync group without sync_group_tracking_weight):
    weighted interfaces lose their weight (owner: are dropped), weighted scripts are dropped."""
    where, name = inst
    out_if: list[Tracked] = []
    for t in tif:
        if t.weight and drop_if:
            p.warn(where, f"({name}) ignoring tracked interface {t.name} due to {why}")
            continue
        if t.weight:
            p.warn(where, f"({name}) ignoring weight of tracked interface {t.name} ({why})")
            t = Tracked(t.name, 0, t.reverse)
        out_if.append(t)
    out_sc = []
    for t in tsc:
        if t.weight:
            p.warn(where, f"({name}) ignoring weighted tracked script {t.name} ({why})")
            continue
        out_sc.append(t)
    return out_if, out_sc


# -- vrrp_sync_group ---------------------------------------------------------------------


def _read_group(
    p: Reader, n: Node, scripts: dict[str, ScriptConf], seen: list[SyncGroupConf]
) -> tuple[SyncGroupConf, list[Tracked], list[Tracked], bool] | None:
    if len(n.words) != 2:
        p.error(n, "vrrp_sync_group must have a name")
        return None
    name = n.words[1]
    kids = p.block(n)
    if kids is None:
        return None
    if any(x.name == name for x in seen):
        p.error(n, f"vrrp sync group {name} already defined")
        return None
    members: list[str] = []
    notify: dict[str, tuple[str, ...]] = {}
    tif: list[Tracked] = []
    tsc: list[Tracked] = []
    weights = False
    for c in kids:
        kw = c.words[0]
        if kw == "group":
            if members:
                p.error(c, f"Group list already specified for sync group {name}")
                continue
            members = [w for m in p.block(c) or () for w in m.words]
            if not members:
                p.warn(c, f"sync group {name} has empty group block")
        elif kw == "track_interface":
            tif += _read_tracked(p, c, "track_interface", None)
        elif kw == "track_script":
            tsc += _read_tracked(p, c, "track_script", scripts)
        elif kw in ("notify_master", "notify_backup", "notify_fault", "notify_stop", "notify"):
            if p.leaf(c) and (argv := _argv(p, c)) is not None:
                notify[kw] = argv
        elif kw in ("sync_group_tracking_weight", "track_interface_weight"):
            weights = p.flag(c)
        elif kw in UNSUPPORTED_GROUP:
            p.warn(c, f"'{kw}' is not supported by pylvs (ignored)")
        else:
            p.unknown(c, f"in vrrp_sync_group {name}")
    grp = SyncGroupConf(where=n.where, name=name, members=tuple(members), notify=_notify(notify))
    return grp, tif, tsc, weights


def _apply_groups(
    p: Reader,
    drafts: list[InstanceConf],
    groups: list[tuple[SyncGroupConf, list[Tracked], list[Tracked], bool]],
) -> tuple[list[InstanceConf], list[SyncGroupConf]]:
    """Members learn their group and its tracking (vrrp_sync_set_group,
    sync_group_tracking_init); unknown members are ignored, empty groups removed."""
    by_name = {i.name: i for i in drafts}
    kept: list[SyncGroupConf] = []
    for grp, tif, tsc, weights in groups:
        members = []
        for m in dict.fromkeys(grp.members):
            if m not in by_name:
                p.warn(grp.where, f"vrrp_instance {m} of sync group {grp.name} doesn't exist")
            elif by_name[m].sync_group is not None:
                p.warn(grp.where, f"vrrp_instance {m} cannot be in two sync groups; ignoring")
            else:
                members.append(m)
        if not members:
            p.warn(grp.where, f"sync group {grp.name} has no members - removing")
            continue
        if len(members) == 1:
            p.warn(grp.where, f"sync group {grp.name} has only one member")
        kept.append(replace(grp, members=tuple(members)))
        owner = any(by_name[m].priority == wire.PRIO_OWNER for m in members)
        for m in members:
            inst = by_name[m]
            mif, msc = list(inst.track_interfaces), list(inst.track_scripts)
            if not weights:
                mif, msc = _unweighted(p, (inst.where, m), mif, msc, "SYNC group", drop_if=False)
            gif = [Tracked(t.name, 0 if owner else t.weight, t.reverse) for t in tif]
            gsc = [t for t in tsc if not (owner and t.weight)]
            mif += [t for t in gif if all(x.name != t.name for x in mif)]
            msc += [t for t in gsc if all(x.name != t.name for x in msc)]
            by_name[m] = replace(
                inst, sync_group=grp.name, track_interfaces=tuple(mif), track_scripts=tuple(msc)
            )
    return [by_name[i.name] for i in drafts], kept


def _check_conflicts(p: Reader, instances: list[InstanceConf]) -> None:
    """check_vrid_conflicts(): one VRID per interface and family."""
    seen: dict[tuple[str, int, int], InstanceConf] = {}
    for i in instances:
        key = (i.interface, i.family, i.vrid)
        if key in seen and not (i.unicast and seen[key].unicast):
            p.error(
                i.where,
                f"VRID {i.vrid} is used by both {seen[key].name} and {i.name} on {i.interface}",
            )
        seen.setdefault(key, i)


def _check_scripts_used(
    p: Reader, instances: list[InstanceConf], scripts: dict[str, ScriptConf]
) -> None:
    used = {t.name for i in instances for t in i.track_scripts}
    for name, sc in scripts.items():
        if name not in used:
            p.warn(sc.where, f"vrrp_script {name} is not used by any vrrp_instance")


__all__ = [
    "InstanceConf",
    "Notify",
    "ScriptConf",
    "SyncGroupConf",
    "Tracked",
    "UnicastPeer",
    "VirtualAddress",
    "VrrpConf",
    "from_keepalived",
    "read_vrrp",
]
