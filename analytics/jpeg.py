"""Small colour thumbnails of decoded frames, JPEG-encoded by FFmpeg's mjpeg encoder (PyAV).

Thumbnails are strided copies of the YUV 4:2:0 planes (no colour conversion, no scaler), so a
720p frame becomes a 320x180 JPEG of a few kB in about a millisecond. The luma of a thumbnail is
the analysis picture when that was taken with the same stride (no second copy).
"""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import numpy.typing as npt

__all__ = ["JpegEncoder", "yuv_thumbnail"]

U8 = npt.NDArray[np.uint8]


def yuv_thumbnail(
    video: av.VideoFrame, width: int, luma: U8 | None = None, luma_step: int = 0
) -> tuple[U8, U8, U8]:
    """The Y, U, V planes subsampled to about ``width`` columns; the height is a multiple of 4
    and the width of 2, as yuv420p needs. ``luma``, the Y plane already taken with stride
    ``luma_step`` (the analysis picture), is used as it is (a view, not copied) when that is the
    thumbnail's stride; U and V are copies."""
    if video.format.name not in ("yuv420p", "yuvj420p"):
        height = max(4, round(video.height * width / video.width) // 4 * 4)
        video = video.reformat(width=width, height=height, format="yuv420p")
        luma = None
    step = max(1, video.width // width)
    chroma = ((video.width + 1) // 2, (video.height + 1) // 2)
    planes = []
    for index, (w, h) in enumerate(((video.width, video.height), chroma, chroma)):
        if index == 0 and luma is not None and luma_step == step:
            planes.append(luma)
            continue
        plane = video.planes[index]
        full = np.frombuffer(memoryview(plane), dtype=np.uint8).reshape(-1, plane.line_size)
        planes.append(full[:h:step, :w:step])
    y, u, v = planes
    rows = min(y.shape[0] // 4 * 4, u.shape[0] * 2 // 4 * 4)
    cols = min(y.shape[1] // 2 * 2, u.shape[1] * 2)
    if y is not luma:
        y = np.ascontiguousarray(y[:rows, :cols])
    return (
        y[:rows, :cols],
        np.ascontiguousarray(u[: rows // 2, : cols // 2]),
        np.ascontiguousarray(v[: rows // 2, : cols // 2]),
    )


class JpegEncoder:
    """Encodes yuv420p planes to JPEG, reusing one mjpeg context per picture size.

    ``quality`` is FFmpeg's qscale: 2 (best) to 31 (smallest).
    """

    def __init__(self, quality: int = 5) -> None:
        self.quality = quality
        self._codec: av.VideoCodecContext | None = None
        self._pts = 0

    def encode(self, y: U8, u: U8, v: U8) -> bytes:
        height, width = y.shape
        codec = self._context(width, height)
        stacked = np.concatenate([y, u.reshape(height // 4, width), v.reshape(height // 4, width)])
        frame = av.VideoFrame.from_ndarray(stacked, format="yuv420p")
        self._pts += 1  # the encoder refuses repeated timestamps
        frame.pts = self._pts
        return b"".join(bytes(packet) for packet in codec.encode(frame))

    def _context(self, width: int, height: int) -> av.VideoCodecContext:
        codec = self._codec
        if codec is None or (codec.width, codec.height) != (width, height):
            codec = av.VideoCodecContext.create("mjpeg", "w")
            codec.width = width
            codec.height = height
            codec.pix_fmt = "yuv420p"
            codec.time_base = Fraction(1, 25)
            q = str(self.quality)
            codec.options = {"qmin": q, "qmax": q, "strict": "-1"}
            codec.open()
            self._codec = codec
        return codec
