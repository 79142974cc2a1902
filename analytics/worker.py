"""Worker entry point: analyse one stream until its file ends, a fatal error, or ``stop``.

The agent calls :func:`run_stream` in a worker thread per stream. The collector's thread decodes
and analyses the frames (no hand-off to another thread, whose wake-up and lock hand-over cost
more than the analysis on a busy core): it admits each frame as it comes (timestamp, thumbnail)
and runs the analyzers and rules on ``batch_frames`` of them at a time, or on what waited
``batch_s`` (the interpreter's code and data are cold after each decode: a batch pays that once).
This thread follows the source's notices, stalls, batches that waited and the clock of a live
source that is down. A live frame that comes more than ``max_lag_s`` late against the stream's
own clock is not analysed (dropped and counted) so that decoding catches up. Records go to the
``records`` callback and/or a spooler running its own thread.

    outcome = run_stream(job, stop, counters, on_report=reports.append)
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from analytics.collector import Collector, Frame, Notice, SourceConfig
from analytics.counters import StreamCounters
from analytics.errors import InvalidParams, RulesError, UnknownAnalytic
from analytics.handler import WindowConfig
from analytics.picture import Picture
from analytics.pipeline import Found, Pipeline
from analytics.records import AnalysisRecord
from analytics.spool import SpoolConfig
from analytics.spoolrunner import SpoolRunner
from analytics.types import Report

# Until two keyframes were seen, a keyframes-only stream is assumed to have one every 2 s.
KEYFRAME_INTERVAL_S = 2.0
NOTICE_POLL_S = 0.25  # how often the worker's thread looks at stalls and a down source's clock
SPARSE_POLL_S = 1.0  # the same on a cheap tier (no batch waits; hundreds of streams a process)

__all__ = [
    "KEYFRAME_INTERVAL_S",
    "AnalyticSpec",
    "Outcome",
    "Report",
    "StreamCounters",
    "StreamJob",
    "run_stream",
]


@dataclass(frozen=True)
class AnalyticSpec:
    """One analytic to run on a stream with its params (validated against its schema)."""

    name: str
    params: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class StreamJob:
    """What to analyse and how. ``kind="file"`` ends with ``done``; ``"stream"`` reconnects.

    ``rules_toml`` optionally adds or overrides action/event rules (see :mod:`analytics.rules`).
    The cheap tiers: ``keyframes_only`` decodes and analyses keyframes only; ``analysis_fps``
    analyses at most that many frames a second (all are decoded). Either fits the action rules
    to the frame spacing (docs/analytics.md, "Tiers"). ``analyse_in_decode_thread=False`` hands
    frames to this thread through the collector's bounded queue instead (decoding and analysis
    of one stream then overlap on two cores, at the cost of a thread hand-over per frame).
    """

    stream_id: str
    agent_id: str
    url: str
    kind: Literal["stream", "file"]
    analytics: tuple[AnalyticSpec, ...]
    stall_timeout_s: float = 20.0
    open_timeout_s: float = 15.0
    read_timeout_s: float = 10.0
    spool: SpoolConfig | None = None
    rules_toml: str | None = None
    window: WindowConfig = field(default_factory=WindowConfig)
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    healthy_reset_s: float = 30.0
    queue_size: int = 64
    analysis_width: int = 160
    rtsp_transport: Literal["tcp", "udp"] = "tcp"
    keyframes_only: bool = False
    analysis_fps: float | None = None
    max_lag_s: float = 2.0
    analyse_in_decode_thread: bool = True
    batch_frames: int = 8
    batch_s: float = 0.5

    @property
    def sparse_period_s(self) -> float | None:
        """The expected spacing of analysed frames on a cheap tier (None: every frame)."""
        if self.keyframes_only:
            return max(KEYFRAME_INTERVAL_S, 1.0 / self.analysis_fps if self.analysis_fps else 0.0)
        return 1.0 / self.analysis_fps if self.analysis_fps else None


@dataclass(frozen=True)
class Outcome:
    """How :func:`run_stream` ended."""

    status: Literal["done", "failure", "stopped"]
    error_code: str = ""
    message: str = ""
    fatal: bool = False


def run_stream(
    job: StreamJob,
    stop: threading.Event,
    counters: StreamCounters,
    on_report: Callable[[Report], None],
    records: Callable[[AnalysisRecord], None] | None = None,
) -> Outcome:
    """Blocking: call in a worker thread. Returns when the file ends (``done``), a fatal error
    happens (``failure``), or ``stop`` is set (``stopped``). Live sources reconnect forever with
    backoff until stopped; each reconnect / stall / non-fatal error is reported through
    ``on_report`` (kind ``running`` / ``reconnect`` / ``stall`` / ``error``)."""
    try:
        pipeline = Pipeline.build(
            job.stream_id,
            job.agent_id,
            job.analytics,
            job.rules_toml,
            job.window,
            live=job.kind == "stream",
            sparse_period_s=job.sparse_period_s,
        )
    except (InvalidParams, UnknownAnalytic, RulesError) as exc:
        on_report(Report(kind="error", message=str(exc), fatal=True, code="invalid_params"))
        return Outcome("failure", "invalid_params", str(exc), fatal=True)
    runner = SpoolRunner.start(job.spool, counters) if job.spool is not None else None
    analysis = _Analysis(job, pipeline, counters, on_report, _sinks(records, runner, counters))
    on_frame = analysis.frame if job.analyse_in_decode_thread else None
    collector = Collector(_source_config(job), counters, on_frame=on_frame)
    collector.start()
    try:
        outcome = _follow(job, stop, counters, on_report, collector, analysis)
    finally:
        collector.stop()
        collector.join(job.read_timeout_s + job.open_timeout_s + 1.0)
        analysis.flush()
        if runner is not None:
            runner.close()
    return outcome


class _Analysis:
    """The pipeline of one stream, fed in the collector's thread (:meth:`frame`) and ticked or
    flushed from the worker's thread, one at a time."""

    def __init__(
        self,
        job: StreamJob,
        pipeline: Pipeline,
        counters: StreamCounters,
        on_report: Callable[[Report], None],
        sink: Callable[[list[AnalysisRecord]], None],
    ) -> None:
        self.pipeline = pipeline
        self.counters = counters
        self.on_report = on_report
        self.sink = sink
        self.live = job.kind == "stream"
        self.max_lag_s = job.max_lag_s
        # Sparse frames (a cheap tier) come seconds apart: each one is analysed as it comes.
        self.batch_frames = 1 if job.sparse_period_s else max(1, job.batch_frames)
        self.batch_s = job.batch_s
        self.lock = threading.Lock()
        self.running = False  # frames flow since the last (re)connection
        self.last_frame = 0.0  # monotonic time of the last frame
        self._batch: list[Picture] = []
        self._batch_since = 0.0  # monotonic time of the batch's first frame
        self._session = -1
        self._offset = 0.0  # the session's least (wall - pts): its clock

    def frame(self, frame: Frame) -> None:
        """Admit ``frame`` (the collector's thread), or drop it when a live source is late;
        analyse the batch when it is full or waited."""
        now = self.last_frame = time.monotonic()
        if not self.running:
            self.running = True
            self.on_report(Report(kind="running", message="frames flowing"))
        if self.live and self._late(frame):
            self.counters.add_dropped(1)
            return
        with self.lock:
            if not self._batch:
                self._batch_since = now
            self._batch.append(self.pipeline.admit(frame))
            if len(self._batch) >= self.batch_frames or now - self._batch_since >= self.batch_s:
                self._run_batch()

    def _late(self, frame: Frame) -> bool:
        if frame.pts_s is None:
            return False
        offset = frame.wall - frame.pts_s
        if frame.session != self._session or offset < self._offset:
            self._session, self._offset = frame.session, offset
        return offset - self._offset > self.max_lag_s

    def _run_batch(self) -> None:
        """Analyse the admitted pictures (the lock held)."""
        batch, self._batch = self._batch, []
        for picture in batch:
            _account(self.pipeline.analyse(picture), self.counters, self.sink)
        self.counters.add_analysed(len(batch), 0.0)

    def poll(self, live_down: bool) -> None:
        """The worker's clock: analyse a batch that waited; close what went quiet when a live
        source is down."""
        if not self._batch and not live_down:
            return
        with self.lock:
            if self._batch and time.monotonic() - self._batch_since >= self.batch_s:
                self._run_batch()
            if live_down and not self._batch:
                _account(self.pipeline.tick(time.time()), self.counters, self.sink)

    def flush(self) -> None:
        with self.lock:
            self._run_batch()
            found = self.pipeline.flush()
        _account(found, self.counters, self.sink)


def _follow(
    job: StreamJob,
    stop: threading.Event,
    counters: StreamCounters,
    on_report: Callable[[Report], None],
    collector: Collector,
    analysis: _Analysis,
) -> Outcome:
    """Follow the source's notices until it ends, fails or ``stop``; report stalls."""
    opened_at: float | None = None  # a connection whose frames may stall
    poll_s = SPARSE_POLL_S if job.sparse_period_s else NOTICE_POLL_S
    while not stop.is_set():
        try:
            item = collector.queue.get(timeout=poll_s)
        except queue.Empty:
            analysis.poll(live_down=job.kind == "stream" and not analysis.running)
            if opened_at is not None:
                last = max(opened_at, analysis.last_frame)
                if time.monotonic() - last > job.stall_timeout_s:
                    counters.add(stalls=1)
                    message = f"no frame for {job.stall_timeout_s:g} s"
                    on_report(Report(kind="stall", message=message))
                    collector.request_reconnect()
                    opened_at = None
            continue
        if isinstance(item, Frame):  # handed over by the decode thread
            analysis.frame(item)
            continue
        outcome = _on_notice(item, job, counters, on_report)
        if item.kind == "opened":
            opened_at = time.monotonic()
        elif item.kind in ("reconnect", "error"):
            opened_at = None
            analysis.running = False
        if outcome is not None:
            return outcome
    return Outcome("stopped")


def _on_notice(
    notice: Notice, job: StreamJob, counters: StreamCounters, on_report: Callable[[Report], None]
) -> Outcome | None:
    if notice.kind == "done":
        return Outcome("done")
    if notice.kind == "reconnect":
        counters.add(reconnects=1)
        on_report(Report(kind="reconnect", message=notice.message, delay_s=notice.delay_s))
    elif notice.kind == "error":
        if notice.fatal:
            on_report(Report(kind="error", message=notice.message, fatal=True, code=notice.code))
            return Outcome("failure", notice.code, notice.message, fatal=True)
        counters.add(reconnects=1)
        on_report(
            Report(kind="error", message=notice.message, code=notice.code, delay_s=notice.delay_s)
        )
    return None


def _account(
    found: Found, counters: StreamCounters, sink: Callable[[list[AnalysisRecord]], None]
) -> None:
    if found.triggers or found.events:
        counters.add(triggers=found.triggers, events=found.events)
    if found.records:
        sink(found.records)


def _sinks(
    records: Callable[[AnalysisRecord], None] | None,
    runner: SpoolRunner | None,
    counters: StreamCounters,
) -> Callable[[list[AnalysisRecord]], None]:
    def sink(batch: list[AnalysisRecord]) -> None:
        for record in batch:
            if records is not None:
                records(record)
                if runner is None:
                    counters.add(records_sent=1)
            if runner is not None:
                runner.submit(record)

    return sink


def _source_config(job: StreamJob) -> SourceConfig:
    return SourceConfig(
        url=job.url,
        live=job.kind == "stream",
        open_timeout_s=job.open_timeout_s,
        read_timeout_s=job.read_timeout_s,
        rtsp_transport=job.rtsp_transport,
        analysis_width=job.analysis_width,
        queue_size=job.queue_size,
        backoff_base_s=job.backoff_base_s,
        backoff_max_s=job.backoff_max_s,
        healthy_reset_s=job.healthy_reset_s,
        keyframes_only=job.keyframes_only,
        analysis_fps=job.analysis_fps,
    )
