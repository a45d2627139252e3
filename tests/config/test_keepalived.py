"""keepalived.conf -> KeepalivedConf: the corpus, keepalived 2.2's defaults and inheritance,
warnings for what pylvs ignores, and broken variants failing at the right file:line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pylvs.config.keepalived import load, parse_nodes
from pylvs.config.lexer import lex_file, lex_text, split_quoted_escaped
from pylvs.config.model import (
    CheckerConf,
    ConfigError,
    GroupEntry,
    KeepalivedConf,
    Node,
    RealServerConf,
    UrlConf,
    VirtualServerConf,
    Where,
)

CORPUS = Path(__file__).parent / "corpus"
CORPUS_FILES = sorted(p.name for p in CORPUS.glob("*.conf"))

# The warnings each corpus file is meant to give (substrings, in order); none elsewhere.
INTENDED_WARNINGS = {
    "seed_004_lvs_ha.conf": [
        (84, "SECURITY VIOLATION"),
        (115, "nb_get_retry is deprecated"),
    ],
    "persistence.conf": [(18, "persistence_engine sip: not supported by pylvs")],
    "smtp_hosts.conf": [
        (12, "SMTP_CHECK host blocks are deprecated"),
        (16, "SMTP_CHECK host blocks are deprecated"),
    ],
}


def corpus(name: str, config_id: str = "lvs1") -> KeepalivedConf:
    return load(str(CORPUS / name), config_id=config_id)


def vs_at(conf: KeepalivedConf, addr: str | None, port: int = 0) -> VirtualServerConf:
    return next(v for v in conf.virtual_servers if (v.addr, v.port) == (addr, port))


def rs_at(vs: VirtualServerConf, addr: str) -> RealServerConf:
    return next(r for r in vs.real_servers if r.addr == addr)


def urls_of(c: CheckerConf) -> tuple[UrlConf, ...]:
    urls = c.options["urls"]
    assert isinstance(urls, tuple) and all(isinstance(u, UrlConf) for u in urls)
    return urls


def test_corpus_is_big_enough() -> None:
    assert len(CORPUS_FILES) >= 12
    assert len(list(CORPUS.rglob("*.conf"))) > len(CORPUS_FILES)  # and include files


ISSUE_KEYWORDS = """global_defs virtual_server virtual_server_group real_server lb_algo lvs_sched
        lb_kind lvs_method persistence_timeout persistence_granularity persistence_engine
        protocol ops ha_suspend virtualhost alpha omega quorum hysteresis quorum_up
        quorum_down sorry_server sorry_server_inhibit sorry_server_lvs_method delay_loop
        connect_timeout retry nb_get_retry delay_before_retry warmup inhibit_on_failure
        weight uthreshold lthreshold notify_up notify_down TCP_CHECK HTTP_GET SSL_GET url
        path digest status_code regex regex_no_match http_protocol enable_sni MISC_CHECK
        misc_path misc_timeout misc_dynamic user SMTP_CHECK helo_name host DNS_CHECK type
        name UDP_CHECK payload require_reply PING_CHECK FILE_CHECK track_file connect_ip
        connect_port bindto bind_port fwmark log_all_failures ip_family sh-port sh-fallback
        mh-port mh-fallback flag-1 flag-2 flag-3 SSL vrrp_instance vrrp_sync_group
        vrrp_script static_ipaddress static_routes"""


def test_corpus_covers_every_keyword() -> None:
    """Each keyword the issue lists appears in some corpus file (keepalived 2.2 spelling)."""
    seen: set[str] = set()
    raw: list[str] = []

    def walk(nodes: tuple[Node, ...]) -> None:
        for n in nodes:
            seen.add(n.words[0])
            raw.append(n.raw)
            if n.children is not None:
                walk(n.children)

    for path in CORPUS.glob("*.conf"):
        walk(lex_file(str(path), config_id="lvs1").nodes)
    wanted = set(ISSUE_KEYWORDS.split())
    assert wanted - seen == set()
    text = "\n".join(raw)
    for option in ("type gue port", "type gre", "type ipip", "csum", "nocsum", "remcsum"):
        assert option in text
    for form in ("-63 ", "-198.51.101.1 ", "/30 ", "fwmark 200 inet"):
        assert form in text
    all_text = "\n".join(p.read_text() for p in CORPUS.rglob("*.conf"))
    for construct in ("include ", "$RS", "~SEQ", "~LST", "@lvs1", "@^lvs1", "\n#", "\n!"):
        assert construct in all_text


@pytest.mark.parametrize("name", CORPUS_FILES)
def test_corpus_file_loads(name: str) -> None:
    conf = corpus(name)
    assert conf.files[0] == str(CORPUS / name)
    got = [(w.where.line, w.message) for w in conf.warnings]
    want = INTENDED_WARNINGS.get(name, [])
    assert len(got) == len(want), got
    for (line, msg), (wline, wmsg) in zip(got, want, strict=True):
        assert line == wline and wmsg in msg
    assert all(w.where.file == str(CORPUS / name) for w in conf.warnings)


# -- values, defaults, inheritance ------------------------------------------------------


def test_minimal_defaults() -> None:
    conf = corpus("minimal_tcp.conf")
    (vs,) = conf.virtual_servers
    assert (vs.kind, vs.addr, vs.port, vs.protocol) == ("ip", "192.0.2.10", 80, "TCP")
    assert (vs.lb_algo, vs.lb_kind, vs.persistence_timeout) == ("rr", "NAT", 0)
    assert (vs.quorum, vs.hysteresis, vs.delay_loop, vs.alpha, vs.omega) == (1, 0, 60.0, 0, 0)
    r1, r2 = vs.real_servers
    assert (r1.addr, r1.port, r1.weight, r1.lvs_method) == ("10.0.0.1", 8080, 1, "NAT")
    assert r2.weight == 3
    c1, c2 = r1.checkers[0], r2.checkers[0]
    assert c1 == CheckerConf(
        kind="TCP_CHECK",
        where=Where(str(CORPUS / "minimal_tcp.conf"), 8),
        connect_ip="10.0.0.1",
        connect_port=8080,
        connect_timeout=5.0,
        retry=1,
        delay_before_retry=1.0,
        delay_loop=60.0,
        warmup=60.0,  # keepalived: warmup defaults to delay_loop
    )
    assert c2.connect_timeout == 2.0


def test_inheritance_virtual_real_checker() -> None:
    conf = corpus("inheritance.conf")
    vs = vs_at(conf, "192.0.2.90", 80)
    r1, r2 = vs.real_servers
    # real server 1 takes everything from the virtual server (and its weight)
    assert (r1.weight, r1.inhibit_on_failure, r1.alpha) == (4, True, False)
    tcp, http = r1.checkers
    for c in (tcp, http):
        assert (c.connect_timeout, c.retry, c.delay_before_retry) == (4.0, 5, 2.5)
        assert (c.delay_loop, c.warmup) == (20.0, 1.0)
    # real server 2 overrides, its checkers override again
    assert (r2.weight, r2.uthreshold, r2.lthreshold) == (7, 1000, 800)
    assert (r2.inhibit_on_failure, r2.alpha, r2.lvs_method) == (False, True, "DR")
    tcp2, dns2 = r2.checkers
    assert (tcp2.retry, tcp2.delay_loop, tcp2.warmup, tcp2.alpha) == (0, 1.0, 0.0, True)
    assert (dns2.retry, dns2.delay_before_retry, dns2.connect_timeout) == (2, 0.5, 1.5)
    assert dns2.options == {"type": "SOA", "name": "."}
    # nothing set anywhere: each checker kind's own defaults
    vs2 = vs_at(conf, "192.0.2.91", 80)
    (r3,) = vs2.real_servers
    assert r3.port == 80  # a NAT real server without a port takes the service's
    misc, dns, http3 = r3.checkers
    assert (misc.retry, misc.delay_before_retry, misc.options["misc_timeout"]) == (0, 1.0, 60.0)
    assert (dns.retry, dns.delay_before_retry) == (3, 60.0)  # DNS: 3 and delay_loop
    assert (http3.retry, http3.delay_before_retry) == (1, 3.0)  # HTTP: 3 s


def test_http_and_ssl_checkers() -> None:
    conf = corpus("http_checks.conf")
    assert conf.global_defs["SSL"] == {
        "password": "secret",
        "ca": "/etc/keepalived/ca.pem",
        "certificate": "/etc/keepalived/client.pem",
        "key": "/etc/keepalived/client.key",
    }
    vs = vs_at(conf, "192.0.2.20", 80)
    assert vs.virtualhost == "vs.example.com"
    http = rs_at(vs, "10.0.1.1").checkers[0]
    o = http.options
    assert (o["http_protocol"], o["fast_recovery"], o["virtualhost"]) == (
        "1.1",
        True,
        "checker.example.com",
    )
    u1, u2, u3, u4 = urls_of(http)
    assert (u1.path, u1.status_codes, u1.virtualhost) == (
        "/health",
        ((200, 200), (204, 204), (300, 399)),
        "checker.example.com",
    )
    assert (u2.digest, u2.status_codes, u2.virtualhost) == (
        "9b3a0c85a887a256d6939da88aabd8cd",
        (),  # the default: 200-299
        "url.example.com",
    )
    assert (u3.path, u3.regex, u3.regex_no_match) == ("/search?q=a b", "status: (ok|degraded)", 0)
    assert (u4.regex, u4.regex_no_match, u4.status_codes) == (
        "maintenance mode",
        True,
        ((200, 299), (503, 503)),
    )
    http2 = rs_at(vs, "10.0.1.2").checkers[0]
    assert http2.options["http_protocol"] == "1.0C"
    assert urls_of(http2)[0].virtualhost == "vs.example.com"
    ssl = vs_at(conf, "192.0.2.20", 443).real_servers[0].checkers[0]
    assert (ssl.kind, ssl.options["enable_sni"], ssl.options["virtualhost"]) == (
        "SSL_GET",
        True,
        "secure.example.com",
    )


def test_http_virtualhost_is_inherited() -> None:
    """check_http.c's Host: the url's, else the checker's, else the real server's, else
    the virtual server's, wherever in the block each is written."""
    conf = conf_of(
        """\
virtual_server 10.0.0.1 80 {
    protocol TCP
    lb_algo rr
    lb_kind NAT
    real_server 10.0.1.1 80 {
        HTTP_GET {
            url {
                path /a
            }
            url {
                path /b
                virtualhost url.test
            }
        }
        SSL_GET {
            virtualhost checker.test
            url {
                path /c
            }
        }
        TCP_CHECK {
        }
        virtualhost rs.test
    }
    real_server 10.0.1.2 80 {
        HTTP_GET {
            url {
                path /d
            }
        }
        SSL_GET {
            url {
                path /e
            }
        }
    }
    virtualhost vs.test
}
virtual_server 10.0.0.2 80 {
    protocol TCP
    lb_algo rr
    lb_kind NAT
    real_server 10.0.1.3 80 {
        HTTP_GET {
            url {
                path /f
            }
        }
    }
}
"""
    )
    assert warnings_of(conf) == []
    vs1, vs2 = conf.virtual_servers
    http, ssl, tcp = rs_at(vs1, "10.0.1.1").checkers
    assert http.options["virtualhost"] == "rs.test"  # the real server's over the vs's
    assert [u.virtualhost for u in urls_of(http)] == ["rs.test", "url.test"]
    assert ssl.options["virtualhost"] == "checker.test"  # the checker's own
    assert [u.virtualhost for u in urls_of(ssl)] == ["checker.test"]
    assert "virtualhost" not in tcp.options
    http2, ssl2 = rs_at(vs1, "10.0.1.2").checkers
    assert (http2.options["virtualhost"], ssl2.options["virtualhost"]) == ("vs.test", "vs.test")
    assert [u.virtualhost for u in urls_of(http2) + urls_of(ssl2)] == ["vs.test", "vs.test"]
    (http3,) = vs2.real_servers[0].checkers
    assert http3.options["virtualhost"] is None  # none anywhere: the checker sends addr:port
    assert urls_of(http3)[0].virtualhost is None


def test_misc_scripts_quorum_sorry() -> None:
    conf = corpus("misc_quorum.conf")
    vs = conf.virtual_servers[0]
    assert (vs.alpha, vs.omega, vs.quorum, vs.hysteresis) == (True, True, 3, 1)
    assert vs.quorum_up == "/usr/local/bin/quorum.sh UP 192.0.2.30:25"
    assert vs.quorum_down == "/usr/local/bin/quorum-down.sh"
    s = vs.sorry_server
    assert s is not None and (s.addr, s.port, s.lvs_method, s.inhibit) == (
        "10.0.2.99",
        2525,
        "NAT",
        True,
    )
    r1, r2 = vs.real_servers
    assert r1.alpha and r2.alpha  # alpha of the virtual server
    assert split_quoted_escaped(r1.notify_up or "") == ["/usr/local/bin/notify.sh", "rs one", "up"]
    m = r1.checkers[0]
    assert m.options == {
        "misc_path": "/usr/local/bin/check_smtp.sh 10.0.2.1 25",
        "misc_timeout": 7.0,
        "misc_dynamic": True,
        "user": "root root",
    }
    assert (m.retry, m.delay_before_retry, m.warmup, m.delay_loop) == (2, 2.0, 3.0, 15.0)
    assert (m.alpha, m.log_all_failures) == (False, True)
    m2 = r2.checkers[0]
    assert (m2.alpha, m2.retry, m2.options["misc_dynamic"]) == (True, 0, False)


def test_smtp_dns_udp_ping() -> None:
    conf = corpus("smtp_dns_udp_ping.conf")
    smtp, ping = vs_at(conf, "192.0.2.40", 25).real_servers[0].checkers
    assert smtp.options == {"helo_name": "mail.example.com"}
    assert (smtp.connect_timeout, ping.kind, ping.retry) == (8.0, "PING_CHECK", 2)
    dns_vs = vs_at(conf, "192.0.2.40", 53)
    assert (dns_vs.protocol, dns_vs.ops) == ("UDP", True)
    d1, d2 = rs_at(dns_vs, "10.0.3.2").checkers
    assert d1.options == {"type": "A", "name": "www.example.com"}
    assert d2.options == {"type": "SOA", "name": "."}
    u1, u2 = rs_at(dns_vs, "10.0.3.3").checkers
    assert u1.options == {
        "payload": bytes([0x01, 0x02, 0x03, 0x04, 0xAB]),
        "require_reply": "01xX 3",
        "min_reply_length": 2,
        "max_reply_length": 512,
    }
    assert u2.options == {"require_reply": True, "min_reply_length": 0, "max_reply_length": 255}


def test_smtp_host_blocks_are_checkers() -> None:
    rs = corpus("smtp_hosts.conf").virtual_servers[0].real_servers[0]
    got = [
        (c.connect_ip, c.connect_port, c.bindto, c.connect_timeout, c.retry) for c in rs.checkers
    ]
    assert got == [
        ("10.0.3.10", 25, None, 4.0, 2),  # the checker's own connection (it set a timeout)
        ("10.0.3.11", 2525, None, 4.0, 2),
        ("10.0.3.12", 587, "10.0.3.254", 6.0, 2),
    ]


def test_file_check() -> None:
    vs = corpus("file_check.conf").virtual_servers[0]
    f1 = vs.real_servers[0].checkers[0]
    assert f1.kind == "FILE_CHECK"
    assert f1.options == {
        "track_file": "weight_file",
        "file_path": "/run/keepalived/rs-weight",
        "weight": 5,
        "reverse": True,
        "init_file": ("10", "overwrite"),
    }
    f2, tcp = vs.real_servers[1].checkers
    assert f2.options == {
        "track_file": "plain",
        "file_path": "/run/keepalived/rs-plain",
        "weight": -3,
        "reverse": True,
    }
    assert tcp.kind == "TCP_CHECK"


def test_groups() -> None:
    conf = corpus("group.conf")
    f = str(CORPUS / "group.conf")
    assert conf.groups["WEB"] == (
        GroupEntry(Where(f, 3), "192.0.2.60", 1, 80),
        GroupEntry(Where(f, 4), "192.0.2.61", 3, 80),
        GroupEntry(Where(f, 5), "198.51.100.254", 4, 8080),
        GroupEntry(Where(f, 6), "203.0.113.8", 4, 443),
        GroupEntry(Where(f, 7), fwmark=100),
    )
    assert conf.groups["MARKS"] == (
        GroupEntry(Where(f, 11), fwmark=200, family="inet"),
        GroupEntry(Where(f, 12), fwmark=201),
    )
    web, marks = conf.virtual_servers
    assert (web.kind, web.group, web.protocol, web.lb_kind) == ("group", "WEB", "TCP", "DR")
    assert [r.port for r in web.real_servers] == [0, 0]
    assert (marks.group, marks.ip_family, marks.real_servers[0].port) == ("MARKS", "inet", 8000)


def test_fwmark_tunnels_and_flags() -> None:
    conf = corpus("fwmark_tun_sched.conf")
    fw1, fw2, udp = conf.virtual_servers
    assert (fw1.kind, fw1.fwmark, fw1.lb_algo, fw1.sched_flags) == (
        "fwmark",
        1,
        "sh",
        ("sh-port", "sh-fallback"),
    )
    tun = [(r.lvs_method, r.tun_type, r.tun_port, r.tun_flags) for r in fw1.real_servers]
    assert tun == [
        ("TUN", "gue", 6080, "csum"),
        ("TUN", "gre", 0, "nocsum"),
        ("TUN", "ipip", 0, "nocsum"),
        ("TUN", "gue", 6081, "remcsum"),
    ]
    assert [r.port for r in fw1.real_servers] == [0, 0, 0, 0]
    assert (fw2.ip_family, fw2.sched_flags) == ("inet6", ("mh-port", "mh-fallback"))
    assert (udp.protocol, udp.ops, udp.sched_flags) == ("UDP", True, ("flag-1", "flag-2", "flag-3"))


def test_persistence() -> None:
    conf = corpus("persistence.conf")
    p0, sip, sctp = conf.virtual_servers
    assert (p0.port, p0.persistence_timeout, p0.real_servers[0].port) == (0, 360, 0)
    assert (sip.persistence_timeout, sip.persistence_granularity) == (360, "255.255.255.0")
    assert sip.persistence_engine == "sip"
    assert (sctp.protocol, sctp.persistence_timeout, sctp.lb_algo) == ("SCTP", 7200, "sed")


def test_includes_assemble_blocks_across_files() -> None:
    conf = corpus("include_main.conf")
    rel = [Path(f).relative_to(CORPUS).as_posix() for f in conf.files]
    assert rel == [
        "include_main.conf",
        "include.d/10-global.conf",
        "include.d/20-web.conf",
        "include.d/../inc/pools/pool_web.conf",
        "include.d/../inc/pools/web_extra.conf",
        "inc/defs.conf",
        "inc/groups.conf",
        "inc/pools/pool_a.conf",
    ]
    assert conf.global_defs["router_id"] == "included-router"
    web = vs_at(conf, "192.0.2.110", 80)
    assert [(r.addr, r.weight) for r in web.real_servers] == [("10.0.10.2", 1), ("10.0.10.3", 2)]
    assert Path(web.real_servers[1].where.file).name == "web_extra.conf"
    grp = next(v for v in conf.virtual_servers if v.kind == "group")
    fc = grp.real_servers[0].checkers[0]
    assert fc.options["file_path"] == "/run/keepalived/inc-weight"


def test_parameters_and_config_id() -> None:
    a = corpus("params.conf", config_id="lvs1")
    vs120 = vs_at(a, "192.0.2.120", 80)
    assert vs120.quorum == 2
    assert [(r.addr, r.weight) for r in vs120.real_servers] == [
        ("10.0.11.1", 5),
        ("10.0.11.2", 5),
        ("10.0.11.3", 5),
    ]
    assert vs120.real_servers[0].checkers[0].connect_timeout == 2.0
    vs121 = vs_at(a, "192.0.2.121", 80)
    assert [r.addr for r in vs121.real_servers] == ["10.0.11.7", "10.0.11.9", "10.0.11.20"]
    assert vs121.real_servers[2].checkers[0].connect_port == 8080
    b = corpus("params.conf", config_id="lvs2")
    vs120b = vs_at(b, "192.0.2.120", 80)
    assert vs120b.quorum == 3
    assert {r.weight for r in vs120b.real_servers} == {1}


def test_vrrp_blocks_and_global_defs_are_kept() -> None:
    conf = corpus("vrrp_full.conf")
    assert [n.words for n in conf.vrrp_blocks] == [
        ("vrrp_script", "chk_haproxy"),
        ("vrrp_sync_group", "SG_WEB"),
        ("vrrp_instance", "VI_WEB"),
        ("vrrp_instance", "VI_GW"),
    ]
    g = conf.global_defs
    assert g["notification_email"] == ("ops@example.com",)
    assert g["lvs_timeouts"] == ("tcp", "900", "tcpfin", "120", "udp", "300")
    assert g["enable_script_security"] is True and g["router_id"] == "LVS_MASTER"
    seed = corpus("seed_004_lvs_ha.conf")
    assert [n.words[0] for n in seed.vrrp_blocks] == [
        "static_ipaddress",
        "static_routes",
        "vrrp_script",
        "vrrp_sync_group",
        "vrrp_instance",
    ]
    vs = seed.virtual_servers[0]
    assert (vs.ha_suspend, vs.virtualhost, vs.persistence_timeout) == (True, "www.abc.com", 50)
    http = vs.real_servers[0].checkers[0]
    assert (http.retry, http.connect_port, http.connect_timeout) == (3, 80, 3.0)


# -- warnings: corrections keepalived makes, what pylvs ignores ----------------------------


def conf_of(text: str) -> KeepalivedConf:
    lexed = lex_text(text, "t.conf")
    assert not lexed.errors, lexed.errors
    return parse_nodes(lexed.nodes, lexed.files, warnings=lexed.warnings)


def warnings_of(conf: KeepalivedConf) -> list[tuple[int, str]]:
    return [(w.where.line, w.message) for w in conf.warnings]


def test_keepalived_defaults_with_warnings() -> None:
    conf = conf_of("virtual_server 10.0.0.1 80 {\n  real_server 10.0.1.1 80 {\n  }\n}\n")
    vs = conf.virtual_servers[0]
    assert (vs.protocol, vs.lb_algo, vs.lb_kind) == ("UDP", "wlc", "NAT")
    msgs = " | ".join(m for _l, m in warnings_of(conf))
    assert "no protocol set - UDP" in msgs and "'wlc'" in msgs and "NAT" in msgs
    assert {line for line, _m in warnings_of(conf)} == {1}


def test_unknown_and_ignored_keywords_are_warnings() -> None:
    conf = conf_of(
        """\
global_defs {
    router_id x
    bogus_global 1
}
mystery_block {
    a 1
}
virtual_server 10.0.0.1 80 {
    protocol TCP
    lb_algo rr
    lb_kind NAT
    smtp_alert
    hashed
    sh-port
    frobnicate {
        x 1
    }
    real_server 10.0.1.1 80 {
        snmp_name rs1
        TCP_CHECK {
            nb_get_retry 3
        }
        BFD_CHECK {
            name b
        }
        MISC_CHECK {
            misc_path /bin/true extra
            connect_timeout 3
        }
    }
}
"""
    )
    got = warnings_of(conf)
    expect = [
        (3, "unknown keyword 'bogus_global' in global_defs"),
        (5, "unknown keyword 'mystery_block' at the top level"),
        (8, "SECURITY VIOLATION"),
        (12, "'smtp_alert' ignored"),
        (13, "'hashed' ignored"),
        (14, "'sh-port' only applies to the sh scheduler"),
        (15, "unknown keyword 'frobnicate' in virtual_server"),
        (19, "'snmp_name' ignored"),
        (21, "unknown keyword 'nb_get_retry' in TCP_CHECK"),
        (23, "'BFD_CHECK' ignored"),
        (27, "misc_path: keepalived runs only the first word"),
        (28, "unknown keyword 'connect_timeout' in MISC_CHECK"),
    ]
    assert len(got) == len(expect), got
    for (line, msg), (eline, emsg) in zip(got, expect, strict=True):
        assert line == eline and emsg in msg
    rs = conf.virtual_servers[0].real_servers[0]
    assert [c.kind for c in rs.checkers] == ["TCP_CHECK", "MISC_CHECK"]
    assert rs.checkers[0].retry == 1  # keepalived 2.2 ignores nb_get_retry in TCP_CHECK
    assert rs.checkers[1].options["misc_path"] == "/bin/true"


def test_corrections_keepalived_makes() -> None:
    conf = conf_of(
        """\
virtual_server 10.0.0.1 0 {
    protocol TCP
    lb_algo rr
    lb_kind DR
    ops
    quorum 10
    hysteresis 10
    real_server 10.0.1.1 {
        weight 2
    }
}
virtual_server 10.0.0.2 80 {
    protocol TCP
    lb_algo rr
    lb_kind DR
    real_server 10.0.1.2 8080 {
    }
}
virtual_server 10.0.0.3 80 {
    protocol TCP
    lb_algo rr
}
"""
    )
    msgs = warnings_of(conf)
    assert [line for line, _m in msgs] == [1, 1, 1, 1, 16, 19]
    assert "ops" in msgs[0][1] and "zero port" in msgs[1][1]
    assert "quorum 10 exceeds the total weight 2" in msgs[2][1]
    assert "hysteresis 10 >= quorum 2" in msgs[3][1]
    assert "ports don't match - 80 used" in msgs[4][1]
    assert "no real servers" in msgs[5][1]
    v1, v2 = conf.virtual_servers
    assert (v1.ops, v1.persistence_timeout, v1.quorum, v1.hysteresis) == (False, 360, 2, 1)
    assert v2.real_servers[0].port == 80


# -- errors: broken variants of corpus files --------------------------------------------------


def broken(tmp_path: Path, name: str, old: str, new: str, count: int = 1) -> list[str]:
    """Copy the corpus, edit one file, load it: the problems as 'file:line: message'."""
    root = tmp_path / "corpus"
    shutil.copytree(CORPUS, root)
    path = root / name
    text = path.read_text()
    assert text.count(old) >= count, f"{old!r} not in {name}"
    path.write_text(text.replace(old, new, count))
    main = name if "/" not in name else "include_main.conf"
    with pytest.raises(ConfigError) as e:
        load(str(root / main), config_id="lvs1")
    out = [
        f"{Path(p.where.file).relative_to(root)}:{p.where.line}: {p.message}"
        for p in e.value.problems
    ]
    assert str(e.value) == "\n".join(str(p) for p in e.value.problems)
    return out


BROKEN = [
    # (file, old text, new text, expected "file:line: message" substring)
    (
        "minimal_tcp.conf",
        "lb_kind NAT",
        "lb_kind MASQ",
        "minimal_tcp.conf:4: unknown lb_kind 'MASQ'",
    ),
    ("minimal_tcp.conf", "weight 3", "weight 3x", "minimal_tcp.conf:12: invalid number '3x'"),
    ("minimal_tcp.conf", "weight 3", "weight -1", "minimal_tcp.conf:12: negative number '-1'"),
    (
        "minimal_tcp.conf",
        "weight 3",
        "weight 70000",
        "minimal_tcp.conf:12: number '70000' outside range [0, 65535]",
    ),
    (
        "minimal_tcp.conf",
        "10.0.0.2 8080",
        "10.0.0.300 8080",
        "minimal_tcp.conf:11: invalid real server address '10.0.0.300'",
    ),
    (
        "minimal_tcp.conf",
        "10.0.0.2 8080",
        "10.0.0.2 80800",
        "minimal_tcp.conf:11: number '80800' outside range [1, 65535]",
    ),
    (
        "minimal_tcp.conf",
        "192.0.2.10 80",
        "192.0.2 80",
        "minimal_tcp.conf:2: invalid virtual server address '192.0.2'",
    ),
    (
        "minimal_tcp.conf",
        "protocol TCP",
        "protocol",
        "minimal_tcp.conf:5: 'protocol' is missing a value",
    ),
    (
        "minimal_tcp.conf",
        "protocol TCP",
        "protocol ICMP",
        "minimal_tcp.conf:5: unknown protocol 'ICMP'",
    ),
    (
        "minimal_tcp.conf",
        "lb_algo rr",
        "lb_algo roundrobin",
        "minimal_tcp.conf:3: invalid lvs_sched 'roundrobin'",
    ),
    (
        "minimal_tcp.conf",
        "connect_timeout 2",
        "connect_timeout 0",
        "minimal_tcp.conf:14: connect_timeout '0' outside range",
    ),
    (
        "minimal_tcp.conf",
        "        }\n    }\n}\n",
        "        }\n    }\n",
        "minimal_tcp.conf:2: block 'virtual_server 192.0.2.10 80' is not closed",
    ),
    ("minimal_tcp.conf", "}\n}\n", "}\n}\n}\n", "minimal_tcp.conf:18: extra '}' found"),
    (
        "minimal_tcp.conf",
        "TCP_CHECK {\n        }",
        "TCP_CHECK",
        "minimal_tcp.conf:8: 'TCP_CHECK' needs a { } block",
    ),
    ("minimal_tcp.conf", "weight 3", 'weight "3', "minimal_tcp.conf:12: unterminated quote"),
    (
        "minimal_tcp.conf",
        "real_server 10.0.0.2",
        "real_server 10.0.0.1",
        "minimal_tcp.conf:11: real server 10.0.0.1 8080 is duplicated",
    ),
    (
        "group.conf",
        "group MARKS {\n    lb",
        "group NOPE {\n    lb",
        "group.conf:33: virtual_server_group NOPE is not defined",
    ),
    (
        "group.conf",
        "192.0.2.61-63 80",
        "192.0.2.63-61 80",
        "group.conf:4: address range '192.0.2.63-61' ends before",
    ),
    (
        "group.conf",
        "203.0.113.8/30",
        "203.0.113.9/30",
        "group.conf:6: invalid virtual server group address or range '203.0.113.9/30'",
    ),
    (
        "group.conf",
        "fwmark 201",
        "fwmark 201 inet7",
        "group.conf:12: unknown address family 'inet7'",
    ),
    (
        "http_checks.conf",
        "digest 9B3A",
        "digest 9B3",
        "http_checks.conf:28: digest '9B30C85A887A256D6939DA88AABD8CD' is not 32 hex",
    ),
    (
        "http_checks.conf",
        "status_code 200 204 300-399",
        "status_code 200 600 399-300",
        "http_checks.conf:24: invalid HTTP status code '600'",
    ),
    ("http_checks.conf", "path /maintenance", "", "http_checks.conf:35: url has no path"),
    (
        "http_checks.conf",
        "http_protocol 1.1",
        "http_protocol 2",
        "http_checks.conf:19: invalid http_protocol '2'",
    ),
    (
        "http_checks.conf",
        "regex 'maintenance mode'",
        "regex '(unclosed'",
        "http_checks.conf:37: invalid regex '(unclosed'",
    ),
    (
        "misc_quorum.conf",
        "misc_path /usr/local/bin/check_smtp.sh",
        "misc_timeout 3",
        "misc_quorum.conf:40: MISC_CHECK has no misc_path",
    ),
    (
        "misc_quorum.conf",
        "sorry_server 10.0.2.99 2525",
        "sorry_server 10.0.2.999",
        "misc_quorum.conf:17: invalid sorry server address",
    ),
    (
        "file_check.conf",
        "track_file plain\n        ",
        "track_file nope\n        ",
        "file_check.conf:26: track_file nope not found",
    ),
    (
        "persistence.conf",
        "persistence_timeout 7200",
        "persistence_timeout 0",
        "persistence.conf:32: number '0' outside range [1, 2147483]",
    ),
    (
        "fwmark_tun_sched.conf",
        "lb_kind TUN type gue port 6080 csum",
        "lb_kind TUN type gue",
        "fwmark_tun_sched.conf:6: gue tunnels require a port",
    ),
    (
        "fwmark_tun_sched.conf",
        "lvs_method TUN type gre nocsum",
        "lvs_method TUN type gre remcsum",
        "fwmark_tun_sched.conf:15: gre tunnels do not support remcsum",
    ),
    (
        "fwmark_tun_sched.conf",
        "virtual_server fwmark 2",
        "virtual_server fwmark 0",
        "fwmark_tun_sched.conf:34: number '0' outside range [1, 4294967295]",
    ),
    (
        "inheritance.conf",
        "lthreshold 800",
        "lthreshold 1800",
        "inheritance.conf:28: lthreshold 1800 above uthreshold 1000",
    ),
    (
        "inheritance.conf",
        "retry 5",
        "retry 0",
        "inheritance.conf:13: number '0' outside range [1, 4294967295]",
    ),
    (
        "smtp_dns_udp_ping.conf",
        "type A",
        "type AX",
        "smtp_dns_udp_ping.conf:26: unknown DNS_CHECK type 'AX'",
    ),
    (
        "smtp_dns_udp_ping.conf",
        "payload 0102 0304 ab",
        "payload 01zz",
        "smtp_dns_udp_ping.conf:35: invalid hex string for UDP_CHECK payload",
    ),
    (
        "inc/pools/web_extra.conf",
        "weight 2",
        "weight two",
        "inc/pools/web_extra.conf:2: invalid number 'two'",
    ),
    (
        "include_main.conf",
        "inc/{defs,groups}.conf",
        "inc/missing.conf",
        "include_main.conf:3: cannot read included file",
    ),
    (
        "ipv6.conf",
        "2001:db8:200::2 8080",
        "[2001:db8:200::2] 8080",
        "ipv6.conf:19: invalid real server address",
    ),
    (
        "ipv6.conf",
        "real_server 2001:db8:200::3 443",
        "real_server 10.0.0.3 443",
        "ipv6.conf:30: real server 10.0.0.3 and virtual server address families differ",
    ),
    ("params.conf", "$PORT=80", "$PORT=eighty", "params.conf:15: invalid number 'eighty'"),
]


@pytest.mark.parametrize(("name", "old", "new", "want"), BROKEN, ids=[b[3] for b in BROKEN])
def test_broken_variant(tmp_path: Path, name: str, old: str, new: str, want: str) -> None:
    problems = broken(tmp_path, name, old, new)
    assert any(want in p for p in problems), problems


VS_TEMPLATE = """
virtual_server {vip} {{
    protocol TCP
    lb_algo rr
    lb_kind {kind}
    real_server {rs} {{
    }}
}}
"""


def test_duplicate_services(tmp_path: Path) -> None:
    extra = VS_TEMPLATE.format(vip="192.0.2.10 80", kind="NAT", rs="10.0.0.9 80")
    text = (CORPUS / "minimal_tcp.conf").read_text()
    problems = broken(tmp_path, "minimal_tcp.conf", text, text + extra)
    assert problems == [
        "minimal_tcp.conf:19: duplicate virtual server TCP 192.0.2.10 80 "
        f"(also at {tmp_path / 'corpus' / 'minimal_tcp.conf'}:2)"
    ]
    # a group member overlapping a plain virtual server
    extra2 = VS_TEMPLATE.format(vip="192.0.2.62 80", kind="DR", rs="10.0.5.9 80")
    text2 = (CORPUS / "group.conf").read_text()
    problems = broken(tmp_path / "b", "group.conf", text2, text2 + extra2)
    assert len(problems) == 1 and problems[0].startswith(
        "group.conf:43: duplicate virtual server TCP 192.0.2.62 80"
    )


def test_every_problem_is_reported(tmp_path: Path) -> None:
    text = (CORPUS / "minimal_tcp.conf").read_text()
    bad = text.replace("lb_kind NAT", "lb_kind XX").replace("weight 3", "weight x")
    bad = bad.replace("connect_timeout 2", "connect_timeout")
    problems = broken(tmp_path, "minimal_tcp.conf", text, bad)
    assert [p.split(": ")[0] for p in problems] == [
        "minimal_tcp.conf:4",
        "minimal_tcp.conf:12",
        "minimal_tcp.conf:14",
    ]


def test_unreadable_main_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        load(str(tmp_path / "none.conf"))
    (p,) = e.value.problems
    assert p.where == Where(str(tmp_path / "none.conf"), 0)


def test_flags_take_no_value_and_booleans_are_checked() -> None:
    conf = conf_of(
        """\
virtual_server 10.0.0.1 80 {
    protocol TCP
    lb_algo rr
    lb_kind NAT
    inhibit_on_failure false
    real_server 10.0.1.1 80 {
        inhibit_on_failure off
        alpha yes
        TCP_CHECK {
            log_all_failures on
        }
    }
}
"""
    )
    assert warnings_of(conf) == [(5, "'inhibit_on_failure' takes no value: 'false' ignored")]
    vs = conf.virtual_servers[0]
    rs = vs.real_servers[0]
    assert (rs.inhibit_on_failure, rs.alpha, rs.checkers[0].log_all_failures) == (False, True, True)
    lexed = lex_text(
        "virtual_server 10.0.0.1 80 {\n real_server 10.0.1.1 80 {\n alpha maybe\n }\n}\n"
    )
    with pytest.raises(ConfigError) as e:
        parse_nodes(lexed.nodes, lexed.files)
    assert [(p.where.line, p.message) for p in e.value.problems] == [
        (3, "invalid alpha value 'maybe' (yes|no|on|off|true|false)")
    ]


def test_checker_addresses() -> None:
    text = """\
virtual_server fe80::1 80 {
    protocol TCP
    lb_algo rr
    lb_kind NAT
    real_server fe80::2 80 {
        TCP_CHECK {
        }
        TCP_CHECK {
            bind_if eth0
            bindto 10.0.0.1
        }
    }
}
"""
    lexed = lex_text(text, "ll.conf")
    with pytest.raises(ConfigError) as e:
        parse_nodes(lexed.nodes, lexed.files)
    assert [(p.where.line, p.message) for p in e.value.problems] == [
        (6, "checker link local address fe80::2 requires a bind_if"),
        (8, "bindto 10.0.0.1 and fe80::2 address families differ"),
    ]


def test_no_port_to_check() -> None:
    conf = conf_of(
        "virtual_server fwmark 5 {\n lb_algo rr\n lb_kind DR\n"
        " real_server 10.0.1.1 80 {\n  TCP_CHECK {\n  }\n  PING_CHECK {\n  }\n }\n}\n"
    )
    assert warnings_of(conf) == [
        (4, "fwmark virtual server: port of real server 10.0.1.1 cleared"),
        (5, "TCP_CHECK of 10.0.1.1 has no port to connect to: set connect_port"),
    ]


def test_script_words_after_the_script_are_a_user() -> None:
    conf = conf_of(
        "global_defs {\n enable_script_security\n}\n"
        "virtual_server 10.0.0.1 80 {\n protocol TCP\n lb_algo rr\n lb_kind NAT\n"
        " real_server 10.0.1.1 80 {\n  notify_up /bin/notify.sh up\n"
        "  notify_down '/bin/notify.sh down'\n }\n}\n"
    )
    rs = conf.virtual_servers[0].real_servers[0]
    assert (rs.notify_up, rs.notify_down) == ("/bin/notify.sh", "/bin/notify.sh down")
    assert warnings_of(conf) == [
        (
            9,
            "notify_up: 'up' is read as the user [group] to run the script as "
            "(quote the command to pass arguments): not supported, ignored",
        )
    ]
