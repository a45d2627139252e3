"""``--dataplane none``: the table and its counters, nothing forwarded.

For validating rule files and configurations, for a director that only
speaks VRRP, and for tests.  Forwarding methods default to direct routing,
as with ipvsadm.
"""

from __future__ import annotations

from typing import ClassVar

from pylvs.daemon.ctl import Policy
from pylvs.dataplane.base import DataPlane


class NoDataPlane(DataPlane):
    name: ClassVar[str] = "none"
    policy: ClassVar[Policy] = Policy()
