"""Request bodies of the NATS commands (CONTRACT §2) and their validation.

Bodies are decoded straight into these Structs; msgspec's error names the failing field's path
(``$.source.url``), which becomes the ``invalid`` reply's detail. Sizes are bounded so a huge
string is refused instead of stored.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

import msgspec

from core.errors import Invalid

__all__ = [
    "AnalyticIn",
    "AutorestartIn",
    "CreateStreamReq",
    "DeleteStreamReq",
    "GetStreamReq",
    "ListStreamsReq",
    "PatchStreamReq",
    "SourceIn",
    "decode_request",
]

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:@-]+$")]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
RequestId = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
LabelKey = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
LabelValue = Annotated[str, msgspec.Meta(max_length=256)]
AnalyticName = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_.-]{0,63}$")]

SCHEMES = ("file", "rtsp", "rtsps", "http", "https", "tcp", "udp", "rtmp", "srt")


class SourceIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    url: Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]


class AnalyticIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: AnalyticName
    params: Annotated[dict[str, Any], msgspec.Meta(max_length=64)] = {}


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
    labels: Annotated[dict[LabelKey, LabelValue], msgspec.Meta(max_length=64)] = {}
    staleness_s: Annotated[float, msgspec.Meta(gt=0, le=86400)] | None = None
    allow_unregistered: bool = False
    spool: SpoolIn | None = None
    request_id: RequestId | None = None


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


class PatchStreamReq(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    stream_id: Id
    action: Literal["start", "stop"]
    expected_version: Annotated[int, msgspec.Meta(ge=1)] | None = None
    request_id: RequestId | None = None


class DeleteStreamReq(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    stream_id: Id
    expected_version: Annotated[int, msgspec.Meta(ge=1)] | None = None
    request_id: RequestId | None = None


class EmptyReq(msgspec.Struct, frozen=True):
    pass


T = TypeVar("T")
_PATH = re.compile(r" - at `(?P<path>[^`]*)`$")


def decode_request(data: bytes, req_type: type[T]) -> T:
    """Decode a JSON body into ``req_type`` or raise ``Invalid`` with the failing path."""
    if not data.strip():
        data = b"{}"
    try:
        return msgspec.json.decode(data, type=req_type)
    except msgspec.ValidationError as exc:
        text = str(exc)
        m = _PATH.search(text)
        path = m.group("path") if m else "$"
        raise Invalid(path, _PATH.sub("", text)) from None
    except msgspec.DecodeError as exc:
        raise Invalid("$", f"body is not valid JSON: {exc}") from None


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


# ---- agent protocol (CONTRACT §4) -------------------------------------------------------------


class AnalyticOfferIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: AnalyticName
    version: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] = "1"
    params_schema: Annotated[dict[str, Any], msgspec.Meta(max_length=64)] = {}


class RegisterAgentReq(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Name
    capacity: Annotated[int, msgspec.Meta(ge=1, le=10_000)]
    analytics: Annotated[list[AnalyticOfferIn], msgspec.Meta(max_length=256)] = []
    groups: Annotated[list[Id], msgspec.Meta(max_length=64)] = []
    labels: Annotated[dict[LabelKey, LabelValue], msgspec.Meta(max_length=64)] = {}
    host: Annotated[dict[str, Any], msgspec.Meta(max_length=64)] = {}
    agent_id: Id | None = None  # resume an identity (the agent keeps it with its outbox)


class HeartbeatIn(msgspec.Struct, frozen=True):
    ts: float
    running: Annotated[list[Id], msgspec.Meta(max_length=100_000)] = []
    cpu_percent: float = 0.0
    mem_used: int = 0
    mem_total: int = 0
    disk_used: int = 0
    disk_total: int = 0
    outbox_depth: int = 0
    alarms: list[str] = []


class PollStreamsReq(msgspec.Struct, frozen=True):
    running: Annotated[list[Id], msgspec.Meta(max_length=100_000)] | None = None


class AgentIdReq(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    agent_id: Id


class ListAgentsReq(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    status: Literal["ready", "not_ready"] | None = None
