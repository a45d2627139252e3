"""Where pylvsd's control socket lives (shared by pylvsd and pylvsadm)."""

from __future__ import annotations

import os


def default_socket() -> str:
    """$PYLVS_SOCKET, else /run/pylvs/pylvsd.sock as root, else a per-user runtime path."""
    env = os.environ.get("PYLVS_SOCKET")
    if env:
        return env
    if os.geteuid() == 0:
        return "/run/pylvs/pylvsd.sock"
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        return os.path.join(runtime, "pylvs", "pylvsd.sock")
    return os.path.join("/tmp", f"pylvs-{os.geteuid()}", "pylvsd.sock")
