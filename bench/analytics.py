"""Analytics worker against the raw decode limit: CPU per frame and live streams per core.

    .venv/bin/python bench/analytics.py [--quick] [--json] [--kbps 2000] [--seconds 20]

One camera-like 720p25 clip (``analytics.clips``: x264 with frame threads, a fixed 2 s GOP, no
B-frames, constant bitrate, sensor noise; motion, a cut, black and frozen segments). Everything
runs pinned to one core (``--core``, ``os.sched_setaffinity``), each figure beside its baseline
measured in the same run on the same core:

- CPU per frame, decoding the file as fast as it goes: Debian's ``ffmpeg -threads 1 -f null``,
  raw PyAV demux + decode in one process, and vigil's worker (``run_stream``: decode, analysis
  picture, every analyzer, rules, records with their JPEG windows) with no analyzer, with all of
  them, and with all of them at ``analysis_fps`` 5. Each is the difference between the clip and
  its first 2 s (a clip of its own), so start-up, opening and probing are left out alike; each
  repeat measures ffmpeg then the others, and the ratios' median is reported. Target: all
  analyzers ≤ 1.03x ffmpeg.
- Live streams per core: N copies of the clip played in real time (``-re`` for ffmpeg, the
  collector's pacing for vigil) on one core for ``--window`` seconds, once every stream decoded
  its first frame and ``--warmup`` seconds more. N streams are held when they decoded at least
  97 % of the frames the window should have (each stream and all together) and dropped none; a
  run that fails is tried once more. The count is the most streams held: ffmpeg's is the decode
  limit (target: vigil's equals it); beside it the limit computed from ffmpeg's CPU per frame.
- Keyframes only (``keyframes_only``): CPU per second of stream against raw PyAV decoding the
  same keyframes, the limit it implies, and N streams held in real time (target ≥ 200): files
  played as live (MP4: the demuxer skips non-key packets) and MPEG-TS cameras over TCP (a child
  serving the clip at its constant bitrate on the other core: every packet is read, as from a
  camera). These streams are out of step, as a fleet's cameras are: each plays the clip from
  its own keyframe on (``rotations``). In step, all of them would decode the clip's costliest
  keyframe (10 ms, against 1 ms for a black one) in the same instant.

Runs as several child processes (``--child``), one per measurement. ``--quick`` (CI): one CPU
run, short windows, one live run each at 80 % of the computed limit (100 streams keyframes-only)
instead of the search. ``--cpu-only`` skips the live runs.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Run as ``python bench/analytics.py``, this file would shadow the ``analytics`` package.
HERE = Path(__file__).resolve().parent
if sys.path and Path(sys.path[0]).resolve() == HERE:
    sys.path[0] = str(HERE.parent)
sys.path.append(str(HERE))

import av  # noqa: E402
from common import Report, arguments  # noqa: E402

from analytics.clips import ClipSpec, Segment, write_clip  # noqa: E402
from analytics.counters import StreamCounters  # noqa: E402
from analytics.registry import ANALYTICS  # noqa: E402
from analytics.types import Report as StreamReport  # noqa: E402
from analytics.worker import AnalyticSpec, StreamJob, run_stream  # noqa: E402

FPS = 25
GOP_S = 2.0
HELD = 0.97  # share of the window's frames a held stream decoded


# ---- the clip -------------------------------------------------------------------------------


SHORT_S = 2.0  # the short clip: its CPU is the fixed cost taken off each measurement


def make_clip(directory: Path, seconds: float, kbps: int, width: int, height: int) -> Path:
    """A camera-like clip (cached by its parameters)."""
    path = directory / f"camera-{width}x{height}-{seconds:g}s-{kbps}k.mp4"
    if path.exists():
        return path
    timeline = tuple(
        s
        for s in (
            Segment("motion", 2.0, 6.0),
            Segment("cut", 8.0, 8.0),
            Segment("black", 10.0, 12.0),
            Segment("frozen", 14.0, 16.0),
        )
        if s.end_s <= seconds
    )
    spec = ClipSpec(
        width=width,
        height=height,
        fps=FPS,
        duration_s=seconds,
        gop_s=GOP_S,
        noise=4.0,
        bits_per_pixel=kbps * 1000 / (width * height * FPS),
        timeline=timeline,
    )
    tmp = path.with_suffix(".tmp.mp4")
    write_clip(tmp, spec)
    tmp.rename(path)
    return path


def rotations(clip: Path, seconds: float) -> list[Path]:
    """The clip, and the clip started at each later keyframe and wrapped round (stream copies,
    cached): streams played from these are out of step, as the cameras of a fleet are. In step,
    every stream would meet the clip's costliest keyframes at the same moment (the decode of a
    keyframe costs 1 to 10 ms by its content)."""
    out = [clip]
    for k in range(1, int(seconds / GOP_S)):
        start = k * GOP_S
        path = clip.with_name(f"{clip.stem}-from-{start:g}s.mp4")
        out.append(path)
        if path.exists():
            continue
        head, tail = path.with_suffix(".head.mp4"), path.with_suffix(".tail.mp4")
        listing = path.with_suffix(".txt")
        quiet = ["ffmpeg", "-loglevel", "error", "-y"]
        subprocess.run([*quiet, "-ss", f"{start:g}", "-i", str(clip), "-c", "copy",
                        "-avoid_negative_ts", "make_zero", str(head)], check=True)  # fmt: skip
        subprocess.run([*quiet, "-t", f"{start:g}", "-i", str(clip), "-c", "copy", str(tail)],
                       check=True)  # fmt: skip
        listing.write_text(f"file '{head}'\nfile '{tail}'\n")
        partial = path.with_suffix(".tmp.mp4")
        subprocess.run([*quiet, "-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy",
                        str(partial)], check=True)  # fmt: skip
        partial.rename(path)
        for scrap in (head, tail, listing):
            scrap.unlink()
    return out


def as_ts(clip: Path) -> Path:
    """The clip copied into MPEG-TS, as a camera sends it (cached)."""
    ts = clip.with_suffix(".ts")
    if not ts.exists():
        partial = ts.with_suffix(".tmp.ts")
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(clip), "-c", "copy",
                        "-f", "mpegts", str(partial)], check=True)  # fmt: skip
        partial.rename(ts)
    return ts


# ---- children: each measures one thing on one core and prints JSON ---------------------------


def pin(core: int) -> None:
    os.sched_setaffinity(0, {core})


def child_cpu(args: argparse.Namespace) -> dict[str, Any]:
    """CPU seconds per frame of raw PyAV and of ``run_stream`` on the file (as fast as it goes)."""
    pin(args.core)
    path = str(args.clip)
    if args.what == "pyav":
        began = time.process_time()
        frames = 0
        with av.open(path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "SLICE"
            if args.keyframes:
                stream.codec_context.skip_frame = "NONKEY"
            for packet in container.demux(stream):
                if args.keyframes and not packet.is_keyframe and packet.size:
                    continue
                frames += len(packet.decode())
        return {"cpu_s": time.process_time() - began, "frames": frames}
    names = [] if args.what == "none" else list(ANALYTICS)
    job = StreamJob(
        stream_id="bench",
        agent_id="bench",
        url=path,
        kind="file",
        analytics=tuple(AnalyticSpec(name) for name in names),
        keyframes_only=args.keyframes,
        analysis_fps=5.0 if args.what == "fps5" else None,
    )
    counters = StreamCounters()
    records: list[object] = []
    began = time.process_time()
    outcome = run_stream(job, threading.Event(), counters, lambda r: None, records.append)
    spent = time.process_time() - began
    if outcome.status != "done":
        raise SystemExit(f"run_stream: {outcome}")
    totals = counters.totals()
    return {
        "cpu_s": spent,
        "frames": totals.frames_decoded,
        "analysed": totals.frames_analysed,
        "decoded": totals.frames_decoded,
        "records": len(records),
    }


def child_serve(args: argparse.Namespace) -> None:
    """Serve the clip as MPEG-TS over TCP to every client, in real time at a constant byte rate
    (a CBR camera), looping; runs until killed, on the other core."""
    import asyncio

    pin(args.core)
    clips = [as_ts(p).read_bytes() for p in rotations(args.clip.with_suffix(".mp4"), args.seconds)]
    ticks = FPS  # one send per frame period
    clients = itertools.count()

    async def serve(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Out of step, as a fleet's cameras are: each client gets the clip from the next
        # keyframe on (see ``rotations``).
        data = clips[next(clients) % len(clips)]
        chunk = max(188, round(len(data) / (args.seconds * ticks) / 188) * 188)
        loop = asyncio.get_running_loop()
        start, sent = loop.time(), 0
        try:
            while True:
                offset = (sent * chunk) % len(data)
                writer.write(data[offset : offset + chunk])
                await writer.drain()
                sent += 1
                await asyncio.sleep(max(0.0, start + sent / ticks - loop.time()))
        except (ConnectionError, OSError):
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(serve, "127.0.0.1", args.port, backlog=1024)
        print(json.dumps({"port": server.sockets[0].getsockname()[1]}), flush=True)
        await server.serve_forever()

    asyncio.run(main())


@contextlib.contextmanager
def camera_server(base: argparse.Namespace, ts_clip: Path) -> Iterator[str]:
    """A child serving ``ts_clip`` over TCP on the other core; yields its URL."""
    other = next(iter(set(os.sched_getaffinity(0)) - {base.core}), base.core)
    argv = [sys.executable, __file__, "--child", "serve", "--clip", str(ts_clip)]
    argv += ["--core", str(other), "--seconds", f"{base.seconds:g}", "--port", "0"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = json.loads(proc.stdout.readline())["port"]
        yield f"tcp://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait()


def child_live(args: argparse.Namespace) -> dict[str, Any]:
    """N streams of the clip played in real time in this process, pinned to one core: a file
    the collector paces (``--rotate``: out of step, each from its own keyframe of the clip), or a
    ``tcp://`` URL (the camera server)."""
    pin(args.core)
    names = list(ANALYTICS) if args.what == "all" else []
    files = rotations(args.clip, args.seconds) if args.rotate else [args.clip]
    stop = threading.Event()
    counters = [StreamCounters() for _ in range(args.n)]
    reports: list[StreamReport] = []
    threads = []
    for i, mine in enumerate(counters):
        job = StreamJob(
            stream_id=f"s{i}",
            agent_id="bench",
            url=args.url or str(files[i % len(files)]),
            kind="stream",
            analytics=tuple(AnalyticSpec(name) for name in names),
            keyframes_only=args.keyframes,
            stall_timeout_s=60.0,
        )
        thread = threading.Thread(
            target=run_stream,
            args=(job, stop, mine, reports.append, lambda r: None),
            daemon=True,
        )
        threads.append(thread)
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60.0  # opening and probing them all (a live TS: seconds)
    while time.monotonic() < deadline and min(c.totals().frames_decoded for c in counters) == 0:
        time.sleep(0.2)
    time.sleep(args.warmup)
    before = [c.totals() for c in counters]
    cpu0, wall0 = time.process_time(), time.perf_counter()
    time.sleep(args.window)
    after = [c.totals() for c in counters]
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    stop.set()
    for thread in threads:
        thread.join(timeout=20)
    decoded = [a.frames_decoded - b.frames_decoded for a, b in zip(after, before, strict=True)]
    analysed = [a.frames_analysed - b.frames_analysed for a, b in zip(after, before, strict=True)]
    dropped = [a.frames_dropped - b.frames_dropped for a, b in zip(after, before, strict=True)]
    return {
        "n": args.n,
        "wall_s": wall,
        "cpu_s": cpu,
        "decoded": decoded,
        "analysed": analysed,
        "dropped": dropped,
        "reconnects": sum(r.kind == "reconnect" for r in reports),
    }


def run_child(base: argparse.Namespace, **kw: object) -> dict[str, Any]:
    argv = [sys.executable, __file__, "--child", str(kw.pop("child"))]
    argv += ["--clip", str(base.clip), "--core", str(base.core)]
    for key, value in kw.items():
        if value is True:
            argv.append(f"--{key}")
        elif value is not False and value is not None:
            argv += [f"--{key}", str(value)]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


# ---- ffmpeg, the baseline -----------------------------------------------------------------


def ffmpeg_cpu(clip: Path, core: int) -> float:
    """CPU seconds of ``ffmpeg -threads 1 -i clip -f null -`` pinned to ``core``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    argv = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-threads", "1", "-i", str(clip)]
    subprocess.run(
        [*argv, "-f", "null", "-"],
        check=True,
        preexec_fn=lambda: pin(core),
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def ffmpeg_live(clip: Path, core: int, n: int, warmup: float, window: float) -> dict[str, Any]:
    """N ``ffmpeg -re -threads 1`` on one core, the frames each decoded during the window
    (from its ``-progress`` lines), measured like vigil's streams."""
    argv = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-threads", "1"]
    argv += ["-i", str(clip), "-t", f"{warmup + window + 1:g}", "-f", "null"]
    argv += ["-progress", "pipe:1", "-stats_period", "0.1", "-"]
    frames = [0] * n

    def follow(index: int, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("frame="):
                frames[index] = int(line.split("=", 1)[1])

    procs = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, preexec_fn=lambda: pin(core))
        for _ in range(n)
    ]
    readers = [
        threading.Thread(target=follow, args=(i, p), daemon=True) for i, p in enumerate(procs)
    ]
    for reader in readers:
        reader.start()
    time.sleep(warmup)
    before = list(frames)
    time.sleep(window)
    decoded = [a - b for a, b in zip(frames, before, strict=True)]
    for proc in procs:
        proc.kill()
        proc.wait()
    return {"n": n, "decoded": decoded, "dropped": [0] * n}


# ---- the measurements -------------------------------------------------------------------------


def progress(run: tuple[str, int, bool, float, int, int]) -> None:
    mode, n, ok, per, least, dropped = run
    print(f"  {mode}, {n} streams: {'held' if ok else 'NOT held'} (CPU {per * 1e6:.0f} us per "
          f"analysed frame, fewest decoded {least}, dropped {dropped})", file=sys.stderr)  # fmt: skip


def held(result: dict[str, Any], window: float, *, keyframes: bool = False) -> bool:
    """Every stream kept up and dropped nothing: all frames together at least 97 % of what the
    window should have, each stream at least 97 % of its share (keyframes, 2 s apart: at least
    one less than the window holds, as a keyframe due at the window's edge may land on either
    side of it)."""
    decoded, n = result["decoded"], len(result["decoded"])
    expected = window / GOP_S if keyframes else window * FPS
    least = int(expected) - 1 if keyframes else HELD * expected
    return (
        sum(decoded) >= HELD * expected * n
        and all(d >= least for d in decoded)
        and not any(result["dropped"])
    )


def most_held(test: Any, start: int, step: int = 1, search: bool = True) -> int:
    """The largest N (a multiple of ``step`` from ``start``) with ``test(N)`` true, searched up
    from ``start`` while it holds, else down (0 if none). A run that fails is tried once more:
    the machine is shared, and a moment of someone else's load is not the limit (ffmpeg and
    vigil alike)."""

    def holds(n: int) -> bool:
        return bool(test(n) or test(n))

    if not search:
        return start if holds(start) else 0
    n = max(step, start)
    if holds(n):
        while holds(n + step):
            n += step
        return n
    while n > step:
        n -= step
        if holds(n):
            return n
    return 0


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument(
        "--kbps", type=int, default=2000, help="the clip's bitrate (2000: a 720p camera)"
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="the clip's duration")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--repeat", type=int, default=3, help="CPU runs (median)")
    parser.add_argument("--core", type=int, default=(os.cpu_count() or 1) - 1, help="the core")
    parser.add_argument("--window", type=float, default=8.0, help="seconds of a live run")
    parser.add_argument("--cpu-only", action="store_true", help="no live runs")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument(
        "--clip-dir", type=Path, default=Path(tempfile.gettempdir()) / "vigil-bench"
    )
    parser.add_argument(
        "--child", choices=("cpu", "live", "serve"), default=None, help=argparse.SUPPRESS
    )
    parser.add_argument("--clip", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--what", default="all", help=argparse.SUPPRESS)
    parser.add_argument("--keyframes", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rotate", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--url", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "serve":
        child_serve(args)
        return
    if args.child:
        result = child_cpu(args) if args.child == "cpu" else child_live(args)
        print(json.dumps(result))
        return
    if shutil.which("ffmpeg") is None:
        raise SystemExit("ffmpeg is needed for the baseline: apt-get install -y ffmpeg")
    if args.quick:
        args.window, args.warmup, args.repeat = 3.0, 1.0, 1
    args.clip_dir.mkdir(parents=True, exist_ok=True)
    args.clip = make_clip(args.clip_dir, args.seconds, args.kbps, args.width, args.height)
    short = make_clip(args.clip_dir, SHORT_S, args.kbps, args.width, args.height)
    report = Report(f"analytics: {args.width}x{args.height}@{FPS} camera-like, {args.kbps} kb/s, "
                    f"one core (cpu {args.core})")  # fmt: skip
    frames = round(args.seconds * FPS)

    # CPU per frame: ffmpeg, raw PyAV, vigil with no analyzer and with all of them; each the
    # difference between the clip and the short clip.
    long_clip, short_clip = args.clip, short
    extra = frames - round(SHORT_S * FPS)

    def ffmpeg_pair() -> float:
        return (ffmpeg_cpu(long_clip, args.core) - ffmpeg_cpu(short_clip, args.core)) / extra

    def vigil_pair(what: str, keyframes: bool = False) -> tuple[float, dict[str, Any]]:
        args.clip = long_clip
        whole = run_child(args, child="cpu", what=what, keyframes=keyframes)
        args.clip = short_clip
        part = run_child(args, child="cpu", what=what, keyframes=keyframes)
        args.clip = long_clip
        return whole["cpu_s"] - part["cpu_s"], whole

    # Each repeat measures ffmpeg then the others right after it: ratios from the same minute
    # of a shared machine, their median reported.
    measures: dict[str, list[float]] = {"ffmpeg": [], "pyav": [], "none": [], "all": [], "fps5": []}
    ratios: dict[str, list[float]] = {key: [] for key in measures}
    records = 0
    for _ in range(args.repeat):
        ffmpeg_run = ffmpeg_pair()
        measures["ffmpeg"].append(ffmpeg_run)
        for what in ("pyav", "none", "all", "fps5"):
            spent, whole = vigil_pair(what)
            measures[what].append(spent / extra)
            ratios[what].append(spent / extra / ffmpeg_run)
            if what == "all":
                records = whole.get("records", records)
    cpu = {key: statistics.median(values) for key, values in measures.items()}
    ratio_of = {key: statistics.median(values) for key, values in ratios.items() if values}
    ffmpeg_pf = cpu["ffmpeg"]
    report.add("ffmpeg -threads 1 CPU per frame", ffmpeg_pf * 1e6, "us")
    notes = {
        "pyav": "raw PyAV decode CPU per frame",
        "none": "vigil worker, no analyzer",
        "all": "vigil worker, all analyzers",
        "fps5": "vigil worker, all analyzers, analysis_fps 5",
    }
    for key, name in notes.items():
        note = f"{ratio_of[key]:.3f}x ffmpeg"
        if key == "all":
            verdict = "met" if ratio_of[key] <= 1.03 else "NOT MET"
            note += f" (target <= 1.03: {verdict}); {records} records with JPEG windows"
        report.add(name, cpu[key] * 1e6, "us", note)
    ratio = ratio_of["all"]
    report.add("ratio all analyzers / ffmpeg", round(ratio, 3), "x")

    if args.cpu_only:
        report.emit(args.json)
        return
    # Live streams per core: ffmpeg -re (the decode limit) and vigil.
    window = args.window
    limit = 1.0 / (FPS * ffmpeg_pf)
    report.add(
        "decode limit from ffmpeg's CPU", round(limit, 1), "streams", "1 / (25 x CPU per frame)"
    )

    def ffmpeg_holds(n: int) -> bool:
        result = ffmpeg_live(args.clip, args.core, n, args.warmup, window)
        ok = held(result, window)
        live_runs.append(("ffmpeg -re", n, ok, 0.0, min(result["decoded"]), 0))
        progress(live_runs[-1])
        return ok

    def vigil_holds(n: int, *, keyframes: bool = False, url: str | None = None) -> bool:
        # Keyframes only: out of step (``rotations``), else every stream would decode the
        # clip's costliest keyframe in the same instant; all frames: in step, like ffmpeg's.
        result = run_child(args, child="live", what="all", n=n, window=window,
                           warmup=args.warmup, keyframes=keyframes, url=url,
                           rotate=keyframes and not url)  # fmt: skip
        ok = held(result, window, keyframes=keyframes)
        per = result["cpu_s"] / max(1, sum(result["analysed"]))
        mode = "vigil, keyframes" if keyframes else "vigil, all frames"
        mode += ", TCP camera" if url else ", file as live"
        live_runs.append((mode, n, ok, per, min(result["decoded"]), sum(result["dropped"])))
        progress(live_runs[-1])
        return ok

    live_runs: list[tuple[str, int, bool, float, int, int]] = []
    search = not args.quick  # --quick: one run each, at 80 % of the computed limits
    start = int(limit) if search else int(0.8 * limit)
    ff_n = most_held(ffmpeg_holds, start, search=search)
    report.add("ffmpeg -re streams held on one core", ff_n, "streams",
               "the decode limit, measured" if search else "held at (--quick: no search)")  # fmt: skip
    start = min(ff_n, int(1.0 / (FPS * cpu["all"]))) if search else int(0.8 * limit)
    vigil_n = most_held(lambda n: vigil_holds(n), start, search=search)
    verdict = ("met" if vigil_n >= ff_n else "NOT MET") if search else "not searched"
    report.add("vigil streams held on one core, all analyzers", vigil_n, "streams",
               f"target = the decode limit ({ff_n}): {verdict}")  # fmt: skip

    # Keyframes only.
    key_runs = [vigil_pair("all", keyframes=True) for _ in range(args.repeat)]
    raw_runs = [vigil_pair("pyav", keyframes=True) for _ in range(args.repeat)]
    per_stream_s = statistics.median(spent for spent, _ in key_runs) / (args.seconds - SHORT_S)
    raw_stream_s = statistics.median(spent for spent, _ in raw_runs) / (args.seconds - SHORT_S)
    decoded = key_runs[0][1]["decoded"]
    report.add("keyframes only: keyframes decoded", decoded, "", f"of {frames} frames")
    report.add(
        "keyframes only: raw PyAV CPU per stream-second",
        raw_stream_s * 1e3,
        "ms",
        f"limit {1 / raw_stream_s:.0f} streams per core",
    )
    report.add(
        "keyframes only: vigil CPU per stream-second",
        per_stream_s * 1e3,
        "ms",
        f"limit {1 / per_stream_s:.0f} streams per core",
    )

    def keyframes_held(holds: Any) -> tuple[int, str]:
        if not search:
            return most_held(holds, 100, search=False), "held at (--quick: no search)"
        most = most_held(holds, 200, step=10)  # from the target, by tens
        return most, "met" if most >= 200 else "NOT MET"

    key_n, verdict = keyframes_held(lambda n: vigil_holds(n, keyframes=True))
    report.add("keyframes only, files played as live (MP4)", key_n, "streams",
               f"held on one core; target >= 200: {verdict}")  # fmt: skip
    ts_clip = as_ts(args.clip)
    for path in rotations(args.clip, args.seconds):
        as_ts(path)  # made here, read by the camera server
    with camera_server(args, ts_clip) as url:
        net_n, verdict = keyframes_held(lambda n: vigil_holds(n, keyframes=True, url=url))
    report.add("keyframes only, MPEG-TS cameras over TCP", net_n, "streams",
               f"held on one core (every packet read); target >= 200: {verdict}")  # fmt: skip
    for mode, n, ok, per, least, dropped in live_runs:
        cost = f"CPU {per * 1e6:.0f} us per analysed frame, " if per else ""
        report.add(f"  live run: {mode}, {n} streams", "held" if ok else "NOT held", "",
                   f"{cost}fewest decoded in {window:g} s: {least}, dropped {dropped}")  # fmt: skip
    report.emit(args.json)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
