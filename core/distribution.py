"""Distribution: which pending stream goes to which agent. Pure.

Pending, unassigned streams are taken in creation order. A stream may go to a ``ready`` agent that
offers every analytic it asks for, belongs to its group (any agent when it has none), and has a
free slot. Among those, the agent with the largest share of free slots wins (LUNA's "percent"),
then the one with more free slots, then the smaller agent_id. Running streams never move.

Agents with the same offer are interchangeable for a stream, so candidates are kept in one heap per
stream requirement; entries whose load changed since they were pushed are re-pushed lazily (load
only grows while planning, so a stale entry can only be too optimistic).
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable, Mapping

import msgspec

from core.agent import AgentState
from core.stream import StreamState

__all__ = [
    "Assignment",
    "Requirement",
    "eligible",
    "load_of",
    "place",
    "plan",
    "requirement_of",
]


class Assignment(msgspec.Struct, frozen=True):
    stream_id: str
    agent_id: str
    base_version: int


Requirement = tuple[frozenset[str], str | None]


def load_of(streams: Iterable[StreamState]) -> Counter[str]:
    """Streams counting against each agent's capacity (assigned and not finished)."""
    return Counter(s.agent_id for s in streams if s.is_live and s.agent_id is not None)


def requirement_of(stream: StreamState) -> Requirement:
    """What an agent must offer to run ``stream``: its analytics' names and its group."""
    return frozenset(a.name for a in stream.analytics), stream.group


def eligible(agent: AgentState, req: Requirement) -> bool:
    """Can ``agent`` run streams of requirement ``req`` (capacity aside)?"""
    names, group = req
    return (
        agent.status == "ready" and agent.offers(names) and (group is None or group in agent.groups)
    )


def _key(agent: AgentState, load: int) -> tuple[float, int, str]:
    free = agent.capacity - load
    return (-(free / agent.capacity) if agent.capacity else 0.0, -free, agent.agent_id)


def plan(
    streams: Iterable[StreamState],
    agents: Mapping[str, AgentState],
    load: Mapping[str, int] | None = None,
) -> list[Assignment]:
    """Assignments for every pending stream that can be placed now."""
    all_streams = list(streams)
    current = Counter(load) if load is not None else load_of(all_streams)
    pending = sorted(
        (s for s in all_streams if s.status == "pending" and s.agent_id is None),
        key=lambda s: (s.created_at, s.stream_id),
    )
    heaps: dict[Requirement, list[tuple[tuple[float, int, str], int, str]]] = {}
    out: list[Assignment] = []
    for stream in pending:
        req = requirement_of(stream)
        heap = heaps.get(req)
        if heap is None:
            heap = [
                (_key(a, current[a.agent_id]), current[a.agent_id], a.agent_id)
                for a in agents.values()
                if eligible(a, req) and a.capacity > current[a.agent_id]
            ]
            heapq.heapify(heap)
            heaps[req] = heap
        while heap:
            _, seen_load, agent_id = heap[0]
            agent = agents[agent_id]
            now_load = current[agent_id]
            if now_load != seen_load:
                if now_load >= agent.capacity:
                    heapq.heappop(heap)
                else:
                    heapq.heapreplace(heap, (_key(agent, now_load), now_load, agent_id))
                continue
            heapq.heappop(heap)
            out.append(Assignment(stream.stream_id, agent_id, stream.version))
            current[agent_id] = now_load + 1
            if now_load + 1 < agent.capacity:
                heapq.heappush(heap, (_key(agent, now_load + 1), now_load + 1, agent_id))
            break
    return out


def place(
    pending: Iterable[tuple[str, int]],
    candidates: Iterable[AgentState],
    load: Mapping[str, int],
    *,
    limit: int | None = None,
) -> list[Assignment]:
    """Assignments for streams of *one* requirement: ``pending`` are ``(stream_id, version)`` in
    creation order, ``candidates`` the agents eligible for that requirement, ``load`` their
    current load. Same rule as `plan`; stops after ``limit`` assignments (the caller yields to
    its event loop between chunks) or when no candidate has a free slot. Pure."""
    current = dict(load)
    heap = [
        (_key(a, current.get(a.agent_id, 0)), a)
        for a in candidates
        if a.capacity > current.get(a.agent_id, 0)
    ]
    heapq.heapify(heap)
    out: list[Assignment] = []
    for stream_id, version in pending:
        if not heap or (limit is not None and len(out) >= limit):
            break
        _, agent = heapq.heappop(heap)
        used = current.get(agent.agent_id, 0) + 1
        current[agent.agent_id] = used
        out.append(Assignment(stream_id, agent.agent_id, version))
        if used < agent.capacity:
            heapq.heappush(heap, (_key(agent, used), agent))
    return out
