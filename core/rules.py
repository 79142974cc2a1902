"""The master's rules: what to do about one agent or one stream now, and when to look again.
Pure: time, heartbeat ages and feedback times arrive as arguments.

Agents (LUNA's agent downgrade)::

    ready, its NATS connection seen to close (advisory)                           → downgrade
    ready, silent for its downgrade period (and the master has reigned that long) → downgrade
    not_ready, heartbeating again (after it was downgraded), connected            → recover
    not_ready for longer than the retention period                                → remove

Streams (autorestart, LUNA's stream downgrade)::

    failure, not fatal, attempts left         → schedule a restart (backoff, jitter)
    restarting, its delay over                → requeue
    in_progress, no feedback for staleness_s  → requeue
    in_progress, healthy for healthy_reset_s  → reset the attempt counter
    assigned, not started by its deadline     → requeue

``*_due`` say when the rule could next fire for an unchanged state, so the master keeps a heap
of due times and looks only at what is due (O(what changed), not O(all streams)).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from core import agent as A
from core import stream as S
from core.agent import AgentState
from core.stream import StreamState
from events.model import Cause

__all__ = [
    "agent_due",
    "agent_rule",
    "restartable",
    "stream_due",
    "stream_rule",
]

NEVER = math.inf

CauseOf = Callable[[str], Cause]
"""The cause of a decision, by its name (``stream.restart``, ``agent.downgrade``, ...)."""


def agent_rule(
    agent: AgentState,
    *,
    now: float,
    silent_s: float | None,
    reign_s: float,
    retention_s: float,
    cause: CauseOf,
    disconnected: str | None = None,
) -> A.AgentCommand | None:
    """The decision about ``agent`` now. ``silent_s``: seconds since its last heartbeat seen by
    this master (None: none seen during this reign); ``reign_s``: how long this master reigns;
    ``disconnected``: why its NATS connection closed, if the server said so since its last
    heartbeat (None: no such advisory)."""
    aid = agent.agent_id
    if agent.status == "ready" and disconnected is not None:
        return A.DowngradeAgent(agent_id=aid, at=now, cause=cause("agent.downgrade"),
                                reason=f"NATS connection closed ({disconnected})")  # fmt: skip
    if agent.status == "ready":
        silent = silent_s if silent_s is not None else reign_s
        if reign_s >= agent.downgrade_s and min(silent, reign_s) >= agent.downgrade_s:
            reason = f"no heartbeat for {silent:.1f}s (downgrade period {agent.downgrade_s}s)"
            return A.DowngradeAgent(agent_id=aid, at=now, cause=cause("agent.downgrade"),
                                    reason=reason)  # fmt: skip
        return None
    if agent.status == "not_ready":
        since = agent.not_ready_since
        if (disconnected is None and silent_s is not None and silent_s < agent.downgrade_s
                and (since is None or now - silent_s > since)):  # fmt: skip
            return A.RecoverAgent(agent_id=aid, at=now, cause=cause("agent.recover"))
        if since is not None and now - since > retention_s:
            return A.RemoveAgent(agent_id=aid, at=now, cause=cause("agent.remove"),
                                 reason=f"not_ready for more than {retention_s}s")  # fmt: skip
    return None


def agent_due(agent: AgentState, *, now: float, silent_s: float | None, reign_s: float,
              retention_s: float) -> float:  # fmt: skip
    """When `agent_rule` could next fire if nothing else happens (recovery is driven by the
    heartbeat itself)."""
    if agent.status == "ready":
        silent = silent_s if silent_s is not None else reign_s
        return now + max(agent.downgrade_s - min(silent, reign_s), 0.0)
    if agent.status == "not_ready" and agent.not_ready_since is not None:
        return agent.not_ready_since + retention_s + 0.001
    return NEVER


def _quiet(stream: StreamState, now: float, last_feedback: float | None, since: float) -> float:
    seen = max(last_feedback or 0.0, stream.running_since or now, since)
    return now - seen


def stream_rule(
    stream: StreamState,
    *,
    now: float,
    last_feedback: float | None,
    reign_since: float,
    default_staleness_s: float,
    start_deadline_s: float | None,
    jitter: float,
    cause: CauseOf,
) -> S.StreamCommand | None:
    """The decision about ``stream`` now. ``last_feedback``: wall time of the newest feedback
    this master saw for it; ``reign_since``: when this master was elected (silence before it
    is not held against the stream)."""
    sid = stream.stream_id
    if stream.status == "failure":
        if restartable(stream):
            return S.ScheduleRestart(stream_id=sid, at=now, cause=cause("stream.restart"),
                                     jitter=jitter)  # fmt: skip
        return None
    if stream.status == "restarting":
        if stream.restart_not_before is None or now >= stream.restart_not_before:
            return S.RequeueStream(stream_id=sid, at=now, cause=cause("stream.requeue"),
                                   reason=f"restart attempt {stream.restarts}")  # fmt: skip
        return None
    if stream.status == "in_progress":
        staleness = stream.staleness_s or default_staleness_s
        quiet = _quiet(stream, now, last_feedback, reign_since)
        if quiet > staleness:
            return S.RequeueStream(stream_id=sid, at=now, cause=cause("stream.requeue"),
                                   reason=f"no feedback for {quiet:.1f}s"
                                   f" (staleness period {staleness}s)")  # fmt: skip
        if (stream.restarts > 0 and stream.running_since is not None
                and now - stream.running_since >= stream.autorestart.healthy_reset_s):  # fmt: skip
            return S.ResetRestarts(stream_id=sid, at=now, cause=cause("stream.healthy"))
        return None
    if stream.status == "pending" and stream.agent_id is not None and start_deadline_s:
        assigned_for = now - max(stream.updated_at, reign_since)
        if assigned_for > start_deadline_s:
            return S.RequeueStream(stream_id=sid, at=now, cause=cause("stream.requeue"),
                                   reason=f"not started by its agent {stream.agent_id} within"
                                   f" {start_deadline_s}s")  # fmt: skip
    return None


def restartable(stream: StreamState) -> bool:
    """A failed stream that autorestart will try again: not fatal, attempts left."""
    err, policy = stream.last_error, stream.autorestart
    return (
        (err is None or not err.fatal) and policy.enabled and stream.restarts < policy.max_attempts
    )


def stream_due(
    stream: StreamState,
    *,
    now: float,
    last_feedback: float | None,
    reign_since: float,
    default_staleness_s: float,
    start_deadline_s: float | None,
) -> float:
    """When `stream_rule` could next fire for this state (``now`` if it may fire now)."""
    status = stream.status
    if status == "failure":
        # A stream that gave up (or failed fatally) waits for an operator: never due again,
        # or the master would look at it on every pass.
        return now if restartable(stream) else NEVER
    if status == "restarting":
        return stream.restart_not_before or now
    if status == "in_progress":
        staleness = stream.staleness_s or default_staleness_s
        due = now + max(staleness - _quiet(stream, now, last_feedback, reign_since), 0.0) + 0.001
        if stream.restarts > 0 and stream.running_since is not None:
            due = min(due, stream.running_since + stream.autorestart.healthy_reset_s)
        return due
    if status == "pending" and stream.agent_id is not None and start_deadline_s:
        return max(stream.updated_at, reign_since) + start_deadline_s + 0.001
    return NEVER
