"""Agents' NATS connections as nats-server itself reports them: the connect/disconnect
advisories (``$SYS.ACCOUNT.<account>.CONNECT|DISCONNECT``, imported from the system account,
see ``ops.runtime.natsd.advisory_config``).

A killed agent process closes its TCP connection; the server publishes ``DISCONNECT`` within
milliseconds, long before any keep-alive could be missed. Agents name their connection
``vigil-agent-<agent name>`` (``events.subjects.AGENT_CONNECTION_PREFIX``), so the advisory
says which agent is gone. Every manager listens (the master uses it; a standby is ready to take
over); ``listeners`` hear ``(agent name, connected)``.

Without advisories (a server without a system account) nothing arrives here and loss is
detected by missed keep-alives alone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import msgspec
from nats.aio.msg import Msg

from events import subjects
from events.bounded import decode

__all__ = ["Advisory", "Connections", "Down"]

log = logging.getLogger(__name__)

IGNORED_REASONS = ("Server Shutdown",)
"""Disconnects that say nothing about the agent: the server went away (the agent reconnects to
another node of the cluster; if it does not, its keep-alives stop)."""

REVIVE_AFTER_S = 0.5
"""A heartbeat clears a seen disconnect only if it arrives this long after it (a heartbeat
sent just before a kill can be handled after the advisory: subscriptions run concurrently)."""


class _Client(msgspec.Struct, frozen=True):
    name: str = ""
    start: str = ""
    acc: str = ""


class Advisory(msgspec.Struct, frozen=True):
    """The part of ``io.nats.server.advisory.v1.client_connect|client_disconnect`` we read."""

    type: str = ""
    client: _Client = _Client()
    reason: str = ""


class Down(msgspec.Struct, frozen=True):
    at: float
    """Monotonic time the advisory arrived."""
    reason: str
    start: str
    """The closed connection's start time (RFC 3339, as the server wrote it)."""


_decoder = msgspec.json.Decoder(Advisory)


def _sortable(start: str) -> str:
    """RFC 3339 with the fraction padded to nanoseconds (Go trims trailing zeros), so that
    start times compare as strings."""
    base, dot, rest = start.partition(".")
    if not dot:
        return start.rstrip("Z") + ".000000000Z" if start else ""
    digits = rest.rstrip("Z")
    return f"{base}.{digits:0<9}Z"


class Connections:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.down: dict[str, Down] = {}
        self.started: dict[str, str] = {}
        """agent name → start of its newest connection seen (a later disconnect of an older
        connection, e.g. reaped after the agent restarted, is ignored)."""
        self.listeners: list[Callable[[str, bool], None]] = []
        self.seen = 0
        self.invalid = 0

    def is_down(self, name: str) -> Down | None:
        return self.down.get(name)

    def alive(self, name: str) -> None:
        """A heartbeat from an agent of this name arrived."""
        down = self.down.get(name)
        if down is not None and self.clock() - down.at >= REVIVE_AFTER_S:
            del self.down[name]
            self._tell(name, True)

    def _tell(self, name: str, connected: bool) -> None:
        for listener in self.listeners:
            listener(name, connected)

    def record(self, adv: Advisory) -> None:
        name = subjects.agent_name_of_connection(adv.client.name)
        if name is None:
            return
        self.seen += 1
        start = _sortable(adv.client.start)
        if adv.type.endswith("client_connect"):
            if start >= self.started.get(name, ""):
                self.started[name] = start
            if self.down.pop(name, None) is not None:
                self._tell(name, True)
        elif adv.type.endswith("client_disconnect"):
            if start and start < self.started.get(name, ""):
                return  # an older connection of an agent that has reconnected since
            if adv.reason in IGNORED_REASONS:
                return
            log.info("agent %s: NATS connection closed (%s)", name, adv.reason or "?")
            self.down[name] = Down(at=self.clock(), reason=adv.reason or "closed", start=start)
            self._tell(name, False)

    async def on_msg(self, msg: Msg) -> None:
        try:
            adv = decode(msg.data, Advisory, decoder=_decoder)
        except (ValueError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            self.invalid += 1
            log.debug("unreadable advisory on %s: %s", msg.subject, exc)
            return
        self.record(adv)
