"""Named network namespaces (``ip netns``): enter one from Python, find and stop its processes.

``in_netns`` runs a Python callable on a fresh thread that has joined the namespace with
setns(2) (a network-namespace switch is per thread, so the rest of the process is untouched).
Sockets created there stay in that namespace for their whole life, and /proc/sys/net read or
written there is the namespace's own, so sysctls and readiness probes need no subprocess.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

NETNS_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000

T = TypeVar("T")

_libc = ctypes.CDLL(None, use_errno=True)


def netns_path(name: str) -> Path:
    return NETNS_DIR / name


def in_netns(name: str, fn: Callable[[], T]) -> T:
    """Call ``fn()`` on a new thread inside network namespace ``name``; return its result."""
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            fd = os.open(netns_path(name), os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns into netns {name}: {os.strerror(err)}")
            finally:
                os.close(fd)
            result.append(fn())
        except BaseException as e:
            error.append(e)

    t = threading.Thread(target=target, name=f"netns-{name}", daemon=True)
    t.start()
    t.join()
    if error:
        raise error[0]
    return result[0]


def netns_socket(
    name: str, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM, proto: int = 0
) -> socket.socket:
    """A socket created inside namespace ``name`` (usable from any thread afterwards)."""
    return in_netns(name, lambda: socket.socket(family, type, proto))


def write_sysctl(key: str, value: str) -> None:
    """Write one sysctl (``net.ipv4.ip_forward``) in the calling thread's namespaces."""
    path = Path("/proc/sys") / key.replace(".", "/")
    try:
        path.write_text(f"{value}\n")
    except OSError as e:
        raise OSError(e.errno, f"sysctl {key}={value}: {e.strerror}") from None


def list_netns(prefix: str) -> list[str]:
    """Names of the namespaces in /run/netns that start with ``prefix``."""
    try:
        return sorted(n for n in os.listdir(NETNS_DIR) if n.startswith(prefix))
    except FileNotFoundError:
        return []


def netns_id(name: str) -> tuple[int, int] | None:
    """(device, inode) of the namespace file: equal to ``/proc/PID/ns/net`` of its members."""
    try:
        st = os.stat(netns_path(name))
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def pids_in(ids: Iterable[tuple[int, int]]) -> list[int]:
    """Processes (other than this one) whose network namespace is one of ``ids``."""
    wanted = set(ids)
    if not wanted:
        return []
    me = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            st = os.stat(f"/proc/{entry}/ns/net")
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in wanted:
            found.append(int(entry))
    return found


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def kill_pids(pids: Iterable[int], timeout: float = 2.0) -> list[int]:
    """SIGKILL ``pids`` and wait until they are gone (or zombies); return the survivors."""
    pending = list(pids)
    for pid in pending:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        pending = [p for p in pending if not _gone(p)]
        if pending:
            time.sleep(0.01)
    return pending


def delete_netns(names: Iterable[str]) -> str:
    """``ip netns del`` every name (carrying on past failures); return ip's error text."""
    lines = "".join(f"netns del {n}\n" for n in names)
    if not lines:
        return ""
    r = subprocess.run(
        ["ip", "-force", "-batch", "-"], input=lines, capture_output=True, text=True, check=False
    )
    return "" if r.returncode == 0 else (r.stderr.strip() or f"ip exited with {r.returncode}")


def stop_process(
    proc: subprocess.Popen[Any], sig: int = signal.SIGTERM, grace: float = 3.0
) -> None:
    """Send ``sig`` to ``proc``'s process group (it was started in its own session), wait up to
    ``grace`` seconds, then SIGKILL the group; always reaps ``proc``."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (tells a reused pid apart), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])
