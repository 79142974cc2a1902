"""Given events, when a command, then events (or an error): schedules, launch configs, scale
policies, the scaling aggregate, and the autoscaler's rules (lead time, bounds, launches,
drains, failures)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from core import scaleconfig as SC
from core import scaling as SG
from core import schedule as S
from core.agent import AgentState, DrainAgent
from core.agent import decide as agent_decide
from core.agent import evolve as agent_evolve
from core.autoscale import (
    AgentFact,
    GroupFacts,
    Startup,
    bounds_of,
    current_agents,
    group_step,
    plan,
    schedule_rule,
    startup_estimate,
)
from core.distribution import eligible, why_waiting
from core.errors import IllegalTransition, Invalid, NotFound
from core.scaleconfig import LaunchConfig, PolicyConfig, PolicyState
from core.scaling import ScalingState
from events.model import Cause, HostInfo, ScheduleEvent, ScheduleRegion

USER = Cause(kind="command", name="test")
MASTER = Cause(kind="master", name="test", epoch=1)
NOW = 1_000_000.0
DATE_MS = int((NOW + 3600) * 1000)


def fold(events: Sequence[ScheduleEvent]) -> S.ScheduleState | None:
    state: S.ScheduleState | None = None
    for e in events:
        state = S.evolve(state, e)
    return state


def definition(**kw: object) -> S.ScheduleDef:
    values: dict[str, object] = {"date_ms": DATE_MS, "group": "lobby",
                                 "regions": (ScheduleRegion(name="eu", min_agents=3, max_agents=4),)}  # fmt: skip
    values.update(kw)
    return S.ScheduleDef(**values)  # type: ignore[arg-type]


def created(**kw: object) -> list[ScheduleEvent]:
    return S.decide(None, S.CreateSchedule(name="auction", at=NOW, cause=USER,
                                           definition=definition(**kw)))  # fmt: skip


# ---- the schedule aggregate ------------------------------------------------------------------


def test_create_is_pending_and_a_duplicate_name_is_a_conflict() -> None:
    state = fold(created())
    assert state is not None and state.state == "pending" and state.definition.min_agents == 3
    with pytest.raises(IllegalTransition, match="already exists"):
        S.decide(state, S.CreateSchedule(name="auction", at=NOW, cause=USER,
                                         definition=definition()))  # fmt: skip


@pytest.mark.parametrize(("kw", "path"), [
    ({"date_ms": int(NOW * 1000) - 1}, "$.date"),
    ({"until_ms": DATE_MS}, "$.until"),
    ({"regions": ()}, "$.data.region"),
    ({"regions": (ScheduleRegion(name="eu", min_agents=3, max_agents=2),)},
     "$.data.region[0].info.max_agents"),
    ({"policy": "night"}, "$.data.launch"),
])  # fmt: skip
def test_a_bad_definition_names_its_field(kw: dict[str, object], path: str) -> None:
    with pytest.raises(Invalid) as info:
        created(**kw)
    assert info.value.path == path


def test_update_before_it_runs_then_not_after() -> None:
    history = created()
    new = S.decide(fold(history), S.UpdateSchedule(name="auction", at=NOW + 1, cause=USER,
                                                   definition=definition(date_ms=DATE_MS + 1000)))  # fmt: skip
    state = fold(history + new)
    assert state is not None and state.definition.date_ms == DATE_MS + 1000 and state.version == 2
    p = plan(state.definition, agents_now=0, startup=Startup(seconds=10, samples=0), buffer_s=5,
             parallel=True, launch="default")  # fmt: skip
    started = S.decide(state, S.StartSchedule(name="auction", at=NOW + 2, cause=MASTER, plan=p))
    running = fold(history + new + started)
    assert running is not None and running.state == "running" and running.plan == p
    with pytest.raises(IllegalTransition, match="only a pending schedule"):
        S.decide(running, S.UpdateSchedule(name="auction", at=NOW + 3, cause=USER,
                                           definition=definition()))  # fmt: skip


def test_delete_cancels_frees_the_name_and_a_second_delete_hides_it() -> None:
    history = created()
    history += S.decide(fold(history), S.CancelSchedule(name="auction", at=NOW + 1, cause=USER))
    state = fold(history)
    assert state is not None and state.state == "cancelled" and not state.hidden
    again = S.decide(state, S.CreateSchedule(name="auction", at=NOW + 2, cause=USER,
                                             definition=definition()))  # fmt: skip
    assert fold(history + again).state == "pending"  # type: ignore[union-attr]
    history += S.decide(state, S.CancelSchedule(name="auction", at=NOW + 3, cause=USER))
    hidden = fold(history)
    assert hidden is not None and hidden.hidden
    with pytest.raises(NotFound):
        S.decide(hidden, S.CancelSchedule(name="auction", at=NOW + 4, cause=USER))


def test_a_superseded_start_is_a_recorded_no_op() -> None:
    history = created()
    state = fold(history)
    assert state is not None
    p = plan(state.definition, agents_now=0, startup=Startup(seconds=1, samples=0), buffer_s=1,
             parallel=True, launch="default")  # fmt: skip
    start = S.decide(state, S.StartSchedule(name="auction", at=NOW, cause=MASTER, plan=p))
    update = S.decide(state, S.UpdateSchedule(name="auction", at=NOW, cause=USER,
                                              definition=definition(buffer_s=9.0)))  # fmt: skip
    after = fold(history + update + start)
    assert after is not None and after.state == "pending"


# ---- the lead time ---------------------------------------------------------------------------


def test_red5_example_sequential_11_agents_of_120s_plus_100s() -> None:
    """Red5's guide: "(11 X 120) + 100 = 1320 seconds (22 minutes)" — it is 1420 s (23 min 40 s):
    the reason vigil does this arithmetic itself."""
    d = definition(regions=(ScheduleRegion(name="us-east-1", min_agents=11, max_agents=20),))
    p = plan(d, agents_now=0, startup=Startup(seconds=120, samples=0), buffer_s=100,
             parallel=False, launch="default")  # fmt: skip
    assert p.lead_s == 1420 and p.start == d.date - 1420 and p.mode == "sequential"
    par = plan(d, agents_now=0, startup=Startup(seconds=120, samples=0), buffer_s=100,
               parallel=True, launch="default")  # fmt: skip
    assert par.lead_s == 220 and par.agents_to_add == 11
    none = plan(d, agents_now=11, startup=Startup(seconds=120, samples=0), buffer_s=100,
                parallel=False, launch="default")  # fmt: skip
    assert none.lead_s == 100 and none.agents_to_add == 0


def test_startup_is_the_median_of_measured_launches_else_the_default() -> None:
    assert startup_estimate([], 30.0) == Startup(seconds=30.0, samples=0)
    assert startup_estimate([4.0, 100.0, 5.0], 30.0) == Startup(seconds=5.0, samples=3)


def test_a_schedule_starts_at_its_planned_start_and_late_says_so() -> None:
    state = fold(created())
    assert state is not None
    p = plan(state.definition, agents_now=0, startup=Startup(seconds=10, samples=2), buffer_s=5,
             parallel=False, launch="default")  # fmt: skip
    assert p.lead_s == 35
    assert schedule_rule(state, now=p.start - 0.1, current_plan=p, ready=0, scaling=None,
                         attempts=3, cause=MASTER) is None  # fmt: skip
    on_time = schedule_rule(state, now=p.start + 0.2, current_plan=p, ready=0, scaling=None,
                            attempts=3, cause=MASTER)  # fmt: skip
    assert isinstance(on_time, S.StartSchedule) and on_time.late_s == 0
    late = schedule_rule(state, now=p.start + 20, current_plan=p, ready=0, scaling=None,
                         attempts=3, cause=MASTER)  # fmt: skip
    assert isinstance(late, S.StartSchedule) and late.late_s == 20


def _running(**kw: object) -> S.ScheduleState:
    state = fold(created(**kw))
    assert state is not None
    p = plan(state.definition, agents_now=0, startup=Startup(seconds=1, samples=0), buffer_s=1,
             parallel=True, launch="default")  # fmt: skip
    events = S.decide(state, S.StartSchedule(name="auction", at=NOW, cause=MASTER, plan=p))
    after = fold(created(**kw) + events)
    assert after is not None
    return after


def test_running_is_done_at_the_date_with_its_agents_or_at_until() -> None:
    s = _running()
    date = s.definition.date
    assert schedule_rule(s, now=date + 1, current_plan=None, ready=2, scaling=None, attempts=3,
                         cause=MASTER) is None  # fmt: skip
    done = schedule_rule(s, now=date + 1, current_plan=None, ready=3, scaling=None, attempts=3,
                         cause=MASTER)  # fmt: skip
    assert isinstance(done, S.FinishSchedule) and "policy" in done.reason
    held = _running(until_ms=DATE_MS + 60_000)
    assert schedule_rule(held, now=date + 1, current_plan=None, ready=3, scaling=None,
                         attempts=3, cause=MASTER) is None  # fmt: skip
    back = schedule_rule(held, now=date + 60, current_plan=None, ready=3, scaling=None,
                         attempts=3, cause=MASTER)  # fmt: skip
    assert isinstance(back, S.FinishSchedule) and "base policy" in back.reason


def test_running_fails_after_the_attempts_failed_in_a_row() -> None:
    s = _running()
    scaling = ScalingState(group="lobby", failures=3, failure_schedule="auction",
                           last_failure="no agent registered within 60s of launch")  # fmt: skip
    failed = schedule_rule(s, now=NOW + 5, current_plan=None, ready=0, scaling=scaling, attempts=3,
                           cause=MASTER)  # fmt: skip
    assert isinstance(failed, S.FailSchedule) and "3 launches in a row failed" in failed.reason


# ---- launch configs and policies --------------------------------------------------------------


def test_launch_config_create_update_delete() -> None:
    made = SC.decide_launch(None, SC.SetLaunchConfig(name="default", at=NOW, cause=USER,
                                                      config=LaunchConfig(), create=True))  # fmt: skip
    state = SC.evolve_launch(None, made[0])
    assert state is not None and state.config.is_parallel
    with pytest.raises(IllegalTransition):
        SC.decide_launch(state, SC.SetLaunchConfig(name="default", at=NOW, cause=USER,
                                                   config=LaunchConfig(), create=True))  # fmt: skip
    with pytest.raises(Invalid, match="command"):
        SC.decide_launch(state, SC.SetLaunchConfig(name="default", at=NOW, cause=USER,
                                                   config=LaunchConfig(provider="command")))  # fmt: skip
    with pytest.raises(IllegalTransition, match="used by policy lobby"):
        SC.decide_launch(state, SC.DeleteLaunchConfig(name="default", at=NOW, cause=USER,
                                                      used_by=("policy lobby",)))  # fmt: skip
    assert not LaunchConfig(provider="command", command="k8s").is_parallel


def test_policy_bounds_are_checked() -> None:
    with pytest.raises(Invalid) as info:
        SC.decide_policy(None, SC.SetPolicy(name="lobby", at=NOW, cause=USER, create=True,
                                            config=PolicyConfig(group="lobby", launch="default",
                                                                min_agents=3, max_agents=2)))  # fmt: skip
    assert info.value.path == "$.max_agents"


# ---- the scaling aggregate and the rules -------------------------------------------------------


def policy(lo: int = 1, hi: int = 4, **kw: object) -> PolicyState:
    config = PolicyConfig(group="lobby", launch="default", min_agents=lo, max_agents=hi, **kw)  # type: ignore[arg-type]
    return PolicyState(name="lobby", config=config, created_at=NOW, updated_at=NOW)


def agent(n: int, *, load: int = 0, capacity: int = 4, draining: bool = False,
          name: str | None = None, ready: bool = True) -> AgentFact:  # fmt: skip
    return AgentFact(agent_id=f"a-{n}", name=name or f"static-{n}", ready=ready,
                     draining=draining, capacity=capacity, load=load, registered_at=NOW + n)  # fmt: skip


def facts(*agents: AgentFact, scaling: ScalingState | None = None, demand: int = 0,
          p: PolicyState | None = None, now: float = NOW + 1000,
          config: LaunchConfig | None = None) -> GroupFacts:  # fmt: skip
    p = p or policy()
    return GroupFacts(group="lobby", now=now, bounds=bounds_of("lobby", p, []), policy=p,
                      scaling=scaling or ScalingState(group="lobby"),
                      config=config or LaunchConfig(deadline_s=60), agents=agents, demand=demand)  # fmt: skip


def launched(state: ScalingState, n: int = 1, *, at: float = NOW) -> ScalingState:
    for _ in range(n):
        for e in SG.decide(state, SG.DecideLaunch(group="lobby", at=at, cause=MASTER,
                                                  launch="default", provider="local",
                                                  deadline_s=60, target=1, reason="test")):  # fmt: skip
            state = SG.evolve(state, e)
    return state


def registered(state: ScalingState, launch_id: str, agent_id: str, at: float) -> ScalingState:
    for e in SG.decide(state, SG.MarkRegistered(group="lobby", at=at, cause=MASTER,
                                                launch_id=launch_id, agent_id=agent_id,
                                                agent_name=launch_id, registered_at=at)):  # fmt: skip
        state = SG.evolve(state, e)
    return state


def test_below_min_launches_what_is_missing_in_parallel_or_one_at_a_time() -> None:
    step = group_step(facts(p=policy(lo=3)))
    assert len(step.launches) == 3 and step.desired == 3 and "min 3" in step.reason
    seq = group_step(facts(p=policy(lo=3), config=LaunchConfig(provider="command", command="x")))
    assert len(seq.launches) == 1
    one_flying = launched(ScalingState(group="lobby"))
    assert group_step(facts(scaling=one_flying, p=policy(lo=3), now=NOW + 5,
                            config=LaunchConfig(parallel=False))).launches == ()  # fmt: skip


def test_a_registered_launch_is_linked_with_its_startup_time_and_counted_once() -> None:
    state = launched(ScalingState(group="lobby"))
    mine = agent(9, name="lobby-auto-1")
    step = group_step(facts(mine, scaling=state, now=NOW + 5))
    assert [(k.launch_id, k.agent_id) for k in step.links] == [("lobby-auto-1", "a-9")]
    assert step.launches == () and current_agents([mine], state) == 1
    after = registered(state, "lobby-auto-1", "a-9", NOW + 4.5)
    assert (
        after.live["lobby-auto-1"].took_s == 4.5 and after.live["lobby-auto-1"].status == "running"
    )


def test_a_launch_past_its_deadline_fails_and_the_failures_are_counted() -> None:
    state = launched(ScalingState(group="lobby"))
    step = group_step(facts(scaling=state, now=NOW + 61))
    assert [lid for lid, _ in step.fails] == ["lobby-auto-1"]
    assert len(step.launches) == 1  # the retry, decided in the same pass
    for e in SG.decide(state, SG.FailLaunch(group="lobby", at=NOW + 61, cause=MASTER,
                                            launch_id="lobby-auto-1", reason="deadline")):  # fmt: skip
        state = SG.evolve(state, e)
    assert state.failures == 1 and not state.live and state.history[-1].status == "failed"
    assert launched(state).live["lobby-auto-2"].attempt == 2


def test_load_above_the_threshold_launches_enough_agents() -> None:
    step = group_step(facts(agent(1, load=4), demand=10))
    # 10 streams at 0.8 need 13 slots; 4 ready → 9 more → 3 agents of 4
    assert len(step.launches) == 3 and "above 0.8" in step.reason


def test_max_caps_launches_and_excess_launched_agents_are_drained() -> None:
    assert len(group_step(facts(demand=100, p=policy(lo=0, hi=2))).launches) == 2
    state = launched(ScalingState(group="lobby"), 3)
    for i in range(3):
        state = registered(state, f"lobby-auto-{i + 1}", f"a-{i + 1}", NOW + 1)
    agents = [agent(i + 1, name=f"lobby-auto-{i + 1}", load=i) for i in range(3)]
    step = group_step(facts(*agents, scaling=state, p=policy(lo=0, hi=1), demand=3))
    assert [a for a, _ in step.drains] == ["a-1", "a-2"]  # least loaded first
    static = group_step(facts(agent(7), agent(8), p=policy(lo=0, hi=1)))
    assert static.drains == ()  # agents started by hand are never drained


def test_low_load_drains_one_after_the_cooldown_only_if_the_others_can_take_it() -> None:
    state = launched(ScalingState(group="lobby"), 2)
    state = registered(registered(state, "lobby-auto-1", "a-1", NOW + 1), "lobby-auto-2", "a-2",
                       NOW + 1)  # fmt: skip
    two = (agent(1, name="lobby-auto-1", load=1), agent(2, name="lobby-auto-2", load=0))
    early = group_step(facts(*two, scaling=state, demand=1, now=NOW + 30))
    assert early.drains == ()  # within the cooldown
    step = group_step(facts(*two, scaling=state, demand=1, now=NOW + 100))
    assert [a for a, _ in step.drains] == ["a-2"] and "below 0.3" in step.reason
    busy = (agent(1, name="lobby-auto-1", load=3), agent(2, name="lobby-auto-2", load=1))
    assert group_step(facts(*busy, scaling=state, demand=4, now=NOW + 100)).drains == ()
    eager = policy(scale_in_below=0.7)  # 4 of 8 is below 0.7, but 4 slots × 0.8 < 4 streams
    assert group_step(facts(*busy, scaling=state, demand=4, now=NOW + 100, p=eager)).drains == ()


def test_a_drained_agent_with_no_stream_is_removed() -> None:
    state = registered(launched(ScalingState(group="lobby")), "lobby-auto-1", "a-1", NOW + 1)
    gone = agent(1, name="lobby-auto-1", draining=True, load=0)
    step = group_step(facts(gone, agent(2), scaling=state, p=policy(lo=0, hi=1)))
    assert step.removes == (("a-1", "drained: no stream left"),)
    holding = agent(1, name="lobby-auto-1", draining=True, load=2)
    assert group_step(facts(holding, agent(2), scaling=state, p=policy(lo=0, hi=1))).removes == ()


def test_a_running_schedule_is_in_force_over_the_policy() -> None:
    s = _running()
    b = bounds_of("lobby", policy(lo=1, hi=2), [s])
    assert b is not None and (b.lo, b.hi, b.schedule) == (3, 4, "auction")
    assert bounds_of("lobby", policy(lo=1, hi=2), []).source == "policy lobby"  # type: ignore[union-attr]


def test_a_draining_agent_is_not_eligible_and_the_reason_says_so() -> None:
    a = AgentState(agent_id="a-1", name="x", analytics=(), capacity=4, groups=("lobby",),
                   labels={}, host=HostInfo(), heartbeat_interval_s=1, feedback_interval_s=1,
                   downgrade_s=10, registered_at=NOW, updated_at=NOW)  # fmt: skip
    [event] = agent_decide(a, DrainAgent(agent_id="a-1", at=NOW, cause=MASTER, reason="scale-in"))
    drained = agent_evolve(a, event)
    assert drained is not None and drained.draining == "scale-in"
    assert eligible(a, (frozenset(), "lobby")) and not eligible(drained, (frozenset(), "lobby"))
    assert why_waiting((frozenset(), "lobby"), [drained], lambda _a: 0).code == "no_ready_agent"
