"""The VRRP state machine of keepalived's vrrp_instances, sync groups and vrrp_scripts: pure.

Mirrors keepalived 2.2: vrrp.c (vrrp_state_backup, vrrp_state_master_rx/_tx,
vrrp_state_become_master, vrrp_state_leave_master/_fault, vrrp_check_packet's
instance-level checks), vrrp_scheduler.c (vrrp_init_state, timeouts, try_up_instance,
the vrrp_script rise/fall counter), vrrp_track.c (weights, effective priority,
down_instance), vrrp_sync.c (sync groups move together) and vrrp_notify.c (notify
script arguments), which follow RFC 3768 / RFC 5798 section 6:

- master-down interval = down_timer_adverts (3) x Master_Adver_Interval + skew; skew =
  (256 - priority) / 256 s for v2, (256 - priority) x Master_Adver_Interval / 256 for v3
  (a v3 backup takes Master_Adver_Interval from the master's advertisements);
- a backup accepts an advertisement of higher or equal priority (resets its timer),
  ignores a lower one if it may preempt (``nopreempt`` and a running ``preempt_delay``
  make it accept), and on priority 0 waits only the skew time;
- a master answers a lower priority (or equal priority from a lower address) with an
  advertisement, yields to a higher one (or equal priority from a higher address),
  answers priority 0 at once; two address owners (255): ours drops to 254;
- priority 255 (the address owner) becomes master at once; weights never change it;
- on shutdown a master sends priority 0 and removes its addresses;
- FAULT: the instance's interface (unless ``dont_track_primary``), a tracked interface
  or a tracked script of weight 0 is down; weighted ones add to / subtract from the
  priority (clamped to 1-254); ``reverse`` inverts them;
- sync group: members go to FAULT together, to MASTER only when every member wants
  to (then all at once), to BACKUP together.

Inputs (``VrrpSystem.handle(event, now)``): ``AdvertIn``, ``Timer``, ``LinkChange``,
``ScriptResult``, ``Shutdown``.  Outputs: a list of actions (``SendAdvert``,
``AddAddresses``, ``RemoveAddresses``, ``SendGarp``, ``RunNotify``, ``StateChange``)
always ending with ``SetTimer`` (the next time ``Timer`` is due, or None).

Deliberate differences: while a weight-0 script has not reported yet the instance
stays INIT (keepalived shows FAULT without notifying); a master restarts its advert
timer only when it actually sent an advertisement (keepalived restarts it on any
packet, so a stream of bad packets could delay its adverts).
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from pylvs.ha.vrrp_conf import InstanceConf, SyncGroupConf, Tracked, VirtualAddress, VrrpConf
from pylvs.wire import vrrp as wire


class State(StrEnum):
    INIT = "INIT"
    BACKUP = "BACKUP"
    MASTER = "MASTER"
    FAULT = "FAULT"
    STOP = "STOP"


# Instance-level drop reasons (the wire module adds malformed / version / checksum).
TTL = "ttl"
VRID = "vrid"
AUTH = "auth"
ADVERT_INT = "advert_int"
ADDRESS_LIST = "address_list"
UNICAST_SRC = "unicast_src"


# -- inputs --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AdvertIn:
    """A parsed advertisement received on ``interface`` (``ttl`` None: unknown)."""

    interface: str
    src: str
    dst: str | None
    ttl: int | None
    advert: wire.Advert


@dataclass(frozen=True, slots=True)
class Timer:
    """The time of the last ``SetTimer`` has come (handling it early does no harm)."""


@dataclass(frozen=True, slots=True)
class LinkChange:
    interface: str
    up: bool  # IFF_UP and IFF_RUNNING, as keepalived's IF_FLAGS_UP


@dataclass(frozen=True, slots=True)
class ScriptResult:
    script: str
    ok: bool  # exit status 0 (a timeout or a signal is a failure)


@dataclass(frozen=True, slots=True)
class Shutdown:
    """Graceful stop: masters send priority 0 and remove their addresses."""


Event = AdvertIn | Timer | LinkChange | ScriptResult | Shutdown


# -- actions -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendAdvert:
    """Send ``advert`` from ``src`` to each of ``dst`` (the group, or the unicast peers)."""

    instance: str
    interface: str
    advert: wire.Advert
    src: str
    dst: tuple[str, ...]
    ttl: int = wire.TTL


@dataclass(frozen=True, slots=True)
class AddAddresses:
    instance: str
    interface: str
    addresses: tuple[VirtualAddress, ...]


@dataclass(frozen=True, slots=True)
class RemoveAddresses:
    instance: str
    interface: str
    addresses: tuple[VirtualAddress, ...]


@dataclass(frozen=True, slots=True)
class SendGarp:
    """``repeat`` gratuitous ARPs (unsolicited NAs for IPv6) for each address."""

    instance: str
    interface: str
    addresses: tuple[VirtualAddress, ...]
    repeat: int


@dataclass(frozen=True, slots=True)
class RunNotify:
    """Run a notify script: ``argv`` is complete (notify: + INSTANCE|GROUP NAME STATE PRIO)."""

    argv: tuple[str, ...]
    kind: str  # INSTANCE | GROUP
    name: str
    state: State


@dataclass(frozen=True, slots=True)
class StateChange:
    instance: str
    old: State
    new: State
    priority: int
    reason: str


@dataclass(frozen=True, slots=True)
class SetTimer:
    at: float | None


Action = SendAdvert | AddAddresses | RemoveAddresses | SendGarp | RunNotify | StateChange | SetTimer


# -- timers --------------------------------------------------------------------------------


def skew_time(version: int, priority: int, master_adver_int: float) -> float:
    """RFC 3768 / RFC 5798 Skew_Time in seconds (keepalived VRRP_TIMER_SKEW)."""
    if version == wire.VERSION_3:
        return (256 - priority) * master_adver_int / 256
    return (256 - priority) / 256


def master_down_interval(
    version: int, priority: int, master_adver_int: float, adverts: int = 3
) -> float:
    """``adverts`` x Master_Adver_Interval + Skew_Time (keepalived VRRP_MS_DOWN_TIMER)."""
    return adverts * master_adver_int + skew_time(version, priority, master_adver_int)


# -- vrrp_script -------------------------------------------------------------------------


@dataclass
class ScriptTracker:
    """A vrrp_script's state from its results (vrrp_script_child_thread): ``rise``
    successes in a row to go up, ``fall`` failures to go down; before the first result
    (None) one result decides, unless ``init_fail`` made it start down."""

    rise: int = 1
    fall: int = 1
    ok: bool | None = None
    result: int = 0

    @classmethod
    def new(cls, rise: int, fall: int, init_fail: bool = False) -> ScriptTracker:
        if init_fail:
            return cls(rise, fall, False, 0)
        return cls(rise, fall, None, rise - 1)

    def feed(self, success: bool) -> bool:
        """One result; True when the state changed."""
        top = self.rise + self.fall - 1
        before = self.ok
        if success:
            if self.result < self.rise - 1:
                self.result += 1
            elif self.result != top:
                if self.result < self.rise:
                    self.ok = True
                self.result = top
            elif self.ok is None:
                self.ok = True
        else:
            if self.result > self.rise:
                self.result -= 1
            else:
                if self.result == self.rise or self.ok is None:
                    self.ok = False
                self.result = 0
        return self.ok != before


def contribution(t: Tracked, ok: bool | None) -> int:
    """What a weighted tracked object adds to the priority (process_script_update_priority)."""
    if ok is None or not t.weight:
        return 0
    mult = -1 if t.reverse else 1
    if t.weight > 0:
        return t.weight * mult if ok else 0
    return 0 if ok else t.weight * mult


def faulty(t: Tracked, ok: bool | None) -> bool:
    """A weight-0 tracked object puts the instance in FAULT (down, or up when reversed)."""
    return not t.weight and ok is not None and ok == t.reverse


# -- an instance ---------------------------------------------------------------------------


@dataclass
class Instance:
    conf: InstanceConf
    src: str  # our address: unicast_src_ip / mcast_src_ip or the interface's primary one
    state: State = State.INIT
    base: int = 0
    priority: int = 0  # effective
    master_adver_int: float = 0.0
    deadline: float | None = None
    garp_due: float | None = None
    refresh_due: float | None = None
    preempt_time: float | None = None
    want_master: bool = False
    vipset: bool = False
    master_addr: str | None = None
    master_priority: int = 0
    since: float = 0.0
    stats: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.base = self.priority = self.conf.priority
        self.master_adver_int = self.conf.advert_int

    @property
    def name(self) -> str:
        return self.conf.name

    @property
    def owner(self) -> bool:
        return self.base == wire.PRIO_OWNER

    def skew(self) -> float:
        return skew_time(self.conf.version, self.priority, self.master_adver_int)

    def master_down(self) -> float:
        c = self.conf
        return master_down_interval(
            c.version, self.priority, self.master_adver_int, c.down_timer_adverts
        )

    def advert(self, priority: int) -> SendAdvert:
        c = self.conf
        adv = wire.Advert(
            version=c.version,
            vrid=c.vrid,
            priority=priority,
            addresses=tuple(a.address for a in c.vips),
            adver_int=c.advert_int,
            auth_type=c.auth_type,
            auth_data=c.auth_data,
        )
        if c.unicast:
            dst = tuple(p.address for p in c.unicast_peers)
            return SendAdvert(c.name, c.interface, adv, self.src, dst, c.unicast_ttl)
        return SendAdvert(c.name, c.interface, adv, self.src, (c.mcast_group,))

    def check(self, ev: AdvertIn) -> str | None:
        """vrrp_check_packet()'s instance-level checks: a drop reason, or None."""
        c, adv = self.conf, ev.advert
        if c.unicast and c.check_unicast_src:
            peer = next((p for p in c.unicast_peers if p.address == ev.src), None)
            if peer is None:
                return UNICAST_SRC
            if ev.ttl is not None and not peer.min_ttl <= ev.ttl <= peer.max_ttl:
                return TTL
        elif not c.unicast and ev.ttl is not None and ev.ttl != wire.TTL:
            return TTL
        if adv.version != c.version:
            return wire.VERSION
        if c.version == wire.VERSION_2:
            if adv.auth_type != c.auth_type:
                return AUTH
            if c.auth_type == wire.AUTH_PASS and adv.auth_data != c.auth_data:
                return AUTH
            if round(adv.adver_int) != round(c.advert_int):
                return ADVERT_INT
        if ev.dst is not None and ipaddress.ip_address(ev.dst).is_multicast == c.unicast:
            return ADDRESS_LIST
        skip = c.skip_check_adv_addr and ev.src == self.master_addr
        if not skip and set(adv.addresses) != {a.address for a in c.vips}:
            return ADDRESS_LIST
        if not skip and len(adv.addresses) != len(c.vips):
            return ADDRESS_LIST
        return None


@dataclass
class Group:
    conf: SyncGroupConf
    members: list[Instance]
    state: State = State.INIT


def _identity(c: InstanceConf) -> tuple[str, int, int]:
    return (c.interface, c.vrid, c.family)


def _addr_cmp(a: str, b: str) -> int:
    """Compare two addresses of one family as numbers (the tie break of equal priorities)."""
    x, y = ipaddress.ip_address(a).packed, ipaddress.ip_address(b).packed
    return (x > y) - (x < y)


# -- the system ----------------------------------------------------------------------------


class VrrpSystem:
    """Every vrrp_instance, sync group and vrrp_script of one configuration.

    ``sources`` maps instance names to our address for them (the io adapter reads the
    interface's primary address when no unicast_src_ip / mcast_src_ip is configured).
    """

    def __init__(self, conf: VrrpConf, sources: Mapping[str, str]) -> None:
        self.conf = conf
        self.instances: dict[str, Instance] = {}
        for ic in conf.instances:
            self.instances[ic.name] = Instance(ic, ic.src_ip or sources[ic.name])
        self.groups: dict[str, Group] = {}
        for gc in conf.sync_groups:
            members = [self.instances[m] for m in gc.members if m in self.instances]
            self.groups[gc.name] = Group(gc, members)
        used = {t.name for ic in conf.instances for t in ic.track_scripts}
        self.scripts = {
            name: ScriptTracker.new(sc.rise, sc.fall, sc.init_fail)
            for name, sc in conf.scripts.items()
            if name in used
        }
        self.links: dict[str, bool] = {}
        self.dropped: Counter[str] = Counter()
        self._out: list[Action] = []
        self._now = 0.0
        self.started = False

    # -- entry points ------------------------------------------------------------------

    def start(
        self, now: float, links: Mapping[str, bool], previous: VrrpSystem | None = None
    ) -> list[Action]:
        """vrrp_init_state(): every instance to BACKUP (the owner to MASTER), FAULT or
        INIT.  ``previous``: the system of the configuration this one replaces (a reload,
        keepalived's restore_vrrp_state / clear_diff_vrrp): its masters still configured
        (same name, interface, VRID, family) stay MASTER, losing only the addresses no
        longer configured; masters gone send priority 0 and remove their addresses;
        vrrp_scripts of the same name keep their state; counters carry on."""
        self._now, self.started = now, True
        self.links = dict(links)
        resume = self._adopt(previous) if previous is not None else set()
        for inst in self.instances.values():
            self._update_priority(inst)
            resumed = inst.name in resume and not self._fault(inst) and not self._pending(inst)
            if not resumed and not inst.owner and self._vips(inst):
                # vrrp_init_state -> vrrp_restore_interface: "removing VIPs" left behind
                # by a previous run (a SIGKILLed daemon keeps them).
                self._out.append(RemoveAddresses(inst.name, inst.conf.interface, self._vips(inst)))
            if resumed:
                self._set_state(inst, State.MASTER, "reload", notify=False)
                inst.vipset = True
                inst.deadline = now
                self._out.append(AddAddresses(inst.name, inst.conf.interface, self._vips(inst)))
        for g in self.groups.values():
            if g.members and all(m.state == State.MASTER for m in g.members):
                g.state = State.MASTER
        self._reevaluate("init")
        return self._flush()

    def _adopt(self, old: VrrpSystem) -> set[str]:
        """Take over from the system of the previous configuration; the masters to keep."""
        resume: set[str] = set()
        for o in old.instances.values():
            c = o.conf
            n = self.instances.get(o.name)
            if n is not None and _identity(n.conf) != _identity(c):
                n = None  # another VRID, interface or family: a different virtual router
            if n is not None:
                n.stats.update(o.stats)
            if o.state != State.MASTER:
                continue
            if n is None:
                self._out.append(o.advert(wire.PRIO_STOP))
                self._out.append(RemoveAddresses(o.name, c.interface, c.vips + c.evips))
                continue
            resume.add(o.name)
            now_vips = self._vips(n)
            gone = tuple(a for a in c.vips + c.evips if a not in now_vips)
            if gone:
                self._out.append(RemoveAddresses(o.name, c.interface, gone))
        for name, tracker in old.scripts.items():
            new = self.scripts.get(name)
            if new is not None and tracker.ok is not None:
                new.ok, new.result = tracker.ok, (new.rise + new.fall - 1 if tracker.ok else 0)
        self.dropped.update(old.dropped)
        return resume

    def handle(self, event: Event, now: float) -> list[Action]:
        self._now = now
        if isinstance(event, AdvertIn):
            self._advert(event)
        elif isinstance(event, Timer):
            self._timers()
        elif isinstance(event, LinkChange):
            if self.links.get(event.interface) != event.up:
                self.links[event.interface] = event.up
                self._reevaluate(f"interface {event.interface} {'up' if event.up else 'down'}")
        elif isinstance(event, ScriptResult):
            tracker = self.scripts.get(event.script)
            if tracker is not None and tracker.feed(event.ok):
                verdict = "succeeded" if tracker.ok else "failed"
                self._reevaluate(f"script {event.script} {verdict}")
        else:
            self._shutdown()
        return self._flush()

    def drop(self, reason: str) -> None:
        """Count a packet dropped before it reached an instance (the io's parse errors)."""
        self.dropped[reason] += 1

    def next_deadline(self) -> float | None:
        times = [
            t
            for i in self.instances.values()
            for t in (i.deadline, i.garp_due, i.refresh_due)
            if t is not None
        ]
        return min(times, default=None)

    def find(self, interface: str, family: int, vrid: int) -> Instance | None:
        for inst in self.instances.values():
            c = inst.conf
            if c.interface == interface and c.family == family and c.vrid == vrid:
                return inst
        return None

    def status(self, now: float) -> dict[str, object]:
        """A JSON-able view: instances, groups, scripts, drop counters."""
        out: dict[str, object] = {}
        for inst in self.instances.values():
            c = inst.conf
            master = inst.src if inst.state == State.MASTER else inst.master_addr
            out[inst.name] = {
                "state": str(inst.state),
                "priority": inst.priority,
                "base_priority": inst.base,
                "interface": c.interface,
                "vrid": c.vrid,
                "version": c.version,
                "address": inst.src,
                "master": master if inst.state in (State.MASTER, State.BACKUP) else None,
                "master_priority": inst.priority
                if inst.state == State.MASTER
                else inst.master_priority,
                "advert_int": c.advert_int,
                "master_adver_int": inst.master_adver_int,
                "vips": [f"{a.address}/{a.prefixlen}" for a in c.vips],
                "vipset": inst.vipset,
                "sync_group": c.sync_group,
                "seconds_in_state": round(max(0.0, now - inst.since), 3),
                "stats": dict(sorted(inst.stats.items())),
            }
        return {
            "instances": out,
            "sync_groups": {g.conf.name: str(g.state) for g in self.groups.values()},
            "scripts": {
                n: ("unknown" if t.ok is None else "up" if t.ok else "down")
                for n, t in self.scripts.items()
            },
            "dropped": dict(sorted(self.dropped.items())),
        }

    # -- tracking ------------------------------------------------------------------------

    def _link(self, name: str) -> bool | None:
        return self.links.get(name, False)

    def _own_fault(self, inst: Instance) -> bool:
        c = inst.conf
        if not c.dont_track_primary and not self._link(c.interface):
            return True
        if any(faulty(t, self._link(t.name)) for t in c.track_interfaces):
            return True
        return any(faulty(t, self.scripts[t.name].ok) for t in c.track_scripts)

    def _own_pending(self, inst: Instance) -> bool:
        return any(
            not t.weight and self.scripts[t.name].ok is None for t in inst.conf.track_scripts
        )

    def _members(self, inst: Instance) -> list[Instance]:
        g = self.groups.get(inst.conf.sync_group or "")
        return g.members if g else [inst]

    def _fault(self, inst: Instance) -> bool:
        return any(self._own_fault(m) for m in self._members(inst))

    def _pending(self, inst: Instance) -> bool:
        return any(self._own_pending(m) for m in self._members(inst))

    def _update_priority(self, inst: Instance) -> None:
        """vrrp_set_effective_priority(): base + weights, 1-254; the owner stays 255."""
        if inst.owner:
            inst.priority = wire.PRIO_OWNER
            return
        c = inst.conf
        total = inst.base
        total += sum(contribution(t, self._link(t.name)) for t in c.track_interfaces)
        total += sum(contribution(t, self.scripts[t.name].ok) for t in c.track_scripts)
        new = max(1, min(wire.PRIO_OWNER - 1, total))
        if new == inst.priority:
            return
        old_down = inst.master_down()
        inst.priority = new
        if inst.state == State.BACKUP and inst.deadline is not None:
            inst.deadline += inst.master_down() - old_down

    def _reevaluate(self, why: str) -> None:
        """After any change of what is tracked: priorities, then FAULT / INIT exits."""
        for inst in self.instances.values():
            self._update_priority(inst)
        for inst in self.instances.values():
            if inst.state == State.STOP:
                continue
            if self._fault(inst):
                if inst.state != State.FAULT:
                    self._enter_fault(inst, why)
            elif inst.state in (State.FAULT, State.INIT) and not self._pending(inst):
                self._leave_fault(inst, why)
        for g in self.groups.values():
            states = {m.state for m in g.members}
            if State.FAULT in states:
                self._group_state(g, State.FAULT)
            elif states == {State.BACKUP}:
                self._group_state(g, State.BACKUP)

    # -- transitions -----------------------------------------------------------------------

    def _set_state(self, inst: Instance, new: State, reason: str, *, notify: bool = True) -> None:
        old = inst.state
        inst.state, inst.since = new, self._now
        if new != State.MASTER:
            inst.garp_due = inst.refresh_due = None
        self._out.append(StateChange(inst.name, old, new, inst.priority, reason))
        if notify:
            n = inst.conf.notify
            script = {
                State.MASTER: n.master,
                State.BACKUP: n.backup,
                State.FAULT: n.fault,
                State.STOP: n.stop,
            }.get(new)
            if script:
                self._out.append(RunNotify(script, "INSTANCE", inst.name, new))
            if n.generic:
                argv = (*n.generic, "INSTANCE", inst.name, str(new), str(inst.priority))
                self._out.append(RunNotify(argv, "INSTANCE", inst.name, new))

    def _group_state(self, g: Group, new: State) -> None:
        if g.state == new:
            return
        g.state = new
        n = g.conf.notify
        script = {
            State.MASTER: n.master,
            State.BACKUP: n.backup,
            State.FAULT: n.fault,
            State.STOP: n.stop,
        }.get(new)
        if script:
            self._out.append(RunNotify(script, "GROUP", g.conf.name, new))
        if n.generic:
            argv = (*n.generic, "GROUP", g.conf.name, str(new), "0")
            self._out.append(RunNotify(argv, "GROUP", g.conf.name, new))

    def _vips(self, inst: Instance) -> tuple[VirtualAddress, ...]:
        return inst.conf.vips + inst.conf.evips

    def _send(self, inst: Instance, priority: int) -> None:
        self._out.append(inst.advert(priority))
        inst.stats["advert_sent"] += 1
        if priority == wire.PRIO_STOP:
            inst.stats["pri_zero_sent"] += 1

    def _become_master(self, inst: Instance, reason: str) -> None:
        """vrrp_state_goto_master + vrrp_state_master_tx + vrrp_state_become_master:
        the advert first (the old master removes its addresses), then the addresses,
        gratuitous ARPs, notifies; a second round of ARPs after garp_master_delay."""
        c, now = inst.conf, self._now
        inst.master_adver_int = c.advert_int
        inst.want_master = False
        inst.preempt_time = None
        inst.master_addr, inst.master_priority = inst.src, inst.priority
        self._send(inst, inst.priority)
        inst.stats["become_master"] += 1
        vips = self._vips(inst)
        if vips:
            self._out.append(AddAddresses(inst.name, c.interface, vips))
        inst.vipset = True
        if vips:
            self._out.append(SendGarp(inst.name, c.interface, vips, c.garp_master_repeat))
        self._set_state(inst, State.MASTER, reason)
        inst.garp_due = now + c.garp_master_delay if c.garp_master_delay and vips else None
        inst.refresh_due = now + c.garp_master_refresh if c.garp_master_refresh and vips else None
        inst.deadline = now + c.advert_int

    def _leave_master(self, inst: Instance, new: State, reason: str, *, stop_advert: bool) -> None:
        """vrrp_state_leave_master / vrrp_restore_interface."""
        if stop_advert:
            self._send(inst, wire.PRIO_STOP)
        if inst.vipset and self._vips(inst):
            self._out.append(RemoveAddresses(inst.name, inst.conf.interface, self._vips(inst)))
        inst.vipset = False
        inst.stats["release_master"] += 1
        self._set_state(inst, new, reason)
        inst.deadline = self._now + inst.master_down() if new == State.BACKUP else None

    def _goto_master(self, inst: Instance, reason: str) -> None:
        """Master-down timer expired (or owner at start): sync groups go only together."""
        inst.want_master = True
        g = self.groups.get(inst.conf.sync_group or "")
        waiting = g is not None and any(m is not inst and not m.want_master for m in g.members)
        if g is not None and g.state != State.MASTER and waiting:
            inst.deadline = self._now + inst.master_down()
            return
        self._become_master(inst, reason)
        if g is not None:
            for m in g.members:
                if m is not inst and m.state != State.MASTER:
                    self._become_master(m, f"sync group {g.conf.name}")
            self._group_state(g, State.MASTER)

    def _to_backup_synced(self, inst: Instance, reason: str) -> None:
        """vrrp_sync_backup(): the other members of a group leave MASTER (or FAULT) too."""
        g = self.groups.get(inst.conf.sync_group or "")
        if g is None:
            return
        for m in g.members:
            if m is inst or m.state == State.BACKUP:
                continue
            m.want_master = False
            if m.state == State.MASTER:
                self._leave_master(m, State.BACKUP, reason, stop_advert=False)
            elif m.state in (State.FAULT, State.INIT):
                self._set_state(m, State.BACKUP, reason)
                m.master_adver_int = m.conf.advert_int
                m.deadline = self._now + m.master_down()
        self._group_state(g, State.BACKUP)

    def _enter_fault(self, inst: Instance, why: str) -> None:
        """down_instance(): a master sends priority 0 and removes its addresses."""
        inst.want_master = False
        if inst.state == State.MASTER:
            self._leave_master(inst, State.FAULT, why, stop_advert=True)
        else:
            self._set_state(inst, State.FAULT, why)
            inst.deadline = None

    def _leave_fault(self, inst: Instance, why: str) -> None:
        """try_up_instance() / vrrp_init_state(): BACKUP with a full master-down timer;
        the owner (outside a sync group) becomes MASTER at once."""
        inst.master_adver_int = inst.conf.advert_int
        inst.preempt_time = None
        if inst.owner and inst.conf.sync_group is None:
            self._become_master(inst, why)
            return
        self._set_state(inst, State.BACKUP, why)
        down = inst.master_down()
        if inst.owner:
            down = inst.master_adver_int + inst.skew()
        inst.deadline = self._now + down

    # -- events ------------------------------------------------------------------------------

    def _timers(self) -> None:
        now = self._now
        for inst in self.instances.values():
            c = inst.conf
            if inst.garp_due is not None and inst.garp_due <= now:
                inst.garp_due = None
                self._out.append(
                    SendGarp(inst.name, c.interface, self._vips(inst), c.garp_master_repeat)
                )
            if inst.refresh_due is not None and inst.refresh_due <= now:
                inst.refresh_due = now + c.garp_master_refresh
                self._out.append(
                    SendGarp(inst.name, c.interface, self._vips(inst), c.garp_master_refresh_repeat)
                )
            if inst.deadline is None or inst.deadline > now:
                continue
            if inst.state == State.BACKUP:
                self._goto_master(inst, "master down timer expired")
            elif inst.state == State.MASTER:
                self._send(inst, inst.priority)
                inst.deadline = now + c.advert_int
            else:
                inst.deadline = None

    def _advert(self, ev: AdvertIn) -> None:
        adv = ev.advert
        inst = self.find(ev.interface, adv.family, adv.vrid)
        if inst is None:
            self.dropped[VRID] += 1
            return
        if ev.src == inst.src or inst.state not in (State.BACKUP, State.MASTER):
            return  # our own (looped back), or not listening (keepalived: FAULT / INIT)
        reason = inst.check(ev)
        if reason is not None:
            inst.stats[reason] += 1
            self.dropped[reason] += 1
            return
        inst.stats["advert_rcvd"] += 1
        if adv.priority == wire.PRIO_STOP:
            inst.stats["pri_zero_rcvd"] += 1
        if inst.state == State.BACKUP:
            self._backup_rx(inst, ev)
        else:
            self._master_rx(inst, ev)

    def _backup_rx(self, inst: Instance, ev: AdvertIn) -> None:
        """vrrp_state_backup()."""
        adv, c, now = ev.advert, inst.conf, self._now
        if adv.priority == wire.PRIO_STOP:
            inst.deadline = now + inst.skew()
            return
        delaying = bool(c.preempt_delay) and (inst.preempt_time is None or inst.preempt_time > now)
        if not (c.nopreempt or adv.priority >= inst.priority or delaying):
            inst.master_addr = ev.src  # lower priority and we may preempt: ignore it
            return
        if c.version == wire.VERSION_3:
            inst.master_adver_int = adv.adver_int
        inst.deadline = now + inst.master_down()
        inst.master_addr, inst.master_priority = ev.src, adv.priority
        inst.want_master = False
        if c.preempt_delay:
            if adv.priority >= inst.priority:
                inst.preempt_time = None
            elif inst.preempt_time is None:
                inst.preempt_time = now + c.preempt_delay

    def _master_rx(self, inst: Instance, ev: AdvertIn) -> None:
        """vrrp_state_master_rx()."""
        adv, c, now = ev.advert, inst.conf, self._now
        cmp = _addr_cmp(ev.src, inst.src)
        higher = adv.priority > inst.priority or (adv.priority == inst.priority and cmp > 0)
        if adv.priority == wire.PRIO_STOP or (c.higher_prio_send_advert and higher):
            self._send(inst, inst.priority)
            inst.deadline = now + c.advert_int
            if adv.priority == wire.PRIO_STOP:
                return
        if adv.priority == inst.priority == wire.PRIO_OWNER and cmp != 0:
            inst.base = inst.priority = wire.PRIO_OWNER - 1  # two owners: ours gives way
        if adv.priority < inst.priority or (adv.priority == inst.priority and cmp < 0):
            if not c.lower_prio_no_advert:
                self._send(inst, inst.priority)
                inst.deadline = now + c.advert_int
            return
        if adv.priority == inst.priority and cmp == 0:
            return  # our own address: nothing sensible to do
        if c.version == wire.VERSION_3:
            inst.master_adver_int = adv.adver_int
        inst.master_addr, inst.master_priority = ev.src, adv.priority
        why = f"higher priority {adv.priority} advert from {ev.src}"
        self._leave_master(inst, State.BACKUP, why, stop_advert=False)
        self._to_backup_synced(inst, why)

    def _shutdown(self) -> None:
        """restore_vrrp_interfaces() + notify_shutdown()."""
        for inst in self.instances.values():
            if inst.state == State.MASTER:
                self._leave_master(inst, State.STOP, "shutdown", stop_advert=True)
            elif inst.state != State.STOP:
                self._set_state(inst, State.STOP, "shutdown")
            inst.deadline = inst.garp_due = inst.refresh_due = None
        for g in self.groups.values():
            self._group_state(g, State.STOP)

    def _flush(self) -> list[Action]:
        out, self._out = self._out, []
        out.append(SetTimer(self.next_deadline()))
        return out
