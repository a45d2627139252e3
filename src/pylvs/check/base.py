"""The checker protocol, the registry by keepalived keyword, and the socket helpers the
checkers share (keepalived check_api.c conn_opts, layer4.c tcp_bind_connect).

A checker is a module with ``async def run(conf: CheckerConf) -> Result``: one check,
its own timeouts (``connect_timeout`` per network operation, as keepalived's threads
do), never raising for a failing server (a failure is ``Result(ok=False, reason)``).
Retries and scheduling are not the checker's business (see check/state.py and
check/runner.py).

The helpers work on the stock asyncio loop and on uvloop (which lacks
``sock_sendto``/``sock_recvfrom``): datagrams go through ``add_reader``.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import socket
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from pylvs.check.state import Result
from pylvs.config.model import CheckerConf

__all__ = [
    "KINDS",
    "CheckFn",
    "CheckerModule",
    "Result",
    "connect_tcp",
    "destination",
    "family_of",
    "get_checker",
    "hostport",
    "recv_datagram",
    "set_fwmark",
]

CheckFn = Callable[[CheckerConf], Coroutine[Any, Any, Result]]

# keepalived keyword -> module of pylvs.check implementing it
KINDS: dict[str, str] = {
    "TCP_CHECK": "tcp",
    "HTTP_GET": "http",
    "SSL_GET": "http",
    "MISC_CHECK": "misc",
    "SMTP_CHECK": "smtp",
    "DNS_CHECK": "dns",
    "UDP_CHECK": "udp",
    "PING_CHECK": "ping",
    "FILE_CHECK": "file",
}

SO_MARK = getattr(socket, "SO_MARK", 36)


class CheckerModule(Protocol):
    async def run(self, conf: CheckerConf) -> Result: ...


_cache: dict[str, CheckFn] = {}


def get_checker(kind: str) -> CheckFn:
    """The ``run`` function for a keepalived checker keyword (KeyError if unknown)."""
    fn = _cache.get(kind)
    if fn is None:
        module: CheckerModule = importlib.import_module(f"pylvs.check.{KINDS[kind]}")
        fn = _cache[kind] = module.run
    return fn


def family_of(address: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def hostport(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def set_fwmark(sock: socket.socket, fwmark: int | None) -> None:
    """Mark the checker's packets (SO_MARK needs CAP_NET_ADMIN; keepalived runs as root)."""
    if fwmark:
        sock.setsockopt(socket.SOL_SOCKET, SO_MARK, fwmark)


def bind_source(sock: socket.socket, conf: CheckerConf) -> None:
    """``bindto``/``bind_port``: the source address and port of the checker's packets."""
    if conf.bindto is not None or conf.bind_port:
        family = sock.family
        addr = conf.bindto or ("::" if family == socket.AF_INET6 else "0.0.0.0")
        if conf.bind_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((addr, conf.bind_port or 0))


def destination(
    conf: CheckerConf, port: int | None = None
) -> tuple[str, int] | tuple[str, int, int, int]:
    """The socket address of connect_ip (a link-local IPv6 one scoped to ``bind_if``)."""
    port = conf.connect_port if port is None else port
    if ":" in conf.connect_ip and conf.connect_ip.lower().startswith("fe80") and conf.bind_if:
        return (conf.connect_ip, port, 0, socket.if_nametoindex(conf.bind_if))
    return (conf.connect_ip, port)


def open_socket(conf: CheckerConf, kind: socket.SocketKind, proto: int = 0) -> socket.socket:
    """A non-blocking socket toward ``connect_ip``: fwmark, ``bind_if`` device, source."""
    sock = socket.socket(family_of(conf.connect_ip), kind | socket.SOCK_NONBLOCK, proto)
    try:
        set_fwmark(sock, conf.fwmark)
        if conf.bind_if:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, conf.bind_if.encode())
        bind_source(sock, conf)
    except BaseException:
        sock.close()
        raise
    return sock


async def connect_tcp(conf: CheckerConf) -> socket.socket:
    """A TCP connection to connect_ip:connect_port within ``connect_timeout``.

    Raises OSError (refused, unreachable...) or TimeoutError.
    """
    sock = open_socket(conf, socket.SOCK_STREAM)
    try:
        async with asyncio.timeout(conf.connect_timeout):
            await asyncio.get_running_loop().sock_connect(sock, destination(conf))
    except BaseException:
        sock.close()
        raise
    return sock


async def recv_datagram(sock: socket.socket, bufsize: int = 65535) -> bytes:
    """The next datagram on a connected non-blocking socket (OSError for ICMP errors)."""
    try:
        return sock.recv(bufsize)
    except (BlockingIOError, InterruptedError):
        pass
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[bytes] = loop.create_future()
    fd = sock.fileno()

    def readable() -> None:
        if fut.done():
            return
        try:
            data = sock.recv(bufsize)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            fut.set_exception(e)
        else:
            fut.set_result(data)

    loop.add_reader(fd, readable)
    try:
        return await fut
    finally:
        loop.remove_reader(fd)


def describe_error(e: BaseException) -> str:
    """Short text for a failed network operation."""
    if isinstance(e, TimeoutError):
        return "timed out"
    if isinstance(e, OSError) and e.errno:
        return os.strerror(e.errno)
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return str(e) or type(e).__name__
