"""Hash primitives shared by the sh, dh and mh schedulers.

Mirrors:

- ``include/linux/hash.h``: ``hash_32()`` (multiply by GOLDEN_RATIO_32 in
  u32 arithmetic, keep the top ``bits`` bits).
- ``lib/siphash.c``: ``siphash()`` (SipHash-2-4) and ``hsiphash()``.  For
  ``hsiphash()`` we reproduce the **64-bit** kernel build (x86_64, arm64,
  ...), where it is SipHash-1-3 with the 64-bit result truncated to u32 and
  the ``hsiphash_key_t`` words are 64-bit ``unsigned long``.  Deliberate
  difference: the 32-bit build (HalfSipHash-1-3) is not modelled, and the
  message bytes are laid out little-endian as on those 64-bit machines.
- The address folding shared by ``ip_vs_sh.c``, ``ip_vs_dh.c`` and
  ``ip_vs_mh.c``: an IPv6 address is folded to 32 bits by XOR-ing its four
  32-bit words; every hash works on the host-order value (``ntohl``).
- ``ip_vs_sh_get_port()`` / ``ip_vs_mh_get_port()``: only TCP, UDP and SCTP
  packets contribute a port; anything else hashes with port 0.

All functions are pure.
"""

from __future__ import annotations

from pylvs.core.model import AF_INET6, Address, Packet, Proto

U32_MASK = 0xFFFFFFFF
U64_MASK = 0xFFFFFFFFFFFFFFFF

GOLDEN_RATIO_32 = 0x61C88647

# The four SipHash initialisation constants ("somepseudorandomlygeneratedbytes").
_SIP_C0 = 0x736F6D6570736575
_SIP_C1 = 0x646F72616E646F6D
_SIP_C2 = 0x6C7967656E657261
_SIP_C3 = 0x7465646279746573

SipKey = tuple[int, int]
"""``(key[0], key[1])`` of a ``siphash_key_t`` / 64-bit ``hsiphash_key_t``."""

_PORT_PROTOCOLS = frozenset({int(Proto.TCP), int(Proto.UDP), int(Proto.SCTP)})


def hash_32(val: int, bits: int) -> int:
    """hash_32(): the top ``bits`` bits of ``val * GOLDEN_RATIO_32`` (mod 2**32)."""
    return ((val & U32_MASK) * GOLDEN_RATIO_32 & U32_MASK) >> (32 - bits)


def addr_fold(af: int, addr: Address) -> int:
    """The 32-bit host-order key of an address, as the IPVS hashing schedulers use it.

    ``af`` is the service's family (the kernel reads the ``nf_inet_addr``
    union according to ``svc->af``).  For AF_INET6 the four words are
    XOR-ed (an IPv4 address in an IPv6 service occupies the first word, the
    rest of the union being zero); for AF_INET only the first word counts.
    """
    v = int(addr)
    if addr.version == 6:
        if af == AF_INET6:
            return (v >> 96) ^ ((v >> 64) & U32_MASK) ^ ((v >> 32) & U32_MASK) ^ (v & U32_MASK)
        return v >> 96
    return v


def hashed_port(pkt: Packet) -> int:
    """The port the sh/mh *_PORT flag hashes: the source port for TCP/UDP/SCTP, else 0."""
    return pkt.sport if pkt.protocol in _PORT_PROTOCOLS else 0


def _rotl64(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & U64_MASK


def _sipround(v0: int, v1: int, v2: int, v3: int) -> tuple[int, int, int, int]:
    v0 = (v0 + v1) & U64_MASK
    v1 = _rotl64(v1, 13) ^ v0
    v0 = _rotl64(v0, 32)
    v2 = (v2 + v3) & U64_MASK
    v3 = _rotl64(v3, 16) ^ v2
    v0 = (v0 + v3) & U64_MASK
    v3 = _rotl64(v3, 21) ^ v0
    v2 = (v2 + v1) & U64_MASK
    v1 = _rotl64(v1, 17) ^ v2
    v2 = _rotl64(v2, 32)
    return v0, v1, v2, v3


def siphash_cd(data: bytes, key: SipKey, c_rounds: int, d_rounds: int) -> int:
    """SipHash-c-d of ``data`` with the 128-bit key ``(k0, k1)``; 64-bit result."""
    k0 = key[0] & U64_MASK
    k1 = key[1] & U64_MASK
    v0 = _SIP_C0 ^ k0
    v1 = _SIP_C1 ^ k1
    v2 = _SIP_C2 ^ k0
    v3 = _SIP_C3 ^ k1
    n = len(data)
    whole = n - n % 8
    for i in range(0, whole, 8):
        m = int.from_bytes(data[i : i + 8], "little")
        v3 ^= m
        for _ in range(c_rounds):
            v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
        v0 ^= m
    # Last block: the remaining bytes little-endian, the length in the top byte.
    b = ((n & 0xFF) << 56) | int.from_bytes(data[whole:], "little")
    v3 ^= b
    for _ in range(c_rounds):
        v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
    v0 ^= b
    v2 ^= 0xFF
    for _ in range(d_rounds):
        v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
    return v0 ^ v1 ^ v2 ^ v3


def siphash(data: bytes, key: SipKey) -> int:
    """The kernel's siphash(): SipHash-2-4, u64 result."""
    return siphash_cd(data, key, 2, 4)


def hsiphash(data: bytes, key: SipKey) -> int:
    """The kernel's hsiphash() on 64-bit builds: SipHash-1-3 truncated to u32."""
    return siphash_cd(data, key, 1, 3) & U32_MASK


def hsiphash_u32(value: int, key: SipKey) -> int:
    """hsiphash(&v, sizeof(v), key) for an ``unsigned int v`` (little-endian memory).

    The hot path of mh: SipHash-1-3 of one 4-byte message, unrolled (one
    compression round and three finalisation rounds) so a lookup costs no
    function calls.  ``hsiphash()`` above is the general reference; the tests
    check both agree.
    """
    m = U64_MASK
    k0 = key[0] & m
    k1 = key[1] & m
    v0 = _SIP_C0 ^ k0
    v1 = _SIP_C1 ^ k1
    v2 = _SIP_C2 ^ k0
    b = (4 << 56) | (value & U32_MASK)
    v3 = _SIP_C3 ^ k1 ^ b
    for r in range(4):
        if r == 1:
            v0 ^= b
            v2 ^= 0xFF
        v0 = (v0 + v1) & m
        v1 = (((v1 << 13) | (v1 >> 51)) & m) ^ v0
        v0 = ((v0 << 32) | (v0 >> 32)) & m
        v2 = (v2 + v3) & m
        v3 = (((v3 << 16) | (v3 >> 48)) & m) ^ v2
        v0 = (v0 + v3) & m
        v3 = (((v3 << 21) | (v3 >> 43)) & m) ^ v0
        v2 = (v2 + v1) & m
        v1 = (((v1 << 17) | (v1 >> 47)) & m) ^ v2
        v2 = ((v2 << 32) | (v2 >> 32)) & m
    return (v0 ^ v1 ^ v2 ^ v3) & U32_MASK
