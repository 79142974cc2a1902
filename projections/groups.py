"""Current state of every group, folded with ``core.group.evolve``, with the indexes the master
and the views need without a walk:

- ``by_member``: agent name → the groups it is a member of (N:1: one agent, many groups);
- ``listeners`` hear every change as ``(before, after)``.

Deleted groups are kept as ``deleted`` (a name may be created again later).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from core import group as core_group
from core.group import GroupState
from events.model import Event, GroupEvent
from projections.blob import decode_blob, encode_blob, entity_dump

__all__ = ["GroupListener", "GroupsProjection"]

GroupListener = Callable[[GroupState | None, GroupState], None]

_SNAPSHOT_V = 1


class _Snapshot(msgspec.Struct, frozen=True):
    v: int
    groups: dict[str, GroupState]
    last_seq: dict[str, int]


class GroupsProjection:
    name = "groups"
    kinds: tuple[str, ...] = ("group",)

    def __init__(self) -> None:
        self.listeners: list[GroupListener] = []
        self._clear()

    def _clear(self) -> None:
        self.groups: dict[str, GroupState] = {}
        self.last_seq: dict[str, int] = {}
        self.ignored = 0
        self.by_member: dict[str, set[str]] = {}

    def apply(self, seq: int, aggregate: str, event: Event) -> None:
        if not isinstance(event, GroupEvent):
            self.ignored += 1
            return
        before = self.groups.get(event.group)
        after = core_group.evolve(before, event)
        self.last_seq[event.group] = seq
        if after is None:
            self.ignored += 1
            return
        if after is before:
            return
        self.groups[event.group] = after
        self._index(before, after)
        for listener in self.listeners:
            listener(before, after)

    def _index(self, before: GroupState | None, after: GroupState) -> None:
        if before is not None and not before.deleted:
            for m in before.config.members:
                held = self.by_member.get(m.agent)
                if held is not None:
                    held.discard(before.name)
                    if not held:
                        del self.by_member[m.agent]
        if not after.deleted:
            for m in after.config.members:
                self.by_member.setdefault(m.agent, set()).add(after.name)

    # ---- reads ---------------------------------------------------------------------------------

    def get(self, name: str | None) -> GroupState | None:
        if name is None:
            return None
        state = self.groups.get(name)
        return None if state is None or state.deleted else state

    def seq_of(self, name: str) -> int:
        return self.last_seq.get(name, 0)

    def live(self) -> list[GroupState]:
        return sorted((g for g in self.groups.values() if not g.deleted), key=lambda g: g.name)

    def of_member(self, agent_name: str) -> list[GroupState]:
        """The groups ``agent_name`` is a member of, by name."""
        return [self.groups[g] for g in sorted(self.by_member.get(agent_name, ()))]

    def roles_of(self, agent_name: str) -> tuple[list[str], list[str]]:
        """(groups where ``agent_name`` is active, groups where it stands by); pool groups count
        as active for every member."""
        active: list[str] = []
        standby: list[str] = []
        for g in self.of_member(agent_name):
            if not g.is_redundant or g.active == agent_name:
                active.append(g.name)
            else:
                standby.append(g.name)
        return active, standby

    def keepalive_for(self, agent_name: str) -> float | None:
        """The shortest keep-alive interval of the groups ``agent_name`` belongs to."""
        values = [g.config.keepalive_s for g in self.of_member(agent_name)]
        return min(values) if values else None

    # ---- snapshots and verify --------------------------------------------------------------------

    def snapshot(self) -> bytes:
        return encode_blob(_Snapshot(_SNAPSHOT_V, self.groups, self.last_seq))

    def restore(self, data: bytes) -> None:
        """Replace the state by a snapshot blob; ``SnapshotError`` leaves it unchanged."""
        snap = decode_blob(data, _Snapshot, _SNAPSHOT_V)
        listeners = self.listeners
        self._clear()
        self.listeners = listeners
        self.groups, self.last_seq = dict(snap.groups), dict(snap.last_seq)
        for state in self.groups.values():
            self._index(None, state)

    def reset(self) -> None:
        listeners = self.listeners
        self._clear()
        self.listeners = listeners

    def dump(self) -> dict[str, Any]:
        return entity_dump(self.groups, self.last_seq)
