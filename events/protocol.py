"""The agent protocol (CONTRACT §4) as typed Structs, and the reply envelope of every request.

Managers decode agents' messages into these, the reference agent (``agent/``) builds and decodes
them, and ``docs/agent-protocol.md`` documents them. Each message is decoded once, with bounds
(``events.bounded``): a hostile or broken agent gets a clear ``invalid`` reply, never a crash.

::

    register     Register            → Registered          vigil.agent.register
    heartbeat    Heartbeat           (publish)              vigil.agent.<id>.heartbeat
    get streams  Poll                → PollResult           vigil.agent.<id>.streams
    notify       {}                  (push from the master) vigil.agent.<id>.notify
    feedback     events.feedback.Feedback (JetStream)       vigil.feedback.<id>
    refused      Refused             (push from a manager)  vigil.agent.<id>.refused
    leave        {}                  → Deregistered         vigil.agent.<id>.deregister

Replies (any request, agents and users alike)::

    {"ok": true,  "result": {...}, "seq": N}
    {"ok": false, "error": {"code": "...", "message": "...", "details": [{"path", "message"}]}}
"""

from __future__ import annotations

from typing import Annotated, Any, Generic, Literal, TypeVar

import msgspec

from events.bounded import JsonObject, check_field
from events.model import HostInfo

__all__ = [
    "MAX_INT",
    "AnalyticName",
    "AnalyticOfferIn",
    "AssignedAnalytic",
    "Assignment",
    "Count",
    "Deregistered",
    "ErrorBody",
    "ErrorDetail",
    "ErrorReply",
    "Heartbeat",
    "HostInfo",
    "Id",
    "LabelKey",
    "LabelValue",
    "Labels",
    "Name",
    "OkReply",
    "Poll",
    "PollResult",
    "Refused",
    "Register",
    "Registered",
    "ReplyCode",
    "SourceOut",
    "SpoolOut",
]

MAX_INT = 2**63 - 1
"""Every integer vigil stores fits in a signed 64-bit (what JSON encoders and Prometheus serve)."""

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:@-]+$")]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
LabelKey = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
LabelValue = Annotated[str, msgspec.Meta(max_length=256)]
Labels = Annotated[dict[LabelKey, LabelValue], msgspec.Meta(max_length=64)]
AnalyticName = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_.-]{0,63}$")]
Count = Annotated[int, msgspec.Meta(ge=0, le=MAX_INT)]
Percent = Annotated[float, msgspec.Meta(ge=0, le=100_000)]
Timestamp = Annotated[float, msgspec.Meta(ge=0, le=1e11)]

ReplyCode = Literal[
    "invalid", "unauthorized", "forbidden", "not_found", "conflict", "too_large", "unavailable",
    "internal",
]  # fmt: skip


# ---- register ---------------------------------------------------------------------------------


class AnalyticOfferIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An analytic an agent offers: name, version and the JSON Schema of its params."""

    name: AnalyticName
    version: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] = "1"
    params_schema: JsonObject = {}

    def __post_init__(self) -> None:
        check_field(self.params_schema, "params_schema")


class Register(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Body of ``vigil.agent.register``."""

    name: Name
    capacity: Annotated[int, msgspec.Meta(ge=1, le=10_000)]
    analytics: Annotated[list[AnalyticOfferIn], msgspec.Meta(max_length=256)] = []
    groups: Annotated[list[Id], msgspec.Meta(max_length=64)] = []
    labels: Labels = {}
    host: HostInfo = HostInfo()
    agent_id: Id | None = None
    """Resume an identity (the agent keeps it with its outbox)."""


class Registered(msgspec.Struct, frozen=True, kw_only=True):
    """Reply to ``register``: the identity and the intervals to keep (use these, not your own)."""

    agent_id: str
    heartbeat_interval_s: float
    feedback_interval_s: float
    downgrade_s: float


# ---- heartbeat --------------------------------------------------------------------------------


class Heartbeat(msgspec.Struct, frozen=True, kw_only=True):
    """Published every ``heartbeat_interval_s``. Host figures are the agent's own process tree
    (not the whole machine), so two agents on one host each report their share:
    ``cpu_percent`` (100 = one core busy), ``mem_used`` (resident memory of the tree) of
    ``mem_total`` (the host's memory), ``disk_used`` / ``disk_total`` of the volume holding the
    outbox and records, ``capacity`` (streams it runs at most; ``running`` are those it runs)."""

    ts: Timestamp
    running: Annotated[list[Id], msgspec.Meta(max_length=100_000)] = []
    cpu_percent: Percent = 0.0
    mem_used: Count = 0
    mem_total: Count = 0
    disk_used: Count = 0
    disk_total: Count = 0
    outbox_depth: Count = 0
    capacity: Count = 0
    alarms: Annotated[list[Annotated[str, msgspec.Meta(max_length=1024)]],
                      msgspec.Meta(max_length=64)] = []  # fmt: skip


# ---- get streams ------------------------------------------------------------------------------


class Poll(msgspec.Struct, frozen=True):
    """Body of ``vigil.agent.<id>.streams``: what the agent runs now (None: its last heartbeat's
    list)."""

    running: Annotated[list[Id], msgspec.Meta(max_length=100_000)] | None = None
    after: Id | None = None
    """Ask for the next page: the ``next`` of the previous reply."""


class SourceOut(msgspec.Struct, frozen=True, omit_defaults=True):
    url: str
    credentials: bool = False
    """In a view: the source has credentials, kept apart (never shown)."""


class AssignedAnalytic(msgspec.Struct, frozen=True):
    name: str
    params: dict[str, Any] = {}


class SpoolOut(msgspec.Struct, frozen=True, omit_defaults=False):
    type: Literal["jetstream", "webhook", "directory"] = "jetstream"
    url: str | None = None
    path: str | None = None


class Assignment(msgspec.Struct, frozen=True, kw_only=True):
    """One stream an agent must run, at assignment ``version`` (feedback must carry it)."""

    stream_id: str
    version: int
    name: str
    source: SourceOut
    kind: Literal["stream", "file"]
    analytics: list[AssignedAnalytic]
    labels: dict[str, str]
    stall_timeout_s: float | None = None
    spool: SpoolOut | None = None
    start_by: float | None = None
    """Unix time by which the agent must report ``in_progress`` (or ``failure``), else the
    master takes the stream back."""
    keyframes_only: bool = False
    """Decode and analyse keyframes only."""
    analysis_fps: float | None = None
    """Analyse at most this many frames a second."""


class PollResult(msgspec.Struct, frozen=True, kw_only=True):
    start: list[Assignment]
    """Every stream assigned to the agent (start those not running; restart on a new version)."""
    stop: list[str]
    """Streams the agent runs that are no longer its own."""
    refused: dict[str, int] = {}
    """Feedback of this agent the managers refused, counted per reason (see ``Refused``)."""
    next: str | None = None
    """More assignments than fit one reply: poll again with ``after`` = this. ``stop`` is
    complete on the first page; later pages only continue ``start``."""
    heartbeat_interval_s: float | None = None
    """The heartbeat interval to keep from now on (it changes when the agent joins a group
    with a shorter keep-alive); None: keep the current one."""


class Deregistered(msgspec.Struct, frozen=True, kw_only=True):
    agent_id: str
    deregistered: bool = True


# ---- feedback refusals ------------------------------------------------------------------------


class Refused(msgspec.Struct, frozen=True, kw_only=True):
    """Pushed on ``vigil.agent.<id>.refused`` when a manager refuses one of the agent's feedback
    messages (the message is acknowledged and will not be retried: fix the sender)."""

    seq: int | None
    reason: str
    message: str
    stream_id: str | None = None


# ---- the reply envelope -----------------------------------------------------------------------

T = TypeVar("T")


class ErrorDetail(msgspec.Struct, frozen=True):
    path: str
    message: str


class ErrorBody(msgspec.Struct, frozen=True):
    code: ReplyCode
    message: str
    details: list[ErrorDetail] = []


class OkReply(msgspec.Struct, Generic[T], frozen=True, kw_only=True):
    ok: Literal[True] = True
    result: T
    seq: int = 0


class ErrorReply(msgspec.Struct, frozen=True, kw_only=True):
    ok: Literal[False] = False
    error: ErrorBody
