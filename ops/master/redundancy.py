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

__all__ = ["SCAN", "Redundancy"]

SCAN = 500
"""Streams of changed groups looked at per pass (a failover of a 100k-stream group is spread
over passes that yield to the event loop, like every duty)."""


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
        self._todo: dict[str, list[str]] = {}
        """Groups being reconciled: the stream ids still to look at."""

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

    def reset(self) -> None:
        self._todo.clear()

    def reconcile(self, d: Decisions, now: float, budget: int) -> bool:
        """Requeue streams of changed groups that their agent may no longer run: at most
        ``budget`` requeues and `SCAN` streams looked at per pass; True when more is left."""
        for name in self.index.reconcile:
            self._todo[name] = list(self.streams.by_group.get(name, ()))  # (re)start its scan
        self.index.reconcile = set()
        moved = scanned = 0
        for name in list(self._todo):
            ids = self._todo[name]
            group = self.groups.get(name)
            why = f"group {name}: {group.last_change or 'membership changed'}" if group else ""
            while group is not None and ids and moved < budget and scanned < SCAN:
                state = self.streams.streams.get(ids.pop())
                scanned += 1
                if state is None or not state.is_live or state.agent_id is None:
                    continue
                agent = self.agents.agents.get(state.agent_id)
                if agent is None or agent.status != "ready":
                    continue  # the orphan rule of lifecycle requeues those
                if eligible(agent, requirement_of(state), group):
                    continue
                d.stream(state, S.RequeueStream(stream_id=state.stream_id, at=now,
                                                cause=d.cause("stream.requeue"), reason=why))  # fmt: skip
                moved += 1
            if group is None or not ids:
                del self._todo[name]
            if moved >= budget or scanned >= SCAN:
                break
        return bool(self._todo)
