"""keepalived.conf -> ``KeepalivedConf``: keepalived 2.2's checker-side configuration.

Mirrors keepalived/check/check_parser.c (virtual_server_group, virtual_server,
real_server, sorry_server), check_api.c and check_{tcp,http,misc,smtp,dns,udp,
ping,file}.c (checker blocks), check_data.c validate_check_config() (defaults,
inheritance virtual server -> real server -> checker, the corrections keepalived
makes with a message), global_parser.c (global_defs keywords) and
trackers/track_file.c (track_file blocks for FILE_CHECK).

Where keepalived reports a problem and ignores the statement, this is an error
(a ``ConfigError`` lists them all, file:line each); where keepalived corrects
the configuration (no protocol -> UDP, no lb_algo -> wlc, no lb_kind -> NAT,
quorum above the total weight, port mismatches for DR/TUN ...) the correction
is made and a warning kept in ``conf.warnings``.  Keywords keepalived knows but
pylvs does not act on (smtp_alert, snmp_name, BFD_CHECK, regex_options ...)
and unknown keywords are warnings.  vrrp_*, static_*, track_*, garp_group,
linkbeat_interfaces, bfd_instance blocks are kept raw in ``vrrp_blocks``.

Deliberate differences: errors for what keepalived logs and then ignores or
only finds when it talks to the kernel (a virtual server naming a missing
group, duplicate services, lthreshold above uthreshold); real server weights
are limited to 65535 and persistence timeouts to 2147483 s, what the pylvs
rule table (and ipvsadm) accepts.  The order of statements only matters where
keepalived reads it (sh-port/mh-port after lb_algo, sorry_server_* after
sorry_server, a real server takes the lb_kind given before it).
"""

from __future__ import annotations

import dataclasses
import re
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, ip_address, ip_network
from typing import TypeVar

from pylvs.config import lexer
from pylvs.config.lvs import group_addresses
from pylvs.config.model import (
    CheckerConf,
    ConfigError,
    Diagnostic,
    GroupEntry,
    KeepalivedConf,
    Node,
    RealServerConf,
    SorryServerConf,
    UrlConf,
    VirtualServerConf,
    Where,
)
from pylvs.core.table import KNOWN_PES


def _names(text: str) -> tuple[str, ...]:
    return tuple(text.split())


KEEPALIVED_DEFAULTS: dict[str, object] = {
    "lb_algo": "wlc",  # IPVS_DEF_SCHED, with a warning when not given
    "lb_kind": "NAT",  # with a warning when not given
    "protocol": "UDP",  # keepalived: "no protocol set - defaulting to UDP"
    "persistence_timeout": 360,  # IPVS_SVC_PERSISTENT_TIMEOUT, also without a value
    "delay_loop": 60.0,
    "connect_timeout": 5.0,
    "retry": 1,  # MISC_CHECK 0, DNS_CHECK 3
    "delay_before_retry": 1.0,  # HTTP_GET/SSL_GET 3, DNS_CHECK delay_loop
    "warmup": "delay_loop",
    "quorum": 1,
    "hysteresis": 0,
    "weight": 1,
    "http_protocol": "1.0",
    "helo_name": "smtpchecker.keepalived.org",
    "dns_type": "SOA",
    "dns_name": ".",
    "max_reply_length": 255,
}

SCHEDULERS = _names("rr wrr lc wlc lblc sh mh dh fo ovf lblcr sed nq twos")
CHECKERS = _names(
    "TCP_CHECK HTTP_GET SSL_GET MISC_CHECK SMTP_CHECK DNS_CHECK UDP_CHECK PING_CHECK FILE_CHECK"
)
DNS_TYPES = ("A", "NS", "CNAME", "SOA", "MX", "TXT", "AAAA", "RRSIG", "DNSKEY")
UINT_MAX = 0xFFFFFFFF
MAX_WEIGHT = 65535  # pylvs/ipvsadm (keepalived: INT32_MAX)
MAX_PERSISTENCE = 0x7FFFFFFF // 1000  # pylvs rule table (keepalived: 31 days)
MAX_GROUP_RANGE = 65536

# Blocks of the VRRP / BFD / static-configuration side, kept raw.
VRRP_ROOTS = frozenset(
    _names(
        "vrrp_instance vrrp_sync_group vrrp_script vrrp_track_process garp_group track_group "
        "static_ipaddress static_routes static_rules linkbeat_interfaces "
        "interface_up_down_delays bfd_instance track_file vrrp_track_file"
    )
)
# Global keywords outside global_defs (global_parser.c install_keyword_root).
GLOBAL_ROOTS = frozenset(
    _names(
        "linkbeat_use_polling net_namespace net_namespace_ipvs namespace_with_ipsets "
        "use_pid_dir instance child_wait_time"
    )
)
GLOBAL_DEFS = frozenset(
    _names(
        """process_names process_name vrrp_process_name checker_process_name lvs_process_name
    bfd_process_name router_id notification_email_from smtp_server smtp_helo_name
    smtp_connect_timeout notification_email smtp_alert startup_script startup_script_timeout
    shutdown_script shutdown_script_timeout max_auto_priority min_auto_priority_delay
    smtp_alert_vrrp smtp_alert_checker checker_log_all_failures dynamic_interfaces
    no_email_faults default_interface disable_local_igmp lvs_timeouts lvs_flush
    lvs_flush_on_stop lvs_flush_onstop lvs_sync_daemon vrrp_mcast_group4 vrrp_mcast_group6
    vrrp_garp_master_delay vrrp_garp_master_repeat vrrp_garp_master_refresh
    vrrp_garp_master_refresh_repeat vrrp_garp_lower_prio_delay vrrp_garp_lower_prio_repeat
    vrrp_down_timer_adverts vrrp_garp_interval vrrp_gna_interval vrrp_min_garp
    vrrp_garp_extra_if vrrp_vmac_garp_intvl vrrp_lower_prio_no_advert
    vrrp_higher_prio_send_advert vrrp_version vrrp_iptables vrrp_ipsets nftables
    nftables_priority nftables_ifindex nftables_ipvs nftables_ipvs_priority
    nftables_ipvs_start_fwmark nftables_counters vrrp_check_unicast_src
    vrrp_skip_check_adv_addr vrrp_strict vrrp_priority vrrp_no_swap vrrp_rt_priority
    vrrp_cpu_affinity vrrp_rlimit_rttime vrrp_rlimit_rtime notify_fifo notify_fifo_script
    vrrp_notify_fifo vrrp_notify_fifo_script vrrp_notify_priority_changes
    fifo_write_vrrp_states_on_reload lvs_notify_fifo lvs_notify_fifo_script checker_priority
    checker_no_swap checker_rt_priority checker_cpu_affinity checker_rlimit_rttime
    checker_rlimit_rtime bfd_priority bfd_no_swap bfd_rt_priority bfd_cpu_affinity
    bfd_rlimit_rttime bfd_rlimit_rtime snmp_socket enable_traps enable_snmp_vrrp
    enable_snmp_keepalived enable_snmp_rfc enable_snmp_rfcv2 enable_snmp_rfcv3
    enable_snmp_checker enable_dbus dbus_service_name script_user enable_script_security
    vrrp_netlink_cmd_rcv_bufs vrrp_netlink_cmd_rcv_bufs_force vrrp_netlink_monitor_rcv_bufs
    vrrp_netlink_monitor_rcv_bufs_force process_monitor_rcv_bufs
    process_monitor_rcv_bufs_force lvs_netlink_cmd_rcv_bufs lvs_netlink_cmd_rcv_bufs_force
    lvs_netlink_monitor_rcv_bufs lvs_netlink_monitor_rcv_bufs_force rs_init_notifies
    no_checker_emails vrrp_rx_bufs_policy vrrp_rx_bufs_multiplier vrrp_startup_delay
    log_unknown_vrids vmac_prefix vmac_addr_prefix umask random_seed reload_check_config
    reload_time_file reload_repeat reload_file include_check config_save_dir
    tmp_config_directory data_use_instance"""
    )
)
# Known to keepalived, nothing for pylvs to do: a warning, then ignored.
IGNORED = {
    "smtp_alert": "email alerts are not sent by pylvs",
    "snmp_name": "pylvs has no SNMP agent",
    "hashed": "keepalived 2.2 ignores it too",
    "BFD_CHECK": "BFD is not supported by pylvs",
    "regex_options": "pylvs uses Python regular expressions without options",
    "regex_stack": "pylvs uses Python regular expressions",
    "regex_min_offset": "not supported by pylvs",
    "regex_max_offset": "not supported by pylvs",
}

_UINT_RE = re.compile(r"\+?[0-9]+")
_INT_RE = re.compile(r"[+-]?[0-9]+")
_TIMER_RE = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


def load(
    path: str, *, config_id: str | None = None, source: lexer.Source | None = None
) -> KeepalivedConf:
    """Read a keepalived.conf and everything it includes; ConfigError lists every problem.

    ``config_id`` is keepalived's ``-i`` (for ``@id`` lines); by default the
    first label of the host name, as keepalived.
    """
    if config_id is None:
        config_id = socket.gethostname().split(".")[0]
    lexed = lexer.lex_file(path, source=source, config_id=config_id)
    p = _Parser()
    p.warnings.extend(lexed.warnings)
    p.errors.extend(lexed.errors)
    return p.run(lexed.nodes, lexed.files)


def parse_nodes(
    nodes: Sequence[Node], files: Sequence[str], *, warnings: Iterable[Diagnostic] = ()
) -> KeepalivedConf:
    """The configuration the statements describe; ConfigError lists every problem."""
    p = _Parser()
    p.warnings.extend(warnings)
    return p.run(tuple(nodes), tuple(files))


# -- working records (mutable while reading a block) -----------------------------------


@dataclass
class _Fwd:
    method: str = "NAT"
    tun_type: str = "ipip"
    tun_port: int = 0
    tun_flags: str = "nocsum"


@dataclass
class _Timing:
    """Options a virtual server hands to its real servers and checkers (None: not set)."""

    delay_loop: float | None = None
    connect_timeout: float | None = None
    retry: int | None = None
    delay_before_retry: float | None = None
    warmup: float | None = None
    alpha: bool | None = None
    inhibit: bool | None = None
    virtualhost: str | None = None


@dataclass
class _Check:
    kind: str
    where: Where
    timing: _Timing = field(default_factory=_Timing)
    connect_ip: str | None = None
    connect_port: int | None = None
    bindto: str | None = None
    bind_port: int | None = None
    bind_if: str | None = None
    fwmark: int | None = None
    log_all_failures: bool | None = None
    options: dict[str, object] = field(default_factory=dict)
    urls: list[UrlConf] = field(default_factory=list)
    hosts: list[_Check] = field(default_factory=list)  # SMTP_CHECK host { } (deprecated)


@dataclass
class _RS:
    where: Where
    addr: str
    port: int
    fwd: _Fwd | None
    timing: _Timing = field(default_factory=_Timing)
    weight: int | None = None
    uthreshold: int = 0
    lthreshold: int = 0
    notify_up: str | None = None
    notify_down: str | None = None
    checkers: list[_Check] = field(default_factory=list)


@dataclass
class _VS:
    where: Where
    kind: str
    addr: str | None = None
    port: int = 0
    fwmark: int | None = None
    group: str | None = None
    af: int = 0  # 4 | 6 | 0 (not known yet)
    timing: _Timing = field(default_factory=lambda: _Timing(alpha=False, inhibit=False))
    protocol: str | None = None
    sched: str | None = None
    fwd: _Fwd | None = None
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
    sorry_fwd: _Fwd | None = None
    rs: list[_RS] = field(default_factory=list)


# -- the parser ------------------------------------------------------------------------


class _Parser:
    def __init__(self) -> None:
        self.errors: list[Diagnostic] = []
        self.warnings: list[Diagnostic] = []
        self.global_defs: dict[str, object] = {}
        self.groups: dict[str, tuple[GroupEntry, ...]] = {}
        self.vrrp: list[Node] = []
        self.track_files: dict[str, dict[str, object]] = {}
        self.vss: list[_VS] = []

    def error(self, n: Node | Where, msg: str) -> None:
        self.errors.append(Diagnostic(n.where if isinstance(n, Node) else n, msg))

    def warn(self, n: Node | Where, msg: str) -> None:
        self.warnings.append(Diagnostic(n.where if isinstance(n, Node) else n, msg))

    def run(self, nodes: tuple[Node, ...], files: tuple[str, ...]) -> KeepalivedConf:
        roots: dict[str, Callable[[Node], None]] = {
            "global_defs": self.global_block,
            "SSL": self.ssl_block,
            "virtual_server_group": self.group_block,
            "virtual_server": self.vs_block,
        }
        for n in nodes:  # track_file blocks first: FILE_CHECK may name one defined later
            if n.words[0] in ("track_file", "vrrp_track_file"):
                self.track_file_block(n)
        for n in nodes:
            kw = n.words[0]
            if kw in roots:
                roots[kw](n)
            elif kw in VRRP_ROOTS:
                self.vrrp.append(n)
            elif kw in GLOBAL_ROOTS:
                self.global_defs[kw] = _value(n)
                if kw.startswith("net_namespace"):
                    self.warn(n, f"'{kw}' is not supported: pylvsd uses its own namespace")
            else:
                self.unknown(n, "at the top level")
        servers = [self.finish_vs(vs) for vs in self.vss]
        self.check_duplicates([s for s in servers if s is not None])
        self.check_script_security(servers)
        if self.errors:
            raise ConfigError(sorted(self.errors, key=_order(files)))
        return KeepalivedConf(
            files=files,
            global_defs=self.global_defs,
            groups=self.groups,
            virtual_servers=tuple(s for s in servers if s is not None),
            vrrp_blocks=tuple(self.vrrp),
            warnings=tuple(sorted(self.warnings, key=_order(files))),
        )

    # -- value readers -------------------------------------------------------------------
    def unknown(self, n: Node, where: str) -> None:
        kw = n.words[0]
        if kw in IGNORED:
            self.warn(n, f"'{kw}' ignored: {IGNORED[kw]}")
        else:
            self.warn(n, f"unknown keyword '{kw}' {where} (ignored)")

    def leaf(self, n: Node) -> bool:
        if n.children is not None:
            self.error(n, f"'{n.words[0]}' does not take a {{ }} block")
            return False
        return True

    def block(self, n: Node) -> tuple[Node, ...] | None:
        if n.children is None:
            self.error(n, f"'{' '.join(n.words)}' needs a {{ }} block")
            return None
        return n.children

    def arg(self, n: Node, i: int = 1, most: int | None = None) -> str | None:
        if len(n.words) <= i:
            self.error(n, f"'{n.words[0]}' is missing a value")
            return None
        if most is not None and len(n.words) > most + 1:
            extra = " ".join(n.words[most + 1 :])
            self.warn(n, f"extra words after '{n.words[0]}' ignored: {extra}")
        return n.words[i]

    def uint(self, n: Node, lo: int, hi: int, i: int = 1, most: int | None = 1) -> int | None:
        text = self.arg(n, i, most)
        if text is None:
            return None
        return self.number(n, text, lo, hi)

    def number(self, n: Node | Where, text: str, lo: int, hi: int) -> int | None:
        t = text.strip()
        if not (_INT_RE.fullmatch(t) if lo < 0 else _UINT_RE.fullmatch(t)):
            kind = "negative number" if t.startswith("-") else "invalid number"
            self.error(n, f"{kind} '{text}'")
            return None
        v = int(t)
        if not lo <= v <= hi:
            self.error(n, f"number '{text}' outside range [{lo}, {hi}]")
            return None
        return v

    def timer(self, n: Node, lo: float, hi: float = 1e9) -> float | None:
        text = self.arg(n, 1, 1)
        if text is None:
            return None
        if not _TIMER_RE.fullmatch(text.strip()):
            self.error(n, f"invalid number '{text}'")
            return None
        v = float(text)
        if not lo <= v <= hi:
            self.error(n, f"{n.words[0]} '{text}' outside range [{lo:g}, {hi:g}]")
            return None
        return v

    def flag(self, n: Node) -> bool:
        """A keyword taking no value (keepalived ignores any it is given)."""
        if len(n.words) > 1:
            self.warn(n, f"'{n.words[0]}' takes no value: '{' '.join(n.words[1:])}' ignored")
        return True

    def boolean(self, n: Node) -> bool | None:
        """check_true_false(): no value means yes."""
        if len(n.words) < 2:
            return True
        w = self.arg(n, 1, 1)
        if w in ("true", "on", "yes"):
            return True
        if w in ("false", "off", "no"):
            return False
        self.error(n, f"invalid {n.words[0]} value '{w}' (yes|no|on|off|true|false)")
        return None

    def address(self, n: Node | Where, text: str, what: str) -> str | None:
        try:
            return str(ip_address(text))
        except ValueError:
            self.error(n, f"invalid {what} address '{text}'")
            return None

    def port(self, n: Node, text: str | None) -> int | None:
        """A server's optional port: absent or 0 -> 0."""
        if text is None or text.strip("0") == "":
            return 0
        return self.number(n, text, 1, 65535)

    def script(self, n: Node) -> str | None:
        """notify_script_init(): the script word of the raw line, then user [group]."""
        try:
            words = lexer.split_quoted_escaped(n.raw or " ".join(n.words))
        except ValueError as e:
            self.error(n, f"cannot parse the {n.words[0]} script: {e}")
            return None
        if len(words) < 2 or not words[1]:
            self.error(n, f"'{n.words[0]}' is missing a script")
            return None
        try:
            lexer.split_quoted_escaped(words[1])
        except ValueError as e:
            self.error(n, f"cannot parse the {n.words[0]} script: {e}")
            return None
        if len(words) > 2:
            self.warn(
                n,
                f"{n.words[0]}: '{' '.join(words[2:])}' is read as the user [group] to run "
                "the script as (quote the command to pass arguments): not supported, ignored",
            )
        return words[1]

    def fwd(self, n: Node) -> _Fwd | None:
        """svr_forwarding_handler(): NAT|DR|TUN [type ipip|gue|gre] [port N] [csum opts]."""
        method = self.arg(n)
        if method is None:
            return None
        if method not in ("NAT", "DR", "TUN"):
            self.error(n, f"unknown {n.words[0]} '{method}' (NAT|DR|TUN)")
            return None
        f = _Fwd(method)  # every lb_kind/lvs_method starts from ipip, no port, nocsum
        words = n.words[2:]
        i = 0
        while i < len(words):
            w = words[i]
            if w in ("type", "port"):
                if i + 1 >= len(words):
                    self.error(n, f"missing tunnel {w}")
                    return None
                v = words[i + 1]
                if w == "type":
                    if v not in ("ipip", "gue", "gre"):
                        self.error(n, f"unknown tunnel type '{v}' (ipip|gue|gre)")
                        return None
                    f.tun_type = v
                else:
                    p = self.number(n, v, 1, 65535)
                    if p is None:
                        return None
                    f.tun_port = p
                i += 2
            elif w in ("nocsum", "csum", "remcsum"):
                f.tun_flags = w
                i += 1
            else:
                self.error(n, f"invalid tunnel option '{w}'")
                return None
        if (f.tun_type == "gue") != (f.tun_port != 0):
            self.error(n, "gue tunnels require a port, other tunnels cannot have one")
            return None
        if f.tun_type == "ipip" and f.tun_flags != "nocsum":
            self.error(n, "ipip tunnels do not support checksum options")
            return None
        if f.tun_type == "gre" and f.tun_flags == "remcsum":
            self.error(n, "gre tunnels do not support remcsum")
            return None
        return f

    def timing(self, n: Node, t: _Timing, level: str) -> bool:
        """delay_loop, connect_timeout, retry... at virtual/real server or checker level."""
        kw = n.words[0]
        if kw == "delay_loop":
            t.delay_loop = _or(self.timer(n, 1e-6), t.delay_loop)
        elif kw == "connect_timeout":
            t.connect_timeout = _or(self.timer(n, 1e-6, UINT_MAX / 1e6), t.connect_timeout)
        elif kw == "retry":
            t.retry = _or(self.uint(n, 0 if level == "checker" else 1, UINT_MAX), t.retry)
        elif kw == "delay_before_retry":
            t.delay_before_retry = _or(self.timer(n, 0.0), t.delay_before_retry)
        elif kw == "warmup":
            t.warmup = _or(self.timer(n, 0.0), t.warmup)
        elif kw == "alpha":  # a flag for a virtual server, a <BOOL> below it
            t.alpha = self.flag(n) if level == "virtual" else _or(self.boolean(n), t.alpha)
        elif kw == "inhibit_on_failure" and level != "checker":
            t.inhibit = self.flag(n) if level == "virtual" else _or(self.boolean(n), t.inhibit)
        elif kw == "virtualhost" and level != "checker":
            t.virtualhost = _or(self.arg(n, 1, 1), t.virtualhost)
        else:
            return False
        return True

    # -- global side -----------------------------------------------------------------------
    def global_block(self, n: Node) -> None:
        for c in self.block(n) or ():
            kw = c.words[0]
            if kw in GLOBAL_DEFS:
                self.global_defs[kw] = _value(c)
            else:
                self.unknown(c, "in global_defs")

    def ssl_block(self, n: Node) -> None:
        ssl: dict[str, str] = {}
        for c in self.block(n) or ():
            kw = c.words[0]
            if kw in ("password", "ca", "certificate", "key") and self.leaf(c):
                v = self.arg(c, 1, 1)
                if v is not None:
                    ssl[kw] = v
            else:
                self.unknown(c, "in SSL")
        self.global_defs["SSL"] = ssl

    def track_file_block(self, n: Node) -> None:
        name = self.arg(n, 1, 1)
        kids = self.block(n)
        if name is None or kids is None:
            return
        tf: dict[str, object] = {"weight": 1, "reverse": False}
        for c in kids:
            kw = c.words[0]
            if kw == "file" and self.leaf(c):
                tf["file"] = self.arg(c, 1, 1)
            elif kw == "weight" and self.leaf(c):
                w = self.uint(c, -254, 254, most=2)
                if w is not None:
                    tf["weight"] = w
                if len(c.words) > 2:
                    if c.words[2] != "reverse":
                        self.error(c, f"unknown track_file weight option '{c.words[2]}'")
                    tf["reverse"] = True
            elif kw == "init_file" and self.leaf(c):
                tf["init_file"] = tuple(c.words[1:])
            else:
                self.unknown(c, "in track_file")
        if tf.get("file") is None:
            self.error(n, f"track_file {name} has no file")
            return
        self.track_files[name] = tf

    # -- virtual_server_group --------------------------------------------------------------
    def group_block(self, n: Node) -> None:
        name = self.arg(n, 1, 1)
        kids = self.block(n)
        if name is None or kids is None:
            return
        entries: list[GroupEntry] = []
        for c in kids:
            if not self.leaf(c):
                continue
            e = self.group_fwmark(c) if c.words[0] == "fwmark" else self.group_range(c)
            if e is not None:
                entries.append(e)
        if name in self.groups:
            self.error(n, f"duplicate virtual_server_group {name}")
            return
        if not entries:
            self.error(n, f"virtual_server_group {name} has no entries")
            return
        fams = {_family(e.first) for e in entries if e.first is not None}
        if len(fams) > 1 and any(e.fwmark is not None and e.family is None for e in entries):
            self.error(n, f"virtual_server_group {name} has IPv4, IPv6 and a fwmark without family")
            return
        self.groups[name] = tuple(entries)

    def group_fwmark(self, c: Node) -> GroupEntry | None:
        mark = self.uint(c, 1, UINT_MAX, most=2)
        fam = c.words[2] if len(c.words) > 2 else None
        if fam is not None and fam not in ("inet", "inet6"):
            self.error(c, f"unknown address family '{fam}' for fwmark (inet|inet6)")
            return None
        return None if mark is None else GroupEntry(c.where, fwmark=mark, family=fam)

    def group_range(self, c: Node) -> GroupEntry | None:
        """alloc_vsg_entry(): ADDR, ADDR-N (last octet / IPv6 hex group), ADDR-ADDR, NET/LEN."""
        spec = c.words[0]
        port = self.port(c, c.words[1] if len(c.words) > 1 else None)
        if len(c.words) > 2:
            self.warn(c, f"extra words after '{spec}' ignored: {' '.join(c.words[2:])}")
        if port is None:
            return None
        first, count = _range(spec)
        if first is None:
            self.error(c, f"invalid virtual server group address or range '{spec}'")
            return None
        if count < 1:
            self.error(c, f"address range '{spec}' ends before it starts")
            return None
        if count > MAX_GROUP_RANGE:
            self.error(c, f"address range '{spec}' has {count} addresses (at most 65536)")
            return None
        return GroupEntry(c.where, first=first, count=count, port=port)

    # -- virtual_server ----------------------------------------------------------------------
    def vs_block(self, n: Node) -> None:
        vs = self.vs_head(n)
        kids = self.block(n)
        if kids is None:
            return
        ok = vs is not None
        vs = vs or _VS(n.where, "ip")  # keep reading the block for its errors
        simple = {
            "lb_algo": self.vs_sched,
            "lvs_sched": self.vs_sched,
            "lb_kind": self.vs_fwd,
            "lvs_method": self.vs_fwd,
            "persistence_timeout": self.vs_persistence,
            "persistence_granularity": self.vs_granularity,
            "persistence_engine": self.vs_engine,
            "protocol": self.vs_protocol,
            "ip_family": self.vs_family,
            "quorum": self.vs_quorum,
            "hysteresis": self.vs_hysteresis,
            "weight": self.vs_weight,
            "sorry_server": self.vs_sorry,
            "sorry_server_inhibit": self.vs_sorry_inhibit,
            "sorry_server_lvs_method": self.vs_sorry_fwd,
        }
        for c in kids:
            kw = c.words[0]
            if kw == "real_server":
                rs = self.rs_block(c, vs)
                if rs is not None:
                    vs.rs.append(rs)
            elif kw not in _VS_KEYWORDS:
                self.unknown(c, "in virtual_server")
            elif not self.leaf(c):
                continue
            elif kw in simple:
                simple[kw](c, vs)
            elif kw in _VS_FLAGS:
                self.vs_flag(c, vs)
            elif kw in ("ha_suspend", "omega"):
                setattr(vs, kw, self.flag(c))
            elif kw in ("quorum_up", "quorum_down"):
                setattr(vs, kw, self.script(c))
            else:
                self.timing(c, vs.timing, "virtual")
        if ok:
            self.vss.append(vs)

    def vs_head(self, n: Node) -> _VS | None:
        w = n.words
        if len(w) < 2:
            self.error(n, "virtual_server needs an address, 'fwmark N' or 'group NAME'")
            return None
        if w[1] in ("fwmark", "group"):
            v = self.arg(n, 2, 2)
            if v is None:
                return None
            if w[1] == "group":
                return _VS(n.where, "group", group=v)
            mark = self.number(n, v, 1, UINT_MAX)
            return None if mark is None else _VS(n.where, "fwmark", fwmark=mark)
        if len(w) > 3:
            self.warn(n, f"extra words after virtual_server ignored: {' '.join(w[3:])}")
        addr = self.address(n, w[1], "virtual server")
        port = self.port(n, w[2] if len(w) > 2 else None)
        if addr is None or port is None:
            return None
        return _VS(n.where, "ip", addr=addr, port=port, af=_family(addr))

    def vs_sched(self, c: Node, vs: _VS) -> None:
        s = self.arg(c, 1, 1)
        if s is not None and s not in SCHEDULERS:
            self.error(c, f"invalid lvs_sched '{s}' ({'|'.join(SCHEDULERS)})")
        elif s is not None:
            vs.sched = s

    def vs_fwd(self, c: Node, vs: _VS) -> None:
        vs.fwd = self.fwd(c) or vs.fwd

    def vs_flag(self, c: Node, vs: _VS) -> None:
        kw = c.words[0]
        self.flag(c)
        if kw == "ops":
            vs.ops = True
        elif kw.startswith("flag-") or vs.sched == kw[:2]:
            vs.sched_flags.append(kw)
        else:
            self.warn(c, f"'{kw}' only applies to the {kw[:2]} scheduler given before it - ignored")

    def vs_persistence(self, c: Node, vs: _VS) -> None:
        if len(c.words) < 2:
            vs.persistence_timeout = 360
        else:
            vs.persistence_timeout = self.uint(c, 1, MAX_PERSISTENCE) or vs.persistence_timeout

    def vs_granularity(self, c: Node, vs: _VS) -> None:
        text = self.arg(c, 1, 1)
        if text is None:
            return
        af = vs.af or (4 if "." in text else 6)
        if af == 6:
            bits = self.number(c, text, 1, 128)
            if bits is None:
                return
            vs.granularity = str(bits)
        else:
            try:
                vs.granularity = str(IPv4Address(text))
            except ValueError:
                self.error(c, f"invalid IPv4 persistence_granularity '{text}'")
                return
        vs.af = vs.af or af
        vs.persistence_timeout = vs.persistence_timeout or 360

    def vs_engine(self, c: Node, vs: _VS) -> None:
        vs.pe = self.arg(c, 1, 1)
        if vs.pe is not None and vs.pe not in KNOWN_PES:
            self.warn(c, f"persistence_engine {vs.pe}: not supported by pylvs, not used")

    def vs_protocol(self, c: Node, vs: _VS) -> None:
        p = self.arg(c, 1, 1)
        if p is not None and p.upper() not in ("TCP", "UDP", "SCTP"):
            self.error(c, f"unknown protocol '{p}' (TCP|UDP|SCTP)")
        elif p is not None:
            vs.protocol = p.upper()

    def vs_family(self, c: Node, vs: _VS) -> None:
        fam = self.arg(c, 1, 1)
        if fam not in ("inet", "inet6"):
            if fam is not None:
                self.error(c, f"unknown address family '{fam}' (inet|inet6)")
            return
        af = 4 if fam == "inet" else 6
        if vs.af and vs.af != af:
            self.error(c, f"ip_family {fam} conflicts with the virtual server's address family")
            return
        vs.af = af

    def vs_quorum(self, c: Node, vs: _VS) -> None:
        vs.quorum = _or(self.uint(c, 1, UINT_MAX), vs.quorum)

    def vs_hysteresis(self, c: Node, vs: _VS) -> None:
        vs.hysteresis = _or(self.uint(c, 0, UINT_MAX), vs.hysteresis)

    def vs_weight(self, c: Node, vs: _VS) -> None:
        vs.weight = _or(self.uint(c, 1, MAX_WEIGHT), vs.weight)

    def vs_sorry(self, c: Node, vs: _VS) -> None:
        addr_text = self.arg(c, 1, 2)
        if addr_text is None:
            return
        addr = self.address(c, addr_text, "sorry server")
        port = self.port(c, c.words[2] if len(c.words) > 2 else None)
        if addr is not None and port is not None:
            vs.sorry = SorryServerConf(c.where, addr, port)
            vs.sorry_fwd = vs.fwd

    def vs_sorry_inhibit(self, c: Node, vs: _VS) -> None:
        if vs.sorry is None:
            self.error(c, "sorry_server_inhibit used before or without sorry_server")
        else:
            vs.sorry = dataclasses.replace(vs.sorry, inhibit=self.flag(c))

    def vs_sorry_fwd(self, c: Node, vs: _VS) -> None:
        if vs.sorry is None:
            self.error(c, "sorry_server_lvs_method used before or without sorry_server")
            return
        vs.sorry_fwd = self.fwd(c) or vs.sorry_fwd

    # -- real_server ---------------------------------------------------------------------------
    def rs_block(self, n: Node, vs: _VS) -> _RS | None:
        addr_text = self.arg(n, 1, 2)
        addr = None if addr_text is None else self.address(n, addr_text, "real server")
        port = self.port(n, n.words[2] if len(n.words) > 2 else None)
        kids = self.block(n)
        if kids is None:
            return None
        rs = _RS(n.where, addr or "0.0.0.0", port or 0, vs.fwd)
        for c in kids:
            kw = c.words[0]
            if kw in CHECKERS:
                rs.checkers.extend(self.checker_block(c))
            elif kw not in _RS_KEYWORDS:
                self.unknown(c, "in real_server")
            elif not self.leaf(c):
                continue
            elif kw == "weight":
                rs.weight = _or(self.uint(c, 0, MAX_WEIGHT), rs.weight)
            elif kw == "lvs_method":
                rs.fwd = self.fwd(c) or rs.fwd
            elif kw in ("uthreshold", "lthreshold"):
                setattr(rs, kw, _or(self.uint(c, 0, UINT_MAX), getattr(rs, kw)))
            elif kw in ("notify_up", "notify_down"):
                setattr(rs, kw, self.script(c))
            else:
                self.timing(c, rs.timing, "real")
        if rs.lthreshold > rs.uthreshold:
            self.error(n, f"lthreshold {rs.lthreshold} above uthreshold {rs.uthreshold}")
        return rs if addr is not None and port is not None else None

    # -- checkers ------------------------------------------------------------------------------
    def checker_block(self, n: Node) -> list[_Check]:
        kind = n.words[0]
        kids = self.block(n)
        if kids is None:
            return []
        if len(n.words) > 1:
            self.warn(n, f"extra words after '{kind}' ignored: {' '.join(n.words[1:])}")
        chk = _Check(kind, n.where)
        own = _CHECKER_KEYWORDS.get(kind, ())
        if kind == "FILE_CHECK":
            common: tuple[str, ...] = ()
        elif kind == "MISC_CHECK":
            common = _COMMON_KEYWORDS
        else:
            common = _CONN_KEYWORDS + _COMMON_KEYWORDS
        for c in kids:
            kw = c.words[0]
            if kw == "url" and kind in ("HTTP_GET", "SSL_GET"):
                url = self.url_block(c)
                if url is not None:
                    chk.urls.append(url)
            elif kw == "host" and kind == "SMTP_CHECK":
                self.smtp_host(c, chk)
            elif kw not in own and kw not in common:
                self.unknown(c, f"in {kind}")
            elif not self.leaf(c):
                continue
            elif kw in common:
                self.common_option(c, chk)
            elif kind == "FILE_CHECK":
                self.file_option(c, chk)
            else:
                self.checker_option(c, chk)
        return self.checker_end(n, chk)

    def smtp_host(self, n: Node, chk: _Check) -> None:
        """SMTP_CHECK host { connection options }: one more checker (deprecated)."""
        self.warn(n, "SMTP_CHECK host blocks are deprecated: use one SMTP_CHECK per host")
        host = _Check(chk.kind, n.where)
        for c in self.block(n) or ():
            kw = c.words[0]
            if kw not in _CONN_KEYWORDS + _COMMON_KEYWORDS:
                self.unknown(c, "in SMTP_CHECK host")
            elif self.leaf(c):
                # connection options are the host's, the others the checker's (check_smtp.c)
                self.common_option(c, host if kw in _CONN_KEYWORDS else chk)
        chk.hosts.append(host)

    def common_option(self, c: Node, chk: _Check) -> None:
        kw = c.words[0]
        if kw in ("connect_ip", "bindto"):
            text = self.arg(c, 1, 1)
            a = None if text is None else self.address(c, text, kw)
            if a is not None:
                setattr(chk, kw, a)
        elif kw in ("connect_port", "bind_port"):
            setattr(chk, kw, _or(self.uint(c, 1, 65535), getattr(chk, kw)))
        elif kw == "bind_if":
            chk.bind_if = self.arg(c, 1, 1)
        elif kw == "fwmark":
            chk.fwmark = _or(self.uint(c, 0, UINT_MAX), chk.fwmark)
        elif kw == "log_all_failures":
            chk.log_all_failures = _or(self.boolean(c), chk.log_all_failures)
        else:
            self.timing(c, chk.timing, "checker")

    def checker_option(self, c: Node, chk: _Check) -> None:
        kw, o = c.words[0], chk.options
        if kw == "nb_get_retry":
            self.warn(c, "nb_get_retry is deprecated - please use 'retry'")
            chk.timing.retry = _or(self.uint(c, 0, UINT_MAX), chk.timing.retry)
        elif kw in ("virtualhost", "helo_name"):
            v = self.arg(c, 1, 1)
            if v is not None:
                o[kw] = v
        elif kw == "http_protocol":
            v = self.arg(c, 1, 1)
            if v is not None and v not in ("1.0", "1.0C", "1.0c", "1.1"):
                self.error(c, f"invalid http_protocol '{v}' (1.0|1.0C|1.1)")
            elif v is not None:
                o[kw] = v.upper()
        elif kw in ("enable_sni", "fast_recovery", "misc_dynamic"):
            b = self.flag(c) if kw == "misc_dynamic" else self.boolean(c)
            if b is not None:
                o[kw] = b
        elif kw == "misc_path":
            self.misc_path(c, chk)
        elif kw == "misc_timeout":
            t = self.uint(c, 0, UINT_MAX // 1_000_000)
            if t is not None:
                o[kw] = float(t)
        elif kw == "user":
            if self.arg(c, 1, 2) is not None:
                o["user"] = " ".join(c.words[1:3])  # "name" or "name group"
        elif kw == "type":
            t_ = self.arg(c, 1, 1)
            if t_ is not None and t_.upper() not in DNS_TYPES:
                self.error(c, f"unknown DNS_CHECK type '{t_}' ({'|'.join(DNS_TYPES)})")
            elif t_ is not None:
                o[kw] = t_.upper()
        elif kw == "name":
            self.dns_name(c, chk)
        elif kw in ("payload", "require_reply"):
            self.udp_hex(c, chk)
        elif kw in ("min_reply_length", "max_reply_length"):
            v_ = self.uint(c, 0, 65535)
            if v_ is not None:
                o[kw] = v_

    def misc_path(self, c: Node, chk: _Check) -> None:
        try:
            words = lexer.split_quoted_escaped(c.raw or " ".join(c.words))
            argv = lexer.split_quoted_escaped(words[1]) if len(words) > 1 else []
        except ValueError as e:
            self.error(c, f"cannot parse misc_path: {e}")
            return
        if not argv:
            self.error(c, "'misc_path' is missing a script")
            return
        if len(words) > 2:
            self.warn(
                c,
                "misc_path: keepalived runs only the first word; quote the command to pass "
                f"arguments (ignored: {' '.join(words[2:])})",
            )
        chk.options["misc_path"] = words[1]

    def dns_name(self, c: Node, chk: _Check) -> None:
        name = self.arg(c, 1, 1)
        if name is None:
            return
        if "name" in chk.options:
            self.error(c, "DNS_CHECK name already specified")
        elif (name.startswith(".") and name != ".") or ".." in name:
            self.error(c, f"DNS_CHECK name '{name}' has an empty label")
        else:
            chk.options["name"] = name

    def udp_hex(self, c: Node, chk: _Check) -> None:
        """payload HEX (bytes); require_reply [HEX with X wildcards] (True or the hex text)."""
        kw = c.words[0]
        if kw == "require_reply" and len(c.words) == 1:
            chk.options["require_reply"] = True
            return
        if len(c.words) < 2:
            self.error(c, "UDP_CHECK payload requires a payload")
            return
        text = " ".join(c.words[1:])
        parsed = _hex(text, wildcard=kw == "require_reply")
        if parsed is None:
            self.error(c, f"invalid hex string for UDP_CHECK {kw}")
        elif kw == "payload":
            chk.options["payload"] = parsed[0]
        else:
            chk.options["require_reply"] = text

    def file_option(self, c: Node, chk: _Check) -> None:
        if c.words[0] == "track_file":
            name = self.arg(c, 1, 1)
            if name is None:
                return
            tf = self.track_files.get(name)
            if tf is None:
                self.error(c, f"track_file {name} not found")
                return
            chk.options.update(track_file=name, file_path=tf["file"])
            chk.options.setdefault("weight", tf["weight"])
            chk.options.setdefault("reverse", tf["reverse"])
            if "init_file" in tf:
                chk.options["init_file"] = tf["init_file"]
            return
        w = self.uint(c, -0x7FFFFFFF, 0x7FFFFFFF, most=2)
        rev = c.words[2] if len(c.words) > 2 else "noreverse"
        if rev not in ("reverse", "noreverse"):
            self.error(c, f"unknown track file weight option '{rev}'")
        elif w is not None:
            chk.options["weight"] = w
            chk.options["reverse"] = rev == "reverse"

    def url_block(self, n: Node) -> UrlConf | None:
        kids = self.block(n)
        if kids is None:
            return None
        path: str | None = None
        digest: str | None = None
        codes: list[tuple[int, int]] = []
        vhost: str | None = None
        regex: str | None = None
        no_match = False
        for c in kids:
            kw = c.words[0]
            if kw not in _URL_KEYWORDS:
                self.unknown(c, "in url")
                continue
            if not self.leaf(c):
                continue
            if kw == "path":
                path = self.arg(c, 1, 1)
            elif kw == "digest":
                d = self.arg(c, 1, 1)
                if d is not None and not re.fullmatch(r"[0-9a-fA-F]{32}", d):
                    self.error(c, f"digest '{d}' is not 32 hexadecimal digits (genhash output)")
                elif digest is not None:
                    self.error(c, f"digest '{d}' is a duplicate")
                elif d is not None:
                    digest = d.lower()
            elif kw == "status_code":
                if self.arg(c) is not None:
                    codes.extend(self.status_codes(c))
            elif kw == "virtualhost":
                vhost = self.arg(c, 1, 1)
            elif kw == "regex":
                try:
                    words = lexer.split_quoted_escaped(c.raw or " ".join(c.words))
                except ValueError as e:
                    self.error(c, f"cannot parse regex: {e}")
                    continue
                if len(words) != 2:
                    self.error(c, "regex missing or too many fields (quote the expression)")
                    continue
                try:
                    re.compile(words[1])
                except re.error as e:
                    self.error(c, f"invalid regex '{words[1]}': {e}")
                    continue
                regex = words[1]
            else:
                no_match = self.flag(c)
        if path is None:
            self.error(n, "url has no path")
            return None
        if no_match and regex is None:
            self.warn(n, "regex_no_match without regex - ignored")
            no_match = False
        return UrlConf(n.where, path, digest, tuple(codes), vhost, regex, no_match)

    def status_codes(self, c: Node) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        for w in c.words[1:]:
            m = re.fullmatch(r"([0-9]+)(?:-([0-9]+))?", w)
            lo = int(m.group(1)) if m else 0
            hi = int(m.group(2) or lo) if m else 0
            if not m or not 100 <= lo <= hi <= 599:
                self.error(c, f"invalid HTTP status code '{w}' (100-599, or a range LOW-HIGH)")
                continue
            out.append((lo, hi))
        return out

    def checker_end(self, n: Node, chk: _Check) -> list[_Check]:
        kind, o = chk.kind, chk.options
        if kind in ("HTTP_GET", "SSL_GET") and not chk.urls:
            self.error(n, f"{kind} checker has no url")
            return []
        if kind == "MISC_CHECK" and "misc_path" not in o:
            self.error(n, "MISC_CHECK has no misc_path")
            return []
        if kind == "FILE_CHECK" and "track_file" not in o:
            self.error(n, "FILE_CHECK has no track_file")
            return []
        if kind == "UDP_CHECK":
            lo, hi = o.get("min_reply_length", 0), o.get("max_reply_length", 255)
            if isinstance(lo, int) and isinstance(hi, int) and lo > hi:
                self.warn(n, f"UDP_CHECK min_reply_length {lo} > max_reply_length {hi}: fails")
        if kind != "SMTP_CHECK" or not chk.hosts:
            return [chk]
        conn = (chk.connect_ip, chk.connect_port, chk.bindto, chk.bind_port, chk.bind_if)
        own = any(v is not None for v in (*conn, chk.fwmark, chk.timing.connect_timeout))
        hosts = []
        for h in chk.hosts:
            timing = dataclasses.replace(
                chk.timing,
                connect_timeout=_or(h.timing.connect_timeout, chk.timing.connect_timeout),
            )
            hosts.append(
                dataclasses.replace(
                    chk,
                    where=h.where,
                    timing=timing,
                    hosts=[],
                    connect_ip=h.connect_ip,
                    connect_port=h.connect_port,
                    bindto=h.bindto,
                    bind_port=h.bind_port,
                    bind_if=h.bind_if,
                    fwmark=h.fwmark,
                )
            )
        return ([chk] if own else []) + hosts

    # -- resolution (validate_check_config) --------------------------------------------------
    def finish_vs(self, vs: _VS) -> VirtualServerConf | None:
        entries: tuple[GroupEntry, ...] = ()
        if vs.kind == "group":
            assert vs.group is not None
            if vs.group not in self.groups:
                self.error(vs.where, f"virtual_server_group {vs.group} is not defined")
                return None
            entries = self.groups[vs.group]
        if not vs.rs:
            self.warn(vs.where, f"virtual server {_name(vs)} has no real servers - ignored")
            return None
        fwmark_only = vs.kind == "fwmark" or (
            vs.kind == "group" and all(e.fwmark is not None for e in entries)
        )
        by_address = not fwmark_only
        fams = {_family(e.first) for e in entries if e.first is not None}
        fams |= {4 if e.family == "inet" else 6 for e in entries if e.family is not None}
        if vs.kind == "group" and len(fams) == 1 and not vs.af:
            vs.af = fams.pop()
        if fwmark_only and vs.protocol is not None:
            self.warn(vs.where, f"protocol given for fwmark service {_name(vs)} - ignored")
        if vs.ha_suspend and (vs.kind == "fwmark" or any(e.fwmark for e in entries)):
            self.warn(vs.where, "ha_suspend cannot be used with fwmarks - cleared")
            vs.ha_suspend = False
        protocol = vs.protocol or "TCP"
        if by_address:
            if vs.protocol is None:
                self.warn(vs.where, f"virtual server {_name(vs)}: no protocol set - UDP")
                protocol = "UDP"
            if vs.ops and protocol != "UDP":
                self.warn(vs.where, "one packet scheduling (ops) requires UDP - cleared")
                vs.ops = False
            zero_port = (vs.kind == "ip" and vs.port == 0) or any(
                e.fwmark is None and e.port == 0 for e in entries
            )
            if zero_port and not vs.persistence_timeout:
                self.warn(vs.where, "zero port only valid for persistent services - 360 s set")
                vs.persistence_timeout = 360
        if vs.sched is None:
            self.warn(vs.where, f"virtual server {_name(vs)}: no lvs_sched set - 'wlc'")
        real_servers = self.finish_real_servers(vs, protocol, entries)
        if not real_servers:
            return None
        weight_sum = sum(r.weight for r in real_servers)
        quorum, hysteresis = vs.quorum, vs.hysteresis
        if quorum > weight_sum:
            self.warn(vs.where, f"quorum {quorum} exceeds the total weight {weight_sum} - reduced")
            quorum = weight_sum
        if hysteresis >= quorum and hysteresis:
            self.warn(vs.where, f"hysteresis {hysteresis} >= quorum {quorum} - reduced")
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
            lb_kind=(vs.fwd or _Fwd()).method,
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
            sorry_server=self.finish_sorry(vs, real_servers),
            delay_loop=_or(t.delay_loop, 60.0),
            real_servers=real_servers,
            ip_family="inet6" if vs.af == 6 else "inet",
        )

    def finish_real_servers(
        self, vs: _VS, protocol: str, entries: tuple[GroupEntry, ...]
    ) -> tuple[RealServerConf, ...]:
        out: list[RealServerConf] = []
        seen: dict[tuple[str, int], Where] = {}
        if vs.fwd is None and any(r.fwd is None for r in vs.rs):
            self.warn(vs.where, f"virtual server {_name(vs)}: no lb_kind set - NAT")
        for r in vs.rs:
            f = r.fwd or vs.fwd or _Fwd()
            af = _family(r.addr)
            if f.method != "TUN":
                if vs.af and vs.af != af:
                    self.error(
                        r.where,
                        f"real server {r.addr} and virtual server address "
                        "families differ (only TUN can mix them)",
                    )
                    continue
                vs.af = vs.af or af
            port = self.rs_port(vs, r, f, entries)
            if (r.addr, port) in seen:
                self.error(
                    r.where,
                    f"real server {r.addr} {port} is duplicated (first at {seen[(r.addr, port)]})",
                )
                continue
            seen[(r.addr, port)] = r.where
            t = _inherit(r.timing, vs.timing)
            checkers = tuple(self.finish_checker(c, r.addr, port, t, vs) for c in r.checkers)
            out.append(
                RealServerConf(
                    where=r.where,
                    addr=r.addr,
                    port=port,
                    weight=_or(r.weight, vs.weight),
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
            fams = {_family(r.addr) for r in out}
            vs.af = fams.pop() if len(fams) == 1 else 4
        return tuple(out)

    def rs_port(self, vs: _VS, r: _RS, f: _Fwd, entries: tuple[GroupEntry, ...]) -> int:
        """The port corrections of validate_check_config()."""
        if vs.kind == "group":
            if f.method != "NAT" and r.port:
                for e in entries:
                    if e.fwmark is not None:
                        self.warn(
                            r.where,
                            f"fwmark group: port {r.port} of real server {r.addr} will be ignored",
                        )
                        break
                    if e.port != r.port:
                        self.warn(
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
                self.warn(r.where, f"fwmark virtual server: port of real server {r.addr} cleared")
            return 0
        if r.port and r.port != vs.port:
            self.warn(
                r.where,
                f"virtual server and real server {r.addr} ports don't match - {vs.port} used",
            )
        return vs.port

    def finish_sorry(self, vs: _VS, rss: tuple[RealServerConf, ...]) -> SorryServerConf | None:
        s = vs.sorry
        if s is None:
            return None
        f = vs.sorry_fwd or vs.fwd or _Fwd()
        af = _family(s.addr)
        if f.method != "TUN" and vs.af and vs.af != af:
            self.error(s.where, "sorry server and virtual server address families differ")
            return None
        port = s.port
        if f.method != "NAT":
            if vs.kind == "fwmark" and port:
                self.warn(s.where, "fwmark virtual server: sorry server port cleared")
                port = 0
            elif vs.kind == "ip":
                if port and port != vs.port:
                    self.warn(s.where, "virtual server and sorry server ports don't match")
                port = vs.port
        inhibit = s.inhibit
        for r in rss:
            if (r.addr, r.port) == (s.addr, port) and r.inhibit_on_failure != inhibit:
                self.warn(
                    s.where,
                    "sorry server is also a real server with another "
                    "inhibit_on_failure - the real server's is used",
                )
                inhibit = r.inhibit_on_failure
        return SorryServerConf(
            s.where, s.addr, port, f.method, inhibit, f.tun_type, f.tun_port, f.tun_flags
        )

    def finish_checker(self, c: _Check, addr: str, port: int, rt: _Timing, vs: _VS) -> CheckerConf:
        kind, o = c.kind, dict(c.options)
        t = c.timing
        delay_loop = _or(t.delay_loop, _or(rt.delay_loop, 60.0))
        default_retry = {"MISC_CHECK": 0, "DNS_CHECK": 3}.get(kind, 1)
        default_dbr = {"HTTP_GET": 3.0, "SSL_GET": 3.0, "DNS_CHECK": delay_loop}.get(kind, 1.0)
        if kind in ("HTTP_GET", "SSL_GET"):
            vh = o.get("virtualhost") or rt.virtualhost
            assert vh is None or isinstance(vh, str)
            o["virtualhost"] = vh
            o.setdefault("http_protocol", "1.0")
            o.setdefault("enable_sni", False)
            o.setdefault("fast_recovery", False)
            o["urls"] = tuple(
                dataclasses.replace(u, virtualhost=u.virtualhost or vh) for u in c.urls
            )
        elif kind == "SMTP_CHECK":
            o.setdefault("helo_name", "smtpchecker.keepalived.org")
        elif kind == "DNS_CHECK":
            o.setdefault("type", "SOA")
            o.setdefault("name", ".")
        elif kind == "UDP_CHECK":
            o.setdefault("require_reply", False)
            o.setdefault("min_reply_length", 0)
            o.setdefault("max_reply_length", 255)
        elif kind == "MISC_CHECK":
            o.setdefault("misc_dynamic", False)
            if not o.get("misc_timeout"):
                o["misc_timeout"] = _or(vs.timing.delay_loop, 60.0)
        connect_ip = c.connect_ip or addr
        ip = ip_address(connect_ip)
        if ip.version == 6 and ip.is_link_local and c.bind_if is None and c.kind not in _NO_CONN:
            self.error(c.where, f"checker link local address {connect_ip} requires a bind_if")
        if c.bindto is not None and _family(c.bindto) != ip.version:
            self.error(c.where, f"bindto {c.bindto} and {connect_ip} address families differ")
        connect_port = _or(c.connect_port, port)
        if connect_port == 0 and kind not in ("MISC_CHECK", "FILE_CHECK", "PING_CHECK"):
            self.warn(c.where, f"{kind} of {addr} has no port to connect to: set connect_port")
        log_all = c.log_all_failures
        if log_all is None:
            log_all = _truthy(self.global_defs.get("checker_log_all_failures"))
        return CheckerConf(
            kind=kind,
            where=c.where,
            connect_ip=connect_ip,
            connect_port=connect_port,
            bindto=c.bindto,
            bind_port=c.bind_port,
            connect_timeout=_or(t.connect_timeout, _or(rt.connect_timeout, 5.0)),
            retry=_or(t.retry, _or(rt.retry, default_retry)),
            delay_before_retry=_or(t.delay_before_retry, _or(rt.delay_before_retry, default_dbr)),
            delay_loop=delay_loop,
            warmup=_or(t.warmup, _or(rt.warmup, delay_loop)),
            fwmark=c.fwmark,
            log_all_failures=log_all,
            alpha=bool(_or(t.alpha, rt.alpha)),
            bind_if=c.bind_if,
            options=o,
        )

    def check_script_security(self, servers: list[VirtualServerConf | None]) -> None:
        """check_check_script_security(): scripts without enable_script_security."""
        if "enable_script_security" in self.global_defs:
            return
        for vs in servers:
            if vs is None:
                continue
            scripts = [vs.quorum_up, vs.quorum_down]
            for r in vs.real_servers:
                scripts += [r.notify_up, r.notify_down]
                scripts += [
                    str(c.options["misc_path"]) for c in r.checkers if c.kind == "MISC_CHECK"
                ]
            if any(scripts):
                self.warn(
                    vs.where,
                    "SECURITY VIOLATION - check scripts are being executed but "
                    "enable_script_security is not set in global_defs",
                )
                return

    def check_duplicates(self, servers: list[VirtualServerConf]) -> None:
        """Two virtual servers asking for the same IPVS service."""
        seen: dict[tuple[object, ...], Where] = {}
        for vs in servers:
            keys: list[tuple[object, ...]] = []
            if vs.kind == "ip":
                keys.append((vs.protocol, vs.addr, vs.port))
            elif vs.kind == "fwmark":
                keys.append(("fwmark", vs.fwmark, vs.ip_family))
            else:
                for e in self.groups.get(vs.group or "", ()):
                    if e.fwmark is not None:
                        keys.append(("fwmark", e.fwmark, e.family or vs.ip_family))
                    else:
                        keys.extend((vs.protocol, a, e.port) for a in group_addresses(e))
            for k in keys:
                if k in seen and seen[k] != vs.where:
                    what = f"fwmark {k[1]}" if k[0] == "fwmark" else f"{k[0]} {k[1]} {k[2]}"
                    self.error(vs.where, f"duplicate virtual server {what} (also at {seen[k]})")
                    break
                seen.setdefault(k, vs.where)


# -- helpers ----------------------------------------------------------------------------

_TIMING_KEYWORDS = _names(
    "delay_loop connect_timeout retry delay_before_retry warmup alpha inhibit_on_failure "
    "virtualhost"
)
_VS_FLAGS = _names("ops flag-1 flag-2 flag-3 sh-port sh-fallback mh-port mh-fallback")
_VS_KEYWORDS = frozenset(
    _names(
        "lb_algo lvs_sched lb_kind lvs_method persistence_timeout persistence_granularity "
        "persistence_engine protocol ip_family quorum hysteresis weight sorry_server "
        "sorry_server_inhibit sorry_server_lvs_method ha_suspend omega quorum_up quorum_down"
    )
    + _VS_FLAGS
    + _TIMING_KEYWORDS
)
_RS_KEYWORDS = frozenset(
    _names("weight lvs_method uthreshold lthreshold notify_up notify_down") + _TIMING_KEYWORDS
)
_NO_CONN = ("MISC_CHECK", "FILE_CHECK")
_URL_KEYWORDS = _names("path digest status_code virtualhost regex regex_no_match")
_CONN_KEYWORDS = _names("connect_ip connect_port bindto bind_port bind_if fwmark connect_timeout")
_COMMON_KEYWORDS = _names("retry delay_before_retry warmup delay_loop alpha log_all_failures")
_CHECKER_KEYWORDS: dict[str, tuple[str, ...]] = {
    "HTTP_GET": ("nb_get_retry", "virtualhost", "http_protocol", "enable_sni", "fast_recovery"),
    "SMTP_CHECK": ("helo_name",),
    "DNS_CHECK": ("type", "name"),
    "UDP_CHECK": ("payload", "require_reply", "min_reply_length", "max_reply_length"),
    "MISC_CHECK": ("misc_path", "misc_timeout", "misc_dynamic", "user"),
    "FILE_CHECK": ("track_file", "weight"),
}
_CHECKER_KEYWORDS["SSL_GET"] = _CHECKER_KEYWORDS["HTTP_GET"]


_T = TypeVar("_T")


def _or(v: _T | None, default: _T) -> _T:
    return default if v is None else v


def _truthy(v: object) -> bool:
    return v is True or v in ("yes", "on", "true")


def _inherit(rs: _Timing, vs: _Timing) -> _Timing:
    """A real server's options, the virtual server's where it has none."""
    return _Timing(*(_or(a, b) for a, b in zip(vars(rs).values(), vars(vs).values(), strict=True)))


def _value(n: Node) -> object:
    """A global_defs value: True, a word, words, or the words of a { } block."""
    if n.children is not None:
        return tuple(w for c in n.children for w in c.words)
    args = n.words[1:]
    return True if not args else args[0] if len(args) == 1 else tuple(args)


def _family(addr: str) -> int:
    return 6 if ":" in addr else 4


def _name(vs: _VS) -> str:
    if vs.kind == "group":
        return f"group {vs.group}"
    if vs.kind == "fwmark":
        return f"fwmark {vs.fwmark}"
    return f"{vs.addr} {vs.port}"


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


def _hex(text: str, wildcard: bool) -> tuple[bytes, bytes | None] | None:
    """read_hex_str(): pairs of hex digits, a lone digit before a blank is one byte;
    ``X`` matches any nibble in a reply (the mask has its bits set)."""
    data, mask = bytearray(), bytearray()
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in " \t":
            i += 1
        if i >= n:
            break
        hi = _nibble(text[i], wildcard)
        if hi is None:
            return None
        i += 1
        val, m = hi
        if i < n and text[i] != " ":
            lo = _nibble(text[i], wildcard)
            if lo is None:
                return None
            i += 1
            val, m = (val << 4) | lo[0], (m << 4) | lo[1]
        data.append(val)
        mask.append(m)
    if not data:
        return None
    return bytes(data), (bytes(mask) if any(mask) else None)


def _nibble(c: str, wildcard: bool) -> tuple[int, int] | None:
    if c in "0123456789abcdefABCDEF":
        return int(c, 16), 0
    if wildcard and c in "xX":
        return 0, 0xF
    return None


def _order(files: Sequence[str]) -> Callable[[Diagnostic], tuple[int, str, int]]:
    rank = {f: i for i, f in enumerate(files)}
    return lambda d: (rank.get(d.where.file, len(rank)), d.where.file, d.where.line)


__all__ = ["KEEPALIVED_DEFAULTS", "load", "parse_nodes"]
