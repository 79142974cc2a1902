"""Why pending streams wait, for the views, ``/metrics`` and the master's alarms.

The reason is a pure function of folded state (``core.distribution.why_waiting``: agents, their
load, the stream's group object). Every manager folds the same log, so every manager answers the
same reason without the master storing anything: no event per reason change, nothing to
replicate. Each requirement looks only at the agents of its group (members by name, agents
carrying its label), through an index rebuilt when an agent or a group changes, so a fleet of
many groups costs O(agents + members), not O(groups × agents).

Reasons are cached per requirement until an agent or a group changes, and for at most
``LOAD_TTL_S`` while only the load moves (streams placed or ended): the free slots a reason
quotes may be that old. Recomputing them on every folded event cost half of each
``stream.create`` with 1,000 agents (a walk over every agent per create).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from core.agent import AgentState
from core.distribution import Requirement, Waiting, requirement_of, why_waiting
from core.stream import StreamState
from projections.agents import AgentsProjection
from projections.groups import GroupsProjection
from projections.streams import StreamsProjection

__all__ = ["LOAD_TTL_S", "WaitingReasons"]

LOAD_TTL_S = 1.0
"""How long a reason is reused while only the load changes."""


class WaitingReasons:
    def __init__(self, streams: StreamsProjection, agents: AgentsProjection,
                 groups: GroupsProjection,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.streams = streams
        self.agents = agents
        self.groups = groups
        self.clock = clock
        self._cache: dict[Requirement, Waiting] = {}
        self._labels: dict[str, list[AgentState]] = {}
        self._all: list[AgentState] = []
        self._offered: frozenset[str] = frozenset()
        self._changes = 0  # agent and group changes heard
        self._seen: tuple[int, int, int] | None = None
        self._cached_at = 0.0
        agents.listeners.append(self._changed)
        groups.listeners.append(self._changed)

    def _changed(self, before: object, after: object) -> None:
        self._changes += 1

    def _refresh(self) -> None:
        # (a restored snapshot replaces the projections' dicts without telling the listeners)
        seen = (self._changes, id(self.agents.agents), id(self.groups.groups))
        now = self.clock()
        if seen == self._seen:
            if now - self._cached_at > LOAD_TTL_S:
                self._cache.clear()
                self._cached_at = now
            return
        self._seen = seen
        self._cached_at = now
        self._cache.clear()
        self._all = [a for a in self.agents.agents.values() if a.status != "gone"]
        self._labels = {}
        offered: set[str] = set()
        for a in self._all:
            offered.update(o.name for o in a.analytics)
            for label in a.groups:
                self._labels.setdefault(label, []).append(a)
        self._offered = frozenset(offered)

    def _candidates(self, name: str | None) -> list[AgentState]:
        if name is None:
            return self._all
        found = {a.agent_id: a for a in self._labels.get(name, ())}
        group = self.groups.get(name)
        if group is not None:
            for m in group.config.members:
                for a in self.agents.named(m.agent):
                    found[a.agent_id] = a
        return list(found.values())

    def for_requirement(self, req: Requirement, *, fresh: bool = False) -> Waiting:
        """Why streams of ``req`` wait; ``fresh``: with the load as it is now, not as it was up
        to ``LOAD_TTL_S`` ago (the master's alarms, which look once a second)."""
        self._refresh()
        found = None if fresh else self._cache.get(req)
        if found is None:
            found = why_waiting(req, self._candidates(req[1]), self.streams.load_of,
                                self.groups.get(req[1]), offered=self._offered)  # fmt: skip
            self._cache[req] = found
        return found

    def for_stream(self, state: StreamState) -> Waiting | None:
        """Why ``state`` waits, if it is pending and unassigned (else None)."""
        if state.status != "pending" or state.agent_id is not None:
            return None
        return self.for_requirement(requirement_of(state))

    def summary(self) -> list[tuple[Requirement, Waiting, int]]:
        """Every requirement with waiting streams: its reason and how many wait."""
        return [(req, self.for_requirement(req), len(queue))
                for req, queue in list(self.streams.pending.items())]  # fmt: skip
