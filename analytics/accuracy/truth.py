"""Ground truth of a scripted :class:`~analytics.accuracy.lavfi.Clip`, frame by frame.

:func:`truth` labels every frame for every event kind: 1 must be reported, 0 must not, -1 either
(a fade's darkest frames are black for one tool and not for another; a cut to black is left to
``black_frame``; a freeze between 0.6 and 1 s). No detector is consulted: labels follow from the
script alone.

    truth(clip).spans("frozen_frame")  # [Span(start=40, end=66, early=0, late=0)]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from analytics.accuracy.lavfi import Clip, Part, Scene

__all__ = ["KINDS", "Kind", "Span", "Truth", "truth"]

Kind = Literal["scene_change", "black_frame", "frozen_frame", "brightness", "motion"]
KINDS: tuple[Kind, ...] = ("scene_change", "black_frame", "frozen_frame", "brightness", "motion")
I8 = npt.NDArray[np.int8]

# Shortest happening each event kind is expected to report (shorter runs are "either").
_MIN_FRAMES_S: dict[Kind, float] = {
    "scene_change": 0.0,
    "black_frame": 0.08,
    "frozen_frame": 1.0,
    "brightness": 0.5,
    "motion": 0.12,
}
# Mean level (0 black, 1 white) range of each scene, for labelling dark scenes and fades.
_LEVEL: dict[Scene, tuple[float, float]] = {
    "testsrc2": (0.45, 0.5),
    "mandelbrot": (0.33, 0.62),
    "life": (0.27, 0.53),
    "spectrum": (0.48, 0.52),
    "black": (0.0, 0.0),
    "pan": (0.45, 0.5),
    "still": (0.45, 0.5),
}


@dataclass(frozen=True)
class Span:
    """A run of frames ``[start, end)`` that must be reported; a reported boundary may fall in
    ``[start - early, start]`` and ``[end, end + late]`` (frames labelled "either") at no cost."""

    start: int
    end: int
    early: int = 0
    late: int = 0


@dataclass(frozen=True)
class Truth:
    """Per-frame labels of every event kind (1 must, 0 must not, -1 either), and which frames
    are part of a fade."""

    fps: int
    frames: int
    labels: dict[str, I8] = field(default_factory=dict)
    fading: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, dtype=np.bool_))

    def spans(self, kind: str) -> list[Span]:
        """The runs of 1 of ``kind``, each with the "either" frames around it."""
        labels = self.labels[kind]
        found: list[Span] = []
        ones = np.flatnonzero(labels == 1)
        if not len(ones):
            return found
        breaks = np.flatnonzero(np.diff(ones) > 1)
        starts = np.concatenate(([ones[0]], ones[breaks + 1]))
        ends = np.concatenate((ones[breaks] + 1, [ones[-1] + 1]))
        for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
            early = 0
            while start - early - 1 >= 0 and labels[start - early - 1] == -1:
                early += 1
            late = 0
            while end + late < len(labels) and labels[end + late] == -1:
                late += 1
            found.append(Span(start, end, early, late))
        return found

    def is_either(self, kind: str, start: int, end: int) -> bool:
        """Whether frames ``[start, end)`` are all labelled "either"."""
        window = self.labels[kind][max(0, start) : max(start + 1, end)]
        return bool(len(window)) and bool(np.all(window == -1))


# -- ground truth -----------------------------------------------------------------------------


def _fade_factors(part: Part) -> npt.NDArray[np.float64]:
    """ffmpeg's fade factor of every frame of the part (1 = untouched, 0 = black)."""
    factors = np.ones(part.frames)
    if part.fade_in:
        n = part.fade_in
        factors[:n] = np.minimum(factors[:n], np.arange(n) / n)
    if part.fade_out:
        n = part.fade_out
        factors[part.frames - n :] = np.minimum(factors[part.frames - n :], 1 - np.arange(n) / n)
    return factors


def _family(part: Part) -> tuple[str, int]:
    """Parts showing the same picture: a still testsrc2 frame is testsrc2; life by its seed."""
    scene = "testsrc2" if part.scene == "still" else part.scene
    return (scene, part.seed if scene == "life" else 0)


def _is_black(part: Part) -> bool:
    return part.scene == "black" or part.gain <= 0.02


def _part_labels(part: Part, fps: int) -> dict[Kind, I8]:
    n = part.frames
    labels: dict[Kind, I8] = {k: np.zeros(n, dtype=np.int8) for k in KINDS}
    factors = np.round(_fade_factors(part), 6)
    lo, hi = (x * part.gain for x in _LEVEL[part.scene])
    fading = factors < 1.0
    black, dark, cut, frozen, motion = (
        labels["black_frame"],
        labels["brightness"],
        labels["scene_change"],
        labels["frozen_frame"],
        labels["motion"],
    )
    # Black: a black scene, or a fade's darkest frames (factor <= 5 %); 5-35 % either.
    if _is_black(part):
        black[:] = 1
    black[fading & (factors <= 0.35)] = -1
    black[factors <= 0.05] = 1
    # Dark (brightness): mean level under 0.1.
    if hi < 0.085:
        dark[:] = 1
    elif lo < 0.115:
        dark[:] = -1
    dark[fading & (factors * hi >= 0.085) & (factors * lo <= 0.115)] = -1
    dark[factors * hi < 0.085] = 1
    # Frozen: scripted freezes; black or a noiseless still picture is "either".
    if _is_black(part) or (part.scene == "still" and not part.noise):
        frozen[:] = -1
    for freeze in part.freezes:  # a still run under 0.6 s is no freeze; up to 1 s, either
        if freeze.frames >= 0.6 * fps:
            frozen[freeze.at : freeze.at + freeze.frames] = 1
    if part.hold:
        frozen[n - part.hold - 1 :] = 1
    frozen[black != 0] = -1  # a (nearly) black picture is still, and black_frame's business
    # Motion is only scored on still scenes: the box, from the frame it enters to the frame
    # after it left (that frame differs from the previous one too).
    if part.scene != "still":
        motion[:] = -1
    elif part.mover is not None:
        first, last = part.mover
        motion[first : last + 2] = 1
    if part.tamper is not None:
        for kind in KINDS:
            labels[kind][part.tamper.at :] = -1
        labels["scene_change"][part.tamper.at] = -1
    cut[fading] = 0
    return labels


def _drop_short(labels: I8, min_frames: int) -> None:
    """Runs of 1 shorter than ``min_frames`` become "either"."""
    ones = np.flatnonzero(labels == 1)
    if not len(ones):
        return
    breaks = np.flatnonzero(np.diff(ones) > 1)
    starts = np.concatenate(([ones[0]], ones[breaks + 1]))
    ends = np.concatenate((ones[breaks] + 1, [ones[-1] + 1]))
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        if end - start < min_frames:
            labels[start:end] = -1


def truth(clip: Clip) -> Truth:
    """Per-frame labels of ``clip`` for every event kind, from its script."""
    per_part = [_part_labels(p, clip.fps) for p in clip.parts]
    labels: dict[str, I8] = {k: np.concatenate([p[k] for p in per_part]) for k in KINDS}
    start = 0
    for left, right in zip(clip.parts, clip.parts[1:], strict=False):
        start += left.frames
        motion = labels["motion"]
        motion[max(0, start - 1) : start + 1] = -1  # the cut itself changes the whole picture
        near_black = _is_black(left) or _is_black(right) or left.fade_out or right.fade_in
        # The same source again (e.g. darkened) continues the same picture: either.
        same = _family(left) == _family(right)
        labels["scene_change"][start] = -1 if near_black or same else 1
    for kind in KINDS:
        _drop_short(labels[kind], max(1, round(_MIN_FRAMES_S[kind] * clip.fps)))
    fading = np.concatenate([_fade_factors(p) < 1.0 for p in clip.parts])
    return Truth(fps=clip.fps, frames=clip.frames, labels=labels, fading=fading)
