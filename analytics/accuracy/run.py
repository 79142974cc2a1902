"""vigil's pipeline on a clip, its records turned into :class:`~analytics.accuracy.score.Found`
intervals (the event name is the kind).

    found = vigil_detect(Path("clip.mp4"))
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from analytics.accuracy.score import Found
from analytics.counters import StreamCounters
from analytics.records import AnalysisRecord
from analytics.types import Report
from analytics.worker import AnalyticSpec, StreamJob, run_stream

__all__ = ["DETECTORS", "vigil_detect", "vigil_records"]

# The analytics scored by the suite, with their default params.
DETECTORS: tuple[str, ...] = ("scene_change", "black_frame", "frozen_frame", "brightness", "motion")


def vigil_records(
    path: Path,
    analytics: Sequence[str] = DETECTORS,
    params: Mapping[str, dict[str, object]] | None = None,
) -> list[AnalysisRecord]:
    """Every record of ``run_stream`` over the file at ``path``."""
    params = params or {}
    job = StreamJob(
        stream_id="accuracy",
        agent_id="accuracy",
        url=str(path),
        kind="file",
        analytics=tuple(AnalyticSpec(name, dict(params.get(name, {}))) for name in analytics),
    )
    records: list[AnalysisRecord] = []
    reports: list[Report] = []
    outcome = run_stream(job, threading.Event(), StreamCounters(), reports.append, records.append)
    if outcome.status != "done":
        raise RuntimeError(f"vigil failed on {path}: {outcome} {reports}")
    return records


def vigil_detect(
    path: Path,
    analytics: Sequence[str] = DETECTORS,
    params: Mapping[str, dict[str, object]] | None = None,
) -> list[Found]:
    """The events vigil reports on ``path``."""
    return [
        Found(r.event.name, r.event.started_at, r.event.ended_at)
        for r in vigil_records(path, analytics, params)
    ]
