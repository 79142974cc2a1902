"""Stream handler: per-stream state updated by every frame (timestamps, fps, keyframes, window).

The handler turns a decoded :class:`~analytics.collector.Frame` into an analysis timestamp and
keeps a ring of small colour thumbnails (``thumb_width`` wide, one every ``thumb_interval_s``)
from which analysis records take their window of frames. Thumbnails stay raw YUV planes (their
luma is the analysis picture itself when it has the thumbnail's size) and are JPEG-encoded only
when a record takes them: a stream where nothing happens encodes nothing. The pipeline tells the
ring which thumbnails no record can need any more (:meth:`StreamHandler.release`).
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from analytics.collector import Frame
from analytics.jpeg import JpegEncoder, yuv_thumbnail

__all__ = ["StreamHandler", "Thumb", "WindowConfig"]

U8 = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class WindowConfig:
    """Which frames a record carries: up to ``frames`` thumbnails evenly spread over
    ``[started_at - pre_s, ended_at + post_s]``, taken from a ring of one thumbnail every
    ``thumb_interval_s`` kept for at most ``ring_s`` seconds; beyond ``max_thumbs`` the older
    half of the ring is thinned (every other one goes)."""

    frames: int = 8
    pre_s: float = 1.0
    post_s: float = 1.0
    thumb_width: int = 320
    thumb_interval_s: float = 0.25
    ring_s: float = 30.0
    max_thumbs: int = 64
    jpeg_quality: int = 5


@dataclass(frozen=True, slots=True)
class Thumb:
    """A JPEG thumbnail of the frame at analysis time ``ts``."""

    ts: float
    jpeg: bytes


class _Raw:
    """A thumbnail in the ring: YUV 4:2:0 planes until a record encodes it (then its JPEG)."""

    __slots__ = ("jpeg", "planes", "ts")

    def __init__(self, ts: float, planes: tuple[U8, U8, U8]) -> None:
        self.ts = ts
        self.planes: tuple[U8, U8, U8] | None = planes
        self.jpeg: bytes | None = None


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
        self._ring: deque[_Raw] = deque()
        self._jpeg = JpegEncoder(window.jpeg_quality)
        self._next_thumb_ts = float("-inf")
        self.thumbs_taken = 0
        self.encoded = 0  # JPEG thumbnails encoded so far

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
            luma = frame.gray if frame.step else None
            planes = yuv_thumbnail(frame.video, self.window.thumb_width, luma, frame.step)
            self._ring.append(_Raw(self.ts, planes))
            self.thumbs_taken += 1
            step = self.window.thumb_interval_s
            due = self._next_thumb_ts + step  # keep a regular grid unless frames were missing
            self._next_thumb_ts = due if due > self.ts else self.ts + step
            while self._ring and self._ring[0].ts < self.ts - self.window.ring_s:
                self._ring.popleft()
            if len(self._ring) > self.window.max_thumbs:
                self._thin()
        return self.ts

    def release(self, before: float) -> None:
        """Thumbnails older than ``before`` will not be asked for: forget them."""
        while self._ring and self._ring[0].ts < before:
            self._ring.popleft()

    def select_window(self, started_at: float, ended_at: float) -> list[Thumb]:
        """Up to ``window.frames`` thumbnails evenly spread in time over ``[started_at,
        ended_at]`` widened by the margins, JPEG-encoded (each thumbnail once)."""
        lo, hi = started_at - self.window.pre_s, ended_at + self.window.post_s
        found = [t for t in self._ring if lo <= t.ts <= hi]
        wanted = self.window.frames
        if len(found) > wanted:
            times = [t.ts for t in found]
            picks: list[int] = []
            for target in np.linspace(found[0].ts, found[-1].ts, wanted):
                i = bisect.bisect_left(times, float(target))
                if i > 0 and (i == len(times) or target - times[i - 1] <= times[i] - target):
                    i -= 1
                if not picks or i > picks[-1]:
                    picks.append(i)
            found = [found[i] for i in picks]
        return [Thumb(t.ts, self._encode(t)) for t in found]

    def _encode(self, raw: _Raw) -> bytes:
        if raw.jpeg is None:
            assert raw.planes is not None
            y, u, v = raw.planes
            raw.jpeg, raw.planes = self._jpeg.encode(y, u, v), None
            self.encoded += 1
        return raw.jpeg

    def _thin(self) -> None:
        """Every other one of the older half of the ring goes."""
        ring = list(self._ring)
        half = len(ring) // 2
        self._ring = deque(ring[:half:2] + ring[half:])

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
