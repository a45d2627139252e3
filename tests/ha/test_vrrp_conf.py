"""vrrp_instance / vrrp_script / vrrp_sync_group from keepalived.conf (keepalived 2.2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pylvs.config import keepalived
from pylvs.config.model import ConfigError, Where
from pylvs.ha import vrrp_conf as vc
from pylvs.wire import vrrp as wire

CORPUS = Path(__file__).parents[1] / "config" / "corpus"


def load(tmp_path: Path, text: str) -> vc.VrrpConf:
    path = tmp_path / "keepalived.conf"
    path.write_text(text)
    return vc.from_keepalived(keepalived.load(str(path), config_id="lvs1"))


def errors(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as e:
        load(tmp_path, text)
    return [f"{p.where.line}: {p.message}" for p in e.value.problems]


def warnings(conf: vc.VrrpConf) -> list[str]:
    return [f"{w.where.line}: {w.message}" for w in conf.warnings]


MINIMAL = """vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
    virtual_ipaddress {
        10.0.0.100
    }
}
"""


def test_keepalived_defaults(tmp_path: Path) -> None:
    conf = load(tmp_path, MINIMAL)
    (i,) = conf.instances
    assert (i.name, i.interface, i.vrid, i.where) == ("VI_1", "eth0", 51, Where(i.where.file, 1))
    assert (i.priority, i.state, i.version, i.family, i.advert_int) == (100, "BACKUP", 2, 4, 1.0)
    assert (i.nopreempt, i.preempt_delay, i.auth_type) == (False, 0.0, wire.AUTH_NONE)
    assert (i.garp_master_delay, i.garp_master_repeat, i.garp_master_refresh) == (5.0, 5, 0.0)
    assert (i.down_timer_adverts, i.mcast_group, i.unicast_peers) == (3, "224.0.0.18", ())
    assert i.vips == (vc.VirtualAddress(Where(i.where.file, 5), "10.0.0.100", 32),)
    assert conf.warnings == () and conf.scripts == {} and conf.sync_groups == ()


def test_every_keyword_of_the_issue(tmp_path: Path) -> None:
    conf = load(
        tmp_path,
        """global_defs {
    vrrp_garp_master_delay 3
}
vrrp_script chk {
    script "/usr/bin/test -f '/tmp/a b'"
    interval 2
    timeout 1
    weight -20 reverse
    rise 3
    fall 2
}
vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 7
    priority 150
    advert_int 2
    nopreempt
    preempt_delay 10
    authentication {
        auth_type PASS
        auth_pass 1234567890
    }
    virtual_ipaddress {
        10.0.0.100/24 dev eth0 label eth0:1
        10.0.0.101/24 brd + scope global
    }
    virtual_ipaddress_excluded {
        10.0.0.200/32
    }
    unicast_src_ip 10.0.0.1
    unicast_peer {
        10.0.0.2
        10.0.0.3 min_ttl 250 max_ttl 255
    }
    track_interface {
        eth1
        eth2 weight -30
    }
    track_script {
        chk
    }
    garp_master_delay 1
    garp_master_repeat 2
    version 2
    notify_master "/bin/m master"
    notify_backup /bin/b
    notify_fault /bin/f
    notify /bin/n
}
""",
    )
    (i,) = conf.instances
    sc = conf.scripts["chk"]
    assert sc.argv == ("/usr/bin/test", "-f", "/tmp/a b")
    assert (sc.interval, sc.timeout, sc.weight, sc.reverse, sc.rise, sc.fall) == (
        2.0, 1.0, -20, True, 3, 2,
    )  # fmt: skip
    assert (i.state, i.priority, i.advert_int, i.version) == ("MASTER", 150, 2.0, 2)
    assert (i.nopreempt, i.preempt_delay) == (False, 0.0)  # cleared: initial state MASTER
    assert (i.auth_type, i.auth_data) == (wire.AUTH_PASS, b"12345678")
    assert [f"{a.address}/{a.prefixlen}" for a in i.vips] == ["10.0.0.100/24", "10.0.0.101/24"]
    assert i.vips[0].ip_args("x") == ["10.0.0.100/24", "dev", "eth0", "label", "eth0:1"]
    assert i.vips[1].ip_args("eth0") == [
        "10.0.0.101/24", "dev", "eth0", "broadcast", "+", "scope", "global",
    ]  # fmt: skip
    assert [a.address for a in i.evips] == ["10.0.0.200"]
    assert i.src_ip == "10.0.0.1" and i.unicast and i.check_unicast_src
    assert i.unicast_peers == (vc.UnicastPeer("10.0.0.2"), vc.UnicastPeer("10.0.0.3", 250, 255))
    assert i.track_interfaces == (vc.Tracked("eth1"), vc.Tracked("eth2", -30))
    assert i.track_scripts == (vc.Tracked("chk", -20, True),)  # the script's weight
    assert (i.garp_master_delay, i.garp_master_repeat) == (1.0, 2)
    n = i.notify
    assert (n.master, n.backup, n.fault, n.generic) == (
        ("/bin/m", "master"), ("/bin/b",), ("/bin/f",), ("/bin/n",),
    )  # fmt: skip
    assert warnings(conf) == [
        "12: (VI_1) nopreempt will not work with initial state MASTER - clearing nopreempt",
        "12: (VI_1) preempt delay will not work with initial state MASTER - clearing preempt_delay",
        "22: Truncating auth_pass to 8 characters",
    ]


@pytest.mark.parametrize(
    ("body", "check"),
    [
        ("state MASTER", lambda i: (i.priority, i.state) == (255, "MASTER")),
        ("priority 255", lambda i: (i.priority, i.state) == (255, "MASTER")),
        ("state MASTER\n priority 101", lambda i: (i.priority, i.state) == (101, "MASTER")),
        ("version 3\n advert_int 0.333", lambda i: (i.version, i.advert_int) == (3, 0.33)),
        ("advert_int 1.5", lambda i: i.advert_int == 2.0),
        ("nopreempt\n preempt_delay 5", lambda i: (i.nopreempt, i.preempt_delay) == (True, 0)),
        ("preempt_delay 5", lambda i: i.preempt_delay == 5.0),
        ("garp_master_repeat 0", lambda i: i.garp_master_repeat == 1),
        ("mcast_dst_ip 224.0.0.99", lambda i: i.mcast_group == "224.0.0.99"),
        ("dont_track_primary", lambda i: i.dont_track_primary),
        ("down_timer_adverts 5", lambda i: i.down_timer_adverts == 5),
        ("higher_prio_send_advert", lambda i: i.higher_prio_send_advert),
    ],
)
def test_derived_values(tmp_path: Path, body: str, check: object) -> None:
    text = MINIMAL.replace("interface eth0", f"interface eth0\n {body}")
    (i,) = load(tmp_path, text).instances
    assert callable(check) and check(i)


def test_ipv6_instance_is_v3(tmp_path: Path) -> None:
    text = MINIMAL.replace("10.0.0.100", "fe80::100\n 2001:db8::100/64")
    (i,) = load(tmp_path, text).instances
    assert (i.family, i.version, i.mcast_group) == (6, 3, "ff02::12")
    assert i.vips[1].ip_args("eth0") == ["2001:db8::100/64", "dev", "eth0", "nodad"]
    conf = load(tmp_path, text.replace("interface eth0", "interface eth0\n version 2"))
    assert conf.instances[0].version == 3
    assert "VRRP version 2 cannot be used with IPv6" in warnings(conf)[0]


def test_v3_drops_authentication(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "interface eth0",
        "interface eth0\n version 3\n authentication {\n auth_type PASS\n auth_pass x\n }",
    )
    conf = load(tmp_path, text)
    assert conf.instances[0].auth_type == wire.AUTH_NONE
    assert warnings(conf) == ["1: (VI_1) VRRP version 3 does not support authentication. Ignoring."]


def test_global_defs(tmp_path: Path) -> None:
    text = (
        "global_defs {\n vrrp_version 3\n vrrp_garp_master_repeat 2\n"
        " vrrp_mcast_group4 224.0.0.50\n vrrp_garp_master_delay 0\n}\n" + MINIMAL
    )
    (i,) = load(tmp_path, text).instances
    assert (i.version, i.garp_master_repeat, i.mcast_group, i.garp_master_delay) == (
        3, 2, "224.0.0.50", 0.0,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("text", "want"),
    [
        (MINIMAL.replace("virtual_router_id 51", "virtual_router_id 0"),
         ["3: number '0' outside range [1, 255]", "1: (VI_1) virtual_router_id must be set"]),
        (MINIMAL.replace("virtual_router_id 51", "virtual_router_id 256"),
         ["3: number '256' outside range [1, 255]", "1: (VI_1) virtual_router_id must be set"]),
        (MINIMAL.replace("    virtual_router_id 51\n", ""),
         ["1: (VI_1) virtual_router_id must be set"]),
        (MINIMAL.replace("    interface eth0\n", ""), ["1: (VI_1) interface must be set"]),
        (MINIMAL.replace("10.0.0.100", "10.0.0.300"), ["5: VRRP parsed invalid IP 10.0.0.300"]),
        (MINIMAL.replace("10.0.0.100", "10.0.0.1/33"), ["5: number '33' outside range [0, 32]"]),
        (MINIMAL.replace("10.0.0.100", "10.0.0.100\n fe80::1"),
         ["1: (VI_1) addresses of both IPv4 and IPv6: one family per instance"]),
        (MINIMAL.replace("interface eth0", "interface eth0\n priority 256"),
         ["3: number '256' outside range [1, 255]"]),
        (MINIMAL.replace("interface eth0", "interface eth0\n track_script {\n nope\n }"),
         ["4: track script nope not found"]),
        (MINIMAL.replace("interface eth0",
                         "interface eth0\n authentication {\n auth_type AH\n }"),
         ["4: auth_type AH (IPsec AH) is not supported by pylvs"]),
        (MINIMAL.replace("interface eth0", "interface lo"),
         ["2: interface 'lo' cannot be used for VRRP", "1: (VI_1) interface must be set"]),
        (MINIMAL + MINIMAL.replace("VI_1", "VI_2"),
         ["8: VRID 51 is used by both VI_1 and VI_2 on eth0"]),
        (MINIMAL + MINIMAL, ["8: vrrp instance VI_1 already defined"]),
        (MINIMAL.replace("10.0.0.100", "").replace("eth0", "eth0\n version 3"),
         ["1: (VI_1) No VIP specified; at least one is required"]),
        ("vrrp_script s {\n interval 1\n}\n", ["1: No script set for vrrp_script s"]),
        (MINIMAL.replace("interface eth0", "interface eth0\n unicast_peer {\n 10.0.0.2 x 1\n }"),
         ["4: unknown unicast_peer option x"]),
    ],
)  # fmt: skip
def test_errors_at_file_and_line(tmp_path: Path, text: str, want: list[str]) -> None:
    assert sorted(errors(tmp_path, text)) == sorted(want)


def test_unsupported_and_unknown_keywords_are_warnings(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "interface eth0",
        "interface eth0\n use_vmac\n virtual_routes {\n 1.2.3.0/24 dev eth0\n }\n frobnicate 1",
    )
    assert warnings(load(tmp_path, text)) == [
        "3: 'use_vmac' is not supported by pylvs (ignored)",
        "4: 'virtual_routes' is not supported by pylvs (ignored)",
        "7: unknown keyword 'frobnicate' in vrrp_instance VI_1 (ignored)",
    ]


def test_script_corrections(tmp_path: Path) -> None:
    conf = load(
        tmp_path,
        "vrrp_script s {\n script /bin/true\n interval 0\n init_fail\n}\n"
        + MINIMAL.replace("interface eth0", "interface eth0\n track_script {\n s weight 10\n }"),
    )
    sc = conf.scripts["s"]
    assert (sc.interval, sc.run_timeout, sc.init_fail) == (1.0, 1.0, True)
    assert conf.instances[0].track_scripts == (vc.Tracked("s", 10),)
    assert warnings(conf) == ["3: vrrp script interval must be greater than 0, setting to 1"]


def test_sync_group(tmp_path: Path) -> None:
    text = (
        "vrrp_script s {\n script /bin/true\n weight 5\n}\n"
        "vrrp_sync_group G {\n group {\n VI_1\n VI_2\n ghost\n }\n"
        " track_interface {\n eth9 weight 3\n }\n notify /bin/g\n}\n"
        + MINIMAL
        + MINIMAL.replace("VI_1", "VI_2")
        .replace("eth0", "eth1")
        .replace("interface eth1", "interface eth1\n track_script {\n s\n }")
    )
    conf = load(tmp_path, text)
    (g,) = conf.sync_groups
    assert (g.name, g.members, g.notify.generic) == ("G", ("VI_1", "VI_2"), ("/bin/g",))
    vi1, vi2 = conf.instances
    assert vi1.sync_group == vi2.sync_group == "G"
    assert vi1.track_interfaces == (vc.Tracked("eth9", 3),)  # the group's, weight kept
    assert vi2.track_scripts == ()  # a weighted script in a sync group is ignored
    assert warnings(conf) == [
        "1: vrrp_script s is not used by any vrrp_instance",
        "5: vrrp_instance ghost of sync group G doesn't exist",
        "23: (VI_2) ignoring weighted tracked script s (SYNC group)",
    ]


def test_corpus_files(tmp_path: Path) -> None:
    full = vc.from_keepalived(keepalived.load(str(CORPUS / "vrrp_full.conf"), config_id="lvs1"))
    web, gw = full.instances
    assert (web.src_ip, web.unicast_peers, web.skip_check_adv_addr) == (
        "198.51.100.2", (vc.UnicastPeer("198.51.100.3"),), True,
    )  # fmt: skip
    assert web.vips[0].label == "eth0:vip" and web.evips[0].family == 6
    assert (gw.interface, gw.vrid, gw.priority) == ("eth1", 52, 150)
    seed = vc.from_keepalived(
        keepalived.load(str(CORPUS / "seed_004_lvs_ha.conf"), config_id="lvs1")
    )
    (vi,) = seed.instances
    assert (vi.src_ip, vi.dont_track_primary, vi.garp_master_delay) == ("10.210.214.163", True, 10)
    assert [a.broadcast for a in vi.vips] == ["10.210.214.255", "192.168.1.255"]
