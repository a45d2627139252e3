"""The rule table (kernel ip_vs_ctl.c): services, dests, FULLNAT local addresses.

Every mutation validates first and changes nothing when it refuses: the
error carries the text libipvs's ipvs_strerror() gives for the kernel's
answer.  ``apply_batch`` makes a list of changes all-or-nothing (what
``ipvsadm -R`` should have been).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv6Address

from pylvs.core import destlist, errors
from pylvs.core.errors import IPVSError
from pylvs.core.model import (
    AF_INET6,
    DEST_F_AVAILABLE,
    MAX_FWMARK,
    MAX_WEIGHT,
    SVC_F_PERSISTENT,
    Address,
    Dest,
    DestKey,
    DestSpec,
    Fwd,
    Proto,
    Service,
    ServiceKey,
    ServiceSpec,
    Stats,
    TunType,
    af_of,
    default_netmask,
)
from pylvs.sched import base as sched_base

SCHED_NONE = "none"  # bind no scheduler: every new connection is refused
KNOWN_PES: frozenset[str] = frozenset()  # no persistence engine (sip) yet
ZERO_PORT_MSG = "Zero port specified for non-persistent service"


def _erange() -> IPVSError:
    return IPVSError(os.strerror(errno.ERANGE), errno.ERANGE)


@dataclass(frozen=True, slots=True)
class Op:
    """One change for ``apply_batch``: ``name`` is a Table method, ``args`` its arguments."""

    name: str
    args: tuple[object, ...]


class Table:
    def __init__(self) -> None:
        self.services: dict[ServiceKey, Service] = {}
        # Hot-path index for find(): (protocol, address, port) and fwmark -> service.
        # (ints: hashing an ipaddress object formats it as text each time)
        self._inet: dict[tuple[int, int, int, int], Service] = {}
        self._fwm: dict[tuple[int, int], Service] = {}
        self.tot_stats = Stats()
        # Deleted dests still referenced by connections (the kernel's dest trash):
        # re-adding the same server to the same service brings back the object.
        self._trash: dict[tuple[ServiceKey, DestKey], Dest] = {}
        self.generation = 0  # bumped on every successful change

    # -- lookups ----------------------------------------------------------
    def __iter__(self) -> Iterator[Service]:
        return iter(self.services.values())

    def __len__(self) -> int:
        return len(self.services)

    def get(self, key: ServiceKey) -> Service | None:
        return self.services.get(key)

    def find(self, protocol: int, vaddr: Address, vport: int, fwmark: int = 0) -> Service | None:
        """ip_vs_service_find(): fwmark first, then <proto, addr, port>, then port 0."""
        if fwmark:
            svc = self._fwm.get((vaddr.version, fwmark))
            if svc is not None:
                return svc
        inet = self._inet
        a = int(vaddr)
        v = vaddr.version
        svc = inet.get((protocol, v, a, vport))
        if svc is None and vport:
            svc = inet.get((protocol, v, a, 0))
        return svc

    def _index(self, svc: Service) -> None:
        if svc.fwmark:
            self._fwm[(6 if svc.af == AF_INET6 else 4, svc.fwmark)] = svc
        else:
            assert svc.addr is not None
            self._inet[(svc.protocol, svc.addr.version, int(svc.addr), svc.port)] = svc

    def _unindex(self, svc: Service) -> None:
        if svc.fwmark:
            self._fwm.pop((6 if svc.af == AF_INET6 else 4, svc.fwmark), None)
        else:
            assert svc.addr is not None
            self._inet.pop((svc.protocol, svc.addr.version, int(svc.addr), svc.port), None)

    def _require(self, key: ServiceKey, missing: Callable[[], IPVSError]) -> Service:
        svc = self.services.get(key)
        if svc is None:
            raise missing()
        return svc

    # -- validation -------------------------------------------------------
    @staticmethod
    def _check_service(spec: ServiceSpec) -> None:
        k = spec.key
        if k.fwmark:
            if not 0 < k.fwmark <= MAX_FWMARK or k.addr is not None:
                raise errors.invalid("bad fwmark service key")
        else:
            if k.protocol not in (Proto.TCP, Proto.UDP, Proto.SCTP):
                raise errors.invalid(f"protocol {k.protocol} not supported")
            if k.addr is None or not 0 <= k.port <= 65535:
                raise errors.invalid("bad service address or port")
            if af_of(k.addr) != k.af:
                raise errors.invalid("address family mismatch")
            if k.port == 0 and not spec.flags & SVC_F_PERSISTENT:
                raise IPVSError(ZERO_PORT_MSG, errno.EINVAL)
        if spec.sched_name != SCHED_NONE and sched_base.lookup(spec.sched_name) is None:
            raise errors.sched_not_found()
        if spec.pe_name and spec.pe_name not in KNOWN_PES:
            raise errors.sched_not_found()
        if spec.timeout < 0 or spec.timeout > 0x7FFFFFFF // 1000:
            raise errors.invalid("persistence timeout out of range")
        nm = spec.netmask
        if nm is not None:
            if k.af == AF_INET6 and not 1 <= nm <= 128:
                raise errors.invalid("IPv6 netmask must be a prefix length 1..128")
            if k.af != AF_INET6 and not 0 <= nm <= 0xFFFFFFFF:
                raise errors.invalid("IPv4 netmask out of range")

    @staticmethod
    def _check_dest(svc: Service, spec: DestSpec) -> DestSpec:
        """Validate and normalise a dest spec as ipvsadm and the kernel do."""
        if not 0 <= spec.weight <= MAX_WEIGHT:
            raise _erange()
        if spec.u_thresh < 0 or spec.l_thresh < 0:
            raise _erange()
        if spec.l_thresh > spec.u_thresh:
            raise _erange()
        if not 0 <= spec.port <= 65535 or not 0 <= spec.tun_port <= 65535:
            raise errors.invalid("port out of range")
        addr = spec.addr
        if (
            addr.is_multicast
            or addr.is_unspecified
            or (isinstance(addr, IPv4Address) and addr == IPv4Address("255.255.255.255"))
            or (isinstance(addr, IPv6Address) and addr.is_link_local)
        ):
            raise errors.invalid("real server address is not unicast")
        if af_of(addr) != svc.af and spec.fwd_method != Fwd.TUNNEL:
            raise errors.invalid("mixed address families need tunneling")
        if spec.fwd_method == Fwd.TUNNEL and spec.tun_type == TunType.GUE and spec.tun_port == 0:
            raise errors.invalid("tunnel port is zero")
        if spec.fwd_method not in (Fwd.MASQ, Fwd.LOCALNODE, Fwd.TUNNEL, Fwd.DROUTE, Fwd.FULLNAT):
            raise errors.invalid("bad forwarding method")
        # DR and TUN cannot change the port: the dest port is the service port.
        if not svc.fwmark and spec.fwd_method in (Fwd.DROUTE, Fwd.TUNNEL):
            spec = replace(spec, port=svc.port)
        return spec

    # -- services ---------------------------------------------------------
    def add_service(self, spec: ServiceSpec) -> Service:
        """ip_vs_add_service()."""
        self._check_service(spec)
        if spec.key in self.services:
            raise errors.service_exists()
        svc = Service(spec)
        if spec.sched_name != SCHED_NONE:
            destlist.bind_scheduler(svc, sched_base.create(spec.sched_name))
        self.services[spec.key] = svc
        self._index(svc)
        self._changed()
        return svc

    def edit_service(self, spec: ServiceSpec) -> Service:
        """ip_vs_edit_service(): a scheduler is re-bound only when its name changes."""
        svc = self._require(spec.key, errors.no_such_service)
        self._check_service(spec)
        if spec.sched_name != svc.sched_name or (svc.sched is None) != (
            spec.sched_name == SCHED_NONE
        ):
            new = None if spec.sched_name == SCHED_NONE else sched_base.create(spec.sched_name)
            destlist.replace_scheduler(svc, new, spec.sched_name)
        svc.flags = spec.flags
        svc.timeout = spec.timeout
        svc.netmask = spec.netmask if spec.netmask is not None else default_netmask(svc.af)
        svc.pe_name = spec.pe_name
        self._changed()
        return svc

    def del_service(self, key: ServiceKey) -> Service:
        svc = self._require(key, errors.no_such_service)
        self._unlink_service(svc)
        self._changed()
        return svc

    def _unlink_service(self, svc: Service) -> None:
        """__ip_vs_del_service(): unbind the scheduler, move every dest to the trash."""
        destlist.unbind_scheduler(svc)
        for dest in list(svc.destinations):
            svc.destinations.remove(dest)
            self._to_trash(svc, dest)
        del self.services[svc.key]
        self._unindex(svc)

    def flush(self) -> None:
        """ip_vs_flush(): delete every service."""
        for svc in list(self.services.values()):
            self._unlink_service(svc)
        self._changed()

    def zero(self, key: ServiceKey | None = None) -> list[Stats]:
        """ip_vs_zero_service() / ip_vs_zero_all(); returns the zeroed counters."""
        if key is None:
            svcs = list(self.services.values())
            zeroed = [self.tot_stats]
        else:
            svcs = [self._require(key, errors.no_such_service)]
            zeroed = []
        for svc in svcs:
            zeroed.append(svc.stats)
            zeroed.extend(d.stats for d in svc.destinations)
        for st in zeroed:
            st.zero()
        return zeroed

    # -- dests ------------------------------------------------------------
    def add_dest(self, key: ServiceKey, spec: DestSpec) -> Dest:
        """ip_vs_add_dest(): the new dest goes to the head of the list."""
        svc = self._require(key, errors.service_not_defined)
        spec = self._check_dest(svc, spec)
        if svc.find_dest(spec.addr, spec.port) is not None:
            raise errors.dest_exists()
        old = self._trash.pop((svc.key, spec.key), None)
        if old is not None:
            # ip_vs_trash_get_dest(): bring the old object (and its counts) back.
            old.svc = svc
            svc.destinations.insert(0, old)
            old.apply(spec)
            old.last_weight = spec.weight
            if svc.sched is not None:
                svc.sched.add_dest(svc, old)
            dest = old
        else:
            dest = destlist.link_dest(svc, spec)
        self._changed()
        return dest

    def edit_dest(self, key: ServiceKey, spec: DestSpec) -> Dest:
        svc = self._require(key, errors.service_not_defined)
        spec = self._check_dest(svc, spec)
        dest = svc.find_dest(spec.addr, spec.port)
        if dest is None:
            raise errors.no_such_dest()
        destlist.update_dest(svc, dest, spec)
        self._changed()
        return dest

    def del_dest(self, key: ServiceKey, addr: Address, port: int) -> Dest:
        svc = self._require(key, errors.service_not_defined)
        dest = svc.find_dest(addr, port)
        if dest is None:
            raise errors.no_such_dest()
        destlist.unlink_dest(svc, dest)
        self._to_trash(svc, dest)
        self._changed()
        return dest

    def _to_trash(self, svc: Service, dest: Dest) -> None:
        dest.flags &= ~DEST_F_AVAILABLE
        if dest.activeconns or dest.inactconns or dest.persistconns:
            self._trash[(svc.key, dest.key)] = dest

    def purge_trash(self) -> None:
        """Forget deleted dests that no connection references any more."""
        for k, d in list(self._trash.items()):
            if not (d.activeconns or d.inactconns or d.persistconns):
                del self._trash[k]

    # -- FULLNAT local addresses -------------------------------------------
    def add_laddr(self, key: ServiceKey, addr: Address) -> None:
        svc = self._require(key, errors.service_not_defined)
        if addr in svc.laddrs:
            raise IPVSError(errors.LADDR_EXISTS, errno.EEXIST)
        if af_of(addr) != svc.af:
            raise errors.invalid("local address family differs from the service's")
        svc.laddrs.append(addr)
        self._changed()

    def del_laddr(self, key: ServiceKey, addr: Address) -> None:
        svc = self._require(key, errors.service_not_defined)
        if addr not in svc.laddrs:
            raise IPVSError(errors.NO_SUCH_LADDR, errno.ENOENT)
        svc.laddrs.remove(addr)
        self._changed()

    def get_laddrs(self, key: ServiceKey) -> list[Address]:
        return list(self._require(key, errors.service_not_defined).laddrs)

    # -- whole-table views --------------------------------------------------
    def specs(self) -> list[tuple[ServiceSpec, list[DestSpec], list[Address]]]:
        """Everything needed to rebuild the rules, in kernel list order."""
        out = []
        for svc in self.services.values():
            out.append((svc.spec(), [d.spec() for d in svc.destinations], list(svc.laddrs)))
        return out

    @classmethod
    def from_specs(
        cls, specs: Iterable[tuple[ServiceSpec, list[DestSpec], list[Address]]]
    ) -> Table:
        t = cls()
        for sspec, dspecs, laddrs in specs:
            t.add_service(sspec)
            for ds in reversed(dspecs):  # re-adding at the head restores the order
                t.add_dest(sspec.key, ds)
            for la in laddrs:
                t.add_laddr(sspec.key, la)
        return t

    def apply_batch(self, ops: Iterable[Op]) -> None:
        """Apply every change or none: validate on a shadow copy of the rules first.

        On failure the IPVSError gets ``index`` (0-based position of the
        failing change) and the table is untouched.
        """
        ops = list(ops)
        shadow = Table.from_specs(self.specs())
        for i, op in enumerate(ops):
            try:
                getattr(shadow, op.name)(*op.args)
            except IPVSError as e:
                e.index = i
                raise
        for op in ops:
            getattr(self, op.name)(*op.args)

    def _changed(self) -> None:
        self.generation += 1
        if self._trash:
            self.purge_trash()
