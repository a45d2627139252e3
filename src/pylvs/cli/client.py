"""A small synchronous client of pylvsd's control API over its unix socket.

Standard library only (http.client), so pylvsadm starts fast.
"""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import time
from typing import Any
from urllib.parse import quote


class ApiError(Exception):
    """The daemon refused: ``message`` is the text ipvsadm would print."""

    def __init__(self, status: int, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.index = index
        self.exit_code = 255


class DaemonUnreachable(Exception):
    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"cannot reach pylvsd at {path}: {reason}")
        self.path = path
        self.reason = reason


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self._path)
        except OSError:
            s.close()
            raise
        self.sock = s


class Client:
    def __init__(self, path: str, timeout: float = 30.0) -> None:
        self.path = path
        self.timeout = timeout

    def request(self, method: str, url: str, body: object = None) -> Any:
        conn = _UnixConnection(self.path, self.timeout)
        try:
            headers = {"Content-Type": "application/json"} if body is not None else {}
            data = json.dumps(body).encode() if body is not None else None
            try:
                conn.request(method, url, body=data, headers=headers)
                resp = conn.getresponse()
                raw = resp.read()
            except OSError as e:
                raise DaemonUnreachable(self.path, e.strerror or str(e)) from e
        finally:
            conn.close()
        payload = json.loads(raw) if raw else None
        if resp.status >= 400:
            msg = payload.get("error", raw.decode()) if isinstance(payload, dict) else raw.decode()
            idx = payload.get("index") if isinstance(payload, dict) else None
            raise ApiError(resp.status, msg, idx)
        return payload

    def get(self, url: str) -> Any:
        return self.request("GET", url)


def sid_path(sid: str) -> str:
    return quote(sid, safe="")


class DaemonStartError(RuntimeError):
    pass


def wait_for_daemon(path: str, proc: subprocess.Popen[Any], timeout: float = 20.0) -> None:
    """Wait until the pylvsd started as ``proc`` answers on ``path``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DaemonStartError(f"pylvsd exited with status {proc.returncode}")
        try:
            Client(path, timeout=2).get("/v1/info")
            return
        except (DaemonUnreachable, ApiError, ValueError):
            pass
        time.sleep(0.05)
    raise DaemonStartError("pylvsd did not come up")


def stop_daemon(proc: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    """SIGTERM (pylvsd's clean shutdown), then SIGKILL if it does not exit in time."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
