"""Acceptance on the accuracy suite: clips made by Debian's ffmpeg from lavfi sources (x264, 3
B-frames, 2 s GOP) with ground truth written by construction; vigil's records against it and
against ffmpeg's blackdetect / freezedetect / scdet on the same clips.

The bounded set (about 45 s of CPU, mostly x264): every clip of the suite at 360p, the cuts and
the freezes at 720p. ``bench/accuracy.py`` prints the whole table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import pytest
from av.video.frame import PictureType

from analytics.accuracy import catalog
from analytics.accuracy.ffmpeg import ffmpeg_detect
from analytics.accuracy.lavfi import Clip, render
from analytics.accuracy.run import vigil_detect
from analytics.accuracy.score import Found, ScoreCard, score
from analytics.accuracy.truth import Truth, truth
from tests.livesource import require_tool

TOLERANCE_FRAMES = 2
FFMPEG_KINDS = ("scene_change", "black_frame", "frozen_frame")
SET: list[tuple[Callable[[int, int], Clip], int, int]] = [
    (catalog.freezes, 640, 360),
    (catalog.fades, 640, 360),
    (catalog.cuts, 640, 360),
    (catalog.motion, 640, 360),
    (catalog.cuts, 1280, 720),
    (catalog.freezes, 1280, 720),
]


@dataclass(frozen=True)
class Measured:
    clip: Clip
    path: Path
    truth: Truth
    found: list[Found]
    vigil: ScoreCard
    ffmpeg: ScoreCard


@pytest.fixture(scope="module", params=SET, ids=[f"{make.__name__}-{h}p" for make, _, h in SET])
def measured(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Measured:
    require_tool("ffmpeg", "apt-get install -y ffmpeg")
    make, width, height = request.param
    clip = make(width, height)
    path = render(clip, tmp_path_factory.mktemp("accuracy") / f"{clip.name}.mp4")
    labels = truth(clip)
    found = vigil_detect(path)
    theirs = ffmpeg_detect(path, clip.fps)
    return Measured(clip, path, labels, found, score(labels, found), score(labels, theirs))


def describe(card: ScoreCard, kind: str) -> str:
    s = card.kinds[kind]
    return (
        f"{kind}: {s.hits}/{s.truths} found, missed {s.missed}, false positives {s.spurious}, "
        f"start errors {s.start_errors}, end errors {s.end_errors} (frames)"
    )


def test_every_event_kind_starts_and_ends_within_two_frames(measured: Measured) -> None:
    # given a clip with ground truth, when vigil analysed it (fixture), then
    for kind, kind_score in measured.vigil.kinds.items():
        assert kind_score.within(TOLERANCE_FRAMES), describe(measured.vigil, kind)


def test_no_freeze_of_a_second_is_missed_wherever_the_keyframe_is(measured: Measured) -> None:
    frozen = measured.vigil.kinds["frozen_frame"]

    assert frozen.misses == 0, describe(measured.vigil, "frozen_frame")
    if measured.clip.name == "freezes":  # the suite's premise: keyframes inside every freeze
        keyframes = set(measured.clip.keyframes)
        positions = {
            k - span.start
            for span in measured.truth.spans("frozen_frame")
            for k in keyframes
            if span.start - 1 <= k <= span.end
        }
        assert {-1, 0, 1, 13, 25, 26, 40} <= positions


def test_no_cut_is_reported_inside_a_fade(measured: Measured) -> None:
    fps = measured.truth.fps
    cuts = [round(f.started_at * fps) for f in measured.found if f.kind == "scene_change"]

    assert [c for c in cuts if measured.truth.fading[c]] == []


def test_every_hard_cut_is_found(measured: Measured) -> None:
    cuts = measured.vigil.kinds["scene_change"]

    assert cuts.misses == 0 and cuts.hits == cuts.truths, describe(measured.vigil, "scene_change")


def test_vigil_is_at_least_as_accurate_as_ffmpeg(measured: Measured) -> None:
    for kind in FFMPEG_KINDS:
        ours, theirs = measured.vigil.kinds[kind], measured.ffmpeg.kinds[kind]
        assert (ours.errors, ours.worst) <= (theirs.errors, theirs.worst), (
            f"vigil {describe(measured.vigil, kind)}; ffmpeg {describe(measured.ffmpeg, kind)}"
        )


def test_clips_are_encoded_like_camera_streams(measured: Measured) -> None:
    # x264 with B-frames and a keyframe every 2 s, where the truth expects them
    with av.open(str(measured.path)) as container:
        frames = [(f.key_frame, PictureType(f.pict_type)) for f in container.decode(video=0)]

    assert len(frames) == measured.clip.frames
    assert [i for i, (key, _) in enumerate(frames) if key] == measured.clip.keyframes
    assert any(kind == PictureType.B for _, kind in frames)
