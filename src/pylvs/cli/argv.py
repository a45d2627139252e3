"""pylvsadm's command line: ipvsadm 1.31's parser (ipvsadm.c, config_stream.c, popt 1.19).

Mirrors ``parse_options``/``process_options`` of ipvsadm 1.31 (2019/12/24) as
linked against popt 1.19: the same options, the same option table
(``commands_v_options``), the same checks in the same order, the same
messages and exit codes.  Nothing here talks to pylvsd; an unknown scheduler
is left for the daemon to refuse, as ipvsadm leaves it to the kernel.

Refusals raise ``UsageError``.  ``message`` is what ipvsadm writes to stderr
without its final newline; ``exit_code`` is ipvsadm's exit status: 2 for its
``fail()``, 255 for ``exit(-1)`` (the "Try ..." hint, popt errors).

Deliberate differences, all documented in ``USAGE`` or below:

* Values a command line does not give stay ``None`` (scheduler, weight,
  forwarding method, ...) as ``pylvs.cli.command`` documents; ipvsadm fills
  in wlc / weight 1 / direct routing.  Because the forwarding method stays
  ``None``, the "real server port = service port" rule is applied here only
  for an explicit -g or -i; pylvsd applies it when its default is DR or TUN.
  The absent method still counts as "not tunneling" for the address-family
  and tunnel-option checks, exactly as ipvsadm's default does.
* ``-p`` without a value gives 360 seconds: ipvsadm 1.31 sends
  IPVS_SVC_PERSISTENT_TIMEOUT (6*60), whatever its man page says (300).
* Extensions: --fullnat, --add-laddr/--del-laddr/--get-laddr with -z/--laddr,
  --proxy-protocol v1|v2, --json and --socket PATH (the only option that may
  come before the command).  Their columns sit after ipvsadm's in the option
  table, so ipvsadm's own messages come out first and unchanged.
* Restore files: "pylvsadm" words are dropped like "ipvsadm" words; a last
  line without a newline is read even when it ends in blanks (ipvsadm drops
  it); a ``-b`` list with no flag in it (",") is refused instead of crashing;
  the whole file is parsed before anything is applied.
* popt's "!#:+" argument expansion and POSIXLY_CORRECT are not reproduced.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass, field
from typing import Protocol

from pylvs.cli.command import Cmd, Command, ListFormat, ServiceArg

# --------------------------------------------------------------------------
# Texts

SCHEDULERS = "rr|wrr|lc|wlc|lblc|lblcr|dh|sh|sed|nq|fo|ovf|mh"
PE_LIST = "sip"
DEF_SCHED = "wlc"
DEF_TUNNEL_TYPE = "ipip"

#: ``ipvsadm -v``, kept byte for byte so that scripts parsing it keep working.
VERSION = "ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)"

MAX_TIMEOUT = 86400 * 31
PERSISTENT_TIMEOUT = 6 * 60  # IPVS_SVC_PERSISTENT_TIMEOUT of libipvs
SCHEDNAME_MAXLEN = 16  # IP_VS_SCHEDNAME_MAXLEN (strncpy keeps 15)
PENAME_MAXLEN = 16  # IP_VS_PENAME_MAXLEN (strncpy keeps 16)
IFNAME_MAXLEN = 16  # IP_VS_IFNAME_MAXLEN (strncpy keeps 15)
SCHED_FLAGS_BUF = 128  # char sched_flags_arg[128]
INT_MAX = 2**31 - 1
UINT_MAX = 2**32 - 1
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1


def usage_text(prog: str) -> str:
    """``ipvsadm -h`` (to stdout, exit 0), with pylvs's extensions at the end."""
    p = prog
    return (
        f"{VERSION}\n"
        "Usage:\n"
        f"  {p} -A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask]"
        " [--pe persistence_engine] [-b sched-flags]\n"
        f"  {p} -D virtual-service\n"
        f"  {p} -C\n"
        f"  {p} -R\n"
        f"  {p} -S [-n]\n"
        f"  {p} -a|e virtual-service -r server-address [options]\n"
        f"  {p} -d virtual-service -r server-address\n"
        f"  {p} -L|l [virtual-service] [options]\n"
        f"  {p} -Z [virtual-service]\n"
        f"  {p} --set tcp tcpfin udp\n"
        f"  {p} --start-daemon {{master|backup}} [daemon-options]\n"
        f"  {p} --stop-daemon {{master|backup}}\n"
        f"  {p} -h\n\n"
        "Commands:\n"
        "Either long or short options are allowed.\n"
        "  --add-service     -A        add virtual service with options\n"
        "  --edit-service    -E        edit virtual service with options\n"
        "  --delete-service  -D        delete virtual service\n"
        "  --clear           -C        clear the whole table\n"
        "  --restore         -R        restore rules from stdin\n"
        "  --save            -S        save rules to stdout\n"
        "  --add-server      -a        add real server with options\n"
        "  --edit-server     -e        edit real server with options\n"
        "  --delete-server   -d        delete real server\n"
        "  --list            -L|-l     list the table\n"
        "  --zero            -Z        zero counters in a service or all services\n"
        "  --set tcp tcpfin udp        set connection timeout values\n"
        "  --start-daemon              start connection sync daemon\n"
        "  --stop-daemon               stop connection sync daemon\n"
        "  --help            -h        display this help message\n\n"
        "virtual-service:\n"
        "  --tcp-service|-t  service-address   service-address is host[:port]\n"
        "  --udp-service|-u  service-address   service-address is host[:port]\n"
        "  --sctp-service    service-address   service-address is host[:port]\n"
        "  --fwmark-service|-f fwmark          fwmark is an integer greater than zero\n"
        "\n"
        "Options:\n"
        "  --ipv6         -6                   fwmark entry uses IPv6\n"
        f"  --scheduler    -s scheduler         one of {SCHEDULERS},\n"
        f"                                      the default scheduler is {DEF_SCHED}.\n"
        "  --pe            engine              alternate persistence engine may be"
        f" {PE_LIST},\n"
        "                                      not set by default.\n"
        "  --persistent   -p [timeout]         persistent service\n"
        "  --netmask      -M netmask           persistent granularity mask\n"
        "  --real-server  -r server-address    server-address is host (and port)\n"
        "  --gatewaying   -g                   gatewaying (direct routing) (default)\n"
        "  --ipip         -i                   ipip encapsulation (tunneling)\n"
        "  --masquerading -m                   masquerading (NAT)\n"
        "  --tun-type      type                one of ipip|gue|gre,\n"
        f"                                      the default tunnel type is {DEF_TUNNEL_TYPE}.\n"
        "  --tun-port      port                tunnel destination port\n"
        "  --tun-nocsum                        tunnel encapsulation without checksum\n"
        "  --tun-csum                          tunnel encapsulation with checksum\n"
        "  --tun-remcsum                       tunnel encapsulation with remote checksum\n"
        "  --weight       -w weight            capacity of real server\n"
        "  --u-threshold  -x uthreshold        upper threshold of connections\n"
        "  --l-threshold  -y lthreshold        lower threshold of connections\n"
        "  --connection   -c                   output of current IPVS connections\n"
        "  --timeout                           output of timeout (tcp tcpfin udp)\n"
        "  --daemon                            output of daemon information\n"
        "  --stats                             output of statistics information\n"
        "  --rate                              output of rate information\n"
        "  --exact                             expand numbers (display exact values)\n"
        "  --thresholds                        output of thresholds information\n"
        "  --persistent-conn                   output of persistent connection info\n"
        "  --tun-info                          output of tunnel information\n"
        "  --nosort                            disable sorting output of service/server"
        " entries\n"
        "  --sort                              does nothing, for backwards compatibility\n"
        "  --ops          -o                   one-packet scheduling\n"
        "  --numeric      -n                   numeric output of addresses and ports\n"
        "  --sched-flags  -b flags             scheduler flags (comma-separated)\n"
        "Daemon Options:\n"
        "  --syncid sid                        syncid for connection sync (default=255)\n"
        "  --sync-maxlen length                Max sync message length (default=1472)\n"
        "  --mcast-interface interface         multicast interface for connection sync\n"
        "  --mcast-group address               IPv4/IPv6 group (default=224.0.0.81)\n"
        "  --mcast-port port                   UDP port (default=8848)\n"
        "  --mcast-ttl ttl                     Multicast TTL (default=1)\n"
        "pylvs extensions:\n"
        f"  {p} --add-laddr|--del-laddr virtual-service -z local-address\n"
        f"  {p} --get-laddr [virtual-service] [--json]\n"
        "  --add-laddr                         add a FULLNAT local address to a service\n"
        "  --del-laddr                         delete a FULLNAT local address\n"
        "  --get-laddr                         list FULLNAT local addresses\n"
        "  --laddr        -z address           local address (IPv4 or IPv6)\n"
        "  --fullnat                           full NAT (source and destination)\n"
        "  --proxy-protocol v1|v2              send a PROXY protocol header to the server\n"
        "  --json                              list in JSON\n"
        "  --socket        path                pylvsd control socket (any position)\n"
        "  twos is also a scheduler; -R/--restore applies a file all or nothing.\n"
    )


#: ``usage_text`` for the program name "pylvsadm".
USAGE = usage_text("pylvsadm")


def tryhelp(prog: str) -> str:
    return f"Try `{prog} -h' or '{prog} --help' for more information."


# --------------------------------------------------------------------------
# Errors and name resolution


class UsageError(Exception):
    """A refused command line: print ``message`` + newline to stderr, exit ``exit_code``."""

    def __init__(
        self, message: str, exit_code: int = 2, show_usage: bool = False, line: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.show_usage = show_usage  # ipvsadm never prints its usage on an error
        self.line = line  # restore: 1-based line of the offending command


class Resolver(Protocol):
    """Host and service names (ipvsadm: gethostbyname, getservbyname)."""

    def addr(self, host: str, family: str) -> list[str]: ...

    def port(self, name: str, proto: str) -> int | None: ...


class SystemResolver:
    """The system's resolver: IPv4 host addresses, /etc/services ports."""

    def addr(self, host: str, family: str) -> list[str]:
        if not host:
            return []
        fam = socket.AF_INET6 if family == "inet6" else socket.AF_INET
        try:
            infos = socket.getaddrinfo(host, None, fam, socket.SOCK_STREAM)
        except (OSError, UnicodeError, ValueError):
            return []
        return [str(info[4][0]) for info in infos]

    def port(self, name: str, proto: str) -> int | None:
        try:
            return socket.getservbyname(name, proto)
        except (OSError, UnicodeError, ValueError):
            return None


class NumericResolver:
    """No names at all (rules files read by pylvsd)."""

    def addr(self, host: str, family: str) -> list[str]:
        return []

    def port(self, name: str, proto: str) -> int | None:
        return None


# --------------------------------------------------------------------------
# C conversions (glibc semantics)

_STRTOL = re.compile(r"[ \t\n\v\f\r]*([+-]?[0-9]+)")


def _strtol_prefix(s: str) -> tuple[int, int] | None:
    """strtol(s, &end, 10): (value saturated to long, end index), None if no digits."""
    m = _STRTOL.match(s)
    if m is None:
        return None
    return max(LONG_MIN, min(LONG_MAX, int(m.group(1)))), m.end()


def string_to_number(s: str, lo: int, hi: int) -> int | None:
    """ipvsadm's string_to_number(): a whole decimal number within [lo, hi]."""
    r = _strtol_prefix(s)
    if r is None or r[1] != len(s):
        return None
    value = r[0]
    return value if lo <= value <= hi else None


def _atoi_u32(s: str) -> int:
    """(u_int32_t) atoi(s)."""
    r = _strtol_prefix(s)
    return 0 if r is None else r[0] & 0xFFFFFFFF


def str_is_digit(s: str) -> bool:
    """ipvsadm's str_is_digit(): true for "" and for all-digit strings."""
    return all("0" <= c <= "9" for c in s)


_SPACE = " \t\n\v\f\r"


def _strtoul0(s: str) -> tuple[int, int]:
    """strtoul(s, &end, 0) for s starting with a digit: (value, characters used)."""
    if s[:2] in ("0x", "0X") and len(s) > 2 and s[2] in "0123456789abcdefABCDEF":
        m = re.match(r"[0-9a-fA-F]+", s[2:])
        assert m is not None
        return int(m.group(0), 16), 2 + m.end()
    if s[0] == "0":
        m = re.match(r"[0-7]*", s[1:])
        assert m is not None
        return (int(m.group(0), 8) if m.group(0) else 0), 1 + m.end()
    m = re.match(r"[0-9]+", s)
    assert m is not None
    return int(m.group(0)), m.end()


def inet_aton(s: str) -> str | None:
    """glibc inet_aton(): "a", "a.b", "a.b.c", "a.b.c.d" in C number syntax, dotted quad."""
    parts: list[int] = []
    i = 0
    while True:
        if i >= len(s) or not ("0" <= s[i] <= "9"):
            return None
        value, used = _strtoul0(s[i:])
        if value > 0xFFFFFFFF:
            return None
        i += used
        if i < len(s) and s[i] == ".":
            if len(parts) > 2 or value > 0xFF:
                return None
            parts.append(value)
            i += 1
            continue
        break
    if i < len(s) and (not s[i].isascii() or s[i] not in _SPACE):
        return None
    limit = (0xFFFFFFFF, 0xFFFFFF, 0xFFFF, 0xFF)[len(parts)]
    if value > limit:
        return None
    word = value
    for n, b in enumerate(parts):
        word |= b << (24 - 8 * n)
    return str(ipaddress.IPv4Address(word))


def inet_pton6(s: str) -> str | None:
    """inet_pton(AF_INET6): the address as inet_ntop writes it, or None."""
    try:
        return socket.inet_ntop(socket.AF_INET6, socket.inet_pton(socket.AF_INET6, s))
    except (OSError, ValueError):
        return None


def inet_pton4(s: str) -> str | None:
    try:
        packed = socket.inet_pton(socket.AF_INET, s)
    except (OSError, ValueError):
        return None
    return str(ipaddress.IPv4Address(packed))


# --------------------------------------------------------------------------
# popt 1.19, as ipvsadm calls it (no aliases, no flags)

_NONE, _STR, _OPTARG = 0, 1, 2  # POPT_ARG_NONE, POPT_ARG_STRING, ...|POPT_ARGFLAG_OPTIONAL

# (long name, short name, argument, key); popt's table order (first match wins).
_OPTIONS: tuple[tuple[str, str, int, str], ...] = (
    ("add-service", "A", _NONE, "A"),
    ("edit-service", "E", _NONE, "E"),
    ("delete-service", "D", _NONE, "D"),
    ("clear", "C", _NONE, "C"),
    ("list", "L", _NONE, "L"),
    ("list", "l", _NONE, "L"),
    ("zero", "Z", _NONE, "Z"),
    ("add-server", "a", _NONE, "a"),
    ("edit-server", "e", _NONE, "e"),
    ("delete-server", "d", _NONE, "d"),
    ("set", "", _NONE, "set"),
    ("help", "h", _NONE, "h"),
    ("version", "v", _NONE, "v"),
    ("restore", "R", _NONE, "R"),
    ("save", "S", _NONE, "S"),
    ("start-daemon", "", _STR, "start-daemon"),
    ("stop-daemon", "", _STR, "stop-daemon"),
    ("tcp-service", "t", _STR, "t"),
    ("udp-service", "u", _STR, "u"),
    ("sctp-service", "", _STR, "sctp-service"),
    ("fwmark-service", "f", _STR, "f"),
    ("scheduler", "s", _STR, "s"),
    ("persistent", "p", _OPTARG, "p"),
    ("netmask", "M", _STR, "M"),
    ("real-server", "r", _STR, "r"),
    ("masquerading", "m", _NONE, "m"),
    ("ipip", "i", _NONE, "i"),
    ("gatewaying", "g", _NONE, "g"),
    ("weight", "w", _STR, "w"),
    ("u-threshold", "x", _STR, "x"),
    ("l-threshold", "y", _STR, "y"),
    ("numeric", "n", _NONE, "n"),
    ("connection", "c", _NONE, "c"),
    ("mcast-interface", "", _STR, "mcast-interface"),
    ("syncid", "", _STR, "syncid"),
    ("timeout", "", _NONE, "timeout"),
    ("daemon", "", _NONE, "daemon"),
    ("stats", "", _NONE, "stats"),
    ("rate", "", _NONE, "rate"),
    ("thresholds", "", _NONE, "thresholds"),
    ("persistent-conn", "", _NONE, "persistent-conn"),
    ("nosort", "", _NONE, "nosort"),
    ("sort", "", _NONE, "sort"),
    ("exact", "X", _NONE, "X"),
    ("ipv6", "6", _NONE, "6"),
    ("ops", "o", _NONE, "o"),
    ("pe", "", _STR, "pe"),
    ("sched-flags", "b", _STR, "b"),
    ("mcast-group", "", _STR, "mcast-group"),
    ("mcast-port", "", _STR, "mcast-port"),
    ("mcast-ttl", "", _STR, "mcast-ttl"),
    ("sync-maxlen", "", _STR, "sync-maxlen"),
    ("tun-info", "", _NONE, "tun-info"),
    ("tun-type", "", _STR, "tun-type"),
    ("tun-port", "", _STR, "tun-port"),
    ("tun-nocsum", "", _NONE, "tun-nocsum"),
    ("tun-csum", "", _NONE, "tun-csum"),
    ("tun-remcsum", "", _NONE, "tun-remcsum"),
    # pylvs extensions
    ("add-laddr", "", _NONE, "add-laddr"),
    ("del-laddr", "", _NONE, "del-laddr"),
    ("get-laddr", "", _NONE, "get-laddr"),
    ("laddr", "z", _STR, "z"),
    ("fullnat", "", _NONE, "fullnat"),
    ("proxy-protocol", "", _STR, "proxy-protocol"),
    ("json", "", _NONE, "json"),
    ("socket", "", _STR, "socket"),
)

_POPT_NOARG = "missing argument"
_POPT_BADOPT = "unknown option"
_POPT_UNWANTEDARG = "option does not take an argument"


class _PoptError(Exception):
    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class _Popt:
    """poptGetNextOpt()/poptGetArg() over argv (argv[0] is the program)."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.next = 1
        self.next_char_arg: str | None = None
        self.rest_leftover = False
        self.leftovers: list[str] = []
        self.next_leftover = 0

    def bad_option(self) -> str:
        """poptBadOption(): the last argv element consumed."""
        return self.argv[self.next - 1]

    def get_arg(self) -> str | None:
        if self.next_leftover < len(self.leftovers):
            self.next_leftover += 1
            return self.leftovers[self.next_leftover - 1]
        return None

    def next_opt(self) -> tuple[str, str | None] | None:
        """(key, argument) of the next option, None at the end; _PoptError on errors."""
        while True:
            long_arg: str | None = None
            found: tuple[str, str, int, str] | None = None
            if self.next_char_arg is None:
                if self.next == len(self.argv):
                    return None
                s = self.argv[self.next]
                self.next += 1
                if self.rest_leftover or not s.startswith("-") or s == "-":
                    self.leftovers.append(s)
                    continue
                if s == "--":
                    self.rest_leftover = True
                    continue
                if s[1] == "-":
                    name = s[2:]
                    name, eq, rest = name.partition("=")
                    long_arg = rest if eq else None
                    found = next((o for o in _OPTIONS if o[0] == name), None)
                    if found is None:
                        raise _PoptError(_POPT_BADOPT)
                else:  # no option is POPT_ARGFLAG_ONEDASH: a cluster of short options
                    self.next_char_arg = s[1:]
            if found is None:
                assert self.next_char_arg is not None
                c = self.next_char_arg[0]
                found = next((o for o in _OPTIONS if o[1] == c), None)
                if found is None:
                    raise _PoptError(_POPT_BADOPT)
                self.next_char_arg = self.next_char_arg[1:] or None
            _long, _short, kind, key = found
            if kind == _NONE:
                if long_arg is not None or (self.next_char_arg or "").startswith("="):
                    raise _PoptError(_POPT_UNWANTEDARG)
                return key, None
            if long_arg is not None:
                return key, long_arg
            if self.next_char_arg is not None:
                arg = self.next_char_arg
                self.next_char_arg = None
                return key, arg[1:] if arg.startswith("=") else arg
            if self.next == len(self.argv):
                if kind != _OPTARG:
                    raise _PoptError(_POPT_NOARG)
                return key, None
            if kind == _OPTARG and self.argv[self.next].startswith("-"):
                return key, None
            self.next += 1
            return key, self.argv[self.next - 1]


# --------------------------------------------------------------------------
# The option table (commands_v_options) and tunnel table (tunnel_types_v_options)

# optnames[] of ipvsadm 1.31 in OPTC_* order, then the extensions' columns.
OPTNAMES: tuple[str, ...] = (
    "numeric", "connection", "service-address", "scheduler", "persistent", "netmask",
    "real-server", "forwarding-method", "weight", "u-threshold", "l-threshold",
    "mcast-interface", "timeout", "daemon", "stats", "rate", "thresholds", "persistent-conn",
    "nosort", "syncid", "exact", "ops", "pe", "sched-flags", "mcast-group", "mcast-port",
    "mcast-ttl", "sync-maxlen", "tun-info", "tun-type", "tun-port", "tun-nocsum", "tun-csum",
    "tun-remcsum",
    "laddr", "proxy-protocol", "json", "socket",
)  # fmt: skip
_COL = {name: i for i, name in enumerate(OPTNAMES)}

# cmdnames[] (the FLUSH command is "flush" in messages although its option is --clear).
CMDNAMES: dict[Cmd, str] = {
    Cmd.ADD: "add-service", Cmd.EDIT: "edit-service", Cmd.DEL: "delete-service",
    Cmd.FLUSH: "flush", Cmd.LIST: "list", Cmd.ADDDEST: "add-server",
    Cmd.DELDEST: "delete-server", Cmd.EDITDEST: "edit-server", Cmd.TIMEOUT: "set",
    Cmd.STARTDAEMON: "start-daemon", Cmd.STOPDAEMON: "stop-daemon", Cmd.RESTORE: "restore",
    Cmd.SAVE: "save", Cmd.ZERO: "zero",
    Cmd.ADDLADDR: "add-laddr", Cmd.DELLADDR: "del-laddr", Cmd.GETLADDR: "get-laddr",
}  # fmt: skip


def _row(**marks: str) -> str:
    """A table row: every option illegal ('x') except the ones named (underscores for dashes)."""
    row = ["x"] * len(OPTNAMES)
    for name, mark in marks.items():
        row[_COL[name.replace("_", "-")]] = mark
    row[_COL["socket"]] = " "
    return "".join(row)


# '+' compulsory, 'x' illegal, '1' at most one of the '1' options, ' ' optional.
_SVC_OPTS = {"scheduler": " ", "persistent": " ", "netmask": " ", "ops": " ", "pe": " ",
             "sched_flags": " "}  # fmt: skip
_DEST_OPTS = {"forwarding_method": " ", "weight": " ", "u_threshold": " ", "l_threshold": " ",
              "tun_type": " ", "tun_port": " ", "tun_nocsum": " ", "tun_csum": " ",
              "tun_remcsum": " ", "proxy_protocol": " "}  # fmt: skip
COMMANDS_V_OPTIONS: dict[Cmd, str] = {
    Cmd.ADD: _row(service_address="+", **_SVC_OPTS),
    Cmd.EDIT: _row(service_address="+", **_SVC_OPTS),
    Cmd.DEL: _row(service_address="+"),
    Cmd.FLUSH: _row(),
    Cmd.LIST: _row(numeric=" ", connection="1", service_address="1", timeout="1", daemon="1",
                   stats=" ", rate=" ", thresholds=" ", persistent_conn=" ", nosort=" ",
                   syncid=" ", exact=" ", tun_info=" ", json=" "),
    Cmd.ADDDEST: _row(service_address="+", real_server="+", **_DEST_OPTS),
    Cmd.DELDEST: _row(service_address="+", real_server="+"),
    Cmd.EDITDEST: _row(service_address="+", real_server="+", **_DEST_OPTS),
    Cmd.TIMEOUT: _row(),
    Cmd.STARTDAEMON: _row(mcast_interface=" ", syncid=" ", mcast_group=" ", mcast_port=" ",
                          mcast_ttl=" ", sync_maxlen=" "),
    Cmd.STOPDAEMON: _row(syncid=" "),
    Cmd.RESTORE: _row(),
    Cmd.SAVE: _row(numeric=" "),
    Cmd.ZERO: _row(service_address=" "),
    Cmd.ADDLADDR: _row(service_address="+", laddr="+"),
    Cmd.DELLADDR: _row(service_address="+", laddr="+"),
    Cmd.GETLADDR: _row(service_address=" ", numeric=" ", json=" "),
}  # fmt: skip

TUNNAMES = ("ipip", "gue", "gre")
_TUNOPTS = ("tun-port", "tun-nocsum", "tun-csum", "tun-remcsum")
TUNNEL_TYPES_V_OPTIONS = {"ipip": "xxxx", "gue": "+111", "gre": "x11x"}
TUN_FLAGS = {"tun-nocsum": 0, "tun-csum": 1, "tun-remcsum": 2}  # IP_VS_TUNNEL_ENCAP_FLAG_*

SCHED_FLAG_NAMES = ("flag-1", "flag-2", "flag-3", "sh-fallback", "sh-port", "mh-fallback",
                    "mh-port")  # fmt: skip
_SCHED_FLAG_OWNER = {"sh-fallback": "sh", "sh-port": "sh", "mh-fallback": "mh", "mh-port": "mh"}
PROXY_PROTOCOLS = ("v1", "v2")

_FIRST: dict[str, Cmd] = {
    "A": Cmd.ADD, "E": Cmd.EDIT, "D": Cmd.DEL, "a": Cmd.ADDDEST, "e": Cmd.EDITDEST,
    "d": Cmd.DELDEST, "C": Cmd.FLUSH, "L": Cmd.LIST, "Z": Cmd.ZERO, "set": Cmd.TIMEOUT,
    "R": Cmd.RESTORE, "S": Cmd.SAVE, "start-daemon": Cmd.STARTDAEMON,
    "stop-daemon": Cmd.STOPDAEMON, "add-laddr": Cmd.ADDLADDR, "del-laddr": Cmd.DELLADDR,
    "get-laddr": Cmd.GETLADDR,
}  # fmt: skip
_PROTO = {"t": "tcp", "u": "udp", "sctp-service": "sctp"}
_FWD = {"g": "droute", "i": "tunnel", "m": "masq", "fullnat": "fullnat"}
# Options that only raise a bit in the option set (and perhaps a listing flag).
_FLAG_OPTIONS = {
    "c": "connection", "n": "numeric", "timeout": "timeout", "daemon": "daemon",
    "stats": "stats", "rate": "rate", "thresholds": "thresholds",
    "persistent-conn": "persistent-conn", "nosort": "nosort", "X": "exact",
    "tun-info": "tun-info", "json": "json",
}  # fmt: skip


def _fail(msg: str) -> UsageError:
    return UsageError(msg, 2)


# --------------------------------------------------------------------------
# The parser state (ipvsadm's struct ipvs_command_entry plus the option set)


@dataclass
class _Addr:
    af: str = ""  # "" (unset, C's 0), "inet", "inet6"
    addr: str = ""
    port: int = 0


@dataclass
class _State:
    prog: str
    resolver: Resolver
    cmd: Cmd | None = None
    options: set[str] = field(default_factory=set)
    svc: _Addr = field(default_factory=_Addr)
    proto: str = ""  # "" is IPPROTO_IP: no service option yet
    svc_kind: str = ""  # "t", "u", "sctp-service", "f"
    fwmark: int = 0
    sched: str = ""
    persistent: int | None = None
    netmask: int = 0xFFFFFFFF
    netmask_is_prefix: bool = False
    ops: bool = False
    pe: str = ""
    sched_flags_arg: str = ""
    dest: _Addr = field(default_factory=_Addr)
    dest_given: bool = False
    fwd: str | None = None
    weight: int | None = None
    u_thresh: int | None = None
    l_thresh: int | None = None
    tun_type: str | None = None
    tun_port: int | None = None
    tun_flags: int | None = None
    proxy_protocol: str | None = None
    daemon_state: str = ""
    mcast_interface: str | None = None
    syncid: int | None = None
    mcast_group: str | None = None
    mcast_port: int | None = None
    mcast_ttl: int | None = None
    sync_maxlen: int | None = None
    laddr: str = ""
    socket: str | None = None
    timeouts: tuple[int, int, int] | None = None
    sched_flags: list[str] = field(default_factory=list)

    def set_option(self, name: str) -> None:
        if name in self.options:
            raise _fail(f"multiple '{name}' options specified")
        self.options.add(name)

    # parse_service(): SERVICE_ADDR / SERVICE_PORT bits
    def parse_service(self, buf: str, proto: str, into: _Addr) -> int:
        if str_is_digit(buf):
            return 0
        host = buf
        port_text: str | None = None
        if buf.startswith("["):
            inner = buf[1:]
            close = inner.find("]")
            if close < 0 or inner[close + 1 : close + 2] != ":":
                return 0
            host, port_text = inner[:close], inner[close + 2 :]
        v6 = inet_pton6(host)
        if v6 is not None:
            into.af, into.addr = "inet6", v6
            if into is self.svc:
                self.netmask, self.netmask_is_prefix = 128, True
        else:
            colon = host.rfind(":")
            port_text = host[colon + 1 :] if colon >= 0 else None
            if colon >= 0:
                host = host[:colon]
            v4 = inet_aton(host) or self.host_to_addr(host)
            if v4 is None:
                return 0
            into.af, into.addr = "inet", v4
        if port_text is None:
            return 1
        port = string_to_number(port_text, 0, 65535)
        if port is None:
            port = self.service_to_port(port_text, proto)
            if port is None:
                return 0
        into.port = port
        return 3

    def host_to_addr(self, host: str) -> str | None:
        """gethostbyname(): the first IPv4 address of a name."""
        if not host:
            return None
        for a in self.resolver.addr(host, "inet"):
            v4 = inet_pton4(a)
            if v4 is not None:
                return v4
        return None

    def service_to_port(self, name: str, proto: str) -> int | None:
        if proto not in ("tcp", "udp", "sctp"):
            return None
        port = self.resolver.port(name, proto)
        return port if port is not None and 0 <= port <= 65535 else None


def _parse_timeout(buf: str | None, lo: int, hi: int) -> int:
    if buf is None:
        return PERSISTENT_TIMEOUT
    value = string_to_number(buf, lo, hi)
    if value is None:
        raise _fail(f"invalid timeout value `{buf}' specified")
    return value


def _parse_fwmark(buf: str) -> int:
    r = _strtol_prefix(buf)
    if r is None or r[1] != len(buf) or r[0] == LONG_MAX:  # LONG_MAX: ERANGE or past UINT_MAX
        raise _fail(f"invalid fwmark value `{buf}' specified")
    value = r[0] & 0xFFFFFFFFFFFFFFFF  # assigned to an unsigned long
    if value == 0 or value > UINT_MAX:
        raise _fail(f"invalid fwmark value `{buf}' specified")
    return value


def _number(buf: str, lo: int, hi: int, what: str) -> int:
    value = string_to_number(buf, lo, hi)
    if value is None:
        raise _fail(f"illegal {what} specified")
    return value


# --------------------------------------------------------------------------
# parse_options()


def _first_command(st: _State, popt: _Popt) -> Cmd:
    """The first option must be the command (extension: --socket may come before it)."""
    while True:
        try:
            got = popt.next_opt()
        except _PoptError:
            raise UsageError(tryhelp(st.prog), 255) from None
        if got is None:
            if st.socket is not None and not popt.leftovers:
                return Cmd.LIST  # "pylvsadm --socket PATH" lists, like a bare "ipvsadm"
            raise UsageError(tryhelp(st.prog), 255)
        key, arg = got
        if key == "socket":
            st.set_option("socket")
            st.socket = arg
            continue
        if key == "h":
            return Cmd.HELP
        if key == "v":
            return Cmd.VERSION
        cmd = _FIRST.get(key)
        if cmd is None:
            raise UsageError(tryhelp(st.prog), 255)
        if cmd in (Cmd.STARTDAEMON, Cmd.STOPDAEMON):
            if arg in ("master", "backup"):
                st.daemon_state = arg
            elif cmd is Cmd.STARTDAEMON:
                raise _fail("illegal start-daemon parameter specified")
            else:
                raise _fail("illegal start_daemon specified")
        return cmd


def _option(st: _State, key: str, arg: str | None, popt: _Popt) -> None:
    """One option after the command (the switch of parse_options' while loop)."""
    a = arg or ""
    if key in _PROTO:
        st.set_option("service-address")
        st.proto = _PROTO[key]
        st.svc_kind = key
        if not st.parse_service(a, st.proto, st.svc) & 1:
            raise _fail("illegal virtual server address[:port] specified")
    elif key == "f":
        st.set_option("service-address")
        st.svc.af = "inet"
        st.proto = "tcp"  # "a sane value", used for -r port names
        st.svc_kind = "f"
        st.fwmark = _parse_fwmark(a)
    elif key == "s":
        st.set_option("scheduler")
        st.sched = a[: SCHEDNAME_MAXLEN - 1]
    elif key == "p":
        st.set_option("persistent")
        st.persistent = _parse_timeout(arg, 1, MAX_TIMEOUT)
    elif key == "M":
        st.set_option("netmask")
        if st.svc.af != "inet6":
            mask = inet_aton(a) or st.host_to_addr(a)
            if mask is None:
                raise _fail("illegal virtual server persistent mask specified")
            st.netmask, st.netmask_is_prefix = int(ipaddress.IPv4Address(mask)), False
        else:
            st.netmask, st.netmask_is_prefix = _atoi_u32(a), True
            if not 1 <= st.netmask <= 128:
                raise _fail("illegal ipv6 netmask specified")
    elif key == "r":
        st.set_option("real-server")
        st.dest_given = True
        t_dest = _Addr(st.svc.af, st.svc.addr, st.svc.port)
        parsed = st.parse_service(a, st.proto, t_dest)
        st.dest = t_dest
        if not parsed & 1:
            raise _fail("illegal real server address[:port] specified")
        if parsed == 1:
            st.dest.port = st.svc.port
    elif key in _FWD:
        st.set_option("forwarding-method")
        st.fwd = _FWD[key]
    elif key == "w":
        st.set_option("weight")
        st.weight = _number(a, 0, 65535, "weight")
    elif key == "x":
        st.set_option("u-threshold")
        st.u_thresh = _number(a, 0, INT_MAX, "u_threshold")
    elif key == "y":
        st.set_option("l-threshold")
        st.l_thresh = _number(a, 0, INT_MAX, "l_threshold")
    elif key in _FLAG_OPTIONS:
        st.set_option(_FLAG_OPTIONS[key])
    elif key == "mcast-interface":
        st.set_option("mcast-interface")
        st.mcast_interface = a[: IFNAME_MAXLEN - 1]
    elif key == "syncid":
        st.set_option("syncid")
        st.syncid = _number(a, 0, 255, "syncid")
    elif key == "sort":
        pass  # the default; accepted everywhere for compatibility
    elif key == "6":
        if not st.fwmark:
            raise _fail("-6 used before -f\n")
        st.svc.af = "inet6"
        st.netmask, st.netmask_is_prefix = 128, True
    elif key == "o":
        st.set_option("ops")
        st.ops = True
    elif key == "pe":
        st.set_option("pe")
        st.pe = a[:PENAME_MAXLEN]
    elif key == "b":
        st.set_option("sched-flags")
        st.sched_flags_arg = a[: SCHED_FLAGS_BUF - 1]
    else:
        _option_more(st, key, a, popt)


def _option_more(st: _State, key: str, a: str, popt: _Popt) -> None:
    if key == "mcast-group":
        st.set_option("mcast-group")
        if ":" in a:
            g6 = inet_pton6(a)
            if g6 is None or not ipaddress.IPv6Address(g6).is_multicast:
                raise _fail(f"invalid IPv6 mcast-group `{a}'")
            st.mcast_group = g6
        else:
            g4 = inet_pton4(a)
            if g4 is None or not ipaddress.IPv4Address(g4).is_multicast:
                raise _fail(f"invalid IPv4 mcast-group `{a}'")
            st.mcast_group = g4
    elif key == "mcast-port":
        st.set_option("mcast-port")
        st.mcast_port = _number(a, 1, 65535, "mcast-port")
    elif key == "mcast-ttl":
        st.set_option("mcast-ttl")
        st.mcast_ttl = _number(a, 1, 255, "mcast-ttl")
    elif key == "sync-maxlen":
        st.set_option("sync-maxlen")
        st.sync_maxlen = _number(a, 1, 65535 - 20 - 8, "sync-maxlen")
    elif key == "tun-type":
        st.set_option("tun-type")
        if a not in TUNNAMES:
            raise _fail("illegal tunnel type specified")
        st.tun_type = a
    elif key == "tun-port":
        st.set_option("tun-port")
        st.tun_port = _number(a, 1, 65535, "tunnel port")
    elif key in TUN_FLAGS:
        st.set_option(key)
        st.tun_flags = (st.tun_flags or 0) | TUN_FLAGS[key]
    elif key == "z":
        st.set_option("laddr")
        laddr = inet_pton4(a) or inet_pton6(a)
        if laddr is None:
            raise _fail("illegal local address specified")
        st.laddr = laddr
    elif key == "proxy-protocol":
        st.set_option("proxy-protocol")
        if a not in PROXY_PROTOCOLS:
            raise _fail("illegal proxy-protocol specified")
        st.proxy_protocol = a
    elif key == "socket":
        st.set_option("socket")
        st.socket = a
    else:  # a second command, -h, -v: popt knows them, ipvsadm's loop does not
        raise _fail(f"invalid option `{popt.bad_option()}'")


def _parse_sched_flags(sched: str, text: str) -> list[str]:
    owner_sched = sched or DEF_SCHED
    names: list[str] = []
    tokens = [t for t in text.split(",") if t]
    if not tokens:  # ipvsadm dereferences NULL here
        raise _fail("invalid scheduler flag `'")
    for flag in tokens:
        if flag not in SCHED_FLAG_NAMES:
            raise _fail(f"invalid scheduler flag `{flag}'")
        owner = _SCHED_FLAG_OWNER.get(flag)
        if owner is not None and owner_sched != owner:
            raise _fail(f"incompatible scheduler flag `{flag}'")
        if flag not in names:
            names.append(flag)
    return names


def _generic_opt_check(cmd: Cmd, options: set[str]) -> None:
    row = COMMANDS_V_OPTIONS[cmd]
    name = CMDNAMES[cmd]
    last: str | None = None
    for j, opt in enumerate(OPTNAMES):
        mark = row[j]
        if opt not in options:
            if mark == "+":
                raise _fail(f"You need to supply the '{opt}' option for the '{name}' command")
            continue
        if mark == "x":
            raise _fail(f"Illegal '{opt}' option with the '{name}' command")
        if mark == "1":
            if last is None:
                last = opt
                continue
            raise _fail(
                f"The option '{opt}' conflicts with the '{last}' option in the '{name}' command"
            )


def _tunnel_opt_check(tun_type: str, options: set[str]) -> None:
    row = TUNNEL_TYPES_V_OPTIONS[tun_type]
    last: str | None = None
    for j, opt in enumerate(_TUNOPTS):
        mark = row[j]
        if opt not in options:
            if mark == "+":
                raise _fail(
                    f"You need to supply the '{opt}' option for the '{tun_type}' tunnel type"
                )
            continue
        if mark == "x":
            raise _fail(f"Illegal '{opt}' option with the '{tun_type}' tunnel type")
        if mark == "1":
            if last is None:
                last = opt
                continue
            raise _fail(
                f"The option '{opt}' conflicts with the '{last}' option in the "
                f"'{tun_type}' tunnel type"
            )


def _process(st: _State, cmd: Cmd) -> None:
    """The checks process_options() makes after parse_options()."""
    opts = st.options
    _generic_opt_check(cmd, opts)
    if cmd in (Cmd.ADD, Cmd.EDIT):
        if not st.fwmark and not st.svc.port and st.persistent is None:
            raise _fail("Zero port specified for non-persistent service")
        if st.ops and not st.fwmark and st.proto != "udp":
            raise _fail("One-Packet Scheduling is only for UDP virtual services")
    if cmd in (Cmd.ADDDEST, Cmd.EDITDEST):
        if not st.fwmark and st.fwd in ("droute", "tunnel"):
            st.dest.port = st.svc.port
        if st.dest.af != st.svc.af and st.fwd != "tunnel":
            raise _fail("Different address family is allowed only for tunneling servers")
        if any(o in opts for o in ("tun-type", *_TUNOPTS)) and st.fwd != "tunnel":
            raise _fail("Tunnel options conflict with forward method")
        _tunnel_opt_check(st.tun_type or DEF_TUNNEL_TYPE, opts)
    if cmd is Cmd.LIST and (
        (opts & {"connection", "timeout", "daemon"} and opts & {"stats", "rate", "thresholds"})
        or (opts & {"timeout", "daemon"} and "persistent-conn" in opts)
    ):
        raise _fail("options conflicts in the list command")


def _service_arg(st: _State) -> ServiceArg | None:
    if "service-address" not in st.options:
        return None
    family = st.svc.af or "inet"
    if st.svc_kind == "f":
        return ServiceArg(protocol="", address="", port=0, fwmark=st.fwmark, family=family)
    return ServiceArg(protocol=st.proto, address=st.svc.addr, port=st.svc.port, family=family)


def _netmask(st: _State) -> str | None:
    if "netmask" not in st.options:
        return None
    if st.netmask_is_prefix:
        return str(st.netmask)
    return str(ipaddress.IPv4Address(st.netmask))


def _command(st: _State, cmd: Cmd) -> Command:
    o = st.options
    fmt = ListFormat(
        numeric="numeric" in o, stats="stats" in o, rate="rate" in o,
        thresholds="thresholds" in o, persistent_conn="persistent-conn" in o,
        tun_info="tun-info" in o, nosort="nosort" in o, exact="exact" in o,
        connection="connection" in o, timeout="timeout" in o, daemon="daemon" in o,
        json="json" in o,
    )  # fmt: skip
    return Command(
        cmd=cmd,
        service=_service_arg(st),
        sched_name=st.sched or None,
        persistent=st.persistent,
        netmask=_netmask(st),
        ops=st.ops,
        sched_flags=st.sched_flags,
        pe_name=st.pe or None,
        dest_address=st.dest.addr if st.dest_given else "",
        dest_port=st.dest.port if st.dest_given else None,
        dest_family=(st.dest.af or "inet") if st.dest_given else "inet",
        fwd_method=st.fwd,
        weight=st.weight,
        u_thresh=st.u_thresh,
        l_thresh=st.l_thresh,
        tun_type=st.tun_type,
        tun_port=st.tun_port,
        tun_flags=st.tun_flags,
        proxy_protocol=st.proxy_protocol,
        timeouts=st.timeouts,
        daemon_state=st.daemon_state,
        mcast_interface=st.mcast_interface,
        syncid=st.syncid,
        mcast_group=st.mcast_group,
        mcast_port=st.mcast_port,
        mcast_ttl=st.mcast_ttl,
        sync_maxlen=st.sync_maxlen,
        laddr=st.laddr,
        fmt=fmt,
        socket=st.socket,
    )


def _resolver(resolver: Resolver | None, numeric: bool) -> Resolver:
    if numeric:
        return NumericResolver()
    return resolver if resolver is not None else SystemResolver()


def parse(
    args: list[str],
    resolver: Resolver | None = None,
    *,
    numeric: bool = False,
    prog: str = "pylvsadm",
) -> Command:
    """One command line: ``args`` without the program name (``sys.argv[1:]``).

    ``prog`` is the program name ipvsadm would print (its argv[0]) in the
    "Try ..." hint.  ``resolver`` turns host and service names into
    addresses and ports (the system's by default); ``numeric=True`` refuses
    every name instead.  Raises ``UsageError``.  -h, -v and -R come back as
    HELP, VERSION and RESTORE commands: the caller prints
    ``usage_text(prog)``/``VERSION`` or reads stdin and calls ``parse_restore``.
    """
    if not args:
        return Command(Cmd.LIST)  # a bare ipvsadm lists the table
    argv = [prog, *args]
    st = _State(prog=prog, resolver=_resolver(resolver, numeric))
    popt = _Popt(argv)
    cmd = _first_command(st, popt)
    if cmd in (Cmd.HELP, Cmd.VERSION):
        return Command(cmd, socket=st.socket)
    st.cmd = cmd
    while True:
        try:
            got = popt.next_opt()
        except _PoptError as e:
            raise UsageError(f"{popt.bad_option()}: {e.text}", 255) from None
        if got is None:
            break
        _option(st, got[0], got[1], popt)
    if cmd is Cmd.TIMEOUT:
        values = [popt.get_arg() for _ in range(3)]
        if any(v is None for v in values):
            raise _fail("--set option requires 3 timeout values")
        tcp, fin, udp = (_parse_timeout(v, 0, MAX_TIMEOUT) for v in values)
        st.timeouts = (tcp, fin, udp)
    extra = popt.get_arg()
    if extra is not None:
        raise _fail(f"unexpected argument {extra}")
    if st.sched_flags_arg:
        st.sched_flags = _parse_sched_flags(st.sched, st.sched_flags_arg)
    _process(st, cmd)
    return _command(st, cmd)


# --------------------------------------------------------------------------
# -R: config_stream_read() + restore_table()

_WORD_SEP = re.compile(r"[ \t\r]+")
_DROPPED_WORDS = ("ipvsadm", "pylvsadm")


def restore_words(text: str) -> list[tuple[int, list[str]]]:
    """(line number, words) of every line with words, as ipvsadm -R splits stdin.

    Words are separated by blanks, tabs and carriage returns; a word
    "ipvsadm" (or "pylvsadm") is dropped wherever it is; "#" is an ordinary
    word (config_stream_read's comment test never fires).
    """
    result = []
    for number, line in enumerate(text.split("\n"), start=1):
        words = [w for w in _WORD_SEP.split(line) if w and w not in _DROPPED_WORDS]
        if words:
            result.append((number, words))
    return result


def parse_restore(
    text: str,
    resolver: Resolver | None = None,
    *,
    numeric: bool = False,
    prog: str = "pylvsadm",
) -> list[tuple[int, Command]]:
    """Every command of a restore file as (line number, Command), or ``UsageError``.

    All or nothing: the first bad line raises (``line`` set, ``message`` as
    ipvsadm prints it) and the caller applies nothing.  Any command may
    appear except -R (ipvsadm answers it with the "Try ..." hint, exit 255);
    a -h or -v line ends the file, as ipvsadm exits there.
    """
    res = _resolver(resolver, numeric)
    commands: list[tuple[int, Command]] = []
    for number, words in restore_words(text):
        try:
            command = parse(words, res, prog=prog)
            if command.cmd is Cmd.RESTORE:
                raise UsageError(tryhelp(prog), 255)
        except UsageError as e:
            e.line = number
            raise
        commands.append((number, command))
        if command.cmd in (Cmd.HELP, Cmd.VERSION):
            break
    return commands


__all__ = [
    "CMDNAMES",
    "COMMANDS_V_OPTIONS",
    "OPTNAMES",
    "USAGE",
    "VERSION",
    "NumericResolver",
    "Resolver",
    "SystemResolver",
    "UsageError",
    "parse",
    "parse_restore",
    "restore_words",
    "tryhelp",
    "usage_text",
]
