"""plan(): creation order, analytics, groups, free capacity, largest free share, never moving;
Candidates: the master's kept heap, the same choices as plan() pass after pass."""

from __future__ import annotations

import msgspec

from core.agent import AgentState
from core.distribution import Assignment, Candidates, plan
from core.stream import StreamState
from events.model import AnalyticOffer, AnalyticRef, Autorestart, HostInfo, Source


def agent(aid: str, capacity: int, analytics: tuple[str, ...] = ("motion",),
          groups: tuple[str, ...] = (), status: str = "ready") -> AgentState:  # fmt: skip
    return AgentState(
        agent_id=aid, name=aid, analytics=tuple(AnalyticOffer(name=a) for a in analytics),
        capacity=capacity, groups=groups, labels={}, host=HostInfo(), heartbeat_interval_s=1,
        feedback_interval_s=1, downgrade_s=5, registered_at=0, updated_at=0,
        status=status,  # type: ignore[arg-type]
    )  # fmt: skip


def stream(sid: str, at: float, analytics: tuple[str, ...] = ("motion",), group: str | None = None,
           **kw: object) -> StreamState:  # fmt: skip
    s = StreamState(
        stream_id=sid, name=sid, source=Source(url="x"), kind="stream",
        analytics=tuple(AnalyticRef(name=a) for a in analytics), group=group,
        autorestart=Autorestart(), labels={}, staleness_s=None, allow_unregistered=False,
        created_at=at, updated_at=at,
    )  # fmt: skip
    return msgspec.structs.replace(s, **kw)  # type: ignore[arg-type]


def test_largest_free_share_wins_and_ties_break_by_id() -> None:
    agents = {a.agent_id: a for a in [agent("b", 4), agent("a", 4), agent("c", 2)]}
    got = plan([stream(f"s{i}", i) for i in range(4)], agents)
    assert got == [Assignment("s0", "a", 1), Assignment("s1", "b", 1),
                   Assignment("s2", "c", 1), Assignment("s3", "a", 1)]  # fmt: skip


def test_creation_order_and_capacity_limit() -> None:
    agents = {"a": agent("a", 2)}
    got = plan([stream("late", 5), stream("early", 1), stream("mid", 3)], agents)
    assert [g.stream_id for g in got] == ["early", "mid"]


def test_analytics_group_and_readiness_are_respected() -> None:
    agents = {a.agent_id: a for a in [
        agent("m", 8, ("motion",)), agent("mb", 8, ("motion", "black_frame"), groups=("lobby",)),
        agent("down", 8, ("motion", "black_frame", "faces"), status="not_ready"),
    ]}  # fmt: skip
    got = {g.stream_id: g.agent_id for g in plan([
        stream("both", 1, ("motion", "black_frame")), stream("lobby", 2, group="lobby"),
        stream("faces", 3, ("faces",)), stream("garage", 4, group="garage"),
    ], agents)}  # fmt: skip
    assert got == {"both": "mb", "lobby": "mb"}


def test_running_and_assigned_streams_count_and_never_move() -> None:
    agents = {"a": agent("a", 2), "b": agent("b", 2)}
    running = stream("r", 0, status="in_progress", agent_id="a", assignment_version=2)
    assigned = stream("q", 0, agent_id="a", assignment_version=2)
    got = plan([running, assigned, stream("n1", 1), stream("n2", 2), stream("n3", 3)], agents)
    assert [(g.stream_id, g.agent_id) for g in got] == [("n1", "b"), ("n2", "b")]


def test_ten_thousand_streams_fill_a_thousand_agents_evenly() -> None:
    agents = {f"a{i:04}": agent(f"a{i:04}", 10) for i in range(1000)}
    got = plan([stream(f"s{i}", i) for i in range(10_500)], agents)
    assert len(got) == 10_000
    per_agent: dict[str, int] = {}
    for g in got:
        per_agent[g.agent_id] = per_agent.get(g.agent_id, 0) + 1
    assert set(per_agent.values()) == {10}


def test_candidates_choose_as_plan_does_in_passes_of_any_size() -> None:
    # given agents of unequal capacity and some load already
    agents = {a.agent_id: a for a in [agent("a", 4), agent("b", 6), agent("c", 3), agent("d", 5)]}
    loads = {"a": 1, "b": 3}
    streams = [stream(f"s{i:02}", i) for i in range(20)]
    expected = plan(streams, agents, loads)
    c = Candidates()
    for a in agents.values():
        c.offer(a, loads.get(a.agent_id, 0))
    # when the master places them three at a time, the load folded in between passes
    got: list[Assignment] = []
    while True:
        left = [(s.stream_id, s.version) for s in streams[len(got) :]]
        chosen = c.take(left, lambda aid: loads.get(aid, 0), 3)
        if not chosen:
            break
        for g in chosen:
            loads[g.agent_id] = loads.get(g.agent_id, 0) + 1
        got += chosen
    # then the choices are plan()'s, until every slot is used
    assert got == expected
    assert len(got) == 18 - 4 and not c


def test_candidates_rerank_load_grown_elsewhere_and_take_back_freed_agents() -> None:
    a, b = agent("a", 4), agent("b", 4)
    loads = {"a": 0, "b": 0}
    c = Candidates()
    c.offer(a, 0)
    c.offer(b, 0)
    # given a's load grew behind the heap's back (a failover moved streams onto it)
    loads["a"] = 3
    # when one stream is placed, then b wins: a's entry was too optimistic and is re-ranked
    [g] = c.take([("s1", 1)], loads.__getitem__, 5)
    assert g.agent_id == "b"
    loads["b"] = 1
    # given a fills up and b is dropped (no longer eligible): nothing is placeable
    loads["a"] = 4
    c.drop("b")
    assert c.take([("s2", 1)], loads.__getitem__, 5) == []
    assert not c
    # when a frees two slots and is offered again, then it takes streams again
    loads["a"] = 2
    assert c.offer(a, 2)
    assert not c.offer(a, 2)  # already queued at that rank
    got = c.take([("s2", 1), ("s3", 1), ("s4", 1)], loads.__getitem__, 5)
    assert [x.agent_id for x in got] == ["a", "a"]


def test_candidates_heap_stays_bounded_when_agents_are_offered_again_and_again() -> None:
    c = Candidates()
    agents = [agent(f"a{i}", 100) for i in range(10)]
    for load in range(100):
        for a in agents:
            c.offer(a, 99 - load)  # every offer ranks the agent better: a new entry each time
    assert len(c) == 10
    assert len(c._heap) <= 2 * 10 + 64 + 1
    got = c.take([(f"s{i}", 1) for i in range(10)], lambda _aid: 0, 10)
    assert sorted(g.agent_id for g in got) == [a.agent_id for a in agents]
