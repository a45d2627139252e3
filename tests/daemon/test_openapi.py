"""The OpenAPI document, checked by schemathesis against a running pylvsd.

schemathesis generates requests for every operation (valid and invalid);
the daemon must answer each with a response its own document allows and
never a 5xx.  (schemathesis's CLI is used: its pytest plugin does not load
under pytest 9.)  The one check left out, positive_data_acceptance, expects
every schema-valid request to succeed; the engine refuses many of them on
purpose (a service that already exists, a zero port without persistence, an
address that is not unicast), with ipvsadm's messages.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from pylvs.testing.daemon import pylvsd


def test_schemathesis_against_running_daemon(tmp_path: Path) -> None:
    exe = shutil.which("schemathesis") or str(Path(sys.executable).parent / "schemathesis")
    with pylvsd(http=True) as d:
        r = subprocess.run(
            [
                exe,
                "run",
                f"http://{d.http}/v1/openapi.json",
                "--checks",
                "all",
                "--exclude-checks",
                "positive_data_acceptance",
                "--max-examples",
                "30",
                "--seed",
                "1",
                "--generation-deterministic",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_path,
        )
        assert d.proc.poll() is None, "pylvsd died under schemathesis"
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]
