"""Agent feedback: the messages agents publish to JetStream ``VIGIL_FEEDBACK``.

Subject ``vigil.feedback.<agent_id>``, header ``Nats-Msg-Id: <agent_id>:<seq>``. ``seq`` is strictly
increasing per agent and survives agent restarts (the agent's outbox keeps it). Statistics are
*deltas* measured during the UTC ``day`` they name, all integers so that sums are exact.
"""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = [
    "FEEDBACK_STATUSES",
    "Feedback",
    "FeedbackError",
    "StreamStats",
    "decode_feedback",
    "encode_feedback",
]

FeedbackStatus = Literal["in_progress", "done", "failure"]
FEEDBACK_STATUSES: tuple[str, ...] = ("in_progress", "done", "failure")


class StreamStats(msgspec.Struct, frozen=True, kw_only=True):
    """Counters measured for one stream since the previous feedback (deltas, never totals).

    ``peak_bitrate_bps`` is the highest one-second bitrate seen in the interval: it combines by
    ``max``, every other field by ``+``.
    """

    frames_decoded: int = 0
    frames_analysed: int = 0
    frames_dropped: int = 0
    bytes_read: int = 0
    reconnects: int = 0
    stalls: int = 0
    triggers: int = 0
    events: int = 0
    records_sent: int = 0
    processing_ms: int = 0
    peak_bitrate_bps: int = 0

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
        )

    def is_zero(self) -> bool:
        return self == StreamStats()


class FeedbackError(msgspec.Struct, frozen=True, kw_only=True):
    """Why a stream failed. ``fatal`` errors (missing file, invalid params) never autorestart."""

    code: str
    message: str = ""
    fatal: bool = False


class Feedback(msgspec.Struct, frozen=True, kw_only=True):
    """One feedback message from an agent about one stream.

    ``version`` is the assignment version the agent got with the stream; feedback for any other
    version is stale and ignored by the manager. ``status`` is the stream's state on the agent;
    ``stats`` are deltas measured on UTC day ``day`` (``YYYY-MM-DD``).
    """

    seq: int
    agent_id: str
    stream_id: str
    version: int
    status: FeedbackStatus
    ts: float
    day: str
    error: FeedbackError | None = None
    stats: StreamStats = msgspec.field(default_factory=StreamStats)


encode_feedback = msgspec.json.Encoder().encode
decode_feedback = msgspec.json.Decoder(Feedback).decode
