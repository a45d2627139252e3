"""Edge-triggered epoll for relay sockets, shared with the asyncio loop.

Every relay socket is registered once, for input, output and peer shutdown,
edge-triggered, and stays registered until it is closed: no per-event
add/remove of readers and writers, which is most of what an asyncio loop
costs a short proxied connection.  (The client's socket starts without
output edges, which would only announce the room it has from the start, and
gets them with one modify the first time a write to it falls short.)

The epoll set is private and is itself one reader of the asyncio loop
(uvloop), so the control API, listeners and UDP stay on the loop.  (Tried
and measured worse: an asyncio selector loop whose own epoll set also held
the relay sockets - the pure-Python loop iteration cost more than the
nested epoll_wait saves.)

Edge-triggered rules the relay follows (see tcp.py): a side is read until a
read comes back short or EAGAIN; a writer that cannot take everything waits
for the next EPOLLOUT edge.  Sockets closed while a batch of events is being
dispatched are closed at the end of the batch, so a descriptor number cannot
be reused by a new socket while stale events for the old one are pending.
"""

from __future__ import annotations

import _socket
import asyncio
import logging
import select
from collections.abc import Callable

EPOLLIN = select.EPOLLIN
EPOLLOUT = select.EPOLLOUT
EPOLLERR = select.EPOLLERR
EPOLLHUP = select.EPOLLHUP
EPOLLRDHUP = select.EPOLLRDHUP
REGISTER = EPOLLIN | EPOLLOUT | EPOLLRDHUP | select.EPOLLET
REGISTER_IN = EPOLLIN | EPOLLRDHUP | select.EPOLLET  # no output edges until asked (modify)
BATCH = 512
log = logging.getLogger("pylvsd.proxy")

Handler = Callable[[int], None]


class Poller:
    """A private epoll set of relay descriptors, registered as one reader of ``loop``."""

    __slots__ = ("again", "batching", "closing", "ep", "handlers", "loop", "scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.ep = select.epoll()
        self.loop = loop
        self.scheduled = False
        loop.add_reader(self.ep.fileno(), self.poll)
        self.handlers: dict[int, Handler] = {}
        self.closing: list[_socket.socket] = []
        self.again: list[Callable[[], None]] = []
        self.batching = False

    def add(self, fd: int, handler: Handler, events: int = REGISTER) -> None:
        self.handlers[fd] = handler
        self.ep.register(fd, events)

    def modify(self, fd: int, events: int) -> None:
        self.ep.modify(fd, events)

    def close(self, sock: _socket.socket, fd: int = -1) -> None:
        """Forget ``sock`` (descriptor ``fd``, if known) and close it, at the end of
        the batch being dispatched."""
        self.handlers.pop(fd if fd >= 0 else sock.fileno(), None)
        if self.batching:
            self.closing.append(sock)
        else:
            sock.close()

    def finish_batch(self) -> None:
        """Run what asked for ``later`` and close what was closed during the batch."""
        try:
            if self.again:
                again, self.again = self.again, []
                for fn in again:
                    fn()
        finally:
            self.batching = False
            if self.closing:
                for s in self.closing:
                    s.close()
                self.closing.clear()

    def later(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` after the current batch: a side that used up its share of a
        wakeup and still has data (no new edge will come for it)."""
        self.again.append(fn)
        if not self.batching and not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self.poll)

    def poll(self) -> None:
        self.scheduled = False
        try:
            events = self.ep.poll(0, BATCH)
        except InterruptedError:
            return
        handlers = self.handlers
        self.batching = True
        try:
            for fd, ev in events:
                h = handlers.get(fd)
                if h is not None:
                    try:
                        h(ev)
                    except Exception:
                        log.exception("relay event on fd %d", fd)
        finally:
            self.finish_batch()
        if self.again and not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self.poll)

    def stop(self) -> None:
        self.loop.remove_reader(self.ep.fileno())
        self.ep.close()
