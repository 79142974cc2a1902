"""Request bodies of the NATS commands (CONTRACT §2) and their validation.

Bodies are decoded straight into these Structs; msgspec's error names the failing field's path
(``$.source.url``), which becomes the ``invalid`` reply's detail. Sizes are bounded so a huge
string is refused instead of stored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Literal, TypeVar
from urllib.parse import urlsplit

import msgspec

from core.errors import Invalid
from events.bounded import JsonObject, check_field
from events.bounded import decode as bounded_decode
from events.protocol import AnalyticName, Id, Labels, Name

__all__ = [
    "AckAlarmReq",
    "AgentIdReq",
    "AnalyticIn",
    "AutorestartIn",
    "CreateGroupReq",
    "CreateStreamReq",
    "DailyStatsReq",
    "DeleteGroupReq",
    "DeleteStreamReq",
    "DumpReq",
    "EmptyReq",
    "GetStreamReq",
    "GroupBody",
    "GroupNameReq",
    "ListAgentsReq",
    "ListAlarmsReq",
    "ListGroupsReq",
    "ListStreamsReq",
    "MemberIn",
    "MonthlyStatsReq",
    "PatchBody",
    "PatchStreamReq",
    "RangeStatsReq",
    "SourceIn",
    "SpoolIn",
    "StatsCloseReq",
    "StatsCorrectionsReq",
    "StatsVerifyReq",
    "UpdateGroupBody",
    "UpdateGroupReq",
    "convert_request",
    "decode_request",
    "invalid_from",
    "validate_source",
    "validate_spool",
]

RequestId = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Day = Annotated[str, msgspec.Meta(pattern=r"^\d{4}-\d{2}-\d{2}$", description="UTC day")]

SCHEMES = ("file", "rtsp", "rtsps", "http", "https", "tcp", "udp", "rtmp", "srt")


class SourceIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    url: Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]


class AnalyticIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: AnalyticName
    params: JsonObject = {}

    def __post_init__(self) -> None:
        check_field(self.params, "params")


class AutorestartIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    enabled: bool = True
    max_attempts: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 5
    delay_s: Annotated[float, msgspec.Meta(ge=0, le=86400)] = 5.0
    backoff: Annotated[float, msgspec.Meta(ge=1, le=10)] = 2.0
    max_delay_s: Annotated[float, msgspec.Meta(ge=0, le=86400)] = 600.0
    healthy_reset_s: Annotated[float, msgspec.Meta(gt=0, le=86400)] = 60.0


class SpoolIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    type: Literal["jetstream", "webhook", "directory"] = "jetstream"
    url: Annotated[str, msgspec.Meta(min_length=1, max_length=2048)] | None = None
    path: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)] | None = None


def validate_spool(spool: SpoolIn) -> None:
    if spool.type == "webhook":
        if not spool.url or urlsplit(spool.url).scheme not in ("http", "https"):
            raise Invalid("$.spool.url", "a webhook spool needs an http(s):// url")
    elif spool.type == "directory":
        if not spool.path or not spool.path.startswith("/"):
            raise Invalid("$.spool.path", "a directory spool needs an absolute path")


class CreateStreamReq(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    source: SourceIn
    kind: Literal["stream", "file"] = "stream"
    name: Name | None = None
    analytics: Annotated[list[AnalyticIn], msgspec.Meta(max_length=32)] = []
    group: Id | None = None
    autorestart: AutorestartIn | None = None
    labels: Labels = {}
    staleness_s: Annotated[float, msgspec.Meta(gt=0, le=86400)] | None = None
    allow_unregistered: bool = False
    spool: SpoolIn | None = None
    request_id: RequestId | None = None
    keyframes_only: bool = False
    """Decode and analyse keyframes only (the cheap tier: about a 50th of the decoding)."""
    analysis_fps: Annotated[float, msgspec.Meta(gt=0, le=120)] | None = None
    """Analyse at most this many frames a second (every frame is still decoded)."""


class GetStreamReq(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    stream_id: Id


class ListStreamsReq(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    status: Literal["pending", "in_progress", "done", "failure", "restarting", "stopped"] | None = (
        None
    )
    agent_id: Id | None = None
    group: Id | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 100
    cursor: Annotated[str, msgspec.Meta(max_length=256)] | None = None
    q: Annotated[str, msgspec.Meta(min_length=1, max_length=128)] | None = None
    """Search: text in the stream id, name, source URL, agent id or a label value (any case)."""
    order: Literal["oldest", "newest"] = "oldest"
    """Creation order of the page (the cursor follows it)."""


Version = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]


class PatchBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``PATCH /api/v1/streams/{id}`` body (the id comes from the path)."""

    action: Literal["start", "stop"]
    expected_version: Version | None = None
    request_id: RequestId | None = None


class PatchStreamReq(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    stream_id: Id
    action: Literal["start", "stop"]
    expected_version: Version | None = None
    request_id: RequestId | None = None


class DeleteStreamReq(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    stream_id: Id
    expected_version: Version | None = None
    request_id: RequestId | None = None


class EmptyReq(msgspec.Struct, frozen=True):
    pass


T = TypeVar("T")
_PATH = re.compile(r" - at `(?P<path>[^`]*)`$")
_SUB = re.compile(r" @(?P<sub>\.[^ ]*)$")


def invalid_from(exc: msgspec.ValidationError) -> Invalid:
    """``Invalid`` with the full path of a msgspec validation error (``$.analytics[0].params.x``
    when a ``__post_init__`` check names a sub-path)."""
    text = str(exc)
    m = _PATH.search(text)
    path = m.group("path") if m else "$"
    message = _PATH.sub("", text)
    sub = _SUB.search(message)
    if sub:
        path += sub.group("sub")
        message = _SUB.sub("", message)
    return Invalid(path, message)


def decode_request(data: bytes, req_type: type[T]) -> T:
    """Decode a JSON body into ``req_type`` or raise ``Invalid`` with the failing path."""
    if not data.strip():
        data = b"{}"
    try:
        return bounded_decode(data, req_type)
    except msgspec.ValidationError as exc:
        raise invalid_from(exc) from None
    except msgspec.DecodeError as exc:
        raise Invalid("$", f"body is not valid JSON: {exc}") from None


def convert_request(values: Mapping[str, object], req_type: type[T]) -> T:
    """Build ``req_type`` from already-split values (HTTP query and path parameters), with the
    same validation and errors as a JSON body; strings are converted to numbers where typed."""
    try:
        return msgspec.convert(values, req_type, strict=False)
    except msgspec.ValidationError as exc:
        raise invalid_from(exc) from None


def validate_source(source: SourceIn, kind: str) -> None:
    """Reject sources vigil cannot open, with a message that says what is accepted."""
    url = source.url
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if not scheme:
        if not url.startswith("/"):
            raise Invalid("$.source.url", "a file path must be absolute, or use file:///path")
        scheme = "file"
    if scheme not in SCHEMES:
        raise Invalid(
            "$.source.url", f"unsupported scheme {scheme!r}; use one of {', '.join(SCHEMES)}"
        )
    if scheme != "file" and not parts.netloc:
        raise Invalid("$.source.url", f"{scheme}:// source needs a host")


# ---- agents, master, statistics, projections -------------------------------------------------


class AgentIdReq(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    agent_id: Id


class ListAgentsReq(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    status: Literal["ready", "not_ready"] | None = None


class DailyStatsReq(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Body of ``vigil.cmd.stats.daily``."""

    date: Day
    stream_id: Id | None = None
    agent_id: Id | None = None
    group: Id | None = None
    by: Literal["stream", "agent", "group", "row", "total"] = "stream"
    limit: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 1000
    cursor: Annotated[str, msgspec.Meta(max_length=512)] | None = None


Month = Annotated[str, msgspec.Meta(pattern=r"^\d{4}-\d{2}$", description="UTC month")]
Grain = Literal["stream", "agent", "group", "row", "total"]
Limit = Annotated[int, msgspec.Meta(ge=1, le=10_000)]
Cursor = Annotated[str, msgspec.Meta(max_length=512)]


class RangeStatsReq(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Body of ``vigil.cmd.stats.range``: the UTC days ``from``..``to`` (both included, at most
    366), one line per day and key (``per: day``) or per key over the range (``per: range``)."""

    from_: Day = msgspec.field(name="from")
    to: Day
    per: Literal["day", "range"] = "day"
    stream_id: Id | None = None
    agent_id: Id | None = None
    group: Id | None = None
    by: Grain = "stream"
    limit: Limit = 1000
    cursor: Cursor | None = None


class MonthlyStatsReq(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Body of ``vigil.cmd.stats.monthly``: one UTC month, per key (``per: range``, the default)
    or per day and key (``per: day``)."""

    month: Month
    per: Literal["day", "range"] = "range"
    stream_id: Id | None = None
    agent_id: Id | None = None
    group: Id | None = None
    by: Grain = "stream"
    limit: Limit = 1000
    cursor: Cursor | None = None


class StatsCorrectionsReq(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Body of ``vigil.cmd.stats.corrections``: late deltas counted for the days ``from``..``to``."""

    from_: Day = msgspec.field(name="from")
    to: Day
    stream_id: Id | None = None
    agent_id: Id | None = None
    limit: Limit = 1000


class StatsVerifyReq(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Body of ``vigil.cmd.stats.verify``: recompute every day the feedback still holds (or
    only ``day``) and compare it with its rollup."""

    day: Day | None = None


class StatsCloseReq(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Body of ``vigil.cmd.stats.close``: close every day up to ``through`` now (before the
    lateness horizon); later deltas for them count as corrections."""

    through: Day


class DumpReq(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Body of ``vigil.cmd.projections.dump`` (verify): digests, or these entities in full."""

    keys: Annotated[list[Annotated[str, msgspec.Meta(max_length=300)]],
                    msgspec.Meta(max_length=1000)] | None = None  # fmt: skip


# ---- groups and alarms (issue 12) ------------------------------------------------------------

GroupMode = Literal["pool", "active_standby"]
Priority = Annotated[int, msgspec.Meta(ge=0, le=1000, description="lowest first: the primary")]
Keepalive = Annotated[float, msgspec.Meta(ge=0.1, le=3600,
                                          description="heartbeat interval members are told")]  # fmt: skip
Failover = Annotated[float, msgspec.Meta(ge=0.2, le=86400,
                                         description="the active member silent this long: fail over")]  # fmt: skip
Hold = Annotated[float, msgspec.Meta(ge=0, le=86400,
                                     description="the better member healthy this long: fail back")]  # fmt: skip
AlarmId = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


class MemberIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    agent: Name
    """The agent's *name* (what it registers as; it survives restarts)."""
    priority: Priority = 1


class GroupBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``POST /api/v1/groups`` body (with ``name``) and the group fields of ``group.create``."""

    mode: GroupMode = "pool"
    members: Annotated[list[MemberIn], msgspec.Meta(max_length=256)] = []
    keepalive_s: Keepalive = 1.0
    failover_s: Failover = 3.0
    failback: bool = True
    failback_hold_s: Hold = 10.0


class CreateGroupReq(GroupBody, frozen=True, forbid_unknown_fields=True, kw_only=True):
    name: Id
    request_id: RequestId | None = None


class UpdateGroupBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``PUT /api/v1/groups/{name}``: the fields to change (others are kept)."""

    mode: GroupMode | None = None
    members: Annotated[list[MemberIn], msgspec.Meta(max_length=256)] | None = None
    keepalive_s: Keepalive | None = None
    failover_s: Failover | None = None
    failback: bool | None = None
    failback_hold_s: Hold | None = None
    expected_version: Version | None = None
    request_id: RequestId | None = None


class UpdateGroupReq(UpdateGroupBody, frozen=True, forbid_unknown_fields=True, kw_only=True):
    name: Id


class GroupNameReq(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Id


class ListGroupsReq(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    pass


class DeleteGroupReq(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Id
    expected_version: Version | None = None
    request_id: RequestId | None = None


class ListAlarmsReq(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    active: bool | None = None
    """True: active alarms only; False: cleared ones only; None: all kept alarms."""
    kind: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    source: Annotated[str, msgspec.Meta(max_length=300)] | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 1000


class AckAlarmReq(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    alarm_id: AlarmId
    by: Name | None = None
    """Who acknowledges (default: ``anonymous``)."""
    request_id: RequestId | None = None
