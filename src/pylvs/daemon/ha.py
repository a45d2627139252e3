"""VRRP in pylvsd and keepalived's ``lvs_sync_daemon`` (keepalived's vrrp/ + check/ipvswrapper.c).

When the keepalived.conf given with ``-f`` has vrrp_* blocks, pylvsd runs
their instances (ha/vrrp_io.VrrpManager) whatever the data plane, reloads
them on SIGHUP and stops them gracefully (priority 0, addresses removed) on
SIGTERM.

``global_defs { lvs_sync_daemon IF INSTANCE [id N] [maxlen N] [port N] [ttl N]
[group ADDR] }`` ties the connection sync daemon to a VRRP instance, as
keepalived does: the instance becoming MASTER stops the backup sync daemon
and starts the master one; BACKUP or FAULT does the opposite.  Without a
named instance (or without VRRP) both run.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from pylvs.config.model import ConfigError, Diagnostic, KeepalivedConf, Where
from pylvs.core.errors import IPVSError
from pylvs.daemon.ctl import Control
from pylvs.ha.vrrp import State, StateChange
from pylvs.ha.vrrp_conf import VrrpConf, from_keepalived
from pylvs.ha.vrrp_io import VrrpManager
from pylvs.web import VrrpInstance

log = logging.getLogger("pylvsd.ha")

SYNC_OPTIONS = {"id": "syncid", "maxlen": "sync_maxlen", "port": "mcast_port", "ttl": "mcast_ttl"}


def vrrp_conf(conf: KeepalivedConf) -> VrrpConf | None:
    """The VRRP part of a configuration (ConfigError with file:line on problems)."""
    if not conf.vrrp_blocks:
        return None
    return from_keepalived(conf)


def sync_settings(conf: KeepalivedConf) -> tuple[dict[str, Any], str | None] | None:
    """lvs_sync_daemon's start_daemon body (without the state) and its instance."""
    value = conf.global_defs.get("lvs_sync_daemon")
    if value is None:
        return None
    if isinstance(value, str):
        words = [value]
    elif isinstance(value, (tuple, list)):
        words = [str(w) for w in value]
    else:
        words = []
    if not words:
        return None
    body: dict[str, Any] = {"mcast_ifn": words[0]}
    instance = None
    rest = words[1:]
    if rest and rest[0] not in SYNC_OPTIONS and rest[0] != "group":
        instance = rest.pop(0)
    problems = []
    while rest:
        key = rest.pop(0)
        if not rest:
            problems.append(f"lvs_sync_daemon: {key} needs a value")
            break
        val = rest.pop(0)
        if key == "group":
            body["mcast_group"] = val
        elif key in SYNC_OPTIONS and val.isdigit():
            body[SYNC_OPTIONS[key]] = int(val)
        else:
            problems.append(f"lvs_sync_daemon: bad {key} {val!r}")
    if problems:
        raise ConfigError([Diagnostic(Where(conf.files[0], 0), p) for p in problems])
    return body, instance


class Ha:
    def __init__(self, control: Control) -> None:
        self.control = control
        self.vrrp: VrrpManager | None = None
        self.sync: tuple[dict[str, Any], str | None] | None = None
        self.stopping = False

    async def start(self, conf: KeepalivedConf) -> None:
        self.sync = sync_settings(conf)
        vconf = vrrp_conf(conf)
        if vconf is not None:
            self.vrrp = VrrpManager(on_change=self.on_change)
            await self.vrrp.start(vconf)
        if self.sync is not None and (self.sync[1] is None or self.vrrp is None):
            self.run_sync("master")
            self.run_sync("backup")
        elif self.sync is not None:
            self.run_sync("backup")  # until the instance becomes master

    async def reload(self, conf: KeepalivedConf) -> None:
        vconf = vrrp_conf(conf)
        settings = sync_settings(conf)
        if settings != self.sync:
            for state in ("master", "backup"):
                self.stop_sync(state)
            self.sync = settings
            if settings is not None:
                self.run_sync("backup")
        if vconf is None:
            if self.vrrp is not None:
                await self.vrrp.stop(graceful=True)
                self.vrrp = None
            return
        if self.vrrp is None:
            self.vrrp = VrrpManager(on_change=self.on_change)
            await self.vrrp.start(vconf)
        else:
            await self.vrrp.reload(vconf)

    async def stop(self) -> None:
        self.stopping = True  # the STOP transitions must not restart a sync daemon
        if self.vrrp is not None:
            await self.vrrp.stop(graceful=True)
        for state in ("master", "backup"):
            self.stop_sync(state)

    def status(self) -> dict[str, Any]:
        return self.vrrp.status() if self.vrrp is not None else {"instances": {}}

    def instances(self) -> list[VrrpInstance] | None:
        """The dashboard's and /metrics' view of the VRRP instances (None without VRRP)."""
        if self.vrrp is None:
            return None
        raw = self.vrrp.status().get("instances", {})
        out: list[VrrpInstance] = []
        now = time.time()
        for name, d in raw.items() if isinstance(raw, dict) else ():
            out.append(
                VrrpInstance(
                    name=str(name),
                    state=str(d.get("state", "INIT")),
                    interface=str(d.get("interface", "")),
                    vrid=int(d.get("vrid", 0)),
                    priority=int(d.get("base_priority", d.get("priority", 0))),
                    effective_priority=int(d.get("priority", 0)),
                    since=now - float(d.get("seconds_in_state", 0.0)),
                )
            )
        return out

    def sync_counters(self) -> dict[str, int] | None:
        """The sync daemons' counters, flattened as ``state_counter``."""
        from pylvs.daemon import sync

        stats = sync.stats(self.control)
        if not stats:
            return None
        return {f"{state}_{k}": v for state, c in stats.items() for k, v in c.items()}

    def on_change(self, change: StateChange) -> None:
        log.info(
            "VRRP instance %s: %s -> %s (priority %d, %s)",
            change.instance,
            change.old.name,
            change.new.name,
            change.priority,
            change.reason,
        )
        if self.sync is None or self.sync[1] != change.instance or self.stopping:
            return
        if change.new == State.MASTER:
            self.stop_sync("backup")
            self.run_sync("master")
        elif change.old == State.MASTER:
            self.stop_sync("master")
            self.run_sync("backup")

    def run_sync(self, state: str) -> None:
        if self.sync is None or state in self.control.daemons:
            return
        try:
            self.control.start_daemon({**self.sync[0], "state": state})
            log.info("lvs_sync_daemon: %s sync daemon started", state)
        except IPVSError as e:  # RequestError included
            log.error("lvs_sync_daemon: cannot start the %s sync daemon: %s", state, e)

    def stop_sync(self, state: str) -> None:
        if state in self.control.daemons:
            try:
                self.control.stop_daemon(state)
            except IPVSError as e:  # RequestError included
                log.error("lvs_sync_daemon: stopping the %s sync daemon: %s", state, e)
