"""keepalived.conf lexer: files -> ``Node`` tree, as keepalived 2.2's lib/parser.c reads them.

What it mirrors (read_line(), decomment(), alloc_strvec_r(), check_include()):

- comments start at ``#`` or ``!`` anywhere outside double quotes; ``\\#`` and
  ``\\!`` are literal characters;
- ``{`` and ``}`` outside double quotes end a statement wherever they are, so
  ``real_server 10.0.0.1 80 { weight 2 }`` is three statements and a block;
- words are separated by blanks; a word starting with ``"`` runs to the next
  ``"`` (no escapes); script keywords re-split ``Node.raw`` with
  ``split_quoted_escaped`` (quotes ``"``/``'`` and shell-like escapes);
- ``include``/``includer``/``includem``/``includew``/``includeb``/``includea``
  PATTERN anywhere (also inside blocks): csh braces and glob wildcards,
  relative to the directory of the including file, files in sorted order;
- conditional lines ``@id ...`` / ``@^id ...`` against the config id;
- parameters: ``$NAME=value``, multi-line definitions continued by a final
  ``\\`` (the only line continuation keepalived has), ``$NAME``/``${NAME}``
  substitution, the predefined ``_PWD``, ``_INSTANCE``, ``_RANDOM``,
  ``_HASH``, ``_BANG``; ``~SEQ``/``~SEQx``/``~LST`` line repetition.

Deliberate differences: every problem is collected with its file:line instead
of logged; an include naming a file (no wildcard) that is missing or
unreadable is an error, a wildcard matching nothing a warning (keepalived's
plain ``include`` only logs both); include cycles are errors; a ``\\`` ending
an ordinary line is an error (keepalived keeps it as a stray word); an
unclosed block is reported at the line that opened it.

The lexing is pure: files are read through a ``Source`` (``LocalFiles`` for
the real file system).
"""

from __future__ import annotations

import glob as _glob
import os
import random
import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from pylvs.config.model import Diagnostic, Node, Where

WHITE = " \t\f\n\r\v"
MAX_DEPTH = 64  # nested includes / substitutions / ~SEQ levels
MAX_EXPANSIONS = 10_000  # parameter replacements on one line

_ESCAPES = {"a": "\a", "b": "\b", "E": "\x1b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_ESCAPES["v"] = "\v"
_INCLUDE_RE = re.compile(r"include([rmwba]?)[ \t\f\v]")
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# -- words -----------------------------------------------------------------------------


def decomment(line: str) -> tuple[str, bool, bool]:
    """decomment(): (text, ends with a continuation ``\\``, unterminated quote)."""
    s = line.lstrip(" \t")
    out: list[str] = []
    quote = False
    i = 0
    n = len(s)
    while i < n:
        c = s[i]
        if c == '"':
            quote = not quote
        elif c == "\\":
            if i + 1 == n:
                return "".join(out).rstrip(" \t"), True, quote
            nxt = s[i + 1]
            if not quote and nxt in "#!":
                out.append(nxt)
            else:
                out.append(c + nxt)
            i += 2
            continue
        elif not quote and c in "#!":
            break
        out.append(c)
        i += 1
    return "".join(out).rstrip(" \t"), False, quote


def split_words(text: str) -> tuple[tuple[str, ...], bool]:
    """alloc_strvec_r(): the words of a statement, and False on an unmatched ``"``."""
    words: list[str] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in WHITE:
            i += 1
        if i >= n:
            return tuple(words), True
        if text[i] == '"':
            end = text.find('"', i + 1)
            if end < 0:
                return tuple(words), False
            words.append(text[i + 1 : end])
            i = end + 1
        else:
            j = i
            while j < n and text[j] not in WHITE and text[j] != '"':
                j += 1
            words.append(text[i:j])
            i = j


def split_quoted_escaped(text: str) -> list[str]:
    """alloc_strvec_quoted_escaped(): shell-like words (``"``/``'`` quotes, escapes).

    Raises ValueError on a missing closing quote or a lone final ``\\``.
    """
    words: list[str] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in WHITE:
            i += 1
        if i >= n:
            return words
        cur: list[str] = []
        quote = ""
        while i < n:
            c = text[i]
            if c == "\\":
                i += 1
                if i >= n:
                    raise ValueError(f"missing escaped character at end of {text!r}")
                i = _escape(text, i, cur)
            elif quote:
                if c == quote:
                    quote = ""
                else:
                    cur.append(c)
                i += 1
            elif c in "\"'":
                quote = c
                i += 1
            elif c in WHITE:
                break
            else:
                cur.append(c)
                i += 1
        if quote:
            raise ValueError(f"missing terminating {quote} in {text!r}")
        words.append("".join(cur))


def _escape(text: str, i: int, out: list[str]) -> int:
    c = text[i]
    if c == "x" and i + 1 < len(text) and text[i + 1] in "0123456789abcdefABCDEF":
        j = i + 1
        while j < len(text) and text[j] in "0123456789abcdefABCDEF":
            j += 1
        out.append(chr(int(text[i + 1 : j], 16) & 0xFF))
        return j
    if c == "c" and i + 1 < len(text):
        out.append(chr(ord(text[i + 1]) & 0x1F))
        return i + 2
    if c in "01234567":
        j = i
        while j < len(text) and j < i + 3 and text[j] in "01234567":
            j += 1
        out.append(chr(int(text[i:j], 8) & 0xFF))
        return j
    out.append(_ESCAPES.get(c, c))
    return i + 1


def expand_braces(pattern: str) -> list[str]:
    """csh-style ``{a,b}`` expansion (glob's GLOB_BRACE), alternatives in order."""
    depth = 0
    start = -1
    for i, c in enumerate(pattern):
        if c == "\\":
            continue
        if c == "{":
            if depth == 0:
                start = i
            depth += 1
        elif c == "}" and depth:
            depth -= 1
            if depth == 0:
                inner = pattern[start + 1 : i]
                alts: list[str] = []
                d = 0
                last = 0
                for j, ch in enumerate(inner):
                    if ch == "{":
                        d += 1
                    elif ch == "}":
                        d -= 1
                    elif ch == "," and d == 0:
                        alts.append(inner[last:j])
                        last = j + 1
                alts.append(inner[last:])
                if len(alts) == 1:
                    continue  # "{x}" is not a brace expression for glob either
                out: list[str] = []
                for alt in alts:
                    out.extend(expand_braces(pattern[:start] + alt + pattern[i + 1 :]))
                return out
    return [pattern]


# -- files -----------------------------------------------------------------------------


class Source(Protocol):
    """Where configuration files come from."""

    def read(self, path: str) -> str:
        """The file's text; OSError (or ValueError for unusable files) when it cannot be."""
        ...

    def glob(self, pattern: str) -> list[str]:
        """Paths of regular files matching a wildcard pattern, sorted."""
        ...


class LocalFiles:
    """The real file system, with keepalived's check_glob_file() rules."""

    def read(self, path: str) -> str:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            raise ValueError("is a directory")
        if not stat.S_ISREG(st.st_mode) or st.st_mode & 0o111:
            raise ValueError("is not a regular non-executable file")
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            return f.read()

    def glob(self, pattern: str) -> list[str]:
        return sorted(p for p in _glob.glob(pattern) if not os.path.isdir(p))


@dataclass
class Lexed:
    """The statements of a configuration, every file read, and the problems found."""

    nodes: tuple[Node, ...]
    files: tuple[str, ...]
    errors: list[Diagnostic] = field(default_factory=list)
    warnings: list[Diagnostic] = field(default_factory=list)


def lex_file(
    path: str,
    *,
    source: Source | None = None,
    config_id: str | None = None,
    rng: random.Random | None = None,
) -> Lexed:
    """Read ``path`` and everything it includes."""
    r = _Reader(source or LocalFiles(), config_id, rng or random.Random(0))
    r.read_file(path, None)
    return r.finish()


def lex_text(
    text: str,
    file: str = "keepalived.conf",
    *,
    source: Source | None = None,
    config_id: str | None = None,
    rng: random.Random | None = None,
) -> Lexed:
    """Lex ``text`` as if it were the file ``file`` (includes resolved next to it)."""
    r = _Reader(source or LocalFiles(), config_id, rng or random.Random(0))
    r.files.append(file)
    r.read_text(text, file)
    return r.finish()


# -- the reader ------------------------------------------------------------------------


@dataclass
class _Def:
    value: str
    multiline: bool = False
    fn: Callable[[str], str] | None = None  # predefined: value computed from parameters


@dataclass
class _Open:
    where: Where
    words: tuple[str, ...]
    raw: str
    children: list[_Open] | None = None


class _Reader:
    def __init__(self, source: Source, config_id: str | None, rng: random.Random) -> None:
        self.source = source
        self.config_id = config_id
        self.rng = rng
        self.files: list[str] = []
        self.errors: list[Diagnostic] = []
        self.warnings: list[Diagnostic] = []
        self.stack: list[str] = []  # files being read (include cycles)
        self.file = ""
        self.defs: dict[str, _Def] = {
            "_PWD": _Def("", fn=lambda _p: os.path.dirname(os.path.abspath(self.file))),
            "_INSTANCE": _Def("", fn=lambda _p: self.config_id or ""),
            "_RANDOM": _Def("", fn=self._random),
            "_HASH": _Def("#"),
            "_BANG": _Def("!"),
        }
        self.mdef: _Def | None = None  # multi-line definition being read
        self.top: list[_Open] = []
        self.levels: list[list[_Open]] = [self.top]
        self.opened: list[_Open] = []  # blocks not yet closed

    # problems
    def error(self, where: Where, msg: str) -> None:
        self.errors.append(Diagnostic(where, msg))

    def warn(self, where: Where, msg: str) -> None:
        self.warnings.append(Diagnostic(where, msg))

    # files
    def read_file(self, path: str, where: Where | None) -> None:
        at = where or Where(path, 0)
        if os.path.normpath(path) in self.stack:
            self.error(at, f"include cycle: {path} is already being read")
            return
        if len(self.stack) >= MAX_DEPTH:
            self.error(at, f"includes nested too deeply at {path}")
            return
        try:
            text = self.source.read(path)
        except (OSError, ValueError) as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            what = "configuration file" if where is None else "included file"
            self.error(at, f"cannot read {what} {path}: {reason}")
            return
        if path not in self.files:
            self.files.append(path)
        self.read_text(text, path)

    def read_text(self, text: str, path: str) -> None:
        saved = self.file
        self.stack.append(os.path.normpath(path))
        self.file = path
        try:
            for n, line in enumerate(text.split("\n"), 1):
                self._physical(line.rstrip("\r\n"), Where(path, n))
            self.mdef = None
        finally:
            self.stack.pop()
            self.file = saved

    def _physical(self, line: str, where: Where) -> None:
        if self.mdef is not None:
            if not line:
                self.mdef = None
                return
            text, cont, quote = decomment(line)
            if quote:
                self.error(where, f"unterminated quote in '{line.strip()}'")
            if not text and not cont:
                return
            mdef = self.mdef
            if cont:
                if text:
                    mdef.value += text.rstrip(" \t") + "\n"
            else:
                mdef.value += text
                self.mdef = None
            if self.mdef is None:
                mdef.value = mdef.value.rstrip("\n")
                if not mdef.value:
                    mdef.multiline = False
            return
        if not line:
            return
        text, cont, quote = decomment(line)
        if quote:
            self.error(where, f"unterminated quote in '{line.strip()}'")
            return
        if cont:
            cond = self._conditional(text) if text.startswith("@") else text
            if cond is None:
                return
            if cond.startswith("$") and self._define(cond + "\\", where):
                return
            self.error(
                where,
                "a '\\' ending a line continues only $NAME= definitions in keepalived.conf",
            )
            return
        if text:
            self.logical(text, where, 0)

    # logical lines
    def logical(self, text: str, where: Where, depth: int) -> None:
        if depth > MAX_DEPTH:
            self.error(where, "parameter substitutions or ~SEQ nested too deeply")
            return
        pending: list[list[str]] = []
        rounds = 0
        while True:
            rounds += 1
            if rounds > MAX_DEPTH:
                self.error(where, f"parameter substitution does not end: '{text}'")
                return
            if text.startswith("@"):
                cond = self._conditional(text)
                if cond is None:
                    return
                text = cond
            if text.startswith("$") and self._define(text, where):
                return
            if text.startswith(("~SEQ", "~LST")):
                self._repeat(text, where, depth)
                return
            if text.startswith("~") or "$" not in text:
                break
            replaced = self._substitute(text, where)
            if replaced is None:
                break
            new, more = replaced
            if more:
                pending.append(more)
            text = decomment(new)[0]
            if not (text.startswith("@") or "$" in text):
                break
        if text:
            m = _INCLUDE_RE.match(text)
            if m:
                self._include(m.group(1), text[m.end() :].strip(" \t"), where)
            else:
                self._emit(text, where, depth)
        for more in reversed(pending):
            for line in more:
                self.logical(line, where, depth + 1)

    def _conditional(self, text: str) -> str | None:
        """``@id rest`` / ``@^id rest``: the rest when it is for this config id, else None."""
        neg = text.startswith("@^")
        ofs = 2 if neg else 1
        m = re.search(r"[ \t]", text[ofs:])
        if m is None:
            return None
        ident = text[ofs : ofs + m.start()]
        matched = self.config_id is not None and ident == self.config_id
        return None if matched == neg else text[ofs + m.start() :].lstrip(" \t")

    def _emit(self, text: str, where: Where, depth: int) -> None:
        """Split at the first brace outside quotes (read_line's line_residue)."""
        i = 0
        pos = -1
        if text[0] in "{}":
            pos = 0
        else:
            while i < len(text):
                c = text[i]
                if c in "{}":
                    pos = i
                    break
                if c == '"':
                    end = text.find('"', i + 1)
                    if end < 0:
                        break
                    i = end
                i += 1
        if pos < 0:
            self._statement(text.rstrip(" \t"), where)
            return
        if pos == 0:
            self._brace(text[0], where)
            rest = text[1:].strip(" \t")
        else:
            self._statement(text[:pos].rstrip(" \t"), where)
            rest = text[pos:]
        if rest:
            self.logical(rest, where, depth + 1)

    # definitions
    def _define(self, text: str, where: Where) -> bool:
        m = _NAME_RE.match(text, 1)
        if m is None or not text.startswith("=", m.end()):
            return False
        name = m.group(0)
        value = text[m.end() + 1 :].lstrip(" \t")
        d = _Def("")
        if value.endswith("\\"):
            first = value[:-1].rstrip(" \t")
            d.value = first + "\n" if first else ""
            d.multiline = True
            self.mdef = d
        else:
            d.value = value
        self.defs[name] = d
        return True

    def _random(self, params: str) -> str:
        nums = [int(x) for x in params.split()]
        lo = nums[0] if nums else 0
        hi = nums[1] if len(nums) > 1 else 32767
        return str(self.rng.randint(min(lo, hi), max(lo, hi)))

    def _find(self, text: str, i: int) -> tuple[_Def, int, str] | None:
        """find_definition() at text[i] == '$': (def, end of the reference, params)."""
        j = i + 1
        braces = j < len(text) and text[j] == "{"
        if braces:
            j += 1
        m = _NAME_RE.match(text, j)
        if m is None:
            return None
        name, k = m.group(0), m.end()
        params = ""
        if braces:
            pm = re.match(r"( [ 0-9]*[0-9])?\}", text[k:])
            if pm is None:
                return None
            params = (pm.group(1) or "").strip()
            k += pm.end()
        elif k < len(text) and text[k] not in " \t,)":
            return None
        d = self.defs.get(name)
        if d is None or (params and name != "_RANDOM"):
            return None
        if d.multiline and k != len(text):
            return None  # a multi-line value only replaces a reference ending the line
        return d, k, params

    def _substitute(self, text: str, where: Where) -> tuple[str, list[str]] | None:
        """replace_param(): the new text and the further lines of a multi-line value."""
        more: list[str] = []
        done = 0
        i = text.find("$")
        changed = False
        while 0 <= i < len(text) - 1:
            found = self._find(text, i)
            if found is None:
                i = text.find("$", i + 1)
                continue
            d, end, params = found
            done += 1
            if done > MAX_EXPANSIONS:
                self.error(where, "parameter substitution does not end")
                return None
            value = d.fn(params) if d.fn is not None else d.value
            changed = True
            if d.multiline:
                first, _, rest = value.partition("\n")
                if rest:
                    more = rest.split("\n")
                value = first
            text = text[:i] + value + text[end:]
            if value.lstrip(" \t").startswith("~"):
                break
            i = text.find("$", i)  # the value is scanned again: definitions nest
        return (text, more) if changed else None

    def _repeat(self, text: str, where: Where, depth: int) -> None:
        """~SEQ(var, [start,] [step,] end) / ~SEQx / ~LST(var(s), values...) rest."""
        try:
            if text.startswith("~SEQ"):
                var, values, rest = self._parse_seq(text, where)
                for v in values:
                    self.defs[var] = _Def(v)
                    self.logical(rest, where, depth + 1)
            else:
                names, sets, rest = _parse_lst(text)
                for vals in sets:
                    for name, v in zip(names, vals, strict=True):
                        self.defs[name] = _Def(v)
                    self.logical(rest, where, depth + 1)
        except ValueError as e:
            self.error(where, f"invalid {text[:4]} specification '{text}': {e}")

    def _parse_seq(self, text: str, where: Where) -> tuple[str, list[str], str]:
        hexa = text.startswith("~SEQx")
        m = re.match(r"~SEQx?[ \t]*\([ \t]*([^ \t,)]+)[ \t]*,([^)]*)\)[ \t]*(.*)", text)
        if m is None:
            raise ValueError("expected ~SEQ(var, start, step, end)")
        args = m.group(2)
        sub = self._substitute(args, where)
        if sub is not None:
            if sub[1]:
                raise ValueError("a parameter is a multi-line definition")
            args = sub[0]
        try:
            nums = [int(a.strip(), 0) for a in args.split(",")]
        except ValueError:
            raise ValueError(f"bad number in '{args}'") from None
        if len(nums) == 1:
            end = nums[0]
            start, step = (-1 if end < 0 else 1), (-1 if end < 1 else 1)
        elif len(nums) == 2:
            start, end = nums
            step = 1 if start <= end else -1
        elif len(nums) == 3:
            start, step, end = nums
            if step == 0 or (start < end and step < 0) or (start > end and step > 0):
                raise ValueError("start, step and end do not make a sequence")
        else:
            raise ValueError("too many numbers")
        if hexa and (start < 0 or end < 0):
            raise ValueError("~SEQx takes positive numbers only")
        stop = end + (1 if step > 0 else -1)
        values = [format(v, "x") if hexa else str(v) for v in range(start, stop, step)]
        return m.group(1), values, m.group(3)

    # includes
    def _include(self, kind: str, pattern: str, where: Where) -> None:
        if not pattern:
            self.error(where, "include without a file name")
            return
        base = os.path.dirname(self.file)
        strict_match = kind in ("w", "a")
        for alt in expand_braces(pattern):
            path = alt if os.path.isabs(alt) else os.path.join(base, alt)
            if _glob.has_magic(path):
                try:
                    found = self.source.glob(path)
                except OSError as e:
                    self.error(where, f"cannot search for include files {pattern}: {e}")
                    continue
                if not found:
                    if strict_match:
                        self.error(where, f"no config files matched '{pattern}'")
                    else:
                        self.warn(where, f"no config files matched '{pattern}'")
                for f in found:
                    self.read_file(f, where)
            else:
                self.read_file(path, where)

    # tree
    def _statement(self, text: str, where: Where) -> None:
        words, ok = split_words(text)
        if not ok:
            self.error(where, f"unmatched quote in '{text}'")
            return
        if words:
            self.levels[-1].append(_Open(where, words, text))

    def _brace(self, c: str, where: Where) -> None:
        level = self.levels[-1]
        if c == "{":
            kids: list[_Open] = []
            if level and level[-1].children is None:
                blk = level[-1]
            else:
                self.error(where, "unexpected '{' (no keyword before it)")
                blk = _Open(where, ("{",), "{")  # keeps the braces balanced; dropped
            blk.children = kids
            self.levels.append(kids)
            self.opened.append(blk)
        elif len(self.levels) > 1:
            self.levels.pop()
            self.opened.pop()
        else:
            self.error(where, "extra '}' found")

    def finish(self) -> Lexed:
        for blk in self.opened:
            name = " ".join(blk.words)
            self.error(blk.where, f"block '{name}' is not closed: missing '}}'")
        return Lexed(
            tuple(_freeze(o) for o in self.top),
            tuple(self.files),
            self.errors,
            self.warnings,
        )


def _freeze(o: _Open) -> Node:
    kids = None
    if o.children is not None:
        kids = tuple(_freeze(c) for c in o.children)
    return Node(o.where, o.words, kids, o.raw)


def _parse_lst(text: str) -> tuple[list[str], list[list[str]], str]:
    """~LST(var, v1, v2...) or ~LST({a, b}, {1, 2}, {3, 4}) rest."""
    m = re.match(r"~LST[ \t]*\(", text)
    if m is None:
        raise ValueError("expected ~LST(var, values...)")
    i = m.end()
    depth = 1
    j = i
    while j < len(text) and depth:
        if text[j] == "(":
            depth += 1
        elif text[j] == ")":
            depth -= 1
        j += 1
    if depth:
        raise ValueError("missing ')'")
    body, rest = text[i : j - 1], text[j:].lstrip(" \t")
    items = list(_lst_items(body))
    if len(items) < 2:
        raise ValueError("no values")
    names = items[0]
    sets: list[list[str]] = []
    for vals in items[1:]:
        if len(vals) > len(names):
            raise ValueError("too many values")
        sets.append(vals + [""] * (len(names) - len(vals)))
    return names, sets, rest


def _lst_items(body: str) -> Iterator[list[str]]:
    i = 0
    while i < len(body):
        while i < len(body) and body[i] in " \t,":
            i += 1
        if i >= len(body):
            return
        if body[i] == "{":
            end = body.find("}", i)
            if end < 0:
                raise ValueError("missing '}'")
            yield [v.strip(" \t") for v in body[i + 1 : end].split(",")]
            i = end + 1
        else:
            end = body.find(",", i)
            end = len(body) if end < 0 else end
            yield [body[i:end].strip(" \t")]
            i = end
