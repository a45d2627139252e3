"""The TCP state table, row by row, against the kernel's tcp_states[] typed out here."""

from __future__ import annotations

import pytest

from pylvs.core import proto_tcp as T
from pylvs.core.proto_tcp import TH_ACK, TH_FIN, TH_RST, TH_SYN, Dir, TcpState

# Column order of the kernel table:
COLS = ["NO", "ES", "SS", "SR", "FW", "TW", "CL", "CW", "LA", "LI", "SA"]
NAME = {
    "NO": "NONE",
    "ES": "ESTABLISHED",
    "SS": "SYN_SENT",
    "SR": "SYN_RECV",
    "FW": "FIN_WAIT",
    "TW": "TIME_WAIT",
    "CL": "CLOSE",
    "CW": "CLOSE_WAIT",
    "LA": "LAST_ACK",
    "LI": "LISTEN",
    "SA": "SYNACK",
}
# tcp_states[] of net/netfilter/ipvs/ip_vs_proto_tcp.c (mainline), one line per row.
KERNEL = """
INPUT      syn  SR ES ES SR SR SR SR SR SR SR SR
INPUT      fin  CL CW SS TW TW TW CL CW LA LI TW
INPUT      ack  ES ES SS ES FW TW CL CW CL LI ES
INPUT      rst  CL CL CL SR CL CL CL CL LA LI SR
OUTPUT     syn  SS ES SS SR SS SS SS SS SS LI SR
OUTPUT     fin  TW FW SS TW FW TW CL TW LA LI TW
OUTPUT     ack  ES ES SS ES FW TW CL CW LA ES ES
OUTPUT     rst  CL CL SS CL CL TW CL CL CL CL CL
INPUT_ONLY syn  SR ES ES SR SR SR SR SR SR SR SR
INPUT_ONLY fin  CL FW SS TW FW TW CL CW LA LI TW
INPUT_ONLY ack  ES ES SS ES FW TW CL CW CL LI ES
INPUT_ONLY rst  CL CL CL SR CL CL CL CL LA LI CL
"""
FLAGS = {"syn": TH_SYN, "fin": TH_FIN | TH_ACK, "ack": TH_ACK, "rst": TH_RST | TH_ACK}

CASES = []
for line in KERNEL.strip().splitlines():
    d, ev, *nexts = line.split()
    for col, nxt in zip(COLS, nexts, strict=True):
        CASES.append((d, ev, col, nxt))


@pytest.mark.parametrize(("direction", "event", "cur", "nxt"), CASES)
def test_row(direction: str, event: str, cur: str, nxt: str) -> None:
    got = T.next_state(Dir[direction], FLAGS[event], TcpState[NAME[cur]])
    assert TcpState(got).name == NAME[nxt]


def test_table_is_complete() -> None:
    assert len(CASES) == 3 * 4 * 11
    assert len(T.TRANSITIONS) == 3 * 4 * 11


def test_flag_priority_rst_syn_fin_ack() -> None:
    # RST wins over SYN, SYN over FIN, FIN over ACK (tcp_state_idx()).
    es = TcpState.ESTABLISHED
    assert T.next_state(Dir.INPUT, TH_RST | TH_SYN, es) == TcpState.CLOSE
    assert T.next_state(Dir.INPUT, TH_SYN | TH_FIN, TcpState.NONE) == TcpState.SYN_RECV
    assert T.next_state(Dir.INPUT, TH_FIN | TH_ACK, es) == TcpState.CLOSE_WAIT


def test_no_flags_closes() -> None:
    assert T.next_state(Dir.INPUT, 0, TcpState.ESTABLISHED) == TcpState.CLOSE


def test_default_timeouts() -> None:
    expected = [2, 900, 120, 60, 120, 120, 10, 60, 30, 120, 120]
    assert [T.DEFAULT_TIMEOUTS[s] for s in TcpState] == expected


def test_state_names() -> None:
    assert T.STATE_NAMES == (
        "NONE",
        "ESTABLISHED",
        "SYN_SENT",
        "SYN_RECV",
        "FIN_WAIT",
        "TIME_WAIT",
        "CLOSE",
        "CLOSE_WAIT",
        "LAST_ACK",
        "LISTEN",
        "SYNACK",
    )


def test_active_states() -> None:
    active = {s for s in TcpState if T.is_active(s)}
    assert active == {
        TcpState.ESTABLISHED,
        TcpState.SYN_SENT,
        TcpState.SYN_RECV,
        TcpState.SYNACK,
    }


def test_hot_path_table_agrees_with_the_rows() -> None:
    for d in Dir:
        for flags in range(256):
            for s in TcpState:
                assert T.NEXT[d][flags][s] == T.next_state(d, flags, s)
    assert [T.is_active(s) for s in TcpState] == [s in T.ACTIVE_STATES for s in TcpState]
