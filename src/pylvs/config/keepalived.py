"""keepalived.conf -> ``KeepalivedConf``: keepalived 2.2's checker-side configuration.

The top level, as check_parser.c's init_check_keywords() and global_parser.c
install them: ``load`` lexes the file and its includes (lexer.py), then the
root statements go to the module that reads them:

- global_defs.py: ``global_defs``, global keywords outside it, ``SSL``,
  ``track_file`` (global_parser.c, trackers/track_file.c);
- virtual.py: ``virtual_server_group``, ``virtual_server`` with its
  ``real_server`` and ``sorry_server`` statements (check_parser.c);
- checkers.py: the checker blocks of a real server (check_api.c,
  check_{tcp,http,misc,smtp,dns,udp,ping,file}.c);
- validate.py: defaults, inheritance virtual server -> real server ->
  checker and keepalived's corrections (check_data.c validate_check_config());
- values.py: the value readers they share (lib/parser.c) and the diagnostics.

Where keepalived reports a problem and ignores the statement, this is an error
(a ``ConfigError`` lists them all, file:line each); where keepalived corrects
the configuration (no protocol -> UDP, no lb_algo -> wlc, no lb_kind -> NAT,
quorum above the total weight, port mismatches for DR/TUN ...) the correction
is made and a warning kept in ``conf.warnings``.  Keywords keepalived knows but
pylvs does not act on (smtp_alert, snmp_name, BFD_CHECK, regex_options ...)
and unknown keywords are warnings.  vrrp_*, static_*, track_*, garp_group,
linkbeat_interfaces, bfd_instance blocks are kept raw in ``vrrp_blocks``.
Each module's docstring lists its deliberate differences from keepalived.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable, Sequence

from pylvs.config import lexer
from pylvs.config.checkers import CHECKERS, DNS_TYPES
from pylvs.config.global_defs import (
    GLOBAL_DEFS,
    GLOBAL_ROOTS,
    TRACK_FILE_ROOTS,
    VRRP_ROOTS,
    read_global_defs,
    read_global_root,
    read_ssl,
    read_track_file,
)
from pylvs.config.model import ConfigError, Diagnostic, GroupEntry, KeepalivedConf, Node
from pylvs.config.validate import check_duplicates, check_script_security, resolve_virtual_server
from pylvs.config.values import IGNORED, UINT_MAX, Reader
from pylvs.config.virtual import (
    MAX_GROUP_RANGE,
    MAX_PERSISTENCE,
    MAX_WEIGHT,
    SCHEDULERS,
    VirtualServer,
    read_group,
    read_virtual_server,
)

KEEPALIVED_DEFAULTS: dict[str, object] = {
    "lb_algo": "wlc",  # IPVS_DEF_SCHED, with a warning when not given
    "lb_kind": "NAT",  # with a warning when not given
    "protocol": "UDP",  # keepalived: "no protocol set - defaulting to UDP"
    "persistence_timeout": 360,  # IPVS_SVC_PERSISTENT_TIMEOUT, also without a value
    "delay_loop": 60.0,
    "connect_timeout": 5.0,
    "retry": 1,  # MISC_CHECK 0, DNS_CHECK 3
    "delay_before_retry": 1.0,  # HTTP_GET/SSL_GET 3, DNS_CHECK delay_loop
    "warmup": "delay_loop",
    "quorum": 1,
    "hysteresis": 0,
    "weight": 1,
    "http_protocol": "1.0",
    "helo_name": "smtpchecker.keepalived.org",
    "dns_type": "SOA",
    "dns_name": ".",
    "max_reply_length": 255,
}


def load(
    path: str, *, config_id: str | None = None, source: lexer.Source | None = None
) -> KeepalivedConf:
    """Read a keepalived.conf and everything it includes; ConfigError lists every problem.

    ``config_id`` is keepalived's ``-i`` (for ``@id`` lines); by default the
    first label of the host name, as keepalived.
    """
    if config_id is None:
        config_id = socket.gethostname().split(".")[0]
    lexed = lexer.lex_file(path, source=source, config_id=config_id)
    p = Reader()
    p.warnings.extend(lexed.warnings)
    p.errors.extend(lexed.errors)
    return _parse(p, lexed.nodes, lexed.files)


def parse_nodes(
    nodes: Sequence[Node], files: Sequence[str], *, warnings: Iterable[Diagnostic] = ()
) -> KeepalivedConf:
    """The configuration the statements describe; ConfigError lists every problem."""
    p = Reader()
    p.warnings.extend(warnings)
    return _parse(p, tuple(nodes), tuple(files))


def _parse(p: Reader, nodes: tuple[Node, ...], files: tuple[str, ...]) -> KeepalivedConf:
    global_defs: dict[str, object] = {}
    groups: dict[str, tuple[GroupEntry, ...]] = {}
    track_files: dict[str, dict[str, object]] = {}
    vrrp: list[Node] = []
    drafts: list[VirtualServer] = []
    for n in nodes:  # track_file blocks first: FILE_CHECK may name one defined later
        if n.words[0] in TRACK_FILE_ROOTS:
            read_track_file(p, n, track_files)
    for n in nodes:
        kw = n.words[0]
        if kw == "global_defs":
            read_global_defs(p, n, global_defs)
        elif kw == "SSL":
            read_ssl(p, n, global_defs)
        elif kw == "virtual_server_group":
            read_group(p, n, groups)
        elif kw == "virtual_server":
            vs = read_virtual_server(p, n, track_files)
            if vs is not None:
                drafts.append(vs)
        elif kw in VRRP_ROOTS:
            vrrp.append(n)
        elif kw in GLOBAL_ROOTS:
            read_global_root(p, n, global_defs)
        else:
            p.unknown(n, "at the top level")
    servers = [resolve_virtual_server(p, vs, groups, global_defs) for vs in drafts]
    check_duplicates(p, [s for s in servers if s is not None], groups)
    check_script_security(p, servers, global_defs)
    if p.errors:
        raise ConfigError(sorted(p.errors, key=_order(files)))
    return KeepalivedConf(
        files=files,
        global_defs=global_defs,
        groups=groups,
        virtual_servers=tuple(s for s in servers if s is not None),
        vrrp_blocks=tuple(vrrp),
        warnings=tuple(sorted(p.warnings, key=_order(files))),
    )


def _order(files: Sequence[str]) -> Callable[[Diagnostic], tuple[int, str, int]]:
    rank = {f: i for i, f in enumerate(files)}
    return lambda d: (rank.get(d.where.file, len(rank)), d.where.file, d.where.line)


__all__ = [
    "CHECKERS",
    "DNS_TYPES",
    "GLOBAL_DEFS",
    "GLOBAL_ROOTS",
    "IGNORED",
    "KEEPALIVED_DEFAULTS",
    "MAX_GROUP_RANGE",
    "MAX_PERSISTENCE",
    "MAX_WEIGHT",
    "SCHEDULERS",
    "UINT_MAX",
    "VRRP_ROOTS",
    "load",
    "parse_nodes",
]
