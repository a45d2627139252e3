"""TCP connection states, timeouts and transitions (kernel ip_vs_proto_tcp.c).

The transition table is indexed by (direction, event) and then by the current
state, like the kernel's ``tcp_states[]``: three directions (INPUT: client to
real server through the director; OUTPUT: replies seen by the director, NAT;
INPUT_ONLY: a connection whose replies bypass the director, DR/TUN) and four
events taken from the TCP flags in the kernel's priority order RST > SYN >
FIN > ACK.  A packet with none of these flags moves the connection to CLOSE.
"""

from __future__ import annotations

from enum import IntEnum


class TcpState(IntEnum):
    NONE = 0
    ESTABLISHED = 1
    SYN_SENT = 2
    SYN_RECV = 3
    FIN_WAIT = 4
    TIME_WAIT = 5
    CLOSE = 6
    CLOSE_WAIT = 7
    LAST_ACK = 8
    LISTEN = 9
    SYNACK = 10


class Dir(IntEnum):
    """Direction of a packet relative to the connection (IP_VS_DIR_*)."""

    INPUT = 0
    OUTPUT = 1
    INPUT_ONLY = 2


class TcpEvent(IntEnum):
    SYN = 0
    FIN = 1
    ACK = 2
    RST = 3


# TCP header flag bits as they appear in the 13th byte of the header.
TH_FIN = 0x01
TH_SYN = 0x02
TH_RST = 0x04
TH_ACK = 0x10

STATE_NAMES: tuple[str, ...] = tuple(s.name for s in TcpState)

# Default timeouts in seconds (tcp_timeouts[]).
DEFAULT_TIMEOUTS: dict[TcpState, int] = {
    TcpState.NONE: 2,
    TcpState.ESTABLISHED: 15 * 60,
    TcpState.SYN_SENT: 2 * 60,
    TcpState.SYN_RECV: 60,
    TcpState.FIN_WAIT: 2 * 60,
    TcpState.TIME_WAIT: 2 * 60,
    TcpState.CLOSE: 10,
    TcpState.CLOSE_WAIT: 60,
    TcpState.LAST_ACK: 30,
    TcpState.LISTEN: 2 * 60,
    TcpState.SYNACK: 120,
}

# States counted in the dest's activeconns (tcp_state_active_table[]).
ACTIVE_STATES = frozenset(
    {TcpState.ESTABLISHED, TcpState.SYN_SENT, TcpState.SYN_RECV, TcpState.SYNACK}
)

_S = TcpState
_NO, _ES, _SS, _SR = _S.NONE, _S.ESTABLISHED, _S.SYN_SENT, _S.SYN_RECV
_FW, _TW, _CL, _CW = _S.FIN_WAIT, _S.TIME_WAIT, _S.CLOSE, _S.CLOSE_WAIT
_LA, _LI, _SA = _S.LAST_ACK, _S.LISTEN, _S.SYNACK

# Rows: the next state for each current state, in the order NONE ESTABLISHED
# SYN_SENT SYN_RECV FIN_WAIT TIME_WAIT CLOSE CLOSE_WAIT LAST_ACK LISTEN SYNACK
_ROWS: dict[tuple[Dir, TcpEvent], tuple[TcpState, ...]] = {
    (Dir.INPUT, TcpEvent.SYN): (_SR, _ES, _ES, _SR, _SR, _SR, _SR, _SR, _SR, _SR, _SR),
    (Dir.INPUT, TcpEvent.FIN): (_CL, _CW, _SS, _TW, _TW, _TW, _CL, _CW, _LA, _LI, _TW),
    (Dir.INPUT, TcpEvent.ACK): (_ES, _ES, _SS, _ES, _FW, _TW, _CL, _CW, _CL, _LI, _ES),
    (Dir.INPUT, TcpEvent.RST): (_CL, _CL, _CL, _SR, _CL, _CL, _CL, _CL, _LA, _LI, _SR),
    (Dir.OUTPUT, TcpEvent.SYN): (_SS, _ES, _SS, _SR, _SS, _SS, _SS, _SS, _SS, _LI, _SR),
    (Dir.OUTPUT, TcpEvent.FIN): (_TW, _FW, _SS, _TW, _FW, _TW, _CL, _TW, _LA, _LI, _TW),
    (Dir.OUTPUT, TcpEvent.ACK): (_ES, _ES, _SS, _ES, _FW, _TW, _CL, _CW, _LA, _ES, _ES),
    (Dir.OUTPUT, TcpEvent.RST): (_CL, _CL, _SS, _CL, _CL, _TW, _CL, _CL, _CL, _CL, _CL),
    (Dir.INPUT_ONLY, TcpEvent.SYN): (_SR, _ES, _ES, _SR, _SR, _SR, _SR, _SR, _SR, _SR, _SR),
    (Dir.INPUT_ONLY, TcpEvent.FIN): (_CL, _FW, _SS, _TW, _FW, _TW, _CL, _CW, _LA, _LI, _TW),
    (Dir.INPUT_ONLY, TcpEvent.ACK): (_ES, _ES, _SS, _ES, _FW, _TW, _CL, _CW, _CL, _LI, _ES),
    (Dir.INPUT_ONLY, TcpEvent.RST): (_CL, _CL, _CL, _SR, _CL, _CL, _CL, _CL, _LA, _LI, _CL),
}

TRANSITIONS: dict[tuple[Dir, TcpEvent, TcpState], TcpState] = {
    (d, e, TcpState(cur)): nxt for (d, e), row in _ROWS.items() for cur, nxt in enumerate(row)
}

# Flat lookup for the hot path: _FLAT[(dir * 4 + event) * 11 + state] -> int state
_FLAT: tuple[int, ...] = tuple(
    int(TRANSITIONS[(d, e, s)]) for d in Dir for e in TcpEvent for s in TcpState
)
_NSTATES = len(TcpState)


def event_of(tcp_flags: int) -> int:
    """tcp_state_idx(): RST first, then SYN, FIN, ACK; -1 when none is set."""
    if tcp_flags & TH_RST:
        return TcpEvent.RST
    if tcp_flags & TH_SYN:
        return TcpEvent.SYN
    if tcp_flags & TH_FIN:
        return TcpEvent.FIN
    if tcp_flags & TH_ACK:
        return TcpEvent.ACK
    return -1


# The hot path's table: NEXT[direction][flags & 0xFF][state] -> state, with the
# event already derived from the flag byte (CLOSE when no event flag is set).
NEXT: tuple[tuple[tuple[int, ...], ...], ...] = tuple(
    tuple(
        tuple(
            int(TcpState.CLOSE) if event_of(f) < 0 else _FLAT[(d * 4 + event_of(f)) * _NSTATES + st]
            for st in range(_NSTATES)
        )
        for f in range(256)
    )
    for d in range(len(Dir))
)
ACTIVE: tuple[bool, ...] = tuple(TcpState(s) in ACTIVE_STATES for s in range(_NSTATES))


def next_state(direction: int, tcp_flags: int, state: int) -> int:
    """The state after a packet with ``tcp_flags`` seen in ``direction``."""
    ev = event_of(tcp_flags)
    if ev < 0:
        return TcpState.CLOSE
    return _FLAT[(direction * 4 + ev) * _NSTATES + state]


def is_active(state: int) -> bool:
    return ACTIVE[state]
