"""Master duty: agent liveness — downgrade the silent, recover the returning, remove the gone.

Looks only at agents whose due time came (``MasterIndex.agents_due``), that heartbeated while
``not_ready`` (``MasterIndex.recover``) or whose NATS connection the server saw close
(``MasterIndex.disconnected``: downgraded at once); the rules are ``core.rules.agent_rule``.
"""

from __future__ import annotations

import time

from core.rules import agent_rule
from ops.commands.connections import Connections
from ops.commands.heartbeats import Heartbeats
from ops.master.decisions import Decisions
from ops.master.election import Reign
from ops.master.index import MasterIndex
from projections.agents import AgentsProjection

__all__ = ["Liveness"]


class Liveness:
    def __init__(self, index: MasterIndex, agents: AgentsProjection, heartbeats: Heartbeats, *,
                 retention_s: float, connections: Connections | None = None) -> None:  # fmt: skip
        self.index = index
        self.agents = agents
        self.heartbeats = heartbeats
        self.retention_s = retention_s
        self.connections = connections or Connections()

    def silent_s(self, agent_id: str) -> float | None:
        return self.heartbeats.age(agent_id)

    def reign_s(self, reign: Reign) -> float:
        return time.monotonic() - reign.since_mono

    def due(self, reign: Reign, now: float) -> list[str]:
        ids = self.index.pop_agents_due(now)
        ids.extend(sorted((self.index.recover | self.index.disconnected) - set(ids)))
        self.index.recover.clear()
        self.index.disconnected.clear()
        return ids

    def decide(self, d: Decisions, reign: Reign, now: float) -> None:
        reign_s = self.reign_s(reign)
        for aid in self.due(reign, now):
            agent = self.agents.agents.get(aid)
            if agent is None:
                continue
            silent = self.silent_s(aid)
            down = self.connections.is_down(agent.name)
            cmd = agent_rule(agent, now=now, silent_s=silent, reign_s=reign_s,
                             retention_s=self.retention_s, cause=d.cause,
                             disconnected=down.reason if down is not None else None)  # fmt: skip
            if cmd is None or not d.agent(agent, cmd):
                self.index.schedule_agent(agent, now)
