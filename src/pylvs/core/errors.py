"""Errors with the texts libipvs's ipvs_strerror() prints.

ipvsadm prints ``<message>`` after its own prefix; the API returns the same
text.  ``errno`` mirrors the kernel's answer so callers can map exit codes.
"""

from __future__ import annotations

import errno as _errno


class IPVSError(Exception):
    """A refused change; the table is left exactly as it was."""

    errno: int = _errno.EINVAL

    def __init__(self, message: str, err: int | None = None, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail
        self.index: int | None = None  # position of the failing change in a batch
        if err is not None:
            self.errno = err


SERVICE_EXISTS = "Service already exists"
NO_SUCH_SERVICE = "No such service"
SERVICE_NOT_DEFINED = "Service not defined"
DEST_EXISTS = "Destination already exists"
NO_SUCH_DEST = "No such destination"
SCHED_NOT_FOUND = "Scheduler or persistence engine not found"
DAEMON_RUNNING = "Daemon has already run"
NO_DAEMON = "No daemon is running"
INVALID = "Invalid operation.  Possibly wrong module version, address not unicast, ..."
NOT_SUPPORTED_AF = "Operation not supported with specified address family"
LADDR_EXISTS = "Local address already exists"
NO_SUCH_LADDR = "No such Local address"


def service_exists() -> IPVSError:
    return IPVSError(SERVICE_EXISTS, _errno.EEXIST)


def no_such_service() -> IPVSError:
    return IPVSError(NO_SUCH_SERVICE, _errno.ESRCH)


def service_not_defined() -> IPVSError:
    return IPVSError(SERVICE_NOT_DEFINED, _errno.ESRCH)


def dest_exists() -> IPVSError:
    return IPVSError(DEST_EXISTS, _errno.EEXIST)


def no_such_dest() -> IPVSError:
    return IPVSError(NO_SUCH_DEST, _errno.ENOENT)


def sched_not_found() -> IPVSError:
    return IPVSError(SCHED_NOT_FOUND, _errno.ENOENT)


def invalid(detail: str = "") -> IPVSError:
    """EINVAL; ``detail`` is kept for logs and the API, the message stays libipvs's."""
    return IPVSError(INVALID, _errno.EINVAL, detail)
