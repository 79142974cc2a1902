"""The stream aggregate: its state, the commands on it, ``decide`` and ``evolve``. Pure.

Lifecycle (CONTRACT §2)::

    create ─► pending ──assign──► pending(agent) ──running──► in_progress ──done──► done
                 ▲                     │                          │
                 │                     └──────failure─────────────┴──► failure
                 │                                                        │ non-fatal + autorestart
                 └───────────requeue (delay over / stale / agent down)─── restarting
    stop: pending|in_progress|restarting|failure ─► stopped;  start: stopped|failure|done ─► pending
    delete: any ─► deleted (final)

``version`` counts applied events. ``assignment_version`` is the version right after the stream
was assigned: feedback must carry it, or it is stale.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeVar

import msgspec

from core.errors import IllegalTransition, NotFound, Stale, VersionMismatch
from events.model import (
    AnalyticRef,
    Autorestart,
    Cause,
    ErrorInfo,
    Source,
    SpoolTarget,
    StreamAssigned,
    StreamCreated,
    StreamDeleted,
    StreamEvent,
    StreamFailed,
    StreamFinished,
    StreamKind,
    StreamRequeued,
    StreamRestartScheduled,
    StreamRestartsReset,
    StreamRunning,
    StreamStarted,
    StreamStopped,
)

__all__ = [
    "AssignStream",
    "CreateStream",
    "DeleteStream",
    "ReportFeedback",
    "RequeueStream",
    "ResetRestarts",
    "ScheduleRestart",
    "StartStream",
    "Status",
    "StopStream",
    "StreamCommand",
    "StreamState",
    "compact",
    "decide",
    "evolve",
    "restart_delay",
]

Status = Literal["pending", "in_progress", "done", "failure", "restarting", "stopped", "deleted"]


class StreamState(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    stream_id: str
    name: str
    source: Source
    kind: StreamKind
    analytics: tuple[AnalyticRef, ...]
    group: str | None
    autorestart: Autorestart
    labels: dict[str, str]
    staleness_s: float | None
    allow_unregistered: bool
    created_at: float
    spool: SpoolTarget | None = None
    updated_at: float
    status: Status = "pending"
    version: int = 1
    agent_id: str | None = None
    assignment_version: int | None = None
    last_error: ErrorInfo | None = None
    restarts: int = 0
    restart_not_before: float | None = None
    running_since: float | None = None
    keyframes_only: bool = False
    analysis_fps: float | None = None

    @property
    def is_assigned(self) -> bool:
        return self.agent_id is not None

    @property
    def is_live(self) -> bool:
        """Counts against an agent's capacity: assigned and not finished."""
        return self.agent_id is not None and self.status in ("pending", "in_progress")


# ---- commands --------------------------------------------------------------------------------


class _Command(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    stream_id: str
    at: float
    cause: Cause


class CreateStream(_Command, frozen=True, kw_only=True):
    name: str
    source: Source
    kind: StreamKind
    analytics: tuple[AnalyticRef, ...] = ()
    group: str | None = None
    autorestart: Autorestart = msgspec.field(default_factory=Autorestart)
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    staleness_s: float | None = None
    allow_unregistered: bool = False
    spool: SpoolTarget | None = None
    keyframes_only: bool = False
    analysis_fps: float | None = None


class StartStream(_Command, frozen=True, kw_only=True):
    expected_version: int | None = None


class StopStream(_Command, frozen=True, kw_only=True):
    expected_version: int | None = None


class DeleteStream(_Command, frozen=True, kw_only=True):
    expected_version: int | None = None


class ReportFeedback(_Command, frozen=True, kw_only=True):
    """An agent's feedback about its assignment (``assignment_version``)."""

    agent_id: str
    assignment_version: int
    status: Literal["in_progress", "done", "failure"]
    error: ErrorInfo | None = None


class AssignStream(_Command, frozen=True, kw_only=True):
    agent_id: str


class ScheduleRestart(_Command, frozen=True, kw_only=True):
    """Master: retry a non-fatal failure. ``jitter`` in [0, 1) spreads restart waves."""

    jitter: float = 0.0


class RequeueStream(_Command, frozen=True, kw_only=True):
    reason: str


class ResetRestarts(_Command, frozen=True, kw_only=True):
    pass


StreamCommand = (
    CreateStream
    | StartStream
    | StopStream
    | DeleteStream
    | ReportFeedback
    | AssignStream
    | ScheduleRestart
    | RequeueStream
    | ResetRestarts
)


# ---- decide ----------------------------------------------------------------------------------


def restart_delay(policy: Autorestart, attempt: int, jitter: float) -> float:
    """``delay_s × backoff^(attempt-1)`` capped at ``max_delay_s``, plus up to 10 % jitter."""
    base = min(policy.delay_s * policy.backoff ** max(attempt - 1, 0), policy.max_delay_s)
    return float(base * (1.0 + 0.1 * jitter))


def _check_version(state: StreamState, expected: int | None) -> None:
    if expected is not None and expected != state.version:
        raise VersionMismatch(
            f"stream {state.stream_id} is at version {state.version}, not {expected}:"
            " get it again and retry"
        )


def _illegal(state: StreamState, what: str) -> IllegalTransition:
    return IllegalTransition(f"cannot {what} stream {state.stream_id}: it is {state.status}")


def decide(state: StreamState | None, cmd: StreamCommand) -> list[StreamEvent]:
    """The events that ``cmd`` causes on ``state`` (empty when nothing changes)."""
    sid, at, cause = cmd.stream_id, cmd.at, cmd.cause
    if isinstance(cmd, CreateStream):
        if state is not None:
            raise IllegalTransition(f"stream {sid} already exists")
        return [
            StreamCreated(
                at=at, cause=cause, stream_id=sid, name=cmd.name, source=cmd.source,
                kind=cmd.kind, analytics=cmd.analytics, group=cmd.group,
                autorestart=cmd.autorestart, labels=cmd.labels, staleness_s=cmd.staleness_s,
                allow_unregistered=cmd.allow_unregistered, spool=cmd.spool,
                keyframes_only=cmd.keyframes_only, analysis_fps=cmd.analysis_fps,
            )
        ]  # fmt: skip
    if state is None or state.status == "deleted":
        raise NotFound(f"stream {sid} not found")

    match cmd:
        case StartStream():
            _check_version(state, cmd.expected_version)
            if state.status in ("pending", "in_progress", "restarting"):
                return []
            return [StreamStarted(at=at, cause=cause, stream_id=sid)]
        case StopStream():
            _check_version(state, cmd.expected_version)
            if state.status == "stopped":
                return []
            if state.status == "done":
                raise _illegal(state, "stop")
            return [StreamStopped(at=at, cause=cause, stream_id=sid)]
        case DeleteStream():
            _check_version(state, cmd.expected_version)
            return [StreamDeleted(at=at, cause=cause, stream_id=sid)]
        case ReportFeedback():
            return _decide_feedback(state, cmd)
        case AssignStream():
            if state.status != "pending" or state.agent_id is not None:
                raise _illegal(state, "assign")
            return [
                StreamAssigned(
                    at=at, cause=cause, stream_id=sid, agent_id=cmd.agent_id,
                    base_version=state.version,
                )
            ]  # fmt: skip
        case ScheduleRestart():
            policy = state.autorestart
            err = state.last_error
            if state.status != "failure" or (err is not None and err.fatal):
                raise _illegal(state, "restart")
            if not policy.enabled or state.restarts >= policy.max_attempts:
                raise _illegal(state, "restart (no attempts left)")
            attempt = state.restarts + 1
            delay = restart_delay(policy, attempt, cmd.jitter)
            return [
                StreamRestartScheduled(
                    at=at, cause=cause, stream_id=sid, attempt=attempt, delay_s=delay,
                    not_before=at + delay, base_version=state.version,
                )
            ]  # fmt: skip
        case RequeueStream():
            if state.status == "restarting":
                if state.restart_not_before is not None and at < state.restart_not_before:
                    raise _illegal(state, "requeue (restart delay not over)")
            elif not state.is_live:
                raise _illegal(state, "requeue")
            return [
                StreamRequeued(
                    at=at, cause=cause, stream_id=sid, reason=cmd.reason,
                    base_version=state.version,
                )
            ]  # fmt: skip
        case ResetRestarts():
            if state.restarts == 0 or state.status != "in_progress":
                return []
            return [
                StreamRestartsReset(at=at, cause=cause, stream_id=sid, base_version=state.version)
            ]
    raise TypeError(f"unknown command {type(cmd).__name__}")  # pragma: no cover


def _decide_feedback(state: StreamState, cmd: ReportFeedback) -> list[StreamEvent]:
    if cmd.agent_id != state.agent_id or cmd.assignment_version != state.assignment_version:
        raise Stale(
            f"feedback for stream {state.stream_id} version {cmd.assignment_version} from"
            f" {cmd.agent_id} is stale (assigned to {state.agent_id}"
            f" at version {state.assignment_version})"
        )
    if state.status not in ("pending", "in_progress"):
        raise Stale(f"stream {state.stream_id} is {state.status}; feedback ignored")
    sid, at, cause, agent = state.stream_id, cmd.at, cmd.cause, cmd.agent_id
    av = cmd.assignment_version
    if cmd.status == "in_progress":
        if state.status == "in_progress":
            return []
        return [
            StreamRunning(at=at, cause=cause, stream_id=sid, agent_id=agent, assignment_version=av)
        ]
    if cmd.status == "done":
        return [
            StreamFinished(at=at, cause=cause, stream_id=sid, agent_id=agent, assignment_version=av)
        ]
    error = cmd.error or ErrorInfo(
        code="unknown", message="agent reported a failure without details"
    )
    return [
        StreamFailed(
            at=at, cause=cause, stream_id=sid, agent_id=agent, assignment_version=av, error=error
        )
    ]


# ---- evolve ----------------------------------------------------------------------------------


_DECISIONS: frozenset[type] = frozenset(
    {StreamAssigned, StreamRestartScheduled, StreamRequeued, StreamRestartsReset}
)
_FEEDBACK: frozenset[type] = frozenset({StreamRunning, StreamFinished, StreamFailed})


def _is_current(state: StreamState, event: StreamEvent) -> bool:
    """Master decisions and feedback apply only to the version they were based on."""
    kind = type(event)
    if kind in _DECISIONS:
        return event.base_version == state.version  # type: ignore[attr-defined, no-any-return]
    if kind in _FEEDBACK:
        return bool(
            event.agent_id == state.agent_id  # type: ignore[attr-defined]
            and event.assignment_version == state.assignment_version  # type: ignore[attr-defined]
        )
    return True


def _created(event: StreamCreated) -> StreamState:
    return StreamState(
        stream_id=event.stream_id, name=event.name, source=event.source, kind=event.kind,
        analytics=_shared_analytics(event.analytics), group=event.group,
        autorestart=_shared_policy(event.autorestart),
        labels=_shared_labels(event.labels), staleness_s=event.staleness_s,
        allow_unregistered=event.allow_unregistered, created_at=event.at, updated_at=event.at,
        spool=event.spool, keyframes_only=event.keyframes_only, analysis_fps=event.analysis_fps,
    )  # fmt: skip


def compact(state: StreamState) -> StreamState:
    """``state`` holding the shared instances of its commonly equal parts (a state restored
    from a snapshot: the fold of ``StreamCreated`` shares them already)."""
    return _replace(
        state, analytics=_shared_analytics(state.analytics),
        autorestart=_shared_policy(state.autorestart), labels=_shared_labels(state.labels),
    )  # fmt: skip


# One instance for a value many streams hold equal: the analytics they ask for, their restart
# policy, their labels. A million cameras mostly share a handful of each, and each copy costs
# 60-200 bytes (a tuple, Structs, a dict, the name strings, boxed floats): sharing them took a
# projected stream from 1,101 to 679 bytes (tracemalloc, 100k streams). States are frozen and
# nothing mutates their dicts, so sharing is invisible. Unhashable keys (nested parameter
# values) and keys past ``_SHARED_MAX`` per table keep their own copy.
_SHARED_MAX = 16_384
_ANALYTICS: dict[object, tuple[AnalyticRef, ...]] = {}
_POLICIES: dict[object, Autorestart] = {}
_LABELS: dict[object, dict[str, str]] = {}
_T = TypeVar("_T")


def _shared(table: dict[object, _T], key: object, value: _T) -> _T:
    try:
        got = table.get(key)
    except TypeError:
        return value
    if got is not None:
        return got
    if len(table) < _SHARED_MAX:
        table[key] = value
    return value


def _shared_analytics(analytics: tuple[AnalyticRef, ...]) -> tuple[AnalyticRef, ...]:
    if len(analytics) == 1 and not analytics[0].params:  # the common case, without a key tuple
        return _shared(_ANALYTICS, analytics[0].name, analytics)
    # parameter types in the key: 1, 1.0 and true are equal in Python, not as parameters
    key = tuple((a.name, *((k, type(v), v) for k, v in sorted(a.params.items())))
                for a in analytics)  # fmt: skip
    return _shared(_ANALYTICS, key, analytics)


def _shared_policy(policy: Autorestart) -> Autorestart:
    return _shared(_POLICIES, policy, policy)  # a frozen Struct of scalars: its own key


def _shared_labels(labels: dict[str, str]) -> dict[str, str]:
    if not labels:
        return _shared(_LABELS, (), labels)
    return _shared(_LABELS, tuple(sorted(labels.items())), labels)


_replace = msgspec.structs.replace

# One small mutator per event type: (state, event, new version) -> state. Plain keyword calls
# (no dict unpacking) keep the fold cheap: it runs for every event of every rebuild.
_MUTATORS: dict[type, Callable[[StreamState, Any, int], StreamState]] = {
    StreamAssigned: lambda s, e, v: _replace(
        s, agent_id=e.agent_id, assignment_version=v, version=v, updated_at=e.at
    ),
    StreamRunning: lambda s, e, v: _replace(
        s, status="in_progress", running_since=e.at, version=v, updated_at=e.at
    ),
    StreamFinished: lambda s, e, v: _unassigned(s, "done", v, e.at),
    StreamFailed: lambda s, e, v: _unassigned(s, "failure", v, e.at, last_error=e.error),
    StreamRestartScheduled: lambda s, e, v: _replace(
        s,
        status="restarting",
        restarts=e.attempt,
        restart_not_before=e.not_before,
        version=v,
        updated_at=e.at,
    ),
    StreamRequeued: lambda s, e, v: _unassigned(s, "pending", v, e.at, restart_not_before=None),
    StreamRestartsReset: lambda s, e, v: _replace(s, restarts=0, version=v, updated_at=e.at),
    StreamStopped: lambda s, e, v: _unassigned(s, "stopped", v, e.at),
    StreamStarted: lambda s, e, v: _unassigned(s, "pending", v, e.at, restarts=0, last_error=None),
    StreamDeleted: lambda s, e, v: _unassigned(s, "deleted", v, e.at),
}


def evolve(state: StreamState | None, event: StreamEvent) -> StreamState | None:
    """The state after ``event``. Superseded decisions and events for unknown streams change
    nothing (a fold never fails)."""
    if type(event) is StreamCreated:
        return _created(event) if state is None else state
    if state is None or state.status == "deleted" or not _is_current(state, event):
        return state
    mutate = _MUTATORS.get(type(event))
    return state if mutate is None else mutate(state, event, state.version + 1)


def _unassigned(
    state: StreamState, status: Status, version: int, at: float, **changes: Any
) -> StreamState:
    return _replace(
        state, status=status, agent_id=None, assignment_version=None, running_since=None,
        version=version, updated_at=at, **changes,
    )  # fmt: skip
