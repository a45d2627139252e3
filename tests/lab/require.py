"""``require_root``: skip lab tests on machines that cannot run them, but never in CI."""

from __future__ import annotations

import os
import shutil

import pytest

DEFAULT_TOOLS = ("ip", "nsenter")
SBIN = ("/usr/sbin", "/sbin", "/usr/local/sbin")


def find_tool(name: str) -> str | None:
    """``name`` on PATH or in the sbin directories (missing from non-root PATHs)."""
    path = os.environ.get("PATH", os.defpath) + os.pathsep + os.pathsep.join(SBIN)
    return shutil.which(name, path=path)


def require_root(*tools: str) -> None:
    """Skip the calling test unless running as root with ``ip``, ``nsenter`` and ``tools``
    (e.g. ``"tcpdump"``, ``"nginx"``) installed; when ``CI=true`` fail instead of skipping."""
    problems = []
    if os.geteuid() != 0:
        problems.append("not running as root (network namespaces need CAP_SYS_ADMIN)")
    if not os.path.exists("/proc/self/ns/net"):
        problems.append("no network namespace support (/proc/self/ns/net)")
    missing = [t for t in dict.fromkeys((*DEFAULT_TOOLS, *tools)) if find_tool(t) is None]
    if missing:
        problems.append(f"missing programs: {', '.join(missing)} (see scripts/debian-packages.txt)")
    if not problems:
        return
    reason = "lab tests need " + "; ".join(problems)
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} [CI=true: failing instead of skipping]")
    pytest.skip(reason)
