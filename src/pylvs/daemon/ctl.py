"""Control operations: JSON requests in, engine changes out (no HTTP here).

Every request is validated into engine specs first; the engine refuses with
libipvs texts and changes nothing.  ``Control.batch`` applies a list of
operations all or nothing (pylvsadm -R).  The API server (``api.py``) is a
thin HTTP wrapper around this class.
"""

from __future__ import annotations

import errno
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

from pylvs.core import errors
from pylvs.core.engine import Engine
from pylvs.core.errors import IPVSError
from pylvs.core.model import (
    AF_INET,
    AF_INET6,
    DEFAULT_PERSISTENCE,
    SVC_F_ONEPACKET,
    SVC_F_PERSISTENT,
    SVC_F_SCHED1,
    SVC_F_SCHED2,
    SVC_F_SCHED3,
    TUN_F_CSUM,
    TUN_F_NOCSUM,
    TUN_F_REMCSUM,
    Address,
    DestSpec,
    Fwd,
    ServiceKey,
    ServiceSpec,
    TunType,
)
from pylvs.core.table import Op
from pylvs.daemon import views

SCHED_FLAG_BITS = {
    "flag-1": SVC_F_SCHED1,
    "flag-2": SVC_F_SCHED2,
    "flag-3": SVC_F_SCHED3,
    "sh-fallback": SVC_F_SCHED1,
    "sh-port": SVC_F_SCHED2,
    "mh-fallback": SVC_F_SCHED1,
    "mh-port": SVC_F_SCHED2,
}
PROXY_PROTOCOLS = ("", "v1", "v2")


class RequestError(IPVSError):
    """A request that is malformed before the engine sees it (HTTP 400)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, errno.EINVAL)


@dataclass(frozen=True)
class Policy:
    """What the data plane allows: its default forwarding method and the ones it refuses."""

    default_fwd: Fwd = Fwd.DROUTE
    refused_fwd: frozenset[Fwd] = frozenset()
    refused_message: str = ""


# -- parsing helpers -----------------------------------------------------------


def _get(d: Mapping[str, Any], name: str, kind: type, default: Any) -> Any:
    v = d.get(name, default)
    if kind is int and (isinstance(v, bool) or not isinstance(v, int)):
        raise RequestError(f"'{name}' must be an integer")
    if kind is str and not isinstance(v, str):
        raise RequestError(f"'{name}' must be a string")
    if kind is bool and not isinstance(v, bool):
        raise RequestError(f"'{name}' must be true or false")
    if kind is list and not isinstance(v, list):
        raise RequestError(f"'{name}' must be a list")
    return v


def _addr(text: object, what: str) -> Address:
    if not isinstance(text, str):
        raise RequestError(f"'{what}' must be an address string")
    try:
        return ip_address(text.strip("[]"))
    except ValueError:
        raise RequestError(f"bad {what}: {text!r}") from None


def _port(v: object, what: str = "port") -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 65535:
        raise RequestError(f"'{what}' must be an integer 0..65535")
    return v


def _require_object(body: object) -> Mapping[str, Any]:
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object")
    return body


_SID = re.compile(r"^(tcp|udp|sctp):(\[[0-9A-Fa-f:.]+\]|[0-9.]+):(\d{1,5})$")
_FWM = re.compile(r"^fwmark(6?):(\d{1,10})$")


def parse_sid(sid: str) -> ServiceKey:
    """A service id in API paths: tcp:10.0.0.1:80, udp:[2001:db8::1]:53, fwmark:5, fwmark6:5."""
    m = _FWM.match(sid)
    if m:
        mark = int(m.group(2))
        if not 0 < mark <= 0xFFFFFFFF:
            raise RequestError(f"bad firewall mark in {sid!r}")
        return ServiceKey.mark(mark, AF_INET6 if m.group(1) else AF_INET)
    m = _SID.match(sid)
    if not m:
        raise RequestError(f"bad service id {sid!r} (tcp:ADDR:PORT, udp:[ADDR6]:PORT, fwmark:N)")
    proto = views.PROTO_BY_NAME[m.group(1)]
    addr = _addr(m.group(2), "service address")
    if (":" in m.group(2)) != isinstance(addr, IPv6Address):
        raise RequestError(f"bad service id {sid!r}: IPv6 addresses go in brackets")
    return ServiceKey.inet(proto, addr, _port(int(m.group(3))))


def format_sid(key: ServiceKey) -> str:
    if key.fwmark:
        return f"fwmark{'6' if key.af == AF_INET6 else ''}:{key.fwmark}"
    a = f"[{key.addr}]" if isinstance(key.addr, IPv6Address) else str(key.addr)
    return f"{views.PROTO_NAMES[key.protocol]}:{a}:{key.port}"  # type: ignore[index]


def parse_did(did: str) -> tuple[Address, int]:
    """A real server id in API paths: 10.0.0.2:80 or [2001:db8::2]:80."""
    m = re.match(r"^(\[[0-9A-Fa-f:.]+\]|[0-9.]+):(\d{1,5})$", did)
    if not m:
        raise RequestError(f"bad real server id {did!r} (ADDR:PORT or [ADDR6]:PORT)")
    return _addr(m.group(1), "real server address"), _port(int(m.group(2)))


def service_key(d: Mapping[str, Any]) -> ServiceKey:
    fwmark = _get(d, "fwmark", int, 0)
    fam = _get(d, "family", str, "")
    if fam not in ("", "inet", "inet6"):
        raise RequestError("'family' must be inet or inet6")
    if fwmark:
        if not 0 < fwmark <= 0xFFFFFFFF:
            raise RequestError("'fwmark' must be 1..4294967295")
        return ServiceKey.mark(fwmark, AF_INET6 if fam == "inet6" else AF_INET)
    proto = _get(d, "protocol", str, "")
    if proto not in views.PROTO_BY_NAME:
        raise RequestError("'protocol' must be tcp, udp or sctp (or give 'fwmark')")
    addr = _addr(d.get("address"), "address")
    if fam and (fam == "inet6") != isinstance(addr, IPv6Address):
        raise RequestError("'family' does not match the address")
    return ServiceKey.inet(views.PROTO_BY_NAME[proto], addr, _port(d.get("port", 0)))


def service_spec(d: Mapping[str, Any]) -> ServiceSpec:
    key = service_key(d)
    flags = 0
    if _get(d, "persistent", bool, False):
        flags |= SVC_F_PERSISTENT
    if _get(d, "ops", bool, False):
        flags |= SVC_F_ONEPACKET
    for name in _get(d, "sched_flags", list, []):
        if name not in SCHED_FLAG_BITS:
            raise RequestError(f"unknown scheduler flag {name!r}")
        flags |= SCHED_FLAG_BITS[name]
    timeout = _get(d, "timeout", int, DEFAULT_PERSISTENCE if flags & SVC_F_PERSISTENT else 0)
    netmask = d.get("netmask")
    if netmask is not None:
        if isinstance(netmask, str):
            if key.af == AF_INET6:
                raise RequestError("IPv6 'netmask' is a prefix length")
            try:
                netmask = int(IPv4Address(netmask))
            except ValueError:
                raise RequestError(f"bad netmask {netmask!r}") from None
        elif isinstance(netmask, bool) or not isinstance(netmask, int):
            raise RequestError("'netmask' must be an integer or a dotted IPv4 mask")
    return ServiceSpec(
        key,
        _get(d, "sched_name", str, "wlc"),
        flags,
        timeout,
        netmask,
        _get(d, "pe_name", str, ""),
    )


def dest_spec(d: Mapping[str, Any], policy: Policy) -> DestSpec:
    addr = _addr(d.get("address"), "address")
    fwd_name = d.get("fwd_method")
    if fwd_name is None:
        fwd = policy.default_fwd
    else:
        if fwd_name not in views.FWD_BY_NAME or fwd_name == "bypass":
            raise RequestError("'fwd_method' must be masq, local, tunnel, droute or fullnat")
        fwd = views.FWD_BY_NAME[fwd_name]
    if fwd in policy.refused_fwd:
        raise IPVSError(policy.refused_message, errno.EOPNOTSUPP)
    tun_name = _get(d, "tun_type", str, "ipip")
    if tun_name not in views.TUN_BY_NAME:
        raise RequestError("'tun_type' must be ipip, gue or gre")
    tun_flags = _get(d, "tun_flags", int, TUN_F_NOCSUM)
    if tun_flags not in (TUN_F_NOCSUM, TUN_F_CSUM, TUN_F_REMCSUM):
        raise RequestError("'tun_flags' must be 0 (nocsum), 1 (csum) or 2 (remcsum)")
    pp = _get(d, "proxy_protocol", str, "")
    if pp not in PROXY_PROTOCOLS:
        raise RequestError("'proxy_protocol' must be v1, v2 or empty")
    extra = {"proxy_protocol": pp} if pp else {}
    return DestSpec(
        addr,
        _port(d.get("port", 0)),
        fwd,
        _get(d, "weight", int, 1),
        _get(d, "u_thresh", int, 0),
        _get(d, "l_thresh", int, 0),
        TunType(views.TUN_BY_NAME[tun_name]),
        _port(d.get("tun_port", 0), "tun_port"),
        tun_flags,
        extra,
    )


@dataclass
class SyncDaemon:
    state: str
    mcast_ifn: str = ""
    syncid: int = 0
    sync_maxlen: int = 1472
    mcast_group: str = "224.0.0.81"
    mcast_port: int = 8848
    mcast_ttl: int = 1

    def as_json(self) -> views.DaemonJSON:
        return {
            "state": self.state,
            "mcast_ifn": self.mcast_ifn,
            "syncid": self.syncid,
            "sync_maxlen": self.sync_maxlen,
            "mcast_group": self.mcast_group,
            "mcast_port": self.mcast_port,
            "mcast_ttl": self.mcast_ttl,
        }


class Control:
    """The operations behind the API, in the daemon's event loop (single-threaded)."""

    def __init__(
        self,
        engine: Engine,
        policy: Policy,
        clock: Callable[[], float],
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.engine = engine
        self.policy = policy
        self.clock = clock
        self.on_change = on_change
        self.daemons: dict[str, SyncDaemon] = {}

    @property
    def table(self) -> Any:
        return self.engine.table

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    # -- reads ----------------------------------------------------------------
    def services(self) -> list[views.ServiceJSON]:
        est = self.engine.est
        return [views.service_json(s, est) for s in self.engine.table]

    def service(self, sid: str) -> views.ServiceJSON:
        svc = self.engine.table.get(parse_sid(sid))
        if svc is None:
            raise errors.no_such_service()
        return views.service_json(svc, self.engine.est)

    def connections(self) -> list[views.ConnJSON]:
        now = self.clock()
        return [views.conn_json(c, now) for c in self.engine.conns]

    def timeouts(self) -> views.TimeoutJSON:
        tcp, tcpfin, udp = self.engine.conns.timeouts.get()
        return {"tcp": tcp, "tcpfin": tcpfin, "udp": udp}

    def stats(self) -> dict[str, Any]:
        est = self.engine.est.get("total")
        return {
            "stats": views.stats_json(self.engine.table.tot_stats),
            "rates": views.rates_json(est),
            "connections": len(self.engine.conns),
            "services": len(self.engine.table),
        }

    # -- writes -----------------------------------------------------------------
    def op_from_json(self, d: object) -> Op:
        """One change as ``{"op": name, ...}`` (the shape of a batch element)."""
        d = _require_object(d)
        name = d.get("op")
        if name == "add_service":
            return Op("add_service", (service_spec(_require_object(d.get("service"))),))
        if name == "edit_service":
            return Op("edit_service", (service_spec(_require_object(d.get("service"))),))
        if name == "del_service":
            return Op("del_service", (service_key(_require_object(d.get("service"))),))
        if name == "flush":
            return Op("flush", ())
        if name in ("add_dest", "edit_dest"):
            key = service_key(_require_object(d.get("service")))
            return Op(name, (key, dest_spec(_require_object(d.get("dest")), self.policy)))
        if name == "del_dest":
            key = service_key(_require_object(d.get("service")))
            dd = _require_object(d.get("dest"))
            return Op(
                "del_dest", (key, _addr(dd.get("address"), "address"), _port(dd.get("port", 0)))
            )
        if name in ("add_laddr", "del_laddr"):
            key = service_key(_require_object(d.get("service")))
            return Op(name, (key, _addr(d.get("laddr"), "laddr")))
        if name == "zero":
            svc = d.get("service")
            return Op("zero", (service_key(_require_object(svc)) if svc is not None else None,))
        raise RequestError(f"unknown op {name!r}")

    def apply(self, op: Op) -> None:
        if op.name == "zero":
            self.engine.zero(*op.args)  # type: ignore[arg-type]
        else:
            getattr(self.engine.table, op.name)(*op.args)
        self._changed()

    def batch(self, ops: list[Op]) -> None:
        """All or nothing; ``zero`` operations run after the rule changes succeed."""
        rules = [o for o in ops if o.name != "zero"]
        self.engine.table.apply_batch(rules)
        for o in ops:
            if o.name == "zero":
                self.engine.zero(*o.args)  # type: ignore[arg-type]
        self._changed()

    def set_timeouts(self, body: object) -> views.TimeoutJSON:
        d = _require_object(body)
        vals = [_get(d, k, int, 0) for k in ("tcp", "tcpfin", "udp")]
        self.engine.conns.timeouts.set(*vals)
        return self.timeouts()

    def start_daemon(self, body: object) -> views.DaemonJSON:
        d = _require_object(body)
        state = d.get("state")
        if state not in ("master", "backup"):
            raise RequestError("'state' must be master or backup")
        if state in self.daemons:
            raise IPVSError(errors.DAEMON_RUNNING, errno.EEXIST)
        group = _get(d, "mcast_group", str, "224.0.0.81")
        ga = _addr(group, "mcast_group")
        if not ga.is_multicast:
            raise RequestError("'mcast_group' must be a multicast address")
        ttl = _get(d, "mcast_ttl", int, 1)
        maxlen = _get(d, "sync_maxlen", int, 0)  # 0: the kernel's default for the interface
        syncid = _get(d, "syncid", int, 0)
        if not 1 <= ttl <= 255 or not 0 <= syncid <= 255 or not 0 <= maxlen <= 65535:
            raise RequestError("mcast_ttl 1..255, syncid 0..255, sync_maxlen 0..65535")
        sd = SyncDaemon(
            state,
            _get(d, "mcast_ifn", str, ""),
            syncid,
            maxlen,
            str(ga),
            _port(d.get("mcast_port", 8848), "mcast_port"),
            ttl,
        )
        from pylvs.daemon import sync  # the sync daemons' sockets (pylvs/daemon/sync.py)

        sync.start(self, sd)  # fills in mcast_ifn and sync_maxlen as the kernel does
        self.daemons[state] = sd
        return sd.as_json()

    def stop_daemon(self, state: str) -> None:
        if state not in ("master", "backup"):
            raise RequestError("state must be master or backup")
        if self.daemons.pop(state, None) is None:
            raise IPVSError(errors.NO_DAEMON, errno.ESRCH)
        from pylvs.daemon import sync

        sync.stop(self, state)
