"""Agent feedback: the messages agents publish to JetStream ``VIGIL_FEEDBACK``.

Subject ``vigil.feedback.<agent_id>``, header ``Nats-Msg-Id: <agent_id>:<seq>``. ``seq`` is strictly
increasing per agent and survives agent restarts (the agent's outbox keeps it). Statistics are
*deltas* measured during the UTC ``day`` they name, all integers so that sums are exact.

What can be derived need not be sent: the agent is the one in the subject (a body that names
another agent is refused), and ``day`` defaults to the UTC day of ``ts``. ``resolve`` applies
both rules and returns the feedback as counted.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

import msgspec

from events.bounded import decode

__all__ = [
    "FEEDBACK_STATUSES",
    "Feedback",
    "FeedbackError",
    "ForeignFeedback",
    "StreamStats",
    "decode_feedback",
    "encode_feedback",
    "resolve",
    "utc_day",
]

Count = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
Day = Annotated[str, msgspec.Meta(pattern=r"^\d{4}-\d{2}-\d{2}$")]

FeedbackStatus = Literal["in_progress", "done", "failure"]
FEEDBACK_STATUSES: tuple[str, ...] = ("in_progress", "done", "failure")


class StreamStats(msgspec.Struct, frozen=True, kw_only=True):
    """Counters measured for one stream since the previous feedback (deltas, never totals).

    ``peak_bitrate_bps`` is the highest one-second bitrate seen in the interval: it combines by
    ``max``, every other field by ``+``. ``processing_ms`` is wall-clock *uptime* (time the
    stream was being decoded, gaps over 5 s left out), not CPU time; ``media_ms`` is the *media*
    time those bytes cover (advance of the packets' timestamps): the average bitrate is
    ``bytes_read × 8 / media time``, right for a file decoded faster than real time too.
    """

    frames_decoded: Count = 0
    frames_analysed: Count = 0
    frames_dropped: Count = 0
    bytes_read: Count = 0
    reconnects: Count = 0
    stalls: Count = 0
    triggers: Count = 0
    events: Count = 0
    records_sent: Count = 0
    processing_ms: Count = 0
    peak_bitrate_bps: Count = 0
    media_ms: Count = 0

    def combine(self, other: StreamStats) -> StreamStats:
        """The delta covering both intervals (used to coalesce unsent deltas)."""
        return StreamStats(
            frames_decoded=self.frames_decoded + other.frames_decoded,
            frames_analysed=self.frames_analysed + other.frames_analysed,
            frames_dropped=self.frames_dropped + other.frames_dropped,
            bytes_read=self.bytes_read + other.bytes_read,
            reconnects=self.reconnects + other.reconnects,
            stalls=self.stalls + other.stalls,
            triggers=self.triggers + other.triggers,
            events=self.events + other.events,
            records_sent=self.records_sent + other.records_sent,
            processing_ms=self.processing_ms + other.processing_ms,
            peak_bitrate_bps=max(self.peak_bitrate_bps, other.peak_bitrate_bps),
            media_ms=self.media_ms + other.media_ms,
        )

    def is_zero(self) -> bool:
        return self == StreamStats()


class FeedbackError(msgspec.Struct, frozen=True, kw_only=True):
    """Why a stream failed. ``fatal`` errors (missing file, invalid params) never autorestart."""

    code: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    message: Annotated[str, msgspec.Meta(max_length=2048)] = ""
    fatal: bool = False


class Feedback(msgspec.Struct, frozen=True, kw_only=True):
    """One feedback message from an agent about one stream.

    ``version`` is the assignment version the agent got with the stream; feedback for any other
    version is stale and ignored by the manager. ``status`` is the stream's state on the agent;
    ``stats`` are deltas measured on UTC day ``day`` (``YYYY-MM-DD``).
    """

    seq: Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
    stream_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    version: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
    status: FeedbackStatus
    ts: Annotated[float, msgspec.Meta(ge=0, le=1e11)]
    agent_id: str | None = None
    """Optional: the subject says who sent it; a different id here is refused."""
    day: Day | None = None
    """Optional: the UTC day of ``ts``."""
    error: FeedbackError | None = None
    stats: StreamStats = msgspec.field(default_factory=StreamStats)


class ForeignFeedback(ValueError):
    """The body names an agent other than the one whose subject carried it."""


def utc_day(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def resolve(fb: Feedback, subject_agent: str) -> Feedback:
    """``fb`` with ``agent_id`` from the subject and ``day`` from ``ts`` when absent; raises
    `ForeignFeedback` when the body names another agent."""
    if fb.agent_id is not None and fb.agent_id != subject_agent:
        raise ForeignFeedback(
            f"feedback on the subject of agent {subject_agent} names agent {fb.agent_id}"
        )
    if fb.agent_id is not None and fb.day is not None:
        return fb
    return msgspec.structs.replace(fb, agent_id=subject_agent, day=fb.day or utc_day(fb.ts))


encode_feedback = msgspec.json.Encoder().encode
_decoder = msgspec.json.Decoder(Feedback)


def decode_feedback(data: bytes) -> Feedback:
    """Decode (bounded; deep nesting is a ``DecodeError``, never a ``RecursionError``)."""
    return decode(data, Feedback, decoder=_decoder)
