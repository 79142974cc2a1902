"""Master duty: the life of each stream after placement — restarts with backoff, requeues of
stale or never-started streams, the restart counter reset after sustained health, and the
streams of agents that went down or left.

Looks only at streams whose due time came (``MasterIndex.due``) and at agents in
``MasterIndex.orphaned``; the rules are ``core.rules.stream_rule``.
"""

from __future__ import annotations

import random

from core import stream as S
from core.rules import stream_rule
from ops.master.decisions import Decisions
from ops.master.election import Reign
from ops.master.index import MasterIndex
from projections.agents import AgentsProjection
from projections.streams import StreamsProjection

__all__ = ["Lifecycle"]

RECHECK_S = 1.0
"""A stream due now about which nothing could be decided is looked at again this much later."""


class Lifecycle:
    def __init__(self, index: MasterIndex, streams: StreamsProjection, agents: AgentsProjection,
                 last_feedback: dict[str, float], *, default_staleness_s: float,
                 start_deadline_s: float | None) -> None:  # fmt: skip
        self.index = index
        self.streams = streams
        self.agents = agents
        self.last_feedback = last_feedback
        self.default_staleness_s = default_staleness_s
        self.start_deadline_s = start_deadline_s
        self._rng = random.Random()

    def decide(self, d: Decisions, reign: Reign, now: float, budget: int) -> bool:
        """Decide what is due (at most ``budget`` streams); True when more is due already."""
        for sid in self.index.pop_due(now, budget):
            state = self.streams.streams.get(sid)
            if state is None or state.status == "deleted":
                continue
            cmd = stream_rule(
                state, now=now, last_feedback=self.last_feedback.get(sid),
                reign_since=reign.since, default_staleness_s=self.default_staleness_s,
                start_deadline_s=self.start_deadline_s, jitter=self._rng.random(),
                cause=d.cause,
            )  # fmt: skip
            if cmd is None or not d.stream(state, cmd):
                # Nothing was decided: look again later, never in this same pass (a rule that
                # says "due" but decides nothing would otherwise spin the master).
                self.index.schedule(state, now, not_before=now + RECHECK_S)
        self._orphans(d, now)
        heap = self.index.due
        return bool(heap) and heap[0][0] <= now

    def _orphans(self, d: Decisions, now: float) -> None:
        for aid in sorted(self.index.orphaned):
            agent = self.agents.agents.get(aid)
            if agent is not None and agent.status == "ready":
                continue
            reason = "agent_left" if agent is None or agent.status == "gone" else "agent_down"
            for state in self.streams.assigned_to(aid):
                d.stream(state, S.RequeueStream(stream_id=state.stream_id, at=now,
                                                cause=d.cause("stream.requeue"), reason=reason))  # fmt: skip
        self.index.orphaned.clear()
