"""The connection table (kernel ip_vs_conn.c): entries, binding, expiry.

Entries are keyed by compact ``bytes`` built from what a data plane has in
hand: protocol, client address, virtual address, client port, virtual port
(``conn_key``).  For IPv4 that is exactly the byte run of an IP header's
addresses followed by the transport ports, prefixed by the protocol byte, so
a packet data plane can build it with one slice.  Persistence templates use
a separate key space (``template_key``).

Expiry follows the kernel's per-connection timer with a lazy wheel: every
entry is filed in a one-second bucket; when a bucket comes due its entries
are expired, or re-filed if their timer was pushed back by traffic.  Nothing
here reads the clock: every call that needs the time takes ``now`` (seconds).
"""

from __future__ import annotations

import heapq
import struct
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv6Address, ip_address

from pylvs.core import proto_tcp
from pylvs.core.model import (
    DEST_F_OVERLOAD,
    Address,
    Dest,
    Fwd,
)
from pylvs.core.timeouts import Timeouts

# Connection flags (our compact layout; the sync adapter maps them to the
# kernel's IP_VS_CONN_F_* values).  Bits 0-2 hold the forwarding method.
F_FWD_MASK = 0x07
F_INACTIVE = 0x08
F_TEMPLATE = 0x10
F_NOOUTPUT = 0x20
F_ONE_PACKET = 0x40
F_NO_CPORT = 0x80
F_SYNC = 0x100
F_ASSURED = 0x200  # template: a controlled connection reached ESTABLISHED

_TCP_NEXT = proto_tcp.NEXT
_TCP_ACTIVE = proto_tcp.ACTIVE
_TCP_ESTABLISHED = int(proto_tcp.TcpState.ESTABLISHED)
_DIR_OUTPUT = int(proto_tcp.Dir.OUTPUT)
_DIR_INPUT_ONLY = int(proto_tcp.Dir.INPUT_ONLY)

TEMPLATE_PREFIX = b"\xfe"
IPPROTO_IP = 0
INVALID_PORT = 0xFFFF

_K4 = struct.Struct("!B4s4sHH")
_K6 = struct.Struct("!B16s16sHH")
_T4 = struct.Struct("!cB4s4sHH")
_T6 = struct.Struct("!cB16s16sHH")


def conn_key(protocol: int, caddr: bytes, vaddr: bytes, cport: int, vport: int) -> bytes:
    """Key of a connection; ``caddr``/``vaddr`` are packed addresses (4 or 16 bytes)."""
    if len(caddr) == 4:
        return _K4.pack(protocol, caddr, vaddr, cport, vport)
    return _K6.pack(protocol, caddr, vaddr, cport, vport)


def template_key(protocol: int, snet: bytes, vaddr: bytes, vport: int) -> bytes:
    """Key of a persistence template <protocol, snet, 0, vaddr|fwmark, vport>."""
    if len(snet) == 4:
        return _T4.pack(TEMPLATE_PREFIX, protocol, snet, vaddr, 0, vport)
    return _T6.pack(TEMPLATE_PREFIX, protocol, snet, vaddr, 0, vport)


def split_key(key: bytes) -> tuple[int, Address, int, Address, int]:
    """(protocol, caddr, cport, vaddr, vport) of a connection or template key."""
    if key[:1] == TEMPLATE_PREFIX:
        key = key[1:]
    n = (len(key) - 5) // 2
    proto = key[0]
    caddr = ip_address(key[1 : 1 + n])
    vaddr_b = key[1 + n : 1 + 2 * n]
    vaddr = IPv4Address(vaddr_b) if n == 4 else IPv6Address(vaddr_b)
    cport = int.from_bytes(key[1 + 2 * n : 3 + 2 * n], "big")
    vport = int.from_bytes(key[3 + 2 * n : 5 + 2 * n], "big")
    return proto, caddr, cport, vaddr, vport


class Conn:
    """One connection or persistence template (struct ip_vs_conn)."""

    __slots__ = (
        "bucket",
        "control",
        "dest",
        "dport",
        "expires",
        "extra",
        "flags",
        "fwmark",
        "in_pkts",
        "key",
        "n_control",
        "okey",
        "state",
        "timeout",
    )

    def __init__(self, key: bytes, dest: Dest | None, flags: int, fwmark: int, dport: int) -> None:
        self.key = key
        self.dest = dest
        self.dport = dport
        self.flags = flags
        self.fwmark = fwmark
        self.state = 0
        self.timeout = 3
        self.expires = 0.0
        self.control: Conn | None = None
        self.n_control = 0
        self.in_pkts = 0
        self.extra: object = None  # free for the data plane (e.g. its relay object)
        self.okey: bytes | None = None  # key in the reply-direction index
        self.bucket: int | None = None  # None once unlinked

    # -- decoded views (listings; not for the hot path) --
    @property
    def protocol(self) -> int:
        return self.key[1] if self.key[:1] == TEMPLATE_PREFIX else self.key[0]

    @property
    def is_template(self) -> bool:
        return bool(self.flags & F_TEMPLATE)

    @property
    def fwd_method(self) -> Fwd:
        return Fwd(self.flags & F_FWD_MASK)

    @property
    def inactive(self) -> bool:
        return bool(self.flags & F_INACTIVE)

    @property
    def alive(self) -> bool:
        return self.bucket is not None

    def endpoints(self) -> tuple[Address, int, Address, int, Address | None, int]:
        """(caddr, cport, vaddr, vport, daddr, dport) as ipvsadm -Lnc shows them."""
        _, caddr, cport, vaddr, vport = split_key(self.key)
        dest = self.dest
        if dest is None:
            return caddr, cport, vaddr, vport, None, 0
        dport = INVALID_PORT if vport == INVALID_PORT else self.dport
        return caddr, cport, vaddr, vport, dest.addr, dport

    def __repr__(self) -> str:
        c, cp, v, vp, d, dp = self.endpoints()
        kind = "tpl" if self.flags & F_TEMPLATE else "conn"
        return f"<{kind} {c}:{cp} {v}:{vp} -> {d}:{dp} state={self.state}>"


def bind_dest(conn: Conn, dest: Dest) -> None:
    """ip_vs_bind_dest(): count the entry on its dest and apply the upper threshold."""
    conn.dest = dest
    if conn.flags & F_TEMPLATE:
        dest.persistconns += 1
    elif conn.flags & F_INACTIVE:
        dest.inactconns += 1
    else:
        dest.activeconns += 1
    if dest.u_thresh and dest.activeconns + dest.inactconns >= dest.u_thresh:
        dest.flags |= DEST_F_OVERLOAD


def unbind_dest(conn: Conn) -> None:
    """ip_vs_unbind_dest(): uncount, then clear OVERLOAD with the kernel's hysteresis."""
    dest = conn.dest
    if dest is None:
        return
    if conn.flags & F_TEMPLATE:
        dest.persistconns -= 1
    elif conn.flags & F_INACTIVE:
        dest.inactconns -= 1
    else:
        dest.activeconns -= 1
    total = dest.activeconns + dest.inactconns
    if dest.l_thresh:
        if total < dest.l_thresh:
            dest.flags &= ~DEST_F_OVERLOAD
    elif dest.u_thresh:
        if total * 4 < dest.u_thresh * 3:
            dest.flags &= ~DEST_F_OVERLOAD
    else:
        dest.flags &= ~DEST_F_OVERLOAD


class ConnTable:
    """All connections and templates of one director."""

    def __init__(self, timeouts: Timeouts | None = None) -> None:
        self.timeouts = timeouts if timeouts is not None else Timeouts()
        self.tab: dict[bytes, Conn] = {}
        self.out: dict[bytes, Conn] = {}  # reply-direction index (NAT, FULLNAT)
        self._wheel: dict[int, list[Conn]] = {}
        self._due: list[int] = []  # heap of bucket seconds
        self._invalid_seq = 0

    def __len__(self) -> int:
        return len(self.tab)

    def __iter__(self) -> Iterator[Conn]:
        return iter(list(self.tab.values()))

    def get(self, key: bytes) -> Conn | None:
        return self.tab.get(key)

    def out_get(self, key: bytes) -> Conn | None:
        return self.out.get(key)

    # -- creation ---------------------------------------------------------
    def new(
        self,
        key: bytes,
        dest: Dest,
        dport: int,
        flags: int,
        now: float,
        *,
        fwmark: int = 0,
        out_key: bytes | None = None,
    ) -> Conn:
        """ip_vs_conn_new(): a new entry bound to ``dest``, state NONE, 3 s timer.

        The forwarding method and the INACTIVE/NOOUTPUT flags come from the
        dest (dest->conn_flags): a new connection starts inactive and the
        first state transition decides.
        """
        fwd = dest.fwd_method
        conn_flags = int(fwd) | F_INACTIVE
        if fwd not in (Fwd.MASQ, Fwd.FULLNAT):
            conn_flags |= F_NOOUTPUT
        if flags & F_SYNC:
            if not flags & F_TEMPLATE:
                conn_flags &= ~F_INACTIVE
            flags &= ~(F_FWD_MASK | F_NOOUTPUT)
        conn = Conn(key, None, flags | conn_flags, fwmark, dport)
        bind_dest(conn, dest)
        if flags & F_ONE_PACKET:
            # Never hashed; the caller releases it after its one packet.
            conn.bucket = 0
            conn.expires = now
            return conn
        self.tab[key] = conn
        if out_key is not None:
            self.out[out_key] = conn
            conn.okey = out_key
        self._arm(conn, now)
        return conn

    def release_one_packet(self, conn: Conn) -> None:
        """ip_vs_conn_put() of a one-packet entry: it expires right after its packet."""
        if conn.bucket is not None:
            conn.bucket = None
            unbind_dest(conn)

    def attach_out_key(self, conn: Conn, out_key: bytes) -> None:
        """Index ``conn`` for replies under ``out_key`` (used by FULLNAT's local addresses)."""
        self.out[out_key] = conn
        conn.okey = out_key

    # -- timers -----------------------------------------------------------
    def _file(self, conn: Conn) -> None:
        b = int(conn.expires) + 1
        lst = self._wheel.get(b)
        if lst is None:
            lst = self._wheel[b] = []
            heapq.heappush(self._due, b)
        lst.append(conn)
        conn.bucket = b

    def _arm(self, conn: Conn, now: float) -> None:
        conn.expires = now + conn.timeout
        self._file(conn)

    def touch(self, conn: Conn, now: float) -> None:
        """ip_vs_conn_put(): restart the timer with the current timeout."""
        exp = now + conn.timeout
        conn.expires = exp
        b = conn.bucket
        if b is not None and exp < b - 1:
            self._file(conn)  # earlier than where it is filed: file it again

    def set_timeout(self, conn: Conn, timeout: int, now: float) -> None:
        conn.timeout = timeout
        self.touch(conn, now)

    def expire_now(self, conn: Conn, now: float) -> bool:
        """ip_vs_conn_expire_now(): run the entry's timer at once.

        Returns True when the entry went away (an entry that still controls
        others is kept and retried in 60 s, as the kernel does).
        """
        if conn.bucket is None:
            return False
        conn.timeout = 0
        conn.expires = now
        return self._expire_one(conn, now)

    # -- state ------------------------------------------------------------
    def set_state(self, conn: Conn, direction: int, flags: int, now: float) -> None:
        """Feed one packet's worth of state (TCP flags, SCTP event; UDP ignores it)."""
        proto = conn.key[0]
        # Literal numbers on the per-packet path (Proto.* are global + attribute lookups).
        if proto == 17:  # Proto.UDP
            conn.timeout = self.timeouts.udp
        elif proto == 6:  # Proto.TCP
            self._tcp_state(conn, direction, flags)
        elif proto == 132:  # Proto.SCTP
            self._sctp_state(conn, direction, flags)
        # touch(), inlined
        exp = now + conn.timeout
        conn.expires = exp
        b = conn.bucket
        if b is not None and exp < b - 1:
            self._file(conn)

    def _tcp_state(self, conn: Conn, direction: int, tcp_flags: int) -> None:
        if conn.flags & F_NOOUTPUT:
            if direction == _DIR_OUTPUT:
                conn.flags &= ~F_NOOUTPUT
            else:
                direction = _DIR_INPUT_ONLY
        new = _TCP_NEXT[direction][tcp_flags & 0xFF][conn.state]
        if new != conn.state:
            self._account(conn, _TCP_ACTIVE[new])
            if new == _TCP_ESTABLISHED:
                ct = conn.control
                if ct is not None and ct.flags & F_TEMPLATE:
                    ct.flags |= F_ASSURED
        conn.state = new
        conn.timeout = self.timeouts.tcp[new]

    def _sctp_state(self, conn: Conn, direction: int, event: int) -> None:
        from pylvs.core import proto_sctp

        if conn.flags & F_NOOUTPUT:
            if direction == proto_tcp.Dir.OUTPUT:
                conn.flags &= ~F_NOOUTPUT
            else:
                direction = proto_tcp.Dir.INPUT_ONLY
        new = proto_sctp.next_state(direction, event, conn.state)
        if new != conn.state:
            self._account(conn, proto_sctp.is_active(new))
        conn.state = new
        conn.timeout = self.timeouts.sctp[new]

    @staticmethod
    def _account(conn: Conn, active: bool) -> None:
        dest = conn.dest
        if dest is None:
            return
        if active:
            if conn.flags & F_INACTIVE:
                dest.activeconns += 1
                dest.inactconns -= 1
                conn.flags &= ~F_INACTIVE
        elif not conn.flags & F_INACTIVE:
            dest.activeconns -= 1
            dest.inactconns += 1
            conn.flags |= F_INACTIVE

    # -- persistence control ----------------------------------------------
    @staticmethod
    def control_add(conn: Conn, template: Conn) -> None:
        conn.control = template
        template.n_control += 1

    def invalidate_template(self, template: Conn) -> None:
        """ip_vs_check_template() failure: rehash with vport/dport 0xffff, keep the timer."""
        if template.key in self.tab and self.tab[template.key] is template:
            del self.tab[template.key]
            proto, caddr, _, vaddr, vport = split_key(template.key)
            if vport != INVALID_PORT:
                self._invalid_seq += 1
                # Same shape as a template key with vport 0xffff, plus a
                # sequence number so several invalidated templates can coexist.
                new_key = template_key(
                    proto, caddr.packed, vaddr.packed, INVALID_PORT
                ) + self._invalid_seq.to_bytes(8, "big")
                template.key = new_key
                self.tab[new_key] = template

    # -- expiry -----------------------------------------------------------
    def expire(self, now: float) -> list[Conn]:
        """Run the timers that are due; return the entries that went away."""
        gone: list[Conn] = []
        due = self._due
        wheel = self._wheel
        while due and due[0] <= now:
            b = heapq.heappop(due)
            for conn in wheel.pop(b, ()):
                if conn.bucket != b:
                    continue  # filed again elsewhere, or already unlinked
                if conn.expires > now:
                    self._file(conn)
                    continue
                if self._expire_one(conn, now):
                    gone.append(conn)
        return gone

    def _expire_one(self, conn: Conn, now: float) -> bool:
        """ip_vs_conn_expire(): unlink, or retry in 60 s while controlling others."""
        if conn.n_control:
            conn.timeout = 60
            self._arm(conn, now)
            return False
        self._unlink(conn)
        ct = conn.control
        if ct is not None:
            has_ref = conn.timeout == 0
            conn.control = None
            ct.n_control -= 1
            if (
                has_ref
                and ct.n_control == 0
                and ct.bucket is not None
                and (not ct.flags & F_TEMPLATE or not ct.flags & F_ASSURED)
            ):
                self.expire_now(ct, now)
        unbind_dest(conn)
        return True

    def _unlink(self, conn: Conn) -> None:
        if self.tab.get(conn.key) is conn:
            del self.tab[conn.key]
        ok = conn.okey
        if ok is not None and self.out.get(ok) is conn:
            del self.out[ok]
        conn.bucket = None

    def flush(self) -> list[Conn]:
        """Drop every entry at once (ip_vs_conn_flush), uncounting dests."""
        gone = list(self.tab.values())
        for conn in gone:
            conn.bucket = None
            unbind_dest(conn)
            conn.control = None
        self.tab.clear()
        self.out.clear()
        self._wheel.clear()
        self._due.clear()
        return gone

    def expire_unavailable(self, now: float) -> int:
        """Expire every entry whose dest is no longer available.

        The kernel's ip_vs_expire_nodest_conn_flush(), run when a dest is
        deleted while expire_nodest_conn is set.
        """
        n = 0
        for conn in list(self.tab.values()):
            dest = conn.dest
            if dest is not None and not dest.available and self.expire_now(conn, now):
                n += 1
        return n
