"""Per-protocol state timeouts (the kernel's pd->timeout_table), in seconds.

``ipvsadm --set tcp tcpfin udp`` changes ESTABLISHED, FIN_WAIT and UDP; a
zero leaves the value as it is.  The same three are what ``--timeout`` shows.
"""

from __future__ import annotations

from pylvs.core import proto_tcp, proto_udp
from pylvs.core.errors import invalid

MAX_TIMEOUT = 0x7FFFFFFF // 1000  # the kernel stores jiffies in an int (HZ up to 1000)


def _sctp_defaults() -> list[int]:
    from pylvs.core import proto_sctp

    return [proto_sctp.DEFAULT_TIMEOUTS[s] for s in proto_sctp.SctpState]


class Timeouts:
    __slots__ = ("sctp", "tcp", "udp")

    def __init__(self) -> None:
        self.tcp: list[int] = [proto_tcp.DEFAULT_TIMEOUTS[s] for s in proto_tcp.TcpState]
        self.udp: int = proto_udp.DEFAULT_TIMEOUT
        self.sctp: list[int] = _sctp_defaults()

    def get(self) -> tuple[int, int, int]:
        """(tcp, tcpfin, udp) as ``ipvsadm --timeout`` prints them."""
        return (
            self.tcp[proto_tcp.TcpState.ESTABLISHED],
            self.tcp[proto_tcp.TcpState.FIN_WAIT],
            self.udp,
        )

    def set(self, tcp: int, tcpfin: int, udp: int) -> None:
        """ip_vs_set_timeout(): zero keeps the current value; all or nothing."""
        for v in (tcp, tcpfin, udp):
            if not isinstance(v, int) or v < 0 or v > MAX_TIMEOUT:
                raise invalid(f"timeout out of range: {v!r}")
        if tcp:
            self.tcp[proto_tcp.TcpState.ESTABLISHED] = tcp
        if tcpfin:
            self.tcp[proto_tcp.TcpState.FIN_WAIT] = tcpfin
        if udp:
            self.udp = udp
