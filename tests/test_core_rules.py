"""The master's rules and their due times agree: a stream the rule leaves alone now is not due
now (or the master would look at it on every pass), and a stream the rule acts on is due."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from core.rules import NEVER, stream_due, stream_rule
from core.stream import StreamState
from events.model import Autorestart, Cause, ErrorInfo, Source

MASTER = Cause(kind="master", name="test", epoch=1)
NOW = 1_000.0

times = st.one_of(st.none(), st.floats(min_value=0.0, max_value=2 * NOW))
states = st.builds(
    StreamState,
    stream_id=st.just("s1"),
    name=st.just("gate"),
    source=st.just(Source(url="rtsp://cam/1")),
    kind=st.just("stream"),
    analytics=st.just(()),
    group=st.none(),
    autorestart=st.builds(
        Autorestart,
        enabled=st.booleans(),
        max_attempts=st.integers(min_value=0, max_value=4),
        healthy_reset_s=st.floats(min_value=1.0, max_value=100.0),
    ),
    labels=st.just({}),
    staleness_s=st.one_of(st.none(), st.floats(min_value=1.0, max_value=100.0)),
    allow_unregistered=st.just(False),
    created_at=st.just(0.0),
    updated_at=st.floats(min_value=0.0, max_value=NOW),
    status=st.sampled_from(["pending", "in_progress", "failure", "restarting", "done", "stopped"]),
    agent_id=st.one_of(st.none(), st.just("a1")),
    last_error=st.one_of(st.none(), st.builds(ErrorInfo, code=st.just("x"), fatal=st.booleans())),
    restarts=st.integers(min_value=0, max_value=5),
    restart_not_before=times,
    running_since=st.one_of(st.none(), st.floats(min_value=0.0, max_value=NOW)),
)


def _rule(state: StreamState, last_feedback: float | None, deadline: float | None) -> object:
    return stream_rule(
        state, now=NOW, last_feedback=last_feedback, reign_since=0.0, default_staleness_s=30.0,
        start_deadline_s=deadline, jitter=0.5, cause=lambda name: MASTER,
    )  # fmt: skip


def _due(state: StreamState, last_feedback: float | None, deadline: float | None) -> float:
    return stream_due(
        state, now=NOW, last_feedback=last_feedback, reign_since=0.0, default_staleness_s=30.0,
        start_deadline_s=deadline,
    )  # fmt: skip


@settings(max_examples=2000, deadline=None)
@given(
    state=states,
    last_feedback=st.one_of(st.none(), st.floats(min_value=0.0, max_value=NOW)),
    deadline=st.one_of(st.none(), st.floats(min_value=1.0, max_value=120.0)),
)
def test_a_stream_is_due_now_exactly_when_its_rule_decides_something(
    state: StreamState, last_feedback: float | None, deadline: float | None
) -> None:
    decided = _rule(state, last_feedback, deadline)
    due = _due(state, last_feedback, deadline)
    if decided is None:
        assert due > NOW, f"due at {due} but the rule decides nothing for {state}"
    else:
        # (due times carry a millisecond past the boundary, where the rule's ">" holds)
        assert due <= NOW + 0.01, f"the rule decides {decided} but it is due only at {due}"


def test_a_stream_that_gave_up_is_never_due_again() -> None:
    gave_up = StreamState(
        stream_id="s1", name="gate", source=Source(url="rtsp://cam/1"), kind="stream",
        analytics=(), group=None, autorestart=Autorestart(max_attempts=3), labels={},
        staleness_s=None, allow_unregistered=False, created_at=0.0, updated_at=NOW,
        status="failure", restarts=3, last_error=ErrorInfo(code="source_unreachable"),
    )  # fmt: skip
    assert _rule(gave_up, None, None) is None
    assert _due(gave_up, None, None) == NEVER
