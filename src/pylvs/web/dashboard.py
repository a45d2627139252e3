"""The live dashboard pylvsd serves at / (what HAProxy's stats page is to HAProxy).

One page, no build step: ``static/index.html``, ``app.js`` and ``style.css``
as they are in the source tree.  The page polls the JSON API every 2 s
(/v1/info once, then /v1/services, /v1/stats, /v1/health, /v1/vrrp and
/v1/events?since=N) and draws every virtual service and real server with its
forwarding method, weight, health, active/inactive connections and live
rates, with small canvas sparklines of the last few minutes kept in the
browser.  The list is virtualised (only the rows on screen exist in the
DOM, one timer for the whole page), so 500 services with thousands of real
servers stay smooth.

Served on every listener (the unix socket and --http); it only reads.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).resolve().parent / "static"
FILES = ("index.html", "app.js", "style.css")


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


def add_routes(router: web.UrlDispatcher) -> None:
    """GET / (the page) and GET /static/<file> (its script and style sheet)."""
    router.add_get("/", index)
    router.add_static("/static/", STATIC, name="static")
