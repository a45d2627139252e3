"""wire.sync: IPVS sync protocol messages against byte vectors made from the kernel's structs.

How the vectors were derived: each field below is written out by hand, in the order and
width of the kernel's declarations in net/netfilter/ipvs/ip_vs_sync.c (``struct
ip_vs_sync_mesg``: u8 reserved, u8 syncid, be16 size, u8 nr_conns, s8 version, u16 spare;
``struct ip_vs_sync_v4``: u8 type, u8 protocol, be16 ver_size, be32 flags, be16 state,
be16 cport, be16 vport, be16 dport, be32 fwmark, be32 timeout, be32 caddr, vaddr, daddr;
``struct ip_vs_sync_v6`` the same with in6_addr; option = u8 type, u8 length, data; two
``struct ip_vs_seq`` of three be32 for IPVS_OPT_SEQ_DATA), with the flag values of
include/uapi/linux/ip_vs.h.  Independently of the hand vectors, ``ctypes`` big-endian
structures copied from those declarations (natural C alignment, as the kernel compiles
them) give the sizes (8, 36, 72, 24) and the bytes of random entries.
"""

from __future__ import annotations

import ctypes
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pylvs.wire import sync as w
from pylvs.wire.sync import Builder, Message, Seq, SyncConn, decode, encode_conn, encode_message


def ip4(a: str) -> bytes:
    return socket.inet_aton(a)


def ip6(a: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6, a)


def hx(text: str) -> bytes:
    """Hex with spaces, newlines and # comments."""
    return bytes.fromhex("".join(line.split("#")[0] for line in text.splitlines()))


# An ESTABLISHED TCP connection through a DR real server, IPv4:
# client 10.0.0.2:40000 -> VIP 10.0.0.100:80 -> RIP 10.0.0.11:80, 900 s left.
CONN_V4 = SyncConn(
    protocol=6,
    flags=w.CONN_F_DROUTE | w.CONN_F_NOOUTPUT,
    state=1,
    caddr=ip4("10.0.0.2"),
    cport=40000,
    vaddr=ip4("10.0.0.100"),
    vport=80,
    daddr=ip4("10.0.0.11"),
    dport=80,
    fwmark=0,
    timeout=900,
)
ENTRY_V4 = hx(
    """
    00                  # type: IPv4
    06                  # protocol TCP
    0024                # ver_size: version 0, 36 bytes
    00000083            # flags: IP_VS_CONN_F_DROUTE 0x3 | IP_VS_CONN_F_NOOUTPUT 0x80
    0001                # state IP_VS_TCP_S_ESTABLISHED
    9c40                # cport 40000
    0050                # vport 80
    0050                # dport 80
    00000000            # fwmark
    00000384            # timeout 900 s
    0a000002            # caddr 10.0.0.2
    0a000064            # vaddr 10.0.0.100
    0a00000b            # daddr 10.0.0.11
    """
)
MESSAGE_V4 = (
    hx(
        """
    00 07 002c          # reserved 0, syncid 7, size 44
    01 01 0000          # nr_conns 1, version 1, spare 0
    """
    )
    + ENTRY_V4
)

# A persistence template over IPv6 (fwmark service 5, UDP, assured), in sequence mode.
CONN_V6 = SyncConn(
    protocol=0,
    flags=w.CONN_F_TEMPLATE | w.CONN_F_INACTIVE | w.CONN_F_MASQ | w.CONN_F_SYNC,
    state=1,
    caddr=ip6("2001:db8::2"),
    cport=0,
    vaddr=ip6("0:5::"),
    vport=0,
    daddr=ip6("2001:db8:1::11"),
    dport=0,
    fwmark=5,
    timeout=360,
    seq=Seq(1, 2, 3, 0x11223344, 0xFFFFFFFF, 0),
)
ENTRY_V6 = hx(
    """
    01                  # type: STYPE_F_INET6
    00                  # protocol IPPROTO_IP (a fwmark template)
    0062                # ver_size: 72 + 2 + 24 = 98
    00001120            # flags: TEMPLATE 0x1000 | INACTIVE 0x100 | SYNC 0x20 | MASQ 0
    0001                # state IP_VS_CTPL_S_ASSURED
    0000 0000 0000      # cport, vport, dport
    00000005            # fwmark 5
    00000168            # timeout 360 s
    20010db8000000000000000000000002    # caddr 2001:db8::2
    00000005000000000000000000000000    # vaddr: the fwmark as an address
    20010db8000100000000000000000011    # daddr 2001:db8:1::11
    01 18               # IPVS_OPT_SEQ_DATA, 24 bytes
    00000001 00000002 00000003          # in_seq: init_seq, delta, previous_delta
    11223344 ffffffff 00000000          # out_seq
    """
)


def test_v4_entry_and_message_bytes() -> None:
    assert len(ENTRY_V4) == 36
    assert encode_conn(CONN_V4) == ENTRY_V4
    assert encode_message(7, [CONN_V4]) == MESSAGE_V4
    m = decode(MESSAGE_V4)
    assert m == Message(7, 1, [CONN_V4])


def test_v6_template_with_sequence_option() -> None:
    assert len(ENTRY_V6) == 98
    assert encode_conn(CONN_V6) == ENTRY_V6
    msg = encode_message(0, [CONN_V6])
    assert msg[:8] == hx("00 00 006a 01 01 0000")  # 8 + 98 = 106
    m = decode(msg)
    assert isinstance(m, Message) and m.conns == [CONN_V6] and m.error is None


def test_entries_are_aligned_with_padding_between_but_not_after() -> None:
    # PE data "abc" (3 bytes) + PE name "sip": 36 + 2 + 3 + 2 + 3 = 46 bytes, then 2 of padding.
    pe = SyncConn(
        17,
        0x100,
        0,
        ip4("1.2.3.4"),
        5060,
        ip4("5.6.7.8"),
        5060,
        ip4("9.9.9.9"),
        5060,
        0,
        300,
        pe_data=b"abc",
        pe_name=b"sip",
    )
    e1 = encode_conn(pe)
    assert e1[2:4] == hx("002e") and e1[36:] == hx("02 03 616263 03 03 736970")
    msg = encode_message(1, [pe, CONN_V4])
    assert len(msg) == 8 + 46 + 2 + 36
    assert msg[:8] == hx("00 01 005c 02 01 0000")
    assert msg[8 + 46 : 8 + 48] == b"\0\0" and msg[8 + 48 :] == ENTRY_V4
    m = decode(msg)
    assert isinstance(m, Message) and m.conns == [pe, CONN_V4]


def test_version_0_message() -> None:
    # struct ip_vs_sync_mesg_v0 + struct ip_vs_sync_conn_v0 (flags and state are be16)
    msg = hx(
        """
        01 03 001c          # nr_conns 1, syncid 3, size 28
        00 11               # reserved, protocol UDP
        1388 0035 0035      # cport 5000, vport 53, dport 53
        c0000201 c0000264 c000020b      # caddr, vaddr, daddr
        0140                # flags: INACTIVE 0x100 | HASHED 0x40 (dropped by the receiver)
        0000                # state
        """
    )
    m = decode(msg)
    assert m == Message(
        3,
        0,
        [
            SyncConn(
                17, 0x100, 0, ip4("192.0.2.1"), 5000, ip4("192.0.2.100"), 53, ip4("192.0.2.11"), 53
            )
        ],
    )


# -- the kernel's structs in ctypes --------------------------------------------------------


class Mesg(ctypes.BigEndianStructure):
    _fields_ = [
        ("reserved", ctypes.c_uint8),
        ("syncid", ctypes.c_uint8),
        ("size", ctypes.c_uint16),
        ("nr_conns", ctypes.c_uint8),
        ("version", ctypes.c_int8),
        ("spare", ctypes.c_uint16),
    ]


def _sync_struct(addr_type: type) -> type[ctypes.BigEndianStructure]:
    class S(ctypes.BigEndianStructure):
        _fields_ = [
            ("type", ctypes.c_uint8),
            ("protocol", ctypes.c_uint8),
            ("ver_size", ctypes.c_uint16),
            ("flags", ctypes.c_uint32),
            ("state", ctypes.c_uint16),
            ("cport", ctypes.c_uint16),
            ("vport", ctypes.c_uint16),
            ("dport", ctypes.c_uint16),
            ("fwmark", ctypes.c_uint32),
            ("timeout", ctypes.c_uint32),
            ("caddr", addr_type),
            ("vaddr", addr_type),
            ("daddr", addr_type),
        ]

    return S


SyncV4 = _sync_struct(ctypes.c_uint8 * 4)
SyncV6 = _sync_struct(ctypes.c_uint32 * 4)  # in6_addr: a union aligned on 4 bytes
Seq2 = ctypes.c_uint32 * 6  # struct ip_vs_sync_conn_options (big-endian words)


def test_struct_sizes_match_the_kernel() -> None:
    assert ctypes.sizeof(Mesg) == w.HDR_LEN == 8
    assert ctypes.sizeof(SyncV4) == w.V4_LEN == 36
    assert ctypes.sizeof(SyncV6) == w.V6_LEN == 72
    assert ctypes.sizeof(Seq2) == w.SEQ_LEN == 24


u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)


@settings(max_examples=300, deadline=None)
@given(
    v6=st.booleans(),
    protocol=st.integers(0, 255),
    flags=u32,
    state=u16,
    ports=st.tuples(u16, u16, u16),
    fwmark=u32,
    timeout=u32,
    addrs=st.tuples(
        st.binary(min_size=16, max_size=16),
        st.binary(min_size=16, max_size=16),
        st.binary(min_size=16, max_size=16),
    ),
)
def test_entries_match_ctypes_layout(
    v6: bool,
    protocol: int,
    flags: int,
    state: int,
    ports: tuple[int, int, int],
    fwmark: int,
    timeout: int,
    addrs: tuple[bytes, bytes, bytes],
) -> None:
    n = 16 if v6 else 4
    ca, va, da = (a[:n] for a in addrs)
    flags &= ~w.CONN_F_HASHED
    c = SyncConn(protocol, flags, state, ca, ports[0], va, ports[1], da, ports[2], fwmark, timeout)
    S = SyncV6 if v6 else SyncV4
    s = S()
    s.type, s.protocol, s.ver_size = (1 if v6 else 0), protocol, ctypes.sizeof(S)
    s.flags, s.state, s.fwmark, s.timeout = flags, state, fwmark, timeout
    s.cport, s.vport, s.dport = ports
    raw = bytearray(bytes(s))
    raw[24 : 24 + 3 * n] = ca + va + da  # addresses are byte strings, not integers
    assert encode_conn(c) == bytes(raw)
    m = decode(encode_message(9, [c]))
    assert isinstance(m, Message) and m.conns == [c]


# -- what the receiver refuses ------------------------------------------------------------


def with_entry(entry: bytes, nr: int = 1, syncid: int = 7) -> bytes:
    size = 8 + len(entry)
    return bytes((0, syncid)) + size.to_bytes(2, "big") + bytes((nr, 1, 0, 0)) + entry


def test_whole_message_refusals() -> None:
    assert decode(b"\0\0\0") == "header too short"
    assert decode(MESSAGE_V4 + b"\0") == "bogus message size"
    assert decode(MESSAGE_V4[:-1]) == "bogus message size"


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        (lambda e: b"\x02" + e[1:], "unknown entry type 2"),
        (lambda e: e[:2] + b"\x10\x24" + e[4:], "unknown entry version 1"),
        (lambda e: e[:2] + b"\x0f\xf0" + e[4:], "entry beyond the message"),
        (lambda e: e[:2] + b"\x00\x20" + e[4:], "entry shorter than its addresses"),
        (lambda e: e[:2] + b"\x00\x25" + e[4:] + b"\x01", "truncated option header"),
        (lambda e: e[:2] + b"\x00\x26" + e[4:] + b"\x01\x00", "bad option length"),
        (lambda e: e[:2] + b"\x00\x28" + e[4:] + b"\x01\x02ab", "bad sequence option"),
        (
            lambda e: e[:2] + b"\x00\x2c" + e[4:] + b"\x02\x01a\x02\x01b\0\0",
            "persistence engine data twice",
        ),
    ],
)
def test_fatal_entry_errors_stop_the_message(mutate: object, error: str) -> None:
    bad = mutate(ENTRY_V4)  # type: ignore[operator]
    pad = bytes(-len(bad) & 3)
    msg = with_entry(ENTRY_V4 + bad + pad + ENTRY_V4, nr=3)
    m = decode(msg)
    assert isinstance(m, Message)
    assert m.conns == [CONN_V4] and m.error == error  # the first one stays, the third is lost


def test_unknown_options() -> None:
    optional = ENTRY_V4[:2] + b"\x00\x28" + ENTRY_V4[4:] + b"\x4b\x02zz"  # 0x40 | 11
    mandatory = ENTRY_V4[:2] + b"\x00\x28" + ENTRY_V4[4:] + b"\x0b\x02zz"
    m = decode(with_entry(optional + mandatory + ENTRY_V4, nr=3))
    assert isinstance(m, Message)
    assert m.conns == [CONN_V4, CONN_V4] and m.dropped == ["unknown mandatory option 11"]
    assert m.error is None


def test_pylvs_local_address_option_is_optional_for_the_kernel() -> None:
    c = SyncConn(
        6,
        5,
        1,
        ip4("10.0.0.2"),
        1234,
        ip4("10.0.0.100"),
        80,
        ip4("192.168.0.11"),
        80,
        0,
        900,
        local=(ip4("192.168.0.2"), 33000),
    )
    e = encode_conn(c)
    assert e[36:] == hx("48 06 80e8 c0a80002")  # 0x40 (optional) | 8; lport; laddr
    assert e[36] & w.OPT_F_PARAM  # a kernel backup skips it
    m = decode(encode_message(0, [c]))
    assert isinstance(m, Message) and m.conns == [c]


def test_too_few_entries_for_nr_conns() -> None:
    m = decode(with_entry(ENTRY_V4, nr=2))
    assert isinstance(m, Message) and m.conns == [CONN_V4] and m.error == "too small"


def test_builder_respects_maxlen_and_255_entries() -> None:
    b = Builder(1, 120, 36, 0.0)
    for _ in range(3):  # 8 + 3 * 36 = 116
        assert b.fits(36)
        b.add(ENTRY_V4)
    assert not b.fits(36)
    msg = b.finish()
    assert len(msg) == 116 and msg[4] == 3 and int.from_bytes(msg[2:4], "big") == 116
    big = Builder(1, 60000, 36, 0.0)
    for _ in range(255):
        assert big.fits(36)
        big.add(ENTRY_V4)
    assert not big.fits(36)
    # A first entry larger than maxlen still goes in alone (ip_vs_sync_buff_create).
    assert Builder(1, 40, 98, 0.0).fits(98)


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=300))
def test_garbage_never_raises(data: bytes) -> None:
    r = decode(data)
    assert isinstance(r, (str, Message))


@settings(max_examples=2000, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=6), st.booleans())
def test_mutated_messages_never_raise(edits: list[tuple[int, int]], fix_size: bool) -> None:
    msg = bytearray(encode_message(7, [CONN_V4, CONN_V6, CONN_V4]))
    for pos, val in edits:
        if pos < len(msg):
            msg[pos] = val
    if fix_size:
        msg[2:4] = len(msg).to_bytes(2, "big")
    r = decode(bytes(msg))
    assert isinstance(r, (str, Message))
    if isinstance(r, Message):
        for c in r.conns:
            assert len(c.caddr) == len(c.vaddr) == len(c.daddr) in (4, 16)
