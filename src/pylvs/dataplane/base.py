"""What pylvsd expects of a data plane.

A data plane is an adapter around the engine: it turns what it sees into
engine calls and carries out the decisions.  pylvsd starts it after the
rules are loaded, tells it after every change of the rules, and stops it on
shutdown (it must remove everything it installed).
"""

from __future__ import annotations

from typing import ClassVar

from pylvs.core.conn import Conn
from pylvs.core.engine import Engine
from pylvs.daemon.ctl import Policy


class DataPlane:
    name: ClassVar[str] = ""
    policy: ClassVar[Policy] = Policy()

    async def start(self, engine: Engine) -> None:
        self.engine = engine

    def table_changed(self) -> None:
        """The rules changed (services or real servers added, edited or deleted)."""
        return None

    def tick(self, now: float) -> None:
        """Called on every timer tick of the daemon (about twice a second)."""
        return None

    def expired(self, conns: list[Conn]) -> None:
        """The engine's timers removed these entries (idle timeout, closed flows)."""
        return None

    def counter_values(self) -> dict[str, int]:
        """The data plane's own counters, by name (GET /v1/dataplane)."""
        return {}

    async def stop(self) -> None:
        return None
