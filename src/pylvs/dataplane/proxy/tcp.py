"""TCP relaying for the proxy data plane: raw sockets, edge-triggered epoll, splice.

One ``Relay`` per proxied connection, two ``Half``s (client -> real server
"in", real server -> client "out").  Both sockets are registered once with
the host's edge-triggered poller (poller.py).  A half copies small messages
through a shared buffer and switches to os.splice() for bulk transfers (see
``Half``); when the receiver is slow the half stops reading until what waits
has been written, which bounds what the director buffers per direction.

Accepted client sockets stay in blocking mode (saving a system call per
connection): every recv/send on them passes MSG_DONTWAIT, and a half that
moves to splice() switches its sockets to O_NONBLOCK first.

What the sockets do is fed to the engine as the TCP packets it implies, so
the connection entry follows the kernel's state table:

    accept              -> client SYN                   (SYN_RECV)
    real server answers -> SYN+ACK out, ACK in          (ESTABLISHED)
    data                -> ACK in / ACK out, with the byte counts
    EOF from a side     -> FIN from that side           (CLOSE_WAIT, FIN_WAIT, TIME_WAIT)
    reset or refusal    -> RST                          (CLOSE)

A "packet" in the counters is one read (one splice or recv call).
"""

from __future__ import annotations

import _socket
import asyncio
import errno
import os
import socket
import struct
import time
from collections import Counter
from typing import Any, Protocol

from pylvs.core.proto_tcp import TH_ACK, TH_FIN, TH_RST
from pylvs.dataplane.proxy.poller import (
    EPOLLERR,
    EPOLLHUP,
    EPOLLIN,
    EPOLLOUT,
    EPOLLRDHUP,
    REGISTER,
    REGISTER_IN,
    Poller,
)

# The C socket type: its methods are what the relay calls, and it skips socket.socket's
# Python-level constructor and close() (two Python calls per socket and connection).
Sock = _socket.socket

PIPE_SIZE = 1 << 16
SPLICE_FLAGS = 1 | 2  # SPLICE_F_MOVE | SPLICE_F_NONBLOCK
_LINGER_RST = struct.pack("ii", 1, 0)
_HAS_SPLICE = hasattr(os, "splice")
DONTWAIT = socket.MSG_DONTWAIT
BUDGET = 16  # reads per side and wakeup before other connections get their turn
_WAKE_IN = EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR
_STREAM = socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC
_IPPROTO_TCP = socket.IPPROTO_TCP
_TCP_NODELAY = socket.TCP_NODELAY


def reset_close(sock: Sock) -> None:
    """Close so that the peer gets a RST (SO_LINGER with a zero timeout)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
    except OSError:
        pass
    sock.close()


class Half:
    """One direction of a relay: ``src`` -> ``dst``, driven by epoll edges.

    ``readable`` says ``src`` may have data (an input edge came and no read has
    come back short since); ``blocked`` says ``dst`` did not take everything
    and the rest waits for its next output edge.  It starts by copying through
    a shared buffer (recv_into + send: for small messages as few system calls
    as splice, and no pipe).  The first read that fills the buffer marks a
    bulk transfer: the half then moves to os.splice() through a pipe of its
    own, and payload stops entering Python.  Either way at most one buffer
    (64 KiB) per direction waits in the director when the receiver is slow:
    a blocked half does not read.
    """

    __slots__ = (
        "backlog",
        "blocked",
        "dst",
        "dst_fd",
        "eof",
        "idle_out",
        "inbound",
        "pending",
        "pr",
        "pw",
        "rdhup",
        "readable",
        "relay",
        "shut",
        "src",
        "src_fd",
    )

    def __init__(
        self, relay: Relay, src: Sock, dst: Sock, src_fd: int, dst_fd: int, inbound: bool
    ) -> None:
        self.relay = relay
        self.src = src
        self.dst = dst
        self.src_fd = src_fd
        self.dst_fd = dst_fd
        self.inbound = inbound
        # ``dst`` is registered without EPOLLOUT (the client's socket: an output edge
        # per connection for nothing) until a write to it first falls short.
        self.idle_out = not inbound
        self.pr = self.pw = -1  # the pipe, once in splice mode
        self.pending = 0  # bytes waiting in the pipe
        self.backlog = b""  # bytes waiting in copy mode
        self.readable = False
        self.rdhup = False  # the peer's FIN has arrived: a short read means end of stream
        self.blocked = False
        self.eof = False
        self.shut = False

    def pump(self) -> None:
        """Read from ``src`` and pass it on while there is data and ``dst`` takes it."""
        relay = self.relay
        if not self.readable or self.blocked or self.eof or relay.paused or not relay.connected:
            return
        plane = relay.plane
        for _ in range(BUDGET):
            try:
                if self.pw >= 0:
                    n = os.splice(self.src_fd, self.pw, PIPE_SIZE, flags=SPLICE_FLAGS)
                else:
                    n = self.src.recv_into(plane.buffer, PIPE_SIZE, DONTWAIT)
            except BlockingIOError:
                self.readable = False
                return
            except OSError as e:
                relay.reset(self.inbound, e)
                return
            if n == 0:
                self._eof()
                return
            if self.inbound:
                relay.inpkts += 1
                relay.inbytes += n
            else:
                relay.outpkts += 1
                relay.outbytes += n
            if self.pw >= 0:
                # A short splice does not prove the socket drained (the pipe can
                # fill with small segments first): read on until EAGAIN.
                self.pending += n
                if not self.flush():
                    return
                continue
            try:
                m = self.dst.send(plane.view[:n], DONTWAIT)
            except BlockingIOError:
                m = 0
            except OSError as e:
                relay.reset(not self.inbound, e)
                return
            if m < n:
                self.backlog = bytes(plane.view[m:n])
                self._block()
                return
            if n < PIPE_SIZE:
                # A short read drained the socket: the next data brings a new edge.
                if self.rdhup:
                    self._eof()
                else:
                    self.readable = False
                return
            if _HAS_SPLICE:
                self._to_splice()
        plane.poller.later(self.pump)  # used its share of this wakeup; more is waiting

    def _eof(self) -> None:
        relay = self.relay
        self.eof = True
        self.readable = False
        relay.plane.state(relay, self.inbound, TH_FIN | TH_ACK)
        if not relay.closed and not self.pending and not self.backlog:
            self._shutdown()

    def _to_splice(self) -> None:
        try:
            self.pr, self.pw = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return  # out of descriptors: stay in copy mode
        # splice() honours O_NONBLOCK of the sockets, not only its own flag.
        self.src.setblocking(False)
        self.dst.setblocking(False)

    def flush(self) -> bool:
        """Push what waits toward ``dst``; False when ``dst`` is full (or failed)."""
        try:
            if self.backlog:
                m = self.dst.send(self.backlog, DONTWAIT)
                self.backlog = self.backlog[m:]
                if self.backlog:
                    self._block()
                    return False
            while self.pending:
                m = os.splice(self.pr, self.dst_fd, self.pending, flags=SPLICE_FLAGS)
                self.pending -= m
        except BlockingIOError:
            self._block()
            return False
        except OSError as e:
            self.relay.reset(not self.inbound, e)
            return False
        self.blocked = False
        return True

    def _block(self) -> None:
        """``dst`` did not take everything: wait for its next output edge."""
        self.blocked = True
        if self.idle_out:
            # Now it needs output edges; if it already has room again, the
            # modification reports one at once (no edge can be missed).
            self.idle_out = False
            self.relay.plane.poller.modify(self.dst_fd, REGISTER)

    def writable(self) -> None:
        """An output edge on ``dst``: finish what waited, then read on."""
        if not self.blocked:
            return
        if not self.flush() or self.relay.closed:
            return
        if self.eof:
            self._shutdown()
        else:
            self.pump()

    def _shutdown(self) -> None:
        if self.shut:
            return
        self.shut = True
        relay = self.relay
        if relay.halves:  # both ways are done: closing the sockets sends the FIN
            relay.halves = 2
            relay._close(rst=False)
            return
        relay.halves = 1  # the other way is still open: pass the FIN on
        try:
            self.dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        if self.pw >= 0:
            os.close(self.pr)
            os.close(self.pw)
            self.pr = self.pw = -1


class RelayHost(Protocol):
    """Where a relay lives: the event loop, the shared buffer, and who is told what
    happened (the engine in the director's process, or the director over a pipe
    from a relay worker)."""

    loop: asyncio.AbstractEventLoop
    poller: Poller
    buffer: bytearray
    view: memoryview
    connect_timeout: float
    counters: Counter[str]

    def established(self, relay: Relay) -> None: ...
    def failed(self, relay: Relay, err: int) -> None: ...
    def state(self, relay: Relay, inbound: bool, flags: int) -> None:
        """A FIN or RST from one side; counts not yet reported go first."""

    def relay_closed(self, relay: Relay) -> None:
        """The relay is gone; counts not yet reported go first."""


class Relay:
    """One proxied connection: the client socket and the real server socket.

    ``tag`` is what the host knows the connection by (its engine entry in the
    director, an id in a relay worker).  Both sockets are registered with the
    host's poller once, right after connect(); the real server's first output
    edge says the connection is up (or failed, with EPOLLERR).
    """

    __slots__ = (
        "bfd",
        "bsock",
        "cfd",
        "closed",
        "connected",
        "csock",
        "deadline",
        "halves",
        "header",
        "inbytes",
        "inpkts",
        "out",
        "outbytes",
        "outpkts",
        "paused",
        "plane",
        "tag",
        "up",
    )

    def __init__(self, host: RelayHost, tag: Any, csock: Sock, header: bytes | None) -> None:
        self.plane = host
        self.tag: Any = tag
        self.csock = csock
        self.cfd = csock.fileno()
        self.header = header
        self.bsock: Sock | None = None
        self.bfd = -1
        self.up: Half | None = None
        self.out: Half | None = None
        self.halves = 0
        self.connected = False
        self.closed = False
        self.paused = False
        self.deadline = 0.0  # connect timeout, checked by the host's periodic sweep
        # Traffic not yet reported to the host: one "packet" per read.
        self.inpkts = self.inbytes = self.outpkts = self.outbytes = 0

    # -- connecting to the real server ----------------------------------------
    def connect(self, addr: str, port: int, family: int) -> None:
        try:
            b = Sock(family, _STREAM, 0)
        except OSError as e:
            self.connect_failed(e.errno or errno.EMFILE)
            return
        self.bsock = b
        bfd = self.bfd = b.fileno()
        b.setsockopt(_IPPROTO_TCP, _TCP_NODELAY, 1)
        err = b.connect_ex((addr, port))
        if err and err != errno.EINPROGRESS:
            self.connect_failed(err)
            return
        csock = self.csock
        cfd = self.cfd
        self.up = Half(self, csock, b, cfd, bfd, True)
        self.out = Half(self, b, csock, bfd, cfd, False)
        self.deadline = time.monotonic() + self.plane.connect_timeout
        poller = self.plane.poller
        poller.add(cfd, self.on_client, REGISTER_IN)
        poller.add(bfd, self.on_server, REGISTER)

    def on_client(self, ev: int) -> None:
        up = self.up
        if up is None or self.closed:
            return
        if ev & _WAKE_IN:
            up.readable = True
            if ev & EPOLLRDHUP:
                up.rdhup = True
            if not self.connected and ev & (EPOLLERR | EPOLLHUP):
                self.reset(True, None)  # the client gave up while we were connecting
                return
        out = self.out
        if ev & EPOLLOUT and out is not None and out.blocked:
            out.writable()
        if up.readable and self.up is not None:
            up.pump()

    def on_server(self, ev: int) -> None:
        out = self.out
        if out is None or self.closed:
            return
        if not self.connected:
            if ev & (EPOLLERR | EPOLLHUP):
                b = self.bsock
                assert b is not None
                err = b.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                self.connect_failed(err or errno.ECONNREFUSED)
                return
            if not ev & EPOLLOUT:
                return
            self._connected()
            if self.closed:
                return
        if ev & _WAKE_IN:
            out.readable = True
            if ev & EPOLLRDHUP:
                out.rdhup = True
        up = self.up
        if ev & EPOLLOUT and up is not None and up.blocked:
            up.writable()
        if out.readable and self.out is not None:
            out.pump()

    def _connected(self) -> None:
        b = self.bsock
        assert b is not None and self.up is not None
        self.connected = True
        self.deadline = 0.0
        self.plane.established(self)
        if self.header:
            try:
                b.send(self.header)
            except OSError as e:
                self.reset(False, e)
                return
        self.up.pump()

    def on_connect_timeout(self) -> None:
        """Called by the host's sweep once ``deadline`` has passed."""
        self.deadline = 0.0
        if not self.connected and not self.closed:
            self.connect_failed(errno.ETIMEDOUT)

    def connect_failed(self, err: int) -> None:
        """Refused, unreachable or silent: the client gets a reset."""
        self.plane.counters[f"connect_{errno.errorcode.get(err, str(err)).lower()}"] += 1
        self.plane.failed(self, err)
        self._close(rst=True)

    # -- traffic ------------------------------------------------------------------
    def pause(self) -> None:
        """Hold the connection: no reads either way until ``resume``."""
        if not self.paused and self.up is not None:
            self.paused = True

    def resume(self) -> None:
        if self.paused and not self.closed and self.up is not None and self.out is not None:
            self.paused = False
            self.up.pump()
            if self.out is not None:
                self.out.pump()

    def reset(self, from_client: bool, err: OSError | None) -> None:
        """A side reset (or failed): tell the host, reset the other side too."""
        if self.closed:
            return
        self.plane.state(self, from_client, TH_RST | TH_ACK)
        self._close(rst=True)

    def abort(self) -> None:
        """The engine's entry expired (idle timeout) or the rules said so: reset both sides."""
        self._close(rst=True)

    def _close(self, rst: bool) -> None:
        if self.closed:
            return
        self.closed = True
        self.deadline = 0.0
        for h in (self.up, self.out):
            if h is not None and h.pw >= 0:
                h.close()
        # Drop the relay <-> half cycle so reference counting frees them (no GC work).
        self.up = self.out = None
        poller = self.plane.poller
        b = self.bsock
        if rst:
            for sock in (b, self.csock):
                if sock is not None:
                    try:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
                    except OSError:
                        pass
        if b is not None:
            poller.close(b, self.bfd)
        poller.close(self.csock, self.cfd)
        self.plane.relay_closed(self)
