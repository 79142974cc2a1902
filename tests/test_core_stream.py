"""Given events, when a command, then events (or an error): the stream lifecycle of CONTRACT §2."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from core import stream as S
from core.errors import IllegalTransition, NotFound, Stale, VersionMismatch
from events.model import Autorestart, Cause, ErrorInfo, Source, StreamEvent

USER = Cause(kind="command", name="test")
MASTER = Cause(kind="master", name="test", epoch=1)
AGENT = Cause(kind="feedback", agent_id="a1")


def fold(events: Sequence[StreamEvent]) -> S.StreamState | None:
    state: S.StreamState | None = None
    for e in events:
        state = S.evolve(state, e)
    return state


def run(
    history: list[StreamEvent], cmd: S.StreamCommand
) -> tuple[list[StreamEvent], S.StreamState]:
    """Given history, when cmd: the new events and the state after them."""
    new = S.decide(fold(history), cmd)
    after = fold(history + new)
    assert after is not None
    return new, after


def create(**kw: object) -> S.CreateStream:
    args: dict[str, object] = dict(
        stream_id="s1", at=10.0, cause=USER, name="gate", source=Source(url="rtsp://cam/1"),
        kind="stream",
    )  # fmt: skip
    args.update(kw)
    return S.CreateStream(**args)  # type: ignore[arg-type]


def history_until(status: str) -> list[StreamEvent]:
    """Events that bring stream s1 to `status`."""
    h = S.decide(None, create())
    if status == "pending":
        return h
    h += S.decide(fold(h), S.AssignStream(stream_id="s1", at=11, cause=MASTER, agent_id="a1"))
    if status == "assigned":
        return h
    av = fold(h).assignment_version  # type: ignore[union-attr]
    fb = dict(stream_id="s1", cause=AGENT, agent_id="a1", assignment_version=av)
    if status == "in_progress":
        return h + S.decide(fold(h), S.ReportFeedback(at=12, status="in_progress", **fb))  # type: ignore[arg-type]
    if status == "done":
        return h + S.decide(fold(h), S.ReportFeedback(at=12, status="done", **fb))  # type: ignore[arg-type]
    if status in ("failure", "restarting"):
        err = ErrorInfo(code="source_unreachable", message="timeout", fatal=False)
        h += S.decide(fold(h), S.ReportFeedback(at=12, status="failure", error=err, **fb))  # type: ignore[arg-type]
        if status == "restarting":
            h += S.decide(fold(h), S.ScheduleRestart(stream_id="s1", at=13, cause=MASTER))
        return h
    if status == "stopped":
        return h + S.decide(fold(h), S.StopStream(stream_id="s1", at=12, cause=USER))
    raise AssertionError(status)


def test_create_makes_a_pending_stream_at_version_1() -> None:
    new, state = run([], create())
    assert [type(e).__name__ for e in new] == ["StreamCreated"]
    assert (state.status, state.version, state.agent_id) == ("pending", 1, None)


def test_create_twice_is_refused() -> None:
    with pytest.raises(IllegalTransition):
        run(history_until("pending"), create())


def test_assign_then_running_then_done() -> None:
    h = history_until("assigned")
    state = fold(h)
    assert state is not None and state.status == "pending" and state.agent_id == "a1"
    assert state.assignment_version == state.version == 2
    new, state = run(h, S.ReportFeedback(stream_id="s1", at=12, cause=AGENT, agent_id="a1",
                                         assignment_version=2, status="in_progress"))  # fmt: skip
    assert state.status == "in_progress" and state.version == 3
    again, _ = run(h + new, S.ReportFeedback(stream_id="s1", at=13, cause=AGENT, agent_id="a1",
                                             assignment_version=2, status="in_progress"))  # fmt: skip
    assert again == []
    _, state = run(h + new, S.ReportFeedback(stream_id="s1", at=14, cause=AGENT, agent_id="a1",
                                             assignment_version=2, status="done"))  # fmt: skip
    assert (state.status, state.agent_id) == ("done", None)


@pytest.mark.parametrize("agent,version", [("a2", 2), ("a1", 1)])
def test_feedback_from_another_agent_or_version_is_stale(agent: str, version: int) -> None:
    with pytest.raises(Stale):
        run(history_until("assigned"), S.ReportFeedback(
            stream_id="s1", at=12, cause=AGENT, agent_id=agent, assignment_version=version,
            status="in_progress"))  # fmt: skip


def test_failure_records_the_error_and_restart_goes_through_restarting() -> None:
    h = history_until("failure")
    state = fold(h)
    assert state is not None and state.status == "failure" and state.last_error is not None
    assert state.last_error.code == "source_unreachable"
    new, state = run(h, S.ScheduleRestart(stream_id="s1", at=20, cause=MASTER))
    assert state.status == "restarting" and state.restarts == 1
    assert state.restart_not_before == pytest.approx(25.0)
    with pytest.raises(IllegalTransition):
        run(h + new, S.RequeueStream(stream_id="s1", at=24, cause=MASTER, reason="restart"))
    _, state = run(h + new, S.RequeueStream(stream_id="s1", at=25, cause=MASTER, reason="restart"))
    assert (state.status, state.restarts) == ("pending", 1)


def test_restart_delays_grow_and_are_capped() -> None:
    policy = Autorestart(delay_s=1, backoff=2, max_delay_s=5)
    assert [S.restart_delay(policy, n, 0.0) for n in (1, 2, 3, 4)] == [1, 2, 4, 5]
    assert S.restart_delay(policy, 1, 0.99) == pytest.approx(1.099)


def test_fatal_failure_never_restarts() -> None:
    h = history_until("assigned")
    err = ErrorInfo(code="source_not_found", message="no such file", fatal=True)
    h += S.decide(fold(h), S.ReportFeedback(stream_id="s1", at=12, cause=AGENT, agent_id="a1",
                                            assignment_version=2, status="failure", error=err))  # fmt: skip
    with pytest.raises(IllegalTransition):
        run(h, S.ScheduleRestart(stream_id="s1", at=13, cause=MASTER))


def test_restarts_stop_after_max_attempts() -> None:
    h = S.decide(None, create(autorestart=Autorestart(max_attempts=1)))
    for attempt in range(2):
        h += S.decide(fold(h), S.AssignStream(stream_id="s1", at=11, cause=MASTER, agent_id="a1"))
        av = fold(h).assignment_version  # type: ignore[union-attr]
        h += S.decide(fold(h), S.ReportFeedback(
            stream_id="s1", at=12, cause=AGENT, agent_id="a1", assignment_version=av,
            status="failure", error=ErrorInfo(code="x")))  # fmt: skip
        if attempt == 0:
            h += S.decide(fold(h), S.ScheduleRestart(stream_id="s1", at=13, cause=MASTER))
            h += S.decide(fold(h), S.RequeueStream(stream_id="s1", at=99, cause=MASTER, reason="r"))
    with pytest.raises(IllegalTransition):
        run(h, S.ScheduleRestart(stream_id="s1", at=100, cause=MASTER))


@pytest.mark.parametrize("status", ["pending", "assigned", "in_progress", "failure", "restarting"])
def test_stop_from_any_active_status(status: str) -> None:
    _, state = run(history_until(status), S.StopStream(stream_id="s1", at=30, cause=USER))
    assert (state.status, state.agent_id) == ("stopped", None)


def test_stop_is_idempotent_and_done_cannot_stop() -> None:
    assert run(history_until("stopped"), S.StopStream(stream_id="s1", at=30, cause=USER))[0] == []
    with pytest.raises(IllegalTransition):
        run(history_until("done"), S.StopStream(stream_id="s1", at=30, cause=USER))


@pytest.mark.parametrize("status", ["stopped", "failure", "done"])
def test_start_brings_back_to_pending_and_clears_restarts(status: str) -> None:
    _, state = run(history_until(status), S.StartStream(stream_id="s1", at=30, cause=USER))
    assert (state.status, state.restarts, state.last_error) == ("pending", 0, None)


@pytest.mark.parametrize("status", ["pending", "in_progress", "restarting"])
def test_start_of_an_active_stream_changes_nothing(status: str) -> None:
    assert run(history_until(status), S.StartStream(stream_id="s1", at=30, cause=USER))[0] == []


def test_delete_is_final() -> None:
    h = history_until("in_progress")
    new, state = run(h, S.DeleteStream(stream_id="s1", at=30, cause=USER))
    assert state.status == "deleted"
    for cmd in (S.StartStream(stream_id="s1", at=31, cause=USER),
                S.DeleteStream(stream_id="s1", at=31, cause=USER)):  # fmt: skip
        with pytest.raises(NotFound):
            run(h + new, cmd)


def test_expected_version_must_match() -> None:
    with pytest.raises(VersionMismatch):
        run(
            history_until("pending"),
            S.StopStream(stream_id="s1", at=30, cause=USER, expected_version=7),
        )
    _, state = run(history_until("pending"), S.StopStream(stream_id="s1", at=30, cause=USER,
                                                          expected_version=1))  # fmt: skip
    assert state.status == "stopped"


def test_commands_on_unknown_stream_are_not_found() -> None:
    with pytest.raises(NotFound):
        S.decide(None, S.StopStream(stream_id="nope", at=1, cause=USER))


@pytest.mark.parametrize("status", ["in_progress", "done", "stopped"])
def test_assign_only_pending_unassigned(status: str) -> None:
    with pytest.raises(IllegalTransition):
        run(
            history_until(status),
            S.AssignStream(stream_id="s1", at=30, cause=MASTER, agent_id="a2"),
        )


def test_a_superseded_master_decision_is_a_no_op_in_the_fold() -> None:
    h = history_until("pending")
    decision = S.decide(fold(h), S.AssignStream(stream_id="s1", at=11, cause=MASTER, agent_id="a1"))
    h += S.decide(fold(h), S.StopStream(stream_id="s1", at=11, cause=USER))
    state = fold(h + decision)
    assert state is not None and (state.status, state.agent_id, state.version) == (
        "stopped",
        None,
        2,
    )


def test_requeue_of_a_running_stream_unassigns_it() -> None:
    _, state = run(history_until("in_progress"),
                   S.RequeueStream(stream_id="s1", at=40, cause=MASTER, reason="agent_down"))  # fmt: skip
    assert (state.status, state.agent_id) == ("pending", None)


def test_equal_parts_of_many_streams_are_one_instance_and_read_back_as_given() -> None:
    """A million cameras mostly share their analytics, restart policy and labels: the fold keeps
    one instance of each (memory), and sharing never changes a value (1, 1.0 and true are equal
    Python keys but different parameters)."""
    from events.codec import decode_event, encode_event
    from events.model import AnalyticRef

    def created(sid: str, **kw: object) -> S.StreamState:
        [event] = S.decide(None, create(stream_id=sid, **kw))
        state = S.evolve(None, decode_event(encode_event(event)))  # decoded: distinct objects
        assert state is not None
        return state

    motion = (AnalyticRef(name="motion"),)
    a, b = (
        created("s1", analytics=motion, labels={"site": "hq"}),
        created("s2", analytics=motion, labels={"site": "hq"}),
    )
    assert a.analytics is b.analytics and a.labels is b.labels and a.autorestart is b.autorestart
    assert created("s3", labels={"site": "lab"}).labels == {"site": "lab"}

    as_int = created("s4", analytics=(AnalyticRef(name="motion", params={"k": 1}),))
    as_float = created("s5", analytics=(AnalyticRef(name="motion", params={"k": 1.0}),))
    as_bool = created("s6", analytics=(AnalyticRef(name="motion", params={"k": True}),))
    for state, value in ((as_int, 1), (as_float, 1.0), (as_bool, True)):
        got = state.analytics[0].params["k"]
        assert got == value and type(got) is type(value)
    nested = created("s7", analytics=(AnalyticRef(name="zones", params={"z": [[0, 0], [1, 1]]}),))
    assert nested.analytics[0].params == {"z": [[0, 0], [1, 1]]}  # unhashable: its own copy
    assert S.compact(a).analytics is a.analytics
