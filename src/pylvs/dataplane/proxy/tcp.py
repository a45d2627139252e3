"""TCP relaying for the proxy data plane: raw non-blocking sockets and splice.

One ``Relay`` per proxied connection, two ``Half``s (client -> real server
"in", real server -> client "out").  A half copies small messages through a
shared buffer and switches to os.splice() for bulk transfers (see ``Half``);
when the receiver is slow the half stops reading until what waits has been
written, which bounds what the director buffers per direction.

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

import asyncio
import errno
import os
import socket
import struct
import time
from collections import Counter
from typing import Any, Protocol

from pylvs.core.proto_tcp import TH_ACK, TH_FIN, TH_RST

PIPE_SIZE = 1 << 16
SPLICE_FLAGS = 1 | 2  # SPLICE_F_MOVE | SPLICE_F_NONBLOCK
_LINGER_RST = struct.pack("ii", 1, 0)
_HAS_SPLICE = hasattr(os, "splice")


def reset_close(sock: socket.socket) -> None:
    """Close so that the peer gets a RST (SO_LINGER with a zero timeout)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
    except OSError:
        pass
    sock.close()


class Half:
    """One direction of a relay: ``src`` -> ``dst``.

    It starts by copying through a shared buffer (recv_into + send: for small
    messages that is as few system calls as splice, and needs no pipe).  The
    first read that fills the buffer marks a bulk transfer: the half then
    moves to os.splice() through a pipe of its own, and payload stops
    entering Python.  Either way at most one buffer (64 KiB) per direction
    waits in the director when the receiver is slow.
    """

    __slots__ = (
        "backlog",
        "dst",
        "dst_fd",
        "eof",
        "inbound",
        "pending",
        "pr",
        "pw",
        "reading",
        "relay",
        "shut",
        "src",
        "src_fd",
    )

    def __init__(self, relay: Relay, src: socket.socket, dst: socket.socket, inbound: bool):
        self.relay = relay
        self.src = src
        self.dst = dst
        self.src_fd = src.fileno()
        self.dst_fd = dst.fileno()
        self.inbound = inbound
        self.pr = self.pw = -1  # the pipe, once in splice mode
        self.pending = 0  # bytes waiting in the pipe
        self.backlog = b""  # bytes waiting in copy mode
        self.eof = False
        self.shut = False
        self.reading = False

    def start(self) -> None:
        self._read(True)

    def _read(self, on: bool) -> None:
        if on != self.reading:
            self.reading = on
            loop = self.relay.plane.loop
            if on:
                loop.add_reader(self.src_fd, self.on_readable)
            else:
                loop.remove_reader(self.src_fd)

    def on_readable(self) -> None:
        relay = self.relay
        try:
            if self.pw >= 0:
                n = os.splice(self.src_fd, self.pw, PIPE_SIZE, flags=SPLICE_FLAGS)
            else:
                buf = relay.plane.buffer
                n = self.src.recv_into(buf)
        except BlockingIOError:
            return
        except OSError as e:
            relay.reset(self.inbound, e)
            return
        if n == 0:
            self.eof = True
            self._read(False)
            relay.plane.state(relay, self.inbound, TH_FIN | TH_ACK)
            if not self.pending and not self.backlog:
                self._shutdown()
            return
        if self.inbound:
            relay.inpkts += 1
            relay.inbytes += n
        else:
            relay.outpkts += 1
            relay.outbytes += n
        if self.pw >= 0:
            self.pending += n
            self.flush()
            return
        view = relay.plane.view
        try:
            m = self.dst.send(view[:n])
        except BlockingIOError:
            m = 0
        except OSError as e:
            relay.reset(not self.inbound, e)
            return
        if m < n:
            self.backlog = bytes(view[m:n])
            self._wait_writable()
        elif n == PIPE_SIZE and _HAS_SPLICE:
            self._to_splice()

    def _to_splice(self) -> None:
        try:
            self.pr, self.pw = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return  # out of descriptors: stay in copy mode

    def _wait_writable(self) -> None:
        self._read(False)
        self.relay.plane.loop.add_writer(self.dst_fd, self.on_writable)

    def flush(self) -> bool:
        """Push what waits toward ``dst``; False when ``dst`` is full (or failed)."""
        try:
            if self.backlog:
                m = self.dst.send(self.backlog)
                self.backlog = self.backlog[m:]
                if self.backlog:
                    self._wait_writable()
                    return False
            while self.pending:
                m = os.splice(self.pr, self.dst_fd, self.pending, flags=SPLICE_FLAGS)
                self.pending -= m
        except BlockingIOError:
            self._wait_writable()
            return False
        except OSError as e:
            self.relay.reset(not self.inbound, e)
            return False
        return True

    def on_writable(self) -> None:
        self.relay.plane.loop.remove_writer(self.dst_fd)
        if not self.flush() or self.relay.closed:
            return
        if self.eof:
            self._shutdown()
        elif not self.relay.paused:
            self._read(True)

    def _shutdown(self) -> None:
        if self.shut:
            return
        self.shut = True
        if not self.relay.halves:  # the other way is still open: pass the FIN on
            try:
                self.dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        # else both ways are done and closing the sockets sends the FIN.
        self.relay.half_done()

    def pause(self) -> None:
        self._read(False)

    def resume(self) -> None:
        if not self.eof and not self.pending and not self.backlog:
            self._read(True)

    def close(self) -> None:
        self._read(False)
        if self.pending or self.backlog:
            self.relay.plane.loop.remove_writer(self.dst_fd)
        if self.pw >= 0:
            os.close(self.pr)
            os.close(self.pw)
            self.pr = self.pw = -1


class RelayHost(Protocol):
    """Where a relay lives: the event loop, the shared buffer, and who is told what
    happened (the engine in the director's process, or the director over a pipe
    from a relay worker)."""

    loop: asyncio.AbstractEventLoop
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
    director, an id in a relay worker).
    """

    __slots__ = (
        "bsock",
        "closed",
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

    def __init__(
        self, host: RelayHost, tag: Any, csock: socket.socket, header: bytes | None
    ) -> None:
        self.plane = host
        self.tag: Any = tag
        self.csock = csock
        self.header = header
        self.bsock: socket.socket | None = None
        self.up: Half | None = None
        self.out: Half | None = None
        self.halves = 0
        self.closed = False
        self.paused = False
        self.deadline = 0.0  # connect timeout, checked by the host's periodic sweep
        # Traffic not yet reported to the host: one "packet" per read.
        self.inpkts = self.inbytes = self.outpkts = self.outbytes = 0

    # -- connecting to the real server ----------------------------------------
    def connect(self, addr: str, port: int, family: int) -> None:
        b = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        b.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.bsock = b
        err = b.connect_ex((addr, port))
        if err == errno.EINPROGRESS:
            # A nearby real server (loopback, same host) often completes the handshake
            # within connect() itself: then skip the round trip through the event loop.
            try:
                b.getpeername()
            except OSError:
                self.plane.loop.add_writer(b.fileno(), self.on_connected)
                self.deadline = time.monotonic() + self.plane.connect_timeout
                return
            err = 0
        if err:
            self.connect_failed(err)
            return
        self._connected()

    def on_connected(self) -> None:
        b = self.bsock
        assert b is not None
        self.plane.loop.remove_writer(b.fileno())
        self.deadline = 0.0
        err = b.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self.connect_failed(err)
            return
        self._connected()

    def _connected(self) -> None:
        b = self.bsock
        assert b is not None
        self.plane.established(self)
        if self.header:
            try:
                b.send(self.header)
            except OSError as e:
                self.reset(False, e)
                return
        self.up = Half(self, self.csock, b, True)
        self.out = Half(self, b, self.csock, False)
        self.up.start()
        self.out.start()

    def on_connect_timeout(self) -> None:
        """Called by the host's sweep once ``deadline`` has passed."""
        self.deadline = 0.0
        if self.bsock is not None and not self.closed:
            self.plane.loop.remove_writer(self.bsock.fileno())
            self.connect_failed(errno.ETIMEDOUT)

    def connect_failed(self, err: int) -> None:
        """Refused, unreachable or silent: the client gets a reset."""
        self.plane.counters[f"connect_{errno.errorcode.get(err, str(err)).lower()}"] += 1
        self.plane.failed(self, err)
        self._close(rst=True)

    # -- traffic ------------------------------------------------------------------
    def pause(self) -> None:
        if not self.paused and self.up is not None and self.out is not None:
            self.paused = True
            self.up.pause()
            self.out.pause()

    def resume(self) -> None:
        if self.paused and not self.closed and self.up is not None and self.out is not None:
            self.paused = False
            self.up.resume()
            self.out.resume()

    def half_done(self) -> None:
        self.halves += 1
        if self.halves == 2:
            self._close(rst=False)

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
        connecting = self.deadline != 0.0
        self.deadline = 0.0
        for h in (self.up, self.out):
            if h is not None:
                h.close()
        # Drop the relay <-> half cycle so reference counting frees them (no GC work).
        self.up = self.out = None
        if self.bsock is not None:
            if connecting:
                self.plane.loop.remove_writer(self.bsock.fileno())
            (reset_close if rst else socket.socket.close)(self.bsock)
        (reset_close if rst else socket.socket.close)(self.csock)
        self.plane.relay_closed(self)
