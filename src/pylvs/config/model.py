"""What a keepalived.conf says about LVS: the parser's output (keepalived 2.2).

Frozen records, one per configuration block, each remembering where it was
written (``Where``) so that every message can name file:line.  Values are
already converted and checked (numbers, addresses as text, ranges), and
inherited values are resolved by the parser as keepalived resolves them
(a real server's checker without connect_timeout takes the real server's,
then the virtual server's, then the default), so consumers never look
"upwards".  keepalived's defaults apply (NAT, wlc... see KEEPALIVED_DEFAULTS
in the parser), not ipvsadm's.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Where:
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """A warning (unsupported keyword...) or an error, at file:line."""

    where: Where
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


class ConfigError(Exception):
    """The file cannot be used; ``problems`` lists every error found (file:line each)."""

    def __init__(self, problems: list[Diagnostic]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Node:
    """A statement of the file as the lexer sees it: a keyword and its arguments,
    with children when it opens a ``{ }`` block (None otherwise)."""

    where: Where
    words: tuple[str, ...]
    children: tuple[Node, ...] | None = None
    # The statement's text as keepalived's handlers see it (comments removed,
    # parameters substituted): script keywords re-split it with quotes and escapes.
    raw: str = ""


@dataclass(frozen=True, slots=True)
class UrlConf:
    """An HTTP_GET/SSL_GET ``url`` block."""

    where: Where
    path: str
    digest: str | None = None  # hex MD5 of the body (genhash)
    status_codes: tuple[tuple[int, int], ...] = ()  # inclusive ranges; () = 200-299
    virtualhost: str | None = None
    regex: str | None = None
    regex_no_match: bool = False


@dataclass(frozen=True, slots=True)
class CheckerConf:
    """One checker block of a real server: TCP_CHECK, HTTP_GET, SSL_GET, MISC_CHECK,
    SMTP_CHECK, DNS_CHECK, UDP_CHECK, PING_CHECK, FILE_CHECK.

    Common options are fields (resolved: never None where keepalived has a
    default); the kind's own options are in ``options`` under their
    keepalived keyword names (``urls`` holds UrlConf records; e.g.
    ``misc_path``, ``misc_timeout``, ``misc_dynamic``, ``user``, ``helo_name``,
    ``type``, ``name``, ``payload`` (bytes), ``require_reply``,
    ``http_protocol``, ``enable_sni``, ``sni_name``, ``virtualhost``,
    ``file_path`` ...).
    """

    kind: str
    where: Where
    connect_ip: str  # the real server's address unless given
    connect_port: int  # the real server's port unless given
    bindto: str | None = None
    bind_port: int | None = None
    connect_timeout: float = 5.0
    retry: int = 1
    delay_before_retry: float = 1.0
    delay_loop: float = 60.0
    warmup: float = 0.0
    fwmark: int | None = None
    log_all_failures: bool = False
    alpha: bool = False  # start failed until it passes (checker, else real server, else vs)
    bind_if: str | None = None
    options: dict[str, object] = field(default_factory=dict, hash=False, compare=True)


@dataclass(frozen=True, slots=True)
class RealServerConf:
    where: Where
    addr: str
    port: int
    weight: int = 1
    uthreshold: int = 0
    lthreshold: int = 0
    inhibit_on_failure: bool = False
    alpha: bool = False  # inherited from the virtual server: start down until a check passes
    notify_up: str | None = None
    notify_down: str | None = None
    lvs_method: str = "NAT"  # NAT | DR | TUN (inherited from the virtual server's lb_kind)
    tun_type: str = "ipip"  # ipip | gue | gre
    tun_port: int = 0
    tun_flags: str = "nocsum"  # nocsum | csum | remcsum
    checkers: tuple[CheckerConf, ...] = ()


@dataclass(frozen=True, slots=True)
class SorryServerConf:
    where: Where
    addr: str
    port: int
    lvs_method: str = "NAT"
    inhibit: bool = False  # sorry_server_inhibit: kept with weight 0 instead of removed
    tun_type: str = "ipip"
    tun_port: int = 0
    tun_flags: str = "nocsum"
    weight: int = 1


@dataclass(frozen=True, slots=True)
class GroupEntry:
    """One line of a virtual_server_group: an address range and port, or a fwmark."""

    where: Where
    first: str | None = None  # first address of the range
    count: int = 1  # addresses in the range (``10.0.0.1-10`` -> 10)
    port: int = 0
    fwmark: int | None = None
    family: str | None = None  # fwmark entries: "inet" | "inet6" when given


@dataclass(frozen=True, slots=True)
class VirtualServerConf:
    where: Where
    kind: str  # "ip" | "fwmark" | "group"
    addr: str | None = None
    port: int = 0
    fwmark: int | None = None
    group: str | None = None
    protocol: str = "TCP"  # TCP | UDP | SCTP
    lb_algo: str = "wlc"
    lb_kind: str = "NAT"
    persistence_timeout: int = 0  # 0: not persistent
    persistence_granularity: str | None = None  # netmask text
    persistence_engine: str | None = None
    ops: bool = False
    sched_flags: tuple[str, ...] = ()  # sh-port, sh-fallback, mh-port, mh-fallback (flag-1..3)
    ha_suspend: bool = False
    virtualhost: str | None = None
    alpha: bool = False
    omega: bool = False
    quorum: int = 1
    hysteresis: int = 0
    quorum_up: str | None = None
    quorum_down: str | None = None
    sorry_server: SorryServerConf | None = None
    delay_loop: float = 60.0
    real_servers: tuple[RealServerConf, ...] = ()
    ip_family: str = "inet"  # inet | inet6: the family of fwmark services (resolved)


@dataclass(frozen=True, slots=True)
class KeepalivedConf:
    files: tuple[str, ...]  # every file read (the main one first, then includes)
    global_defs: dict[str, object] = field(default_factory=dict, hash=False, compare=True)
    groups: dict[str, tuple[GroupEntry, ...]] = field(
        default_factory=dict, hash=False, compare=True
    )
    virtual_servers: tuple[VirtualServerConf, ...] = ()
    vrrp_blocks: tuple[Node, ...] = ()  # vrrp_* / static_* blocks, parsed but left raw (HA issue)
    warnings: tuple[Diagnostic, ...] = ()
