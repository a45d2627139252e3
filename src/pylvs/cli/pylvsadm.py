"""pylvsadm: ipvsadm 1.31's command line, as a client of pylvsd's control API.

argv -> ``argv.parse`` -> a ``Command`` -> API calls -> ``render`` text.
Changes go through /v1/batch, so every command (and a whole -R file) is
applied all or nothing.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, TextIO

from pylvs.cli import argv as argvmod
from pylvs.cli import ops, render
from pylvs.cli.client import ApiError, Client, DaemonUnreachable, sid_path
from pylvs.cli.command import Cmd, Command, ServiceArg
from pylvs.daemon.paths import default_socket


def _resolver(numeric: bool) -> Any:
    if numeric:
        return render.NumericResolver()
    from pylvs.cli.resolve import SystemResolver

    return SystemResolver()


def _batch(client: Client, items: list[dict[str, Any]]) -> None:
    client.request("POST", "/v1/batch", {"ops": items})


def run(cmd: Command, client: Client, out: TextIO, stdin: TextIO, prog: str = "pylvsadm") -> int:
    fmt = cmd.fmt
    c = cmd.cmd
    if c in ops.BATCHABLE:
        _batch(client, [ops.to_op(cmd)])
        return 0
    if c is Cmd.LIST:
        info = client.get("/v1/info")
        res = _resolver(fmt.numeric)
        if fmt.connection:
            out.write(render.render_conns(client.get("/v1/connections"), fmt, res))
        elif fmt.timeout:
            out.write(render.render_timeout(client.get("/v1/timeouts"), as_json=fmt.json))
        elif fmt.daemon:
            out.write(render.render_daemon(client.get("/v1/daemons"), as_json=fmt.json))
        elif cmd.service is not None:
            try:
                svc = client.get(f"/v1/services/{sid_path(ops.sid(cmd.service))}")
            except ApiError as e:
                e.exit_code = 1  # list_service() exits 1, not 255
                raise
            out.write(render.render_service(svc, fmt, res))
        else:
            out.write(
                render.render_list(
                    client.get("/v1/services"),
                    fmt,
                    res,
                    version=info.get("ipvs_version", "1.2.1"),
                    conn_tab_size=info.get("conn_tab_size", 4096),
                )
            )
        return 0
    if c is Cmd.SAVE:
        out.write(
            render.render_save(client.get("/v1/services"), fmt.numeric, _resolver(fmt.numeric))
        )
        return 0
    if c is Cmd.RESTORE:
        return restore(client, stdin, prog)
    if c is Cmd.TIMEOUT:
        assert cmd.timeouts is not None
        tcp, tcpfin, udp = cmd.timeouts
        client.request("PUT", "/v1/timeouts", {"tcp": tcp, "tcpfin": tcpfin, "udp": udp})
        return 0
    if c is Cmd.STARTDAEMON:
        body: dict[str, Any] = {"state": cmd.daemon_state}
        for name, value in (
            ("mcast_ifn", cmd.mcast_interface),
            ("syncid", cmd.syncid),
            ("mcast_group", cmd.mcast_group),
            ("mcast_port", cmd.mcast_port),
            ("mcast_ttl", cmd.mcast_ttl),
            ("sync_maxlen", cmd.sync_maxlen),
        ):
            if value is not None:
                body[name] = value
        client.request("POST", "/v1/daemons", body)
        return 0
    if c is Cmd.STOPDAEMON:
        client.request("DELETE", f"/v1/daemons/{cmd.daemon_state}")
        return 0
    if c is Cmd.GETLADDR:
        assert cmd.service is not None
        laddrs = client.get(f"/v1/services/{sid_path(ops.sid(cmd.service))}/laddrs")
        out.write(render_laddrs(cmd.service, laddrs, as_json=fmt.json))
        return 0
    raise AssertionError(f"unhandled command {c}")


def render_laddrs(service: ServiceArg, laddrs: list[str], *, as_json: bool = False) -> str:
    """--get-laddr: one line per FULLNAT local address (an extension; DPVS-like)."""
    if as_json:
        return json.dumps({"service": ops.sid(service), "laddrs": laddrs}, indent=2) + "\n"
    if service.fwmark:
        name = f"FWM  {service.fwmark}"
    else:
        addr = f"[{service.address}]" if service.family == "inet6" else service.address
        name = f"{service.protocol.upper():<4} {addr}:{service.port}"
    lines = [f"{'VIP:VPORT':<32} LADDR"]
    lines += [f"{name:<32} {a}" for a in laddrs]
    return "\n".join(lines) + "\n"


def restore(client: Client, stdin: TextIO, prog: str = "pylvsadm") -> int:
    """-R: parse every line first, then apply them all or none."""
    text = stdin.read()
    parsed = argvmod.parse_restore(text, prog=prog)
    items = []
    for _, cmd in parsed:
        if cmd.cmd not in ops.BATCHABLE:
            raise argvmod.UsageError(f"{cmd.cmd.value} is not allowed in a restore file", 2)
        items.append(ops.to_op(cmd))
    try:
        _batch(client, items)
    except ApiError as e:
        if e.index is not None and e.index < len(parsed):
            e.message = f"{e.message} (line {parsed[e.index][0]}; nothing was restored)"
        raise
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    prog = os.path.basename(sys.argv[0]) if argv is None else "pylvsadm"
    if prog in ("__main__.py", "pylvsadm.py"):
        prog = "pylvsadm"
    try:
        cmd = argvmod.parse(args, prog=prog)
        if cmd.cmd is Cmd.HELP:
            sys.stdout.write(argvmod.usage_text(prog))
            return 0
        if cmd.cmd is Cmd.VERSION:
            print(argvmod.VERSION)
            return 0
        path = cmd.socket or default_socket()
        return run(cmd, Client(path), sys.stdout, sys.stdin, prog)
    except argvmod.UsageError as e:
        sys.stderr.write(e.message + "\n")
        return e.exit_code
    except ApiError as e:
        # ipvsadm prints ipvs_strerror() and returns -1 from main(): exit status 255.
        print(e.message, file=sys.stderr)
        return e.exit_code
    except DaemonUnreachable as e:
        # ipvsadm's fail(2, "Can't initialize ipvs: ...") when it cannot reach IPVS.
        print(
            f"Can't initialize ipvs: {e.reason}\n"
            f"Are you sure that pylvsd is running (control socket {e.path})?",
            file=sys.stderr,
        )
        return 2
    except BrokenPipeError:
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
