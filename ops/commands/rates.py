"""What each stream is doing right now, from its agent's feedback: frames per second, bitrate,
drops, reconnects, stalls (the per-stream figures of ``/metrics``).

Every manager hears every feedback publish (core NATS, ``vigil.feedback.*``, the same messages
JetStream stores) and keeps, per stream, the rates of its newest feedback interval and the
counts since this manager started. These are live figures for dashboards and alerts; the
figures to bill from are the daily statistics (``ops.stats``: each delta counted once). A
stream nobody reported on for ``max_age_s`` is left out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from nats.aio.msg import Msg

from events import subjects
from events.feedback import Feedback, decode_feedback

__all__ = ["StreamRate", "StreamRates"]

log = logging.getLogger(__name__)


@dataclass
class StreamRate:
    agent_id: str
    ts: float
    """The agent's clock at the newest feedback (seconds)."""
    seen: float
    """This manager's monotonic clock when it arrived."""
    fps: float = 0.0
    bitrate_bps: float = 0.0
    frames_decoded: int = 0
    frames_dropped: int = 0
    bytes_read: int = 0
    reconnects: int = 0
    stalls: int = 0


class StreamRates:
    def __init__(self, *, max_age_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.max_age_s = max_age_s
        self.clock = clock
        self.rates: dict[str, StreamRate] = {}
        self.invalid = 0

    def note(self, agent_id: str, fb: Feedback) -> None:
        s = fb.stats
        now = self.clock()
        rate = self.rates.get(fb.stream_id)
        if rate is None or rate.agent_id != agent_id:
            rate = self.rates[fb.stream_id] = StreamRate(agent_id=agent_id, ts=fb.ts, seen=now)
        elif fb.ts > rate.ts:  # an interval after the previous one: its rates
            dt = fb.ts - rate.ts
            rate.fps = s.frames_decoded / dt
            rate.bitrate_bps = s.bytes_read * 8 / dt
            rate.ts = fb.ts
        rate.seen = now
        rate.frames_decoded += s.frames_decoded
        rate.frames_dropped += s.frames_dropped
        rate.bytes_read += s.bytes_read
        rate.reconnects += s.reconnects
        rate.stalls += s.stalls
        if fb.status != "in_progress":
            rate.fps = rate.bitrate_bps = 0.0

    async def on_msg(self, msg: Msg) -> None:
        try:
            agent_id = subjects.feedback_agent_of(msg.subject)
            fb = decode_feedback(msg.data)
        except ValueError as exc:  # msgspec's errors are ValueErrors; the consumer refuses them
            self.invalid += 1
            log.debug("feedback on %s not understood: %s", msg.subject, exc)
            return
        self.note(agent_id, fb)

    def current(self) -> Iterator[tuple[str, StreamRate]]:
        """Streams reported on within ``max_age_s`` (and forgets the others)."""
        cutoff = self.clock() - self.max_age_s
        for stream_id, rate in list(self.rates.items()):
            if rate.seen < cutoff:
                del self.rates[stream_id]
            else:
                yield stream_id, rate
