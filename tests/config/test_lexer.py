"""keepalived.conf lexer: comments, quotes, braces, includes, parameters (lib/parser.c rules)."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from pylvs.config.lexer import (
    decomment,
    expand_braces,
    lex_file,
    lex_text,
    split_quoted_escaped,
    split_words,
)
from pylvs.config.model import Node, Where


def flat(nodes: tuple[Node, ...], depth: int = 0) -> list[tuple[int, int, tuple[str, ...]]]:
    """(depth, line, words) of every statement, depth first."""
    out: list[tuple[int, int, tuple[str, ...]]] = []
    for n in nodes:
        out.append((depth, n.where.line, n.words))
        if n.children is not None:
            out.extend(flat(n.children, depth + 1))
    return out


def words(text: str, **kw: object) -> list[tuple[str, ...]]:
    r = lex_text(text, **kw)  # type: ignore[arg-type]
    assert not r.errors, r.errors
    return [w for _d, _l, w in flat(r.nodes)]


# -- comments and words ---------------------------------------------------------------


def test_decomment() -> None:
    assert decomment("   weight 1   # the weight") == ("weight 1", False, False)
    assert decomment("! whole line") == ("", False, False)
    assert decomment("a!b") == ("a", False, False)  # a comment may start anywhere
    assert decomment(r"path /a\#b\!c") == ("path /a#b!c", False, False)
    assert decomment('path "/a # b" # c') == ('path "/a # b"', False, False)
    assert decomment("$X= a \\") == ("$X= a", True, False)
    assert decomment('misc_path "/x') == ('misc_path "/x', False, True)


def test_split_words() -> None:
    assert split_words('  notify_up "/bin/x y"  z ') == (("notify_up", "/bin/x y", "z"), True)
    assert split_words('a"b c"d') == (("a", "b c", "d"), True)
    assert split_words("x 'a b'") == (("x", "'a", "b'"), True)  # only " quotes words
    assert split_words('x "open')[1] is False


def test_split_quoted_escaped() -> None:
    assert split_quoted_escaped(r"/bin/x.sh 'a b' \#1 \x41\101 \t") == [
        "/bin/x.sh",
        "a b",
        "#1",
        "AA",
        "\t",
    ]
    assert split_quoted_escaped('a"b c"\'d e\' \\"q\\"') == ["ab cd e", '"q"']
    assert split_quoted_escaped(r"\cA\n\E\\") == ["\x01\n\x1b\\"]
    with pytest.raises(ValueError):
        split_quoted_escaped("'open")
    with pytest.raises(ValueError):
        split_quoted_escaped("x \\")


def test_expand_braces() -> None:
    assert expand_braces("inc/{a,b}.conf") == ["inc/a.conf", "inc/b.conf"]
    assert expand_braces("{x/{,cat,dog},bar}") == ["x/", "x/cat", "x/dog", "bar"]
    assert expand_braces("plain/*.conf") == ["plain/*.conf"]
    assert expand_braces("one{x}") == ["one{x}"]


# -- statements and blocks -------------------------------------------------------------


def test_blocks_braces_anywhere() -> None:
    text = """\
virtual_server 10.0.0.1 80
{
    real_server 10.0.1.1 80 { weight 2 }
    real_server 10.0.1.2 80 {
        weight 3 } real_server 10.0.1.3 80 {
    }
}
"""
    r = lex_text(text)
    assert not r.errors
    assert flat(r.nodes) == [
        (0, 1, ("virtual_server", "10.0.0.1", "80")),
        (1, 3, ("real_server", "10.0.1.1", "80")),
        (2, 3, ("weight", "2")),
        (1, 4, ("real_server", "10.0.1.2", "80")),
        (2, 5, ("weight", "3")),
        (1, 5, ("real_server", "10.0.1.3", "80")),
    ]
    rs3 = r.nodes[0].children[2]  # type: ignore[index]
    assert rs3.children == ()
    assert r.nodes[0].children[0].children[0].children is None  # type: ignore[index]


def test_quoted_braces_and_raw() -> None:
    r = lex_text('notify_up "/bin/x {a}" # }\nregex "^{}$"\n')
    assert not r.errors
    assert [n.words for n in r.nodes] == [("notify_up", "/bin/x {a}"), ("regex", "^{}$")]
    assert r.nodes[0].raw == 'notify_up "/bin/x {a}"'


def test_brace_errors_carry_lines() -> None:
    r = lex_text("global_defs {\n  router_id a\n}\n}\nvirtual_server 1.2.3.4 80 {\n")
    msgs = [(d.where.line, d.message) for d in r.errors]
    assert (4, "extra '}' found") in msgs
    assert any(line == 5 and "not closed" in m for line, m in msgs)
    r = lex_text("{\n a\n}\nvirtual_server 1.2.3.4 80\n")
    assert [(d.where.line, d.message) for d in r.errors] == [
        (1, "unexpected '{' (no keyword before it)")
    ]
    assert [n.words for n in r.nodes] == [("virtual_server", "1.2.3.4", "80")]


def test_unterminated_quote_and_stray_backslash() -> None:
    r = lex_text('a 1\nmisc_path "/bin/x\ndelay_loop 6 \\\n')
    assert [(d.where.line) for d in r.errors] == [2, 3]
    assert "unterminated quote" in r.errors[0].message
    assert "continues only $NAME= definitions" in r.errors[1].message


def test_crlf_and_blank_lines() -> None:
    r = lex_text("a 1\r\n\r\n\r\n  b 2\r\n")
    assert flat(r.nodes) == [(0, 1, ("a", "1")), (0, 4, ("b", "2"))]


# -- includes ---------------------------------------------------------------------------


def write(p: Path, text: str) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def test_include_relative_glob_brace_and_inside_blocks(tmp_path: Path) -> None:
    main = write(
        tmp_path / "etc" / "keepalived.conf",
        "include conf.d/*.conf\ninclude sub/{x,y}.conf\nvirtual_server 1.1.1.1 80 {\n"
        "    include sub/rs.conf\n}\n",
    )
    write(tmp_path / "etc/conf.d/b.conf", "b 1\n")
    write(tmp_path / "etc/conf.d/a.conf", "a 1\ninclude ../sub/nested.conf\n")
    write(tmp_path / "etc/conf.d/skip.txt", "skip 1\n")
    write(tmp_path / "etc/sub/nested.conf", "\n\nnested 1\n")
    write(tmp_path / "etc/sub/x.conf", "x 1\n")
    write(tmp_path / "etc/sub/y.conf", "y 1\n")
    write(tmp_path / "etc/sub/rs.conf", "real_server 2.2.2.2 80 {\n}\n")
    r = lex_file(str(main))
    assert not r.errors and not r.warnings
    d = str(tmp_path / "etc")
    assert [(n.words[0], n.where) for n in r.nodes] == [
        ("a", Where(f"{d}/conf.d/a.conf", 1)),
        ("nested", Where(f"{d}/conf.d/../sub/nested.conf", 3)),
        ("b", Where(f"{d}/conf.d/b.conf", 1)),
        ("x", Where(f"{d}/sub/x.conf", 1)),
        ("y", Where(f"{d}/sub/y.conf", 1)),
        ("virtual_server", Where(str(main), 3)),
    ]
    vs = r.nodes[-1]
    assert vs.children is not None
    assert vs.children[0].words == ("real_server", "2.2.2.2", "80")
    assert vs.children[0].where == Where(f"{d}/sub/rs.conf", 1)
    assert r.files == (
        str(main),
        f"{d}/conf.d/a.conf",
        f"{d}/conf.d/../sub/nested.conf",
        f"{d}/conf.d/b.conf",
        f"{d}/sub/x.conf",
        f"{d}/sub/y.conf",
        f"{d}/sub/rs.conf",
    )


def test_include_problems(tmp_path: Path) -> None:
    main = write(
        tmp_path / "k.conf",
        "include missing.conf\n"  # 1: a named file: error
        "include none/*.conf\n"  # 2: wildcard matching nothing: warning
        "includea none/*.conf\n"  # 3: includea: error
        "include loop.conf\n"  # 4: cycle
        "include exec.conf\n"  # 5: executable: keepalived refuses it
        "include\n",  # 6: a bare "include" is just an unknown keyword
    )
    write(tmp_path / "loop.conf", "include k.conf\n")
    write(tmp_path / "exec.conf", "x 1\n").chmod(0o755)
    r = lex_file(str(main))
    errs = [(os.path.basename(d.where.file), d.where.line, d.message) for d in r.errors]
    assert errs[0][:2] == ("k.conf", 1) and "cannot read included file" in errs[0][2]
    assert ("k.conf", 3, "no config files matched 'none/*.conf'") in errs
    assert any(e[:2] == ("loop.conf", 1) and "include cycle" in e[2] for e in errs)
    assert any(e[:2] == ("k.conf", 5) and "non-executable" in e[2] for e in errs)
    assert [(d.where.line, d.message) for d in r.warnings] == [
        (2, "no config files matched 'none/*.conf'")
    ]
    assert [n.words for n in r.nodes] == [("include",)]


def test_unreadable_main_file(tmp_path: Path) -> None:
    r = lex_file(str(tmp_path / "nope.conf"))
    assert len(r.errors) == 1
    assert r.errors[0].where == Where(str(tmp_path / "nope.conf"), 0)
    assert "cannot read configuration file" in r.errors[0].message


# -- conditional lines and parameters ----------------------------------------------------


def test_conditional_lines() -> None:
    text = "@main a 1\n@backup a 2\n@^main b 1\n@^backup b 2\n@main\n"
    assert words(text, config_id="main") == [("a", "1"), ("b", "2")]
    assert words(text, config_id="other") == [("b", "1"), ("b", "2")]
    assert words(text) == [("b", "1"), ("b", "2")]


def test_definitions_and_substitution() -> None:
    text = """\
$BASE=10.2.${SUB}
$SUB=0
addr ${BASE}.100/32
$SUB=10
addr ${BASE}.100/32
$P=8080
port $P, ${P}x $Px $UNDEF
@main $W=5
@^main $W=1
weight $W
quoted "a${_BANG}b${_HASH}c"
"""
    assert words(text, config_id="main") == [
        ("addr", "10.2.0.100/32"),
        ("addr", "10.2.10.100/32"),
        ("port", "8080,", "8080x", "$Px", "$UNDEF"),
        ("weight", "5"),
        ("quoted", "a!b#c"),
    ]


def test_multiline_definitions_nest() -> None:
    text = """\
$RS= \\
real_server 10.0.${VSN}.${N} 80 { \\
    weight ${N} \\
}

$VS= \\
virtual_server 10.9.${VSN}.1 80 { \\
    $N=1 \\
    $RS \\
    $N=2 \\
    $RS \\
}
$VSN=0
$VS
"""
    r = lex_text(text)
    assert not r.errors
    assert flat(r.nodes) == [
        (0, 14, ("virtual_server", "10.9.0.1", "80")),
        (1, 14, ("real_server", "10.0.0.1", "80")),
        (2, 14, ("weight", "1")),
        (1, 14, ("real_server", "10.0.0.2", "80")),
        (2, 14, ("weight", "2")),
    ]


def test_seq_and_lst() -> None:
    assert words("~SEQ(N, 1, 2, 5) ip 10.0.0.$N") == [
        ("ip", "10.0.0.1"),
        ("ip", "10.0.0.3"),
        ("ip", "10.0.0.5"),
    ]
    assert words("~SEQx(H, 0x90, 0x10, 0xb0) ip fe80::${H}:1") == [
        ("ip", "fe80::90:1"),
        ("ip", "fe80::a0:1"),
        ("ip", "fe80::b0:1"),
    ]
    assert words("~SEQ(A, 2) ~SEQ(B, 3, 4) p ${A}.${B}") == [
        ("p", "1.3"),
        ("p", "1.4"),
        ("p", "2.3"),
        ("p", "2.4"),
    ]
    assert words("~LST({IP, IP1}, {10,1},{20,4}) a 192.168.${IP}.${IP1}") == [
        ("a", "192.168.10.1"),
        ("a", "192.168.20.4"),
    ]
    r = lex_text("~SEQ(N, 1, -1, 5) x $N\n")
    assert r.errors and r.errors[0].where.line == 1 and "~SEQ" in r.errors[0].message


def test_predefined_parameters(tmp_path: Path) -> None:
    f = write(tmp_path / "d" / "k.conf", "dir ${_PWD}\ninst ${_INSTANCE}\nr ${_RANDOM 5 7}\n")
    r = lex_file(str(f), config_id="lvs-a", rng=random.Random(1))
    assert not r.errors
    assert [n.words[1] for n in r.nodes[:2]] == [str(tmp_path / "d"), "lvs-a"]
    assert 5 <= int(r.nodes[2].words[1]) <= 7


def test_runaway_substitution_is_an_error() -> None:
    r = lex_text("$A=x${A}\nvalue ${A}\n")
    assert r.errors and r.errors[0].where.line == 2


def test_conditional_multiline_definition() -> None:
    text = "@a $X= \\\n x 1 \\\n y 2\n$X\n"
    assert words(text, config_id="a") == [("x", "1"), ("y", "2")]
    # for another id the definition line is dropped, and its body is ordinary text
    r = lex_text(text, config_id="b")
    assert [(e.where.line, "continues only" in e.message) for e in r.errors] == [(2, True)]
    assert [n.words for n in r.nodes] == [("y", "2"), ("$X",)]
