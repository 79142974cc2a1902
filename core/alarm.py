"""Alarms: raised and cleared by conditions, acknowledged by people. Pure.

One aggregate per (kind, source) — e.g. (``agent_disconnected``, ``agent.a-12``) — holds every
instance of that alarm; at most one instance is active at a time, so raising an alarm that is
already active changes nothing (the master and the feedback consumers may raise the same alarm
concurrently: optimistic concurrency on the aggregate makes exactly one of them win).

::

    raise ─► active ──clear──► cleared          (a notice, ``transient``, is cleared at once)
              └─ ack (who, when) at any time: recorded on the instance

Alarms are kept for the alarm retention (``forget_before``): older instances are forgotten, as
their events are by JetStream's max age on ``VIGIL_ALARMS``.
"""

from __future__ import annotations

import hashlib
from typing import Literal

import msgspec

from core.errors import NotFound
from events.model import AlarmAcked, AlarmCleared, AlarmEvent, AlarmRaised, Cause

__all__ = [
    "KINDS",
    "AckAlarm",
    "AlarmCommand",
    "AlarmKey",
    "AlarmKind",
    "AlarmState",
    "ClearAlarm",
    "KindInfo",
    "RaiseAlarm",
    "Severity",
    "alarm_id",
    "decide",
    "evolve",
    "forget_before",
]

Severity = Literal["critical", "major", "minor", "warning", "info"]
AlarmKind = Literal[
    "agent_disconnected", "agent_reconnected", "group_failover", "group_failback",
    "stream_failed", "stream_unplaceable", "capacity_exhausted", "outbox_corrupted",
    "outbox_full", "invalid_feedback", "schedule_failed",
]  # fmt: skip


class KindInfo(msgspec.Struct, frozen=True):
    severity: Severity
    transient: bool
    meaning: str


KINDS: dict[str, KindInfo] = {
    "agent_disconnected": KindInfo(
        "major",
        False,
        "an agent's connection closed or its keep-alives stopped; cleared when it is ready again",
    ),
    "agent_reconnected": KindInfo("info", True, "a lost agent is ready again (notice)"),
    "group_failover": KindInfo(
        "major",
        False,
        "a group runs on a standby; cleared on failback"
        " (or, with failback off, once the lost member is ready again)",
    ),
    "group_failback": KindInfo("info", True, "a group's streams returned to its better member"),
    "stream_failed": KindInfo(
        "major",
        False,
        "a stream failed for good (fatal error, restarts"
        " exhausted or autorestart off); cleared when it runs, is"
        " stopped, restarted or deleted",
    ),
    "stream_unplaceable": KindInfo(
        "minor",
        False,
        "streams of a group (or of the fleet) wait"
        " for an agent longer than the threshold; cleared when none"
        " does",
    ),
    "capacity_exhausted": KindInfo(
        "major",
        False,
        "eligible agents exist but every slot is"
        " taken; cleared when the waiting streams are placed",
    ),
    "outbox_corrupted": KindInfo(
        "major",
        False,
        "an agent found its outbox corrupted and moved"
        " it aside; cleared when it no longer reports it",
    ),
    "outbox_full": KindInfo(
        "major",
        False,
        "an agent's outbox is full (new feedback is refused); cleared when it drains",
    ),
    "invalid_feedback": KindInfo(
        "minor",
        False,
        "a manager refused an agent's feedback; cleared when the agent registers again",
    ),
    "schedule_failed": KindInfo(
        "major",
        False,
        "a schedule failed (its launches kept failing, or its launch config is gone);"
        " cleared when it is deleted or created again",
    ),
}


class AlarmState(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One instance of an alarm."""

    alarm_id: str
    kind: str
    source: str
    severity: Severity
    reason: str
    raised_at: float
    cleared_at: float | None = None
    clear_reason: str | None = None
    acked_by: str | None = None
    acked_at: float | None = None
    transient: bool = False

    @property
    def active(self) -> bool:
        return self.cleared_at is None


class AlarmKey(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Every kept instance of one (kind, source) alarm, oldest first."""

    kind: str
    source: str
    alarms: tuple[AlarmState, ...] = ()

    @property
    def active(self) -> AlarmState | None:
        last = self.alarms[-1] if self.alarms else None
        return last if last is not None and last.active else None

    def find(self, alarm_id: str) -> AlarmState | None:
        for a in self.alarms:
            if a.alarm_id == alarm_id:
                return a
        return None


# ---- commands --------------------------------------------------------------------------------


class _Command(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    kind: str
    source: str
    at: float
    cause: Cause


class RaiseAlarm(_Command, frozen=True, kw_only=True):
    reason: str
    severity: Severity | None = None
    """None: the kind's default severity."""


class ClearAlarm(_Command, frozen=True, kw_only=True):
    reason: str


class AckAlarm(_Command, frozen=True, kw_only=True):
    alarm_id: str
    by: str


AlarmCommand = RaiseAlarm | ClearAlarm | AckAlarm


def alarm_id(kind: str, source: str, at: float) -> str:
    """A short, deterministic id for the instance raised at ``at`` (a retried raise gets the
    same id, so its message id deduplicates it)."""
    return "al-" + hashlib.sha1(f"{kind}\x00{source}\x00{at!r}".encode()).hexdigest()[:12]


def decide(state: AlarmKey | None, cmd: AlarmCommand) -> list[AlarmEvent]:
    kind, source, at, cause = cmd.kind, cmd.source, cmd.at, cmd.cause
    active = state.active if state is not None else None
    match cmd:
        case RaiseAlarm():
            info = KINDS.get(kind)
            if active is not None:
                return []
            severity = cmd.severity or (info.severity if info else "major")
            transient = info.transient if info else False
            return [AlarmRaised(at=at, cause=cause, alarm_id=alarm_id(kind, source, at),
                                kind=kind, source=source, severity=severity, reason=cmd.reason,
                                transient=transient)]  # fmt: skip
        case ClearAlarm():
            if active is None:
                return []
            return [AlarmCleared(at=at, cause=cause, alarm_id=active.alarm_id, kind=kind,
                                 source=source, reason=cmd.reason)]  # fmt: skip
        case AckAlarm():
            found = state.find(cmd.alarm_id) if state is not None else None
            if found is None:
                raise NotFound(f"alarm {cmd.alarm_id} not found (or older than the retention)")
            if found.acked_by is not None:
                return []
            return [AlarmAcked(at=at, cause=cause, alarm_id=cmd.alarm_id, kind=kind,
                               source=source, by=cmd.by)]  # fmt: skip
    raise TypeError(f"unknown command {type(cmd).__name__}")  # pragma: no cover


_replace = msgspec.structs.replace


def _update(state: AlarmKey, alarm_id: str, **changes: object) -> AlarmKey:
    alarms = tuple(_replace(a, **changes) if a.alarm_id == alarm_id else a for a in state.alarms)
    return _replace(state, alarms=alarms)


def evolve(state: AlarmKey | None, event: AlarmEvent) -> AlarmKey | None:
    """The state after ``event``. Events about instances this state does not hold (raised
    before the retention) change nothing."""
    if isinstance(event, AlarmRaised):
        base = state or AlarmKey(kind=event.kind, source=event.source)
        if base.find(event.alarm_id) is not None:
            return base
        instance = AlarmState(
            alarm_id=event.alarm_id, kind=event.kind, source=event.source,
            severity=event.severity, reason=event.reason, raised_at=event.at,
            transient=event.transient, cleared_at=event.at if event.transient else None,
            clear_reason="notice" if event.transient else None,
        )  # fmt: skip
        # A still-active older instance (a raise that raced its own clear) is closed by the new one.
        alarms = tuple(
            _replace(a, cleared_at=event.at, clear_reason="superseded") if a.active else a
            for a in base.alarms
        )
        return _replace(base, alarms=(*alarms, instance))
    if state is None:
        return None
    found = state.find(event.alarm_id)
    if found is None:
        return state
    if isinstance(event, AlarmCleared):
        if not found.active:
            return state
        return _update(state, event.alarm_id, cleared_at=event.at, clear_reason=event.reason)
    if isinstance(event, AlarmAcked):
        if found.acked_by is not None:
            return state
        return _update(state, event.alarm_id, acked_by=event.by, acked_at=event.at)
    return state


def forget_before(state: AlarmKey, cutoff: float) -> AlarmKey | None:
    """``state`` without the instances raised before ``cutoff`` (None when none is left)."""
    kept = tuple(a for a in state.alarms if a.raised_at >= cutoff)
    if len(kept) == len(state.alarms):
        return state
    return _replace(state, alarms=kept) if kept else None
