"""core.sync: a master engine's connections appear on a backup engine (ip_vs_sync.c rules).

Each test builds two engines with the same rules; the master's ``Engine.sync`` hook feeds a
``MasterSync``, and the messages it hands out are carried to a ``BackupSync`` of the other
engine (the link is a function call; the bytes are the real wire format).  Packets are
driven through ``Engine.packet_in`` / ``packet_out`` as a data plane would.
"""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import ip_address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pylvs.core.conn import (
    F_ASSURED,
    F_FWD_MASK,
    F_INACTIVE,
    F_NO_CPORT,
    F_NOOUTPUT,
    F_ONE_PACKET,
    F_SYNC,
    F_TEMPLATE,
    Conn,
    conn_key,
)
from pylvs.core.engine import Engine
from pylvs.core.model import (
    SVC_F_ONEPACKET,
    SVC_F_PERSISTENT,
    DestSpec,
    Fwd,
    Proto,
    ServiceKey,
    ServiceSpec,
)
from pylvs.core.proto_tcp import TH_ACK, TH_FIN, TH_RST, TH_SYN, TcpState
from pylvs.core.sync import (
    BackupSync,
    MasterSync,
    SyncSysctl,
    apply,
    is_unbound,
    kernel_flags,
    local_flags,
)
from pylvs.wire import sync as w
from pylvs.wire.sync import SyncConn, decode

VIP = ip_address("10.0.0.100")
RS1, RS2 = ip_address("10.0.0.11"), ip_address("10.0.0.12")
CIP = ip_address("10.0.0.2")
TCP80 = ServiceKey.inet(Proto.TCP, VIP, 80)
UDP53 = ServiceKey.inet(Proto.UDP, VIP, 53)

Rules = Callable[[Engine], None]


def dr_rules(e: Engine, fwd: Fwd = Fwd.DROUTE) -> None:
    e.table.add_service(ServiceSpec(TCP80, "rr"))
    for rs in (RS1, RS2):
        e.table.add_dest(TCP80, DestSpec(rs, 80, fwd))


class Pair:
    """A master engine and a backup engine joined by a sync "link"."""

    def __init__(
        self,
        rules: Rules | None = dr_rules,
        backup_rules: Rules | None = None,
        *,
        syncid: int = 7,
        backup_syncid: int = 0,
        maxlen: int = 1472,
        sysctl: SyncSysctl | None = None,
    ) -> None:
        self.m = Engine()
        self.b = Engine()
        if rules is not None:
            rules(self.m)
        backup_rules = rules if backup_rules is None else backup_rules
        if backup_rules is not None:
            backup_rules(self.b)
        self.master = MasterSync(syncid, maxlen, sysctl)
        self.m.sync = self.master.conn_in
        self.backup = BackupSync(self.b, backup_syncid, sysctl)
        self.sent: list[bytes] = []

    def deliver(self, now: float) -> int:
        msgs = self.master.pop_ready(now)
        self.sent += msgs
        return sum(self.backup.receive(m, now) for m in msgs)

    def tcp(self, cport: int, flags: int, now: float, caddr: object = CIP) -> Conn:
        r = self.m.packet_in(Proto.TCP, caddr, cport, VIP, 80, now, flags=flags)  # type: ignore[arg-type]
        assert isinstance(r, Conn), r
        return r

    def handshake(self, cport: int, now: float) -> Conn:
        """SYN, ACK, ACK with data: the third client packet syncs an ESTABLISHED conn."""
        self.tcp(cport, TH_SYN, now)
        self.tcp(cport, TH_ACK, now)
        return self.tcp(cport, TH_ACK, now)

    def on_backup(self, cp: Conn) -> Conn | None:
        return self.b.conns.get(cp.key)


def dests(e: Engine, key: ServiceKey = TCP80) -> dict[str, tuple[int, int, int]]:
    svc = e.table.get(key)
    assert svc is not None
    return {str(d.addr): (d.activeconns, d.inactconns, d.persistconns) for d in svc.destinations}


def test_established_dr_connection_with_its_timeout() -> None:
    p = Pair()
    cp = p.handshake(40000, 0.0)
    assert cp.state == TcpState.ESTABLISHED and cp.in_pkts == 3
    assert p.deliver(1.0) == 0  # the message waits up to 2 s for company
    assert p.deliver(2.0) == 1
    bc = p.on_backup(cp)
    assert bc is not None and bc is not cp
    assert bc.state == TcpState.ESTABLISHED
    assert bc.flags & F_SYNC and not bc.flags & F_INACTIVE
    assert bc.flags & F_FWD_MASK == Fwd.DROUTE and bc.flags & F_NOOUTPUT
    assert bc.timeout == 900 and bc.expires == pytest.approx(2.0 + 900)
    assert bc.in_pkts == 3  # sync_threshold
    assert bc.endpoints() == cp.endpoints()
    assert bc.dest is not None and bc.dest in p.b.table.get(TCP80).destinations  # type: ignore[union-attr]
    assert dests(p.b) == dests(p.m)  # one active connection on the same real server


def test_sync_points_threshold_period_and_state_changes() -> None:
    p = Pair()
    p.tcp(1, TH_SYN, 0.0)  # SYN_RECV: not a sync state
    p.tcp(1, TH_ACK, 0.0)  # ESTABLISHED at packet 2: waits for packet 3
    assert p.master.counters["conns"] == 0
    cp = p.tcp(1, TH_ACK, 0.0)
    assert p.master.counters["conns"] == 1
    for _ in range(49):  # packets 4..52
        p.tcp(1, TH_ACK, 0.0)
    assert p.master.counters["conns"] == 1
    p.tcp(1, TH_ACK, 0.0)  # packet 53: 53 % 50 == 3
    assert p.master.counters["conns"] == 2
    p.tcp(1, TH_FIN | TH_ACK, 0.0)  # a change to a state other than ESTABLISHED: at once
    assert cp.state != TcpState.ESTABLISHED and p.master.counters["conns"] == 3
    p.tcp(1, TH_ACK, 0.0)  # same state again: no
    assert p.master.counters["conns"] == 3
    assert p.deliver(5.0) == 3
    bc = p.on_backup(cp)
    assert bc is not None and bc.state == cp.state
    assert bc.timeout == p.b.conns.timeouts.tcp[cp.state]
    assert bc.flags & F_INACTIVE and dests(p.b) == dests(p.m)


def test_a_connection_that_never_gets_established_is_not_synced() -> None:
    p = Pair()
    p.tcp(2, TH_SYN, 0.0)
    p.tcp(2, TH_SYN, 0.0)
    p.tcp(2, TH_SYN, 0.0)
    assert p.deliver(10.0) == 0 and not p.sent


def test_reset_makes_the_backup_connection_inactive() -> None:
    p = Pair()
    cp = p.handshake(3, 0.0)
    p.deliver(3.0)
    assert dests(p.b)[str(cp.dest.addr)] == (1, 0, 0)  # type: ignore[union-attr]
    p.tcp(3, TH_RST, 4.0)  # CLOSE, inactive: synced at once
    p.deliver(6.0)
    bc = p.on_backup(cp)
    assert bc is not None and bc.state == TcpState.CLOSE and bc.flags & F_INACTIVE
    assert dests(p.b)[str(cp.dest.addr)] == (0, 1, 0)  # type: ignore[union-attr]
    assert bc.timeout == 10


def test_nat_connections_are_indexed_for_replies_and_continue_after_failover() -> None:
    p = Pair(lambda e: dr_rules(e, Fwd.MASQ))
    cp = p.tcp(4, TH_SYN, 0.0)
    p.m.packet_out(cp, 0.0, flags=TH_SYN | TH_ACK)
    p.tcp(4, TH_ACK, 0.0)
    p.tcp(4, TH_ACK, 0.0)
    p.deliver(2.0)
    bc = p.on_backup(cp)
    assert bc is not None and bc.flags & F_FWD_MASK == Fwd.MASQ and not bc.flags & F_NOOUTPUT
    assert bc.dest is not None
    rkey = conn_key(6, bc.dest.addr.packed, CIP.packed, 80, 4)
    assert p.b.conns.out_get(rkey) is bc
    # The backup takes over: the client's next packet finds the connection, no SYN needed.
    r = p.b.packet_in(Proto.TCP, CIP, 4, VIP, 80, 3.0, flags=TH_ACK)
    assert r is bc
    assert bc.dest.addr == cp.dest.addr  # type: ignore[union-attr]


def test_udp() -> None:
    def rules(e: Engine) -> None:
        e.table.add_service(ServiceSpec(UDP53, "rr"))
        e.table.add_dest(UDP53, DestSpec(RS1, 53, Fwd.DROUTE))

    p = Pair(rules)
    for _ in range(3):
        cp = p.m.packet_in(Proto.UDP, CIP, 5353, VIP, 53, 0.0)
    assert isinstance(cp, Conn)
    p.deliver(2.0)
    bc = p.on_backup(cp)
    assert bc is not None and bc.timeout == 300 and bc.flags & F_INACTIVE
    assert dests(p.b, UDP53) == {str(RS1): (0, 1, 0)}


def persistent_rules(e: Engine) -> None:
    e.table.add_service(ServiceSpec(TCP80, "rr", SVC_F_PERSISTENT, 360))
    for rs in (RS1, RS2):
        e.table.add_dest(TCP80, DestSpec(rs, 80, Fwd.DROUTE))


def test_templates_keep_clients_on_their_server_after_failover() -> None:
    p = Pair(persistent_rules)
    cp = p.handshake(1000, 0.0)
    ct = cp.control
    assert ct is not None and ct.flags & F_TEMPLATE and ct.flags & F_ASSURED
    # The template is synced with every packet of its connection (no refresh period).
    assert p.master.counters["conns"] == 1 + 3
    p.deliver(2.0)
    bt = p.b.conns.get(ct.key)
    assert bt is not None and bt.flags & F_TEMPLATE and bt.flags & F_SYNC
    assert bt.flags & F_ASSURED and bt.timeout == 360
    assert bt.dest is not None and bt.dest.addr == ct.dest.addr  # type: ignore[union-attr]
    assert dests(p.b)[str(bt.dest.addr)] == (1, 0, 1)
    # On the backup, whichever server rr would pick next, the synced client sticks.
    picks = set()
    for i, caddr in enumerate(("10.0.0.9", "10.0.0.8", "10.0.0.7")):
        r = p.b.packet_in(Proto.TCP, ip_address(caddr), 8, VIP, 80, 3.0, flags=TH_SYN)
        assert isinstance(r, Conn) and r.dest is not None
        picks.add(r.dest.addr)
        mine = p.b.packet_in(Proto.TCP, CIP, 2000 + i, VIP, 80, 3.0, flags=TH_SYN)
        assert isinstance(mine, Conn) and mine.dest is bt.dest and mine.control is bt
    assert picks == {RS1, RS2}


def test_persist_mode_syncs_only_templates() -> None:
    p = Pair(persistent_rules, sysctl=SyncSysctl(sync_persist_mode=1))
    cp = p.handshake(1000, 0.0)
    p.deliver(2.0)
    assert p.on_backup(cp) is None
    assert cp.control is not None and p.b.conns.get(cp.control.key) is not None


def test_one_packet_connections_are_not_synced_but_their_template_is() -> None:
    def rules(e: Engine) -> None:
        e.table.add_service(ServiceSpec(UDP53, "rr", SVC_F_PERSISTENT | SVC_F_ONEPACKET, 60))
        e.table.add_dest(UDP53, DestSpec(RS1, 53, Fwd.DROUTE))

    p = Pair(rules)
    cp = p.m.packet_in(Proto.UDP, CIP, 5353, VIP, 53, 0.0)
    assert isinstance(cp, Conn) and cp.flags & F_ONE_PACKET and cp.control is not None
    p.deliver(2.0)
    assert p.on_backup(cp) is None
    bt = p.b.conns.get(cp.control.key)
    assert bt is not None and bt.timeout == 60


def fwmark_rules(e: Engine) -> None:
    key = ServiceKey.mark(5)
    e.table.add_service(ServiceSpec(key, "rr", SVC_F_PERSISTENT, 100))
    e.table.add_dest(key, DestSpec(RS1, 0, Fwd.DROUTE))
    e.table.add_dest(key, DestSpec(RS2, 0, Fwd.DROUTE))


def test_fwmark_templates_bind_on_the_backup() -> None:
    p = Pair(fwmark_rules)
    for f in (TH_SYN, TH_ACK, TH_ACK):
        cp = p.m.packet_in(Proto.TCP, CIP, 9, VIP, 443, 0.0, flags=f, fwmark=5)
    assert isinstance(cp, Conn) and cp.control is not None
    p.deliver(2.0)
    sent = decode(p.sent[0])
    assert not isinstance(sent, str)
    tpl = next(c for c in sent.conns if c.flags & w.CONN_F_TEMPLATE)
    assert tpl.protocol == 0 and tpl.fwmark == 5 and tpl.vaddr == bytes((0, 0, 0, 5))
    bt = p.b.conns.get(cp.control.key)
    bc = p.on_backup(cp)
    assert bt is not None and not is_unbound(bt) and bt.timeout == 100
    assert bc is not None and not is_unbound(bc) and bc.fwmark == 5 and bc.dport == 443
    assert bc.dest is bt.dest


def test_unbound_connections_are_kept_then_bound() -> None:
    p = Pair(backup_rules=lambda e: None)
    cp = p.handshake(5, 0.0)
    p.deliver(2.0)
    bc = p.on_backup(cp)
    assert bc is not None and is_unbound(bc)
    assert bc.endpoints() == cp.endpoints()  # the real server the master chose
    assert bc.flags & F_FWD_MASK == Fwd.DROUTE  # the forwarding method the master sent
    assert not list(p.b.table)
    # The backup learns the rules; the next sync of the connection binds it.
    dr_rules(p.b)
    for _ in range(50):
        p.tcp(5, TH_ACK, 3.0)
    p.deliver(6.0)
    assert p.on_backup(cp) is bc and not is_unbound(bc)
    assert bc.dest is p.b.table.get(TCP80).find_dest(cp.dest.addr, 80)  # type: ignore[union-attr]
    assert dests(p.b)[str(cp.dest.addr)] == (1, 0, 0)  # type: ignore[union-attr]


def entry(cp: Conn, **changes: object) -> SyncConn:
    from dataclasses import replace

    from pylvs.core.sync import entry_of

    return replace(entry_of(cp), **changes)  # type: ignore[arg-type]


def test_a_connection_moved_to_another_server_is_replaced() -> None:
    p = Pair()
    cp = p.handshake(6, 0.0)
    p.deliver(2.0)
    bc = p.on_backup(cp)
    assert bc is not None and bc.dest is not None
    other = RS2 if bc.dest.addr == RS1 else RS1
    # An INACTIVE entry for another server is the expiry of a replaced connection: ignored.
    e = entry(cp, daddr=other.packed, flags=w.CONN_F_DROUTE | w.CONN_F_INACTIVE)
    assert apply(p.b, e, 3.0) == "expiry of a replaced connection"
    assert p.on_backup(cp) is bc
    # An active one replaces it.
    nc = apply(p.b, entry(cp, daddr=other.packed), 3.0)
    assert isinstance(nc, Conn) and nc is not bc and p.on_backup(cp) is nc
    assert nc.dest is not None and nc.dest.addr == other and not bc.alive


def test_syncid_filter() -> None:
    p = Pair(backup_syncid=5)  # the master sends syncid 7
    p.handshake(7, 0.0)
    assert p.deliver(2.0) == 0
    assert p.backup.counters["drop: syncid"] == 1 and not len(p.b.conns)
    q = Pair(backup_syncid=0)  # 0 takes every syncid
    q.handshake(7, 0.0)
    assert q.deliver(2.0) == 1


def test_messages_fill_up_to_maxlen_and_wait_at_most_flush_time() -> None:
    def rules(e: Engine) -> None:
        e.table.add_service(ServiceSpec(UDP53, "rr"))
        e.table.add_dest(UDP53, DestSpec(RS1, 53, Fwd.DROUTE))

    p = Pair(rules, maxlen=200)  # 8 + 5 * 36 = 188: five entries per message
    for port in range(100, 112):
        for _ in range(3):
            p.m.packet_in(Proto.UDP, CIP, port, VIP, 53, 0.0)
    assert p.deliver(0.1) == 10  # the two full messages go at once
    assert all(len(m) == 188 for m in p.sent)
    assert p.deliver(1.9) == 0
    assert p.deliver(2.0) == 2 and len(p.sent[-1]) == 8 + 2 * 36
    assert len(p.b.conns) == 12


def test_queue_limit_drops_messages() -> None:
    def rules(e: Engine) -> None:
        e.table.add_service(ServiceSpec(UDP53, "rr"))
        e.table.add_dest(UDP53, DestSpec(RS1, 53, Fwd.DROUTE))

    p = Pair(rules, maxlen=44, sysctl=SyncSysctl(sync_qlen_max=2))  # one entry per message
    for port in range(10):
        for _ in range(3):
            p.m.packet_in(Proto.UDP, CIP, port, VIP, 53, 0.0)
    assert p.master.counters["queue_full"] == 7  # 9 finished, 2 queued; the 10th being filled
    assert p.deliver(2.0) == 3


def test_no_period_syncs_once_at_the_threshold() -> None:
    p = Pair(sysctl=SyncSysctl(sync_period=0))
    cp = p.handshake(8, 0.0)
    for _ in range(100):
        p.tcp(8, TH_ACK, 0.0)
    assert p.master.counters["conns"] == 1
    p.tcp(8, TH_FIN | TH_ACK, 0.0)  # state changes still go
    assert p.master.counters["conns"] == 2 and cp.state != TcpState.ESTABLISHED


def test_refresh_period_and_retries() -> None:
    # period 0 with a refresh period: every packet may sync, the refresh period decides.
    p = Pair(sysctl=SyncSysctl(sync_period=0, sync_refresh_period=60.0, sync_retries=1))
    cp = p.handshake(9, 0.0)  # packet 3 (first time ESTABLISHED counts as a change of state)
    n = p.master.counters["conns"]
    assert n == 1
    p.tcp(9, TH_ACK, 1.0)  # expiry moved by 1 s < min(60, 450): suppressed
    assert p.master.counters["conns"] == 1
    p.tcp(9, TH_ACK, 7.6)  # a retry is allowed once refresh/8 = 7.5 s went by
    assert p.master.counters["conns"] == 2
    p.tcp(9, TH_ACK, 20.0)  # retries used up (sync_retries=1)
    assert p.master.counters["conns"] == 2
    p.tcp(9, TH_ACK, 68.0)  # moved by >= 60 s since the last sync: again
    assert p.master.counters["conns"] == 3
    assert cp.state == TcpState.ESTABLISHED


def test_ipv6_connections() -> None:
    vip6, rs6, cip6 = (ip_address(a) for a in ("2001:db8::100", "2001:db8::11", "2001:db8::2"))
    key = ServiceKey.inet(Proto.TCP, vip6, 80)

    def rules(e: Engine) -> None:
        e.table.add_service(ServiceSpec(key, "rr"))
        e.table.add_dest(key, DestSpec(rs6, 80, Fwd.MASQ))

    p = Pair(rules)
    for f in (TH_SYN, TH_ACK, TH_ACK):
        cp = p.m.packet_in(Proto.TCP, cip6, 1234, vip6, 80, 0.0, flags=f)
    assert isinstance(cp, Conn)
    p.deliver(2.0)
    assert len(p.sent[0]) == 8 + 72
    bc = p.on_backup(cp)
    assert bc is not None and bc.endpoints() == cp.endpoints() and not is_unbound(bc)
    assert p.b.conns.out_get(conn_key(6, rs6.packed, cip6.packed, 80, 1234)) is bc


def test_fullnat_local_address_travels() -> None:
    lip = ip_address("192.168.10.2")
    p = Pair(lambda e: dr_rules(e, Fwd.FULLNAT))
    cp = p.tcp(10, TH_SYN, 0.0)
    assert cp.dest is not None
    okey = conn_key(6, cp.dest.addr.packed, lip.packed, 80, 33333)
    p.m.conns.attach_out_key(cp, okey)  # what the packet plane does when it binds a local port
    p.tcp(10, TH_ACK, 0.0)
    p.tcp(10, TH_ACK, 0.0)
    p.deliver(2.0)
    bc = p.on_backup(cp)
    assert bc is not None and bc.okey == okey and p.b.conns.out_get(okey) is bc


def test_entries_the_backup_skips() -> None:
    p = Pair()
    base = SyncConn(6, w.CONN_F_DROUTE, 1, CIP.packed, 1, VIP.packed, 80, RS1.packed, 80, 0, 900)
    from dataclasses import replace

    assert apply(p.b, replace(base, protocol=50), 0.0) == "unsupported protocol 50"
    assert apply(p.b, replace(base, state=11), 0.0) == "invalid state 11"
    assert apply(p.b, replace(base, protocol=17, state=1), 0.0) == "invalid state 1"
    assert apply(p.b, replace(base, pe_data=b"x", pe_name=b"sip"), 0.0) == "persistence engine data"
    assert apply(p.b, replace(base, flags=7), 0.0) == "unknown forwarding method 7"
    assert not len(p.b.conns)
    # A template's state is not checked; an unknown flag bit is masked off.
    t = replace(base, protocol=6, flags=w.CONN_F_TEMPLATE | 0x8000, state=9, cport=0)
    r = apply(p.b, t, 0.0)
    assert isinstance(r, Conn) and r.flags & F_TEMPLATE and r.timeout == 900
    # Version 0 entries carry no timeout: the protocol's for the state, 3 min for templates.
    r0 = apply(p.b, replace(base, timeout=0, state=int(TcpState.TIME_WAIT)), 0.0)
    assert isinstance(r0, Conn) and r0.timeout == 120
    rt = apply(p.b, replace(t, timeout=0, cport=0, vport=81), 0.0)
    assert isinstance(rt, Conn) and rt.timeout == 180
    # Counters of a receive with a mix.
    msg = w.encode_message(0, [base, replace(base, protocol=50), replace(base, cport=2)])
    assert p.backup.receive(msg, 1.0) == 2
    assert p.backup.counters["skip: unsupported protocol"] == 1
    assert p.backup.receive(b"garbage", 1.0) == 0
    assert p.backup.counters["drop: bogus message size"] == 1


@pytest.mark.parametrize(
    "flags",
    [0, F_INACTIVE, F_TEMPLATE | F_INACTIVE | 3, F_NOOUTPUT | 2, F_ONE_PACKET, F_NO_CPORT, F_SYNC],
)
def test_flag_mapping(flags: int) -> None:
    assert local_flags(kernel_flags(flags)) == flags


def test_kernel_flag_values() -> None:
    assert kernel_flags(F_INACTIVE | F_NOOUTPUT | int(Fwd.DROUTE)) == 0x0183
    assert kernel_flags(F_TEMPLATE | F_SYNC) == 0x1020
    assert local_flags(0x2000 | 0x0800 | 0x0040) == F_ONE_PACKET | F_NO_CPORT  # HASHED dropped


def test_sweep_forgets_gone_connections() -> None:
    p = Pair()
    cp = p.handshake(11, 0.0)
    p.tcp(11, TH_RST, 0.0)
    assert cp in p.master.marks
    p.m.tick(100.0)
    assert not cp.alive and p.master.sweep() == 1 and cp not in p.master.marks


def test_engine_without_a_master_is_untouched() -> None:
    e = Engine()
    dr_rules(e)
    assert e.sync is None
    r = e.packet_in(Proto.TCP, CIP, 1, VIP, 80, 0.0, flags=TH_SYN)
    assert isinstance(r, Conn)


def test_mixed_family_real_servers_are_not_synced() -> None:
    rs6 = ip_address("2001:db8::11")

    def rules(e: Engine) -> None:
        e.table.add_service(ServiceSpec(TCP80, "rr"))
        e.table.add_dest(TCP80, DestSpec(rs6, 80, Fwd.TUNNEL))

    p = Pair(rules)
    cp = p.handshake(12, 0.0)  # no exception on the packet path
    assert cp.dest is not None and cp.dest.addr == rs6
    assert p.master.counters["unencodable"] == 1 and p.master.counters["conns"] == 0


def test_sync_maxlen_as_the_kernel_sets_it() -> None:
    from pylvs.daemon.sync import effective_maxlen

    assert effective_maxlen("master", 0, 9000, False) == 1472  # a master assumes 1500
    assert effective_maxlen("backup", 0, 9000, False) == 8972  # a backup reads the MTU
    assert effective_maxlen("backup", 0, 1280, True) == 1452  # ... at least 1500
    assert effective_maxlen("backup", 100, 1500, False) == 1024
    assert effective_maxlen("master", 100, 1500, False) == 100
    assert effective_maxlen("master", 65535, 1500, False) == 65507
    assert effective_maxlen("master", 65535, 1500, True) == 65487


_addrs = st.sampled_from([RS1.packed, RS2.packed, ip_address("10.0.0.13").packed])


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([0, 6, 17, 132, 50]),
            st.integers(0, 0xFFFFFFFF),
            st.integers(0, 15),
            st.sampled_from([1, 2]),
            st.sampled_from([80, 81, 0]),
            _addrs,
            st.sampled_from([80, 0, 8080]),
            st.sampled_from([0, 5]),
            st.integers(0, 2000),
            st.floats(0, 5000),
        ),
        max_size=40,
    )
)
def test_any_entry_stream_keeps_the_counts_right(entries: list[tuple[object, ...]]) -> None:
    b = Engine()
    persistent_rules(b)
    fwmark_rules(b)
    backup = BackupSync(b)
    now = 0.0
    for proto, flags, state, cport, vport, daddr, dport, fwmark, timeout, dt in entries:
        now += dt  # type: ignore[operator]
        e = SyncConn(proto, flags, state, CIP.packed, cport, VIP.packed, vport, daddr, dport,  # type: ignore[arg-type]
                     fwmark, timeout)  # fmt: skip
        backup.receive(w.encode_message(0, [e]), now)
        b.tick(now)
        for svc in b.table:
            for d in svc.destinations:
                bound = [c for c in b.conns.tab.values() if c.dest is d]
                tpl = [c for c in bound if c.flags & F_TEMPLATE]
                act = [c for c in bound if not c.flags & (F_TEMPLATE | F_INACTIVE)]
                assert d.persistconns == len(tpl)
                assert d.activeconns == len(act)
                assert d.inactconns == len(bound) - len(tpl) - len(act)
    b.tick(now + 10**7)
    assert not len(b.conns)
    for svc in b.table:
        for d in svc.destinations:
            assert (d.activeconns, d.inactconns, d.persistconns) == (0, 0, 0)
