"""Packet captures in lab namespaces: tcpdump writing a pcap file, read back with scapy.

``Capture`` starts ``tcpdump -n -U --immediate-mode -w FILE -i IFACE FILTER`` in the node's
namespace and returns once tcpdump reports "listening on" (the socket is open and the filter
attached: nothing sent afterwards is missed).  ``stop()`` sends SIGINT, which makes tcpdump
flush and exit; the pcap bytes are then kept in memory, so ``packets()`` also works after
the lab (and its temporary directory) is gone.
"""

from __future__ import annotations

import io
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from tests.lab.errors import LabError
from tests.lab.netns import stop_process

if TYPE_CHECKING:
    from scapy.plist import PacketList

    from tests.lab.lab import Lab

TCPDUMP = "tcpdump"
STARTUP_TIMEOUT = 5.0


class Capture:
    """One running (then stopped) tcpdump; a context manager that stops it on exit."""

    def __init__(
        self, lab: Lab, node: str, iface: str, bpf_filter: str = "", *, snaplen: int = 0
    ) -> None:
        self.node = node
        self.iface = iface
        self.filter = bpf_filter
        # ".pcap" also suits AppArmor's tcpdump profile where one is enforced.
        self.path: Path = lab.new_path(f"capture-{node}-{iface}", ".pcap")
        self.log_path: Path = self.path.with_suffix(".log")
        self._data: bytes | None = None
        argv = [TCPDUMP, "-n", "-U", "--immediate-mode", "-Z", "root", "-s", str(snaplen)]
        argv += ["-i", iface, "-w", str(self.path)]
        if bpf_filter:
            argv.append(bpf_filter)
        with open(self.log_path, "w") as log:
            self.proc: subprocess.Popen[Any] = lab.popen(
                node, argv, stdout=log, stderr=subprocess.STDOUT
            )
        self._wait_listening()

    def log(self) -> str:
        """tcpdump's own messages ("listening on ...", "N packets captured", errors)."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while "listening on" not in self.log():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait()
                raise LabError(
                    f"tcpdump on {self.node} {self.iface} ({self.filter!r}) did not start: "
                    f"{self.log().strip() or 'no output'}"
                )
            time.sleep(0.005)

    @property
    def running(self) -> bool:
        return self._data is None

    def stop(self) -> None:
        """Stop tcpdump (SIGINT: it flushes the file and prints its counters); idempotent."""
        if self._data is not None:
            return
        stop_process(self.proc, signal.SIGINT)
        try:
            self._data = self.path.read_bytes()
        except OSError as e:
            self._data = b""
            raise LabError(f"capture {self.path} unreadable: {e}; {self.log().strip()}") from e

    def packets(self) -> PacketList:
        """The captured packets as a scapy PacketList (stops the capture first if running)."""
        from scapy.all import rdpcap

        self.stop()
        assert self._data is not None
        if not self._data:
            raise LabError(f"capture on {self.node} {self.iface} wrote no pcap: {self.log()}")
        return rdpcap(io.BytesIO(self._data))

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
