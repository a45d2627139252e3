"""IPVS connection synchronisation messages (kernel net/netfilter/ipvs/ip_vs_sync.c).

The master director multicasts its connections to backups (224.0.0.81:8848 by
default) in datagrams of *sync protocol version 1*:

- an 8-byte header ``struct ip_vs_sync_mesg``: reserved (0: a version 0
  receiver reads it as a zero connection count and ignores the rest), syncid,
  size (big-endian, the whole datagram), nr_conns, version (1), spare (0);
- ``nr_conns`` entries, each starting on a 4-byte boundary of the message
  (zero padding between entries, none after the last one): ``struct
  ip_vs_sync_v4`` (36 bytes) or ``struct ip_vs_sync_v6`` (72 bytes): type (bit
  0: IPv6), protocol, ver_size (top 4 bits a version, 0; low 12 bits the entry
  length including its options), flags (``IP_VS_CONN_F_*``, 32 bits), state,
  cport, vport, dport, fwmark, timeout (seconds), caddr, vaddr, daddr, all in
  network order; then options ``type, length, data``: IPVS_OPT_SEQ_DATA (1: the
  in/out ``struct ip_vs_seq``, 24 bytes), IPVS_OPT_PE_DATA (2) and
  IPVS_OPT_PE_NAME (3).  An option type with bit 0x40 (IPVS_OPT_F_PARAM) set
  is optional: receivers that do not know it skip it.

Version 0 (``sync_version=0``; IPv4 only, no timeout or fwmark) is decoded too:
a 4-byte header nr_conns, syncid, size and 24-byte ``struct
ip_vs_sync_conn_v0`` entries, followed by the 24 sequence bytes when the flags
have IP_VS_CONN_F_SEQ_MASK.

``decode`` never raises: it returns a reason string for a datagram the kernel
drops whole, else a ``Message`` with the entries decoded, the entries the kernel
would skip one by one (``dropped``) and the reason it would stop early
(``error``; the entries before it stay applied, as in the kernel).  Protocol
and state checks need protocol knowledge and are left to ``pylvs.core.sync``.

Our one extension: option ``OPT_PYLVS_LOCAL`` (0x48, optional) carries a
FULLNAT connection's local address and port, so a pylvs backup can continue
FULLNAT connections; the kernel skips it.  Deliberate difference: a message
holds at most 255 entries (the kernel lets the 8-bit count wrap with a large
sync_maxlen).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

SYNC_GROUP = "224.0.0.81"  # IP_VS_SYNC_GROUP
SYNC_PORT = 8848  # IP_VS_SYNC_PORT
SYNC_PROTO_VER = 1

# IP_VS_CONN_F_* as on the wire (include/uapi/linux/ip_vs.h)
CONN_F_FWD_MASK = 0x0007
CONN_F_MASQ = 0x0000
CONN_F_LOCALNODE = 0x0001
CONN_F_TUNNEL = 0x0002
CONN_F_DROUTE = 0x0003
CONN_F_BYPASS = 0x0004
CONN_F_SYNC = 0x0020
CONN_F_HASHED = 0x0040
CONN_F_NOOUTPUT = 0x0080
CONN_F_INACTIVE = 0x0100
CONN_F_OUT_SEQ = 0x0200
CONN_F_IN_SEQ = 0x0400
CONN_F_SEQ_MASK = 0x0600
CONN_F_NO_CPORT = 0x0800
CONN_F_TEMPLATE = 0x1000
CONN_F_ONE_PACKET = 0x2000
CONN_F_BACKUP_MASK = (
    CONN_F_FWD_MASK
    | CONN_F_NOOUTPUT
    | CONN_F_INACTIVE
    | CONN_F_SEQ_MASK
    | CONN_F_NO_CPORT
    | CONN_F_TEMPLATE
)
CONN_F_BACKUP_UPD_MASK = CONN_F_INACTIVE | CONN_F_SEQ_MASK

STYPE_F_INET6 = 0x01
SVER_SHIFT = 12
SVER_MASK = 0x0FFF

OPT_SEQ_DATA = 1
OPT_PE_DATA = 2
OPT_PE_NAME = 3
OPT_F_PARAM = 0x40  # 1 << (IPVS_OPT_PARAM - 1): an optional parameter
OPT_PYLVS_LOCAL = OPT_F_PARAM | 0x08  # ours: FULLNAT local address and port

PEDATA_MAXLEN = 255  # IP_VS_PEDATA_MAXLEN
PENAME_MAXLEN = 16  # IP_VS_PENAME_MAXLEN

HDR_LEN = 8  # struct ip_vs_sync_mesg
HDR_V0_LEN = 4  # struct ip_vs_sync_mesg_v0
V4_LEN = 36  # struct ip_vs_sync_v4
V6_LEN = 72  # struct ip_vs_sync_v6
V0_CONN_LEN = 24  # struct ip_vs_sync_conn_v0
SEQ_LEN = 24  # struct ip_vs_sync_conn_options: two struct ip_vs_seq
MAX_CONNS = 255

_HDR = struct.Struct("!BBHBbH")
_HDR_V0 = struct.Struct("!BBH")
_FIXED = struct.Struct("!BBHIHHHHII")  # the 24 bytes before the addresses
_V0 = struct.Struct("!BBHHH4s4s4sHH")
_SEQ = struct.Struct("!IIIIII")


@dataclass(frozen=True, slots=True)
class Seq:
    """The two ``struct ip_vs_seq`` of IPVS_OPT_SEQ_DATA (TCP sequence adjustment)."""

    in_init_seq: int = 0
    in_delta: int = 0
    in_previous_delta: int = 0
    out_init_seq: int = 0
    out_delta: int = 0
    out_previous_delta: int = 0


@dataclass(frozen=True, slots=True)
class SyncConn:
    """One connection entry; addresses packed (4 bytes, or 16 with ``v6``)."""

    protocol: int
    flags: int  # IP_VS_CONN_F_* bits as sent
    state: int
    caddr: bytes
    cport: int
    vaddr: bytes
    vport: int
    daddr: bytes
    dport: int
    fwmark: int = 0
    timeout: int = 0  # seconds; 0 (version 0) = the receiver's default for the state
    seq: Seq | None = None
    pe_data: bytes = b""
    pe_name: bytes = b""
    local: tuple[bytes, int] | None = None  # OPT_PYLVS_LOCAL: (laddr, lport)

    @property
    def v6(self) -> bool:
        return len(self.caddr) == 16


@dataclass(slots=True)
class Message:
    """A decoded datagram."""

    syncid: int
    version: int  # 0 or 1
    conns: list[SyncConn] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # entries skipped one by one
    error: str | None = None  # why the rest of the datagram was dropped


# -- encoding -------------------------------------------------------------------------


def encode_conn(c: SyncConn) -> bytes:
    """One ``ip_vs_sync_v4``/``v6`` entry with its options, unpadded."""
    alen = len(c.caddr)
    if alen not in (4, 16) or len(c.vaddr) != alen or len(c.daddr) != alen:
        raise ValueError("addresses must all be 4 or all be 16 bytes")
    opts = bytearray()
    if c.seq is not None:
        s = c.seq
        opts += bytes((OPT_SEQ_DATA, SEQ_LEN))
        opts += _SEQ.pack(
            s.in_init_seq,
            s.in_delta,
            s.in_previous_delta,
            s.out_init_seq,
            s.out_delta,
            s.out_previous_delta,
        )
    if c.pe_data:
        if len(c.pe_data) > PEDATA_MAXLEN or len(c.pe_name) > PENAME_MAXLEN:
            raise ValueError("persistence engine data or name too long")
        opts += bytes((OPT_PE_DATA, len(c.pe_data))) + c.pe_data
        if c.pe_name:
            opts += bytes((OPT_PE_NAME, len(c.pe_name))) + c.pe_name
    if c.local is not None:
        laddr, lport = c.local
        opts += bytes((OPT_PYLVS_LOCAL, 2 + len(laddr))) + lport.to_bytes(2, "big") + laddr
    length = (V6_LEN if alen == 16 else V4_LEN) + len(opts)
    fixed = _FIXED.pack(
        STYPE_F_INET6 if alen == 16 else 0,
        c.protocol,
        length & SVER_MASK,
        c.flags & ~CONN_F_HASHED & 0xFFFFFFFF,
        c.state,
        c.cport,
        c.vport,
        c.dport,
        c.fwmark & 0xFFFFFFFF,
        c.timeout & 0xFFFFFFFF,
    )
    return fixed + c.caddr + c.vaddr + c.daddr + bytes(opts)


class Builder:
    """A message being filled (the kernel's ``ip_vs_sync_buff``).

    ``fits`` says whether an entry of ``n`` bytes still goes in: a message grows
    to ``max(maxlen, header + first entry)`` bytes, as ip_vs_sync_buff_create()
    sizes it, and to at most 255 entries.
    """

    __slots__ = ("buf", "cap", "firstuse", "nr_conns")

    def __init__(self, syncid: int, maxlen: int, first_len: int, firstuse: float) -> None:
        self.cap = max(first_len + HDR_LEN, maxlen)
        self.buf = bytearray(_HDR.pack(0, syncid & 0xFF, HDR_LEN, 0, SYNC_PROTO_VER, 0))
        self.nr_conns = 0
        self.firstuse = firstuse

    def fits(self, n: int) -> bool:
        pad = -len(self.buf) & 3
        return self.nr_conns < MAX_CONNS and len(self.buf) + pad + n <= self.cap

    def add(self, entry: bytes) -> None:
        pad = -len(self.buf) & 3
        if pad:
            self.buf += bytes(pad)
        self.buf += entry
        self.nr_conns += 1

    def finish(self) -> bytes:
        buf = self.buf
        struct.pack_into("!H", buf, 2, len(buf))
        buf[4] = self.nr_conns
        return bytes(buf)


def encode_message(syncid: int, conns: list[SyncConn]) -> bytes:
    """A whole version 1 datagram holding ``conns`` (at most 255; no size limit)."""
    if len(conns) > MAX_CONNS:
        raise ValueError("at most 255 connections per message")
    entries = [encode_conn(c) for c in conns]
    b = Builder(syncid, 0, 0, 0.0)
    b.cap = 1 << 30
    for e in entries:
        b.add(e)
    return b.finish()


# -- decoding ---------------------------------------------------------------------------


def peek_syncid(buf: bytes) -> int | None:
    """The syncid of a datagram (same place in versions 0 and 1), None if too short."""
    return buf[1] if len(buf) >= HDR_V0_LEN else None


def decode(buf: bytes) -> Message | str:
    """ip_vs_process_message(): the entries of one datagram, or why it is dropped."""
    n = len(buf)
    if n < HDR_V0_LEN:
        return "header too short"
    size = (buf[2] << 8) | buf[3]
    if n != size:
        return "bogus message size"
    if n >= HDR_LEN:
        reserved, syncid, _, nr_conns, version, spare = _HDR.unpack_from(buf)
        if version == SYNC_PROTO_VER and reserved == 0 and spare == 0:
            return _decode_v1(buf, syncid, nr_conns)
    return _decode_v0(buf)


def _decode_v1(buf: bytes, syncid: int, nr_conns: int) -> Message:
    m = Message(syncid, 1)
    end = len(buf)
    p = HDR_LEN
    for _ in range(nr_conns):
        if p + V4_LEN > end:
            m.error = "too small"
            return m
        ver_size = (buf[p + 2] << 8) | buf[p + 3]
        size = ver_size & SVER_MASK
        if p + size > end:
            m.error = "entry beyond the message"
            return m
        if ver_size >> SVER_SHIFT:
            m.error = f"unknown entry version {ver_size >> SVER_SHIFT}"
            return m
        r = _decode_entry(buf, p, p + size)
        if isinstance(r, SyncConn):
            m.conns.append(r)
        elif r[0] == "-":
            m.error = r[1:]
            return m
        else:
            m.dropped.append(r)
        p += (size + 3) & ~3
    return m


def _decode_entry(buf: bytes, p: int, end: int) -> SyncConn | str:
    """ip_vs_proc_sync_conn()'s parsing: an entry, or a reason; a reason starting with
    '-' is fatal for the rest of the message (the kernel's negative return codes)."""
    stype = buf[p]
    if stype & STYPE_F_INET6:
        alen, fixed_len = 16, V6_LEN
    elif stype == 0:
        alen, fixed_len = 4, V4_LEN
    else:
        return f"-unknown entry type {stype}"
    q = p + fixed_len
    if q > end:
        return "-entry shorter than its addresses"
    seq: Seq | None = None
    pe_data = pe_name = b""
    have_pe_data = have_pe_name = False
    local: tuple[bytes, int] | None = None
    skip: str | None = None
    while q < end:
        if q + 2 > end:
            return "-truncated option header"
        ptype, plen = buf[q], buf[q + 1]
        q += 2
        if not plen or q + plen > end:
            return "-bad option length"
        kind = ptype & ~OPT_F_PARAM
        if kind == OPT_SEQ_DATA:
            if plen != SEQ_LEN or seq is not None:
                return "-bad sequence option"
            seq = Seq(*_SEQ.unpack_from(buf, q))
        elif kind == OPT_PE_DATA:
            if have_pe_data:
                return "-persistence engine data twice"
            pe_data, have_pe_data = bytes(buf[q : q + plen]), True
        elif kind == OPT_PE_NAME:
            if plen > PENAME_MAXLEN or have_pe_name:
                return "-bad persistence engine name"
            pe_name, have_pe_name = bytes(buf[q : q + plen]), True
        elif ptype == OPT_PYLVS_LOCAL and plen == 2 + alen:
            local = (bytes(buf[q + 2 : q + plen]), (buf[q] << 8) | buf[q + 1])
        elif not ptype & OPT_F_PARAM:
            skip = f"unknown mandatory option {kind}"
            break  # the kernel stops here and skips the entry
        q += plen
    if skip is not None:
        return skip
    _, protocol, _, flags, state, cport, vport, dport, fwmark, timeout = _FIXED.unpack_from(buf, p)
    a = p + 24
    return SyncConn(
        protocol,
        flags,
        state,
        bytes(buf[a : a + alen]),
        cport,
        bytes(buf[a + alen : a + 2 * alen]),
        vport,
        bytes(buf[a + 2 * alen : a + 3 * alen]),
        dport,
        fwmark,
        timeout,
        seq,
        pe_data,
        pe_name,
        local,
    )


def _decode_v0(buf: bytes) -> Message:
    """ip_vs_process_message_v0(): IPv4 entries without timeout or fwmark."""
    nr_conns, syncid, _ = _HDR_V0.unpack_from(buf)
    m = Message(syncid, 0)
    end = len(buf)
    p = HDR_V0_LEN
    for _ in range(nr_conns):
        if p + V0_CONN_LEN > end:
            m.error = "bogus connection"
            return m
        _, protocol, cport, vport, dport, caddr, vaddr, daddr, flags, state = _V0.unpack_from(
            buf, p
        )
        seq: Seq | None = None
        if flags & CONN_F_SEQ_MASK:
            if p + V0_CONN_LEN + SEQ_LEN > end:
                m.error = "bogus connection options"
                return m
            seq = Seq(*_SEQ.unpack_from(buf, p + V0_CONN_LEN))
            p += V0_CONN_LEN + SEQ_LEN
        else:
            p += V0_CONN_LEN
        m.conns.append(
            SyncConn(
                protocol,
                flags & ~CONN_F_HASHED,
                state,
                caddr,
                cport,
                vaddr,
                vport,
                daddr,
                dport,
                seq=seq,
            )
        )
    return m
