"""``pylvs genhash``: the MD5 digest of a web page, for HTTP_GET/SSL_GET ``digest`` lines
(keepalived's genhash, ``keepalived --genhash`` in 2.2: check_genhash.c).

It sends the request the checker sends (check/http.py) and prints the MD5 of the
body as the checker computes it, one lowercase hex line, as keepalived 2.2's genhash
does.  ``-v`` also dumps the header and body (hex and text) and the digest bytes.
Exit status: 0 printed, 1 on a connection/HTTP failure, 2 on a bad argument.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import sys
from typing import TextIO

from pylvs.check.http import PROTOCOLS, HttpError, Response, fetch
from pylvs.config.model import CheckerConf, Where

PROG = "pylvs genhash"
DELIM = "-----------------------[{:^26}]-----------------------"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="MD5 digest of a remote web page, for HTTP_GET/SSL_GET url digest lines.",
    )
    p.add_argument("-s", "--server", required=True, help="server IP address")
    p.add_argument("-p", "--port", required=True, type=int, help="server port")
    p.add_argument("-u", "--url", required=True, help="the path to GET, e.g. /index.html")
    p.add_argument("-S", "--use-ssl", action="store_true", help="use SSL (SSL_GET)")
    p.add_argument(
        "-I", "--use-sni", action="store_true", help="send SNI (the -V virtualhost) with SSL"
    )
    p.add_argument("-V", "--use-virtualhost", metavar="VHOST", help="Host header to send")
    p.add_argument(
        "-P",
        "--protocol",
        default="1.0",
        help="HTTP protocol: 1.0 (default), 1.0C (1.0 + Connection: close), 1.1",
    )
    p.add_argument("-t", "--timeout", type=float, default=5.0, help="timeout in seconds")
    p.add_argument("-m", "--fwmark", type=int, help="mark the packets with this fwmark")
    p.add_argument("-v", "--verbose", action="store_true", help="dump header, body, digest")
    return p


def hexdump(data: bytes, out: TextIO) -> None:
    for off in range(0, len(data), 16):
        row = data[off : off + 16]
        hexes = " ".join(f"{b:02x}" for b in row)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in row)
        print(f"{off:04x}  {hexes:<47}  {text}", file=out)


def dump(resp: Response, out: TextIO) -> None:
    print(DELIM.format("HTTP Header Buffer"), file=out)
    hexdump(resp.head, out)
    print(DELIM.format("HTTP Header Ascii Buffer"), file=out)
    print(resp.head.decode("latin-1"), file=out)
    print(DELIM.format("HTML Buffer"), file=out)
    hexdump(resp.body, out)
    print(DELIM.format("HTML hash resulting"), file=out)
    hexdump(bytes.fromhex(resp.digest), out)
    print(DELIM.format("HTML hash final resulting"), file=out)
    if resp.content_length is not None and resp.content_length != resp.received:
        print(
            f"WARNING - Content-Length ({resp.content_length}) does not match received bytes "
            f"({resp.received}).",
            file=out,
        )


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    p = build_parser()
    args = p.parse_args(argv)
    try:
        server = str(ipaddress.ip_address(args.server))
    except ValueError:
        p.error(f"server should be an IP, not {args.server}")
    if not 0 < args.port < 65536:
        p.error(f"invalid port number '{args.port}'")
    if args.protocol.upper() not in PROTOCOLS:
        p.error(f"invalid HTTP protocol version '{args.protocol}'")
    if args.timeout <= 0:
        p.error(f"invalid timeout '{args.timeout}'")
    conf = CheckerConf(
        kind="SSL_GET" if args.use_ssl else "HTTP_GET",
        where=Where("genhash", 0),
        connect_ip=server,
        connect_port=args.port,
        connect_timeout=args.timeout,
        fwmark=args.fwmark,
    )
    vhost = args.use_virtualhost
    sni = vhost if args.use_ssl and args.use_sni else None
    try:
        resp = asyncio.run(
            fetch(
                conf, args.url, vhost=vhost, use_ssl=args.use_ssl, sni=sni, protocol=args.protocol
            )
        )
    except HttpError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # e.g. SO_MARK without the privilege
        print(f"{PROG}: {e}", file=sys.stderr)
        return 1
    if args.verbose:
        dump(resp, out)
    print(resp.digest, file=out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
