"""pylvsadm commands as control-API operations (the JSON of /v1/batch elements).

Values a command line leaves out take ipvsadm's defaults here (scheduler
wlc, weight 1; ``-p`` without a value is 360 s, filled in by the parser as
ipvsadm 1.31 does), except the forwarding method: pylvsd
picks that default from its data plane (direct routing like ipvsadm with the
packet plane, masquerading with the proxy plane).
"""

from __future__ import annotations

from typing import Any

from pylvs.cli.command import Cmd, Command, ServiceArg

DEFAULT_SCHED = "wlc"

BATCHABLE = {
    Cmd.ADD,
    Cmd.EDIT,
    Cmd.DEL,
    Cmd.FLUSH,
    Cmd.ADDDEST,
    Cmd.EDITDEST,
    Cmd.DELDEST,
    Cmd.ZERO,
    Cmd.ADDLADDR,
    Cmd.DELLADDR,
}


def service_key_json(s: ServiceArg) -> dict[str, Any]:
    if s.fwmark:
        return {"fwmark": s.fwmark, "family": s.family}
    return {"protocol": s.protocol, "address": s.address, "port": s.port, "family": s.family}


def sid(s: ServiceArg) -> str:
    """The API path id of a service (see pylvs.daemon.ctl.parse_sid)."""
    if s.fwmark:
        return f"fwmark{'6' if s.family == 'inet6' else ''}:{s.fwmark}"
    addr = f"[{s.address}]" if s.family == "inet6" else s.address
    return f"{s.protocol}:{addr}:{s.port}"


def did(c: Command) -> str:
    addr = f"[{c.dest_address}]" if ":" in c.dest_address else c.dest_address
    return f"{addr}:{dest_port(c)}"


def dest_port(c: Command) -> int:
    if c.dest_port is not None:
        return c.dest_port
    return c.service.port if c.service is not None else 0


def service_json(c: Command) -> dict[str, Any]:
    assert c.service is not None
    d = service_key_json(c.service)
    d["sched_name"] = c.sched_name or DEFAULT_SCHED
    d["persistent"] = c.persistent is not None
    d["timeout"] = c.persistent if c.persistent is not None else 0
    if c.netmask is not None:
        d["netmask"] = int(c.netmask) if c.service.family == "inet6" else c.netmask
    d["ops"] = c.ops
    d["sched_flags"] = list(c.sched_flags)
    d["pe_name"] = c.pe_name or ""
    return d


def dest_json(c: Command) -> dict[str, Any]:
    d: dict[str, Any] = {
        "address": c.dest_address,
        "port": dest_port(c),
        "weight": 1 if c.weight is None else c.weight,
        "u_thresh": c.u_thresh or 0,
        "l_thresh": c.l_thresh or 0,
        "tun_type": c.tun_type or "ipip",
        "tun_port": c.tun_port or 0,
        "tun_flags": c.tun_flags or 0,
        "proxy_protocol": c.proxy_protocol or "",
    }
    if c.fwd_method is not None:
        d["fwd_method"] = c.fwd_method
    return d


def to_op(c: Command) -> dict[str, Any]:
    """One batchable command as a /v1/batch element."""
    if c.cmd is Cmd.FLUSH:
        return {"op": "flush"}
    if c.cmd is Cmd.ZERO:
        return {"op": "zero", **({"service": service_key_json(c.service)} if c.service else {})}
    assert c.service is not None, c.cmd
    key = service_key_json(c.service)
    if c.cmd is Cmd.ADD:
        return {"op": "add_service", "service": service_json(c)}
    if c.cmd is Cmd.EDIT:
        return {"op": "edit_service", "service": service_json(c)}
    if c.cmd is Cmd.DEL:
        return {"op": "del_service", "service": key}
    if c.cmd in (Cmd.ADDDEST, Cmd.EDITDEST):
        name = "add_dest" if c.cmd is Cmd.ADDDEST else "edit_dest"
        return {"op": name, "service": key, "dest": dest_json(c)}
    if c.cmd is Cmd.DELDEST:
        return {
            "op": "del_dest",
            "service": key,
            "dest": {"address": c.dest_address, "port": dest_port(c)},
        }
    if c.cmd in (Cmd.ADDLADDR, Cmd.DELLADDR):
        return {
            "op": "add_laddr" if c.cmd is Cmd.ADDLADDR else "del_laddr",
            "service": key,
            "laddr": c.laddr,
        }
    raise ValueError(f"{c.cmd} is not a table change")
