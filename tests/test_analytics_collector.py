"""Collector pieces: backoff, Y-plane views, file decoding into the queue, counters."""

from __future__ import annotations

import random
import threading
from pathlib import Path

import av
import numpy as np
import pytest

from analytics.clips import ClipSpec, write_clip
from analytics.collector import Collector, Frame, Notice, SourceConfig, backoff_delay, y_plane_view
from analytics.counters import StreamCounters


def test_backoff_doubles_with_bounded_jitter_up_to_the_cap() -> None:
    rng = random.Random(1)
    delays = [backoff_delay(n, 0.5, 8.0, 0.2, rng) for n in range(8)]
    for n, delay in enumerate(delays):
        nominal = min(8.0, 0.5 * 2**n)
        assert 0.8 * nominal <= delay <= 1.2 * nominal
    assert len({round(backoff_delay(3, 1.0, 60.0, 0.2, rng), 6) for _ in range(20)}) > 1


@pytest.mark.parametrize(
    ("width", "height", "shape"), [(1280, 720, (180, 320)), (320, 180, (180, 320))]
)
def test_y_plane_view_is_a_strided_view_of_the_luma(
    width: int, height: int, shape: tuple[int, int]
) -> None:
    planes = np.full((height * 3 // 2, width), 128, np.uint8)
    planes[:height] = np.arange(width, dtype=np.uint16)[None, :] % 220 + 16
    frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
    gray = y_plane_view(frame, 320)
    assert gray.shape == shape and gray.dtype == np.uint8
    assert gray.base is not None  # a view, not a copy
    step = width // 320
    assert gray[0, 3] == (3 * step) % 220 + 16


def test_counters_track_peak_bitrate_per_media_second() -> None:
    counters = StreamCounters()
    counters.add_packet(1000, 0.1)
    counters.add_packet(1000, 0.9)
    counters.add_packet(500, 1.2)
    delta = counters.take_delta()
    assert delta.bytes_read == 2500 and delta.peak_bitrate_bps == 16_000
    counters.add_packet(100, 2.0)
    assert counters.take_delta().peak_bitrate_bps == 800
    assert counters.totals().peak_bitrate_bps == 16_000


def test_counters_are_safe_across_threads() -> None:
    counters = StreamCounters()

    def work() -> None:
        for _ in range(1000):
            counters.add_decoded(1, 0, 0.0)
            counters.add(triggers=1)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    totals = counters.totals()
    assert totals.frames_decoded == totals.triggers == 4000


def test_a_file_is_decoded_completely_then_done(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "c.mp4", ClipSpec(duration_s=2.0, timeline=()))
    counters = StreamCounters()
    collector = Collector(SourceConfig(url=str(clip.path), live=False, queue_size=2), counters)
    collector.start()
    frames: list[Frame] = []
    notices: list[Notice] = []
    while not notices or notices[-1].kind not in ("done", "error"):
        item = collector.queue.get(timeout=10)
        (frames if isinstance(item, Frame) else notices).append(item)  # type: ignore[arg-type]
    assert collector.join(5)
    assert [n.kind for n in notices] == ["opened", "done"]
    assert len(frames) == clip.frames == counters.totals().frames_decoded
    assert counters.totals().frames_dropped == 0  # files wait instead of dropping
    assert frames[0].key and frames[0].pts_s is not None
    assert [f.index for f in frames] == list(range(clip.frames))
