"""Detectors and analyzers on synthetic luma arrays (limited range: black 16, white 235)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from analytics import detectors as d
from analytics.analyzers import (
    BlackFrame,
    BlackFrameParams,
    Brightness,
    BrightnessParams,
    FrozenFrame,
    FrozenFrameParams,
    Motion,
    MotionParams,
    SceneChange,
    SceneChangeParams,
)
from analytics.picture import Picture

U8 = npt.NDArray[np.uint8]
H, W = 180, 320


def scene(level: int = 100, seed: int = 0, noise: float = 3.0) -> U8:
    rng = np.random.default_rng(seed)
    base = np.full((H, W), float(level)) + np.linspace(-30, 30, W)[None, :]
    return np.clip(base + rng.normal(0, noise, (H, W)), 16, 235).astype(np.uint8)


def with_square(picture: U8, x: int, size: int = 30, level: int = 220) -> U8:
    out = picture.copy()
    out[75 : 75 + size, x : x + size] = level
    return out


def test_abs_diff_stays_in_uint8_without_wrapping() -> None:
    a = np.array([[10, 200]], dtype=np.uint8)
    b = np.array([[250, 20]], dtype=np.uint8)
    assert d.abs_diff(a, b).tolist() == [[240, 180]]


def test_active_cells_marks_only_changed_cells() -> None:
    diff = np.zeros((H, W), dtype=np.uint8)
    diff[0:20, 0:20] = 100  # exactly the top-left cell of a 16x9 grid
    cells = d.active_cells(diff, threshold=35, grid=(16, 9), cell_fraction=0.02)
    assert cells.shape == (9, 16) and cells.sum() == 1 and cells[0, 0]


def test_histogram_distance_is_zero_for_same_and_one_for_disjoint() -> None:
    dark, bright = np.full((H, W), 20, np.uint8), np.full((H, W), 200, np.uint8)
    assert d.histogram_distance(d.histogram(dark, 32), d.histogram(dark, 32)) == 0.0
    assert d.histogram_distance(d.histogram(dark, 32), d.histogram(bright, 32)) == 1.0


def test_luma_level_uses_limited_range() -> None:
    assert d.luma_level(np.full((4, 4), 16, np.uint8)) == 0.0
    assert d.luma_level(np.full((4, 4), 235, np.uint8)) == 1.0
    assert d.luma_level(np.full((4, 4), 5, np.uint8)) == 0.0


def test_motion_triggers_on_a_moving_square_not_on_noise() -> None:
    motion = Motion(MotionParams())
    background = [scene(seed=i) for i in range(6)]
    quiet = [motion.process(i * 0.04, frame) for i, frame in enumerate(background)]
    assert not any(quiet)

    moving = [
        motion.process(1 + i * 0.04, with_square(scene(seed=10 + i), 40 + 5 * i)) for i in range(5)
    ]
    assert all(len(t) == 1 for t in moving[1:])
    trigger = moving[2][0]
    assert trigger.name == "motion" and 0 < trigger.score < 0.1
    assert 0.0 <= trigger.details["x0"] < trigger.details["x1"] <= 0.5


def test_motion_ignores_a_whole_picture_change_and_honours_min_area() -> None:
    motion = Motion(MotionParams())
    motion.process(0.0, scene(level=60))
    assert motion.process(0.04, scene(level=180, seed=1)) == []  # a cut is not motion

    strict = Motion(MotionParams(min_area=0.5))
    strict.process(0.0, with_square(scene(), 40))
    assert strict.process(0.04, with_square(scene(seed=1), 60)) == []


def test_motion_sensitivity_decides_about_faint_changes() -> None:
    faint = [with_square(scene(seed=i, noise=0), 40 + 8 * i, level=125) for i in range(3)]
    for sensitivity, expected in ((0.2, 0), (0.9, 1)):
        motion = Motion(MotionParams(sensitivity=sensitivity))
        found = [motion.process(i * 0.04, f) for i, f in enumerate(faint)]
        assert len(found[2]) == expected, sensitivity


def test_scene_change_fires_on_a_cut_only() -> None:
    cuts = SceneChange(SceneChangeParams())
    frames = [
        scene(60, 0),
        scene(60, 1),
        with_square(scene(60, 2), 100),
        scene(180, 3),
        scene(180, 4),
    ]
    found = [cuts.process(i * 0.04, f) for i, f in enumerate(frames)]
    # A cut is judged once the next frame shows the new scene goes on: one frame late, dated
    # at the cut.
    assert [len(f) for f in found] == [0, 0, 0, 0, 1]
    assert found[4][0].ts == pytest.approx(0.12) and found[4][0].score > 0.5


def test_scene_change_leaves_cuts_to_black_alone() -> None:
    cuts = SceneChange(SceneChangeParams())
    black = np.full((H, W), 17, np.uint8)
    frames = [scene(120), black, black, scene(120, 1)]
    assert not any(cuts.process(i * 0.04, f) for i, f in enumerate(frames))


def test_black_frame_uses_a_limited_range_threshold() -> None:
    black = BlackFrame(BlackFrameParams())
    assert black.process(0.0, np.full((H, W), 16, np.uint8))[0].score == 1.0
    assert black.process(0.0, np.full((H, W), 30, np.uint8))
    assert black.process(0.0, scene(40)) == []
    nearly = np.full((H, W), 16, np.uint8)
    nearly[:10] = 200  # 5.5 % bright: below the 98 % ratio
    assert black.process(0.0, nearly) == []


def test_frozen_frame_reports_a_long_still_run_back_dated_to_its_start() -> None:
    frozen = FrozenFrame(FrozenFrameParams(min_still_s=0.4))
    still = scene(120)
    assert frozen.process(0.0, scene(120, seed=9)) == []
    found = [frozen.process(0.04 * i, still.copy()) for i in range(1, 13)]
    assert [len(f) for f in found[:10]] == [0] * 10  # still for less than 0.4 s
    # The freeze starts at the first frame of the still run (0.04), like ffmpeg's freezedetect.
    assert [t.ts for t in found[10]] == pytest.approx([0.04 + 0.04 * i for i in range(11)])
    assert len(found[11]) == 1  # from now on, frame by frame
    assert frozen.process(0.52, scene(120, seed=5)) == []  # live noise again


def test_short_still_runs_are_an_encoder_skipping_frames_not_a_freeze() -> None:
    frozen = FrozenFrame(FrozenFrameParams(min_still_s=0.4))
    ts = 0.0
    for burst in range(5):  # 3 repeated frames, then a fresh noisy one, as x264 under VBV does
        picture = scene(120, seed=burst)
        for _ in range(4):
            assert frozen.process(ts, picture) == []
            ts += 0.04


def test_frozen_frame_ignores_black_unless_asked() -> None:
    black = np.full((H, W), 16, np.uint8)
    default = FrozenFrame(FrozenFrameParams(min_still_s=0))
    strict = FrozenFrame(FrozenFrameParams(ignore_black=False, min_still_s=0))
    assert [len(default.process(t, black)) for t in (0, 0.04)] == [0, 0]
    assert [len(strict.process(t, black)) for t in (0, 0.04)] == [0, 2]  # from the first frame


@pytest.mark.parametrize(("level", "dark"), [(17, 1.0), (234, 0.0)])
def test_brightness_flags_dark_and_bright(level: int, dark: float) -> None:
    brightness = Brightness(BrightnessParams())
    (trigger,) = brightness.process(0.0, np.full((H, W), level, np.uint8))
    assert trigger.details["dark"] == dark
    assert brightness.process(0.0, scene(120)) == []


# -- what the accuracy suite taught (issue 17) ----------------------------------------------------


def refreshed(picture: U8, seed: int) -> U8:
    """The same picture re-encoded at a keyframe: many pixels off by a level or two."""
    rng = np.random.default_rng(seed)
    jitter = rng.integers(-2, 3, picture.shape)
    return np.clip(picture.astype(np.int16) + jitter, 16, 235).astype(np.uint8)


def frozen_spans(frozen: FrozenFrame, frames: list[U8]) -> list[float]:
    return [t.ts for i, f in enumerate(frames) for t in frozen.process(i * 0.04, f)]


def test_a_keyframe_refresh_inside_a_freeze_does_not_break_it() -> None:
    still = scene(120)
    frames = [scene(120, seed=50 + i) for i in range(5)]  # live
    frames += [still] * 10 + [refreshed(still, 1)] * 16  # frozen, re-encoded at frame 15
    frames += [scene(120, seed=80 + i) for i in range(5)]  # live again

    found = frozen_spans(FrozenFrame(FrozenFrameParams()), frames)

    # one run from the first frozen frame (5) to the last (30), the refresh included
    assert found == pytest.approx([0.04 * i for i in range(5, 31)])


def test_refreshes_several_times_a_second_are_a_live_scene() -> None:
    frames = []
    for burst in range(12):  # an encoder refreshing a static noisy scene every 4 frames
        frames += [refreshed(scene(120), burst)] * 4

    assert frozen_spans(FrozenFrame(FrozenFrameParams()), frames) == []


def test_a_slow_drift_is_not_a_freeze() -> None:
    # a picture brightening by one level every frame: each frame holds the previous one, but
    # every run drifts past max_drift (6 levels) before it lasts min_still_s (0.4 s)
    frames = [np.clip(scene(100, noise=0).astype(np.int16) + i, 16, 235).astype(np.uint8)
              for i in range(40)]  # fmt: skip

    assert frozen_spans(FrozenFrame(FrozenFrameParams()), frames) == []


def texture(seed: int) -> U8:
    """A busy picture: every texture(seed) has the same histogram, none the same layout."""
    values = np.linspace(16, 235, H * W)
    return np.random.default_rng(seed).permutation(values).reshape(H, W).astype(np.uint8)


def cut_times(frames: list[U8]) -> list[float]:
    cuts = SceneChange(SceneChangeParams())
    return [round(t.ts, 2) for i, f in enumerate(frames) for t in cuts.process(i * 0.04, f)]


def test_a_cut_between_busy_scenes_with_equal_histograms_is_found() -> None:
    a, b = scene(100, seed=1, noise=0) // 2 + texture(1) // 2, texture(2)

    assert cut_times([a, a, a, b, b, b]) == [0.12]


def test_a_fade_to_black_and_back_has_no_cut() -> None:
    picture = scene(140, noise=0).astype(np.float64)
    gains = [*np.linspace(1, 0, 26), *np.linspace(0, 1, 26)]
    frames = [(16 + (picture - 16) * g).astype(np.uint8) for g in gains]

    assert cut_times(frames) == []


def test_a_steady_whole_picture_change_is_not_a_cut() -> None:
    blocks = np.random.default_rng(3).integers(30, 220, (H // 30 + 1, 2 * W // 30 + 1))
    wide = np.kron(blocks, np.ones((30, 30)))[:H].astype(np.uint8)  # a busy view, 2x as wide
    frames = [np.ascontiguousarray(wide[:, :W])] * 5  # still, then a pan of 6 px a frame
    frames += [np.ascontiguousarray(wide[:, 6 * i : 6 * i + W]) for i in range(1, 40)]

    assert cut_times(frames) == []


def test_a_cut_into_a_scene_that_keeps_changing_is_found_but_a_glitch_is_not() -> None:
    calm = [scene(100, seed=i) for i in range(4)]
    chaos = [texture(10 + i) for i in range(4)]  # every frame unrelated to the one before
    glitch = [*calm[:2], texture(20), *calm[2:]]

    assert cut_times(calm + chaos) == [0.16]
    assert cut_times(glitch) == []


def test_a_flat_picture_is_not_judged_for_cuts() -> None:
    flat = np.full((H, W), 40, np.uint8)  # a covered lens: tamper's business

    assert cut_times([scene(120), scene(120, 1), flat, flat, scene(120, 2)]) == []


def test_brightness_score_grows_with_darkness() -> None:
    brightness = Brightness(BrightnessParams(min_level=0.1))
    (dim,) = brightness.process(0.0, np.full((H, W), 30, np.uint8))
    (dark,) = brightness.process(0.04, np.full((H, W), 17, np.uint8))

    assert 0 < dim.score < dark.score <= 1.0  # an event's score (the max) is its darkest frame


def test_motion_sees_a_faint_object_in_a_dark_scene() -> None:
    dark = [
        np.clip(scene(30, seed=i, noise=1) // 2 + 8, 16, 235).astype(np.uint8) for i in range(3)
    ]
    frames = [with_square(f, 40 + 10 * i, level=45) for i, f in enumerate(dark)]
    motion = Motion(MotionParams())

    found = [motion.process(i * 0.04, f) for i, f in enumerate(frames)]

    assert [len(f) for f in found] == [0, 1, 1]
    assert motion.threshold(Picture(0.0, frames[0])) < 35  # the dark scene's threshold
