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
    "AgentEvent",
    "AgentRecovered",
    "AgentRegistered",
    "AgentRemoved",
    "AnalyticOffer",
    "AnalyticRef",
    "AnyEvent",
    "Autorestart",
    "Cause",
    "ErrorInfo",
    "Event",
    "HostInfo",
    "MasterElected",
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
    url: str


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


# ---- master: subject vigil.evt.master ---------------------------------------------------------


class MasterElected(Event, frozen=True, kw_only=True):
    """A manager won the lease; every decision it appends is fenced on this event's sequence."""

    epoch: int
    manager_id: str


AnyEvent = (
    StreamCreated
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
)
