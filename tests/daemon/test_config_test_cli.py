"""``pylvsd --config-test -f keepalived.conf`` (and ``pylvsd -f`` refusing to start): exit
status, one ``pylvsd: FILE:LINE: message`` line per problem on stderr, and nothing started
(no control socket is ever created).

Every main file of the parser's corpus (tests/config/corpus/*.conf; the include fragments
live in subdirectories) must pass; broken variants of them must fail naming the file and
line of the mistake, which is found by looking for the edited text, not hard-coded.

Cases run through ``pylvs.daemon.main.main(argv)`` in this process (what the ``pylvsd``
console script calls; fast, so every corpus file and variant is covered) and, for a
selection, as real ``python -m pylvs.daemon.main`` processes (exit status, stderr, no
socket).  The processes are independent: a module fixture starts them all at once (a
few at a time) and the tests read their results.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from pylvs.daemon.main import main as pylvsd_main

CORPUS = Path(__file__).parent.parent / "config" / "corpus"
CORPUS_FILES = sorted(p.name for p in CORPUS.glob("*.conf"))
KCONF = Path(__file__).parent / "kconf"
KCONF_FILES = sorted(p.name for p in KCONF.glob("*.conf"))

# Corpus files that only use NAT: the default (proxy) data plane takes them as they are.
NAT_ONLY = ("minimal_tcp.conf", "http_checks.conf", "misc_quorum.conf", "include_main.conf")


@dataclass(frozen=True)
class Case:
    """One pylvsd run: its arguments (``--socket`` is added), and what a failure must say."""

    args: tuple[str, ...]
    conf: Path
    want_line: int = 0  # the line the first problem must name (0: the run must pass)
    want_file: Path | None = None  # the file it must name (default: conf)
    want_text: str = ""  # a part of that message


@dataclass(frozen=True)
class Run:
    case: Case
    returncode: int
    stdout: str
    stderr: str
    socket: Path

    def explain(self) -> str:
        return f"pylvsd {' '.join(self.case.args)} -> {self.returncode}\n{self.stderr}"


def line_of(path: Path, text: str) -> int:
    """The 1-based line of the first occurrence of ``text`` in ``path``."""
    content = path.read_text()
    i = content.index(text)
    return content.count("\n", 0, i) + 1


def broken_case(
    root: Path,
    name: str,
    old: str,
    new: str,
    want: str,
    *,
    at: str | None = None,
    main: str | None = None,
    dataplane: str = "proxy",
) -> Case:
    """A corpus copy with ``old`` replaced by ``new`` in ``name``: the first problem must be
    at the line where ``at`` (default: ``new``) now is."""
    shutil.copytree(CORPUS, root)
    path = root / name
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))
    conf = root / (main or name)
    args = ("--dataplane", dataplane, "--config-test", "-f", str(conf))
    return Case(args, conf, line_of(path, at if at is not None else new), path, want)


DR_CONF = """\
# lb_kind DR and TUN are what the packet data plane does; the proxy one cannot.
virtual_server 127.0.0.1 16880 {
    delay_loop 1
    lb_algo rr
    lb_kind DR
    protocol TCP
    real_server 127.0.0.1 16881 {
        TCP_CHECK {
        }
    }
}
virtual_server 127.0.0.1 16882 {
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server 127.0.0.1 16883 {
        lvs_method TUN
        TCP_CHECK {
        }
    }
}
"""


def make_cases(tmp: Path) -> dict[str, Case]:
    out: dict[str, Case] = {}
    for name in CORPUS_FILES:
        path = CORPUS / name
        out[f"none:{name}"] = Case(("--dataplane", "none", "--config-test", "-f", str(path)), path)
        out[f"proxy:{name}"] = Case(("--config-test", "-f", str(path)), path)
    for name in KCONF_FILES:
        out[f"kconf:{name}"] = Case(("--config-test", "-f", str(KCONF / name)), KCONF / name)

    b = tmp / "broken"
    out["unclosed brace"] = broken_case(
        b / "unclosed",
        "minimal_tcp.conf",
        "        }\n    }\n}\n",
        "        }\n    }\n",
        "is not closed",
        at="virtual_server 192.0.2.10 80 {",
    )
    out["extra brace"] = broken_case(
        b / "extra",
        "minimal_tcp.conf",
        "            connect_timeout 2\n        }\n",
        "            connect_timeout 2\n        }\n        }\n    }\n",
        "extra '}'",
        at="}\n}\n",  # the first of the two last braces: one too many now
    )
    out["bad lb_kind"] = broken_case(
        b / "lb_kind", "minimal_tcp.conf", "lb_kind NAT", "lb_kind MASQ", "unknown lb_kind"
    )
    out["bad number"] = broken_case(
        b / "number", "minimal_tcp.conf", "weight 3", "weight 3x", "invalid number '3x'"
    )
    out["bad number in an included file"] = broken_case(
        b / "included",
        "inc/pools/web_extra.conf",
        "weight 2",
        "weight two",
        "invalid number 'two'",
        main="include_main.conf",
    )
    out["missing include"] = broken_case(
        b / "include",
        "include_main.conf",
        "include inc/{defs,groups}.conf",
        "include inc/missing.conf",
        "cannot read included file",
    )
    out["missing group"] = broken_case(
        b / "group",
        "group.conf",
        "virtual_server group MARKS {",
        "virtual_server group NOPE {",
        "virtual_server_group NOPE is not defined",
        dataplane="none",
    )
    dr = tmp / "dr" / "keepalived.conf"
    dr.parent.mkdir(parents=True)
    dr.write_text(DR_CONF)
    dr_line = line_of(dr, "real_server 127.0.0.1 16881")
    out["DR under proxy"] = Case(("--config-test", "-f", str(dr)), dr, dr_line, None, "lb_kind DR")
    out["DR under none"] = Case(("--dataplane", "none", "--config-test", "-f", str(dr)), dr)
    # Without --config-test a file with a problem is refused before anything starts.
    out["start refused"] = Case(("-f", str(dr)), dr, dr_line, None, "lb_kind DR")
    missing = tmp / "nowhere" / "keepalived.conf"
    out["missing file"] = Case(("--config-test", "-f", str(missing)), missing, -1)
    return out


BROKEN = [
    "unclosed brace",
    "extra brace",
    "bad lb_kind",
    "bad number",
    "bad number in an included file",
    "missing include",
    "missing group",
    "DR under proxy",
]

# What also runs as a real process (the rest only through main()).
AS_PROCESS = [
    "proxy:include_main.conf",
    "none:seed_004_lvs_ha.conf",
    "unclosed brace",
    "bad number in an included file",
    "missing group",
    "DR under proxy",
    "start refused",
    "missing file",
]


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Case]:
    return make_cases(tmp_path_factory.mktemp("cases"))


def socket_for(name: str, sockdir: Path) -> Path:
    return sockdir / f"{re.sub(r'[^A-Za-z0-9]+', '_', name)}.sock"


def run_process(name: str, case: Case, sockdir: Path) -> Run:
    sock = socket_for(name, sockdir)
    r = subprocess.run(
        [sys.executable, "-m", "pylvs.daemon.main", "--socket", str(sock), *case.args],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    return Run(case, r.returncode, r.stdout, r.stderr, sock)


@pytest.fixture(scope="module")
def processes(
    cases: dict[str, Case], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Run]]:
    sockdir = tmp_path_factory.mktemp("sockets")
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {n: pool.submit(run_process, n, cases[n], sockdir) for n in AS_PROCESS}
        yield {n: f.result() for n, f in futures.items()}


InProcess = Callable[[str], Run]


@pytest.fixture
def in_process(
    cases: dict[str, Case], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> Iterator[InProcess]:
    def run(name: str) -> Run:
        case = cases[name]
        assert "--config-test" in case.args  # main() would start a daemon otherwise
        sock = socket_for(name, tmp_path)
        capsys.readouterr()
        code = pylvsd_main(["--socket", str(sock), *case.args])
        out, err = capsys.readouterr()
        return Run(case, code, out, err, sock)

    yield run


PROBLEM = re.compile(r"^pylvsd: (?P<file>/[^:]+):(?P<line>\d+): (?P<msg>.+)$")


def problems(r: Run) -> list[tuple[Path, int, str]]:
    """stderr as (file, line, message), every line of it a located problem; files are
    given as real paths (an include may name ``dir/../file``)."""
    out = []
    for line in r.stderr.splitlines():
        m = PROBLEM.match(line)
        assert m, f"not a 'pylvsd: FILE:LINE: message' line: {line!r}\n{r.explain()}"
        out.append((Path(os.path.realpath(m["file"])), int(m["line"]), m["msg"]))
    return out


def assert_nothing_started(r: Run) -> None:
    assert not r.socket.exists(), f"{r.socket} was created\n{r.explain()}"


def assert_passes(r: Run) -> None:
    assert r.returncode == 0, r.explain()
    assert r.stdout.startswith(f"{r.case.conf}: "), r.stdout
    assert r.stdout.strip().endswith("configuration OK"), r.stdout
    for line in r.stderr.splitlines():  # only warnings, each located
        assert re.match(r"^pylvsd: warning: /\S+:\d+: ", line), line
    assert_nothing_started(r)


def assert_fails_at_line(r: Run) -> None:
    case = r.case
    assert r.returncode == 1, r.explain()
    assert "configuration OK" not in r.stdout
    found = problems(r)
    want_file = Path(os.path.realpath(case.want_file or case.conf))
    assert found, r.explain()
    assert found[0][:2] == (want_file, case.want_line), r.explain()
    assert case.want_text in found[0][2], r.explain()
    assert_nothing_started(r)


# -- the corpus passes ---------------------------------------------------------------------------


def test_the_corpus_is_there() -> None:
    assert len(CORPUS_FILES) >= 12
    assert set(NAT_ONLY) <= set(CORPUS_FILES)
    assert KCONF_FILES


@pytest.mark.parametrize("name", CORPUS_FILES)
def test_corpus_file_passes(in_process: InProcess, name: str) -> None:
    """Every corpus file passes with a data plane that takes every method (none); its
    warnings, if any, are located too."""
    assert_passes(in_process(f"none:{name}"))


@pytest.mark.parametrize("name", CORPUS_FILES)
def test_corpus_file_under_the_proxy_data_plane(in_process: InProcess, name: str) -> None:
    """Under the default (proxy) data plane a corpus file passes, or is refused only for
    its DR/TUN real servers and sorry servers, each refusal at its real_server or
    sorry_server line."""
    r = in_process(f"proxy:{name}")
    assert_nothing_started(r)
    if r.returncode == 0:
        assert_passes(r)
        return
    assert name not in NAT_ONLY, r.explain()
    assert r.returncode == 1 and "configuration OK" not in r.stdout
    found = problems(r)
    assert found, r.explain()
    for file, line, msg in found:
        assert re.match(r"(lb_kind|sorry server) (DR|TUN)\b", msg), msg
        written = file.read_text().splitlines()[line - 1]
        assert re.search(r"\b(real_server|sorry_server)\b", written), (file, line, written)


@pytest.mark.parametrize("name", KCONF_FILES)
def test_hand_written_configs_pass_under_proxy(in_process: InProcess, name: str) -> None:
    """The NAT configurations in tests/daemon/kconf are what the proxy plane runs."""
    assert_passes(in_process(f"kconf:{name}"))


def test_warnings_do_not_fail(in_process: InProcess) -> None:
    r = in_process("none:smtp_hosts.conf")
    assert_passes(r)
    path = CORPUS / "smtp_hosts.conf"
    assert f"pylvsd: warning: {path}:12: SMTP_CHECK host blocks are deprecated" in r.stderr


# -- broken files fail at the right line ---------------------------------------------------------


@pytest.mark.parametrize("name", BROKEN)
def test_broken_file_fails_at_its_line(in_process: InProcess, name: str) -> None:
    assert_fails_at_line(in_process(name))


def test_extra_brace_is_the_one_named(in_process: InProcess) -> None:
    """The extra '}' was located by text: that is the brace the parser names, not the
    virtual_server block that it closes too early (line 2)."""
    r = in_process("extra brace")
    assert problems(r)[0][1] > 2 and "extra '}'" in problems(r)[0][2]


def test_dr_and_tun_are_both_reported(in_process: InProcess) -> None:
    """One message per problem: both refused real servers, in file order, pointing at
    the packet data plane; the none plane takes the same file."""
    r = in_process("DR under proxy")
    dr = r.case.conf
    assert [(f, n) for f, n, _ in problems(r)] == [
        (dr, line_of(dr, "real_server 127.0.0.1 16881")),
        (dr, line_of(dr, "real_server 127.0.0.1 16883")),
    ]
    assert [m.split(":")[0] for _, _, m in problems(r)] == ["lb_kind DR", "lb_kind TUN"]
    assert "--dataplane packet" in r.stderr
    assert_passes(in_process("DR under none"))


def test_missing_main_file(in_process: InProcess) -> None:
    r = in_process("missing file")
    assert r.returncode == 1
    assert str(r.case.conf) in r.stderr
    assert_nothing_started(r)


# -- the same as processes -----------------------------------------------------------------------


@pytest.mark.parametrize("name", AS_PROCESS)
def test_as_a_process(processes: dict[str, Run], name: str) -> None:
    r = processes[name]
    if name == "missing file":
        assert r.returncode == 1 and str(r.case.conf) in r.stderr, r.explain()
        assert_nothing_started(r)
    elif r.case.want_line:
        assert_fails_at_line(r)
    else:
        assert_passes(r)


def test_start_refused_leaves_no_socket(processes: dict[str, Run]) -> None:
    """``pylvsd -f FILE`` (no --config-test) with a refused file: exit 1, the problems,
    and no socket left behind (it is not even created: the file is read first)."""
    r = processes["start refused"]
    assert len(problems(r)) == 2, r.explain()
    assert "pylvsd 0.1.0" not in r.stderr  # the daemon's start line
    assert_nothing_started(r)
