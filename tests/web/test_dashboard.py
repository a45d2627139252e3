"""The dashboard in headless Chromium (Debian's chromium and chromedriver, selenium):
a running pylvsd with real traffic shows its services and real servers and the numbers
move; 500 services stay a short DOM (the list is virtualised) and can be filtered."""

from __future__ import annotations

import os
import shlex
import shutil
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pylvs.cli.client import Client
from pylvs.testing.daemon import RunningDaemon, free_port, pylvsd
from tests.web.support import LO, Backend, Traffic

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def require_chromium() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(p)]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (the test extra)")
    if not missing:
        return
    reason = f"the dashboard test needs {', '.join(missing)} (Debian: chromium chromium-driver)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} [CI=true: failing instead of skipping]")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        opts.add_argument(a)
    opts.add_argument("--window-size=1366,800")  # a laptop screen
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver: Any, cond: Callable[[Any], Any], timeout: float, what: str) -> Any:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.2).until(cond)
    except TimeoutException:
        raise AssertionError(
            f"{what}: not shown in {timeout:.0f} s; "
            f"status={_text(driver, 'status')!r} page={driver.page_source[:3000]}"
        ) from None


# The rows are redrawn at every poll: read them in one script, never hold an element.
_READ = """
const r = document.querySelector(`#rows .row[data-key="${arguments[0]}"]`);
if (!r) return null;
if (!arguments[1]) return true;
const c = r.querySelector("." + arguments[1]);
if (!c) return null;
return arguments[2] ? c.getAttribute(arguments[2]) : c.textContent;
"""


def _text(driver: Any, id_: str) -> str:
    return str(
        driver.execute_script("return document.getElementById(arguments[0]).textContent", id_)
    )


def row(driver: Any, key: str) -> bool:
    return bool(driver.execute_script(_READ, key, "", ""))


def cell(driver: Any, key: str, cls: str, attr: str = "") -> str:
    return str(driver.execute_script(_READ, key, cls, attr) or "")


def click(driver: Any, key: str) -> None:
    driver.execute_script(
        'document.querySelector(`#rows .row[data-key="${arguments[0]}"]`).click()', key
    )


def adm(d: RunningDaemon, cmd: str) -> None:
    r = d.pylvsadm(*shlex.split(cmd))
    assert r.returncode == 0, (cmd, r.stderr)


def test_services_servers_and_live_numbers(browser: Any) -> None:
    b1, b2, b3 = Backend(), Backend(), Backend()
    web, dns = free_port(), free_port()
    try:
        with pylvsd(dataplane="proxy", http=True) as d:
            adm(d, f"-A -t {LO}:{web} -s rr")
            adm(d, f"-a -t {LO}:{web} -r {LO}:{b1.port} -m -w 3")
            adm(d, f"-a -t {LO}:{web} -r {LO}:{b2.port} -m -w 1")
            adm(d, f"-A -t {LO}:{dns} -s wlc -p 60")
            adm(d, f"-a -t {LO}:{dns} -r {LO}:{b3.port} -m")
            with Traffic(web, pause=0.01) as t:
                browser.get(f"http://{d.http}/")
                svc = f"tcp:{LO}:{web}"
                s1 = f"{svc}|{LO}|{b1.port}"
                wait(
                    browser, lambda dr: row(dr, svc) and row(dr, s1), 15, "service and server rows"
                )
                assert f"TCP {LO}:{web}" in cell(browser, svc, "c-name")
                assert "rr" in cell(browser, svc, "c-method")
                assert "wlc persistent 60" in cell(browser, f"tcp:{LO}:{dns}", "c-method")
                assert cell(browser, s1, "c-method") == "masq"
                assert cell(browser, s1, "c-weight") == "3"
                assert cell(browser, f"{svc}|{LO}|{b2.port}", "c-weight") == "1"
                assert row(browser, f"tcp:{LO}:{dns}|{LO}|{b3.port}")
                assert "pylvsd" in browser.title
                assert "proxy data plane" in _text(browser, "info")
                assert "start" in _text(browser, "events")

                # the numbers move: total connections, the service's, then the rates
                first = _text(browser, "tot-conns")
                wait(browser, lambda dr: _text(dr, "tot-conns") != first, 10, "new connections")
                before = cell(browser, svc, "c-conns", "title")
                wait(
                    browser,
                    lambda dr: cell(dr, svc, "c-conns", "title") not in ("", before),
                    10,
                    "the service's connection count changing",
                )
                wait(
                    browser,
                    lambda dr: (
                        cell(dr, svc, "c-cps") not in ("", "0")
                        and _text(dr, "tot-cps") not in ("\u2013", "0")
                    ),
                    15,
                    "a connection rate",
                )
                assert "updated" in _text(browser, "status")
                # a sparkline was drawn (the canvas has non-transparent pixels)
                drawn = browser.execute_script(
                    "const c = document.querySelector(`#rows canvas[data-hist='${arguments[0]}']`);"
                    "const p = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
                    "return p.some((v, i) => i % 4 === 3 && v > 0);",
                    svc,
                )
                assert drawn
                assert t.ok > 0 and not t.errors
                # health and events follow a change: a real server removed by hand
                adm(d, f"-d -t {LO}:{web} -r {LO}:{b2.port}")
                wait(browser, lambda dr: not row(dr, f"{svc}|{LO}|{b2.port}"), 10, "removal")
    finally:
        for b in (b1, b2, b3):
            b.close()


def test_500_services_virtualised_and_filtered(browser: Any) -> None:
    from selenium.webdriver.common.by import By

    with pylvsd(http=True) as d:
        ops = []
        for i in range(500):
            svc = {"protocol": "tcp", "address": f"10.1.{i // 250}.{i % 250 + 1}", "port": 80}
            ops.append({"op": "add_service", "service": {**svc, "sched_name": "wlc"}})
            for j in range(4):
                dest = {"address": f"192.168.{i // 60}.{(i % 60) * 4 + j + 1}", "weight": j + 1}
                ops.append({"op": "add_dest", "service": svc, "dest": dest})
        Client(d.socket).request("POST", "/v1/batch", {"ops": ops})
        with urllib.request.urlopen(f"http://{d.http}/v1/services", timeout=30) as r:
            assert r.status == 200
        browser.get(f"http://{d.http}/")
        wait(browser, lambda dr: "500 of 500" in _text(dr, "count"), 20, "500 services listed")
        n, svcs = browser.execute_script(
            "const rs = document.querySelectorAll('#rows .row');"
            "return [rs.length, [...rs].filter((r) => r.classList.contains('svc')).length];"
        )
        assert 10 <= n < 100 and svcs == n, n  # only what is on screen (collapsed services)
        # scroll to the end: the last service is drawn, the first is not any more
        browser.execute_script(
            "const v = document.getElementById('viewport'); v.scrollTop = v.scrollHeight;"
        )
        last = "tcp:10.1.1.250:80"
        wait(browser, lambda dr: row(dr, last), 10, "the last service")
        assert not row(browser, "tcp:10.1.0.1:80")
        assert len(browser.find_elements(By.CSS_SELECTOR, "#rows .row")) < 100
        # filter down to one service and expand it
        box = browser.find_element(By.ID, "filter")
        box.send_keys("10.1.0.7:80")
        wait(browser, lambda dr: "1 of 500" in _text(dr, "count"), 10, "the filter")
        click(browser, "tcp:10.1.0.7:80")
        wait(
            browser,
            lambda dr: len(dr.find_elements(By.CSS_SELECTOR, "#rows .row.dest")) == 4,
            10,
            "the 4 real servers of the expanded service",
        )
        assert cell(browser, "tcp:10.1.0.7:80", "c-health") == "4/4 up"


def _unix_get(path: str, url: str) -> tuple[int, str, bytes]:
    from pylvs.cli.client import _UnixConnection

    conn = _UnixConnection(path, 10)
    try:
        conn.request("GET", url)
        r = conn.getresponse()
        return r.status, str(r.getheader("Content-Type", "")), r.read()
    finally:
        conn.close()


def test_page_metrics_and_events_on_both_listeners() -> None:
    """No browser needed: /, its files, /metrics and /v1/events answer on the unix socket
    and on a read-only --http listener alike; the page's files are the ones in the tree."""
    from pylvs.web.dashboard import FILES, STATIC

    with pylvsd("--http", f"{LO}:{free_port()}") as d:  # read-only TCP listener
        http = d.proc.args[d.proc.args.index("--http") + 1]  # type: ignore[union-attr]
        for name in FILES:
            want = (STATIC / name).read_bytes()
            url = "/" if name == "index.html" else f"/static/{name}"
            status, ctype, body = _unix_get(d.socket, url)
            assert status == 200 and body == want, url
            with urllib.request.urlopen(f"http://{http}{url}", timeout=10) as r:
                assert r.read() == want and r.headers["Content-Type"] == ctype
        status, ctype, body = _unix_get(d.socket, "/metrics")
        assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
        assert b"# TYPE node_ipvs_connections_total counter" in body
        with urllib.request.urlopen(f"http://{http}/metrics", timeout=10) as r:
            assert b"node_ipvs_backend_weight" in r.read()
        status, _, body = _unix_get(d.socket, "/v1/events")
        assert status == 200 and b'"kind": "start"' in body
        assert _unix_get(d.socket, "/static/../api.py")[0] == 404
        assert _unix_get(d.socket, "/v1/health")[2] == b"[]"
        assert _unix_get(d.socket, "/v1/vrrp")[2] == b"[]"
