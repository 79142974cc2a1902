"""Camera-like test and demo clips with a scripted timeline and its ground truth.

A clip is a static noisy scene in which scripted segments happen: a moving object, a scene cut,
black frames, a frozen picture. Frames are drawn directly in limited-range YUV 4:2:0 and encoded
with libx264 the way a camera would: frame threading, a fixed keyframe interval, no B-frames,
constant bitrate and some sensor noise.

    truth = write_clip(tmp_path / "demo.ts", ClipSpec(duration_s=15.0))
    truth.expected("motion")  # [Occurrence(analytic="motion", started_at=2.0, ended_at=5.0)]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import av
import numpy as np
import numpy.typing as npt

__all__ = [
    "DEFAULT_TIMELINE",
    "ClipSpec",
    "ClipTruth",
    "Occurrence",
    "Segment",
    "write_clip",
]

SegmentKind = Literal["motion", "cut", "black", "frozen"]
U8 = npt.NDArray[np.uint8]

# Which analytic reports which kind of segment.
_ANALYTIC_OF: dict[str, tuple[str, ...]] = {
    "motion": ("motion",),
    "cut": ("scene_change",),
    "black": ("black_frame", "brightness"),
    "frozen": ("frozen_frame",),
}


@dataclass(frozen=True)
class Segment:
    """One scripted happening. A ``cut`` is instantaneous: the scene changes at ``start_s``."""

    kind: SegmentKind
    start_s: float
    end_s: float


DEFAULT_TIMELINE: tuple[Segment, ...] = (
    Segment("motion", 2.0, 5.0),
    Segment("cut", 6.0, 6.0),
    Segment("black", 8.0, 10.0),
    Segment("frozen", 12.0, 14.0),
)


@dataclass(frozen=True)
class ClipSpec:
    """What to generate. The container follows the file suffix (``.mp4``, ``.ts``, ``.mkv``)."""

    width: int = 320
    height: int = 180
    fps: int = 25
    duration_s: float = 15.0
    gop_s: float = 2.0
    noise: float = 4.0
    bits_per_pixel: float = 0.5
    seed: int = 7
    timeline: tuple[Segment, ...] = DEFAULT_TIMELINE


@dataclass(frozen=True)
class Occurrence:
    """One event an analytic should report, in seconds from the start of the clip."""

    analytic: str
    started_at: float
    ended_at: float


@dataclass(frozen=True)
class ClipTruth:
    """The ground truth of a generated clip."""

    path: Path
    spec: ClipSpec
    frames: int
    occurrences: tuple[Occurrence, ...] = field(default=())

    def expected(self, analytic: str) -> list[Occurrence]:
        return [o for o in self.occurrences if o.analytic == analytic]


def write_clip(path: Path | str, spec: ClipSpec = ClipSpec()) -> ClipTruth:
    """Encode the clip at ``path`` and return what happens in it."""
    path = Path(path)
    if spec.width % 2 or spec.height % 4:
        raise ValueError(
            f"width must be even and height a multiple of 4, got {spec.width}x{spec.height}"
            " (e.g. 160x92, 192x108, 320x180)"
        )
    scenes = (_scene(spec, 0), _scene(spec, 1))
    rng = np.random.default_rng(spec.seed)
    noise_bank = _noise_bank(spec, rng)
    total = round(spec.duration_s * spec.fps)
    gop = max(1, round(spec.gop_s * spec.fps))
    bitrate = int(spec.width * spec.height * spec.fps * spec.bits_per_pixel)
    frozen: U8 | None = None
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=spec.fps)
        stream.width = spec.width
        stream.height = spec.height
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = bitrate
        stream.codec_context.thread_type = "FRAME"
        stream.codec_context.options = {
            "preset": "veryfast",
            "x264-params": (
                f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0:"
                f"vbv-maxrate={bitrate // 1000}:vbv-bufsize={bitrate // 1000}:nal-hrd=cbr"
            ),
        }
        for index in range(total):
            t = index / spec.fps
            segment = _active(spec.timeline, t)
            if segment is not None and segment.kind == "frozen":
                if frozen is None:
                    frozen = _draw(spec, scenes, t, noise_bank, rng)
                picture = frozen
            else:
                frozen = None
                picture = _draw(spec, scenes, t, noise_bank, rng)
            frame = av.VideoFrame.from_ndarray(picture, format="yuv420p")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return ClipTruth(path=path, spec=spec, frames=total, occurrences=_occurrences(spec))


def _occurrences(spec: ClipSpec) -> tuple[Occurrence, ...]:
    found = [
        Occurrence(analytic, s.start_s, s.end_s)
        for s in spec.timeline
        for analytic in _ANALYTIC_OF[s.kind]
    ]
    return tuple(sorted(found, key=lambda o: (o.started_at, o.analytic)))


def _active(timeline: tuple[Segment, ...], t: float) -> Segment | None:
    for segment in timeline:
        if segment.kind != "cut" and segment.start_s <= t < segment.end_s:
            return segment
    return None


def _scene_index(spec: ClipSpec, t: float) -> int:
    cuts = sum(1 for s in spec.timeline if s.kind == "cut" and s.start_s <= t)
    return cuts % 2


def _draw(
    spec: ClipSpec,
    scenes: tuple[U8, U8],
    t: float,
    bank: npt.NDArray[np.int16],
    rng: np.random.Generator,
) -> U8:
    """One yuv420p picture (planes stacked, shape ``(h * 3 / 2, w)``) at time ``t``."""
    w, h = spec.width, spec.height
    segment = _active(spec.timeline, t)
    if segment is not None and segment.kind == "black":
        picture = np.full((h * 3 // 2, w), 128, dtype=np.uint8)
        picture[:h] = 17
    else:
        picture = scenes[_scene_index(spec, t)].copy()
        if segment is not None and segment.kind == "motion":
            _draw_object(picture, spec, segment, t)
    # Sensor noise on luma: a random slice of a pre-drawn noise bank, cheap even at 1080p.
    offset = int(rng.integers(0, bank.shape[0] - h))
    luma = picture[:h].astype(np.int16) + bank[offset : offset + h]
    picture[:h] = np.clip(luma, 16, 235).astype(np.uint8)
    return picture


def _draw_object(picture: U8, spec: ClipSpec, segment: Segment, t: float) -> None:
    """A bright square crossing the picture from left to right during the segment."""
    w, h = spec.width, spec.height
    size = max(8, h // 5) // 2 * 2
    progress = (t - segment.start_s) / max(segment.end_s - segment.start_s, 1e-9)
    x0 = int(-size + (w + size) * progress) // 2 * 2
    y0 = (h // 2 - size // 2) // 2 * 2
    xa, xb = max(x0, 0), min(x0 + size, w)
    if xb <= xa:
        return
    picture[y0 : y0 + size, xa:xb] = 220
    # Chroma planes (u then v) follow luma in the stacked layout, each h/4 rows of w.
    u0, v0 = h, h + h // 4
    rows = slice(y0 // 2, (y0 + size) // 2)
    for base in (u0, v0):
        plane = picture[base : base + h // 4].reshape(h // 2, w // 2)
        plane[rows, xa // 2 : xb // 2] = 90 if base == u0 else 200


def _scene(spec: ClipSpec, variant: int) -> U8:
    """A textured background; the two variants have clearly different luma histograms."""
    w, h = spec.width, spec.height
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if variant == 0:
        luma = 60 + 50 * (xx / w) + 20 * np.sin(yy / h * 6.0) * np.cos(xx / w * 9.0)
        u, v = 120, 135
    else:
        luma = 150 + 40 * (yy / h) + 25 * np.sin(xx / w * 14.0 + yy / h * 5.0)
        u, v = 140, 115
    rng = np.random.default_rng(spec.seed + 100 + variant)
    for _ in range(6):
        bw, bh = int(rng.integers(w // 10, w // 4)), int(rng.integers(h // 10, h // 4))
        bx, by = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
        luma[by : by + bh, bx : bx + bw] += float(rng.integers(-35, 35))
    picture = np.empty((h * 3 // 2, w), dtype=np.uint8)
    picture[:h] = np.clip(luma, 16, 235).astype(np.uint8)
    picture[h : h + h // 4] = u
    picture[h + h // 4 :] = v
    return picture


def _noise_bank(spec: ClipSpec, rng: np.random.Generator) -> npt.NDArray[np.int16]:
    rows = spec.height * 4
    bank = rng.normal(0.0, spec.noise, size=(rows, spec.width))
    return np.round(bank).astype(np.int16)
