"""The values of keepalived.conf statements, read and checked (keepalived 2.2).

Mirrors lib/parser.c's value readers (read_unsigned_strvec(), read_timer(),
check_true_false(), set_value()), notify_script_init() (lib/notify.c) for
script keywords, read_hex_str() (lib/utils.c) for UDP_CHECK payloads, and the
options a virtual server hands down to its real servers and their checkers
(delay_loop, connect_timeout, retry, delay_before_retry, warmup, alpha,
inhibit_on_failure, virtualhost: check_parser.c, check_api.c).

``Reader`` collects the diagnostics of a whole configuration: every reader
returns None after reporting what is wrong, so the caller keeps what it had.
Deliberate difference: where keepalived logs a bad value and carries on, this
is an error (``ConfigError`` lists them all); keywords keepalived knows but
pylvs does not act on (``IGNORED``) and unknown keywords are warnings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import ip_address
from typing import TypeVar

from pylvs.config import lexer
from pylvs.config.model import Diagnostic, Node, Where


def names(text: str) -> tuple[str, ...]:
    return tuple(text.split())


UINT_MAX = 0xFFFFFFFF

# Known to keepalived, nothing for pylvs to do: a warning, then ignored.
IGNORED = {
    "smtp_alert": "email alerts are not sent by pylvs",
    "snmp_name": "pylvs has no SNMP agent",
    "hashed": "keepalived 2.2 ignores it too",
    "BFD_CHECK": "BFD is not supported by pylvs",
    "regex_options": "pylvs uses Python regular expressions without options",
    "regex_stack": "pylvs uses Python regular expressions",
    "regex_min_offset": "not supported by pylvs",
    "regex_max_offset": "not supported by pylvs",
}

# The options of ``Timing`` a virtual or real server block may hold.
TIMING_KEYWORDS = names(
    "delay_loop connect_timeout retry delay_before_retry warmup alpha inhibit_on_failure "
    "virtualhost"
)

_UINT_RE = re.compile(r"\+?[0-9]+")
_INT_RE = re.compile(r"[+-]?[0-9]+")
_TIMER_RE = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")

_T = TypeVar("_T")


def given(v: _T | None, default: _T) -> _T:
    """``v`` when it was set (not None), else ``default``."""
    return default if v is None else v


def truthy(v: object) -> bool:
    return v is True or v in ("yes", "on", "true")


def put(d: dict[str, _T], key: str, v: _T | None) -> None:
    """``d[key] = v`` when a value was read (not None)."""
    if v is not None:
        d[key] = v


def family(addr: str) -> int:
    """4 or 6: the family of an address in text form."""
    return 6 if ":" in addr else 4


@dataclass
class Timing:
    """Options a virtual server hands to its real servers and checkers (None: not set)."""

    delay_loop: float | None = None
    connect_timeout: float | None = None
    retry: int | None = None
    delay_before_retry: float | None = None
    warmup: float | None = None
    alpha: bool | None = None
    inhibit: bool | None = None
    virtualhost: str | None = None


def inherit(rs: Timing, vs: Timing) -> Timing:
    """A real server's options, the virtual server's where it has none."""
    return Timing(*(given(a, b) for a, b in zip(vars(rs).values(), vars(vs).values(), strict=True)))


class Reader:
    """Value readers sharing one list of errors and one of warnings."""

    def __init__(self) -> None:
        self.errors: list[Diagnostic] = []
        self.warnings: list[Diagnostic] = []

    def error(self, n: Node | Where, msg: str) -> None:
        self.errors.append(Diagnostic(n.where if isinstance(n, Node) else n, msg))

    def warn(self, n: Node | Where, msg: str) -> None:
        self.warnings.append(Diagnostic(n.where if isinstance(n, Node) else n, msg))

    def unknown(self, n: Node, where: str) -> None:
        kw = n.words[0]
        if kw in IGNORED:
            self.warn(n, f"'{kw}' ignored: {IGNORED[kw]}")
        else:
            self.warn(n, f"unknown keyword '{kw}' {where} (ignored)")

    def leaf(self, n: Node) -> bool:
        if n.children is not None:
            self.error(n, f"'{n.words[0]}' does not take a {{ }} block")
            return False
        return True

    def block(self, n: Node) -> tuple[Node, ...] | None:
        if n.children is None:
            self.error(n, f"'{' '.join(n.words)}' needs a {{ }} block")
            return None
        return n.children

    def named_block(self, n: Node) -> tuple[str, tuple[Node, ...]] | None:
        """``KEYWORD NAME { ... }``: the name and the statements of the block."""
        name = self.arg(n, 1, 1)
        kids = self.block(n)
        return None if name is None or kids is None else (name, kids)

    def arg(self, n: Node, i: int = 1, most: int | None = None) -> str | None:
        if len(n.words) <= i:
            self.error(n, f"'{n.words[0]}' is missing a value")
            return None
        if most is not None and len(n.words) > most + 1:
            extra = " ".join(n.words[most + 1 :])
            self.warn(n, f"extra words after '{n.words[0]}' ignored: {extra}")
        return n.words[i]

    def uint(self, n: Node, lo: int, hi: int, i: int = 1, most: int | None = 1) -> int | None:
        text = self.arg(n, i, most)
        if text is None:
            return None
        return self.number(n, text, lo, hi)

    def number(self, n: Node | Where, text: str, lo: int, hi: int) -> int | None:
        t = text.strip()
        if not (_INT_RE.fullmatch(t) if lo < 0 else _UINT_RE.fullmatch(t)):
            kind = "negative number" if t.startswith("-") else "invalid number"
            self.error(n, f"{kind} '{text}'")
            return None
        v = int(t)
        if not lo <= v <= hi:
            self.error(n, f"number '{text}' outside range [{lo}, {hi}]")
            return None
        return v

    def timer(self, n: Node, lo: float, hi: float = 1e9) -> float | None:
        text = self.arg(n, 1, 1)
        if text is None:
            return None
        if not _TIMER_RE.fullmatch(text.strip()):
            self.error(n, f"invalid number '{text}'")
            return None
        v = float(text)
        if not lo <= v <= hi:
            self.error(n, f"{n.words[0]} '{text}' outside range [{lo:g}, {hi:g}]")
            return None
        return v

    def flag(self, n: Node) -> bool:
        """A keyword taking no value (keepalived ignores any it is given)."""
        if len(n.words) > 1:
            self.warn(n, f"'{n.words[0]}' takes no value: '{' '.join(n.words[1:])}' ignored")
        return True

    def boolean(self, n: Node) -> bool | None:
        """check_true_false(): no value means yes."""
        if len(n.words) < 2:
            return True
        w = self.arg(n, 1, 1)
        if w in ("true", "on", "yes"):
            return True
        if w in ("false", "off", "no"):
            return False
        self.error(n, f"invalid {n.words[0]} value '{w}' (yes|no|on|off|true|false)")
        return None

    def address(self, n: Node | Where, text: str, what: str) -> str | None:
        try:
            return str(ip_address(text))
        except ValueError:
            self.error(n, f"invalid {what} address '{text}'")
            return None

    def port(self, n: Node, i: int) -> int | None:
        """A server's optional port, word ``i`` of the statement: absent or 0 -> 0."""
        text = n.words[i] if len(n.words) > i else None
        if text is None or text.strip("0") == "":
            return 0
        return self.number(n, text, 1, 65535)

    def quoted_words(self, n: Node, what: str, text: str | None = None) -> list[str] | None:
        """The shell-like words of ``text`` (by default the statement as written)."""
        if text is None:
            text = n.raw or " ".join(n.words)
        try:
            return lexer.split_quoted_escaped(text)
        except ValueError as e:
            self.error(n, f"cannot parse {what}: {e}")
            return None

    def script(self, n: Node) -> str | None:
        """notify_script_init(): the script word of the raw line, then user [group]."""
        what = f"the {n.words[0]} script"
        words = self.quoted_words(n, what)
        if words is None:
            return None
        if len(words) < 2 or not words[1]:
            self.error(n, f"'{n.words[0]}' is missing a script")
            return None
        if self.quoted_words(n, what, words[1]) is None:
            return None
        if len(words) > 2:
            self.warn(
                n,
                f"{n.words[0]}: '{' '.join(words[2:])}' is read as the user [group] to run "
                "the script as (quote the command to pass arguments): not supported, ignored",
            )
        return words[1]

    def timing(self, n: Node, t: Timing, level: str) -> bool:
        """delay_loop, connect_timeout, retry... at virtual/real server or checker level."""
        kw = n.words[0]
        if kw == "delay_loop":
            t.delay_loop = given(self.timer(n, 1e-6), t.delay_loop)
        elif kw == "connect_timeout":
            t.connect_timeout = given(self.timer(n, 1e-6, UINT_MAX / 1e6), t.connect_timeout)
        elif kw == "retry":
            t.retry = given(self.uint(n, 0 if level == "checker" else 1, UINT_MAX), t.retry)
        elif kw == "delay_before_retry":
            t.delay_before_retry = given(self.timer(n, 0.0), t.delay_before_retry)
        elif kw == "warmup":
            t.warmup = given(self.timer(n, 0.0), t.warmup)
        elif kw == "alpha":  # a flag for a virtual server, a <BOOL> below it
            t.alpha = self.flag(n) if level == "virtual" else given(self.boolean(n), t.alpha)
        elif kw == "inhibit_on_failure" and level != "checker":
            t.inhibit = self.flag(n) if level == "virtual" else given(self.boolean(n), t.inhibit)
        elif kw == "virtualhost" and level != "checker":
            t.virtualhost = given(self.arg(n, 1, 1), t.virtualhost)
        else:
            return False
        return True


def read_hex(text: str, wildcard: bool) -> tuple[bytes, bytes | None] | None:
    """read_hex_str(): pairs of hex digits, a lone digit before a blank is one byte;
    ``X`` matches any nibble in a reply (the mask has its bits set)."""
    data, mask = bytearray(), bytearray()
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in " \t":
            i += 1
        if i >= n:
            break
        hi = _nibble(text[i], wildcard)
        if hi is None:
            return None
        i += 1
        val, m = hi
        if i < n and text[i] != " ":
            lo = _nibble(text[i], wildcard)
            if lo is None:
                return None
            i += 1
            val, m = (val << 4) | lo[0], (m << 4) | lo[1]
        data.append(val)
        mask.append(m)
    if not data:
        return None
    return bytes(data), (bytes(mask) if any(mask) else None)


def _nibble(c: str, wildcard: bool) -> tuple[int, int] | None:
    if c in "0123456789abcdefABCDEF":
        return int(c, 16), 0
    if wildcard and c in "xX":
        return 0, 0xF
    return None
