"""Clips made by Debian's ffmpeg from ``lavfi`` sources, with ground truth written by construction.

A :class:`Clip` is a sequence of :class:`Part` s, each one scene (``testsrc2``, ``mandelbrot``,
``life``, a scrolling ``colorspectrum``, ``color=black``, a pan, a still picture with a moving
box...) for a number of frames, optionally with temporal noise, freezes (``loop``), a held last
frame (``tpad`` clone), fades to and from black, darkening, and camera tampering. The clip is
encoded by x264 with B-frames and a fixed keyframe interval, like a camera stream. Its ground
truth comes from the same script (:mod:`analytics.accuracy.truth`).

    clip = Clip(name="freeze", parts=(Part(scene="testsrc2", frames=100, freezes=(Freeze(40, 26),)),))
    render(clip, tmp_path / "freeze.mp4")  # raises ToolMissing without ffmpeg
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = [
    "Clip",
    "Freeze",
    "Part",
    "Scene",
    "Tamper",
    "ToolMissing",
    "filtergraph",
    "render",
    "require_ffmpeg",
]

Scene = Literal["testsrc2", "mandelbrot", "life", "spectrum", "black", "pan", "still"]


class ToolMissing(RuntimeError):
    """ffmpeg is not installed."""

    def __init__(self, name: str) -> None:
        super().__init__(f"{name} is missing: install it with `apt-get install -y ffmpeg`")


def require_ffmpeg() -> str:
    """The path of Debian's ffmpeg, or :class:`ToolMissing` saying how to install it."""
    path = shutil.which("ffmpeg")
    if path is None:
        raise ToolMissing("ffmpeg")
    return path


@dataclass(frozen=True)
class Freeze:
    """Frames ``at .. at + frames - 1`` of a part all show the picture of frame ``at``."""

    at: int
    frames: int


@dataclass(frozen=True)
class Tamper:
    """From frame ``at`` of a part to its end: the lens is covered by something dark and
    uniform, the view is shifted by ``shift`` of the picture width, or the picture is blurred."""

    kind: Literal["cover", "move", "blur"]
    at: int
    shift: float = 0.08
    blur_sigma: float = 0.008


@dataclass(frozen=True)
class Part:
    """One scene for ``frames`` frames (freezes and the held frame included).

    ``gain`` scales luma towards black (0.15: a dark scene); ``noise`` is ffmpeg's temporal noise
    strength; ``hold`` repeats the last picture that many more times (``tpad`` clone);
    ``fade_in``/``fade_out`` are frames of fade from/to black; ``mover`` is ``(first, last)``
    frame of a box crossing a ``still`` scene.
    """

    scene: Scene
    frames: int
    noise: int = 0
    gain: float = 1.0
    freezes: tuple[Freeze, ...] = ()
    hold: int = 0
    fade_in: int = 0
    fade_out: int = 0
    mover: tuple[int, int] | None = None
    tamper: Tamper | None = None
    seed: int = 1


@dataclass(frozen=True)
class Clip:
    """A scripted clip: parts in order, encoded by x264 at ``crf`` (or ``bitrate_kbps``)."""

    name: str
    parts: tuple[Part, ...]
    width: int = 1280
    height: int = 720
    fps: int = 25
    gop_s: float = 2.0
    bframes: int = 3
    crf: int = 23
    bitrate_kbps: int | None = None

    @property
    def frames(self) -> int:
        return sum(p.frames for p in self.parts)

    @property
    def keyframes(self) -> list[int]:
        gop = round(self.gop_s * self.fps)
        return list(range(0, self.frames, gop))


# -- the filtergraph ---------------------------------------------------------------------------


def _source(part: Part, clip: Clip, index: int) -> str:
    w, h, r = clip.width, clip.height, clip.fps
    if part.tamper is not None and part.tamper.kind == "move":
        pad = 2 * round(part.tamper.shift * w / 2)
        w, h = w + pad, h + pad
    match part.scene:
        case "testsrc2":
            return f"testsrc2=s={w}x{h}:r={r}"
        case "mandelbrot":
            zoom = "maxiter=100:end_pts=1000:end_scale=0.00001"
            return f"mandelbrot=s={w // 2}x{h // 2}:r={r}:{zoom},scale={w}:{h}"
        case "life":
            return (
                f"life=s={w // 4}x{h // 4}:r={r}:ratio=0.5:seed={part.seed}:mold=0:"
                f"life_color=#f0f0f0,scale={w}:{h}:flags=neighbor,lutyuv=y='60+val*0.6'"
            )
        case "spectrum":
            return f"colorspectrum=s={w}x{h}:r={r}:type=all,scroll=h=0.004"
        case "black":
            return f"color=c=black:s={w}x{h}:r={r}"
        case "pan":
            step = w / max(1, part.frames)
            return f"testsrc2=s={2 * w}x{h}:r={r},crop={w}:{h}:x='min(n*{step:.3f},{w})':y=0"
        case "still":
            still = f"testsrc2=s={w}x{h}:r={r},trim=end_frame=1,loop=loop=-1:size=1"
            if part.mover is None:
                return still
            first, last = part.mover
            box = h // 6 // 2 * 2
            speed = (w + box) / (last - first + 2)
            return (
                f"{still}[bg{index}];color=c=0xE0E0E0:s={box}x{box}:r={r}[box{index}];"
                f"[bg{index}][box{index}]overlay=x='-{box}+(n-{first}+1)*{speed:.3f}':"
                f"y={h // 2 - box // 2}:enable='between(n,{first},{last})'"
            )


def _chain(part: Part, clip: Clip, index: int) -> str:
    source_frames = part.frames - part.hold - sum(f.frames - 1 for f in part.freezes)
    if source_frames < 1:
        raise ValueError(f"part {index}: freezes and hold take more than its {part.frames} frames")
    steps = [
        _source(part, clip, index),
        f"trim=end_frame={source_frames}",
        "setpts=N/FRAME_RATE/TB",
    ]
    if part.tamper is not None:
        steps.append(_tamper(part.tamper, clip))
    if part.gain != 1.0:
        steps.append(f"lutyuv=y='16+(val-16)*{part.gain}'")
    if part.noise:
        steps.append(f"noise=alls={part.noise}:allf=t:all_seed={part.seed}")
    for freeze in sorted(part.freezes, key=lambda f: f.at):
        # ffmpeg 5.1's loop repeats frame start - 1 (start=1 and start=0 both repeat frame 0).
        steps.append(f"loop=loop={freeze.frames - 1}:size=1:start={freeze.at + 1}")
    if part.hold:
        steps.append(f"tpad=stop_mode=clone:stop={part.hold}")
    steps.append("setpts=N/FRAME_RATE/TB")
    if part.fade_in:
        steps.append(f"fade=t=in:s=0:n={part.fade_in}")
    if part.fade_out:
        steps.append(f"fade=t=out:s={part.frames - part.fade_out}:n={part.fade_out}")
    steps.append("format=yuv420p,setsar=1")
    return ",".join(steps) + f"[p{index}]"


def _tamper(tamper: Tamper, clip: Clip) -> str:
    w, h, at = clip.width, clip.height, tamper.at
    match tamper.kind:
        case "cover":
            return f"drawbox=x=0:y=0:w=iw:h=ih:color=0x262626:t=fill:enable='gte(n,{at})'"
        case "move":
            pad = 2 * round(tamper.shift * w / 2)
            return f"crop={w}:{h}:x='if(gte(n,{at}),{pad},0)':y='if(gte(n,{at}),{pad // 2},0)'"
        case "blur":
            return f"gblur=sigma={tamper.blur_sigma * w:.2f}:enable='gte(n,{at})'"


def filtergraph(clip: Clip) -> str:
    """The ``-filter_complex`` of ``clip``; its output pad is ``[out]``."""
    chains = [_chain(part, clip, i) for i, part in enumerate(clip.parts)]
    pads = "".join(f"[p{i}]" for i in range(len(clip.parts)))
    concat = f"{pads}concat=n={len(clip.parts)}:v=1:a=0,setpts=N/FRAME_RATE/TB[out]"
    return ";".join([*chains, concat])


def render(clip: Clip, path: Path | str, *, threads: int = 1) -> Path:
    """Encode ``clip`` at ``path`` (H.264 in the container of the suffix) and return the path."""
    binary = require_ffmpeg()
    path = Path(path)
    gop = round(clip.gop_s * clip.fps)
    x264 = f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes={clip.bframes}"
    rate = ["-crf", str(clip.crf)]
    if clip.bitrate_kbps is not None:
        kbps = clip.bitrate_kbps
        rate = ["-b:v", f"{kbps}k", "-maxrate", f"{kbps}k", "-bufsize", f"{kbps}k"]
    args = [
        binary,
        *("-hide_banner", "-loglevel", "error", "-y", "-threads", str(threads)),
        *("-filter_complex", filtergraph(clip), "-map", "[out]"),
        *("-frames:v", str(clip.frames), "-r", str(clip.fps)),
        *("-c:v", "libx264", "-preset", "veryfast", "-x264-params", x264, *rate),
        *("-pix_fmt", "yuv420p", str(path)),
    ]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ffmpeg failed to render {clip.name}: {done.stderr.strip()[-2000:]}")
    return path
