"""``pylvs demo``: a director on loopback with demo real servers, for real.

Starts three small HTTP real servers (in this process), a ``pylvsd`` with
the proxy data plane on the usual control socket, and the virtual service
127.0.0.1:8080 (wrr, weights 3/2/1) in front of them; then prints how to
use it and waits for Ctrl-C, stopping everything on the way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys

from pylvs.cli.client import (
    Client,
    DaemonStartError,
    DaemonUnreachable,
    stop_daemon,
    wait_for_daemon,
)
from pylvs.daemon.paths import default_socket

VIP, VPORT = "127.0.0.1", 8080
REAL_SERVERS = [("127.0.0.1", 8081, 3), ("127.0.0.1", 8082, 2), ("127.0.0.1", 8083, 1)]


async def real_server(port: int) -> asyncio.Server:
    body = f"hello from real server 127.0.0.1:{port}\n".encode()
    response = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                writer.write(response)
                await writer.drain()
                if b"connection: close" in head.lower():
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", port, reuse_address=True)


def start_daemon(sock: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pylvs.daemon.main", "--dataplane", "proxy", "--socket", sock]
    )
    try:
        wait_for_daemon(sock, proc)
    except DaemonStartError as e:
        proc.kill()
        raise SystemExit(f"pylvs demo: {e}") from e
    return proc


def configure(sock: str) -> None:
    svc = {"protocol": "tcp", "address": VIP, "port": VPORT}
    ops = [{"op": "add_service", "service": {**svc, "sched_name": "wrr"}}]
    ops += [
        {
            "op": "add_dest",
            "service": svc,
            "dest": {"address": a, "port": p, "weight": w, "fwd_method": "masq"},
        }
        for a, p, w in REAL_SERVERS
    ]
    Client(sock).request("POST", "/v1/batch", {"ops": ops})


async def wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def main(argv: list[str] | None = None) -> int:
    sock = default_socket()
    if os.path.exists(sock):
        with contextlib.suppress(DaemonUnreachable, OSError):
            Client(sock, timeout=2).get("/v1/info")
            print(f"pylvs demo: a pylvsd already runs on {sock}; stop it first", file=sys.stderr)
            return 1
    loop = asyncio.new_event_loop()
    servers = [loop.run_until_complete(real_server(p)) for _, p, _ in REAL_SERVERS]
    proc = start_daemon(sock)
    try:
        configure(sock)
        env = "" if "PYLVS_SOCKET" not in os.environ else f"PYLVS_SOCKET={sock} "
        print(
            f"\npylvs demo: director on {VIP}:{VPORT} (proxy data plane, wrr 3/2/1) in front of "
            + ", ".join(f"{a}:{p}" for a, p, _ in REAL_SERVERS)
            + f"\n  try:    for i in $(seq 6); do curl -s http://{VIP}:{VPORT}/; done"
            + f"\n  watch:  {env}pylvsadm -Ln        {env}pylvsadm -Ln --stats"
            + f"\n          {env}pylvsadm -Lnc       {env}pylvsadm -Ln --rate"
            + f"\n  change: {env}pylvsadm -e -t {VIP}:{VPORT} -r 127.0.0.1:8083 -m -w 0"
            + f"\n  api:    curl --unix-socket {sock} http://pylvsd/v1/services"
            + "\n  Ctrl-C stops the demo.\n",
            flush=True,
        )
        loop.run_until_complete(wait_for_signal())
    finally:
        for s in servers:
            s.close()
        stop_daemon(proc)
        loop.close()
    return 0
