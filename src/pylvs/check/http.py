"""HTTP_GET and SSL_GET (keepalived check_http.c, check_ssl.c).

For each ``url`` block, one connection and one request, as keepalived sends it::

    GET <path> HTTP/1.<0|1>\\r\\n
    User-Agent: KeepAliveClient\\r\\n
    [Connection: close|keep-alive\\r\\n]
    Host: <virtualhost | address:port>\\r\\n\\r\\n

``http_protocol``: 1.0 (default, no Connection header), 1.0C (1.0 + close), 1.1
(+ close), 1.0K/1.1K (+ keep-alive; keepalived's test modes).  The Host header is the
url's ``virtualhost``, else the checker's (the parser resolves real/virtual server
ones into ``options["virtualhost"]``), else ``connect_ip:connect_port``.

The response is read until the server closes or Content-Length bytes of body arrived,
each read within connect_timeout.  A url passes when the status code is in its ranges
(default 200-299), the MD5 of the body (the bytes after the header, at most
Content-Length of them, not de-chunked: what genhash prints) equals ``digest`` when one
is given, and ``regex`` matches the body (or does not, with ``regex_no_match``).  The
checker passes when every url passes.

SSL_GET never verifies the server certificate (keepalived does not); with
``enable_sni`` it sends ``sni_name``, else the virtualhost, as SNI.

Deliberate differences: all urls are checked in one run (keepalived walks them one per
delay_loop when a server recovers, unless fast_recovery); regexes are Python ``re``
patterns over the whole body, not PCRE2 (no regex_options/offsets); the global ``SSL``
block (client certificate, CA) is not supported.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import ssl
from dataclasses import dataclass

from pylvs.check.base import connect_tcp, describe_error, hostport
from pylvs.check.state import Result
from pylvs.config.model import CheckerConf, UrlConf

USER_AGENT = "KeepAliveClient"
PROTOCOLS = ("1.0", "1.0C", "1.1", "1.0K", "1.1K")
DEFAULT_STATUS = ((200, 299),)


def build_request(
    path: str, host: str, protocol: str = "1.0", user_agent: str = USER_AGENT
) -> bytes:
    """The GET request keepalived sends (``host`` already bracketed/with port)."""
    proto = protocol.upper()
    if proto not in PROTOCOLS:
        raise ValueError(f"unknown http_protocol {protocol!r} (one of {', '.join(PROTOCOLS)})")
    minor = 1 if proto.startswith("1.1") else 0
    if proto in ("1.0C", "1.1"):
        conn = "Connection: close\r\n"
    elif proto.endswith("K"):
        conn = "Connection: keep-alive\r\n"
    else:
        conn = ""
    return (
        f"GET {path} HTTP/1.{minor}\r\nUser-Agent: {user_agent}\r\n{conn}Host: {host}\r\n\r\n"
    ).encode("latin-1")


def host_header(conf: CheckerConf, vhost: str | None) -> str:
    return vhost if vhost else hostport(conf.connect_ip, conf.connect_port)


def head_end(data: bytes | bytearray) -> tuple[int, int] | None:
    """(end of the header, start of the body) once the blank line has arrived."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        i = data.find(sep)
        if i >= 0:
            return i, i + len(sep)
    return None


_STATUS = re.compile(rb"^HTTP/\d+\.\d+\s+(\d{3})")
_LENGTH = re.compile(rb"^content-length:\s*(\d+)\s*$", re.IGNORECASE | re.MULTILINE)


def parse_status(head: bytes) -> int | None:
    m = _STATUS.match(head)
    return int(m.group(1)) if m else None


def parse_content_length(head: bytes) -> int | None:
    m = _LENGTH.search(head.replace(b"\r\n", b"\n"))
    return int(m.group(1)) if m else None


@dataclass(frozen=True, slots=True)
class Response:
    status: int | None
    head: bytes  # the header, without the blank line
    body: bytes  # at most Content-Length bytes when the server gave one
    content_length: int | None
    received: int  # body bytes received (may exceed content_length)

    @property
    def digest(self) -> str:
        return hashlib.md5(self.body).hexdigest()


class HttpError(Exception):
    """The exchange failed before a response could be judged."""


def ssl_context() -> ssl.SSLContext:
    """A TLS client context that accepts any certificate, as keepalived's SSL_GET does."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


_SSL_CTX: ssl.SSLContext | None = None


def _shared_ssl_context() -> ssl.SSLContext:
    global _SSL_CTX
    if _SSL_CTX is None:
        _SSL_CTX = ssl_context()
    return _SSL_CTX


async def fetch(
    conf: CheckerConf,
    path: str,
    *,
    vhost: str | None = None,
    use_ssl: bool = False,
    sni: str | None = None,
    protocol: str = "1.0",
    user_agent: str = USER_AGENT,
) -> Response:
    """One GET as keepalived sends it; raises HttpError (with a reason) on failure."""
    request = build_request(path, host_header(conf, vhost), protocol, user_agent)
    timeout = conf.connect_timeout
    try:
        sock = await connect_tcp(conf)
    except (OSError, TimeoutError) as e:
        raise HttpError(f"connection failed: {describe_error(e)}") from None
    try:
        if use_ssl:
            reader, writer = await asyncio.open_connection(
                sock=sock,
                ssl=_shared_ssl_context(),
                server_hostname=sni or "",
                ssl_handshake_timeout=timeout,
            )
        else:
            reader, writer = await asyncio.open_connection(sock=sock)
    except (OSError, TimeoutError, ssl.SSLError) as e:
        sock.close()
        raise HttpError(
            f"{'TLS handshake' if use_ssl else 'connection'} failed: {describe_error(e)}"
        ) from None
    try:
        writer.write(request)
        async with asyncio.timeout(timeout):
            await writer.drain()
        return await _read_response(reader, timeout)
    except (OSError, TimeoutError, ssl.SSLError) as e:
        raise HttpError(f"request failed: {describe_error(e)}") from None
    finally:
        writer.transport.abort()


async def _read_response(reader: asyncio.StreamReader, timeout: float) -> Response:
    buf = bytearray()
    ends: tuple[int, int] | None = None
    length: int | None = None
    while True:
        try:
            async with asyncio.timeout(timeout):
                chunk = await reader.read(65536)
        except TimeoutError:
            if ends is None:
                raise HttpError("timed out reading the response") from None
            got = f"{len(buf) - ends[1]}/{length}" if length is not None else len(buf) - ends[1]
            raise HttpError(f"timed out reading the body ({got} bytes)") from None
        if not chunk:
            break
        buf += chunk
        if ends is None:
            ends = head_end(buf)
            if ends is not None:
                length = parse_content_length(bytes(buf[: ends[0]]))
        if ends is not None and length is not None and len(buf) - ends[1] >= length:
            break
    if ends is None:
        raise HttpError("no complete HTTP header received" if buf else "no data received")
    head = bytes(buf[: ends[0]])
    body = bytes(buf[ends[1] :])
    received = len(body)
    if length is not None:
        body = body[:length]
    return Response(parse_status(head), head, body, length, received)


def status_ok(status: int | None, ranges: tuple[tuple[int, int], ...]) -> bool:
    if status is None:
        return False
    return any(lo <= status <= hi for lo, hi in (ranges or DEFAULT_STATUS))


def judge(url: UrlConf, resp: Response) -> str | None:
    """Why the response fails ``url``, or None when it passes."""
    if not status_ok(resp.status, url.status_codes):
        return f"HTTP status code {resp.status}"
    if url.digest and resp.digest != url.digest.lower():
        return f"MD5 digest {resp.digest} != {url.digest.lower()}"
    if url.regex is not None:
        matched = re.search(url.regex.encode(), resp.body) is not None
        if matched == url.regex_no_match:
            return "regex matched" if matched else "regex did not match"
    return None


def _str_opt(conf: CheckerConf, key: str) -> str | None:
    v = conf.options.get(key)
    return None if v is None else str(v)


async def check_url(conf: CheckerConf, url: UrlConf) -> Result:
    use_ssl = conf.kind == "SSL_GET"
    vhost = url.virtualhost or _str_opt(conf, "virtualhost")
    sni = None
    if use_ssl and (conf.options.get("enable_sni") or conf.options.get("sni_name")):
        sni = _str_opt(conf, "sni_name") or vhost
    protocol = _str_opt(conf, "http_protocol") or "1.0"
    where = f"{conf.kind} {hostport(conf.connect_ip, conf.connect_port)}{url.path}"
    try:
        resp = await fetch(conf, url.path, vhost=vhost, use_ssl=use_ssl, sni=sni, protocol=protocol)
    except HttpError as e:
        return Result(False, f"{where}: {e}")
    why = judge(url, resp)
    if why is not None:
        return Result(False, f"{where}: {why}")
    return Result(True, f"{where}: HTTP {resp.status}")


async def run(conf: CheckerConf) -> Result:
    urls = conf.options.get("urls") or ()
    if not isinstance(urls, (tuple, list)) or not urls:
        return Result(False, f"{conf.kind} {conf.where}: no url to check")
    last = Result(True)
    for url in urls:
        last = await check_url(conf, url)
        if not last.ok:
            return last
    if len(urls) > 1:
        return Result(
            True, f"{conf.kind} {hostport(conf.connect_ip, conf.connect_port)}: {len(urls)} urls OK"
        )
    return last
