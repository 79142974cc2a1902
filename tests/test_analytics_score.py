"""The accuracy suite's own parts: ground truth from a clip's script, the scorer, and the parser
of ffmpeg's detector logs (no ffmpeg run here)."""

from __future__ import annotations

import pytest

from analytics.accuracy.ffmpeg import parse_log
from analytics.accuracy.lavfi import Clip, Freeze, Part, filtergraph
from analytics.accuracy.score import Found, score_kind
from analytics.accuracy.truth import Span, truth


def clip(*parts: Part) -> Clip:
    return Clip(name="t", parts=parts, width=320, height=180)


def test_a_freeze_is_labelled_from_its_first_frame_to_the_first_frame_after() -> None:
    labels = truth(clip(Part(scene="testsrc2", frames=100, freezes=(Freeze(40, 26),))))

    assert labels.spans("frozen_frame") == [Span(40, 66)]
    assert labels.spans("scene_change") == [] and labels.spans("black_frame") == []


def test_a_held_last_frame_is_a_freeze_then_a_cut() -> None:
    labels = truth(
        clip(Part(scene="life", frames=60, hold=30), Part(scene="mandelbrot", frames=40))
    )

    assert labels.spans("frozen_frame") == [Span(29, 60)]
    assert labels.spans("scene_change") == [Span(60, 61)]


def test_fades_to_black_make_black_with_either_frames_around_and_no_cut() -> None:
    labels = truth(
        clip(
            Part(scene="testsrc2", frames=50, fade_out=20),
            Part(scene="black", frames=25),
            Part(scene="mandelbrot", frames=50, fade_in=20),
        )
    )

    (black,) = labels.spans("black_frame")
    assert (black.start, black.end) == (49, 77)  # the fades' darkest frames are black too
    assert black.early == 6 and black.late == 6  # fade factors 5-35 %: black for some tools
    assert labels.spans("scene_change") == []  # into and out of black: black_frame's
    assert labels.fading.sum() == 39  # a fade out's first frame is still untouched


def test_cuts_between_scenes_but_not_within_the_same_picture() -> None:
    labels = truth(
        clip(
            Part(scene="testsrc2", frames=30),
            Part(scene="mandelbrot", frames=30),
            Part(scene="mandelbrot", frames=30, gain=0.15),  # the same zoom, darkened
        )
    )

    assert labels.spans("scene_change") == [Span(30, 31)]
    assert labels.labels["scene_change"][60] == -1


def test_short_freezes_are_not_scored_and_very_short_ones_must_not_be_reported() -> None:
    labels = truth(
        clip(Part(scene="testsrc2", frames=100, freezes=(Freeze(10, 20), Freeze(60, 10))))
    )

    assert labels.spans("frozen_frame") == []
    assert set(labels.labels["frozen_frame"][10:30]) == {-1}
    assert set(labels.labels["frozen_frame"][60:70]) == {0}


def test_the_filtergraph_repeats_the_right_frames() -> None:
    graph = filtergraph(clip(Part(scene="testsrc2", frames=100, freezes=(Freeze(40, 26),))))

    assert "trim=end_frame=75" in graph  # 100 frames, 25 of them repeats
    assert "loop=loop=25:size=1:start=41" in graph  # ffmpeg 5.1 repeats frame start - 1


FPS = 25
TRUTH = truth(
    clip(
        Part(scene="testsrc2", frames=50, freezes=(Freeze(10, 26),), fade_out=10),
        Part(scene="black", frames=25),
    )
)


def frozen(start: int, end: int) -> Found:
    return Found("frozen_frame", start / FPS, end / FPS)


def test_an_exact_report_scores_no_error() -> None:
    result = score_kind(TRUTH, "frozen_frame", [frozen(10, 36)])

    assert (result.hits, result.misses, result.false_positives) == (1, 0, 0)
    assert result.within(0)


def test_errors_are_signed_frames_beyond_the_either_frames() -> None:
    result = score_kind(TRUTH, "frozen_frame", [frozen(11, 34)])

    assert result.start_errors == [1] and result.end_errors == [-2]
    assert result.within(2) and not result.within(1)


def test_misses_and_false_positives_are_counted_but_reports_in_either_frames_are_not() -> None:
    (black,) = TRUTH.spans("black_frame")
    assert black.early > 0
    spurious = [frozen(44, 46), frozen(55, 60)]  # live frames, then black: frozen "either"

    result = score_kind(TRUTH, "frozen_frame", spurious)

    assert result.misses == 1 and result.false_positives == 1
    assert result.spurious == [(44, 46)]


def test_a_boundary_inside_the_either_frames_costs_nothing() -> None:
    (black,) = TRUTH.spans("black_frame")
    early = Found("black_frame", (black.start - black.early) / FPS, black.end / FPS)

    assert score_kind(TRUTH, "black_frame", [early]).within(0)


LOG = """\
[blackdetect @ 0x5] black_start:1.96 black_end:3.08 black_duration:1.12
[Parsed_metadata_3 @ 0x6] frame:49   pts:49   pts_time:1.96
[Parsed_metadata_3 @ 0x6] lavfi.scd.mafd=1.2
[Parsed_metadata_3 @ 0x6] frame:100  pts:100  pts_time:4
[Parsed_metadata_3 @ 0x6] lavfi.freezedetect.freeze_start=3
[Parsed_metadata_3 @ 0x6] lavfi.freezedetect.freeze_duration=1
[Parsed_metadata_3 @ 0x6] lavfi.scd.time=4
[Parsed_metadata_3 @ 0x6] frame:126  pts:126  pts_time:5.04
[Parsed_metadata_3 @ 0x6] lavfi.freezedetect.freeze_end=5.04
[Parsed_metadata_3 @ 0x6] frame:190  pts:190  pts_time:7.6
[Parsed_metadata_3 @ 0x6] lavfi.freezedetect.freeze_start=6.4
[Parsed_metadata_3 @ 0x6] frame:199  pts:199  pts_time:7.96
"""


def test_ffmpeg_logs_become_intervals() -> None:
    found = parse_log(LOG, FPS)

    assert [(f.kind, f.started_at, f.ended_at) for f in found] == [
        ("black_frame", 1.96, 3.08),
        ("scene_change", 4.0, pytest.approx(4.04)),
        ("frozen_frame", 3.0, 5.04),
        ("frozen_frame", 6.4, pytest.approx(8.0)),  # still frozen at the end: up to the end
    ]
