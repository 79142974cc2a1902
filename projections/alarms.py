"""Alarms, folded from their own stream ``VIGIL_ALARMS`` (not the event log: alarms are kept for
a retention period, the log forever).

- ``keys``: ``<kind>.<source>`` → every kept instance of that alarm (``core.alarm.AlarmKey``);
- ``by_id``: alarm id → its key (acknowledging by id);
- ``active``: keys with an active instance (the master compares what should be active with it).

JetStream forgets alarm events after the retention (max age on the stream); ``prune`` makes the
projection forget the same instances (raised before ``now - retention_s``), so a manager that
has run for a month and one that just folded the stream show the same alarms.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from core import alarm as core_alarm
from core.alarm import AlarmKey, AlarmState
from events.model import AlarmEvent, Event

__all__ = ["AlarmListener", "AlarmsProjection", "key_of"]

AlarmListener = Callable[[str, AlarmEvent], None]
"""Called with (key, event) for every alarm event that changed something."""


def key_of(kind: str, source: str) -> str:
    return f"{kind}.{source}"


class AlarmsProjection:
    name = "alarms"
    kinds: tuple[str, ...] = ("alarm",)

    def __init__(self, *, retention_s: float, clock: Callable[[], float] = time.time) -> None:
        self.retention_s = retention_s
        self.clock = clock
        self.listeners: list[AlarmListener] = []
        self.keys: dict[str, AlarmKey] = {}
        self.last_seq: dict[str, int] = {}
        self.by_id: dict[str, str] = {}
        self.active: set[str] = set()
        self.ignored = 0

    def apply(self, seq: int, aggregate: str, event: Event) -> None:
        if not isinstance(event, AlarmEvent):
            self.ignored += 1
            return
        key = key_of(event.kind, event.source)
        before = self.keys.get(key)
        after = core_alarm.evolve(before, event)
        self.last_seq[key] = seq
        if after is None or after is before:
            return
        self._set(key, after)
        for listener in self.listeners:
            listener(key, event)

    def _set(self, key: str, state: AlarmKey | None) -> None:
        old = self.keys.get(key)
        if old is not None:
            for a in old.alarms:
                self.by_id.pop(a.alarm_id, None)
        self.active.discard(key)
        if state is None:
            self.keys.pop(key, None)
            return
        self.keys[key] = state
        for a in state.alarms:
            self.by_id[a.alarm_id] = key
        if state.active is not None:
            self.active.add(key)

    def prune(self, now: float | None = None) -> int:
        """Forget instances raised more than ``retention_s`` ago; returns how many."""
        cutoff = (self.clock() if now is None else now) - self.retention_s
        forgotten = 0
        for key, state in list(self.keys.items()):
            if state.alarms and state.alarms[0].raised_at >= cutoff:
                continue
            kept = core_alarm.forget_before(state, cutoff)
            forgotten += len(state.alarms) - (len(kept.alarms) if kept else 0)
            self._set(key, kept)
        return forgotten

    # ---- reads ---------------------------------------------------------------------------------

    def get(self, kind: str, source: str) -> AlarmKey | None:
        return self.keys.get(key_of(kind, source))

    def seq_of(self, key: str) -> int:
        return self.last_seq.get(key, 0)

    def is_active(self, kind: str, source: str) -> bool:
        return key_of(kind, source) in self.active

    def find(self, alarm_id: str) -> AlarmState | None:
        key = self.by_id.get(alarm_id)
        state = self.keys.get(key) if key is not None else None
        return state.find(alarm_id) if state is not None else None

    def instances(self) -> Iterator[AlarmState]:
        for state in self.keys.values():
            yield from state.alarms

    def reset(self) -> None:
        self.keys.clear()
        self.last_seq.clear()
        self.by_id.clear()
        self.active.clear()
