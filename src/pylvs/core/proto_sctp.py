"""SCTP connection states, timeouts and transitions (kernel ip_vs_proto_sctp.c).

The kernel tracks an SCTP association with fourteen states "as seen by the
real server" (``enum ip_vs_sctp_states`` in include/net/ip_vs.h) and drives
them with ten events derived from the type of the packet's FIRST chunk
(``sctp_events[]``).  The transition table ``sctp_states[dir][event][state]``
has the three directions of the other protocols: INPUT (client to real server
through the director), OUTPUT (replies seen by the director, NAT) and
INPUT_ONLY (a connection whose replies bypass the director, DR/TUN).

Event derivation (``set_sctp_state``):

* only the first chunk counts, with one exception: when the first chunk is a
  COOKIE ECHO or a COOKIE ACK and its length field is at least 4, the chunk
  header that starts at the first chunk's length rounded up to a multiple of 4
  is looked at too, and if it is an ABORT the event is ABORT;
* chunk types 0..14 map through the kernel's table (SACK, HEARTBEAT,
  HEARTBEAT ACK, ECNE and CWR count as DATA); every type from 15 up (AUTH,
  I-DATA, ASCONF, RE-CONFIG, FORWARD TSN, PAD, ...) counts as DATA too;
* chunk flags and error causes play no part.
* if the packet does not hold a whole first chunk header (4 bytes after the
  12-byte common header) the kernel leaves the state and the timeout alone.

Scheduling (``sctp_conn_schedule``): a packet with no connection creates one
only when its first chunk is INIT, or, with the ``sloppy_sctp`` sysctl, any
first chunk but ABORT.

Active/inactive accounting: SCTP has no "active state" table like TCP's; the
kernel moves the connection between the dest's activeconns and inactconns
when the state changes, using ``new_state == ESTABLISHED`` as the test, so
only ESTABLISHED is active.  (A brand new connection is counted active by
ip_vs_bind_dest until its first transition, which happens on the very packet
that created it: no state maps to NONE, so that first transition always
changes the state and the counters are then settled.)

Deliberate differences: none in behaviour.  ``event_of_segment`` takes the
SCTP segment itself; the kernel finds it at ``sizeof(struct ipv6hdr)`` for
IPv6, i.e. it assumes there are no IPv6 extension headers, which a caller that
wants to reproduce that quirk must take into account.
"""

from __future__ import annotations

from enum import IntEnum

from pylvs.core.proto_tcp import Dir

__all__ = [
    "DEFAULT_TIMEOUTS",
    "STATE_NAMES",
    "TRANSITIONS",
    "Dir",
    "SctpEvent",
    "SctpState",
    "event_of",
    "event_of_segment",
    "is_active",
    "is_closed",
    "is_new_conn",
    "next_state",
    "resolve_direction",
    "state_name",
]


class SctpState(IntEnum):
    """IP_VS_SCTP_S_* in the kernel's order."""

    NONE = 0
    INIT1 = 1
    INIT = 2
    COOKIE_SENT = 3
    COOKIE_REPLIED = 4
    COOKIE_WAIT = 5
    COOKIE = 6
    COOKIE_ECHOED = 7
    ESTABLISHED = 8
    SHUTDOWN_SENT = 9
    SHUTDOWN_RECEIVED = 10
    SHUTDOWN_ACK_SENT = 11
    REJECTED = 12
    CLOSED = 13


class SctpEvent(IntEnum):
    """IP_VS_SCTP_* events (enum ipvs_sctp_event_t)."""

    DATA = 0  # DATA, SACK, HEARTBEAT(-ACK), ECNE, CWR and unknown chunks
    INIT = 1
    INIT_ACK = 2
    COOKIE_ECHO = 3
    COOKIE_ACK = 4
    SHUTDOWN = 5
    SHUTDOWN_ACK = 6
    SHUTDOWN_COMPLETE = 7
    ERROR = 8
    ABORT = 9


# SCTP chunk type codes (RFC 9260, section 3.2).
CID_DATA = 0
CID_INIT = 1
CID_INIT_ACK = 2
CID_SACK = 3
CID_HEARTBEAT = 4
CID_HEARTBEAT_ACK = 5
CID_ABORT = 6
CID_SHUTDOWN = 7
CID_SHUTDOWN_ACK = 8
CID_ERROR = 9
CID_COOKIE_ECHO = 10
CID_COOKIE_ACK = 11
CID_ECN_ECNE = 12
CID_ECN_CWR = 13
CID_SHUTDOWN_COMPLETE = 14

# Sizes of the SCTP common header and of a chunk header.
SCTP_HDR_LEN = 12
CHUNK_HDR_LEN = 4

# Names printed for each state (sctp_state_name_table[]), as shown by
# ipvsadm -Lnc through /proc/net/ip_vs_conn.
STATE_NAMES: tuple[str, ...] = (
    "NONE",
    "INIT1",
    "INIT",
    "C-SENT",
    "C-REPLIED",
    "C-WAIT",
    "COOKIE",
    "C-ECHOED",
    "ESTABLISHED",
    "S-SENT",
    "S-RECEIVED",
    "S-ACK-SENT",
    "REJECTED",
    "CLOSED",
)

_MAX_RTO = 60 + 1  # IP_VS_SCTP_MAX_RTO, seconds

# Default timeouts in seconds (sctp_timeouts[]).
DEFAULT_TIMEOUTS: dict[SctpState, int] = {
    SctpState.NONE: 2,
    SctpState.INIT1: 0 + 3 + 1,
    SctpState.INIT: _MAX_RTO,
    SctpState.COOKIE_SENT: _MAX_RTO,
    SctpState.COOKIE_REPLIED: _MAX_RTO,
    SctpState.COOKIE_WAIT: _MAX_RTO,
    SctpState.COOKIE: _MAX_RTO,
    SctpState.COOKIE_ECHOED: _MAX_RTO,
    SctpState.ESTABLISHED: 15 * 60,
    SctpState.SHUTDOWN_SENT: _MAX_RTO,
    SctpState.SHUTDOWN_RECEIVED: _MAX_RTO,
    SctpState.SHUTDOWN_ACK_SENT: _MAX_RTO,
    SctpState.REJECTED: 0 + 3 + 1,
    SctpState.CLOSED: _MAX_RTO,
}

# Chunk type -> event for the types the kernel lists (0..14); every other
# type is DATA.
_E = SctpEvent
_CHUNK_EVENTS: tuple[SctpEvent, ...] = (
    _E.DATA,  # DATA
    _E.INIT,  # INIT
    _E.INIT_ACK,  # INIT ACK
    _E.DATA,  # SACK
    _E.DATA,  # HEARTBEAT
    _E.DATA,  # HEARTBEAT ACK
    _E.ABORT,  # ABORT
    _E.SHUTDOWN,  # SHUTDOWN
    _E.SHUTDOWN_ACK,  # SHUTDOWN ACK
    _E.ERROR,  # ERROR
    _E.COOKIE_ECHO,  # COOKIE ECHO
    _E.COOKIE_ACK,  # COOKIE ACK
    _E.DATA,  # ECNE
    _E.DATA,  # CWR
    _E.SHUTDOWN_COMPLETE,  # SHUTDOWN COMPLETE
)

_S = SctpState
_NO, _I1, _IN, _CS, _CR = _S.NONE, _S.INIT1, _S.INIT, _S.COOKIE_SENT, _S.COOKIE_REPLIED
_CW, _CO, _CE, _ES = _S.COOKIE_WAIT, _S.COOKIE, _S.COOKIE_ECHOED, _S.ESTABLISHED
_SS, _SR, _SA = _S.SHUTDOWN_SENT, _S.SHUTDOWN_RECEIVED, _S.SHUTDOWN_ACK_SENT
_RJ, _CL = _S.REJECTED, _S.CLOSED

# Rows: next state for the current states in the order
#   NONE INIT1 INIT C-SENT C-REPLIED C-WAIT COOKIE C-ECHOED ESTABLISHED
#   S-SENT S-RECEIVED S-ACK-SENT REJECTED CLOSED
# fmt: off
_ROWS: dict[tuple[Dir, SctpEvent], tuple[SctpState, ...]] = {
    # INPUT
    (Dir.INPUT, _E.DATA): (_ES, _I1, _IN, _CS, _CR, _CW, _CO, _CE, _ES, _SS, _SR, _SA, _RJ, _CL),
    (Dir.INPUT, _E.INIT): (_I1, _IN, _IN, _CS, _CR, _CW, _CO, _CE, _ES, _SS, _SR, _SA, _IN, _IN),
    (Dir.INPUT, _E.INIT_ACK): (_CW, _CW, _CW, _CS, _CR, _CO, _CO, _CE, _ES, _SS, _SR, _SA, _RJ, _CL),
    (Dir.INPUT, _E.COOKIE_ECHO): (_CR, _IN, _IN, _CR, _CR, _CW, _CO, _CE, _ES, _SS, _SR, _SA, _RJ, _CL),
    (Dir.INPUT, _E.COOKIE_ACK): (_ES, _I1, _IN, _CS, _CR, _CW, _CO, _ES, _ES, _SS, _SR, _SA, _RJ, _CL),
    (Dir.INPUT, _E.SHUTDOWN): (_SR, _I1, _IN, _CS, _CR, _CW, _CO, _CE, _SR, _SS, _SR, _SA, _RJ, _CL),
    (Dir.INPUT, _E.SHUTDOWN_ACK): (_CL, _IN, _IN, _CS, _CR, _CW, _CO, _CE, _ES, _CL, _SR, _CL, _RJ, _CL),
    (Dir.INPUT, _E.SHUTDOWN_COMPLETE): (_CL, _CL, _CL, _CS, _CR, _CW, _CO, _CE, _ES, _SS, _SR, _CL, _RJ, _CL),
    (Dir.INPUT, _E.ERROR): (_CL, _I1, _IN, _CS, _CR, _CW, _CO, _CL, _ES, _SS, _SR, _SA, _RJ, _CL),
    (Dir.INPUT, _E.ABORT): (_CL, _CL, _CL, _CL, _CL, _RJ, _CL, _CL, _CL, _CL, _CL, _CL, _CL, _CL),
    # OUTPUT
    (Dir.OUTPUT, _E.DATA): (_ES, _I1, _IN, _CS, _CR, _CW, _CO, _CE, _ES, _SS, _SR, _SA, _RJ, _CL),
    (Dir.OUTPUT, _E.INIT): (_CW, _CW, _CW, _CW, _CW, _CW, _CW, _CW, _ES, _CW, _CW, _CW, _CW, _CW),
    (Dir.OUTPUT, _E.INIT_ACK): (_CS, _CS, _CS, _CS, _CR, _CW, _CO, _CE, _ES, _SS, _SR, _SA, _RJ, _CL),
    (Dir.OUTPUT, _E.COOKIE_ECHO): (_CE, _CE, _CE, _CE, _CE, _CE, _CE, _CE, _ES, _SS, _SR, _SA, _RJ, _CL),
    (Dir.OUTPUT, _E.COOKIE_ACK): (_ES, _ES, _ES, _ES, _ES, _ES, _ES, _ES, _ES, _SS, _SR, _SA, _RJ, _CL),
    (Dir.OUTPUT, _E.SHUTDOWN): (_SS, _SS, _SS, _SS, _SS, _SS, _SS, _SS, _SS, _SS, _SR, _SA, _RJ, _CL),
    (Dir.OUTPUT, _E.SHUTDOWN_ACK): (_SA, _SA, _SA, _SA, _SA, _CW, _CO, _CE, _ES, _SA, _SA, _SA, _RJ, _CL),
    (Dir.OUTPUT, _E.SHUTDOWN_COMPLETE): (_CL, _I1, _IN, _CS, _CR, _CW, _CO, _CE, _ES, _SS, _SR, _SA, _RJ, _CL),
    (Dir.OUTPUT, _E.ERROR): (_CL, _CL, _CL, _CL, _CL, _CW, _CO, _CE, _ES, _SS, _SR, _SA, _RJ, _CL),
    (Dir.OUTPUT, _E.ABORT): (_CL, _RJ, _CL, _CL, _CL, _CL, _CL, _CL, _CL, _CL, _CL, _CL, _CL, _CL),
    # INPUT_ONLY
    (Dir.INPUT_ONLY, _E.DATA): (_ES, _I1, _IN, _CS, _CR, _ES, _CO, _CE, _ES, _SS, _SR, _SA, _RJ, _CL),
    (Dir.INPUT_ONLY, _E.INIT): (_I1, _IN, _IN, _IN, _IN, _IN, _CO, _CE, _ES, _SS, _SR, _SA, _IN, _IN),
    (Dir.INPUT_ONLY, _E.INIT_ACK): (_CE, _CE, _CE, _CE, _CE, _CE, _CO, _CE, _ES, _SS, _SR, _SA, _RJ, _CL),
    (Dir.INPUT_ONLY, _E.COOKIE_ECHO): (_ES, _ES, _ES, _ES, _ES, _ES, _CO, _CE, _ES, _SS, _SR, _SA, _RJ, _CL),
    (Dir.INPUT_ONLY, _E.COOKIE_ACK): (_ES, _I1, _IN, _ES, _ES, _CW, _ES, _ES, _ES, _SS, _SR, _SA, _RJ, _CL),
    (Dir.INPUT_ONLY, _E.SHUTDOWN): (_SR, _I1, _IN, _CS, _CR, _CW, _CO, _CE, _SR, _SS, _SR, _SA, _RJ, _CL),
    (Dir.INPUT_ONLY, _E.SHUTDOWN_ACK): (_CL, _IN, _IN, _CS, _CR, _CW, _CO, _CE, _CL, _CL, _SR, _CL, _RJ, _CL),
    (Dir.INPUT_ONLY, _E.SHUTDOWN_COMPLETE): (_CL, _CL, _CL, _CL, _CL, _CW, _CO, _CE, _ES, _SS, _CL, _CL, _RJ, _CL),
    (Dir.INPUT_ONLY, _E.ERROR): (_CL, _I1, _IN, _CS, _CR, _CW, _CO, _CE, _ES, _SS, _SR, _SA, _RJ, _CL),
    (Dir.INPUT_ONLY, _E.ABORT): (_CL, _CL, _CL, _CL, _CL, _RJ, _CL, _CL, _CL, _CL, _CL, _CL, _CL, _CL),
}
# fmt: on

TRANSITIONS: dict[tuple[Dir, SctpEvent, SctpState], SctpState] = {
    (d, e, SctpState(cur)): nxt for (d, e), row in _ROWS.items() for cur, nxt in enumerate(row)
}

_NSTATES = len(SctpState)
_NEVENTS = len(SctpEvent)

# Flat lookup for the hot path: _FLAT[(dir * 10 + event) * 14 + state] -> int state
_FLAT: tuple[int, ...] = tuple(
    int(TRANSITIONS[(d, e, s)]) for d in Dir for e in SctpEvent for s in SctpState
)


def event_of(chunk_type: int, *, next_chunk_type: int | None = None) -> int:
    """The event for a packet whose first chunk has type ``chunk_type``.

    ``chunk_type`` is the type byte (0..255) of the first chunk, the one right
    after the 12-byte common header.

    ``next_chunk_type`` matters only when the first chunk is COOKIE ECHO or
    COOKIE ACK.  Then the caller passes the type byte of the chunk header
    found at offset ``(length + 3) & ~3`` from the start of the first chunk,
    where ``length`` is the first chunk's 16-bit length field; it passes
    None when ``length < 4`` or when fewer than 4 bytes of the packet are
    left at that offset.  If that chunk is an ABORT the event is ABORT.
    Anything else may be passed (or None) for other first chunks: the
    kernel does not look past them.
    """
    if next_chunk_type == CID_ABORT and chunk_type in (CID_COOKIE_ECHO, CID_COOKIE_ACK):
        return SctpEvent.ABORT
    if 0 <= chunk_type < len(_CHUNK_EVENTS):
        return _CHUNK_EVENTS[chunk_type]
    return SctpEvent.DATA


def event_of_segment(segment: bytes | bytearray | memoryview) -> int | None:
    """The event for an SCTP segment (common header and chunks, no IP header).

    Returns None when the segment does not hold a whole first chunk header;
    the kernel then changes neither the state nor the timeout.
    """
    first = SCTP_HDR_LEN
    if len(segment) < first + CHUNK_HDR_LEN:
        return None
    chunk_type = segment[first]
    nxt: int | None = None
    if chunk_type in (CID_COOKIE_ECHO, CID_COOKIE_ACK):
        length = (segment[first + 2] << 8) | segment[first + 3]
        if length >= CHUNK_HDR_LEN:
            off = first + ((length + 3) & ~3)
            if off + CHUNK_HDR_LEN <= len(segment):
                nxt = segment[off]
    return event_of(chunk_type, next_chunk_type=nxt)


def resolve_direction(direction: int, no_output: bool) -> tuple[int, bool]:
    """Direction used for the table, and the connection's new NOOUTPUT flag.

    A connection flagged IP_VS_CONN_F_NOOUTPUT (its replies have not been
    seen) uses the INPUT_ONLY table for its input packets; the first OUTPUT
    packet clears the flag and uses the OUTPUT table.
    """
    if not no_output:
        return direction, False
    if direction == Dir.OUTPUT:
        return Dir.OUTPUT, False
    return Dir.INPUT_ONLY, True


def next_state(direction: int, event: int, state: int) -> int:
    """sctp_states[direction][event][state] (direction as resolved above)."""
    return _FLAT[(direction * _NEVENTS + event) * _NSTATES + state]


def is_active(state: int) -> bool:
    """Counted in the dest's activeconns (only ESTABLISHED, as the kernel)."""
    return state == SctpState.ESTABLISHED


def is_closed(state: int) -> bool:
    """SCTP part of is_new_conn_expected(): an INIT may reuse the slot."""
    return state == SctpState.CLOSED


def is_new_conn(chunk_type: int, sloppy: bool = False) -> bool:
    """Whether a packet with no connection may create one (sctp_conn_schedule).

    INIT always may; with ``sloppy`` (the sloppy_sctp sysctl) any first chunk
    but ABORT may.  With ``sloppy`` False this is also ip_vs_core's
    is_new_conn() test for SCTP (first chunk is INIT), used for connection
    reuse together with :func:`is_closed`.
    """
    if chunk_type == CID_ABORT:
        return False
    return sloppy or chunk_type == CID_INIT


def state_name(state: int) -> str:
    """sctp_state_name(): the printed name, "ERR!" for an unknown state."""
    if 0 <= state < len(STATE_NAMES):
        return STATE_NAMES[state]
    return "ERR!"
