"""Collector: decode one source in a dedicated thread and hand frames on through a bounded queue.

The decode thread owns its container from open to close (PyAV crashes if a container is closed by
another thread during ``demux``): stopping sets a flag checked between packets, and the read
timeout bounds how long a blocked read can delay that check. Frames carry the analysis picture —
the Y plane (limited range 16-235) reduced by strided slicing (:func:`analysis_step`: a quarter of
the source's width, between 160 and ``analysis_width`` columns), copied once here where the
decoder's output is freshest in cache — and the decoded frame itself, by reference (its colour
planes make the record thumbnails).

Two cheap tiers: ``keyframes_only`` decodes keyframes only (non-key packets are not decoded at
all, and the decoder skips any it gets: ``skip_frame=NONKEY``; an MP4 demuxer does not even read
them: ``discard``; the keyframes skip the deblocking filter, which only matters to frames that
reference them; a file played as live is held to real time on its keyframes only, each wait
for the next a sleep on the stop flag, so hundreds of such streams wake once a keyframe and a
GOP of up to 30 s is not taken for a timestamp jump);
``analysis_fps`` hands on at most that many frames a second (every frame is still decoded: each
one is a reference for the next).

Frames go to ``on_frame``, called in the decode thread, when given (the worker analyses them
there); else into the queue (live: dropped and counted when the queue is full; files: the decoder
waits, so file analysis is deterministic). Queue items are those :class:`Frame` and
:class:`Notice` (never dropped).
A live source's end or error means reconnect, with exponential backoff and jitter, recreating the
container each time; a file's end is ``done``; a missing file is fatal.
"""

from __future__ import annotations

import contextlib
import os
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal, Protocol

import av
import numpy as np
import numpy.typing as npt
from av.stream import Discard

from analytics.errors import SourceError

__all__ = ["Collector", "Frame", "Notice", "SourceConfig", "SourceMeters", "backoff_delay"]

U8 = npt.NDArray[np.uint8]
NoticeKind = Literal["opened", "reconnect", "error", "done"]
_LIVE_SCHEMES = (
    "rtsp://",
    "rtsps://",
    "http://",
    "https://",
    "tcp://",
    "udp://",
    "rtmp://",
    "srt://",
)
# FFmpeg's socket timeout option (rtmp's "timeout" means "listen" instead)
_SOCKET_TIMEOUT_SCHEMES = tuple(s for s in _LIVE_SCHEMES if s != "rtmp://")
# A wait for the next packet longer than this (keyframes only: ~2 s) sleeps on the stop event.
_LONG_WAIT_S = 0.1
# A file played as live whose next packet is further ahead of the clock than this (or behind it
# by more than _JUMP_S) had a timestamp jump: it is paced from a new origin. Keyframes only, the
# next packet paced is the next keyframe, a GOP ahead: cameras' GOPs reach 10 s and more.
_JUMP_S = 5.0
_KEYFRAME_JUMP_S = 30.0


@dataclass(frozen=True)
class SourceConfig:
    """How to open and read one source."""

    url: str
    live: bool
    open_timeout_s: float = 15.0
    read_timeout_s: float = 10.0
    rtsp_transport: Literal["tcp", "udp"] = "tcp"
    analysis_width: int = 160
    queue_size: int = 64
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    backoff_jitter: float = 0.2
    healthy_reset_s: float = 30.0
    decode_thread_type: Literal["SLICE", "FRAME", "AUTO"] = "SLICE"
    keyframes_only: bool = False
    analysis_fps: float | None = None


@dataclass(frozen=True, slots=True)
class Frame:
    """A decoded frame: ``gray`` its analysis picture (the Y plane every ``step`` rows and
    columns; 0: another reduction), ``video`` the decoded frame."""

    index: int
    session: int
    pts_s: float | None
    wall: float
    key: bool
    gray: U8
    video: av.VideoFrame
    step: int = 0


@dataclass(frozen=True, slots=True)
class Notice:
    """A change of the source's state, in order with the frames."""

    kind: NoticeKind
    session: int
    message: str = ""
    code: str = ""
    fatal: bool = False
    delay_s: float = 0.0


class SourceMeters(Protocol):
    """Where the collector counts what it reads (thread-safe)."""

    def add_packet(self, size: int, media_s: float | None) -> None: ...
    def add_decoded(self, frames: int, keyframes: int, seconds: float) -> None: ...
    def add_dropped(self, frames: int) -> None: ...


def backoff_delay(
    attempt: int, base_s: float, max_s: float, jitter: float, rng: random.Random
) -> float:
    """Exponential backoff with multiplicative jitter: attempt 0 waits about ``base_s``."""
    delay = min(max_s, base_s * (2.0 ** min(attempt, 30)))
    return max(0.0, delay * rng.uniform(1.0 - jitter, 1.0 + jitter))


_Y_FIRST = frozenset(("yuv420p", "yuvj420p", "nv12", "yuv422p", "yuvj422p", "yuv444p"))
MIN_ANALYSIS_WIDTH = 160


def analysis_step(width: int, max_width: int, min_width: int = MIN_ANALYSIS_WIDTH) -> int:
    """The stride of the analysis picture of a source ``width`` pixels wide: 4 (a sixteenth of
    the pixels), more to stay about ``max_width`` wide (1080p: 6), less to stay at least
    ``min_width`` wide (a 320-wide source: 2). 720p gives 320x180, 360p 160x90: the analysis
    costs about the same share of decoding at any size."""
    return max(1, width // max_width, min(4, width // min_width))


def y_plane_view(frame: av.VideoFrame, width: int) -> U8:
    """Y plane as a numpy view, downscaled by strided slicing to about ``width`` columns."""
    return analysis_picture(frame, width, copy=False, min_width=width)[0]


def analysis_picture(
    frame: av.VideoFrame, width: int, *, copy: bool = True, min_width: int = MIN_ANALYSIS_WIDTH
) -> tuple[U8, int]:
    """The Y plane reduced by strided slicing (:func:`analysis_step`, at most ``width``
    columns), contiguous (a view if not ``copy``), and the stride; other pixel formats are
    converted (stride 0)."""
    step = analysis_step(frame.width, width, min(width, min_width))
    if frame.format.name in _Y_FIRST:
        plane = frame.planes[0]
        full = np.frombuffer(memoryview(plane), dtype=np.uint8).reshape(
            frame.height, plane.line_size
        )
        view = full[::step, : frame.width : step]
        return (np.ascontiguousarray(view) if copy else view), step
    size = (-(-frame.width // step), -(-frame.height // step))
    gray = frame.reformat(width=size[0], height=size[1], format="gray").to_ndarray()
    return np.asarray(gray, dtype=np.uint8), 0


class _Bytes:
    """Packet sizes summed per media second before they reach the meters (one locked update a
    second instead of one a packet; the peak bitrate is per media second anyway)."""

    __slots__ = ("_last", "_meters", "_second", "_size")

    def __init__(self, meters: SourceMeters) -> None:
        self._meters = meters
        self._second: int | None = None
        self._last = 0.0
        self._size = 0

    def add(self, size: int, media_s: float | None) -> None:
        if media_s is None:
            self._meters.add_packet(size, None)
            return
        second = int(media_s)
        if second != self._second:
            self.flush()
            previous, self._second = self._second, second
            if previous is None or not 0 < second - previous <= 1:
                # the first packet, or a jump: the meters' media clock starts here, not at the
                # end of this second
                self._meters.add_packet(size, media_s)
                self._last = media_s
                return
        self._size += size
        self._last = max(self._last, media_s) if self._size > size else media_s

    def flush(self) -> None:
        """Hand the second's bytes on, at the newest media time seen in it (the media clock
        the meters keep must reach the last packet, or a file's bitrate reads high)."""
        if self._size and self._second is not None:
            self._meters.add_packet(self._size, self._last)
        self._size = 0


class _Due:
    """Which frames to hand on for at most ``fps`` a second (every frame when ``fps`` is None):
    the first frame at or after each due time, due times ``1 / fps`` apart; a gap or a jump back
    in time starts over."""

    __slots__ = ("_next", "_period")

    def __init__(self, fps: float | None) -> None:
        self._period = 1.0 / fps if fps else 0.0
        self._next: float | None = None

    def take(self, t: float) -> bool:
        period = self._period
        if not period:
            return True
        due = self._next
        late = t - due if due is not None else period
        if -period - 1e-6 <= late < -1e-6:
            return False
        regular = due is not None and -1e-6 <= late < period
        self._next = (due if regular and due is not None else t) + period
        return True


class Collector:
    """Decodes ``config.url`` in its own thread into ``self.queue`` until stopped or done."""

    def __init__(
        self,
        config: SourceConfig,
        meters: SourceMeters,
        *,
        seed: int | None = None,
        on_frame: Callable[[Frame], None] | None = None,
    ) -> None:
        self.config = config
        self.meters = meters
        self._on_frame = on_frame
        self.queue: queue.Queue[Frame | Notice] = queue.Queue(maxsize=config.queue_size)
        self._stop = threading.Event()
        self._reconnect = threading.Event()
        self._rng = random.Random(seed)
        self._first_frame_at: float | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"collector:{config.url}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def request_reconnect(self) -> None:
        """Drop the current connection at the next packet (used after a stall)."""
        self._reconnect.set()

    def join(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # -- decode thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._run_sessions()
        except Exception as exc:
            # A bug or an unexpected decoder error: tell the consumer, then let it propagate.
            message = f"collector crashed: {exc!r}"
            self._notify(Notice("error", 0, message, "internal_error", fatal=True))
            raise

    def _run_sessions(self) -> None:
        cfg = self.config
        session = 0
        attempt = 0
        while not self._stop.is_set():
            session += 1
            self._first_frame_at = None
            try:
                self._decode_session(session)
            except SourceError as exc:
                if exc.fatal or not cfg.live:
                    self._notify(Notice("error", session, exc.message, exc.code, fatal=True))
                    return
                failure: SourceError | None = exc
            else:
                if not cfg.live:
                    self._notify(Notice("done", session))
                    return
                failure = None
            if self._stop.is_set():
                return
            healthy_since = self._first_frame_at
            if (
                healthy_since is not None
                and time.monotonic() - healthy_since >= cfg.healthy_reset_s
            ):
                attempt = 0  # reset only after sustained health, never on a mere connect
            delay = backoff_delay(
                attempt, cfg.backoff_base_s, cfg.backoff_max_s, cfg.backoff_jitter, self._rng
            )
            attempt += 1
            if healthy_since is not None:  # frames flowed, then the source went away
                why = failure.message if failure is not None else "source ended"
                self._notify(Notice("reconnect", session, f"{why}; reconnecting", delay_s=delay))
            elif failure is not None:
                self._notify(Notice("error", session, failure.message, failure.code, delay_s=delay))
            else:
                message = f"{cfg.url}: connected but no frame came"
                self._notify(Notice("error", session, message, "source_no_frames", delay_s=delay))
            self._stop.wait(delay)

    def _decode_session(self, session: int) -> None:
        cfg = self.config
        self._reconnect.clear()
        with self._open() as container:
            stream = container.streams.video[0] if container.streams.video else None
            if stream is None or stream.codec_context is None:
                raise SourceError(
                    "invalid_source", f"{cfg.url}: no decodable video stream", fatal=not cfg.live
                )
            stream.thread_type = cfg.decode_thread_type
            if cfg.keyframes_only:
                stream.codec_context.skip_frame = "NONKEY"
                # Nothing decoded references a keyframe: skipping its in-loop deblocking spreads
                # no error (11 % less decoding; thumbnails keep the codec's blocks).
                stream.codec_context.options = {"skip_loop_filter": "all"}
                stream.discard = Discard.nonkey  # demuxers that can (MP4) skip the others
            self._notify(Notice("opened", session, f"opened {stream.codec_context.name}"))
            read = _Bytes(self.meters)
            try:
                self._decode_packets(session, container, stream, read)
            finally:
                read.flush()

    def _decode_packets(
        self,
        session: int,
        container: av.container.InputContainer,
        stream: av.VideoStream,
        read: _Bytes,
    ) -> None:
        cfg = self.config
        keys_only = cfg.keyframes_only
        time_base = float(stream.time_base) if stream.time_base is not None else None
        pace = cfg.live and not cfg.url.startswith(_LIVE_SCHEMES)  # a file played as live
        jump_s = _KEYFRAME_JUMP_S if keys_only else _JUMP_S
        origin: tuple[float, float] | None = None
        flagged = False  # the demuxer marks keyframes: other packets need no decoder at all
        due = _Due(cfg.analysis_fps)
        index = 0
        for packet in self._packets(container, stream):
            media_s = packet.pts * time_base if packet.pts is not None and time_base else None
            if pace and media_s is not None and (packet.is_keyframe or not keys_only):
                origin = self._pace(origin, media_s, jump_s)  # keyframes only: on their time
            read.add(packet.size, media_s)
            if keys_only:
                if packet.is_keyframe:
                    flagged = True
                elif flagged and packet.size:
                    continue
            began = time.perf_counter()
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                continue  # a corrupt packet: the decoder resynchronises at the next keyframe
            keys = 0
            for video in frames:
                pts_s = video.pts * time_base if video.pts is not None and time_base else None
                key = bool(video.key_frame)
                keys += key
                if self._first_frame_at is None:
                    self._first_frame_at = time.monotonic()
                wall = time.time()
                if not due.take(pts_s if pts_s is not None else wall):
                    continue
                gray, step = analysis_picture(video, cfg.analysis_width)
                frame = Frame(index, session, pts_s, wall, key, gray, video, step)
                index += 1
                self._hand_on(frame)
            self.meters.add_decoded(len(frames), keys, time.perf_counter() - began)

    def _pace(
        self, origin: tuple[float, float] | None, media_s: float, jump_s: float = _JUMP_S
    ) -> tuple[float, float]:
        """Hold a local file played as a live source to real time (like ``ffmpeg -re``)."""
        now = time.monotonic()
        if origin is None:
            return (now, media_s)
        ahead = (media_s - origin[1]) - (now - origin[0])
        if ahead > jump_s or ahead < -_JUMP_S:  # a timestamp jump: start a new origin
            return (now, media_s)
        while ahead > 0 and not self._stop.is_set():
            if ahead > _LONG_WAIT_S:  # keyframes only: one wake a keyframe, stop still heard
                self._stop.wait(ahead)
            else:  # a frame's gap: a sleep is cheaper than an Event's wait
                time.sleep(ahead)
            ahead = (media_s - origin[1]) - (time.monotonic() - origin[0])
        return origin

    def _packets(
        self, container: av.container.InputContainer, stream: av.VideoStream
    ) -> Iterator[av.Packet[av.VideoStream]]:
        try:
            for packet in container.demux(stream):
                if self._stop.is_set() or self._reconnect.is_set():
                    return
                yield packet  # the last one is empty: decoding it flushes the decoder
        except av.error.FFmpegError as exc:
            raise SourceError(
                "source_read_failed", f"{self.config.url}: {exc}", fatal=False
            ) from exc

    @contextlib.contextmanager
    def _open(self) -> Iterator[av.container.InputContainer]:
        """Open the source. PyAV's timeout bounds the opening; reads are bounded by FFmpeg's own
        ``rw_timeout`` / ``timeout`` (PyAV's check takes the GIL each time FFmpeg asks, many
        times a packet: with a hundred streams in one process they starve each other)."""
        cfg = self.config
        read_us = str(round(cfg.read_timeout_s * 1e6))
        options: dict[str, str] = {"rw_timeout": read_us}
        if cfg.url.startswith(_SOCKET_TIMEOUT_SCHEMES):
            options["timeout"] = read_us  # socket I/O (µs); rtmp's "timeout" means "listen"
        if cfg.url.startswith(("rtsp://", "rtsps://")):
            options["rtsp_transport"] = cfg.rtsp_transport
        if not cfg.live and not cfg.url.startswith(_LIVE_SCHEMES) and not os.path.exists(cfg.url):
            raise SourceError("source_not_found", f"no such file: {cfg.url}", fatal=True)
        began = time.monotonic()
        try:
            container = av.open(cfg.url, options=options, timeout=(cfg.open_timeout_s, None))
        except FileNotFoundError as exc:
            raise SourceError("source_not_found", f"{cfg.url}: {exc}", fatal=not cfg.live) from exc
        except (av.error.FFmpegError, OSError) as exc:
            code = "source_unreachable" if cfg.live else "invalid_source"
            message = f"{cfg.url}: {exc}"
            if time.monotonic() - began >= cfg.open_timeout_s * 0.95:
                message = f"{cfg.url}: no answer within the open timeout ({cfg.open_timeout_s:g} s)"
            raise SourceError(code, message, fatal=not cfg.live) from exc
        try:
            yield container
        finally:
            container.close()

    def _hand_on(self, frame: Frame) -> None:
        if self._on_frame is not None:
            self._on_frame(frame)
            return
        if self.config.live:
            try:
                self.queue.put_nowait(frame)
            except queue.Full:
                self.meters.add_dropped(1)
            return
        while not self._stop.is_set():
            try:
                self.queue.put(frame, timeout=0.2)
                return
            except queue.Full:
                continue

    def _notify(self, notice: Notice) -> None:
        while not self._stop.is_set():
            try:
                self.queue.put(notice, timeout=0.2)
                return
            except queue.Full:
                continue
