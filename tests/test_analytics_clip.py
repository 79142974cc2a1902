"""Acceptance on generated clips: the pipeline finds exactly the scripted events, on time."""

from __future__ import annotations

import base64
import io
import threading
from pathlib import Path

import av
import pytest

from analytics.clips import ClipSpec, ClipTruth, Segment, write_clip
from analytics.counters import StreamCounters
from analytics.records import AnalysisRecord, decode_record, encode_record
from analytics.registry import ANALYTICS
from analytics.worker import AnalyticSpec, Outcome, StreamJob, run_stream
from tests.livesource import ReportLog

ALL = ("motion", "scene_change", "black_frame", "frozen_frame", "brightness")
TOLERANCE_S = 1.0


@pytest.fixture(scope="module", params=[".ts", ".mp4"])
def clip(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> ClipTruth:
    return write_clip(tmp_path_factory.mktemp("clips") / f"scripted{request.param}")


def analyse(
    clip: ClipTruth, names: tuple[str, ...] = ALL, rules_toml: str | None = None
) -> tuple[Outcome, list[AnalysisRecord], StreamCounters, ReportLog]:
    job = StreamJob(
        stream_id="cam-1",
        agent_id="agent-1",
        url=str(clip.path),
        kind="file",
        analytics=tuple(AnalyticSpec(name, {}) for name in names),
        rules_toml=rules_toml,
    )
    records: list[AnalysisRecord] = []
    counters, reports = StreamCounters(), ReportLog()
    outcome = run_stream(job, threading.Event(), counters, reports, records.append)
    return outcome, records, counters, reports


def decode_jpeg(data: bytes) -> av.VideoFrame:
    with av.open(io.BytesIO(data), "r") as container:
        return next(container.decode(video=0))


def test_scripted_clip_yields_exactly_the_expected_events(clip: ClipTruth) -> None:
    outcome, records, counters, _ = analyse(clip)

    assert outcome == Outcome("done")
    found = sorted((r.event.name, r.event.started_at, r.event.ended_at) for r in records)
    expected = sorted((o.analytic, o.started_at, o.ended_at) for o in clip.occurrences)
    assert [f[0] for f in found] == [e[0] for e in expected], found
    for (name, start, end), (_, want_start, want_end) in zip(found, expected, strict=True):
        assert abs(start - want_start) <= TOLERANCE_S, (name, start, want_start)
        assert abs(end - want_end) <= TOLERANCE_S, (name, end, want_end)
    totals = counters.totals()
    assert totals.events == len(expected) == totals.records_sent
    assert totals.frames_decoded == totals.frames_analysed == clip.frames


def test_records_carry_decodable_jpeg_windows_and_stable_ids(clip: ClipTruth) -> None:
    _, records, _, _ = analyse(clip)
    _, again, _, _ = analyse(clip)

    window = StreamJob("s", "a", "u", "file", ()).window
    for record in records:
        assert record.stream_id == "cam-1" and record.agent_id == "agent-1"
        assert len(record.window) == window.frames, record.event
        for frame in record.window:
            assert frame.jpeg_b64 is not None
            picture = decode_jpeg(base64.b64decode(frame.jpeg_b64))
            assert (picture.width, picture.height) == (320, 180)
        lo = record.event.started_at - window.pre_s - 0.05
        hi = record.event.ended_at + window.post_s + 0.05
        assert all(lo <= f.ts <= hi for f in record.window)
        assert record.triggers and all(t.name == record.event.name for t in record.triggers)
        assert decode_record(encode_record(record)) == record
    assert len({r.record_id for r in records}) == len(records)
    assert sorted(r.record_id for r in again) == sorted(r.record_id for r in records)


@pytest.mark.parametrize("name", ALL)
def test_each_analytic_alone_reports_each_occurrence_once(clip: ClipTruth, name: str) -> None:
    _, records, _, _ = analyse(clip, (name,))

    assert [r.event.name for r in records] == [name] * len(clip.expected(name))
    for record, truth in zip(records, clip.expected(name), strict=True):
        assert abs(record.event.started_at - truth.started_at) <= TOLERANCE_S


def test_rules_toml_combines_actions_into_one_event(clip: ClipTruth) -> None:
    rules = """
        replace_defaults = true
        [[action]]
        name = "dark"
        triggers = ["black_frame"]
        threshold = 5
        [[action]]
        name = "stuck"
        triggers = ["frozen_frame"]
        threshold = 5
        gap_s = 0.25
        [[event]]
        name = "camera_trouble"
        actions = ["dark", "stuck"]
        threshold = 2
        distinct = true
        gap_s = 5.0
    """
    _, records, _, _ = analyse(clip, ("black_frame", "frozen_frame"), rules)

    assert [r.event.name for r in records] == ["camera_trouble"]
    event = records[0].event
    assert abs(event.started_at - 8.0) <= TOLERANCE_S and abs(event.ended_at - 14.0) <= TOLERANCE_S
    assert sorted(a.name for a in records[0].actions) == ["dark", "stuck"]


def test_a_clip_without_happenings_yields_nothing(tmp_path: Path) -> None:
    quiet = write_clip(tmp_path / "quiet.mp4", ClipSpec(duration_s=4.0, timeline=()))
    outcome, records, counters, _ = analyse(quiet)

    assert outcome.status == "done" and records == []
    assert counters.totals().frames_analysed == quiet.frames


def test_motion_respects_its_params(tmp_path: Path) -> None:
    moving = write_clip(
        tmp_path / "m.ts", ClipSpec(duration_s=4.0, timeline=(Segment("motion", 1.0, 3.0),))
    )
    job = StreamJob(
        "cam", "agent", str(moving.path), "file", (AnalyticSpec("motion", {"min_area": 0.5}),)
    )
    records: list[AnalysisRecord] = []
    run_stream(job, threading.Event(), StreamCounters(), ReportLog(), records.append)

    assert records == []  # the object covers far less than half of the grid


def test_missing_file_is_a_fatal_failure(tmp_path: Path) -> None:
    job = StreamJob("cam", "agent", str(tmp_path / "nope.mp4"), "file", (AnalyticSpec("motion"),))
    reports = ReportLog()
    outcome = run_stream(job, threading.Event(), StreamCounters(), reports)

    assert outcome.status == "failure" and outcome.fatal
    assert outcome.error_code == "source_not_found"
    assert [r.code for r in reports.of("error")] == ["source_not_found"]


def test_not_a_video_is_a_fatal_failure(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00garbage" * 1000)
    job = StreamJob("cam", "agent", str(junk), "file", (AnalyticSpec("motion"),))
    outcome = run_stream(job, threading.Event(), StreamCounters(), ReportLog())

    assert outcome.status == "failure" and outcome.fatal and outcome.error_code == "invalid_source"


def test_invalid_params_fail_before_opening_the_source(clip: ClipTruth) -> None:
    job = StreamJob("cam", "agent", str(clip.path), "file", (AnalyticSpec("motion", {"grid": 3}),))
    outcome = run_stream(job, threading.Event(), StreamCounters(), ReportLog())

    assert outcome.status == "failure" and outcome.fatal and outcome.error_code == "invalid_params"
    assert "$.grid" in outcome.message


def test_stop_before_start_returns_stopped(clip: ClipTruth) -> None:
    stop = threading.Event()
    stop.set()
    job = StreamJob("cam", "agent", str(clip.path), "file", (AnalyticSpec("motion"),))

    assert run_stream(job, stop, StreamCounters(), ReportLog()).status == "stopped"


def test_counters_deltas_add_up_to_totals(clip: ClipTruth) -> None:
    _, _, counters, _ = analyse(clip, ("motion",))
    first = counters.take_delta()
    second = counters.take_delta()

    assert first == counters.totals().combine(second)
    assert second.frames_decoded == 0 and second.bytes_read == 0
    assert 0 < first.bytes_read <= clip.path.stat().st_size
    assert first.peak_bitrate_bps > 0 and first.processing_ms > 0


def test_registry_lists_every_analytic_used_here() -> None:
    assert set(ALL) <= set(ANALYTICS)
