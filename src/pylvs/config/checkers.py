"""The checker blocks of a real_server (keepalived 2.2).

Mirrors check_api.c (the options every checker shares: connect_ip,
connect_port, bindto, bind_port, bind_if, fwmark, connect_timeout, retry,
delay_before_retry, warmup, delay_loop, alpha, log_all_failures) and the
keywords of check_tcp.c, check_http.c (HTTP_GET/SSL_GET and their ``url``
blocks), check_misc.c, check_smtp.c, check_dns.c, check_udp.c, check_ping.c
and check_file.c, then the defaults and inheritance of check_data.c
validate_check_config() for one checker (``resolve_checker``): a checker
without connect_timeout takes its real server's, then its virtual server's,
then the kind's default.

An HTTP_GET/SSL_GET checker's ``virtualhost`` resolves as check_http.c picks
the Host header: the url's, else the checker's, else the real server's, else
the virtual server's; ``options["virtualhost"]`` holds the checker-level
result (None when nowhere given) and each UrlConf its own.

Deliberate differences: a checker keepalived would drop with a log message
(HTTP_GET without url, MISC_CHECK without misc_path, FILE_CHECK without
track_file) is an error; SMTP_CHECK ``host`` blocks (deprecated) become one
checker each.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from ipaddress import ip_address

from pylvs.config.model import CheckerConf, Node, UrlConf, Where
from pylvs.config.values import UINT_MAX, Reader, Timing, family, given, names, put, read_hex

CHECKERS = names(
    "TCP_CHECK HTTP_GET SSL_GET MISC_CHECK SMTP_CHECK DNS_CHECK UDP_CHECK PING_CHECK FILE_CHECK"
)
DNS_TYPES = ("A", "NS", "CNAME", "SOA", "MX", "TXT", "AAAA", "RRSIG", "DNSKEY")

_NO_CONN = ("MISC_CHECK", "FILE_CHECK")
_URL_KEYWORDS = names("path digest status_code virtualhost regex regex_no_match")
_CONN_KEYWORDS = names("connect_ip connect_port bindto bind_port bind_if fwmark connect_timeout")
_COMMON_KEYWORDS = names("retry delay_before_retry warmup delay_loop alpha log_all_failures")
_CHECKER_KEYWORDS: dict[str, tuple[str, ...]] = {
    "HTTP_GET": ("nb_get_retry", "virtualhost", "http_protocol", "enable_sni", "fast_recovery"),
    "SMTP_CHECK": ("helo_name",),
    "DNS_CHECK": ("type", "name"),
    "UDP_CHECK": ("payload", "require_reply", "min_reply_length", "max_reply_length"),
    "MISC_CHECK": ("misc_path", "misc_timeout", "misc_dynamic", "user"),
    "FILE_CHECK": ("track_file", "weight"),
}
_CHECKER_KEYWORDS["SSL_GET"] = _CHECKER_KEYWORDS["HTTP_GET"]

TrackFiles = dict[str, dict[str, object]]


@dataclass
class Checker:
    """A checker block as written (mutable while it is read); ``resolve_checker`` ends it."""

    kind: str
    where: Where
    timing: Timing = field(default_factory=Timing)
    connect_ip: str | None = None
    connect_port: int | None = None
    bindto: str | None = None
    bind_port: int | None = None
    bind_if: str | None = None
    fwmark: int | None = None
    log_all_failures: bool | None = None
    options: dict[str, object] = field(default_factory=dict)
    urls: list[UrlConf] = field(default_factory=list)
    hosts: list[Checker] = field(default_factory=list)  # SMTP_CHECK host { } (deprecated)


def read_checker(p: Reader, n: Node, track_files: TrackFiles) -> list[Checker]:
    """A checker block (``n.words[0]`` is one of ``CHECKERS``): no, one or more checkers."""
    kind = n.words[0]
    kids = p.block(n)
    if kids is None:
        return []
    if len(n.words) > 1:
        p.warn(n, f"extra words after '{kind}' ignored: {' '.join(n.words[1:])}")
    chk = Checker(kind, n.where)
    own = _CHECKER_KEYWORDS.get(kind, ())
    if kind == "FILE_CHECK":
        common: tuple[str, ...] = ()
    elif kind == "MISC_CHECK":
        common = _COMMON_KEYWORDS
    else:
        common = _CONN_KEYWORDS + _COMMON_KEYWORDS
    for c in kids:
        kw = c.words[0]
        if kw == "url" and kind in ("HTTP_GET", "SSL_GET"):
            url = _url_block(p, c)
            if url is not None:
                chk.urls.append(url)
        elif kw == "host" and kind == "SMTP_CHECK":
            _smtp_host(p, c, chk)
        elif kw not in own and kw not in common:
            p.unknown(c, f"in {kind}")
        elif not p.leaf(c):
            continue
        elif kw in common:
            _common_option(p, c, chk)
        elif kind == "FILE_CHECK":
            _file_option(p, c, chk, track_files)
        else:
            _checker_option(p, c, chk)
    return _checker_end(p, n, chk)


def _smtp_host(p: Reader, n: Node, chk: Checker) -> None:
    """SMTP_CHECK host { connection options }: one more checker (deprecated)."""
    p.warn(n, "SMTP_CHECK host blocks are deprecated: use one SMTP_CHECK per host")
    host = Checker(chk.kind, n.where)
    for c in p.block(n) or ():
        kw = c.words[0]
        if kw not in _CONN_KEYWORDS + _COMMON_KEYWORDS:
            p.unknown(c, "in SMTP_CHECK host")
        elif p.leaf(c):
            # connection options are the host's, the others the checker's (check_smtp.c)
            _common_option(p, c, host if kw in _CONN_KEYWORDS else chk)
    chk.hosts.append(host)


def _common_option(p: Reader, c: Node, chk: Checker) -> None:
    kw = c.words[0]
    if kw in ("connect_ip", "bindto"):
        text = p.arg(c, 1, 1)
        a = None if text is None else p.address(c, text, kw)
        if a is not None:
            setattr(chk, kw, a)
    elif kw in ("connect_port", "bind_port"):
        setattr(chk, kw, given(p.uint(c, 1, 65535), getattr(chk, kw)))
    elif kw == "bind_if":
        chk.bind_if = p.arg(c, 1, 1)
    elif kw == "fwmark":
        chk.fwmark = given(p.uint(c, 0, UINT_MAX), chk.fwmark)
    elif kw == "log_all_failures":
        chk.log_all_failures = given(p.boolean(c), chk.log_all_failures)
    else:
        p.timing(c, chk.timing, "checker")


def _checker_option(p: Reader, c: Node, chk: Checker) -> None:
    kw, o = c.words[0], chk.options
    if kw == "nb_get_retry":
        p.warn(c, "nb_get_retry is deprecated - please use 'retry'")
        chk.timing.retry = given(p.uint(c, 0, UINT_MAX), chk.timing.retry)
    elif kw in ("virtualhost", "helo_name"):
        put(o, kw, p.arg(c, 1, 1))
    elif kw == "http_protocol":
        v = p.arg(c, 1, 1)
        if v is not None and v not in ("1.0", "1.0C", "1.0c", "1.1"):
            p.error(c, f"invalid http_protocol '{v}' (1.0|1.0C|1.1)")
        elif v is not None:
            o[kw] = v.upper()
    elif kw in ("enable_sni", "fast_recovery", "misc_dynamic"):
        put(o, kw, p.flag(c) if kw == "misc_dynamic" else p.boolean(c))
    elif kw == "misc_path":
        _misc_path(p, c, chk)
    elif kw == "misc_timeout":
        t = p.uint(c, 0, UINT_MAX // 1_000_000)
        if t is not None:
            o[kw] = float(t)
    elif kw == "user":
        if p.arg(c, 1, 2) is not None:
            o["user"] = " ".join(c.words[1:3])  # "name" or "name group"
    elif kw == "type":
        t_ = p.arg(c, 1, 1)
        if t_ is not None and t_.upper() not in DNS_TYPES:
            p.error(c, f"unknown DNS_CHECK type '{t_}' ({'|'.join(DNS_TYPES)})")
        elif t_ is not None:
            o[kw] = t_.upper()
    elif kw == "name":
        _dns_name(p, c, chk)
    elif kw in ("payload", "require_reply"):
        _udp_hex(p, c, chk)
    elif kw in ("min_reply_length", "max_reply_length"):
        put(o, kw, p.uint(c, 0, 65535))


def _misc_path(p: Reader, c: Node, chk: Checker) -> None:
    words = p.quoted_words(c, "misc_path")
    if words is None:
        return
    argv = p.quoted_words(c, "misc_path", words[1]) if len(words) > 1 else []
    if argv is None:
        return
    if not argv:
        p.error(c, "'misc_path' is missing a script")
        return
    if len(words) > 2:
        p.warn(
            c,
            "misc_path: keepalived runs only the first word; quote the command to pass "
            f"arguments (ignored: {' '.join(words[2:])})",
        )
    chk.options["misc_path"] = words[1]


def _dns_name(p: Reader, c: Node, chk: Checker) -> None:
    name = p.arg(c, 1, 1)
    if name is None:
        return
    if "name" in chk.options:
        p.error(c, "DNS_CHECK name already specified")
    elif (name.startswith(".") and name != ".") or ".." in name:
        p.error(c, f"DNS_CHECK name '{name}' has an empty label")
    else:
        chk.options["name"] = name


def _udp_hex(p: Reader, c: Node, chk: Checker) -> None:
    """payload HEX (bytes); require_reply [HEX with X wildcards] (True or the hex text)."""
    kw = c.words[0]
    if kw == "require_reply" and len(c.words) == 1:
        chk.options["require_reply"] = True
        return
    if len(c.words) < 2:
        p.error(c, "UDP_CHECK payload requires a payload")
        return
    text = " ".join(c.words[1:])
    parsed = read_hex(text, wildcard=kw == "require_reply")
    if parsed is None:
        p.error(c, f"invalid hex string for UDP_CHECK {kw}")
    elif kw == "payload":
        chk.options["payload"] = parsed[0]
    else:
        chk.options["require_reply"] = text


def _file_option(p: Reader, c: Node, chk: Checker, track_files: TrackFiles) -> None:
    if c.words[0] == "track_file":
        name = p.arg(c, 1, 1)
        if name is None:
            return
        tf = track_files.get(name)
        if tf is None:
            p.error(c, f"track_file {name} not found")
            return
        chk.options.update(track_file=name, file_path=tf["file"])
        chk.options.setdefault("weight", tf["weight"])
        chk.options.setdefault("reverse", tf["reverse"])
        if "init_file" in tf:
            chk.options["init_file"] = tf["init_file"]
        return
    w = p.uint(c, -0x7FFFFFFF, 0x7FFFFFFF, most=2)
    rev = c.words[2] if len(c.words) > 2 else "noreverse"
    if rev not in ("reverse", "noreverse"):
        p.error(c, f"unknown track file weight option '{rev}'")
    elif w is not None:
        chk.options["weight"] = w
        chk.options["reverse"] = rev == "reverse"


def _url_block(p: Reader, n: Node) -> UrlConf | None:
    kids = p.block(n)
    if kids is None:
        return None
    path: str | None = None
    digest: str | None = None
    codes: list[tuple[int, int]] = []
    vhost: str | None = None
    regex: str | None = None
    no_match = False
    for c in kids:
        kw = c.words[0]
        if kw not in _URL_KEYWORDS:
            p.unknown(c, "in url")
            continue
        if not p.leaf(c):
            continue
        if kw == "path":
            path = p.arg(c, 1, 1)
        elif kw == "digest":
            d = p.arg(c, 1, 1)
            if d is not None and not re.fullmatch(r"[0-9a-fA-F]{32}", d):
                p.error(c, f"digest '{d}' is not 32 hexadecimal digits (genhash output)")
            elif digest is not None:
                p.error(c, f"digest '{d}' is a duplicate")
            elif d is not None:
                digest = d.lower()
        elif kw == "status_code":
            if p.arg(c) is not None:
                codes.extend(_status_codes(p, c))
        elif kw == "virtualhost":
            vhost = p.arg(c, 1, 1)
        elif kw == "regex":
            regex = given(_regex(p, c), regex)
        else:
            no_match = p.flag(c)
    if path is None:
        p.error(n, "url has no path")
        return None
    if no_match and regex is None:
        p.warn(n, "regex_no_match without regex - ignored")
        no_match = False
    return UrlConf(n.where, path, digest, tuple(codes), vhost, regex, no_match)


def _regex(p: Reader, c: Node) -> str | None:
    words = p.quoted_words(c, "regex")
    if words is None:
        return None
    if len(words) != 2:
        p.error(c, "regex missing or too many fields (quote the expression)")
        return None
    try:
        re.compile(words[1])
    except re.error as e:
        p.error(c, f"invalid regex '{words[1]}': {e}")
        return None
    return words[1]


def _status_codes(p: Reader, c: Node) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for w in c.words[1:]:
        m = re.fullmatch(r"([0-9]+)(?:-([0-9]+))?", w)
        lo = int(m.group(1)) if m else 0
        hi = int(m.group(2) or lo) if m else 0
        if not m or not 100 <= lo <= hi <= 599:
            p.error(c, f"invalid HTTP status code '{w}' (100-599, or a range LOW-HIGH)")
            continue
        out.append((lo, hi))
    return out


def _checker_end(p: Reader, n: Node, chk: Checker) -> list[Checker]:
    kind, o = chk.kind, chk.options
    if kind in ("HTTP_GET", "SSL_GET") and not chk.urls:
        p.error(n, f"{kind} checker has no url")
        return []
    if kind == "MISC_CHECK" and "misc_path" not in o:
        p.error(n, "MISC_CHECK has no misc_path")
        return []
    if kind == "FILE_CHECK" and "track_file" not in o:
        p.error(n, "FILE_CHECK has no track_file")
        return []
    if kind == "UDP_CHECK":
        lo, hi = o.get("min_reply_length", 0), o.get("max_reply_length", 255)
        if isinstance(lo, int) and isinstance(hi, int) and lo > hi:
            p.warn(n, f"UDP_CHECK min_reply_length {lo} > max_reply_length {hi}: fails")
    if kind != "SMTP_CHECK" or not chk.hosts:
        return [chk]
    conn = (chk.connect_ip, chk.connect_port, chk.bindto, chk.bind_port, chk.bind_if)
    own = any(v is not None for v in (*conn, chk.fwmark, chk.timing.connect_timeout))
    hosts = []
    for h in chk.hosts:
        timing = dataclasses.replace(
            chk.timing,
            connect_timeout=given(h.timing.connect_timeout, chk.timing.connect_timeout),
        )
        hosts.append(
            dataclasses.replace(
                chk,
                where=h.where,
                timing=timing,
                hosts=[],
                connect_ip=h.connect_ip,
                connect_port=h.connect_port,
                bindto=h.bindto,
                bind_port=h.bind_port,
                bind_if=h.bind_if,
                fwmark=h.fwmark,
            )
        )
    return ([chk] if own else []) + hosts


def resolve_checker(
    p: Reader,
    c: Checker,
    addr: str,
    port: int,
    rt: Timing,
    *,
    misc_timeout: float,
    log_all_failures: bool,
) -> CheckerConf:
    """The checker with every default and inherited value filled in.

    ``addr``/``port`` are its real server's (resolved port), ``rt`` the real
    server's options with the virtual server's inherited; ``misc_timeout`` is
    the MISC_CHECK default (the virtual server's delay_loop) and
    ``log_all_failures`` the global_defs default.
    """
    kind, o = c.kind, dict(c.options)
    t = c.timing
    delay_loop = given(t.delay_loop, given(rt.delay_loop, 60.0))
    default_retry = {"MISC_CHECK": 0, "DNS_CHECK": 3}.get(kind, 1)
    default_dbr = {"HTTP_GET": 3.0, "SSL_GET": 3.0, "DNS_CHECK": delay_loop}.get(kind, 1.0)
    if kind in ("HTTP_GET", "SSL_GET"):
        # check_http.c: the checker's virtualhost, else the real server's, else the
        # virtual server's (rt already holds the real server's over the virtual one's)
        vh = o.get("virtualhost") or rt.virtualhost
        assert vh is None or isinstance(vh, str)
        o["virtualhost"] = vh
        o.setdefault("http_protocol", "1.0")
        o.setdefault("enable_sni", False)
        o.setdefault("fast_recovery", False)
        o["urls"] = tuple(dataclasses.replace(u, virtualhost=u.virtualhost or vh) for u in c.urls)
    elif kind == "SMTP_CHECK":
        o.setdefault("helo_name", "smtpchecker.keepalived.org")
    elif kind == "DNS_CHECK":
        o.setdefault("type", "SOA")
        o.setdefault("name", ".")
    elif kind == "UDP_CHECK":
        o.setdefault("require_reply", False)
        o.setdefault("min_reply_length", 0)
        o.setdefault("max_reply_length", 255)
    elif kind == "MISC_CHECK":
        o.setdefault("misc_dynamic", False)
        if not o.get("misc_timeout"):
            o["misc_timeout"] = misc_timeout
    connect_ip = c.connect_ip or addr
    ip = ip_address(connect_ip)
    if ip.version == 6 and ip.is_link_local and c.bind_if is None and c.kind not in _NO_CONN:
        p.error(c.where, f"checker link local address {connect_ip} requires a bind_if")
    if c.bindto is not None and family(c.bindto) != ip.version:
        p.error(c.where, f"bindto {c.bindto} and {connect_ip} address families differ")
    connect_port = given(c.connect_port, port)
    if connect_port == 0 and kind not in ("MISC_CHECK", "FILE_CHECK", "PING_CHECK"):
        p.warn(c.where, f"{kind} of {addr} has no port to connect to: set connect_port")
    return CheckerConf(
        kind=kind,
        where=c.where,
        connect_ip=connect_ip,
        connect_port=connect_port,
        bindto=c.bindto,
        bind_port=c.bind_port,
        connect_timeout=given(t.connect_timeout, given(rt.connect_timeout, 5.0)),
        retry=given(t.retry, given(rt.retry, default_retry)),
        delay_before_retry=given(t.delay_before_retry, given(rt.delay_before_retry, default_dbr)),
        delay_loop=delay_loop,
        warmup=given(t.warmup, given(rt.warmup, delay_loop)),
        fwmark=c.fwmark,
        log_all_failures=given(c.log_all_failures, log_all_failures),
        alpha=bool(given(t.alpha, rt.alpha)),
        bind_if=c.bind_if,
        options=o,
    )
