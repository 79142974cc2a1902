"""Current state of every agent, folded with ``core.agent.evolve``.

Also kept up to date per event (so command handlers never walk all agents): ``offers``, the
newest registered offer of each analytic among agents that have not left, ``by_name`` (agent
name → ids of the agents registered under it that have not left: groups name their members),
and ``listeners`` that hear every change as ``(before, after)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from core import agent as core_agent
from core.agent import AgentState
from events.model import AgentEvent, AnalyticOffer, Event
from projections.blob import decode_blob, encode_blob, entity_dump

__all__ = ["AgentListener", "AgentsProjection"]

AgentListener = Callable[[AgentState | None, AgentState], None]

_SNAPSHOT_V = 1


class _Snapshot(msgspec.Struct, frozen=True):
    v: int
    agents: dict[str, AgentState]
    last_seq: dict[str, int]


class AgentsProjection:
    name = "agents"
    kinds: tuple[str, ...] = ("agent",)

    def __init__(self) -> None:
        self.listeners: list[AgentListener] = []
        self._clear()

    def _clear(self) -> None:
        self.agents: dict[str, AgentState] = {}
        self.last_seq: dict[str, int] = {}
        self.ignored = 0
        self.offers: dict[str, AnalyticOffer] = {}
        self._offerers: dict[str, set[str]] = {}
        self.by_name: dict[str, set[str]] = {}

    def apply(self, seq: int, aggregate: str, event: Event) -> None:
        if not isinstance(event, AgentEvent):
            self.ignored += 1
            return
        before = self.agents.get(event.agent_id)
        after = core_agent.evolve(before, event)
        self.last_seq[event.agent_id] = seq
        if after is None:
            self.ignored += 1
            return
        if after is before:
            return
        self.agents[event.agent_id] = after
        self._index(before, after)
        for listener in self.listeners:
            listener(before, after)

    def _index(self, before: AgentState | None, after: AgentState) -> None:
        names: set[str] = set()
        aid = after.agent_id
        if before is not None and before.status != "gone":
            held = self.by_name.get(before.name)
            if held is not None:
                held.discard(aid)
                if not held:
                    del self.by_name[before.name]
            for offer in before.analytics:
                self._offerers.get(offer.name, set()).discard(aid)
                names.add(offer.name)
        if after.status != "gone":
            self.by_name.setdefault(after.name, set()).add(aid)
            for offer in after.analytics:
                self._offerers.setdefault(offer.name, set()).add(aid)
                names.add(offer.name)
        for name in names:
            self._newest(name)

    def _newest(self, name: str) -> None:
        best: tuple[float, AnalyticOffer] | None = None
        for aid in self._offerers.get(name, ()):
            agent = self.agents[aid]
            for offer in agent.analytics:
                if offer.name == name and (best is None or agent.updated_at > best[0]):
                    best = (agent.updated_at, offer)
        if best is None:
            self.offers.pop(name, None)
            self._offerers.pop(name, None)
        else:
            self.offers[name] = best[1]

    def get(self, agent_id: str) -> AgentState | None:
        state = self.agents.get(agent_id)
        return None if state is None or state.status == "gone" else state

    def seq_of(self, agent_id: str) -> int:
        return self.last_seq.get(agent_id, 0)

    def named(self, name: str) -> list[AgentState]:
        """The agents registered as ``name`` that have not left."""
        return [self.agents[aid] for aid in sorted(self.by_name.get(name, ()))]

    def active(self) -> dict[str, AgentState]:
        return {k: v for k, v in self.agents.items() if v.status != "gone"}

    # ---- snapshots (projections.snapshot) and verify (ops.logtools.verify) ------------------------------

    def snapshot(self) -> bytes:
        return encode_blob(_Snapshot(_SNAPSHOT_V, self.agents, self.last_seq))

    def restore(self, data: bytes) -> None:
        """Replace the state by a snapshot blob; ``SnapshotError`` leaves it unchanged."""
        snap = decode_blob(data, _Snapshot, _SNAPSHOT_V)
        listeners = self.listeners
        self._clear()
        self.listeners = listeners
        self.agents, self.last_seq = dict(snap.agents), dict(snap.last_seq)
        for agent in self.agents.values():
            self._index(None, agent)

    def reset(self) -> None:
        listeners = self.listeners
        self._clear()
        self.listeners = listeners

    def dump(self) -> dict[str, Any]:
        return entity_dump(self.agents, self.last_seq)
