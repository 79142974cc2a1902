"""The autoscaler's rules: when a schedule starts, how many agents a group wants, which to
launch, drain, remove or give up on. Pure: the master passes what it folded (``GroupFacts``).

**Lead time.** A schedule for ``target`` agents on a group that has ``now`` (ready + launching)
needs ``to_add = max(target − now, 0)``; with the launch config's startup time ``s`` (the median
of measured launch → registered durations, its configured ``startup_s`` until measured) and the
setup buffer ``b``::

    sequential provider (one launch after another):  start = date − (to_add × s + b)
    parallel provider (all launches at once):        start = date − (s + b)
    nothing to add:                                  start = date − b

A schedule whose start has passed starts at once, and records by how much it was late.

**Bounds.** A group's base is its scale policy (``min_agents``..``max_agents``); while schedules
of the group run, their figures are in force (the largest of them). Between the bounds the group
follows its load (live streams / capacity of ready agents): above ``scale_out_above`` it launches
enough agents to bring the load under it (counting launches in flight); below
``scale_in_below`` it drains one launched agent, after ``cooldown_s`` without change, and only if
the others can take its streams under ``scale_out_above``. Above ``max_agents`` launched agents are
drained regardless (what no longer fits waits, with its reason).

**Launches.** A launch that has not registered by its deadline fails; the next pass decides a
new one (``attempt`` + 1). After the launch config's ``attempts`` failures in a row the group
stops launching for ``cooldown_s`` and a running schedule fails. Drained agents (scale-in) are
removed once they hold no stream. Only agents the autoscaler launched are ever drained.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence

import msgspec

from core import schedule as SC
from core.scaleconfig import LaunchConfig, PolicyState
from core.scaling import LaunchEntry, ScalingState
from core.schedule import ScheduleDef, ScheduleState
from events.model import Cause, SchedulePlan, ScheduleRegion

__all__ = [
    "LATE_S",
    "AgentFact",
    "Bounds",
    "GroupFacts",
    "Link",
    "Startup",
    "Step",
    "bounds_of",
    "current_agents",
    "group_step",
    "in_flight",
    "plan",
    "schedule_rule",
    "startup_estimate",
    "startups",
]

LATE_S = 1.0
"""A start decided more than this after its planned start is recorded as late."""


class Startup(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    seconds: float
    samples: int
    """Measured launches the figure is the median of (0: the configured default)."""


def startup_estimate(samples: Sequence[float], default: float) -> Startup:
    """The median of measured launch → registered durations; ``default`` until one exists."""
    if not samples:
        return Startup(seconds=default, samples=0)
    return Startup(seconds=round(float(statistics.median(samples)), 3), samples=len(samples))


def plan(d: ScheduleDef, *, agents_now: int, startup: Startup, buffer_s: float,
         parallel: bool, launch: str) -> SchedulePlan:  # fmt: skip
    """When schedule ``d`` must start, and the figures that say so."""
    target = d.min_agents
    to_add = max(target - agents_now, 0)
    if to_add == 0:
        lead = buffer_s
    elif parallel:
        lead = startup.seconds + buffer_s
    else:
        lead = to_add * startup.seconds + buffer_s
    return SchedulePlan(start=d.date - lead, lead_s=round(lead, 3),
                        mode="parallel" if parallel else "sequential", agents_now=agents_now,
                        agents_target=target, agents_to_add=to_add, startup_s=startup.seconds,
                        startup_samples=startup.samples, buffer_s=buffer_s, launch=launch)  # fmt: skip


def schedule_rule(s: ScheduleState, *, now: float, current_plan: SchedulePlan | None, ready: int,
                  scaling: ScalingState | None, attempts: int, cause: Cause,
                  missing: str | None = None) -> SC.ScheduleCommand | None:  # fmt: skip
    """The decision about schedule ``s`` now (None: nothing). ``current_plan``: its plan now
    (pending); ``ready``: the group's ready agents; ``missing``: why it cannot run (a launch
    config or policy that no longer exists)."""
    d = s.definition
    if s.state == "pending":
        if current_plan is None or now < current_plan.start:
            return None
        if missing is not None:
            return SC.FailSchedule(name=s.name, at=now, cause=cause, reason=missing)
        late = now - current_plan.start
        return SC.StartSchedule(name=s.name, at=now, cause=cause, plan=current_plan,
                                late_s=round(late, 3) if late > LATE_S else 0.0)  # fmt: skip
    if s.state != "running":
        return None
    if missing is not None:
        return SC.FailSchedule(name=s.name, at=now, cause=cause, reason=missing)
    if scaling is not None and scaling.failure_schedule == s.name and scaling.failures >= attempts:
        return SC.FailSchedule(name=s.name, at=now, cause=cause,
                               reason=f"{scaling.failures} launches in a row failed (attempts"
                               f" {attempts}): {scaling.last_failure}")  # fmt: skip
    until = d.until
    if until is not None:
        if now >= until:
            return SC.FinishSchedule(name=s.name, at=now, cause=cause,
                                     reason=f"until passed with {ready} agent(s) ready: the"
                                     " group is back on its base policy")  # fmt: skip
        return None
    if now >= d.date and ready >= d.min_agents:
        return SC.FinishSchedule(name=s.name, at=now, cause=cause,
                                 reason=f"{ready} agent(s) ready at the date: min {d.min_agents},"
                                 f" max {d.max_agents} are now the group's policy")  # fmt: skip
    return None


class Bounds(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    lo: int
    hi: int
    source: str
    """``policy <name>`` or ``schedule <name>``."""
    launch: str
    schedule: str | None = None
    regions: tuple[ScheduleRegion, ...] = ()


def bounds_of(group: str, policy: PolicyState | None,
              running: Sequence[ScheduleState]) -> Bounds | None:  # fmt: skip
    """The figures in force for ``group``: running schedules' (the largest), else its policy's."""
    best: ScheduleState | None = None
    for s in running:
        if best is None or (s.definition.min_agents, s.definition.max_agents) > (
                best.definition.min_agents, best.definition.max_agents):  # fmt: skip
            best = s
    if best is not None:
        d = best.definition
        launch = d.launch or (policy.config.launch if policy is not None else None)
        if launch is not None:
            lo = d.min_agents
            hi = max(d.max_agents, lo)
            return Bounds(lo=lo, hi=hi, source=f"schedule {best.name}", launch=launch,
                          schedule=best.name, regions=d.regions)  # fmt: skip
    if policy is None or policy.deleted:
        return None
    c = policy.config
    return Bounds(lo=c.min_agents, hi=c.max_agents, source=f"policy {policy.name}",
                  launch=c.launch)  # fmt: skip


class AgentFact(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """An agent that serves the group (a member, or carries its label), not gone."""

    agent_id: str
    name: str
    ready: bool
    draining: bool
    capacity: int
    load: int
    registered_at: float


class GroupFacts(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    group: str
    now: float
    bounds: Bounds | None
    policy: PolicyState | None
    scaling: ScalingState
    config: LaunchConfig | None
    """The launch config of ``bounds.launch`` (None: it does not exist)."""
    agents: tuple[AgentFact, ...]
    demand: int
    """The group's live streams (pending or in progress)."""


class Link(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    launch_id: str
    agent_id: str
    agent_name: str
    registered_at: float


class Step(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """What to do for one group now."""

    links: tuple[Link, ...] = ()
    fails: tuple[tuple[str, str], ...] = ()
    """(launch_id, reason)."""
    launches: tuple[str | None, ...] = ()
    """One entry per launch to decide: its region (None: no region)."""
    drains: tuple[tuple[str, str], ...] = ()
    """(agent_id, reason)."""
    removes: tuple[tuple[str, str], ...] = ()
    """(agent_id, reason)."""
    desired: int = 0
    reason: str = ""


def _links(f: GroupFacts) -> list[Link]:
    launching = f.scaling.launching()
    linked = {e.agent_id for e in f.scaling.live.values() if e.agent_id}
    out: list[Link] = []
    by_name = {a.name: a for a in f.agents if a.ready}
    rest: list[LaunchEntry] = []
    for e in sorted(launching, key=lambda e: e.decided_at):
        a = by_name.get(e.agent_name)
        if a is not None and a.agent_id not in linked:
            out.append(Link(launch_id=e.launch_id, agent_id=a.agent_id, agent_name=a.name,
                            registered_at=a.registered_at))  # fmt: skip
            linked.add(a.agent_id)
        elif e.provider == "command":
            rest.append(e)
    if rest:  # a command's agents may register under names of their own: newest agents, FIFO
        fresh = sorted((a for a in f.agents if a.ready and a.agent_id not in linked),
                       key=lambda a: a.registered_at)  # fmt: skip
        for e in rest:
            a = next((a for a in fresh if a.registered_at >= e.decided_at - 1.0
                      and a.agent_id not in linked), None)  # fmt: skip
            if a is None:
                break
            out.append(Link(launch_id=e.launch_id, agent_id=a.agent_id, agent_name=a.name,
                            registered_at=a.registered_at))  # fmt: skip
            linked.add(a.agent_id)
    return out


def _regions(b: Bounds, live: Sequence[LaunchEntry], n: int) -> list[str | None]:
    """Regions for ``n`` new launches: the region furthest below its min first."""
    if not b.regions:
        return [None] * n
    have: dict[str, int] = {r.name: 0 for r in b.regions}
    for e in live:
        if e.region in have:
            have[e.region] += 1
    out: list[str | None] = []
    for _ in range(n):
        region = max(b.regions, key=lambda r: (r.min_agents - have[r.name], -have[r.name])).name
        have[region] += 1
        out.append(region)
    return out


def group_step(f: GroupFacts) -> Step:
    """Links, failures, launches, drains and removals for one group now."""
    now, s = f.now, f.scaling
    links = _links(f)
    linked_launches = {k.launch_id for k in links}
    fails = tuple(
        (e.launch_id, f"no agent registered within {e.deadline_at - e.decided_at:g}s of launch")
        for e in s.launching()
        if e.launch_id not in linked_launches and now >= e.deadline_at
    )
    failed = {lid for lid, _ in fails}
    launching = [e for e in s.launching() if e.launch_id not in linked_launches | failed]
    launched_ids = {e.agent_id for e in s.running()} | {k.agent_id for k in links}
    present = {a.agent_id for a in f.agents}
    removes = tuple((a.agent_id, "drained: no stream left") for a in f.agents
                    if a.draining and a.load == 0 and a.agent_id in launched_ids)  # fmt: skip
    removes += tuple((e.agent_id, "the agent left (deregistered or removed)")
                     for e in s.running() if e.agent_id and e.agent_id not in present)  # fmt: skip
    b, cfg = f.bounds, f.config
    if b is None or cfg is None:
        why = "no policy or running schedule" if b is None else f"launch config {b.launch} missing"
        return Step(links=tuple(links), fails=fails, removes=removes, reason=why)
    ready = [a for a in f.agents if a.ready and not a.draining]
    current = len(ready) + len(launching)
    desired, why = current, "steady"
    policy = f.policy.config if f.policy is not None and not f.policy.deleted else None
    out_above = policy.scale_out_above if policy else 0.8
    in_below = policy.scale_in_below if policy else 0.3
    cooldown = policy.cooldown_s if policy else 60.0
    cooled = now - s.last_change_at >= cooldown
    ready_cap = sum(a.capacity for a in ready)
    removable = sorted((a for a in ready if a.agent_id in launched_ids),
                       key=lambda a: (a.load, -a.registered_at))  # fmt: skip
    if f.demand > 0 and (ready_cap == 0 or f.demand / ready_cap > out_above):
        slots = math.ceil(f.demand / out_above) - ready_cap - len(launching) * cfg.capacity
        if slots > 0:
            desired = current + math.ceil(slots / cfg.capacity)
            why = f"load {f.demand}/{ready_cap} above {out_above:g}"
    elif cooled and not launching and removable and (
            f.demand == 0 or f.demand / ready_cap < in_below):  # fmt: skip
        left = ready_cap - removable[0].capacity
        if f.demand <= left * out_above:
            desired = current - 1
            why = f"load {f.demand}/{ready_cap} below {in_below:g} for {cooldown:g}s"
    if desired < b.lo:
        desired, why = b.lo, f"min {b.lo} of {b.source}"
    elif desired > b.hi:
        desired, why = b.hi, f"max {b.hi} of {b.source}"
    launches: tuple[str | None, ...] = ()
    drains: tuple[tuple[str, str], ...] = ()
    backoff = s.failures >= cfg.attempts and now - s.last_change_at < cooldown
    if desired > current and not backoff:
        n = desired - current
        if not cfg.is_parallel:
            n = 0 if launching else 1
        launches = tuple(_regions(b, list(s.live.values()), n))
    elif desired < len(ready) and not launching:
        excess = len(ready) - desired
        drains = tuple((a.agent_id, f"scale-in of group {f.group}: {why}")
                       for a in removable[:excess])  # fmt: skip
    return Step(
        links=tuple(links),
        fails=fails,
        launches=launches,
        drains=drains,
        removes=removes,
        desired=desired,
        reason=why,
    )


def in_flight(agents: Sequence[AgentFact], scaling: ScalingState) -> list[LaunchEntry]:
    """Launches not registered yet (one whose agent is already ready, but not linked to it by
    the master yet, counts as that agent, not twice)."""
    ready = {a.name for a in agents if a.ready}
    return [e for e in scaling.launching() if e.agent_name not in ready]


def current_agents(agents: Sequence[AgentFact], scaling: ScalingState) -> int:
    """Ready (not draining) agents and launches in flight: what a plan counts as ``now``."""
    ready = sum(1 for a in agents if a.ready and not a.draining)
    return ready + len(in_flight(agents, scaling))


def startups(samples: Mapping[str, Sequence[float]], launch: str, default: float) -> Startup:
    return startup_estimate(samples.get(launch, ()), default)
