"""What health checking does to the LVS table (keepalived's check/ipwrapper.c).

``pylvsd -f keepalived.conf`` hands the parsed configuration to ``Health``;
the checkers run in ``check.runner.CheckRunner``, and every change of a real
server's state or weight, every reload, ends in ``reconcile()``: the table
the configuration and the health state ask for is computed (``desired``)
and the difference with the engine's table is applied as one atomic batch
(the same diff SIGHUP reloads of rules files use), so connections, counters
and scheduler state of everything unchanged stay.

keepalived's rules, as ipwrapper.c has them:

- a real server that fails is removed from its service, or kept with weight
  0 with ``inhibit_on_failure``; it comes back (at its configured weight, or
  the one MISC_CHECK misc_dynamic / FILE_CHECK set) when all its checkers
  pass again; ``alpha`` starts it down until its checks pass;
- quorum: the sum of the weights of the live real servers; quorum is lost
  below ``quorum - hysteresis`` (or at 0) and gained again at ``quorum +
  hysteresis``; losing it runs ``quorum_down`` and, with a sorry server,
  replaces the pool by the sorry server; gaining it runs ``quorum_up`` and
  puts the live servers back; a sorry server with ``sorry_server_inhibit``
  stays in the table at weight 0 while not needed;
- ``notify_up``/``notify_down`` run on every change of a real server's state,
  with no arguments (keepalived's notify_exec of a real server).

Only the services the configuration names are managed: services added by
hand with pylvsadm are left alone.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Hashable
from ipaddress import ip_address
from typing import NamedTuple

from pylvs.check.runner import CheckRunner, ServerSpec
from pylvs.config import lvs
from pylvs.config.lexer import split_quoted_escaped
from pylvs.config.model import KeepalivedConf, RealServerConf, SorryServerConf, VirtualServerConf
from pylvs.core.model import DestSpec, ServiceKey
from pylvs.daemon import reload
from pylvs.daemon.ctl import Control, format_sid
from pylvs.web import HealthState
from pylvs.web.events import QUORUM_DOWN, QUORUM_UP, RS_DOWN, RS_UP, Events, log_event

log = logging.getLogger("pylvsd.health")


class VsId(NamedTuple):
    """What identifies a virtual_server across reloads (not its position in the file)."""

    kind: str
    addr: str | None
    port: int
    fwmark: int | None
    group: str | None
    protocol: str

    def __str__(self) -> str:
        if self.kind == "fwmark":
            return f"FWM {self.fwmark}"
        if self.kind == "group":
            return f"group {self.group}"
        return f"{self.protocol} {_hp(self.addr or '', self.port)}"


class RsKey(NamedTuple):
    """A real server of a virtual server: the health checker's key."""

    vs: VsId
    addr: str
    port: int

    def __str__(self) -> str:
        return f"[{_hp(self.addr, self.port)}] of VS {self.vs}"


def vs_id(vs: VirtualServerConf) -> VsId:
    return VsId(vs.kind, vs.addr, vs.port, vs.fwmark, vs.group, vs.protocol)


def rs_key(vs: VirtualServerConf, rs: RealServerConf) -> RsKey:
    return RsKey(vs_id(vs), rs.addr, rs.port)


def label(vs: VirtualServerConf, rs: RealServerConf | SorryServerConf | None = None) -> str:
    v = str(vs_id(vs))
    return v if rs is None else f"[{_hp(rs.addr, rs.port)}] of VS {v}"


def _hp(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


@dataclasses.dataclass
class VsState:
    quorum_up: bool = True
    sorry_active: bool = False


class Health:
    def __init__(
        self,
        control: Control,
        *,
        clock: Callable[[], float] | None = None,
        run_script: Callable[[str, str], None] | None = None,
        events: Events | None = None,
    ) -> None:
        self.control = control
        self.events = events
        self.changed: dict[Hashable, float] = {}  # unix time of each server's last transition
        self.conf: KeepalivedConf | None = None
        self.runner = CheckRunner(self.on_change, clock=clock)
        self.states: dict[VsId, VsState] = {}
        self.managed: set[ServiceKey] = set()
        self.run_script = run_script or spawn_script
        self.started = False
        self.last_up: dict[RsKey, bool] = {}  # the state last reported per real server

    # -- configuration -----------------------------------------------------------
    def load(self, conf: KeepalivedConf) -> None:
        """Start (first call) or reload: checkers of unchanged servers keep their state."""
        servers = {
            rs_key(vs, rs): ServerSpec.from_conf(rs)
            for vs in conf.virtual_servers
            for rs in vs.real_servers
        }
        self.conf = conf
        now = time.time()
        self.changed = {k: self.changed.get(k, now) for k in servers}
        if self.started:
            self.runner.replace(servers)
        else:
            self.runner.start(servers)
            self.started = True
        self.last_up = {k: self.runner.health(k)[0] for k in servers}
        old = self.states
        self.states = {}
        for vs in conf.virtual_servers:
            known = old.get(vs_id(vs))
            if known is not None:
                self.states[vs_id(vs)] = known
            else:
                # set_quorum_states(): up when the live weight reaches quorum + hysteresis
                st = VsState(self.live_weight(vs) >= vs.quorum + vs.hysteresis)
                self.states[vs_id(vs)] = st
                if not st.quorum_up:
                    log.info("Starting with quorum down for VS %s", label(vs))
                    self._quorum_notify(vs, st)
        for vs in conf.virtual_servers:
            self.update_quorum(vs, init=True)
        self.reconcile()

    async def stop(self) -> None:
        await self.runner.stop()

    # -- health events -----------------------------------------------------------
    def on_change(self, key: Hashable, up: bool, weight: int | None, reason: str) -> None:
        conf = self.conf
        if conf is None:
            return
        for vs in conf.virtual_servers:
            for rs in vs.real_servers:
                if rs_key(vs, rs) != key:
                    continue
                was_up = self.last_up.get(rs_key(vs, rs), False)
                self.last_up[rs_key(vs, rs)] = up
                if up and was_up:
                    # Still up: only its weight moved (misc_dynamic, FILE_CHECK).
                    w = rs.weight if weight is None else weight
                    log.info("Changing weight of service %s to %d (%s)", label(vs, rs), w, reason)
                    continue
                verb = (
                    ("Enabling" if up else "Disabling")
                    if rs.inhibit_on_failure
                    else ("Adding" if up else "Removing")
                )
                self.changed[key] = time.time()
                log_event(
                    log,
                    self.events,
                    RS_UP if up else RS_DOWN,
                    "%s service %s (%s)%s",
                    verb,
                    label(vs, rs),
                    reason,
                    f" weight {weight}" if weight is not None and up else "",
                    virtual_server=label(vs),
                    real_server=_hp(rs.addr, rs.port),
                    reason=reason,
                    weight=weight,
                )
                script = rs.notify_up if up else rs.notify_down
                if script:
                    self.run_script(script, f"notify_{'up' if up else 'down'} {label(vs, rs)}")
                self.update_quorum(vs, init=False)
        self.reconcile()

    def live_weight(self, vs: VirtualServerConf) -> int:
        """weigh_live_realservers(): the weights of the live real servers."""
        total = 0
        for rs in vs.real_servers:
            up, w = self.runner.health(rs_key(vs, rs))
            if up:
                total += rs.weight if w is None else w
        return total

    def update_quorum(self, vs: VirtualServerConf, init: bool) -> None:
        st = self.states[vs_id(vs)]
        total = self.live_weight(vs)
        threshold = vs.quorum + (-1 if st.quorum_up else 1) * vs.hysteresis
        if not st.quorum_up and total >= threshold:
            st.quorum_up = True
            log_event(
                log,
                self.events,
                QUORUM_UP,
                "Gained quorum %d+%d=%d <= %d for VS %s",
                vs.quorum,
                vs.hysteresis,
                threshold,
                total,
                label(vs),
                virtual_server=label(vs),
            )
            if st.sorry_active and vs.sorry_server is not None:
                log.info("Removing sorry server %s", label(vs, vs.sorry_server))
            st.sorry_active = False
            self._quorum_notify(vs, st)
        elif (st.quorum_up and (not total or total < threshold)) or (
            init and not st.quorum_up and vs.sorry_server is not None and not st.sorry_active
        ):
            lost = st.quorum_up
            st.quorum_up = False
            if lost:
                log_event(
                    log,
                    self.events,
                    QUORUM_DOWN,
                    "Lost quorum %d-%d=%d > %d for VS %s",
                    vs.quorum,
                    vs.hysteresis,
                    threshold,
                    total,
                    label(vs),
                    virtual_server=label(vs),
                )
            if vs.sorry_server is not None and not st.sorry_active:
                log.info("Adding sorry server %s", label(vs, vs.sorry_server))
                st.sorry_active = True
            if lost:
                self._quorum_notify(vs, st)

    def _quorum_notify(self, vs: VirtualServerConf, st: VsState) -> None:
        script = vs.quorum_up if st.quorum_up else vs.quorum_down
        if script:
            self.run_script(script, f"quorum_{'up' if st.quorum_up else 'down'} {label(vs)}")

    def server_states(self) -> list[HealthState]:
        """Every checked real server of every service: up, weight, last transition
        (GET /v1/health, the dashboard, pylvs_backend_health_* metrics)."""
        conf = self.conf
        out: list[HealthState] = []
        if conf is None:
            return out
        for vs in conf.virtual_servers:
            keys = lvs.service_keys(vs, conf.groups.get(vs.group or "", ()))
            for rs in vs.real_servers:
                k = rs_key(vs, rs)
                if k not in self.runner.servers:
                    continue
                up, w = self.runner.health(k)
                for key in keys:
                    spec = lvs.dest_spec(rs, key)
                    out.append(
                        {
                            "service": format_sid(key),
                            "virtual_server": label(vs),
                            "address": str(spec.addr),
                            "port": spec.port,
                            "up": up,
                            "weight": rs.weight if w is None else w,
                            "since": self.changed.get(k, 0.0),
                        }
                    )
        return out

    # -- the table ---------------------------------------------------------------
    def desired(self) -> reload.Rules:
        conf = self.conf
        if conf is None:
            return []
        out: reload.Rules = []
        for vs in conf.virtual_servers:
            st = self.states[vs_id(vs)]
            for key in lvs.service_keys(vs, conf.groups.get(vs.group or "", ())):
                out.append((lvs.service_spec(vs, key), self.dests(vs, st, key), []))
        return out

    def dests(self, vs: VirtualServerConf, st: VsState, key: ServiceKey) -> list[DestSpec]:
        pool = not st.sorry_active  # the real servers serve unless the sorry server does
        dests: list[DestSpec] = []
        for rs in vs.real_servers:
            up, w = self.runner.health(rs_key(vs, rs))
            spec = lvs.dest_spec(rs, key)
            if up and pool:
                if w is not None and w != spec.weight:
                    spec = dataclasses.replace(spec, weight=w)
                dests.append(spec)
            elif rs.inhibit_on_failure:
                dests.append(dataclasses.replace(spec, weight=0))
        ss = vs.sorry_server
        if ss is not None and (st.sorry_active or ss.inhibit):
            spec = sorry_spec(ss, key)
            if not st.sorry_active:
                spec = dataclasses.replace(spec, weight=0)
            if all(d.key != spec.key for d in dests):
                dests.append(spec)
        return dests

    def reconcile(self) -> None:
        desired = self.desired()
        keys = {spec.key for spec, _, _ in desired}
        current = [r for r in self.control.engine.table.specs() if r[0].key in keys | self.managed]
        ops = reload.diff_ops(current, desired)
        self.managed = keys
        if ops:
            self.control.batch(ops)


def sorry_spec(ss: SorryServerConf, key: ServiceKey) -> DestSpec:
    fwd = lvs.FWD[ss.lvs_method]
    return DestSpec(
        ip_address(ss.addr),
        ss.port if fwd == lvs.FWD["NAT"] else key.port,
        fwd,
        ss.weight,
        tun_type=lvs.TUN_TYPES[ss.tun_type],
        tun_port=ss.tun_port,
        tun_flags=lvs.TUN_FLAGS[ss.tun_flags],
    )


_running: set[asyncio.Task[None]] = set()


def spawn_script(script: str, why: str) -> None:
    """Run a notify/quorum script like keepalived's notify_exec: no arguments beyond
    the script's own words, output discarded, not waited for (reaped in the background)."""
    try:
        argv = split_quoted_escaped(script)
    except ValueError as e:
        log.warning("%s: %s", why, e)
        return
    if not argv:
        return

    async def run() -> None:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as e:
            log.warning("%s: cannot run %s: %s", why, argv[0], e.strerror)
            return
        code = await proc.wait()
        if code:
            log.info("%s: %s exited with %d", why, argv[0], code)

    task = asyncio.get_running_loop().create_task(run())
    _running.add(task)
    task.add_done_callback(_running.discard)
