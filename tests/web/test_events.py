"""Health-check state, events and reloads as the API, /metrics and JSON logs show them:
``pylvsd -f keepalived.conf --log-format json`` with a real server that answers and one
that does not (then does), SIGHUP reloads good and bad."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pylvs.testing.daemon import RunningDaemon, free_port, wait_for_socket
from pylvs.web.events import Events, JsonFormatter, log_event
from tests.web.support import LO, Backend, api, backend, metrics, wait_for

CONF = """
virtual_server 127.0.0.1 {vport} {{
    delay_loop 1
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server 127.0.0.1 {up} {{
        weight 2
        TCP_CHECK {{
            connect_timeout 1
            retry 0
        }}
    }}
    real_server 127.0.0.1 {down} {{
        weight 1
        TCP_CHECK {{
            connect_timeout 1
            retry 0
        }}
    }}
}}
"""


@contextlib.contextmanager
def daemon(conf: Path, log: Path) -> Iterator[RunningDaemon]:
    sock = str(conf.parent / "pylvsd.sock")
    http = f"{LO}:{free_port()}"
    with open(log, "wb") as f:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pylvs.daemon.main",
                "--dataplane",
                "proxy",
                "--socket",
                sock,
                "--http",
                http,
                "-f",
                str(conf),
                "--log-format",
                "json",
            ],
            stdin=subprocess.DEVNULL,
            stdout=f,
            stderr=f,
        )
    try:
        wait_for_socket(sock, proc)
        yield RunningDaemon(proc, sock, http)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def events(d: RunningDaemon, since: int = 0) -> list[dict[str, Any]]:
    return api(d, f"/v1/events?since={since}")  # type: ignore[return-value]


def health(d: RunningDaemon) -> dict[int, dict[str, Any]]:
    return {h["port"]: h for h in api(d, "/v1/health")}  # type: ignore[attr-defined]


def test_health_events_reloads_and_json_logs(tmp_path: Path) -> None:
    b = Backend()
    down = free_port()
    vport = free_port()
    conf = tmp_path / "keepalived.conf"
    text = CONF.format(vport=vport, up=b.port, down=down)
    conf.write_text(text)
    log = tmp_path / "pylvsd.log"
    revived: Backend | None = None
    t0 = time.time()
    try:
        with daemon(conf, log) as d:
            wait_for(lambda: not health(d)[down]["up"], 15, "the silent real server down")
            h = health(d)
            assert h[b.port]["up"] and h[b.port]["weight"] == 2
            assert h[b.port]["service"] == f"tcp:{LO}:{vport}"
            assert h[b.port]["virtual_server"] == f"TCP {LO}:{vport}"
            assert t0 - 1 <= h[down]["since"] <= time.time()
            evs = events(d)
            assert [e["kind"] for e in evs][:1] == ["start"]
            rs_down = [e for e in evs if e["kind"] == "rs_down"]
            assert len(rs_down) == 1
            assert rs_down[0]["fields"]["real_server"] == f"{LO}:{down}"
            assert rs_down[0]["fields"]["virtual_server"] == f"TCP {LO}:{vport}"
            assert "Removing service" in rs_down[0]["message"]
            seq = rs_down[0]["seq"]
            assert all(e["seq"] > seq for e in events(d, seq))
            assert events(d, 10**9) == []
            with pytest.raises(urllib.error.HTTPError) as ei:
                events(d, -1)  # type: ignore[arg-type]
            assert ei.value.code == 400

            m = metrics(d)
            up_l = backend(LO, vport, LO, b.port)
            down_l = backend(LO, vport, LO, down)
            assert m[("pylvs_backend_health_up", up_l)] == 1
            assert m[("pylvs_backend_health_up", down_l)] == 0
            ts = "pylvs_backend_health_last_change_timestamp_seconds"
            assert m[(ts, down_l)] == h[down]["since"]
            assert ("node_ipvs_backend_weight", down_l) not in m  # removed from the table
            assert m[("node_ipvs_backend_weight", up_l)] == 2
            kinds = {dict(lb)["kind"]: v for (n, lb), v in m.items() if n == "pylvs_events_total"}
            assert kinds["rs_down"] == 1 and kinds["start"] == 1

            revived = Backend(down)  # the server comes back
            wait_for(lambda: health(d)[down]["up"], 15, "the revived real server up")
            assert [e["kind"] for e in events(d, seq)] == ["rs_up"]
            assert health(d)[down]["since"] > h[down]["since"]

            d.proc.send_signal(signal.SIGHUP)  # same file: a successful reload
            wait_for(lambda: "reload" in [e["kind"] for e in events(d, seq)], 10, "reload")
            conf.write_text(text.replace("lb_algo rr", "lb_algo nonsense"))
            d.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: "reload_failed" in [e["kind"] for e in events(d)], 10, "failure")
            m = metrics(d)
            reloads = {
                dict(lb)["result"]: v
                for (n, lb), v in m.items()
                if n == "pylvs_config_reloads_total"
            }
            assert reloads == {"success": 1, "failure": 1}
            assert m[("pylvs_backend_health_up", down_l)] == 1
    finally:
        b.close()
        if revived is not None:
            revived.close()

    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert lines, "no log"
    for entry in lines:
        assert {"time", "level", "logger", "message"} <= entry.keys(), entry
        assert entry["time"].endswith("Z") and entry["time"][10] == "T"
        assert entry["level"] in ("debug", "info", "warning", "error", "critical")
    by_event: dict[str, list[dict[str, Any]]] = {}
    for entry in lines:
        if "event" in entry:
            by_event.setdefault(entry["event"], []).append(entry)
    assert by_event["rs_down"][0]["real_server"] == f"{LO}:{down}"
    assert by_event["rs_down"][0]["logger"] == "pylvsd.health"
    assert by_event["rs_up"][0]["virtual_server"] == f"TCP {LO}:{vport}"
    assert by_event["reload"][0]["file"] == str(conf)
    assert by_event["reload_failed"][0]["level"] == "error"
    assert by_event["start"][0]["dataplane"] == "proxy"


def test_event_ring_and_json_formatter() -> None:
    clock = iter(range(100, 200))
    ev = Events(size=3, clock=lambda: float(next(clock)))
    for i in range(5):
        ev.record("rs_down", f"m{i}", real_server=f"10.0.0.{i}:80")
    assert [e["seq"] for e in ev.since()] == [3, 4, 5]  # the ring keeps the last 3
    assert [e["seq"] for e in ev.since(4)] == [5]
    assert ev.counts["rs_down"] == 5  # the counts keep everything
    assert ev.since(5) == []

    import io
    import logging

    buf = io.StringIO()
    h = logging.StreamHandler(buf)
    h.setFormatter(JsonFormatter())
    lg = logging.getLogger("pylvsd.test-json")
    lg.addHandler(h)
    lg.propagate = False
    lg.setLevel(logging.INFO)
    try:
        log_event(
            lg, ev, "reload", "reloaded %s: %d changes", "/etc/x", 3, file="/etc/x", changes=3
        )
        lg.info('plain "quoted" \u00e9')
    finally:
        lg.removeHandler(h)
    first, second = (json.loads(x) for x in buf.getvalue().splitlines())
    assert first["message"] == "reloaded /etc/x: 3 changes"
    assert first["event"] == "reload" and first["file"] == "/etc/x" and first["changes"] == 3
    assert first["logger"] == "pylvsd.test-json" and first["level"] == "info"
    assert second == {k: second[k] for k in ("time", "level", "logger", "message")}
    assert second["message"] == 'plain "quoted" \u00e9'
    assert ev.since(5)[0]["message"] == "reloaded /etc/x: 3 changes"
