"""UDP "state" (kernel ip_vs_proto_udp.c): one state, NORMAL, 300 s by default.

UDP connections are never counted as active: they stay in the dest's
inactconns for their whole life, as with the kernel.
"""

from __future__ import annotations

UDP_S_NORMAL = 0
STATE_NAMES = ("UDP",)
DEFAULT_TIMEOUT = 5 * 60
