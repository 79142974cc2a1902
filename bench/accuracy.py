"""Accuracy of vigil's analytics against ground truth, beside ffmpeg's own detectors, and their cost.

    .venv/bin/python bench/accuracy.py [--sizes 1280x720,640x360] [--clips freezes,cuts]

Renders the suite's clips with Debian's ffmpeg (``analytics.accuracy.catalog``: lavfi sources,
x264 with B-frames and a 2 s GOP; cached in ``--clip-dir``), runs vigil's pipeline and ffmpeg's
``blackdetect``/``freezedetect``/``scdet`` on each, and prints per clip and event kind: truth
spans, then for each tool hits, misses, false positives and the worst start / end error in
frames. Then the acceptance verdict, and the analyzers' cost per frame against decoding on the
720p and 360p cuts clips, in CPU time (target: under 10 %; the analysis picture is 160x90 for
both, ``analytics.collector.analysis_step``). ``--cost-only`` skips the accuracy table.
"""

from __future__ import annotations

import dataclasses
import hashlib
import sys
import tempfile
import time
from pathlib import Path

# Run as ``python bench/accuracy.py``, this file would shadow the ``analytics`` package.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)
sys.path.append(str(Path(__file__).resolve().parent))  # bench/common.py

import av
import numpy as np
import numpy.typing as npt
from common import Report, arguments

from analytics.accuracy import catalog
from analytics.accuracy.ffmpeg import ffmpeg_detect
from analytics.accuracy.lavfi import Clip, filtergraph, render
from analytics.accuracy.run import DETECTORS, vigil_detect
from analytics.accuracy.score import KindScore, score
from analytics.accuracy.truth import truth
from analytics.collector import SourceConfig, analysis_picture
from analytics.picture import Picture
from analytics.registry import ANALYTICS

U8 = npt.NDArray[np.uint8]
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


def decode_frames(
    path: Path, width: int = SourceConfig.analysis_width
) -> tuple[float, float, list[U8]]:
    """CPU seconds per frame to demux and decode ``path`` like the collector (slice threads),
    CPU seconds per frame to take the analysis picture from the Y plane (as the collector does),
    and every frame's analysis picture."""
    pictures: list[U8] = []
    decoding = copying = 0.0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "SLICE"
        packets = container.demux(stream)
        while True:
            began = time.process_time()
            packet = next(packets, None)
            if packet is None:
                break
            frames = packet.decode()
            taken = time.process_time()
            decoding += taken - began
            pictures.extend(analysis_picture(f, width)[0] for f in frames)
            copying += time.process_time() - taken
    count = max(1, len(pictures))
    return decoding / count, copying / count, pictures


def analyse(pictures: list[U8], names: list[str]) -> float:
    """CPU seconds per frame of the analyzers ``names`` sharing each frame's picture."""
    analyzers = [ANALYTICS[name].build({}) for name in names]
    began = time.process_time()
    for index, gray in enumerate(pictures):
        picture = Picture(index * 0.04, gray)
        for analyzer in analyzers:
            analyzer.analyse(picture)
    return (time.process_time() - began) / max(1, len(pictures))


def cost(path: Path, repeat: int, report: Report, size: str) -> bool:
    """Print each analyzer's cost per frame and all of them together against decoding, each
    repeat decoding then analysing (so both see the same machine), and add them to ``report``;
    True if under 10 %."""
    names = list(ANALYTICS)
    runs: list[dict[str, float]] = []
    pictures: list[U8] = []
    for _ in range(repeat):
        decode, copy, pictures = decode_frames(path)
        run = {"decode": decode, "picture": copy, "all": analyse(pictures, names)}
        run.update((name, analyse(pictures, [name])) for name in names)
        runs.append(run)

    def median(key: str) -> float:
        return float(np.median([r[key] for r in runs]))

    def share(key: str) -> float:
        return float(np.median([r[key] / r["decode"] for r in runs]))

    height, width = pictures[0].shape
    print(f"\ncost on {path.name}: {len(pictures)} frames, analysis {width}x{height}, "
          f"CPU time, median of {repeat}")  # fmt: skip
    print(f"  {'decode (PyAV, slice threads)':34}  {median('decode') * 1e6:8.1f} us/frame")
    print(f"  {'analysis picture (Y plane copy)':34}  {median('picture') * 1e6:8.1f} us/frame"
          f"  {share('picture'):6.1%}  (decode thread)")  # fmt: skip
    for name in names:
        print(f"  {name + ' alone':34}  {median(name) * 1e6:8.1f} us/frame  {share(name):6.1%}")
    ok = share("all") < 0.1
    print(
        f"  {'all analyzers, sharing the picture':34}  {median('all') * 1e6:8.1f} us/frame"
        f"  {share('all'):6.1%}  (target < 10 %) {'ok' if ok else 'OVER TARGET'}"
    )
    report.add(f"{size}: decode CPU per frame", median("decode") * 1e6, "us",
               f"PyAV, slice threads; analysis picture {width}x{height}")  # fmt: skip
    for name in names:
        report.add(f"{size}: {name} alone", share(name) * 100, "% of decode",
                   f"{median(name) * 1e6:.1f} us/frame")  # fmt: skip
    report.add(f"{size}: all analyzers, sharing the picture", share("all") * 100, "% of decode",
               f"{median('all') * 1e6:.1f} us/frame; target < 10 %:"
               f" {'met' if ok else 'NOT MET'}", key=f"accuracy.cost.{size}")  # fmt: skip
    return ok


def main() -> None:
    parser = arguments(__doc__.splitlines()[0] if __doc__ else None)
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
    parser.add_argument("--repeat", type=int, default=5, help="timing runs (median)")
    parser.add_argument("--cost-only", action="store_true", help="only the cost per frame")
    parser.add_argument(
        "--clip-dir", type=Path, default=Path(tempfile.gettempdir()) / "vigil-accuracy"
    )
    args = parser.parse_args()
    if args.quick:  # CI: the 360p clips, fewer timing runs
        args.sizes, args.repeat = "640x360", 2
    if args.json:  # the tables go to stderr, the report alone to stdout
        sys.stdout = sys.stderr
    report = Report("analytics accuracy against the truth and ffmpeg's detectors, and cost")
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

    if not args.cost_only:
        began = time.perf_counter()
        ok = accuracy(clips, args.clip_dir, not args.no_ffmpeg)
        print(
            f"\naccuracy targets (±{TOLERANCE_FRAMES} frames, no miss, no false positive, "
            f"not worse than ffmpeg): {'met' if ok else 'NOT MET'} "
            f"({time.perf_counter() - began:.0f} s)"
        )
        report.add("accuracy targets", "met" if ok else "NOT MET", "",
                   f"{len(clips)} clips ({args.sizes}): every event kind within"
                   f" ±{TOLERANCE_FRAMES} frames, no miss, no false positive, not worse than"
                   " ffmpeg's blackdetect / freezedetect / scdet")  # fmt: skip
    for width, height in sizes:
        cost(clip_path(args.clip_dir, catalog.cuts(width, height)), args.repeat, report,
             f"{width}x{height}")  # fmt: skip
    sys.stdout = sys.__stdout__
    report.emit(args.json)


if __name__ == "__main__":
    main()
