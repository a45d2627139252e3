"""Recent state changes (GET /v1/events) and JSON log lines (pylvsd --log-format json).

keepalived reports state changes only in its log (ipwrapper.c "Removing
service ...", vrrp.c "Entering MASTER STATE"); pylvsd keeps the last few
hundred in a ring buffer as well, for the dashboard, and counts every kind
since the start (``pylvs_events_total``, ``pylvs_config_reloads_total``).

``log_event`` is the one call a state change makes: the log line (with the
event's fields as structured fields, for ``JsonFormatter``) and the event.
Kinds in use: ``rs_up``/``rs_down`` (a real server's health checks),
``quorum_up``/``quorum_down``, ``reload``/``reload_failed``, ``start``;
VRRP transitions should use ``vrrp_state`` with the instance's ``instance``
and new ``state`` fields (a transition to or from MASTER is a failover).
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypedDict

FieldValue = str | int | float | bool | None

RS_UP = "rs_up"
RS_DOWN = "rs_down"
QUORUM_UP = "quorum_up"
QUORUM_DOWN = "quorum_down"
RELOAD = "reload"
RELOAD_FAILED = "reload_failed"
START = "start"
VRRP_STATE = "vrrp_state"

DEFAULT_SIZE = 256


class Event(TypedDict):
    seq: int  # 1, 2, 3... since the start: GET /v1/events?since=SEQ answers the newer ones
    time: float  # unix time
    kind: str
    level: str  # info | warning | error
    message: str
    fields: dict[str, FieldValue]


class Events:
    """A ring buffer of the last ``size`` events, and a count of every kind ever seen."""

    def __init__(self, size: int = DEFAULT_SIZE, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.ring: deque[Event] = deque(maxlen=size)
        self.seq = 0
        self.counts: Counter[str] = Counter()

    def record(self, kind: str, message: str, level: str = "info", **fields: FieldValue) -> Event:
        self.seq += 1
        self.counts[kind] += 1
        ev: Event = {
            "seq": self.seq,
            "time": self.clock(),
            "kind": kind,
            "level": level,
            "message": message,
            "fields": fields,
        }
        self.ring.append(ev)
        return ev

    def since(self, seq: int = 0) -> list[Event]:
        """The events newer than ``seq``, oldest first (those still in the buffer)."""
        if not self.ring or self.ring[-1]["seq"] <= seq:
            return []
        return [e for e in self.ring if e["seq"] > seq]

    def __len__(self) -> int:
        return len(self.ring)


def log_event(
    logger: logging.Logger,
    events: Events | None,
    kind: str,
    msg: str,
    *args: object,
    level: int = logging.INFO,
    **fields: FieldValue,
) -> None:
    """Log ``msg % args`` with ``event=kind`` and ``fields`` as structured fields,
    and record the event when there is an event log."""
    logger.log(level, msg, *args, extra={"event": kind, **fields})
    if events is not None:
        text = msg % args if args else msg
        events.record(kind, text, logging.getLevelName(level).lower(), **fields)


# -- JSON lines -----------------------------------------------------------------------

_RECORD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys()
    | {"message", "asctime", "taskName"}
)


def iso_time(t: float) -> str:
    """2024-05-01T12:00:00.123Z"""
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, then the record's
    structured fields (the ``extra`` of the logging call: ``event``, ``real_server``...)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": iso_time(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for k, v in record.__dict__.items():
            if k in _RECORD_ATTRS or k.startswith("_") or k in out:
                continue
            out[k] = v if isinstance(v, (str, int, float, bool)) or v is None else str(v)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=False, default=str)
