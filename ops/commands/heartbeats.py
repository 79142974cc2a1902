"""Agents' heartbeats as seen by this manager: the last one of each agent, in memory.

Heartbeats are not events (too frequent): every manager listens to all of them
(``vigil.agent.*.heartbeat``) and keeps the last per agent with its monotonic arrival time. The
agent id is taken from the subject. ``listeners`` hear every accepted heartbeat (the master's
liveness index).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import msgspec
from nats.aio.msg import Msg

from core.agent import AgentState
from events import subjects
from events.bounded import decode
from events.protocol import Heartbeat

__all__ = ["Heartbeats"]

log = logging.getLogger(__name__)

_decoder = msgspec.json.Decoder(Heartbeat)


class Heartbeats:
    """Last heartbeat of each agent (monotonic arrival time, body)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.last: dict[str, tuple[float, Heartbeat]] = {}
        self.invalid = 0
        self.listeners: list[Callable[[str, float], None]] = []

    def record(self, agent_id: str, hb: Heartbeat) -> None:
        now = self.clock()
        self.last[agent_id] = (now, hb)
        for listener in self.listeners:
            listener(agent_id, now)

    def age(self, agent_id: str) -> float | None:
        seen = self.last.get(agent_id)
        return None if seen is None else self.clock() - seen[0]

    def forget(self, agent_id: str) -> None:
        self.last.pop(agent_id, None)

    def on_agent(self, _before: AgentState | None, after: AgentState) -> None:
        """An agents-projection listener: every manager forgets an agent once it is gone
        (deregistered or removed), whichever manager answered its deregistration."""
        if after.status == "gone":
            self.forget(after.agent_id)

    async def on_msg(self, msg: Msg) -> None:
        try:
            agent_id = subjects.agent_id_of(msg.subject)
            hb = decode(msg.data, Heartbeat, decoder=_decoder)
        except (ValueError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            self.invalid += 1
            log.debug("invalid heartbeat on %s: %s", msg.subject, exc)
            return
        self.record(agent_id, hb)
