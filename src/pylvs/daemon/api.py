"""The control API: HTTP/1.1 + JSON under /v1 (aiohttp), on a unix socket or TCP.

A thin wrapper around ``ctl.Control``: it decodes the request, calls one
operation and encodes the answer.  A refused change answers 4xx with the
message ipvsadm would print in ``error`` and changes nothing.

Besides /v1 (described by openapi.py), every listener serves the Prometheus
metrics at /metrics and the dashboard at / (``pylvs.web``).
"""

from __future__ import annotations

import errno
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from pylvs.core.errors import IPVSError
from pylvs.core.table import Op
from pylvs.daemon import ctl, openapi, views
from pylvs.daemon.ctl import Control, RequestError
from pylvs.web import HealthProvider, SyncProvider, VrrpProvider, dashboard
from pylvs.web.events import Events
from pylvs.web.metrics import CONTENT_TYPE, IPVSCollector

VERSION = "0.1.0"
IPVS_VERSION = "1.2.1"
CONN_TAB_SIZE = 4096

STATUS = {
    errno.EEXIST: 409,
    errno.ESRCH: 404,
    errno.ENOENT: 404,
    errno.EINVAL: 400,
    errno.ERANGE: 400,
    errno.EOPNOTSUPP: 400,
    errno.EPERM: 403,
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CONTROL: web.AppKey[Control] = web.AppKey("control", Control)
INFO: web.AppKey[dict[str, Any]] = web.AppKey("info", dict)
COUNTERS: web.AppKey[Callable[[], dict[str, int]]] = web.AppKey("counters")
WRITABLE: web.AppKey[bool] = web.AppKey("writable", bool)
METRICS: web.AppKey[IPVSCollector] = web.AppKey("metrics", IPVSCollector)
EVENTS: web.AppKey[Events | None] = web.AppKey("events")
HEALTH: web.AppKey[HealthProvider | None] = web.AppKey("health")
VRRP: web.AppKey[VrrpProvider | None] = web.AppKey("vrrp")


def _json(data: object, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda o: json.dumps(o, indent=None))


def error_response(e: IPVSError) -> web.Response:
    body: dict[str, Any] = {"error": e.message, "errno": e.errno}
    if e.detail:
        body["detail"] = e.detail
    if e.index is not None:
        body["index"] = e.index
    return _json(body, STATUS.get(e.errno, 400))


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except IPVSError as e:
        return error_response(e)


async def _body(request: web.Request) -> object:
    if not request.can_read_body:
        raise RequestError("a JSON body is required")
    try:
        return await request.json(loads=json.loads)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise RequestError("the request body is not valid JSON") from None


def _ctl(request: web.Request) -> Control:
    return request.app[CONTROL]


def _writable(request: web.Request) -> None:
    if not request.app[WRITABLE]:
        raise IPVSError("this listener is read-only", errno.EPERM)


# -- handlers -----------------------------------------------------------------------


async def get_info(request: web.Request) -> web.Response:
    return _json(request.app[INFO])


async def get_dataplane(request: web.Request) -> web.Response:
    """The data plane's own counters (drops by reason, frames, relays...)."""
    counters = request.app[COUNTERS]()
    return _json({"name": request.app[INFO].get("dataplane"), "counters": counters})


async def get_openapi(request: web.Request) -> web.Response:
    return _json(openapi.document(VERSION))


async def list_services(request: web.Request) -> web.Response:
    return _json(_ctl(request).services())


async def add_service(request: web.Request) -> web.Response:
    _writable(request)
    c = _ctl(request)
    spec = ctl.service_spec(ctl._require_object(await _body(request)))
    c.apply(Op("add_service", (spec,)))
    return _json(c.service(ctl.format_sid(spec.key)), 201)


async def flush(request: web.Request) -> web.Response:
    _writable(request)
    _ctl(request).apply(Op("flush", ()))
    return web.Response(status=204)


async def get_service(request: web.Request) -> web.Response:
    return _json(_ctl(request).service(request.match_info["sid"]))


async def edit_service(request: web.Request) -> web.Response:
    _writable(request)
    c = _ctl(request)
    key = ctl.parse_sid(request.match_info["sid"])
    body = dict(ctl._require_object(await _body(request)))
    body.update(_key_fields(key))
    spec = ctl.service_spec(body)
    c.apply(Op("edit_service", (spec,)))
    return _json(c.service(request.match_info["sid"]))


def _key_fields(key: Any) -> dict[str, Any]:
    if key.fwmark:
        return {"fwmark": key.fwmark, "family": "inet6" if key.af == 10 else "inet"}
    return {
        "protocol": views.PROTO_NAMES[key.protocol],
        "address": str(key.addr),
        "port": key.port,
        "fwmark": 0,
    }


async def del_service(request: web.Request) -> web.Response:
    _writable(request)
    _ctl(request).apply(Op("del_service", (ctl.parse_sid(request.match_info["sid"]),)))
    return web.Response(status=204)


async def zero_service(request: web.Request) -> web.Response:
    _writable(request)
    _ctl(request).apply(Op("zero", (ctl.parse_sid(request.match_info["sid"]),)))
    return web.Response(status=204)


async def zero_all(request: web.Request) -> web.Response:
    _writable(request)
    _ctl(request).apply(Op("zero", (None,)))
    return web.Response(status=204)


async def list_dests(request: web.Request) -> web.Response:
    return _json(_ctl(request).service(request.match_info["sid"])["dests"])


async def add_dest(request: web.Request) -> web.Response:
    _writable(request)
    c = _ctl(request)
    key = ctl.parse_sid(request.match_info["sid"])
    spec = ctl.dest_spec(ctl._require_object(await _body(request)), c.policy)
    c.apply(Op("add_dest", (key, spec)))
    return _json(_find_dest(c, request.match_info["sid"], str(spec.addr), None), 201)


def _find_dest(c: Control, sid: str, addr: str, port: int | None) -> Any:
    dests = c.service(sid)["dests"]
    for d in dests:
        if d["address"] == addr and (port is None or d["port"] == port):
            return d
    return dests[0] if dests else {}


async def edit_dest(request: web.Request) -> web.Response:
    _writable(request)
    c = _ctl(request)
    key = ctl.parse_sid(request.match_info["sid"])
    addr, port = ctl.parse_did(request.match_info["did"])
    body = dict(ctl._require_object(await _body(request)))
    body["address"], body["port"] = str(addr), port
    c.apply(Op("edit_dest", (key, ctl.dest_spec(body, c.policy))))
    return _json(_find_dest(c, request.match_info["sid"], str(addr), None))


async def del_dest(request: web.Request) -> web.Response:
    _writable(request)
    key = ctl.parse_sid(request.match_info["sid"])
    addr, port = ctl.parse_did(request.match_info["did"])
    _ctl(request).apply(Op("del_dest", (key, addr, port)))
    return web.Response(status=204)


async def list_laddrs(request: web.Request) -> web.Response:
    return _json(_ctl(request).service(request.match_info["sid"])["laddrs"])


async def add_laddr(request: web.Request) -> web.Response:
    _writable(request)
    key = ctl.parse_sid(request.match_info["sid"])
    body = ctl._require_object(await _body(request))
    addr = ctl._addr(body.get("address"), "address")
    _ctl(request).apply(Op("add_laddr", (key, addr)))
    return _json({"address": str(addr)}, 201)


async def del_laddr(request: web.Request) -> web.Response:
    _writable(request)
    key = ctl.parse_sid(request.match_info["sid"])
    addr = ctl._addr(request.match_info["addr"], "address")
    _ctl(request).apply(Op("del_laddr", (key, addr)))
    return web.Response(status=204)


async def list_conns(request: web.Request) -> web.Response:
    return _json(_ctl(request).connections())


async def get_timeouts(request: web.Request) -> web.Response:
    return _json(_ctl(request).timeouts())


async def set_timeouts(request: web.Request) -> web.Response:
    _writable(request)
    return _json(_ctl(request).set_timeouts(await _body(request)))


async def get_stats(request: web.Request) -> web.Response:
    return _json(_ctl(request).stats())


async def list_daemons(request: web.Request) -> web.Response:
    return _json([d.as_json() for d in _ctl(request).daemons.values()])


async def start_daemon(request: web.Request) -> web.Response:
    _writable(request)
    return _json(_ctl(request).start_daemon(await _body(request)), 201)


async def stop_daemon(request: web.Request) -> web.Response:
    _writable(request)
    _ctl(request).stop_daemon(request.match_info["state"])
    return web.Response(status=204)


async def batch(request: web.Request) -> web.Response:
    _writable(request)
    c = _ctl(request)
    body = ctl._require_object(await _body(request))
    items = body.get("ops")
    if not isinstance(items, list):
        raise RequestError("'ops' must be a list")
    ops = []
    for i, item in enumerate(items):
        try:
            ops.append(c.op_from_json(item))
        except IPVSError as e:
            e.index = i
            raise
    c.batch(ops)
    return _json({"applied": len(ops)})


async def get_metrics(request: web.Request) -> web.Response:
    """Prometheus text format (not part of the JSON API)."""
    body = request.app[METRICS].exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


async def list_events(request: web.Request) -> web.Response:
    text = request.query.get("since", "0")
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise RequestError("'since' must be an event number (an integer >= 0)")
    events = request.app[EVENTS]
    return _json(events.since(int(text)) if events is not None else [])


async def list_health(request: web.Request) -> web.Response:
    provider = request.app[HEALTH]
    states = provider() if provider is not None else None
    return _json(states or [])


async def list_vrrp(request: web.Request) -> web.Response:
    provider = request.app[VRRP]
    insts = provider() if provider is not None else None
    return _json(insts or [])


def make_app(
    control: Control,
    info: dict[str, Any],
    writable: bool = True,
    counters: Callable[[], dict[str, int]] | None = None,
    *,
    health: HealthProvider | None = None,
    vrrp: VrrpProvider | None = None,
    sync: SyncProvider | None = None,
    events: Events | None = None,
) -> web.Application:
    """The application of one listener.  ``health``, ``vrrp`` and ``sync`` are callables
    the daemon passes (see ``pylvs.web``); they are called at each request/scrape."""
    app = web.Application(middlewares=[errors_middleware], client_max_size=16 * 1024 * 1024)
    app[CONTROL] = control
    app[INFO] = info
    app[WRITABLE] = writable
    app[COUNTERS] = counters or dict
    app[EVENTS] = events
    app[HEALTH] = health
    app[VRRP] = vrrp
    app[METRICS] = IPVSCollector(
        control,
        dataplane=str(info.get("dataplane", "")),
        counters=app[COUNTERS],
        health=health,
        vrrp=vrrp,
        sync=sync,
        events=events,
        version=str(info.get("version", VERSION)),
    )
    r = app.router
    r.add_get("/v1/info", get_info)
    r.add_get("/v1/dataplane", get_dataplane)
    r.add_get("/v1/openapi.json", get_openapi)
    r.add_get("/v1/services", list_services)
    r.add_post("/v1/services", add_service)
    r.add_delete("/v1/services", flush)
    r.add_get("/v1/services/{sid}", get_service)
    r.add_put("/v1/services/{sid}", edit_service)
    r.add_delete("/v1/services/{sid}", del_service)
    r.add_post("/v1/services/{sid}/zero", zero_service)
    r.add_get("/v1/services/{sid}/dests", list_dests)
    r.add_post("/v1/services/{sid}/dests", add_dest)
    r.add_put("/v1/services/{sid}/dests/{did}", edit_dest)
    r.add_delete("/v1/services/{sid}/dests/{did}", del_dest)
    r.add_get("/v1/services/{sid}/laddrs", list_laddrs)
    r.add_post("/v1/services/{sid}/laddrs", add_laddr)
    r.add_delete("/v1/services/{sid}/laddrs/{addr}", del_laddr)
    r.add_post("/v1/zero", zero_all)
    r.add_get("/v1/connections", list_conns)
    r.add_get("/v1/timeouts", get_timeouts)
    r.add_put("/v1/timeouts", set_timeouts)
    r.add_get("/v1/stats", get_stats)
    r.add_get("/v1/daemons", list_daemons)
    r.add_post("/v1/daemons", start_daemon)
    r.add_delete("/v1/daemons/{state}", stop_daemon)
    r.add_post("/v1/batch", batch)
    r.add_get("/v1/events", list_events)
    r.add_get("/v1/health", list_health)
    r.add_get("/v1/vrrp", list_vrrp)
    r.add_get("/metrics", get_metrics)
    dashboard.add_routes(r)
    return app
