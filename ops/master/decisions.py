"""A batch of master decisions: decided with the pure core, appended fenced by the loop.

Each decision gets the msg id ``<EventType>:<id>:<version>:<i>``: a retried batch (or a master
that decides the same thing twice) is stored once.
"""

from __future__ import annotations

from core import agent as A
from core import group as G
from core import stream as S
from core.errors import DomainError
from events.model import Cause, Event
from events.store import Append

__all__ = ["Decisions"]


class Decisions:
    def __init__(self, *, manager_id: str, epoch: int) -> None:
        self.manager_id = manager_id
        self.epoch = epoch
        self.items: list[Append] = []

    def cause(self, name: str) -> Cause:
        return Cause(kind="master", name=name, manager_id=self.manager_id, epoch=self.epoch)

    def stream(self, state: S.StreamState, cmd: S.StreamCommand) -> bool:
        """Decide ``cmd`` on ``state``; False when it no longer applies."""
        try:
            events: list[Event] = list(S.decide(state, cmd))
        except DomainError:
            return False
        for i, event in enumerate(events):
            mid = f"{type(event).__name__}:{state.stream_id}:{state.version}:{i}"
            self.items.append(Append(f"stream.{state.stream_id}", event, msg_id=mid))
        return bool(events)

    def agent(self, state: A.AgentState, cmd: A.AgentCommand) -> bool:
        try:
            events: list[Event] = list(A.decide(state, cmd))
        except DomainError:
            return False
        for i, event in enumerate(events):
            mid = f"{type(event).__name__}:{state.agent_id}:{state.version}:{i}"
            self.items.append(Append(f"agent.{state.agent_id}", event, msg_id=mid))
        return bool(events)

    def group(self, state: G.GroupState, cmd: G.GroupCommand) -> bool:
        try:
            events: list[Event] = list(G.decide(state, cmd))
        except DomainError:
            return False
        for i, event in enumerate(events):
            mid = f"{type(event).__name__}:{state.name}:{state.version}:{i}"
            self.items.append(Append(f"group.{state.name}", event, msg_id=mid))
        return bool(events)

    def take(self) -> list[Append]:
        items, self.items = self.items, []
        return items
