"""The IPVS object model: virtual services, real servers (dests), counters.

Names follow the kernel's struct ip_vs_service / struct ip_vs_dest and the
IPVS netlink attributes, so LVS knowledge carries over.  These are hot-path
objects: mutable, slotted, no I/O.  Validation lives in ``table.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pylvs.sched.base import Scheduler

Address = IPv4Address | IPv6Address

AF_INET = 2
AF_INET6 = 10


class Proto(IntEnum):
    """IP protocol numbers of the protocols IPVS balances."""

    TCP = 6
    UDP = 17
    SCTP = 132


PROTO_NAMES = {Proto.TCP: "TCP", Proto.UDP: "UDP", Proto.SCTP: "SCTP"}


class Fwd(IntEnum):
    """Forwarding methods (kernel IP_VS_CONN_F_FWD_MASK values; FULLNAT is ours)."""

    MASQ = 0
    LOCALNODE = 1
    TUNNEL = 2
    DROUTE = 3
    BYPASS = 4
    FULLNAT = 5


class TunType(IntEnum):
    """IP_VS_CONN_F_TUNNEL_TYPE_* values."""

    IPIP = 0
    GUE = 1
    GRE = 2


# IP_VS_TUNNEL_ENCAP_FLAG_* (tun_flags)
TUN_F_NOCSUM = 0
TUN_F_CSUM = 1 << 0
TUN_F_REMCSUM = 1 << 1

# Service flags (IP_VS_SVC_F_*)
SVC_F_PERSISTENT = 0x0001
SVC_F_HASHED = 0x0002
SVC_F_ONEPACKET = 0x0004
SVC_F_SCHED1 = 0x0008
SVC_F_SCHED2 = 0x0010
SVC_F_SCHED3 = 0x0020
SVC_F_SH_FALLBACK = SVC_F_SCHED1
SVC_F_SH_PORT = SVC_F_SCHED2
SVC_F_MH_FALLBACK = SVC_F_SCHED1
SVC_F_MH_PORT = SVC_F_SCHED2
SVC_F_SCHED_MASK = SVC_F_SCHED1 | SVC_F_SCHED2 | SVC_F_SCHED3

# Dest flags (IP_VS_DEST_F_*)
DEST_F_AVAILABLE = 0x0001
DEST_F_OVERLOAD = 0x0002

# Defaults from ipvsadm / the kernel.
DEFAULT_SCHED = "wlc"
DEFAULT_PERSISTENCE = 360  # seconds: ipvsadm 1.31 sends 6*60 for -p without a value
DEFAULT_NETMASK_V4 = 0xFFFFFFFF
DEFAULT_NETMASK_V6 = 128
MAX_WEIGHT = 65535
MAX_FWMARK = 0xFFFFFFFF


def af_of(addr: Address) -> int:
    return AF_INET if addr.version == 4 else AF_INET6


def parse_addr(text: str) -> Address:
    """Parse an IPv4/IPv6 literal (brackets allowed for IPv6)."""
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    return ip_address(text)


@dataclass(slots=True)
class Stats:
    """Counters of struct ip_vs_kstats (64-bit in the kernel)."""

    conns: int = 0
    inpkts: int = 0
    outpkts: int = 0
    inbytes: int = 0
    outbytes: int = 0

    def add_in(self, size: int) -> None:
        self.inpkts += 1
        self.inbytes += size

    def add_out(self, size: int) -> None:
        self.outpkts += 1
        self.outbytes += size

    def zero(self) -> None:
        self.conns = self.inpkts = self.outpkts = self.inbytes = self.outbytes = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "conns": self.conns,
            "inpkts": self.inpkts,
            "outpkts": self.outpkts,
            "inbytes": self.inbytes,
            "outbytes": self.outbytes,
        }


@dataclass(frozen=True, slots=True)
class ServiceKey:
    """Identity of a virtual service: (af, protocol, addr, port) or (af, fwmark)."""

    af: int
    protocol: int  # 0 for fwmark services
    addr: Address | None
    port: int
    fwmark: int = 0

    @classmethod
    def inet(cls, protocol: int, addr: Address | str, port: int) -> ServiceKey:
        a = parse_addr(addr) if isinstance(addr, str) else addr
        return cls(af_of(a), int(protocol), a, port, 0)

    @classmethod
    def mark(cls, fwmark: int, af: int = AF_INET) -> ServiceKey:
        return cls(af, 0, None, 0, fwmark)

    @property
    def is_fwmark(self) -> bool:
        return self.fwmark != 0


@dataclass(frozen=True, slots=True)
class DestKey:
    addr: Address
    port: int

    @classmethod
    def of(cls, addr: Address | str, port: int) -> DestKey:
        return cls(parse_addr(addr) if isinstance(addr, str) else addr, port)


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """What a user asks for with -A/-E (the ipvs_service netlink attributes)."""

    key: ServiceKey
    sched_name: str = DEFAULT_SCHED
    flags: int = 0  # SVC_F_PERSISTENT | SVC_F_ONEPACKET | scheduler flags
    timeout: int = 0  # persistence timeout in seconds (0 = not persistent)
    netmask: int | None = None  # None = the default for the family
    pe_name: str = ""

    @property
    def persistent(self) -> bool:
        return bool(self.flags & SVC_F_PERSISTENT)


@dataclass(frozen=True, slots=True)
class DestSpec:
    """What a user asks for with -a/-e (the ipvs_dest netlink attributes)."""

    addr: Address
    port: int
    fwd_method: Fwd = Fwd.DROUTE
    weight: int = 1
    u_thresh: int = 0
    l_thresh: int = 0
    tun_type: TunType = TunType.IPIP
    tun_port: int = 0
    tun_flags: int = TUN_F_NOCSUM
    extra: dict[str, Any] = field(default_factory=dict, hash=False, compare=True)

    @property
    def key(self) -> DestKey:
        return DestKey(self.addr, self.port)


class Dest:
    """A real server inside a service (struct ip_vs_dest)."""

    __slots__ = (
        "activeconns",
        "addr",
        "af",
        "extra",
        "flags",
        "fwd_method",
        "inactconns",
        "l_thresh",
        "last_weight",
        "persistconns",
        "port",
        "stats",
        "svc",
        "tun_flags",
        "tun_port",
        "tun_type",
        "u_thresh",
        "weight",
    )

    def __init__(self, spec: DestSpec, svc: Service) -> None:
        self.addr: Address = spec.addr
        self.af = af_of(spec.addr)
        self.port = spec.port
        self.svc: Service = svc
        self.fwd_method = spec.fwd_method
        self.weight = spec.weight
        self.last_weight = -1
        self.u_thresh = spec.u_thresh
        self.l_thresh = spec.l_thresh
        self.tun_type = spec.tun_type
        self.tun_port = spec.tun_port
        self.tun_flags = spec.tun_flags
        self.extra: dict[str, Any] = dict(spec.extra)
        self.flags = DEST_F_AVAILABLE
        self.activeconns = 0
        self.inactconns = 0
        self.persistconns = 0
        self.stats = Stats()

    @property
    def key(self) -> DestKey:
        return DestKey(self.addr, self.port)

    @property
    def available(self) -> bool:
        return bool(self.flags & DEST_F_AVAILABLE)

    @property
    def overloaded(self) -> bool:
        return bool(self.flags & DEST_F_OVERLOAD)

    def overhead(self) -> int:
        """ip_vs_dest_conn_overhead(): active connections weigh 256 inactive ones."""
        return (self.activeconns << 8) + self.inactconns

    def totalconns(self) -> int:
        return self.activeconns + self.inactconns

    def apply(self, spec: DestSpec) -> None:
        """Copy user-settable attributes (__ip_vs_update_dest)."""
        self.fwd_method = spec.fwd_method
        self.weight = spec.weight
        self.u_thresh = spec.u_thresh
        self.l_thresh = spec.l_thresh
        self.tun_type = spec.tun_type
        self.tun_port = spec.tun_port
        self.tun_flags = spec.tun_flags
        self.extra = dict(spec.extra)
        # __ip_vs_update_dest(): the dest becomes available again and a new
        # upper threshold above the *active* count clears OVERLOAD at once.
        self.flags |= DEST_F_AVAILABLE
        if self.u_thresh == 0 or self.u_thresh > self.activeconns:
            self.flags &= ~DEST_F_OVERLOAD

    def spec(self) -> DestSpec:
        return DestSpec(
            self.addr,
            self.port,
            self.fwd_method,
            self.weight,
            self.u_thresh,
            self.l_thresh,
            self.tun_type,
            self.tun_port,
            self.tun_flags,
            dict(self.extra),
        )

    def __repr__(self) -> str:
        return (
            f"Dest({self.addr}:{self.port} w={self.weight}"
            f" a={self.activeconns} i={self.inactconns})"
        )


class Service:
    """A virtual service (struct ip_vs_service).

    ``destinations`` keeps the kernel's list order: a new real server goes
    to the HEAD (index 0), as list_add_rcu() does.
    """

    __slots__ = (
        "addr",
        "af",
        "destinations",
        "flags",
        "fwmark",
        "key",
        "laddrs",
        "netmask",
        "pe_name",
        "port",
        "protocol",
        "sched",
        "sched_name",
        "stats",
        "timeout",
    )

    def __init__(self, spec: ServiceSpec) -> None:
        k = spec.key
        self.key = k
        self.af = k.af
        self.protocol = k.protocol
        self.addr = k.addr
        self.port = k.port
        self.fwmark = k.fwmark
        self.sched_name = spec.sched_name
        self.flags = spec.flags
        self.timeout = spec.timeout
        self.netmask = spec.netmask if spec.netmask is not None else default_netmask(k.af)
        self.pe_name = spec.pe_name
        self.destinations: list[Dest] = []
        self.sched: Scheduler | None = None
        self.stats = Stats()
        self.laddrs: list[Address] = []

    @property
    def persistent(self) -> bool:
        return bool(self.flags & SVC_F_PERSISTENT)

    @property
    def num_dests(self) -> int:
        return len(self.destinations)

    def find_dest(self, addr: Address, port: int) -> Dest | None:
        for d in self.destinations:
            if d.port == port and d.addr == addr:
                return d
        return None

    def spec(self) -> ServiceSpec:
        return ServiceSpec(
            self.key, self.sched_name, self.flags, self.timeout, self.netmask, self.pe_name
        )

    def __repr__(self) -> str:
        if self.fwmark:
            return f"Service(fwm {self.fwmark} {self.sched_name})"
        return f"Service({self.protocol} {self.addr}:{self.port} {self.sched_name})"


def default_netmask(af: int) -> int:
    return DEFAULT_NETMASK_V4 if af == AF_INET else DEFAULT_NETMASK_V6


class Packet:
    """What a scheduler may look at in the packet that asks for a new connection.

    ``saddr``/``sport`` are the client's, ``daddr``/``dport`` the virtual address
    the packet was sent to (it may differ from the service address for fwmark
    services).
    """

    __slots__ = ("af", "daddr", "dport", "protocol", "saddr", "sport")

    def __init__(
        self, protocol: int, saddr: Address, sport: int, daddr: Address, dport: int
    ) -> None:
        self.protocol = protocol
        self.saddr = saddr
        self.sport = sport
        self.daddr = daddr
        self.dport = dport
        self.af = af_of(saddr)

    def __repr__(self) -> str:
        return f"Packet({self.protocol} {self.saddr}:{self.sport} -> {self.daddr}:{self.dport})"
