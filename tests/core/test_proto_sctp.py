"""Pin proto_sctp to the kernel's ip_vs_proto_sctp.c (and include/net/ip_vs.h).

The tables below were typed in by hand from the kernel source, using the
kernel's own two-letter abbreviations (sNO, sI1, ... without the leading "s"),
and are parsed here independently of the module under test.
"""

from __future__ import annotations

import struct

import pytest

from pylvs.core import proto_sctp as sc
from pylvs.core.proto_sctp import SctpEvent, SctpState

# enum ip_vs_sctp_states, in order, with the kernel's abbreviations.
ABBREV = {
    "NO": "NONE",
    "I1": "INIT1",
    "IN": "INIT",
    "CS": "COOKIE_SENT",
    "CR": "COOKIE_REPLIED",
    "CW": "COOKIE_WAIT",
    "CO": "COOKIE",
    "CE": "COOKIE_ECHOED",
    "ES": "ESTABLISHED",
    "SS": "SHUTDOWN_SENT",
    "SR": "SHUTDOWN_RECEIVED",
    "SA": "SHUTDOWN_ACK_SENT",
    "RJ": "REJECTED",
    "CL": "CLOSED",
}
KERNEL_STATE_ORDER = list(ABBREV.values())

# enum ipvs_sctp_event_t, in order, with the row labels of sctp_states[].
EVENT_ROWS = ["d", "i", "i_a", "c_e", "c_a", "s", "s_a", "s_c", "err", "ab"]
KERNEL_EVENT_ORDER = [
    "DATA",
    "INIT",
    "INIT_ACK",
    "COOKIE_ECHO",
    "COOKIE_ACK",
    "SHUTDOWN",
    "SHUTDOWN_ACK",
    "SHUTDOWN_COMPLETE",
    "ERROR",
    "ABORT",
]

# sctp_states[dir][event][state]; columns are the current state in the order
#          NO I1 IN CS CR CW CO CE ES SS SR SA RJ CL
KERNEL_TABLES = {
    0: """
    d    ES I1 IN CS CR CW CO CE ES SS SR SA RJ CL
    i    I1 IN IN CS CR CW CO CE ES SS SR SA IN IN
    i_a  CW CW CW CS CR CO CO CE ES SS SR SA RJ CL
    c_e  CR IN IN CR CR CW CO CE ES SS SR SA RJ CL
    c_a  ES I1 IN CS CR CW CO ES ES SS SR SA RJ CL
    s    SR I1 IN CS CR CW CO CE SR SS SR SA RJ CL
    s_a  CL IN IN CS CR CW CO CE ES CL SR CL RJ CL
    s_c  CL CL CL CS CR CW CO CE ES SS SR CL RJ CL
    err  CL I1 IN CS CR CW CO CL ES SS SR SA RJ CL
    ab   CL CL CL CL CL RJ CL CL CL CL CL CL CL CL
    """,
    1: """
    d    ES I1 IN CS CR CW CO CE ES SS SR SA RJ CL
    i    CW CW CW CW CW CW CW CW ES CW CW CW CW CW
    i_a  CS CS CS CS CR CW CO CE ES SS SR SA RJ CL
    c_e  CE CE CE CE CE CE CE CE ES SS SR SA RJ CL
    c_a  ES ES ES ES ES ES ES ES ES SS SR SA RJ CL
    s    SS SS SS SS SS SS SS SS SS SS SR SA RJ CL
    s_a  SA SA SA SA SA CW CO CE ES SA SA SA RJ CL
    s_c  CL I1 IN CS CR CW CO CE ES SS SR SA RJ CL
    err  CL CL CL CL CL CW CO CE ES SS SR SA RJ CL
    ab   CL RJ CL CL CL CL CL CL CL CL CL CL CL CL
    """,
    2: """
    d    ES I1 IN CS CR ES CO CE ES SS SR SA RJ CL
    i    I1 IN IN IN IN IN CO CE ES SS SR SA IN IN
    i_a  CE CE CE CE CE CE CO CE ES SS SR SA RJ CL
    c_e  ES ES ES ES ES ES CO CE ES SS SR SA RJ CL
    c_a  ES I1 IN ES ES CW ES ES ES SS SR SA RJ CL
    s    SR I1 IN CS CR CW CO CE SR SS SR SA RJ CL
    s_a  CL IN IN CS CR CW CO CE CL CL SR CL RJ CL
    s_c  CL CL CL CL CL CW CO CE ES SS CL CL RJ CL
    err  CL I1 IN CS CR CW CO CE ES SS SR SA RJ CL
    ab   CL CL CL CL CL RJ CL CL CL CL CL CL CL CL
    """,
}


def _kernel_triples() -> list[tuple[int, int, int, str]]:
    out: list[tuple[int, int, int, str]] = []
    for direction, text in KERNEL_TABLES.items():
        lines = [ln.split() for ln in text.strip().splitlines()]
        assert [ln[0] for ln in lines] == EVENT_ROWS
        for event, line in enumerate(lines):
            cells = line[1:]
            assert len(cells) == 14
            for state, cell in enumerate(cells):
                out.append((direction, event, state, ABBREV[cell]))
    return out


KERNEL_TRIPLES = _kernel_triples()


def test_triples_cover_the_whole_table() -> None:
    assert len(KERNEL_TRIPLES) == 3 * 10 * 14


def test_state_enum_matches_kernel_order() -> None:
    assert [s.name for s in SctpState] == KERNEL_STATE_ORDER
    assert [int(s) for s in SctpState] == list(range(14))


def test_event_enum_matches_kernel_order() -> None:
    assert [e.name for e in SctpEvent] == KERNEL_EVENT_ORDER
    assert [int(e) for e in SctpEvent] == list(range(10))


def test_direction_numbering() -> None:
    assert (int(sc.Dir.INPUT), int(sc.Dir.OUTPUT), int(sc.Dir.INPUT_ONLY)) == (0, 1, 2)


@pytest.mark.parametrize(("direction", "event", "state", "expected"), KERNEL_TRIPLES)
def test_next_state_row_by_row(direction: int, event: int, state: int, expected: str) -> None:
    got = sc.next_state(direction, event, state)
    assert SctpState(got).name == expected
    assert sc.TRANSITIONS[(sc.Dir(direction), SctpEvent(event), SctpState(state))].name == expected


def test_state_names_as_printed() -> None:
    # sctp_state_name_table[]
    assert sc.STATE_NAMES == (
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
    assert sc.state_name(SctpState.COOKIE_REPLIED) == "C-REPLIED"
    # sctp_state_name(): anything >= IP_VS_SCTP_S_LAST prints "ERR!"
    assert sc.state_name(14) == "ERR!"
    assert sc.state_name(200) == "ERR!"


def test_default_timeouts() -> None:
    # sctp_timeouts[]: IP_VS_SCTP_MAX_RTO = (60 + 1) s, INIT1 and REJECTED
    # (0 + 3 + 1) s, NONE 2 s, ESTABLISHED 15 min.
    rto = 61
    expected = {
        "NONE": 2,
        "INIT1": 4,
        "INIT": rto,
        "COOKIE_SENT": rto,
        "COOKIE_REPLIED": rto,
        "COOKIE_WAIT": rto,
        "COOKIE": rto,
        "COOKIE_ECHOED": rto,
        "ESTABLISHED": 900,
        "SHUTDOWN_SENT": rto,
        "SHUTDOWN_RECEIVED": rto,
        "SHUTDOWN_ACK_SENT": rto,
        "REJECTED": 4,
        "CLOSED": rto,
    }
    assert {s.name: t for s, t in sc.DEFAULT_TIMEOUTS.items()} == expected


def test_only_established_is_active() -> None:
    # set_sctp_state(): activeconns <-> inactconns on "new_state ==
    # IP_VS_SCTP_S_ESTABLISHED"; there is no per-state active table.
    assert [s.name for s in SctpState if sc.is_active(s)] == ["ESTABLISHED"]


def test_is_closed() -> None:
    # is_new_conn_expected(): SCTP slot reusable only in CLOSED
    assert [s.name for s in SctpState if sc.is_closed(s)] == ["CLOSED"]


# --- event derivation -------------------------------------------------------

# sctp_events[] by chunk type code (RFC 9260 numbering).
CHUNK_EVENT_CASES = [
    (0, "DATA"),  # DATA
    (1, "INIT"),
    (2, "INIT_ACK"),
    (3, "DATA"),  # SACK
    (4, "DATA"),  # HEARTBEAT
    (5, "DATA"),  # HEARTBEAT ACK
    (6, "ABORT"),
    (7, "SHUTDOWN"),
    (8, "SHUTDOWN_ACK"),
    (9, "ERROR"),
    (10, "COOKIE_ECHO"),
    (11, "COOKIE_ACK"),
    (12, "DATA"),  # ECNE
    (13, "DATA"),  # CWR
    (14, "SHUTDOWN_COMPLETE"),
    # beyond sizeof(sctp_events) (= 15): DATA
    (15, "DATA"),  # AUTH
    (0x40, "DATA"),  # I-DATA
    (0x80, "DATA"),  # ASCONF-ACK
    (0x82, "DATA"),  # RE-CONFIG
    (0xC0, "DATA"),  # FORWARD TSN
    (0xC1, "DATA"),  # ASCONF
    (0xFF, "DATA"),
]


@pytest.mark.parametrize(("chunk_type", "expected"), CHUNK_EVENT_CASES)
def test_event_of_chunk_type(chunk_type: int, expected: str) -> None:
    assert SctpEvent(sc.event_of(chunk_type)).name == expected


@pytest.mark.parametrize(
    ("first", "nxt", "expected"),
    [
        (10, 6, "ABORT"),  # COOKIE ECHO + ABORT
        (11, 6, "ABORT"),  # COOKIE ACK + ABORT
        (10, 0, "COOKIE_ECHO"),  # COOKIE ECHO + DATA
        (11, 0, "COOKIE_ACK"),
        (10, None, "COOKIE_ECHO"),
        (0, 6, "DATA"),  # only cookie chunks look past themselves
        (7, 6, "SHUTDOWN"),
        (9, 6, "ERROR"),
        (1, 6, "INIT"),
    ],
)
def test_event_of_lookahead(first: int, nxt: int | None, expected: str) -> None:
    assert SctpEvent(sc.event_of(first, next_chunk_type=nxt)).name == expected


def test_event_of_second_argument_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        sc.event_of(10, 6)  # type: ignore[call-arg]


def _seg(*chunks: tuple[int, int, bytes]) -> bytes:
    """SCTP segment: 12-byte common header, then (type, length field, body)."""
    out = struct.pack("!HHII", 1000, 80, 0x1234, 0)
    for ctype, length, body in chunks:
        out += struct.pack("!BBH", ctype, 0, length) + body
    return out


def test_event_of_segment_too_short() -> None:
    assert sc.event_of_segment(b"") is None
    assert sc.event_of_segment(_seg()) is None  # no chunk at all
    assert sc.event_of_segment(_seg()[:12] + b"\x01\x00\x00") is None  # 3 bytes


def test_event_of_segment_plain() -> None:
    assert sc.event_of_segment(_seg((1, 20, bytes(16)))) == SctpEvent.INIT
    assert sc.event_of_segment(_seg((14, 4, b""))) == SctpEvent.SHUTDOWN_COMPLETE


def test_event_of_segment_cookie_echo_then_abort_aligned() -> None:
    # COOKIE ECHO of length 5 (1 byte cookie + 3 bytes padding): the next chunk
    # header starts at ALIGN(5, 4) = 8 bytes after the first chunk.
    seg = _seg((10, 5, b"\xaa\x00\x00\x00"), (6, 4, b""))
    assert sc.event_of_segment(seg) == SctpEvent.ABORT
    # same with the length field saying 8: the ABORT is still at offset 8
    seg = _seg((10, 8, b"\xaa\x00\x00\x00"), (6, 4, b""))
    assert sc.event_of_segment(seg) == SctpEvent.ABORT
    # length 9 -> ALIGN 12: the header there is past the ABORT, so no ABORT
    seg = _seg((10, 9, b"\xaa\x00\x00\x00"), (6, 4, b""))
    assert sc.event_of_segment(seg) == SctpEvent.COOKIE_ECHO


def test_event_of_segment_cookie_ack_then_abort() -> None:
    assert sc.event_of_segment(_seg((11, 4, b""), (6, 4, b""))) == SctpEvent.ABORT
    assert sc.event_of_segment(_seg((11, 4, b""), (0, 4, b""))) == SctpEvent.COOKIE_ACK


def test_event_of_segment_no_lookahead_when_length_below_4() -> None:
    # clen < sizeof(chunk header): no lookahead even if an ABORT is at 4
    seg = _seg((11, 3, b""), (6, 4, b""))
    assert sc.event_of_segment(seg) == SctpEvent.COOKIE_ACK
    # clen = 0 would point back at the COOKIE ACK itself: still COOKIE_ACK
    seg = _seg((11, 0, b""), (6, 4, b""))
    assert sc.event_of_segment(seg) == SctpEvent.COOKIE_ACK


def test_event_of_segment_truncated_next_chunk() -> None:
    # only 3 bytes of the following chunk header present: not read
    seg = _seg((11, 4, b"")) + b"\x06\x00\x00"
    assert sc.event_of_segment(seg) == SctpEvent.COOKIE_ACK


def test_event_of_segment_data_then_abort_is_data() -> None:
    assert sc.event_of_segment(_seg((0, 4, b""), (6, 4, b""))) == SctpEvent.DATA


# --- scheduling and direction ---------------------------------------------


@pytest.mark.parametrize(
    ("chunk_type", "sloppy", "expected"),
    [
        (1, False, True),  # INIT
        (1, True, True),
        (0, False, False),  # DATA
        (0, True, True),
        (10, False, False),  # COOKIE ECHO
        (10, True, True),
        (2, True, True),  # INIT ACK, sloppy
        (6, False, False),  # ABORT never creates a connection
        (6, True, False),
        (0xC1, True, True),
    ],
)
def test_is_new_conn(chunk_type: int, sloppy: bool, expected: bool) -> None:
    assert sc.is_new_conn(chunk_type, sloppy) is expected


def test_resolve_direction() -> None:
    # IP_VS_CONN_F_NOOUTPUT: input goes INPUT_ONLY and keeps the flag; the
    # first output packet clears it and uses OUTPUT.
    assert sc.resolve_direction(0, True) == (2, True)
    assert sc.resolve_direction(1, True) == (1, False)
    assert sc.resolve_direction(0, False) == (0, False)
    assert sc.resolve_direction(1, False) == (1, False)


# --- whole associations, walked by hand through the kernel tables ----------


def _walk(steps: list[tuple[int, int]], start: int = SctpState.NONE) -> list[str]:
    state = start
    out = []
    for direction, chunk in steps:
        state = sc.next_state(direction, sc.event_of(chunk), state)
        out.append(SctpState(state).name)
    return out


def test_nat_association_lifecycle() -> None:
    # INPUT INIT: NO->I1; OUTPUT INIT-ACK: I1->CS; INPUT COOKIE-ECHO: CS->CR;
    # OUTPUT COOKIE-ACK: CR->ES; DATA both ways stays ES; INPUT SHUTDOWN:
    # ES->SR; OUTPUT SHUTDOWN-ACK: SR->SA; INPUT SHUTDOWN-COMPLETE: SA->CL.
    steps = [(0, 1), (1, 2), (0, 10), (1, 11), (0, 0), (1, 3), (0, 7), (1, 8), (0, 14)]
    assert _walk(steps) == [
        "INIT1",
        "COOKIE_SENT",
        "COOKIE_REPLIED",
        "ESTABLISHED",
        "ESTABLISHED",
        "ESTABLISHED",
        "SHUTDOWN_RECEIVED",
        "SHUTDOWN_ACK_SENT",
        "CLOSED",
    ]


def test_dr_association_lifecycle() -> None:
    # INPUT_ONLY: INIT NO->I1, INIT again I1->IN, COOKIE-ECHO IN->ES,
    # SHUTDOWN ES->SR, SHUTDOWN-COMPLETE SR->CL, new INIT CL->IN.
    steps = [(2, 1), (2, 1), (2, 10), (2, 7), (2, 14), (2, 1)]
    assert _walk(steps) == [
        "INIT1",
        "INIT",
        "ESTABLISHED",
        "SHUTDOWN_RECEIVED",
        "CLOSED",
        "INIT",
    ]


def test_init_rejected_with_abort() -> None:
    # INPUT INIT NO->I1, OUTPUT ABORT I1->RJ (short 4 s timeout).
    assert _walk([(0, 1), (1, 6)]) == ["INIT1", "REJECTED"]
    assert sc.DEFAULT_TIMEOUTS[SctpState.REJECTED] == 4


def test_server_initiated_association() -> None:
    # Seen via NAT with sloppy scheduling: OUTPUT INIT NO->CW, INPUT INIT-ACK
    # CW->CO, OUTPUT COOKIE-ECHO CO->CE, INPUT COOKIE-ACK CE->ES.
    assert _walk([(1, 1), (0, 2), (1, 10), (0, 11)]) == [
        "COOKIE_WAIT",
        "COOKIE",
        "COOKIE_ECHOED",
        "ESTABLISHED",
    ]
