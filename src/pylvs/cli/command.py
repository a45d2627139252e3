"""What a parsed pylvsadm (ipvsadm) command line means.

``pylvs.cli.argv`` builds a ``Command`` from argv; ``pylvs.cli.pylvsadm``
turns it into control-API calls and renders the answer with
``pylvs.cli.render``.  Plain data, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Cmd(Enum):
    ADD = "add-service"  # -A
    EDIT = "edit-service"  # -E
    DEL = "delete-service"  # -D
    FLUSH = "clear"  # -C
    RESTORE = "restore"  # -R
    SAVE = "save"  # -S
    ADDDEST = "add-server"  # -a
    EDITDEST = "edit-server"  # -e
    DELDEST = "delete-server"  # -d
    LIST = "list"  # -L / -l
    ZERO = "zero"  # -Z
    TIMEOUT = "set"  # --set
    STARTDAEMON = "start-daemon"
    STOPDAEMON = "stop-daemon"
    VERSION = "version"  # -v
    HELP = "help"  # -h
    # Extensions (DPVS-style FULLNAT local addresses)
    ADDLADDR = "add-laddr"
    DELLADDR = "del-laddr"
    GETLADDR = "get-laddr"


@dataclass
class ListFormat:
    """The listing options (ipvsadm's FMT_* bits and list modifiers)."""

    numeric: bool = False  # -n
    stats: bool = False  # --stats
    rate: bool = False  # --rate
    thresholds: bool = False  # --thresholds
    persistent_conn: bool = False  # --persistent-conn
    tun_info: bool = False  # --tun-info
    nosort: bool = False  # --nosort
    exact: bool = False  # -x / --exact (with --stats/--rate: full numbers)
    connection: bool = False  # -c
    timeout: bool = False  # --timeout
    daemon: bool = False  # --daemon
    json: bool = False  # --json (extension)


@dataclass
class ServiceArg:
    """-t/-u/--sctp-service ADDR:PORT or -f MARK, with -6."""

    protocol: str = ""  # "tcp" | "udp" | "sctp" | "" (fwmark)
    address: str = ""  # numeric address after resolution ("" for fwmark)
    port: int = 0
    fwmark: int = 0
    family: str = "inet"  # "inet" | "inet6"


@dataclass
class Command:
    cmd: Cmd
    service: ServiceArg | None = None
    # -A / -E
    sched_name: str | None = None  # -s (None: not given)
    persistent: int | None = None  # -p [timeout] (None: not given)
    netmask: str | None = None  # -M (address for IPv4, prefix length for IPv6)
    ops: bool = False  # -o
    sched_flags: list[str] = field(default_factory=list)  # -b flag-1,sh-port,...
    pe_name: str | None = None  # --pe
    # -a / -e / -d
    dest_address: str = ""  # -r (numeric after resolution)
    dest_port: int | None = None  # port of -r, None when not given
    dest_family: str = "inet"
    fwd_method: str | None = None  # -g droute, -i tunnel, -m masq, --fullnat (None: default)
    weight: int | None = None  # -w
    u_thresh: int | None = None  # -x
    l_thresh: int | None = None  # -y
    tun_type: str | None = None  # --tun-type ipip|gue|gre
    tun_port: int | None = None  # --tun-port
    tun_flags: int | None = None  # --tun-nocsum 0 / --tun-csum 1 / --tun-remcsum 2
    proxy_protocol: str | None = None  # --proxy-protocol v1|v2 (extension)
    # --set
    timeouts: tuple[int, int, int] | None = None  # tcp tcpfin udp
    # --start-daemon / --stop-daemon
    daemon_state: str = ""  # "master" | "backup"
    mcast_interface: str | None = None
    syncid: int | None = None
    mcast_group: str | None = None
    mcast_port: int | None = None
    mcast_ttl: int | None = None
    sync_maxlen: int | None = None
    # FULLNAT local addresses (extension)
    laddr: str = ""  # -z ADDR
    # listing
    fmt: ListFormat = field(default_factory=ListFormat)
    # where the daemon is (extension)
    socket: str | None = None
