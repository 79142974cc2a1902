"""Current state of every agent, folded with ``core.agent.evolve``."""

from __future__ import annotations

from typing import Any

import msgspec

from core import agent as core_agent
from core.agent import AgentState
from events.model import AgentEvent, Event
from projections.blob import decode_blob, encode_blob, entity_dump

__all__ = ["AgentsProjection"]

_SNAPSHOT_V = 1


class _Snapshot(msgspec.Struct, frozen=True):
    v: int
    agents: dict[str, AgentState]
    last_seq: dict[str, int]


class AgentsProjection:
    name = "agents"
    kinds = ("agent",)

    def __init__(self) -> None:
        self.agents: dict[str, AgentState] = {}
        self.last_seq: dict[str, int] = {}
        self.ignored = 0

    def apply(self, seq: int, aggregate: str, event: Event) -> None:
        if not isinstance(event, AgentEvent):
            self.ignored += 1
            return
        after = core_agent.evolve(self.agents.get(event.agent_id), event)
        self.last_seq[event.agent_id] = seq
        if after is None:
            self.ignored += 1
            return
        self.agents[event.agent_id] = after

    def get(self, agent_id: str) -> AgentState | None:
        state = self.agents.get(agent_id)
        return None if state is None or state.status == "gone" else state

    def seq_of(self, agent_id: str) -> int:
        return self.last_seq.get(agent_id, 0)

    def active(self) -> dict[str, AgentState]:
        return {k: v for k, v in self.agents.items() if v.status != "gone"}

    # ---- snapshots (projections.snapshot) and verify (ops.verify) ------------------------------

    def snapshot(self) -> bytes:
        return encode_blob(_Snapshot(_SNAPSHOT_V, self.agents, self.last_seq))

    def restore(self, data: bytes) -> None:
        """Replace the state by a snapshot blob; ``SnapshotError`` leaves it unchanged."""
        snap = decode_blob(data, _Snapshot, _SNAPSHOT_V)
        self.agents, self.last_seq = dict(snap.agents), dict(snap.last_seq)

    def reset(self) -> None:
        self.agents, self.last_seq, self.ignored = {}, {}, 0

    def dump(self) -> dict[str, Any]:
        return entity_dump(self.agents, self.last_seq)
