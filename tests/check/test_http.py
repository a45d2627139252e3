"""HTTP_GET and SSL_GET against real nginx (status, digest, regex, virtualhost, TLS with a
self-signed certificate, SNI) and against small asyncio servers (the exact request
bytes, responses without Content-Length, stalls)."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from pylvs.check.http import build_request, run
from pylvs.config.model import CheckerConf
from pylvs.testing.backends import NginxBackends, NginxProcess
from tests.check.helpers import closed_port, conf, require_nginx, url

BACKEND = 15101  # NginxBackends
VHOST = 15111  # name-based virtual hosts
TLS = 15112  # ssl, self-signed
PYSRV = 15121  # asyncio servers

VHOST_CONF = """
events { worker_connections 64; }
http {
    access_log off;
    default_type text/plain;
    client_body_temp_path {prefix}/tmp/client_body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    server {
        listen 127.0.0.1:15111 default_server;
        location = / { return 200 "default\\n"; }
    }
    server {
        listen 127.0.0.1:15111;
        server_name www.example.test;
        location = / { return 200 "vhost $host\\n"; }
    }
    server {
        listen 127.0.0.1:15112 ssl;
        ssl_certificate {prefix}/cert.pem;
        ssl_certificate_key {prefix}/key.pem;
        location = / { return 200 "tls sni=$ssl_server_name;\\n"; }
        location = /teapot { return 418 "teapot\\n"; }
    }
}
"""


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def check(c: CheckerConf) -> tuple[bool, str]:
    res = asyncio.run(run(c))
    return res.ok, res.reason


@pytest.fixture(scope="module")
def backend() -> Iterator[NginxBackends]:
    require_nginx()
    with NginxBackends([("127.0.0.1", BACKEND)], big_size=300_000) as b:
        yield b


@pytest.fixture(scope="module")
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NginxProcess]:
    require_nginx()
    prefix = tmp_path_factory.mktemp("nginx-vhost")
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(prefix / "key.pem"),
            "-out",
            str(prefix / "cert.pem"),
            "-days",
            "2",
            "-subj",
            "/CN=pylvs-test",
        ],
        check=True,
        capture_output=True,
    )
    (prefix / "tmp").mkdir()
    with NginxProcess(VHOST_CONF, [("127.0.0.1", VHOST), ("127.0.0.1", TLS)], prefix=prefix) as n:
        yield n


# -- nginx: status, digest, regex -----------------------------------------------------


def test_status_and_digest_of_a_known_body(backend: NginxBackends) -> None:
    body = backend[0].body.encode()
    ok, why = check(conf("HTTP_GET", port=BACKEND, urls=(url("/", digest=md5(body)),)))
    assert ok, why
    ok, why = check(conf("HTTP_GET", port=BACKEND, urls=(url("/", digest=md5(body).upper()),)))
    assert ok, why  # keepalived's digest comparison is on the bytes: case does not matter
    ok, why = check(conf("HTTP_GET", port=BACKEND, urls=(url("/", digest=md5(b"other")),)))
    assert not ok and "MD5 digest" in why


def test_digest_of_a_large_body(backend: NginxBackends) -> None:
    big = (bytes(range(256)) * 4096)[:300_000]
    ok, why = check(conf("HTTP_GET", port=BACKEND, urls=(url("/big", digest=md5(big)),)))
    assert ok, why


def test_status_code_ranges(backend: NginxBackends) -> None:
    ok, why = check(conf("HTTP_GET", port=BACKEND, urls=(url("/missing"),)))
    assert not ok and "HTTP status code 404" in why
    ranges = ((200, 299), (404, 404))
    ok, why = check(conf("HTTP_GET", port=BACKEND, urls=(url("/missing", status_codes=ranges),)))
    assert ok, why
    ok, why = check(conf("HTTP_GET", port=BACKEND, urls=(url("/", status_codes=((300, 399),)),)))
    assert not ok and "200" in why


def test_regex_and_regex_no_match(backend: NginxBackends) -> None:
    ok, why = check(conf("HTTP_GET", port=BACKEND, urls=(url("/", regex=r"backend \d+"),)))
    assert ok, why
    ok, why = check(conf("HTTP_GET", port=BACKEND, urls=(url("/", regex=r"^nope"),)))
    assert not ok and "did not match" in why
    c = conf("HTTP_GET", port=BACKEND, urls=(url("/", regex="backend", regex_no_match=True),))
    ok, why = check(c)
    assert not ok and "regex matched" in why
    c = conf("HTTP_GET", port=BACKEND, urls=(url("/", regex="error", regex_no_match=True),))
    assert check(c)[0]


def test_every_url_must_pass(backend: NginxBackends) -> None:
    good = url("/", digest=md5(backend[0].body.encode()))
    ok, why = check(conf("HTTP_GET", port=BACKEND, urls=(good, url("/client"))))
    assert ok and "2 urls OK" in why
    ok, why = check(conf("HTTP_GET", port=BACKEND, urls=(good, url("/missing"), url("/client"))))
    assert not ok and "/missing" in why
    ok, why = check(conf("HTTP_GET", port=BACKEND))
    assert not ok and "no url" in why


def test_refused_and_http_protocols(backend: NginxBackends) -> None:
    ok, why = check(conf("HTTP_GET", port=closed_port(), urls=(url("/"),)))
    assert not ok and "refused" in why.lower()
    for proto in ("1.0", "1.0C", "1.1"):
        ok, why = check(conf("HTTP_GET", port=BACKEND, urls=(url("/"),), http_protocol=proto))
        assert ok, (proto, why)
    # keep-alive: nginx keeps the connection open; Content-Length ends the read
    ok, why = check(conf("HTTP_GET", port=BACKEND, urls=(url("/"),), http_protocol="1.1K"))
    assert ok, why


# -- nginx: virtual hosts, TLS, SNI --------------------------------------------------


def test_virtualhost_selects_the_server_block(nginx: NginxProcess) -> None:
    ok, why = check(conf("HTTP_GET", port=VHOST, urls=(url("/", digest=md5(b"default\n")),)))
    assert ok, why
    vh = url("/", virtualhost="www.example.test", digest=md5(b"vhost www.example.test\n"))
    ok, why = check(conf("HTTP_GET", port=VHOST, urls=(vh,)))
    assert ok, why
    # the checker's (real/virtual server's) virtualhost when the url has none
    plain = url("/", digest=md5(b"vhost www.example.test\n"))
    ok, why = check(conf("HTTP_GET", port=VHOST, urls=(plain,), virtualhost="www.example.test"))
    assert ok, why
    # the url's wins
    other = url("/", virtualhost="other.test", digest=md5(b"default\n"))
    ok, why = check(conf("HTTP_GET", port=VHOST, urls=(other,), virtualhost="www.example.test"))
    assert ok, why


def test_ssl_get_accepts_a_self_signed_certificate(nginx: NginxProcess) -> None:
    body = b"tls sni=;\n"  # no SNI sent by default
    ok, why = check(conf("SSL_GET", port=TLS, urls=(url("/", digest=md5(body)),)))
    assert ok, why
    ok, why = check(conf("SSL_GET", port=TLS, urls=(url("/teapot"),)))
    assert not ok and "418" in why
    ok, why = check(conf("SSL_GET", port=TLS, urls=(url("/teapot", status_codes=((418, 418),)),)))
    assert ok, why


def test_sni(nginx: NginxProcess) -> None:
    c = conf("SSL_GET", port=TLS, urls=(url("/", regex="sni=name.test;"),), sni_name="name.test")
    assert check(c)[0]
    c = conf(
        "SSL_GET",
        port=TLS,
        urls=(url("/", regex="sni=www.example.test;"),),
        enable_sni=True,
        virtualhost="www.example.test",
    )
    ok, why = check(c)
    assert ok, why
    c = conf(  # virtualhost without enable_sni: no SNI
        "SSL_GET", port=TLS, urls=(url("/", regex="sni=;"),), virtualhost="www.example.test"
    )
    ok, why = check(c)
    assert ok, why


def test_wrong_protocol_for_the_port_fails(nginx: NginxProcess) -> None:
    ok, why = check(conf("HTTP_GET", port=TLS, urls=(url("/"),)))
    assert not ok and "400" in why  # nginx: plain HTTP request sent to HTTPS port
    ok, why = check(conf("SSL_GET", port=VHOST, urls=(url("/"),), connect_timeout=1.0))
    assert not ok and "TLS" in why


# -- asyncio servers: request bytes and odd responses ----------------------------------

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def serve_once(
    handler: Handler, c: CheckerConf, host: str = "127.0.0.1"
) -> tuple[bool, str, float]:
    server = await asyncio.start_server(handler, host, PYSRV)
    try:
        t0 = time.monotonic()
        res = await run(c)
        return res.ok, res.reason, time.monotonic() - t0
    finally:
        server.close()


def recorder(requests: list[bytes], response: bytes) -> Handler:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        requests.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(response)
        await writer.drain()
        writer.close()

    return handle


RESPONSE = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello\n"


@pytest.mark.parametrize(
    ("proto", "first", "connection"),
    [
        ("1.0", b"GET /x HTTP/1.0", None),
        ("1.0C", b"GET /x HTTP/1.0", b"Connection: close"),
        ("1.1", b"GET /x HTTP/1.1", b"Connection: close"),
        ("1.0K", b"GET /x HTTP/1.0", b"Connection: keep-alive"),
        ("1.1K", b"GET /x HTTP/1.1", b"Connection: keep-alive"),
    ],
)
def test_request_bytes(proto: str, first: bytes, connection: bytes | None) -> None:
    seen: list[bytes] = []
    c = conf("HTTP_GET", port=PYSRV, urls=(url("/x"),), http_protocol=proto)
    ok, why, _ = asyncio.run(serve_once(recorder(seen, RESPONSE), c))
    assert ok, why
    lines = seen[0].split(b"\r\n")
    assert lines[0] == first
    assert lines[1] == b"User-Agent: KeepAliveClient"
    assert (b"Connection:" in seen[0]) == (connection is not None)
    if connection:
        assert lines[2] == connection
    assert lines[-3] == f"Host: 127.0.0.1:{PYSRV}".encode()


def test_ipv6_host_header_and_virtualhost() -> None:
    seen: list[bytes] = []
    c = conf("HTTP_GET", "::1", PYSRV, urls=(url("/"),))
    ok, why, _ = asyncio.run(serve_once(recorder(seen, RESPONSE), c, host="::1"))
    assert ok, why
    assert f"Host: [::1]:{PYSRV}\r\n".encode() in seen[0]
    c = conf("HTTP_GET", "::1", PYSRV, urls=(url("/", virtualhost="v.test"),))
    ok, why, _ = asyncio.run(serve_once(recorder(seen, RESPONSE), c, host="::1"))
    assert ok and b"Host: v.test\r\n" in seen[1]


def test_body_until_close_without_content_length() -> None:
    c = conf("HTTP_GET", port=PYSRV, urls=(url("/", digest=md5(b"hello\n")),))
    ok, why, _ = asyncio.run(serve_once(recorder([], RESPONSE), c))
    assert ok, why


def test_body_beyond_content_length_is_not_hashed() -> None:
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcdef"
    c = conf("HTTP_GET", port=PYSRV, urls=(url("/", digest=md5(b"abc")),))
    ok, why, _ = asyncio.run(serve_once(recorder([], resp), c))
    assert ok, why


def test_stalled_server_times_out() -> None:
    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        await asyncio.sleep(5)
        writer.close()

    c = conf("HTTP_GET", port=PYSRV, urls=(url("/"),), connect_timeout=0.4)
    ok, why, took = asyncio.run(serve_once(stall, c))
    assert not ok and "timed out" in why and "7/100" in why
    assert took < 1.5


def test_empty_and_garbage_responses_fail() -> None:
    c = conf("HTTP_GET", port=PYSRV, urls=(url("/"),))
    ok, why, _ = asyncio.run(serve_once(recorder([], b""), c))
    assert not ok and "no data received" in why
    ok, why, _ = asyncio.run(serve_once(recorder([], b"SSH-2.0-OpenSSH\r\n\r\n"), c))
    assert not ok and "status code None" in why


def test_build_request_rejects_unknown_protocols() -> None:
    assert build_request("/", "h:1").startswith(b"GET / HTTP/1.0\r\n")
    with pytest.raises(ValueError):
        build_request("/", "h:1", "2.0")


def test_big_body_file_matches_nginx(backend: NginxBackends) -> None:
    # the same bytes the fixture wrote
    data = Path(backend.prefix / "html" / "big").read_bytes()
    ok, why = check(conf("HTTP_GET", port=BACKEND, urls=(url("/big", digest=md5(data)),)))
    assert ok, why


def test_ssl_get_and_http_get_on_uvloop(nginx: NginxProcess, backend: NginxBackends) -> None:
    import uvloop

    async def main() -> tuple[bool, bool, bool]:
        tls = await run(conf("SSL_GET", port=TLS, urls=(url("/", regex="sni=;"),)))
        sni = await run(
            conf("SSL_GET", port=TLS, urls=(url("/", regex="sni=s.test;"),), sni_name="s.test")
        )
        plain = await run(conf("HTTP_GET", port=BACKEND, urls=(url("/big"),)))
        return tls.ok, sni.ok, plain.ok

    assert uvloop.run(main()) == (True, True, True)
