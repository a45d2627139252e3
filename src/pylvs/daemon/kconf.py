"""``pylvsd -f keepalived.conf``: reading the file for the daemon.

``read(path, policy)`` parses (config/keepalived.py), then checks what only
the daemon knows: the rule table accepts every service and real server (a
scratch table is built), and the data plane can forward them (the proxy
plane cannot do DR or TUN).  Every problem is reported with file:line; a
file with any problem starts nothing and, on SIGHUP, changes nothing.
"""

from __future__ import annotations

import logging

from pylvs.config import keepalived, lvs
from pylvs.config.model import ConfigError, Diagnostic, KeepalivedConf
from pylvs.core.errors import IPVSError
from pylvs.core.table import Table
from pylvs.daemon.ctl import Policy

log = logging.getLogger("pylvsd")

METHOD = {"NAT": "NAT", "DR": "DR", "TUN": "TUN"}


def read(path: str, policy: Policy) -> KeepalivedConf:
    """The configuration, or ConfigError listing every problem (file:line each)."""
    conf = keepalived.load(path)
    problems: list[Diagnostic] = []
    for vs in conf.virtual_servers:
        for rs in vs.real_servers:
            if lvs.FWD[rs.lvs_method] in policy.refused_fwd:
                problems.append(
                    Diagnostic(rs.where, f"lb_kind {rs.lvs_method}: {policy.refused_message}")
                )
        ss = vs.sorry_server
        if ss is not None and lvs.FWD[ss.lvs_method] in policy.refused_fwd:
            problems.append(Diagnostic(ss.where, f"sorry server {ss.lvs_method}: refused"))
        table = Table()
        for key in lvs.service_keys(vs, conf.groups.get(vs.group or "", ())):
            try:
                table.add_service(lvs.service_spec(vs, key))
            except IPVSError as e:
                problems.append(Diagnostic(vs.where, e.message))
                continue
            for rs in vs.real_servers:
                try:
                    table.add_dest(key, lvs.dest_spec(rs, key))
                except IPVSError as e:
                    problems.append(Diagnostic(rs.where, e.message))
    try:
        from pylvs.daemon.ha import sync_settings, vrrp_conf

        vrrp_conf(conf)
        sync_settings(conf)
    except ConfigError as e:
        problems += e.problems
    if problems:
        raise ConfigError(problems)
    return conf


def config_test(path: str, policy: Policy) -> int:
    """``--config-test -f FILE``: 0 and a summary for a usable file; else every
    problem on stderr, one per line, and 1."""
    import sys

    try:
        conf = read(path, policy)
    except ConfigError as e:
        for p in e.problems:
            print(f"pylvsd: {p}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"pylvsd: {path}: {e.strerror}", file=sys.stderr)
        return 1
    for w in conf.warnings:
        print(f"pylvsd: warning: {w}", file=sys.stderr)
    n = len(lvs.rules(conf))
    print(f"{path}: {n} services, {len(conf.virtual_servers)} virtual servers, configuration OK")
    return 0


def warn(conf: KeepalivedConf) -> None:
    for w in conf.warnings:
        log.warning("%s", w)
