"""MISC_CHECK (keepalived check_misc.c): run ``misc_path`` and judge its exit status.

- exit 0: up (with ``misc_dynamic``: back to the configured weight);
- exit 1: down;
- exit 2..255: with ``misc_dynamic`` up with weight ``status - 2``, without it down;
- killed by a signal, or still running after ``misc_timeout`` (default: delay_loop):
  down.  On timeout the script's process group gets SIGTERM, then SIGKILL 2 s later
  if it is still there; after a SIGTERM exit the group gets SIGKILL too, so that
  children the script left behind die with it (keepalived's kill(-pid, ...)).

``misc_path`` is split into words as keepalived does (quotes and escapes:
pylvs.config.lexer.split_quoted_escaped, keepalived's alloc_strvec_quoted_escaped); when
the first word is an executable file (found on PATH if it has no slash) it is run
directly with those arguments, otherwise the whole line goes to ``/bin/sh -c``
(keepalived's execve / system() split).  A list of words is taken as already split.
The script runs in its own session (process group), stdin, stdout and stderr on
/dev/null.  ``user`` (``"name"`` or ``"name group"``) runs it
as that user and group (the user's primary group by default) with no supplementary
groups; that needs root unless it is the current user.  Without ``user`` the script
runs as the daemon's user (keepalived picks ``keepalived_script`` when that account
exists: a deliberate difference).

Waiting uses a pidfd on the event loop (no thread, no SIGCHLD handler), so it works on
asyncio and uvloop alike; cancelling the check kills the process group.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import os
import pwd
import shlex
import shutil
import signal
import subprocess
from dataclasses import dataclass

from pylvs.check.state import Result
from pylvs.config.lexer import split_quoted_escaped
from pylvs.config.model import CheckerConf

SHELL = "/bin/sh"
KILL_GRACE = 2.0  # seconds between SIGTERM and SIGKILL, as keepalived


@dataclass(frozen=True, slots=True)
class ScriptExit:
    returncode: int | None  # exit status, or -signal; None when it could not start
    timed_out: bool = False
    error: str = ""


@dataclass(frozen=True, slots=True)
class RunAs:
    uid: int
    gid: int
    name: str


def resolve_user(spec: object) -> RunAs:
    """``"name"``, ``"name group"`` or a (name, group) pair -> uid/gid (KeyError if unknown)."""
    words = [str(w) for w in spec] if isinstance(spec, (tuple, list)) else str(spec).split()
    if not words:
        raise KeyError("empty user")
    name = words[0]
    pw = pwd.getpwuid(int(name)) if name.isdigit() else pwd.getpwnam(name)
    gid = pw.pw_gid
    if len(words) > 1:
        group = words[1].lstrip(":")
        if group:
            gid = grp.getgrgid(int(group)).gr_gid if group.isdigit() else grp.getgrnam(group).gr_gid
    return RunAs(pw.pw_uid, gid, name)


def _killpg(pid: int, sig: int) -> bool:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


async def _exited(pidfd: int, timeout: float) -> bool:
    """Wait until the pidfd is readable (the process ended), at most ``timeout`` s."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        if not fut.done():
            fut.set_result(None)

    loop.add_reader(pidfd, ready)
    try:
        async with asyncio.timeout(timeout):
            await fut
        return True
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(pidfd)


def command_argv(command: str | list[str] | tuple[str, ...]) -> list[str]:
    """How keepalived starts ``misc_path``: execve of the words when the first one is an
    executable file, else ``/bin/sh -c`` of the line."""
    if isinstance(command, str):
        try:
            words = split_quoted_escaped(command)
        except ValueError:
            return [SHELL, "-c", command]
        line = command
    else:
        words = list(command)
        line = shlex.join(words)
    if words:
        exe = words[0] if "/" in words[0] else shutil.which(words[0])
        if exe and os.path.isfile(exe) and os.access(exe, os.X_OK):
            return [exe, *words[1:]]
    return [SHELL, "-c", line]


async def run_script(
    command: str | list[str] | tuple[str, ...],
    timeout: float,
    user: RunAs | None = None,
    env: dict[str, str] | None = None,
) -> ScriptExit:
    """Run ``command`` (see command_argv) in its own process group, at most ``timeout`` s."""
    kwargs: dict[str, object] = {}
    if user is not None:
        kwargs.update(user=user.uid, group=user.gid, extra_groups=[])
    try:
        proc = subprocess.Popen(
            command_argv(command),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
            env=env,
            **kwargs,  # type: ignore[call-overload]
        )
    except (OSError, subprocess.SubprocessError) as e:
        return ScriptExit(None, error=str(e))
    pidfd = os.pidfd_open(proc.pid)
    try:
        if await _exited(pidfd, timeout):
            return ScriptExit(proc.wait())
        # Too long: SIGTERM the group, SIGKILL after the grace period.
        _killpg(proc.pid, signal.SIGTERM)
        if not await _exited(pidfd, KILL_GRACE):
            _killpg(proc.pid, signal.SIGKILL)
            await _exited(pidfd, KILL_GRACE)
        _killpg(proc.pid, signal.SIGKILL)  # whatever the script left in its group
        code = proc.poll()
        if code is None:  # unkillable (D state...): leave it to be reaped later
            return ScriptExit(None, timed_out=True, error="did not die after SIGKILL")
        return ScriptExit(code, timed_out=True)
    except BaseException:
        # Cancelled (checker removed, runner stopped): take the whole group down.
        _killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(1.0)
        raise
    finally:
        os.close(pidfd)


def judge(status: ScriptExit, dynamic: bool) -> Result:
    """keepalived's reading of a MISC_CHECK exit (see the module docstring)."""
    if status.timed_out:
        return Result(False, "timed out")
    code = status.returncode
    if code is None:
        return Result(False, f"could not run: {status.error}")
    if code < 0:
        return Result(False, f"killed by signal {-code}")
    if code == 0:
        return Result(True, "exited with status 0", offset=0 if dynamic else None)
    if dynamic and 2 <= code <= 255:
        return Result(True, f"exited with status {code}", weight=code - 2)
    return Result(False, f"exited with status {code}")


async def run(conf: CheckerConf) -> Result:
    command = conf.options.get("misc_path")
    if not command:
        return Result(False, f"MISC_CHECK {conf.where}: no misc_path")
    raw_timeout = conf.options.get("misc_timeout")
    timeout = float(raw_timeout) if isinstance(raw_timeout, (int, float)) and raw_timeout else 0.0
    timeout = timeout or conf.delay_loop
    user = None
    spec = conf.options.get("user")
    if spec:
        try:
            user = resolve_user(spec)
        except (KeyError, ValueError) as e:
            return Result(False, f"MISC_CHECK {conf.where}: unknown user/group {e}")
        if os.geteuid() != 0 and user.uid != os.geteuid():
            return Result(False, f"MISC_CHECK {conf.where}: cannot run as {user.name}: not root")
    if isinstance(command, (list, tuple)):
        cmd: str | list[str] = [str(w) for w in command]
        shown = shlex.join(cmd)
    else:
        cmd = shown = str(command)
    res = judge(await run_script(cmd, timeout, user), bool(conf.options.get("misc_dynamic")))
    return Result(res.ok, f"MISC_CHECK {shown}: {res.reason}", res.weight, res.offset)
