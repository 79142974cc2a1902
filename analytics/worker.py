"""Worker entry point: analyse one stream until its file ends, a fatal error, or ``stop``.

The agent calls :func:`run_stream` in a worker thread per stream. Decoding runs in the collector's
own thread; this thread runs the stream handler, the analyzers and the rules; records go to the
``records`` callback and/or a spooler running its own thread, so neither blocks decoding.

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
from analytics.pipeline import Found, Pipeline
from analytics.records import AnalysisRecord
from analytics.spool import SpoolConfig
from analytics.spoolrunner import SpoolRunner
from analytics.types import Report

# Until two keyframes were seen, a keyframes-only stream is assumed to have one every 2 s.
KEYFRAME_INTERVAL_S = 2.0

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
    to the frame spacing (docs/analytics.md, "Tiers").
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
    analysis_width: int = 320
    rtsp_transport: Literal["tcp", "udp"] = "tcp"
    keyframes_only: bool = False
    analysis_fps: float | None = None

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
    sinks = _sinks(records, runner, counters)
    collector = Collector(_source_config(job), counters)
    collector.start()
    try:
        outcome = _consume(job, stop, counters, on_report, collector, pipeline, sinks)
    finally:
        collector.stop()
        collector.join(job.read_timeout_s + job.open_timeout_s + 1.0)
        if runner is not None:
            runner.close()
    return outcome


def _consume(
    job: StreamJob,
    stop: threading.Event,
    counters: StreamCounters,
    on_report: Callable[[Report], None],
    collector: Collector,
    pipeline: Pipeline,
    sink: Callable[[list[AnalysisRecord]], None],
) -> Outcome:
    stall_deadline: float | None = None
    running = False
    while not stop.is_set():
        try:
            item = collector.queue.get(timeout=0.1)
        except queue.Empty:
            if job.kind == "stream" and not running:
                _account(pipeline.tick(time.time()), counters, sink)
            if stall_deadline is not None and time.monotonic() > stall_deadline:
                counters.add(stalls=1)
                on_report(Report(kind="stall", message=f"no frame for {job.stall_timeout_s:g} s"))
                collector.request_reconnect()
                stall_deadline = None
            continue
        if isinstance(item, Frame):
            stall_deadline = time.monotonic() + job.stall_timeout_s
            if not running:
                running = True
                on_report(Report(kind="running", message="frames flowing"))
            began = time.perf_counter()
            found = pipeline.process(item)
            counters.add_analysed(1, time.perf_counter() - began)
            _account(found, counters, sink)
            continue
        outcome = _on_notice(item, job, counters, on_report)
        if item.kind == "opened":
            stall_deadline = time.monotonic() + job.stall_timeout_s
        elif item.kind in ("reconnect", "error"):
            stall_deadline = None
            running = False
        if outcome is not None:
            _account(pipeline.flush(), counters, sink)
            return outcome
    _account(pipeline.flush(), counters, sink)
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
