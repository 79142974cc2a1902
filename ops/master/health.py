"""Members' health, by agent name, for the redundancy rules (``core.redundancy.MemberHealth``).

Three sources, all in memory (none of it is an event):

- keep-alives: ``ops.commands.heartbeats.Heartbeats`` (last heartbeat per agent id);
- connection losses: ``ops.commands.connections.Connections`` (server advisories);
- *healthy since*: the first keep-alive after the name was last unhealthy — a disconnect, a
  ``not_ready`` agent, or a gap between two keep-alives longer than the shortest ``failover_s``
  of its groups. Failback waits until a member has been healthy for ``failback_hold_s``, so a
  flapping primary never gets the cameras back.

``on_healthy`` hears every name that just became healthy (the master re-evaluates its groups).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from core.agent import AgentState
from core.redundancy import MemberHealth
from ops.commands.connections import Connections
from ops.commands.heartbeats import Heartbeats
from projections.agents import AgentsProjection
from projections.groups import GroupsProjection

__all__ = ["Health"]


class Health:
    def __init__(self, agents: AgentsProjection, groups: GroupsProjection,
                 heartbeats: Heartbeats, connections: Connections, *,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.agents = agents
        self.groups = groups
        self.heartbeats = heartbeats
        self.connections = connections
        self.clock = clock
        self.healthy_since: dict[str, float] = {}
        self.last_seen: dict[str, float] = {}
        self.on_healthy: list[Callable[[str], None]] = []
        heartbeats.listeners.append(self.on_heartbeat)
        connections.listeners.append(self.on_connection)
        agents.listeners.append(self.on_agent)

    def _gap_s(self, name: str) -> float:
        values = [g.config.failover_s for g in self.groups.of_member(name)]
        return min(values) if values else float("inf")

    def on_heartbeat(self, agent_id: str, mono: float) -> None:
        agent = self.agents.agents.get(agent_id)
        if agent is None:
            return
        name = agent.name
        self.connections.alive(name)
        prev = self.last_seen.get(name)
        self.last_seen[name] = mono
        if prev is not None and mono - prev > self._gap_s(name):
            self.healthy_since.pop(name, None)
        if (agent.status == "ready" and name not in self.healthy_since
                and self.connections.is_down(name) is None):  # fmt: skip
            self.healthy_since[name] = mono
            for listener in self.on_healthy:
                listener(name)

    def on_connection(self, name: str, connected: bool) -> None:
        if not connected:
            self.healthy_since.pop(name, None)

    def on_agent(self, _before: AgentState | None, after: AgentState) -> None:
        if after.status != "ready":
            self.healthy_since.pop(after.name, None)

    def member(self, name: str) -> MemberHealth:
        """What is known about the agent(s) registered as ``name`` now."""
        ready = False
        silent: float | None = None
        for agent in self.agents.named(name):
            ready = ready or agent.status == "ready"
            age = self.heartbeats.age(agent.agent_id)
            if age is not None and (silent is None or age < silent):
                silent = age
        down = self.connections.is_down(name)
        since = self.healthy_since.get(name)
        return MemberHealth(
            name=name, ready=ready, connected=down is None, silent_s=silent,
            healthy_for=None if since is None else self.clock() - since,
            disconnect_reason=down.reason if down is not None else None,
        )  # fmt: skip
