"""Host and service names for pylvsadm listings without ``-n``.

Mirrors ipvsadm's ``addr_to_host`` (gethostbyaddr) and ``port_to_service``
(getservbyport with "tcp"/"udp"/"sctp").  This module does the I/O that
``pylvs.cli.render`` must not do; ``render`` falls back to numbers when a
lookup answers ``None``.  Difference: answers are cached per process.
"""

from __future__ import annotations

import socket


class SystemResolver:
    """Asks the system resolver and /etc/services, like ipvsadm."""

    def __init__(self) -> None:
        self._hosts: dict[str, str | None] = {}
        self._services: dict[tuple[int, str], str | None] = {}

    def host(self, addr: str) -> str | None:
        if addr not in self._hosts:
            try:
                name: str | None = socket.gethostbyaddr(addr)[0]
            except (OSError, UnicodeError, ValueError):
                name = None
            self._hosts[addr] = name
        return self._hosts[addr]

    def service(self, port: int, proto: str) -> str | None:
        key = (port, proto)
        if key not in self._services:
            try:
                name: str | None = socket.getservbyport(port, proto)
            except (OSError, OverflowError, ValueError):
                name = None
            self._services[key] = name
        return self._services[key]
