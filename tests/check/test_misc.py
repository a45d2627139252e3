"""MISC_CHECK with real scripts: exit codes, misc_dynamic weights, a hanging script and
its children killed at misc_timeout, a script ignoring SIGTERM, cancellation, user."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pylvs.check.misc import command_argv, run
from pylvs.check.state import Result
from tests.check.helpers import conf, require_root


def script(tmp_path: Path, name: str, body: str) -> str:
    p = tmp_path / name
    p.write_text("#!/bin/sh\n" + body + "\n")
    p.chmod(0o755)
    return str(p)


def misc(path: str | tuple[str, ...], **kw: Any) -> Result:
    return asyncio.run(run(conf("MISC_CHECK", misc_path=path, **kw)))


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.parametrize(
    ("code", "dynamic", "ok", "weight", "offset"),
    [
        (0, False, True, None, None),
        (0, True, True, None, 0),
        (1, False, False, None, None),
        (1, True, False, None, None),
        (7, False, False, None, None),
        (7, True, True, 5, None),
        (255, True, True, 253, None),
    ],
)
def test_exit_codes(
    tmp_path: Path, code: int, dynamic: bool, ok: bool, weight: int | None, offset: int | None
) -> None:
    path = script(tmp_path, "s.sh", f"exit {code}")
    res = misc(path, misc_dynamic=dynamic)
    assert (res.ok, res.weight, res.offset) == (ok, weight, offset), res.reason
    assert f"status {code}" in res.reason


def test_arguments_executables_and_shell_lines(tmp_path: Path) -> None:
    out = tmp_path / "out"
    path = script(tmp_path, "args.sh", f'echo "$1-$2" > {out}; exit 0')
    assert command_argv(f"{path} alpha 'be ta'") == [path, "alpha", "be ta"]
    assert misc(f"{path} alpha 'be ta'").ok
    assert out.read_text() == "alpha-be ta\n"
    assert misc((path, "x", "y z")).ok  # already split by the parser
    assert out.read_text() == "x-y z\n"
    assert command_argv("true") == [shutil.which("true")]
    # not an executable: the shell runs the line (keepalived's system())
    line = f"if test -e {out}; then exit 3; fi"
    assert command_argv(line) == ["/bin/sh", "-c", line]
    res = misc(line, misc_dynamic=True)
    assert res.ok and res.weight == 1
    res = misc(str(tmp_path / "missing.sh"))
    assert not res.ok and "status 127" in res.reason


def test_hanging_script_and_its_children_are_killed_at_misc_timeout(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    path = script(tmp_path, "hang.sh", f"sleep 30 & echo $! > {pids}; echo $$ >> {pids}; wait")
    t0 = time.monotonic()
    res = misc(path, misc_timeout=1)
    took = time.monotonic() - t0
    assert not res.ok and "timed out" in res.reason
    assert 0.9 < took < 2.0
    child, shell = (int(x) for x in pids.read_text().split())
    time.sleep(0.1)
    assert not alive(child) and not alive(shell)


def test_script_ignoring_sigterm_gets_sigkill(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    path = script(tmp_path, "stubborn.sh", f"trap '' TERM; echo $$ > {pids}; sleep 30; exit 0")
    t0 = time.monotonic()
    res = misc(path, misc_timeout=0.5)
    took = time.monotonic() - t0
    assert not res.ok and "timed out" in res.reason
    assert 2.3 < took < 3.5  # timeout + 2 s of grace before SIGKILL
    assert not alive(int(pids.read_text()))


def test_misc_timeout_defaults_to_delay_loop(tmp_path: Path) -> None:
    path = script(tmp_path, "slow.sh", "sleep 30")
    t0 = time.monotonic()
    assert not misc(path, delay_loop=0.5).ok
    assert time.monotonic() - t0 < 1.5


def test_cancelling_the_check_kills_the_script(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    path = script(tmp_path, "long.sh", f"echo $$ > {pids}; sleep 30")

    async def main() -> None:
        task = asyncio.create_task(run(conf("MISC_CHECK", misc_path=path, misc_timeout=20)))
        for _ in range(100):
            await asyncio.sleep(0.02)
            if pids.exists() and pids.read_text().strip():
                break
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    time.sleep(0.1)
    assert not alive(int(pids.read_text()))


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory any user can reach (pytest's tmp_path is under a 0700 directory)."""
    d = Path(tempfile.mkdtemp(prefix="pylvs-misc-", dir="/tmp"))
    d.chmod(0o777)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_runs_as_user_without_supplementary_groups(open_dir: Path) -> None:
    require_root("MISC_CHECK user")
    nobody = pwd.getpwnam("nobody")
    out = open_dir / "id"
    path = script(open_dir, "id.sh", f"id -u > {out}; id -g >> {out}; id -G >> {out}")
    assert misc(path, user="nobody").ok
    uid, gid, groups = out.read_text().split("\n")[:3]
    assert (int(uid), int(gid)) == (nobody.pw_uid, nobody.pw_gid)
    assert groups.split() == [str(nobody.pw_gid)]
    out.unlink()
    assert misc(path, user="nobody root").ok
    assert out.read_text().split("\n")[1] == "0"
    res = misc(path, user="no-such-user-pylvs")
    assert not res.ok and "unknown user" in res.reason


def test_no_misc_path() -> None:
    assert not asyncio.run(run(conf("MISC_CHECK"))).ok


def test_environment_is_inherited(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYLVS_MISC_TEST", "3")
    path = script(tmp_path, "env.sh", 'exit "$PYLVS_MISC_TEST"')
    res = misc(path, misc_dynamic=True)
    assert res.ok and res.weight == 1
    assert os.environ["PYLVS_MISC_TEST"] == "3"
