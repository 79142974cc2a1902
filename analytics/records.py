"""Analysis records (CONTRACT §5): an event, its actions and triggers, and a window of frames.

``record_id`` is derived from the stream, the event name and its start time, so a record built
twice (a retry, a re-analysed file) has the same id and JetStream's ``Nats-Msg-Id`` dedupes it.
"""

from __future__ import annotations

import base64
import hashlib

import msgspec
import numpy as np

from analytics.handler import Thumb
from analytics.types import ActionHit, EventHit, Trigger

__all__ = [
    "ANALYTICS_VERSION",
    "AnalysisRecord",
    "EventInfo",
    "WindowFrame",
    "build_record",
    "decode_record",
    "encode_record",
    "record_id",
]

ANALYTICS_VERSION = "vigil-analytics/2"


class EventInfo(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    started_at: float
    ended_at: float
    score: float


class WindowFrame(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One frame of the window: a base64 JPEG inline, or the ``path`` of a JPEG file."""

    ts: float
    jpeg_b64: str | None = None
    path: str | None = None


class AnalysisRecord(msgspec.Struct, frozen=True, kw_only=True):
    record_id: str
    stream_id: str
    agent_id: str
    event: EventInfo
    actions: list[ActionHit]
    triggers: list[Trigger]
    window: list[WindowFrame]
    analytics_version: str = ANALYTICS_VERSION


encode_record = msgspec.json.Encoder().encode
decode_record = msgspec.json.Decoder(AnalysisRecord).decode


def record_id(stream_id: str, event_name: str, started_at: float) -> str:
    """Deterministic id: the same event of the same stream always gets the same id."""
    key = f"{stream_id}\x00{event_name}\x00{round(started_at * 1000)}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def build_record(
    stream_id: str, agent_id: str, event: EventHit, window: list[Thumb], max_triggers: int = 200
) -> AnalysisRecord:
    """The record of ``event`` with its window encoded as inline JPEG thumbnails."""
    triggers = [t for action in event.actions for t in action.triggers]
    triggers.sort(key=lambda t: t.ts)
    if len(triggers) > max_triggers:
        picks = np.linspace(0, len(triggers) - 1, max_triggers).round().astype(int)
        triggers = [triggers[int(i)] for i in picks]
    actions = [msgspec.structs.replace(a, triggers=()) for a in event.actions]
    return AnalysisRecord(
        record_id=record_id(stream_id, event.name, event.started_at),
        stream_id=stream_id,
        agent_id=agent_id,
        event=EventInfo(
            name=event.name,
            started_at=event.started_at,
            ended_at=event.ended_at,
            score=event.score,
        ),
        actions=actions,
        triggers=triggers,
        window=[WindowFrame(ts=t.ts, jpeg_b64=base64.b64encode(t.jpeg).decode()) for t in window],
    )
