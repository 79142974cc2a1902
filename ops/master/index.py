"""What the master has to look at, kept up to date as events are folded (never by a walk).

The projections call ``on_stream`` / ``on_agent`` for every change, and the heartbeat listener
``on_heartbeat`` for every heartbeat. While this manager is master they maintain:

- ``due``: a heap of (time, stream_id) when a stream rule may fire (``core.rules.stream_due``),
  with the latest time per stream in ``due_at`` (older heap entries are skipped lazily);
- ``agents_due``: the same for agents (``core.rules.agent_due``);
- ``recover``: not_ready agents that heartbeated (recovery is driven by the heartbeat);
- ``orphaned``: agents that went not_ready/gone and still hold streams (requeue them);
- ``placement``: requirements with a new pending stream (place from their candidates);
- ``freed``: agents that freed capacity or changed (registered, recovered): offered again to
  every requirement's candidates (``ops.master.placement``);
- ``notify``: agents whose set of assignments changed (tell them to poll);
- ``groups_due`` / ``groups_dirty``: redundancy groups whose rule may fire (a due time from
  ``core.redundancy.group_due``, or a change: the group, a member's agent or connection, a
  member becoming healthy);
- ``reconcile``: groups whose active member or membership changed: their streams held by
  agents that may no longer run them are requeued;
- ``disconnected``: agents whose NATS connection the server saw close (liveness, at once).

On election the master calls ``rebuild`` (a chunked walk that yields to the loop), because a
standby does not keep the heaps (its index is ``active`` only while master).
"""

from __future__ import annotations

import asyncio
import heapq
import math
import time
from collections.abc import Callable

from core.agent import AgentState
from core.distribution import Requirement, requirement_of
from core.group import GroupState
from core.stream import StreamState
from projections.agents import AgentsProjection
from projections.engine import freeze_heap
from projections.groups import GroupsProjection
from projections.streams import StreamsProjection

__all__ = ["MasterIndex"]

StreamDue = Callable[[StreamState, float], float]
AgentDue = Callable[[AgentState, float], float]

CHUNK = 100


def _nothing() -> None:
    return None


class MasterIndex:
    def __init__(self, streams: StreamsProjection, agents: AgentsProjection, *,
                 stream_due: StreamDue, agent_due: AgentDue,
                 groups: GroupsProjection | None = None,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.streams = streams
        self.agents = agents
        self.groups = groups or GroupsProjection()
        self.stream_due = stream_due
        self.agent_due = agent_due
        self.clock = clock
        self.active = False
        self.wake: Callable[[], None] = _nothing
        """Called when something needs the master at once (a connection closed)."""
        self._reset()
        streams.listeners.append(self.on_stream)
        agents.listeners.append(self.on_agent)
        self.groups.listeners.append(self.on_group)

    def _reset(self) -> None:
        self.due: list[tuple[float, str]] = []
        self.due_at: dict[str, float] = {}
        self.agents_due: list[tuple[float, str]] = []
        self.agent_due_at: dict[str, float] = {}
        self.recover: set[str] = set()
        self.orphaned: set[str] = set()
        self.placement: set[Requirement] = set()
        self.freed: set[str] = set()
        self.notify: set[str] = set()
        self.groups_due: list[tuple[float, str]] = []
        self.group_due_at: dict[str, float] = {}
        self.groups_dirty: set[str] = set()
        self.reconcile: set[str] = set()
        self.disconnected: set[str] = set()

    # ---- scheduling ----------------------------------------------------------------------------

    def schedule(self, state: StreamState, now: float | None = None, *,
                 not_before: float = 0.0) -> None:  # fmt: skip
        """Put ``state`` on the heap at its due time; a time already past becomes
        ``not_before`` (when given)."""
        now = self.clock() if now is None else now
        at = self.stream_due(state, now)
        if at <= now:
            at = max(at, not_before)
        sid = state.stream_id
        if math.isinf(at):
            self.due_at.pop(sid, None)
            return
        if self.due_at.get(sid) == at:
            return
        self.due_at[sid] = at
        heapq.heappush(self.due, (at, sid))
        if len(self.due) > 2 * len(self.due_at) + 10_000:
            self.due = [(t, s) for s, t in self.due_at.items()]
            heapq.heapify(self.due)

    def schedule_agent(self, agent: AgentState, now: float | None = None) -> None:
        at = self.agent_due(agent, self.clock() if now is None else now)
        aid = agent.agent_id
        if math.isinf(at):
            self.agent_due_at.pop(aid, None)
            return
        if self.agent_due_at.get(aid) == at:
            return
        self.agent_due_at[aid] = at
        heapq.heappush(self.agents_due, (at, aid))

    def schedule_group(self, name: str, at: float) -> None:
        if math.isinf(at):
            self.group_due_at.pop(name, None)
            return
        if self.group_due_at.get(name) == at:
            return
        self.group_due_at[name] = at
        heapq.heappush(self.groups_due, (at, name))

    def pop_groups_due(self, now: float) -> set[str]:
        """Groups due now and groups that changed (both sets are emptied)."""
        out, self.groups_dirty = self.groups_dirty, set()
        heap, due_at = self.groups_due, self.group_due_at
        while heap and heap[0][0] <= now:
            at, name = heapq.heappop(heap)
            if due_at.get(name) == at:
                del due_at[name]
                out.add(name)
        return out

    def pop_due(self, now: float, limit: int) -> list[str]:
        """Streams whose due time has come (at most ``limit``), removed from the heap."""
        out: list[str] = []
        heap, due_at = self.due, self.due_at
        while heap and heap[0][0] <= now and len(out) < limit:
            at, sid = heapq.heappop(heap)
            if due_at.get(sid) == at:
                del due_at[sid]
                out.append(sid)
        return out

    def pop_agents_due(self, now: float) -> list[str]:
        out: list[str] = []
        heap, due_at = self.agents_due, self.agent_due_at
        while heap and heap[0][0] <= now:
            at, aid = heapq.heappop(heap)
            if due_at.get(aid) == at:
                del due_at[aid]
                out.append(aid)
        return out

    # ---- listeners -----------------------------------------------------------------------------

    def on_stream(self, before: StreamState | None, after: StreamState) -> None:
        if not self.active:
            return
        self.schedule(after)
        if after.status == "pending" and after.agent_id is None:
            self.placement.add(requirement_of(after))
        old = before.agent_id if before is not None and before.is_live else None
        new = after.agent_id if after.is_live else None
        if old is not None and (new != old or not after.is_live):
            self.notify.add(old)
            self.freed.add(old)
        if new is not None and (old != new or (before is not None
                                               and before.assignment_version != after.assignment_version)):  # fmt: skip
            self.notify.add(new)
            holder = self.agents.agents.get(new)
            if holder is None or holder.status != "ready":
                self.orphaned.add(new)

    def on_agent(self, before: AgentState | None, after: AgentState) -> None:
        if not self.active:
            return
        self.schedule_agent(after)
        if after.status == "ready":
            self.freed.add(after.agent_id)
        if after.status != "ready" and self.streams.by_agent.get(after.agent_id):
            self.orphaned.add(after.agent_id)
        if before is None or before.status != after.status or before.name != after.name:
            self.groups_dirty |= self.groups.by_member.get(after.name, set())

    def on_group(self, before: GroupState | None, after: GroupState) -> None:
        if not self.active:
            return
        name = after.name
        self.groups_dirty.add(name)
        self.reconcile.add(name)
        self.placement |= {req for req in self.streams.pending if req[1] == name}
        if before is None or before.config != after.config or after.deleted:
            for m in after.config.members:  # keep-alives may have changed: poll, learn them
                self.notify |= self.agents.by_name.get(m.agent, set())

    def on_connection(self, name: str, connected: bool) -> None:
        """The server saw an agent's connection open or close (``ops.commands.connections``)."""
        if not self.active:
            return
        self.groups_dirty |= self.groups.by_member.get(name, set())
        if not connected:
            self.disconnected |= self.agents.by_name.get(name, set())
            self.wake()

    def on_healthy(self, name: str) -> None:
        """A member just became healthy (``ops.master.health``): its groups may fail back."""
        if not self.active:
            return
        self.groups_dirty |= self.groups.by_member.get(name, set())

    def on_heartbeat(self, agent_id: str, _mono: float) -> None:
        if not self.active:
            return
        agent = self.agents.agents.get(agent_id)
        if agent is not None and agent.status == "not_ready":
            self.recover.add(agent_id)

    # ---- election ------------------------------------------------------------------------------

    async def rebuild(self) -> None:
        """Index every stream and agent (chunked: yields to the loop every `CHUNK` items)."""
        freeze_heap()
        self._reset()
        self.active = True
        now = self.clock()
        for i, agent in enumerate(list(self.agents.agents.values())):
            self.schedule_agent(agent, now)
            if agent.status != "ready" and self.streams.by_agent.get(agent.agent_id):
                self.orphaned.add(agent.agent_id)
            if i % CHUNK == CHUNK - 1:
                await asyncio.sleep(0)
        for aid in list(self.streams.by_agent):
            holder = self.agents.agents.get(aid)
            if holder is None or holder.status != "ready":
                self.orphaned.add(aid)
        states = list(self.streams.streams.values())
        for i in range(0, len(states), CHUNK):
            for state in states[i : i + CHUNK]:
                if state.status != "deleted":
                    self.schedule(state, now)
            await asyncio.sleep(0)
        self.placement = set(self.streams.pending)
        self.notify = set(self.streams.by_agent)
        live = {g.name for g in self.groups.live()}
        self.groups_dirty |= live
        self.reconcile |= live
        freeze_heap()

    def deactivate(self) -> None:
        self.active = False
        self._reset()
