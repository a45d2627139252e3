"""pylvsd: the director daemon.

Holds the engine, serves the control API on a unix socket (and optionally
read-only on TCP), runs the engine's timers, and drives a data plane.
Foreground process, logs to stderr; SIGTERM/SIGINT shut down cleanly
(everything installed is removed), SIGHUP reloads the rules file without
dropping established connections.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import stat
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from pylvs.core.engine import Engine
from pylvs.core.errors import IPVSError
from pylvs.core.table import Op, Table
from pylvs.daemon import kconf, reload
from pylvs.daemon.ctl import Control, Policy
from pylvs.daemon.ha import Ha
from pylvs.daemon.paths import default_socket
from pylvs.dataplane.base import DataPlane
from pylvs.web.events import RELOAD, RELOAD_FAILED, START, Events, JsonFormatter, log_event

if TYPE_CHECKING:
    from pylvs.config.model import KeepalivedConf
    from pylvs.daemon.health import Health
    from pylvs.web import HealthState

log = logging.getLogger("pylvsd")

TICK = 0.5
DATAPLANES = ("none", "proxy", "packet")


class StartupError(Exception):
    pass


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pylvsd", description="Linux Virtual Server director daemon")
    p.add_argument(
        "--dataplane",
        choices=DATAPLANES,
        default="proxy",
        help="none: table only; proxy: unprivileged TCP/UDP relay (default); "
        "packet: NAT/DR/TUN/FULLNAT forwarding (root)",
    )
    p.add_argument(
        "--socket",
        default=None,
        help="control socket (default: $PYLVS_SOCKET, "
        "/run/pylvs/pylvsd.sock as root, else $XDG_RUNTIME_DIR/pylvs/pylvsd.sock)",
    )
    p.add_argument("--rules", metavar="FILE", help="restore an ipvsadm -S file at start")
    p.add_argument("-f", "--config", metavar="FILE", help="keepalived.conf to read")
    p.add_argument("--http", metavar="ADDR:PORT", help="also serve the API read-only over TCP")
    p.add_argument(
        "--http-writable", action="store_true", help="allow changes through the --http listener too"
    )
    p.add_argument(
        "--config-test", action="store_true", help="check the rules/config given and exit"
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="proxy data plane: relay processes (default 1: everything in one process)",
    )
    p.add_argument(
        "--interface",
        action="append",
        metavar="IF",
        help="packet data plane: an interface to forward on (repeat for more)",
    )
    p.add_argument(
        "--connect-timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="proxy data plane: give up on a silent real server after this long",
    )
    p.add_argument(
        "--max-conns",
        type=int,
        default=0,
        metavar="N",
        help="proxy data plane: stop accepting above N open connections "
        "(default: what the file descriptor limit allows)",
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument(
        "--log-format",
        default="text",
        choices=["text", "json"],
        help="text (default) or JSON lines: time, level, logger, message and the "
        "fields of state changes (event, real_server...)",
    )
    return p


# -- rules ------------------------------------------------------------------------


def read_rules(path: str, control: Control) -> list[Op]:
    """Parse an ipvsadm -S/-R file into engine operations; errors name file and line."""
    from pylvs.cli import argv, ops

    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise StartupError(f"{path}: {e.strerror}") from e
    try:
        parsed = argv.parse_restore(text, numeric=True)
    except argv.UsageError as e:
        where = f":{e.line}" if getattr(e, "line", None) else ""
        raise StartupError(f"{path}{where}: {e.message.strip()}") from e
    result = []
    for lineno, cmd in parsed:
        try:
            result.append(control.op_from_json(ops.to_op(cmd)))
        except (IPVSError, ValueError) as e:
            msg = e.message if isinstance(e, IPVSError) else str(e)
            raise StartupError(f"{path}:{lineno}: {msg}") from e
    return result


def rules_as_table(rule_ops: list[Op]) -> Table:
    t = Table()
    t.apply_batch(rule_ops)
    return t


def load_rules(path: str, control: Control) -> None:
    rule_ops = read_rules(path, control)
    try:
        control.batch(rule_ops)
    except IPVSError as e:
        where = f":{_line_of(path, e.index)}" if e.index is not None else ""
        raise StartupError(f"{path}{where}: {e.message}") from e


def _line_of(path: str, index: int | None) -> int:
    from pylvs.cli import argv

    with open(path, encoding="utf-8") as f:
        parsed = argv.parse_restore(f.read(), numeric=True)
    return parsed[index][0] if index is not None and index < len(parsed) else 0


def reload_rules(path: str, control: Control) -> int:
    """Make the table equal to the file with the fewest changes; nothing changes on error."""
    rule_ops = read_rules(path, control)
    try:
        desired = rules_as_table(rule_ops).specs()
    except IPVSError as e:
        raise StartupError(f"{path}: {e.message}") from e
    changes = reload.diff_ops(control.engine.table.specs(), desired)
    control.batch(changes)
    return len(changes)


# -- the socket ------------------------------------------------------------------------


def _answers(path: str) -> bool:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(1.0)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def bind_control_socket(path: str) -> socket.socket:
    """Create the control socket (mode 0660); refuse when another pylvsd answers there."""
    d = os.path.dirname(path) or "."
    os.makedirs(d, mode=0o755, exist_ok=True)
    if os.path.lexists(path):
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise StartupError(f"{path} exists and is not a socket")
        if _answers(path):
            raise StartupError(f"another pylvsd is already running on {path}")
        os.unlink(path)  # stale
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o117)
    try:
        s.bind(path)
    finally:
        os.umask(old)
    os.chmod(path, 0o660)
    s.listen(128)
    s.setblocking(False)
    return s


def make_dataplane(name: str, args: argparse.Namespace) -> DataPlane:
    if name == "none":
        from pylvs.dataplane.none import NoDataPlane

        return NoDataPlane()
    if name == "proxy":
        from pylvs.dataplane.proxy.plane import ProxyDataPlane

        return ProxyDataPlane(args)
    from pylvs.dataplane.packet.plane import PacketDataPlane

    return PacketDataPlane(args)


def _report_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("vrrp reload failed: %s", task.exception())


def dataplane_policy(name: str) -> Policy:
    if name == "proxy":
        from pylvs.dataplane.proxy.plane import ProxyDataPlane

        return ProxyDataPlane.policy
    if name == "packet":
        from pylvs.dataplane.packet.plane import PacketDataPlane

        return PacketDataPlane.policy
    from pylvs.dataplane.none import NoDataPlane

    return NoDataPlane.policy


def read_keepalived(path: str, policy: Policy) -> KeepalivedConf:
    """The configuration for the daemon's start; every problem in the StartupError."""
    from pylvs.config.model import ConfigError

    try:
        conf = kconf.read(path, policy)
    except ConfigError as e:
        # main() prefixes the first line with "pylvsd: "; the others get it here.
        raise StartupError("\npylvsd: ".join(str(p) for p in e.problems)) from e
    except OSError as e:
        raise StartupError(f"{path}: {e.strerror}") from e
    kconf.warn(conf)
    return conf


# -- the daemon -----------------------------------------------------------------------------


class Daemon:
    def __init__(self, args: argparse.Namespace, clock: Callable[[], float] = time.monotonic):
        self.args = args
        self.clock = clock
        self.dataplane = make_dataplane(args.dataplane, args)
        self.engine = Engine()
        self.control = Control(self.engine, self.dataplane.policy, clock, self._table_changed)
        self.socket_path = args.socket or default_socket()
        self._stop = asyncio.Event()
        self._sock: socket.socket | None = None
        self.dataplane_started = False
        self.ha = Ha(self.control)
        self.health: Health | None = None
        self.events = Events()  # recent state changes (GET /v1/events), counts by kind

    def _table_changed(self) -> None:
        # Before the data plane starts (rules and -f load first) there is nothing to
        # tell: its start() reads the whole table.
        if self.dataplane_started:
            self.dataplane.table_changed()

    def info(self) -> dict[str, Any]:
        return {
            "name": "pylvsd",
            "version": "0.1.0",
            "ipvs_version": "1.2.1",
            "conn_tab_size": 4096,
            "dataplane": self.dataplane.name,
            "default_fwd_method": {0: "masq", 3: "droute"}.get(
                int(self.dataplane.policy.default_fwd), "droute"
            ),
            "pid": os.getpid(),
        }

    async def run(self) -> None:
        from aiohttp import web

        from pylvs.daemon.api import make_app

        if self.args.rules:
            load_rules(self.args.rules, self.control)
            log.info("restored %d services from %s", len(self.engine.table), self.args.rules)
        kconf_ = None
        if self.args.config:
            kconf_ = read_keepalived(self.args.config, self.dataplane.policy)
        if kconf_ is not None:
            # The table is in place before the API answers and the data plane starts.
            from pylvs.daemon.health import Health

            self.health = Health(self.control, events=self.events)
            self.health.load(kconf_)
            log.info(
                "%s: %d services, health checking %d real servers",
                self.args.config,
                len(self.engine.table),
                sum(len(vs.real_servers) for vs in kconf_.virtual_servers),
            )
        self._sock = bind_control_socket(self.socket_path)
        runner = web.AppRunner(
            make_app(
                self.control,
                self.info(),
                counters=self.dataplane.counter_values,
                **self.web_providers(),
            ),
            access_log=None,
        )
        await runner.setup()
        await web.SockSite(runner, self._sock).start()
        http_runner = None
        if self.args.http:
            host, _, port = self.args.http.rpartition(":")
            app = make_app(
                self.control,
                self.info(),
                writable=self.args.http_writable,
                counters=self.dataplane.counter_values,
                **self.web_providers(),
            )
            http_runner = web.AppRunner(app, access_log=None)
            await http_runner.setup()
            await web.TCPSite(http_runner, host.strip("[]") or None, int(port)).start()
        runners = [r for r in (runner, http_runner) if r is not None]
        try:
            await self.dataplane.start(self.engine)
            self.dataplane_started = True
        except (OSError, RuntimeError) as e:
            await self._abort_start(runners, f"{self.dataplane.name} data plane: {e}")
        if kconf_ is not None:
            try:
                await self.ha.start(kconf_)
            except OSError as e:
                await self.ha.stop()
                await self._abort_start(runners, f"vrrp: {e}")
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        log_event(
            log,
            self.events,
            START,
            "pylvsd %s: dataplane=%s socket=%s",
            "0.1.0",
            self.dataplane.name,
            self.socket_path,
            dataplane=self.dataplane.name,
        )
        ticker = asyncio.create_task(self._tick())
        try:
            await self._stop.wait()
        finally:
            log.info("shutting down")
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            await self.ha.stop()
            if self.health is not None:
                await self.health.stop()
            await self.dataplane.stop()
            await runner.cleanup()
            if http_runner is not None:
                await http_runner.cleanup()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.socket_path)

    async def _abort_start(self, runners: list[Any], message: str) -> NoReturn:
        """Undo a half-done start (data plane, API listeners, socket) and refuse it."""
        await self.dataplane.stop()
        for r in runners:
            await r.cleanup()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)
        raise StartupError(message)

    def web_providers(self) -> dict[str, Any]:
        """What /metrics, /v1/health, /v1/vrrp, /v1/events and the dashboard read."""
        return {
            "health": self.health_states,
            "vrrp": self.ha.instances,
            "sync": self.ha.sync_counters,
            "events": self.events,
        }

    def health_states(self) -> list[HealthState] | None:
        return self.health.server_states() if self.health is not None else None

    async def _tick(self) -> None:
        while True:
            now = self.clock()
            self.dataplane.tick(now)
            gone = self.engine.tick(now)
            self.dataplane.expired(gone)
            await asyncio.sleep(TICK)

    def reload(self) -> None:
        if self.args.config and self.health is not None:
            from pylvs.config.model import ConfigError

            try:
                conf = kconf.read(self.args.config, self.dataplane.policy)
            except (ConfigError, OSError) as e:
                problems = e.problems if isinstance(e, ConfigError) else [e]
                for p in problems:
                    log.error(
                        "reload refused, nothing changed: %s",
                        p,
                        extra={"event": RELOAD_FAILED, "file": self.args.config},
                    )
                self.events.record(
                    RELOAD_FAILED, f"reload refused: {problems[0]}", "error", file=self.args.config
                )
                return
            kconf.warn(conf)
            self.health.load(conf)
            task = asyncio.get_running_loop().create_task(self.ha.reload(conf))
            task.add_done_callback(_report_failure)
            log_event(
                log, self.events, RELOAD, "reloaded %s", self.args.config, file=self.args.config
            )
            return
        if not self.args.rules:
            log.info("SIGHUP: no rules file to reload")
            return
        try:
            n = reload_rules(self.args.rules, self.control)
        except (StartupError, IPVSError) as e:
            msg = e.message if isinstance(e, IPVSError) else str(e)
            log_event(
                log,
                self.events,
                RELOAD_FAILED,
                "reload refused, rules unchanged: %s",
                msg,
                level=logging.ERROR,
                file=self.args.rules,
            )
            return
        log_event(
            log,
            self.events,
            RELOAD,
            "reloaded %s: %d changes",
            self.args.rules,
            n,
            file=self.args.rules,
            changes=n,
        )


def config_test(args: argparse.Namespace) -> int:
    if not args.rules and not args.config:
        print("pylvsd: --config-test needs --rules FILE or -f FILE", file=sys.stderr)
        return 2
    if args.config:
        return kconf.config_test(args.config, dataplane_policy(args.dataplane))
    from pylvs.dataplane.none import NoDataPlane

    control = Control(Engine(), NoDataPlane.policy, time.monotonic)
    try:
        load_rules(args.rules, control)
    except StartupError as e:
        print(f"pylvsd: {e}", file=sys.stderr)
        return 1
    print(f"{args.rules}: {len(control.engine.table)} services, configuration OK")
    return 0


def run(coro: Any) -> None:
    """asyncio.run on uvloop when it is installed (it is a dependency; the
    standard loop remains a fallback for platforms without it)."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
        return
    uvloop.run(coro)


def check_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse nonsense before anything starts (argparse exits 2 with the message)."""
    if args.workers < 1:
        p.error("--workers must be at least 1")
    if args.connect_timeout <= 0:
        p.error("--connect-timeout must be positive")
    if args.max_conns < 0:
        p.error("--max-conns must be 0 (automatic) or positive")
    if args.http:
        _host, sep, port = args.http.rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            p.error(f"--http wants ADDR:PORT, got {args.http!r}")
    if args.workers > 1 and args.dataplane != "proxy":
        p.error("--workers is for the proxy data plane")
    if args.config and args.rules:
        p.error("-f and --rules are alternatives: one source of rules")
    if args.dataplane == "packet":
        if not args.interface:
            p.error("--dataplane packet needs at least one --interface")
        if os.geteuid() != 0:
            p.error("--dataplane packet needs root (raw sockets, nftables)")
    elif args.interface:
        p.error("--interface is for the packet data plane")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_args(parser, args)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter()
        if args.log_format == "json"
        else logging.Formatter("%(asctime)s pylvsd %(levelname)s %(message)s")
    )
    logging.basicConfig(level=args.log_level.upper(), handlers=[handler])
    if args.config_test:
        return config_test(args)
    try:
        daemon = Daemon(args)
        run(daemon.run())
    except StartupError as e:
        print(f"pylvsd: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
