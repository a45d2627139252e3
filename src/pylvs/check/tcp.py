"""TCP_CHECK (keepalived check_tcp.c): the real server is healthy when a TCP connection to
connect_ip:connect_port (from bindto:bind_port, marked with fwmark) completes within
connect_timeout.  The connection is closed at once, without sending anything.
"""

from __future__ import annotations

from pylvs.check.base import connect_tcp, describe_error, hostport
from pylvs.check.state import Result
from pylvs.config.model import CheckerConf


async def run(conf: CheckerConf) -> Result:
    target = hostport(conf.connect_ip, conf.connect_port)
    try:
        sock = await connect_tcp(conf)
    except (OSError, TimeoutError) as e:
        return Result(False, f"TCP connection to {target} failed: {describe_error(e)}")
    sock.close()
    return Result(True, f"TCP connection to {target} succeeded")
