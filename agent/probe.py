"""What a ``file://`` source must be before an agent decodes it: a video container.

FFmpeg opens almost anything: a text file probes as the ``tty`` demuxer and decodes into frames of
rendered characters, an image sequence pattern reads many files, a playlist points elsewhere. An
agent therefore decodes only files whose demuxer is a known video container and that hold a video
stream. The answer is yes or no, never why: an error must not tell what a path holds.
"""

from __future__ import annotations

import av

__all__ = ["VIDEO_CONTAINERS", "is_video_file"]

VIDEO_CONTAINERS = frozenset({
    "mov", "mp4", "m4v", "matroska", "webm", "mpegts", "avi", "flv", "h264", "hevc", "mpeg",
    "asf", "ivf", "mjpeg", "m4a", "3gp",
})  # fmt: skip
"""Demuxer names (FFmpeg's ``-f``) a file source may use."""


def is_video_file(path: str) -> bool:
    """True if ``path`` opens as one of ``VIDEO_CONTAINERS`` with a video stream. Blocking (it
    reads the file's header): call it off the event loop."""
    try:
        with av.open(path, mode="r", timeout=5.0) as container:
            names = set(container.format.name.split(","))
            return bool(names & VIDEO_CONTAINERS) and bool(container.streams.video)
    except (av.error.FFmpegError, OSError, UnicodeError, ValueError):
        return False
