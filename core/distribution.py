"""Distribution: which pending stream goes to which agent. Pure.

Pending, unassigned streams are taken in creation order. A stream may go to a ``ready`` agent (not
being drained for a scale-in) that
offers every analytic it asks for, belongs to its group (any agent when it has none), and has a
free slot. A stream's group is either a *group object* (``core.group``: a pool of member agents,
or an ``active_standby`` group whose active member alone runs its streams) or, when no group of
that name exists, a label that agents carry in their ``groups``. Among those, the agent with the largest share of free slots wins (LUNA's "percent"),
then the one with more free slots, then the smaller agent_id. Running streams never move.

Agents with the same offer are interchangeable for a stream, so candidates are kept in one heap per
stream requirement (``Candidates``, which the master keeps from pass to pass and ``plan`` builds
for one pass over everything); entries whose load changed since they were pushed are re-ranked
lazily.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Iterable, Mapping

import msgspec

from core.agent import AgentState
from core.group import GroupState
from core.stream import StreamState

__all__ = [
    "Assignment",
    "Candidates",
    "Requirement",
    "Waiting",
    "eligible",
    "in_group",
    "load_of",
    "plan",
    "requirement_of",
    "why_waiting",
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


def in_group(agent: AgentState, name: str | None, group: GroupState | None) -> bool:
    """Does ``agent`` serve group ``name`` (its group object ``group``, None for a label)?"""
    if name is None:
        return True
    if group is None or group.deleted:
        return name in agent.groups
    if group.is_redundant:
        return group.active is not None and agent.name == group.active
    return name in agent.groups or group.member(agent.name) is not None


def eligible(agent: AgentState, req: Requirement, group: GroupState | None = None) -> bool:
    """Can ``agent`` run streams of requirement ``req`` (capacity aside)? ``group`` is the group
    object the requirement's group names (None: it is a label)."""
    names, name = req
    return (agent.status == "ready" and agent.draining is None and agent.offers(names)
            and in_group(agent, name, group))  # fmt: skip


class Waiting(msgspec.Struct, frozen=True):
    """Why unassigned pending streams of one requirement wait: a code and a sentence."""

    code: str
    """``no_offer``, ``no_agent_in_group``, ``no_ready_agent``, ``no_active_member``,
    ``active_not_ready``, ``capacity``, or ``placing`` (an agent has a free slot: the master's
    next pass places it)."""
    message: str


def why_waiting(
    req: Requirement,
    agents: Iterable[AgentState],
    load: Callable[[str], int],
    group: GroupState | None = None,
    *,
    offered: frozenset[str] | None = None,
) -> Waiting:
    """Why a pending, unassigned stream of requirement ``req`` is not placed. Pure; one pass over
    ``agents``: every agent, or (with ``offered``, every analytic any agent offers) at least the
    agents of the stream's group — its members and the agents carrying its label."""
    names, name = req
    known = [a for a in agents if a.status != "gone"]
    if offered is None:
        offered = frozenset(o.name for a in known for o in a.analytics)
    missing = sorted(names - offered)
    if missing:
        return Waiting("no_offer", f"no agent offers {', '.join(missing)}")
    serving = [a for a in known if a.offers(names) and in_group(a, name, group)]
    ready = [a for a in serving if a.status == "ready" and a.draining is None]
    where = f" in group {name}" if name is not None else ""
    if group is not None and not group.deleted and group.is_redundant:
        head = f"group {name}: "
        if group.active is None:
            members = ", ".join(m.agent for m in group.members_by_priority())
            return Waiting("no_active_member", f"{head}no member is ready ({members})")
        if not ready:
            others = [m.agent for m in group.members_by_priority() if m.agent != group.active
                      and any(a.name == m.agent and a.status == "ready" for a in known)]  # fmt: skip
            tail = f"standby {others[0]} ready, failing over" if others else "no standby"
            return Waiting("active_not_ready",
                           f"{head}active member {group.active} not ready, {tail}")  # fmt: skip
        free, total = _free(ready, load)
        if free <= 0:
            return Waiting("capacity", f"{head}capacity: 0 free of {total} on active member"
                           f" {group.active}")  # fmt: skip
        return Waiting("placing", f"{head}{group.active} has {free} free; placing")
    if not serving:
        if name is not None:
            return Waiting("no_agent_in_group", f"no agent serves group {name}")
        return Waiting("no_ready_agent", "no agent registered")
    if not ready:
        return Waiting("no_ready_agent", f"no ready agent{where}")
    free, total = _free(ready, load)
    if free <= 0:
        return Waiting("capacity", f"capacity: 0 free of {total}{where}")
    return Waiting("placing", f"{free} free slot(s){where}; placing")


def _free(agents: list[AgentState], load: Callable[[str], int]) -> tuple[int, int]:
    total = sum(a.capacity for a in agents)
    used = sum(min(load(a.agent_id), a.capacity) for a in agents)
    return total - used, total


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
    heaps: dict[Requirement, Candidates] = {}
    out: list[Assignment] = []
    for stream in pending:
        req = requirement_of(stream)
        heap = heaps.get(req)
        if heap is None:
            heap = heaps[req] = Candidates()
            for a in agents.values():
                if eligible(a, req):
                    heap.offer(a, current[a.agent_id])
        got = heap.take(((stream.stream_id, stream.version),), current.__getitem__, 1)
        if got:
            out.append(got[0])
            current[got[0].agent_id] += 1
    return out


class Candidates:
    """The agents eligible for one requirement, best first (`_key`), kept from pass to pass.

    A heap with lazy entries: an agent is queued at the key of the load it had when offered;
    ``take`` re-ranks an entry whose load moved since (a placement by someone else made it too
    optimistic), and drops agents that are full or no longer members. Load that *falls* (a stream
    ends) is told with ``offer``. So a pass costs O(placed × log agents), not a walk over every
    eligible agent. Pure: the caller owns the projections and passes ``load``.
    """

    __slots__ = ("_heap", "_queued", "members")

    def __init__(self) -> None:
        self.members: dict[str, AgentState] = {}
        self._heap: list[tuple[tuple[float, int, str], str]] = []
        self._queued: dict[str, tuple[float, int, str]] = {}  # agent → key of its live entry

    def __len__(self) -> int:
        """Agents queued (with a free slot when last seen)."""
        return len(self._queued)

    def offer(self, agent: AgentState, load: int) -> bool:
        """``agent`` is eligible and carries ``load``: queue it at that rank if it has a free slot.
        True when it was (re)queued."""
        aid = agent.agent_id
        self.members[aid] = agent
        if agent.capacity <= load:
            return False
        key = _key(agent, load)
        if self._queued.get(aid) == key:
            return False
        self._queued[aid] = key
        heapq.heappush(self._heap, (key, aid))
        if len(self._heap) > 2 * len(self._queued) + 64:  # stale entries: compact
            self._heap = [(k, a) for a, k in self._queued.items()]
            heapq.heapify(self._heap)
        return True

    def drop(self, agent_id: str) -> None:
        """``agent_id`` is no longer eligible."""
        self.members.pop(agent_id, None)
        self._queued.pop(agent_id, None)

    def take(
        self, pending: Iterable[tuple[str, int]], load: Callable[[str], int], limit: int
    ) -> list[Assignment]:
        """Assignments for ``pending`` (``(stream_id, version)`` in creation order), at most
        ``limit``: each to the best agent with a free slot, as in `plan`. ``load`` is each
        agent's load before this call."""
        heap, queued, members = self._heap, self._queued, self.members
        extra: dict[str, int] = {}
        out: list[Assignment] = []
        for stream_id, version in pending:
            if len(out) >= limit:
                break
            chosen: AgentState | None = None
            used = 0
            while heap:
                key, aid = heap[0]
                agent = members.get(aid)
                if agent is None or queued.get(aid) != key:
                    heapq.heappop(heap)  # stale: the agent left, or was queued again since
                    continue
                used = load(aid) + extra.get(aid, 0)
                if used >= agent.capacity:
                    heapq.heappop(heap)
                    del queued[aid]
                    continue
                now_key = _key(agent, used)
                if now_key != key:
                    queued[aid] = now_key
                    heapq.heapreplace(heap, (now_key, aid))
                    continue
                heapq.heappop(heap)
                del queued[aid]
                chosen = agent
                break
            if chosen is None:
                break
            aid = chosen.agent_id
            out.append(Assignment(stream_id, aid, version))
            extra[aid] = extra.get(aid, 0) + 1
            if used + 1 < chosen.capacity:
                key = _key(chosen, used + 1)
                queued[aid] = key
                heapq.heappush(heap, (key, aid))
        return out
