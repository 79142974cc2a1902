"""Every schedule, folded with ``core.schedule.evolve``, with the index the master and the
views need: ``by_group`` (group → its pending and running schedules). The Red5 ``id`` of a
schedule is the log sequence of the event that created it. Listeners hear every change as
``(before, after)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from core import schedule as core_schedule
from core.schedule import ScheduleState
from events.model import Event, ScheduleCreated, ScheduleEvent
from projections.blob import decode_blob, encode_blob, entity_dump

__all__ = ["ScheduleListener", "SchedulesProjection"]

ScheduleListener = Callable[[ScheduleState | None, ScheduleState], None]

_SNAPSHOT_V = 1


class _Snapshot(msgspec.Struct, frozen=True):
    v: int
    schedules: dict[str, ScheduleState]
    last_seq: dict[str, int]


class SchedulesProjection:
    name = "schedules"
    kinds: tuple[str, ...] = ("schedule",)

    def __init__(self) -> None:
        self.listeners: list[ScheduleListener] = []
        self._clear()

    def _clear(self) -> None:
        self.schedules: dict[str, ScheduleState] = {}
        self.last_seq: dict[str, int] = {}
        self.by_group: dict[str, set[str]] = {}
        self.ignored = 0

    def apply(self, seq: int, aggregate: str, event: Event) -> None:
        if not isinstance(event, ScheduleEvent):
            self.ignored += 1
            return
        name = event.schedule
        before = self.schedules.get(name)
        after = core_schedule.evolve(before, event)
        self.last_seq[name] = seq
        if after is None or after is before:
            return
        if isinstance(event, ScheduleCreated):
            after = msgspec.structs.replace(after, id=seq)
        self.schedules[name] = after
        self._index(before, after)
        for listener in self.listeners:
            listener(before, after)

    def _index(self, before: ScheduleState | None, after: ScheduleState) -> None:
        if before is not None:
            held = self.by_group.get(before.definition.group)
            if held is not None:
                held.discard(before.name)
                if not held:
                    del self.by_group[before.definition.group]
        if after.is_active:
            self.by_group.setdefault(after.definition.group, set()).add(after.name)

    # ---- reads ---------------------------------------------------------------------------------

    def get(self, name: str) -> ScheduleState | None:
        state = self.schedules.get(name)
        return None if state is None or state.hidden else state

    def seq_of(self, name: str) -> int:
        return self.last_seq.get(name, 0)

    def listed(self) -> list[ScheduleState]:
        """Every schedule not deleted after it ended, by date then name."""
        return sorted((s for s in self.schedules.values() if not s.hidden),
                      key=lambda s: (s.definition.date_ms, s.name))  # fmt: skip

    def of_group(self, group: str) -> list[ScheduleState]:
        """The pending and running schedules of ``group``, by date."""
        states = (self.schedules[n] for n in self.by_group.get(group, ()))
        return sorted(states, key=lambda s: (s.definition.date_ms, s.name))

    def active(self) -> list[ScheduleState]:
        return [self.schedules[n] for names in self.by_group.values() for n in sorted(names)]

    # ---- snapshots and verify ------------------------------------------------------------------

    def snapshot(self) -> bytes:
        return encode_blob(_Snapshot(_SNAPSHOT_V, self.schedules, self.last_seq))

    def restore(self, data: bytes) -> None:
        """Replace the state by a snapshot blob; ``SnapshotError`` leaves it unchanged."""
        snap = decode_blob(data, _Snapshot, _SNAPSHOT_V)
        listeners = self.listeners
        self._clear()
        self.listeners = listeners
        self.schedules, self.last_seq = dict(snap.schedules), dict(snap.last_seq)
        for state in self.schedules.values():
            self._index(None, state)

    def reset(self) -> None:
        listeners = self.listeners
        self._clear()
        self.listeners = listeners

    def dump(self) -> dict[str, Any]:
        return entity_dump(self.schedules, self.last_seq)
