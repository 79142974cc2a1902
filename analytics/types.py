"""Shared value types of the analytics pipeline (Realeyes levels: trigger → action → event).

Timestamps (``ts``, ``started_at``, ``ended_at``) are seconds: from the start of the media for a
file, Unix time for a live source (anchored to the wall clock at each (re)connect). Intervals are
half-open, ``[started_at, ended_at)``: ``ended_at`` is the first frame after the last one that
matched (docs/analytics.md).
"""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = ["ActionHit", "EventHit", "Report", "ReportKind", "Trigger"]

ReportKind = Literal["running", "reconnect", "stall", "error"]


class Report(msgspec.Struct, frozen=True, kw_only=True):
    """Something the agent should know about a source: it runs, reconnects, stalls or failed.

    ``delay_s`` is the backoff before the next connection attempt (reconnect/error reports).
    ``code`` is a machine-readable error code (``source_not_found``, ``source_unreachable``...).
    """

    kind: ReportKind
    message: str = ""
    fatal: bool = False
    delay_s: float = 0.0
    code: str = ""


class Trigger(msgspec.Struct, frozen=True, kw_only=True):
    """One frame-level finding of a stream analyzer, e.g. ``motion`` with the changed area."""

    name: str
    ts: float
    score: float
    details: dict[str, float] = msgspec.field(default_factory=dict)


class ActionHit(msgspec.Struct, frozen=True, kw_only=True):
    """Triggers that reached an action rule's threshold within its window, over
    ``[started_at, ended_at)``; ``score`` is the highest trigger score."""

    name: str
    started_at: float
    ended_at: float
    score: float
    trigger_count: int
    triggers: tuple[Trigger, ...] = ()


class EventHit(msgspec.Struct, frozen=True, kw_only=True):
    """Actions that reached an event rule's threshold: what an analysis record is about, over
    ``[started_at, ended_at)`` of its actions; ``score`` is the highest action score."""

    name: str
    started_at: float
    ended_at: float
    score: float
    actions: tuple[ActionHit, ...] = ()
