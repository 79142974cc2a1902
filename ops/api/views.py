"""What users see: the views of streams, agents and the master (CONTRACT §2) as Structs.

Every reply's ``result`` is one of these (or a list Struct of them), so the OpenAPI document is
generated from the same types the code returns. Times are ISO-8601 UTC with milliseconds.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

import msgspec

from core.agent import AgentState, AgentStatus
from core.stream import Status, StreamState
from events.model import AnalyticOffer, Autorestart, ErrorInfo, HostInfo
from events.protocol import AssignedAnalytic, Assignment, Heartbeat, SourceOut, SpoolOut

__all__ = [
    "AgentList",
    "AgentView",
    "Deleted",
    "HeartbeatView",
    "MasterView",
    "StreamList",
    "StreamView",
    "ThisManager",
    "agent_view",
    "assignment_of",
    "iso",
    "stream_view",
]


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class StreamView(msgspec.Struct, frozen=True, kw_only=True):
    stream_id: str
    name: str
    source: SourceOut
    kind: Literal["stream", "file"]
    analytics: list[AssignedAnalytic]
    group: str | None
    status: Status
    version: int
    agent_id: str | None
    created_at: str | None
    updated_at: str | None
    last_error: ErrorInfo | None
    restarts: int
    restart_not_before: str | None
    labels: dict[str, str]
    autorestart: Autorestart
    staleness_s: float | None
    spool: SpoolOut | None
    keyframes_only: bool = False
    analysis_fps: float | None = None


class StreamList(msgspec.Struct, frozen=True, kw_only=True):
    streams: list[StreamView]
    next_cursor: str | None


class Deleted(msgspec.Struct, frozen=True, kw_only=True):
    stream_id: str
    deleted: bool = True


class HeartbeatView(Heartbeat, frozen=True, kw_only=True):
    age_s: float
    """Seconds since this manager received it."""


class AgentView(msgspec.Struct, frozen=True, kw_only=True):
    agent_id: str
    name: str
    status: AgentStatus
    version: int
    capacity: int
    load: int
    free: int
    analytics: list[AnalyticOffer]
    groups: list[str]
    labels: dict[str, str]
    host: HostInfo
    registered_at: str | None
    updated_at: str | None
    not_ready_since: str | None
    heartbeat_interval_s: float
    feedback_interval_s: float
    downgrade_s: float
    last_heartbeat: HeartbeatView | None
    feedback_refused: dict[str, int] = {}
    """This agent's feedback messages refused by the managers, per reason."""


class AgentList(msgspec.Struct, frozen=True, kw_only=True):
    agents: list[AgentView]


class ThisManager(msgspec.Struct, frozen=True, kw_only=True):
    manager_id: str
    is_master: bool
    epoch: int
    since: str | None


class MasterView(msgspec.Struct, frozen=True, kw_only=True):
    manager_id: str | None = None
    epoch: int = 0
    since: str | None = None
    election_seq: int | None = None
    this_manager: ThisManager | None = None
    replay_of_seq: int | None = None


def _analytics(s: StreamState) -> list[AssignedAnalytic]:
    return [AssignedAnalytic(a.name, a.params) for a in s.analytics]


def _spool(s: StreamState) -> SpoolOut | None:
    sp = s.spool
    return None if sp is None else SpoolOut(sp.type, sp.url, sp.path)


def assignment_of(s: StreamState, start_by: float | None = None) -> Assignment:
    """What an agent gets for a stream assigned to it (CONTRACT §4, ``start[]``)."""
    return Assignment(
        stream_id=s.stream_id, version=s.assignment_version or 0, name=s.name,
        source=SourceOut(s.source.url), kind=s.kind, analytics=_analytics(s), labels=s.labels,
        stall_timeout_s=s.staleness_s, spool=_spool(s), start_by=start_by,
        keyframes_only=s.keyframes_only, analysis_fps=s.analysis_fps,
    )  # fmt: skip


def stream_view(s: StreamState) -> StreamView:
    return StreamView(
        stream_id=s.stream_id, name=s.name, source=SourceOut(s.source.url), kind=s.kind,
        analytics=_analytics(s), group=s.group, status=s.status, version=s.version,
        agent_id=s.agent_id, created_at=iso(s.created_at), updated_at=iso(s.updated_at),
        last_error=s.last_error, restarts=s.restarts,
        restart_not_before=iso(s.restart_not_before), labels=s.labels,
        autorestart=s.autorestart, staleness_s=s.staleness_s, spool=_spool(s),
        keyframes_only=s.keyframes_only, analysis_fps=s.analysis_fps,
    )  # fmt: skip


def agent_view(
    a: AgentState,
    *,
    load: int = 0,
    heartbeat: HeartbeatView | None = None,
    refused: dict[str, int] | None = None,
) -> AgentView:
    return AgentView(
        agent_id=a.agent_id, name=a.name, status=a.status, version=a.version,
        capacity=a.capacity, load=load, free=max(a.capacity - load, 0),
        analytics=list(a.analytics), groups=list(a.groups), labels=a.labels, host=a.host,
        registered_at=iso(a.registered_at), updated_at=iso(a.updated_at),
        not_ready_since=iso(a.not_ready_since), heartbeat_interval_s=a.heartbeat_interval_s,
        feedback_interval_s=a.feedback_interval_s, downgrade_s=a.downgrade_s,
        last_heartbeat=heartbeat, feedback_refused=refused or {},
    )  # fmt: skip
