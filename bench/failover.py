"""Failover of a VRRP pair of packet directors: time to take over and connections lost.

Runs the scenarios of ``tests/ha/test_failover_lab.py`` (root; network namespaces) and
prints one line each: the failover time (the master's death -> the VIP on the backup),
the first new connection answered, the failback, the new connections lost (and those
held up by more than 0.5 s) out of 20 per second, and the long upload's bytes (checked
intact) and longest pause.

    sudo .venv/bin/python bench/failover.py                 # the four cases
    sudo .venv/bin/python bench/failover.py nat link preempt
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
for _p in (REPO, REPO / "src"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from tests.ha.test_failover_lab import BACK, CASES, failover  # noqa: E402


def main(argv: list[str]) -> int:
    if argv:
        if len(argv) != 3 or argv[0] not in ("dr", "nat") or argv[1] not in ("link", "sigkill"):
            print(f"usage: failover.py [dr|nat link|sigkill {'|'.join(BACK)}]", file=sys.stderr)
            return 2
        if argv[2] not in BACK:
            print(f"unknown way back {argv[2]!r}: {', '.join(BACK)}", file=sys.stderr)
            return 2
        cases = [(argv[0], argv[1], argv[2])]
    else:
        cases = list(CASES)
    failed = 0
    lines = []
    for mode, how, back in cases:
        try:
            lines.append(failover(mode, how, back).line())
        except Exception:
            failed += 1
            traceback.print_exc()
            lines.append(f"{mode.upper()} {how} ({back}): FAILED")
    print("\nsummary:")
    for line in lines:
        print(f"  {line}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
