"""packet.parse's common-case path (untagged IPv4 TCP/UDP, no options, not a fragment)
against parse_any, the general parser: the same Pkt or the same reason for frames near
the common case (valid, or with one field lying: lengths, checksum, data offset, UDP
length, version, IHL, fragment bits, ethertype, truncation), at any offset in a buffer
with random bytes after the frame."""

from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pylvs.wire import csum
from pylvs.wire.packet import Pkt, parse, parse_any

FIELDS = tuple(s for s in Pkt.__slots__ if s != "buf")


def view(r: Pkt | str) -> object:
    return r if isinstance(r, str) else tuple(getattr(r, f) for f in FIELDS)


FAULTS = (
    "none",
    "tot",  # total length off by a little, or anything
    "udp_len",  # UDP length off by a little, or anything
    "doff",  # any TCP data offset
    "csum",  # a wrong header checksum
    "ver_ihl",  # another version or header length
    "frag",  # DF, MF, an offset, the reserved bit
    "etype",  # VLAN, IPv6, something else
    "cut",  # the frame ends early (the rest of it still in the buffer)
    "proto",  # another protocol
)


@st.composite
def frames(draw: st.DrawFn) -> tuple[bytearray, int, int, bool]:
    """A valid untagged IPv4 TCP or UDP frame, then at most one fault."""
    fault = draw(st.sampled_from(FAULTS))
    proto = draw(st.sampled_from([6, 17]))
    if fault == "proto":
        proto = draw(st.sampled_from([1, 132, 253, 0, 58]))
    payload = bytes(draw(st.integers(0, 40)))
    near = st.integers(-3, 3)
    if proto == 6:
        doff = (
            draw(st.sampled_from([0, 1, 4, 6, 15]) | st.integers(0, 15)) if fault == "doff" else 5
        )
        opts = bytes(max(0, doff - 5) * 4 if fault != "doff" else 0)
        l4 = struct.pack("!HHIIBBHHH", 40000, 80, 1, 2, doff << 4, 0x18, 65535, 0, 0) + opts
    elif proto == 17:
        ulen = 8 + len(payload)
        if fault == "udp_len":
            ulen = draw(st.one_of(near.map(lambda d: max(0, ulen + d)), st.integers(0, 0xFFFF)))
        l4 = struct.pack("!HHHH", 40000, 53, ulen, 0)
    else:
        l4 = bytes(8)
    ver_ihl = 0x45
    if fault == "ver_ihl":
        ver_ihl = draw(st.sampled_from([0x46, 0x44, 0x40, 0x65, 0x4F, 0x35]))
    ip_opts = bytes(max(0, (ver_ihl & 15) - 5) * 4)
    tot = 20 + len(ip_opts) + len(l4) + len(payload)
    if fault == "tot":
        small = st.integers(0, 60)  # down to no header, or a cut transport header
        tot = draw(near.map(lambda d: max(0, tot + d)) | small | st.integers(0, 0xFFFF))
    frag = draw(st.sampled_from([0x4000, 0x2000, 0x0001, 0x8000, 0x6000])) if fault == "frag" else 0
    h = bytearray(struct.pack("!BBHHHBBH4s4s", ver_ihl, 0, tot, 7, frag, 64, proto, 0,
                              b"\x0a\x00\x00\x02", b"\x0a\x00\x00\x64"))  # fmt: skip
    h += ip_opts
    csum.put(h, 10, csum.checksum(h, 0, min(len(h), (ver_ihl & 15) * 4)))
    if fault == "csum":
        h[10] ^= draw(st.integers(1, 255))
    etype = b"\x08\x00"
    if fault == "etype":
        etype = draw(st.sampled_from([b"\x81\x00", b"\x88\xa8", b"\x86\xdd", b"\x08\x06"]))
    f = bytes(12) + etype + bytes(h) + l4 + payload
    pre = draw(st.binary(max_size=12))
    post = draw(st.binary(max_size=60))
    buf = bytearray(pre + f + post)
    end = len(pre) + len(f)
    if fault == "cut":
        end = len(pre) + draw(st.integers(0, len(f)))
    return buf, len(pre), end, draw(st.booleans())


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames())
def test_parse_fast_path_agrees_with_parse_any(f: tuple[bytearray, int, int, bool]) -> None:
    buf, start, end, partial = f
    assert view(parse(buf, start, end, partial)) == view(parse_any(buf, start, end, partial))


@settings(max_examples=1000, deadline=None)
@given(
    data=st.binary(min_size=0, max_size=120),
    start=st.integers(-2, 130),
    end=st.integers(0, 140),
    partial=st.booleans(),
)
def test_parse_agrees_with_parse_any_on_random_bounds(
    data: bytes, start: int, end: int, partial: bool
) -> None:
    buf = bytearray(bytes(12) + b"\x08\x00\x45" + data)
    assert view(parse(buf, start, end, partial)) == view(parse_any(buf, start, end, partial))
