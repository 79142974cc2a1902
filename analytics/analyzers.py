"""Stream analyzers: thin stateful wrappers over :mod:`analytics.detectors` that emit triggers.

Each analyzer sees every frame's analysis-size luma (``uint8``, limited range) with its timestamp
and returns the triggers it found in that frame. Their params are validated against the JSON
schemas in :mod:`analytics.registry` before they get here.
"""

from __future__ import annotations

from typing import Protocol

import msgspec
import numpy as np
import numpy.typing as npt

from analytics import detectors as d
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
]

U8 = npt.NDArray[np.uint8]


class Analyzer(Protocol):
    """What the pipeline needs from a stream analyzer."""

    name: str

    def process(self, ts: float, gray: U8) -> list[Trigger]: ...


class MotionParams(msgspec.Struct, frozen=True, kw_only=True):
    sensitivity: float = 0.5
    min_area: float = 0.005
    max_area: float = 0.6
    grid: tuple[int, int] = (16, 9)
    cell_fraction: float = 0.02


class Motion:
    """Previous-frame difference over a grid. A frame triggers when the changed cells cover at
    least ``min_area`` of the grid; above ``max_area`` the whole picture changed (a cut, lights)
    and that is not motion."""

    name = "motion"

    def __init__(self, params: MotionParams) -> None:
        self.params = params
        self._threshold = d.pixel_threshold(params.sensitivity)
        self._previous: U8 | None = None

    def process(self, ts: float, gray: U8) -> list[Trigger]:
        previous, self._previous = self._previous, gray
        if previous is None or previous.shape != gray.shape:
            return []
        cells = d.active_cells(
            d.abs_diff(gray, previous), self._threshold, self.params.grid, self.params.cell_fraction
        )
        area = float(cells.mean())
        if area < self.params.min_area or area > self.params.max_area:
            return []
        rows, cols = np.nonzero(cells)
        height, width = cells.shape
        details = {
            "cells": float(len(rows)),
            "x0": float(cols.min()) / width,
            "y0": float(rows.min()) / height,
            "x1": float(cols.max() + 1) / width,
            "y1": float(rows.max() + 1) / height,
        }
        return [Trigger(name=self.name, ts=ts, score=area, details=details)]


class SceneChangeParams(msgspec.Struct, frozen=True, kw_only=True):
    threshold: float = 0.4
    bins: int = 32
    black_threshold: int = 32


class SceneChange:
    """A cut: half the change of the luma histogram plus half the mean pixel change (scaled to
    [0, 1] at 64 levels) reaches ``threshold``. Cuts to or from black are left to black_frame."""

    name = "scene_change"

    def __init__(self, params: SceneChangeParams) -> None:
        self.params = params
        self._previous: tuple[U8, npt.NDArray[np.float64], bool] | None = None

    def process(self, ts: float, gray: U8) -> list[Trigger]:
        hist = d.histogram(gray, self.params.bins)
        dark = d.black_ratio(gray, self.params.black_threshold) > 0.9
        previous, self._previous = self._previous, (gray, hist, dark)
        if previous is None or previous[0].shape != gray.shape or dark or previous[2]:
            return []
        distance = d.histogram_distance(hist, previous[1])
        change = min(1.0, d.mean_abs_diff(gray, previous[0]) / 64.0)
        score = 0.5 * distance + 0.5 * change
        if score < self.params.threshold:
            return []
        return [
            Trigger(
                name=self.name,
                ts=ts,
                score=score,
                details={"histogram": distance, "pixels": change},
            )
        ]


class BlackFrameParams(msgspec.Struct, frozen=True, kw_only=True):
    pixel_threshold: int = 32
    ratio: float = 0.98


class BlackFrame:
    """A frame whose pixels are nearly all at or below ``pixel_threshold`` (16 is black)."""

    name = "black_frame"

    def __init__(self, params: BlackFrameParams) -> None:
        self.params = params

    def process(self, ts: float, gray: U8) -> list[Trigger]:
        ratio = d.black_ratio(gray, self.params.pixel_threshold)
        if ratio < self.params.ratio:
            return []
        return [Trigger(name=self.name, ts=ts, score=ratio)]


class FrozenFrameParams(msgspec.Struct, frozen=True, kw_only=True):
    max_difference: float = 0.5
    min_still_s: float = 0.4
    ignore_black: bool = True
    black_threshold: int = 32


class FrozenFrame:
    """The picture stopped changing: consecutive frames differ by at most ``max_difference``
    levels (mean absolute difference; sensor noise keeps a live scene above ~1). A still run must
    last ``min_still_s``: shorter runs are an encoder skipping frames of a static scene at a tight
    bitrate, not a freeze. Once a run is long enough its frames are reported, back-dated to the
    run's start. Black frames are left to black_frame unless ``ignore_black`` is false."""

    name = "frozen_frame"

    def __init__(self, params: FrozenFrameParams) -> None:
        self.params = params
        self._reference: U8 | None = None
        self._since = 0.0
        self._pending: list[Trigger] = []

    def process(self, ts: float, gray: U8) -> list[Trigger]:
        reference = self._reference
        if reference is None or reference.shape != gray.shape:
            self._restart(ts, gray)
            return []
        if self.params.ignore_black and d.black_ratio(gray, self.params.black_threshold) > 0.9:
            self._restart(ts, gray)
            return []
        difference = d.mean_abs_diff(gray, reference)
        self._reference = gray
        if difference > self.params.max_difference:
            self._restart(ts, gray)
            return []
        score = 1.0 - difference / 255.0
        self._pending.append(
            Trigger(name=self.name, ts=ts, score=score, details={"difference": difference})
        )
        if ts - self._since < self.params.min_still_s:
            return []
        found, self._pending = self._pending, []
        return found

    def _restart(self, ts: float, gray: U8) -> None:
        self._reference, self._since, self._pending = gray, ts, []


class BrightnessParams(msgspec.Struct, frozen=True, kw_only=True):
    min_level: float = 0.1
    max_level: float = 0.95


class Brightness:
    """Too dark or too bright: the mean level (0 = black 16, 1 = white 235) leaves
    ``[min_level, max_level]``. ``details.level`` has the level, ``details.dark`` 1 or 0."""

    name = "brightness"

    def __init__(self, params: BrightnessParams) -> None:
        self.params = params

    def process(self, ts: float, gray: U8) -> list[Trigger]:
        level = d.luma_level(gray)
        if self.params.min_level <= level <= self.params.max_level:
            return []
        dark = level < self.params.min_level
        return [
            Trigger(
                name=self.name, ts=ts, score=level, details={"level": level, "dark": float(dark)}
            )
        ]
