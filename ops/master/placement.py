"""Master duty: placement of pending streams on agents (``core.distribution.Candidates``).

Pending streams are indexed by requirement (analytics + group) in the streams projection. For
each requirement the master keeps its eligible agents in a ``Candidates`` heap, built once per
reign when the requirement first has a pending stream and kept up to date from then on: per agent
event (membership, capacity), per agent that freed a slot (``MasterIndex.freed``), and lazily for
load that grew. A pass looks only at

- requirements with a *new* pending stream (``MasterIndex.placement``);
- requirements whose candidates gained an agent with a free slot (``MasterIndex.freed``);

and places each stream with O(log agents) work, never a walk over every agent. A group change
(failover, failback, membership) drops the candidates of that group's requirements.
"""

from __future__ import annotations

from collections.abc import Iterator

from core import stream as S
from core.agent import AgentState
from core.distribution import Candidates, Requirement, eligible
from core.group import GroupState
from ops.master.decisions import Decisions
from ops.master.index import MasterIndex
from projections.agents import AgentsProjection
from projections.groups import GroupsProjection
from projections.streams import StreamsProjection

__all__ = ["Placement"]

BUILD_SLICE = 500
"""Agents a new requirement's heap looks at per pass (~2 µs each)."""


class Placement:
    def __init__(self, index: MasterIndex, streams: StreamsProjection,
                 agents: AgentsProjection, groups: GroupsProjection | None = None) -> None:  # fmt: skip
        self.index = index
        self.streams = streams
        self.agents = agents
        self.groups = groups or GroupsProjection()
        self._candidates: dict[Requirement, Candidates] = {}
        self._unvisited: dict[Requirement, list[str]] = {}  # agents a new heap has yet to see
        agents.listeners.append(self._on_agent)
        self.groups.listeners.append(self._on_group)

    def _load(self, agent_id: str) -> int:
        return len(self.streams.by_agent.get(agent_id, ()))

    def _on_agent(self, _before: AgentState | None, after: AgentState) -> None:
        for req, c in self._candidates.items():
            if eligible(after, req, self.groups.get(req[1])):
                c.offer(after, self._load(after.agent_id))
            else:
                c.drop(after.agent_id)

    def _on_group(self, _before: GroupState | None, after: GroupState) -> None:
        for req in [r for r in self._candidates if r[1] == after.name]:
            del self._candidates[req]
            self._unvisited.pop(req, None)

    def candidates_for(self, req: Requirement) -> Candidates | None:
        """The candidates of ``req``; None while a new heap is still being built: each call
        looks at ``BUILD_SLICE`` more agents, so that 10,000 agents never stall the loop."""
        c = self._candidates.get(req)
        if c is None:
            c = self._candidates[req] = Candidates()
            self._unvisited[req] = list(self.agents.agents)
        todo = self._unvisited.get(req)
        if todo is not None:
            group = self.groups.get(req[1])
            agents = self.agents.agents
            for _ in range(min(BUILD_SLICE, len(todo))):
                a = agents.get(todo.pop())
                if a is not None and eligible(a, req, group):
                    c.offer(a, self._load(a.agent_id))
            if todo:
                return None
            del self._unvisited[req]
        return c

    def reset(self) -> None:
        self._candidates.clear()
        self._unvisited.clear()

    def _pending(self, req: Requirement) -> Iterator[tuple[str, int]]:
        streams = self.streams.streams
        for _, sid in self.streams.pending.get(req, ()):
            yield sid, streams[sid].version

    def decide(self, d: Decisions, now: float, budget: int) -> bool:
        """Place up to ``budget`` streams; True when more may be placeable right away."""
        index = self.index
        pending = self.streams.pending
        todo = index.placement & pending.keys()
        if index.freed:
            for req, c in self._candidates.items():
                for aid in index.freed:
                    agent = c.members.get(aid)
                    if agent is not None:
                        c.offer(agent, self._load(aid))
                        if req in pending:
                            todo.add(req)
        index.placement = set()
        index.freed = set()
        placed = 0
        more = False
        for req in [r for r in pending if r in todo]:  # in the projection's (stable) order
            if placed >= budget:
                index.placement.add(req)
                more = True
                continue
            heap = self.candidates_for(req)
            if heap is None:  # still being built: the next pass goes on
                index.placement.add(req)
                more = True
                continue
            if not heap:
                continue
            chosen = heap.take(self._pending(req), self._load, budget - placed)
            for a in chosen:
                state = self.streams.streams[a.stream_id]
                d.stream(state, S.AssignStream(stream_id=a.stream_id, at=now,
                                               cause=d.cause("stream.assign"), agent_id=a.agent_id))  # fmt: skip
            placed += len(chosen)
            if placed >= budget:
                index.placement.add(req)  # maybe more to place
                more = True
        return more
