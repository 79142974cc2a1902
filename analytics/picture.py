"""The analysis picture of one frame, with the measurements several analyzers share.

Analyzers used to measure the same things each on their own: the mean level (motion,
brightness, black_frame), the coarse luma (scene_change, frozen_frame, black_frame, tamper), the
black pixels (black_frame, frozen_frame). A :class:`Picture` computes each of them once, when an
analyzer first asks, and keeps it for the others: the analyzers of a stream share one picture per
frame.

Two resolutions: ``gray`` is the analysis picture from the Y plane (320x180 for 720p and 1080p,
160x90 for 360p: :func:`analytics.collector.analysis_step`), ``coarse`` about 160 pixels wide
(every other row and column of ``gray`` when that is 320 or wider, else ``gray`` itself). Motion
looks at ``gray``, where a grid cell holds the most pixels; fractions of pixels (black, still)
and global statistics (mean, correlation, edges) are as good on ``coarse`` at a quarter of the
cost.

    picture = Picture(ts, gray)
    picture.diff(previous)                # |gray - previous.gray|, uint8, computed once
    picture.is_black(32, 0.98)            # counts only when the mean level allows it
"""

from __future__ import annotations

import functools
import weakref

import numpy as np
import numpy.typing as npt

from analytics import detectors as d

__all__ = ["COARSE_WIDTH", "Picture"]

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]
COARSE_WIDTH = 160


@functools.lru_cache(maxsize=8)
def _ones(size: int) -> F32:
    ones: F32 = np.ones(size, dtype=np.float32)
    return ones


class Picture:
    """One frame's analysis luma (``uint8``, limited range) at time ``ts`` and what was measured
    on it. Treat ``gray`` as read-only: every analyzer of the stream sees the same array."""

    __slots__ = (
        "__weakref__",
        "_black",
        "_blocks",
        "_coarse",
        "_coarse_diff",
        "_coarse_diff_of",
        "_diff",
        "_diff_of",
        "_mean",
        "_profile",
        "_values",
        "gray",
        "shape",
        "ts",
    )

    def __init__(self, ts: float, gray: U8) -> None:
        self.ts = ts
        self.gray: U8 = gray if gray.flags.c_contiguous else np.ascontiguousarray(gray)
        height, width = self.gray.shape
        self.shape = (height, width)
        self._coarse: U8 | None = None
        self._values: F32 | None = None
        self._mean: float | None = None
        self._profile: d.Profile | None = None
        self._diff: U8 | None = None
        self._diff_of: weakref.ref[Picture] | None = None
        self._coarse_diff: U8 | None = None
        self._coarse_diff_of: weakref.ref[Picture] | None = None
        self._black: dict[int, float] = {}
        self._blocks: dict[int, F32] = {}

    @property
    def coarse(self) -> U8:
        """``gray`` about 160 wide: every other row and column of it if it is 320 or wider."""
        if self._coarse is None:
            gray = self.gray
            self._coarse = gray if gray.shape[1] < COARSE_WIDTH * 2 else gray[::2, ::2].copy()
        return self._coarse

    @property
    def mean(self) -> float:
        """Mean luma of ``coarse`` (levels). The sum is exact: integers under 2**24 in float32."""
        if self._mean is None:
            values = self.coarse.astype(np.float32).ravel()
            self._mean = float(values @ _ones(values.size)) / max(1, values.size)
            self._values = values
        return self._mean

    @property
    def level(self) -> float:
        """``mean`` mapped from limited range to [0, 1] (16 → 0, 235 → 1), clipped."""
        return d.level_of(self.mean)

    @property
    def profile(self) -> d.Profile:
        """``coarse`` centred, for correlation (:func:`analytics.detectors.decorrelation`)."""
        if self._profile is None:
            mean = self.mean
            values = self._values
            assert values is not None
            values -= mean  # the float copy is the profile's own from here on
            self._values = None
            self._profile = d.Profile(values, mean)
        return self._profile

    def diff(self, previous: Picture) -> U8:
        """``|gray - previous.gray|`` per pixel (``uint8``), computed once per pair."""
        if self._diff is None or self._diff_of is None or self._diff_of() is not previous:
            self._diff = d.abs_diff(self.gray, previous.gray)
            self._diff_of = weakref.ref(previous)
        return self._diff

    def coarse_diff(self, previous: Picture) -> U8:
        """``|coarse - previous.coarse|`` per pixel (``uint8``), computed once per pair."""
        if (
            self._coarse_diff is None
            or self._coarse_diff_of is None
            or self._coarse_diff_of() is not previous
        ):
            if self.coarse is self.gray and previous.coarse is previous.gray:
                self._coarse_diff = self.diff(previous)
            else:
                self._coarse_diff = d.abs_diff(self.coarse, previous.coarse)
            self._coarse_diff_of = weakref.ref(previous)
        return self._coarse_diff

    def black_fraction(self, threshold: int) -> float:
        """Fraction of ``coarse``'s pixels at or below ``threshold``."""
        found = self._black.get(threshold)
        if found is None:
            found = self._black[threshold] = d.black_ratio(self.coarse, threshold)
        return found

    def is_black(self, threshold: int, ratio: float) -> bool:
        """At least ``ratio`` of the pixels are at or below ``threshold``. A picture whose mean is
        over ``ratio * threshold + (1 - ratio) * 255`` cannot be: nothing is counted then."""
        if self.mean > ratio * threshold + (1.0 - ratio) * 255.0:
            return False
        return self.black_fraction(threshold) >= ratio

    def share_blocks(self, previous: Picture) -> None:
        """This picture repeats ``previous``: take the block means measured on it."""
        for size, blocks in previous._blocks.items():
            self._blocks.setdefault(size, blocks)

    def blocks(self, size: int) -> F32:
        """Mean luma of each ``size`` x ``size`` block of ``gray``."""
        found = self._blocks.get(size)
        if found is None:
            found = self._blocks[size] = d.block_means(self.gray, size)
        return found
