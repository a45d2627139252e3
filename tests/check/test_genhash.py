"""``pylvs genhash`` against nginx: the digest matches curl's body, SSL, virtualhost,
verbose dumps, errors; and it is reachable as a ``pylvs`` command."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
from collections.abc import Iterator

import pytest

from pylvs.cli import genhash
from pylvs.cli.main import main as pylvs_main
from pylvs.testing.backends import NginxBackends
from tests.check.helpers import closed_port, require_nginx

PORT = 15701


@pytest.fixture(scope="module")
def backend() -> Iterator[NginxBackends]:
    require_nginx()
    with NginxBackends([("127.0.0.1", PORT)], big_size=100_000) as b:
        yield b


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = genhash.main(list(argv), out=out)
    return code, out.getvalue()


def test_digest_is_the_md5_of_the_body_curl_sees(backend: NginxBackends) -> None:
    for path in ("/", "/big"):
        body = subprocess.run(
            ["curl", "-sf", f"http://127.0.0.1:{PORT}{path}"], capture_output=True, check=True
        ).stdout
        code, out = run("-s", "127.0.0.1", "-p", str(PORT), "-u", path)
        assert code == 0
        assert out == hashlib.md5(body).hexdigest() + "\n"


def test_verbose_dumps_header_body_and_digest(backend: NginxBackends) -> None:
    code, out = run("-v", "-s", "127.0.0.1", "-p", str(PORT), "-u", "/", "-P", "1.1")
    assert code == 0
    assert "HTTP Header Ascii Buffer" in out and "HTTP/1.1 200 OK" in out
    assert "HTML hash final resulting" in out
    assert out.splitlines()[-1] == hashlib.md5(backend[0].body.encode()).hexdigest()


def test_errors(backend: NginxBackends) -> None:
    code, _ = run("-s", "127.0.0.1", "-p", str(closed_port()), "-u", "/")
    assert code == 1
    code, _ = run("-S", "-s", "127.0.0.1", "-p", str(PORT), "-u", "/", "-t", "1")
    assert code == 1  # TLS to a plain HTTP port
    for bad in (["-s", "localhost", "-p", "80", "-u", "/"], ["-s", "127.0.0.1", "-u", "/"]):
        with pytest.raises(SystemExit) as e:
            run(*bad)
        assert e.value.code == 2


def test_pylvs_genhash_command(backend: NginxBackends) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pylvs.cli.main",
            "genhash",
            "-s",
            "127.0.0.1",
            "-p",
            str(PORT),
            "-u",
            "/",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == hashlib.md5(backend[0].body.encode()).hexdigest()
    with pytest.raises(SystemExit):
        pylvs_main(["genhash", "-h"])
