"""pylvsadm's command line against ipvsadm 1.31.

Expected messages, exit codes and values come from reading ipvsadm 1.31's
ipvsadm.c (parse_options, process_options, parse_service, generic_opt_check,
tunnel_opt_check, parse_sched_flags, config_stream.c) and popt 1.19's
poptGetNextOpt; every refusal below was also checked against ipvsadm 1.31
built from Debian's ipvsadm_1.31.orig.tar.gz with libipvs replaced by a stub
that prints what would be sent (so that no kernel is needed).

seed_commands.txt holds every ipvsadm command line of ../shared/seeds/*.txt,
typographic dashes (U+2013, as in "\u2013A", "\u2013set") turned back into "-A"/"--set", the
shell variables of the DR script ($VIP, $PORT, $RS1, $RS2) and the "VIP"
placeholder replaced by the addresses the articles use; syntax templates
("ipvsadm --set tcp tcpfin udp", "-A|E -p timeout") are left out.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from pylvs.cli import argv as A
from pylvs.cli.argv import UsageError, parse, parse_restore
from pylvs.cli.command import Cmd, Command, ServiceArg

PROG = "pylvsadm"
TRY = "Try `pylvsadm -h' or 'pylvsadm --help' for more information."


class FakeResolver:
    """A few names, recording what was asked."""

    HOSTS = {"www.example.com": ["192.0.2.10", "192.0.2.11"], "localhost": ["127.0.0.1"],
             "v6only.example": ["2001:db8::5"], "mask.example": ["255.255.0.0"]}  # fmt: skip
    PORTS = {("http", "tcp"): 80, ("http", "udp"): 80, ("http", "sctp"): 80,
             ("domain", "udp"): 53, ("domain", "tcp"): 53, ("https", "tcp"): 443}  # fmt: skip

    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []

    def addr(self, host: str, family: str) -> list[str]:
        self.asked.append((host, family))
        return list(self.HOSTS.get(host, []))

    def port(self, name: str, proto: str) -> int | None:
        self.asked.append((name, proto))
        return self.PORTS.get((name, proto))


def P(*args: str, numeric: bool = False) -> Command:
    return parse(list(args), FakeResolver(), numeric=numeric, prog=PROG)


def refusal(*args: str) -> UsageError:
    with pytest.raises(UsageError) as info:
        P(*args)
    return info.value


# --------------------------------------------------------------------------
# Refusals: exact ipvsadm text (what it prints minus the final newline) and exit code

REFUSALS: list[tuple[list[str], str, int]] = [
    # the first option must be a command; popt errors there only give the hint (exit(-1))
    (["foo"], TRY, 255),
    (["-t", "1.2.3.4:80", "-A"], TRY, 255),
    (["--bogus"], TRY, 255),
    (["--list=foo"], TRY, 255),
    (["-L=n"], TRY, 255),
    (["-nL"], TRY, 255),
    (["--start-daemon"], TRY, 255),
    (["--sort"], TRY, 255),
    # popt errors after the command: "<argv element>: <popt text>", exit 255
    (["-Lq"], "-Lq: unknown option", 255),
    (["-A", "-t"], "-t: missing argument", 255),
    (["-A", "-t", "1.2.3.4:80", "-s"], "-s: missing argument", 255),
    (["-A", "-t", "1.2.3.4:80", "--scheduler"], "--scheduler: missing argument", 255),
    (["-A", "--bogus"], "--bogus: unknown option", 255),
    (["-A", "-t", "1.2.3.4:80", "--bogus=3"], "--bogus=3: unknown option", 255),
    (["-A", "-t", "1.2.3.4:80", "---s"], "---s: unknown option", 255),
    (["-L", "--numeric=foo"], "--numeric=foo: option does not take an argument", 255),
    (["-Ln=c"], "-Ln=c: option does not take an argument", 255),
    (["-A", "-t", "1.2.3.4:80", "-p", "-1"], "-1: unknown option", 255),
    (["--set", "-1", "2", "3"], "-1: unknown option", 255),
    (["-a", "-t", "1.2.3.4:80", "-r", "1.2.3.5", "-w"], "-w: missing argument", 255),
    # a second command (or -h/-v) after the first: ipvsadm's loop does not know it
    (["-L", "-A"], "invalid option `-A'", 2),
    (["-L", "-nA"], "invalid option `-nA'", 2),
    (["-Lh"], "invalid option `-Lh'", 2),
    (["-L", "-ln"], "invalid option `-ln'", 2),
    (["-L", "-R"], "invalid option `-R'", 2),
    (["-L", "--start-daemon", "master"], "invalid option `master'", 2),
    # leftovers
    (["-A", "foo", "-t", "1.2.3.4:80"], "unexpected argument foo", 2),
    (["-A", "-t", "1.2.3.4:80", "--", "-s", "rr"], "unexpected argument -s", 2),
    (["-A", "-t", "1.2.3.4:80", "-p", "-"], "unexpected argument -", 2),
    (["-A", "-t", "1.2.3.4:80", "-"], "unexpected argument -", 2),
    # multiple options
    (
        ["-A", "-t", "1.2.3.4:80", "-s", "rr", "-s", "wrr"],
        "multiple 'scheduler' options specified",
        2,
    ),
    (
        ["-A", "-t", "1.2.3.4:80", "-u", "1.2.3.4:80"],
        "multiple 'service-address' options specified",
        2,
    ),
    (
        ["-a", "-t", "1.2.3.4:80", "-r", "10.0.0.2", "-g", "-m"],
        "multiple 'forwarding-method' options specified",
        2,
    ),
    (["-L", "-n", "-n"], "multiple 'numeric' options specified", 2),
    (["-L", "-f", "1", "-n", "-6", "-f", "2"], "multiple 'service-address' options specified", 2),
    # addresses
    (["-A", "-t", "1234"], "illegal virtual server address[:port] specified", 2),
    (["-A", "-t", ""], "illegal virtual server address[:port] specified", 2),
    (["-A", "-t", "[::1]"], "illegal virtual server address[:port] specified", 2),
    (["-A", "-t", "[::1]:"], "illegal virtual server address[:port] specified", 2),
    (["-A", "-t", "1.2.3.4:65536"], "illegal virtual server address[:port] specified", 2),
    (["-A", "-t", "1.2.3.4:"], "illegal virtual server address[:port] specified", 2),
    (["-A", "-t", "1.2.3.4:nosuchservice"], "illegal virtual server address[:port] specified", 2),
    (["-A", "-t", "256.1.1.1:80"], "illegal virtual server address[:port] specified", 2),
    (["-A", "-t", "nosuchhost:80"], "illegal virtual server address[:port] specified", 2),
    (["-A", "-t", "v6only.example:80"], "illegal virtual server address[:port] specified", 2),
    (["-A", "-u", "1.2.3.4:https"], "illegal virtual server address[:port] specified", 2),
    (["-a", "-t", "1.2.3.4:80", "-r", "1234"], "illegal real server address[:port] specified", 2),
    (
        ["-a", "-r", "10.0.0.2:http", "-t", "1.2.3.4:80", "-m"],
        "illegal real server address[:port] specified",
        2,
    ),
    # numbers
    (["-A", "-t", "1.2.3.4:80", "-p", "rr"], "invalid timeout value `rr' specified", 2),
    (["-A", "-t", "1.2.3.4:80", "-p", ""], "invalid timeout value `' specified", 2),
    (["-A", "-t", "1.2.3.4:80", "-p", "0"], "invalid timeout value `0' specified", 2),
    (["-A", "-t", "1.2.3.4:80", "-p", "2678401"], "invalid timeout value `2678401' specified", 2),
    (["-A", "-t", "1.2.3.4:80", "-p", "5 "], "invalid timeout value `5 ' specified", 2),
    (["-A", "-t", "1.2.3.4:80", "--persistent="], "invalid timeout value `' specified", 2),
    (["-L", "-ppp"], "invalid timeout value `pp' specified", 2),
    (["-A", "-f", "0"], "invalid fwmark value `0' specified", 2),
    (["-A", "-f", "4294967296"], "invalid fwmark value `4294967296' specified", 2),
    (["-A", "-f", "-1"], "invalid fwmark value `-1' specified", 2),
    (["-A", "-f", "1x"], "invalid fwmark value `1x' specified", 2),
    (["-a", "-t", "1.2.3.4:80", "-r", "1.2.3.5", "-w", "-1"], "illegal weight specified", 2),
    (["-a", "-t", "1.2.3.4:80", "-r", "10.0.0.2", "-w", "65536"], "illegal weight specified", 2),
    (
        ["-a", "-t", "1.2.3.4:80", "-r", "10.0.0.2", "-x", "2147483648"],
        "illegal u_threshold specified",
        2,
    ),
    (["-a", "-t", "1.2.3.4:80", "-r", "10.0.0.2", "-y", "x"], "illegal l_threshold specified", 2),
    # netmask
    (["-A", "-f", "1", "-6", "-M", "0"], "illegal ipv6 netmask specified", 2),
    (["-A", "-f", "1", "-6", "-M", "129"], "illegal ipv6 netmask specified", 2),
    (
        ["-A", "-t", "1.2.3.4:80", "-M", "foo.invalid"],
        "illegal virtual server persistent mask specified",
        2,
    ),
    # -6 needs -f first (ipvsadm's message ends in a newline of its own)
    (["-A", "-6", "-f", "1"], "-6 used before -f\n", 2),
    (["-L", "-6"], "-6 used before -f\n", 2),
    (["-A", "-t", "[::1]:80", "-6"], "-6 used before -f\n", 2),
    # scheduler flags: checked before the option table
    (["-A", "-t", "1.2.3.4:80", "-b", "sh-port"], "incompatible scheduler flag `sh-port'", 2),
    (
        ["-A", "-t", "1.2.3.4:80", "-s", "sh", "-b", "mh-port"],
        "incompatible scheduler flag `mh-port'",
        2,
    ),
    (
        ["-A", "-t", "1.2.3.4:80", "-s", "mh", "-b", "flag-1,sh-fallback"],
        "incompatible scheduler flag `sh-fallback'",
        2,
    ),
    (["-A", "-t", "1.2.3.4:80", "-b", "flag-4"], "invalid scheduler flag `flag-4'", 2),
    (["-D", "-t", "1.2.3.4:80", "-b", "foo"], "invalid scheduler flag `foo'", 2),
    (["-A", "-t", "1.2.3.4:80", "-b", ","], "invalid scheduler flag `'", 2),  # ipvsadm crashes
    # the option table
    (
        ["-D", "-t", "1.2.3.4:80", "-s", "rr"],
        "Illegal 'scheduler' option with the 'delete-service' command",
        2,
    ),
    (["-list"], "Illegal 'scheduler' option with the 'list' command", 2),
    (["-L", "-x", "5"], "Illegal 'u-threshold' option with the 'list' command", 2),
    (["-S", "-c"], "Illegal 'connection' option with the 'save' command", 2),
    (["-C", "-n"], "Illegal 'numeric' option with the 'flush' command", 2),
    (["-Z", "-t", "1.2.3.4:80", "-n"], "Illegal 'numeric' option with the 'zero' command", 2),
    (["-R", "-n"], "Illegal 'numeric' option with the 'restore' command", 2),
    (["--set", "1", "2", "3", "-n"], "Illegal 'numeric' option with the 'set' command", 2),
    (
        ["-d", "-t", "1.2.3.4:80", "-r", "10.0.0.2", "-w", "3"],
        "Illegal 'weight' option with the 'delete-server' command",
        2,
    ),
    (
        ["-A", "-t", "1.2.3.4:80", "-r", "10.0.0.2"],
        "Illegal 'real-server' option with the 'add-service' command",
        2,
    ),
    (
        ["-A", "-t", "1.2.3.4:80", "-n"],
        "Illegal 'numeric' option with the 'add-service' command",
        2,
    ),
    (
        ["-E", "-t", "1.2.3.4:80", "--tun-info"],
        "Illegal 'tun-info' option with the 'edit-service' command",
        2,
    ),
    (
        ["--stop-daemon", "backup", "--mcast-interface", "eth0"],
        "Illegal 'mcast-interface' option with the 'stop-daemon' command",
        2,
    ),
    (["-A"], "You need to supply the 'service-address' option for the 'add-service' command", 2),
    (
        ["-E", "-s", "rr"],
        "You need to supply the 'service-address' option for the 'edit-service' command",
        2,
    ),
    (["-D"], "You need to supply the 'service-address' option for the 'delete-service' command", 2),
    (
        ["-a", "-t", "1.2.3.4:80"],
        "You need to supply the 'real-server' option for the 'add-server' command",
        2,
    ),
    (
        ["-a", "-r", "10.0.0.2"],
        "You need to supply the 'service-address' option for the 'add-server' command",
        2,
    ),
    (
        ["-e", "-t", "1.2.3.4:80"],
        "You need to supply the 'real-server' option for the 'edit-server' command",
        2,
    ),
    (
        ["-d", "-t", "1.2.3.4:80"],
        "You need to supply the 'real-server' option for the 'delete-server' command",
        2,
    ),
    (
        ["-L", "-c", "--timeout"],
        "The option 'timeout' conflicts with the 'connection' option in the 'list' command",
        2,
    ),
    (
        ["-L", "-t", "1.2.3.4:80", "-c"],
        "The option 'service-address' conflicts with the 'connection' option in the 'list' command",
        2,
    ),
    (
        ["-L", "--daemon", "--timeout"],
        "The option 'daemon' conflicts with the 'timeout' option in the 'list' command",
        2,
    ),
    # list conflicts checked after the table
    (["-L", "-c", "--stats"], "options conflicts in the list command", 2),
    (["-L", "--timeout", "--rate"], "options conflicts in the list command", 2),
    (["-L", "--daemon", "--thresholds"], "options conflicts in the list command", 2),
    (["-L", "--timeout", "--persistent-conn"], "options conflicts in the list command", 2),
    (["-L", "--daemon", "--persistent-conn"], "options conflicts in the list command", 2),
    # services
    (["-A", "-t", "1.2.3.4"], "Zero port specified for non-persistent service", 2),
    (["-A", "-t", "::1"], "Zero port specified for non-persistent service", 2),
    (["-A", "-t", "::1:80"], "Zero port specified for non-persistent service", 2),
    (["-A", "-t", "[1.2.3.4]:80"], "Zero port specified for non-persistent service", 2),
    (["-E", "-u", "1.2.3.4:0"], "Zero port specified for non-persistent service", 2),
    (["-A", "-t", "1.2.3.4:80", "-o"], "One-Packet Scheduling is only for UDP virtual services", 2),
    (
        ["-A", "--sctp-service", "1.2.3.4:80", "-o"],
        "One-Packet Scheduling is only for UDP virtual services",
        2,
    ),
    # real servers
    (
        ["-a", "-t", "1.2.3.4:80", "-r", "[::2]:80", "-m"],
        "Different address family is allowed only for tunneling servers",
        2,
    ),
    (
        ["-a", "-t", "1.2.3.4:80", "-r", "[::2]:80"],
        "Different address family is allowed only for tunneling servers",
        2,
    ),
    (
        ["-a", "-f", "3", "-6", "-r", "10.0.0.2", "-g"],
        "Different address family is allowed only for tunneling servers",
        2,
    ),
    (
        ["-a", "-t", "1.2.3.4:80", "-r", "10.0.0.2", "--tun-type", "gue"],
        "Tunnel options conflict with forward method",
        2,
    ),
    (
        ["-e", "-t", "1.2.3.4:80", "-r", "10.0.0.2", "-m", "--tun-csum"],
        "Tunnel options conflict with forward method",
        2,
    ),
    (
        ["-a", "-t", "1.2.3.4:80", "-r", "10.0.0.2", "--fullnat", "--tun-port", "5"],
        "Tunnel options conflict with forward method",
        2,
    ),
    (
        ["-a", "-t", "1.2.3.4:80", "-r", "10.0.0.2", "-i", "--tun-type", "gue"],
        "You need to supply the 'tun-port' option for the 'gue' tunnel type",
        2,
    ),
    (
        [
            "-a",
            "-t",
            "1.2.3.4:80",
            "-r",
            "10.0.0.2",
            "-i",
            "--tun-type",
            "gue",
            "--tun-port",
            "6080",
            "--tun-csum",
            "--tun-remcsum",
        ],
        "The option 'tun-remcsum' conflicts with the 'tun-csum' option in the 'gue' tunnel type",
        2,
    ),
    (
        ["-a", "-t", "1.2.3.4:80", "-r", "10.0.0.2", "-i", "--tun-port", "6080"],
        "Illegal 'tun-port' option with the 'ipip' tunnel type",
        2,
    ),
    (
        ["-a", "-t", "1.2.3.4:80", "-r", "10.0.0.2", "-i", "--tun-csum"],
        "Illegal 'tun-csum' option with the 'ipip' tunnel type",
        2,
    ),
    (
        ["-a", "-t", "1.2.3.4:80", "-r", "10.0.0.2", "-i", "--tun-type", "gre", "--tun-remcsum"],
        "Illegal 'tun-remcsum' option with the 'gre' tunnel type",
        2,
    ),
    (
        ["-a", "-t", "1.2.3.4:80", "-r", "10.0.0.2", "-i", "--tun-type", "gre", "--tun-port", "1"],
        "Illegal 'tun-port' option with the 'gre' tunnel type",
        2,
    ),
    (
        ["-a", "-t", "1.2.3.4:80", "-r", "10.0.0.2", "-i", "--tun-type", "vxlan"],
        "illegal tunnel type specified",
        2,
    ),
    (
        ["-a", "-t", "1.2.3.4:80", "-r", "10.0.0.2", "-i", "--tun-type", "gue", "--tun-port", "0"],
        "illegal tunnel port specified",
        2,
    ),
    # --set
    (["--set", "1", "2"], "--set option requires 3 timeout values", 2),
    (["--set"], "--set option requires 3 timeout values", 2),
    (["--set", "1", "2", "3", "4"], "unexpected argument 4", 2),
    (["--set", "1", "2", "x"], "invalid timeout value `x' specified", 2),
    (["--set", "1", "2", "2678401"], "invalid timeout value `2678401' specified", 2),
    # daemons
    (["--start-daemon", "foo"], "illegal start-daemon parameter specified", 2),
    (["--stop-daemon", "foo"], "illegal start_daemon specified", 2),
    (
        ["--start-daemon", "master", "--mcast-group", "10.0.0.1"],
        "invalid IPv4 mcast-group `10.0.0.1'",
        2,
    ),
    (
        ["--start-daemon", "master", "--mcast-group", "224.0.0.081"],
        "invalid IPv4 mcast-group `224.0.0.081'",
        2,
    ),
    (
        ["--start-daemon", "master", "--mcast-group", "fe80::1"],
        "invalid IPv6 mcast-group `fe80::1'",
        2,
    ),
    (["--start-daemon", "master", "--mcast-port", "0"], "illegal mcast-port specified", 2),
    (["--start-daemon", "master", "--mcast-ttl", "256"], "illegal mcast-ttl specified", 2),
    (["--start-daemon", "master", "--sync-maxlen", "65508"], "illegal sync-maxlen specified", 2),
    (["--start-daemon", "master", "--syncid", "256"], "illegal syncid specified", 2),
]


@pytest.mark.parametrize(("args", "message", "code"), REFUSALS)
def test_refusal(args: list[str], message: str, code: int) -> None:
    e = refusal(*args)
    assert (e.message, e.exit_code, e.show_usage) == (message, code, False)


def test_hint_uses_the_program_name_given() -> None:
    with pytest.raises(UsageError) as info:
        parse(["foo"], FakeResolver(), prog="/sbin/ipvsadm")
    assert info.value.message == (
        "Try `/sbin/ipvsadm -h' or '/sbin/ipvsadm --help' for more information."
    )


# --------------------------------------------------------------------------
# Commands and their values


def test_bare_program_lists() -> None:
    assert parse([]) == Command(Cmd.LIST)


@pytest.mark.parametrize(
    ("args", "cmd"),
    [
        (["-A", "-t", "1.2.3.4:80"], Cmd.ADD), (["--add-service", "-t", "1.2.3.4:80"], Cmd.ADD),
        (["-E", "-t", "1.2.3.4:80"], Cmd.EDIT), (["--edit-service", "-t", "1.2.3.4:80"], Cmd.EDIT),
        (["-D", "-t", "1.2.3.4:80"], Cmd.DEL), (["--delete-service", "-f", "2"], Cmd.DEL),
        (["-C"], Cmd.FLUSH), (["--clear"], Cmd.FLUSH),
        (["-R"], Cmd.RESTORE), (["--restore"], Cmd.RESTORE),
        (["-S"], Cmd.SAVE), (["--save", "-n"], Cmd.SAVE),
        (["-a", "-t", "1.2.3.4:80", "-r", "10.0.0.2"], Cmd.ADDDEST),
        (["--add-server", "-t", "1.2.3.4:80", "-r", "10.0.0.2"], Cmd.ADDDEST),
        (["-e", "-t", "1.2.3.4:80", "-r", "10.0.0.2"], Cmd.EDITDEST),
        (["--edit-server", "-t", "1.2.3.4:80", "-r", "10.0.0.2"], Cmd.EDITDEST),
        (["-d", "-t", "1.2.3.4:80", "-r", "10.0.0.2"], Cmd.DELDEST),
        (["--delete-server", "-t", "1.2.3.4:80", "-r", "10.0.0.2"], Cmd.DELDEST),
        (["-L"], Cmd.LIST), (["-l"], Cmd.LIST), (["--list"], Cmd.LIST),
        (["-Z"], Cmd.ZERO), (["--zero", "-t", "1.2.3.4:80"], Cmd.ZERO),
        (["--set", "1", "2", "3"], Cmd.TIMEOUT),
        (["--start-daemon", "master"], Cmd.STARTDAEMON),
        (["--stop-daemon", "backup"], Cmd.STOPDAEMON),
        (["-h"], Cmd.HELP), (["--help"], Cmd.HELP), (["-h", "--bogus", "x"], Cmd.HELP),
        (["-v"], Cmd.VERSION), (["--version", "-n"], Cmd.VERSION),
        (["--add-laddr", "-t", "1.2.3.4:80", "-z", "10.0.0.9"], Cmd.ADDLADDR),
        (["--del-laddr", "-t", "1.2.3.4:80", "-z", "10.0.0.9"], Cmd.DELLADDR),
        (["--get-laddr"], Cmd.GETLADDR),
    ],
)  # fmt: skip
def test_each_command(args: list[str], cmd: Cmd) -> None:
    assert P(*args).cmd is cmd


def test_add_service_leaves_defaults_unset() -> None:
    c = P("-A", "-t", "10.0.0.1:80")
    assert c.service == ServiceArg(protocol="tcp", address="10.0.0.1", port=80, family="inet")
    assert (c.sched_name, c.persistent, c.netmask, c.pe_name, c.ops, c.sched_flags) == (
        None, None, None, None, False, [],
    )  # fmt: skip


def test_add_service_values() -> None:
    c = P("-A", "-u", "10.0.0.1:53", "-s", "sh", "-p", "600", "-M", "255.255.255.0", "-o",
          "--pe", "sip", "-b", "sh-port,,sh-fallback")  # fmt: skip
    assert c.service is not None and (c.service.protocol, c.service.port) == ("udp", 53)
    assert (c.sched_name, c.persistent, c.netmask, c.ops, c.pe_name) == (
        "sh", 600, "255.255.255.0", True, "sip",
    )  # fmt: skip
    assert c.sched_flags == ["sh-port", "sh-fallback"]


def test_persistent_without_value_is_360_seconds() -> None:
    # libipvs.h: IPVS_SVC_PERSISTENT_TIMEOUT (6*60); parse_timeout(NULL) returns it.
    assert P("-A", "-t", "1.2.3.4:80", "-p").persistent == 360
    assert P("-A", "-t", "1.2.3.4", "-p").persistent == 360  # port 0 needs -p
    assert P("-A", "-t", "1.2.3.4:80", "-p", "-s", "rr").persistent == 360  # "-s" not taken
    assert P("-A", "-t", "1.2.3.4:80", "-s", "rr", "-p").persistent == 360
    assert P("-A", "-t", "1.2.3.4:80", "-p", "300").persistent == 300
    assert P("-A", "-t", "1.2.3.4:80", "-p300").persistent == 300
    assert P("-A", "-t", "1.2.3.4:80", "-p=5").persistent == 5
    assert P("-A", "-t", "1.2.3.4:80", "--persistent=30").persistent == 30
    assert P("-A", "-t", "1.2.3.4:80", "--persistent", "30").persistent == 30
    assert P("-A", "-t", "1.2.3.4:80", "-p", " 5").persistent == 5  # strtol skips blanks
    assert P("-A", "-t", "1.2.3.4:80", "-p", "+5").persistent == 5
    assert P("-A", "-t", "1.2.3.4:80", "-p", "2678400").persistent == 2678400  # 31 days


def test_names_truncated_like_strncpy() -> None:
    c = P("-A", "-t", "1.2.3.4:80", "-s", "0123456789abcdefghij", "--pe", "0123456789abcdefghij")
    assert (c.sched_name, c.pe_name) == ("0123456789abcde", "0123456789abcdef")
    d = P("--start-daemon", "master", "--mcast-interface", "0123456789abcdefghij")
    assert d.mcast_interface == "0123456789abcde"


def test_unknown_scheduler_is_left_to_the_daemon() -> None:
    assert P("-A", "-t", "1.2.3.4:80", "-s", "nosuch").sched_name == "nosuch"
    assert P("-A", "-t", "1.2.3.4:80", "-s", "").sched_name is None  # "" means the default


@pytest.mark.parametrize(
    ("flags", "sched", "names"),
    [
        ("flag-1,flag-2,flag-3", None, ["flag-1", "flag-2", "flag-3"]),
        ("sh-fallback,sh-port", "sh", ["sh-fallback", "sh-port"]),
        ("mh-port,mh-fallback,mh-port", "mh", ["mh-port", "mh-fallback"]),
        ("flag-2", "rr", ["flag-2"]),
    ],
)
def test_sched_flags(flags: str, sched: str | None, names: list[str]) -> None:
    args = ["-A", "-t", "1.2.3.4:80", "-b", flags] + (["-s", sched] if sched else [])
    assert P(*args).sched_flags == names


def test_empty_sched_flags_are_no_flags() -> None:
    assert P("-A", "-t", "1.2.3.4:80", "-b", "").sched_flags == []


def test_fwmark_services() -> None:
    c = P("-A", "-f", "4294967295")
    assert c.service == ServiceArg(protocol="", address="", port=0, fwmark=4294967295)
    c6 = P("-A", "-f", " 7", "-6", "-p", "-M", "64")
    assert c6.service is not None and (c6.service.fwmark, c6.service.family) == (7, "inet6")
    assert c6.netmask == "64"
    assert P("-A", "-f", "5", "-o").ops  # OPS on a fwmark service is fine
    assert P("-L", "-f", "1", "-6", "-6").service.family == "inet6"  # type: ignore[union-attr]


def test_netmask_depends_on_the_order_as_in_ipvsadm() -> None:
    # -M before the family is known is read as an IPv4 mask ...
    assert P("-A", "-t", "1.2.3.4:80", "-M", "24").netmask == "0.0.0.24"
    # ... and an IPv6 service or -6 then resets the mask to 128.
    assert P("-A", "-M", "64", "-t", "[::1]:80").netmask == "128"
    assert P("-A", "-f", "1", "-M", "64", "-6").netmask == "128"
    assert P("-A", "-t", "[::1]:80", "-M", "64").netmask == "64"
    assert P("-A", "-f", "1", "-6", "-M", "64x").netmask == "64"  # atoi
    assert P("-A", "-f", "1", "-6", "-M", "4294967360").netmask == "64"  # (u32)(int)strtol
    assert P("-A", "-t", "1.2.3.4:80", "-M", "mask.example").netmask == "255.255.0.0"
    assert P("-A", "-t", "1.2.3.4:80", "-M", "0xffffff00").netmask == "255.255.255.0"


# --------------------------------------------------------------------------
# Addresses and names


@pytest.mark.parametrize(
    ("text", "proto", "address", "port", "family"),
    [
        ("1.2.3.4:80", "tcp", "1.2.3.4", 80, "inet"),
        ("[2001:db8::1]:443", "tcp", "2001:db8::1", 443, "inet6"),
        ("[::ffff:1.2.3.4]:80", "tcp", "::ffff:1.2.3.4", 80, "inet6"),
        ("10:80", "tcp", "0.0.0.10", 80, "inet"),  # inet_aton("10")
        ("10.1:80", "tcp", "10.0.0.1", 80, "inet"),
        ("0x7f.1:80", "tcp", "127.0.0.1", 80, "inet"),
        ("010.0.0.1:80", "tcp", "8.0.0.1", 80, "inet"),  # octal
        ("1.2.3.4:http", "tcp", "1.2.3.4", 80, "inet"),
        ("1.2.3.4:domain", "udp", "1.2.3.4", 53, "inet"),
        ("www.example.com:https", "tcp", "192.0.2.10", 443, "inet"),  # first address
        ("localhost:80", "tcp", "127.0.0.1", 80, "inet"),
        ("1.2.3.4: 80", "tcp", "1.2.3.4", 80, "inet"),
        ("1.2.3.4:-0", "tcp", "1.2.3.4", 0, "inet"),
    ],
)
def test_service_addresses(text: str, proto: str, address: str, port: int, family: str) -> None:
    opt = {"tcp": "-t", "udp": "-u"}[proto]
    c = P("-A", opt, text, "-p")
    assert c.service == ServiceArg(protocol=proto, address=address, port=port, family=family)


def test_sctp_service() -> None:
    c = P("-A", "--sctp-service", "1.2.3.4:http")
    assert c.service == ServiceArg(protocol="sctp", address="1.2.3.4", port=80)


def test_names_refused_when_numeric() -> None:
    with pytest.raises(UsageError) as info:
        P("-A", "-t", "www.example.com:80", numeric=True)
    assert info.value.message == "illegal virtual server address[:port] specified"
    with pytest.raises(UsageError):
        P("-A", "-t", "1.2.3.4:http", numeric=True)
    assert P("-A", "-t", "1.2.3.4:80", numeric=True).service is not None


def test_listing_still_resolves_with_n() -> None:
    # -n is about output only: ipvsadm resolves -t names even with -n.
    r = FakeResolver()
    c = parse(["-Ln", "-t", "www.example.com:http"], r)
    assert c.service is not None and (c.service.address, c.service.port) == ("192.0.2.10", 80)
    assert ("www.example.com", "inet") in r.asked and ("http", "tcp") in r.asked


def test_numeric_addresses_never_reach_the_resolver() -> None:
    r = FakeResolver()
    parse(["-a", "-t", "1.2.3.4:80", "-r", "[::2]:80", "-i"], r)
    assert r.asked == []


def test_system_resolver_protocol() -> None:
    assert A.SystemResolver().addr("", "inet") == []
    assert A.NumericResolver().addr("localhost", "inet") == []
    assert A.NumericResolver().port("http", "tcp") is None


# --------------------------------------------------------------------------
# Real servers


def test_real_server_defaults_unset() -> None:
    c = P("-a", "-t", "10.0.0.1:80", "-r", "10.0.0.2:8080")
    assert (c.dest_address, c.dest_port, c.dest_family) == ("10.0.0.2", 8080, "inet")
    assert (c.fwd_method, c.weight, c.u_thresh, c.l_thresh) == (None, None, None, None)
    assert (c.tun_type, c.tun_port, c.tun_flags, c.proxy_protocol) == (None, None, None, None)


def test_real_server_without_port_takes_the_service_port() -> None:
    c = P("-a", "-t", "10.0.0.1:80", "-r", "10.0.0.2", "-m")
    assert c.dest_port == 80
    # ... the port the service has when -r is read: none yet gives 0 (ipvsadm does the same)
    assert P("-a", "-r", "10.0.0.2", "-t", "10.0.0.1:80", "-m").dest_port == 0
    assert P("-d", "-t", "10.0.0.1:80", "-r", "10.0.0.2").dest_port == 80


@pytest.mark.parametrize(
    ("method", "name", "port"),
    [("-g", "droute", 80), ("-i", "tunnel", 80), ("-m", "masq", 8080),
     ("--gatewaying", "droute", 80), ("--ipip", "tunnel", 80),
     ("--masquerading", "masq", 8080), ("--fullnat", "fullnat", 8080)],
)  # fmt: skip
def test_forwarding_method_and_port(method: str, name: str, port: int) -> None:
    # DR and TUN force the real server port to the service port (not for fwmark)
    c = P("-a", "-t", "10.0.0.1:80", "-r", "10.0.0.2:8080", method)
    assert (c.fwd_method, c.dest_port) == (name, port)
    e = P("-e", "-t", "10.0.0.1:80", "-r", "10.0.0.2:8080", method)
    assert (e.fwd_method, e.dest_port) == (name, port)
    f = P("-a", "-f", "3", "-r", "10.0.0.2:8080", method)
    assert f.dest_port == 8080


def test_forwarding_method_left_to_the_daemon() -> None:
    # ipvsadm's default (DR) would make this port 80; pylvsd picks the method.
    assert P("-a", "-t", "10.0.0.1:80", "-r", "10.0.0.2:8080").dest_port == 8080
    # the delete command never forces the port
    assert P("-d", "-t", "10.0.0.1:80", "-r", "10.0.0.2:8080").dest_port == 8080


def test_real_server_names_use_the_service_protocol() -> None:
    assert P("-a", "-u", "10.0.0.1:53", "-r", "www.example.com:domain", "-m").dest_port == 53
    # -f sets TCP as a "sane value" for such lookups
    c = P("-a", "-f", "3", "-r", "10.0.0.2:http", "-m")
    assert (c.dest_address, c.dest_port) == ("10.0.0.2", 80)


def test_tunnel_to_another_family() -> None:
    c = P("-a", "-t", "1.2.3.4:80", "-r", "[::2]:81", "-i")
    assert (c.dest_address, c.dest_port, c.dest_family) == ("::2", 80, "inet6")


def test_weights_and_thresholds() -> None:
    c = P("-a", "-t", "1.2.3.4:80", "-r", "10.0.0.2", "-w", "0", "-x", "5", "-y", "2")
    assert (c.weight, c.u_thresh, c.l_thresh) == (0, 5, 2)
    assert P("-a", "-t", "1.2.3.4:80", "-r", "10.0.0.2", "-w", "65535").weight == 65535
    assert P("-e", "-t", "1.2.3.4:80", "-r", "10.0.0.2", "--weight=7").weight == 7
    big = P("-a", "-t", "1.2.3.4:80", "-r", "10.0.0.2", "-x", "2147483647")
    assert big.u_thresh == 2147483647


@pytest.mark.parametrize(
    ("extra", "tun_type", "tun_port", "tun_flags"),
    [
        (["--tun-type", "ipip"], "ipip", None, None),
        (["--tun-type", "gue", "--tun-port", "6080"], "gue", 6080, None),
        (["--tun-type", "gue", "--tun-port", "6080", "--tun-nocsum"], "gue", 6080, 0),
        (["--tun-type", "gue", "--tun-port", "6080", "--tun-csum"], "gue", 6080, 1),
        (["--tun-type", "gue", "--tun-port", "6080", "--tun-remcsum"], "gue", 6080, 2),
        (["--tun-type", "gre", "--tun-csum"], "gre", None, 1),
        (["--tun-type", "gre", "--tun-nocsum"], "gre", None, 0),
    ],
)
def test_tunnel_options(
    extra: list[str], tun_type: str, tun_port: int | None, tun_flags: int | None
) -> None:
    c = P("-a", "-t", "1.2.3.4:80", "-r", "10.0.0.2", "-i", *extra)
    assert (c.tun_type, c.tun_port, c.tun_flags) == (tun_type, tun_port, tun_flags)


# --------------------------------------------------------------------------
# popt: clusters, attached arguments, leftovers


@pytest.mark.parametrize(
    "args",
    [
        ["-At", "1.2.3.4:80"], ["-At1.2.3.4:80"], ["-At=1.2.3.4:80"], ["-A", "-t=1.2.3.4:80"],
        ["-A", "-t1.2.3.4:80"], ["-A", "--tcp-service=1.2.3.4:80"],
        ["-A", "--tcp-service", "1.2.3.4:80"], ["-A", "-t", "1.2.3.4:80", "--"],
        ["-A", "-t", "1.2.3.4:80", "--sort"],
    ],
)  # fmt: skip
def test_ways_to_write_one_option(args: list[str]) -> None:
    c = P(*args)
    assert c.cmd is Cmd.ADD and c.service is not None and c.service.port == 80


def test_short_clusters() -> None:
    c = P("-Lnc")
    assert (c.cmd, c.fmt.numeric, c.fmt.connection) == (Cmd.LIST, True, True)
    c = P("-Ln", "--timeout")
    assert c.fmt.timeout and c.fmt.numeric
    c = P("-at", "1.2.3.4:80", "-r10.0.0.2", "-mw3")
    assert (c.fwd_method, c.weight) == ("masq", 3)


def test_required_arguments_may_start_with_a_dash() -> None:
    # only the optional -p argument refuses a word starting with "-"
    assert P("-A", "-t", "1.2.3.4:80", "-s", "--").sched_name == "--"


def test_no_backslash_processing() -> None:
    assert P("-A", "-t", "1.2.3.4:80", "-s", "a\\b").sched_name == "a\\b"


# --------------------------------------------------------------------------
# Listing, --set, daemons


def test_list_flags() -> None:
    c = P("-L", "--stats", "--rate", "--thresholds", "--persistent-conn", "--nosort",
          "--exact", "--tun-info", "--sort", "-n")  # fmt: skip
    f = c.fmt
    assert (f.stats, f.rate, f.thresholds, f.persistent_conn, f.nosort, f.exact, f.tun_info) == (
        True, True, True, True, True, True, True,
    )  # fmt: skip
    assert P("-L", "-X").fmt.exact
    assert P("-L", "--daemon").fmt.daemon
    assert P("-L", "--json").fmt.json
    assert P("-L", "-t", "1.2.3.4:80", "--stats").service is not None
    assert P("-L", "--syncid", "3").cmd is Cmd.LIST  # allowed by ipvsadm's table
    assert P("-S", "-n").fmt.numeric


def test_set_timeouts() -> None:
    assert P("--set", "900", "120", "300").timeouts == (900, 120, 300)
    assert P("--set", "0", "0", "0").timeouts == (0, 0, 0)  # 0 leaves a value unchanged
    assert P("--set", "1", "--", "2", "3").timeouts == (1, 2, 3)


def test_daemons() -> None:
    c = P("--start-daemon", "backup", "--mcast-interface", "eth1", "--syncid", "5",
          "--mcast-group", "224.0.0.82", "--mcast-port", "9000", "--mcast-ttl", "2",
          "--sync-maxlen", "1000")  # fmt: skip
    got = (c.daemon_state, c.mcast_interface, c.syncid, c.mcast_group, c.mcast_port,
           c.mcast_ttl, c.sync_maxlen)  # fmt: skip
    assert got == ("backup", "eth1", 5, "224.0.0.82", 9000, 2, 1000)
    d = P("--start-daemon", "master", "--mcast-group", "ff02::1")
    assert (d.daemon_state, d.mcast_interface, d.mcast_group) == ("master", None, "ff02::1")
    assert P("--stop-daemon", "backup", "--syncid", "3").syncid == 3
    assert P("--start-daemon", "master", "--sync-maxlen", "65507").sync_maxlen == 65507


# --------------------------------------------------------------------------
# Extensions


def test_laddr_commands() -> None:
    c = P("--add-laddr", "-t", "10.0.0.1:80", "-z", "10.0.0.9")
    assert (c.cmd, c.laddr) == (Cmd.ADDLADDR, "10.0.0.9")
    assert c.service is not None and c.service.address == "10.0.0.1"
    assert P("--del-laddr", "-t", "10.0.0.1:80", "--laddr", "2001:db8::9").laddr == "2001:db8::9"
    g = P("--get-laddr", "-t", "10.0.0.1:80", "--json", "-n")
    assert g.cmd is Cmd.GETLADDR and g.fmt.json and g.service is not None
    assert P("--get-laddr").service is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--add-laddr", "-t", "10.0.0.1:80"],
            "You need to supply the 'laddr' option for the 'add-laddr' command",
        ),
        (
            ["--del-laddr", "-z", "10.0.0.9"],
            "You need to supply the 'service-address' option for the 'del-laddr' command",
        ),
        (
            ["--add-laddr", "-t", "10.0.0.1:80", "-z", "host.example"],
            "illegal local address specified",
        ),
        (["--get-laddr", "-z", "10.0.0.9"], "Illegal 'laddr' option with the 'get-laddr' command"),
        (
            ["--add-laddr", "-t", "10.0.0.1:80", "-z", "10.0.0.9", "-s", "rr"],
            "Illegal 'scheduler' option with the 'add-laddr' command",
        ),
        (
            ["-A", "-t", "10.0.0.1:80", "-z", "10.0.0.9"],
            "Illegal 'laddr' option with the 'add-service' command",
        ),
        (
            ["-a", "-t", "1.2.3.4:80", "-r", "10.0.0.2", "--proxy-protocol", "v3"],
            "illegal proxy-protocol specified",
        ),
        (
            ["-d", "-t", "1.2.3.4:80", "-r", "10.0.0.2", "--proxy-protocol", "v1"],
            "Illegal 'proxy-protocol' option with the 'delete-server' command",
        ),
        (
            ["-A", "-t", "1.2.3.4:80", "--json"],
            "Illegal 'json' option with the 'add-service' command",
        ),
        (
            ["-a", "-t", "1.2.3.4:80", "-r", "10.0.0.2", "--fullnat", "-m"],
            "multiple 'forwarding-method' options specified",
        ),
        (["--socket", "/a", "-L", "--socket", "/b"], "multiple 'socket' options specified"),
    ],
)
def test_extension_refusals(args: list[str], message: str) -> None:
    e = refusal(*args)
    assert (e.message, e.exit_code) == (message, 2)


def test_proxy_protocol_and_fullnat() -> None:
    c = P("-a", "-t", "1.2.3.4:80", "-r", "10.0.0.2:8080", "--fullnat", "--proxy-protocol", "v2")
    assert (c.fwd_method, c.proxy_protocol, c.dest_port) == ("fullnat", "v2", 8080)
    assert P("-e", "-t", "1.2.3.4:80", "-r", "10.0.0.2", "--proxy-protocol", "v1").proxy_protocol


def test_socket_anywhere() -> None:
    assert P("--socket", "/run/p.sock", "-Ln").socket == "/run/p.sock"
    assert P("-A", "-t", "1.2.3.4:80", "--socket", "/x").socket == "/x"
    assert P("--socket", "/x") == Command(Cmd.LIST, socket="/x")
    assert P("--socket", "/x", "-h").cmd is Cmd.HELP
    assert refusal("--socket", "/x", "foo").message == TRY
    assert refusal("--socket").message == TRY


# --------------------------------------------------------------------------
# The legality table, hand-copied from ipvsadm.c (34 columns, optnames order)

IPVSADM_TABLE = {
    Cmd.ADD: "xx+   xxxxxxxxxxxxxxx   xxxxxxxxxx",
    Cmd.EDIT: "xx+   xxxxxxxxxxxxxxx   xxxxxxxxxx",
    Cmd.DEL: "xx+" + "x" * 31,
    Cmd.FLUSH: "x" * 34,
    Cmd.LIST: " 11xxxxxxxxx11       xxxxxxx xxxxx",
    Cmd.ADDDEST: "xx+xxx+    xxxxxxxxxxxxxxxxxx     ",
    Cmd.DELDEST: "xx+xxx+" + "x" * 27,
    Cmd.EDITDEST: "xx+xxx+    xxxxxxxxxxxxxxxxxx     ",
    Cmd.TIMEOUT: "x" * 34,
    Cmd.STARTDAEMON: "xxxxxxxxxxx xxxxxxx xxxx    xxxxxx",
    Cmd.STOPDAEMON: "xxxxxxxxxxxxxxxxxxx xxxxxxxxxxxxxx",
    Cmd.RESTORE: "x" * 34,
    Cmd.SAVE: " " + "x" * 33,
    Cmd.ZERO: "xx " + "x" * 31,
}


def test_table_matches_ipvsadm() -> None:
    for cmd, row in IPVSADM_TABLE.items():
        assert A.COMMANDS_V_OPTIONS[cmd][:34] == row, cmd
        assert A.COMMANDS_V_OPTIONS[cmd][-1] == " "  # --socket goes with everything
    assert A.OPTNAMES[:3] == ("numeric", "connection", "service-address")
    assert A.OPTNAMES[33] == "tun-remcsum"


# --------------------------------------------------------------------------
# -R


def test_restore_words() -> None:
    text = "ipvsadm -A -t 1.2.3.4:80\n\n   \n\t-C\r\nipvsadm\n-a ipvsadm -t 1.2.3.4:80 -r 10.0.0.1"
    assert A.restore_words(text) == [
        (1, ["-A", "-t", "1.2.3.4:80"]),
        (4, ["-C"]),
        (6, ["-a", "-t", "1.2.3.4:80", "-r", "10.0.0.1"]),
    ]
    assert A.restore_words("-A\v-t") == [(1, ["-A\v-t"])]  # only blank, tab, CR separate


def test_restore_parses_every_line() -> None:
    text = ("-A -t 10.0.0.1:80 -s rr\n"
            "-a -t 10.0.0.1:80 -r 10.0.0.2:80 -m -w 3\n"
            "\n"
            "pylvsadm -a -t 10.0.0.1:80 -r 10.0.0.3 -g\n"
            "-Z\n--set 1 2 3\n-L -n\n")  # fmt: skip
    got = parse_restore(text, FakeResolver())
    assert [(n, c.cmd) for n, c in got] == [
        (1, Cmd.ADD), (2, Cmd.ADDDEST), (4, Cmd.ADDDEST), (5, Cmd.ZERO), (6, Cmd.TIMEOUT),
        (7, Cmd.LIST),
    ]  # fmt: skip
    assert got[1][1].weight == 3 and got[2][1].dest_address == "10.0.0.3"


def test_restore_is_all_or_nothing() -> None:
    with pytest.raises(UsageError) as info:
        parse_restore("-C\n-A -t 10.0.0.1:80\n-A -t bad\n-C\n", FakeResolver())
    e = info.value
    assert (e.line, e.exit_code) == (3, 2)
    assert e.message == "illegal virtual server address[:port] specified"


def test_restore_hash_is_not_a_comment() -> None:
    # config_stream_read's comment test looks at the separator, never at the word
    with pytest.raises(UsageError) as info:
        parse_restore("-A -t 1.2.3.4:80 # comment\n", FakeResolver())
    assert (info.value.message, info.value.line) == ("unexpected argument #", 1)
    with pytest.raises(UsageError) as info:
        parse_restore("-C\n# comment line\n", FakeResolver())
    assert (info.value.message, info.value.exit_code, info.value.line) == (TRY, 255, 2)


def test_restore_refuses_restore() -> None:
    with pytest.raises(UsageError) as info:
        parse_restore("-C\n-R\n", FakeResolver(), prog="/sbin/ipvsadm")
    assert info.value.message == (
        "Try `/sbin/ipvsadm -h' or '/sbin/ipvsadm --help' for more information."
    )
    assert (info.value.exit_code, info.value.line) == (255, 2)
    with pytest.raises(UsageError) as info:
        parse_restore("-R -n\n", FakeResolver())
    assert info.value.message == "Illegal 'numeric' option with the 'restore' command"


def test_restore_stops_at_help() -> None:
    got = parse_restore("-C\n-h\n-A -t bad\n", FakeResolver())
    assert [c.cmd for _, c in got] == [Cmd.FLUSH, Cmd.HELP]


def test_restore_last_line_without_newline() -> None:
    assert [c.cmd for _, c in parse_restore("-C\n-Z", FakeResolver())] == [Cmd.FLUSH, Cmd.ZERO]
    # ipvsadm drops a last line ending in blanks without a newline; we do not
    assert [c.cmd for _, c in parse_restore("-C\n-Z  ", FakeResolver())] == [Cmd.FLUSH, Cmd.ZERO]


def test_restore_numeric() -> None:
    with pytest.raises(UsageError):
        parse_restore("-A -t localhost:80\n", numeric=True)
    assert parse_restore("-A -t 127.0.0.1:80\n", numeric=True)[0][1].cmd is Cmd.ADD


# --------------------------------------------------------------------------
# -h, -v


def test_version_text() -> None:
    # IPVSADM_VERSION "v1.31 2019/12/24", IPVS_OPTION_PROCESSING "popt", IP_VS_VERSION_CODE 0x010201
    assert A.VERSION == "ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)"


def test_usage_text() -> None:
    text = A.usage_text("./ipvsadm")
    lines = text.split("\n")
    assert lines[0] == A.VERSION
    assert lines[1] == "Usage:"
    assert lines[2] == (
        "  ./ipvsadm -A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask]"
        " [--pe persistence_engine] [-b sched-flags]"
    )
    assert lines[14] == "  ./ipvsadm -h"
    assert lines[15] == ""
    assert (
        "  --scheduler    -s scheduler         one of rr|wrr|lc|wlc|lblc|lblcr|dh|sh|sed|nq|"
        "fo|ovf|mh,\n                                      the default scheduler is wlc.\n" in text
    )
    assert (
        "  --pe            engine              alternate persistence engine may be sip,\n" in text
    )
    assert ("  --nosort                            disable sorting output of service/server "
            "entries\n") in text  # fmt: skip
    daemon = text.index("Daemon Options:\n")
    assert (
        text[daemon - 67 : daemon]
        == ("  --sched-flags  -b flags             scheduler flags (comma-separated)\n")[-67:]
    )
    assert text[daemon:].startswith(
        "Daemon Options:\n"
        "  --syncid sid                        syncid for connection sync (default=255)\n"
        "  --sync-maxlen length                Max sync message length (default=1472)\n"
        "  --mcast-interface interface         multicast interface for connection sync\n"
        "  --mcast-group address               IPv4/IPv6 group (default=224.0.0.81)\n"
        "  --mcast-port port                   UDP port (default=8848)\n"
        "  --mcast-ttl ttl                     Multicast TTL (default=1)\n"
        "pylvs extensions:\n"
    )
    for word in ("--fullnat", "--add-laddr", "--del-laddr", "--get-laddr", "-z",
                 "--proxy-protocol v1|v2", "--json", "--socket"):  # fmt: skip
        assert word in text[daemon:]
    assert A.usage_text("pylvsadm") == A.USAGE


# --------------------------------------------------------------------------
# C conversions


@pytest.mark.parametrize(
    "text",
    ["1.2.3.4", "10", "10.1", "10.1.2", "0x7f.1", "010.0.0.1", "1.2.3.4 junk", "1.2.3.4\t",
     "256.1.1.1", "1.2.3.256", "1.2.65536", "1.16777216", "4294967295", "4294967296", "08",
     "0x", "0x1g", "1..2", ".1", "1.", "", " 1.2.3.4", "+1", "1.2.3.4.5", "0xffffffff",
     "0377.0377.0377.0377", "1.2.3.4x"],
)  # fmt: skip
def test_inet_aton_like_glibc(text: str) -> None:
    try:
        expected: str | None = socket.inet_ntoa(socket.inet_aton(text))
    except OSError:
        expected = None
    assert A.inet_aton(text) == expected


def test_string_to_number() -> None:
    assert A.string_to_number(" +12", 0, 100) == 12
    assert A.string_to_number("12 ", 0, 100) is None
    assert A.string_to_number("", 0, 100) is None
    assert A.string_to_number("-0", 0, 100) == 0
    assert A.string_to_number("99999999999999999999", 0, 2**62) is None
    assert A.str_is_digit("") and A.str_is_digit("123") and not A.str_is_digit("1a")


# --------------------------------------------------------------------------
# The seeds' command lines

SEEDS = Path(__file__).with_name("seed_commands.txt")


def seed_lines() -> list[str]:
    return [line for line in SEEDS.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_seed_file_is_not_empty() -> None:
    assert len(seed_lines()) >= 25


@pytest.mark.parametrize("line", seed_lines())
def test_seed_command_parses(line: str) -> None:
    words = line.split()
    assert words[0] == "ipvsadm"
    c = parse(words[1:], FakeResolver(), numeric=True)
    assert c.cmd is not Cmd.HELP


def test_seed_examples_mean_what_the_articles_say() -> None:
    c = P("-a", "-t", "192.168.184.10:3306", "-r", "192.168.184.50:3306", "-g", "-w", "1")
    assert (c.fwd_method, c.weight, c.dest_port) == ("droute", 1, 3306)
    c = P("-A", "-t", "172.16.100.1:0", "-p")
    assert c.service is not None and (c.service.port, c.persistent) == (0, 360)
    assert P("-lnc").fmt.connection
    assert P("--set", "1200", "5", "60").timeouts == (1200, 5, 60)
