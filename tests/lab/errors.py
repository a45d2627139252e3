"""Errors of the lab fixture library."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Sequence
from typing import Any


class LabError(RuntimeError):
    """Building, using or tearing down a lab failed; the message says where and why."""


class LabCommandError(subprocess.CalledProcessError):
    """A command run in a lab node exited non-zero; ``str()`` shows its stderr."""

    def __init__(self, node: str, argv: Sequence[str], proc: subprocess.CompletedProcess[Any]):
        super().__init__(proc.returncode, list(argv), proc.stdout, proc.stderr)
        self.node = node

    def __str__(self) -> str:
        out = (self.stderr or self.stdout or "").strip()
        return f"in {self.node}: `{shlex.join(self.cmd)}` exited with {self.returncode}" + (
            f": {out}" if out else ""
        )
