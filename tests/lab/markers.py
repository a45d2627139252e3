"""Lab prefixes and their marker files: unique names per lab, and a sweep of crashed runs.

Every lab claims a short prefix ``pl`` + 4 hex digits (namespaces are ``<prefix>-<node>``)
by creating /run/pylvs-lab/<prefix> atomically (written aside, then hard-linked into place,
so a reader never sees a half-written marker).  The marker records the owner's pid, its
start time (so a reused pid is not mistaken for the owner) and the lab's temporary directory.

``sweep_stale`` removes what labs of dead owners left behind (SIGKILLed test runs, os._exit):
their processes, namespaces, temporary directory and marker.  Labs of live owners are never
touched, so parallel test runs do not disturb each other.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.lab.netns import delete_netns, kill_pids, list_netns, netns_id, pids_in, start_time

MARKER_DIR = Path("/run/pylvs-lab")
PREFIX_RE = re.compile(r"pl[0-9a-f]{4}")
TMP_PREFIX = "pylvs-lab-"
UNREADABLE_GRACE = 60.0  # seconds an unparsable marker is left alone before it counts as stale


@dataclass(frozen=True)
class Marker:
    prefix: str
    pid: int
    start: int | None
    tmpdir: str

    def alive(self) -> bool:
        return self.start is not None and start_time(self.pid) == self.start


def claim_prefix(tmpdir: Path) -> str:
    """Pick an unused prefix, record this process as its owner and return it."""
    MARKER_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
    pid = os.getpid()
    body = json.dumps({"pid": pid, "start": start_time(pid), "tmpdir": str(tmpdir)})
    for _ in range(100):
        prefix = "pl" + secrets.token_hex(2)
        if list_netns(prefix + "-"):
            continue  # an unmarked leftover holds it: do not reuse its names
        aside = MARKER_DIR / f".{prefix}.{pid}.tmp"
        aside.write_text(body)
        try:
            os.link(aside, MARKER_DIR / prefix)
        except FileExistsError:
            continue
        finally:
            aside.unlink()
        return prefix
    raise RuntimeError(f"no free lab prefix in {MARKER_DIR}")


def release_prefix(prefix: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        (MARKER_DIR / prefix).unlink()


def read_marker(path: Path) -> Marker | None:
    try:
        data = json.loads(path.read_text())
        return Marker(path.name, int(data["pid"]), data.get("start"), str(data.get("tmpdir", "")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def remove_lab_tmpdir(tmpdir: str) -> None:
    """Remove a lab's temporary directory, but only one that looks like ours."""
    p = Path(tmpdir)
    if p.name.startswith(TMP_PREFIX) and p.parent == Path(tempfile.gettempdir()):
        shutil.rmtree(p, ignore_errors=True)


def destroy_prefix(prefix: str) -> list[str]:
    """Kill the processes in and delete every namespace of ``prefix``; return what is left."""
    names = list_netns(prefix + "-")
    ids = [i for i in map(netns_id, names) if i is not None]
    kill_pids(pids_in(ids))
    delete_netns(names)
    return list_netns(prefix + "-")


def sweep_stale() -> list[str]:
    """Destroy the labs whose owning process is gone; return their prefixes."""
    swept: list[str] = []
    try:
        entries = list(MARKER_DIR.iterdir())
    except FileNotFoundError:
        return swept
    for path in entries:
        if path.name.startswith("."):
            # A marker being written; stale only if its writer is dead.
            parts = path.name.split(".")
            if len(parts) == 4 and parts[2].isdigit() and start_time(int(parts[2])) is None:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            continue
        if not PREFIX_RE.fullmatch(path.name):
            continue
        marker = read_marker(path)
        if marker is None:
            with contextlib.suppress(OSError):
                if time.time() - path.stat().st_mtime < UNREADABLE_GRACE:
                    continue
            marker = Marker(path.name, 0, None, "")
        elif marker.alive():
            continue
        if destroy_prefix(marker.prefix):
            continue  # could not delete everything: leave the marker for a later sweep
        remove_lab_tmpdir(marker.tmpdir)
        release_prefix(marker.prefix)
        swept.append(marker.prefix)
    return swept
