"""Alarms: raising and clearing (for the master and the feedback consumers), listing and
acknowledging (``vigil.cmd.alarm.list|ack``).

Alarm events go to their own JetStream stream ``VIGIL_ALARMS`` on
``vigil.alarm.<kind>.<source>`` — the subject operators subscribe to — through the shared
`Executor` (optimistic concurrency per (kind, source): two managers raising the same alarm at
once store it once). Nothing else of the manager depends on an alarm being stored: a failure to
store one is logged and the caller goes on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from core import alarm as A
from core.alarm import AlarmKey
from core.errors import NotFound
from events.model import AlarmEvent, Cause
from ops.api import requests as R
from ops.api.router import AnyRoute, Route
from ops.api.views import AlarmList, AlarmView, alarm_view
from ops.commands.executor import AggregateType, Executor
from projections.alarms import AlarmsProjection, key_of

__all__ = ["AlarmCommands", "AlarmWriter", "alarm_aggregate", "alarm_routes"]

log = logging.getLogger(__name__)


def alarm_aggregate(
    alarms: AlarmsProjection,
) -> AggregateType[AlarmKey, A.AlarmCommand, AlarmEvent]:
    """Aggregate ``alarm.<kind>.<source>`` (the ident is ``<kind>.<source>``)."""
    return AggregateType(
        kind="alarm", event_type=AlarmEvent, decide=A.decide, evolve=A.evolve,
        cached=lambda key: (alarms.keys.get(key), alarms.seq_of(key)),
    )  # fmt: skip


def _const(cmd: A.AlarmCommand) -> Callable[[AlarmKey | None], A.AlarmCommand]:
    def make(_state: AlarmKey | None) -> A.AlarmCommand:
        return cmd

    return make


class AlarmWriter:
    """Raise, clear and acknowledge alarms (idempotent: raising an active alarm, or clearing
    one that is not active, changes nothing)."""

    def __init__(self, executor: Executor, alarms: AlarmsProjection, *, manager_id: str,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.executor = executor
        self.alarms = alarms
        self.agg = alarm_aggregate(alarms)
        self.manager_id = manager_id
        self.clock = clock
        self.failed = 0

    def cause(self, name: str) -> Cause:
        return Cause(kind="system", name=name, manager_id=self.manager_id)

    async def _run(self, kind: str, source: str, cmd: A.AlarmCommand) -> AlarmKey | None:
        done = await self.executor.execute(self.agg, key_of(kind, source), _const(cmd))
        return done[0]

    async def raise_(self, kind: str, source: str, reason: str, *,
                     severity: A.Severity | None = None, cause: Cause | None = None) -> bool:  # fmt: skip
        """Raise (kind, source) unless it is active; False if it could not be stored."""
        cmd = A.RaiseAlarm(kind=kind, source=source, at=self.clock(), reason=reason[:1000],
                           severity=severity, cause=cause or self.cause(f"alarm.{kind}"))  # fmt: skip
        return await self._safe(kind, source, cmd)

    async def clear(self, kind: str, source: str, reason: str, *,
                    cause: Cause | None = None) -> bool:  # fmt: skip
        cmd = A.ClearAlarm(kind=kind, source=source, at=self.clock(), reason=reason[:1000],
                           cause=cause or self.cause(f"alarm.{kind}.clear"))  # fmt: skip
        return await self._safe(kind, source, cmd)

    async def _safe(self, kind: str, source: str, cmd: A.AlarmCommand) -> bool:
        try:
            await self._run(kind, source, cmd)
        except Exception as exc:  # an alarm must never stop the duty that raises it
            self.failed += 1
            log.warning("alarm %s %s %s not stored: %r", type(cmd).__name__, kind, source, exc)
            return False
        return True


class AlarmCommands:
    """``alarm.list`` and ``alarm.ack``."""

    def __init__(self, writer: AlarmWriter, alarms: AlarmsProjection,
                 last_seq: Callable[[], int]) -> None:  # fmt: skip
        self.writer = writer
        self.alarms = alarms
        self.last_seq = last_seq

    async def list_alarms(self, req: R.ListAlarmsReq) -> tuple[AlarmList, int]:
        self.alarms.prune()
        rows = [
            a for a in self.alarms.instances()
            if (req.active is None or a.active == req.active)
            and (req.kind is None or a.kind == req.kind)
            and (req.source is None or a.source == req.source)
        ]  # fmt: skip
        rows.sort(key=lambda a: (a.raised_at, a.alarm_id), reverse=True)
        views = [alarm_view(a) for a in rows[: req.limit]]
        return AlarmList(alarms=views, active=len(self.alarms.active)), self.last_seq()

    async def ack(self, req: R.AckAlarmReq) -> tuple[AlarmView, int]:
        found = self.alarms.find(req.alarm_id)
        if found is None:
            raise NotFound(f"alarm {req.alarm_id} not found (or older than the retention)")
        w = self.writer
        cmd = A.AckAlarm(kind=found.kind, source=found.source, at=w.clock(),
                         cause=Cause(kind="command", name="alarm.ack", request_id=req.request_id,
                                     manager_id=w.manager_id),
                         alarm_id=req.alarm_id, by=req.by or "anonymous")  # fmt: skip
        done = await w.executor.execute(w.agg, key_of(found.kind, found.source), _const(cmd))
        state, seq = done
        acked = state.find(req.alarm_id) if state is not None else None
        if acked is None:
            raise NotFound(f"alarm {req.alarm_id} not found")
        return alarm_view(acked), seq


def alarm_routes(cmds: AlarmCommands) -> list[AnyRoute]:
    return [
        Route("alarm.list", R.ListAlarmsReq, cmds.list_alarms, writes=False, result=AlarmList),
        Route("alarm.ack", R.AckAlarmReq, cmds.ack, result=AlarmView),
    ]
