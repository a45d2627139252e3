"""The OpenAPI 3.0 document of the control API (served at /v1/openapi.json)."""

from __future__ import annotations

from typing import Any

_INT = {"type": "integer"}
_U64 = {"type": "integer", "minimum": 0}
_STR = {"type": "string"}
_BOOL = {"type": "boolean"}
_PORT = {"type": "integer", "minimum": 0, "maximum": 65535}


def _obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    o: dict[str, Any] = {"type": "object", "properties": props}
    if required is not None:
        o["required"] = required
    return o


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


STATS = _obj(
    {k: _U64 for k in ("conns", "inpkts", "outpkts", "inbytes", "outbytes")},
    ["conns", "inpkts", "outpkts", "inbytes", "outbytes"],
)
RATES = _obj(
    {k: _U64 for k in ("cps", "inpps", "outpps", "inbps", "outbps")},
    ["cps", "inpps", "outpps", "inbps", "outbps"],
)
FAMILY = {"type": "string", "enum": ["inet", "inet6"]}
FWD = {"type": "string", "enum": ["masq", "local", "tunnel", "droute", "fullnat"]}
TUN = {"type": "string", "enum": ["ipip", "gue", "gre"]}
SCHED_FLAGS = {
    "type": "array",
    "items": {
        "type": "string",
        "enum": ["flag-1", "flag-2", "flag-3", "sh-fallback", "sh-port", "mh-fallback", "mh-port"],
    },
}

DEST = _obj(
    {
        "address": _STR,
        "port": _PORT,
        "family": FAMILY,
        "fwd_method": FWD,
        "weight": _INT,
        "u_thresh": _INT,
        "l_thresh": _INT,
        "activeconns": _INT,
        "inactconns": _INT,
        "persistconns": _INT,
        "tun_type": TUN,
        "tun_port": _PORT,
        "tun_flags": _INT,
        "proxy_protocol": _STR,
        "available": _BOOL,
        "overloaded": _BOOL,
        "stats": _ref("Stats"),
        "rates": _ref("Rates"),
    },
    ["address", "port", "fwd_method", "weight", "activeconns", "inactconns", "stats", "rates"],
)
SERVICE = _obj(
    {
        "family": FAMILY,
        "protocol": {"type": "string", "enum": ["tcp", "udp", "sctp", ""]},
        "address": _STR,
        "port": _PORT,
        "fwmark": _U64,
        "sched_name": _STR,
        "flags": _INT,
        "persistent": _BOOL,
        "timeout": _INT,
        "netmask": _U64,
        "ops": _BOOL,
        "sched_flags": {"type": "array", "items": _STR},
        "pe_name": _STR,
        "stats": _ref("Stats"),
        "rates": _ref("Rates"),
        "dests": {"type": "array", "items": _ref("Dest")},
        "laddrs": {"type": "array", "items": _STR},
    },
    ["family", "protocol", "address", "port", "fwmark", "sched_name", "dests"],
)
SERVICE_IN = _obj(
    {
        "protocol": {"type": "string", "enum": ["tcp", "udp", "sctp"]},
        "address": _STR,
        "port": _PORT,
        "fwmark": {"type": "integer", "minimum": 0, "maximum": 4294967295},
        "family": FAMILY,
        "sched_name": _STR,
        "persistent": _BOOL,
        "timeout": {"type": "integer", "minimum": 0},
        "netmask": {"oneOf": [{"type": "integer", "minimum": 0}, {"type": "string"}]},
        "ops": _BOOL,
        "sched_flags": SCHED_FLAGS,
        "pe_name": _STR,
    }
)
DEST_IN = _obj(
    {
        "address": _STR,
        "port": _PORT,
        "fwd_method": FWD,
        "weight": {"type": "integer", "minimum": 0, "maximum": 65535},
        "u_thresh": {"type": "integer", "minimum": 0},
        "l_thresh": {"type": "integer", "minimum": 0},
        "tun_type": TUN,
        "tun_port": _PORT,
        "tun_flags": {"type": "integer", "enum": [0, 1, 2]},
        "proxy_protocol": {"type": "string", "enum": ["", "v1", "v2"]},
    },
    ["address"],
)
CONN = _obj(
    {
        "protocol": _STR,
        "family": FAMILY,
        "caddr": _STR,
        "cport": _PORT,
        "vaddr": _STR,
        "vport": _PORT,
        "daddr": _STR,
        "dport": _PORT,
        "state": _STR,
        "expires": {"type": "number", "minimum": 0},
        "fwd_method": _STR,
        "template": _BOOL,
        "fwmark": _U64,
        "pe_name": _STR,
        "pe_data": _STR,
    },
    ["protocol", "caddr", "cport", "vaddr", "vport", "daddr", "dport", "state", "expires"],
)
TIMEOUTS = _obj({"tcp": _INT, "tcpfin": _INT, "udp": _INT}, ["tcp", "tcpfin", "udp"])
TIMEOUTS_IN = _obj(
    {k: {"type": "integer", "minimum": 0, "maximum": 2147483} for k in ("tcp", "tcpfin", "udp")}
)
DAEMON = _obj(
    {
        "state": {"type": "string", "enum": ["master", "backup"]},
        "mcast_ifn": _STR,
        "syncid": _INT,
        "sync_maxlen": _INT,
        "mcast_group": _STR,
        "mcast_port": _PORT,
        "mcast_ttl": _INT,
    },
    ["state"],
)
ERROR = _obj({"error": _STR, "errno": _INT, "detail": _STR, "index": _INT}, ["error"])
EVENT = _obj(
    {
        "seq": {"type": "integer", "minimum": 1},
        "time": {"type": "number"},
        "kind": _STR,
        "level": {"type": "string", "enum": ["debug", "info", "warning", "error", "critical"]},
        "message": _STR,
        "fields": {"type": "object"},
    },
    ["seq", "time", "kind", "level", "message", "fields"],
)
HEALTH = _obj(
    {
        "service": _STR,
        "virtual_server": _STR,
        "address": _STR,
        "port": _PORT,
        "up": _BOOL,
        "weight": _INT,
        "since": {"type": "number"},
    },
    ["service", "virtual_server", "address", "port", "up", "weight", "since"],
)
VRRP = _obj(
    {
        "name": _STR,
        "state": _STR,
        "interface": _STR,
        "vrid": _INT,
        "priority": _INT,
        "effective_priority": _INT,
        "since": {"type": "number"},
    },
    ["name", "state"],
)
OP = _obj(
    {
        "op": {
            "type": "string",
            "enum": [
                "add_service",
                "edit_service",
                "del_service",
                "flush",
                "add_dest",
                "edit_dest",
                "del_dest",
                "add_laddr",
                "del_laddr",
                "zero",
            ],
        },
        "service": _ref("ServiceIn"),
        "dest": _ref("DestIn"),
        "laddr": _STR,
    },
    ["op"],
)

SCHEMAS = {
    "Stats": STATS,
    "Rates": RATES,
    "Dest": DEST,
    "Service": SERVICE,
    "ServiceIn": SERVICE_IN,
    "DestIn": DEST_IN,
    "Conn": CONN,
    "Timeouts": TIMEOUTS,
    "TimeoutsIn": TIMEOUTS_IN,
    "Daemon": DAEMON,
    "Error": ERROR,
    "Op": OP,
    "Event": EVENT,
    "Health": HEALTH,
    "Vrrp": VRRP,
}


def _resp(schema: dict[str, Any] | None, desc: str = "OK") -> dict[str, Any]:
    if schema is None:
        return {"description": desc}
    return {"description": desc, "content": {"application/json": {"schema": schema}}}


_ERR = _resp(_ref("Error"), "refused; nothing changed")
_ERRORS = {"400": _ERR, "403": _ERR, "404": _ERR, "409": _ERR}


def _op(
    summary: str,
    ok: dict[str, dict[str, Any]],
    body: str | None = None,
    params: list[str] | None = None,
) -> dict[str, Any]:
    o: dict[str, Any] = {"summary": summary, "responses": {**ok, **_ERRORS}}
    if body:
        o["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(body)}},
        }
    if params:
        o["parameters"] = [
            {
                "name": p,
                "in": "path",
                "required": True,
                "schema": PARAM_SCHEMAS[p],
                "description": PARAM_DOCS[p],
            }
            for p in params
        ]
    return o


PARAM_DOCS = {
    "sid": "service id: tcp:ADDR:PORT, udp:[ADDR6]:PORT, sctp:..., fwmark:N, fwmark6:N",
    "did": "real server id: ADDR:PORT or [ADDR6]:PORT",
    "addr": "a local address",
    "state": "master or backup",
}
PARAM_SCHEMAS: dict[str, dict[str, Any]] = {
    "sid": {
        "type": "string",
        "pattern": (
            r"^((tcp|udp|sctp):(\[[0-9A-Fa-f:.]+\]|[0-9.]+):[0-9]{1,5}"
            r"|fwmark6?:[0-9]{1,10})$"
        ),
    },
    "did": {"type": "string", "pattern": r"^(\[[0-9A-Fa-f:.]+\]|[0-9.]+):[0-9]{1,5}$"},
    "addr": {"type": "string", "pattern": r"^[0-9A-Fa-f:.]+$"},
    "state": {"type": "string", "enum": ["master", "backup"]},
}


def arr(name: str) -> dict[str, Any]:
    return {"type": "array", "items": _ref(name)}


def _events_op() -> dict[str, Any]:
    o = _op("recent state changes, oldest first", {"200": _resp(arr("Event"))})
    o["parameters"] = [
        {
            "name": "since",
            "in": "query",
            "required": False,
            "schema": {"type": "integer", "minimum": 0, "maximum": 999999999999999999},
            "description": "only the events numbered above this (seq of the last one seen)",
        }
    ]
    return o


def document(version: str) -> dict[str, Any]:
    no_content = {"204": _resp(None, "done")}
    paths = {
        "/v1/info": {"get": _op("daemon information", {"200": _resp({"type": "object"})})},
        "/v1/dataplane": {
            "get": _op("the data plane's counters", {"200": _resp({"type": "object"})})
        },
        "/v1/openapi.json": {"get": _op("this document", {"200": _resp({"type": "object"})})},
        "/v1/services": {
            "get": _op("list virtual services", {"200": _resp(arr("Service"))}),
            "post": _op("add a virtual service (-A)", {"201": _resp(_ref("Service"))}, "ServiceIn"),
            "delete": _op("delete every virtual service (-C)", no_content),
        },
        "/v1/services/{sid}": {
            "get": _op("one virtual service", {"200": _resp(_ref("Service"))}, params=["sid"]),
            "put": _op(
                "edit a virtual service (-E)", {"200": _resp(_ref("Service"))}, "ServiceIn", ["sid"]
            ),
            "delete": _op("delete a virtual service (-D)", no_content, params=["sid"]),
        },
        "/v1/services/{sid}/zero": {
            "post": _op("zero a service's counters (-Z)", no_content, params=["sid"])
        },
        "/v1/services/{sid}/dests": {
            "get": _op("real servers", {"200": _resp(arr("Dest"))}, params=["sid"]),
            "post": _op("add a real server (-a)", {"201": _resp(_ref("Dest"))}, "DestIn", ["sid"]),
        },
        "/v1/services/{sid}/dests/{did}": {
            "put": _op(
                "edit a real server (-e)", {"200": _resp(_ref("Dest"))}, "DestIn", ["sid", "did"]
            ),
            "delete": _op("delete a real server (-d)", no_content, params=["sid", "did"]),
        },
        "/v1/services/{sid}/laddrs": {
            "get": _op(
                "FULLNAT local addresses",
                {"200": _resp({"type": "array", "items": _STR})},
                params=["sid"],
            ),
            "post": _op(
                "add a FULLNAT local address", {"201": _resp({"type": "object"})}, "Laddr", ["sid"]
            ),
        },
        "/v1/services/{sid}/laddrs/{addr}": {
            "delete": _op("delete a FULLNAT local address", no_content, params=["sid", "addr"])
        },
        "/v1/zero": {"post": _op("zero every counter (-Z)", no_content)},
        "/v1/connections": {"get": _op("connection entries (-c)", {"200": _resp(arr("Conn"))})},
        "/v1/timeouts": {
            "get": _op("tcp tcpfin udp timeouts", {"200": _resp(_ref("Timeouts"))}),
            "put": _op(
                "set timeouts (--set); 0 keeps a value",
                {"200": _resp(_ref("Timeouts"))},
                "TimeoutsIn",
            ),
        },
        "/v1/stats": {"get": _op("total counters and rates", {"200": _resp({"type": "object"})})},
        "/v1/daemons": {
            "get": _op("sync daemons (--daemon)", {"200": _resp(arr("Daemon"))}),
            "post": _op("start a sync daemon", {"201": _resp(_ref("Daemon"))}, "Daemon"),
        },
        "/v1/daemons/{state}": {"delete": _op("stop a sync daemon", no_content, params=["state"])},
        "/v1/batch": {
            "post": _op(
                "apply changes all or nothing (-R)",
                {"200": _resp(_obj({"applied": _INT}, ["applied"]))},
                "Batch",
            )
        },
        "/v1/events": {"get": _events_op()},
        "/v1/health": {
            "get": _op(
                "health-checked real servers (pylvsd -f): up, weight, last change",
                {"200": _resp(arr("Health"))},
            )
        },
        "/v1/vrrp": {"get": _op("VRRP instances and their state", {"200": _resp(arr("Vrrp"))})},
    }
    schemas = dict(SCHEMAS)
    schemas["Laddr"] = _obj({"address": _STR}, ["address"])
    schemas["Batch"] = _obj({"ops": {"type": "array", "items": _ref("Op")}}, ["ops"])
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "pylvsd control API",
            "version": version,
            "description": "Linux Virtual Server in Python: the IPVS table over HTTP+JSON.",
        },
        "paths": paths,
        "components": {"schemas": schemas},
    }
