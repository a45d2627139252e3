"""Shared bits of the checker tests: CheckerConf builders, nginx requirement, free ports."""

from __future__ import annotations

import os
import socket
from typing import Any

import pytest

from pylvs.config.model import CheckerConf, UrlConf, Where
from pylvs.testing.backends import BackendUnavailable, find_nginx

WHERE = Where("test.conf", 1)


def conf(kind: str, ip: str = "127.0.0.1", port: int = 0, **kw: Any) -> CheckerConf:
    """A CheckerConf as the parser would resolve it; unknown keywords go to options."""
    fields = {f for f in CheckerConf.__dataclass_fields__ if f not in ("kind", "where")}
    common = {k: v for k, v in kw.items() if k in fields}
    options = {k: v for k, v in kw.items() if k not in fields}
    common.setdefault("connect_timeout", 2.0)
    return CheckerConf(kind, WHERE, ip, port, **common, options=options)


def url(path: str = "/", **kw: Any) -> UrlConf:
    return UrlConf(WHERE, path, **kw)


def require_nginx() -> None:
    try:
        find_nginx()
    except BackendUnavailable as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"nginx is required in CI: {e}")
        pytest.skip(str(e))


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{what} needs root in CI")
        pytest.skip(f"{what} needs root")


def closed_port(address: str = "127.0.0.1") -> int:
    """A port nothing listens on (bound then released)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family) as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])
