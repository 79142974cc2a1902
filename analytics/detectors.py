"""Pure numpy measurements on 8-bit luma pictures (limited range: black is 16, white 235).

Every function takes ``uint8`` arrays of the same shape and returns plain numbers or arrays, so
the analyzers around them stay thin and these stay testable on synthetic arrays.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import numpy.typing as npt

__all__ = [
    "LUMA_BLACK",
    "LUMA_WHITE",
    "CellGrid",
    "EdgeSteps",
    "Profile",
    "abs_diff",
    "active_cells",
    "black_ratio",
    "block_means",
    "changed_fraction",
    "decorrelation",
    "edge_strength",
    "histogram",
    "histogram_distance",
    "level_of",
    "luma_level",
    "max_abs_diff",
    "mean_abs_diff",
    "mean_level",
    "overlap_correlation",
    "phase_shift",
    "pixel_threshold",
    "profile",
    "sharpness",
    "spectrum",
]

C64 = npt.NDArray[np.complex64]

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

LUMA_BLACK = 16
LUMA_WHITE = 235


def abs_diff(a: U8, b: U8) -> U8:
    """``|a - b|`` per pixel without leaving uint8 (no int16 temporaries)."""
    out: U8 = np.maximum(a, b)
    np.subtract(out, np.minimum(a, b), out=out)
    return out


def mean_abs_diff(a: U8, b: U8) -> float:
    return float(abs_diff(a, b).mean())


def pixel_threshold(sensitivity: float, level: float = 1.0, dark_level: float = 0.0) -> int:
    """Per-pixel change threshold for a sensitivity in [0, 1]: 0.5 → 35 levels, 1 → 10; scaled
    down in proportion in a scene whose mean ``level`` (0 black, 1 white) is under
    ``dark_level``, where everything spans fewer levels."""
    base = 10 + 50 * (1.0 - sensitivity)
    if level < dark_level:
        base *= level / dark_level
    return round(base)


def changed_fraction(a: U8, b: U8, levels: int) -> float:
    """Fraction of pixels that differ by more than ``levels``."""
    return float(np.count_nonzero(abs_diff(a, b) > levels)) / max(1, a.size)


def _block_sums(values: U8, rows: int, cols: int, peak: int = 255) -> npt.NDArray[np.uint32]:
    """Sums over a ``rows x cols`` grid of equal blocks (the picture cropped to fit) of values
    at most ``peak``, in the smallest integers that hold them: rows of blocks first (strided adds
    for short blocks, else one reduction, in 8 bits when a column of a block fits), then columns
    by strided adds for narrow blocks or ``reduceat`` for wide ones; 2-3x faster than one 4-d
    reduction."""
    height, width = values.shape
    bh, bw = height // rows, width // cols
    dtype = np.uint16 if bh * bw * peak < 2**16 else np.uint32
    if bh <= 4:
        strips: npt.NDArray[np.uint32] = values[0 : rows * bh : bh].astype(dtype)
        for offset in range(1, bh):
            strips += values[offset : rows * bh : bh]
    else:
        strip_dtype = np.uint8 if bh * peak < 2**8 else dtype
        strips = values[: rows * bh].reshape(rows, bh, width).sum(axis=1, dtype=strip_dtype)
    if bw <= 4:
        narrow: npt.NDArray[np.uint32] = strips[:, 0 : cols * bw : bw].astype(dtype)
        for offset in range(1, bw):
            narrow += strips[:, offset : cols * bw : bw]
        return narrow
    wide: npt.NDArray[np.uint32] = np.add.reduceat(
        strips[:, : cols * bw], _starts(cols, bw), axis=1, dtype=dtype
    )
    return wide


@functools.lru_cache(maxsize=16)
def _starts(count: int, step: int) -> npt.NDArray[np.intp]:
    starts: npt.NDArray[np.intp] = np.arange(0, count * step, step)
    return starts


def active_cells(
    diff: U8, threshold: int, grid: tuple[int, int], cell_fraction: float, min_pixels: int = 0
) -> Bools:
    """Cells of a ``(cols, rows)`` grid where at least ``cell_fraction`` of pixels, and at least
    ``min_pixels`` pixels, changed by more than ``threshold``. The picture is cropped to a
    multiple of the grid."""
    height, width = diff.shape
    return CellGrid((height, width), grid, cell_fraction, min_pixels).active(diff, threshold)


class CellGrid:
    """:func:`active_cells` for pictures of one ``shape``, its arithmetic done once."""

    __slots__ = ("_bh", "_bw", "_cols", "_rows", "_starts", "needed", "shape")

    def __init__(
        self, shape: tuple[int, int], grid: tuple[int, int], cell_fraction: float, min_pixels: int
    ) -> None:
        self.shape = shape
        height, width = shape
        cols, rows = grid
        ch, cw = max(1, height // rows), max(1, width // cols)
        self._rows, self._cols = min(rows, height), min(cols, width)
        self._bh, self._bw = height // self._rows, width // self._cols
        self._starts = np.arange(0, self._cols * self._bw, self._bw)
        self.needed = max(cell_fraction * ch * cw, min_pixels)

    def active(self, diff: U8, threshold: int) -> Bools:
        changed = (diff > threshold).view(np.uint8)
        rows, bh, bw = self._rows, self._bh, self._bw
        if bh < 2**8 and bw > 4 and bh * bw < 2**16:  # the usual grid: 8-bit rows, 16-bit cells
            strips = changed[: rows * bh].reshape(rows, bh, -1).sum(axis=1, dtype=np.uint8)
            width = self._cols * bw
            counts = np.add.reduceat(strips[:, :width], self._starts, axis=1, dtype=np.uint16)
        else:
            counts = _block_sums(changed, rows, self._cols, peak=1)
        active: Bools = counts >= self.needed
        return active


def block_means(gray: U8, size: int) -> F32:
    """Mean luma of each ``size`` x ``size`` block (the picture cropped to whole blocks).

    Block means keep what a scene is made of and average away pixel noise and the requantisation
    of an encoder re-encoding the same picture."""
    rows, cols = max(1, gray.shape[0] // size), max(1, gray.shape[1] // size)
    means: F32 = _block_sums(gray, rows, cols).astype(np.float32)
    means /= float(min(size, gray.shape[0]) * min(size, gray.shape[1]))
    return means


def max_abs_diff(a: F32, b: F32) -> float:
    """Largest absolute difference of two arrays of the same shape."""
    return float(np.abs(a - b).max()) if a.size else 0.0


class Profile:
    """A picture reduced for correlation: its luma (coarse: about 160 wide), centred.

    ``norm`` is the Euclidean norm of the centred values, ``std`` their standard deviation (the
    picture's contrast in luma levels) and ``mean`` its mean level."""

    __slots__ = ("mean", "norm", "std", "values")

    def __init__(self, values: F32, mean: float) -> None:
        self.values = values
        self.mean = mean
        self.norm = math.sqrt(float(values @ values))
        self.std = self.norm / max(1.0, math.sqrt(values.size))


def profile(gray: U8) -> Profile:
    """The :class:`Profile` of ``gray`` (every other row and column)."""
    values = np.ascontiguousarray(gray[::2, ::2]).astype(np.float32).ravel()
    mean = float(values.mean())
    values -= mean
    return Profile(values, mean)


def decorrelation(a: Profile, b: Profile) -> float:
    """``1 - r`` for the Pearson correlation ``r`` of two profiles: 0 for the same picture, also
    under any gain or offset of its luma (a fade); about 1 for unrelated pictures; 0 if either
    picture is flat."""
    if a.norm == 0.0 or b.norm == 0.0 or a.values.shape != b.values.shape:
        return 0.0
    return 1.0 - float(a.values @ b.values) / (a.norm * b.norm)


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


def mean_level(gray: U8) -> float:
    """Mean luma (an integer sum: 2x faster than ``gray.mean()``)."""
    dtype = np.uint32 if gray.size < 2**24 else np.uint64
    return float(gray.sum(dtype=dtype)) / max(1, gray.size)


def luma_level(gray: U8) -> float:
    """Mean brightness mapped from limited range to [0, 1] (16 → 0, 235 → 1), clipped."""
    return level_of(mean_level(gray))


def level_of(mean: float) -> float:
    """A mean luma mapped from limited range to [0, 1] (16 → 0, 235 → 1), clipped."""
    return min(1.0, max(0.0, (mean - LUMA_BLACK) / (LUMA_WHITE - LUMA_BLACK)))


def sharpness(gray: U8, quantile: float = 0.995) -> float:
    """Edge strength: the ``quantile`` of the larger of the horizontal and vertical luma steps
    over two pixels (levels), on every other row and column. Defocus flattens edges; noise and
    a few moving things barely move a high quantile."""
    return edge_strength(np.ascontiguousarray(gray[::2, ::2]), quantile)


def edge_strength(picture: U8, quantile: float = 0.995, guess: int | None = None) -> float:
    """:func:`sharpness` of a picture already reduced (every other row and column)."""
    return float(EdgeSteps(picture, quantile).level(guess))


class EdgeSteps:
    """The luma steps of a reduced picture (the larger of the horizontal and vertical step at
    each pixel), ranked by counting the steps over a level rather than sorted:
    ``np.partition`` slows down on the many equal steps of a picture, and a question such as
    "is the quantile under this level?" (is the view defocused?) is one count."""

    __slots__ = ("_over_at_most", "_steps")

    def __init__(self, picture: U8, quantile: float = 0.995) -> None:
        height, width = picture.shape
        if height < 2 or width < 2:
            self._steps: U8 = np.zeros(1, np.uint8)
            self._over_at_most = 0
            return
        flat = picture.ravel()  # steps on the flat picture: contiguous, faster than 2-d slices
        inner = (height - 1) * width
        steps = abs_diff(flat[1 : inner + 1], flat[:inner])
        np.maximum(steps, abs_diff(flat[width:], flat[:inner]), out=steps)
        steps[width - 1 :: width] = 0  # from the last column across to the next row: no step
        size = (height - 1) * (width - 1)
        rank = (height - 1) + min(size - 1, int(quantile * size))  # those zeros rank first
        self._steps = steps
        self._over_at_most = steps.size - rank - 1

    def _at_most(self, level: int) -> bool:
        """The quantile is at most ``level``."""
        return int(np.count_nonzero(self._steps > level)) <= self._over_at_most

    def under(self, limit: float) -> bool:
        """The quantile is under ``limit`` (levels)."""
        return limit > 0 and self._at_most(math.ceil(limit) - 1)

    def level(self, guess: int | None = None) -> int:
        """The quantile (levels), bisecting from ``guess`` (the last answer, say)."""
        lo, hi = 0, 255  # the answer is in [lo, hi]
        probe = min(255, max(0, guess)) if guess is not None else 127
        while lo < hi:
            if self._at_most(probe):
                hi = probe
                probe = probe - 1 if guess is not None and probe == guess else (lo + hi) // 2
            else:
                lo = probe + 1
                probe = probe + 1 if guess is not None and probe == guess else (lo + hi) // 2
            probe = min(hi, max(lo, probe))
        return lo


@functools.lru_cache(maxsize=8)
def _window(height: int, width: int) -> F32:
    window: F32 = np.outer(np.hanning(height), np.hanning(width)).astype(np.float32)
    return window


def spectrum(small: F32) -> C64:
    """The windowed Fourier spectrum of a small picture, for :func:`phase_shift` (one real
    transform along rows, then one along columns: half the cost of ``rfft2`` on small arrays)."""
    window = _window(*small.shape)
    centred = (small - np.float32(small.mean())) * window
    result: C64 = np.fft.fft(np.fft.rfft(centred, axis=1), axis=0).astype(np.complex64)
    return result


def phase_shift(current: C64, reference: C64, shape: tuple[int, int]) -> tuple[int, int]:
    """``(dx, dy)`` in pixels that moves the reference picture onto the current one, by phase
    correlation of their spectra (pictures of ``shape``)."""
    cross = current * np.conj(reference)
    cross /= np.abs(cross) + 1e-6
    surface = np.fft.irfft(np.fft.ifft(cross, axis=0), n=shape[1], axis=1)
    row, col = np.unravel_index(int(np.argmax(surface)), surface.shape)
    dy = int(row) if row <= shape[0] // 2 else int(row) - shape[0]
    dx = int(col) if col <= shape[1] // 2 else int(col) - shape[1]
    return dx, dy


def overlap_correlation(current: F32, reference: F32, dx: int, dy: int) -> float:
    """Pearson correlation of ``current`` with ``reference`` moved by ``(dx, dy)``, over the part
    they share (``current[y, x]`` against ``reference[y - dy, x - dx]``); 0 if either is flat."""
    height, width = current.shape
    if abs(dx) >= width or abs(dy) >= height:
        return 0.0
    ours = current[max(0, dy) : height + min(0, dy), max(0, dx) : width + min(0, dx)]
    theirs = reference[max(0, -dy) : height + min(0, -dy), max(0, -dx) : width + min(0, -dx)]
    a = (ours - np.float32(ours.mean())).ravel()
    b = (theirs - np.float32(theirs.mean())).ravel()
    norm = float(np.sqrt(float(a @ a) * float(b @ b)))
    return float(a @ b) / norm if norm > 0 else 0.0
