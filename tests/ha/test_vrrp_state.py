"""The pure VRRP state machine, timeline by timeline.

Every expected time is worked out by hand from RFC 3768 / RFC 5798 section 6:
Skew_Time = (256 - Priority) / 256 s for v2 and (256 - Priority) x Master_Adver_Interval
/ 256 for v3; Master_Down_Interval = 3 x Master_Adver_Interval + Skew_Time.  For a v2
backup of priority 100: skew 156/256 = 0.609375 s, master down 3.609375 s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import pytest

from pylvs.config.model import Where
from pylvs.ha import vrrp as sm
from pylvs.ha.vrrp_conf import (
    InstanceConf,
    Notify,
    ScriptConf,
    SyncGroupConf,
    Tracked,
    UnicastPeer,
    VirtualAddress,
    VrrpConf,
)
from pylvs.wire import vrrp as wire

W = Where("test.conf", 1)
VIP = VirtualAddress(W, "10.0.0.100", 24)
ME = "10.0.0.2"
NOTIFY = Notify(generic=("/bin/n",))


def inst(name: str = "VI", **kw: object) -> InstanceConf:
    fields: dict[str, object] = {"interface": "eth0", "vrid": 51, "vips": (VIP,), **kw}
    return InstanceConf(W, name, **fields)  # type: ignore[arg-type]


def system(
    *insts: InstanceConf,
    scripts: dict[str, ScriptConf] | None = None,
    groups: tuple[SyncGroupConf, ...] = (),
    src: str = ME,
) -> sm.VrrpSystem:
    conf = VrrpConf(instances=insts, scripts=scripts or {}, sync_groups=groups)
    return sm.VrrpSystem(conf, {i.name: src for i in insts})


def adv(
    prio: int,
    src: str = "10.0.0.9",
    *,
    version: int = 2,
    adv_int: float = 1.0,
    vrid: int = 51,
    addrs: tuple[str, ...] = ("10.0.0.100",),
    ttl: int | None = 255,
    dst: str | None = wire.MCAST_GROUP4,
    pw: str = "",
    iface: str = "eth0",
) -> sm.AdvertIn:
    auth = (wire.AUTH_PASS, wire.pass_data(pw)) if pw else (wire.AUTH_NONE, b"")
    a = wire.Advert(version, vrid, prio, addrs, adv_int, auth[0], auth[1] if version == 2 else b"")
    return sm.AdvertIn(iface, src, dst, ttl, a)


def brief(actions: Sequence[sm.Action]) -> list[str]:
    out = []
    for a in actions:
        if isinstance(a, sm.SendAdvert):
            out.append(f"advert {a.advert.priority}")
        elif isinstance(a, sm.AddAddresses | sm.RemoveAddresses):
            verb = "add" if isinstance(a, sm.AddAddresses) else "remove"
            out.append(f"{verb} " + ",".join(f"{x.address}/{x.prefixlen}" for x in a.addresses))
        elif isinstance(a, sm.SendGarp):
            out.append(f"garp x{a.repeat}")
        elif isinstance(a, sm.RunNotify):
            out.append("notify " + " ".join(a.argv))
        elif isinstance(a, sm.StateChange):
            out.append(f"{a.old}->{a.new}")
        else:
            out.append(f"timer {a.at:g}" if a.at is not None else "timer -")
    return out


Row = tuple[float, object, list[str]]


def play(s: sm.VrrpSystem, rows: Sequence[Row], links: dict[str, bool] | None = None) -> None:
    """Feed each row's event at its time and compare the actions it produced."""
    for t, ev, want in rows:
        if ev == "start":
            got = s.start(t, links if links is not None else {"eth0": True, "eth1": True})
        elif ev == "timer":
            got = s.handle(sm.Timer(), t)
        else:
            assert isinstance(ev, sm.AdvertIn | sm.LinkChange | sm.ScriptResult | sm.Shutdown)
            got = s.handle(ev, t)
        assert brief(got) == want, f"at t={t}: {ev}"


BECOME = ["advert 100", "add 10.0.0.100/24", "garp x5", "BACKUP->MASTER"]
LEAVE = ["remove 10.0.0.100/24", "MASTER->BACKUP"]


def test_skew_and_master_down_interval() -> None:
    assert sm.skew_time(2, 100, 1.0) == 0.609375
    assert sm.master_down_interval(2, 100, 1.0) == 3.609375
    assert sm.skew_time(2, 254, 1.0) == 2 / 256
    assert sm.skew_time(2, 100, 5.0) == 0.609375  # v2: independent of the interval
    assert sm.skew_time(3, 100, 1.0) == 0.609375
    assert sm.skew_time(3, 200, 0.5) == 0.109375  # 56 x 0.5 / 256
    assert sm.master_down_interval(3, 200, 0.5) == 1.609375
    assert sm.master_down_interval(3, 200, 0.5, adverts=5) == 2.609375


def test_v2_backup_master_backup_and_priority_zero() -> None:
    play(
        system(inst()),
        [
            (0, "start", ["remove 10.0.0.100/24", "INIT->BACKUP", "timer 3.60938"]),
            (1, adv(150), ["timer 4.60938"]),  # higher priority: timer reset
            (2, adv(150), ["timer 5.60938"]),
            (5.609375, "timer", [*BECOME, "timer 6.60938"]),  # silent master: take over
            (6.609375, "timer", ["advert 100", "timer 7.60938"]),
            (7, adv(50), ["advert 100", "timer 8"]),  # lower priority: answered at once
            (7.5, adv(150), [*LEAVE, "timer 11.1094"]),  # higher: back to BACKUP
            (8, adv(0), ["timer 8.60938"]),  # priority 0: only the skew time
            (8.609375, "timer", [*BECOME, "timer 9.60938"]),
            (10, adv(100, "10.0.0.1"), ["advert 100", "timer 11"]),  # equal, lower address
            (10.5, adv(100, "10.0.0.3"), [*LEAVE, "timer 14.1094"]),  # equal, higher address
            (11, adv(100, "10.0.0.1"), ["timer 14.6094"]),  # a backup accepts equal priority
        ],
    )


def test_garp_master_delay_sends_a_second_round() -> None:
    s = system(inst(garp_master_delay=2.0, garp_master_repeat=3, advert_int=5.0))
    play(
        s,
        [
            (0, "start", ["remove 10.0.0.100/24", "INIT->BACKUP", "timer 15.6094"]),
            (15.609375, "timer", ["advert 100", "add 10.0.0.100/24", "garp x3",
                                  "BACKUP->MASTER", "timer 17.6094"]),
            (17.609375, "timer", ["garp x3", "timer 20.6094"]),
            (20.609375, "timer", ["advert 100", "timer 25.6094"]),
        ],
    )  # fmt: skip


def test_v3_backup_takes_the_master_interval() -> None:
    s = system(inst(version=3, priority=200, advert_int=1.0))
    play(
        s,
        [
            (0, "start", ["remove 10.0.0.100/24", "INIT->BACKUP", "timer 3.21875"]),
            # the master advertises every 0.5 s: skew 56 x 0.5 / 256, down 1.5 + 0.109375
            (1, adv(250, version=3, adv_int=0.5), ["timer 2.60938"]),
            (2.609375, "timer", ["advert 200", "add 10.0.0.100/24", "garp x5",
                                 "BACKUP->MASTER", "timer 3.60938"]),  # our own interval again
        ],
    )  # fmt: skip
    assert s.status(3)["instances"]["VI"]["master_adver_int"] == 1.0  # type: ignore[index]


def test_preempt_nopreempt_and_preempt_delay() -> None:
    # priority 150: skew 106/256 = 0.4140625, master down 3.4140625
    lower = adv(100)
    play(
        system(inst(priority=150)),
        [
            (0, "start", ["remove 10.0.0.100/24", "INIT->BACKUP", "timer 3.41406"]),
            (1, lower, ["timer 3.41406"]),  # lower priority ignored: we preempt
            (2, lower, ["timer 3.41406"]),
            (3.4140625, "timer", ["advert 150", "add 10.0.0.100/24", "garp x5",
                                  "BACKUP->MASTER", "timer 4.41406"]),
        ],
    )  # fmt: skip
    play(
        system(inst(priority=150, nopreempt=True)),
        [
            (0, "start", ["remove 10.0.0.100/24", "INIT->BACKUP", "timer 3.41406"]),
            *[(float(t), lower, [f"timer {t + 3.4140625:g}"]) for t in range(1, 10)],
        ],
    )
    play(
        system(inst(priority=150, preempt_delay=5.0)),
        [
            (0, "start", ["remove 10.0.0.100/24", "INIT->BACKUP", "timer 3.41406"]),
            # accepted until the delay (started by the first lower advert) has passed
            *[(float(t), lower, [f"timer {t + 3.4140625:g}"]) for t in range(1, 6)],
            (6, lower, ["timer 8.41406"]),
            (7, lower, ["timer 8.41406"]),
            (8.4140625, "timer", ["advert 150", "add 10.0.0.100/24", "garp x5",
                                  "BACKUP->MASTER", "timer 9.41406"]),
        ],
    )  # fmt: skip


def test_address_owner() -> None:
    s = system(inst(priority=255, notify=NOTIFY))
    play(
        s,
        [
            (0, "start", ["advert 255", "add 10.0.0.100/24", "garp x5", "INIT->MASTER",
                          "notify /bin/n INSTANCE VI MASTER 255", "timer 1"]),
            (0.5, adv(254), ["advert 255", "timer 1.5"]),
            # another owner from a higher address: ours gives way (priority 254)
            (0.7, adv(255), ["remove 10.0.0.100/24", "MASTER->BACKUP",
                             "notify /bin/n INSTANCE VI BACKUP 254", "timer 3.70781"]),
        ],
    )  # fmt: skip


def test_weights_never_change_the_owner() -> None:
    s = system(inst(priority=255, track_interfaces=(Tracked("eth1", -50),)))
    s.start(0, {"eth0": True, "eth1": False})
    assert s.instances["VI"].priority == 255


def test_shutdown_master_sends_priority_zero() -> None:
    s = system(inst(notify=Notify(stop=("/bin/stop",), generic=("/bin/n",))))
    s.start(0, {"eth0": True})
    s.handle(sm.Timer(), 3.609375)
    play(
        s,
        [
            (4, sm.Shutdown(), ["advert 0", "remove 10.0.0.100/24", "MASTER->STOP",
                                "notify /bin/stop", "notify /bin/n INSTANCE VI STOP 100",
                                "timer -"]),
        ],
    )  # fmt: skip
    b = system(inst())
    b.start(0, {"eth0": True})
    assert brief(b.handle(sm.Shutdown(), 1)) == ["BACKUP->STOP", "timer -"]


def test_primary_interface_fault() -> None:
    s = system(inst(notify=NOTIFY))
    s.start(0, {"eth0": True})
    s.handle(sm.Timer(), 3.609375)
    play(
        s,
        [
            (4, sm.LinkChange("eth0", False), ["advert 0", "remove 10.0.0.100/24",
                                               "MASTER->FAULT",
                                               "notify /bin/n INSTANCE VI FAULT 100", "timer -"]),
            (5, adv(150), ["timer -"]),  # ignored in FAULT
            (6, sm.LinkChange("eth0", True), ["FAULT->BACKUP",
                                              "notify /bin/n INSTANCE VI BACKUP 100",
                                              "timer 9.60938"]),
        ],
    )  # fmt: skip
    assert s.instances["VI"].stats["advert_rcvd"] == 0
    quiet = system(inst(dont_track_primary=True))
    assert brief(quiet.start(0, {})) == ["remove 10.0.0.100/24", "INIT->BACKUP", "timer 3.60938"]


def test_track_interface_weights_move_the_backup_deadline() -> None:
    # 100 - 30 = 70: skew 186/256 = 0.7265625, 0.1171875 later than at 100
    s = system(inst(track_interfaces=(Tracked("eth1", -30),)))
    play(
        s,
        [
            (0, "start", ["remove 10.0.0.100/24", "INIT->BACKUP", "timer 3.60938"]),
            (1, sm.LinkChange("eth1", False), ["timer 3.72656"]),
            (2, sm.LinkChange("eth1", True), ["timer 3.60938"]),
        ],
    )
    up = system(inst(track_interfaces=(Tracked("eth1", 20), Tracked("eth2", 10, reverse=True))))
    up.start(0, {"eth0": True, "eth1": True, "eth2": True})
    assert up.instances["VI"].priority == 110  # +20, and the reversed +10 subtracts when up
    up.handle(sm.LinkChange("eth2", False), 1)
    assert up.instances["VI"].priority == 120
    rev = system(inst(track_interfaces=(Tracked("eth1", 0, reverse=True),)))
    rev.start(0, {"eth0": True, "eth1": True})
    assert rev.instances["VI"].state == sm.State.FAULT  # weight 0 reversed: FAULT while up


def test_priority_is_clamped() -> None:
    s = system(inst(priority=10, track_interfaces=(Tracked("eth1", -100),)))
    s.start(0, {"eth0": True, "eth1": False})
    assert s.instances["VI"].priority == 1
    s = system(inst(priority=250, track_interfaces=(Tracked("eth1", 100),)))
    s.start(0, {"eth0": True, "eth1": True})
    assert s.instances["VI"].priority == 254


@pytest.mark.parametrize(
    ("rise", "fall", "init_fail", "results", "states"),
    [
        (1, 1, False, "10", [True, False]),
        (2, 3, False, "1000", [True, True, True, False]),  # fall 3: three failures
        (2, 3, False, "0110", [False, False, True, True]),  # rise 2 after a failure
        (2, 3, False, "0", [False]),  # before the first result one failure decides
        (3, 1, False, "1", [True]),  # ... and one success
        (1, 1, True, "1", [True]),  # init_fail: down until a success
        (2, 2, True, "11", [False, True]),
    ],
)
def test_script_rise_and_fall(
    rise: int, fall: int, init_fail: bool, results: str, states: list[bool]
) -> None:
    t = sm.ScriptTracker.new(rise, fall, init_fail)
    got = []
    for r in results:
        t.feed(r == "1")
        got.append(t.ok)
    assert got == states


def test_tracked_script_weight_zero_and_weighted() -> None:
    chk = ScriptConf(W, "chk", ("/bin/true",))
    s = system(inst(track_scripts=(Tracked("chk"),), notify=NOTIFY), scripts={"chk": chk})
    play(
        s,
        [
            (0, "start", ["remove 10.0.0.100/24", "timer -"]),  # INIT until the first result
            (0.5, sm.ScriptResult("chk", True), ["INIT->BACKUP",
                                                 "notify /bin/n INSTANCE VI BACKUP 100",
                                                 "timer 4.10938"]),
            (1, sm.ScriptResult("chk", False), ["BACKUP->FAULT",
                                                "notify /bin/n INSTANCE VI FAULT 100",
                                                "timer -"]),
            (2, sm.ScriptResult("chk", False), ["timer -"]),
            (3, sm.ScriptResult("chk", True), ["FAULT->BACKUP",
                                               "notify /bin/n INSTANCE VI BACKUP 100",
                                               "timer 6.60938"]),
        ],
    )  # fmt: skip
    w = system(inst(track_scripts=(Tracked("chk", 20),)), scripts={"chk": chk})
    w.start(0, {"eth0": True})
    assert w.instances["VI"].state == sm.State.BACKUP  # weighted scripts do not hold INIT
    w.handle(sm.ScriptResult("chk", True), 1)
    assert w.instances["VI"].priority == 120
    w.handle(sm.ScriptResult("chk", False), 2)
    assert w.instances["VI"].priority == 100
    assert w.status(2)["scripts"] == {"chk": "down"}


def test_notify_master_backup_fault_scripts() -> None:
    n = Notify(master=("/m", "a b"), backup=("/b",), fault=("/f",), generic=("/n", "x"))
    s = system(inst(priority=120, notify=n))
    assert brief(s.start(0, {"eth0": True}))[1:] == [
        "INIT->BACKUP",
        "notify /b",
        "notify /n x INSTANCE VI BACKUP 120",
        "timer 3.53125",
    ]
    got = brief(s.handle(sm.Timer(), 3.53125))
    assert got[2:6] == [
        "garp x5",
        "BACKUP->MASTER",
        "notify /m a b",
        "notify /n x INSTANCE VI MASTER 120",
    ]


def _group() -> sm.VrrpSystem:
    vip2 = VirtualAddress(W, "10.1.0.100", 24)
    g = SyncGroupConf(W, "G", ("VI_1", "VI_2"), Notify(generic=("/g",)))
    return system(
        inst("VI_1", sync_group="G"),
        inst("VI_2", interface="eth1", vrid=52, vips=(vip2,), sync_group="G"),
        groups=(g,),
    )


def test_sync_group_moves_together() -> None:
    s = _group()
    m1 = ["advert 100", "add 10.0.0.100/24", "garp x5", "BACKUP->MASTER"]
    m2 = ["advert 100", "add 10.1.0.100/24", "garp x5", "BACKUP->MASTER"]
    play(
        s,
        [
            (0, "start", ["remove 10.0.0.100/24", "remove 10.1.0.100/24", "INIT->BACKUP",
                          "INIT->BACKUP", "notify /g GROUP G BACKUP 0", "timer 3.60938"]),
            # VI_1 times out first but waits for VI_2; then both become MASTER together
            (3.609375, "timer", [*m2, *m1, "notify /g GROUP G MASTER 0", "timer 4.60938"]),
            # VI_2's interface goes down: the whole group goes to FAULT
            (4, sm.LinkChange("eth1", False), ["advert 0", "remove 10.0.0.100/24",
                                               "MASTER->FAULT", "advert 0",
                                               "remove 10.1.0.100/24", "MASTER->FAULT",
                                               "notify /g GROUP G FAULT 0", "timer -"]),
            (5, sm.LinkChange("eth1", True), ["FAULT->BACKUP", "FAULT->BACKUP",
                                              "notify /g GROUP G BACKUP 0", "timer 8.60938"]),
            (8.609375, "timer", [*m2, *m1, "notify /g GROUP G MASTER 0", "timer 9.60938"]),
            # a higher priority on VI_1 only: both go back to BACKUP
            (9, adv(200), ["remove 10.0.0.100/24", "MASTER->BACKUP", "remove 10.1.0.100/24",
                           "MASTER->BACKUP", "notify /g GROUP G BACKUP 0", "timer 12.6094"]),
        ],
    )  # fmt: skip


def test_sync_group_waits_while_one_member_hears_its_master() -> None:
    s = _group()
    s.start(0, {"eth0": True, "eth1": True})
    for t in (1.0, 2.0, 3.0, 4.0, 5.0):
        s.handle(adv(150, vrid=52, addrs=("10.1.0.100",), iface="eth1"), t)
        s.handle(sm.Timer(), t + 0.5)
    assert {i.state for i in s.instances.values()} == {sm.State.BACKUP}
    assert s.groups["G"].state == sm.State.BACKUP


CHECKED = inst(auth_type=wire.AUTH_PASS, auth_data=wire.pass_data("secret"))


@pytest.mark.parametrize(
    ("ev", "reason"),
    [
        (adv(150, pw="secret", ttl=64), "ttl"),
        (adv(150, pw="Secret"), "auth"),
        (adv(150), "auth"),
        (adv(150, pw="secret", adv_int=2.0), "advert_int"),
        (adv(150, version=3), "version"),
        (adv(150, pw="secret", addrs=("10.0.0.101",)), "address_list"),
        (adv(150, pw="secret", addrs=("10.0.0.100", "10.0.0.101")), "address_list"),
        (adv(150, pw="secret", dst="10.0.0.2"), "address_list"),  # unicast to a multicast one
        (adv(150, pw="secret", vrid=99), "vrid"),
        (adv(150, pw="secret", iface="eth1"), "vrid"),
    ],
)
def test_bad_adverts_are_dropped_and_counted(ev: sm.AdvertIn, reason: str) -> None:
    s = system(CHECKED)
    s.start(0, {"eth0": True})
    assert brief(s.handle(ev, 1)) == ["timer 3.60938"]  # the timer was not reset
    assert s.dropped == {reason: 1}
    if reason != "vrid":
        assert s.instances["VI"].stats[reason] == 1
    assert brief(s.handle(adv(150, pw="secret"), 2)) == ["timer 5.60938"]  # good ones pass


def test_unicast_checks() -> None:
    peers = (UnicastPeer("10.0.0.9", min_ttl=250, max_ttl=255),)
    s = system(inst(unicast_peers=peers, check_unicast_src=True))
    acts = s.start(0, {"eth0": True})
    s.handle(sm.Timer(), 3.609375)
    sent = [a for a in s.handle(sm.Timer(), 4.609375) if isinstance(a, sm.SendAdvert)]
    assert sent[0].dst == ("10.0.0.9",) and sent[0].ttl == 255
    assert brief(acts)[-1] == "timer 3.60938"
    for ev, reason in (
        (adv(150, "10.0.0.8", dst=ME), "unicast_src"),
        (adv(150, dst=ME, ttl=200), "ttl"),
        (adv(150, dst=wire.MCAST_GROUP4), "address_list"),
    ):
        s.handle(ev, 5)
        assert s.dropped[reason] == 1
    # within the peer's TTL range (unicast: 255 is not required): a higher priority wins
    assert brief(s.handle(adv(150, dst=ME, ttl=254), 5))[:2] == LEAVE
    assert s.instances["VI"].state == sm.State.BACKUP


def test_skip_check_adv_addr_trusts_the_known_master() -> None:
    s = system(inst(skip_check_adv_addr=True))
    s.start(0, {"eth0": True})
    s.handle(adv(150), 1)
    s.handle(adv(150, addrs=("10.9.9.9",)), 2)
    assert s.dropped == {}
    s.handle(adv(150, "10.0.0.8", addrs=("10.9.9.9",)), 3)
    assert s.dropped == {"address_list": 1}


def _master(*insts: InstanceConf, **kw: object) -> sm.VrrpSystem:
    """A system whose instances all became MASTER (priority 100: at 3.609375 s)."""
    s = system(*insts, **kw)  # type: ignore[arg-type]
    s.start(0, {"eth0": True, "eth1": True})
    s.handle(sm.Timer(), 3.609375)
    assert {i.state for i in s.instances.values()} == {sm.State.MASTER}
    return s


def test_reload_keeps_a_master() -> None:
    """keepalived's reload: a MASTER stays MASTER (addresses kept, an advert at once),
    addresses no longer configured go, counters carry on."""
    vip2 = VirtualAddress(W, "10.0.0.101", 24)
    old = _master(inst(vips=(VIP, vip2)))
    old.handle(adv(150, ttl=3), 4)
    new = system(inst())
    got = new.start(5, {"eth0": True}, previous=old)
    assert brief(got) == ["remove 10.0.0.101/24", "INIT->MASTER", "add 10.0.0.100/24", "timer 5"]
    assert brief(new.handle(sm.Timer(), 5)) == ["advert 100", "timer 6"]
    assert new.instances["VI"].stats["become_master"] == 1
    assert new.dropped == {"ttl": 1}
    down = system(inst())  # ... unless it cannot be: its interface is down
    got = down.start(5, {"eth0": False}, previous=_master(inst()))
    assert brief(got) == ["remove 10.0.0.100/24", "INIT->FAULT", "timer -"]


def test_reload_releases_removed_masters() -> None:
    vip7, vip8 = VirtualAddress(W, "10.0.0.7", 24), VirtualAddress(W, "10.0.0.8", 24)
    old = _master(inst("VI_1"), inst("VI_2", vrid=52, vips=(vip7,)))
    new = system(inst("VI_1"), inst("VI_2", vrid=53, vips=(vip8,)))  # another VRID: new
    assert brief(new.start(6, {"eth0": True}, previous=old)) == [
        "advert 0",
        "remove 10.0.0.7/24",
        "INIT->MASTER",
        "add 10.0.0.100/24",
        "remove 10.0.0.8/24",  # the new VI_2's residual-address cleanup
        "INIT->BACKUP",
        "timer 6",
    ]


def test_reload_keeps_script_states() -> None:
    chk = ScriptConf(W, "chk", ("/bin/true",), rise=2)
    conf = inst(track_scripts=(Tracked("chk"),))
    old = system(conf, scripts={"chk": chk})
    old.start(0, {"eth0": True})
    old.handle(sm.ScriptResult("chk", True), 1)
    old.handle(sm.Timer(), 4.609375)
    assert old.instances["VI"].state == sm.State.MASTER
    new = system(conf, scripts={"chk": chk})
    got = new.start(5, {"eth0": True}, previous=old)
    assert brief(got) == ["INIT->MASTER", "add 10.0.0.100/24", "timer 5"]
    assert (new.scripts["chk"].ok, new.scripts["chk"].result) == (True, 2)


class Lan:
    """Systems on one simulated segment: adverts reach every other live system at once."""

    def __init__(self, **systems: sm.VrrpSystem) -> None:
        self.systems = systems
        self.alive = dict.fromkeys(systems, True)
        self.connected = True
        self.now = 0.0

    def start(self) -> None:
        for s in self.systems.values():
            self.deliver(s, s.start(0.0, {"eth0": True}))

    def deliver(self, sender: sm.VrrpSystem, actions: list[sm.Action]) -> None:
        for a in actions:
            if not isinstance(a, sm.SendAdvert):
                continue
            for name, s in self.systems.items():
                if s is not sender and self.alive[name] and self.connected:
                    ev = sm.AdvertIn("eth0", a.src, a.dst[0], 255, a.advert)
                    self.deliver(s, s.handle(ev, self.now))

    def run_until(self, end: float) -> None:
        while True:
            due = [
                (t, n)
                for n, s in self.systems.items()
                if self.alive[n] and (t := s.next_deadline()) is not None and t <= end
            ]
            if not due:
                self.now = end
                return
            self.now, name = min(due)
            s = self.systems[name]
            self.deliver(s, s.handle(sm.Timer(), self.now))

    def state(self, name: str) -> sm.State:
        return self.systems[name].instances["VI"].state


def test_election_equal_priorities_higher_address_wins() -> None:
    lan = Lan(a=system(inst(), src="10.0.0.1"), b=system(inst(), src="10.0.0.2"))
    lan.start()
    lan.run_until(10)  # a backup accepts equal priority: the first one up stays master
    assert (lan.state("a"), lan.state("b")) == (sm.State.MASTER, sm.State.BACKUP)
    lan.connected = False  # a partition: both become master ...
    lan.run_until(20)
    assert (lan.state("a"), lan.state("b")) == (sm.State.MASTER, sm.State.MASTER)
    lan.connected = True  # ... and when it heals the higher address wins
    lan.run_until(30)
    assert (lan.state("a"), lan.state("b")) == (sm.State.BACKUP, sm.State.MASTER)


def test_failover_takes_exactly_the_master_down_interval() -> None:
    lan = Lan(m=system(inst(priority=200), src="10.0.0.1"), b=system(inst(), src="10.0.0.2"))
    lan.start()
    lan.run_until(10.0)  # m: master at 3.21875, adverts at 4.21875 ... 9.21875
    assert (lan.state("m"), lan.state("b")) == (sm.State.MASTER, sm.State.BACKUP)
    lan.alive["m"] = False
    lan.run_until(12.82)
    assert lan.state("b") == sm.State.BACKUP
    lan.run_until(12.83)  # last advert 9.21875 + 3.609375 = 12.828125
    assert lan.state("b") == sm.State.MASTER
    # m comes back (its own timers still run): it preempts b
    lan.alive["m"] = True
    lan.run_until(20)
    assert (lan.state("m"), lan.state("b")) == (sm.State.MASTER, sm.State.BACKUP)


def test_status_is_json_able() -> None:
    import json

    s = system(replace(CHECKED, notify=NOTIFY))
    s.start(0, {"eth0": True})
    s.handle(adv(150, ttl=1, pw="secret"), 1)
    data = json.loads(json.dumps(s.status(1.5)))
    vi = data["instances"]["VI"]
    assert vi["state"] == "BACKUP" and vi["priority"] == 100 and vi["stats"] == {"ttl": 1}
    assert data["dropped"] == {"ttl": 1} and vi["seconds_in_state"] == 1.5
