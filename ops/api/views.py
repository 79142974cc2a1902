"""What users see: the views of streams, agents and the master (CONTRACT §2) as Structs.

Every reply's ``result`` is one of these (or a list Struct of them), so the OpenAPI document is
generated from the same types the code returns. Times are ISO-8601 UTC with milliseconds.
"""

from __future__ import annotations

import functools
import math
import time
from typing import Literal

import msgspec

from core.agent import AgentState, AgentStatus
from core.alarm import AlarmState, Severity
from core.distribution import Waiting
from core.group import GroupState
from core.sources import with_credentials
from core.stream import Status, StreamState
from events.model import AnalyticOffer, Autorestart, ErrorInfo, HostInfo
from events.protocol import AssignedAnalytic, Assignment, Heartbeat, SourceOut, SpoolOut
from ops.settings import Role

__all__ = [
    "AgentList",
    "AgentView",
    "AgentsSummary",
    "AlarmList",
    "AlarmView",
    "AlarmsSummary",
    "Deleted",
    "FrameRef",
    "GroupDeletedView",
    "GroupList",
    "GroupView",
    "GroupsSummary",
    "HeartbeatView",
    "MasterView",
    "MemberView",
    "Overview",
    "RecordList",
    "RecordView",
    "StreamList",
    "StreamView",
    "ThisManager",
    "WaitingCount",
    "WaitingView",
    "agent_view",
    "alarm_view",
    "assignment_of",
    "group_view",
    "iso",
    "stream_view",
]


@functools.lru_cache(maxsize=4096)
def _iso_second(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


def iso(ts: float | None) -> str | None:
    """``ts`` as UTC ISO 8601 with milliseconds (``2026-11-30T19:02:03.456Z``): what
    ``datetime.isoformat(timespec="milliseconds")`` writes, without a datetime per timestamp (a
    list of 1,000 streams formats 3,000)."""
    if ts is None:
        return None
    frac, whole = math.modf(ts)  # rounded to µs as datetime.fromtimestamp does, then cut to ms
    micros = round(frac * 1e6)
    second = int(whole)
    if micros >= 1_000_000:
        second, micros = second + 1, micros - 1_000_000
    elif micros < 0:
        second, micros = second - 1, micros + 1_000_000
    return f"{_iso_second(second)}.{micros // 1000:03d}Z"


class WaitingView(msgspec.Struct, frozen=True, kw_only=True):
    """Why a pending stream is not placed (computed from the same state the master places
    with; ``code`` is stable, ``message`` is for people)."""

    code: str
    message: str


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
    waiting: WaitingView | None = None
    """Pending and unassigned: why it waits (``vigil stream get`` shows it)."""


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
    active_groups: list[str] = []
    """Group objects this agent runs streams of (the active member; every member of a pool)."""
    standby_groups: list[str] = []
    """``active_standby`` groups this agent stands by for."""
    not_ready_reason: str | None = None
    draining: str | None = None
    """Being drained for a scale-in (it is given no stream; its streams move): why."""


class AgentList(msgspec.Struct, frozen=True, kw_only=True):
    agents: list[AgentView]


class ThisManager(msgspec.Struct, frozen=True, kw_only=True):
    manager_id: str
    is_master: bool
    epoch: int
    since: str | None
    role: Role = "all"
    """What this manager does (``VIGIL_ROLE``; docs/deploy.md)."""


class MasterView(msgspec.Struct, frozen=True, kw_only=True):
    manager_id: str | None = None
    epoch: int = 0
    since: str | None = None
    election_seq: int | None = None
    this_manager: ThisManager | None = None
    replay_of_seq: int | None = None


class MemberView(msgspec.Struct, frozen=True, kw_only=True):
    agent: str
    """Agent name."""
    priority: int
    role: Literal["active", "standby", "member"]
    status: Literal["ready", "not_ready", "absent"]
    """Of the agent(s) registered under that name (absent: none)."""
    agent_ids: list[str]


class GroupView(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    mode: Literal["pool", "active_standby"]
    members: list[MemberView]
    keepalive_s: float
    failover_s: float
    failback: bool
    failback_hold_s: float
    active: str | None
    active_since: str | None
    last_change: str | None
    failovers: int
    failbacks: int
    streams: int
    """Streams that name this group."""
    version: int
    created_at: str | None
    updated_at: str | None


class GroupList(msgspec.Struct, frozen=True, kw_only=True):
    groups: list[GroupView]


class GroupDeletedView(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    deleted: bool = True


class AlarmView(msgspec.Struct, frozen=True, kw_only=True):
    alarm_id: str
    kind: str
    source: str
    severity: Severity
    reason: str
    active: bool
    raised_at: str | None
    cleared_at: str | None
    clear_reason: str | None
    acked: bool
    acked_by: str | None
    acked_at: str | None


class AlarmList(msgspec.Struct, frozen=True, kw_only=True):
    alarms: list[AlarmView]
    """Newest first."""
    active: int
    """Active alarms (of all kept, not only those listed)."""


def alarm_view(a: AlarmState) -> AlarmView:
    return AlarmView(
        alarm_id=a.alarm_id, kind=a.kind, source=a.source, severity=a.severity, reason=a.reason,
        active=a.active, raised_at=iso(a.raised_at), cleared_at=iso(a.cleared_at),
        clear_reason=a.clear_reason, acked=a.acked_by is not None, acked_by=a.acked_by,
        acked_at=iso(a.acked_at),
    )  # fmt: skip


def group_view(g: GroupState, *, members: list[MemberView], streams: int) -> GroupView:
    c = g.config
    return GroupView(
        name=g.name, mode=c.mode, members=members, keepalive_s=c.keepalive_s,
        failover_s=c.failover_s, failback=c.failback, failback_hold_s=c.failback_hold_s,
        active=g.active, active_since=iso(g.active_since), last_change=g.last_change,
        failovers=g.failovers, failbacks=g.failbacks, streams=streams, version=g.version,
        created_at=iso(g.created_at), updated_at=iso(g.updated_at),
    )  # fmt: skip


def _analytics(s: StreamState) -> list[AssignedAnalytic]:
    return [AssignedAnalytic(a.name, a.params) for a in s.analytics]


def _spool(s: StreamState) -> SpoolOut | None:
    sp = s.spool
    return None if sp is None else SpoolOut(sp.type, sp.url, sp.path)


def assignment_of(
    s: StreamState, *, credentials: str | None = None, start_by: float | None = None
) -> Assignment:
    """What an agent gets for a stream assigned to it (CONTRACT §4, ``start[]``): the source
    URL with its ``credentials`` put back (only the assigned agent ever receives them)."""
    return Assignment(
        stream_id=s.stream_id, version=s.assignment_version or 0, name=s.name,
        source=SourceOut(with_credentials(s.source.url, credentials)), kind=s.kind, analytics=_analytics(s), labels=s.labels,
        stall_timeout_s=s.staleness_s, spool=_spool(s), start_by=start_by,
        keyframes_only=s.keyframes_only, analysis_fps=s.analysis_fps,
    )  # fmt: skip


def stream_view(s: StreamState, waiting: Waiting | None = None) -> StreamView:
    return StreamView(
        stream_id=s.stream_id, name=s.name,
        source=SourceOut(s.source.url, credentials=s.source.secret is not None), kind=s.kind,
        analytics=_analytics(s), group=s.group, status=s.status, version=s.version,
        agent_id=s.agent_id, created_at=iso(s.created_at), updated_at=iso(s.updated_at),
        last_error=s.last_error, restarts=s.restarts,
        restart_not_before=iso(s.restart_not_before), labels=s.labels,
        autorestart=s.autorestart, staleness_s=s.staleness_s, spool=_spool(s),
        keyframes_only=s.keyframes_only, analysis_fps=s.analysis_fps,
        waiting=WaitingView(code=waiting.code, message=waiting.message) if waiting else None,
    )  # fmt: skip


def agent_view(
    a: AgentState,
    *,
    load: int = 0,
    heartbeat: HeartbeatView | None = None,
    refused: dict[str, int] | None = None,
    roles: tuple[list[str], list[str]] = ([], []),
) -> AgentView:
    return AgentView(
        agent_id=a.agent_id, name=a.name, status=a.status, version=a.version,
        capacity=a.capacity, load=load, free=max(a.capacity - load, 0),
        analytics=list(a.analytics), groups=list(a.groups), labels=a.labels, host=a.host,
        registered_at=iso(a.registered_at), updated_at=iso(a.updated_at),
        not_ready_since=iso(a.not_ready_since), heartbeat_interval_s=a.heartbeat_interval_s,
        feedback_interval_s=a.feedback_interval_s, downgrade_s=a.downgrade_s,
        last_heartbeat=heartbeat, feedback_refused=refused or {},
        active_groups=roles[0], standby_groups=roles[1], not_ready_reason=a.not_ready_reason,
        draining=a.draining,
    )  # fmt: skip


# ---- the dashboard's views (ops.http): the fleet at a glance, analysis records ---------------


class WaitingCount(msgspec.Struct, frozen=True, kw_only=True):
    """Pending streams that wait for the same reason."""

    code: str
    group: str | None
    message: str
    count: int


class AgentsSummary(msgspec.Struct, frozen=True, kw_only=True):
    total: int
    ready: int
    not_ready: int
    capacity: int
    """Slots of ready agents."""
    load: int
    """Streams assigned to ready agents."""
    outbox_depth: int
    """Unsent feedback rows, summed over the agents' last heartbeats."""
    silent: int
    """Ready agents this manager has no heartbeat from yet."""


class GroupsSummary(msgspec.Struct, frozen=True, kw_only=True):
    total: int
    active_standby: int
    on_standby: int
    """``active_standby`` groups whose active member is not their primary (failed over)."""
    without_active: int
    """``active_standby`` groups with no active member (their streams wait)."""


class AlarmsSummary(msgspec.Struct, frozen=True, kw_only=True):
    active: int
    unacked: int
    """Active alarms nobody acknowledged."""
    by_severity: dict[str, int]
    """Active alarms per severity."""


class Overview(msgspec.Struct, frozen=True, kw_only=True):
    """The fleet at a glance (the dashboard's cards), from this manager's projections."""

    manager_id: str
    seq: int
    streams_total: int
    streams: dict[str, int]
    """Live streams per status (every status, zeros included)."""
    waiting: list[WaitingCount]
    agents: AgentsSummary
    groups: GroupsSummary
    alarms: AlarmsSummary
    this_manager: ThisManager


class FrameRef(msgspec.Struct, frozen=True, kw_only=True):
    ts: float
    """Media time of the frame (seconds)."""
    url: str | None
    """Where its JPEG is served (None: the record names a file on the agent's host)."""
    path: str | None = None


class RecordView(msgspec.Struct, frozen=True, kw_only=True):
    """One analysis record (CONTRACT §5) without its pixels: they are served one by one."""

    seq: int
    """Its sequence in VIGIL_RECORDS."""
    stored_at: str | None
    record_id: str
    stream_id: str
    agent_id: str
    event: str
    started_at: float
    ended_at: float
    score: float
    actions: list[str]
    triggers: int
    frames: list[FrameRef]
    analytics_version: str


class RecordList(msgspec.Struct, frozen=True, kw_only=True):
    stream_id: str
    records: list[RecordView]
    """Newest first."""
    total: int
    """Records of this stream VIGIL_RECORDS still holds."""
