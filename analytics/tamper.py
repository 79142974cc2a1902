"""Camera tampering on a fixed camera: the lens covered, the view moved, the picture defocused.

The analyzer looks every ``interval_s`` (tampering lasts; looking 4 times a second keeps it to a
few microseconds per frame) at a small picture of block means (about 80 pixels wide: 2x2 blocks of
the coarse analysis picture, about 160 wide) and the picture's edge strength, and compares them with a **reference**: the first picture that is not
covered (a stream is assumed to start normal), taken again every ``refresh_s`` while the view is
normal (it follows daylight), and replaced by the current view once that has not matched it for
``relearn_s`` (a camera deliberately turned: a moved view triggers until then). A covered or
defocused view never replaces it.

``tamper_covered``    the picture is flat: the standard deviation of its block means is under
                      ``flat_levels`` levels or ``covered_ratio`` of the reference's (a cap, a
                      hand, spray paint, a dead sensor). Score: ``1 - contrast / limit``.
``tamper_moved``      the view moved: it holds still (it matches the previous look, correlation
                      ``min_match``) and phase correlation finds a global shift of at least
                      ``min_shift`` of the picture's width or height, and the reference moved by
                      it matches the picture (correlation ``min_match``) by ``match_margin``
                      better than unmoved. Score: that gain; ``details.dx``/``dy`` the shift as
                      fractions of the width/height.
``tamper_defocused``  edges lost: edge strength under ``defocus_ratio`` of the reference's.
                      Score: ``1 - ratio``.

A covered picture is neither moved nor defocused. Moving content (people, traffic) correlates
the same moved or not and leaves a high edge quantile alone; a whole new scene (no shift matches)
is not "moved" — it shows as a scene change, and becomes the reference after ``relearn_s``. A
view that changes from look to look (a busy scene, a zoom, a camera still being turned) is not
searched for a shift (the costly part of a look): a camera knocked aside shows a steady view; nor
is a view that matches (correlation 0.95) the last one searched in vain.
"""

from __future__ import annotations

import math

import msgspec
import numpy as np
import numpy.typing as npt

from analytics import detectors as d
from analytics.analyzers import Standalone
from analytics.picture import Picture
from analytics.types import Trigger

__all__ = ["TRIGGERS", "Tamper", "TamperParams"]

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]
TRIGGERS = ("tamper_covered", "tamper_moved", "tamper_defocused")
_SMALL_WIDTH = 80
_SAME_VIEW = 0.95  # correlation of a view with the last one searched in vain: same verdict


class TamperParams(msgspec.Struct, frozen=True, kw_only=True):
    interval_s: float = 0.25
    flat_levels: float = 4.0
    covered_ratio: float = 0.25
    min_shift: float = 0.03
    min_match: float = 0.6
    match_margin: float = 0.2
    defocus_ratio: float = 0.6
    refresh_s: float = 10.0
    relearn_s: float = 30.0


class _View:
    """What a check keeps of a picture (its spectrum only if a shift is looked for)."""

    __slots__ = ("_sharpness", "_spectrum", "contrast", "edges", "profile", "small")

    def __init__(self, picture: Picture) -> None:
        coarse = picture.coarse
        self.small = d.block_means(coarse, max(1, coarse.shape[1] // _SMALL_WIDTH))
        values = self.small.ravel()
        mean = float(values.mean(dtype=np.float64))
        self.profile = d.Profile(values - np.float32(mean), mean)
        self.contrast = self.profile.std  # the standard deviation of the block means
        self.edges = d.EdgeSteps(coarse)
        self._sharpness: float | None = None
        self._spectrum: d.C64 | None = None

    @property
    def sharpness(self) -> float:
        """Edge strength (levels), measured when first asked (a reference, a defocused view)."""
        if self._sharpness is None:
            self._sharpness = float(self.edges.level())
        return self._sharpness

    def correlation(self, other: _View) -> float:
        """Pearson correlation with ``other`` as they are (unmoved); 0 if either is flat or
        they differ in size."""
        mine, theirs = self.profile, other.profile
        if mine.norm == 0.0 or theirs.norm == 0.0 or mine.values.shape != theirs.values.shape:
            return 0.0
        return 1.0 - d.decorrelation(mine, theirs)

    def spectrum(self) -> d.C64:
        if self._spectrum is None:
            self._spectrum = d.spectrum(self.small)
        return self._spectrum


class Tamper(Standalone):
    """The ``tamper`` analytic (see the module docstring)."""

    name = "tamper"

    def __init__(self, params: TamperParams) -> None:
        self.params = params
        self._next_check = -math.inf
        self._reference: _View | None = None
        self._last: _View | None = None  # the previous look
        self._searched: _View | None = None  # the last view searched for a shift in vain
        self._taken_at = 0.0
        self._unmatched_since: float | None = None

    def analyse(self, picture: Picture) -> list[Trigger]:
        ts = picture.ts
        if ts < self._next_check:
            return []
        self._next_check = ts + self.params.interval_s
        last = self._last
        view = self._last = _View(picture)
        reference = self._reference
        if reference is not None and reference.small.shape != view.small.shape:
            reference = self._reference = None
        covered = self._covered(ts, view, reference)
        if covered is not None:
            return [covered]
        if reference is None:
            self._adopt(ts, view)
            return []
        found: list[Trigger] = []
        steady = last is not None and view.correlation(last) >= self.params.min_match
        moved, matched = self._moved(ts, view, reference, steady=steady)
        if moved is not None:
            found.append(moved)
        # One count tells whether the view is defocused; its sharpness is measured only then.
        if view.edges.under(self.params.defocus_ratio * reference.sharpness):
            ratio = view.sharpness / reference.sharpness
            details = {"sharpness": view.sharpness, "reference": reference.sharpness}
            found.append(
                Trigger(name="tamper_defocused", ts=ts, score=1.0 - ratio, details=details)
            )
        self._follow(ts, view, normal=not found and matched, matched=matched)
        return found

    def _covered(self, ts: float, view: _View, reference: _View | None) -> Trigger | None:
        p = self.params
        limit = p.flat_levels
        if reference is not None:
            limit = max(limit, p.covered_ratio * reference.contrast)
        if view.contrast >= limit:
            return None
        score = 1.0 - view.contrast / limit
        return Trigger(
            name="tamper_covered", ts=ts, score=score, details={"contrast": view.contrast}
        )

    def _moved(
        self, ts: float, view: _View, reference: _View, *, steady: bool
    ) -> tuple[Trigger | None, bool]:
        """A moved trigger if the (``steady``) view shifted; and whether the view matches the
        reference as it is (a moved view does not: after ``relearn_s`` it becomes the
        reference)."""
        p = self.params
        height, width = view.small.shape
        still = view.correlation(reference)
        if still > 1.0 - p.match_margin:  # no shift could match better by the margin
            return None, True
        searched = self._searched
        if not steady or (searched is not None and view.correlation(searched) >= _SAME_VIEW):
            return None, still >= p.min_match
        self._searched = view
        dx, dy = d.phase_shift(view.spectrum(), reference.spectrum(), view.small.shape)
        shift = max(abs(dx) / width, abs(dy) / height)
        if shift < p.min_shift:
            return None, still >= p.min_match
        shifted = d.overlap_correlation(view.small, reference.small, dx, dy)
        if shifted < p.min_match or shifted - still < p.match_margin:
            return None, still >= p.min_match
        self._searched = None
        details = {"dx": dx / width, "dy": dy / height, "match": shifted, "unmoved": still}
        trigger = Trigger(
            name="tamper_moved", ts=ts, score=min(1.0, shifted - still), details=details
        )
        return trigger, still >= p.min_match

    def _follow(self, ts: float, view: _View, *, normal: bool, matched: bool) -> None:
        """Keep the reference current: retake it while normal, adopt a lasting new view."""
        if matched:
            self._unmatched_since = None
            if normal and ts - self._taken_at >= self.params.refresh_s:
                self._adopt(ts, view)
            return
        if self._unmatched_since is None:
            self._unmatched_since = ts
        elif ts - self._unmatched_since >= self.params.relearn_s:
            self._adopt(ts, view)

    def _adopt(self, ts: float, view: _View) -> None:
        self._reference, self._taken_at, self._unmatched_since = view, ts, None
        self._searched = None
