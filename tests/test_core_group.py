"""Given events, when a command, then events (or an error): groups, their redundancy rules
(activate, fail over, fail back), alarms, and why a pending stream waits."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from core import alarm as AL
from core import group as G
from core.agent import AgentState
from core.distribution import eligible, why_waiting
from core.errors import IllegalTransition, Invalid, NotFound
from core.redundancy import MemberHealth, group_due, group_rule
from events.model import AlarmEvent, AnalyticOffer, Cause, GroupEvent, GroupMember, HostInfo

USER = Cause(kind="command", name="test")
MASTER = Cause(kind="master", name="test", epoch=1)


def cause(name: str) -> Cause:
    return Cause(kind="master", name=name, epoch=1)


def fold(events: Sequence[GroupEvent]) -> G.GroupState | None:
    state: G.GroupState | None = None
    for e in events:
        state = G.evolve(state, e)
    return state


def run(history: list[GroupEvent], cmd: G.GroupCommand) -> tuple[list[GroupEvent], G.GroupState]:
    """Given history, when cmd: the new events and the state after them."""
    new = G.decide(fold(history), cmd)
    after = fold(history + new)
    assert after is not None
    return new, after


def hq(mode: str = "active_standby", **kw: object) -> G.GroupConfig:
    members = kw.pop("members", (GroupMember(agent="prim", priority=1),
                                 GroupMember(agent="sec", priority=2)))  # fmt: skip
    return G.GroupConfig(mode=mode, members=members, **kw)  # type: ignore[arg-type]


def created(config: G.GroupConfig | None = None) -> list[GroupEvent]:
    return G.decide(None, G.CreateGroup(group="hq", at=1.0, cause=USER, config=config or hq()))


def active_on(agent: str, config: G.GroupConfig | None = None) -> list[GroupEvent]:
    h = created(config)
    return h + G.decide(fold(h), G.ActivateGroup(group="hq", at=2.0, cause=MASTER,
                                                 to_agent=agent, reason="best"))  # fmt: skip


# ---- the aggregate ---------------------------------------------------------------------------


def test_create_makes_a_group_without_an_active_member() -> None:
    new, state = run([], G.CreateGroup(group="hq", at=1.0, cause=USER, config=hq()))
    assert [type(e).__name__ for e in new] == ["GroupCreated"]
    assert (state.active, state.version, state.primary) == (None, 1, "prim")


def test_create_twice_is_refused_and_a_bad_config_is_invalid() -> None:
    with pytest.raises(IllegalTransition):
        run(created(), G.CreateGroup(group="hq", at=2.0, cause=USER, config=hq()))
    twice = (GroupMember(agent="a"), GroupMember(agent="a", priority=2))
    with pytest.raises(Invalid, match="only once"):
        run([], G.CreateGroup(group="x", at=1.0, cause=USER, config=hq(members=twice)))
    with pytest.raises(Invalid, match="twice keepalive"):
        run([], G.CreateGroup(group="x", at=1.0, cause=USER,
                              config=hq(keepalive_s=2.0, failover_s=3.0)))  # fmt: skip
    with pytest.raises(Invalid, match="at least one member"):
        run([], G.CreateGroup(group="x", at=1.0, cause=USER, config=hq(members=())))


def test_activate_then_failover_then_failback() -> None:
    h = active_on("prim")
    assert fold(h).active == "prim"  # type: ignore[union-attr]
    new, state = run(h, G.FailOver(group="hq", at=3.0, cause=MASTER, to_agent="sec",
                                   reason="prim lost"))  # fmt: skip
    assert [(type(e).__name__, e.from_agent, e.to_agent) for e in new] == [  # type: ignore[attr-defined]
        ("GroupFailover", "prim", "sec")
    ]
    assert (state.active, state.failovers, state.last_change) == ("sec", 1, "prim lost")
    new, state = run(h + new, G.FailBack(group="hq", at=4.0, cause=MASTER, to_agent="prim",
                                         reason="prim healthy"))  # fmt: skip
    assert (state.active, state.failbacks) == ("prim", 1)


def test_a_superseded_decision_changes_nothing() -> None:
    h = active_on("prim")
    [failover] = G.decide(fold(h), G.FailOver(group="hq", at=3.0, cause=MASTER, to_agent="sec",
                                               reason="lost"))  # fmt: skip
    h += G.decide(fold(h), G.UpdateGroup(group="hq", at=3.5, cause=USER,
                                         config=hq(failback=False)))  # fmt: skip
    state = fold([*h, failover])
    assert state is not None and state.active == "prim" and state.failovers == 0


def test_decisions_need_a_redundant_group_and_a_member() -> None:
    with pytest.raises(IllegalTransition, match="pool"):
        run(created(hq(mode="pool")), G.ActivateGroup(group="hq", at=2, cause=MASTER,
                                                      to_agent="prim", reason="x"))  # fmt: skip
    with pytest.raises(IllegalTransition, match="not a member"):
        run(active_on("prim"), G.FailOver(group="hq", at=2, cause=MASTER, to_agent="stranger",
                                          reason="x"))  # fmt: skip
    with pytest.raises(IllegalTransition, match="already active"):
        run(active_on("prim"), G.FailOver(group="hq", at=2, cause=MASTER, to_agent="prim",
                                          reason="x"))  # fmt: skip


def test_update_keeps_the_active_member_while_it_is_a_member() -> None:
    h = active_on("sec")
    _, kept = run(h, G.UpdateGroup(group="hq", at=3, cause=USER, config=hq(failover_s=5.0)))
    assert kept.active == "sec" and kept.config.failover_s == 5.0
    only_prim = (GroupMember(agent="prim"),)
    _, dropped = run(h, G.UpdateGroup(group="hq", at=3, cause=USER,
                                      config=hq(members=only_prim)))  # fmt: skip
    assert (
        dropped.active is None and dropped.last_change == "active member sec removed by an update"
    )
    new, _ = run(h, G.UpdateGroup(group="hq", at=3, cause=USER, config=hq()))
    assert new == []  # nothing changed: no event


def test_delete_is_refused_with_the_count_of_streams() -> None:
    with pytest.raises(IllegalTransition, match="has 24 stream"):
        run(created(), G.DeleteGroup(group="hq", at=2, cause=USER, streams=24))
    new, state = run(created(), G.DeleteGroup(group="hq", at=2, cause=USER, streams=0))
    assert state.deleted and [type(e).__name__ for e in new] == ["GroupDeleted"]
    with pytest.raises(NotFound):
        run(created() + new, G.DeleteGroup(group="hq", at=3, cause=USER, streams=0))
    _, again = run(created() + new, G.CreateGroup(group="hq", at=4, cause=USER, config=hq()))
    assert not again.deleted and again.version == 3


# ---- redundancy rules --------------------------------------------------------------------------


def healthy(name: str, *, held: float = 100.0, silent: float = 0.2) -> MemberHealth:
    return MemberHealth(name=name, ready=True, silent_s=silent, healthy_for=held)


def decide_now(state: G.GroupState, *members: MemberHealth, reign_s: float = 100.0) -> object:
    health = {m.name: m for m in members}
    return group_rule(state, health, now=10.0, reign_s=reign_s, cause=cause)


def test_a_new_group_activates_its_best_healthy_member() -> None:
    state = fold(created())
    assert state is not None
    cmd = decide_now(state, healthy("sec"), MemberHealth(name="prim", ready=False))
    assert isinstance(cmd, G.ActivateGroup) and cmd.to_agent == "sec"
    cmd = decide_now(state, healthy("sec"), healthy("prim"))
    assert isinstance(cmd, G.ActivateGroup) and cmd.to_agent == "prim"
    assert decide_now(state) is None  # nobody healthy: streams wait (with a reason)


@pytest.mark.parametrize(
    ("prim", "why"),
    [
        (MemberHealth(name="prim", ready=True, connected=False, silent_s=0.1,
                      disconnect_reason="Client Closed"), "connection closed (Client Closed)"),
        (MemberHealth(name="prim", ready=True, silent_s=3.5), "no keep-alive for 3.5s"),
        (MemberHealth(name="prim", ready=False, silent_s=0.1), "not ready"),
    ],
)  # fmt: skip
def test_the_active_member_is_lost_by_connection_silence_or_status(
    prim: MemberHealth, why: str
) -> None:
    state = fold(active_on("prim"))
    assert state is not None
    cmd = decide_now(state, prim, healthy("sec"))
    assert isinstance(cmd, G.FailOver) and cmd.to_agent == "sec" and why in cmd.reason


def test_silence_counts_only_once_the_master_reigned_failover_s() -> None:
    state = fold(active_on("prim"))
    assert state is not None
    unseen = MemberHealth(name="prim", ready=True, silent_s=None)
    assert decide_now(state, unseen, healthy("sec"), reign_s=1.0) is None
    assert isinstance(decide_now(state, unseen, healthy("sec"), reign_s=3.0), G.FailOver)


def test_n_plus_2_fails_over_to_the_next_healthy_standby() -> None:
    members = (GroupMember(agent="prim", priority=1), GroupMember(agent="s1", priority=2),
               GroupMember(agent="s2", priority=3))  # fmt: skip
    state = fold(active_on("s1", hq(members=members)))
    assert state is not None
    dead = MemberHealth(name="prim", ready=False)
    gone = MemberHealth(name="s1", ready=True, connected=False, silent_s=0.1)
    cmd = decide_now(state, dead, gone, healthy("s2"))
    assert isinstance(cmd, G.FailOver) and (cmd.to_agent, "s1 lost") == ("s2", "s1 lost")
    assert decide_now(state, dead, gone, MemberHealth(name="s2", ready=False)) is None


def test_failback_waits_for_the_hold_and_only_when_on() -> None:
    h = active_on("prim", hq(failback_hold_s=10.0))
    h += G.decide(fold(h), G.FailOver(group="hq", at=3, cause=MASTER, to_agent="sec", reason="x"))
    state = fold(h)
    assert state is not None
    assert decide_now(state, healthy("prim", held=4.0), healthy("sec")) is None
    due = group_due(state, {"prim": healthy("prim", held=9.5), "sec": healthy("sec")}, now=10.0,
                    reign_s=100.0)  # fmt: skip
    assert due == pytest.approx(10.501)  # the hold ends before sec's keep-alive deadline
    cmd = decide_now(state, healthy("prim", held=10.5), healthy("sec"))
    assert isinstance(cmd, G.FailBack) and cmd.to_agent == "prim"
    off = fold(h + G.decide(state, G.UpdateGroup(group="hq", at=5, cause=USER,
                                                 config=hq(failback=False))))  # fmt: skip
    assert off is not None and off.active == "sec"
    assert decide_now(off, healthy("prim", held=99.0), healthy("sec")) is None


def test_due_is_the_active_members_keepalive_deadline() -> None:
    state = fold(active_on("prim"))
    assert state is not None
    health = {"prim": healthy("prim", silent=1.0), "sec": healthy("sec")}
    assert group_due(state, health, now=10.0, reign_s=100.0) == pytest.approx(12.001)


# ---- placement with groups, and why streams wait -------------------------------------------------


def agent(name: str, *, status: str = "ready", capacity: int = 3, groups: tuple[str, ...] = (),
          analytics: tuple[str, ...] = ("motion",)) -> AgentState:  # fmt: skip
    return AgentState(
        agent_id=f"a-{name}", name=name, analytics=tuple(AnalyticOffer(name=a) for a in analytics),
        capacity=capacity, groups=groups, labels={}, host=HostInfo(), heartbeat_interval_s=1,
        feedback_interval_s=1, downgrade_s=10, registered_at=0, updated_at=0,
        status=status,  # type: ignore[arg-type]
    )  # fmt: skip


def test_only_the_active_member_is_eligible_in_active_standby_and_labels_still_work() -> None:
    req = (frozenset({"motion"}), "hq")
    state = fold(active_on("prim"))
    assert eligible(agent("prim"), req, state)
    assert not eligible(agent("sec"), req, state)
    assert eligible(agent("other", groups=("hq",)), req, None)  # a label: today's behaviour
    pool = fold(created(hq(mode="pool")))
    assert eligible(agent("sec"), req, pool) and not eligible(agent("other"), req, pool)


def test_why_a_stream_waits() -> None:
    req = (frozenset({"motion"}), "lobby")
    load = {"a-prim": 3}.get

    def why(agents: list[AgentState], group: G.GroupState | None = None,
            names: frozenset[str] = frozenset({"motion"}), name: str | None = "lobby") -> str:  # fmt: skip
        return why_waiting((names, name), agents, lambda a: load(a, 0), group).message

    assert why([agent("x")]) == "no agent serves group lobby"
    assert (
        why([agent("x", groups=("lobby",), status="not_ready")]) == "no ready agent in group lobby"
    )
    assert why([agent("x")], names=frozenset({"black_frame"})) == "no agent offers black_frame"
    assert why([agent("prim", groups=("lobby",))]) == "capacity: 0 free of 3 in group lobby"
    state = fold(active_on("prim"))
    assert why([agent("prim", status="not_ready"), agent("sec", status="not_ready")], state,
               name="hq") == "group hq: active member prim not ready, no standby"  # fmt: skip
    assert why([agent("prim")], state, name="hq") == (
        "group hq: capacity: 0 free of 3 on active member prim"
    )
    assert why_waiting(req, [agent("y", groups=("lobby",))], lambda a: 0).code == "placing"


# ---- alarms ----------------------------------------------------------------------------------------


def afold(events: Sequence[AlarmEvent]) -> AL.AlarmKey | None:
    state: AL.AlarmKey | None = None
    for e in events:
        state = AL.evolve(state, e)
    return state


def raise_(at: float, kind: str = "agent_disconnected") -> AL.RaiseAlarm:
    return AL.RaiseAlarm(kind=kind, source="agent.a-1", at=at, cause=MASTER, reason="gone")


def test_an_alarm_is_raised_once_cleared_once_and_acked_with_who_and_when() -> None:
    h = AL.decide(None, raise_(1.0))
    assert AL.decide(afold(h), raise_(2.0)) == []  # already active
    [alarm] = afold(h).alarms  # type: ignore[union-attr]
    assert (alarm.severity, alarm.active) == ("major", True)
    h += AL.decide(afold(h), AL.AckAlarm(kind="agent_disconnected", source="agent.a-1", at=3.0,
                                         cause=USER, alarm_id=alarm.alarm_id, by="ops@noc"))  # fmt: skip
    h += AL.decide(afold(h), AL.ClearAlarm(kind="agent_disconnected", source="agent.a-1", at=4.0,
                                           cause=MASTER, reason="ready again"))  # fmt: skip
    [done] = afold(h).alarms  # type: ignore[union-attr]
    assert (done.acked_by, done.acked_at, done.cleared_at, done.clear_reason) == (
        "ops@noc", 3.0, 4.0, "ready again")  # fmt: skip
    assert AL.decide(afold(h), AL.ClearAlarm(kind="agent_disconnected", source="agent.a-1",
                                             at=5.0, cause=MASTER, reason="x")) == []  # fmt: skip
    h += AL.decide(afold(h), raise_(6.0))
    assert len(afold(h).alarms) == 2  # type: ignore[union-attr]
    with pytest.raises(NotFound):
        AL.decide(afold(h), AL.AckAlarm(kind="agent_disconnected", source="agent.a-1", at=7,
                                        cause=USER, alarm_id="al-nope", by="x"))  # fmt: skip


def test_a_notice_is_cleared_at_once_and_old_instances_are_forgotten() -> None:
    h = AL.decide(None, raise_(1.0, "agent_reconnected"))
    h += AL.decide(afold(h), raise_(5.0, "agent_reconnected"))
    state = afold(h)
    assert state is not None and len(state.alarms) == 2
    assert all(not a.active and a.severity == "info" for a in state.alarms)
    kept = AL.forget_before(state, 2.0)
    assert kept is not None and [a.raised_at for a in kept.alarms] == [5.0]
    assert AL.forget_before(state, 10.0) is None
