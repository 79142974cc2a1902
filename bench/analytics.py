"""Analytics throughput on one camera-like clip: raw PyAV decode vs the full pipeline.

    .venv/bin/python bench/analytics.py [--width 1280 --height 720 --seconds 20 --repeat 3]

Prints decode fps of plain PyAV (same decoder settings as the collector), of the pipeline with
every registered analyzer (decode thread + analysis thread + records), their ratio (target ≥ 0.85)
and, if Debian's ffmpeg is installed, ``ffmpeg -threads 1 -f null -`` decode fps.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

# Run as ``python bench/analytics.py``, this file would shadow the ``analytics`` package.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import av

from analytics.clips import ClipSpec, Segment, write_clip
from analytics.counters import StreamCounters
from analytics.records import AnalysisRecord
from analytics.registry import ANALYTICS
from analytics.types import Report
from analytics.worker import AnalyticSpec, StreamJob, run_stream


def make_clip(directory: Path, width: int, height: int, seconds: float) -> tuple[Path, int]:
    path = directory / f"bench-{width}x{height}-{seconds:g}s.mp4"
    timeline = (
        Segment("motion", 2.0, 6.0),
        Segment("cut", 8.0, 8.0),
        Segment("black", 10.0, 12.0),
        Segment("frozen", 14.0, 16.0),
    )
    spec = ClipSpec(
        width=width,
        height=height,
        duration_s=seconds,
        noise=4.0,
        bits_per_pixel=0.2,
        timeline=tuple(s for s in timeline if s.end_s <= seconds),
    )
    truth = write_clip(path, spec)
    return path, truth.frames


def raw_decode(path: Path) -> float:
    """Seconds to demux and decode every frame with PyAV's defaults."""
    began = time.perf_counter()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            packet.decode()
    return time.perf_counter() - began


def pipeline(path: Path) -> tuple[float, int, int]:
    """Seconds, frames analysed and records of ``run_stream`` with every analytic."""
    job = StreamJob(
        stream_id="bench",
        agent_id="bench",
        url=str(path),
        kind="file",
        analytics=tuple(AnalyticSpec(name, {}) for name in ANALYTICS),
    )
    records: list[AnalysisRecord] = []
    reports: list[Report] = []
    counters = StreamCounters()
    began = time.perf_counter()
    outcome = run_stream(job, threading.Event(), counters, reports.append, records.append)
    elapsed = time.perf_counter() - began
    if outcome.status != "done":
        raise SystemExit(f"pipeline failed: {outcome}")
    return elapsed, counters.totals().frames_analysed, len(records)


def ffmpeg_decode(path: Path) -> float | None:
    binary = shutil.which("ffmpeg")
    if binary is None:
        return None
    args = [binary, "-hide_banner", "-loglevel", "error", "-threads", "1", "-i", str(path)]
    began = time.perf_counter()
    subprocess.run([*args, "-f", "null", "-"], check=True)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--clip-dir", type=Path, default=Path(tempfile.gettempdir()) / "vigil-bench"
    )
    args = parser.parse_args()
    args.clip_dir.mkdir(parents=True, exist_ok=True)

    began = time.perf_counter()
    path, frames = make_clip(args.clip_dir, args.width, args.height, args.seconds)
    size_mb = path.stat().st_size / 1e6
    print(
        f"clip: {path.name} {frames} frames, {size_mb:.1f} MB, made in {time.perf_counter() - began:.1f} s"
    )

    raw = statistics.median(raw_decode(path) for _ in range(args.repeat))
    runs = [pipeline(path) for _ in range(args.repeat)]
    piped = statistics.median(r[0] for r in runs)
    analysed, records = runs[0][1], runs[0][2]
    print(f"raw PyAV decode:        {frames / raw:8.1f} fps")
    print(
        f"pipeline, all analyzers: {analysed / piped:7.1f} fps ({records} records, {analysed} frames)"
    )
    print(f"ratio pipeline / raw:    {(analysed / piped) / (frames / raw):7.2f} (target >= 0.85)")
    ff = ffmpeg_decode(path)
    if ff is None:
        print("ffmpeg -threads 1:       not installed (apt-get install -y ffmpeg)")
    else:
        ff = statistics.median(
            [ff, *(t for _ in range(args.repeat - 1) if (t := ffmpeg_decode(path)))]
        )
        print(f"ffmpeg -threads 1:      {frames / ff:8.1f} fps")


if __name__ == "__main__":
    main()
