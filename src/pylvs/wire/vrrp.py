"""VRRP advertisements: version 2 (RFC 3768) and version 3 (RFC 5798), as keepalived
builds and checks them (vrrp.c vrrp_build_vrrp_v2/v3, vrrp_build_ip4, vrrp_check_packet).

The message (the IP payload)::

    0                   1                   2                   3
    |Version| Type  | Virtual Rtr ID|   Priority    | Count IP Addrs|
    v2: | Auth Type   |   Adver Int   |          Checksum             |
    v3: |(rsvd) |     Max Adver Int     |          Checksum             |
    |                 IPvX Address(es) ...                              |
    v2 only: |          Authentication Data (8 bytes)                   |

- v2: ``Adver Int`` in whole seconds; the checksum covers the VRRP message only;
  ``auth_type`` 0 (none) or 1 (PASS: the 8 bytes after the addresses hold the
  password, zero padded); 2 (IPsec AH) is recognised but not produced.  v2 is IPv4 only.
- v3: 12-bit ``Max Adver Int`` in centiseconds; the checksum includes the IPv4 or
  IPv6 pseudo-header (source, destination, protocol 112, VRRP length).  For a
  unicast advertisement keepalived's receivers also accept a checksum computed
  with the multicast group as destination (its "old unicast checksum" mode), so
  ``parse`` takes ``alt_dst`` for that.
- The IPv4 packet keepalived sends: TOS 0xc0 (internetwork control), TTL 255, no
  options, protocol 112 (``build_ip4``).  ``parse_ip4`` reads what a raw
  IPPROTO_VRRP socket returns (the IPv4 header included) and reports the TTL.

Parsers never raise: they return a reason string ``"<kind>: <detail>"`` whose kind
(``reason_kind``) is one of ``REASONS`` (the drop counters of the VRRP adapter).
Deliberate difference: keepalived compares the message length with the count of
addresses it expects for its own instance; here the length must match the count the
message itself announces (the instance-level checks live in pylvs.ha.vrrp).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from pylvs.wire import csum

Buffer = bytes | bytearray | memoryview

IPPROTO_VRRP = 112
IPPROTO_AH = 51
MCAST_GROUP4 = "224.0.0.18"
MCAST_GROUP6 = "ff02::12"
TTL = 255  # sent, and required on receipt (RFC 3768 7.1, RFC 5798 7.1)
TOS = 0xC0
VERSION_2 = 2
VERSION_3 = 3
TYPE_ADVERT = 1
AUTH_NONE = 0
AUTH_PASS = 1
AUTH_AH = 2
AUTH_LEN = 8
HLEN = 8  # fixed part of the message
PRIO_STOP = 0
PRIO_OWNER = 255
MAX_ADDRS = 255
V3_MAX_ADVER_CS = 0x0FFF

# Drop reasons (the kind before ':' in a parser's answer).
MALFORMED = "malformed"
VERSION = "version"
CHECKSUM = "checksum"
REASONS = (MALFORMED, VERSION, CHECKSUM)

_HDR = struct.Struct("!BBBBHH")  # vers/type, vrid, priority, naddr, (auth,adver | adver), csum
_IP4 = struct.Struct("!BBHHHBBH4s4s")


@dataclass(frozen=True, slots=True)
class Advert:
    """One advertisement.  ``adver_int`` in seconds (v2: whole seconds on the wire,
    v3: centiseconds); ``addresses`` as text; ``auth_data`` the 8 bytes of a v2
    PASS advertisement (zero padded), else b""; ``checksum`` as received (0 for one
    to be built)."""

    version: int
    vrid: int
    priority: int
    addresses: tuple[str, ...]
    adver_int: float
    auth_type: int = AUTH_NONE
    auth_data: bytes = b""
    checksum: int = 0

    @property
    def family(self) -> int:
        return 6 if self.addresses and ":" in self.addresses[0] else 4


@dataclass(frozen=True, slots=True)
class Received:
    """An IPv4 packet carrying an advertisement, as a raw socket returns it."""

    src: str
    dst: str
    ttl: int
    advert: Advert


def reason_kind(reason: str) -> str:
    """The counter a parser's reason belongs to (``MALFORMED`` for anything unknown)."""
    kind = reason.split(":", 1)[0]
    return kind if kind in REASONS else MALFORMED


def pass_data(password: str | bytes) -> bytes:
    """keepalived's auth_pass: at most 8 bytes, zero padded."""
    raw = password.encode() if isinstance(password, str) else password
    return raw[:AUTH_LEN].ljust(AUTH_LEN, b"\0")


def _packed(addr: str | bytes) -> bytes:
    return addr if isinstance(addr, bytes) else ipaddress.ip_address(addr).packed


def message_len(version: int, naddr: int, family: int) -> int:
    """Length of a VRRP message with ``naddr`` addresses (keepalived vrrp_pkt_len)."""
    alen = 16 if family == 6 else 4
    return HLEN + naddr * alen + (AUTH_LEN if version == VERSION_2 and family == 4 else 0)


def build(adv: Advert, src: str | bytes, dst: str | bytes) -> bytes:
    """The VRRP message of ``adv`` with its checksum (``src``/``dst`` for the v3
    pseudo-header).  ValueError on what cannot be sent."""
    if adv.version not in (VERSION_2, VERSION_3):
        raise ValueError(f"VRRP version {adv.version}")
    if not 1 <= adv.vrid <= 255 or not 0 <= adv.priority <= 255:
        raise ValueError("VRID 1-255, priority 0-255")
    if len(adv.addresses) > MAX_ADDRS:
        raise ValueError("at most 255 addresses")
    saddr, daddr = _packed(src), _packed(dst)
    family = 6 if len(saddr) == 16 else 4
    packed = [_packed(a) for a in adv.addresses]
    if any(len(p) != len(saddr) for p in packed):
        raise ValueError("addresses and source must be of one family")
    if adv.version == VERSION_2:
        if family == 6:
            raise ValueError("VRRP version 2 is IPv4 only")
        secs = round(adv.adver_int)
        if not 1 <= secs <= 255:
            raise ValueError("v2 advertisement interval: 1-255 s")
        word = (adv.auth_type << 8) | secs
    else:
        cs = round(adv.adver_int * 100)
        if not 1 <= cs <= V3_MAX_ADVER_CS:
            raise ValueError("v3 advertisement interval: 0.01-40.95 s")
        word = cs
    vers_type = (adv.version << 4) | TYPE_ADVERT
    body = bytearray(_HDR.pack(vers_type, adv.vrid, adv.priority, len(packed), word, 0))
    for p in packed:
        body += p
    if adv.version == VERSION_2:
        body += adv.auth_data[:AUTH_LEN].ljust(AUTH_LEN, b"\0")
        total = csum.add(body)
    else:
        pseudo = csum.pseudo6 if family == 6 else csum.pseudo4
        total = csum.add(body) + pseudo(saddr, daddr, IPPROTO_VRRP, len(body))
    csum.put(body, 6, csum.finish(total))
    return bytes(body)


def build_ip4(
    adv: Advert, src: str | bytes, dst: str | bytes, *, ttl: int = TTL, ident: int = 0
) -> bytes:
    """The whole IPv4 packet keepalived sends (vrrp_build_ip4): TOS 0xc0, TTL 255."""
    saddr, daddr = _packed(src), _packed(dst)
    if len(saddr) != 4 or len(daddr) != 4:
        raise ValueError("build_ip4: IPv4 addresses")
    body = build(adv, saddr, daddr)
    hdr = bytearray(
        _IP4.pack(0x45, TOS, 20 + len(body), ident & 0xFFFF, 0, ttl, IPPROTO_VRRP, 0, saddr, daddr)
    )
    csum.put(hdr, 10, csum.checksum(hdr))
    return bytes(hdr) + body


def parse(
    msg: Buffer,
    src: str | bytes,
    dst: str | bytes,
    *,
    alt_dst: str | bytes | None = None,
) -> Advert | str:
    """A VRRP message (the IP payload) from ``src`` to ``dst``; a reason string if it
    is not a well-formed, correctly checksummed advertisement of version 2 or 3."""
    try:
        return _parse(bytes(msg), _packed(src), _packed(dst), alt_dst)
    except (ValueError, IndexError, struct.error) as e:  # defensive: never raise
        return f"{MALFORMED}: {e}"


def _parse(msg: bytes, saddr: bytes, daddr: bytes, alt_dst: str | bytes | None) -> Advert | str:
    if len(msg) < HLEN:
        return f"{MALFORMED}: {len(msg)} bytes, shorter than the VRRP header"
    vers_type, vrid, prio, naddr, word, check = _HDR.unpack_from(msg)
    version, typ = vers_type >> 4, vers_type & 0x0F
    if version not in (VERSION_2, VERSION_3):
        return f"{VERSION}: VRRP version {version}"
    if typ != TYPE_ADVERT:
        return f"{MALFORMED}: packet type {typ}, not an advertisement"
    family = 6 if len(saddr) == 16 else 4
    if version == VERSION_2 and family == 6:
        return f"{VERSION}: VRRP version 2 over IPv6"
    want = message_len(version, naddr, family)
    if len(msg) != want:
        return f"{MALFORMED}: {len(msg)} bytes for {naddr} addresses, expected {want}"
    if vrid == 0:
        return f"{MALFORMED}: VRID 0"
    if version == VERSION_2:
        if csum.checksum(msg) != 0:
            return f"{CHECKSUM}: VRRPv2 checksum {check:#06x} is wrong"
        auth_type, adver = word >> 8, word & 0xFF
        if adver == 0:
            return f"{MALFORMED}: advertisement interval 0"
        alen = 4
    else:
        total = csum.add(msg)
        pseudo = csum.pseudo6 if family == 6 else csum.pseudo4
        if csum.finish(total + pseudo(saddr, daddr, IPPROTO_VRRP, len(msg))) != 0:
            ok = alt_dst is not None and (
                csum.finish(total + pseudo(saddr, _packed(alt_dst), IPPROTO_VRRP, len(msg))) == 0
            )
            if not ok:
                return f"{CHECKSUM}: VRRPv3 checksum {check:#06x} is wrong"
        auth_type, adver = AUTH_NONE, word & V3_MAX_ADVER_CS
        if adver == 0:
            return f"{MALFORMED}: advertisement interval 0"
        alen = 16 if family == 6 else 4
    addrs = tuple(
        str(ipaddress.ip_address(msg[HLEN + i * alen : HLEN + (i + 1) * alen]))
        for i in range(naddr)
    )
    auth_data = msg[-AUTH_LEN:] if version == VERSION_2 else b""
    return Advert(
        version=version,
        vrid=vrid,
        priority=prio,
        addresses=addrs,
        adver_int=float(adver) if version == VERSION_2 else adver / 100,
        auth_type=auth_type,
        auth_data=auth_data,
        checksum=check,
    )


def parse_ip4(packet: Buffer, *, alt_dst: str | bytes | None = None) -> Received | str:
    """An IPv4 packet (header included, as a raw IPPROTO_VRRP socket reads it)."""
    try:
        data = bytes(packet)
        if len(data) < 20:
            return f"{MALFORMED}: {len(data)} bytes, shorter than an IPv4 header"
        vihl, _tos, tot, _id, frag, ttl, proto, _chk, saddr, daddr = _IP4.unpack_from(data)
        ihl = (vihl & 0x0F) * 4
        if vihl >> 4 != 4 or ihl < 20 or len(data) < ihl:
            return f"{MALFORMED}: bad IPv4 header (version/ihl {vihl:#04x})"
        if tot != len(data):
            return f"{MALFORMED}: IPv4 total length {tot}, received {len(data)}"
        if frag & 0x3FFF:
            return f"{MALFORMED}: IPv4 fragment"
        if proto == IPPROTO_AH:
            return f"{MALFORMED}: IPsec AH authentication is not supported"
        if proto != IPPROTO_VRRP:
            return f"{MALFORMED}: IP protocol {proto}, not VRRP"
        adv = _parse(data[ihl:], saddr, daddr, alt_dst)
        if isinstance(adv, str):
            return adv
        if adv.family != 4 and adv.addresses:
            return f"{MALFORMED}: IPv6 addresses in an IPv4 packet"
        return Received(
            src=str(ipaddress.IPv4Address(saddr)),
            dst=str(ipaddress.IPv4Address(daddr)),
            ttl=ttl,
            advert=adv,
        )
    except (ValueError, IndexError, struct.error) as e:
        return f"{MALFORMED}: {e}"
