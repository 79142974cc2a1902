"""Why pending streams wait, for the views and ``/metrics`` of any manager.

The reason is a pure function of folded state (``core.distribution.why_waiting``: agents, their
load, the stream's group object), the same function the master evaluates for its capacity and
unplaceable alarms. Every manager folds the same log, so every manager answers the same reason
without the master storing anything: no event per reason change, nothing to replicate. Reasons
are cached per requirement until the next event is folded.
"""

from __future__ import annotations

from collections.abc import Callable

from core.distribution import Requirement, Waiting, requirement_of, why_waiting
from core.stream import StreamState
from projections.agents import AgentsProjection
from projections.groups import GroupsProjection
from projections.streams import StreamsProjection

__all__ = ["WaitingReasons"]


class WaitingReasons:
    def __init__(self, streams: StreamsProjection, agents: AgentsProjection,
                 groups: GroupsProjection, last_seq: Callable[[], int]) -> None:  # fmt: skip
        self.streams = streams
        self.agents = agents
        self.groups = groups
        self.last_seq = last_seq
        self._cache: dict[Requirement, Waiting] = {}
        self._at = -1

    def for_requirement(self, req: Requirement) -> Waiting:
        seq = self.last_seq()
        if seq != self._at:
            self._cache.clear()
            self._at = seq
        found = self._cache.get(req)
        if found is None:
            found = why_waiting(req, self.agents.agents.values(), self.streams.load_of,
                                self.groups.get(req[1]))  # fmt: skip
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
