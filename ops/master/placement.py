"""Master duty: placement of pending streams on agents (``core.distribution.place``).

Pending streams are indexed by requirement (analytics + group) in the streams projection.
After a placement pass, every requirement either has no pending stream or no eligible agent with
a free slot; so the next pass needs to look only at

- requirements with a *new* pending stream (``MasterIndex.placement``): every eligible agent;
- other requirements with pending streams: only agents that freed capacity or changed
  (``MasterIndex.freed``).

Eligible agents per requirement are cached and kept up to date per agent event; a group change
(failover, failback, membership) drops the cache of that group's requirements.
"""

from __future__ import annotations

from collections.abc import Iterator

from core import stream as S
from core.agent import AgentState
from core.distribution import Requirement, eligible, place
from core.group import GroupState
from ops.master.decisions import Decisions
from ops.master.index import MasterIndex
from projections.agents import AgentsProjection
from projections.groups import GroupsProjection
from projections.streams import StreamsProjection

__all__ = ["Placement"]


class Placement:
    def __init__(self, index: MasterIndex, streams: StreamsProjection,
                 agents: AgentsProjection, groups: GroupsProjection | None = None) -> None:  # fmt: skip
        self.index = index
        self.streams = streams
        self.agents = agents
        self.groups = groups or GroupsProjection()
        self._eligible: dict[Requirement, dict[str, AgentState]] = {}
        agents.listeners.append(self._on_agent)
        self.groups.listeners.append(self._on_group)

    def _on_agent(self, _before: AgentState | None, after: AgentState) -> None:
        for req, members in self._eligible.items():
            if eligible(after, req, self.groups.get(req[1])):
                members[after.agent_id] = after
            else:
                members.pop(after.agent_id, None)

    def _on_group(self, _before: GroupState | None, after: GroupState) -> None:
        for req in [r for r in self._eligible if r[1] == after.name]:
            del self._eligible[req]

    def eligible_for(self, req: Requirement) -> dict[str, AgentState]:
        members = self._eligible.get(req)
        if members is None:
            group = self.groups.get(req[1])
            members = {a.agent_id: a for a in self.agents.agents.values()
                       if eligible(a, req, group)}  # fmt: skip
            self._eligible[req] = members
        return members

    def reset(self) -> None:
        self._eligible.clear()

    def _pending(self, req: Requirement) -> Iterator[tuple[str, int]]:
        streams = self.streams.streams
        for _, sid in self.streams.pending.get(req, ()):
            yield sid, streams[sid].version

    def decide(self, d: Decisions, now: float, budget: int) -> bool:
        """Place up to ``budget`` streams; True when more may be placeable right away."""
        index = self.index
        fresh = index.placement & set(self.streams.pending)
        freed = index.freed
        index.placement = set()
        index.freed = set()
        load = self.streams.by_agent
        placed = 0
        more = False
        for req in list(self.streams.pending):
            members = self.eligible_for(req)
            if req in fresh:
                candidates = [
                    a for a in members.values() if a.capacity > len(load.get(a.agent_id, ()))
                ]
            else:
                candidates = [members[aid] for aid in freed if aid in members
                              and members[aid].capacity > len(load.get(aid, ()))]  # fmt: skip
            if not candidates:
                continue
            if placed >= budget:
                index.placement.add(req)
                index.freed |= freed
                more = True
                continue
            loads = {a.agent_id: len(load.get(a.agent_id, ())) for a in candidates}
            chosen = place(self._pending(req), candidates, loads, limit=budget - placed)
            for a in chosen:
                state = self.streams.streams[a.stream_id]
                d.stream(state, S.AssignStream(stream_id=a.stream_id, at=now,
                                               cause=d.cause("stream.assign"), agent_id=a.agent_id))  # fmt: skip
            placed += len(chosen)
            if placed >= budget:
                index.placement.add(req)  # maybe more to place: look at every agent next time
                more = True
        return more
