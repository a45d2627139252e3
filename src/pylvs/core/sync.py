"""Connection synchronisation decisions (kernel ip_vs_sync.c, without the sockets).

Master side (``MasterSync``), what ip_vs_in() and ip_vs_sync_conn() decide:

- after every client packet of a connection (``Engine.sync`` hook, called by
  ``Engine.conn_in`` with the connection's packet count ``in_pkts``) the
  connection is synced when ip_vs_sync_conn_needed() says so: TCP only in
  ESTABLISHED, FIN_WAIT, CLOSE, CLOSE_WAIT and TIME_WAIT, SCTP only in
  ESTABLISHED, SHUTDOWN_SENT, SHUTDOWN_RECEIVED, SHUTDOWN_ACK_SENT and CLOSED;
  a change into one of those states other than ESTABLISHED is sent at once;
  otherwise (and for UDP) when ``pkts % sync_period == sync_threshold``
  (defaults 3 and 50), or, with ``sync_period`` 0, once at ``pkts ==
  sync_threshold``; ``sync_refresh_period`` (seconds, default 0 = off)
  suppresses a sync whose expiry time moved by less than
  min(refresh period, max(timeout/2, 10 s)), retried up to ``sync_retries``
  times, each no sooner than refresh period / 8; with ``sync_persist_mode``
  connections controlled by a template are not synced, only templates;
- one-packet connections are never synced, but their template is;
- the controlling template of a connection is considered after it (its packet
  count goes up by one each time) and, with no refresh period, synced every
  time;
- entries are appended to the current message (``wire.sync.Builder``); a
  message that cannot take the next entry is queued; ``pop_ready`` hands out
  the queued messages and the current one once it is ``flush_time`` (2 s,
  IPVS_SYNC_FLUSH_TIME) old; a queue longer than ``sync_qlen_max`` drops the
  message (counted), as sb_queue_tail() does.

Backup side (``apply``, ``BackupSync``), what ip_vs_proc_sync_conn() and
ip_vs_proc_conn() do with an entry:

- flags are masked to IP_VS_CONN_F_BACKUP_MASK and marked SYNC; a connection
  of an unknown protocol or with a state out of range is skipped (templates
  are not checked), so is one with persistence engine data (no engine here);
- an existing connection whose real server changed is expired and replaced
  (unless the entry is INACTIVE: then it is the expiry of the replaced one and
  is ignored); otherwise its INACTIVE flag is updated (moving it between the
  dest's active and inactive counts) and its state set;
- a new one is bound to the real server found by (service of <protocol, vaddr,
  vport> or fwmark; daddr, dport; port 0 for fwmark non-NAT services) and takes
  the forwarding method from it; an entry without such a server is still kept
  "unbound": here bound to a stand-alone real server outside the table, with
  the forwarding method the master sent, so a data plane still forwards it (the
  kernel's unbound connection uses cp->daddr); a later entry binds it to the
  real server once one exists (ip_vs_try_bind_dest);
- its packet count becomes ``sync_threshold``, its timer restarts with the
  timeout sent (or, from a version 0 message, the protocol's timeout for the
  state; 3 minutes for a template).  Templates are keyed like the engine's own,
  so after a failover new connections of the client stick to the same server.

Flag mapping: our compact ``F_*`` bits (core.conn) to the kernel's
``IP_VS_CONN_F_*`` on the wire; a template's ASSURED flag travels as its state
(IP_VS_CTPL_S_ASSURED = 1).  FULLNAT connections also carry their local address
and port (``wire.sync.OPT_PYLVS_LOCAL``, taken from the reply key) and a backup
indexes them under the same reply key.

Deliberate differences: no sequence adjustment data (no FTP helper), no
persistence engines; a connection's first refresh-period check has no previous
sync time (the kernel uses the creation time, which lets the same syncs
through); timeouts are capped at ``timeouts.MAX_TIMEOUT``; a forwarding method
the engine does not know skips the entry.  Pure: no I/O, ``now`` is an argument.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from pylvs.core import proto_sctp, proto_tcp
from pylvs.core.conn import (
    F_ASSURED,
    F_FWD_MASK,
    F_INACTIVE,
    F_NO_CPORT,
    F_NOOUTPUT,
    F_ONE_PACKET,
    F_SYNC,
    F_TEMPLATE,
    INVALID_PORT,
    TEMPLATE_PREFIX,
    Conn,
    bind_dest,
    conn_key,
    template_key,
    unbind_dest,
)
from pylvs.core.engine import Engine
from pylvs.core.model import (
    Address,
    Dest,
    DestSpec,
    Fwd,
    Proto,
    Service,
    ServiceKey,
    ServiceSpec,
    af_of,
)
from pylvs.core.table import Table
from pylvs.core.timeouts import MAX_TIMEOUT
from pylvs.wire import sync as wire
from pylvs.wire.sync import Builder, SyncConn

# our flag bit -> the kernel's
_FLAG_MAP = (
    (F_INACTIVE, wire.CONN_F_INACTIVE),
    (F_TEMPLATE, wire.CONN_F_TEMPLATE),
    (F_NOOUTPUT, wire.CONN_F_NOOUTPUT),
    (F_ONE_PACKET, wire.CONN_F_ONE_PACKET),
    (F_NO_CPORT, wire.CONN_F_NO_CPORT),
    (F_SYNC, wire.CONN_F_SYNC),
)
CTPL_S_ASSURED = 1  # IP_VS_CTPL_S_ASSURED: a template's state
NUM_STATES: dict[int, int] = {6: 11, 17: 1, 132: 14}  # pp->num_states of TCP, UDP, SCTP
_FWD_VALUES = frozenset(int(f) for f in Fwd)
TEMPLATE_DEFAULT_TIMEOUT = 3 * 60
UNBOUND = "sync_unbound"  # key in Dest.extra of a stand-alone real server

_TCP_SYNC_STATES = sum(
    1 << s
    for s in (
        proto_tcp.TcpState.ESTABLISHED,
        proto_tcp.TcpState.FIN_WAIT,
        proto_tcp.TcpState.CLOSE,
        proto_tcp.TcpState.CLOSE_WAIT,
        proto_tcp.TcpState.TIME_WAIT,
    )
)
_SCTP_SYNC_STATES = sum(
    1 << s
    for s in (
        proto_sctp.SctpState.ESTABLISHED,
        proto_sctp.SctpState.SHUTDOWN_SENT,
        proto_sctp.SctpState.SHUTDOWN_RECEIVED,
        proto_sctp.SctpState.SHUTDOWN_ACK_SENT,
        proto_sctp.SctpState.CLOSED,
    )
)
_TCP_EST = int(proto_tcp.TcpState.ESTABLISHED)
_SCTP_EST = int(proto_sctp.SctpState.ESTABLISHED)
_TCP = int(Proto.TCP)
_SCTP = int(Proto.SCTP)


@dataclass(slots=True)
class SyncSysctl:
    """The /proc/sys/net/ipv4/vs/sync_* switches (kernel defaults)."""

    sync_threshold: int = 3
    sync_period: int = 50
    sync_refresh_period: float = 0.0  # seconds
    sync_retries: int = 0  # 0..3
    sync_persist_mode: int = 0
    sync_qlen_max: int = 4096  # messages (the kernel: free memory pages / 32)


def kernel_flags(flags: int) -> int:
    """Our ``F_*`` connection flags as IP_VS_CONN_F_* bits."""
    k = flags & F_FWD_MASK
    for ours, theirs in _FLAG_MAP:
        if flags & ours:
            k |= theirs
    return k


def local_flags(kflags: int) -> int:
    """IP_VS_CONN_F_* bits as our ``F_*`` flags (bits we do not keep are dropped)."""
    f = kflags & F_FWD_MASK
    for ours, theirs in _FLAG_MAP:
        if kflags & theirs:
            f |= ours
    return f


def _split(cp: Conn) -> tuple[int, bytes, int, bytes, int]:
    """(protocol, caddr, cport, vaddr, vport) packed, for connections and templates
    (also invalidated templates, whose key carries an 8-byte sequence suffix)."""
    k = cp.key
    if k[:1] == TEMPLATE_PREFIX:
        k = k[1:]
        if len(k) in (21, 45):
            k = k[:-8]
    n = 4 if len(k) == 13 else 16
    return (
        k[0],
        k[1 : 1 + n],
        int.from_bytes(k[1 + 2 * n : 3 + 2 * n], "big"),
        k[1 + n : 1 + 2 * n],
        int.from_bytes(k[3 + 2 * n : 5 + 2 * n], "big"),
    )


def entry_of(cp: Conn) -> SyncConn:
    """The sync entry of a connection or template (ip_vs_sync_conn's copy of members)."""
    proto, caddr, cport, vaddr, vport = _split(cp)
    flags = cp.flags
    dest = cp.dest
    n = len(caddr)
    daddr = dest.addr.packed if dest is not None else bytes(n)
    dport = cp.dport
    fwmark = cp.fwmark
    local: tuple[bytes, int] | None = None
    if flags & F_TEMPLATE:
        state = CTPL_S_ASSURED if flags & F_ASSURED else 0
        if vport == INVALID_PORT:
            dport = INVALID_PORT  # ip_vs_check_template() marks both ports
        if proto == 0 and not fwmark:
            fwmark = int.from_bytes(vaddr[:4], "big")  # fwmark template: the mark is vaddr
    else:
        state = cp.state
        ok = cp.okey
        if (flags & F_FWD_MASK) == Fwd.FULLNAT and ok is not None and len(ok) == 5 + 2 * n:
            # reply key <proto, rip, lip, dport, lport>: the local address and port
            local = (ok[1 + n : 1 + 2 * n], int.from_bytes(ok[3 + 2 * n : 5 + 2 * n], "big"))
    return SyncConn(
        proto,
        kernel_flags(flags),
        state,
        caddr,
        cport,
        vaddr,
        vport,
        daddr,
        dport,
        fwmark,
        int(cp.timeout),
        local=local,
    )


class _Mark:
    """What the kernel keeps in ip_vs_conn for sync: old_state and sync_endtime."""

    __slots__ = ("endtime", "old_state", "retries")

    def __init__(self) -> None:
        self.old_state = 0
        self.endtime: float | None = None
        self.retries = 0


def _in_persistence(cp: Conn) -> bool:
    ct = cp.control
    while ct is not None:
        if ct.flags & F_TEMPLATE:
            return True
        ct = ct.control
    return False


class MasterSync:
    """The master's sync state: per-connection marks, the message being filled, the queue."""

    def __init__(
        self,
        syncid: int,
        maxlen: int,
        sysctl: SyncSysctl | None = None,
        *,
        flush_time: float = 2.0,
    ) -> None:
        self.syncid = syncid
        self.maxlen = maxlen
        self.sysctl = sysctl if sysctl is not None else SyncSysctl()
        self.flush_time = flush_time
        self.marks: dict[Conn, _Mark] = {}
        self.cur: Builder | None = None
        self.queue: deque[bytes] = deque()
        self.counters: dict[str, int] = {"conns": 0, "messages": 0, "queue_full": 0}

    # -- the engine hook ------------------------------------------------------------
    def conn_in(self, cp: Conn, now: float) -> None:
        """``Engine.sync``: a client packet of ``cp`` was handled (ip_vs_in's tail)."""
        s = self.sysctl
        period = s.sync_period
        # Fast refusal of the common case (not the packet count that syncs, no state
        # change to report) without looking at the connection's mark.
        if (
            period > 0
            and cp.in_pkts % period != s.sync_threshold
            and cp.control is None
            and not s.sync_refresh_period
            and not cp.flags & F_ONE_PACKET
        ):
            proto = cp.key[0]
            st = cp.state
            if proto == _TCP:
                if st == _TCP_EST or not (1 << st) & _TCP_SYNC_STATES:
                    return
            elif proto == _SCTP:
                if st == _SCTP_EST or not (1 << st) & _SCTP_SYNC_STATES:
                    return
            else:
                return
        if cp.flags & F_ONE_PACKET:
            self.sync_conn(cp, s.sync_threshold, now)
            return
        self.sync_conn(cp, cp.in_pkts, now)

    def sync_conn(self, cp: Conn, pkts: int, now: float) -> None:
        """ip_vs_sync_conn(): the connection if needed, then its controller."""
        if not cp.flags & F_ONE_PACKET and self.needed(cp, pkts, now):
            self.add(cp, now)
        ct = cp.control
        while ct is not None:
            if ct.flags & F_TEMPLATE:
                ct.in_pkts += 1
                pkts = ct.in_pkts
            else:
                pkts = self.sysctl.sync_threshold
            if self.needed(ct, pkts, now):
                self.add(ct, now)
            ct = ct.control

    def needed(self, cp: Conn, pkts: int, now: float) -> bool:
        """ip_vs_sync_conn_needed(); updates the connection's mark when it says yes."""
        s = self.sysctl
        flags = cp.flags
        st = cp.state
        mark = self.marks.get(cp)
        force = False
        if flags & F_TEMPLATE:
            pass
        elif s.sync_persist_mode and _in_persistence(cp):
            return False
        else:
            proto = cp.key[0]
            if proto in (_TCP, _SCTP):
                est, allowed = (
                    (_TCP_EST, _TCP_SYNC_STATES)
                    if proto == _TCP
                    else (_SCTP_EST, _SCTP_SYNC_STATES)
                )
                if not (1 << st) & allowed:
                    return False
                force = st != (mark.old_state if mark is not None else 0)
                if force and st != est:
                    return self._set(cp, mark, now + cp.timeout, 0)
        timeout = cp.timeout
        n = now + timeout
        retries = 0
        refresh = s.sync_refresh_period
        if refresh > 0 and mark is not None and mark.endtime is not None:
            orig = mark.endtime
            min_diff = max(timeout / 2, 10.0)
            if abs(n - orig) < min(refresh, min_diff):
                if mark.retries >= s.sync_retries:
                    return False
                if now < orig - timeout + refresh / 8:
                    return False
                retries = mark.retries + 1
        period = s.sync_period
        if period > 0:
            if not flags & F_TEMPLATE and pkts % period != s.sync_threshold:
                return False
        elif not refresh and pkts != s.sync_threshold:
            return False
        return self._set(cp, mark, n, retries)

    def _set(self, cp: Conn, mark: _Mark | None, endtime: float, retries: int) -> bool:
        if mark is None:
            mark = self.marks[cp] = _Mark()
        mark.old_state = cp.state
        mark.endtime = endtime
        mark.retries = retries
        return True

    # -- messages -------------------------------------------------------------------
    def add(self, cp: Conn, now: float) -> None:
        """Append ``cp``'s entry to the current message, queueing a full one first."""
        try:
            entry = wire.encode_conn(entry_of(cp))
        except ValueError:
            # A real server of the other address family (the kernel does not sync
            # heterogeneous pools either): never let it disturb the packet path.
            self.counters["unencodable"] = self.counters.get("unencodable", 0) + 1
            return
        self.counters["conns"] += 1
        cur = self.cur
        if cur is not None and not cur.fits(len(entry)):
            self._queue(cur.finish())
            cur = None
        if cur is None:
            cur = self.cur = Builder(self.syncid, self.maxlen, len(entry), now)
        cur.add(entry)

    def _queue(self, msg: bytes) -> None:
        if len(self.queue) >= self.sysctl.sync_qlen_max:
            self.counters["queue_full"] += 1
            return
        self.queue.append(msg)

    def pop_ready(self, now: float) -> list[bytes]:
        """Messages to send now: the queued ones, and the current one once old enough."""
        out = list(self.queue)
        self.queue.clear()
        cur = self.cur
        if cur is not None and now - cur.firstuse >= self.flush_time:
            out.append(cur.finish())
            self.cur = None
        self.counters["messages"] += len(out)
        return out

    def sweep(self) -> int:
        """Forget the marks of connections that are gone; returns how many."""
        dead = [c for c in self.marks if c.bucket is None]
        for c in dead:
            del self.marks[c]
        return len(dead)


# -- backup -------------------------------------------------------------------------------


def _addr(packed: bytes) -> Address:
    return IPv4Address(packed) if len(packed) == 4 else IPv6Address(packed)


def find_dest(table: Table, e: SyncConn, flags: int) -> Dest | None:
    """ip_vs_find_dest(): the real server of an entry, if its service has it."""
    svc = table.find(e.protocol, _addr(e.vaddr), e.vport, e.fwmark)
    if svc is None:
        return None
    daddr = _addr(e.daddr)
    port = e.dport
    if e.fwmark and (flags & F_FWD_MASK) != Fwd.MASQ:
        port = 0
    d = svc.find_dest(daddr, port)
    if d is None:
        d = svc.find_dest(daddr, port ^ e.dport)
    return d


def _standalone(e: SyncConn, fwd: Fwd) -> Dest:
    """A real server outside the table for an unbound connection."""
    vaddr = _addr(e.vaddr)
    if e.protocol in NUM_STATES:
        key = ServiceKey.inet(e.protocol, vaddr, e.vport)
    else:
        key = ServiceKey.mark(e.fwmark or 1, af_of(vaddr))
    svc = Service(ServiceSpec(key, sched_name=""))
    dest = Dest(DestSpec(_addr(e.daddr), e.dport, fwd), svc)
    dest.extra[UNBOUND] = True
    return dest


def is_unbound(cp: Conn) -> bool:
    """A synced connection whose real server is not (yet) in the table."""
    d = cp.dest
    return d is None or bool(d.extra.get(UNBOUND))


def _conn_flags_of(dest: Dest) -> int:
    fwd = dest.fwd_method
    return int(fwd) | (0 if fwd in (Fwd.MASQ, Fwd.FULLNAT) else F_NOOUTPUT)


def _reply_keys(engine: Engine, cp: Conn, e: SyncConn) -> None:
    """Index a NAT (or FULLNAT with its local address) connection under its reply header."""
    if cp.okey is not None or cp.flags & F_TEMPLATE:
        return
    fwd = cp.flags & F_FWD_MASK
    dest = cp.dest
    if dest is None or len(dest.addr.packed) != len(e.caddr):
        return
    if fwd == Fwd.MASQ and engine.reply_index:
        key = conn_key(e.protocol, dest.addr.packed, e.caddr, e.dport, e.cport)
    elif fwd == Fwd.FULLNAT and e.local is not None and len(e.local[0]) == len(e.caddr):
        laddr, lport = e.local
        key = conn_key(e.protocol, dest.addr.packed, laddr, e.dport, lport)
    else:
        return
    if key not in engine.conns.out:
        engine.conns.attach_out_key(cp, key)


def try_bind_dest(engine: Engine, cp: Conn, e: SyncConn) -> bool:
    """ip_vs_try_bind_dest(): move an unbound connection to its real server once it exists."""
    dest = find_dest(engine.table, e, cp.flags)
    if dest is None:
        return False
    unbind_dest(cp)
    flags = cp.flags & ~(F_FWD_MASK | F_NOOUTPUT)
    cp.flags = flags | _conn_flags_of(dest)
    bind_dest(cp, dest)
    ok = cp.okey
    if ok is not None and engine.conns.out.get(ok) is cp:
        del engine.conns.out[ok]
    cp.okey = None
    _reply_keys(engine, cp, e)
    return True


def apply(engine: Engine, e: SyncConn, now: float, *, threshold: int = 3) -> Conn | str:
    """ip_vs_proc_sync_conn() + ip_vs_proc_conn(): the connection made or updated,
    or why the entry is skipped."""
    kflags = (e.flags & wire.CONN_F_BACKUP_MASK) | wire.CONN_F_SYNC
    template = bool(kflags & wire.CONN_F_TEMPLATE)
    proto, state = e.protocol, e.state
    if not template:
        n = NUM_STATES.get(proto)
        if n is None:
            return f"unsupported protocol {proto}"
        if state >= n:
            return f"invalid state {state}"
    if e.pe_data:
        # No persistence engine here: the kernel without the engine's module skips it too.
        return "persistence engine data"
    fwd_bits = kflags & F_FWD_MASK
    if fwd_bits not in _FWD_VALUES:
        return f"unknown forwarding method {fwd_bits}"
    if len({len(e.caddr), len(e.vaddr), len(e.daddr)}) != 1:
        return "mixed address families"
    flags = local_flags(kflags)
    conns = engine.conns
    if template:
        key = template_key(proto, e.caddr, e.vaddr, e.vport)
    else:
        key = conn_key(proto, e.caddr, e.vaddr, e.cport, e.vport)
    cp = conns.tab.get(key)
    if cp is not None and not template:
        d = cp.dest
        if cp.dport != e.dport or d is None or d.addr.packed != e.daddr:
            if flags & F_INACTIVE:
                return "expiry of a replaced connection"
            conns.expire_now(cp, now)
            cp = None
    if cp is not None:
        dest = cp.dest
        if (cp.flags ^ flags) & F_INACTIVE and not template and dest is not None:
            if flags & F_INACTIVE:
                dest.activeconns -= 1
                dest.inactconns += 1
            else:
                dest.activeconns += 1
                dest.inactconns -= 1
        cp.flags = (flags & F_INACTIVE) | (cp.flags & ~F_INACTIVE)
        if is_unbound(cp):
            try_bind_dest(engine, cp, e)
    else:
        dest = find_dest(engine.table, e, flags)
        if dest is None:
            dest = _standalone(e, Fwd(fwd_bits))
        cp = conns.new(key, dest, e.dport, flags, now, fwmark=e.fwmark)
        _reply_keys(engine, cp, e)
    cp.in_pkts = threshold
    if template:
        if state & CTPL_S_ASSURED:
            cp.flags |= F_ASSURED
        else:
            cp.flags &= ~F_ASSURED
    else:
        cp.state = state
    if e.timeout:
        timeout = min(e.timeout, MAX_TIMEOUT)
    elif template:
        timeout = TEMPLATE_DEFAULT_TIMEOUT
    else:
        t = conns.timeouts
        timeout = t.tcp[state] if proto == _TCP else t.sctp[state] if proto == _SCTP else t.udp
    conns.set_timeout(cp, timeout, now)
    return cp


class BackupSync:
    """The backup's receive path: datagrams in, connections made, counters."""

    def __init__(self, engine: Engine, syncid: int = 0, sysctl: SyncSysctl | None = None) -> None:
        self.engine = engine
        self.syncid = syncid
        self.sysctl = sysctl if sysctl is not None else SyncSysctl()
        self.counters: dict[str, int] = {"messages": 0, "conns": 0}

    def _count(self, what: str) -> None:
        self.counters[what] = self.counters.get(what, 0) + 1

    def receive(self, data: bytes, now: float) -> int:
        """ip_vs_process_message(); returns the number of connections applied."""
        m = wire.decode(data)
        if isinstance(m, str):
            self._count(f"drop: {_category(m)}")
            return 0
        if self.syncid and m.syncid != self.syncid:
            self._count("drop: syncid")
            return 0
        self.counters["messages"] += 1
        applied = 0
        for e in m.conns:
            r = apply(self.engine, e, now, threshold=self.sysctl.sync_threshold)
            if isinstance(r, str):
                self._count(f"skip: {_category(r)}")
            else:
                applied += 1
        for reason in m.dropped:
            self._count(f"skip: {_category(reason)}")
        if m.error is not None:
            self._count(f"drop: {_category(m.error)}")
        self.counters["conns"] += applied
        return applied


def _category(reason: str) -> str:
    """A reason without its trailing number, as a counter name."""
    return reason.rstrip("0123456789 ")
