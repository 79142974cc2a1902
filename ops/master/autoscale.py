"""Master duty: schedules and autoscaling (``core.autoscale``), one pass per tick.

Each pass, while elected:

- every pending schedule is planned (``ScaleFacts.plan``: learned startup times, the group's
  agents now) and started when ``date − lead`` comes; a running one is done at its date with
  its agents ready (its figures become the group's policy) or at its ``until`` (the base policy
  resumes), or fails after its launch config's attempts (``schedule_failed`` alarm, raised by
  `ScheduleAlarms`);
- every group with a policy or a schedule gets its step (``core.autoscale.group_step``): link
  agents that registered to their launches (the measured startup), fail launches past their
  deadline, decide launches, drain agents (scale-in), remove drained ones;
- the streams of draining agents are requeued (with the reason), within the pass's budget, so
  placement moves them to the group's other agents before their agent is removed.

Decisions go into the tick's fenced batch (``Decisions``): a deposed master's launches are
refused by the server, and a new master folds the same log and continues. The providers run in
their own task (``ops.master.provision``), never in the tick. The work is O(groups with a policy
or schedule + their agents) per pass; demand (live streams per group) is counted by listener.
"""

from __future__ import annotations

from collections import Counter

from core import agent as A
from core import group as G
from core import scaling as SG
from core import schedule as SC
from core import stream as S
from core.autoscale import Step, group_step, schedule_rule
from core.errors import DomainError
from core.scaleconfig import PolicyConfig, PolicyState, SetPolicy, decide_policy
from core.scaling import ScalingState
from core.schedule import ScheduleState
from events.model import Event, GroupCreated, ScaleAgentRemoved
from events.store import Append
from ops.commands.scaling import DEMAND, ScaleFacts
from ops.master.decisions import Decisions

__all__ = ["Autoscale"]


class Autoscale:
    def __init__(self, facts: ScaleFacts) -> None:
        self.facts = facts
        self.active = False
        self.demand: Counter[str] = Counter()
        self.draining: set[str] = set()
        self.serving: dict[str, set[str]] = {}
        """Group → ids of the agents that may serve it (its label or a membership)."""
        self.steps: dict[str, Step] = {}
        """The last step of each group (for the views and logs)."""
        self.launched = 0
        self.drained = 0
        facts.streams.listeners.append(self._on_stream)
        facts.agents.listeners.append(self._on_agent)
        facts.groups.listeners.append(self._on_group)

    # ---- listeners and reign -------------------------------------------------------------------

    def _on_stream(self, before: S.StreamState | None, after: S.StreamState) -> None:
        if not self.active:
            return
        if before is not None and before.group is not None and before.status in DEMAND:
            self.demand[before.group] -= 1
        if after.group is not None and after.status in DEMAND:
            self.demand[after.group] += 1

    def _on_agent(self, before: A.AgentState | None, after: A.AgentState) -> None:
        if not self.active:
            return
        if after.draining is not None and after.status != "gone":
            self.draining.add(after.agent_id)
        else:
            self.draining.discard(after.agent_id)
        if before is not None:
            for group in self._groups_of(before):
                held = self.serving.get(group)
                if held is not None:
                    held.discard(before.agent_id)
        if after.status != "gone":
            for group in self._groups_of(after):
                held = self.serving.get(group)
                if held is not None:  # groups not indexed yet are walked when first needed
                    held.add(after.agent_id)

    def _groups_of(self, agent: A.AgentState) -> set[str]:
        return set(agent.groups) | self.facts.groups.by_member.get(agent.name, set())

    def _on_group(self, _before: G.GroupState | None, after: G.GroupState) -> None:
        if self.active:  # membership changed: index the group again (rare)
            self.serving[after.name] = self._walk(after.name)

    def _walk(self, group: str) -> set[str]:
        members = (
            {m.agent for m in g.config.members} if (g := self.facts.groups.get(group)) else set()
        )
        return {a.agent_id for a in self.facts.agents.agents.values()
                if a.status != "gone" and (group in a.groups or a.name in members)}  # fmt: skip

    def _candidates(self, group: str) -> list[A.AgentState]:
        agents = self.facts.agents.agents
        ids = self.serving.get(group)
        if ids is None:
            ids = self.serving[group] = self._walk(group)
        return [agents[aid] for aid in ids if aid in agents]

    def activate(self) -> None:
        """Became master: count demand and draining agents once (the listeners keep them)."""
        projection = self.facts.streams
        streams = projection.streams
        self.demand = Counter({  # the grouped streams only (by_group), never a walk over all
            group: n
            for group, members in projection.by_group.items()
            if (n := sum(1 for sid in members if (st := streams.get(sid)) is not None and st.status in DEMAND))
        })  # fmt: skip
        self.draining = {a.agent_id for a in self.facts.agents.agents.values()
                         if a.draining is not None and a.status != "gone"}  # fmt: skip
        self.serving = {}
        self.facts.demand_of = self.demand.__getitem__
        self.facts.candidates = self._candidates
        self.active = True

    def deactivate(self) -> None:
        self.active = False
        self.facts.demand_of = self.facts.count_demand
        self.facts.candidates = self.facts.all_agents
        self.serving = {}
        self.steps.clear()

    # ---- the pass ------------------------------------------------------------------------------

    def decide(self, d: Decisions, now: float, budget: int) -> bool:
        """Schedules, then each scaled group, then moves off draining agents (at most
        ``budget`` requeues); True when streams are left to move."""
        if not self.active:
            return False
        for s in self.facts.schedules.active():
            self._schedule(d, s, now)
        groups = self.facts.scaling.scaled_groups() | set(self.facts.schedules.by_group)
        for group in sorted(groups):
            self._group(d, group, now)
        self._forget_removed(d, now)
        return self._move(d, now, budget)

    def _schedule(self, d: Decisions, s: ScheduleState, now: float) -> None:
        facts = self.facts
        dfn = s.definition
        missing = facts.missing(dfn)
        current = facts.plan(dfn) if s.state == "pending" else None
        if s.state == "pending" and current is None:
            buffer = dfn.buffer_s if dfn.buffer_s is not None else facts.buffer_s
            if now >= dfn.date - buffer:
                self._schedule_events(d, s, SC.FailSchedule(name=s.name, at=now,
                                      cause=d.cause("schedule.fail"), reason=missing or "no plan"))  # fmt: skip
            return
        ready = sum(1 for a in facts.agents_of(dfn.group) if a.ready and not a.draining)
        config = facts.scaling.launch(facts.launch_of(dfn))
        attempts = config.config.attempts if config is not None else 1
        cmd = schedule_rule(s, now=now, current_plan=current, ready=ready,
                            scaling=facts.scaling.scaling.get(dfn.group), attempts=attempts,
                            cause=d.cause(f"schedule.{s.state}"), missing=missing)  # fmt: skip
        if cmd is None or not self._schedule_events(d, s, cmd):
            return
        if isinstance(cmd, SC.StartSchedule) and dfn.creates_group:
            self._create_group(d, s, now)
        if isinstance(cmd, SC.FinishSchedule) and dfn.until_ms is None:
            self._adopt(d, s, now)

    def _schedule_events(self, d: Decisions, s: ScheduleState, cmd: SC.ScheduleCommand) -> bool:
        try:
            events = SC.decide(s, cmd)
        except DomainError:
            return False
        for i, e in enumerate(events):
            d.items.append(Append(f"schedule.{s.name}", e,
                                  msg_id=f"{type(e).__name__}:{s.name}:{s.version}:{i}"))  # fmt: skip
        return bool(events)

    def _set_policy(self, d: Decisions, name: str, config: PolicyConfig, why: str,
                    now: float) -> None:  # fmt: skip
        state: PolicyState | None = self.facts.scaling.policies.get(name)
        cmd = SetPolicy(name=name, at=now, cause=d.cause(why), config=config, upsert=True)
        try:
            events = decide_policy(state, cmd)
        except DomainError:
            return
        version = state.version if state is not None else 0
        for i, e in enumerate(events):
            d.items.append(Append(f"policy.{name}", e, msg_id=f"PolicySet:{name}:{version}:{i}"))

    def _create_group(self, d: Decisions, s: ScheduleState, now: float) -> None:
        """A new group at its schedule's start: the group (a pool) and its policy (min 0: the
        schedule's figures are in force while it runs)."""
        dfn = s.definition
        assert dfn.policy is not None and dfn.launch is not None
        if self.facts.groups.get(dfn.group) is None:
            event: Event = GroupCreated(at=now, cause=d.cause("group.create"), group=dfn.group)
            d.items.append(Append(f"group.{dfn.group}", event,
                                  msg_id=f"GroupCreated:{dfn.group}:schedule:{s.name}:{s.id}"))  # fmt: skip
        config = PolicyConfig(group=dfn.group, launch=dfn.launch, min_agents=0,
                              max_agents=dfn.max_agents)  # fmt: skip
        self._set_policy(d, dfn.policy, config, f"schedule {s.name}: new group", now)

    def _adopt(self, d: Decisions, s: ScheduleState, now: float) -> None:
        """A schedule without ``until`` is done: its figures become the group's policy."""
        dfn = s.definition
        held = self.facts.scaling.policy_for(dfn.group)
        name = held.name if held is not None else (dfn.policy or dfn.group)
        launch = dfn.launch or (held.config.launch if held is not None else None)
        if launch is None:
            return
        base = held.config if held is not None else PolicyConfig(group=dfn.group, launch=launch)
        config = PolicyConfig(group=dfn.group, launch=launch, min_agents=dfn.min_agents,
                              max_agents=dfn.max_agents, scale_out_above=base.scale_out_above,
                              scale_in_below=base.scale_in_below, cooldown_s=base.cooldown_s)  # fmt: skip
        self._set_policy(d, name, config, f"schedule {s.name}: done", now)

    def _scaling(self, d: Decisions, state: ScalingState, cmd: SG.ScalingCommand) -> ScalingState:
        try:
            events = SG.decide(state, cmd)
        except DomainError:
            return state
        for e in events:
            ident = e.agent_id if isinstance(e, ScaleAgentRemoved) else SG.launch_of(e)
            d.items.append(Append(f"scaling.{state.group}", e,
                                  msg_id=f"{type(e).__name__}:{state.group}:{ident}"))  # fmt: skip
            state = SG.evolve(state, e)
        return state

    def _group(self, d: Decisions, group: str, now: float) -> None:
        f = self.facts.facts(group, now)
        step = group_step(f)
        self.steps[group] = step
        state = f.scaling
        for link in step.links:
            state = self._scaling(d, state, SG.MarkRegistered(
                group=group, at=now, cause=d.cause("scaling.registered"), launch_id=link.launch_id,
                agent_id=link.agent_id, agent_name=link.agent_name,
                registered_at=link.registered_at))  # fmt: skip
        for launch_id, reason in step.fails:
            state = self._scaling(d, state, SG.FailLaunch(
                group=group, at=now, cause=d.cause("scaling.fail"), launch_id=launch_id,
                reason=reason))  # fmt: skip
        b, cfg = f.bounds, f.config
        if step.launches and b is not None and cfg is not None:
            ready = sum(1 for a in f.agents if a.ready and not a.draining)
            for region in step.launches:
                target = ready + len(state.launching()) + 1
                state = self._scaling(d, state, SG.DecideLaunch(
                    group=group, at=now, cause=d.cause("scaling.launch"), launch=b.launch,
                    provider=cfg.provider, deadline_s=cfg.deadline_s, target=target,
                    reason=step.reason, region=region, schedule=b.schedule))  # fmt: skip
                self.launched += 1
        agents = self.facts.agents.agents
        for agent_id, reason in step.drains:
            agent = agents.get(agent_id)
            if agent is not None and d.agent(agent, A.DrainAgent(
                    agent_id=agent_id, at=now, cause=d.cause("agent.drain"), reason=reason)):  # fmt: skip
                self.drained += 1
        for agent_id, reason in step.removes:
            state = self._scaling(d, state, SG.RemoveLaunched(
                group=group, at=now, cause=d.cause("scaling.remove"), agent_id=agent_id,
                reason=reason))  # fmt: skip

    def _forget_removed(self, d: Decisions, now: float) -> None:
        """A removed agent that went ``not_ready`` without leaving (its host stopped it) is
        forgotten at once instead of after the retention."""
        agents = self.facts.agents.agents
        for state in self.facts.scaling.scaling.values():
            for e in state.history:
                agent = agents.get(e.agent_id or "")
                if e.status == "removed" and agent is not None and agent.status == "not_ready":
                    d.agent(agent, A.RemoveAgent(agent_id=agent.agent_id, at=now,
                                                 cause=d.cause("agent.remove"),
                                                 reason=f"scale-in: {e.end_reason}"))  # fmt: skip

    def _move(self, d: Decisions, now: float, budget: int) -> bool:
        """Requeue the streams of draining agents (the drain's "move its streams")."""
        moved = 0
        streams = self.facts.streams
        for agent_id in sorted(self.draining):
            agent = self.facts.agents.agents.get(agent_id)
            if agent is None or agent.draining is None:
                continue
            why = f"agent {agent.name} draining: {agent.draining}"
            for state in streams.assigned_to(agent_id):
                if moved >= budget:
                    return True
                if d.stream(state, S.RequeueStream(stream_id=state.stream_id, at=now,
                                                   cause=d.cause("stream.requeue"), reason=why)):  # fmt: skip
                    moved += 1
        return False
