"""Schedule commands and queries: ``vigil.cmd.schedule.create|update|get|list|delete``.

Writes go through the shared `Executor` (load → ``core.schedule.decide`` → append → retry). What
``core.schedule`` cannot check alone — that the group, launch config and policy named in
``data`` exist (or must not) — is checked here against the projections, with the Red5 field
path in the error (``$.data.group``, ``$.data.launch``, ``$.data.policy``). The view of a
pending schedule carries the plan the master would start it with now (`ScaleFacts.plan`); once
started, the plan it started with.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from core import schedule as S
from core.autoscale import in_flight
from core.errors import IllegalTransition, Invalid, NotFound
from core.schedule import ScheduleDef, ScheduleState
from events.model import Cause, ScheduleEvent, SchedulePlan, ScheduleRegion
from ops.api import schedules as A
from ops.api.router import AnyRoute, Route
from ops.api.views import iso
from ops.commands.executor import AggregateType, Executor
from ops.commands.scaling import ScaleFacts
from projections.engine import Projector
from projections.schedules import SchedulesProjection

__all__ = ["ScheduleCommands", "formula", "schedule_aggregate", "schedule_routes"]


def schedule_aggregate(
    p: SchedulesProjection,
) -> AggregateType[ScheduleState, S.ScheduleCommand, ScheduleEvent]:
    return AggregateType(
        kind="schedule", event_type=ScheduleEvent, decide=S.decide, evolve=S.evolve,
        cached=lambda name: (p.schedules.get(name), p.seq_of(name)),
    )  # fmt: skip


def _ms(t: float) -> str:
    return str(round(t * 1000))


def formula(p: SchedulePlan) -> str:
    """``date − (3 × 12.5 s + 60 s)``: the lead time with its figures."""
    if p.agents_to_add == 0:
        return f"date − {p.buffer_s:g} s (buffer; no agent to add)"
    if p.mode == "parallel":
        return f"date − ({p.startup_s:g} s + {p.buffer_s:g} s)  (parallel: max startup + buffer)"
    return (f"date − ({p.agents_to_add} × {p.startup_s:g} s + {p.buffer_s:g} s)"
            "  (sequential: agents × startup + buffer)")  # fmt: skip


def _startup_from(p: SchedulePlan) -> str:
    if p.startup_samples:
        return (f"learned: median of {p.startup_samples} measured launch(es) of launch config"
                f" {p.launch}")  # fmt: skip
    return f"default: startup_s of launch config {p.launch} (no launch measured yet)"


def _plan_view(p: SchedulePlan, *, fixed: bool, late_s: float, now: float) -> A.PlanView:
    note = ""
    late = late_s > 0
    if fixed and late:
        note = f"started {late_s:g} s after its planned start (the lead time had already passed)"
    elif not fixed and p.start <= now:
        late = True
        note = "the planned start has passed: it starts at once"
    return A.PlanView(
        start=_ms(p.start), start_at=iso(p.start), lead_s=p.lead_s, mode=p.mode,
        formula=formula(p), agents_now=p.agents_now, agents_target=p.agents_target,
        agents_to_add=p.agents_to_add, startup_s=p.startup_s, startup_from=_startup_from(p),
        buffer_s=p.buffer_s, launch=p.launch, fixed=fixed, late=late,
        late_s=late_s if fixed else max(round(now - p.start, 3), 0.0), note=note,
    )  # fmt: skip


def _one(a: str | None, b: str | None, canonical: str, red5: str) -> str | None:
    if a is not None and b is not None and a != b:
        raise Invalid(f"$.data.{red5}", f"data.{canonical} ({a}) and data.{red5} ({b}) differ:"
                      " give one of them")  # fmt: skip
    return a if a is not None else b


class ScheduleCommands:
    def __init__(self, executor: Executor, projector: Projector, facts: ScaleFacts, *,
                 manager_id: str, clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.executor = executor
        self.projector = projector
        self.facts = facts
        self.schedules = facts.schedules
        self.agg = schedule_aggregate(self.schedules)
        self.manager_id = manager_id
        self.clock = clock

    def _cause(self, name: str, request_id: str | None) -> Cause:
        return Cause(kind="command", name=name, request_id=request_id, manager_id=self.manager_id)

    # ---- requests → definitions ----------------------------------------------------------------

    def _definition(self, name: str, date: int | str, until: int | str | None,
                    buffer_s: float | None, data: A.ScheduleDataIn) -> ScheduleDef:  # fmt: skip
        date_ms = A.ms_of(date, "$.date")
        until_ms = A.ms_of(until, "$.until") if until is not None else None
        group = _one(data.group, data.node_group, "group", "nodeGroup")
        launch = _one(data.launch, data.launch_config, "launch", "launchConfig")
        policy = _one(data.policy, data.scale_policy, "policy", "scalePolicy")
        regions = []
        for i, r in enumerate(data.region):
            if r.info is None:
                raise Invalid(f"$.data.region[{i}].info", "give info{min_agents, max_agents}")
            lo = A.count_of(r.info.min_agents, f"$.data.region[{i}].info.min_agents")
            hi = lo if r.info.max_agents is None else A.count_of(
                r.info.max_agents, f"$.data.region[{i}].info.max_agents")  # fmt: skip
            regions.append(ScheduleRegion(name=r.name, min_agents=lo, max_agents=hi))
        if policy is not None:
            group = group or policy
        if group is None:
            raise Invalid("$.data.group", "give data.group (an existing group to resize) or"
                          " data.launch and data.policy (a new group)")  # fmt: skip
        return ScheduleDef(date_ms=date_ms, until_ms=until_ms, group=group, launch=launch,
                           policy=policy, regions=tuple(regions), buffer_s=buffer_s)  # fmt: skip

    def _check_refs(self, name: str, d: ScheduleDef) -> None:
        """The group, launch config and policy ``d`` names: 404/409 with the field."""
        scaling = self.facts.scaling
        if d.launch is not None and scaling.launch(d.launch) is None:
            raise NotFound(f"launch config {d.launch} not found",
                           details=[{"path": "$.data.launch", "message": "no such launch config"}])  # fmt: skip
        held = scaling.policy_for(d.group)
        if d.policy is not None:
            if scaling.policy(d.policy) is not None:
                raise IllegalTransition(f"scale policy {d.policy} already exists: a new group needs"
                                        " a new policy name (or resize with data.group)",
                                        details=[{"path": "$.data.policy", "message": "exists"}])  # fmt: skip
            if held is not None:
                raise IllegalTransition(f"group {d.group} already has scale policy {held.name}:"
                                        " resize it with data.group alone",
                                        details=[{"path": "$.data.group", "message": "has a policy"}])  # fmt: skip
            for other in self.schedules.active():
                if other.name != name and other.definition.policy == d.policy:
                    raise IllegalTransition(f"schedule {other.name} already creates policy"
                                            f" {d.policy}",
                                            details=[{"path": "$.data.policy", "message": "taken"}])  # fmt: skip
            return
        if held is None:
            creator = next((s for s in self.schedules.active()
                            if s.name != name and s.definition.group == d.group
                            and s.definition.policy is not None), None)  # fmt: skip
            if creator is not None and d.launch is None:
                return  # a schedule creates the group before this one runs
            known = self.facts.groups.get(d.group) is not None or any(
                d.group in a.groups for a in self.facts.agents.agents.values() if a.status != "gone"
            )
            if not known and creator is None:
                raise NotFound(f"group {d.group} not found",
                               details=[{"path": "$.data.group", "message": "no such group"}])  # fmt: skip
            if d.launch is None:
                raise NotFound(f"group {d.group} has no scale policy: create one (vigil scale"
                               " policy create) or name a launch config in data.launch",
                               details=[{"path": "$.data.group", "message": "no scale policy"}])  # fmt: skip
        group = self.facts.groups.get(d.group)
        if group is not None and group.is_redundant:
            raise IllegalTransition(f"group {d.group} is active_standby: only its active member runs"
                                    " streams; schedule a pool group",
                                    details=[{"path": "$.data.group", "message": "active_standby"}])  # fmt: skip

    # ---- views ---------------------------------------------------------------------------------

    def view(self, s: ScheduleState) -> A.ScheduleView:
        d = s.definition
        now = self.clock()
        plan_view: A.PlanView | None = None
        agents: A.AgentsView | None = None
        if s.plan is not None:
            plan_view = _plan_view(s.plan, fixed=True, late_s=s.late_s, now=now)
        if s.is_active:
            facts = self.facts.agents_of(d.group)
            if s.state == "pending":
                current = self.facts.plan(d, facts)
                if current is not None:
                    plan_view = _plan_view(current, fixed=False, late_s=0.0, now=now)
            state = self.facts.state(d.group)
            agents = A.AgentsView(ready=sum(1 for a in facts if a.ready and not a.draining),
                                  launching=len(in_flight(facts, state)), target=d.min_agents)  # fmt: skip
        regions = [A.RegionView(name=r.name, info=A.RegionInfoView(min_agents=r.min_agents,
                                                                   max_agents=r.max_agents))
                   for r in d.regions]  # fmt: skip
        return A.ScheduleView(
            id=s.id, event_name=s.name, date=str(d.date_ms),
            data=A.ScheduleDataView(group=d.group, launch=d.launch, policy=d.policy,
                                    region=regions),
            state=s.state, until=str(d.until_ms) if d.until_ms is not None else None,
            buffer_s=d.buffer_s, plan=plan_view, reason=s.reason, agents=agents,
            version=s.version, created_at=iso(s.created_at), updated_at=iso(s.updated_at),
            started_at=iso(s.started_at), ended_at=iso(s.ended_at),
        )  # fmt: skip

    def _reply(self, name: str, seq: int) -> tuple[A.ScheduleView, int]:
        state = self.schedules.schedules.get(name)
        if state is None:
            raise NotFound(f"schedule {name} not found")
        return self.view(state), seq

    # ---- handlers ------------------------------------------------------------------------------

    async def create(self, req: A.CreateScheduleReq) -> tuple[A.ScheduleView, int]:
        name = req.event_name
        d = self._definition(name, req.date, req.until, req.buffer_s, req.data)
        S.check_definition(d, self.clock())
        self._check_refs(name, d)
        cmd = S.CreateSchedule(name=name, at=self.clock(),
                               cause=self._cause("schedule.create", req.request_id), definition=d)  # fmt: skip
        msg_id = f"schedule.create:{req.request_id}" if req.request_id else None
        try:
            _, seq = await self.executor.execute(self.agg, name, lambda _s: cmd, msg_id=msg_id)
        except IllegalTransition as exc:
            if req.request_id is None:
                raise IllegalTransition(exc.message, details=[
                    {"path": "$.eventName", "message": "a schedule of that name exists"}]) from None  # fmt: skip
            _, seq = await self.executor.load(self.agg, name)  # the same request again
        return self._reply(name, seq)

    async def update(self, req: A.UpdateScheduleReq) -> tuple[A.ScheduleView, int]:
        name = req.event_name
        now = self.clock()
        cause = self._cause("schedule.update", req.request_id)

        def make(state: ScheduleState | None) -> S.ScheduleCommand:
            if state is None or state.hidden:
                raise NotFound(f"schedule {name} not found")
            old = state.definition
            if req.data is not None:
                d = self._definition(name, req.date if req.date is not None else old.date_ms,
                                     req.until if req.until is not None else old.until_ms,
                                     req.buffer_s if req.buffer_s is not None else old.buffer_s,
                                     req.data)  # fmt: skip
            else:
                d = ScheduleDef(
                    date_ms=A.ms_of(req.date, "$.date") if req.date is not None else old.date_ms,
                    until_ms=A.ms_of(req.until, "$.until") if req.until is not None
                    else old.until_ms,
                    group=old.group, launch=old.launch, policy=old.policy, regions=old.regions,
                    buffer_s=req.buffer_s if req.buffer_s is not None else old.buffer_s,
                )  # fmt: skip
            if state.state == "pending":
                S.check_definition(d, now)
                self._check_refs(name, d)
            return S.UpdateSchedule(name=name, at=now, cause=cause, definition=d,
                                    expected_version=req.expected_version)  # fmt: skip

        msg_id = f"schedule.update:{req.request_id}" if req.request_id else None
        _, seq = await self.executor.execute(self.agg, name, make, msg_id=msg_id)
        return self._reply(name, seq)

    async def get(self, req: A.ScheduleNameReq) -> tuple[A.ScheduleView, int]:
        state = self.schedules.get(req.event_name)
        if state is None:
            raise NotFound(f"schedule {req.event_name} not found")
        return self.view(state), self.schedules.seq_of(req.event_name)

    async def list_schedules(self, req: A.ListSchedulesReq) -> tuple[A.ScheduleList, int]:
        rows = [self.view(s) for s in self.schedules.listed()
                if (req.state is None or s.state == req.state)
                and (req.group is None or s.definition.group == req.group)]  # fmt: skip
        return A.ScheduleList(schedules=rows), self.projector.last_seq

    async def delete(self, req: A.ScheduleNameReq) -> tuple[A.ScheduleView, int]:
        name = req.event_name
        cmd = S.CancelSchedule(name=name, at=self.clock(),
                               cause=self._cause("schedule.delete", req.request_id),
                               reason="deleted by a user")  # fmt: skip
        msg_id = f"schedule.delete:{req.request_id}" if req.request_id else None
        done = await self.executor.execute(self.agg, name, lambda _s: cmd, msg_id=msg_id)
        state, seq = done
        assert state is not None
        return self.view(self.schedules.schedules.get(name, state)), seq


def schedule_routes(cmds: ScheduleCommands) -> list[AnyRoute]:
    return [
        Route("schedule.create", A.CreateScheduleReq, cmds.create, result=A.ScheduleView),
        Route("schedule.update", A.UpdateScheduleReq, cmds.update, result=A.ScheduleView),
        Route("schedule.get", A.ScheduleNameReq, cmds.get, writes=False, result=A.ScheduleView),
        Route("schedule.list", A.ListSchedulesReq, cmds.list_schedules, writes=False,
              result=A.ScheduleList),
        Route("schedule.delete", A.ScheduleNameReq, cmds.delete, result=A.ScheduleView),
    ]  # fmt: skip
