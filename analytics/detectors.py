"""Pure numpy measurements on 8-bit luma pictures (limited range: black is 16, white 235).

Every function takes ``uint8`` arrays of the same shape and returns plain numbers or arrays, so
the analyzers around them stay thin and these stay testable on synthetic arrays.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = [
    "LUMA_BLACK",
    "LUMA_WHITE",
    "abs_diff",
    "active_cells",
    "black_ratio",
    "histogram",
    "histogram_distance",
    "luma_level",
    "mean_abs_diff",
    "pixel_threshold",
]

U8 = npt.NDArray[np.uint8]
F64 = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

LUMA_BLACK = 16
LUMA_WHITE = 235


def abs_diff(a: U8, b: U8) -> U8:
    """``|a - b|`` per pixel without leaving uint8 (no int16 temporaries)."""
    return np.maximum(a, b) - np.minimum(a, b)


def mean_abs_diff(a: U8, b: U8) -> float:
    return float(abs_diff(a, b).mean())


def pixel_threshold(sensitivity: float) -> int:
    """Per-pixel change threshold for a sensitivity in [0, 1]: 0.5 → 35 levels, 1 → 10."""
    return round(10 + 50 * (1.0 - sensitivity))


def active_cells(diff: U8, threshold: int, grid: tuple[int, int], cell_fraction: float) -> Bools:
    """Cells of a ``(cols, rows)`` grid where at least ``cell_fraction`` of pixels changed by more
    than ``threshold``. The picture is cropped to a multiple of the grid."""
    cols, rows = grid
    height, width = diff.shape
    ch, cw = max(1, height // rows), max(1, width // cols)
    rows, cols = min(rows, height), min(cols, width)
    changed = diff[: rows * ch, : cols * cw] > threshold
    fraction = changed.reshape(rows, ch, cols, cw).mean(axis=(1, 3))
    active: Bools = fraction >= cell_fraction
    return active


def histogram(gray: U8, bins: int) -> F64:
    """Normalised luma histogram over ``bins`` equal bins of 0..255."""
    counts = np.bincount((gray.ravel().astype(np.uint16) * bins) >> 8, minlength=bins)
    return counts.astype(np.float64) / max(1, gray.size)


def histogram_distance(a: F64, b: F64) -> float:
    """Total variation distance of two normalised histograms: 0 identical, 1 disjoint."""
    return float(0.5 * np.abs(a - b).sum())


def black_ratio(gray: U8, threshold: int) -> float:
    """Fraction of pixels at or below ``threshold`` (limited range: 16 is black)."""
    return float(np.count_nonzero(gray <= threshold)) / max(1, gray.size)


def luma_level(gray: U8) -> float:
    """Mean brightness mapped from limited range to [0, 1] (16 → 0, 235 → 1), clipped."""
    mean = float(gray.mean())
    return min(1.0, max(0.0, (mean - LUMA_BLACK) / (LUMA_WHITE - LUMA_BLACK)))
