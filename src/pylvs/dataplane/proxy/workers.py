"""``--workers N``: relay processes behind one director.

Design (why not SO_REUSEPORT): with N processes each accepting on its own
SO_REUSEPORT socket, the kernel would split clients across N engines, and
rr/wrr order, lc/wlc counts, persistence and the counters would each see a
part of the traffic.  Instead the director process keeps the one engine and
the listening sockets: it accepts, schedules (so every decision sees every
connection), and hands the client socket (SCM_RIGHTS over a SOCK_SEQPACKET
socketpair) to the least busy relay worker, which connects to the real
server and moves the bytes.  Workers report what happened -- established,
failed, FIN, RST, closed, and traffic counts batched per connection -- and
the director feeds those to the engine, so -Lnc, ActiveConn/InActConn and
--stats stay exact.  The director tells workers to abort (expired entries,
expire_nodest_conn) or to hold and resume a connection (unavailable real
server).  UDP stays in the director.

Records are fixed-size: op (1 byte), connection id, four signed 64-bit values.
"""

from __future__ import annotations

import array
import asyncio
import gc
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections import Counter
from typing import TYPE_CHECKING

from pylvs.core.conn import Conn
from pylvs.core.proto_tcp import TH_RST
from pylvs.dataplane.proxy.poller import Poller
from pylvs.dataplane.proxy.tcp import PIPE_SIZE, Relay, Sock

if TYPE_CHECKING:
    from pylvs.dataplane.proxy.plane import ProxyDataPlane

REC = struct.Struct("!cQqqqq")
NEW = struct.Struct("!QBH16sH")
FLUSH_DELAY = 0.05
MAX_MSG = 1 << 16


class RemoteRelay:
    """The director's handle on a connection that a worker relays."""

    __slots__ = ("closed", "id", "paused", "tag", "worker")

    def __init__(self, worker: WorkerHandle, cid: int, conn: Conn) -> None:
        self.worker = worker
        self.id = cid
        self.tag = conn
        self.paused = False
        self.closed = False

    def abort(self) -> None:
        self.worker.send(b"A" + struct.pack("!Q", self.id))

    def pause(self) -> None:
        if not self.paused:
            self.paused = True
            self.worker.send(b"P" + struct.pack("!Q", self.id))

    def resume(self) -> None:
        if self.paused:
            self.paused = False
            self.worker.send(b"R" + struct.pack("!Q", self.id))


class WorkerHandle:
    """One relay worker process, seen from the director."""

    def __init__(self, pool: WorkerPool, index: int) -> None:
        self.pool = pool
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock = ours
        self.sock.setblocking(False)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pylvs.dataplane.proxy.workers",
                str(theirs.fileno()),
                str(pool.plane.connect_timeout),
            ],
            pass_fds=[theirs.fileno()],
        )
        theirs.close()
        self.relays: dict[int, RemoteRelay] = {}
        self.index = index

    def send(self, msg: bytes, fds: list[int] | None = None) -> None:
        try:
            if fds:
                self.sock.sendmsg(
                    [msg], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))]
                )
            else:
                self.sock.send(msg)
        except OSError:
            self.pool.plane.counters["worker_send_error"] += 1

    def on_readable(self) -> None:
        pool = self.pool
        for _ in range(64):
            try:
                data = self.sock.recv(MAX_MSG)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                pool.worker_died(self)
                return
            for off in range(0, len(data), REC.size):
                pool.apply(self, *REC.unpack_from(data, off))


class WorkerPool:
    """The director's side: dispatch accepted connections, apply the workers' reports."""

    def __init__(self, plane: ProxyDataPlane, n: int) -> None:
        self.plane = plane
        self.workers = [WorkerHandle(self, i) for i in range(n)]
        self.next_id = 0
        for w in self.workers:
            plane.loop.add_reader(w.sock.fileno(), w.on_readable)

    def open_relays(self) -> int:
        return sum(len(w.relays) for w in self.workers)

    def dispatch(
        self, conn: Conn, csock: Sock, addr: str, port: int, header: bytes | None
    ) -> RemoteRelay:
        w = min(self.workers, key=lambda x: len(x.relays))
        self.next_id += 1
        cid = self.next_id
        packed = socket.inet_pton(socket.AF_INET6 if ":" in addr else socket.AF_INET, addr)
        hdr = header or b""
        msg = b"N" + NEW.pack(cid, len(packed), port, packed.ljust(16, b"\0"), len(hdr)) + hdr
        rr = RemoteRelay(w, cid, conn)
        w.relays[cid] = rr
        conn.extra = rr
        w.send(msg, [csock.fileno()])
        csock.close()
        return rr

    def apply(self, w: WorkerHandle, op: bytes, cid: int, a: int, b: int, c: int, d: int) -> None:
        rr = w.relays.get(cid)
        if rr is None:
            return
        conn = rr.tag
        engine = self.plane.engine
        now = time.monotonic()
        if op == b"D":
            engine.account(conn, now, a, b, c, d)
            self.plane.check_dest(rr)
        elif op == b"E":
            engine.established(conn, now)
        elif op == b"F":
            engine.packet_out(conn, now, flags=TH_RST)
        elif op == b"I":
            engine.conn_in(conn, now, a, 0)
        elif op == b"O":
            engine.packet_out(conn, now, flags=a)
        elif op == b"C":
            del w.relays[cid]
            rr.closed = True
            if conn.extra is rr:
                conn.extra = None
            self.plane.remote_closed(rr)

    def worker_died(self, w: WorkerHandle) -> None:
        self.plane.loop.remove_reader(w.sock.fileno())
        self.plane.counters["worker_died"] += 1
        for rr in list(w.relays.values()):
            self.apply(w, b"C", rr.id, 0, 0, 0, 0)

    def close(self) -> None:
        for w in self.workers:
            self.plane.loop.remove_reader(w.sock.fileno())
            w.sock.close()
        for w in self.workers:
            try:
                w.proc.wait(5)
            except subprocess.TimeoutExpired:
                w.proc.kill()
                w.proc.wait()


# -- the worker process ---------------------------------------------------------------------


class WorkerHost:
    """RelayHost of a relay worker: reports to the director instead of an engine."""

    def __init__(self, ctl: socket.socket, connect_timeout: float) -> None:
        self.ctl = ctl
        self.loop = asyncio.get_running_loop()
        self.poller = Poller(self.loop)
        self.buffer = bytearray(PIPE_SIZE)
        self.view = memoryview(self.buffer)
        self.connect_timeout = connect_timeout
        self.counters: Counter[str] = Counter()
        self.relays: dict[int, Relay] = {}
        self.out: list[bytes] = []
        self.flush_handle: asyncio.Handle | None = None
        self.done = asyncio.Event()

    def _record(self, op: bytes, cid: int, a: int = 0, b: int = 0, c: int = 0, d: int = 0) -> None:
        self.out.append(REC.pack(op, cid, a, b, c, d))
        if self.flush_handle is None:
            self.flush_handle = self.loop.call_soon(self.send_out)

    def periodic(self) -> None:
        """Every FLUSH_DELAY: report counts, run connect timeouts."""
        now = time.monotonic()
        for relay in list(self.relays.values()):
            self._counts(relay)
            if relay.deadline and relay.deadline <= now:
                relay.on_connect_timeout()
        self.send_out()
        if not self.done.is_set():
            self.loop.call_later(FLUSH_DELAY, self.periodic)

    def flush(self) -> None:
        for relay in self.relays.values():
            self._counts(relay)
        self.send_out()

    def send_out(self) -> None:
        self.flush_handle = None
        per = MAX_MSG // REC.size
        out, self.out = self.out, []
        for i in range(0, len(out), per):
            try:
                self.ctl.sendall(b"".join(out[i : i + per]))
            except OSError:
                self.done.set()
                return

    # RelayHost
    def established(self, relay: Relay) -> None:
        self._record(b"E", relay.tag)

    def failed(self, relay: Relay, err: int) -> None:
        self._record(b"F", relay.tag, err)

    def _counts(self, relay: Relay) -> None:
        if relay.inpkts or relay.outpkts:
            self.out.append(
                REC.pack(
                    b"D", relay.tag, relay.inpkts, relay.inbytes, relay.outpkts, relay.outbytes
                )
            )
            relay.inpkts = relay.inbytes = relay.outpkts = relay.outbytes = 0

    def state(self, relay: Relay, inbound: bool, flags: int) -> None:
        self._counts(relay)
        self._record(b"I" if inbound else b"O", relay.tag, flags)

    def relay_closed(self, relay: Relay) -> None:
        cid: int = relay.tag
        self.relays.pop(cid, None)
        self._record(b"C", cid)

    # commands from the director
    def on_command(self) -> None:
        for _ in range(256):
            try:
                msg, anc, _flags, _addr = self.ctl.recvmsg(MAX_MSG, socket.CMSG_SPACE(4))
            except BlockingIOError:
                return
            except OSError:
                msg = b""
            if not msg:
                self.done.set()
                return
            op = msg[:1]
            if op == b"N":
                cid, alen, port, addr16, hlen = NEW.unpack_from(msg, 1)
                header = msg[1 + NEW.size : 1 + NEW.size + hlen] or None
                fds = array.array("i")
                for level, kind, data in anc:
                    if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                        fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
                if not fds:
                    continue
                csock = socket.socket(fileno=fds[0])
                csock.setblocking(False)
                fam = socket.AF_INET6 if alen == 16 else socket.AF_INET
                addr = socket.inet_ntop(fam, addr16[:alen])
                new = Relay(self, cid, csock, header)
                self.relays[cid] = new
                new.connect(addr, port, fam)
                continue
            (cid,) = struct.unpack_from("!Q", msg, 1)
            known = self.relays.get(cid)
            if known is None:
                continue
            if op == b"A":
                known.abort()
            elif op == b"P":
                known.pause()
            elif op == b"R":
                known.resume()


async def worker_main(fd: int, connect_timeout: float) -> None:
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    ctl = socket.socket(fileno=fd)
    ctl.setblocking(False)
    host = WorkerHost(ctl, connect_timeout)
    host.loop.add_reader(fd, host.on_command)
    host.loop.call_later(FLUSH_DELAY, host.periodic)
    for sig in (signal.SIGINT, signal.SIGTERM):
        host.loop.add_signal_handler(sig, host.done.set)
    await host.done.wait()
    for relay in list(host.relays.values()):
        relay.abort()
    host.flush()
    host.poller.stop()
    ctl.close()


if __name__ == "__main__":
    from pylvs.daemon.main import run

    run(worker_main(int(sys.argv[1]), float(sys.argv[2])))
    os._exit(0)
