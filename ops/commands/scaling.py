"""Launch configs, scale policies and the scaling views: ``vigil.cmd.launch.*``,
``vigil.cmd.policy.*``, ``vigil.cmd.scaling.get|list``; and `ScaleFacts`, what the autoscaler
knows about a group (shared by these views, the schedule views and the master's duty, so that
``GET /api/v1/schedules/{name}`` shows the very figures the master plans with).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from core import scaleconfig as SC
from core.agent import AgentState
from core.autoscale import (
    AgentFact,
    Bounds,
    GroupFacts,
    Startup,
    bounds_of,
    group_step,
    in_flight,
    plan,
    startup_estimate,
)
from core.autoscale import current_agents as count_current
from core.distribution import in_group
from core.errors import IllegalTransition, Invalid, NotFound
from core.scaleconfig import LaunchConfig, LaunchConfigState, PolicyConfig, PolicyState
from core.scaling import LaunchEntry, ScalingState
from core.schedule import ScheduleDef, ScheduleState
from events.model import Cause, LaunchConfigEvent, PolicyEvent, SchedulePlan
from ops.api import schedules as A
from ops.api.requests import EmptyReq
from ops.api.router import AnyRoute, Route
from ops.api.views import iso
from ops.commands.executor import AggregateType, Executor
from projections.agents import AgentsProjection
from projections.engine import Projector
from projections.groups import GroupsProjection
from projections.scaling import ScalingProjection
from projections.schedules import SchedulesProjection
from projections.streams import StreamsProjection

__all__ = ["ScaleFacts", "ScalingCommands", "launch_aggregate", "policy_aggregate",
           "scaling_routes"]  # fmt: skip

DEMAND = ("pending", "in_progress")


def launch_aggregate(
    p: ScalingProjection,
) -> AggregateType[LaunchConfigState, SC.LaunchCommand, LaunchConfigEvent]:
    return AggregateType(
        kind="launch", event_type=LaunchConfigEvent, decide=SC.decide_launch,
        evolve=SC.evolve_launch,
        cached=lambda name: (p.launches.get(name), p.seq_of(f"launch.{name}")),
    )  # fmt: skip


def policy_aggregate(
    p: ScalingProjection,
) -> AggregateType[PolicyState, SC.PolicyCommand, PolicyEvent]:
    return AggregateType(
        kind="policy", event_type=PolicyEvent, decide=SC.decide_policy, evolve=SC.evolve_policy,
        cached=lambda name: (p.policies.get(name), p.seq_of(f"policy.{name}")),
    )  # fmt: skip


class ScaleFacts:
    """What the autoscaler knows about a group, from the projections (pure reads)."""

    def __init__(self, agents: AgentsProjection, groups: GroupsProjection,
                 streams: StreamsProjection, scaling: ScalingProjection,
                 schedules: SchedulesProjection, *, buffer_s: float) -> None:  # fmt: skip
        self.agents = agents
        self.groups = groups
        self.streams = streams
        self.scaling = scaling
        self.schedules = schedules
        self.buffer_s = buffer_s
        self.demand_of: Callable[[str], int] = self.count_demand
        """Live streams of a group (the master swaps in its counter)."""
        self.candidates: Callable[[str], Iterable[AgentState]] = self.all_agents
        """Agents that may serve a group (the master swaps in its index)."""

    def all_agents(self, _group: str) -> Iterable[AgentState]:
        return self.agents.agents.values()

    def count_demand(self, group: str) -> int:
        streams = self.streams.streams
        return sum(1 for sid in self.streams.by_group.get(group, ())
                   if streams[sid].status in DEMAND)  # fmt: skip

    def agents_of(self, group: str) -> tuple[AgentFact, ...]:
        """Agents that serve ``group`` (members and agents with its label), not gone."""
        obj = self.groups.get(group)
        load = self.streams.by_agent
        return tuple(
            AgentFact(agent_id=a.agent_id, name=a.name, ready=a.status == "ready",
                      draining=a.draining is not None, capacity=a.capacity,
                      load=len(load.get(a.agent_id, ())), registered_at=a.registered_at)
            for a in self.candidates(group)
            if a.status != "gone" and in_group(a, group, obj)
        )  # fmt: skip

    def state(self, group: str) -> ScalingState:
        return self.scaling.scaling.get(group) or ScalingState(group=group)

    def running(self, group: str) -> list[ScheduleState]:
        return [s for s in self.schedules.of_group(group) if s.state == "running"]

    def bounds(self, group: str) -> Bounds | None:
        return bounds_of(group, self.scaling.policy_for(group), self.running(group))

    def startup(self, launch: str) -> Startup:
        state = self.scaling.launch(launch)
        default = state.config.startup_s if state is not None else 30.0
        return startup_estimate(self.scaling.samples.get(launch, []), default)

    def launch_of(self, d: ScheduleDef) -> str | None:
        if d.launch is not None:
            return d.launch
        policy = self.scaling.policy_for(d.group)
        return policy.config.launch if policy is not None else None

    def missing(self, d: ScheduleDef) -> str | None:
        """Why schedule ``d`` cannot run now (None: it can)."""
        launch = self.launch_of(d)
        if launch is None:
            return f"group {d.group} has no scale policy (and the schedule names no launch config)"
        if self.scaling.launch(launch) is None:
            return f"launch config {launch} does not exist"
        if d.policy is not None:
            held = self.scaling.policy_for(d.group)
            if held is not None and held.name != d.policy:
                return f"group {d.group} already has scale policy {held.name}"
        return None

    def plan(
        self, d: ScheduleDef, agents: tuple[AgentFact, ...] | None = None
    ) -> SchedulePlan | None:
        """The plan of schedule ``d`` now (None when its launch config is unknown)."""
        launch = self.launch_of(d)
        config = self.scaling.launch(launch)
        if launch is None or config is None:
            return None
        agents = self.agents_of(d.group) if agents is None else agents
        now = count_current(agents, self.state(d.group))
        buffer = d.buffer_s if d.buffer_s is not None else self.buffer_s
        return plan(d, agents_now=now, startup=self.startup(launch), buffer_s=buffer,
                    parallel=config.config.is_parallel, launch=launch)  # fmt: skip

    def facts(self, group: str, now: float) -> GroupFacts:
        b = self.bounds(group)
        config = self.scaling.launch(b.launch) if b is not None else None
        return GroupFacts(group=group, now=now, bounds=b, policy=self.scaling.policy_for(group),
                          scaling=self.state(group), config=config.config if config else None,
                          agents=self.agents_of(group), demand=self.demand_of(group))  # fmt: skip


def _entry_view(e: LaunchEntry, draining: str | None = None) -> A.LaunchView:
    return A.LaunchView(
        launch_id=e.launch_id, agent_name=e.agent_name, launch=e.launch, provider=e.provider,
        status=e.status, attempt=e.attempt, schedule=e.schedule, region=e.region, reason=e.reason,
        decided_at=iso(e.decided_at), deadline_at=iso(e.deadline_at), started=e.started,
        detail=e.detail, agent_id=e.agent_id, took_s=e.took_s, ended_at=iso(e.ended_at),
        end_reason=e.end_reason, draining=draining,
    )  # fmt: skip


class ScalingCommands:
    def __init__(self, executor: Executor, projector: Projector, facts: ScaleFacts, *,
                 manager_id: str, commands: frozenset[str] = frozenset(),
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.executor = executor
        self.projector = projector
        self.facts = facts
        self.p = facts.scaling
        self.launch_agg = launch_aggregate(self.p)
        self.policy_agg = policy_aggregate(self.p)
        self.manager_id = manager_id
        self.commands = commands
        """The command providers configured on this manager (by name)."""
        self.clock = clock

    def _cause(self, name: str, request_id: str | None) -> Cause:
        return Cause(kind="command", name=name, request_id=request_id, manager_id=self.manager_id)

    # ---- views ---------------------------------------------------------------------------------

    def launch_view(self, s: LaunchConfigState) -> A.LaunchConfigView:
        c = s.config
        samples = self.p.samples.get(s.name, [])
        learned = self.facts.startup(s.name)
        return A.LaunchConfigView(
            name=s.name, provider=c.provider, command=c.command, capacity=c.capacity,
            labels=c.labels, analytics=list(c.analytics), startup_s=c.startup_s,
            startup_learned_s=learned.seconds if samples else None, startup_samples=list(samples),
            deadline_s=c.deadline_s, attempts=c.attempts, parallel=c.is_parallel,
            version=s.version, updated_at=iso(s.updated_at),
        )  # fmt: skip

    def policy_view(self, s: PolicyState) -> A.PolicyView:
        c = s.config
        return A.PolicyView(name=s.name, group=c.group, launch=c.launch, min_agents=c.min_agents,
                            max_agents=c.max_agents, scale_out_above=c.scale_out_above,
                            scale_in_below=c.scale_in_below, cooldown_s=c.cooldown_s,
                            set_by=s.set_by, version=s.version, updated_at=iso(s.updated_at))  # fmt: skip

    def scaling_view(self, group: str) -> A.ScalingView:
        f = self.facts.facts(group, self.clock())
        step = group_step(f)
        drains = {a.agent_id: a for a in f.agents if a.draining}
        agents = {a.agent_id: a for a in self.facts.agents.agents.values()}
        live = [_entry_view(e, agents[e.agent_id].draining if e.agent_id in drains else None)
                for e in sorted(f.scaling.live.values(), key=lambda e: e.decided_at)]  # fmt: skip
        b = f.bounds
        policy = f.policy
        return A.ScalingView(
            group=group, policy=policy.name if policy else None,
            bounds=A.RegionInfoView(min_agents=b.lo, max_agents=b.hi) if b else None,
            bounds_from=b.source if b else None, launch=b.launch if b else None,
            ready=sum(1 for a in f.agents if a.ready and not a.draining),
            launching=len(in_flight(f.agents, f.scaling)), desired=step.desired,
            reason=step.reason,
            demand=f.demand, capacity=sum(a.capacity for a in f.agents if a.ready and not a.draining),
            failures=f.scaling.failures, last_failure=f.scaling.last_failure, live=live,
            history=[_entry_view(e) for e in f.scaling.history],
            schedules=[s.name for s in self.facts.schedules.of_group(group)],
        )  # fmt: skip

    # ---- launch configs ------------------------------------------------------------------------

    def _check_command(self, config: LaunchConfig) -> None:
        if config.provider == "command" and config.command not in self.commands:
            known = ", ".join(sorted(self.commands)) or "none configured"
            raise Invalid("$.command", f"no command {config.command!r} is configured on the"
                          f" managers (VIGIL_SCALE_COMMANDS_FILE; known: {known})")  # fmt: skip

    async def _set_launch(self, name: str, config: LaunchConfig, *, create: bool,
                          request_id: str | None, verb: str) -> tuple[A.LaunchConfigView, int]:  # fmt: skip
        SC.check_launch(config)
        self._check_command(config)
        cmd = SC.SetLaunchConfig(name=name, at=self.clock(), cause=self._cause(verb, request_id),
                                 config=config, create=create)  # fmt: skip
        msg_id = f"{verb}:{request_id}" if request_id else None
        done = await self.executor.execute(self.launch_agg, name, lambda _s: cmd,
                                                 msg_id=msg_id)  # fmt: skip
        state, seq = done
        assert state is not None
        return self.launch_view(self.p.launches.get(name, state)), seq

    async def create_launch(self, req: A.LaunchConfigReq) -> tuple[A.LaunchConfigView, int]:
        config = LaunchConfig(
            provider=req.provider, command=req.command, capacity=req.capacity,
            labels=dict(req.labels), analytics=tuple(req.analytics), startup_s=req.startup_s,
            deadline_s=req.deadline_s, attempts=req.attempts, parallel=req.parallel,
        )  # fmt: skip
        return await self._set_launch(req.name, config, create=True, request_id=req.request_id,
                                      verb="launch.create")  # fmt: skip

    async def update_launch(self, req: A.UpdateLaunchConfigReq) -> tuple[A.LaunchConfigView, int]:
        state = self.p.launch(req.name)
        if state is None:
            raise NotFound(f"launch config {req.name} not found")
        c = state.config
        provider = req.provider or c.provider
        config = LaunchConfig(
            provider=provider,
            command=req.command if req.command is not None or req.provider else c.command,
            capacity=req.capacity or c.capacity,
            labels=dict(req.labels) if req.labels is not None else c.labels,
            analytics=tuple(req.analytics) if req.analytics is not None else c.analytics,
            startup_s=req.startup_s or c.startup_s, deadline_s=req.deadline_s or c.deadline_s,
            attempts=req.attempts or c.attempts,
            parallel=req.parallel if req.parallel is not None else c.parallel,
        )  # fmt: skip
        return await self._set_launch(req.name, config, create=False, request_id=req.request_id,
                                      verb="launch.update")  # fmt: skip

    async def get_launch(self, req: A.NameReq) -> tuple[A.LaunchConfigView, int]:
        state = self.p.launch(req.name)
        if state is None:
            raise NotFound(f"launch config {req.name} not found")
        return self.launch_view(state), self.p.seq_of(f"launch.{req.name}")

    async def list_launches(self, _req: EmptyReq) -> tuple[A.LaunchConfigList, int]:
        rows = [self.launch_view(s) for s in sorted(self.p.launches.values(), key=lambda s: s.name)
                if not s.deleted]  # fmt: skip
        return A.LaunchConfigList(launch_configs=rows), self.projector.last_seq

    async def delete_launch(self, req: A.NameReq) -> tuple[A.DeletedName, int]:
        used = [f"policy {p.name}" for p in self.p.policies.values()
                if not p.deleted and p.config.launch == req.name]  # fmt: skip
        used += [f"schedule {s.name}" for s in self.facts.schedules.active()
                 if self.facts.launch_of(s.definition) == req.name]  # fmt: skip
        cmd = SC.DeleteLaunchConfig(name=req.name, at=self.clock(),
                                    cause=self._cause("launch.delete", req.request_id),
                                    used_by=tuple(used))  # fmt: skip
        msg_id = f"launch.delete:{req.request_id}" if req.request_id else None
        _, seq = await self.executor.execute(self.launch_agg, req.name, lambda _s: cmd,
                                             msg_id=msg_id)  # fmt: skip
        return A.DeletedName(name=req.name), seq

    # ---- policies ------------------------------------------------------------------------------

    def _check_policy_group(self, name: str, config: PolicyConfig) -> None:
        if self.p.launch(config.launch) is None:
            raise NotFound(f"launch config {config.launch} not found",
                           details=[{"path": "$.launch", "message": "no such launch config"}])  # fmt: skip
        held = self.p.policy_for(config.group)
        if held is not None and held.name != name:
            raise IllegalTransition(f"group {config.group} already has scale policy {held.name}"
                                    " (one per group)",
                                    details=[{"path": "$.group", "message": "has a policy"}])  # fmt: skip
        group = self.facts.groups.get(config.group)
        if group is not None and group.is_redundant:
            raise IllegalTransition(f"group {config.group} is active_standby: one member runs"
                                    " its streams, adding agents would not help; use a pool group",
                                    details=[{"path": "$.group", "message": "active_standby"}])  # fmt: skip

    async def _set_policy(self, name: str, config: PolicyConfig, *, create: bool,
                          request_id: str | None, verb: str) -> tuple[A.PolicyView, int]:  # fmt: skip
        SC.check_policy(config)
        self._check_policy_group(name, config)
        cmd = SC.SetPolicy(name=name, at=self.clock(), cause=self._cause(verb, request_id),
                           config=config, create=create)  # fmt: skip
        msg_id = f"{verb}:{request_id}" if request_id else None
        done = await self.executor.execute(self.policy_agg, name, lambda _s: cmd,
                                                 msg_id=msg_id)  # fmt: skip
        state, seq = done
        assert state is not None
        return self.policy_view(self.p.policies.get(name, state)), seq

    async def create_policy(self, req: A.PolicyReq) -> tuple[A.PolicyView, int]:
        config = PolicyConfig(
            group=req.group or req.name, launch=req.launch, min_agents=req.min_agents,
            max_agents=req.max_agents, scale_out_above=req.scale_out_above,
            scale_in_below=req.scale_in_below, cooldown_s=req.cooldown_s,
        )  # fmt: skip
        return await self._set_policy(req.name, config, create=True, request_id=req.request_id,
                                      verb="policy.create")  # fmt: skip

    async def update_policy(self, req: A.UpdatePolicyReq) -> tuple[A.PolicyView, int]:
        state = self.p.policy(req.name)
        if state is None:
            raise NotFound(f"scale policy {req.name} not found")
        c = state.config
        config = PolicyConfig(
            group=c.group, launch=req.launch or c.launch,
            min_agents=req.min_agents if req.min_agents is not None else c.min_agents,
            max_agents=req.max_agents if req.max_agents is not None else c.max_agents,
            scale_out_above=req.scale_out_above if req.scale_out_above is not None
            else c.scale_out_above,
            scale_in_below=req.scale_in_below if req.scale_in_below is not None
            else c.scale_in_below,
            cooldown_s=req.cooldown_s if req.cooldown_s is not None else c.cooldown_s,
        )  # fmt: skip
        return await self._set_policy(req.name, config, create=False, request_id=req.request_id,
                                      verb="policy.update")  # fmt: skip

    async def get_policy(self, req: A.NameReq) -> tuple[A.PolicyView, int]:
        state = self.p.policy(req.name)
        if state is None:
            raise NotFound(f"scale policy {req.name} not found")
        return self.policy_view(state), self.p.seq_of(f"policy.{req.name}")

    async def list_policies(self, _req: EmptyReq) -> tuple[A.PolicyList, int]:
        rows = [self.policy_view(s) for s in sorted(self.p.policies.values(), key=lambda s: s.name)
                if not s.deleted]  # fmt: skip
        return A.PolicyList(policies=rows), self.projector.last_seq

    async def delete_policy(self, req: A.NameReq) -> tuple[A.DeletedName, int]:
        cmd = SC.DeletePolicy(name=req.name, at=self.clock(),
                              cause=self._cause("policy.delete", req.request_id))  # fmt: skip
        msg_id = f"policy.delete:{req.request_id}" if req.request_id else None
        _, seq = await self.executor.execute(self.policy_agg, req.name, lambda _s: cmd,
                                             msg_id=msg_id)  # fmt: skip
        return A.DeletedName(name=req.name), seq

    # ---- scaling -------------------------------------------------------------------------------

    async def get_scaling(self, req: A.NameReq) -> tuple[A.ScalingView, int]:
        group = req.name
        known = (group in self.p.scaled_groups() or self.facts.groups.get(group) is not None
                 or bool(self.facts.schedules.of_group(group)))  # fmt: skip
        if not known:
            raise NotFound(f"group {group} has no scale policy, schedule or launches")
        return self.scaling_view(group), self.projector.last_seq

    async def list_scaling(self, _req: EmptyReq) -> tuple[A.ScalingList, int]:
        groups = sorted(self.p.scaled_groups() | set(self.facts.schedules.by_group))
        return A.ScalingList(groups=[self.scaling_view(g) for g in groups]), self.projector.last_seq


def scaling_routes(cmds: ScalingCommands) -> list[AnyRoute]:
    return [
        Route("launch.create", A.LaunchConfigReq, cmds.create_launch, result=A.LaunchConfigView),
        Route("launch.update", A.UpdateLaunchConfigReq, cmds.update_launch,
              result=A.LaunchConfigView),
        Route("launch.get", A.NameReq, cmds.get_launch, writes=False, result=A.LaunchConfigView),
        Route("launch.list", EmptyReq, cmds.list_launches, writes=False,
              result=A.LaunchConfigList),
        Route("launch.delete", A.NameReq, cmds.delete_launch, result=A.DeletedName),
        Route("policy.create", A.PolicyReq, cmds.create_policy, result=A.PolicyView),
        Route("policy.update", A.UpdatePolicyReq, cmds.update_policy, result=A.PolicyView),
        Route("policy.get", A.NameReq, cmds.get_policy, writes=False, result=A.PolicyView),
        Route("policy.list", EmptyReq, cmds.list_policies, writes=False,
              result=A.PolicyList),
        Route("policy.delete", A.NameReq, cmds.delete_policy, result=A.DeletedName),
        Route("scaling.get", A.NameReq, cmds.get_scaling, writes=False, result=A.ScalingView),
        Route("scaling.list", EmptyReq, cmds.list_scaling, writes=False,
              result=A.ScalingList),
    ]  # fmt: skip
