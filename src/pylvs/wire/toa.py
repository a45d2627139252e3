"""TOA, the "TCP option address" of LVS FULLNAT (Alibaba/Taobao LVS).

FULLNAT replaces the client's address with a local address of the
director, so the real server would only see the director.  The director
therefore puts the client's address into a TCP option, and a kernel module
on the real server (toa.ko) reports it from getpeername():

    kind 254 (TCPOPT_ADDR), length 8: client port (2 bytes, network order),
    client IPv4 address (4 bytes).

The IPv6 variant of Alibaba LVS is kind 253 (TCPOPT_ADDR_V6), length 20:
port, then the 16-byte address (DPVS sends kind 254 with length 20 instead;
``parse_toa`` accepts both).

Alibaba LVS (kernel/net/netfilter/ipvs/ip_vs_proto_tcp.c, tcp_fnat_in_handler)
inserts the option right after the fixed 20-byte TCP header, before the
existing options, moving them and the payload back; it gives up when the TCP
header would exceed 60 bytes or the IP packet the route MTU.  It adds it to
the client's SYN and, with the toa_entry sysctl on (the default), to every
packet from the client whose ack_seq equals the real server's ISN + 1 (the
handshake's final ACK and data sent before the server's first data) and
that is not SYN, RST or FIN.  On the SYN-ACK going back it lowers the MSS
option by the option's length (``adjust_mss``) so that full-size segments
still fit the MTU after the insertion.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from pylvs.wire import csum
from pylvs.wire.ip import IPPROTO_TCP, Buffer
from pylvs.wire.packet import Pkt

TCPOPT_EOL = 0
TCPOPT_NOP = 1
TCPOPT_MSS = 2
TCPOPT_TOA = 254
TCPOLEN_TOA = 8
TCPOPT_TOA_V6 = 253
TCPOLEN_TOA_V6 = 20
TCP_MAX_HLEN = 60

_H = struct.Struct("!H")
_TOA4 = struct.Struct("!BBH4s")
_TOA6 = struct.Struct("!BBH16s")


def toa_option(client_ip: bytes, client_port: int, kind: int | None = None) -> bytes:
    """The option bytes for a client address of 4 (IPv4) or 16 (IPv6) bytes."""
    if len(client_ip) == 4:
        return _TOA4.pack(TCPOPT_TOA if kind is None else kind, TCPOLEN_TOA, client_port, client_ip)
    if len(client_ip) == 16:
        k = TCPOPT_TOA_V6 if kind is None else kind
        return _TOA6.pack(k, TCPOLEN_TOA_V6, client_port, client_ip)
    raise ValueError("client address must be 4 or 16 bytes")


def add_toa(
    pkt: Pkt, client_ip: bytes, client_port: int, mtu: int, kind: int | None = None
) -> bool:
    """Insert the TOA option after the fixed TCP header of ``pkt``.

    False, packet unchanged, when ``pkt`` is not an unfragmented TCP packet,
    the TCP header would exceed 60 bytes, or the IP packet would exceed
    ``mtu`` (the frame then exceeds mtu + Ethernet header).  Otherwise the
    data offset, the IPv4 total length (and header checksum) or IPv6 payload
    length and the TCP checksum are updated: a complete checksum
    incrementally (option words, data-offset word, pseudo-header length); a
    partial one for the pseudo-header length only.  ``pkt.end`` grows by the
    option length.

    The buffer: when ``len(pkt.buf) >= pkt.end + optlen`` (a receive buffer
    larger than the frame) the bytes move within it and its size does not
    change (bytes after ``end`` are overwritten); otherwise the bytearray is
    extended in place by the option length (bytes after ``end`` shift; a
    live memoryview export of the buffer would make this raise BufferError).
    """
    if pkt.proto != IPPROTO_TCP or pkt.frag:
        return False
    opt = toa_option(client_ip, client_port, kind)
    n = len(opt)
    buf = pkt.buf
    l3 = pkt.l3
    l4 = pkt.l4
    end = pkt.end
    doff_byte = buf[l4 + 12]
    if ((doff_byte >> 4) << 2) + n > TCP_MAX_HLEN:
        return False
    if end - l3 + n > mtu:
        return False
    iplen = end - l3 if pkt.af == 4 else end - l3 - 40
    if iplen + n > 0xFFFF:
        return False

    pos = l4 + 20
    if len(buf) - end >= n:
        buf[pos + n : end + n] = buf[pos:end]
        buf[pos : pos + n] = opt
    else:
        buf[pos:pos] = opt

    new_doff_byte = doff_byte + (n << 2)  # data offset (high nibble) + n/4 words
    buf[l4 + 12] = new_doff_byte
    if pkt.af == 4:
        _H.pack_into(buf, l3 + 2, iplen + n)
        c = l3 + 10
        csum.put(buf, c, csum.replace2(csum.get(buf, c), iplen, iplen + n))
    else:
        _H.pack_into(buf, l3 + 4, iplen + n)

    tcplen = end - l4
    c = l4 + 16
    check = csum.get(buf, c)
    if pkt.csum_partial:
        check = csum.partial_replace2(check, tcplen, tcplen + n)
    else:
        flags = buf[l4 + 13]
        before = ((doff_byte << 8) | flags) + tcplen
        # The option words' sum: the option as one integer is congruent to it
        # modulo 0xffff (its length is even), and csum.replace takes unfolded sums.
        after = ((new_doff_byte << 8) | flags) + tcplen + n + int.from_bytes(opt)
        check = csum.replace(check, before, after)
    csum.put(buf, c, check)
    pkt.end = end + n
    return True


def tcp_options(pkt: Pkt) -> bytes:
    """The option bytes of a TCP packet's header (b"" for none or not TCP)."""
    if pkt.proto != IPPROTO_TCP or pkt.fragoff:
        return b""
    l4 = pkt.l4
    doff = (pkt.buf[l4 + 12] >> 4) << 2
    return bytes(pkt.buf[l4 + 20 : l4 + doff])


def _walk_options(opts: Buffer, i: int, end: int) -> Iterator[tuple[int, int, int]]:
    """(offset, kind, length) of each TCP option in ``opts[i:end]``, walked as
    tcp_parse_options does: EOL ends the options, NOP is one byte, a length
    below 2 or running past the end stops the walk."""
    while i < end:
        kind = opts[i]
        if kind == TCPOPT_EOL:
            return
        if kind == TCPOPT_NOP:
            i += 1
            continue
        if i + 1 >= end:
            return
        size = opts[i + 1]
        if size < 2 or i + size > end:
            return
        yield i, kind, size
        i += size


def parse_toa(tcp_options: Buffer) -> tuple[bytes, int] | None:
    """(client address, client port) from the TOA option in TCP option bytes
    (walked as tcp_parse_options does), or None."""
    opts = tcp_options
    for i, kind, size in _walk_options(opts, 0, len(opts)):
        if kind == TCPOPT_TOA and size == TCPOLEN_TOA:
            return bytes(opts[i + 4 : i + 8]), _H.unpack_from(opts, i + 2)[0]
        if (kind in (TCPOPT_TOA_V6, TCPOPT_TOA)) and size == TCPOLEN_TOA_V6:
            return bytes(opts[i + 4 : i + 20]), _H.unpack_from(opts, i + 2)[0]
    return None


def adjust_mss(pkt: Pkt, delta: int = TCPOLEN_TOA) -> bool:
    """Lower the MSS option by ``delta`` (Alibaba LVS tcp_opt_adjust_mss on the SYN-ACK).

    True when an MSS option larger than ``delta`` was found and changed; a
    complete TCP checksum is updated (a partial one covers no option bytes).
    """
    if pkt.proto != IPPROTO_TCP or pkt.fragoff:
        return False
    buf = pkt.buf
    l4 = pkt.l4
    hend = l4 + ((buf[l4 + 12] >> 4) << 2)
    for i, kind, size in _walk_options(buf, l4 + 20, hend):
        if kind == TCPOPT_MSS and size == 4:
            old = _H.unpack_from(buf, i + 2)[0]
            if old <= delta:
                return False
            new = old - delta
            _H.pack_into(buf, i + 2, new)
            if not pkt.csum_partial:
                if (i + 2 - l4) & 1:  # odd position in the segment: bytes swap words
                    old = ((old & 0xFF) << 8) | (old >> 8)
                    new = ((new & 0xFF) << 8) | (new >> 8)
                c = l4 + 16
                csum.put(buf, c, csum.replace2(csum.get(buf, c), old, new))
            return True
    return False
