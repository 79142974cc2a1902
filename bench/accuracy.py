"""Accuracy of vigil's analytics against ground truth, beside ffmpeg's own detectors, and their cost.

    .venv/bin/python bench/accuracy.py [--sizes 1280x720,640x360] [--clips freezes,cuts]

Renders the suite's clips with Debian's ffmpeg (``analytics.accuracy.catalog``: lavfi sources,
x264 with B-frames and a 2 s GOP; cached in ``--clip-dir``), runs vigil's pipeline and ffmpeg's
``blackdetect``/``freezedetect``/``scdet`` on each, and prints per clip and event kind: truth
spans, then for each tool hits, misses, false positives and the worst start / end error in
frames. Then the acceptance verdict, and the analyzers' cost per frame against decoding on the
720p and 360p cuts clips (target: under 10 %; the analysis picture is 320x180 for both).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import sys
import tempfile
import time
from pathlib import Path

# Run as ``python bench/accuracy.py``, this file would shadow the ``analytics`` package.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import av
import numpy as np

from analytics.accuracy import catalog
from analytics.accuracy.ffmpeg import ffmpeg_detect
from analytics.accuracy.lavfi import Clip, filtergraph, render
from analytics.accuracy.run import DETECTORS, vigil_detect
from analytics.accuracy.score import KindScore, score
from analytics.accuracy.truth import truth
from analytics.collector import y_plane_view
from analytics.registry import ANALYTICS

FFMPEG_KINDS = ("scene_change", "black_frame", "frozen_frame")
TOLERANCE_FRAMES = 2


def clip_path(directory: Path, clip: Clip) -> Path:
    """A cached render of ``clip``: the file name carries a hash of its filtergraph."""
    recipe = f"{filtergraph(clip)}|{clip.crf}|{clip.bitrate_kbps}|{clip.bframes}|{clip.gop_s}"
    key = hashlib.sha256(recipe.encode()).hexdigest()[:10]
    path = directory / f"{clip.name}-{clip.width}x{clip.height}-{key}.mp4"
    if not path.exists():
        render(clip, path.with_suffix(".tmp.mp4"), threads=2)
        path.with_suffix(".tmp.mp4").rename(path)
    return path


def cell(s: KindScore | None) -> str:
    if s is None:
        return f"{'—':>23}"
    return f"{s.hits:4d} {s.misses:4d} {s.false_positives:4d} {s.worst_start:4d} {s.worst_end:4d}"


def accuracy(clips: list[Clip], directory: Path, with_ffmpeg: bool) -> bool:
    """Print the table; True if vigil meets every target on every clip."""
    head = "hit miss   fp   Δs   Δe"
    print(f"{'clip':9} {'size':9} {'kind':13} {'truth':>5} | vigil {head} | ffmpeg {head}")
    ok = True
    for clip in clips:
        path = clip_path(directory, clip)
        labels = truth(clip)
        vigil = score(labels, vigil_detect(path))
        theirs = score(labels, ffmpeg_detect(path, clip.fps)) if with_ffmpeg else None
        size = f"{clip.width}x{clip.height}"
        for kind in DETECTORS:
            mine = vigil.kinds[kind]
            other = theirs.kinds[kind] if theirs and kind in FFMPEG_KINDS else None
            verdict = "ok"
            if not mine.within(TOLERANCE_FRAMES):
                verdict, ok = "MISSES TARGET", False
            elif other is not None and (mine.errors, mine.worst) > (other.errors, other.worst):
                verdict, ok = "WORSE THAN FFMPEG", False
            print(
                f"{clip.name:9} {size:9} {kind:13} {mine.truths:5d} |       {cell(mine)} |"
                f"        {cell(other)}  {verdict}"
            )
            for span in mine.missed:
                print(f"{'':38}vigil missed frames [{span.start}, {span.end})")
            for r0, r1 in mine.spurious:
                print(f"{'':38}vigil false positive frames [{r0}, {r1})")
    return ok


def decode_frames(path: Path, width: int = 320) -> tuple[float, list[np.ndarray]]:
    """Seconds per frame to demux and decode ``path`` like the collector (slice threads), and
    every frame's analysis picture (taken outside the timed part)."""
    pictures: list[np.ndarray] = []
    decoding = 0.0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "SLICE"
        packets = container.demux(stream)
        while True:
            began = time.perf_counter()
            packet = next(packets, None)
            if packet is None:
                break
            frames = packet.decode()
            decoding += time.perf_counter() - began
            pictures.extend(np.ascontiguousarray(y_plane_view(f, width)) for f in frames)
    return decoding / max(1, len(pictures)), pictures


def cost(path: Path, repeat: int) -> None:
    """Print each analyzer's cost per frame and their sum against decoding."""
    runs = [decode_frames(path) for _ in range(repeat)]
    per_frame = float(np.median([r[0] for r in runs]))
    pictures = runs[0][1]
    print(f"\ncost on {path.name}: {len(pictures)} frames, analysis {pictures[0].shape[::-1]}")
    print(f"  decode (PyAV, slice threads)  {per_frame * 1e6:8.1f} us/frame")
    total = 0.0
    for name, analytic in ANALYTICS.items():
        timings = []
        for _ in range(repeat):
            analyzer = analytic.build({})
            began = time.perf_counter()
            for index, picture in enumerate(pictures):
                analyzer.process(index * 0.04, picture)
            timings.append((time.perf_counter() - began) / len(pictures))
        spent = float(np.median(timings))
        total += spent
        print(f"  {name:28}  {spent * 1e6:8.1f} us/frame  {spent / per_frame:6.1%}")
    verdict = "ok" if total < 0.1 * per_frame else "OVER TARGET"
    print(
        f"  {'all analyzers':28}  {total * 1e6:8.1f} us/frame  {total / per_frame:6.1%}"
        f"  (target < 10 %) {verdict}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="1280x720,640x360")
    parser.add_argument("--clips", default="freezes,fades,cuts,motion")
    parser.add_argument("--no-ffmpeg", action="store_true", help="skip ffmpeg's detectors")
    parser.add_argument(
        "--cbr-bpp",
        type=float,
        default=None,
        help="encode at a constant bitrate of this many bits per pixel (0.065: 1.5 Mb/s at "
        "720p, a starved camera) instead of crf 23",
    )
    parser.add_argument("--repeat", type=int, default=3, help="timing runs (median)")
    parser.add_argument(
        "--clip-dir", type=Path, default=Path(tempfile.gettempdir()) / "vigil-accuracy"
    )
    args = parser.parse_args()
    args.clip_dir.mkdir(parents=True, exist_ok=True)
    makers = {name: getattr(catalog, name) for name in args.clips.split(",")}
    sizes = [tuple(int(v) for v in size.split("x")) for size in args.sizes.split(",")]
    clips = [make(w, h) for w, h in sizes for make in makers.values()]
    if args.cbr_bpp is not None:
        clips = [
            dataclasses.replace(
                c, bitrate_kbps=round(c.width * c.height * c.fps * args.cbr_bpp / 1000)
            )
            for c in clips
        ]

    began = time.perf_counter()
    ok = accuracy(clips, args.clip_dir, not args.no_ffmpeg)
    print(
        f"\naccuracy targets (±{TOLERANCE_FRAMES} frames, no miss, no false positive, "
        f"not worse than ffmpeg): {'met' if ok else 'NOT MET'} "
        f"({time.perf_counter() - began:.0f} s)"
    )
    for width, height in ((1280, 720), (640, 360)):
        cost(clip_path(args.clip_dir, catalog.cuts(width, height)), args.repeat)


if __name__ == "__main__":
    main()
