"""The events: every change of a stream, agent or master is one of these, stored in VIGIL_EVENTS.

Events are frozen, keyword-only, tagged msgspec Structs, named in the past tense. Each carries:

- ``type`` (the tag, the class name) and ``v`` (its schema version; see ``events.codec``),
- ``at`` (unix seconds, from the command or decision that caused it),
- ``cause``: who or what caused it (a user command with its request_id, a master decision with
  the master epoch, an agent's feedback with its seq).

Master decisions carry ``base_version``: the aggregate version the master saw when it decided.
The fold (``core``) ignores a decision whose base is no longer current, so a decision raced by a
user command is a recorded no-op, identically in every replay.

Schema evolution: new fields get defaults; never retype, rename or reorder a field; anything
else bumps ``v`` and adds an upcaster in ``events.upcast``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

__all__ = [
    "AgentDeregistered",
    "AgentDowngraded",
    "AgentDraining",
    "AgentEvent",
    "AgentRecovered",
    "AgentRegistered",
    "AgentRemoved",
    "AlarmAcked",
    "AlarmCleared",
    "AlarmEvent",
    "AlarmRaised",
    "AnalyticOffer",
    "AnalyticRef",
    "AnyEvent",
    "Autorestart",
    "Cause",
    "ErrorInfo",
    "Event",
    "GroupActivated",
    "GroupCreated",
    "GroupDeleted",
    "GroupEvent",
    "GroupFailback",
    "GroupFailover",
    "GroupMember",
    "GroupMode",
    "GroupUpdated",
    "HostInfo",
    "LaunchConfigDeleted",
    "LaunchConfigEvent",
    "LaunchConfigSet",
    "LogStarted",
    "MasterElected",
    "PolicyDeleted",
    "PolicyEvent",
    "PolicySet",
    "ScaleAgentRemoved",
    "ScaleLaunchDecided",
    "ScaleLaunchFailed",
    "ScaleLaunchRegistered",
    "ScaleLaunchStarted",
    "ScalingEvent",
    "ScheduleCancelled",
    "ScheduleCreated",
    "ScheduleDefinition",
    "ScheduleDone",
    "ScheduleEvent",
    "ScheduleFailed",
    "SchedulePlan",
    "ScheduleRegion",
    "ScheduleStarted",
    "ScheduleUpdated",
    "Source",
    "SpoolTarget",
    "StreamAssigned",
    "StreamCreated",
    "StreamDeleted",
    "StreamEvent",
    "StreamFailed",
    "StreamFinished",
    "StreamRequeued",
    "StreamRestartScheduled",
    "StreamRestartsReset",
    "StreamRunning",
    "StreamStarted",
    "StreamStopped",
]

StreamKind = Literal["stream", "file"]
CauseKind = Literal["command", "master", "feedback", "agent", "system"]


class Cause(msgspec.Struct, frozen=True, kw_only=True, gc=False, omit_defaults=True):
    """What caused an event: a user command, a master decision, agent feedback or the system."""

    kind: CauseKind
    name: str = ""
    request_id: str | None = None
    manager_id: str | None = None
    epoch: int | None = None
    agent_id: str | None = None
    feedback_seq: int | None = None


class Source(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Where a stream comes from. ``url`` never holds credentials: they are kept apart, in KV
    ``VIGIL_SECRETS`` under the key ``secret`` (managers only), and given to the stream's agent
    with its assignment."""

    url: str
    secret: str | None = None


class AnalyticRef(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """An analytic a stream asks for, with its parameters."""

    name: str
    params: dict[str, Any] = msgspec.field(default_factory=dict)


class AnalyticOffer(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """An analytic an agent offers: name, version and the JSON schema of its params."""

    name: str
    version: str = "1"
    params_schema: dict[str, Any] = msgspec.field(default_factory=dict)


class Autorestart(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Restart policy after a non-fatal failure: delay_s × backoff^attempt, capped, jittered."""

    enabled: bool = True
    max_attempts: int = 5
    delay_s: float = 5.0
    backoff: float = 2.0
    max_delay_s: float = 600.0
    healthy_reset_s: float = 60.0


class SpoolTarget(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Where a stream's analysis records go: JetStream (default), a webhook, or a directory."""

    type: Literal["jetstream", "webhook", "directory"] = "jetstream"
    url: str | None = None
    path: str | None = None


class HostInfo(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """What an agent says about its host (informational; unknown fields are ignored)."""

    hostname: Annotated[str, msgspec.Meta(max_length=256)] = ""
    pid: Annotated[int, msgspec.Meta(ge=0, le=2**31)] = 0
    cpus: Annotated[int, msgspec.Meta(ge=0, le=65_536)] = 0


class ErrorInfo(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    code: str
    message: str = ""
    fatal: bool = False


class Event(msgspec.Struct, frozen=True, kw_only=True, gc=False, tag_field="type", tag=True):
    """Base of all events."""

    v: int = 1
    at: float
    cause: Cause


# ---- stream events: subject vigil.evt.stream.<stream_id> -------------------------------------


class StreamEvent(Event, frozen=True, kw_only=True):
    stream_id: str


class StreamCreated(StreamEvent, frozen=True, kw_only=True):
    v: int = 2
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


class StreamAssigned(StreamEvent, frozen=True, kw_only=True):
    """Master decision: the stream goes to `agent_id`."""

    agent_id: str
    base_version: int


class StreamRunning(StreamEvent, frozen=True, kw_only=True):
    """The assigned agent reported the stream running (feedback ``in_progress``)."""

    agent_id: str
    assignment_version: int


class StreamFinished(StreamEvent, frozen=True, kw_only=True):
    """The assigned agent reported the file ended (feedback ``done``)."""

    agent_id: str
    assignment_version: int


class StreamFailed(StreamEvent, frozen=True, kw_only=True):
    """The assigned agent reported an error (feedback ``failure``)."""

    agent_id: str
    assignment_version: int
    error: ErrorInfo


class StreamRestartScheduled(StreamEvent, frozen=True, kw_only=True):
    """Master decision: a non-fatal failure will be retried at ``not_before``."""

    attempt: int
    delay_s: float
    not_before: float
    base_version: int


class StreamRequeued(StreamEvent, frozen=True, kw_only=True):
    """Master decision: back to ``pending`` (restart delay over, stale feedback, agent down...)."""

    reason: str
    base_version: int


class StreamRestartsReset(StreamEvent, frozen=True, kw_only=True):
    """Master decision: the stream ran healthily long enough; its attempt counter restarts at 0."""

    base_version: int


class StreamStopped(StreamEvent, frozen=True, kw_only=True):
    """User stop."""


class StreamStarted(StreamEvent, frozen=True, kw_only=True):
    """User start: back to ``pending``, restart attempts cleared."""


class StreamDeleted(StreamEvent, frozen=True, kw_only=True):
    """User delete: final."""


# ---- agent events: subject vigil.evt.agent.<agent_id> ----------------------------------------


class AgentEvent(Event, frozen=True, kw_only=True):
    agent_id: str


class AgentRegistered(AgentEvent, frozen=True, kw_only=True):
    name: str
    analytics: tuple[AnalyticOffer, ...] = ()
    capacity: int = 1
    groups: tuple[str, ...] = ()
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    host: HostInfo = msgspec.field(default_factory=HostInfo)
    heartbeat_interval_s: float = 2.0
    feedback_interval_s: float = 2.0
    downgrade_s: float = 10.0


class AgentDowngraded(AgentEvent, frozen=True, kw_only=True):
    """Master decision: heartbeats stopped; the agent is ``not_ready`` and loses its streams."""

    reason: str
    base_version: int


class AgentRecovered(AgentEvent, frozen=True, kw_only=True):
    """A ``not_ready`` agent heartbeats again and is ``ready``."""

    base_version: int


class AgentDeregistered(AgentEvent, frozen=True, kw_only=True):
    """The agent left cleanly."""


class AgentRemoved(AgentEvent, frozen=True, kw_only=True):
    """Master decision: ``not_ready`` for longer than the retention period; forgotten."""

    reason: str
    base_version: int


class AgentDraining(AgentEvent, frozen=True, kw_only=True):
    """Master decision (scale-in): assign nothing more to the agent; its streams are moved,
    then it is removed (``core.autoscale``). Registering again ends the drain."""

    reason: str
    base_version: int


# ---- group events: subject vigil.evt.group.<name> ----------------------------------------------

GroupMode = Literal["pool", "active_standby"]


class GroupMember(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A member of a redundancy group, by agent *name* (names survive restarts; ids may not).
    The lowest ``priority`` number is the primary."""

    agent: str
    priority: int = 1


class GroupEvent(Event, frozen=True, kw_only=True):
    group: str


class GroupCreated(GroupEvent, frozen=True, kw_only=True):
    mode: GroupMode = "pool"
    members: tuple[GroupMember, ...] = ()
    keepalive_s: float = 1.0
    failover_s: float = 3.0
    failback: bool = True
    failback_hold_s: float = 10.0


class GroupUpdated(GroupEvent, frozen=True, kw_only=True):
    """User update: the whole configuration is replaced (the active member is kept while it is
    still a member)."""

    mode: GroupMode = "pool"
    members: tuple[GroupMember, ...] = ()
    keepalive_s: float = 1.0
    failover_s: float = 3.0
    failback: bool = True
    failback_hold_s: float = 10.0


class GroupDeleted(GroupEvent, frozen=True, kw_only=True):
    """User delete (refused while streams name the group)."""


class GroupActivated(GroupEvent, frozen=True, kw_only=True):
    """Master decision: a group without an active member gets one (its best ready member)."""

    to_agent: str
    reason: str
    base_version: int


class GroupFailover(GroupEvent, frozen=True, kw_only=True):
    """Master decision: the active member was lost; ``to_agent`` runs the group's streams now."""

    from_agent: str
    to_agent: str
    reason: str
    base_version: int


class GroupFailback(GroupEvent, frozen=True, kw_only=True):
    """Master decision: a better-priority member has been healthy for ``failback_hold_s``; the
    group's streams return to it."""

    from_agent: str
    to_agent: str
    reason: str
    base_version: int


# ---- alarms: JetStream VIGIL_ALARMS, subject vigil.alarm.<kind>.<source> ------------------------


class AlarmEvent(Event, frozen=True, kw_only=True):
    """Alarms live in their own stream (kept for the alarm retention, not forever). One subject
    per (kind, source) holds every instance of that alarm; ``alarm_id`` names one instance."""

    alarm_id: str
    kind: str
    source: str


class AlarmRaised(AlarmEvent, frozen=True, kw_only=True):
    severity: Literal["critical", "major", "minor", "warning", "info"] = "major"
    reason: str = ""
    transient: bool = False
    """A notice (reconnected, failback): recorded, and cleared at once."""


class AlarmCleared(AlarmEvent, frozen=True, kw_only=True):
    reason: str = ""


class AlarmAcked(AlarmEvent, frozen=True, kw_only=True):
    by: str


# ---- autoscaling: launch configs, scale policies, schedules, scaling (issue 13) ----------------
# vigil.evt.launch.<name>, vigil.evt.policy.<name>, vigil.evt.schedule.<eventName>,
# vigil.evt.scaling.<group> (the master's launches and removals for one group)

ProviderKind = Literal["local", "command"]


class LaunchConfigEvent(Event, frozen=True, kw_only=True):
    launch: str


class LaunchConfigSet(LaunchConfigEvent, frozen=True, kw_only=True):
    """A launch config created or replaced: how to start one agent of a group."""

    provider: ProviderKind = "local"
    command: str | None = None
    """``command`` provider: the name of a command set in the managers' configuration."""
    capacity: int = 4
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    analytics: tuple[str, ...] = ()
    startup_s: float = 30.0
    """Startup time assumed until launches of this config have been measured."""
    deadline_s: float = 120.0
    attempts: int = 3
    parallel: bool | None = None
    """Launches run in parallel (None: the provider's default)."""


class LaunchConfigDeleted(LaunchConfigEvent, frozen=True, kw_only=True):
    pass


class PolicyEvent(Event, frozen=True, kw_only=True):
    policy: str


class PolicySet(PolicyEvent, frozen=True, kw_only=True):
    """A scale policy created or replaced (by a user, or by the master when a schedule without
    ``until`` is done or creates a new group)."""

    group: str
    launch: str
    min_agents: int = 0
    max_agents: int = 1
    scale_out_above: float = 0.8
    scale_in_below: float = 0.3
    cooldown_s: float = 60.0


class PolicyDeleted(PolicyEvent, frozen=True, kw_only=True):
    pass


class ScheduleRegion(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Red5's ``region[{name, info}]``: the agents wanted (vigil sums the regions; launched
    agents carry the label ``region=<name>``)."""

    name: str
    min_agents: int
    max_agents: int


class SchedulePlan(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """When a schedule starts and the figures that said so:
    ``start = date − (to_add × startup_s + buffer_s)`` (sequential) or
    ``start = date − (startup_s + buffer_s)`` (parallel; ``buffer_s`` alone when none to add)."""

    start: float
    lead_s: float
    mode: Literal["parallel", "sequential"]
    agents_now: int
    agents_target: int
    agents_to_add: int
    startup_s: float
    startup_samples: int
    """Launches measured (0: the launch config's default ``startup_s``)."""
    buffer_s: float
    launch: str


class ScheduleEvent(Event, frozen=True, kw_only=True):
    schedule: str


class ScheduleDefinition(ScheduleEvent, frozen=True, kw_only=True):
    """What a user defines (the fields of ``ScheduleCreated`` and ``ScheduleUpdated``)."""

    date_ms: int
    until_ms: int | None = None
    group: str
    launch: str | None = None
    policy: str | None = None
    """A policy to create at start (a new group, Red5's ``scalePolicy``)."""
    regions: tuple[ScheduleRegion, ...] = ()
    buffer_s: float | None = None


class ScheduleCreated(ScheduleDefinition, frozen=True, kw_only=True):
    pass


class ScheduleUpdated(ScheduleDefinition, frozen=True, kw_only=True):
    """A pending schedule changed (the whole definition is replaced)."""


class ScheduleCancelled(ScheduleEvent, frozen=True, kw_only=True):
    """User delete: a pending or running schedule stops; its name is free again."""

    reason: str = ""


class ScheduleStarted(ScheduleEvent, frozen=True, kw_only=True):
    """Master decision: the planned start came (``late_s`` > 0: it was already past)."""

    plan: SchedulePlan
    late_s: float = 0.0
    base_version: int


class ScheduleDone(ScheduleEvent, frozen=True, kw_only=True):
    reason: str
    base_version: int


class ScheduleFailed(ScheduleEvent, frozen=True, kw_only=True):
    reason: str
    base_version: int


class ScalingEvent(Event, frozen=True, kw_only=True):
    group: str


class ScaleLaunchDecided(ScalingEvent, frozen=True, kw_only=True):
    """Master decision: one agent is to be launched (decided once; a new master continues it)."""

    launch_id: str
    agent_name: str
    launch: str
    provider: ProviderKind = "local"
    region: str | None = None
    schedule: str | None = None
    attempt: int = 1
    deadline_at: float
    target: int
    reason: str


class ScaleLaunchStarted(ScalingEvent, frozen=True, kw_only=True):
    """Master: its provider ran the launch (``detail``: a pid, a command's output)."""

    launch_id: str
    detail: str = ""


class ScaleLaunchRegistered(ScalingEvent, frozen=True, kw_only=True):
    """Master: the launched agent registered; ``took_s`` (decision → registration) is what
    startup times are learned from."""

    launch_id: str
    agent_id: str
    agent_name: str
    took_s: float


class ScaleLaunchFailed(ScalingEvent, frozen=True, kw_only=True):
    """Master: the launch did not register by its deadline (or its provider failed)."""

    launch_id: str
    reason: str


class ScaleAgentRemoved(ScalingEvent, frozen=True, kw_only=True):
    """Master decision: a drained agent (it holds no stream) is removed by its provider."""

    launch_id: str | None = None
    agent_id: str
    agent_name: str
    reason: str


# ---- master: subject vigil.evt.master ---------------------------------------------------------


class MasterElected(Event, frozen=True, kw_only=True):
    """A manager won the lease; every decision it appends is fenced on this event's sequence."""

    epoch: int
    manager_id: str


# ---- the log itself: subject vigil.evt.log ---------------------------------------------------


class LogStarted(Event, frozen=True, kw_only=True):
    """The first event of a log: its identity. A manager that folded one log notices when the
    store under it holds another (deleted, replaced, restored from elsewhere) and stops
    answering instead of mixing them."""

    log_id: str


AnyEvent = (
    LogStarted
    | StreamCreated
    | StreamAssigned
    | StreamRunning
    | StreamFinished
    | StreamFailed
    | StreamRestartScheduled
    | StreamRequeued
    | StreamRestartsReset
    | StreamStopped
    | StreamStarted
    | StreamDeleted
    | AgentRegistered
    | AgentDowngraded
    | AgentRecovered
    | AgentDeregistered
    | AgentRemoved
    | MasterElected
    | GroupCreated
    | GroupUpdated
    | GroupDeleted
    | GroupActivated
    | GroupFailover
    | GroupFailback
    | AlarmRaised
    | AlarmCleared
    | AlarmAcked
    | AgentDraining
    | LaunchConfigSet
    | LaunchConfigDeleted
    | PolicySet
    | PolicyDeleted
    | ScheduleCreated
    | ScheduleUpdated
    | ScheduleCancelled
    | ScheduleStarted
    | ScheduleDone
    | ScheduleFailed
    | ScaleLaunchDecided
    | ScaleLaunchStarted
    | ScaleLaunchRegistered
    | ScaleLaunchFailed
    | ScaleAgentRemoved
)
