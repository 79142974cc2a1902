"""The cheap tiers: keyframes only and an analysis_fps cap, from the collector's choice of frames
to the records; the sparse-frame rules; the shared picture's measurements."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from analytics.clips import ClipSpec, ClipTruth, Segment, write_clip
from analytics.collector import Collector, Frame, SourceConfig, _Due, analysis_step
from analytics.counters import StreamCounters
from analytics.picture import Picture
from analytics.records import AnalysisRecord
from analytics.registry import ANALYTICS
from analytics.rules import ActionAnalyzer, ActionRule
from analytics.types import Trigger
from analytics.worker import AnalyticSpec, StreamJob, run_stream

# A cut between two keyframes (6 s and 8 s), black over two keyframes (10 s and 12 s).
TIMELINE = (Segment("cut", 7.0, 7.0), Segment("black", 10.0, 14.0))
KEYFRAMES = 9  # 0, 2, ..., 16 s


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> ClipTruth:
    spec = ClipSpec(duration_s=17.0, gop_s=2.0, timeline=TIMELINE)
    return write_clip(tmp_path_factory.mktemp("tiers") / "camera.mp4", spec)


def analyse(path: Path, **tier: object) -> tuple[StreamCounters, list[AnalysisRecord]]:
    job = StreamJob(
        stream_id="cam-1",
        agent_id="agent-1",
        url=str(path),
        kind="file",
        analytics=(AnalyticSpec("scene_change"), AnalyticSpec("black_frame")),
        **tier,  # type: ignore[arg-type]
    )
    counters = StreamCounters()
    records: list[AnalysisRecord] = []
    outcome = run_stream(job, threading.Event(), counters, lambda r: None, records.append)
    assert outcome.status == "done"
    return counters, records


def spans(records: list[AnalysisRecord], name: str) -> list[tuple[float, float]]:
    found = [r.event for r in records if r.event.name == name]
    return [(round(e.started_at, 2), round(e.ended_at, 2)) for e in found]


def test_keyframes_only_decodes_only_keyframes_and_still_finds_cuts_and_black(
    clip: ClipTruth,
) -> None:
    counters, records = analyse(clip.path, keyframes_only=True)

    totals = counters.totals()
    assert totals.frames_decoded == totals.frames_analysed == KEYFRAMES  # of 425 frames
    assert spans(records, "scene_change") == [(8.0, 10.0)]  # the first keyframe after the cut
    assert spans(records, "black_frame") == [(10.0, 14.0)]  # black keyframes, to the next one
    assert all(r.window for r in records)


def test_an_analysis_fps_cap_decodes_everything_and_analyses_the_cap(clip: ClipTruth) -> None:
    counters, records = analyse(clip.path, analysis_fps=5.0)

    totals = counters.totals()
    assert totals.frames_decoded == clip.frames
    assert totals.frames_analysed == pytest.approx(clip.spec.duration_s * 5, abs=1)
    assert spans(records, "scene_change") == [(7.0, 7.2)]  # to the next analysed frame
    assert spans(records, "black_frame") == [(10.0, 14.0)]


def test_every_frame_by_default(clip: ClipTruth) -> None:
    counters, records = analyse(clip.path)

    assert counters.totals().frames_analysed == clip.frames
    assert spans(records, "scene_change") == [(7.0, 7.04)]


@pytest.mark.parametrize(
    ("fps", "taken"),
    [
        (None, 25),  # every frame
        (10.0, 10),
        (5.0, 5),
        (1.0, 1),
    ],
)
def test_an_fps_cap_takes_the_first_frame_at_each_due_time(fps: float | None, taken: int) -> None:
    due = _Due(fps)

    picked = [i for i in range(25) if due.take(i / 25)]

    assert len(picked) == taken and picked[0] == 0


def test_an_fps_cap_starts_over_after_a_gap_or_a_jump_back() -> None:
    due = _Due(2.0)
    assert [due.take(t) for t in (0.0, 0.2, 0.5, 0.7)] == [True, False, True, False]
    assert due.take(9.0)  # a gap: due again at 9.5
    assert not due.take(9.2)
    assert due.take(1.0)  # timestamps jumped back: start over


@pytest.mark.parametrize(
    ("width", "step", "analysed"),
    [(1920, 6, 320), (1280, 4, 320), (854, 4, 214), (640, 4, 160), (320, 2, 160), (160, 1, 160)],
)
def test_the_analysis_picture_scales_with_the_source(width: int, step: int, analysed: int) -> None:
    assert analysis_step(width, 320) == step
    assert -(-width // step) == analysed


def test_sparse_rules_need_no_more_triggers_than_frames_fit_in_their_window() -> None:
    rule = ActionRule(name="black", triggers=("black",), threshold=2, window_s=1.0, gap_s=0.5)
    dense = ActionAnalyzer([rule])
    sparse = ActionAnalyzer([rule], sparse_period_s=2.0)

    def feed(actions: ActionAnalyzer) -> list[tuple[float, float]]:
        found = []
        for ts in (0.0, 2.0, 4.0, 6.0, 8.0):  # black keyframes at 2 and 4 s
            found += actions.frame(ts)
            if ts in (2.0, 4.0):
                found += actions.feed(Trigger(name="black", ts=ts, score=1.0))
        found += actions.flush()
        return [(hit.started_at, hit.ended_at) for hit in found]

    assert feed(dense) == []  # two black frames 2 s apart are not 2 within 1 s
    assert feed(sparse) == [(2.0, 6.0)]  # one action, to the keyframe after the last


def test_a_picture_measures_once_for_every_analyzer() -> None:
    rng = np.random.default_rng(1)
    first = Picture(0.0, rng.integers(16, 236, (180, 320), dtype=np.uint8))
    second = Picture(0.04, rng.integers(16, 236, (180, 320), dtype=np.uint8))

    assert second.diff(first) is second.diff(first)
    assert second.coarse.shape == (90, 160) and second.coarse_diff(first) is second.coarse_diff(
        first
    )
    assert second.mean == pytest.approx(float(second.coarse.mean()))
    assert not second.is_black(32, 0.98)  # decided from the mean, nothing counted
    small = Picture(0.0, first.coarse)
    assert small.coarse is small.gray  # 160 wide: coarse already


def test_every_registered_analyzer_runs_on_a_shared_picture() -> None:
    rng = np.random.default_rng(2)
    analyzers = [analytic.build({}) for analytic in ANALYTICS.values()]
    for i in range(30):
        picture = Picture(i * 0.04, rng.integers(16, 236, (90, 160), dtype=np.uint8))
        for analyzer in analyzers:
            analyzer.analyse(picture)  # noise: nothing to report, nothing to crash


def test_a_keyframes_only_file_played_as_live_is_paced_on_its_keyframes_and_stops_mid_wait(
    tmp_path: Path,
) -> None:
    """Given a file with a keyframe every 6 s played as a live source, keyframes only
    When it runs, then is stopped in the middle of a wait for its next keyframe
    Then no keyframe came before its time, and the stop is heard without waiting for the next"""
    spec = ClipSpec(duration_s=13.0, gop_s=6.0, timeline=())
    path = write_clip(tmp_path / "slow-gop.mp4", spec).path
    came: list[tuple[float, float | None]] = []
    second = threading.Event()

    def on_frame(frame: Frame) -> None:
        came.append((time.monotonic(), frame.pts_s))
        if len(came) == 2:
            second.set()

    collector = Collector(
        SourceConfig(url=str(path), live=True, keyframes_only=True),
        StreamCounters(),
        on_frame=on_frame,
    )
    collector.start()
    try:
        assert second.wait(60), f"two keyframes within 60 s: {came}"
    finally:
        collector.stop()
        stopped_at = time.monotonic()
        assert collector.join(30), "the collector thread ended"
    (first_at, first_pts), (then_at, then_pts) = came[:2]
    assert first_pts == 0.0 and then_pts == 6.0
    assert then_at - first_at >= 6.0 * 0.95, "the second keyframe waited for its time"
    assert time.monotonic() - stopped_at < 6.0, "stopped before the next keyframe was due"
