"""Per-stream counters shared by the decode thread, the analysis thread and the spooler."""

from __future__ import annotations

import threading
import time

from events.feedback import StreamStats

__all__ = ["StreamCounters"]

_FIELDS = tuple(StreamStats.__struct_fields__)


class StreamCounters:
    """Thread-safe counters named after :class:`events.feedback.StreamStats`.

    ``take_delta`` returns what was counted since its previous call; ``totals`` everything since
    creation. ``peak_bitrate_bps`` is the highest bitrate of one media second (bytes of the
    packets whose timestamps fall in that second); partial seconds count as they are.
    ``processing_ms`` is the stream's uptime: wall-clock time between consecutive decoded frames,
    leaving out gaps longer than ``MAX_GAP_S`` (an outage or a reconnect is not uptime).
    ``media_ms`` is the media time the packets cover: how far their timestamps advanced (a jump
    of more than ``MAX_GAP_S`` either way — a reconnect, a looped file — starts again from the
    new timestamp), so bytes over media time is the stream's bitrate however fast it is read.
    """

    MAX_GAP_S = 5.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._delta = dict.fromkeys(_FIELDS, 0)
        self._total = dict.fromkeys(_FIELDS, 0)
        self._processing_s_delta = 0.0
        self._processing_s_total = 0.0
        self._media_s_delta = 0.0
        self._media_s_total = 0.0
        self._media_front: float | None = None
        self._second: int | None = None
        self._last_decode: float | None = None
        self._second_bytes = 0

    # -- collector (SourceMeters) -----------------------------------------------------------------

    def add_packet(self, size: int, media_s: float | None) -> None:
        with self._lock:
            self._add("bytes_read", size)
            if media_s is None:
                self._second_bytes += size
            else:
                self._advance_media(media_s)
                second = int(media_s)
                if second != self._second:
                    self._second = second
                    self._second_bytes = 0
                self._second_bytes += size
            bps = self._second_bytes * 8
            for table in (self._delta, self._total):
                table["peak_bitrate_bps"] = max(table["peak_bitrate_bps"], bps)

    def _advance_media(self, media_s: float) -> None:
        front = self._media_front
        if front is None or not -self.MAX_GAP_S <= media_s - front <= self.MAX_GAP_S:
            self._media_front = media_s  # the first packet, or a jump: a new origin
        elif media_s > front:
            self._media_s_delta += media_s - front
            self._media_s_total += media_s - front
            self._media_front = media_s

    def add_decoded(self, frames: int, keyframes: int, seconds: float) -> None:
        del keyframes, seconds  # keyframes: tracked by the handler; time: wall clock, below
        now = time.monotonic()
        with self._lock:
            self._add("frames_decoded", frames)
            if frames:
                if self._last_decode is not None and now - self._last_decode <= self.MAX_GAP_S:
                    self._add_processing(now - self._last_decode)
                self._last_decode = now

    def add_dropped(self, frames: int) -> None:
        with self._lock:
            self._add("frames_dropped", frames)

    # -- analysis and spooling ---------------------------------------------------------------------

    def add_analysed(self, frames: int, seconds: float) -> None:
        del seconds  # uptime is measured on the decode side
        with self._lock:
            self._add("frames_analysed", frames)

    def add(
        self,
        *,
        reconnects: int = 0,
        stalls: int = 0,
        triggers: int = 0,
        events: int = 0,
        records_sent: int = 0,
    ) -> None:
        with self._lock:
            self._add("reconnects", reconnects)
            self._add("stalls", stalls)
            self._add("triggers", triggers)
            self._add("events", events)
            self._add("records_sent", records_sent)

    # -- readers ----------------------------------------------------------------------------------

    def take_delta(self) -> StreamStats:
        """Counts since the previous call (and resets them)."""
        with self._lock:
            values = dict(self._delta)
            values["processing_ms"] = int(self._processing_s_delta * 1000)
            carried = self._processing_s_delta - values["processing_ms"] / 1000
            values["media_ms"] = int(self._media_s_delta * 1000)
            media_carried = self._media_s_delta - values["media_ms"] / 1000
            self._delta = dict.fromkeys(_FIELDS, 0)
            self._processing_s_delta = carried
            self._media_s_delta = media_carried
        return StreamStats(**values)

    def totals(self) -> StreamStats:
        """Counts since creation."""
        with self._lock:
            values = dict(self._total)
            values["processing_ms"] = int(self._processing_s_total * 1000)
            values["media_ms"] = int(self._media_s_total * 1000)
        return StreamStats(**values)

    def _add(self, name: str, amount: int) -> None:
        if amount:
            self._delta[name] += amount
            self._total[name] += amount

    def _add_processing(self, seconds: float) -> None:
        self._processing_s_delta += seconds
        self._processing_s_total += seconds
