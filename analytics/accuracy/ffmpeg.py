"""ffmpeg's own detectors on a clip: ``blackdetect``, ``freezedetect`` and ``scdet``, parsed from
the log ffmpeg writes to stderr, as the same :class:`~analytics.accuracy.score.Found` intervals
vigil's records give.

    found = ffmpeg_detect(Path("clip.mp4"), fps=25)

The filters keep their defaults except the minimum durations, aligned with vigil's rules so both
are asked the same question: ``blackdetect=d=0.08`` (two frames), ``freezedetect=d=1`` (a freeze
lasts a second), ``scdet`` at its default threshold 10. A freeze or black run still open at the end
of the clip ends at the clip's end.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from analytics.accuracy.lavfi import require_ffmpeg
from analytics.accuracy.score import Found

__all__ = ["FfmpegFilters", "ffmpeg_detect"]

_BLACK = re.compile(r"black_start:(?P<start>[-\d.]+) black_end:(?P<end>[-\d.]+)")
_FRAME = re.compile(r"\bpts_time:(?P<t>[-\d.]+)")
_META = re.compile(r"\b(?P<key>lavfi\.[a-z_.]+)=(?P<value>[-\d.]+)")


@dataclass(frozen=True)
class FfmpegFilters:
    """The ffmpeg filters run and their options."""

    blackdetect: str = "blackdetect=d=0.08"
    freezedetect: str = "freezedetect=d=1"
    scdet: str = "scdet"

    def chain(self) -> str:
        return f"{self.blackdetect},{self.freezedetect},{self.scdet},metadata=mode=print"


def ffmpeg_detect(path: Path, fps: int, filters: FfmpegFilters = FfmpegFilters()) -> list[Found]:
    """Run the filters over ``path`` with ``-threads 1`` and return what they reported."""
    args = [
        require_ffmpeg(),
        *("-hide_banner", "-nostats", "-loglevel", "info", "-threads", "1", "-i", str(path)),
        *("-vf", filters.chain(), "-an", "-f", "null", "-"),
    ]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ffmpeg filters failed on {path}: {done.stderr.strip()[-2000:]}")
    return parse_log(done.stderr, fps)


def parse_log(log: str, fps: int) -> list[Found]:
    """Intervals from ffmpeg's stderr: ``black_start/black_end`` lines of blackdetect, and the
    ``metadata=mode=print`` lines of freezedetect (``freeze_start/freeze_end``) and scdet
    (``lavfi.scd.time`` on each cut frame, which lasts one frame)."""
    found: list[Found] = []
    frame = 1.0 / fps
    last_t = 0.0
    freeze_start: float | None = None
    for line in log.splitlines():
        if match := _BLACK.search(line):
            found.append(Found("black_frame", float(match["start"]), float(match["end"])))
            continue
        if match := _FRAME.search(line):
            last_t = float(match["t"])
            continue
        if (match := _META.search(line)) is None:
            continue
        key, value = match["key"], float(match["value"])
        if key == "lavfi.freezedetect.freeze_start":
            freeze_start = value
        elif key == "lavfi.freezedetect.freeze_end" and freeze_start is not None:
            found.append(Found("frozen_frame", freeze_start, value))
            freeze_start = None
        elif key == "lavfi.scd.time":
            found.append(Found("scene_change", value, value + frame))
    if freeze_start is not None:
        found.append(Found("frozen_frame", freeze_start, last_t + frame))
    return found
