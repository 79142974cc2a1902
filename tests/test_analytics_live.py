"""Live sources served during the test by Debian's ffmpeg (HTTP and TCP MPEG-TS) and GStreamer's
RTSP server: analysed, reconnected with growing delays after the source dies, resumed when it
comes back; a silent address fails non-fatally within the open timeout."""

from __future__ import annotations

import itertools
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from analytics.clips import ClipSpec, ClipTruth, Segment, write_clip
from analytics.collector import Collector, Frame, SourceConfig
from analytics.counters import StreamCounters
from analytics.worker import AnalyticSpec, StreamJob
from tests.livesource import FfmpegSource, RtspServer, RunningStream, wait_for


@pytest.fixture(scope="module")
def live_clip(tmp_path_factory: pytest.TempPathFactory) -> ClipTruth:
    spec = ClipSpec(duration_s=6.0, timeline=(Segment("motion", 1.0, 2.5),))
    return write_clip(tmp_path_factory.mktemp("live") / "live.ts", spec)


def live_job(url: str, **options: float) -> StreamJob:
    motion = AnalyticSpec("motion", {"event": {"gap_s": 0.0}, "action": {"gap_s": 0.5}})
    settings: dict[str, float] = {
        "open_timeout_s": 5.0,
        "read_timeout_s": 3.0,
        "stall_timeout_s": 20.0,
        "backoff_base_s": 0.2,
        "backoff_max_s": 5.0,
    }
    settings.update(options)
    return StreamJob(
        stream_id="live-1",
        agent_id="agent-1",
        url=url,
        kind="stream",
        analytics=(motion, AnalyticSpec("black_frame")),
        **settings,  # type: ignore[arg-type]
    )


def test_http_source_is_analysed_reconnected_and_resumed(live_clip: ClipTruth) -> None:
    source = FfmpegSource(live_clip.path, "http")
    with source, RunningStream(live_job(source.url)) as run:
        wait_for(lambda: run.reports.count("running") == 1, 10, "frames from the HTTP source")
        wait_for(lambda: any(r.event.name == "motion" for r in run.records), 10, "a motion record")

        source.kill()
        wait_for(lambda: run.reports.count("reconnect", "error") >= 4, 10, "reconnect attempts")
        delays = [r.delay_s for r in run.reports.of("reconnect", "error")]
        assert all(b > a for a, b in itertools.pairwise(delays)), delays
        assert all(not r.fatal for r in run.reports.of("reconnect", "error"))
        before = run.analysed()

        source.start()
        wait_for(lambda: run.reports.count("running") == 2, 15, "analysis to resume")
        wait_for(lambda: run.analysed() > before + 25, 10, "frames after the restart")
        outcome = run.stop()

    assert outcome.status == "stopped"
    totals = run.counters.totals()
    assert totals.reconnects == run.reports.count("reconnect", "error")
    assert totals.bytes_read > 0 and totals.records_sent == len(run.records)
    record = next(r for r in run.records if r.event.name == "motion")
    assert abs(record.event.started_at - time.time()) < 60  # live timestamps are wall-clock


def test_tcp_source_is_analysed(live_clip: ClipTruth) -> None:
    source = FfmpegSource(live_clip.path, "tcp")
    with source, RunningStream(live_job(source.url)) as run:
        wait_for(lambda: run.analysed() >= 25, 10, "frames from the TCP source")
        assert run.stop().status == "stopped"
    assert run.counters.totals().frames_dropped == 0


def test_udp_source_is_analysed(live_clip: ClipTruth) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    source = FfmpegSource(live_clip.path, "udp", port)
    with source, RunningStream(live_job(source.url)) as run:
        wait_for(lambda: run.analysed() >= 25, 10, "frames from the UDP source")
        assert run.stop().status == "stopped"


def test_a_full_queue_drops_and_counts_frames_of_a_live_source(live_clip: ClipTruth) -> None:
    counters = StreamCounters()
    source = FfmpegSource(live_clip.path, "tcp")
    with source:
        collector = Collector(SourceConfig(url=source.url, live=True, queue_size=4), counters)
        collector.start()
        try:
            wait_for(lambda: counters.totals().frames_dropped >= 10, 10, "dropped frames")
        finally:
            collector.stop()
            assert collector.join(5.0)
    totals = counters.totals()
    queued = [item for item in list(collector.queue.queue) if isinstance(item, Frame)]
    assert collector.queue.qsize() == 4  # nobody consumed: the queue stayed full
    assert totals.frames_decoded == totals.frames_dropped + len(queued)


def test_a_frozen_connection_is_reported_as_a_stall(live_clip: ClipTruth) -> None:
    source = FfmpegSource(live_clip.path, "http")
    job = live_job(source.url, stall_timeout_s=1.0, read_timeout_s=3.0)
    with source, RunningStream(job) as run:
        wait_for(lambda: run.analysed() >= 10, 10, "frames")
        source.pause()
        paused = time.monotonic()
        wait_for(lambda: run.reports.count("stall") >= 1, 10, "a stall report")
        # reported by the stall deadline (1 s), not by the read timeout or never; 5x for load
        assert time.monotonic() - paused < 5.0
        stall = run.reports.of("stall")[0]
        assert not stall.fatal
        assert run.stop().status == "stopped"
    assert run.counters.totals().stalls >= 1


@pytest.fixture
def silent_address() -> Iterator[str]:
    """A TCP port that accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/x.ts"


def test_an_address_nobody_answers_fails_non_fatally_within_the_deadline(
    silent_address: str,
) -> None:
    job = live_job(silent_address, open_timeout_s=1.5)
    started = time.monotonic()
    with RunningStream(job) as run:
        wait_for(lambda: run.reports.count("error") >= 1, 15, "an error report")
        elapsed = time.monotonic() - started
        outcome = run.stop()

    (first, *_) = run.reports.of("error")
    # not before the open timeout (1.5 s), and by it rather than never: 5x for a loaded machine
    assert 1.0 <= elapsed <= 1.5 * 5, elapsed
    assert not first.fatal and first.code == "source_unreachable" and first.delay_s > 0
    assert "open timeout" in first.message
    assert outcome.status == "stopped"


def test_refused_connection_keeps_retrying_until_stopped(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with RunningStream(live_job(f"tcp://127.0.0.1:{port}")) as run:
        wait_for(lambda: run.reports.count("error") >= 3, 5, "three failed attempts")
        assert run.stop(5.0).status == "stopped"
    assert all(not r.fatal for r in run.reports.of("error"))


def test_rtsp_source_over_tcp_is_analysed(live_clip: ClipTruth) -> None:
    with RtspServer(live_clip.path) as server, RunningStream(live_job(server.url)) as run:
        wait_for(lambda: run.analysed() >= 25, 15, "frames from the RTSP source")
        assert run.stop().status == "stopped"
