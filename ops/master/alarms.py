"""Master duty: raise and clear alarms from what the master sees (``core.alarm``).

Stateful alarms are *level-triggered*: for each changed agent, group or stream (heard from the
projections' listeners and the heartbeats) the duty computes whether its alarm should be active
now and raises or clears it to match. A new master re-evaluates everything once, so an alarm is
never stuck because a master died between a decision and its alarm. Notices (an agent
reconnected, a group failed back) are edge-triggered from the same listeners.

::

    agent_disconnected   agent not_ready                      agent.<id>
    agent_reconnected    not_ready → ready (notice)           agent.<id>
    outbox_corrupted     its heartbeat reports outbox_recovered agent.<id>
    outbox_full          its heartbeat reports outbox_full    agent.<id>
    invalid_feedback     (raised by the feedback consumers)   agent.<id>; cleared on re-register
    group_failover       runs on a standby (see core.alarm)   group.<name>
    group_failback       failback (notice)                    group.<name>
    stream_failed        failure, not restarted any more      stream.<id>
    capacity_exhausted   waiting streams, eligible agents full group.<name> | fleet
    stream_unplaceable   waiting longer than alarm_unplaceable_s group.<name> | fleet
    schedule_failed      a schedule failed (launches kept failing) schedule.<name>

The duty runs as its own task (``run``, a supervised part) so that storing alarms never delays
a failover; it works only while this manager is master. Waiting reasons are evaluated at most
once a second, and only after something changed or an unplaceable deadline came.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable

from core.agent import AgentState
from core.distribution import Requirement
from core.group import GroupState
from core.schedule import ScheduleState
from core.stream import StreamState
from ops.commands.alarms import AlarmWriter
from ops.commands.heartbeats import Heartbeats
from ops.commands.waiting import WaitingReasons
from projections.agents import AgentsProjection
from projections.alarms import AlarmsProjection
from projections.groups import GroupsProjection
from projections.schedules import SchedulesProjection
from projections.streams import StreamsProjection

__all__ = ["AlarmDuty"]

WAITING_EVERY_S = 1.0


def _pending(s: StreamState | None) -> bool:
    return s is not None and s.status == "pending" and s.agent_id is None


class AlarmDuty:
    def __init__(
        self,
        writer: AlarmWriter,
        alarms: AlarmsProjection,
        streams: StreamsProjection,
        agents: AgentsProjection,
        groups: GroupsProjection,
        heartbeats: Heartbeats,
        waiting: WaitingReasons,
        *,
        unplaceable_s: float,
        schedules: SchedulesProjection | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.schedules = schedules or SchedulesProjection()
        self.writer = writer
        self.alarms = alarms
        self.streams = streams
        self.agents = agents
        self.groups = groups
        self.heartbeats = heartbeats
        self.waiting = waiting
        self.unplaceable_s = unplaceable_s
        self.clock = clock
        self.active = False
        self._wake = asyncio.Event()
        self._clear()
        agents.listeners.append(self.on_agent)
        groups.listeners.append(self.on_group)
        streams.listeners.append(self.on_stream)
        heartbeats.listeners.append(self.on_heartbeat)
        self.schedules.listeners.append(self.on_schedule)

    def _clear(self) -> None:
        self.dirty_schedules: set[str] = set()
        self.dirty_agents: set[str] = set()
        self.dirty_groups: set[str] = set()
        self.dirty_streams: set[str] = set()
        self.notices: list[tuple[str, str, str]] = []
        self.waiting_dirty = True
        self.waiting_due = math.inf
        self.waiting_at = 0.0
        self.blocked_since: dict[Requirement, float] = {}
        self.marks: dict[str, frozenset[str]] = {}

    # ---- listeners (every manager; they act only while master) ------------------------------------

    def on_agent(self, before: AgentState | None, after: AgentState) -> None:
        if not self.active:
            return
        self.dirty_agents.add(after.agent_id)
        if before is None or before.status != after.status:
            self.dirty_groups |= self.groups.by_member.get(after.name, set())
            self.waiting_dirty = True
        if before is not None and before.status == "not_ready" and after.status == "ready":
            self.notices.append(("agent_reconnected", f"agent.{after.agent_id}",
                                 f"agent {after.name} ({after.agent_id}) is ready again"))  # fmt: skip
        self._wake.set()

    def on_group(self, before: GroupState | None, after: GroupState) -> None:
        if not self.active:
            return
        self.dirty_groups.add(after.name)
        self.waiting_dirty = True
        if before is not None and after.failbacks > before.failbacks:
            self.notices.append(("group_failback", f"group.{after.name}",
                                 f"group {after.name}: {after.last_change}"))  # fmt: skip
        self._wake.set()

    def on_stream(self, before: StreamState | None, after: StreamState) -> None:
        if not self.active:
            return
        changed = before is None or before.status != after.status
        if changed and ("failure" in (after.status, before.status if before else None)
                        or after.status == "deleted"):  # fmt: skip
            self.dirty_streams.add(after.stream_id)
            self._wake.set()
        if _pending(before) != _pending(after):
            self.waiting_dirty = True
            self._wake.set()

    def on_schedule(self, before: ScheduleState | None, after: ScheduleState) -> None:
        if not self.active:
            return
        if (before is not None and before.state == "failed") or after.state == "failed":
            self.dirty_schedules.add(after.name)
            self._wake.set()

    def on_heartbeat(self, agent_id: str, _mono: float) -> None:
        if not self.active:
            return
        seen = self.heartbeats.last.get(agent_id)
        marks = frozenset(a.split(":", 1)[0] for a in seen[1].alarms) if seen else frozenset()
        if self.marks.get(agent_id, frozenset()) != marks:
            self.marks[agent_id] = marks
            self.dirty_agents.add(agent_id)
            self._wake.set()

    # ---- reign -------------------------------------------------------------------------------------

    async def activate(self) -> None:
        """Became master: look at everything once (chunked)."""
        self._clear()
        self.active = True
        self.dirty_agents |= set(self.agents.agents)
        self.dirty_groups |= set(self.groups.groups)
        for i, state in enumerate(list(self.streams.streams.values())):
            if state.status == "failure":
                self.dirty_streams.add(state.stream_id)
            if i % 250 == 249:
                await asyncio.sleep(0)
        for key in list(self.alarms.active):
            held = self.alarms.keys.get(key)
            if held is None:
                continue
            kind, _, ident = held.source.partition(".")
            if kind == "agent":
                self.dirty_agents.add(ident)
            elif kind == "group":
                self.dirty_groups.add(ident)
            elif kind == "stream":
                self.dirty_streams.add(ident)
            elif kind == "schedule":
                self.dirty_schedules.add(ident)
        self.dirty_schedules |= {s.name for s in self.schedules.schedules.values()
                                 if s.state == "failed"}  # fmt: skip
        self._wake.set()

    def deactivate(self) -> None:
        self.active = False
        self._clear()

    # ---- the part ------------------------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            timeout = max(0.05, min(self.waiting_due - self.clock(), WAITING_EVERY_S))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            if self.active:
                await self.process()

    async def process(self) -> None:
        notices, self.notices = self.notices, []
        for kind, source, reason in notices:
            await self.writer.raise_(kind, source, reason)
        agents, self.dirty_agents = self.dirty_agents, set()
        for aid in sorted(agents):
            failed = self.writer.failed
            await self._agent(aid)
            if self.writer.failed != failed:  # not stored: look again on the next pass
                self.dirty_agents.add(aid)
        groups, self.dirty_groups = self.dirty_groups, set()
        for name in sorted(groups):
            failed = self.writer.failed
            await self._group(name)
            if self.writer.failed != failed:
                self.dirty_groups.add(name)
        streams, self.dirty_streams = self.dirty_streams, set()
        for sid in sorted(streams):
            failed = self.writer.failed
            await self._stream(sid)
            if self.writer.failed != failed:
                self.dirty_streams.add(sid)
        schedules, self.dirty_schedules = self.dirty_schedules, set()
        for name in sorted(schedules):
            failed = self.writer.failed
            await self._schedule(name)
            if self.writer.failed != failed:
                self.dirty_schedules.add(name)
        now = self.clock()
        if (self.waiting_dirty or now >= self.waiting_due) and (
                now - self.waiting_at >= WAITING_EVERY_S):  # fmt: skip
            self.waiting_dirty = False
            self.waiting_at = now
            failed = self.writer.failed
            await self._waiting(now)
            if self.writer.failed != failed:
                self.waiting_dirty = True
        elif self.waiting_dirty:
            self.waiting_due = min(self.waiting_due, self.waiting_at + WAITING_EVERY_S)

    async def _want(self, kind: str, source: str, active: bool, reason: str,
                    clear_reason: str) -> None:  # fmt: skip
        if active and not self.alarms.is_active(kind, source):
            await self.writer.raise_(kind, source, reason)
        elif not active and self.alarms.is_active(kind, source):
            await self.writer.clear(kind, source, clear_reason)

    # ---- per entity ----------------------------------------------------------------------------------

    async def _agent(self, aid: str) -> None:
        agent = self.agents.agents.get(aid)
        source = f"agent.{aid}"
        gone = agent is None or agent.status == "gone"
        label = f"agent {agent.name} ({aid})" if agent else f"agent {aid}"
        down = agent is not None and agent.status == "not_ready"
        reason = f"{label} not ready: {agent.not_ready_reason}" if agent and down else ""
        await self._want("agent_disconnected", source, down, reason,
                         "agent left" if gone else "agent ready again")  # fmt: skip
        seen = self.heartbeats.last.get(aid)
        reported = [] if gone or seen is None else list(seen[1].alarms)
        for kind, mark in (
            ("outbox_corrupted", "outbox_recovered"),
            ("outbox_full", "outbox_full"),
        ):
            text = next((a for a in reported if a.split(":", 1)[0] == mark), None)
            await self._want(kind, source, text is not None, f"{label}: {text}",
                             "agent left" if gone else "no longer reported")  # fmt: skip
        invalid = self.alarms.get("invalid_feedback", source)
        current = invalid.active if invalid is not None else None
        if current is not None and (gone or (agent is not None and agent.status == "ready"
                                             and agent.updated_at > current.raised_at)):  # fmt: skip
            await self.writer.clear("invalid_feedback", source,
                                    "agent left" if gone else "agent registered again")  # fmt: skip

    async def _group(self, name: str) -> None:
        group = self.groups.get(name)
        source = f"group.{name}"
        degraded = False
        clear_reason = "group deleted"
        if group is not None and group.is_redundant and group.active is not None:
            primary = group.primary
            primary_ready = any(a.status == "ready" for a in self.agents.named(primary or ""))
            on_standby = primary is not None and group.active != primary
            degraded = on_standby and (group.config.failback or not primary_ready)
            clear_reason = (f"back on primary {primary}" if not on_standby else
                            f"primary {primary} is ready again (failback off: it stands by)")  # fmt: skip
        elif group is not None:
            clear_reason = "group has no active member"
        reason = f"group {name}: {group.last_change}" if group is not None else ""
        await self._want("group_failover", source, degraded, reason, clear_reason)

    async def _stream(self, sid: str) -> None:
        state = self.streams.streams.get(sid)
        source = f"stream.{sid}"
        failed = False
        reason = ""
        if state is not None and state.status == "failure":
            err, policy = state.last_error, state.autorestart
            if err is not None and err.fatal:
                why = "fatal"
            elif not policy.enabled:
                why = "autorestart off"
            elif state.restarts >= policy.max_attempts:
                why = f"restarts exhausted ({state.restarts} of {policy.max_attempts})"
            else:
                why = ""
            failed = bool(why)
            code = err.code if err else "unknown"
            message = f": {err.message}" if err and err.message else ""
            reason = f"stream {state.name} ({sid}) failed, {why}: {code}{message}"
        status = state.status if state is not None else "deleted"
        await self._want("stream_failed", source, failed, reason, f"stream is {status}")

    async def _schedule(self, name: str) -> None:
        state = self.schedules.get(name)
        failed = state is not None and state.state == "failed"
        reason = f"schedule {name} failed: {state.reason}" if state is not None else ""
        clear = "schedule deleted" if state is None else f"schedule is {state.state}"
        await self._want("schedule_failed", f"schedule.{name}", failed, reason, clear)

    async def _waiting(self, now: float) -> None:
        capacity: dict[str, list[str]] = {}
        unplaceable: dict[str, list[str]] = {}
        due = math.inf
        pending = dict(self.streams.pending)
        for req in list(self.blocked_since):
            if req not in pending:
                del self.blocked_since[req]
        for i, (req, queue) in enumerate(pending.items()):
            if i % 100 == 99:
                await asyncio.sleep(0)
            w = self.waiting.for_requirement(req, fresh=True)
            source = f"group.{req[1]}" if req[1] is not None else "fleet"
            if w.code == "placing":
                self.blocked_since.pop(req, None)
                continue
            since = self.blocked_since.setdefault(req, now)
            line = f"{len(queue)} stream(s): {w.message}"
            if w.code == "capacity":
                capacity.setdefault(source, []).append(line)
            if now - since >= self.unplaceable_s:
                unplaceable.setdefault(source, []).append(
                    f"{line} (waiting over {self.unplaceable_s:g}s)")  # fmt: skip
            else:
                due = min(due, since + self.unplaceable_s)
        self.waiting_due = due
        for kind, wanted in (("capacity_exhausted", capacity), ("stream_unplaceable", unplaceable)):
            for source, lines in sorted(wanted.items()):
                await self._want(kind, source, True, "; ".join(lines), "")
            for key in [k for k in self.alarms.active if k.startswith(kind + ".")]:
                source = key[len(kind) + 1 :]
                if source not in wanted:
                    await self.writer.clear(kind, source, "no stream waits for that reason now")
