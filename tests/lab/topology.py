"""Lab topology: nodes, LANs (links), routes, sysctls and offload policy, validated up front.

A ``Topology`` is a pure description; ``tests.lab.Lab`` turns it into network namespaces.
Each node becomes a namespace.  Each LAN becomes either one veth pair (exactly two members)
or a Linux bridge living in the lab's private "switch" namespace with one veth per member
(any other member count).  On every node the LAN's interface is named after the LAN itself,
so a LAN name must be a valid interface name (at most 15 characters).

Members are written ``"node:addr/len"``; several addresses may be given separated by commas
(``"director:10.0.0.1/24,10.0.0.100/24"``), or none at all (``"sniffer"``).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

IFNAMSIZ = 16  # kernel limit including the trailing NUL: names hold at most 15 characters
NODE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")
LAN_RE = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_-]{{0,{IFNAMSIZ - 2}}}")
RESERVED_IFNAMES = frozenset({"lo", "all", "default"})

Address = ipaddress.IPv4Interface | ipaddress.IPv6Interface


@dataclass(frozen=True)
class Member:
    """One node's attachment to one LAN: its position (1-based) and its addresses."""

    node: str
    lan: str
    index: int
    addresses: tuple[Address, ...]


def parse_member(lan: str, index: int, text: str) -> Member:
    node, _, addrs = text.partition(":")
    node = node.strip()
    addresses: list[Address] = []
    for a in filter(None, (s.strip() for s in addrs.split(","))):
        try:
            addresses.append(ipaddress.ip_interface(a))
        except ValueError as e:
            raise ValueError(f"LAN {lan!r}: bad address {a!r} for {node!r}: {e}") from None
    return Member(node=node, lan=lan, index=index, addresses=tuple(addresses))


@dataclass(frozen=True)
class Topology:
    """What to build: ``nodes``, ``lans`` (name -> members), per-node ``routes`` (arguments of
    ``ip route add``) and ``sysctls``, ``offload`` (False: ethtool turns tx/rx checksumming,
    TSO, GSO and GRO off on every lab interface) and ``ipv6`` (None: enabled only when some
    member has an IPv6 address; disabled IPv6 keeps captures free of RS/MLD/DAD chatter)."""

    nodes: Sequence[str]
    lans: Mapping[str, Sequence[str]] = field(default_factory=dict)
    routes: Mapping[str, Sequence[str]] = field(default_factory=dict)
    sysctls: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    offload: bool = True
    ipv6: bool | None = None

    def __post_init__(self) -> None:
        if isinstance(self.nodes, str):
            raise TypeError("nodes must be a sequence of names, not a string")
        seen: set[str] = set()
        for n in self.nodes:
            if not NODE_RE.fullmatch(n):
                raise ValueError(f"bad node name {n!r} (letters, digits, '_', '-'; <= 32)")
            if n in seen:
                raise ValueError(f"node {n!r} listed twice")
            seen.add(n)
        for lan, members in self.lans.items():
            if not LAN_RE.fullmatch(lan) or lan in RESERVED_IFNAMES:
                raise ValueError(
                    f"bad LAN name {lan!r}: it names interfaces, so letters, digits, '_', '-', "
                    f"at most {IFNAMSIZ - 1} characters, not {sorted(RESERVED_IFNAMES)}"
                )
            if isinstance(members, str) or not members:
                raise ValueError(f"LAN {lan!r} needs a list of members")
        on_lan: set[tuple[str, str]] = set()
        for m in self.members:
            if m.node not in seen:
                raise ValueError(f"LAN {m.lan!r}: unknown node {m.node!r}")
            if (m.node, m.lan) in on_lan:
                raise ValueError(f"LAN {m.lan!r}: node {m.node!r} listed twice")
            on_lan.add((m.node, m.lan))
        for what, table in (("routes", self.routes), ("sysctls", self.sysctls)):
            for n in table:
                if n not in seen:
                    raise ValueError(f"{what}: unknown node {n!r}")
        for n, routes in self.routes.items():
            if isinstance(routes, str):
                raise ValueError(f"routes of {n!r} must be a list of strings")

    @cached_property
    def members(self) -> tuple[Member, ...]:
        """Every (node, LAN) attachment, LAN by LAN in declaration order."""
        return tuple(
            parse_member(lan, i, text)
            for lan, members in self.lans.items()
            for i, text in enumerate(members, start=1)
        )

    def member(self, node: str, lan: str) -> Member:
        for m in self.members:
            if m.node == node and m.lan == lan:
                return m
        if node not in self.nodes:
            raise KeyError(f"unknown node {node!r}")
        raise KeyError(f"node {node!r} is not on LAN {lan!r}")

    def members_of(self, lan: str) -> tuple[Member, ...]:
        return tuple(m for m in self.members if m.lan == lan)

    def lans_of(self, node: str) -> tuple[Member, ...]:
        return tuple(m for m in self.members if m.node == node)

    def bridged(self, lan: str) -> bool:
        """A LAN of exactly two members is a plain veth pair; any other count gets a bridge."""
        return len(self.lans[lan]) != 2

    @property
    def wants_ipv6(self) -> bool:
        if self.ipv6 is not None:
            return self.ipv6
        return any(a.version == 6 for m in self.members for a in m.addresses)
