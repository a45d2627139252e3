"""CheckRunner with real checkers: servers going down and up, alpha, replace() keeping
state, removed servers, misc_dynamic weights, an injected clock, and uvloop."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Coroutine, Hashable
from pathlib import Path
from typing import Any

import pytest
import uvloop

from pylvs.check.runner import CheckRunner, ServerSpec, same_checker
from pylvs.config.model import CheckerConf, Where
from tests.check.helpers import conf

BASE = 15601
Change = tuple[Hashable, bool, "int | None", str]


def tcp(port: int, **kw: Any) -> CheckerConf:
    kw.setdefault("delay_loop", 0.1)
    kw.setdefault("retry", 1)
    kw.setdefault("delay_before_retry", 0.05)
    kw.setdefault("connect_timeout", 0.5)
    return conf("TCP_CHECK", "127.0.0.1", port, **kw)


class Recorder:
    def __init__(self) -> None:
        self.changes: list[tuple[float, Hashable, bool, int | None, str]] = []
        self.event = asyncio.Event()

    def __call__(self, key: Hashable, up: bool, weight: int | None, reason: str) -> None:
        self.changes.append((time.monotonic(), key, up, weight, reason))
        self.event.set()

    async def wait_for(self, key: Hashable, up: bool, timeout: float = 3.0) -> float:
        """Seconds until ``key`` is reported ``up`` (or down)."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        seen = len(self.changes)
        while True:
            for t, k, u, _w, _r in self.changes[seen:]:
                if k == key and u == up:
                    return t - t0
            seen = len(self.changes)
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{key} not {'up' if up else 'down'}: {self.changes}")
            self.event.clear()
            try:
                await asyncio.wait_for(self.event.wait(), left)
            except TimeoutError:
                pass


async def listener(port: int) -> asyncio.Server:
    async def close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    return await asyncio.start_server(close, "127.0.0.1", port)


LoopRunner = Callable[[Coroutine[Any, Any, None]], None]


@pytest.fixture(params=["asyncio", "uvloop"])
def run_loop(request: pytest.FixtureRequest) -> LoopRunner:
    if request.param == "uvloop":
        return uvloop.run
    return asyncio.run


def test_server_goes_down_and_comes_back(run_loop: LoopRunner) -> None:
    async def main() -> None:
        servers = [await listener(BASE + i) for i in range(3)]
        rec = Recorder()
        runner = CheckRunner(rec)
        runner.start({f"rs{i}": ServerSpec((tcp(BASE + i),)) for i in range(3)})
        await asyncio.sleep(0.35)
        assert rec.changes == []
        assert all(runner.health(f"rs{i}") == (True, None) for i in range(3))

        servers[1].close()
        await servers[1].wait_closed()
        took = await rec.wait_for("rs1", False)
        # at most a delay_loop until the next check, then one retry (0.45 s when the
        # machine is idle; generous here: this checks the transition, not the speed)
        assert took < 3.0
        assert "refused" in rec.changes[-1][4].lower()
        assert runner.health("rs1") == (False, None)

        servers[1] = await listener(BASE + 1)
        took = await rec.wait_for("rs1", True)
        assert took < 3.0
        assert {c[1] for c in rec.changes} == {"rs1"}
        assert runner.stats.checks > 10
        await runner.stop()
        for s in servers:
            s.close()

    run_loop(main())


def test_alpha_starts_down_until_the_first_success() -> None:
    async def main() -> None:
        srv = await listener(BASE + 10)
        rec = Recorder()
        runner = CheckRunner(rec, rand=lambda: 1.0)
        runner.start({"a": ServerSpec((tcp(BASE + 10, alpha=True, warmup=0.2),))})
        assert runner.health("a") == (False, None)
        took = await rec.wait_for("a", True)
        assert 0.15 < took < 3.0  # after the warmup (rand pinned at its maximum)
        await runner.stop()
        srv.close()

    asyncio.run(main())


def test_a_server_is_down_while_any_of_its_checkers_fails(tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    flag.write_text("0")

    async def main() -> None:
        srv = await listener(BASE + 11)
        rec = Recorder()
        runner = CheckRunner(rec)
        misc = conf("MISC_CHECK", misc_path=f"sh -c 'exit $(cat {flag})'", delay_loop=0.1, retry=0)
        runner.start({"b": ServerSpec((tcp(BASE + 11), misc))})
        await asyncio.sleep(0.3)
        flag.write_text("1")
        await rec.wait_for("b", False)
        srv.close()
        await srv.wait_closed()
        await asyncio.sleep(0.3)
        flag.write_text("0")  # the script passes, the TCP check still fails
        await asyncio.sleep(0.4)
        assert runner.health("b")[0] is False
        srv2 = await listener(BASE + 11)
        await rec.wait_for("b", True)
        assert [c[2] for c in rec.changes] == [False, True]
        await runner.stop()
        srv2.close()

    asyncio.run(main())


def test_misc_dynamic_weights_through_the_runner(tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.write_text("0")

    async def main() -> None:
        rec = Recorder()
        runner = CheckRunner(rec)
        misc = conf(
            "MISC_CHECK",
            misc_path=f"sh -c 'exit $(cat {code})'",
            misc_dynamic=True,
            delay_loop=0.1,
            retry=0,
        )
        runner.start({"m": ServerSpec((misc,), weight=4)})
        await asyncio.sleep(0.25)
        code.write_text("12")
        await rec.wait_for("m", True)
        assert rec.changes[-1][3] == 10
        code.write_text("1")
        await rec.wait_for("m", False)
        assert rec.changes[-1][3] is None
        code.write_text("0")
        await rec.wait_for("m", True)
        assert rec.changes[-1][3] is None  # the configured weight (4)
        await runner.stop()

    asyncio.run(main())


def test_replace_keeps_unchanged_checkers_and_restarts_changed_ones() -> None:
    async def main() -> None:
        srv = await listener(BASE + 20)
        rec = Recorder()
        runner = CheckRunner(rec)
        dead = tcp(BASE + 21, retry=0)
        runner.start({"k": ServerSpec((dead,)), "gone": ServerSpec((tcp(BASE + 20),))})
        await rec.wait_for("k", False)
        n = len(rec.changes)
        # same checker written elsewhere in the file: state kept, nothing reported
        moved = _moved(dead)
        runner.replace({"k": ServerSpec((moved,))})
        assert "gone" not in list(runner.keys())
        await asyncio.sleep(0.3)
        assert len(rec.changes) == n and runner.health("k") == (False, None)
        assert runner.servers["k"].slots[0].conf.where == Where("other.conf", 42)
        # a changed checker starts afresh (up: no alpha) and the dead one is dropped
        runner.replace({"k": ServerSpec((tcp(BASE + 20),))})
        assert rec.changes[-1][1:3] == ("k", True)
        assert rec.changes[-1][4] == "configuration changed"
        checks = runner.stats.checks
        runner.replace({})
        await asyncio.sleep(0.3)
        assert runner.stats.checks == checks  # removed: no more checks
        await runner.stop()
        srv.close()

    asyncio.run(main())


def _moved(c: CheckerConf) -> CheckerConf:
    return dataclasses.replace(c, where=Where("other.conf", 42))


def test_same_checker_ignores_positions_only() -> None:
    a = tcp(1)
    assert same_checker(a, _moved(a))
    assert not same_checker(a, tcp(2))
    assert not same_checker(a, tcp(1, retry=3))
    assert not same_checker(a, conf("HTTP_GET", "127.0.0.1", 1))


def test_injected_clock_drives_the_state_machines() -> None:
    async def main() -> None:
        srv = await listener(BASE + 30)
        loop = asyncio.get_running_loop()
        seen: list[float] = []

        def clock() -> float:
            t = loop.time() + 5000.0
            seen.append(t)
            return t

        runner = CheckRunner(lambda *a: None, clock=clock)
        runner.start({"c": ServerSpec((tcp(BASE + 30, delay_loop=0.1),))})
        await asyncio.sleep(0.55)
        await runner.stop()
        srv.close()
        # The injected clock sets the schedule: ~5 checks in 0.55 s (fewer on a busy
        # machine, never a burst), and the state machines saw its time.
        assert 1 <= runner.stats.checks <= 7
        assert min(seen) > 5000

    asyncio.run(main())


def test_stop_kills_running_scripts(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"

    async def main() -> None:
        runner = CheckRunner(lambda *a: None)
        misc = conf(
            "MISC_CHECK", misc_path=f"sh -c 'echo $$ > {pid_file}; exec sleep 30'", delay_loop=5
        )
        runner.start({"s": ServerSpec((misc,))})
        for _ in range(100):
            await asyncio.sleep(0.02)
            if pid_file.exists() and pid_file.read_text().strip():
                break
        await runner.stop()

    asyncio.run(main())
    pid = int(pid_file.read_text())
    time.sleep(0.1)
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()


def test_other_checkers_on_uvloop(tmp_path: Path) -> None:
    """The datagram (add_reader), pidfd and file paths on uvloop."""
    flag = tmp_path / "v"
    flag.write_text("0")

    async def main() -> None:
        from pylvs.check.base import get_checker

        class Echo(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.t = transport

            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                self.t.sendto(data, addr)  # type: ignore[attr-defined]

        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(Echo, ("127.0.0.1", BASE + 40))
        try:
            udp = conf("UDP_CHECK", port=BASE + 40, require_reply=True)
            assert (await get_checker("UDP_CHECK")(udp)).ok
            misc = conf("MISC_CHECK", misc_path="sh -c 'exit 5'", misc_dynamic=True)
            res = await get_checker("MISC_CHECK")(misc)
            assert res.ok and res.weight == 3
            hang = conf("MISC_CHECK", misc_path="sleep 10", misc_timeout=0.3)
            assert not (await get_checker("MISC_CHECK")(hang)).ok
            f = conf("FILE_CHECK", file_path=str(flag), weight=0)
            assert (await get_checker("FILE_CHECK")(f)).ok
        finally:
            transport.close()

    uvloop.run(main())
