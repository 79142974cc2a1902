"""Stream handler: per-stream state updated by every frame (timestamps, fps, keyframes, window).

The handler turns a decoded :class:`~analytics.collector.Frame` into an analysis timestamp and
keeps a ring of small colour thumbnails (copies of strided YUV 4:2:0 planes, ``thumb_width`` wide,
one every ``thumb_interval_s``) from which analysis records take their window of frames.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import av
import numpy as np
import numpy.typing as npt

from analytics.collector import Frame

__all__ = ["StreamHandler", "Thumb", "WindowConfig", "thumbnail"]

U8 = npt.NDArray[np.uint8]


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


@dataclass(frozen=True, slots=True)
class Thumb:
    """A small yuv420p picture (contiguous copies) at analysis time ``ts``."""

    ts: float
    y: U8
    u: U8
    v: U8


def thumbnail(video: av.VideoFrame, width: int) -> tuple[U8, U8, U8]:
    """Copies of the YUV planes subsampled to about ``width`` (height a multiple of 4)."""
    if video.format.name in ("yuv420p", "yuvj420p"):
        step = max(1, video.width // width)
        chroma = ((video.width + 1) // 2, (video.height + 1) // 2)
        planes = []
        for index, (w, h) in enumerate(((video.width, video.height), chroma, chroma)):
            plane = video.planes[index]
            full = np.frombuffer(memoryview(plane), dtype=np.uint8).reshape(-1, plane.line_size)
            planes.append(full[:h:step, :w:step])
        y, u, v = planes
        rows = min(y.shape[0] // 4 * 4, u.shape[0] * 2 // 4 * 4)
        cols = min(y.shape[1] // 2 * 2, u.shape[1] * 2)
        return (
            np.ascontiguousarray(y[:rows, :cols]),
            np.ascontiguousarray(u[: rows // 2, : cols // 2]),
            np.ascontiguousarray(v[: rows // 2, : cols // 2]),
        )
    height = max(4, round(video.height * width / video.width) // 4 * 4)
    small = video.reformat(width=width, height=height, format="yuv420p")
    return thumbnail(small, width)


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
            y, u, v = thumbnail(frame.video, self.window.thumb_width)
            self._ring.append(Thumb(self.ts, y, u, v))
            self._next_thumb_ts = self.ts + self.window.thumb_interval_s * 0.999
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
