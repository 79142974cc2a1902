"""Master duty: redundancy groups — activate, fail over, fail back (``core.redundancy``), and
move the streams of a group whose active member or membership changed.

Looks only at groups that are due (``MasterIndex.groups_due``: the active member's keep-alive
deadline, a failback hold ending) or changed (``MasterIndex.groups_dirty``: the group, a
member's agent, a member's connection, a member becoming healthy), and reconciles only groups in
``MasterIndex.reconcile``: O(what changed).

Moving streams: a stream of the group held by an agent that may no longer run it (not the active
member of an ``active_standby`` group any more, or no longer a member) is requeued with the
group's reason; placement then puts it on the new active member, within its capacity.
"""

from __future__ import annotations

import time

from core import group as G
from core import stream as S
from core.distribution import eligible, requirement_of
from core.redundancy import group_due, group_rule
from ops.master.decisions import Decisions
from ops.master.election import Reign
from ops.master.health import Health
from ops.master.index import MasterIndex
from projections.agents import AgentsProjection
from projections.groups import GroupsProjection
from projections.streams import StreamsProjection

__all__ = ["Redundancy"]


class Redundancy:
    def __init__(self, index: MasterIndex, groups: GroupsProjection, streams: StreamsProjection,
                 agents: AgentsProjection, health: Health) -> None:  # fmt: skip
        self.index = index
        self.groups = groups
        self.streams = streams
        self.agents = agents
        self.health = health
        self.failovers = 0
        self.failbacks = 0

    def decide(self, d: Decisions, reign: Reign, now: float) -> None:
        """Activation, failover and failback decisions for the groups due or changed."""
        reign_s = time.monotonic() - reign.since_mono
        for name in sorted(self.index.pop_groups_due(now)):
            group = self.groups.get(name)
            if group is None or not group.is_redundant:
                self.index.schedule_group(name, float("inf"))
                continue
            health = {m.agent: self.health.member(m.agent) for m in group.config.members}
            cmd = group_rule(group, health, now=now, reign_s=reign_s, cause=d.cause)
            if cmd is not None and d.group(group, cmd):
                self.failovers += isinstance(cmd, G.FailOver)
                self.failbacks += isinstance(cmd, G.FailBack)
                continue  # its event re-marks the group: it is looked at again next pass
            self.index.schedule_group(name, group_due(group, health, now=now, reign_s=reign_s))

    def reconcile(self, d: Decisions, now: float) -> None:
        """Requeue streams of changed groups that their agent may no longer run."""
        names, self.index.reconcile = self.index.reconcile, set()
        for name in sorted(names):
            group = self.groups.get(name)
            if group is None:
                continue
            why = f"group {name}: {group.last_change or 'membership changed'}"
            for state in self.streams.in_group(name):
                if not state.is_live or state.agent_id is None:
                    continue
                agent = self.agents.agents.get(state.agent_id)
                if agent is None or agent.status != "ready":
                    continue  # the orphan rule of lifecycle requeues those
                if eligible(agent, requirement_of(state), group):
                    continue
                d.stream(state, S.RequeueStream(stream_id=state.stream_id, at=now,
                                                cause=d.cause("stream.requeue"), reason=why))  # fmt: skip
