"""Health checkers (keepalived's checker process): TCP_CHECK, HTTP_GET, SSL_GET,
MISC_CHECK, SMTP_CHECK, DNS_CHECK, UDP_CHECK, PING_CHECK, FILE_CHECK.

- ``state``: the pure up/down and weight logic (CheckState, ServerHealth);
- ``base``: the checker protocol (``async def run(conf) -> Result``), the registry by
  keepalived keyword, shared socket helpers;
- one module per kind (``tcp``, ``http``, ``misc``, ``smtp``, ``dns``, ``udp``,
  ``ping``, ``file``);
- ``runner``: CheckRunner, the asyncio scheduler for many real servers.
"""

from pylvs.check.base import KINDS, get_checker
from pylvs.check.runner import CheckRunner, RunnerStats, ServerSpec
from pylvs.check.state import CheckState, Outcome, Result, ServerChange, ServerHealth

__all__ = [
    "KINDS",
    "CheckRunner",
    "CheckState",
    "Outcome",
    "Result",
    "RunnerStats",
    "ServerChange",
    "ServerHealth",
    "ServerSpec",
    "get_checker",
]
