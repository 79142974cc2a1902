"""Stream analyzers: thin stateful wrappers over :mod:`analytics.detectors` that emit triggers.

Each analyzer sees every analysed frame as a :class:`~analytics.picture.Picture` (the analysis
luma, ``uint8``, limited range, with its timestamp and the measurements the analyzers share) and
returns the triggers it found in that frame: ``analyse(picture)``. ``process(ts, gray)`` does the
same for a bare array (tests, one analyzer on its own). Their params are validated against the
JSON schemas in :mod:`analytics.registry` before they get here.
"""

from __future__ import annotations

import math
from typing import Protocol

import msgspec
import numpy as np
import numpy.typing as npt

from analytics import detectors as d
from analytics.picture import Picture
from analytics.types import Trigger

__all__ = [
    "Analyzer",
    "BlackFrame",
    "BlackFrameParams",
    "Brightness",
    "BrightnessParams",
    "FrozenFrame",
    "FrozenFrameParams",
    "Motion",
    "MotionParams",
    "SceneChange",
    "SceneChangeParams",
    "Standalone",
]

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]


class Analyzer(Protocol):
    """What the pipeline needs from a stream analyzer. ``lookback_s``: how far back before the
    frame it analyses it may date a trigger (it holds triggers back until it is sure)."""

    name: str
    lookback_s: float

    def analyse(self, picture: Picture) -> list[Trigger]: ...

    def process(self, ts: float, gray: U8) -> list[Trigger]: ...


class Standalone:
    """``process(ts, gray)``: analyse a bare array (it gets a picture of its own)."""

    lookback_s = 0.0

    def analyse(self, picture: Picture) -> list[Trigger]:
        raise NotImplementedError

    def process(self, ts: float, gray: U8) -> list[Trigger]:
        return self.analyse(Picture(ts, gray))


class MotionParams(msgspec.Struct, frozen=True, kw_only=True):
    sensitivity: float = 0.5
    min_area: float = 0.005
    max_area: float = 0.6
    grid: tuple[int, int] = (16, 9)
    cell_fraction: float = 0.02
    min_pixels: int = 8
    dark_level: float = 0.25
    noise_levels: int = 10


class Motion(Standalone):
    """Previous-frame difference over a grid. A pixel changed when it moved by more than the
    sensitivity's threshold (0.5 → 35 luma levels), scaled down in a dark scene (mean level
    under ``dark_level``: a dark scene spans few levels) but never under ``noise_levels``
    (sensor and codec noise). A cell is active when ``cell_fraction`` of its pixels, and at least
    ``min_pixels``, changed (noise lights a few pixels of any cell, however small); a frame
    triggers when the active cells cover at least ``min_area`` of the grid. Above
    ``max_area`` the whole picture changed (a cut, lights, a pan) and that is not motion."""

    name = "motion"

    def __init__(self, params: MotionParams) -> None:
        self.params = params
        self._bright = d.pixel_threshold(params.sensitivity)  # in a scene that is not dark
        self._floor = min(params.noise_levels, self._bright)
        self._previous: Picture | None = None
        self._grid: d.CellGrid | None = None

    def threshold(self, picture: Picture) -> int:
        """The per-pixel threshold (levels) for ``picture`` (its mean level)."""
        p = self.params
        level = picture.level
        if level >= p.dark_level:
            return max(self._floor, self._bright)
        return max(self._floor, d.pixel_threshold(p.sensitivity, level, p.dark_level))

    def analyse(self, picture: Picture) -> list[Trigger]:
        previous, self._previous = self._previous, picture
        if previous is None or previous.shape != picture.shape:
            return []
        p = self.params
        grid = self._grid
        if grid is None or grid.shape != picture.shape:
            grid = self._grid = d.CellGrid(picture.shape, p.grid, p.cell_fraction, p.min_pixels)
        cells = grid.active(picture.diff(previous), self.threshold(picture))
        active = int(np.count_nonzero(cells))
        area = active / cells.size
        if area < p.min_area or area > p.max_area:
            return []
        rows, cols = np.nonzero(cells)  # rows ascending
        height, width = cells.shape
        across = cols.tolist()
        details = {
            "cells": float(active),
            "x0": min(across) / width,
            "y0": float(rows[0]) / height,
            "x1": (max(across) + 1) / width,
            "y1": float(rows[-1] + 1) / height,
        }
        return [Trigger(name=self.name, ts=picture.ts, score=area, details=details)]


class SceneChangeParams(msgspec.Struct, frozen=True, kw_only=True):
    threshold: float = 0.1
    abrupt: float = 0.5
    level_scale: float = 64.0
    min_contrast: float = 4.0


class SceneChange(Standalone):
    """A cut: the picture changes much more from the previous frame than in the frames around.

    The change of a frame is ``1 - r``, the decorrelation of its luma with the previous frame's
    (on the coarse picture, about 160 wide), or its mean level change over ``level_scale`` levels if
    that is larger. Correlation ignores gain and offset, so a fade changes little from frame to
    frame; a whole picture that changes steadily (a pan, a busy scene) changes as much before and
    after. A frame is a cut when its change exceeds both neighbours' by ``threshold``, or exceeds
    the previous one by ``abrupt`` while the next frame is as unrelated to the frame before the
    cut (a new scene that keeps changing, or an encoder refining it; a one-frame glitch returns
    to the old picture). The trigger is dated at the cut and emitted one frame later, once the
    next frame is known. Frames flatter than ``min_contrast`` (luma standard deviation, levels)
    are not judged: cuts to and from black or a covered lens are black_frame's and tamper's."""

    name = "scene_change"

    def __init__(self, params: SceneChangeParams) -> None:
        self.params = params
        # The last two frames' profiles and changes (the newest last): the older is judged.
        self._profiles: list[d.Profile] = []
        self._changes: list[float | None] = []
        self._times: list[float] = []

    def _change(self, previous: d.Profile, current: d.Profile) -> float | None:
        if previous.values.shape != current.values.shape:
            return None
        if min(previous.std, current.std) < self.params.min_contrast:
            return None
        level = abs(current.mean - previous.mean) / self.params.level_scale
        return max(d.decorrelation(previous, current), level)

    def analyse(self, picture: Picture) -> list[Trigger]:
        current = picture.profile
        change = self._change(self._profiles[-1], current) if self._profiles else None
        self._profiles = [*self._profiles[-2:], current]
        self._changes = [*self._changes[-2:], change]
        self._times = [*self._times[-2:], picture.ts]
        if len(self._profiles) < 3:
            return []
        before, cut, after = self._changes
        if cut is None:
            return []
        p = self.params
        jump = cut - max(before or 0.0, after or 0.0)
        if jump < p.threshold:
            if before is None or after is None or cut - before < p.abrupt:
                return []
            # a new scene goes on changing: the frame after is as unrelated to the old one
            skip = self._change(self._profiles[0], self._profiles[2])
            if skip is None or skip < cut - p.threshold:
                return []
            jump = cut - before
        details = {"change": cut, "before": before or 0.0, "after": after or 0.0}
        return [Trigger(name=self.name, ts=self._times[1], score=min(1.0, jump), details=details)]


class BlackFrameParams(msgspec.Struct, frozen=True, kw_only=True):
    pixel_threshold: int = 32
    ratio: float = 0.98


class BlackFrame(Standalone):
    """A frame whose pixels are nearly all at or below ``pixel_threshold`` (16 is black): at least
    ``ratio`` of them (counted on the coarse picture, about 160 wide; a picture whose mean level is too
    high for it is not counted at all)."""

    name = "black_frame"

    def __init__(self, params: BlackFrameParams) -> None:
        self.params = params

    def analyse(self, picture: Picture) -> list[Trigger]:
        p = self.params
        if not picture.is_black(p.pixel_threshold, p.ratio):
            return []
        return [
            Trigger(name=self.name, ts=picture.ts, score=picture.black_fraction(p.pixel_threshold))
        ]


class FrozenFrameParams(msgspec.Struct, frozen=True, kw_only=True):
    pixel_levels: int = 2
    max_changed: float = 0.005
    block_size: int = 8
    max_refresh: float = 3.0
    refresh_frames: int = 3
    refresh_interval_s: float = 1.0
    max_drift: float = 6.0
    min_still_s: float = 0.4
    ignore_black: bool = True
    black_threshold: int = 32
    black_ratio: float = 0.9


class _StillRun:
    """A run of still frames: its first frame's time and block means, triggers held back."""

    def __init__(self, first: Picture, block_size: int, trigger: Trigger) -> None:
        self.started_at = first.ts
        self.reference = first.blocks(block_size)
        self.pending: list[Trigger] = [trigger]
        self.released = False


class FrozenFrame(Standalone):
    """The picture stopped changing: a run of frames that each **hold** the previous one — at most
    ``max_changed`` of their pixels differ by more than ``pixel_levels`` levels (a live camera's
    noise changes far more; a decoder repeating a picture changes nothing).

    Encoders re-encode a still picture at every keyframe, and at a tight bitrate refine it over
    a few frames: such frames change many pixels by a few levels but no ``block_size`` block mean
    by more than ``max_refresh`` levels, and the frame after them holds the picture again. Such a
    **refresh** of up to ``refresh_frames`` frames continues the run, at most once per
    ``refresh_interval_s`` (an encoder skipping frames of a live static scene refreshes several
    times a second; the run ends there). The run ends when a block mean drifts more than
    ``max_drift`` levels from the run's first frame (a very slow change is not a freeze). It
    starts at its first frame (the one the next frame holds) and is reported once it lasted
    ``min_still_s``, back-dated to that frame, then frame by frame; a refresh is decided (and
    reported) once a frame holds it. A trigger's score is the fraction of pixels that held. Black
    frames (over ``black_ratio`` of pixels at or below ``black_threshold``) are left to
    black_frame unless ``ignore_black`` is false. Changed and black pixels are counted on the
    coarse picture (about 160 wide); block means on the whole analysis picture, only inside a run
    and only for frames that are not exact repeats."""

    name = "frozen_frame"

    def __init__(self, params: FrozenFrameParams) -> None:
        self.params = params
        self.lookback_s = params.min_still_s
        self._previous: Picture | None = None
        self._run: _StillRun | None = None
        self._refresh: list[Trigger] = []  # refresh frames waiting for a frame that holds them
        self._last_refresh = -math.inf

    def analyse(self, picture: Picture) -> list[Trigger]:
        p = self.params
        ts = picture.ts
        if p.ignore_black and picture.is_black(p.black_threshold, p.black_ratio):
            self._previous, self._run, self._refresh = None, None, []
            return []
        previous, self._previous = self._previous, picture
        if previous is None or previous.shape != picture.shape:
            self._run, self._refresh = None, []
            return []
        diff = picture.coarse_diff(previous)
        held = 1.0 - float(np.count_nonzero(diff > p.pixel_levels)) / diff.size
        holds = held >= 1.0 - p.max_changed
        run = self._run
        if holds:
            repeat = not np.count_nonzero(diff)  # an exact repeat cannot drift
            if repeat:
                picture.share_blocks(previous)
            found: list[Trigger] = []
            if self._refresh:  # the frame holds the refreshed picture: it was the encoder
                self._last_refresh = self._refresh[0].ts
                for trigger in self._refresh:
                    found += self._still(trigger)
                self._refresh = []
            if run is not None and not repeat and self._drifted(picture, run):
                run = None
            if run is None:
                first = Trigger(name=self.name, ts=previous.ts, score=1.0)
                self._run = _StillRun(previous, p.block_size, first)
            return found + self._still(Trigger(name=self.name, ts=ts, score=held))
        if (
            run is not None
            and len(self._refresh) < p.refresh_frames
            and (self._refresh or ts - self._last_refresh >= p.refresh_interval_s)
            and d.max_abs_diff(picture.blocks(p.block_size), previous.blocks(p.block_size))
            <= p.max_refresh
            and not self._drifted(picture, run)
        ):
            refresh = Trigger(name=self.name, ts=ts, score=held, details={"refresh": 1.0})
            self._refresh.append(refresh)  # decided by the next frame
            return []
        self._run, self._refresh = None, []  # the scene moves on (before any refresh pending)
        return []

    def _drifted(self, picture: Picture, run: _StillRun) -> bool:
        blocks = picture.blocks(self.params.block_size)
        return d.max_abs_diff(blocks, run.reference) > self.params.max_drift

    def _still(self, trigger: Trigger) -> list[Trigger]:
        run = self._run
        if run is None:
            return []
        if run.released:
            return [trigger]
        run.pending.append(trigger)
        if trigger.ts - run.started_at < self.params.min_still_s:
            return []
        run.released = True
        found, run.pending = run.pending, []
        return found


class BrightnessParams(msgspec.Struct, frozen=True, kw_only=True):
    min_level: float = 0.1
    max_level: float = 0.95


class Brightness(Standalone):
    """Too dark or too bright: the mean level (0 = black 16, 1 = white 235) leaves
    ``[min_level, max_level]``. The score is how far out, as a fraction of the way to black (or
    white): ``(min_level - level) / min_level`` when dark, so an event's score is its darkest
    frame. ``details.level`` has the level, ``details.dark`` 1 or 0."""

    name = "brightness"

    def __init__(self, params: BrightnessParams) -> None:
        self.params = params

    def analyse(self, picture: Picture) -> list[Trigger]:
        level = picture.level
        if self.params.min_level <= level <= self.params.max_level:
            return []
        lo, hi = self.params.min_level, self.params.max_level
        dark = level < lo
        score = (lo - level) / lo if dark else (level - hi) / max(1e-9, 1.0 - hi)
        details = {"level": level, "dark": float(dark)}
        return [Trigger(name=self.name, ts=picture.ts, score=min(1.0, score), details=details)]
