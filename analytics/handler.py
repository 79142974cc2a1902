"""Stream handler: per-stream state updated by every frame (timestamps, fps, keyframes, window).

The handler turns a decoded :class:`~analytics.collector.Frame` into an analysis timestamp and
keeps a ring of small colour JPEG thumbnails (``thumb_width`` wide, one every
``thumb_interval_s``, a few kB each) from which analysis records take their window of frames.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from analytics.collector import Frame
from analytics.jpeg import JpegEncoder, yuv_thumbnail

__all__ = ["StreamHandler", "Thumb", "WindowConfig"]


@dataclass(frozen=True)
class WindowConfig:
    """Which frames a record carries: up to ``frames`` thumbnails evenly spread over
    ``[started_at - pre_s, ended_at + post_s]``, taken from a ring of one thumbnail every
    ``thumb_interval_s`` kept for ``ring_s`` seconds."""

    frames: int = 8
    pre_s: float = 1.0
    post_s: float = 1.0
    thumb_width: int = 320
    thumb_interval_s: float = 0.25
    ring_s: float = 30.0
    jpeg_quality: int = 5


@dataclass(frozen=True, slots=True)
class Thumb:
    """A JPEG thumbnail of the frame at analysis time ``ts``."""

    ts: float
    jpeg: bytes


class StreamHandler:
    """Per-stream state: analysis timestamps, fps estimate, keyframes and the thumbnail ring.

    Timestamps are media seconds from the first frame for files; for live sources each connection
    is anchored to the wall clock of its first frame, so timestamps stay unique across reconnects.
    """

    def __init__(self, *, live: bool, window: WindowConfig = WindowConfig()) -> None:
        self.live = live
        self.window = window
        self.frames = 0
        self.keyframes = 0
        self.last_keyframe_ts: float | None = None
        self.fps = 0.0
        self.ts = 0.0
        self._session = -1
        self._anchor = 0.0
        self._last_pts: float | None = None
        self._ring: deque[Thumb] = deque()
        self._jpeg = JpegEncoder(window.jpeg_quality)
        self._next_thumb_ts = float("-inf")

    def update(self, frame: Frame) -> float:
        """Account for ``frame`` and return its analysis timestamp."""
        ts = self._timestamp(frame)
        if self.frames and ts > self.ts:
            dt = ts - self.ts
            self.fps = 1.0 / dt if self.fps == 0.0 else 0.9 * self.fps + 0.1 / dt
        self.ts = max(ts, self.ts) if self.frames else ts
        self.frames += 1
        if frame.key:
            self.keyframes += 1
            self.last_keyframe_ts = self.ts
        if self.ts >= self._next_thumb_ts:
            y, u, v = yuv_thumbnail(frame.video, self.window.thumb_width)
            self._ring.append(Thumb(self.ts, self._jpeg.encode(y, u, v)))
            step = self.window.thumb_interval_s
            due = self._next_thumb_ts + step  # keep a regular grid unless frames were missing
            self._next_thumb_ts = due if due > self.ts else self.ts + step
            while self._ring and self._ring[0].ts < self.ts - self.window.ring_s:
                self._ring.popleft()
        return self.ts

    def select_window(self, started_at: float, ended_at: float) -> list[Thumb]:
        """Up to ``window.frames`` thumbnails evenly spread around ``[started_at, ended_at]``."""
        lo, hi = started_at - self.window.pre_s, ended_at + self.window.post_s
        found = [t for t in self._ring if lo <= t.ts <= hi]
        wanted = self.window.frames
        if len(found) <= wanted:
            return found
        picks = np.unique(np.linspace(0, len(found) - 1, wanted).round().astype(int))
        return [found[int(i)] for i in picks]

    def _timestamp(self, frame: Frame) -> float:
        period = 1.0 / self.fps if self.fps > 0 else 0.04
        if frame.session != self._session:
            self._session = frame.session
            self._last_pts = None
            if self.live:
                self._anchor = frame.wall - (frame.pts_s or 0.0)
            elif self.frames == 0:
                self._anchor = -(frame.pts_s or 0.0)
            else:
                self._anchor = self.ts + period - (frame.pts_s or 0.0)
        if frame.pts_s is None:
            return self.ts + period if self.frames else (frame.wall if self.live else 0.0)
        if self._last_pts is not None and frame.pts_s < self._last_pts - 1.0:
            # Timestamps jumped backwards (wrap or source restart): continue from here.
            self._anchor = self.ts + period - frame.pts_s
        self._last_pts = frame.pts_s
        return self._anchor + frame.pts_s
