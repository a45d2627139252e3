"""GET /metrics: node_exporter's IPVS metrics, and pylvs_* for what it lacks.

node_exporter's IPVS collector (collector/ipvs_linux.go, reading
/proc/net/ip_vs_stats and /proc/net/ip_vs through prometheus/procfs) is
what Grafana dashboards for LVS are built on, so the same names, types,
help texts and labels come first:

* ``node_ipvs_{connections,incoming_packets,outgoing_packets,incoming_bytes,
  outgoing_bytes}_total``: counters without labels, the totals of
  /proc/net/ip_vs_stats (the table's ``tot_stats``; ``-Z`` zeroes them, as
  it does in the kernel);
* ``node_ipvs_backend_{connections_active,connections_inactive,weight}``:
  gauges per (virtual service, real server) with the labels
  ``local_address, local_port, remote_address, remote_port, proto,
  local_mark`` formatted as procfs hands them over: addresses as Go's
  ``net.IP.String()`` writes them (IPv6 compressed), ports in decimal,
  ``proto`` the protocol column of /proc/net/ip_vs (``TCP``, ``UDP``, or
  ``FWM`` for a firewall-mark service, whose ``local_mark`` is the mark as
  the kernel prints it, ``%08X``, with ``local_address`` empty and
  ``local_port`` 0); ``local_mark`` is empty otherwise.  Series with the same
  labels are summed, as node_exporter does.

Deliberate difference: an SCTP service has ``proto="SCTP"`` (procfs skips
the SCTP lines of /proc/net/ip_vs and files their real servers under the
service before them).

``pylvs_*`` (service labels: the first four above; backend labels: all six):

* ``pylvs_{service,backend}_{connections,incoming_packets,outgoing_packets,
  incoming_bytes,outgoing_bytes}_total``: the counters of ``pylvsadm -L --stats``;
* ``pylvs_{service,backend}_{connections,incoming_packets,outgoing_packets,
  incoming_bytes,outgoing_bytes}_per_second``: the rate estimator, the numbers
  of ``pylvsadm -L --rate`` (unlabelled ``pylvs_*_per_second``: the totals);
* ``pylvs_connection_entries``: the connection table's size;
* ``pylvs_backend_health_up``, ``pylvs_backend_health_last_change_timestamp_seconds``
  (with health checking, ``pylvsd -f``; servers removed while down included);
* ``pylvs_vrrp_state`` (keepalived's numbers), ``pylvs_vrrp_priority``,
  ``pylvs_vrrp_last_change_timestamp_seconds`` {instance, interface, vrid};
* ``pylvs_sync_total`` {counter}; ``pylvs_dataplane_drops_total`` {dataplane,
  reason}, ``pylvs_dataplane_counter_total`` / ``pylvs_dataplane_current``
  {dataplane, name} for the data plane's other counters;
* ``pylvs_config_reloads_total`` {result: success|failure},
  ``pylvs_events_total`` {kind}, ``pylvs_info`` {dataplane, version}.

Speed: a scrape of 1,000 services x 10 real servers (about 140,000 samples)
must stay well under 100 ms.  prometheus_client's ``generate_latest`` formats
every sample in Python (tens of microseconds each), so /metrics is written by
:meth:`IPVSCollector.exposition`: the label text of every series is built
once per change of the table, each metric's lines are one cached ``%``
template, and a scrape is a few list comprehensions and one C-level
formatting per metric.  Integers are written as integers (``42``, not
``42.0``); otherwise the text is what ``generate_latest`` writes for the same
collector (:meth:`collect` is a regular prometheus_client collector).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv6Address
from operator import attrgetter
from typing import Any, NamedTuple, cast

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from pylvs.core.est import U64, Estimator
from pylvs.core.model import Address, Dest, Proto, Service, ServiceKey, Stats
from pylvs.daemon.ctl import Control, parse_sid
from pylvs.web import (
    VRRP_STATES,
    CountersProvider,
    HealthProvider,
    HealthState,
    SyncProvider,
    VrrpProvider,
)
from pylvs.web.events import RELOAD, RELOAD_FAILED, Events

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# node_exporter's label names, in the order of its descriptors.
BACKEND_LABELS = (
    "local_address",
    "local_port",
    "remote_address",
    "remote_port",
    "proto",
    "local_mark",
)
SERVICE_LABELS = ("local_address", "local_port", "proto", "local_mark")
PROTO_COLUMN = {Proto.TCP: "TCP", Proto.UDP: "UDP", Proto.SCTP: "SCTP"}

# (suffix, help) of the five kstats counters, in ip_vs_stats order.
NODE_TOTALS = (
    ("connections", "The total number of connections made."),
    ("incoming_packets", "The total number of incoming packets."),
    ("outgoing_packets", "The total number of outgoing packets."),
    ("incoming_bytes", "The total amount of incoming data."),
    ("outgoing_bytes", "The total amount of outgoing data."),
)
STAT_FIELDS = ("conns", "inpkts", "outpkts", "inbytes", "outbytes")
# (estimator field, metric suffix, what, rounding, shift) as ip_vs_read_estimator() reads them.
RATES = (
    ("cps", "connections_per_second", "new connections per second", 0x1FF, 10),
    ("inpps", "incoming_packets_per_second", "incoming packets per second", 0x1FF, 10),
    ("outpps", "outgoing_packets_per_second", "outgoing packets per second", 0x1FF, 10),
    ("inbps", "incoming_bytes_per_second", "incoming bytes per second", 0xF, 5),
    ("outbps", "outgoing_bytes_per_second", "outgoing bytes per second", 0xF, 5),
)
GAUGE_COUNTERS = frozenset({"relays"})  # data plane "counters" that are current values

_ZERO_EST = Estimator(Stats())


class LabelSet(NamedTuple):
    values: tuple[str, ...]  # in the family's label name order
    text: str  # the exposition's {name="value",...}, names sorted ("" without labels)


NO_LABELS = LabelSet((), "")


def escape(v: str) -> str:
    return v.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def labelset(names: Sequence[str], values: Sequence[str]) -> LabelSet:
    pairs = sorted(zip(names, values, strict=True))
    return LabelSet(tuple(values), "{" + ",".join(f'{k}="{escape(v)}"' for k, v in pairs) + "}")


@dataclass(slots=True)
class Family:
    """One metric: the sample name (counters end in _total), its series and values."""

    name: str
    kind: str  # counter | gauge
    help: str
    labelnames: tuple[str, ...]
    labels: Sequence[LabelSet]
    values: Sequence[int] | Sequence[float]
    floats: bool = False


def go_address(addr: Address | None) -> str:
    """An address as Go's net.IP.String() writes it (IPv4-mapped IPv6 as IPv4)."""
    if addr is None:
        return ""
    if isinstance(addr, IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)


def service_label_values(key: ServiceKey) -> tuple[str, str, str, str]:
    """(local_address, local_port, proto, local_mark) of a service, as procfs parses them."""
    if key.fwmark:
        return ("", "0", "FWM", f"{key.fwmark:08X}")
    return (go_address(key.addr), str(key.port), PROTO_COLUMN.get(Proto(key.protocol), "IP"), "")


def backend_label_values(svc: Sequence[str], addr: str, port: int) -> tuple[str, ...]:
    local_address, local_port, proto, local_mark = svc
    return (local_address, local_port, addr, str(port), proto, local_mark)


class IPVSCollector(Collector):
    """The /metrics collector of one pylvsd: reads the engine behind ``control`` and
    the providers at every scrape (no state of its own but caches of label text)."""

    def __init__(
        self,
        control: Control,
        *,
        dataplane: str = "",
        counters: CountersProvider | None = None,
        health: HealthProvider | None = None,
        vrrp: VrrpProvider | None = None,
        sync: SyncProvider | None = None,
        events: Events | None = None,
        version: str = "",
    ) -> None:
        self.control = control
        self.dataplane = dataplane
        self.counters = counters
        self.health = health
        self.vrrp = vrrp
        self.sync = sync
        self.events = events
        self.version = version
        self._gen = -1
        self._svcs: list[Service] = []
        self._svc_ls: list[LabelSet] = []
        self._dests: list[Dest] = []
        self._dest_ls: list[LabelSet] = []
        self._fold: list[int] | None = None  # dest position -> series, when labels repeat
        self._svc_cache: dict[ServiceKey, LabelSet] = {}
        self._dest_cache: dict[tuple[ServiceKey, Address, int], LabelSet] = {}
        self._svc_stats: list[Stats] = []
        self._dest_stats: list[Stats] = []
        self._templates: dict[str, tuple[Sequence[LabelSet], bytes]] = {}
        self._ests: tuple[list[Estimator], list[Estimator]] | None = None

    # -- the series of the table (rebuilt when the table changes) --------------------------
    def _refresh(self) -> None:
        table = self.control.engine.table
        if table.generation == self._gen:
            return
        svc_cache: dict[ServiceKey, LabelSet] = {}
        dest_cache: dict[tuple[ServiceKey, Address, int], LabelSet] = {}
        svcs: list[Service] = []
        svc_ls: list[LabelSet] = []
        dests: list[Dest] = []
        dest_ls: list[LabelSet] = []
        for svc in table:
            key = svc.key
            sl = self._svc_cache.get(key) or labelset(SERVICE_LABELS, service_label_values(key))
            svc_cache[key] = sl
            svcs.append(svc)
            svc_ls.append(sl)
            sv = sl.values
            for d in svc.destinations:
                dk = (key, d.addr, d.port)
                dl = self._dest_cache.get(dk)
                if dl is None:
                    values = backend_label_values(sv, go_address(d.addr), d.port)
                    dl = labelset(BACKEND_LABELS, values)
                dest_cache[dk] = dl
                dests.append(d)
                dest_ls.append(dl)
        self._fold = None
        if len({dl.text for dl in dest_ls}) != len(dest_ls):
            first: dict[str, int] = {}
            fold = [first.setdefault(dl.text, len(first)) for dl in dest_ls]
            uniq: dict[str, LabelSet] = {}
            for dl in dest_ls:
                uniq.setdefault(dl.text, dl)
            dest_ls = list(uniq.values())
            self._fold = fold
        self._svcs, self._svc_ls, self._dests, self._dest_ls = svcs, svc_ls, dests, dest_ls
        self._svc_stats = [s.stats for s in svcs]
        self._dest_stats = [d.stats for d in dests]
        self._svc_cache, self._dest_cache = svc_cache, dest_cache
        self._templates.clear()
        self._ests = None
        self._gen = table.generation

    def _estimators(self) -> tuple[list[Estimator], list[Estimator]]:
        """The estimators of the services and real servers (a zero one for those the engine
        has not started yet: they get theirs at its next tick, and are looked up again)."""
        if self._ests is not None:
            return self._ests
        get = self.control.engine.est.get
        svc = list(map(get, self._svcs))
        dest = list(map(get, self._dests))
        if None in svc or None in dest:
            return [e or _ZERO_EST for e in svc], [e or _ZERO_EST for e in dest]
        done = (cast(list[Estimator], svc), cast(list[Estimator], dest))
        self._ests = done
        return done

    def _folded(self, values: list[int]) -> list[int]:
        fold = self._fold
        if fold is None:
            return values
        out = [0] * len(self._dest_ls)
        for i, v in zip(fold, values, strict=True):
            out[i] += v
        return out

    # -- the metrics --------------------------------------------------------------------
    def families(self) -> list[Family]:
        self._refresh()
        engine = self.control.engine
        out: list[Family] = []
        tot = engine.table.tot_stats
        for (suffix, help_), field in zip(NODE_TOTALS, STAT_FIELDS, strict=True):
            out.append(
                Family(
                    f"node_ipvs_{suffix}_total",
                    "counter",
                    help_,
                    (),
                    (NO_LABELS,),
                    (getattr(tot, field),),
                )
            )
        dests, dls, fold = self._dests, self._dest_ls, self._folded
        out += [
            Family(
                "node_ipvs_backend_connections_active",
                "gauge",
                "The current active connections by local and remote address.",
                BACKEND_LABELS,
                dls,
                fold(fields(dests, "activeconns")),
            ),
            Family(
                "node_ipvs_backend_connections_inactive",
                "gauge",
                "The current inactive connections by local and remote address.",
                BACKEND_LABELS,
                dls,
                fold(fields(dests, "inactconns")),
            ),
            Family(
                "node_ipvs_backend_weight",
                "gauge",
                "The current backend weight by local and remote address.",
                BACKEND_LABELS,
                dls,
                fold(fields(dests, "weight")),
            ),
        ]
        get = engine.est.get
        svc_ests, dest_ests = self._estimators()
        out += self._stats_and_rates(
            "service",
            "virtual service",
            SERVICE_LABELS,
            self._svc_ls,
            self._svc_stats,
            svc_ests,
            None,
        )
        out += self._stats_and_rates(
            "backend",
            "real server of a virtual service",
            BACKEND_LABELS,
            dls,
            self._dest_stats,
            dest_ests,
            fold,
        )
        total = get("total") or _ZERO_EST
        for field, suffix, what, rnd, shift in RATES:
            out.append(
                Family(
                    f"pylvs_{suffix}",
                    "gauge",
                    f"Rate estimator: {what} through every virtual service.",
                    (),
                    (NO_LABELS,),
                    (((getattr(total, field) + rnd) & U64) >> shift,),
                )
            )
        out.append(
            Family(
                "pylvs_connection_entries",
                "gauge",
                "Entries in the connection table (pylvsadm -Lnc), persistence templates included.",
                (),
                (NO_LABELS,),
                (len(engine.conns),),
            )
        )
        out += self._health()
        out += self._vrrp()
        out += self._plain("pylvs_sync", self.sync() if self.sync is not None else None)
        out += self._dataplane()
        out += self._events()
        out.append(
            Family(
                "pylvs_info",
                "gauge",
                "pylvsd's version and data plane (always 1).",
                ("dataplane", "version"),
                (labelset(("dataplane", "version"), (self.dataplane, self.version)),),
                (1,),
            )
        )
        return out

    def _stats_and_rates(
        self,
        kind: str,
        what: str,
        names: tuple[str, ...],
        labels: Sequence[LabelSet],
        stats: list[Stats],
        ests: list[Estimator],
        fold: Callable[[list[int]], list[int]] | None,
    ) -> list[Family]:
        f = fold or (lambda v: v)
        out = []
        for (suffix, help_), field in zip(NODE_TOTALS, STAT_FIELDS, strict=True):
            text = f"{help_[:-1]}, by {what}."
            out.append(
                Family(
                    f"pylvs_{kind}_{suffix}_total",
                    "counter",
                    text,
                    names,
                    labels,
                    f(fields(stats, field)),
                )
            )
        for field, suffix, rate_what, rnd, shift in RATES:
            out.append(
                Family(
                    f"pylvs_{kind}_{suffix}",
                    "gauge",
                    f"Rate estimator (pylvsadm -L --rate): {rate_what} by {what}.",
                    names,
                    labels,
                    f(rates(ests, field, rnd, shift)),
                )
            )
        return out

    def _health(self) -> list[Family]:
        states = self.health() if self.health is not None else None
        if states is None:
            return []
        ls: list[LabelSet] = []
        up: list[int] = []
        since: list[float] = []
        seen: dict[str, int] = {}
        for st in states:
            dl = self._health_labels(st)
            i = seen.get(dl.text)
            if i is not None:  # one real server listed twice: keep the worse state
                up[i] = min(up[i], int(st["up"]))
                since[i] = max(since[i], st["since"])
                continue
            seen[dl.text] = len(ls)
            ls.append(dl)
            up.append(int(st["up"]))
            since.append(float(st["since"]))
        return [
            Family(
                "pylvs_backend_health_up",
                "gauge",
                "1 while the health checks of the real server pass, 0 while they fail.",
                BACKEND_LABELS,
                ls,
                up,
            ),
            Family(
                "pylvs_backend_health_last_change_timestamp_seconds",
                "gauge",
                "When the real server's health state last changed (or checking started).",
                BACKEND_LABELS,
                ls,
                since,
                floats=True,
            ),
        ]

    def _health_labels(self, st: HealthState) -> LabelSet:
        key = parse_sid(st["service"])
        cached = self._svc_cache.get(key)
        sv = cached.values if cached is not None else service_label_values(key)
        addr = st["address"]
        if ":" in addr:
            addr = go_address(IPv6Address(addr))
        return labelset(BACKEND_LABELS, backend_label_values(sv, addr, st["port"]))

    def _vrrp(self) -> list[Family]:
        insts = self.vrrp() if self.vrrp is not None else None
        if insts is None:
            return []
        names = ("instance", "interface", "vrid")
        ls: list[LabelSet] = []
        state: list[int] = []
        prio: list[int] = []
        since: list[float] = []
        for i in insts:
            ls.append(labelset(names, (i["name"], i.get("interface", ""), str(i.get("vrid", "")))))
            state.append(VRRP_STATES.get(i["state"].upper(), 0))
            prio.append(i.get("effective_priority", i.get("priority", 0)))
            since.append(float(i.get("since", 0.0)))
        return [
            Family(
                "pylvs_vrrp_state",
                "gauge",
                "VRRP instance state: 0 INIT, 1 BACKUP, 2 MASTER, 3 FAULT, 98 STOP (keepalived's).",
                names,
                ls,
                state,
            ),
            Family(
                "pylvs_vrrp_priority",
                "gauge",
                "VRRP instance effective priority.",
                names,
                ls,
                prio,
            ),
            Family(
                "pylvs_vrrp_last_change_timestamp_seconds",
                "gauge",
                "When the VRRP instance last changed state.",
                names,
                ls,
                since,
                floats=True,
            ),
        ]

    def _plain(self, prefix: str, counters: Mapping[str, int] | None) -> list[Family]:
        if counters is None:
            return []
        items = sorted(counters.items())
        return [
            Family(
                f"{prefix}_total",
                "counter",
                "IPVS connection synchronisation counters, by name.",
                ("counter",),
                [labelset(("counter",), (k,)) for k, _ in items],
                [v for _, v in items],
            )
        ]

    def _dataplane(self) -> list[Family]:
        counters = dict(self.counters()) if self.counters is not None else {}
        dp = self.dataplane
        drops: dict[str, int] = {}
        other: dict[str, int] = {}
        gauges: dict[str, int] = {}
        for name, v in counters.items():
            reason = drop_reason(name)
            if reason is not None:
                drops[reason] = drops.get(reason, 0) + v
            elif name in GAUGE_COUNTERS:
                gauges[name] = v
            else:
                other[name] = v

        def fam(name: str, kind: str, help_: str, label: str, d: dict[str, int]) -> Family:
            items = sorted(d.items())
            names = ("dataplane", label)
            return Family(
                name,
                kind,
                help_,
                names,
                [labelset(names, (dp, k)) for k, _ in items],
                [v for _, v in items],
            )

        return [
            fam(
                "pylvs_dataplane_drops_total",
                "counter",
                "Packets or connections the data plane dropped, by reason.",
                "reason",
                drops,
            ),
            fam(
                "pylvs_dataplane_counter_total",
                "counter",
                "The data plane's other counters (GET /v1/dataplane), by name.",
                "name",
                other,
            ),
            fam(
                "pylvs_dataplane_current",
                "gauge",
                "The data plane's current values (open relays...), by name.",
                "name",
                gauges,
            ),
        ]

    def _events(self) -> list[Family]:
        counts = self.events.counts if self.events is not None else {}
        results = (("success", counts.get(RELOAD, 0)), ("failure", counts.get(RELOAD_FAILED, 0)))
        items = sorted(counts.items())
        return [
            Family(
                "pylvs_config_reloads_total",
                "counter",
                "Configuration reloads (SIGHUP), by result.",
                ("result",),
                [labelset(("result",), (r,)) for r, _ in results],
                [n for _, n in results],
            ),
            Family(
                "pylvs_events_total",
                "counter",
                "State changes recorded (GET /v1/events), by kind.",
                ("kind",),
                [labelset(("kind",), (k,)) for k, _ in items],
                [n for _, n in items],
            ),
        ]

    # -- output -----------------------------------------------------------------------------
    def exposition(self) -> bytes:
        """The Prometheus text format (0.0.4) of every metric: what GET /metrics answers."""
        parts: list[bytes] = []
        for f in self.families():
            parts.append(f"# HELP {f.name} {f.help}\n# TYPE {f.name} {f.kind}\n".encode())
            if not f.values:
                continue
            if f.floats:
                values: tuple[object, ...] = tuple(go_float(v) for v in f.values)
            else:
                values = tuple(f.values)
            parts.append(self._template(f) % values)
        return b"".join(parts)

    def _template(self, f: Family) -> bytes:
        cached = self._templates.get(f.name)
        if cached is not None and cached[0] is f.labels:
            return cached[1]
        fmt = " %s\n" if f.floats else " %d\n"
        text = "".join([f"{f.name}{ls.text.replace('%', '%%')}{fmt}" for ls in f.labels])
        tmpl = text.encode()
        # Only the table's series keep their label list from one scrape to the next.
        if f.labels is self._dest_ls or f.labels is self._svc_ls:
            self._templates[f.name] = (f.labels, tmpl)
        return tmpl

    def collect(self) -> Iterator[Metric]:
        """The same metrics as prometheus_client objects (for generate_latest, a registry)."""
        for f in self.families():
            base = f.name[: -len("_total")] if f.kind == "counter" else f.name
            m = Metric(base, f.help, f.kind)
            for ls, v in zip(f.labels, f.values, strict=True):
                m.add_sample(f.name, dict(zip(f.labelnames, ls.values, strict=True)), v)
            yield m

    def describe(self) -> Iterable[Metric]:
        return []


def go_float(v: float) -> bytes:
    """A float as prometheus_client (and Go) write it."""
    return str(floatToGoString(v)).encode()  # type: ignore[no-untyped-call]


def fields(objs: Sequence[Any], field: str) -> list[int]:
    return list(map(attrgetter(field), objs))


def rates(ests: Sequence[Estimator], field: str, rnd: int, shift: int) -> list[int]:
    """ip_vs_read_estimator() of one field of many estimators (u64 arithmetic)."""
    return [((v + rnd) & U64) >> shift for v in map(attrgetter(field), ests)]


def drop_reason(name: str) -> str | None:
    """The drop reason of a data plane counter, None when it does not count drops."""
    if name.startswith("drop_"):
        return name[5:]
    if name.endswith("_dropped"):
        return name[: -len("_dropped")]
    if name in ("no_dest", "tx_full") or name.startswith("tx_error_"):
        return name
    return None
